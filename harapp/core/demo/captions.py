"""Human-like captions for the demo pictures, some deliberately unhelpful.

Most images get 3-5 captions that agree on the activity (in varied words, like COCO's annotators).
A fixed share gets captions that disagree, name the activity only once, never name it, or name a
wrong one, so the demo has weak labels worth correcting by hand.
"""

from __future__ import annotations

import random

NOISE_KINDS: tuple[str, ...] = ("wrong", "disagree", "single", "none")
"""Ways an image's captions can be unhelpful; "clean" means they agree on the true activity."""

NOISY_SHARE = 0.15

# A plausible wrong reading for each activity: the confusions a hurried annotator makes.
CONFUSED_WITH: dict[str, tuple[str, ...]] = {
    "walking": ("running", "standing"),
    "running": ("walking",),
    "sitting": ("standing",),
    "standing": ("walking", "sitting"),
}

_SUBJECTS = {
    "male": ("a man", "a guy", "a young man", "an older man", "a boy", "a person", "someone", "a gentleman"),
    "female": ("a woman", "a lady", "a young woman", "an older woman", "a girl", "a person", "someone"),
}
_PLACES = {
    "street": ("down the street", "along the sidewalk", "on a city street", "in the city", "near some buildings"),
    "park": ("in the park", "across the grass", "in a grassy park", "on a green field", "near some trees"),
    "wall": ("next to a brick wall", "by a wall", "in front of a brick wall", "beside a red brick wall"),
    "beach": ("on the beach", "along the shore", "on the sand", "by the sea"),
    "indoor": ("in a room", "inside a building", "in a hallway", "indoors"),
}
_SEATS = {
    "chair": ("on a chair", "in a chair", "on a wooden chair"),
    "bench": ("on a bench", "on a park bench", "on a wooden bench"),
    "ground": ("on the ground", "on the floor", "down on the ground"),
    "none": ("on a seat", "on a chair", "on a bench"),
}
_VERBS = {
    "walking": (
        "{s} walks {p}", "{s} is walking {p}", "{s} walking {p}", "{s} strolls {p}", "{s} strolling {p}",
        "{s} takes a walk {p}", "{s} out for a walk {p}", "{s} walks alone {p}", "{s} is strolling {p}",
        "{s} wearing {c} walking {p}", "{s} in {c} walks {p}",
    ),
    "running": (
        "{s} runs {p}", "{s} is running {p}", "{s} running {p}", "{s} jogs {p}", "{s} jogging {p}",
        "{s} is jogging {p}", "{s} sprints {p}", "{s} sprinting {p}", "{s} out for a run {p}",
        "{s} in {c} running {p}", "{s} wearing {c} jogs {p}",
    ),
    "sitting": (
        "{s} sits {o} {p}", "{s} is sitting {o} {p}", "{s} sitting {o}", "{s} seated {o} {p}",
        "{s} is seated {o}", "{s} sitting down {o} {p}", "{s} sits alone {o}", "{s} in {c} sitting {o}",
        "{s} wearing {c} sits {o} {p}",
    ),
    "standing": (
        "{s} stands {p}", "{s} is standing {p}", "{s} standing {p}", "{s} stands still {p}",
        "{s} standing alone {p}", "{s} standing up straight {p}", "{s} in {c} standing {p}",
        "{s} wearing {c} stands {p}", "{s} is standing around {p}",
    ),
}  # fmt: skip
_NEUTRAL = (
    "{s} in {c} {p}", "a photo of {s} {p}", "{s} with {h} hair {p}", "{s} wearing {c} on a sunny day",
    "a picture of {s} {p}", "{s} {p} in the daytime", "{s} in {c} and {q}", "an image of {s} wearing {c}",
)  # fmt: skip


def _fill(template: str, scene: str, seat: str, look: dict[str, str], rng: random.Random) -> str:
    text = template.format(
        s=rng.choice(_SUBJECTS[look["gender"]]),
        p=rng.choice(_PLACES[scene]),
        o=rng.choice(_SEATS[seat]),
        c=rng.choice((f"a {look['shirt']} shirt", f"a {look['shirt']} top", look["pants"])),
        q=look["pants"],
        h=look["hair"],
    )
    text = text[0].upper() + text[1:] if rng.random() < 0.7 else text
    return text + "." if rng.random() < 0.6 else text


def _about(activity: str, scene: str, seat: str, look: dict[str, str], rng: random.Random) -> str:
    # A caption that calls a standing or walking person "sitting" still needs a seat to mention.
    return _fill(rng.choice(_VERBS[activity]), scene, seat, look, rng)


def make_captions(truth: str, noise: str, scene: str, seat: str, look: dict[str, str], rng: random.Random) -> list[str]:
    """3-5 captions for an image whose person is doing `truth`; `noise` is "clean" or one of NOISE_KINDS.

    `look` holds "gender", "shirt" (a colour), "pants" (e.g. "blue jeans") and "hair" (a colour word).
    """
    n = rng.randint(3, 5)
    wrong = rng.choice(CONFUSED_WITH[truth])
    if noise == "clean":
        # At least two captions name the activity and none names another, so it is the strict majority.
        named = [truth] * max(2, n - rng.choice((0, 0, 1)))
    elif noise == "disagree":
        half = max(1, n // 2)
        named = [truth] * half + [wrong] * half
    elif noise == "single":
        named = [truth]
    elif noise == "none":
        named = []
    elif noise == "wrong":
        n_wrong = rng.randint(2, n)
        named = [wrong] * n_wrong + [truth] * min(n - n_wrong, n_wrong - 1)
    else:
        raise ValueError(f"unknown caption noise kind {noise!r}")
    captions = [_about(a, scene, seat, look, rng) for a in named]
    captions += [_fill(rng.choice(_NEUTRAL), scene, seat, look, rng) for _ in range(n - len(named))]
    rng.shuffle(captions)
    return captions


def assign_noise(n_images: int, rng: random.Random) -> list[str]:
    """A noise kind per image: exactly round(NOISY_SHARE * n) noisy images, the kinds taken in turn."""
    n_noisy = round(NOISY_SHARE * n_images)
    kinds = ["clean"] * (n_images - n_noisy) + [NOISE_KINDS[i % len(NOISE_KINDS)] for i in range(n_noisy)]
    rng.shuffle(kinds)
    return kinds

"""Caption rules: which activities a COCO caption names with a person as the subject.

Each caption votes for the concepts (walking, running, sitting, standing) whose verb it uses with a person
subject. Captions are noisy, so the rules are conservative: a word that is not a posture ("hot dog stand",
"home run", "sitting room") or a verb whose subject is an animal, vehicle or object ("a dog sitting on a
couch", "a train running through") casts no vote. Speed matters (COCO train has 590k captions): one compiled
regex finds candidate verbs, and only captions with a candidate get the small backward scan for the subject.

Time is linear in a caption's length, whatever the caption: each candidate verb looks at most BACK_CHARS
before it and AHEAD_CHARS after it, and at most MAX_CANDIDATES verbs per caption are analysed. (Scanning from
the sentence start for every verb made a caption of many verbs and no full stop quadratic: 8,000 words took
23 s.) No real caption comes near these limits: in COCO val2017 the longest caption has 247 characters, at
most 148 of them before a verb, and 2 candidate verbs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from harapp.core.importers.caption_words import (
    BLOCKERS,
    COORDINATORS,
    DEPICTIONS,
    DETERMINERS,
    FILLERS,
    LINKERS,
    NEGATIONS,
    NON_PERSONS,
    PART_OF,
    PERSONS,
    SEAT_PHRASES,
    SUBORDINATORS,
    words,
)
from harapp.core.types import ClassInfo

CONCEPTS: tuple[str, ...] = ("walking", "running", "sitting", "standing")

LEXICON: dict[str, tuple[str, ...]] = {
    "walking": (
        r"walk(?:s|ed|ing)?",
        r"stroll(?:s|ed|ing)?",
        r"wander(?:s|ed|ing)?",
        r"hik(?:e|es|ed|ing)",
        r"strid(?:es|ing)",
    ),
    "running": (
        r"run(?:s|ning)?",
        r"runing",
        r"ran",
        r"jog(?:s|ged|ging)?",
        r"joggers?",
        r"sprint(?:s|ed|ing)?",
    ),
    "sitting": (
        r"sit(?:s|ting)?",
        r"siting|sittng|sittin",
        r"sat",
        r"seated",
        r"perch(?:ed|es|ing)",
    ),
    "standing": (
        r"stand(?:s|ing)?",
        r"stood",
        r"standng|stading",
    ),
    # Posing is standing more often than not; it only votes when nothing else in the caption does.
    "posing": (r"pos(?:e|es|ed|ing)",),
}
"""Concept -> regex pieces for its verb forms (inflections, synonyms, frequent misspellings)."""

NOT_POSTURE_BEFORE: dict[str, frozenset[str]] = {
    # stalls, furniture and holders: "hot dog stand", "night stand", "music stand"
    "standing": words(
        """dog fruit food vegetable veggie produce market flower lemonade news newspaper magazine taxi cab kick
        music umbrella night tv television cake microphone mic display concession coffee cream juice taco farm
        roadside bike bicycle hat coat plant candle tripod book wooden metal vendor vending snack souvenir donut
        doughnut pizza drink beverage bread candy banana meat fish street"""
    ),
    "running": words(
        """home ski dry test trial practice bobsled sled toboggan chicken bull beer supply mail milk bus train
        slalom snowboard sledding"""
    ),
}
"""Concept -> words right before 'stand(s)' / 'run(s)' that make it a noun, not a posture ("home run")."""

NOT_POSTURE_AFTER: dict[str, str] = {
    "standing": r"\s+out\s+(?:from|against|among)\b|[\s-]+up\s+(?:comed|paddle|desk)"
    r"|\s+(?:of|full|containing|display|displays|filled|water|ovation|room|stone|stones|desk|rib|order|army)\b",
    "walking": r"-in\b|-through\b|\s*ways?\b|[\s-]*(?:signal|signals|sign|signs|light|lights|button)\b"
    r"|\s+(?:path|paths|trail|trails|stick|sticks|cane|canes|bridge|area|distance|lane|lanes|shoes|boots"
    r"|tour|street|mall|deck)\b",
    "running": r"[\s-]*way\b|-down\b|\s+down\s+(?!the\b|a\b|an\b|his\b|her\b|their\b|its\b|to\b|into\b"
    r"|toward|some\b|this\b|that\b|from\b|and\b|with\b)|\s+(?:water|shoes|shoe|track|tracks|trail|path|back"
    r"|backs|board|boards|faucet|toilet|tap|shorts|gear|clothes|outfit|club|stitch|lights|mate|errands|late|low"
    r"|mower|engine)\b|\s+(?:for|in\s+the)\s+(?:office|election)",
    "sitting": r"\s+(?:room|rooms|area|areas|position|duck|ducks|bull|pretty)\b"
    r"|[\s-]+down\s+(?:restaurant|meal|dinner|lunch|strike)",
}
"""Concept -> what right after the verb makes it no posture ("standing water", "sitting room", "walkway")."""

_VERB_RE = re.compile(
    r"\b(?=[wshrjp])(?:" + "|".join(f"(?P<{c}>{'|'.join(p)})" for c, p in LEXICON.items()) + r")\b",
)
_NOT_AFTER = {c: re.compile(p) for c, p in NOT_POSTURE_AFTER.items()}
_NOUN_FORMS = words("stand stands run runs")
_OUTING_NOUNS = words("walk stroll hike run jog sprint")
_OUTING_VERBS = words("take takes taking took for on")
_PACE = words("long short quick brisk leisurely nice morning evening casual little relaxing slow")
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]*)?")
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789'")
BACK_CHARS = 400
"""How far before a verb its sentence (and so its subject) is read."""
AHEAD_CHARS = 80
"""How far after a verb its complement ("standing water", "walkway") is read; no word there is longer."""
MAX_CANDIDATES = 32
"""Candidate verbs analysed per caption; the rest of a caption with more is not read for votes."""
_SEAT_RE = re.compile(r"\b(?:" + "|".join(SEAT_PHRASES) + r")\b")


def _is_possessive(token: str) -> bool:
    return token.endswith("'s") or token.endswith("'")


def _base(token: str) -> str:
    return token.split("'", 1)[0]


def _noun_phrase_is_object(tokens: Sequence[str], index: int) -> tuple[bool, int]:
    """Is the noun phrase ending at tokens[index] an object (after a preposition or a participle) or
    coordinated ("a man and his dog")? Returns the verdict and the index from which the scan goes on.
    """
    i = index - 1
    steps = 0
    while i >= 0 and steps < 5:
        token = tokens[i]
        if token in DETERMINERS or _is_possessive(token):
            # A determiner opens the phrase ("his two cats"); the word before it decides.
            while i >= 0 and (tokens[i] in DETERMINERS or _is_possessive(tokens[i])):
                i -= 1
            break
        if token == "of" and i > 0 and tokens[i - 1] not in PART_OF:
            # "a bunch of bananas": the phrase goes on with its head, "a bunch".
            i -= 1
            steps = 0
            continue
        if token in LINKERS or token in COORDINATORS or token in SUBORDINATORS or token == "of":
            break
        i -= 1
        steps += 1
    if i < 0:
        return False, i
    token = tokens[i]
    if token == "of":
        return True, i - 1
    if token in LINKERS or token in COORDINATORS or token.endswith("ing"):
        # "a person eating a banana sitting": the banana is what the person eats.
        return True, i - 1
    return False, i


def _depicted(tokens: Sequence[str], index: int) -> bool:
    """Does a depiction shortly precede the person at tokens[index] ("a statue of two women")?"""
    window = tokens[max(0, index - 4) : index]
    return not DEPICTIONS.isdisjoint(window) or any(_base(t) in DEPICTIONS for t in window if "'" in t)


def _main_subject_is_person(tokens: Sequence[str]) -> bool:
    for index, token in enumerate(tokens):
        base = _base(token)
        if base in PERSONS and not (_is_possessive(token) and token not in PERSONS):
            return not _depicted(tokens, index)
        if base in NON_PERSONS:
            return False
    return False


def _subject_is_person(tokens: Sequence[str], next_token: str | None) -> bool:
    """Scan back from the verb (tokens are the words before it in its sentence) for its subject."""
    if not tokens:
        # "Seated man reading": an adjectival participle before a person noun.
        return next_token is not None and next_token in PERSONS
    last = tokens[-1]
    if last in BLOCKERS:
        return False
    if last in DETERMINERS:
        # "a stand", "the walking path" are nouns and adjectives, except before a person: "a seated man".
        return next_token is not None and next_token in PERSONS
    i = len(tokens) - 1
    # Auxiliaries, relative pronouns and adverbs sit between a subject and its verb.
    while i >= 0 and tokens[i] in FILLERS:
        if tokens[i] in NEGATIONS:
            return False
        i -= 1
    if i >= 0 and tokens[i] in SUBORDINATORS:
        # "... while walking": the subject of the main clause walks.
        return _main_subject_is_person(tokens[:i])
    while i >= 0:
        token = tokens[i]
        base = _base(token)
        if base == "one" and i > 0:
            if tokens[i - 1] == "no":
                return False
            if tokens[i - 1] in ("some", "every", "any"):
                return not _depicted(tokens, i)
        if token in PERSONS:
            return not _depicted(tokens, i)
        if _is_possessive(token):
            # "the man's dog", "the dog's owner": a possessive only modifies the noun after it.
            i -= 1
            continue
        if base in NON_PERSONS:
            is_object, i = _noun_phrase_is_object(tokens, i)
            if not is_object:
                return False
            continue
        i -= 1
    return False


def _strip_outing(tokens: list[str]) -> list[str] | None:
    """'taking a (long) walk', 'out for a run': the words before the outing's verb, else None."""
    i = len(tokens) - 1
    if i >= 0 and tokens[i] in _PACE:
        i -= 1
    if i < 1 or tokens[i] not in ("a", "an") or tokens[i - 1] not in _OUTING_VERBS:
        return None
    i -= 2
    if i >= 0 and tokens[i] in ("go", "goes", "going", "went", "out", "headed", "heading"):
        i -= 1
    return tokens[: i + 1]


def _is_posture(text: str, concept: str, word: str, end: int, before: list[str]) -> bool:
    if word in _NOUN_FORMS and before and before[-1] in NOT_POSTURE_BEFORE.get(concept, ()):
        following = _next_token(text, end)
        # "a woman with a purple umbrella stands near ...": a verb, as a preposition follows.
        if word[-1] != "s" or following is None or following.group(0) not in LINKERS:
            return False
    after = _NOT_AFTER.get(concept)
    return after is None or after.match(text, end, end + AHEAD_CHARS) is None


def _next_token(text: str, end: int) -> re.Match[str] | None:
    """The word right after a verb ending at `end` (its first AHEAD_CHARS characters: no known word is longer)."""
    return _TOKEN_RE.match(text, end + 1, end + 1 + AHEAD_CHARS)


def _words_before(text: str, start: int, several_sentences: bool) -> list[str]:
    """The words of the verb's sentence before it, at most BACK_CHARS back (a word cut by that edge is dropped)."""
    edge = max(0, start - BACK_CHARS)
    sentence_start = text.rfind(".", edge, start) + 1
    if several_sentences:
        sentence_start = max(sentence_start, *(text.rfind(c, edge, start) + 1 for c in "!?;"))
    cut = sentence_start == 0 and edge > 0
    before = _TOKEN_RE.findall(text, max(sentence_start, edge), start)
    if cut and before and text[edge - 1] in _TOKEN_CHARS and text[edge] in _TOKEN_CHARS:
        del before[0]
    return before


def _verb_votes(text: str) -> set[str]:
    votes: set[str] = set()
    posing = False
    several_sentences = "!" in text or "?" in text or ";" in text
    analysed = 0
    for match in _VERB_RE.finditer(text):
        concept = match.lastgroup
        if concept is None or concept in votes:
            continue
        if analysed == MAX_CANDIDATES:
            break
        analysed += 1
        start, end = match.span()
        word = match.group(0)
        before = _words_before(text, start, several_sentences)
        if not _is_posture(text, concept, word, end, before):
            continue
        if word in _OUTING_NOUNS:
            outing = _strip_outing(before)
            if outing is not None:
                before = outing + ["is"]
        if word.startswith("jogger"):
            # "a jogger" is its own subject.
            if DEPICTIONS.isdisjoint(before):
                votes.add(concept)
            continue
        after = _next_token(text, end)
        if _subject_is_person(before, after.group(0) if after else None):
            if concept == "posing":
                posing = True
            else:
                votes.add(concept)
    if posing and not votes and not _SEAT_RE.search(text):
        votes.add("standing")
    return votes


def caption_votes(caption: str) -> set[str]:
    """Concepts that one caption names with a person as the subject (empty when none or unsure)."""
    return _verb_votes(caption.lower())


def tally(captions: Iterable[str]) -> dict[str, int]:
    """Concept -> number of captions voting for it; concepts without votes are left out."""
    counts: dict[str, int] = {}
    for caption in captions:
        for concept in _verb_votes(caption.lower()):
            counts[concept] = counts.get(concept, 0) + 1
    return counts


def decide(votes: Mapping[str, int], min_votes: int = 2) -> str | None:
    """The agreed label: the top entry needs at least `min_votes` and more than half of all votes."""
    if not votes:
        return None
    total = sum(votes.values())
    best, best_count = max(votes.items(), key=lambda item: item[1])
    if best_count < min_votes or best_count * 2 <= total:
        return None
    return best


def mentions_person(caption: str) -> bool:
    """Does the caption name a person anywhere (as subject or not)?"""
    return not PERSONS.isdisjoint(_TOKEN_RE.findall(caption.lower()))


def map_votes(concept_votes: Mapping[str, int], classes: Sequence[ClassInfo]) -> dict[str, int]:
    """Concept votes -> class votes; a merged class ("walking/running") sums the concepts it covers."""
    result: dict[str, int] = {}
    for info in classes:
        count = sum(concept_votes.get(concept, 0) for concept in info.concepts)
        if count:
            result[info.name] = count
    return result


__all__ = [
    "CONCEPTS",
    "LEXICON",
    "NOT_POSTURE_AFTER",
    "NOT_POSTURE_BEFORE",
    "caption_votes",
    "decide",
    "map_votes",
    "mentions_person",
    "tally",
]

"""Caption parsing does work linear in the caption's length, whatever its shape (issue 11, bad input 1).

The work is counted, not timed: every regex the caption rules run is wrapped, and each call is charged the
characters it is allowed to scan (endpos - pos). Before the fix each verb re-tokenised its sentence from the
start, so a caption of many verbs and no full stop cost characters x verbs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harapp.core.importers import captions
from harapp.core.importers.coco import import_coco
from harapp.core.store import Project
from tests.core.cocofiles import Img, person, write_coco


class _Charged:
    """A compiled pattern whose calls add the span they may scan to a shared counter."""

    def __init__(self, pattern: re.Pattern[str], counter: list[int]) -> None:
        self.pattern = pattern
        self.counter = counter

    def _charge(self, text: str, pos: int, endpos: int) -> None:
        self.counter[0] += max(0, min(endpos, len(text)) - pos)

    def match(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        self._charge(text, pos, endpos)
        return self.pattern.match(text, pos, endpos)

    def findall(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> list[Any]:
        self._charge(text, pos, endpos)
        return self.pattern.findall(text, pos, endpos)

    def search(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        self._charge(text, pos, endpos)
        return self.pattern.search(text, pos, endpos)

    def finditer(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> Iterator[re.Match[str]]:
        self._charge(text, pos, endpos)
        return self.pattern.finditer(text, pos, endpos)


class _ChargedStr(str):
    """The lowered caption: rfind is charged the span it searches, like the patterns."""

    counter: list[int]

    def rfind(self, sub: str, start: Any = None, end: Any = None) -> int:  # type: ignore[override]
        lo = 0 if start is None else start
        hi = len(self) if end is None else end
        self.counter[0] += max(0, hi - lo)
        return super().rfind(sub, start, end)


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counter = [0]
    for name in ("_TOKEN_RE", "_VERB_RE", "_SEAT_RE"):
        monkeypatch.setattr(captions, name, _Charged(getattr(captions, name), counter))
    monkeypatch.setattr(captions, "_NOT_AFTER", {k: _Charged(v, counter) for k, v in captions._NOT_AFTER.items()})
    subject = captions._subject_is_person

    def counted_subject(tokens: Any, next_token: str | None) -> bool:
        counter[0] += len(tokens)  # the backward scan walks these tokens at most once each
        return subject(tokens, next_token)

    monkeypatch.setattr(captions, "_subject_is_person", counted_subject)
    return counter


def _cost(work: list[int], text: str) -> int:
    work[0] = 0
    charged = _ChargedStr(text.lower())
    charged.counter = work
    captions._verb_votes(charged)
    return work[0]


# Shapes of hostile or careless captions: many non-voting verbs and no full stop (the quadratic case of the
# issue), many verbs with long subjects, one huge word, long whitespace runs, many short sentences, a posing
# caption that makes the seat search run, and plain text without any verb.
SHAPES = [
    "a dog sitting on a couch and ",
    "sat ",
    "the cat with the long tail near the red car walking ",
    "stand" + " " * 300,
    "x" * 5000 + " sit ",
    "a dog sits. ",
    "a man posing on a bench with a ",
    "a man and a woman ",
    "runs-" * 40 + " ",
]


@pytest.mark.parametrize("shape", SHAPES, ids=range(len(SHAPES)))
def test_work_grows_linearly_with_caption_length(work: list[int], shape: str) -> None:
    small = (shape * (20_000 // len(shape) + 1))[:20_000]
    large = (shape * (200_000 // len(shape) + 1))[:200_000]
    small_cost, large_cost = _cost(work, small), _cost(work, large)
    # Linear: a bounded number of scans of the caption plus bounded work per verb. A quadratic parser charges
    # ~100x more for 10x the text; the old one charged about 2,000 characters per character of these.
    assert large_cost <= 8 * len(large) + 50_000, (large_cost, len(large))
    assert large_cost <= 12 * small_cost + 50_000, (small_cost, large_cost)


def test_each_verb_reads_a_bounded_window(work: list[int]) -> None:
    text = "a " * 100_000 + "man is walking"
    before = captions._words_before(text, len(text) - len("walking"), several_sentences=False)
    assert len(" ".join(before)) <= captions.BACK_CHARS
    assert before[-2:] == ["man", "is"]
    # The window still finds the subject, and a word cut by its edge is dropped, not read as a shorter word.
    assert captions.caption_votes(text) == {"walking"}
    cut = "x" * 10 + "man " + " " * (captions.BACK_CHARS - 4) + "sits"
    assert captions._words_before(cut, len(cut) - 4, several_sentences=False) == []


def test_real_captions_are_unchanged_by_the_limits() -> None:
    # The limits are far beyond any real caption; long but ordinary captions keep their votes.
    long_sentence = "A man in a blue shirt and a red hat with a black bag " * 5 + "is walking down the street."
    assert len(long_sentence) < captions.BACK_CHARS
    assert captions.caption_votes(long_sentence) == {"walking"}
    many = " ".join(["A dog sitting on a couch."] * 10 + ["A woman standing near it."])
    assert captions.caption_votes(many) == {"standing"}


def test_a_megabyte_caption_imports(tmp_path: Path) -> None:
    """End to end: a 1 MB caption (the issue's hang) imports, keeps its text and votes from its verbs."""
    huge = "a dog sitting on a couch and " * (1_000_000 // 29 + 1) + "a woman standing"
    root = write_coco(tmp_path / "coco", [Img(1, [huge, "A woman standing."], [person(1)])])
    with Project.create(tmp_path / "p.harapp") as project:
        report = import_coco(project, root)
        assert report.images == 1
        record = project.images()[0]
        assert len(record.captions[0]) > 1_000_000
        # The huge caption's first 32 verbs do not vote (their subject is a dog); its tail is not read.
        assert record.votes == {"standing": 1}

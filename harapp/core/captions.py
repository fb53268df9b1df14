"""Caption rules: which activities a COCO caption names with a person as the subject.

Each caption votes for the concepts (walking, running, sitting, standing) whose verb it uses with a person
subject. Captions are noisy, so the rules are conservative: a word that is not a posture ("hot dog stand",
"home run", "sitting room") or a verb whose subject is an animal, vehicle or object ("a dog sitting on a
couch", "a train running through") casts no vote. Speed matters (COCO train has 590k captions): one compiled
regex finds candidate verbs, and only captions with a candidate get the small backward scan for the subject.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from harapp.core.caption_words import (
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
)
from harapp.core.types import ClassInfo

CONCEPTS: tuple[str, ...] = ("walking", "running", "sitting", "standing")

_OUTING = r"(?:take|takes|taking|took|go|goes|going|went|out)\s+(?:for|on)\s+an?\s+"
_PACE = r"(?:(?:long|short|quick|brisk|leisurely|nice|morning|evening|casual|little|relaxing|slow)\s+)?"

LEXICON: dict[str, tuple[str, ...]] = {
    "walking": (
        _OUTING + _PACE + r"(?:walk|stroll|hike)",
        r"walk(?:s|ed|ing)?",
        r"stroll(?:s|ed|ing)?",
        r"wander(?:s|ed|ing)?",
        r"hik(?:e|es|ed|ing)",
        r"strid(?:es|ing)",
    ),
    "running": (
        _OUTING + _PACE + r"(?:run|jog|sprint)",
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
"""Concept -> regex pieces for its verb forms; `NEGATIVE_PHRASES` lists uses that are not postures."""

NEGATIVE_PHRASES: tuple[str, ...] = (
    # stand as a noun: stalls, furniture, holders, groups of trees, spectator seating
    r"(?:hot\s+dog|fruit|food|vegetable|veggie|produce|market|flower|lemonade|news|newspaper|magazine|taxi|cab"
    r"|kick|music|umbrella|night|tv|television|cake|microphone|mic|display|concession|coffee|ice\s+cream|juice"
    r"|taco|farm|roadside|bike|bicycle|hat|coat|plant|candle|tripod|book|wooden|metal|vendor|vending|snack"
    r"|souvenir|donut|doughnut|pizza|drink|beverage|bread|candy|banana|meat|fish|street)[\s-]+stands?\b",
    r"\bstands?\s+(?:of|out|full|containing|display|displays|filled)\b",
    r"\b(?:in|into|from|at|on|near|above)\s+(?:the\s+)?stands\b",
    r"\bstanding\s+(?:water|ovation|room|stone|stones|desk|rib|order|army)\b",
    r"\bstand[\s-]+up\s+(?:comed|paddle|desk)",
    # walk as a noun or an adjective
    r"\bwalk[\s-]*(?:signal|signals|sign|signs|light|lights|button|way|ways|in|through)\b",
    r"\bwalking\s+(?:path|paths|trail|trails|stick|sticks|cane|canes|bridge|area|distance|lane|lanes|shoes"
    r"|boots|tour|street|mall|deck)\b",
    # run as a noun or an adjective, and things that run without legs
    r"\bhome\s*runs?\b",
    r"\b(?:ski|dry|test|trial|practice|bobsled|sled|toboggan|chicken|bull|beer|supply|mail|milk|bus|train"
    r"|slalom|snowboard|sledding)\s+runs?\b",
    r"\brun[\s-]*way",
    r"\brun-down\b",
    r"\brun\s+down\s+(?!the\b|a\b|an\b|his\b|her\b|their\b|its\b|to\b|into\b|toward|some\b|this\b|that\b)",
    r"\brunning\s+(?:water|shoes|shoe|track|tracks|trail|path|back|backs|board|boards|faucet|toilet|tap"
    r"|shorts|gear|clothes|outfit|club|stitch|lights|mate|errands|late|low|mower|engine)\b",
    r"\brunning\s+(?:for|in\s+the)\s+(?:office|election)",
    # sit in names of rooms and places
    r"\bsitting\s+(?:room|rooms|area|areas|position|duck|ducks|bull|pretty)\b",
    r"\bsit[\s-]+down\s+(?:restaurant|meal|dinner|lunch|strike)",
)

_VERB_RE = re.compile(
    r"\b(?:" + "|".join(f"(?P<{c}>{'|'.join(p)})" for c, p in LEXICON.items()) + r")\b",
)
_NEG_RE = re.compile("|".join(f"(?:{p})" for p in NEGATIVE_PHRASES))
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]*)?")
_PERSON_RE = re.compile(r"\b(?:" + "|".join(sorted(PERSONS, key=len, reverse=True)) + r")\b")
_SEAT_RE = re.compile(r"\b(?:" + "|".join(SEAT_PHRASES) + r")\b")
_SENTENCE_END = re.compile(r"[.!?;]")


def _is_possessive(token: str) -> bool:
    return token.endswith("'s") or token.endswith("'")


def _base(token: str) -> str:
    return token.split("'", 1)[0]


def _noun_phrase_is_object(tokens: Sequence[str], index: int) -> tuple[bool, int]:
    """Is the noun phrase ending at tokens[index] an object (after a preposition) or coordinated ("X and a dog")?

    Returns the verdict and the index from which the backward scan goes on.
    """
    i = index - 1
    steps = 0
    while i >= 0 and steps < 4:
        token = tokens[i]
        if token in DETERMINERS or (_is_possessive(token) and token not in PERSONS):
            # A determiner opens the phrase; the word before it decides.
            i -= 1
            break
        if token in LINKERS or token in COORDINATORS or token == "of" or token in SUBORDINATORS:
            break
        if token in PERSONS:
            return False, i
        i -= 1
        steps += 1
    if i < 0:
        return False, i
    token = tokens[i]
    if token == "of":
        # "a herd of sheep": the sheep are what the subject is made of; "in front of a bus": an object.
        return (i > 0 and tokens[i - 1] in PART_OF), i - 1
    if token in LINKERS or token in COORDINATORS:
        return True, i - 1
    return False, i


def _depicted(tokens: Sequence[str], index: int) -> bool:
    """Does a depiction shortly precede the person at tokens[index] ("a statue of two women")?"""
    return any(_base(t) in DEPICTIONS for t in tokens[max(0, index - 4) : index])


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
        if base == "nobody" or (base == "one" and i > 0 and tokens[i - 1] == "no"):
            return False
        if token in PERSONS or (base in PERSONS and not _is_possessive(token)):
            return not _depicted(tokens, i)
        if base in NON_PERSONS:
            is_object, i = _noun_phrase_is_object(tokens, i)
            if not is_object:
                return False
            continue
        i -= 1
    return False


def _verb_votes(text: str) -> set[str]:
    votes: set[str] = set()
    posing = False
    negatives: list[tuple[int, int]] | None = None
    for match in _VERB_RE.finditer(text):
        concept = match.lastgroup
        if concept is None or (concept in votes):
            continue
        start, end = match.span()
        if negatives is None:
            negatives = [m.span() for m in _NEG_RE.finditer(text)]
        if any(s < end and start < e for s, e in negatives):
            continue
        sentence_start = 0
        for stop in _SENTENCE_END.finditer(text, 0, start):
            sentence_start = stop.end()
        before = _TOKEN_RE.findall(text, sentence_start, start)
        after = _TOKEN_RE.match(text, end + 1) if end < len(text) else None
        next_token = after.group(0) if after else None
        if concept == "running" and match.group(0).startswith("jogger"):
            # "a jogger" is its own subject.
            if not before or not any(_base(t) in DEPICTIONS for t in before):
                votes.add(concept)
            continue
        if _subject_is_person(before, next_token):
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
    return _PERSON_RE.search(caption.lower()) is not None


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
    "NEGATIVE_PHRASES",
    "caption_votes",
    "decide",
    "map_votes",
    "mentions_person",
    "tally",
]

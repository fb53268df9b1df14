"""Fuzz of the COCO importer (issue 11, bad input 2): random mutations of a small valid captions file and a
small valid instances file end in a successful import or a DatasetError that names a file, and a failed
import leaves the project as it was. No other exception may escape.

The suite runs EXAMPLES examples per file kind, derandomized (a fixed seed), so a failure reproduces. By
hand, more examples and a count of failures by site instead of a stop at the first one:

    HARAPP_FUZZ_EXAMPLES=50000 HARAPP_FUZZ_COUNT=1 .venv/bin/python -m pytest tests/core/test_import_fuzz.py -s
"""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
import traceback
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harapp.core.errors import DatasetError
from harapp.core.importers.coco import import_coco
from harapp.core.store import Project
from tests.core.cocofiles import PERSON_CATEGORY, Img, image_entry, person, write_coco, write_json

EXAMPLES = int(os.environ.get("HARAPP_FUZZ_EXAMPLES", "1000"))
COUNT_ONLY = bool(os.environ.get("HARAPP_FUZZ_COUNT"))

# Keys the importer reads (and a few it does not), for the mutations that add a key to an object.
FIELDS = (
    "id", "image_id", "file_name", "width", "height", "caption", "captions", "bbox", "area", "keypoints",
    "category_id", "iscrowd", "activity", "label", "source", "votes", "confidence", "harapp", "images_dir",
    "classes", "categories", "name", "images", "annotations",
)  # fmt: skip

NASTY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30, -1, 0, 101, 1001]),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 1e-320]),
    st.text(max_size=8),
    st.sampled_from(["\ud800", "a\x00b", "../x.jpg", "/etc/passwd", "", "000000000101.jpg", "x" * 300, "person"]),
    st.lists(st.integers(-3, 3) | st.floats(), max_size=5),
    st.lists(st.none() | st.text(max_size=2) | st.lists(st.integers(), max_size=2), max_size=3),
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=3), st.integers() | st.none() | st.text(max_size=3)),
)


def _captions_doc(images: list[Img], images_dir: Path) -> dict[str, Any]:
    entries = [image_entry(img) for img in images]
    # What our own COCO export adds, so its fields are fuzzed too.
    entries[0]["captions"] = ["A man standing.", "A man stands."]
    entries[0]["activity"] = {"label": "standing", "source": "human", "votes": {"standing": 2}, "confidence": 0.9}
    entries[1]["activity"] = {"label": None, "source": None, "votes": {}, "confidence": None}
    anns = [
        {"id": 10 * img.id + i, "image_id": img.id, "caption": text}
        for img in images
        for i, text in enumerate(img.captions)
    ]
    meta = {"version": 1, "images_dir": str(images_dir), "classes": ["walking", "running", "sitting", "standing"]}
    return {"info": {}, "harapp": meta, "images": entries, "annotations": anns}


def _instances_doc(images: list[Img]) -> dict[str, Any]:
    anns = [{**p, "image_id": img.id} for img in images for p in img.persons]
    anns[0]["keypoints"] = [5, 5, 2] * 17
    anns[1]["activity"] = {"label": "sitting", "source": "human", "votes": {}, "confidence": None}
    categories = [PERSON_CATEGORY, {"id": 2, "name": "bicycle"}]
    return {"images": [image_entry(img) for img in images], "annotations": anns, "categories": categories}


def _paths(node: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield here
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*here, index))


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """The base document after 1-3 random edits, as the bytes of a JSON file (sometimes cut or garbled)."""
    doc: Any = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(doc))))
        op = draw(st.sampled_from(["replace", "replace", "delete", "duplicate", "add"]))
        if not path:
            doc = draw(NASTY) if op == "replace" else doc
            continue
        parent, key = _parent(doc, path), path[-1]
        if op == "replace":
            parent[key] = draw(NASTY)
        elif op == "delete":
            del parent[key]
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif isinstance(parent[key], dict):
            parent[key][draw(st.sampled_from(FIELDS))] = draw(NASTY)
    raw = json.dumps(doc).encode("utf-8")  # NaN and Infinity become the literals Python's json reads back
    damage = draw(st.sampled_from(["none"] * 8 + ["cut", "garble"]))
    if damage == "cut":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif damage == "garble":
        at = draw(st.integers(0, max(0, len(raw) - 1)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at + 1 :]
    return raw


def _site(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "harapp" in f.filename]
    last = frames[-1] if frames else traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__} at {Path(last.filename).name}:{last.lineno} ({last.name})"


class _Fuzz:
    """One project and one COCO root shared by all examples of a run (a fresh project each would cost more
    than the import); a successful import simply re-imports into it."""

    def __init__(self, folder: Path) -> None:
        images = [
            Img(101, ["A man standing on a hill.", "A man stands near a tree."], [person(1001), person(1002)]),
            Img(102, ["A woman sitting on a bench.", "A woman sits."], [person(1003)]),
            Img(103, ["A boy walking his dog.", "A boy walks."], [person(1004)]),
            Img(104, ["A man standing.", "A man stands."], [person(1005)], on_disk=False),
        ]
        self.root = write_coco(folder / "coco", images)
        self.captions = self.root / "annotations" / "captions_val2017.json"
        self.instances = self.root / "annotations" / "instances_val2017.json"
        self.bases = {
            self.captions: _captions_doc(images, self.root / "val2017"),
            self.instances: _instances_doc(images),
        }
        for path, doc in self.bases.items():
            write_json(path, doc)
        self.project = Project.create(folder / "fuzz.harapp")
        self.failures: Counter[str] = Counter()
        self.examples = 0

    def run(self, target: Path, raw: bytes, by_root: bool) -> None:
        target.write_bytes(raw)  # the other file keeps its valid base content
        before = (self.project.label_revision(), self.project.count_images(), len(self.project.sources()))
        self.examples += 1
        try:
            if by_root:
                import_coco(self.project, self.root)
            else:
                # No root: the harapp export's images_dir (or the JSON file's folder) says where the images are.
                import_coco(self.project, annotation_files=[self.captions, self.instances])
        except DatasetError as exc:
            assert str(self.root) in str(exc), str(exc)
            after = (self.project.label_revision(), self.project.count_images(), len(self.project.sources()))
            assert after == before, "a failed import changed the project"
        except Exception as exc:
            if not COUNT_ONLY:
                raise
            self.failures[_site(exc)] += 1


@pytest.mark.parametrize("kind", ["captions", "instances"])
def test_importer_survives_mutated_files(kind: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        fuzz = _Fuzz(Path(folder))
        target = fuzz.captions if kind == "captions" else fuzz.instances

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(raw=mutated(fuzz.bases[target]), by_root=st.booleans())
        def check(raw: bytes, by_root: bool) -> None:
            fuzz.run(target, raw, by_root)

        try:
            check()
        finally:
            fuzz.project.close()
        if COUNT_ONLY:
            print(f"\n{kind}: {fuzz.examples} examples, {sum(fuzz.failures.values())} unhandled exceptions")
            for site, count in fuzz.failures.most_common():
                print(f"  {count:6d}  {site}")
        assert not fuzz.failures, dict(fuzz.failures)
        assert fuzz.examples >= EXAMPLES

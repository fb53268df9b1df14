"""Exports: CSV, COCO and ImageFolder each read back to the same labels; writes are atomic."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from harapp.core import export as export_module
from harapp.core.errors import DatasetError
from harapp.core.export import export_coco, export_csv, export_folders
from harapp.core.importers.coco import import_coco
from harapp.core.importers.folder import import_folder
from harapp.core.store import Project
from tests.core.cocofiles import STANDING, Img, person, small_dataset, write_coco


def _labels_by_name(project: Project) -> dict[str, tuple[str, str] | None]:
    return {Path(r.rel_path).name: (r.label.class_name, r.label.source) if r.label else None for r in project.images()}


@pytest.fixture
def curated(tmp_path: Path) -> Project:
    """An imported project with caption labels, human corrections, a cleared label and a person label."""
    project = Project.create(tmp_path / "curated.harapp")
    import_coco(project, write_coco(tmp_path / "coco", small_dataset()), all_images=True)
    project.set_label(project.find_image("102"), "running", "human")  # correct a caption label
    project.set_label(project.find_image("101"), None, "human")  # clear one
    project.set_label(project.find_image("105"), "sitting", "human")  # label an image without persons
    walking = project.find_image("103")
    person_id = project.persons(walking)[0].id
    project.set_label(walking, "standing", "human", person_id=person_id)
    yield project
    project.close()


def test_csv_parses_back_to_the_labels(curated: Project, tmp_path: Path) -> None:
    out = tmp_path / "labels.csv"
    assert export_csv(curated, out) == 5
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["path", "label", "source", "votes"]
    parsed = {Path(r["path"]).name: (r["label"], r["source"]) if r["label"] else None for r in rows}
    assert parsed == _labels_by_name(curated)
    for row in rows:
        record = curated.image(curated.find_image(Path(row["path"]).name))
        assert json.loads(row["votes"]) == record.votes
        assert Path(row["path"]) == record.path
        assert " " not in row["votes"]  # compact JSON


def test_coco_round_trip(curated: Project, tmp_path: Path) -> None:
    out = tmp_path / "export" / "labels.json"
    assert export_coco(curated, out) == 5
    doc = json.loads(out.read_text(encoding="utf-8"))
    entry = next(im for im in doc["images"] if im["id"] == 102)
    assert entry["coco_url"].endswith("000000000102.jpg")  # the original entry is kept
    assert entry["activity"]["label"] == "running" and entry["activity"]["source"] == "human"
    fresh = Project.create(tmp_path / "fresh.harapp")
    report = import_coco(fresh, annotation_files=[out])
    assert report.images == 5 and report.missing == 0
    assert _labels_by_name(fresh) == _labels_by_name(curated)
    for original in curated.images():
        copy = fresh.image(fresh.find_image(str(original.coco_id)))
        assert copy.captions == original.captions and copy.votes == original.votes
        assert copy.path == original.path
        assert [p.box for p in fresh.persons(copy.id)] == [p.box for p in curated.persons(original.id)]
    walking = fresh.find_image("103")
    assert [lab.class_name for lab in fresh.person_labels(walking).values()] == ["standing"]


def test_coco_round_trip_keeps_added_classes(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "a.harapp")
    import_coco(project, write_coco(tmp_path / "coco", [Img(1, STANDING, [person(1)])]))
    project.add_class("jumping")
    project.set_label(project.find_image("1"), "jumping", "human")
    export_coco(project, tmp_path / "x.json")
    fresh = Project.create(tmp_path / "b.harapp")
    import_coco(fresh, annotation_files=[tmp_path / "x.json"])
    assert fresh.class_names() == project.class_names()
    assert _labels_by_name(fresh) == _labels_by_name(project)


def test_folders_round_trip(curated: Project, tmp_path: Path) -> None:
    out = tmp_path / "tree"
    placed = export_folders(curated, out)
    expected = {k: v[0] for k, v in _labels_by_name(curated).items() if v}
    assert placed == len(expected) == 3
    fresh = Project.create(tmp_path / "fresh.harapp")
    report = import_folder(fresh, out)
    assert report.skipped == ()
    assert {k: v[0] for k, v in _labels_by_name(fresh).items() if v} == expected
    assert all(v is None or v[1] == "human" for v in _labels_by_name(fresh).values())


def test_folders_copy_and_name_collisions(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "p.harapp")
    for name in ("a", "b"):
        import_coco(project, write_coco(tmp_path / name, [Img(7, STANDING, [person(1)])]))
    assert project.count_images() == 2
    out = tmp_path / "tree"
    assert export_folders(project, out, link=False) == 2
    files = sorted(p.name for p in (out / "standing").iterdir())
    assert len(files) == 2 and "000000000007.jpg" in files
    assert not any((out / "standing" / f).is_symlink() for f in files)


def test_merged_class_folder_round_trip(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "p.harapp")
    project.merge_classes(["walking", "running"], "walking/running")
    images = [Img(1, ["A man walking.", "A man walks.", "A man running."], [person(1)])]
    import_coco(project, write_coco(tmp_path / "coco", images))
    export_folders(project, tmp_path / "tree")
    fresh = Project.create(tmp_path / "fresh.harapp")
    import_folder(fresh, tmp_path / "tree")
    assert [r.label.class_name for r in fresh.images() if r.label] == ["walking/running"]


def test_folders_replace_an_earlier_export_but_not_other_folders(curated: Project, tmp_path: Path) -> None:
    out = tmp_path / "tree"
    export_folders(curated, out)
    curated.set_label(curated.find_image("105"), None, "human")
    assert export_folders(curated, out) == 2
    assert not any(p.name.startswith(".tree") for p in tmp_path.iterdir())
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    with pytest.raises(DatasetError, match="not an earlier harapp export"):
        export_folders(curated, foreign)
    assert (foreign / "keep.txt").read_text() == "precious"


def test_failed_export_leaves_the_old_file(curated: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "labels.json"
    export_coco(curated, out)
    before = out.read_bytes()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("crash while writing")

    monkeypatch.setattr(export_module.json, "dump", broken)
    with pytest.raises(RuntimeError):
        export_coco(curated, out)
    assert out.read_bytes() == before
    assert os.listdir(tmp_path).count("labels.json") == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".labels.json")]

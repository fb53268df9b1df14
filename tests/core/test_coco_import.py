"""COCO import: scope, persons merged by annotation id, caption labels, missing files, re-import, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harapp.core.errors import DatasetError, LabelError
from harapp.core.importers.coco import import_coco
from harapp.core.store import Project
from harapp.core.store import bulk as store_bulk
from tests.core.cocofiles import SITTING, STANDING, WALKING, Img, person, small_dataset, write_coco, write_json


@pytest.fixture
def project(tmp_path: Path) -> Project:
    with Project.create(tmp_path / "p.harapp") as p:
        yield p


def _labels(project: Project) -> dict[int | None, tuple[str, str] | None]:
    return {r.coco_id: (r.label.class_name, r.label.source) if r.label else None for r in project.images()}


def test_import_small_coco_root(project: Project, tmp_path: Path) -> None:
    root = write_coco(tmp_path / "coco", small_dataset())
    report = import_coco(project, root)
    # 105 has no person, 106 is not on disk
    assert report.images == 4 and project.count_images() == 4
    assert report.missing == 1 and report.missing_examples == ("000000000106.jpg",)
    assert report.skipped_no_person == 1
    assert report.persons == 5
    assert report.labelled == 3 and report.uncertain == 1
    assert report.per_class == {"sitting": 1, "standing": 1, "walking": 1}
    assert _labels(project) == {
        101: ("standing", "caption"),
        102: ("sitting", "caption"),
        103: ("walking", "caption"),
        104: None,
    }
    record = project.image(project.find_image("104"))
    assert record.uncertain and record.votes == {"standing": 1, "sitting": 1}
    assert record.captions == ("A man standing near a table.", "A man sitting at a table.")
    assert record.path == (root / "val2017" / "000000000104.jpg").resolve()
    labelled = project.image(project.find_image("101"))
    assert labelled.label is not None and labelled.label.votes == {"standing": 3}
    assert labelled.label.confidence == pytest.approx(1.0)
    assert [p.box for p in project.persons(labelled.id)] == [(1, 2, 10, 12), (1, 2, 10, 12)]
    assert project.stats().not_found_at_import == 1


def test_all_images_imports_images_without_persons(project: Project, tmp_path: Path) -> None:
    root = write_coco(tmp_path / "coco", small_dataset())
    report = import_coco(project, root, all_images=True)
    assert report.images == 5 and report.skipped_no_person == 0


def test_captions_only_scope_uses_person_nouns(project: Project, tmp_path: Path) -> None:
    root = write_coco(tmp_path / "coco", small_dataset(), instances=False)
    report = import_coco(project, root)
    assert report.images == 4 and report.persons == 0
    assert 105 not in _labels(project)


def test_persons_in_instances_and_keypoints_are_counted_once(project: Project, tmp_path: Path) -> None:
    images = [Img(1, STANDING, [person(11), person(12)]), Img(2, SITTING, [person(13)])]
    root = write_coco(tmp_path / "coco", images, keypoints_for={1})
    report = import_coco(project, root)
    assert report.persons == 3
    persons = project.persons(project.find_image("1"))
    assert sorted(p.coco_id for p in persons) == [11, 12]
    assert all(p.keypoints is not None and len(p.keypoints) == 51 for p in persons)
    assert project.persons(project.find_image("2"))[0].keypoints is None


def test_reimport_adds_nothing_and_keeps_human_labels(project: Project, tmp_path: Path) -> None:
    root = write_coco(tmp_path / "coco", small_dataset())
    import_coco(project, root)
    sitting_id = project.find_image("102")
    project.set_label(sitting_id, "standing", "human")
    before_history = len(project.history(limit=1000))
    report = import_coco(project, root)
    assert project.count_images() == 4 and len(project.sources()) == 1
    assert project.stats(check_files=False).persons == 5
    assert report.images == 4 and report.labelled == 3
    labels = _labels(project)
    assert labels[102] == ("standing", "human")
    assert labels[101] == ("standing", "caption")
    # unchanged caption labels write no new history rows
    assert len(project.history(limit=1000)) == before_history


def test_reimport_follows_changed_captions_but_not_human_labels(project: Project, tmp_path: Path) -> None:
    root = write_coco(tmp_path / "coco", small_dataset())
    import_coco(project, root)
    project.set_label(project.find_image("103"), "running", "human")
    changed = small_dataset()
    changed[0].captions = SITTING  # 101: standing -> sitting
    changed[2].captions = SITTING  # 103: human label must survive
    changed[1].captions = ["A woman sitting.", "A woman standing."]  # 102: no agreement any more
    write_coco(root, changed)
    import_coco(project, root)
    labels = _labels(project)
    assert labels[101] == ("sitting", "caption")
    assert labels[102] is None
    assert labels[103] == ("running", "human")


def test_explicit_images_dir_and_files(project: Project, tmp_path: Path) -> None:
    root = write_coco(tmp_path / "coco", small_dataset())
    report = import_coco(
        project,
        images_dir=root / "val2017",
        annotation_files=[root / "annotations" / "captions_val2017.json"],
    )
    # no instance file: scope falls back to captions that mention a person
    assert report.images == 4 and report.persons == 0 and report.labelled == 3


def test_train_and_val_splits_become_two_sources(project: Project, tmp_path: Path) -> None:
    root = tmp_path / "coco"
    write_coco(root, [Img(1, STANDING, [person(1)])], split="val2017")
    write_coco(root, [Img(2, WALKING, [person(2)]), Img(3, SITTING, [person(3)])], split="train2017")
    report = import_coco(project, root)
    assert report.images == 3 and len(report.source_ids) == 2
    assert {Path(s["root"]).name for s in project.sources()} == {"val2017", "train2017"}


def test_merged_class_sums_caption_votes(project: Project, tmp_path: Path) -> None:
    project.merge_classes(["walking", "running"], "walking/running")
    images = [Img(1, ["A man walking.", "A man running.", "A man jogging."], [person(1)])]
    report = import_coco(project, write_coco(tmp_path / "coco", images))
    assert report.per_class == {"walking/running": 1}
    assert project.image(project.find_image("1")).votes == {"walking/running": 3}


def test_progress_is_reported(project: Project, tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    import_coco(project, write_coco(tmp_path / "coco", small_dataset()), progress=lambda *a: calls.append(a))
    assert calls[-1] == ("importing", 6, 6)
    assert any(stage.startswith("reading") for stage, _, _ in calls)


def test_failure_midway_leaves_project_unchanged(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_coco(tmp_path / "coco", small_dataset())
    written: list[int] = []
    original = store_bulk.BulkMixin.apply_labels

    def then_crash(*args: object, **kwargs: object) -> int:
        written.append(original(*args, **kwargs))  # type: ignore[arg-type]
        raise OSError("disk went away")

    # Images and labels are written when the crash comes; none of it may stay.
    monkeypatch.setattr(store_bulk.BulkMixin, "apply_labels", then_crash)
    revision = project.label_revision()
    with pytest.raises(OSError):
        import_coco(project, root)
    assert written == [3]
    assert project.count_images() == 0 and project.sources() == []
    assert project.label_revision() == revision and project.history() == []


def test_stdout_stays_clean(project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import_coco(project, write_coco(tmp_path / "coco", small_dataset()))
    assert capsys.readouterr().out == ""


def test_demo_dataset_imports(project: Project, tmp_path: Path) -> None:
    from harapp.core.demo import dataset as demo

    out = demo.make_demo(tmp_path / "demo", n_images=12, seed=3)
    report = import_coco(project, out)
    assert report.images == 12 and report.missing == 0
    assert report.persons >= 12
    assert report.labelled + report.uncertain >= 10


def test_activity_field_is_used_as_label(project: Project, tmp_path: Path) -> None:
    root = write_coco(tmp_path / "coco", [Img(1, STANDING, [person(1)])])
    path = root / "annotations" / "instances_val2017.json"
    doc = json.loads(path.read_text())
    doc["images"][0]["activity"] = {"label": "jumping", "source": "human", "votes": {}, "confidence": None}
    write_json(path, doc)
    report = import_coco(project, root)
    assert report.per_class == {"jumping": 1}
    assert "jumping" in project.class_names()
    assert _labels(project)[1] == ("jumping", "human")


def test_missing_root(project: Project, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        import_coco(project, tmp_path / "nope")


def test_real_coco_har(project: Project, coco_har: Path) -> None:
    report = import_coco(project, coco_har)
    assert report.images == 598 == project.count_images()
    assert report.missing == 5000 - 598
    assert report.labelled / report.images > 0.6
    counts = report.per_class
    assert max(counts, key=counts.__getitem__) in ("standing", "sitting")
    assert counts["standing"] > counts["walking"] > counts["running"] > 0
    assert counts["sitting"] > counts["walking"]
    # the 212 one-person images are in both person files with the same ids: 2,682 persons, not 2,894
    assert report.persons == 2682 == project.stats(check_files=False).persons
    with_keypoints = sum(1 for i in project.image_ids() for p in project.persons(i) if p.keypoints)
    assert with_keypoints == 212


def test_bulk_writer_matches_the_per_row_store_semantics(project: Project) -> None:
    source = project.add_source("test", Path("/data"))
    rows = [store_bulk.ImageRow(f"{i}.jpg", 8, 6, i, ("cap",), {"sitting": 2}, {"id": i}) for i in range(3)]
    ids = project.upsert_images(source, rows)
    assert ids == project.upsert_images(source, rows)  # idempotent
    assert project.count_images() == 3
    revision = project.label_revision()
    labels = [store_bulk.LabelRow(ids[0], "sitting", "caption", {"sitting": 2}, 1.0)]
    labels.append(store_bulk.LabelRow(ids[1], "standing", "human"))
    assert project.apply_labels(labels) == 2
    assert project.apply_labels(labels) == 0  # nothing changed, nothing recorded
    assert project.apply_labels([store_bulk.LabelRow(ids[1], None, "human")]) == 1
    assert project.label_revision() == revision + 3
    history = project.history()
    assert [(h.image_id, h.old_class, h.new_class) for h in history] == [
        (ids[1], "standing", None),
        (ids[1], None, "standing"),
        (ids[0], None, "sitting"),
    ]
    assert history[1].batch == history[2].batch != history[0].batch
    assert project.image(ids[0]).label.confidence == 1.0  # type: ignore[union-attr]
    persons = [
        store_bulk.PersonRow(ids[0], (1, 2, 3, 4), None, None, 77),
        store_bulk.PersonRow(ids[0], (5, 6, 7, 8), [1.0, 2.0, 2.0], 9.0, None),
    ]
    first = project.add_persons(persons)
    again = project.add_persons(persons[:1])
    assert again == first[:1] and len(set(first)) == 2
    assert [(p.coco_id, p.area) for p in project.persons(ids[0])] == [(77, 12.0), (None, 9.0)]
    with pytest.raises(LabelError):
        project.upsert_images(source, [store_bulk.ImageRow("../x.jpg", 1, 1, None, (), {}, {})])

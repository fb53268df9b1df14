from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harapp.core.errors import LabelError, ProjectError
from harapp.core.store import Project
from harapp.core.store.schema import SCHEMA_VERSION, migrate
from harapp.core.types import StoredPrediction
from tests.core.helpers import project_with_images


def test_create_sets_wal_foreign_keys_and_schema_version(tmp_path: Path) -> None:
    project, _ = project_with_images(tmp_path)
    project.close()
    conn = sqlite3.connect(tmp_path / "p.harapp")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    with Project.open(tmp_path / "p.harapp") as again:
        assert again._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert again.class_names() == ["walking", "running", "sitting", "standing"]


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "x.harapp").write_text("keep me")
    with pytest.raises(ProjectError, match="already exists"):
        Project.create(tmp_path / "x.harapp")
    assert (tmp_path / "x.harapp").read_text() == "keep me"


def test_label_change_is_committed_and_recorded_in_history(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    entry = project.set_label(ids[0], "sitting", "human")
    assert entry is not None and entry.old_class is None and entry.new_class == "sitting"
    # A second connection sees the change without any save step.
    with Project.open(tmp_path / "p.harapp", readonly=True) as reader:
        assert reader.image(ids[0]).label.class_name == "sitting"
    assert project.set_label(ids[0], "sitting", "human") is None  # no change, no history row
    project.set_label(ids[0], "standing", "human")
    history = project.history(ids[0])
    assert [(h.old_class, h.new_class) for h in history] == [("sitting", "standing"), (None, "sitting")]


def test_history_is_append_only(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    project.set_label(ids[0], "walking")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        project._conn.execute("DELETE FROM history")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        project._conn.execute("UPDATE history SET new_class = 'x'")


def test_revert_and_reapply_a_bulk_batch(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    project.set_label(ids[0], "walking", "caption", votes={"walking": 3})
    entries = project.set_labels([(ids[0], "running"), (ids[1], "sitting"), (ids[2], "sitting")])
    assert {e.batch for e in entries} == {entries[0].batch} and len(entries) == 3
    project.revert([e.id for e in entries])
    assert project.image(ids[0]).label.class_name == "walking"
    assert project.image(ids[0]).label.source == "caption"
    assert project.image(ids[1]).label is None
    project.reapply([e.id for e in entries])
    assert [project.image(i).label.class_name for i in ids[:3]] == ["running", "sitting", "sitting"]
    reasons = [h.reason for h in project.history(limit=20)]
    assert reasons.count("undo") == 3 and reasons.count("redo") == 3


def test_unknown_class_image_or_person_is_a_clear_error(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    with pytest.raises(LabelError, match="unknown class 'jumping'"):
        project.set_label(ids[0], "jumping")
    with pytest.raises(LabelError, match="no image with id 999"):
        project.set_label(999, "walking")
    with pytest.raises(LabelError, match="no person"):
        project.set_label(ids[0], "walking", person_id=12345)
    assert project.stats().labelled == 0


def test_person_labels_are_separate_from_the_image_label(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    first = project.add_person(ids[0], (1, 2, 10, 20), keypoints=[0.0] * 51, coco_id=7)
    again = project.add_person(ids[0], (1, 2, 11, 21), coco_id=7)
    second = project.add_person(ids[0], (30, 2, 10, 20))
    assert first == again and len(project.persons(ids[0])) == 2
    project.set_label(ids[0], "standing")
    project.set_label(ids[0], "sitting", person_id=second)
    assert project.image(ids[0]).label.class_name == "standing"
    assert project.person_labels(ids[0])[second].class_name == "sitting"
    snap = project.snapshot(person_level=True)
    assert len(snap.items) == 1 and snap.items[0].person_boxes == ((30.0, 2.0, 10.0, 20.0),)


def test_paths_escaping_the_root_are_refused(tmp_path: Path) -> None:
    project, _ = project_with_images(tmp_path)
    source = project.add_source("test", tmp_path)
    for bad in ("../outside.jpg", "/etc/passwd", "a/../../b.jpg"):
        with pytest.raises(LabelError, match="escapes"):
            project.upsert_image(source, bad, 1, 1)


def test_snapshot_is_frozen_and_carries_the_revision(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    project.add_person(ids[1], (0, 0, 5, 5))
    project.set_label(ids[0], "walking", "caption")
    project.set_label(ids[1], "sitting", "human")
    project.set_label(ids[2], "standing", "model", confidence=0.9)
    snap = project.snapshot()
    assert [(i.image_id, snap.class_names[i.class_index]) for i in snap.items] == [
        (ids[0], "walking"),
        (ids[1], "sitting"),
    ]
    assert snap.items[1].person_boxes == ((0.0, 0.0, 5.0, 5.0),)
    assert snap.items[0].path == tmp_path.resolve() / "img0.jpg"
    revision = snap.revision
    project.set_label(ids[0], "running")
    assert project.label_revision() > revision
    assert snap.class_names[snap.items[0].class_index] == "walking"


def test_stats_counts_classes_sources_and_uncertain(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "s.harapp")
    source = project.add_source("coco", tmp_path, {"missing": 3})
    a = project.upsert_image(source, "a.jpg", 1, 1, votes={"walking": 1, "sitting": 1})
    b = project.upsert_image(source, "b.jpg", 1, 1, votes={"walking": 3})
    project.upsert_image(source, "c.jpg", 1, 1)
    project.set_label(b, "walking", "caption", votes={"walking": 3})
    stats = project.stats()
    assert stats.images == 3 and stats.labelled == 1 and stats.uncertain == 1
    assert stats.per_class["walking"] == 1 and stats.per_source["caption"] == 1
    assert stats.not_found_at_import == 3
    assert stats.missing == 3  # a.jpg, b.jpg and c.jpg were never written to tmp_path
    assert project.stats(check_files=False).missing is None
    assert project.image(a).uncertain and not project.image(b).uncertain


def test_find_image_by_id_coco_id_and_name(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    assert project.find_image(str(ids[2])) == ids[2]
    assert project.find_image("1004") == ids[4]
    assert project.find_image("img3.jpg") == ids[3]
    with pytest.raises(LabelError, match="no image matches"):
        project.find_image("nothing.jpg")


def test_models_predictions_and_embeddings(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    first = project.register_model("m1", "cnn-scratch", "scratch", tmp_path / "m1.pt", 3, {"accuracy": 0.5}, {})
    second = project.register_model("m2", "clip", "linear-probe", tmp_path / "m2.pt", 4, {"accuracy": 0.7}, {})
    project.set_active_model(second)
    assert project.active_model().id == second and not project.models()[0].active
    project.set_active_model(first)
    assert project.active_model().name == "m1"
    project.set_active_model(None)
    assert project.active_model() is None and not any(m.active for m in project.models())
    project.set_active_model(first)
    stored = StoredPrediction("walking", 0.8, {"walking": 0.8, "sitting": 0.2})
    project.put_predictions(first, {ids[0]: stored})
    assert project.predictions(first) == {ids[0]: stored}
    project.put_embeddings("key", {ids[0]: b"\x00\x01", ids[1]: b"\x02"})
    assert project.get_embeddings("key", [ids[0], ids[2]]) == {ids[0]: b"\x00\x01"}
    assert project.get_embeddings("other", ids) == {}


def test_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    with pytest.raises(RuntimeError), project.transaction():
        project.set_label(ids[0], "walking")
        project.upsert_image(project.add_source("x", tmp_path / "x"), "new.jpg", 1, 1)
        raise RuntimeError("import failed half-way")
    assert project.image(ids[0]).label is None
    assert project.count_images() == len(ids)


def test_an_older_schema_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.harapp"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    migrate(conn, 0, 1)
    conn.execute("INSERT INTO meta VALUES ('app', 'harapp'), ('label_revision', '0')")
    conn.execute("COMMIT")
    conn.close()
    with Project.open(path) as project:
        assert project._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        project.put_embeddings("k", {})  # the table added by migration 2 exists


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "not an SQLite database"),
        (b"hello, I am a text file\n", "not an SQLite database"),
        (b"SQLite format 3\x00" + b"\x00" * 20, "not a harapp project"),
    ],
)
def test_a_file_that_is_not_a_project_is_refused_and_left_alone(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.harapp"
    path.write_bytes(content)
    with pytest.raises(ProjectError, match=reason) as info:
        Project.open(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == content


def test_a_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(ProjectError, match="not a harapp project"):
        Project.open(path)
    with pytest.raises(ProjectError, match="no such project"):
        Project.open(tmp_path / "missing.harapp")


def test_a_full_disk_is_reported_and_loses_nothing(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    project.set_label(ids[0], "walking")
    # SQLite reports a page limit exactly like a full disk (SQLITE_FULL), so cap the file where it is now.
    pages = project._conn.execute("PRAGMA page_count").fetchone()[0]
    project._conn.execute(f"PRAGMA max_page_count = {pages}")
    source = project.add_source("big", tmp_path / "big")
    with pytest.raises(ProjectError) as info, project.transaction():
        for i in range(2000):
            project.upsert_image(source, f"big/{i:05d}.jpg", 640, 480, captions=["a man walking " * 20])
    message = str(info.value)
    assert str(tmp_path / "p.harapp") in message and "full" in message and "unchanged" in message
    assert project.count_images() == len(ids)
    assert project.image(ids[0]).label.class_name == "walking"


def test_undo_last_passes_over_merges_and_changes_already_undone(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    project.set_label(ids[0], "walking")
    project.merge_classes(["sitting", "standing"], "still")  # its own undo: undo_class_op
    gui_edit = project.set_label(ids[1], "running")
    project.revert([gui_edit.id])  # the GUI's undo stack took this one back already
    project.set_label(ids[2], "still")
    assert [e.image_id for e in project.undo_last()] == [ids[2]]
    assert project.image(ids[2]).label is None
    # Next: the GUI-undone edit changes nothing and is passed over, the merge too; then the first edit.
    assert [(e.image_id, e.new_class) for e in project.undo_last()] == [(ids[0], None)]
    assert project.undo_last() == []
    assert "still" in project.class_names()  # the merge stays; `classes undo` is its undo


def test_images_by_id_are_read_in_sql_in_chunks(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path, n=1203)
    statements: list[str] = []
    project._conn.set_trace_callback(statements.append)
    wanted = [ids[1202], ids[0], ids[700], ids[0], 10**9, *ids[100:650]]
    records = project.images(wanted)
    project._conn.set_trace_callback(None)
    assert [r.id for r in records] == sorted({ids[0], ids[700], ids[1202], *ids[100:650]})
    assert records[0] == project.image(ids[0])
    selects = [s for s in statements if s.lstrip().startswith("SELECT")]
    assert len(selects) == 2 and all(" IN (" in s for s in selects)  # 553 ids: two chunks, never the whole table
    assert project.images([]) == []
    assert len(project.images()) == 1203
    project.close()


def test_embeddings_are_read_for_the_asked_ids_only(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path, n=3)
    project.put_embeddings("key", {i: bytes([i % 256]) for i in ids})
    statements: list[str] = []
    project._conn.set_trace_callback(statements.append)
    found = project.get_embeddings("key", [ids[2], ids[0]])
    project._conn.set_trace_callback(None)
    assert found == {ids[2]: bytes([ids[2] % 256]), ids[0]: bytes([ids[0] % 256])}
    assert any("image_id IN (" in s for s in statements)
    project.close()


def test_embedding_count_by_kind(tmp_path: Path) -> None:
    with Project.create(tmp_path / "p.harapp") as project:
        source = project.add_source("folder", tmp_path, {})
        ids = [project.upsert_image(source, f"{i}.jpg", 4, 4) for i in range(3)]
        assert project.embedding_count("resnet18:") == 0
        project.put_embeddings("resnet18:aaa", {ids[0]: b"1", ids[1]: b"2"})
        project.put_embeddings("resnet18:bbb", {ids[2]: b"3"})
        project.put_embeddings("resnet50:ccc", {i: b"4" for i in ids})
        assert project.embedding_count("resnet18:") == 2  # the fullest key of that kind
        assert project.embedding_count("clip:") == 0


def test_image_items_returns_only_the_asked_images_in_id_order_with_their_boxes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, ids = project_with_images(tmp_path, n=7)
    # Persons added across images out of order: an image's boxes come in the order they were added.
    for image, box in ((3, (1, 1, 2, 2)), (1, (5, 5, 2, 2)), (3, (0, 0, 9, 9)), (5, (2, 2, 3, 3)), (1, (0, 1, 2, 3))):
        project.add_person(ids[image], box)
    every = project.image_items()
    assert [it.image_id for it in every] == ids
    assert every[3].person_boxes == ((1.0, 1.0, 2.0, 2.0), (0.0, 0.0, 9.0, 9.0))
    assert every[1].person_boxes == ((5.0, 5.0, 2.0, 2.0), (0.0, 1.0, 2.0, 3.0))
    assert every[0].path == tmp_path.resolve() / "img0.jpg" and every[0].class_index == -1
    assert (every[0].width, every[0].height) == (64, 48)
    # Several queries of two ids each: the order holds across them; duplicates and unknown ids are passed over.
    monkeypatch.setattr("harapp.core.store.base.IDS_PER_QUERY", 2)
    asked = [ids[5], ids[1], 9999, ids[3], ids[1], ids[6], ids[0]]
    assert project.image_items(asked) == [it for it in every if it.image_id in set(asked)]
    assert project.image_items([]) == []

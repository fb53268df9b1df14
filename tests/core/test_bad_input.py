"""Bad input ends in a DatasetError (or ProjectError) naming the file and the cause; the project is unchanged."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from harapp.core.errors import DatasetError, ProjectError
from harapp.core.importers.coco import import_coco
from harapp.core.store import Project
from tests.core.cocofiles import small_dataset, write_coco, write_json


@pytest.fixture
def project(tmp_path: Path) -> Project:
    with Project.create(tmp_path / "p.harapp") as p:
        yield p


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_coco(tmp_path / "coco", small_dataset())


def _state(project: Project) -> tuple:
    return (
        project.count_images(),
        project.sources(),
        project.label_revision(),
        project.stats(check_files=False).persons,
    )


def _captions(root: Path) -> Path:
    return root / "annotations" / "captions_val2017.json"


def _instances(root: Path) -> Path:
    return root / "annotations" / "instances_val2017.json"


def _edit(path: Path, change: Callable[[dict], None]) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    write_json(path, doc)


def _fails(project: Project, root: Path, bad_file: Path, *causes: str) -> str:
    before = _state(project)
    with pytest.raises(DatasetError) as info:
        import_coco(project, root)
    message = str(info.value)
    assert str(bad_file) in message
    for cause in causes:
        assert cause in message, message
    assert _state(project) == before
    return message


def test_malformed_json_names_line_and_column(project: Project, root: Path) -> None:
    _instances(root).write_text('{"images": [\n  {"id": 1,, "file_name": "a.jpg"}\n]}', encoding="utf-8")
    _fails(project, root, _instances(root), "malformed JSON", "line 2, column 12")


def test_truncated_json(project: Project, root: Path) -> None:
    text = _captions(root).read_text(encoding="utf-8")
    _captions(root).write_text(text[: len(text) // 2], encoding="utf-8")
    message = _fails(project, root, _captions(root), "malformed JSON", "line 1, column")
    assert "truncated" in message


@pytest.mark.parametrize("content", [b"", b"   \n\t"])
def test_empty_file(project: Project, root: Path, content: bytes) -> None:
    _captions(root).write_bytes(content)
    _fails(project, root, _captions(root), "empty")


@pytest.mark.parametrize(
    ("doc", "cause"),
    [
        ({"info": {}, "annotations": []}, "missing key 'images'"),
        ({"images": [], "licenses": []}, "missing key 'annotations'"),
        ([1, 2, 3], "found a JSON list"),
        ({"images": {}, "annotations": []}, "'images' must be a list"),
        ({"images": [{"file_name": "a.jpg"}], "annotations": []}, "no integer 'id'"),
        ({"images": [{"id": 3}], "annotations": []}, "has no 'file_name'"),
        (
            {"images": [{"id": 3, "file_name": "a.jpg"}], "annotations": [{"id": 1, "image_id": [9], "caption": "x"}]},
            "'image_id' must be an integer",
        ),
        (
            {"images": [{"id": 3, "file_name": "a.jpg"}], "annotations": [{"id": 1, "image_id": 3, "text": "x"}]},
            "neither captions",
        ),
    ],
)
def test_valid_json_that_is_not_coco(project: Project, root: Path, doc: object, cause: str) -> None:
    write_json(_captions(root), doc)
    _fails(project, root, _captions(root), cause)


NOT_NUMBERS = [math.nan, math.inf, -math.inf, "12", None, [1], {"a": 1}, True, 10**400]


def _set(path: Path, section: str, index: int, field: str, value: object) -> None:
    def change(doc: dict) -> None:
        target = doc[section][index]
        for part in field.split(".")[:-1]:
            target = target[part]
        target[field.split(".")[-1]] = value

    _edit(path, change)


@pytest.mark.parametrize(
    ("field", "bad_values"),
    [
        ("bbox", [[1, 2, 3, v] for v in NOT_NUMBERS] + [[1, 2, -3, 4], [1, 2, 3, 2e6], [1, 2, 3], "1,2,3,4", None]),
        ("keypoints", [[1, 2, v] for v in NOT_NUMBERS] + [[1, 2], "5,5,2", 7]),
        ("area", [math.nan, math.inf, -1, "big", [1]]),
        ("category_id", ["1", 1.5, None, [1], {"id": 1}]),
        ("id", ["1001", 1.5, None, [1], {"id": 1}, 2**64]),
        ("image_id", ["101", 101.0, None, [101], {"id": 101}]),
        ("activity", ["standing", 1, [1]]),
        ("activity.label", [1, "", "x" * 65, "\ud800", ["a"]]),
        ("activity.source", ["robot", 1]),
        ("activity.votes", [[1], {"standing": -1}, {"standing": "2"}, {"standing": math.nan}]),
        ("activity.confidence", [math.nan, 2, -0.5, "high"]),
    ],
)
def test_every_field_of_a_person_annotation_is_validated(
    project: Project, root: Path, field: str, bad_values: list[object]
) -> None:
    """Each bad value of each field the importer reads: a DatasetError naming the file, the entry and the field."""
    for value in bad_values:
        write_coco(root, small_dataset())
        if field.startswith("activity."):
            _set(_instances(root), "annotations", 1, "activity", {"label": "sitting", "source": "human"})
        _set(_instances(root), "annotations", 1, field, value)
        _fails(project, root, _instances(root), "annotations[1]", repr(field.split(".")[0])[:-1])


@pytest.mark.parametrize(
    ("field", "bad_values"),
    [
        ("id", ["101", 101.5, None, [101], 2**63]),
        ("file_name", [None, 5, ["a.jpg"], "a\x00b.jpg", "\udc80.jpg"]),
        ("width", [math.nan, math.inf, -1, "640", [640], None, 10**7]),
        ("height", [math.nan, -math.inf, "480", {"h": 1}]),
        ("captions", ["A man standing.", [1, 2], ["ok", None], ["\ud800"]]),
        ("activity", ["standing", 3]),
    ],
)
def test_every_field_of_an_image_entry_is_validated(
    project: Project, root: Path, field: str, bad_values: list[object]
) -> None:
    for value in bad_values:
        write_coco(root, small_dataset())
        _set(_captions(root), "images", 2, field, value)  # json.dumps writes NUL and surrogates as \\u escapes
        _fails(project, root, _captions(root), "images[2]", field)


@pytest.mark.parametrize("value", [None, 5, ["x"], "a\ud800b"])
def test_every_field_of_a_caption_annotation_is_validated(project: Project, root: Path, value: object) -> None:
    _set(_captions(root), "annotations", 3, "caption", value)
    _fails(project, root, _captions(root), "annotations[3]", "caption")


@pytest.mark.parametrize(
    ("key", "value", "cause"),
    [
        ("categories", {"id": 1}, "'categories' must be a list"),
        ("categories", [{"id": "1", "name": "person"}], "categories[0]"),
        ("categories", [7], "categories[0] is not an object"),
        ("harapp", [1], "'harapp' must be an object"),
        ("harapp", {"images_dir": 5}, "harapp.images_dir"),
        ("harapp", {"classes": "walking"}, "harapp.classes"),
        ("harapp", {"classes": [None]}, "harapp.classes"),
    ],
)
def test_top_level_fields_are_validated(project: Project, root: Path, key: str, value: object, cause: str) -> None:
    _edit(_instances(root), lambda d: d.update({key: value}))
    _fails(project, root, _instances(root), cause)


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, '{"images": [], "annotations": [], "x": ' + "1" * 5000 + "}"],
    ids=["nested-too-deep", "huge-integer"],
)
def test_json_that_python_cannot_hold(project: Project, root: Path, text: str) -> None:
    _captions(root).write_text(text, encoding="utf-8")
    _fails(project, root, _captions(root), "malformed JSON")


@pytest.mark.parametrize("file", ["captions", "instances"])
def test_annotations_of_images_not_in_images_are_skipped_and_counted(project: Project, root: Path, file: str) -> None:
    """A subset made by filtering 'images' leaves such annotations behind; the rest imports."""
    path = _captions(root) if file == "captions" else _instances(root)

    def orphan(doc: dict) -> None:
        doc["images"] = [im for im in doc["images"] if im["id"] != 103]
        doc["annotations"].append({**doc["annotations"][0], "id": 999_999, "image_id": 12345})

    _edit(path, orphan)
    report = import_coco(project, root)
    orphans = (2 if file == "captions" else 1) + 1  # 103's own annotations, and one naming no image at all
    assert report.orphan_annotations == orphans
    if file == "captions":
        # 103 is still named by the instances file, and imports without captions.
        assert report.images == 4 and project.image(project.find_image("103")).captions == ()
    else:
        # Without its person box 103 is out of scope (only images with a person are imported by default).
        assert report.images == 3 and report.skipped_no_person == 2
    assert report.labelled >= 2 and project.stats(check_files=False).persons == report.persons


def test_bad_caption_and_box_values(project: Project, root: Path) -> None:
    _edit(_captions(root), lambda d: d["annotations"][2].update(caption=None))
    _fails(project, root, _captions(root), "annotations[2]", "'caption'")
    write_coco(root, small_dataset())
    _edit(_instances(root), lambda d: d["annotations"][0].update(bbox=[1, 2, "wide"]))
    _fails(project, root, _instances(root), "annotations[0]", "'bbox'")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "sub/../../x.jpg", "C:\\photos\\x.jpg"])
def test_image_paths_that_escape_the_root(project: Project, root: Path, name: str) -> None:
    _edit(_captions(root), lambda d: d["images"][0].update(file_name=name))
    _fails(project, root, _captions(root), "escapes the images folder", repr(name))


def test_duplicate_image_ids(project: Project, root: Path) -> None:
    _edit(_captions(root), lambda d: d["images"].append({**d["images"][1], "file_name": "other.jpg"}))
    _fails(project, root, _captions(root), "duplicate image id 102", "images[1] and images[6]")


def test_duplicate_file_names(project: Project, root: Path) -> None:
    _edit(_captions(root), lambda d: d["images"][1].update(file_name=d["images"][0]["file_name"]))
    _fails(project, root, _captions(root), "images 101 and 102", "000000000101.jpg")


def test_files_that_disagree_about_an_image(project: Project, root: Path) -> None:
    _edit(_instances(root), lambda d: d["images"][0].update(file_name="elsewhere.jpg"))
    _fails(project, root, _instances(root), "image id 101", "elsewhere.jpg")
    write_coco(root, small_dataset())
    _edit(_instances(root), lambda d: d["images"][0].update(id=999))
    _edit(_instances(root), lambda d: [a.update(image_id=999) for a in d["annotations"] if a["image_id"] == 101])
    _fails(project, root, _instances(root), "image id 999", "gives image id 101")


def test_captions_that_are_not_utf8_name_the_byte_offset(project: Project, root: Path) -> None:
    raw = _captions(root).read_bytes()
    offset = raw.index(b"bench")
    _captions(root).write_bytes(raw[:offset] + b"\xff\xfe" + raw[offset:])
    _fails(project, root, _captions(root), "not valid UTF-8", f"byte offset {offset}")


def test_bad_file_among_good_ones_imports_nothing(project: Project, root: Path) -> None:
    import_coco(project, root)
    before = _state(project)
    _instances(root).write_text("{", encoding="utf-8")
    with pytest.raises(DatasetError):
        import_coco(project, root)
    assert _state(project) == before


def test_missing_images_folder(project: Project, tmp_path: Path, root: Path) -> None:
    (root / "val2017").rename(tmp_path / "moved")
    before = _state(project)
    with pytest.raises(DatasetError, match="no images folder found") as info:
        import_coco(project, root)
    assert str(root) in str(info.value)
    with pytest.raises(DatasetError, match="images folder not found") as info:
        import_coco(project, images_dir=root / "val2017", annotation_files=[_captions(root)])
    assert str(root / "val2017") in str(info.value)
    assert _state(project) == before


def test_missing_annotations(project: Project, tmp_path: Path) -> None:
    (tmp_path / "bare" / "val2017").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no 'annotations' folder"):
        import_coco(project, tmp_path / "bare")
    (tmp_path / "bare" / "annotations").mkdir()
    with pytest.raises(DatasetError, match="no captions_"):
        import_coco(project, tmp_path / "bare")
    with pytest.raises(DatasetError, match="annotation file not found"):
        import_coco(project, images_dir=tmp_path / "bare" / "val2017", annotation_files=[tmp_path / "none.json"])


def test_missing_images_on_disk_are_not_fatal(project: Project, root: Path) -> None:
    for jpg in (root / "val2017").glob("*.jpg"):
        jpg.unlink()
    report = import_coco(project, root)
    assert report.images == 0 and report.missing == 6 and len(report.missing_examples) == 5


@pytest.mark.parametrize(
    "kind",
    [
        "text",
        "empty",
        "other-sqlite",
        "garbage-header",
    ],
)
def test_project_file_that_is_not_a_harapp_project(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "thing.harapp"
    if kind == "text":
        path.write_text("hello, I am a text file\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "other-sqlite":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
        conn.close()
    else:
        path.write_bytes(b"SQLite format 3\x00" + b"\x07" * 200)
    before = path.read_bytes()
    with pytest.raises(ProjectError) as info:
        Project.open(path)
    assert str(path) in str(info.value) and "not a harapp project" in str(info.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("hint", ["x" * 5000, "/nonexistent/" + "y" * 300, "relative/nowhere"])
def test_export_images_dir_hint_that_names_no_folder(project: Project, root: Path, hint: str) -> None:
    """Found by the fuzz: a path too long for the file system raised OSError from Path.is_dir."""
    _edit(_captions(root), lambda d: d.update(harapp={"images_dir": hint}))
    with pytest.raises(DatasetError, match="images folder .* was not found") as info:
        import_coco(project, annotation_files=[_captions(root)])
    assert str(_captions(root)) in str(info.value)


def test_real_subset_made_by_filtering_images(project: Project, tmp_path: Path, coco_har: Path) -> None:
    """The real captions file trimmed to the 598 photos on disk by filtering 'images' only, as pycocotools
    users do: the other 4,402 images' captions stay behind, are skipped and counted, and the rest imports."""
    doc = json.loads((coco_har / "annotations" / "captions_val2017.json").read_text(encoding="utf-8"))
    on_disk = {p.name for p in (coco_har / "val2017").iterdir()}
    doc["images"] = [im for im in doc["images"] if im["file_name"] in on_disk]
    kept_ids = {im["id"] for im in doc["images"]}
    orphans = sum(1 for a in doc["annotations"] if a["image_id"] not in kept_ids)
    subset = write_json(tmp_path / "captions_subset.json", doc)
    persons = coco_har / "annotations" / "instances_val2017_persons.json"
    report = import_coco(project, images_dir=coco_har / "val2017", annotation_files=[subset, persons])
    assert orphans > 20_000 and report.orphan_annotations == orphans
    assert report.images == 598 and report.missing == 0 and report.labelled > 400

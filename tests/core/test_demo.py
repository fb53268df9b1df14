"""The procedural demo dataset: deterministic, valid COCO, legible poses, and captions worth correcting."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from PIL import Image
from pycocotools.coco import COCO

from harapp.core.demo.captions import NOISE_KINDS
from harapp.core.demo.dataset import make_demo
from harapp.core.demo.pose import ACTIVITIES, KEYPOINT_NAMES, pose_body, project
from harapp.core.importers.captions import caption_votes, decide, tally

N = 40


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("demo") / "out", n_images=N, seed=7)


@pytest.fixture(scope="module")
def keypoints_doc(demo: Path) -> dict:
    return json.loads((demo / "annotations" / "person_keypoints_demo.json").read_text())


@pytest.fixture(scope="module")
def captions_by_image(demo: Path) -> dict[int, list[str]]:
    doc = json.loads((demo / "annotations" / "captions_demo.json").read_text())
    out: dict[int, list[str]] = defaultdict(list)
    for ann in doc["annotations"]:
        out[ann["image_id"]].append(ann["caption"])
    return out


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    a = _files(make_demo(tmp_path / "a", n_images=12, seed=3))
    b = _files(make_demo(tmp_path / "b", n_images=12, seed=3))
    c = _files(make_demo(tmp_path / "c", n_images=12, seed=4))
    assert len(a) == 12 + 3  # images, two annotation files, README
    assert a == b
    assert a.keys() == c.keys()
    differing = [name for name in a if a[name] != c[name]]
    assert "annotations/captions_demo.json" in differing
    assert sum(name.startswith("images/") for name in differing) == 12


def test_layout_and_readme(demo: Path) -> None:
    names = sorted(p.name for p in (demo / "images").iterdir())
    assert names == [f"demo_{i:06d}.jpg" for i in range(1, N + 1)]
    assert "demo_truth" in (demo / "README.txt").read_text()


# pycocotools' mask code predates numpy 2's copy keyword; the warning is theirs, not ours.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_files_load_with_pycocotools_and_match_the_images(demo: Path) -> None:
    caps = COCO(str(demo / "annotations" / "captions_demo.json"))
    kps = COCO(str(demo / "annotations" / "person_keypoints_demo.json"))
    assert sorted(caps.getImgIds()) == sorted(kps.getImgIds()) == list(range(1, N + 1))
    (cat,) = kps.loadCats(kps.getCatIds(catNms=["person"]))
    assert cat["id"] == 1 and tuple(cat["keypoints"]) == KEYPOINT_NAMES
    assert all(1 <= i <= 17 and 1 <= j <= 17 for i, j in cat["skeleton"])
    for entry in kps.loadImgs(kps.getImgIds()):
        with Image.open(demo / "images" / entry["file_name"]) as img:
            assert img.format == "JPEG" and img.size == (entry["width"], entry["height"])
        ann_ids = kps.getAnnIds(imgIds=[entry["id"]], catIds=[1])
        assert ann_ids, "every image shows at least one person"
        # The coarse outline is a real polygon segmentation: pycocotools can rasterise it.
        mask = kps.annToMask(kps.loadAnns(ann_ids[:1])[0])
        assert mask.shape == (entry["height"], entry["width"]) and mask.sum() > 50


def test_keypoints_lie_in_their_boxes_and_boxes_in_the_image(keypoints_doc: dict) -> None:
    sizes = {im["id"]: (im["width"], im["height"]) for im in keypoints_doc["images"]}
    eps = 0.011
    ids = [a["id"] for a in keypoints_doc["annotations"]]
    assert len(set(ids)) == len(ids)
    for ann in keypoints_doc["annotations"]:
        w_img, h_img = sizes[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        assert ann["category_id"] == 1 and ann["iscrowd"] == 0
        assert x >= 0 and y >= 0 and w > 4 and h > 4, ann["bbox"]
        assert x + w <= w_img + eps and y + h <= h_img + eps, (ann["bbox"], w_img, h_img)
        assert 0 < ann["area"] <= w * h + eps
        kp = ann["keypoints"]
        assert len(kp) == 51
        triples = [kp[i : i + 3] for i in range(0, 51, 3)]
        assert ann["num_keypoints"] == sum(v > 0 for _, _, v in triples)
        for kx, ky, v in triples:
            assert v in (0, 1, 2)
            if v == 0:
                assert kx == ky == 0
            else:
                assert x - eps <= kx <= x + w + eps and y - eps <= ky <= y + h + eps
    # The main person (first annotation of each image) is whole and mostly visible.
    first = {}
    for ann in keypoints_doc["annotations"]:
        first.setdefault(ann["image_id"], ann)
    for ann in first.values():
        assert ann["num_keypoints"] == 17
        assert sum(v == 2 for v in ann["keypoints"][2::3]) >= 9


def test_every_class_is_present_and_balanced(keypoints_doc: dict) -> None:
    counts = Counter(im["demo_truth"] for im in keypoints_doc["images"])
    assert counts == {activity: N // 4 for activity in ACTIVITIES}


def test_each_image_has_three_to_five_varied_captions(captions_by_image: dict[int, list[str]]) -> None:
    assert sorted(captions_by_image) == list(range(1, N + 1))
    for caps in captions_by_image.values():
        assert 3 <= len(caps) <= 5
        assert len(set(caps)) >= 2
    all_caps = [c for caps in captions_by_image.values() for c in caps]
    # Varied wording, like several human annotators: many distinct first verbs and subjects.
    assert len(set(all_caps)) > 0.9 * len(all_caps)
    assert len({c.lower().split()[1] for c in all_caps}) >= 10


def test_a_share_of_captions_is_deliberately_unhelpful(
    keypoints_doc: dict, captions_by_image: dict[int, list[str]]
) -> None:
    noise = {im["id"]: im["demo_caption_noise"] for im in keypoints_doc["images"]}
    truth = {im["id"]: im["demo_truth"] for im in keypoints_doc["images"]}
    noisy = [i for i, kind in noise.items() if kind != "clean"]
    assert len(noisy) == round(0.15 * N)
    assert {noise[i] for i in noisy} == set(NOISE_KINDS)
    for image_id, caps in captions_by_image.items():
        # Read through the app's own caption rules: clean captions agree on the truth, the rest do not.
        decided = decide(tally(caps))
        if noise[image_id] == "clean":
            assert decided == truth[image_id], caps
            assert all(caption_votes(c) <= {truth[image_id]} for c in caps), caps
        elif noise[image_id] == "wrong":
            assert decided not in (None, truth[image_id]), caps
        else:
            assert decided is None, caps


def test_progress_reports_every_image_and_rerun_removes_stale_images(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    out = make_demo(tmp_path / "d", n_images=6, seed=1, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 6) for i in range(1, 7)]
    (out / "images" / "keep_me.jpg").write_bytes(b"not ours")
    make_demo(out, n_images=4, seed=1)
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names == ["demo_000001.jpg", "demo_000002.jpg", "demo_000003.jpg", "demo_000004.jpg", "keep_me.jpg"]
    assert len(json.loads((out / "annotations" / "captions_demo.json").read_text())["images"]) == 4


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_images"):
        make_demo(tmp_path, n_images=0)
    with pytest.raises(ValueError, match="flying"):
        pose_body("flying", random.Random(0))


def _leg_angles(joints: dict, side: str) -> tuple[float, float, float]:
    hip, knee, ankle = joints[f"{side}_hip"], joints[f"{side}_knee"], joints[f"{side}_ankle"]
    return hip[1] - knee[1], knee[0] - hip[0], ankle[0] - hip[0]


@pytest.mark.parametrize("activity", ACTIVITIES)
def test_poses_show_their_activity(activity: str) -> None:
    # The geometry a viewer (and a small CNN) uses to tell the activities apart holds for every sample.
    for seed in range(60):
        pose = pose_body(activity, random.Random(seed))
        j = pose.joints
        feet = [min(j[f"{s}_ankle"][1], j[f"{s}_toe"][1]) - pose.ground for s in ("left", "right")]
        stride = abs(j["left_ankle"][0] - j["right_ankle"][0])
        lean = j["neck"][0] - j["pelvis"][0]
        knee_lift = [j[f"{s}_hip"][1] - j[f"{s}_knee"][1] for s in ("left", "right")]
        if activity == "standing":
            assert stride < 0.07 and max(feet) < 0.05 and min(knee_lift) > 0.23
        elif activity == "walking":
            assert 0.12 < stride < 0.45 and abs(lean) < 0.04 and max(feet) < 0.15
        elif activity == "running":
            assert lean > 0.05
            assert min(knee_lift) < 0.2 or min(feet) > 0.01  # a knee driven up, or both feet off the ground
        else:
            assert max(abs(k) for k in knee_lift) < 0.13 or pose.seat == "ground"  # thighs level or knees up
            assert pose.seat in ("chair", "bench", "ground")


def test_projection_keeps_left_and_right_true() -> None:
    pose = pose_body("standing", random.Random(0))
    facing_camera = project(pose, 270.0)
    # Seen from the front, a person's left shoulder is on the viewer's right.
    assert facing_camera["left_shoulder"][0] > facing_camera["right_shoulder"][0]
    back_view = project(pose, 90.0)
    assert back_view["left_shoulder"][0] < back_view["right_shoulder"][0]
    facing_right = project(pose, 0.0)
    # Walking to the viewer's right, the right side faces the camera (smaller depth).
    assert facing_right["right_shoulder"][2] < facing_right["left_shoulder"][2]
    assert facing_right["nose"][0] > facing_right["left_ear"][0]

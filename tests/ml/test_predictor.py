"""Predictor on every odd input: files of many formats, in-memory images, batches, person crops, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harapp.core.errors import ImageFileError
from harapp.core.types import LabelSnapshot
from harapp.ml.config import TrainConfig
from harapp.ml.people import PersonInput
from harapp.ml.persons import crop_square, square_region
from harapp.ml.pose import pose_features
from harapp.ml.predictor import Prediction, Predictor
from harapp.ml.trainer import train

NOBODY_WITH_POSE = PersonInput(None, "none", pose_features(None))


@pytest.fixture
def predictor(shapes_snapshot: LabelSnapshot, tmp_path: Path) -> Predictor:
    config = TrainConfig(model_kind="cnn-scratch", mode="scratch", image_size=32, epochs=1, batch_size=8, device="cpu")
    result = train(config, shapes_snapshot, tmp_path / "m.pt")
    assert result.checkpoint_path is not None
    return Predictor.from_checkpoint(result.checkpoint_path, device="cpu")


def _odd_files(folder: Path) -> list[Path]:
    folder.mkdir()
    base = Image.effect_noise((60, 40), 60).convert("RGB")
    files = []
    exif = Image.Exif()
    exif[0x0112] = 8
    base.save(p := folder / "exif.jpg", exif=exif.tobytes())
    files.append(p)
    base.convert("CMYK").save(p := folder / "cmyk.jpg")
    files.append(p)
    base.convert("L").save(p := folder / "gray.png")
    files.append(p)
    Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257).save(p := folder / "deep.png")
    files.append(p)
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(p := folder / "alpha.png")
    files.append(p)
    base.save(p := folder / "anim.gif", save_all=True, append_images=[base.rotate(90)], duration=50)
    files.append(p)
    base.save(p := folder / "photo.webp")
    files.append(p)
    base.save(p := folder / "photo.bmp")
    files.append(p)
    base.save(p := folder / "photo.tiff")
    files.append(p)
    return files


def test_predicts_every_odd_format(predictor: Predictor, tmp_path: Path) -> None:
    files = _odd_files(tmp_path / "odd")
    preds = predictor.predict(files)
    assert isinstance(preds, list) and len(preds) == len(files)
    for f, p in zip(files, preds, strict=True):
        assert p.source == str(f)
        assert p.class_names == predictor.class_names
        assert abs(sum(p.probabilities) - 1) < 1e-4
        assert p.top_class == max(zip(p.class_names, p.probabilities, strict=True), key=lambda kv: kv[1])[0]


def test_single_inputs_give_single_predictions(predictor: Predictor, shapes_snapshot: LabelSnapshot) -> None:
    path = shapes_snapshot.items[0].path
    by_path = predictor.predict(path)
    by_str = predictor.predict(str(path))
    by_image = predictor.predict(Image.open(path))
    assert isinstance(by_path, Prediction) and isinstance(by_image, Prediction)
    assert by_image.source == "<image>"
    assert by_path.probabilities == pytest.approx(by_str.probabilities)  # type: ignore[union-attr]
    assert by_path.probabilities == pytest.approx(by_image.probabilities, abs=1e-5)
    assert by_path.to_dict()["top_class"] == by_path.top_class


def test_bad_file_raises_image_file_error(predictor: Predictor, tmp_path: Path) -> None:
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    with pytest.raises(ImageFileError, match="not_an_image.png"):
        predictor.predict(bad)


def test_person_view_sees_the_square_around_the_largest_box(shapes_snapshot: LabelSnapshot, tmp_path: Path) -> None:
    config = TrainConfig(
        model_kind="cnn-scratch", mode="scratch", image_size=32, epochs=1, batch_size=8, device="cpu", views=("person",)
    )
    result = train(config, shapes_snapshot, tmp_path / "crop.pt")
    assert result.checkpoint_path is not None
    predictor = Predictor.from_checkpoint(result.checkpoint_path, device="cpu", detect=False)
    assert predictor.views == ("person",)
    item = shapes_snapshot.items[1]
    img = Image.open(item.path).convert("RGB")
    small = (0.0, 0.0, 3.0, 3.0)
    with_box = predictor.predict(img, boxes=(small, *item.person_boxes))
    assert not isinstance(with_box, list) and with_box.person_box == item.person_boxes[0]
    by_hand = predictor.predict(crop_square(img, square_region(item.person_boxes[0])))
    assert with_box.probabilities == pytest.approx(by_hand.probabilities, abs=1e-5)  # type: ignore[union-attr]
    # A box the user draws wins over the annotations.
    chosen = predictor.predict(img, boxes=item.person_boxes, user_box=(1.0, 1.0, 30.0, 30.0))
    assert not isinstance(chosen, list) and chosen.person_source == "user" and chosen.person_box == (1, 1, 30, 30)


def test_without_a_person_the_model_sees_the_whole_photo(shapes_snapshot: LabelSnapshot, tmp_path: Path) -> None:
    config = TrainConfig(model_kind="cnn-scratch", mode="scratch", image_size=32, epochs=1, batch_size=8, device="cpu")
    result = train(config, shapes_snapshot, tmp_path / "m.pt")
    assert result.checkpoint_path is not None
    predictor = Predictor.from_checkpoint(result.checkpoint_path, device="cpu", detect=False)
    path = shapes_snapshot.items[0].path
    nobody = predictor.predict(path)
    assert not isinstance(nobody, list)
    assert nobody.person_box is None and nobody.person_source == "none" and not nobody.pose_found
    assert nobody.person_note() == "no person found: whole photo only"
    # Same as giving the whole photo as the person's box... minus the padding: the fallback is the photo itself.
    img = Image.open(path).convert("RGB")
    views = predictor.prepare_image(img, NOBODY_WITH_POSE)
    assert torch.equal(views["whole"], views["person"]) and not views["pose"].any()
    for odd in ((-50.0, -50.0, 10.0, 10.0), (0.0, 0.0, 0.0, 0.0), (float("nan"), 0.0, 5.0, 5.0)):
        pred = predictor.predict(path, boxes=(odd,))
        assert not isinstance(pred, list) and pred.person_box is None  # unusable boxes are ignored
        assert pred.probabilities == pytest.approx(nobody.probabilities, abs=1e-6)


def test_big_batches_are_chunked(predictor: Predictor, shapes_snapshot: LabelSnapshot) -> None:
    paths = [it.path for it in shapes_snapshot.items[:5]]
    one_by_one = [predictor.predict(p) for p in paths]
    predictor.max_batch = 2
    chunked = predictor.predict(paths)
    assert isinstance(chunked, list) and [p.source for p in chunked] == [str(p) for p in paths]
    for a, b in zip(one_by_one, chunked, strict=True):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)  # type: ignore[union-attr]


def test_odd_photos_and_boxes_give_a_prediction_or_a_clear_message(predictor: Predictor, tmp_path: Path) -> None:
    """A 1x1 image, a panorama, thirty people, boxes past the edge or of zero size: the documented fallback
    (the largest usable box, else the whole photo), never a traceback."""
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1), (200, 30, 30)).save(tiny)
    panorama = tmp_path / "panorama.jpg"
    Image.effect_noise((2400, 200), 40).convert("RGB").save(panorama)
    for path in (tiny, panorama):
        pred = predictor.predict(path)
        assert not isinstance(pred, list) and abs(sum(pred.probabilities) - 1) < 1e-4
    crowd = tuple((float(20 * i), 10.0, 18.0, 40.0 + i) for i in range(30))
    pred = predictor.predict(panorama, crowd)
    assert not isinstance(pred, list) and pred.person_box == crowd[-1] and pred.person_source == "annotation"
    outside = ((5000.0, 10.0, 50.0, 50.0), (10.0, 10.0, 0.0, 0.0), (-80.0, -80.0, 40.0, 40.0))
    pred = predictor.predict(panorama, outside)
    assert not isinstance(pred, list) and pred.person_box is None
    edge = predictor.predict(panorama, ((2380.0, 150.0, 60.0, 90.0),))  # reaches past the corner
    assert not isinstance(edge, list) and edge.person_box == (2380.0, 150.0, 60.0, 90.0)
    people = predictor.predict_people(panorama, [crowd[0], crowd[5]])
    assert [p.person_box for p in people] == [crowd[0], crowd[5]] and all(p.person_source == "user" for p in people)

"""The column-wise gallery (built for 100k images) shows, filters and sorts exactly as reading every row did."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from harapp.core.store import Project
from harapp.core.types import SOURCES, ImageRecord, LabelQuality, StoredPrediction
from harapp.gui.gallery_model import UNLABELLED, GalleryFilter, GalleryModel, GalleryRow, Role
from harapp.gui.gallery_proxy import GalleryProxy
from harapp.gui.workspace import Workspace
from tests.gui.curation_data import make_curation_project

CLASSES = ("walking", "running", "sitting", "standing")
WORDS = ("man", "woman", "café", "park", "Kelvin", "k", "img01", "x y", "dog")


@dataclass(frozen=True)
class Varied:
    path: Path
    model_id: int


def _varied_project(folder: Path, uniform_probabilities: bool, n: int = 80) -> Varied:
    """Two folders, every label source, votes or none, non-ASCII captions, predictions of every shape."""
    rng = random.Random(1)
    project = Project.create(folder / "varied.harapp", classes=CLASSES)
    try:
        sources = [project.add_source("coco", folder / "a"), project.add_source("folder", folder / "b")]
        ids = []
        for i in range(n):
            captions = [f"A {rng.choice(WORDS)} {CLASSES[i % 4]} in the park", f"café {rng.choice(WORDS)} \u212a"]
            votes = {} if i % 6 == 0 else {rng.choice(CLASSES): 1 + i % 2, rng.choice(CLASSES): 1}
            name = f"img{i:03d}.jpg" if i % 3 else f"sub/IMG{i:03d}.JPG"
            ids.append(project.upsert_image(sources[i % 2], name, 64, 48, i, captions[: 1 + i % 2], votes))
        for image_id in ids:
            if rng.random() < 0.75:
                project.set_label(image_id, rng.choice(CLASSES), rng.choice(SOURCES))
        model = project.register_model("m", "cnn-scratch", "scratch", folder / "m.pt", 1, {}, {})
        predictions = {}
        for image_id in ids:
            if rng.random() < 0.2:
                continue  # no prediction for this image
            values = [round(rng.random(), 2) for _ in CLASSES]
            if rng.random() < 0.1:
                values[1] = values[0]  # ties
            probabilities = dict(zip(CLASSES, values, strict=True))
            if not uniform_probabilities:
                probabilities = dict(list(probabilities.items())[: rng.randrange(4)])  # none, one, two, three
            name = rng.choice((*CLASSES, "jumping"))  # a class the project does not have
            predictions[image_id] = StoredPrediction(name, round(rng.random(), 3), probabilities)
        project.put_predictions(model, predictions)
        project.set_active_model(model)
        project.put_label_quality(_scores(project, rng))
    finally:
        project.close()
    return Varied(folder / "varied.harapp", model)


def _scores(project: Project, rng: random.Random) -> list[LabelQuality]:
    """Scores of every kind: about the label an image has, about a label it had (stale), of the label-next queue
    for unlabelled and since-labelled images, about a class the project lacks, ties, and none at all."""
    rows = []
    for record in project.images():
        if rng.random() < 0.25:
            continue
        label = record.label.class_name if record.label else None
        score = round(rng.random(), 1)
        if label is not None and rng.random() < 0.8:
            given = label if rng.random() < 0.75 else rng.choice((*CLASSES, "jumping"))
            queue, likely = "review", score < 0.5
        else:
            given, queue, likely = None, "next", False
        person = 7 if rng.random() < 0.05 else None  # person rows belong to the image view, not the gallery
        suggested = rng.choice(CLASSES)
        rows.append(LabelQuality(record.id, person, queue, given, suggested, score, {}, likely, "test", 1))
    return rows


# -- the reference: one object per row, as the gallery read them before ----------------------------------------


def _reference_rows(project: Project, model_id: int) -> list[GalleryRow]:
    predictions = project.predictions(model_id)
    quality = {q.image_id: q for q in project.label_quality() if q.person_id is None}
    return [
        replace(_with_prediction(_row(record), predictions.get(record.id)), quality=quality.get(record.id))
        for record in project.images()
    ]


def _row(record: ImageRecord) -> GalleryRow:
    label = record.label
    name = record.path.name
    return GalleryRow(
        record.id, record.path, name, label.class_name if label else None, label.source if label else None,
        record.uncertain, record.captions, "\n".join((name, *record.captions)).lower(),
    )  # fmt: skip


def _with_prediction(row: GalleryRow, prediction: StoredPrediction | None) -> GalleryRow:
    if prediction is None:
        return row
    confidence, probs = float(prediction.confidence), prediction.probabilities
    ranked = sorted((float(p) for p in probs.values()), reverse=True) if probs else [confidence]
    second = ranked[1] if len(ranked) > 1 else 0.0
    return replace(
        row, prediction=prediction.class_name, confidence=confidence, model_uncertainty=1.0 - (ranked[0] - second)
    )


def _accepts(f: GalleryFilter, row: GalleryRow) -> bool:
    if f.image_ids is not None and row.image_id not in f.image_ids:
        return False
    if f.class_name is not None and row.label != (None if f.class_name == UNLABELLED else f.class_name):
        return False
    if f.source is not None and row.source != f.source:
        return False
    if f.uncertain_only and not row.uncertain:
        return False
    if f.disagrees_only and not row.disagrees:
        return False
    if f.review == "likely-wrong" and not row.likely_wrong:
        return False
    if f.review == "label-next" and not row.in_queue:
        return False
    return not f.text or all(word in row.search_text for word in f.text.lower().split())


REFERENCE_SORTS: dict[str, Callable[[GalleryRow], tuple[object, ...]]] = {
    "id": lambda r: (r.image_id,),
    "confidence": lambda r: (r.confidence is None, r.confidence or 0.0, r.image_id),
    "uncertainty": lambda r: (r.model_uncertainty is None, -(r.model_uncertainty or 0.0), r.image_id),
    "likely-wrong": lambda r: (
        not r.likely_wrong,
        not (r.quality_fresh and r.quality is not None and r.quality.queue == "review"),
        r.quality.score if r.quality is not None else 1.0,
        r.image_id,
    ),
    "label-next": lambda r: (not r.in_queue, r.quality.score if r.quality is not None else 1.0, r.image_id),
}

FILTERS = [
    GalleryFilter(),
    GalleryFilter(class_name="sitting"),
    GalleryFilter(class_name=UNLABELLED),
    GalleryFilter(class_name="jumping"),
    GalleryFilter(source="human"),
    GalleryFilter(source="model", class_name="walking"),
    GalleryFilter(uncertain_only=True),
    GalleryFilter(disagrees_only=True),
    GalleryFilter(text="CAFÉ"),
    GalleryFilter(text="k"),  # also in captions through the Kelvin sign, which lower-cases to "k"
    GalleryFilter(text="  "),
    GalleryFilter(text="park man"),
    GalleryFilter(text="img01"),
    GalleryFilter(text="sub/img"),  # the file name alone is searched, not its folder
    GalleryFilter(text="x y", disagrees_only=True),
    GalleryFilter(image_ids=frozenset(range(1, 200, 3))),
    GalleryFilter(image_ids=frozenset()),
    GalleryFilter(review="likely-wrong"),
    GalleryFilter(review="label-next"),
    GalleryFilter(review="likely-wrong", class_name="sitting"),
]


@pytest.fixture(params=[True, False], ids=["same-classes", "odd-probabilities"])
def varied(request: pytest.FixtureRequest, tmp_path: Path) -> Varied:
    return _varied_project(tmp_path, uniform_probabilities=request.param)


@pytest.fixture
def opened(varied: Varied) -> Iterator[Project]:
    with Project.open(varied.path) as project:
        yield project


@pytest.fixture
def gallery(qapp, qtmodeltester, opened: Project) -> tuple[GalleryModel, GalleryProxy]:  # noqa: ANN001
    model = GalleryModel()
    model.set_project(opened)
    proxy = GalleryProxy()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy, force_py=True)
    return model, proxy


def test_every_row_is_what_reading_the_records_gives(
    gallery: tuple[GalleryModel, GalleryProxy], opened: Project, varied: Varied
) -> None:
    model, _ = gallery
    reference = _reference_rows(opened, varied.model_id)
    assert [model.row_at(row) for row in range(model.rowCount())] == reference
    for row, expected in enumerate(reference):
        index = model.index(row)
        assert index.data(Role.MODEL_UNCERTAINTY) == expected.model_uncertainty
        assert index.data(Qt.ItemDataRole.ToolTipRole) == expected.tooltip()
    assert model.label_counts() == {
        key: sum(1 for r in reference if r.label == key) for key in {r.label for r in reference}
    }


@pytest.mark.parametrize("sort_key", list(REFERENCE_SORTS))
def test_filters_and_sorts_show_the_rows_a_per_row_test_shows(
    qtmodeltester,  # noqa: ANN001
    gallery: tuple[GalleryModel, GalleryProxy],
    opened: Project,
    varied: Varied,
    sort_key: str,
) -> None:
    model, proxy = gallery
    reference = sorted(_reference_rows(opened, varied.model_id), key=REFERENCE_SORTS[sort_key])
    proxy.set_sort_key(sort_key)
    qtmodeltester.check(model, force_py=True)
    assert model.image_ids() == [r.image_id for r in reference]
    for chosen in FILTERS:
        proxy.set_filter(chosen)
        expected = [r.image_id for r in reference if _accepts(chosen, r)]
        assert proxy.visible_image_ids() == expected, chosen
        assert [proxy.image_id_at(row) for row in range(proxy.rowCount())] == expected
        assert all(proxy.proxy_row_of(image_id) == k for k, image_id in enumerate(expected))


def test_edits_under_a_sort_and_a_filter_update_the_right_rows(
    gallery: tuple[GalleryModel, GalleryProxy], opened: Project, varied: Varied
) -> None:
    model, proxy = gallery
    proxy.set_sort_key("confidence")
    proxy.update_filter(class_name="running", text="park")
    shown = proxy.visible_image_ids()
    assert len(shown) >= 2
    hidden = [i for i in model.image_ids() if i not in shown][:5]
    opened.set_labels([(shown[0], "sitting"), *((i, "running") for i in hidden)], source="human")
    model.refresh_images([shown[0], *hidden])
    reference = sorted(_reference_rows(opened, varied.model_id), key=REFERENCE_SORTS["confidence"])
    assert [model.row_at(row) for row in range(model.rowCount())] == reference
    shown_filter = GalleryFilter(class_name="running", text="park")
    assert proxy.visible_image_ids() == [r.image_id for r in reference if _accepts(shown_filter, r)]
    assert shown[0] not in proxy.visible_image_ids()


def test_a_correction_makes_its_score_stale_and_new_scores_swap_in(
    gallery: tuple[GalleryModel, GalleryProxy], opened: Project, varied: Varied
) -> None:
    model, proxy = gallery
    proxy.set_sort_key("likely-wrong")
    proxy.update_filter(review="likely-wrong")
    doubted = proxy.visible_image_ids()
    assert doubted and model.quality_counts()[0] == len(doubted)
    first = model.image_row(doubted[0])
    assert first is not None and first.suggestion is not None and first.quality is not None
    other = next(c for c in CLASSES if c != first.label)
    opened.set_label(doubted[0], other, "human")
    model.refresh_images([doubted[0]])
    assert doubted[0] not in proxy.visible_image_ids()  # its score was about the label it had
    fresh = [replace(first.quality, given_class=other, likely_wrong=True, score=0.0)]
    model.set_quality(fresh)  # the background refresh's answer: only this image is doubted now
    assert proxy.visible_image_ids() == [doubted[0]] and model.quality_counts() == (1, 0)
    assert model.quality_source() == ("test", 1)


def test_a_filter_that_hides_the_current_image_hands_over_to_its_neighbour(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    curation = make_curation_project(tmp_path)
    area = Workspace()
    qtbot.addWidget(area)
    with Project.open(curation.path) as project:
        area.set_project(project)
        area.select_image(curation.ids[2])
        area.filters.source_box.setCurrentIndex(area.filters.source_box.findData("caption"))  # images 0-3
        assert area.gallery.current_image_id() == curation.ids[2]  # still shown: stays current and selected
        assert area.gallery.selected_image_ids() == [curation.ids[2]]
        area.filters.reset()
        area.select_image(curation.ids[5])
        area.filters.source_box.setCurrentIndex(area.filters.source_box.findData("caption"))
        # As Qt does when rows are removed: the nearest image above that is still shown becomes current...
        assert area.gallery.current_image_id() == curation.ids[3]
        assert area.inspector.image_id() == curation.ids[3]
        assert area.gallery.selected_image_ids() == []
        area.filters.reset()
        area.select_image(curation.ids[0])
        area.filters.class_box.setCurrentIndex(area.filters.class_box.findData(UNLABELLED))
        # ...and the nearest below when none above is.
        assert area.gallery.current_image_id() == curation.ids[6]
        assert area.inspector.image_id() == curation.ids[6]
        area.proxy.update_filter(class_name="jumping")  # no such class: nothing left to be current
        assert area.proxy.rowCount() == 0 and area.gallery.current_image_id() is None
        area.shutdown()
        area.set_project(None)

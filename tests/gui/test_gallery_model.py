"""The gallery model over the store (checked by qtmodeltester) and its filter/sort proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from harapp.core.store import Project
from harapp.core.types import StoredPrediction
from harapp.gui.gallery_model import UNLABELLED, GalleryModel, Role
from harapp.gui.gallery_proxy import GalleryProxy
from tests.gui.curation_data import CurationProject


@pytest.fixture
def project(curation: CurationProject) -> Iterator[Project]:
    with Project.open(curation.path) as opened:
        yield opened


@pytest.fixture
def model(qapp, project: Project) -> GalleryModel:  # noqa: ANN001 - pytest-qt fixture
    gallery = GalleryModel()
    gallery.set_project(project)
    return gallery


def test_model_passes_qtmodeltester(qtmodeltester, model: GalleryModel) -> None:  # noqa: ANN001
    qtmodeltester.check(model, force_py=True)


def test_rows_carry_store_values(model: GalleryModel, curation: CurationProject) -> None:
    ids = curation.ids
    assert model.rowCount() == 12
    assert model.image_ids() == list(ids)
    first = model.index(model.row_of(ids[0]))
    assert first.data(Role.LABEL) == "walking"
    assert first.data(Role.SOURCE) == "caption"
    assert first.data(Role.PREDICTION) == "walking"
    assert first.data(Role.DISAGREES) is False
    assert first.data(Role.CONFIDENCE) == pytest.approx(0.9)
    second = model.index(model.row_of(ids[1]))
    assert second.data(Role.DISAGREES) is True
    assert model.index(model.row_of(ids[6])).data(Role.UNCERTAIN) is True
    assert model.index(model.row_of(ids[9])).data(Role.LABEL) is None
    assert "park number 1" in second.data(Role.CAPTIONS)
    assert second.data() == "img001.jpg"
    assert "disagrees with label" in second.data(Qt.ItemDataRole.ToolTipRole)


def test_refresh_images_updates_only_changed_rows(qtbot, model: GalleryModel, project: Project, curation) -> None:  # noqa: ANN001
    target = curation.ids[9]
    project.set_label(target, "sitting", "human")
    assert model.image_row(target).label is None  # the model is an in-memory copy until told
    with qtbot.waitSignal(model.dataChanged) as blocker:
        model.refresh_images([target])
    assert blocker.args[0].row() == model.row_of(target)
    assert model.image_row(target).label == "sitting"
    assert model.image_row(target).source == "human"


def test_data_makes_no_queries(model: GalleryModel, project: Project) -> None:
    statements: list[str] = []
    project._conn.set_trace_callback(statements.append)
    try:
        for row in range(model.rowCount()):
            for role in Role:
                model.index(row).data(role)
    finally:
        project._conn.set_trace_callback(None)
    assert statements == []


def test_reload_predictions_follows_active_model(model: GalleryModel, project: Project, curation) -> None:  # noqa: ANN001
    other = project.register_model("other", "cnn-scratch", "scratch", Path("other.pt"), 1, {}, {})
    project.set_active_model(other)  # a model with no predictions yet
    model.reload_predictions()
    assert model.image_row(curation.ids[1]).prediction is None
    assert model.image_row(curation.ids[1]).disagrees is False
    project.set_active_model(curation.model_id)
    model.reload_predictions()
    assert model.image_row(curation.ids[1]).prediction == "sitting"


def test_a_model_of_other_classes_marks_no_disagreements(model: GalleryModel, project: Project, curation) -> None:  # noqa: ANN001
    trained_on = {"class_names": ["walking", "running", "sitting", "standing"]}
    versioned = project.register_model("v2", "cnn-scratch", "scratch", Path("v2.pt"), 1, trained_on, {})
    prediction = StoredPrediction("sitting", 0.6, {"sitting": 0.6, "running": 0.4})
    project.put_predictions(versioned, {curation.ids[1]: prediction})
    project.set_active_model(versioned)
    model.reload_predictions()
    assert model.image_row(curation.ids[1]).disagrees is True  # running labelled, sitting predicted
    assert project.stale_model_reason(project.active_model()) is None
    project.merge_classes(["walking", "running"], "walking/running")
    model.reload()
    assert model.image_row(curation.ids[1]).prediction is None and model.image_row(curation.ids[1]).disagrees is False
    reason = project.stale_model_reason(project.active_model())
    assert reason is not None and "walking/running" in reason and "retrain" in reason


@pytest.fixture
def proxy(qtmodeltester, model: GalleryModel) -> GalleryProxy:  # noqa: ANN001
    gallery_proxy = GalleryProxy()
    gallery_proxy.setSourceModel(model)
    qtmodeltester.check(gallery_proxy, force_py=True)
    return gallery_proxy


def _shown(proxy: GalleryProxy, curation: CurationProject) -> list[int]:
    positions = {image_id: i for i, image_id in enumerate(curation.ids)}
    return [positions[i] for i in proxy.visible_image_ids()]


def test_proxy_filters(proxy: GalleryProxy, curation: CurationProject) -> None:
    assert _shown(proxy, curation) == list(range(12))
    proxy.update_filter(class_name="walking")
    assert _shown(proxy, curation) == [0, 4]
    proxy.update_filter(class_name=UNLABELLED)
    assert _shown(proxy, curation) == [6, 7, 8, 9, 10, 11]
    proxy.update_filter(class_name=None, source="human")
    assert _shown(proxy, curation) == [4, 5]
    proxy.update_filter(source=None, uncertain_only=True)
    assert _shown(proxy, curation) == [6, 7]
    proxy.update_filter(uncertain_only=False, disagrees_only=True)
    assert _shown(proxy, curation) == [1, 5]
    proxy.update_filter(disagrees_only=False, text="PARK number 3")
    assert _shown(proxy, curation) == [3]
    proxy.update_filter(text="img010")
    assert _shown(proxy, curation) == [10]
    proxy.update_filter(text="", image_ids=frozenset({curation.ids[2], curation.ids[7]}))
    assert _shown(proxy, curation) == [2, 7]


def test_proxy_combines_filters(proxy: GalleryProxy, curation: CurationProject) -> None:
    proxy.update_filter(source="caption", text="outside")
    assert _shown(proxy, curation) == [0, 1, 2, 3]
    proxy.update_filter(class_name="sitting")
    assert _shown(proxy, curation) == [2]


def test_proxy_follows_label_edits(proxy: GalleryProxy, model: GalleryModel, project: Project, curation) -> None:  # noqa: ANN001
    proxy.update_filter(class_name=UNLABELLED)
    before = proxy.rowCount()
    project.set_label(curation.ids[8], "standing", "human")
    model.refresh_images([curation.ids[8]])
    assert proxy.rowCount() == before - 1
    assert curation.ids[8] not in proxy.visible_image_ids()


def test_proxy_sorting(proxy: GalleryProxy, curation: CurationProject) -> None:
    proxy.set_sort_key("confidence")
    # Least confident first; images without a prediction follow in id order.
    assert _shown(proxy, curation) == [8, 1, 5, 4, 0, 2, 3, 6, 7, 9, 10, 11]
    proxy.set_sort_key("uncertainty")
    # Image 8: top two 0.40 / 0.35, the smallest margin, so the most uncertain; image 0 (0.90 / 0.05) the least.
    assert _shown(proxy, curation)[:5] == [8, 1, 5, 4, 0]
    proxy.set_sort_key("id")
    assert _shown(proxy, curation) == list(range(12))
    with pytest.raises(ValueError, match="unknown sort key"):
        proxy.set_sort_key("colour")


def test_sorting_keeps_selection_and_filters(qtbot, proxy: GalleryProxy, curation: CurationProject) -> None:  # noqa: ANN001
    from PySide6.QtCore import QItemSelectionModel

    selection = QItemSelectionModel(proxy)
    target = curation.ids[5]
    selection.setCurrentIndex(
        proxy.index(proxy.proxy_row_of(target), 0), QItemSelectionModel.SelectionFlag.ClearAndSelect
    )
    proxy.update_filter(source="human")
    proxy.set_sort_key("confidence")
    assert _shown(proxy, curation) == [5, 4]
    assert selection.currentIndex().data(Role.IMAGE_ID) == target
    assert [i.data(Role.IMAGE_ID) for i in selection.selectedIndexes()] == [target]
    # Re-reading the project keeps the chosen order.
    proxy.sourceModel().reload()
    assert _shown(proxy, curation) == [5, 4]


def test_empty_model_without_project(qtmodeltester) -> None:  # noqa: ANN001
    model = GalleryModel()
    model.set_project(None)
    qtmodeltester.check(model, force_py=True)
    assert model.rowCount() == 0

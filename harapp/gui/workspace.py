"""The curation area of the main window: filters | gallery | inspector, wired to keyboard labelling."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from harapp.core.store import Project
from harapp.gui.curation import CurationRefresher, RefreshOutcome
from harapp.gui.filters_panel import FiltersPanel
from harapp.gui.gallery_model import GalleryModel
from harapp.gui.gallery_proxy import GalleryProxy
from harapp.gui.gallery_view import GalleryView
from harapp.gui.image_view import Inspector
from harapp.gui.labeling import LabelingController
from harapp.gui.thumbnails import ThumbnailLoader


class Workspace(QWidget):
    status_message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._project: Project | None = None
        self._class_names: list[str] = []
        self.model = GalleryModel(self)
        self.proxy = GalleryProxy(self)
        self.proxy.setSourceModel(self.model)
        screen = QGuiApplication.primaryScreen()
        self.thumbnails = ThumbnailLoader(pixel_ratio=screen.devicePixelRatio() if screen else 1.0, parent=self)
        self.gallery = GalleryView(self.thumbnails, lambda: self._class_names)
        self.gallery.setModel(self.proxy)
        self.filters = FiltersPanel(self.proxy)
        self.inspector = Inspector()
        self.labeling = LabelingController(self.gallery, self)
        self.labeling.install_on(self.gallery)
        self.labeling.install_on(self.inspector)
        self.labeling.install_on(self.inspector.canvas)
        self.refresher = CurationRefresher(self)
        """Re-scores labels (and retrains a cheap active model) in the background after corrections."""
        self.refresher.has_scores = lambda: self.model.quality_source() is not None

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.filters)
        self.splitter.addWidget(self.gallery)
        self.splitter.addWidget(self.inspector)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setStretchFactor(2, 2)
        self.splitter.setSizes([220, 700, 460])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)

        self.gallery.current_image_changed.connect(self.inspector.show_image)
        self.gallery.current_image_changed.connect(self._show_model_opinion)
        self.gallery.relabel_requested.connect(lambda name: self.labeling.label_current(name or None, advance=False))
        self.inspector.label_clicked.connect(self._on_label_clicked)
        self.inspector.person_selected.connect(self._on_person_selected)
        self.labeling.labels_changed.connect(self._on_labels_changed)
        self.labeling.labels_changed.connect(self.refresher.labels_changed)
        self.refresher.refreshed.connect(self.apply_refresh)
        self.refresher.message.connect(self.status_message.emit)
        self.labeling.person_labelled.connect(lambda _img, pid: self.inspector.select_next_person(pid))
        self.labeling.keypoints_toggled.connect(self.inspector.toggle_keypoints)
        self.labeling.error.connect(self.status_message.emit)
        self.labeling.replayed.connect(self._on_replayed)
        self.model.modelReset.connect(self._select_first)
        self.model.modelReset.connect(self._show_counts)
        self.proxy.filter_changed.connect(self._keep_current_visible)

    # -- project -------------------------------------------------------------------------------------------

    @property
    def project(self) -> Project | None:
        return self._project

    def set_project(self, project: Project | None) -> None:
        self._project = project
        self.thumbnails.clear()
        self._class_names = project.class_names() if project is not None else []
        self.labeling.set_project(project)
        self.inspector.set_project(project)
        self.filters.set_classes(self._class_names)
        self.model.set_project(project)
        self.refresher.set_project(project)
        self._show_review_counts()
        if project is not None and self._scores_behind(project):
            self.refresher.refresh_now()  # stored scores show at once; fresh ones follow in the background

    def reload(self) -> None:
        """Everything may have changed (an import into the open project, a class merge)."""
        current = self.gallery.current_image_id()
        self._class_names = self._project.class_names() if self._project is not None else []
        self.filters.set_classes(self._class_names)
        self.inspector.set_project(self._project)
        self.model.reload()
        if current is not None:
            self.select_image(current)
        self._show_review_counts()
        if self._project is not None and self._scores_behind(self._project):
            self.refresher.refresh_now()  # a rename or merge changed the labels the scores are about

    def _scores_behind(self, project: Project) -> bool:
        """The stored scores are older than the labels (changed elsewhere, or after the last refresh)."""
        source = self.model.quality_source()
        return source is not None and source[1] != project.label_revision()

    def apply_refresh(self, outcome: RefreshOutcome) -> None:
        """Swap in what a background refresh read: new predictions (when the model was retrained) and scores."""
        if outcome.predictions is not None:
            if self._still_active(outcome.refresh.model_id):
                self.model.set_predictions(outcome.predictions)
            else:  # another model became active, or the classes changed, while the refresh ran
                self.model.reload_predictions()
        self.model.set_quality(outcome.quality)
        self._show_review_counts()
        self._show_model_opinion(self.gallery.current_image_id())

    def _still_active(self, model_id: int | None) -> bool:
        project = self._project
        active = project.active_model() if project is not None else None
        return (
            project is not None
            and active is not None
            and active.id == model_id
            and (project.stale_model_reason(active) is None)
        )

    def _show_review_counts(self) -> None:
        wrong, queue = self.model.quality_counts()
        source = self.model.quality_source()
        if self._project is None:
            note = ""
        elif source is None:
            note = "No scores yet: train a model (or Edit ▸ Score labels now)"
        elif source[1] != self._project.label_revision():
            note = f"Updating after your corrections… (scored by {source[0]})"
        else:
            note = f"Scored by {source[0]}"
        self.filters.show_review_counts(wrong, queue, note)

    def reload_predictions(self, *_args: object) -> None:
        self.model.reload_predictions()
        self._show_model_opinion(self.gallery.current_image_id())

    def _show_model_opinion(self, image_id: int | None) -> None:
        row = self.model.image_row(image_id) if image_id is not None else None
        if row is None or row.prediction is None:
            self.inspector.show_model_opinion(None, None, False)
        else:
            self.inspector.show_model_opinion(row.prediction, row.confidence, row.disagrees)
        if row is None:
            self.inspector.show_suggestion(None, False, False)
        else:
            self.inspector.show_suggestion(row.quality, row.likely_wrong, row.in_queue)

    def class_names(self) -> list[str]:
        return list(self._class_names)

    # -- selection -----------------------------------------------------------------------------------------

    def select_image(self, image_id: int) -> bool:
        row = self.proxy.proxy_row_of(image_id)
        if row < 0:
            return False
        self.gallery.select_row(row)
        return True

    def show_image_set(self, image_ids: Sequence[int], description: str, short: str | None = None) -> None:
        self.filters.show_image_set(image_ids, description, short)
        self._select_first()

    def _select_first(self) -> None:
        if self.proxy.rowCount() and not self.gallery.currentIndex().isValid():
            self.gallery.select_row(0)

    def _keep_current_visible(self) -> None:
        if self.gallery.currentIndex().isValid():
            self.gallery.scrollTo(self.gallery.currentIndex())
        else:
            self._select_first()

    # -- labelling -----------------------------------------------------------------------------------------

    def _on_label_clicked(self, class_name: str | None) -> None:
        self.labeling.label_current(class_name)
        self.gallery.setFocus()

    def _on_person_selected(self, person_id: int | None) -> None:
        self.labeling.target_person = person_id

    def _show_counts(self) -> None:
        self.filters.show_class_counts(self.model.label_counts())

    def _on_labels_changed(self, image_ids: list[int]) -> None:
        self.model.refresh_images(image_ids)
        self._show_counts()
        if self.inspector.image_id() in image_ids:
            self.inspector.refresh()
        self._show_model_opinion(self.gallery.current_image_id())
        self._show_review_counts()
        if self.labeling.last_edit:
            self.status_message.emit(f"Saved: {self.labeling.last_edit}")
            self.labeling.last_edit = ""

    def _on_replayed(self, text: str, image_id: int) -> None:
        """After Ctrl+Z or Ctrl+Shift+Z: say what changed and show that photo again."""
        if not self.select_image(image_id):
            text += " (the filters hide that photo: Reset filters shows it)"
        self.status_message.emit(text)

    def shutdown(self) -> None:
        self.refresher.stop()
        self.thumbnails.shutdown()
        self.inspector.shutdown()

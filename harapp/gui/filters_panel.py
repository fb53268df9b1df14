"""The filter column beside the gallery: class, source, uncertain, model disagrees, text search and sorting."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from harapp.core.types import SOURCES
from harapp.gui.elided_label import ElidedLabel
from harapp.gui.gallery_model import UNLABELLED
from harapp.gui.gallery_proxy import GalleryProxy
from harapp.gui.style import SOURCE_TEXT

SORT_CHOICES = (
    ("id", "Image id"),
    ("confidence", "Model confidence (lowest first)"),
    ("uncertainty", "Model uncertainty (highest first)"),
    ("likely-wrong", "Likely wrong label first"),
    ("label-next", "Most useful to label first"),
)
REVIEW_CHOICES = (
    (None, "All images"),
    ("likely-wrong", "Likely mislabelled"),
    ("label-next", "Label next"),
)
"""Guided curation's views of the gallery; each brings its own order (the likeliest wrong / most useful first)."""


class FiltersPanel(QWidget):
    """Edits the proxy's filter; shows how many images are visible."""

    def __init__(self, proxy: GalleryProxy, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.proxy = proxy
        self.class_box = QComboBox()
        self.class_box.setToolTip("Show only images with this label")
        self.source_box = QComboBox()
        self.source_box.addItem("Any source", None)
        for source in SOURCES:
            self.source_box.addItem(f"{source} ({SOURCE_TEXT[source]})", source)
        self.source_box.setToolTip("Show only labels from the captions, from a person, or from a model")
        self.uncertain = QCheckBox("Uncertain captions only")
        self.uncertain.setToolTip("Images whose captions disagree or are too few to agree on a label")
        self.disagrees = QCheckBox("Model disagrees only")
        self.disagrees.setToolTip("Images where the active model predicts another class than the label")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search captions or file names…")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip("Every word must appear in a caption or the file name (Ctrl+F)")
        self.search.setAcceptDrops(False)  # a photo dropped here goes to the window (to predict), not into the text
        self.review_box = QComboBox()
        for key, text in REVIEW_CHOICES:
            self.review_box.addItem(text, key)
        self.review_box.setToolTip(
            "Likely mislabelled: labels that a model which never saw them doubts, likeliest wrong first, with the "
            "suggested class (Enter accepts it, 1-4 give another).\nLabel next: unlabelled photos where a label "
            "helps most, with the label review's guess (Enter accepts it)."
        )
        self.review_note = ElidedLabel()
        # No tooltip of its own: the label's automatic one shows the whole note where it is cut short.
        self.sort_box = QComboBox()
        for key, text in SORT_CHOICES:
            self.sort_box.addItem(text, key)
        self.sort_box.setToolTip("Order of the gallery; sort by model confidence to review doubtful images first")
        for box in (self.class_box, self.source_box, self.sort_box, self.review_box):
            # Long choices must not make the filter column (and so the window's minimum width) wide.
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(10)
        # One line, elided (hover shows it all): wrapped, a cell's description grew to five lines here.
        self.cell_note = ElidedLabel()
        self.cell_clear = QToolButton()
        self.cell_clear.setText("✕")
        self.cell_clear.setAutoRaise(True)
        self.cell_clear.setToolTip("Show all images again (drop the confusion-matrix selection)")
        self.cell_clear.clicked.connect(self.clear_image_set)
        self.count = QLabel()
        self.count.setToolTip("Images shown / images in the project")
        reset = QPushButton("Reset filters")
        reset.setToolTip("Show every image again")
        reset.clicked.connect(self.reset)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Review", self.review_box)
        form.addRow("", self.review_note)
        form.addRow("Class", self.class_box)
        form.addRow("Source", self.source_box)
        form.addRow("Sort", self.sort_box)
        cell_row = QHBoxLayout()
        cell_row.setSpacing(2)
        cell_row.addWidget(self.cell_note, 1)
        cell_row.addWidget(self.cell_clear)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Filters</b>"))
        layout.addLayout(form)
        layout.addWidget(self.uncertain)
        layout.addWidget(self.disagrees)
        layout.addWidget(self.search)
        layout.addLayout(cell_row)
        layout.addWidget(reset)
        layout.addStretch(1)
        layout.addWidget(self.count)
        self._show_cell(None)

        # Typing filters after a short pause, not per keystroke: each pass visits every row.
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(150)
        self._search_timer.timeout.connect(lambda: self.proxy.update_filter(text=self.search.text().strip()))
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        self.class_box.currentIndexChanged.connect(
            lambda _i: self.proxy.update_filter(class_name=self.class_box.currentData())
        )
        self.source_box.currentIndexChanged.connect(
            lambda _i: self.proxy.update_filter(source=self.source_box.currentData())
        )
        self.uncertain.toggled.connect(lambda on: self.proxy.update_filter(uncertain_only=on))
        self.disagrees.toggled.connect(lambda on: self.proxy.update_filter(disagrees_only=on))
        self.sort_box.currentIndexChanged.connect(lambda _i: self.proxy.set_sort_key(self.sort_box.currentData()))
        self.review_box.currentIndexChanged.connect(lambda _i: self._review_changed())
        for signal in (
            proxy.filter_changed,
            proxy.rowsInserted,
            proxy.rowsRemoved,
            proxy.modelReset,
            proxy.layoutChanged,
        ):
            signal.connect(self.update_count)
        self.set_classes([])

    def show_review(self, review: str | None) -> None:
        """Switch to a guided-curation view (None: all images), with its order."""
        index = self.review_box.findData(review)
        if index >= 0:
            self.review_box.setCurrentIndex(index)

    def _review_changed(self) -> None:
        review = self.review_box.currentData()
        self.proxy.update_filter(review=review)
        order = review if review is not None else "id"
        if self.sort_box.currentData() != order and (
            review is not None or self.sort_box.currentData() in ("likely-wrong", "label-next")
        ):
            self.sort_box.setCurrentIndex(self.sort_box.findData(order))

    def show_review_counts(self, likely_wrong: int, queue: int, note: str) -> None:
        """The counts beside the review choices, and what scored them."""
        self.review_box.setItemText(1, f"Likely mislabelled ({likely_wrong})")
        self.review_box.setItemText(2, f"Label next ({queue})")
        self.review_note.setText(note)

    def set_classes(self, names: Sequence[str]) -> None:
        """Refill the class choices (project opened, class renamed or merged), keeping the choice if possible."""
        current = self.class_box.currentData()
        self.class_box.blockSignals(True)
        self.class_box.clear()
        self.class_box.addItem("All classes", None)
        self.class_box.addItem("Unlabelled", UNLABELLED)
        for name in names:
            self.class_box.addItem(name, name)
        index = self.class_box.findData(current)
        self.class_box.setCurrentIndex(max(0, index))
        self.class_box.blockSignals(False)
        self.proxy.update_filter(class_name=self.class_box.currentData())
        self.update_count()

    def show_class_counts(self, counts: dict[str | None, int]) -> None:
        """Show how many images each choice holds, e.g. 'walking (58)'; called after loads and edits."""
        for i in range(self.class_box.count()):
            value = self.class_box.itemData(i)
            if value is None:
                text = f"All classes ({sum(counts.values())})"
            elif value == UNLABELLED:
                text = f"Unlabelled ({counts.get(None, 0)})"
            else:
                text = f"{value} ({counts.get(value, 0)})"
            self.class_box.setItemText(i, text)

    def flush_search(self) -> None:
        """Apply a pending search at once (tests, and pressing Enter)."""
        if self._search_timer.isActive():
            self._search_timer.stop()
            self.proxy.update_filter(text=self.search.text().strip())

    def show_image_set(self, image_ids: Sequence[int], description: str, short: str | None = None) -> None:
        """Restrict the gallery to some images, e.g. a confusion-matrix cell; ``short`` is what fits the column
        ('running → sitting (3)'), the description its tooltip."""
        self.proxy.update_filter(image_ids=frozenset(int(i) for i in image_ids))
        self._show_cell(short or description, description)

    def clear_image_set(self) -> None:
        self.proxy.update_filter(image_ids=None)
        self._show_cell(None)

    def _show_cell(self, description: str | None, tooltip: str | None = None) -> None:
        self.cell_note.setText(f"Cell: {description}" if description else "")
        self.cell_note.setToolTip(f"Confusion-matrix cell: {tooltip or description}" if description else "")
        self.cell_note.setVisible(bool(description))
        self.cell_clear.setVisible(bool(description))

    def reset(self) -> None:
        for box in (self.class_box, self.source_box, self.sort_box, self.review_box):
            box.setCurrentIndex(0)
        self.uncertain.setChecked(False)
        self.disagrees.setChecked(False)
        self.search.clear()
        self.flush_search()
        self.clear_image_set()

    def update_count(self, *_args: object) -> None:
        source = self.proxy.sourceModel()
        total = source.rowCount() if source is not None else 0
        self.count.setText(f"{self.proxy.rowCount()} of {total} images shown")
        self.count.setAlignment(Qt.AlignmentFlag.AlignLeft)

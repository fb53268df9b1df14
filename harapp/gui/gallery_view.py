"""The thumbnail gallery: an icon-mode list view with uniform cells and a delegate that paints the marks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from harapp.gui.gallery_model import GalleryRow, Role
from harapp.gui.gallery_proxy import GalleryProxy
from harapp.gui.style import (
    DISAGREE_COLOUR,
    PREDICTION_COLOUR,
    SOURCE_MARKS,
    SUGGESTION_COLOUR,
    UNCERTAIN_COLOUR,
    class_colour,
    text_colour_on,
)
from harapp.gui.thumbnails import ThumbnailLoader

AnyIndex = QModelIndex | QPersistentModelIndex
PADDING = 6


class GalleryDelegate(QStyledItemDelegate):
    """Paints one cell: thumbnail, label badge, source mark, uncertain and model-disagrees marks."""

    def __init__(
        self, thumbnails: ThumbnailLoader, class_names: Callable[[], Sequence[str]], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.thumbnails = thumbnails
        self._class_names = class_names
        self.cell = thumbnails.size
        self.cell_width = 0
        """Set by the view so whole columns fill its width instead of leaving a gap at the right."""
        self.show_predictions = False
        """Paint every prediction of the active model, not only those that disagree with the label."""
        self._font_cache: tuple[QFont, QFont, QFontMetrics] | None = None

    def sizeHint(self, option: QStyleOptionViewItem, index: AnyIndex) -> QSize:
        side = self.cell + 2 * PADDING
        return QSize(self.cell_width or side, side)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        row: GalleryRow | None = index.data(Role.ROW)
        if row is None:
            return
        palette = option.palette
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        cell = QRect(option.rect).adjusted(2, 2, -2, -2)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(palette.color(QPalette.ColorRole.Highlight))
            painter.drawRoundedRect(cell, 6, 6)
        side = min(cell.width(), cell.height()) - 2 * (PADDING - 2)
        area = QRect(0, 0, side, side)
        area.moveCenter(cell.center())
        picture = self._paint_thumbnail(painter, area, row, palette)
        names = self._class_names()
        font, metrics = self._badge_font(option.font)
        painter.setFont(font)
        # Marks sit on the picture itself, so they stay next to it however wide the cell is.
        self._paint_label_badge(painter, picture, row, names, metrics)
        self._paint_marks(painter, picture, row, names, metrics)
        if option.state & QStyle.StateFlag.State_HasFocus:
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 2, Qt.PenStyle.DotLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(cell.adjusted(1, 1, -1, -1), 6, 6)
        painter.restore()

    def _badge_font(self, base: QFont) -> tuple[QFont, QFontMetrics]:
        # Made once per view font, not once per painted cell (a page paints 30-40 cells).
        if self._font_cache is None or self._font_cache[0] != base:
            font = QFont(base)
            font.setPointSizeF(max(7.5, font.pointSizeF() * 0.9))
            font.setBold(True)
            self._font_cache = (QFont(base), font, QFontMetrics(font))
        return self._font_cache[1], self._font_cache[2]

    def _paint_thumbnail(self, painter: QPainter, area: QRect, row: GalleryRow, palette: QPalette) -> QRect:
        """Paint the thumbnail (or a placeholder) inside area; returns the rectangle it covers."""
        pixmap = self.thumbnails.pixmap(row.image_id, row.path)
        if pixmap is None or pixmap.isNull():
            frame = area.adjusted(0, area.height() // 8, 0, -area.height() // 8)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(palette.color(QPalette.ColorRole.AlternateBase))
            painter.drawRoundedRect(frame, 4, 4)
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            missing = self.thumbnails.error(row.image_id)
            painter.drawText(frame, Qt.AlignmentFlag.AlignCenter, "missing file" if missing else "loading…")
            return frame
        size = pixmap.deviceIndependentSize().toSize()
        if size.width() > area.width() or size.height() > area.height() or self.cell > self.thumbnails.size:
            size = size.scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRect(0, 0, size.width(), size.height())
        target.moveCenter(area.center())
        painter.drawPixmap(target, pixmap)
        return target

    def _paint_label_badge(
        self, painter: QPainter, frame: QRect, row: GalleryRow, names: Sequence[str], metrics: QFontMetrics
    ) -> None:
        text = row.label or "unlabelled"
        colour = class_colour(row.label, names)
        mark = SOURCE_MARKS.get(row.source or "", "")
        height = metrics.height() + 4
        mark_width = height if mark else 0
        width = min(frame.width() - 4, metrics.horizontalAdvance(text) + 12 + mark_width)
        badge = QRect(frame.left() + 3, frame.bottom() - height - 2, width, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour if row.label else QColor(60, 60, 60, 200))
        painter.drawRoundedRect(badge, 4, 4)
        painter.setPen(text_colour_on(colour) if row.label else QColor("#FFFFFF"))
        text_rect = badge.adjusted(6 + mark_width, 0, -4, 0)
        painter.drawText(
            text_rect,
            Qt.AlignmentFlag.AlignVCenter,
            metrics.elidedText(text, Qt.TextElideMode.ElideRight, text_rect.width()),
        )
        if mark:
            # The source mark sits at the badge's start: caption (weak), human (checked) or model.
            circle = QRectF(badge.left() + 3, badge.top() + 2, height - 4, height - 4)
            painter.setBrush(QColor(255, 255, 255, 235))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.drawEllipse(circle)
            painter.setPen(QColor("#202020"))
            painter.drawText(circle, Qt.AlignmentFlag.AlignCenter, mark)

    def _paint_marks(
        self, painter: QPainter, frame: QRect, row: GalleryRow, names: Sequence[str], metrics: QFontMetrics
    ) -> None:
        side = metrics.height() + 4
        right = frame.right() - 3
        if row.uncertain:
            mark = QRectF(right - side, frame.top() + 3, side, side)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(UNCERTAIN_COLOUR)
            painter.drawEllipse(mark)
            painter.setPen(QColor("#000000"))
            painter.drawText(mark, Qt.AlignmentFlag.AlignCenter, "?")
            right -= side + 3
        if row.suggestion is not None:
            # Guided curation outranks the model's own opinion: it comes from a model that never saw the label.
            prefix = "→ " if row.likely_wrong else "guess "
            self._paint_top_badge(painter, frame, right, f"{prefix}{row.suggestion}", SUGGESTION_COLOUR, metrics, side)
            return
        if row.prediction and (row.disagrees or self.show_predictions):
            confidence = f" {100 * row.confidence:.0f}%" if row.confidence is not None else ""
            # Short enough for a thumbnail: the slate colour, not a word, says it is the model's.
            text = f"{'≠ ' if row.disagrees else ''}{row.prediction}{confidence}"
            colour = DISAGREE_COLOUR if row.disagrees else PREDICTION_COLOUR
            # Top left, and never over the "?" mark that may sit at the top right.
            self._paint_top_badge(painter, frame, right, text, colour, metrics, side)

    @staticmethod
    def _paint_top_badge(
        painter: QPainter, frame: QRect, right: int, text: str, colour: QColor, metrics: QFontMetrics, side: int
    ) -> None:
        width = min(right - frame.left() - 6, metrics.horizontalAdvance(text) + 10)
        badge = QRect(frame.left() + 3, frame.top() + 3, width, side)
        painter.setPen(QPen(colour.darker(130), 1))
        painter.setBrush(colour)
        painter.drawRoundedRect(badge, 4, 4)
        painter.setPen(QColor("#FFFFFF"))
        painter.drawText(
            badge,
            Qt.AlignmentFlag.AlignCenter,
            metrics.elidedText(text, Qt.TextElideMode.ElideRight, badge.width() - 6),
        )


class GalleryView(QListView):
    """Icon-mode list of thumbnails; uniform item sizes keep layout O(1) per row with 10k images."""

    current_image_changed = Signal(object)
    """The current image id (int) or None."""
    relabel_requested = Signal(str)
    """Context menu: label every selected image with this class ('' clears)."""

    def __init__(
        self, thumbnails: ThumbnailLoader, class_names: Callable[[], Sequence[str]], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.thumbnails = thumbnails
        self._class_names = class_names
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setUniformItemSizes(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setWrapping(True)
        self.setSpacing(2)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setMouseTracking(True)
        self.delegate = GalleryDelegate(thumbnails, class_names, self)
        self.setItemDelegate(self.delegate)
        self.setToolTip("")  # cells have their own tooltips
        self.setWhatsThis(
            "Thumbnails of the project's images. The badge shows the label and its source "
            "(C caption, H human, M model); ? marks uncertain captions; a red mark at the top shows where the model "
            "disagrees, and View > Show model predictions puts the model's class and confidence on every image."
        )
        # Repaint once per burst of finished thumbnails instead of once per image.
        self._repaint_timer = QTimer(self)
        self._repaint_timer.setSingleShot(True)
        self._repaint_timer.setInterval(30)
        self._repaint_timer.timeout.connect(self.viewport().update)
        thumbnails.thumbnail_ready.connect(self._on_thumbnail_ready)
        self._current_before_layout = -1

    def setModel(self, model) -> None:  # noqa: ANN001 - Qt signature
        old = self.model()
        if isinstance(old, GalleryProxy):
            old.layoutAboutToBeChanged.disconnect(self._remember_current)
            old.layoutChanged.disconnect(self._hand_over_current)
        super().setModel(model)
        if self.selectionModel() is not None:
            self.selectionModel().currentChanged.connect(self._on_current_changed)
        if isinstance(model, GalleryProxy):
            # Connected after the selection model's own handlers, so these run once it has updated its indexes.
            model.layoutAboutToBeChanged.connect(self._remember_current)
            model.layoutChanged.connect(self._hand_over_current)

    def _remember_current(self, *_args: object) -> None:
        index = self.currentIndex()
        self._current_before_layout = index.row() if index.isValid() else -1

    def _hand_over_current(self, *_args: object) -> None:
        """A filter or an edit hid the current image: its nearest neighbour still shown becomes current, as
        when rows are removed from a model (Qt's selection model does that for removals, not layout changes)."""
        before, self._current_before_layout = self._current_before_layout, -1
        model = self.model()
        if before < 0 or self.currentIndex().isValid() or not isinstance(model, GalleryProxy):
            return
        row = model.replacement_row(before)
        if row >= 0:
            self.selectionModel().setCurrentIndex(model.index(row, 0), QItemSelectionModel.SelectionFlag.NoUpdate)

    def _on_thumbnail_ready(self, _image_id: int) -> None:
        if not self._repaint_timer.isActive():
            self._repaint_timer.start()

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.current_image_changed.emit(current.data(Role.IMAGE_ID) if current.isValid() else None)

    def set_show_predictions(self, show: bool) -> None:
        self.delegate.show_predictions = show
        self.viewport().update()

    def set_cell_size(self, size: int) -> None:
        self.delegate.cell = size
        self._fit_columns()

    def _fit_columns(self) -> None:
        delegate = self.delegate
        base = delegate.cell + 2 * PADDING
        slot = base + 2 * self.spacing()
        # Measured as if the scroll bar were always there: a filter that hides it would otherwise widen the
        # viewport, and the gallery would jump between 4 and 5 columns as the person filters.
        bar = self.verticalScrollBar()
        extent = 0 if bar.isVisible() else self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, bar)
        available = self.viewport().width() - extent - 2 * self.spacing()
        # Whole columns fill the width: cells stretch, or shrink by up to 15% when that fits one more column.
        columns = max(1, round(available / slot))
        if columns > 1 and available / columns < 0.85 * slot:
            columns -= 1
        width = max(int(0.85 * base), available // columns - 2 * self.spacing())
        if width != delegate.cell_width:
            delegate.cell_width = width
            self.scheduleDelayedItemsLayout()

    def column_count(self) -> int:
        """Columns the view shows now (tests: the count must not change with the filter)."""
        model = self.model()
        if model is None or not model.rowCount():
            return 0
        top = self.visualRect(model.index(0, 0)).top()
        return sum(1 for row in range(model.rowCount()) if self.visualRect(model.index(row, 0)).top() == top)

    def resizeEvent(self, event) -> None:  # noqa: ANN001 - Qt signature
        super().resizeEvent(event)
        self._fit_columns()

    # -- selection helpers ---------------------------------------------------------------------------------

    def current_image_id(self) -> int | None:
        index = self.currentIndex()
        return int(index.data(Role.IMAGE_ID)) if index.isValid() else None

    def selected_image_ids(self) -> list[int]:
        rows = sorted(self.selectionModel().selectedIndexes(), key=lambda i: i.row()) if self.selectionModel() else []
        return [int(i.data(Role.IMAGE_ID)) for i in rows]

    def select_row(self, row: int) -> None:
        model = self.model()
        if model is None or not 0 <= row < model.rowCount():
            return
        index = model.index(row, 0)
        self.selectionModel().setCurrentIndex(index, self.selectionModel().SelectionFlag.ClearAndSelect)
        self.scrollTo(index)

    def move_current(self, step: int) -> None:
        row = self.currentIndex().row() if self.currentIndex().isValid() else -1
        target = max(0, min(self.model().rowCount() - 1, row + step)) if self.model() else -1
        if target != row:
            self.select_row(target)

    def contextMenuEvent(self, event) -> None:  # noqa: ANN001 - Qt signature
        ids = self.selected_image_ids()
        if not ids:
            return
        menu = QMenu(self)
        noun = "image" if len(ids) == 1 else f"{len(ids)} images"
        for number, name in enumerate(self._class_names(), start=1):
            action = menu.addAction(f"Label {noun} as {name}" + (f"\t{number}" if number <= 9 else ""))
            action.triggered.connect(lambda _=False, n=name: self.relabel_requested.emit(n))
        menu.addSeparator()
        clear = menu.addAction(f"Clear label of {noun}\tDel")
        clear.triggered.connect(lambda: self.relabel_requested.emit(""))
        menu.exec(event.globalPos())

"""Labelling keys for the whole window, wherever the focus is, unless a text field has it.

The gallery and the image view handle their own keys (LabelingController's event filter). Everything else in
the main window -- a filter check box, a combo box, the tab bar, a button clicked a moment ago -- would swallow
a 3 or let it fall through silently, and the person would think the image was labelled. This filter sees each
key press first, on the window's own widgets only, and:

- in the Label mode, sends label, move and keypoint keys to the labelling controller, and arrows to the gallery
  (unless the focused widget moves with arrows itself: a list, a combo box, a slider);
- elsewhere, or without a project, says in the status bar why a number key does nothing;
- never touches a key meant for a text field, or one with Ctrl/Alt/Meta (those are the menus' shortcuts).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTabBar,
    QTextEdit,
    QWidget,
)

from harapp.gui.labeling import LabelingController

ARROWS = frozenset({Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down})
_ARROW_WIDGETS = (QAbstractItemView, QComboBox, QAbstractSpinBox, QAbstractSlider, QTabBar, QLineEdit, QTextEdit)


def is_text_input(widget: QWidget | None) -> bool:
    """A widget where typed characters are text: keys belong to it, never to labelling."""
    if widget is None:
        return False
    if isinstance(widget, QLineEdit | QAbstractSpinBox | QTextEdit | QPlainTextEdit):
        return not (isinstance(widget, QLineEdit | QAbstractSpinBox) and widget.isReadOnly())
    return isinstance(widget, QComboBox) and widget.isEditable()


class KeyRouter(QObject):
    message = Signal(str)
    """Why a key could not act, for the status bar."""

    def __init__(
        self,
        window: QWidget,
        labeling: LabelingController,
        gallery: QWidget,
        own_keys: Callable[[QWidget], bool],
        label_mode_shown: Callable[[], bool],
        blocked: Callable[[], bool] = lambda: False,
    ) -> None:
        """``own_keys(widget)``: True for widgets whose own filter labels already (the gallery, the image view);
        ``label_mode_shown()``: the gallery and image view are on screen; ``blocked()``: an overlay has the keys."""
        super().__init__(window)
        self._window = window
        self._labeling = labeling
        self._gallery = gallery
        self._own_keys = own_keys
        self._label_mode_shown = label_mode_shown
        self._blocked = blocked
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    def detach(self) -> None:
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() != QEvent.Type.KeyPress or not isinstance(event, QKeyEvent):
            return False
        if not isinstance(watched, QWidget) or watched.window() is not self._window:
            return False  # another window, a dialog, a menu: not ours
        focus = QApplication.focusWidget()
        # Qt offers an unhandled key to the focus widget's parents too: act on the first offer only.
        if watched is not (focus if focus is not None else self._window):
            return False
        return self.route(event, focus)

    def route(self, event: QKeyEvent, focus: QWidget | None) -> bool:
        """True when the key was used (or explained) here and must go no further."""
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if mods & (
            Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.MetaModifier
        ):
            return False
        if self._blocked() or is_text_input(focus):
            return False
        is_digit = len(event.text()) == 1 and event.text().isdigit()
        if not self._label_mode_shown():
            if is_digit:
                self.message.emit(self._why_not_here())
            return False  # the key still goes to the focused widget (a combo box may use it)
        if focus is not None and self._own_keys(focus):
            return False  # the gallery or image view labels with it itself
        if event.key() in ARROWS:
            if isinstance(focus, _ARROW_WIDGETS):
                return False
            QApplication.sendEvent(self._gallery, QKeyEvent(event.type(), event.key(), event.modifiers(), event.text()))
            return True
        return self._labeling.handle_key(event)

    def _why_not_here(self) -> str:
        if not self._labeling.class_keys():
            return "Open or import a project first: number keys label its photos."
        return "Number keys label photos in the Label view: press Ctrl+1 to go there."

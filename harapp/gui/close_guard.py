"""Closing the window while a model trains: ask first, then stop the run without freezing the window.

A training step cannot be interrupted (the worker checks its cancel flag between steps, and a checkpoint is
written whole or not at all), and a CPU fine-tune step can take most of a minute. Waiting for the thread inside
closeEvent froze the window for that long with no word. Instead the close is refused once, the run is asked to
stop, the window says "Stopping…" and stays responsive, and it closes itself when the worker has finished.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QObject, Signal, SignalInstance
from PySide6.QtWidgets import QMessageBox, QWidget

QUESTION = "Training is running — stop it and quit?"
DETAIL = (
    "The run stops after its current step; the last good checkpoint stays on disk. "
    "The window closes by itself once the run has stopped."
)


class StoppablePanel(Protocol):
    @property
    def idle(self) -> SignalInstance: ...

    def is_busy(self) -> bool: ...
    def stop_for_quit(self) -> None: ...


def ask_to_stop(parent: QWidget) -> bool:
    box = QMessageBox(QMessageBox.Icon.Question, "Quit harapp", QUESTION, parent=parent)
    box.setInformativeText(DETAIL)
    stop = box.addButton("Stop and quit", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Keep training", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(stop)
    box.exec()
    return box.clickedButton() is stop


class CloseGuard(QObject):
    status = Signal(str)
    """What the window should show while it waits ('Stopping…')."""

    def __init__(self, window: QWidget, panel: StoppablePanel, ask: Callable[[QWidget], bool] | None = None) -> None:
        super().__init__(window)
        self._window = window
        self._panel = panel
        self.ask = ask
        """Asks the person (default: :func:`ask_to_stop`, looked up when asking so tests can answer for them)."""
        self.stopping = False
        self._ready = False
        panel.idle.connect(self._on_idle)

    def allow_close(self) -> bool:
        """Called by closeEvent: True closes now; False keeps the window open (asked to keep training, or
        stopping, after which the window closes itself)."""
        if self._ready or not self._panel.is_busy():
            return True
        if self.stopping:
            self.status.emit("Stopping… the current training step finishes first, then the window closes.")
            return False
        ask = self.ask or ask_to_stop
        if not ask(self._window):
            return False
        self.stopping = True
        self._panel.stop_for_quit()
        self.status.emit("Stopping… the current training step finishes first, then the window closes.")
        return False

    def _on_idle(self) -> None:
        if self.stopping and not self._ready:
            self._ready = True
            self._window.close()

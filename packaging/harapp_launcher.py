"""Entry point of the packaged app: the normal `harapp` command plus a headless `--smoke-test`.

`--smoke-test` proves a build is complete without a person at the screen: it imports the ML engine (torch,
timm, open_clip), finds the bundled icons and the EfficientNet-Lite0 weights, opens the real main window
with the training and prediction panels, closes it again and exits 0. Run it with QT_QPA_PLATFORM=offscreen
(build.sh does) or under xvfb-run.
"""

from __future__ import annotations

import os
import sys
import time


def smoke_test() -> int:
    started = time.monotonic()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from harapp import __version__
    from harapp.gui.icons import app_icon, resources_dir
    from harapp.ml.device import describe_device
    from harapp.ml.weights import efficientnet_lite0_file

    problems = []
    if not (resources_dir() / "harapp.svg").is_file():
        problems.append(f"resources missing at {resources_dir()}")
    if not efficientnet_lite0_file().is_file():
        problems.append("EfficientNet-Lite0 weights missing")
    import open_clip  # noqa: F401 - the CLIP path must import in a bundle too
    import torch
    import torchvision

    # torchvision's compiled operators are the piece a bundle most easily misses: run one.
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    kept = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist()
    if kept != [0, 2]:
        problems.append(f"torchvision.ops.nms gave {kept}")

    app = QApplication.instance() or QApplication([sys.argv[0]])
    if app_icon().isNull():
        problems.append("app icon does not load (Qt SVG plugins missing?)")
    from harapp.gui.main_window import MainWindow
    from harapp.gui.prediction_panel import PredictionPanel
    from harapp.gui.training_panel import TrainingPanel

    window = MainWindow()
    if not isinstance(window.training_panel, TrainingPanel):
        problems.append(f"training panel did not load: {window.training_panel}")
    if not isinstance(window.prediction_panel, PredictionPanel):
        problems.append(f"prediction panel did not load: {window.prediction_panel}")
    window.show()
    QTimer.singleShot(300, window.close)
    QTimer.singleShot(10_000, app.quit)  # a safety net: a window that never closes must not hang CI
    app.exec()
    if window.isVisible():
        problems.append("the main window did not close")
    device = describe_device("auto")
    if problems:
        print("harapp smoke test FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(
        f"harapp {__version__} smoke test ok: window opened and closed, device {device}, "
        f"{time.monotonic() - started:.1f} s"
    )
    return 0


def main() -> int:
    if "--smoke-test" in sys.argv[1:]:
        return smoke_test()
    from harapp.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())

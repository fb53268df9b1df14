"""`torchrun -m harapp train`: two ranks on the CPU (gloo) train one model, write one checkpoint and register one
model; they learn what one process with the same global batch learns; a failing rank or Ctrl+C ends every rank.

Each test starts torchrun (two processes that import torch): about 10-20 s each on two shared cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from harapp.core.store import Project
from harapp.core.types import DEFAULT_CLASSES
from harapp.ml.checkpoint import load_checkpoint
from harapp.ml.config import TrainConfig
from harapp.ml.trainer import train
from tests.ml.conftest import TINY_CLIP_CONFIG, demo_items
from tests.ml.ddp_rank_fails import MESSAGE

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _torchrun(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    # --standalone: a free port on localhost, so parallel test runs do not meet on torchrun's default port.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def demo_project(demo_root: Path, tmp_path: Path) -> Path:
    """96 demo photos with their true activities and person boxes, as a project."""
    path = tmp_path / "demo.harapp"
    with Project.create(path) as project:
        source = project.add_source("folder", demo_root, {})
        for item in demo_items(demo_root)[:96]:
            image_id = project.upsert_image(
                source, item.path.relative_to(demo_root).as_posix(), item.width, item.height
            )
            for box in item.person_boxes:
                project.add_person(image_id, box)
            project.set_label(image_id, DEFAULT_CLASSES[item.class_index], "human")
    return path


def test_two_ranks_write_one_checkpoint_register_one_model_and_match_one_process(demo_project: Path) -> None:
    # A linear probe on every view (whole photo, person, pose): rank 0 finds each photo's person and sends it to
    # rank 1; features of both image views are computed on both ranks (each its half) and gathered; the head is
    # fitted on all of them. One process computes the same features, so the test predictions must be the same.
    options = ["--model", "efficientnet-lite0", "--mode", "linear-probe", "--image-size", "64", "--device", "cpu"]
    run = _torchrun("-m", "harapp", "train", str(demo_project), *options, "--batch-size", "32")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "2 processes on cpu (batch 32: 16 per process)" in run.stderr and "accuracy" in run.stdout
    models_dir = demo_project.parent / "demo.models"
    (checkpoint,) = models_dir.iterdir()  # rank 0 alone wrote, once
    with Project.open(demo_project, readonly=True) as project:
        (record,) = project.models()
        snapshot = project.snapshot()
        active = project.active_model()
        stored = project.predictions(record.id)
        scored = project.label_quality()
    assert Path(record.path) == checkpoint and load_checkpoint(checkpoint).complete
    assert load_checkpoint(checkpoint).config.views == ("whole", "person", "pose")
    ddp = load_checkpoint(checkpoint).metrics
    assert ddp is not None and f"model id {record.id}, now the active model" in run.stdout
    # Rank 0 then did what `harapp train` does in one process: the model is active, every photo is predicted
    # (once: one line on stdout) and the labels are scored.
    assert active is not None and active.id == record.id and len(stored) == 96 and scored
    assert run.stdout.count("predictions stored for 96 images") == 1 and "label review" in run.stdout

    config = TrainConfig.for_kind("efficientnet-lite0", "linear-probe", image_size=64, batch_size=32, device="cpu")
    single = train(config, snapshot, demo_project.parent / "single.pt").metrics
    assert single is not None
    # Tolerance: none. The same people and the same features (computed in eval mode, so independent of how a batch
    # is split) give the same head and the same predictions.
    assert ddp.test_image_ids == single.test_image_ids
    assert ddp.test_predictions == single.test_predictions and ddp.accuracy == single.accuracy
    # The stored predictions are the held-out ones of the metrics: rank 0 predicted the project with the same head.
    names = snapshot.class_names
    for image_id, probs in zip(ddp.test_image_ids, ddp.test_probabilities, strict=True):
        assert [stored[image_id].probabilities[c] for c in names] == pytest.approx(probs, abs=1e-5)


def test_gradients_averaged_over_two_ranks_learn_as_one_process_with_the_same_global_batch(
    demo_project: Path, tmp_path: Path, tiny_clip: str
) -> None:
    # A ViT (layer norms, no dropout, no batch norm) with a plain mean loss: each training step then computes the
    # same thing on two ranks of 8 photos as on one process of 16, since the two ranks take interleaved halves
    # of the same shuffled global batches and DDP averages their mean gradients.
    config = TrainConfig(
        model_kind="clip", mode="fine-tune", clip_model=tiny_clip, pretrained=False, epochs=3, batch_size=16,
        lr=1e-3, augment=False, balanced_loss=False, early_stopping_patience=0, device="cpu", seed=0,
    )  # fmt: skip
    clip_config = tmp_path / f"{tiny_clip}.json"  # the ranks register the tiny CLIP as this process did
    clip_config.write_text(json.dumps(TINY_CLIP_CONFIG))
    args = [str(demo_project), str(tmp_path / "ddp.pt"), json.dumps(config.to_dict()), str(clip_config)]
    run = _torchrun(str(HERE / "ddp_fit.py"), *args)
    assert run.returncode == 0, run.stderr[-3000:]
    ddp = json.loads(run.stdout.strip().splitlines()[-1])
    with Project.open(demo_project, readonly=True) as project:
        single = train(config, project.snapshot(), tmp_path / "single.pt")
    assert single.metrics is not None

    def curve(history: list[dict]) -> tuple[list[float], list[float]]:
        epochs = [h for h in history if "epoch" in h]
        return [h["loss"] for h in epochs], [h["val_accuracy"] for h in epochs]

    ddp_loss, ddp_val = curve(ddp["history"])
    one_loss, one_val = curve(list(single.history))
    # Tolerance: epoch losses within 1e-5 relative (measured: 4e-8, from sums in another order and matrix products
    # over 8 rows instead of 16); the same validation accuracy in every epoch and the same test accuracy.
    assert ddp_loss == pytest.approx(one_loss, rel=1e-5)
    assert ddp_val == one_val and ddp["accuracy"] == single.metrics.accuracy


def test_a_failing_rank_ends_the_job_with_its_message_on_rank_0(demo_project: Path) -> None:
    with Project.open(demo_project, readonly=True) as project:
        before = project.snapshot()
    options = ["--model", "cnn-scratch", "--image-size", "32", "--batch-size", "8", "--device", "cpu", "--epochs", "3"]
    started = time.monotonic()
    run = _torchrun(str(HERE / "ddp_rank_fails.py"), "train", str(demo_project), *options, timeout=240)
    assert run.returncode != 0
    # Rank 0's watcher names the failed rank and its error, once.
    assert run.stderr.count(f"harapp: error: rank 1 of 2 failed: RuntimeError: {MESSAGE}") == 1, run.stderr[-3000:]
    assert time.monotonic() - started < 200  # ended by the failure, not by a collective's 60-minute timeout
    models_dir = demo_project.parent / "demo.models"
    assert not models_dir.exists() or not any(models_dir.iterdir())
    with Project.open(demo_project, readonly=True) as project:
        assert project.models() == [] and project.snapshot() == before


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process groups")
def test_ctrl_c_stops_every_rank_at_the_same_step(demo_project: Path, tmp_path: Path) -> None:
    checkpoint = tmp_path / "cancelled.pt"
    options = ["--model", "cnn-scratch", "--image-size", "32", "--batch-size", "8", "--device", "cpu"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "harapp"]
    command += ["train", str(demo_project), *options, "--epochs", "200", "--out", str(checkpoint)]
    log = tmp_path / "torchrun.log"
    with open(log, "w") as out:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        # Its own session: a signal to its group reaches torchrun alone, as Ctrl+C in a terminal does.
        proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 180
            while not checkpoint.exists():  # the end of epoch 1: both ranks are training
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl+C in the terminal sends
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = log.read_text()
    assert "harapp: training cancelled on every rank; the last good checkpoint is" in text, text[-3000:]
    assert text.count("cancelling after the current step") == 1  # rank 0 says it, once
    assert not load_checkpoint(checkpoint).complete  # the mid-run checkpoint stays
    with Project.open(demo_project, readonly=True) as project:
        assert project.models() == []


def test_one_process_runs_the_same_code_without_a_process_group() -> None:
    from harapp.ml import distributed

    assert distributed.ranks() == distributed.Ranks(0, 1, 0) and distributed.launched_world() == 1
    assert distributed.any_rank(True) and not distributed.any_rank(False)
    assert distributed.mean_over_ranks(3.0, 4) == 0.75 and distributed.from_leader({"a": 1}) == {"a": 1}
    rows = distributed.gather_rows(torch.tensor([2, 0, 1]), torch.tensor([[20], [0], [10]]), 3)
    assert rows.flatten().tolist() == [0, 10, 20]
    assert distributed.leader_only(lambda: 5) == 5 and distributed.agreed(lambda: 6) == 6


def test_work_of_rank_0_alone_and_its_cancel_or_failure_reach_every_rank(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    from tests.ml.ddp_agreements import agreements

    mp.start_processes(agreements, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, start_method="spawn")
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    # People found by rank 0 reach rank 1; rank 0's cancel cancels both; its failure is its own error on rank 0
    # and a peer's failure on rank 1; an unshared result stays on rank 0; agreed(): a cancel on rank 1 reaches 0.
    assert rank0 == ["value people", "cancelled", "failed: no photos", "value mine", "value 0", "cancelled"]
    assert rank1 == ["value people", "cancelled", "peer failed", "value None", "value 1", "cancelled"]


def test_across_ranks_a_cancel_request_waits_for_the_agreement() -> None:
    from harapp.ml.errors import TrainingCancelled
    from harapp.ml.progress import Reporter

    request = threading.Event()
    reporter = Reporter(None, request)
    together = [True]
    reporter.agree_on_cancel(lambda: together[0])
    request.set()  # Ctrl+C reached this rank between two batches
    assert reporter.cancel_requested
    reporter.check_cancel()  # no raise: the other ranks have not agreed yet, and would wait for this one
    together[0] = False  # work rank 0 does alone may stop on its own request
    with pytest.raises(TrainingCancelled):
        reporter.check_cancel()
    together[0] = True
    reporter.cancel_agreed()  # every rank voted at the same batch
    with pytest.raises(TrainingCancelled):
        reporter.check_cancel()
    alone = Reporter(None, request)  # one process: a request stops it at once
    with pytest.raises(TrainingCancelled):
        alone.check_cancel()


def test_across_ranks_out_of_memory_fails_the_job_instead_of_retrying_on_one_rank(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from harapp.ml import distributed, trainer
    from harapp.ml.config import TrainConfig

    calls: list[int] = []

    def run(config: TrainConfig) -> trainer._RunOutput:
        calls.append(config.batch_size)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(trainer, "ranks", lambda: distributed.Ranks(1, 2, 1))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        trainer._with_oom_retry(TrainConfig(batch_size=8, device="cpu"), run, torch.device("cpu"))
    assert calls == [8]  # no retry at 4 on this rank alone: the others would wait in a collective
    monkeypatch.setattr(trainer, "ranks", lambda: distributed.Ranks())
    calls.clear()
    with pytest.raises(trainer.OutOfMemoryError):
        trainer._with_oom_retry(TrainConfig(batch_size=8, device="cpu"), run, torch.device("cpu"))
    assert calls == [8, 4]  # one process retries once at half the batch

"""Time estimates before Start, and one progress scale across a run's phases."""

from __future__ import annotations

import pytest

from harapp.ml.estimate import (
    RunSize,
    Speed,
    estimate_run,
    format_duration,
    load_speed,
    measure_speed,
    run_phases,
)
from harapp.ml.mode_fields import fit_axis, unused_fields
from harapp.ml.progress import TrainProgress
from harapp.ml.run_progress import RunTracker, chart_x

# Roughly this machine's figures for ResNet-18 at 224 px (DESIGN.md): 30 img/s forward, 12 img/s training.
CPU = Speed(forward_ips=30.0, train_ips=12.0, decode_seconds=0.01, build_seconds=2.0, device="CPU")


def _p(phase: str, step: int, steps: int, epoch: int = 1, epochs: int = 1, loss: float | None = 0.5) -> TrainProgress:
    done = (epoch - 1) * steps + step
    return TrainProgress(epoch, epochs, step, steps, loss, None, 10.0, None, done / (epochs * steps), phase)


WHOLE = ("whole",)
"""The one-view model of harapp 0.1: the arithmetic tests below keep its simple figures."""


def test_phases_follow_the_trainer() -> None:
    assert run_phases("efficientnet-lite0", "linear-probe") == (
        "prepare", "people", "decoding", "features", "fit", "predictions",
    )  # fmt: skip
    assert run_phases("efficientnet-lite0", "linear-probe", views=WHOLE, decoded_cache=False) == (
        "prepare", "features", "fit", "predictions",
    )  # fmt: skip
    assert run_phases("resnet18", "fine-tune") == (
        "prepare", "people", "decoding", "features", "warm-up", "fit", "evaluation", "predictions",
    )  # fmt: skip
    assert run_phases("clip", "fine-tune") == ("prepare", "people", "decoding", "fit", "evaluation", "predictions")
    # Zero-shot fits its temperatures on the labelled photos' features: a short fit of its own.
    assert run_phases("clip", "zero-shot", views=WHOLE) == ("prepare", "decoding", "features", "fit", "predictions")


def test_the_decoded_cache_decodes_each_photo_once_with_every_core() -> None:
    size = RunSize(labelled=460, project_images=598, epochs=5)
    speed = Speed(forward_ips=30.0, train_ips=12.0, decode_seconds=0.04, build_seconds=2.0, device="CPU",
                  cache_processes=2)  # fmt: skip
    cached = estimate_run("resnet18", "fine-tune", size, speed, views=WHOLE)
    uncached = estimate_run("resnet18", "fine-tune", size, speed, views=WHOLE, decoded_cache=False)
    decoding = next(p for p in cached.phases if p.key == "decoding")
    assert decoding.seconds == pytest.approx(460 * 0.04 / 2) and decoding.detail == "460 photos"
    assert "decoding" not in uncached.phase_keys()
    fit, fit_uncached = (next(p for p in e.phases if p.key == "fit") for e in (cached, uncached))
    # Five epochs decode every photo five times without the cache; with it they read pixels.
    assert fit_uncached.seconds - fit.seconds == pytest.approx(5 * (322 + 69) * 0.04)
    # A probe decodes only the photos whose features are not cached yet.
    probe = estimate_run("efficientnet-lite0", "linear-probe", RunSize(460, 598, cached_features=400), speed)
    assert next(p for p in probe.phases if p.key == "decoding").detail == "60 photos"


def test_the_person_view_doubles_the_image_work() -> None:
    size = RunSize(labelled=460, project_images=598, epochs=5)
    one = estimate_run("resnet18", "fine-tune", size, CPU, views=WHOLE)
    two = estimate_run("resnet18", "fine-tune", size, CPU)
    fit_one, fit_two = (next(p for p in e.phases if p.key == "fit") for e in (one, two))
    assert fit_two.seconds == pytest.approx(2 * fit_one.seconds)
    people = next(p for p in two.phases if p.key == "people")
    assert people.seconds > 0 and people.detail == "460 photos"


def test_a_cpu_fine_tune_is_slow_and_says_so() -> None:
    size = RunSize(labelled=460, project_images=598, epochs=5)
    estimate = estimate_run("resnet18", "fine-tune", size, CPU, views=WHOLE)
    # 5 epochs of 322 photos at (0.01 + 1/12) s each, plus validation, features, evaluation and predictions.
    assert 3 * 60 < estimate.total_seconds < 5 * 60
    fit = next(p for p in estimate.phases if p.key == "fit")
    assert fit.seconds > 0.6 * estimate.total_seconds, "the epochs dominate a fine-tune"
    slow = estimate_run("resnet18", "fine-tune", RunSize(460, 598, epochs=30), CPU, views=WHOLE)
    assert slow.summary().startswith("Up to about") and "a GPU or the linear probe is faster" in slow.summary()
    assert "fit" in slow.breakdown() and "CPU" in slow.breakdown()


def test_a_linear_probe_with_cached_features_takes_seconds() -> None:
    fresh = estimate_run("efficientnet-lite0", "linear-probe", RunSize(460, 598), CPU)
    cached = estimate_run("efficientnet-lite0", "linear-probe", RunSize(460, 598, cached_features=460), CPU)
    assert fresh.total_seconds > cached.total_seconds + 10
    assert "460 cached" in next(p.detail for p in cached.phases if p.key == "features")
    assert cached.summary().startswith("About") and "faster" not in cached.summary()
    gpu = Speed(2000.0, 800.0, 0.01, 1.0, "CUDA: NVIDIA H200", decode_workers=8)
    assert "on this GPU" in estimate_run("resnet50", "fine-tune", RunSize(460, 598, epochs=5), gpu).summary()


def test_a_batchs_fixed_cost_is_shared_by_its_images() -> None:
    small_model = Speed(forward_ips=400.0, train_ips=200.0, decode_seconds=0.0, build_seconds=0, device="CPU",
                        forward_overhead=0.05, train_overhead=0.2)  # fmt: skip
    assert small_model.seconds_per_image(training=True, batch=2) == pytest.approx(0.005 + 0.1)
    assert small_model.seconds_per_image(training=True, batch=32) == pytest.approx(0.005 + 0.00625)
    at_32 = estimate_run("cnn-scratch", "scratch", RunSize(100, 100, epochs=10, batch_size=32), small_model)
    at_2 = estimate_run("cnn-scratch", "scratch", RunSize(100, 100, epochs=10, batch_size=2), small_model)
    assert at_2.total_seconds > 4 * at_32.total_seconds


def test_durations_read_like_an_estimate() -> None:
    assert [format_duration(s) for s in (0.2, 44.6, 150, 290, 3000, 4000)] == [
        "under 1 s", "45 s", "2 min 30 s", "5 min", "50 min", "1 h 07 min",
    ]  # fmt: skip


def test_fields_a_mode_ignores_say_why() -> None:
    probe = unused_fields("efficientnet-lite0", "linear-probe")
    assert set(probe) == {"epochs", "lr", "prompts"} and "L-BFGS" in probe["epochs"]
    assert set(unused_fields("clip", "zero-shot")) == {"epochs", "lr", "image_size"}
    assert set(unused_fields("resnet18", "scratch")) == {"weights_path", "prompts"}
    assert unused_fields("resnet18", "fine-tune") == {"prompts": "Only CLIP reads class prompts."}
    assert (fit_axis("scratch"), fit_axis("linear-probe"), fit_axis("zero-shot")) == ("epoch", "solver step", None)


def test_one_scale_across_a_fine_tune_never_goes_back() -> None:
    now = [0.0]
    estimate = estimate_run("resnet18", "fine-tune", RunSize(100, 120, epochs=3), CPU, views=WHOLE)
    tracker = RunTracker(estimate, clock=lambda: now[0])
    seen = []
    reports = [_p("embedding", s, 10) for s in range(1, 11)]
    reports += [_p("warm-up", s, 200) for s in (1, 50, 200)]  # the head warm-up ends at its own 100 %...
    reports += [_p("training", s, 9, e, 3) for e in (1, 2, 3) for s in range(1, 10)]  # ...then the epochs start
    reports += [_p("evaluating", s, 2) for s in (1, 2)]
    for report in reports:
        now[0] += 1.0
        seen.append(tracker.on_train(report))
    after_warm_up = seen[12]
    assert after_warm_up.phase == "warm-up" and after_warm_up.fraction < 0.3, "a finished warm-up is not the run"
    first_epoch_step = seen[13]
    assert first_epoch_step.phase == "fit" and first_epoch_step.headline() == "Step 5 of 7: fit"
    assert "epoch 1 of 3" in first_epoch_step.detail
    for done in range(1, 121, 30):
        seen.append(tracker.on_predictions(done, 120, 25.0))
    seen.append(tracker.finished())
    fractions = [s.fraction for s in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    took = tracker.actual_seconds()
    assert list(took) == ["prepare", "features", "warm-up", "fit", "evaluation", "predictions"]  # no decoding seen
    assert took["features"] == 10.0 and took["warm-up"] == 3.0 and took["fit"] == 27.0
    assert "fit: 27 s (estimated" in tracker.breakdown()
    assert seen[-1].eta_seconds == 0
    assert all(s.eta_seconds is not None and s.eta_seconds >= 0 for s in seen)


def test_time_left_starts_from_the_estimate_then_follows_the_real_speed() -> None:
    now = [0.0]
    estimate = estimate_run("cnn-scratch", "scratch", RunSize(100, 100, epochs=10), CPU, views=WHOLE)
    tracker = RunTracker(estimate, clock=lambda: now[0])
    first = tracker.on_train(_p("training", 1, 100, 1, 10))
    fit = next(p for p in estimate.phases if p.key == "fit")
    before = sum(p.seconds for p in estimate.phases[: estimate.phase_keys().index("fit")])  # prepare, decoding
    planned_left = estimate.total_seconds - before - fit.seconds / 1000
    assert first.eta_seconds == pytest.approx(planned_left)
    # The run turns out twice as slow as estimated: the time left doubles too.
    planned_done = before + fit.seconds / 2
    now[0] = 2 * planned_done
    half = tracker.on_train(_p("training", 100, 100, 5, 10))
    assert half.eta_seconds == pytest.approx(2 * (estimate.total_seconds - planned_done))


def test_chart_x_means_one_thing_per_mode() -> None:
    assert chart_x(_p("training", 3, 4, epoch=2, epochs=5), "scratch") == 1.75
    assert chart_x(_p("training", 120, 400), "linear-probe") == 120.0
    assert chart_x(_p("warm-up", 10, 200), "fine-tune") is None, "the warm-up is not an epoch"
    assert chart_x(_p("embedding", 1, 2), "linear-probe") is None


def test_measuring_this_machine_is_cached() -> None:
    assert load_speed("cnn-scratch", 32, "cpu") is None
    speed = measure_speed("cnn-scratch", 32, "cpu", batch=4)
    assert speed.forward_ips > 0 and speed.train_ips > 0 and speed.decode_seconds > 0 and speed.device == "CPU"
    assert speed.forward_overhead >= 0 and speed.train_overhead >= 0
    assert load_speed("cnn-scratch", 32, "cpu") == speed
    assert load_speed("cnn-scratch", 64, "cpu") is None, "another size is another measurement"

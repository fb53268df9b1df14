"""The decoded-image cache: same pixels as the PIL path, built once, invalidated by content, bounded, and safe
when photos are corrupt, the disk is full or a build is cancelled."""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harapp.core.errors import ImageFileError
from harapp.core.paths import Settings, save_settings
from harapp.core.types import LabelledItem, LabelSnapshot
from harapp.ml import decoded_cache as dc
from harapp.ml.augment import BatchAugment
from harapp.ml.batches import BatchPrep, ViewDataset, image_batches
from harapp.ml.data import decode_side, eval_transform, view_images
from harapp.ml.decode import WHOLE, Entry, Region, decode_entry
from harapp.ml.images import load_image
from harapp.ml.models import Preprocess
from harapp.ml.people import NOBODY, PersonInput
from harapp.ml.persons import crop_square, square_region
from harapp.ml.photo_views import PhotoViews
from harapp.ml.pose import POSE_DIM
from harapp.ml.progress import Reporter
from harapp.ml.run_images import run_images
from tests.ml.conftest import draw_shapes

PRE = Preprocess(32, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), "squash")
CENTER = Preprocess(24, (0.48, 0.45, 0.4), (0.27, 0.26, 0.28), "center-crop", 0.875, "bicubic")
WHOLE_ONLY = PhotoViews(("whole",), {})


def _photo(path: Path, size: tuple[int, int] = (97, 61), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=92)
    return path


def _entries(items: list[LabelledItem]) -> list[Entry]:
    return [Entry(str(it.path), WHOLE) for it in items]


@pytest.mark.parametrize("pre", [PRE, CENTER], ids=["squash-bilinear", "center-crop-bicubic"])
def test_cached_pixels_give_the_eval_transform_numbers_exactly(pre: Preprocess, tmp_path: Path) -> None:
    path = _photo(tmp_path / "p.jpg", (160, 100))
    item = LabelledItem(1, path, 0, (), 160, 100)
    (region,) = PhotoViews.of(pre, ("whole",)).regions(item)
    pixels = decode_entry(Entry(str(path), region), pre.image_size, pre.interpolation)
    expected = eval_transform(pre)(load_image(path, min_side=decode_side(pre, ("whole",))))
    got = BatchPrep(pre, torch.device("cpu"), None).image(torch.from_numpy(pixels)[None])[0]
    assert torch.equal(got, expected)


@pytest.mark.parametrize("pre", [PRE, CENTER], ids=["squash-bilinear", "center-crop-bicubic"])
def test_the_person_view_is_the_predictors_square_pixel_for_pixel(pre: Preprocess, tmp_path: Path) -> None:
    path = _photo(tmp_path / "p.jpg", (400, 300))
    item = LabelledItem(1, path, 0, (), 400, 300)
    # A person near the top-left corner: the square reaches past it and is padded with FILL.
    person = PersonInput((-5.0, 10.0, 30.0, 50.0), "annotation", None)
    _, square = PhotoViews.of(pre, ("whole", "person"), {item: person}).regions(item)
    pixels = decode_entry(Entry(str(path), square), pre.image_size, pre.interpolation)
    expected = eval_transform(pre)(view_images(load_image(path), ("person",), person)["person"])
    assert torch.equal(BatchPrep(pre, torch.device("cpu"), None).image(torch.from_numpy(pixels)[None])[0], expected)
    # Nobody found: the person view is the whole photo, one cache entry for both views.
    whole, nobody = PhotoViews.of(pre, ("whole", "person"), {item: NOBODY}).regions(item)
    assert nobody == whole and whole.box is None


@pytest.mark.parametrize("pre", [PRE, CENTER], ids=["squash-bilinear", "center-crop-bicubic"])
def test_a_model_that_looks_at_people_reads_the_whole_photo_at_full_resolution(pre: Preprocess, tmp_path: Path) -> None:
    # The predictor decodes every pixel of a photo it looks for people in, so the whole view must not come from
    # a JPEG draft there; a whole-photo model keeps the cheaper draft decode, and the two are separate entries.
    path = _photo(tmp_path / "p.jpg", (640, 480))
    item = LabelledItem(1, path, 0, (), 640, 480)
    person = PersonInput((100.0, 80.0, 120.0, 300.0), "annotation", None)
    whole, _ = PhotoViews.of(pre, ("whole", "person"), {item: person}).regions(item)
    (draft,) = PhotoViews.of(pre, ("whole",)).regions(item)
    assert whole.full and not draft.full and whole.key() != draft.key()
    assert PhotoViews.of(pre, ("whole", "pose"), {item: person}).only("whole").regions(item) == (whole,)
    prep = BatchPrep(pre, torch.device("cpu"), None)
    got = prep.image(torch.from_numpy(decode_entry(Entry(str(path), whole), pre.image_size, pre.interpolation))[None])
    assert decode_side(pre, ("whole", "person")) is None
    assert torch.equal(got[0], eval_transform(pre)(load_image(path)))
    drafted = prep.image(
        torch.from_numpy(decode_entry(Entry(str(path), draft), pre.image_size, pre.interpolation))[None]
    )
    assert not torch.equal(drafted[0], got[0])


def test_regions_cut_what_the_pil_helpers_cut(tmp_path: Path) -> None:
    path = _photo(tmp_path / "p.jpg", (400, 300))  # a JPEG that a draft decode would shrink: regions never are
    img = load_image(path)
    # The person view: a square that reaches past the top-left corner, padded with FILL.
    region = square_region((-5.0, 10.0, 30.0, 50.0))
    entry = Entry(str(path), Region(region.as_box()))
    # As the predictor's person view: the padded square at photo scale, then resized.
    expected = crop_square(img, region).resize((40, 40), Image.Resampling.BILINEAR)
    assert np.array_equal(decode_entry(entry, 40), np.asarray(expected))


def test_built_once_then_read_and_rebuilt_when_a_photo_changes(tmp_path: Path) -> None:
    items = draw_shapes(tmp_path / "imgs", 6)
    cache = dc.DecodedCache(tmp_path / "p.cache", 32)
    entries = _entries(items)
    first = cache.ensure(entries, limit_bytes=10**9)
    assert first.decoded == 6 and sorted(first.slots.tolist()) == list(range(6)) and first.note is None
    assert cache.data_path.name.startswith("decoded-32-") and cache.data_path.suffix == ".u8"
    out = np.empty((6, 32, 32, 3), np.uint8)
    cache.reader().read(first.slots, out)
    for i, entry in enumerate(entries):
        assert np.array_equal(out[i], decode_entry(entry, 32))

    again = dc.DecodedCache(tmp_path / "p.cache", 32).ensure(entries, limit_bytes=10**9)
    assert again.decoded == 0 and np.array_equal(again.slots, first.slots)

    # A photo rewritten in place (new size and time): only it is decoded again, into the slot it had.
    Image.new("RGB", (80, 64), (250, 10, 10)).save(items[2].path)
    os.utime(items[2].path, ns=(1, 1))
    changed = cache.ensure(entries, limit_bytes=10**9)
    assert changed.decoded == 1 and np.array_equal(changed.slots, first.slots)
    cache.reader().read(changed.slots[2:3], out[:1])
    assert (out[0] == (250, 10, 10)).all()
    assert cache.n_slots() == 6  # no slot was added for the rewrite


def test_the_cap_leaves_photos_to_decode_on_the_fly(tmp_path: Path) -> None:
    items = draw_shapes(tmp_path / "imgs", 8)
    cache = dc.DecodedCache(tmp_path / "p.cache", 32)
    ensured = cache.ensure(_entries(items), limit_bytes=3 * dc.slot_bytes(32))
    assert ensured.decoded == 3 and int((ensured.slots >= 0).sum()) == 3
    assert ensured.note is not None and "5 of 8" in ensured.note and "decoded_cache_gb" in ensured.note
    # The dataset reads the three cached views and decodes the other five: every sample comes out the same.
    data = ViewDataset(items, WHOLE_ONLY, 32, "bilinear", cache.reader(), ensured.slots[:, None])
    views, _, labels, positions = data[list(range(8))]
    assert positions.tolist() == list(range(8)) and labels.tolist() == [it.class_index for it in items]
    for i, entry in enumerate(_entries(items)):
        assert np.array_equal(views["whole"][i].numpy(), decode_entry(entry, 32))


def test_a_moved_folder_reuses_the_slots_of_the_photos_no_longer_there(tmp_path: Path) -> None:
    items = draw_shapes(tmp_path / "imgs", 6)
    cache = dc.DecodedCache(tmp_path / "p.cache", 32)
    cap = 6 * dc.slot_bytes(32)
    first = cache.ensure(_entries(items), limit_bytes=cap)
    assert first.decoded == 6
    kept = Entry(str(items[0].path), WHOLE)
    (tmp_path / "imgs").rename(tmp_path / "moved")
    moved = [dataclasses.replace(it, path=tmp_path / "moved" / it.path.name) for it in items]

    # Photo 0's old row is asked for too (a cache shipped without its photos serves it), and photo 1's old path
    # is one the caller's run may still read: neither row is reclaimed, so four stale slots go to four of the
    # moved photos and the other two are decoded on the fly, as the cap says.
    again = cache.ensure([*_entries(moved), kept], limit_bytes=cap, keep=[str(items[1].path)])
    assert again.decoded == 4 and cache.n_slots() == 6
    assert again.slots[-1] == first.slots[0]
    assert int((again.slots[:6] >= 0).sum()) == 4 and again.note is not None and "2 of 6" in again.note
    assert cache.lookup([Entry(str(items[1].path), WHOLE)])[0] == first.slots[1]
    out = np.empty((7, 32, 32, 3), np.uint8)
    cache.reader().read(np.where(again.slots >= 0, again.slots, 0), out)
    for i, entry in enumerate([*_entries(moved), kept]):
        if again.slots[i] >= 0:
            expected = decode_entry(entry if i < 6 else Entry(str(moved[0].path), WHOLE), 32)
            assert np.array_equal(out[i], expected)


def test_slots_and_files_another_run_reads_are_left_alone(tmp_path: Path) -> None:
    items = draw_shapes(tmp_path / "imgs", 4)
    folder = tmp_path / "p.cache"
    big, small = dc.DecodedCache(folder, 32), dc.DecodedCache(folder, 16)
    big.ensure(_entries(items), limit_bytes=10**9)
    other_run = big.mark_reading()  # a second file descriptor: flock treats it as another process would
    mine = big.mark_reading()
    assert not mine.alone()

    # Another size needs the room the big file takes: it is not deleted while a run reads it.
    cap = 4 * dc.slot_bytes(32) + 2 * dc.slot_bytes(16)
    squeezed = small.ensure(_entries(items), limit_bytes=cap)
    assert squeezed.decoded == 2 and big.data_path.exists() and squeezed.note is not None
    # Nor are the slots of its moved photos given to others.
    (tmp_path / "imgs").rename(tmp_path / "moved")
    moved = [Entry(str(tmp_path / "moved" / it.path.name), WHOLE) for it in items]
    blocked = big.ensure(moved, limit_bytes=4 * dc.slot_bytes(32) + 2 * dc.slot_bytes(16), reading=mine)
    assert blocked.decoded == 0 and (blocked.slots < 0).all()

    other_run.close()
    assert mine.alone()  # the caller's own mark does not count
    freed = big.ensure(moved, limit_bytes=4 * dc.slot_bytes(32) + 2 * dc.slot_bytes(16), reading=mine)
    assert freed.decoded == 4 and (freed.slots >= 0).all() and big.n_slots() == 4
    mine.close()
    assert small.ensure(moved, limit_bytes=4 * dc.slot_bytes(16)).decoded == 4
    assert not big.data_path.exists()  # read by no one now, so it made room for the small one


def test_a_training_run_marks_its_cache_file_until_it_ends(tmp_path: Path) -> None:
    items = draw_shapes(tmp_path / "imgs", 4)
    snapshot = LabelSnapshot(("a", "b", "c", "d"), tuple(items), 1, tmp_path / "p.harapp")
    readers = []
    with run_images(snapshot, Reporter(None, None)) as run:
        run.slots(items, WHOLE_ONLY, 32, "bilinear", all_items=True)
        readers = list((tmp_path / "p.cache").glob("decoded-*.readers"))
        assert len(readers) == 1 and not dc._nobody_reads(readers[0])
    assert dc._nobody_reads(readers[0])


def test_a_corrupt_photo_is_named_and_the_others_are_cached(tmp_path: Path) -> None:
    items = draw_shapes(tmp_path / "imgs", 5)
    items[3].path.write_bytes(b"not an image at all")
    cache = dc.DecodedCache(tmp_path / "p.cache", 32)
    with pytest.raises(ImageFileError, match="shape_0003.png"):
        cache.ensure(_entries(items), limit_bytes=10**9)
    slots = cache.lookup(_entries(items))
    assert (slots >= 0).tolist() == [True, True, True, False, True]


def test_a_full_disk_falls_back_to_decoding_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    items = draw_shapes(tmp_path / "imgs", 4)

    def no_space(*args: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(dc.os, "pwrite", no_space)
    cache = dc.DecodedCache(tmp_path / "p.cache", 32)
    ensured = cache.ensure(_entries(items), limit_bytes=10**9, processes=1)
    assert (ensured.slots < 0).all()
    assert ensured.note is not None and str(cache.data_path) in ensured.note and "No space left" in ensured.note
    monkeypatch.undo()
    # Nothing half-written is vouched for: the next build decodes all four.
    assert dc.DecodedCache(tmp_path / "p.cache", 32).ensure(_entries(items), limit_bytes=10**9).decoded == 4


def test_a_cache_folder_that_cannot_be_used_leaves_photos_to_decode(tmp_path: Path) -> None:
    items = draw_shapes(tmp_path / "imgs", 3)
    (tmp_path / "file.cache").write_text("a file where the folder would be")
    blocked = dc.DecodedCache(tmp_path / "file.cache", 32).ensure(_entries(items), limit_bytes=10**9)
    assert (blocked.slots < 0).all() and blocked.note is not None and "file.cache" in blocked.note
    cache = dc.DecodedCache(tmp_path / "p.cache", 32)
    cache.lock_path.mkdir(parents=True)  # its lock cannot be opened
    locked = cache.ensure(_entries(items), limit_bytes=10**9)
    assert (locked.slots < 0).all() and locked.note is not None and "decoded on the fly" in locked.note


def test_parallel_build_reports_progress_and_a_cancel_keeps_what_is_done(tmp_path: Path) -> None:
    items = draw_shapes(tmp_path / "imgs", 80)
    cache = dc.DecodedCache(tmp_path / "p.cache", 32)
    seen: list[tuple[int, int]] = []

    class Stop(Exception):
        pass

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done >= 32:
            raise Stop

    with pytest.raises(Stop):
        cache.ensure(_entries(items), limit_bytes=10**9, processes=2, progress=progress)
    kept = int((cache.lookup(_entries(items)) >= 0).sum())
    assert seen[-1][1] == 80 and 32 <= kept < 80
    rest = cache.ensure(_entries(items), limit_bytes=10**9, processes=2)
    assert rest.decoded == 80 - kept and (rest.slots >= 0).all()
    out = np.empty((80, 32, 32, 3), np.uint8)
    cache.reader().read(rest.slots, out)
    assert all(np.array_equal(out[i], decode_entry(e, 32)) for i, e in enumerate(_entries(items)))


def test_training_builds_the_cache_beside_the_project_and_gives_the_same_run(tmp_path: Path) -> None:
    from harapp.ml.config import TrainConfig
    from harapp.ml.trainer import train

    items = draw_shapes(tmp_path / "imgs", 32)
    snapshot = LabelSnapshot(("walking", "running", "sitting", "standing"), tuple(items), 1, tmp_path / "p.harapp")
    base = {"model_kind": "cnn-scratch", "mode": "scratch", "epochs": 2, "batch_size": 8, "image_size": 32}
    config = TrainConfig(**base, device="cpu", augment=False, views=("whole", "person"))
    phases: list[str] = []
    cached = train(config, snapshot, tmp_path / "a.pt", progress=lambda p: phases.append(p.phase))
    # One decoding phase, after the people are known and before the epochs: every view of every photo at once.
    steps = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    assert steps[:4] == ["people", "decoding", "training", "evaluating"], steps
    files = list((tmp_path / "p.cache").glob("decoded-32-*.u8"))
    assert len(files) == 1 and files[0].stat().st_size == 2 * 32 * dc.slot_bytes(32)  # whole + person
    # The same pixels either way: the run from the cache is the run that decodes every photo every epoch.
    plain = train(dataclasses.replace(config, decoded_cache=False), snapshot, tmp_path / "b.pt")
    assert cached.history == plain.history
    phases.clear()
    train(config, snapshot, tmp_path / "c.pt", progress=lambda p: phases.append(p.phase))
    assert "decoding" not in phases  # warm: nothing to decode


def test_the_settings_cap_of_zero_turns_the_cache_off(tmp_path: Path) -> None:
    save_settings(Settings(decoded_cache_gb=0))
    items = draw_shapes(tmp_path / "imgs", 8)
    snapshot = LabelSnapshot(("a", "b", "c", "d"), tuple(items), 1, tmp_path / "p.harapp")
    with run_images(snapshot, Reporter(None, None)):
        loader = image_batches(
            items, PRE, WHOLE_ONLY, batch_size=4, device=torch.device("cpu"), train=True, augment=False, seed=0
        )
        assert sum(len(y) for _, y, _ in loader) == 8
    assert not (tmp_path / "p.cache").exists()


def test_samples_carry_every_view_and_the_pose_from_the_people_step(tmp_path: Path) -> None:
    items = draw_shapes(tmp_path / "imgs", 10)
    snapshot = LabelSnapshot(("a", "b", "c", "d"), tuple(items), 1, tmp_path / "p.harapp")
    # Each photo's person is its shape, with a pose vector whose first value names the item; item 3 has nobody.
    people = {
        it: PersonInput(it.person_boxes[0], "annotation", np.full(POSE_DIM, float(it.image_id), np.float32))
        for it in items
    }
    people[items[3]] = PersonInput(None, "none", None)
    views = PhotoViews.of(PRE, ("whole", "person", "pose"), people)
    with run_images(snapshot, Reporter(None, None)):
        loader = image_batches(
            items, PRE, views, batch_size=4, device=torch.device("cpu"), train=True, augment=True, seed=0
        )
        batches = list(loader)
    assert len(batches) == 3 and sorted(torch.cat([p for _, _, p in batches]).tolist()) == list(range(10))
    x, y, positions = batches[0]
    assert set(x) == {"whole", "person", "pose"}
    assert x["whole"].shape == x["person"].shape == (4, 3, 32, 32) and x["pose"].shape == (4, POSE_DIM)
    expected = [0.0 if p == 3 else float(items[p].image_id) for p in positions.tolist()]
    assert x["pose"][:, 0].tolist() == expected  # carried from the people step, never decoded
    # Both views of every photo went into the cache, but the person view of item 3 is its whole photo: 19 entries.
    (data,) = (tmp_path / "p.cache").glob("decoded-32-*.u8")
    assert data.stat().st_size == 19 * dc.slot_bytes(32)


def test_batch_augmentation_differs_per_sample_and_repeats_per_seed() -> None:
    base = torch.rand(1, 3, 32, 32).expand(6, 3, 32, 32).contiguous()
    out = BatchAugment(seed=3)(base)
    assert out.shape == base.shape and out.min() >= 0 and out.max() <= 1
    assert all(not torch.equal(out[0], out[i]) for i in range(1, 6))  # one draw per sample, not per batch
    assert torch.equal(BatchAugment(seed=3)(base), out)
    assert not torch.equal(BatchAugment(seed=4)(base), out)


def test_a_gpu_reads_a_full_cache_with_a_prefetch_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harapp.ml import batches

    items = draw_shapes(tmp_path / "imgs", 20)
    snapshot = LabelSnapshot(("a", "b", "c", "d"), tuple(items), 1, tmp_path / "p.harapp")

    def read(workers: int) -> list:
        monkeypatch.setattr(batches, "loader_workers", lambda device, requested: workers)  # as on a GPU
        with run_images(snapshot, Reporter(None, None)):
            loader = image_batches(
                items, PRE, WHOLE_ONLY, batch_size=8, device=torch.device("cpu"), train=False, augment=False, seed=0
            )
            return [loader.loader, *list(loader)]

    in_process, *expected = read(0)
    threaded, *got = read(2)
    assert isinstance(threaded, batches.PrefetchThread) and not isinstance(in_process, batches.PrefetchThread)
    assert len(got) == len(expected) == 3
    assert all(
        torch.equal(a[0]["whole"], b[0]["whole"]) and torch.equal(a[2], b[2])
        for a, b in zip(got, expected, strict=True)
    )

    # A failure in the thread reaches the loop that reads the batches.
    def unreadable(*args: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(dc.SlotReader, "read", unreadable)
    with pytest.raises(OSError, match="Input/output error"):
        read(2)

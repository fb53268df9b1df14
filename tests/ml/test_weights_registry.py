"""`harapp weights add`: each hub format is checked, registered and then trains offline; bad input gets a message.

The files are generated: a tiny open_clip config (conftest's tiny_clip) saved as open_clip_pytorch_model.bin, as
open_clip_model.safetensors, and as an OpenAI-style TorchScript archive (a traced module in OpenAI's key layout,
half precision, with OpenAI's three configuration entries), so each goes through the path the real file takes.
"""

from __future__ import annotations

import errno
import json
import pickle
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from harapp.cli import main
from harapp.core.types import LabelSnapshot
from harapp.ml import clip_models
from harapp.ml import weights as W
from harapp.ml import weights_registry as R
from harapp.ml.config import TrainConfig
from harapp.ml.errors import ConfigError, WeightsCacheError, WeightsFileError, WeightsUnavailableError
from harapp.ml.models import build_model
from harapp.ml.predictor import Predictor
from harapp.ml.trainer import train
from tests.ml.conftest import TINY_CLIP, TINY_CLIP_CONFIG

TINY_P8 = "harapp-tiny-clip-p8"
"""The tiny CLIP with 8-pixel patches: to it, the tiny CLIP's files are what ViT-B-16's are to ViT-B-32."""


@pytest.fixture(autouse=True)
def tiny_tags(tiny_clip: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretrained tags for the tiny CLIP, as open_clip has them for ViT-B-32: OpenAI's (QuickGELU), a LAION one."""
    import open_clip.pretrained as pretrained

    monkeypatch.setitem(
        pretrained._PRETRAINED,
        tiny_clip,
        {
            "openai": pretrained._pcfg(url="https://example.invalid/clip/tiny-openai.pt", quick_gelu=True),
            "laion_tiny": pretrained._pcfg(hf_hub="example/tiny-laion/"),
        },
    )


def _never_online(host: str, port: int = 443, timeout: float = 0) -> bool:
    raise AssertionError("registered weights must not need the network")


@pytest.fixture(scope="module")
def reference(tiny_clip: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    import open_clip

    folder = tmp_path_factory.mktemp("p8cfg")  # a second tiny architecture, for the wrong-architecture cases
    cfg = json.loads(json.dumps(TINY_CLIP_CONFIG))
    cfg["vision_cfg"]["patch_size"] = 8
    (folder / f"{TINY_P8}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder / f"{TINY_P8}.json")
    torch.manual_seed(11)
    return open_clip.create_model(TINY_CLIP, pretrained=None, force_quick_gelu=True).eval()


class OpenAILayout(nn.Module):
    """A CLIP as OpenAI's jit archives hold it: the towers at the top level, plus three configuration entries."""

    def __init__(self, clip: Any) -> None:
        super().__init__()
        for name in ("positional_embedding", "text_projection", "logit_scale"):
            setattr(self, name, getattr(clip, name))
        image_size = TINY_CLIP_CONFIG["vision_cfg"]["image_size"]  # type: ignore[index]
        self.register_buffer("input_resolution", torch.tensor(image_size))
        self.register_buffer("context_length", torch.tensor(clip.context_length))
        self.register_buffer("vocab_size", torch.tensor(clip.vocab_size))
        for name in ("visual", "transformer", "token_embedding", "ln_final"):
            setattr(self, name, getattr(clip, name))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.visual(image)


@pytest.fixture(scope="module")
def files(reference: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny CLIP in each format a hub serves, plus a few that are not what they claim."""
    import copy
    import warnings

    import open_clip
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("weights_files")
    state = reference.state_dict()
    out = {"bin": folder / "open_clip_pytorch_model.bin", "safetensors": folder / "open_clip_model.safetensors"}
    torch.save(state, out["bin"])
    save_file({k: v.contiguous() for k, v in state.items()}, str(out["safetensors"]))

    openai = OpenAILayout(copy.deepcopy(reference)).eval()
    open_clip.model.convert_weights_to_fp16(openai)  # OpenAI ships most weights in half precision
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated; OpenAI's files are made with it
        traced = torch.jit.trace(openai, torch.zeros(1, 3, 64, 64, dtype=torch.half))
    out["openai"] = folder / "model.pt"
    traced.save(str(out["openai"]))

    torch.manual_seed(5)
    p8 = open_clip.create_model(TINY_P8, pretrained=None)
    out["p8"] = folder / "p8.bin"
    torch.save(p8.state_dict(), out["p8"])
    return out


def _config(mode: str, tag: str, **kw: Any) -> TrainConfig:
    return TrainConfig(
        model_kind="clip", mode=mode, clip_model=TINY_CLIP, clip_pretrained=tag, epochs=1, batch_size=16,
        device="cpu", augment=False, **kw,
    )  # fmt: skip


FORMATS = [
    # (file, tag given, tag expected, QuickGELU, format, training mode)
    ("bin", "laion_tiny", "laion_tiny", False, "torch state dict", "linear-probe"),
    ("safetensors", "openai", "openai", True, "safetensors file", "zero-shot"),
    ("openai", None, "openai", True, "OpenAI TorchScript archive", "linear-probe"),
]


@pytest.mark.parametrize(("key", "given", "tag", "quick", "fmt", "mode"), FORMATS, ids=[f[0] for f in FORMATS])
def test_each_format_is_registered_and_then_trains_offline(
    key: str, given: str | None, tag: str, quick: bool, fmt: str, mode: str,
    files: dict[str, Path], reference: Any, shapes_snapshot: LabelSnapshot, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import open_clip

    # No --model: the architecture is found from the tensors; OpenAI's format tells its tag.
    done = R.register_clip_file(files[key], pretrained=given)
    entry = done.entry
    assert (entry.model, entry.pretrained, entry.quick_gelu, entry.source_format) == (TINY_CLIP, tag, quick, fmt)
    assert not done.replaced and entry.path.parent == R.registry_dir() and entry.path.suffix == ".safetensors"
    assert [e.path for e in R.list_registered()] == [entry.path]

    # Offline, no weights file: the hub is never asked (the tags point to example.invalid anyway).
    monkeypatch.setattr(W, "host_reachable", _never_online)
    config = _config(mode, tag)
    assert config.weights_path is None
    built = build_model(config, ("a", "b"))
    assert built.weights_source == entry.source
    expected = reference.visual.conv1.weight
    if key == "openai":  # stored as OpenAI stored it: half precision
        expected = expected.half().float()
    assert torch.equal(built.model.backbone.conv1.weight, expected)
    activation = built.model.backbone.transformer.resblocks[0].mlp.gelu
    assert isinstance(activation, open_clip.transformer.QuickGELU) == quick

    result = train(config, shapes_snapshot, tmp_path / "m.pt")
    assert not result.cancelled and result.metrics is not None
    # The checkpoint leaves the frozen backbone out; restoring it finds the registered weights again.
    predictor = Predictor.from_checkpoint(tmp_path / "m.pt", device="cpu")
    assert predictor.checkpoint.backbone_state is None and predictor.checkpoint.weights_source == entry.source
    assert len(predictor.predict([shapes_snapshot.items[0].path])) == 1


def test_train_panel_weights_file_takes_every_format(files: dict[str, Path], reference: Any) -> None:
    for key in ("bin", "safetensors", "openai"):
        model, source = clip_models.create_clip(TINY_CLIP, "openai", str(files[key]))
        assert source == f"file:{files[key]}"
        expected = reference.visual.conv1.weight
        assert torch.equal(model.visual.conv1.weight, expected.half().float() if key == "openai" else expected)


def test_tag_comes_from_the_hugging_face_cache_folder(files: dict[str, Path], tmp_path: Path) -> None:
    # Where huggingface_hub keeps example/tiny-laion's files: the folder names the repo, and so the tag.
    snapshot = tmp_path / "hub" / "models--example--tiny-laion" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    shutil.copy(files["bin"], snapshot / "open_clip_pytorch_model.bin")
    entry = R.register_clip_file(snapshot / "open_clip_pytorch_model.bin").entry
    assert (entry.pretrained, entry.quick_gelu) == ("laion_tiny", False)


def test_tag_must_be_given_when_nothing_tells_it(files: dict[str, Path]) -> None:
    with pytest.raises(
        ConfigError, match=r"Which pretrained weights does .*open_clip_pytorch_model.bin hold\?"
    ) as info:
        R.register_clip_file(files["bin"])
    assert "--pretrained TAG" in str(info.value) and "openai, laion_tiny" in str(info.value)
    with pytest.raises(ConfigError, match="no pretrained tag 'laion9' for harapp-tiny-clip .known: openai"):
        R.register_clip_file(files["bin"], pretrained="laion9")
    assert R.list_registered() == []


def test_adding_again_replaces_and_remove_deletes(files: dict[str, Path]) -> None:
    first = R.register_clip_file(files["bin"], model=TINY_CLIP, pretrained="openai")
    again = R.register_clip_file(files["safetensors"], model=TINY_CLIP, pretrained="OpenAI")  # tags match loosely
    assert again.replaced and again.entry.path == first.entry.path
    assert again.entry.source_format == "safetensors file" and len(R.list_registered()) == 1
    removed = R.remove_registered(TINY_CLIP, "openai")
    assert removed.path == first.entry.path and not removed.path.exists()
    with pytest.raises(ConfigError, match="No CLIP weights are registered for harapp-tiny-clip .openai."):
        R.remove_registered(TINY_CLIP, "openai")


def test_cli_add_list_remove(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "list"]) == 0
    assert "No CLIP weights registered" in capsys.readouterr().out

    assert main(["weights", "add", str(files["openai"]), "--model", TINY_CLIP]) == 0
    out = capsys.readouterr().out
    assert "registered harapp-tiny-clip (pretrained 'openai', QuickGELU)" in out
    assert "TorchScript archive" in out and "--clip-pretrained openai" in out

    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "harapp-tiny-clip" in out and "openai" in out and "QuickGELU" in out and "model.pt" in out
    assert main(["weights", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["model"], r["pretrained"], r["quick_gelu"]) for r in rows] == [(TINY_CLIP, "openai", True)]

    assert main(["weights", "remove", TINY_CLIP, "openai"]) == 0
    assert "removed harapp-tiny-clip" in capsys.readouterr().out
    assert main(["weights", "remove", TINY_CLIP, "openai"]) == 1
    assert "harapp: error: No CLIP weights are registered" in capsys.readouterr().err


# -- bad input ------------------------------------------------------------------------------------------------


def _truncated(source: Path, folder: Path) -> Path:
    path = folder / f"cut-{source.name}"
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


NOT_WEIGHTS = {
    "text": (b"just some notes\nabout CLIP\n", r"is not a weights file: it is a text file"),
    "jpeg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200), r"is not a weights file: it is a JPEG image"),
    "html": (b"<!DOCTYPE html><html><body>Sign in</body></html>", r"is not a weights file: it is an HTML page"),
    "empty": (b"", r"is empty \(0 bytes\)"),
}


@pytest.mark.parametrize("case", sorted(NOT_WEIGHTS))
def test_files_that_are_not_weights(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content, message = NOT_WEIGHTS[case]
    path = tmp_path / "open_clip_pytorch_model.bin"
    path.write_bytes(content)
    with pytest.raises(WeightsFileError, match=message) as info:
        R.register_clip_file(path, model=TINY_CLIP, pretrained="openai")
    assert str(path) in str(info.value)
    # The command line says the same in one line, with no traceback.
    assert main(["weights", "add", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("harapp: error: ") and str(path) in err[-1] and "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("key", ["bin", "safetensors", "openai"])
def test_truncated_files(key: str, files: dict[str, Path], tmp_path: Path) -> None:
    path = _truncated(files[key], tmp_path)
    with pytest.raises(WeightsFileError, match=r"(damaged|truncated)") as info:
        R.register_clip_file(path, model=TINY_CLIP, pretrained="openai")
    assert str(path) in str(info.value)
    with pytest.raises(WeightsFileError, match=r"(damaged|truncated)"):  # the Train panel's path says the same
        clip_models.create_clip(TINY_CLIP, "openai", str(path))
    assert R.list_registered() == []


def test_a_resnet_file_is_not_clip(tmp_path: Path) -> None:
    import torchvision.models as tvm

    path = tmp_path / "resnet18.pth"
    torch.save(tvm.resnet18(weights=None).state_dict(), path)
    with pytest.raises(
        WeightsFileError, match="does not fit open_clip model harapp-tiny-clip: none of its 122 tensors"
    ):
        R.register_clip_file(path, model=TINY_CLIP, pretrained="openai")
    with pytest.raises(WeightsFileError, match=r"fits no open_clip model\. Against the default, ViT-B-32: none of"):
        R.register_clip_file(path)


def test_another_architecture_names_the_mismatch_and_what_fits(files: dict[str, Path]) -> None:
    # As a ViT-B-16 file given as ViT-B-32: same widths, other patch size.
    with pytest.raises(WeightsFileError) as info:
        R.register_clip_file(files["p8"], model=TINY_CLIP, pretrained="openai")
    message = str(info.value)
    assert f"{files['p8']} does not fit open_clip model {TINY_CLIP}" in message
    assert "visual.conv1.weight is (64, 3, 8, 8) in the file but (64, 3, 16, 16)" in message
    assert f"It fits {TINY_P8}: choose that model." in message
    # The same check, against the real ViT-B-32 (built without memory, on the meta device).
    with pytest.raises(
        WeightsFileError,
        match=r"does not fit open_clip model ViT-B-32: .*text_projection is \(64, 32\) in the file but \(512, 512\)",
    ):
        R.register_clip_file(files["bin"], model="ViT-B-32", pretrained="openai")
    with pytest.raises(ConfigError, match="open_clip has no model named 'ViT-B-99'"):
        R.register_clip_file(files["bin"], model="ViT-B-99", pretrained="openai")
    assert R.list_registered() == []


class _Payload:
    """What a malicious checkpoint carries: unpickling it would run code (here: create a file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _torchscript_with(payload: bytes, source: Path, target: Path) -> Path:
    """A copy of a real TorchScript archive whose data.pkl is replaced by the payload."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            dst.writestr(item, payload if item.filename.endswith("/data.pkl") else src.read(item))
    return target


@pytest.mark.parametrize("how", ["torch-zip", "torch-legacy", "raw-pickle", "torchscript"])
def test_pickled_code_is_never_run(how: str, files: dict[str, Path], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = {"visual.conv1.weight": torch.zeros(1), "x": _Payload(marker)}
    path = tmp_path / "ViT-B-32.pt"
    if how == "torch-zip":
        torch.save(evil, path)
    elif how == "torch-legacy":
        torch.save(evil, path, _use_new_zipfile_serialization=False)
    elif how == "raw-pickle":
        path.write_bytes(pickle.dumps({"x": _Payload(marker)}, protocol=2))
    else:
        _torchscript_with(pickle.dumps(_Payload(marker), protocol=2), files["openai"], path)
    with pytest.raises(WeightsFileError, match=r"was not loaded: .*would call .*exec.*\(it may be harmful\)") as info:
        R.register_clip_file(path, model=TINY_CLIP, pretrained="openai")
    assert str(path) in str(info.value)
    with pytest.raises(WeightsFileError, match="was not loaded"):  # the Train panel's Weights file
        clip_models.create_clip(TINY_CLIP, "openai", str(path))
    assert not marker.exists()
    # The payload is real: plain pickle would have run it.
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


# -- the cache folder ------------------------------------------------------------------------------------------


def test_read_only_cache(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    folder = R.registry_dir(create=True)

    def read_only(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(errno.EROFS, "Read-only file system", str(folder))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)  # as root, chmod would not stop the write
    with pytest.raises(WeightsCacheError, match=r"the weights cache .* is read-only or not writable by you") as info:
        R.register_clip_file(files["bin"], model=TINY_CLIP, pretrained="openai")
    assert str(files["bin"]) in str(info.value) and "HARAPP_CACHE_DIR" in str(info.value)


def test_disk_full_leaves_the_registered_file_as_it_was(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.torch
    from safetensors import SafetensorError

    before = R.register_clip_file(files["bin"], model=TINY_CLIP, pretrained="openai").entry

    def disk_full(tensors: object, filename: str, metadata: object = None) -> None:
        Path(filename).write_bytes(b"\0" * 100)  # part of it made it to disk
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.raises(WeightsCacheError, match=r"Cannot register .*model.pt: the weights cache .* is full"):
        R.register_clip_file(files["openai"], model=TINY_CLIP, pretrained="openai")
    assert R.list_registered() == [before]
    assert sorted(p.name for p in R.registry_dir().iterdir()) == [before.path.name]  # no temp file left

    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=10**9, used=10**9, free=2000))
    with pytest.raises(WeightsCacheError, match=r"has 2.0 kB free but the weights need \d+ MB"):
        R.register_clip_file(files["openai"], model=TINY_CLIP, pretrained="openai")


def test_a_damaged_registered_file_says_how_to_recover(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    entry = R.register_clip_file(files["bin"], model=TINY_CLIP, pretrained="openai").entry
    entry.path.write_bytes(entry.path.read_bytes()[:1000])
    with pytest.raises(
        WeightsUnavailableError, match=r"(?s)cannot be read .*harapp weights remove harapp-tiny-clip openai"
    ):
        clip_models.create_clip(TINY_CLIP, "openai", None)
    assert main(["weights", "list"]) == 1
    assert "damaged" in capsys.readouterr().out
    assert main(["weights", "remove", TINY_CLIP, "openai"]) == 0


def test_offline_failure_names_weights_add(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as info:
        clip_models.create_clip(TINY_CLIP, "laion_tiny", None)
    assert "`harapp weights add FILE --model harapp-tiny-clip --pretrained laion_tiny`" in str(info.value)

"""The model-kind registry: each entry's facts hold for the model its builder makes, and a new kind is one entry."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from harapp.ml.cnn_models import HALF, ScratchCNN
from harapp.ml.config import TrainConfig
from harapp.ml.errors import ConfigError
from harapp.ml.kinds import DEFAULT_KIND, KINDS, MODES, ModelKind, get_kind, standard_defaults
from harapp.ml.models import BuiltModel, HarModel, Preprocess, build_model
from tests.ml.conftest import random_views

CLASSES = ("walking", "running", "sitting", "standing")
HARAPP = Path(__file__).resolve().parents[2] / "harapp"


def _build(kind: ModelKind, tiny_clip: str) -> BuiltModel:
    mode = "scratch" if "scratch" in kind.modes else kind.default_mode
    config = TrainConfig(model_kind=kind.name, mode=mode, image_size=32, pretrained=False, clip_model=tiny_clip)
    return build_model(config, CLASSES)


@pytest.mark.parametrize("name", list(KINDS))
def test_each_kind_builds_what_its_entry_says(name: str, tiny_clip: str) -> None:
    kind = KINDS[name]
    built = _build(kind, tiny_clip)
    assert built.model.kind == name
    if kind.feature_dim is not None:
        assert built.model.backbone_dim == kind.feature_dim
    size = built.preprocess.image_size
    with torch.no_grad():
        features = built.model.eval().features(**random_views(built.model, 1, size))
    assert features.shape == (1, built.model.feature_dim)
    # The block pattern finds the backbone's blocks, so "fine-tune the last N blocks" means something.
    groups = {built.model.block_index(n) for n, _ in built.model.backbone.named_parameters()}
    blocks = groups - {0, 10**6}
    assert len(blocks) >= 2, (name, groups)
    assert (0 in groups) == bool(kind.stem_layers), (name, groups)


def test_every_kind_has_defaults_for_each_of_its_modes() -> None:
    assert DEFAULT_KIND in KINDS
    for kind in KINDS.values():
        assert kind.default_mode in kind.modes and set(kind.modes) <= set(MODES)
        for mode in kind.modes:
            defaults = kind.defaults_for(mode)
            config = TrainConfig.for_kind(kind.name, mode).validate()
            assert (config.epochs, config.batch_size, config.lr, config.image_size) == (
                defaults.epochs, defaults.batch_size, defaults.lr, defaults.image_size
            )  # fmt: skip
        assert ("zero-shot" in kind.modes) <= kind.prompt_head


def test_the_config_defaults_are_the_default_kinds() -> None:
    assert TrainConfig() == TrainConfig.for_kind()
    assert TrainConfig.for_kind("cnn-scratch").mode == "scratch"
    assert TrainConfig.for_kind("cnn-scratch").image_size == 96
    assert TrainConfig.for_kind("resnet18", "fine-tune").lr < TrainConfig.for_kind("resnet18").lr


def test_the_default_probe_reads_larger_photos_than_fine_tuning_and_no_other_config_inherits_its_size() -> None:
    assert TrainConfig().image_size == TrainConfig.for_kind("efficientnet-lite0", "linear-probe").image_size == 288
    assert TrainConfig.for_kind("efficientnet-lite0", "fine-tune").image_size == 224
    # Built directly, without for_kind: each kind and mode still gets its own size, not the default probe's.
    assert TrainConfig(mode="fine-tune").image_size == 224
    assert TrainConfig(model_kind="resnet18").image_size == 224
    assert TrainConfig(model_kind="cnn-scratch", mode="scratch").image_size == 96
    assert TrainConfig(model_kind="cnn-scratch", mode="scratch", image_size=64).image_size == 64
    assert TrainConfig.from_dict(TrainConfig(mode="fine-tune").to_dict()).image_size == 224


def test_unknown_kinds_and_modes_are_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="Unknown model kind 'vgg'.*resnet18"):
        get_kind("vgg")
    with pytest.raises(ConfigError, match="'zero-shot' is not available for resnet18.*fine-tune"):
        TrainConfig.for_kind("resnet18", "zero-shot")


def test_an_inconsistent_entry_is_refused() -> None:
    defaults = standard_defaults(("scratch",), 32)
    common = {"label": "x", "builder": "m:f", "feature_dim": 8, "block_pattern": r"^(\d+)"}
    with pytest.raises(ValueError, match="default mode"):
        ModelKind(name="x", modes=("scratch",), default_mode="fine-tune", defaults=defaults, **common)
    with pytest.raises(ValueError, match="zero-shot needs a prompt head"):
        zs = standard_defaults(("zero-shot",), 32)
        ModelKind(name="x", modes=("zero-shot",), default_mode="zero-shot", defaults=zs, **common)


def build_tiny_cnn(
    kind: ModelKind, config: TrainConfig, class_names: Sequence[str], *, init_head: bool = True, backbone: bool = True
) -> BuiltModel:
    assert kind.feature_dim is not None
    net = ScratchCNN(widths=(4, kind.feature_dim))
    pre = Preprocess(config.image_size, HALF, HALF, "squash", 1.0, "bilinear")
    return BuiltModel(HarModel(kind, net, kind.feature_dim, len(class_names), normalize=False), pre, "random")


def test_a_new_kind_is_one_entry_plus_its_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    from harapp.cli import build_parser
    from harapp.cli.ml_commands import train_config

    tiny = ModelKind(
        name="tiny-cnn", label="Tiny CNN", modes=("scratch",), default_mode="scratch",
        defaults=standard_defaults(("scratch",), image_size=24), builder=f"{__name__}:build_tiny_cnn",
        feature_dim=8, block_pattern=r"^features\.(\d+)\.",
    )  # fmt: skip
    monkeypatch.setitem(KINDS, tiny.name, tiny)  # type: ignore[index]
    config = train_config(build_parser().parse_args(["train", "p.harapp", "--model", "tiny-cnn"]))
    assert (config.model_kind, config.mode, config.image_size) == ("tiny-cnn", "scratch", 24)
    built = build_model(config, CLASSES)
    assert built.model(torch.randn(2, 3, 24, 24)).shape == (2, 4)
    assert {built.model.block_index(n) for n, _ in built.model.backbone.named_parameters()} == {1, 2}


def _kind_comparisons(path: Path) -> list[str]:
    """Places that compare a value with a model kind's name, as `kind == "clip"` or `kind in ("resnet18", ...)`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Compare):
            continue
        for operand in [node.left, *node.comparators]:
            values = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
            if any(isinstance(v, ast.Constant) and v.value in KINDS for v in values):
                found.append(f"{path.relative_to(HARAPP.parent)}:{node.lineno}")
    return found


def test_no_code_outside_the_registry_asks_which_kind_it_holds() -> None:
    sources = [p for p in HARAPP.rglob("*.py") if p.name != "kinds.py"]
    assert sources
    assert [place for p in sources for place in _kind_comparisons(p)] == []

"""The model factory: shapes, preprocessing, pretrained EfficientNet-Lite0, partial fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harapp.ml import weights as W
from harapp.ml.cnn_models import efficientnet_lite0_backbone, efficientnet_lite0_preprocess
from harapp.ml.config import TrainConfig
from harapp.ml.data import eval_transform
from harapp.ml.errors import ConfigError
from harapp.ml.images import load_image
from harapp.ml.models import build_model
from harapp.ml.pose import POSE_DIM
from tests.ml.conftest import random_views

CLASSES = ("walking", "running", "sitting", "standing")
SKI = 795  # ImageNet class 'ski'


@pytest.mark.parametrize(
    ("kind", "mode", "size", "dim"),
    [
        ("cnn-scratch", "scratch", 32, 256),
        ("resnet18", "scratch", 32, 512),
        ("resnet50", "scratch", 32, 2048),
        ("efficientnet-lite0", "linear-probe", 64, 1280),
    ],
)
def test_factory_returns_model_and_preprocessing(kind: str, mode: str, size: int, dim: int) -> None:
    built = build_model(TrainConfig(model_kind=kind, mode=mode, image_size=size), CLASSES)
    assert built.preprocess.image_size == size
    assert len(built.preprocess.mean) == 3 and len(built.preprocess.std) == 3
    built.model.eval()
    views = random_views(built.model, 2, size)
    with torch.no_grad():
        feats = built.model.features(**views)
        logits = built.model(**views)
    # Whole photo and person square through the backbone, then the pose vector.
    assert built.model.backbone_dim == dim
    assert feats.shape == (2, 2 * dim + POSE_DIM) == (2, built.model.feature_dim)
    assert torch.equal(feats[:, 2 * dim :], views["pose"])
    assert logits.shape == (2, 4)
    assert built.backbone_pretrained == (kind == "efficientnet-lite0")


def test_clip_tiny_builds_with_zero_shot_head(tiny_clip: str) -> None:
    cfg = TrainConfig(model_kind="clip", mode="zero-shot", clip_model=tiny_clip, pretrained=False)
    built = build_model(cfg, CLASSES)
    assert built.preprocess.image_size == 64
    assert built.weights_source == "random"
    w = built.model.head.linear.weight
    # Rows are scaled unit text embeddings, one per class, and differ between classes.
    norms = w.norm(dim=1)
    assert torch.allclose(norms, norms[0].expand(4), rtol=1e-4)
    assert not torch.allclose(w[0], w[1])


def test_prompts_change_the_zero_shot_head(tiny_clip: str) -> None:
    base = TrainConfig(model_kind="clip", mode="zero-shot", clip_model=tiny_clip, pretrained=False)
    torch.manual_seed(0)
    a = build_model(base, CLASSES).model.head.linear.weight
    torch.manual_seed(0)
    custom = TrainConfig(**{**base.to_dict(), "prompts": ("someone {} in a park",)})
    b = build_model(custom, CLASSES).model.head.linear.weight
    assert not torch.allclose(a, b)


def test_effnet_weights_map_all_296_tensors_and_give_confident_output() -> None:
    source = W.load_state_dict_file(W.efficientnet_lite0_file())
    net = efficientnet_lite0_backbone(pretrained=False, num_classes=1000)
    mapped = W.map_state_in_order(source, net.state_dict(), "efficientnet-lite0")
    assert len(mapped) == len(source) == 296
    pretrained = efficientnet_lite0_backbone(pretrained=True, num_classes=1000).eval()
    for key, tensor in mapped.items():
        assert torch.equal(pretrained.state_dict()[key], tensor)
    # A smooth synthetic image: trained weights give a peaked distribution, not a uniform one.
    x = torch.linspace(-1, 1, 224).expand(3, 224, 224).unsqueeze(0)
    with torch.no_grad():
        probs = pretrained(x).softmax(-1)[0]
    assert probs.max() > 5 / 1000
    assert probs.std() > 1e-4


def test_effnet_shape_mismatch_is_reported() -> None:
    source = W.load_state_dict_file(W.efficientnet_lite0_file())
    target = efficientnet_lite0_backbone(False, 10).state_dict()
    with pytest.raises(W.WeightsUnavailableError, match="shape"):
        W.map_state_in_order(source, target, "efficientnet-lite0")


def _find_skiers(coco_har: Path, limit: int = 5) -> list[Path]:
    """Photos that at least four of five captions describe as skiing."""
    doc = json.loads((coco_har / "annotations" / "captions_val2017.json").read_text())
    names = {im["id"]: im["file_name"] for im in doc["images"]}
    ski_captions: dict[int, int] = {}
    for ann in doc["annotations"]:
        text = ann["caption"].lower()
        if "skiing" in text or "skier" in text:
            ski_captions[ann["image_id"]] = ski_captions.get(ann["image_id"], 0) + 1
    found = []
    for image_id, count in sorted(ski_captions.items()):
        path = coco_har / "val2017" / names[image_id]
        if count >= 4 and path.is_file():
            found.append(path)
    return found[:limit]


def test_effnet_classifies_real_skier_photos(coco_har: Path) -> None:
    paths = _find_skiers(coco_har)
    if len(paths) < 3:
        pytest.skip("too few skier photos in the shared COCO data")
    net = efficientnet_lite0_backbone(pretrained=True, num_classes=1000).eval()
    # ImageNet's own evaluation protocol (centre crop) checks the weights, not harapp's preprocessing choice.
    transform = eval_transform(efficientnet_lite0_preprocess(224, "center-crop"))
    x = torch.stack([transform(load_image(p)) for p in paths])
    with torch.no_grad():
        top5 = net(x).softmax(-1).topk(5).indices.tolist()
    # A skier scene may also read as 'alp' or 'ski mask'; 'ski' must lead in most and be near the top in all.
    assert all(SKI in t for t in top5), top5
    assert sum(t[0] == SKI for t in top5) >= len(paths) / 2, top5


def test_finetune_last_blocks_freezes_the_rest() -> None:
    built = build_model(TrainConfig(model_kind="efficientnet-lite0", mode="fine-tune", image_size=64), CLASSES)
    model = built.model
    model.set_trainable_backbone(2, train_backbone=True)
    trainable = {
        n.split(".")[0] + "." + n.split(".")[1] for n, p in model.backbone.named_parameters() if p.requires_grad
    }
    assert "blocks.6" in trainable and "blocks.5" in trainable
    assert "blocks.4" not in trainable and not model.backbone.conv_stem.weight.requires_grad
    assert model.backbone.conv_head.weight.requires_grad  # layers after the last block always train
    model.set_trainable_backbone(None, train_backbone=False)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    model.set_trainable_backbone(None, train_backbone=True)
    assert all(p.requires_grad for p in model.backbone.parameters())


def test_unsupported_kind_mode_pairs_are_refused() -> None:
    with pytest.raises(ConfigError, match="zero-shot.*cnn-scratch"):
        TrainConfig(model_kind="cnn-scratch", mode="zero-shot").validate()
    with pytest.raises(ConfigError, match="Unknown model kind"):
        TrainConfig(model_kind="vgg").validate()
    with pytest.raises(ConfigError, match="prompt"):
        TrainConfig(model_kind="clip", mode="zero-shot", prompts=("no placeholder",)).validate()


def test_config_round_trips_through_dict() -> None:
    cfg = TrainConfig(model_kind="clip", mode="fine-tune", prompts=("a {}",), finetune_last_blocks=2)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_probes_share_one_frozen_backbone_only_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sharing spares rebuilding the backbone on every refresh; with a GPU, one model's .to("cuda") would move
    it under another model, so each model then gets its own."""
    from harapp.ml import cnn_models

    probe = TrainConfig(model_kind="efficientnet-lite0", mode="linear-probe", image_size=64, views=("whole",))
    classes = ("a", "b")
    first, second = build_model(probe, classes), build_model(probe, classes)
    assert first.model.backbone is second.model.backbone
    assert not any(p.requires_grad for p in first.model.backbone.parameters())
    first.model.train()  # a model in training mode leaves the shared batch-norm statistics alone
    assert first.model.head.training and not any(m.training for m in first.model.backbone.modules())
    with pytest.raises(RuntimeError, match="shares a frozen backbone"):
        first.model.set_trainable_backbone(None, train_backbone=True)
    monkeypatch.setattr(cnn_models.torch.cuda, "is_available", lambda: True)
    own = build_model(probe, classes)
    assert own.model.backbone is not first.model.backbone
    fine_tune = TrainConfig(model_kind="efficientnet-lite0", mode="fine-tune", image_size=64, views=("whole",))
    monkeypatch.undo()
    assert build_model(fine_tune, classes).model.backbone is not first.model.backbone


def test_a_model_built_without_its_backbone_has_the_same_cache_keys_and_builds_it_when_asked() -> None:
    """A label review that finds every vector cached never needs the backbone, and building it imported timm and
    torchvision (a fifth of the memory of scoring 100k images)."""
    from harapp.ml.embeddings import model_key
    from harapp.ml.models import DeferredBackbone

    # Fine-tuning builds a backbone of its own (a probe's is one shared module): the comparison below compares two.
    config = TrainConfig(model_kind="efficientnet-lite0", mode="fine-tune", image_size=64)
    full, shell = build_model(config, CLASSES), build_model(config, CLASSES, backbone=False)
    assert isinstance(shell.model.backbone, DeferredBackbone)
    for view in ("whole", "person"):
        assert model_key(config, shell, view) == model_key(config, full, view)
    assert (shell.model.feature_dim, shell.weights_source) == (full.model.feature_dim, full.weights_source)
    views = random_views(full.model, 2, 64)
    with pytest.raises(RuntimeError, match="backbone was left out"):
        shell.model.features(**views)  # never pixels passed on as features
    with pytest.raises(RuntimeError, match="backbone was left out"):
        shell.model.set_trainable_backbone(None, train_backbone=True)  # nor trained without its weights
    assert shell.with_backbone() is shell and shell.build_backbone is None
    assert shell.model.backbone is not full.model.backbone
    full.model.eval()
    shell.model.eval()
    with torch.no_grad():
        assert torch.equal(shell.model.features(**views), full.model.features(**views))
    # A pretrained ResNet is named without its weights (no download); random backbones are built at once,
    # since their weights are the seed's draws in order.
    resnet_probe = TrainConfig(model_kind="resnet18", mode="linear-probe", image_size=32)
    resnet = build_model(resnet_probe, CLASSES, backbone=False)
    assert isinstance(resnet.model.backbone, DeferredBackbone) and resnet.weights_source == "torchvision:resnet18"
    scratch = TrainConfig(model_kind="efficientnet-lite0", mode="scratch", image_size=32)
    assert not isinstance(build_model(scratch, CLASSES, backbone=False).model.backbone, DeferredBackbone)


def test_threads_asking_for_the_shared_backbone_at_once_get_one_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's warm-up and a label review may both build it first; each used to get its own copy."""
    import threading

    from harapp.ml import cnn_models

    monkeypatch.setattr(cnn_models, "_FROZEN", {})
    built: list[int] = []
    build = cnn_models.efficientnet_lite0_backbone

    def slow_build(pretrained: bool, num_classes: int = 0) -> torch.nn.Module:
        built.append(1)
        threading.Event().wait(0.2)  # long enough for the other thread to arrive meanwhile
        return build(pretrained, num_classes)

    monkeypatch.setattr(cnn_models, "efficientnet_lite0_backbone", slow_build)
    got: list[torch.nn.Module] = []
    threads = [threading.Thread(target=lambda: got.append(cnn_models._frozen_lite0())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1 and len(got) == 2 and got[0] is got[1]

"""The input pipeline train() had before the decoded-image cache, kept here as the benchmarks' baseline: each photo
decoded by PIL in a Dataset and transformed one image at a time (RandomResizedCrop, flip, colour jitter,
ToTensor, Normalize), batched by a DataLoader. harapp itself no longer uses it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from harapp.core.types import LabelledItem
from harapp.ml.data import eval_transform
from harapp.ml.images import load_image
from harapp.ml.models import Preprocess


def pil_transform(pre: Preprocess, augment: bool) -> Callable[[Image.Image], torch.Tensor]:
    """The old training transform (mild crops, flips, colour jitter), or the eval transform without augment."""
    if not augment:
        return eval_transform(pre)
    return T.Compose(
        [
            T.RandomResizedCrop(pre.image_size, scale=(0.6, 1.0), ratio=(0.75, 1.333)),
            T.RandomHorizontalFlip(),
            T.ColorJitter(0.2, 0.2, 0.2, 0.02),
            T.ToTensor(),
            T.Normalize(pre.mean, pre.std),
        ]
    )


class PilDataset(Dataset[tuple[dict[str, torch.Tensor], int, int]]):
    """(the whole photo as a tensor, by view name; class index; position), one JPEG decode per access."""

    def __init__(
        self, items: Sequence[LabelledItem], transform: Callable[[Image.Image], torch.Tensor], side: int
    ) -> None:
        self.items = tuple(items)
        self.transform = transform
        self.side = side  # the JPEG draft decode's short side

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int, int]:
        item = self.items[index]
        return {"whole": self.transform(load_image(item.path, min_side=self.side))}, item.class_index, index


def pil_loader(data: PilDataset, batch: int, workers: int, shuffle: bool = False) -> DataLoader:
    return DataLoader(data, batch_size=batch, shuffle=shuffle, num_workers=workers, persistent_workers=workers > 0)

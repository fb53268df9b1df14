"""Training augmentation of whole batches on the device, with parameters drawn per sample."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class BatchAugment:
    """Random resized crops, flips and colour jitter with parameters drawn per sample, applied to a whole batch
    in a few kernels (on the GPU when the batch is there).

    torchvision.transforms.v2 draws one set of parameters per call, so on a batch tensor every photo would get
    the same crop and flip; this draws them per sample (with the distributions of v2.RandomResizedCrop(scale=
    (0.6, 1), ratio=(3/4, 4/3)), RandomHorizontalFlip and ColorJitter(0.2, 0.2, 0.2, 0.02), as the PIL training
    transform uses) and applies them as one grid_sample and one 3x3 colour matrix per sample. The crops come
    from the cached model-size image, so a crop is upsampled by at most 1/sqrt(0.6).
    """

    def __init__(self, seed: int, scale: tuple[float, float] = (0.6, 1.0), jitter: float = 0.2, hue: float = 0.02):
        self.generator = torch.Generator().manual_seed(seed)
        self.scale = scale
        self.log_ratio = (math.log(3 / 4), math.log(4 / 3))
        self.jitter = jitter
        self.hue = hue

    def _uniform(self, n: int, low: float, high: float, *shape: int) -> torch.Tensor:
        return torch.empty(n, *shape).uniform_(low, high, generator=self.generator)

    def _crop_boxes(self, n: int, side: int) -> torch.Tensor:
        """(n, 4) crops x0, y0, w, h in pixels: v2.RandomResizedCrop's rule (ten tries, else the whole image)."""
        area = side * side * self._uniform(n, *self.scale, 10)
        ratio = torch.exp(self._uniform(n, *self.log_ratio, 10))
        w = torch.sqrt(area * ratio).round()
        h = torch.sqrt(area / ratio).round()
        ok = (w > 0) & (w <= side) & (h > 0) & (h <= side)
        first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
        rows = torch.arange(n)
        w = torch.where(first >= 0, w[rows, first.clamp_min(0)], torch.full((n,), float(side)))
        h = torch.where(first >= 0, h[rows, first.clamp_min(0)], torch.full((n,), float(side)))
        x0 = torch.floor(torch.rand(n, generator=self.generator) * (side - w + 1))
        y0 = torch.floor(torch.rand(n, generator=self.generator) * (side - h + 1))
        return torch.stack([x0, y0, w, h], 1)

    def _colour(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per sample: the brightness and contrast factors (n,) and a saturation-and-hue matrix (n, 3, 3)."""
        low, high = 1 - self.jitter, 1 + self.jitter
        brightness, contrast, saturation = (self._uniform(n, low, high) for _ in range(3))
        angle = self._uniform(n, -self.hue, self.hue) * 2 * math.pi
        gray = torch.tensor(_GRAY)
        # Saturation blends with grey; hue turns the chroma plane of YIQ, a linear stand-in for HSV's hue shift.
        sat = saturation[:, None, None] * torch.eye(3) + (1 - saturation)[:, None, None] * gray[None, None, :]
        cos, sin = torch.cos(angle), torch.sin(angle)
        turn = torch.zeros(n, 3, 3)
        turn[:, 0, 0] = 1
        turn[:, 1, 1], turn[:, 1, 2], turn[:, 2, 1], turn[:, 2, 2] = cos, -sin, sin, cos
        yiq = torch.tensor(_RGB_TO_YIQ)
        return brightness, contrast, torch.linalg.inv(yiq) @ turn @ yiq @ sat

    def _grid(self, boxes: torch.Tensor, flip: torch.Tensor, side: int, device: torch.device) -> torch.Tensor:
        """grid_sample's sampling grid for axis-aligned crops: x depends on the column only, y on the row only,
        so it is built by broadcasting (affine_grid's general matrix product is several times slower on a CPU)."""
        n = len(boxes)
        # Output pixel centres in [-1, 1]; a crop (x0, w) spans [-1 + 2 x0 / S, -1 + 2 (x0 + w) / S] of the input.
        u = (torch.arange(side, dtype=torch.float32) + 0.5) * (2 / side) - 1
        scale_x = torch.where(flip, -1.0, 1.0) * boxes[:, 2] / side
        gx = scale_x[:, None] * u + ((2 * boxes[:, 0] + boxes[:, 2]) / side - 1)[:, None]
        gy = (boxes[:, 3] / side)[:, None] * u + ((2 * boxes[:, 1] + boxes[:, 3]) / side - 1)[:, None]
        gx, gy = gx.to(device), gy.to(device)
        return torch.stack((gx[:, None, :].expand(n, side, side), gy[:, :, None].expand(n, side, side)), dim=-1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, S, S) floats in [0, 1] on any device; returns the augmented batch in [0, 1], same shape.

        Brightness, contrast, saturation and hue are applied as one affine map per sample (torchvision clamps to
        [0, 1] after each; here only at the end, which differs only where a pixel leaves the range mid-way).
        """
        n, _, side, _ = x.shape
        if n == 0:
            return x
        device = x.device
        boxes = self._crop_boxes(n, side)
        flip = torch.rand(n, generator=self.generator) < 0.5
        brightness, contrast, matrix = self._colour(n)
        grid = self._grid(boxes, flip, side, device).to(x.dtype)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        # contrast(brightness(x)) = c b x + (1 - c) b mean_grey(x); the saturation-hue matrix keeps greys grey.
        mean = torch.einsum("bchw,c->b", x, torch.tensor(_GRAY, device=device)) / (side * side)
        b, c = brightness.to(device), contrast.to(device)
        linear = (c * b)[:, None, None] * matrix.to(device)
        offset = ((1 - c) * b * mean)[:, None, None]
        out = torch.baddbmm(offset.to(x.dtype), linear.to(x.dtype), x.reshape(n, 3, side * side))
        return out.view(n, 3, side, side).clamp_(0, 1)


_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.5959, -0.2746, -0.3213), (0.2115, -0.5227, 0.3112))

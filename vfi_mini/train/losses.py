"""Training losses (spec §8.1). Every loss has the signature `loss(pred, target) -> scalar Tensor`.

`Lap` is the Laplacian-pyramid L1 loss of ST-MFNet: five levels, weights 2^i, L1 *sum* reduction (not a
mean), so its magnitude grows with batch and crop size; the AdaMax settings of the paper are tuned for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _binomial_kernel(channels: int) -> torch.Tensor:
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    k2 = torch.outer(k, k) / 256
    return k2.expand(channels, 1, 5, 5).contiguous()


class LapLoss(nn.Module):
    """Sum-reduced L1 distance between Laplacian pyramids (4 band-pass levels + low-pass residual)."""

    def __init__(self, max_levels: int = 5, channels: int = 3) -> None:
        super().__init__()
        self.max_levels = max_levels
        self.register_buffer("kernel", _binomial_kernel(channels), persistent=False)

    def _blur(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        k = self.kernel.to(x.dtype)
        levels = []
        current = x
        for _ in range(self.max_levels - 1):
            reduced = F.avg_pool2d(self._blur(current, k), 2)
            # Expand: zeros between samples, then blur with 4G (the 4 restores the mean).
            up = torch.zeros_like(current)
            up[..., ::2, ::2] = reduced
            levels.append(current - self._blur(up, 4 * k))
            current = reduced
        levels.append(current)
        return levels

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape[-1] % 16 or pred.shape[-2] % 16:
            raise ValueError(f"Lap loss needs sides divisible by 16, got {tuple(pred.shape[-2:])}")
        pp, pt = self.pyramid(pred), self.pyramid(target)
        return sum((2**i) * F.l1_loss(a, b, reduction="sum") for i, (a, b) in enumerate(zip(pp, pt)))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Depthwise separable Gaussian blur of (B, C, H, W), radius ceil(2 sigma), reflect padding, in fp32 and
    NCHW (oneDNN's depthwise 1-D convolutions are ~1000x slower in bf16 on channels-last tensors)."""
    x = x.float().contiguous()
    r = max(1, math.ceil(2 * sigma))
    g = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32, device=x.device) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((pred - target) ** 2 + eps**2).mean()


def get_loss(name: str) -> Loss:
    """'lap' (default of the papers), 'charbonnier' or 'l1'."""
    name = name.lower()
    if name == "lap":
        return LapLoss()
    if name in ("charb", "charbonnier"):
        return charbonnier
    if name == "l1":
        return lambda p, t: F.l1_loss(p, t)
    raise ValueError(f"unknown loss {name!r}; use lap, charbonnier or l1")

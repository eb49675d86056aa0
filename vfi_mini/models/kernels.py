"""AdaCoF kernel and offset heads, and the fixed filters that make the three input scales (spec §2.2, §2.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SCALES = ("_ds", "", "_us")  # x0.5, x1, x2
KINDS = ("Weight", "Alpha", "Beta")


class ChannelSoftmax(nn.Softmax):
    """Softmax over channels (dim 1) that keeps a channels-last tensor channels-last.

    `nn.Softmax(dim=1)` first copies a channels-last input to the default layout (and AdaCoF, which reads
    the weights pixel by pixel, would copy it back): at the x2 scale (25 channels at 2H x 2W) those copies
    cost more than the softmax. Seen as (B, H, W, C) the same tensor is contiguous. Same function, same
    (parameter-free) state_dict.
    """

    def __init__(self) -> None:
        super().__init__(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            return torch.softmax(x.permute(0, 2, 3, 1), dim=-1).permute(0, 3, 1, 2)
        return torch.softmax(x, dim=1)


def _head(cin: int, hidden: int, taps: int, upsample: int, softmax: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, hidden, 3, 1, 1),
        nn.ReLU(inplace=False),
        nn.Conv2d(hidden, hidden, 3, 1, 1),
        nn.ReLU(inplace=False),
        nn.Conv2d(hidden, taps, 3, 1, 1),
    ]
    if upsample > 1:
        layers += [
            nn.ReLU(inplace=False),
            nn.Upsample(scale_factor=upsample, mode="bilinear", align_corners=True),
            nn.Conv2d(taps, taps, 3, 1, 1),
        ]
    if softmax:
        layers.append(ChannelSoftmax())
    return nn.Sequential(*layers)


class KernelEstimation(nn.Module):
    """18 independent heads: {Weight, Alpha, Beta} x {I1, I2} x {x0.5, x1, x2}.

    Input F (B, C, H/2, W/2). Output: a list of 18 maps of K*K channels, ordered scale-major, then frame,
    then (Weight, Alpha, Beta); maps for scale s are at resolution (H/2, H, 2H)[s].
    """

    def __init__(self, cin: int, hidden: int, kernel_size: int) -> None:
        super().__init__()
        taps = kernel_size * kernel_size
        for scale, up in zip(SCALES, (1, 2, 4)):
            for frame in (1, 2):
                for kind in KINDS:
                    self.add_module(
                        f"module{kind}{frame}{scale}", _head(cin, hidden, taps, up, softmax=kind == "Weight")
                    )

    def forward(self, feat: torch.Tensor) -> list[torch.Tensor]:
        return [module(feat) for module in self.children()]


def gaussian_kernel(size: int = 5, sigma: float = 0.5, channels: int = 3) -> torch.Tensor:
    """Normalised separable Gaussian, shape (channels, 1, size, size)."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    k2 = torch.outer(g, g)
    k2 = (k2 / k2.sum()).float()
    return k2.expand(channels, 1, size, size).contiguous()


def blur_downsample(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """x0.5 input: depthwise Gaussian blur (reflect pad 2), then bilinear resize to half size."""
    pad = kernel.shape[-1] // 2
    x = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), kernel.to(x.dtype), groups=x.shape[1])
    return F.interpolate(x, size=(x.shape[2] // 2, x.shape[3] // 2), mode="bilinear", align_corners=False)


HEVC_HALF_PEL = (-1.0, 4.0, -11.0, 40.0, 40.0, -11.0, 4.0, -1.0)


class Upsampler8Tap(nn.Module):
    """x2 upsampling with the HEVC half-sample luma filter (spec §2.3); `filter` is a frozen parameter."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        taps = torch.tensor(HEVC_HALF_PEL) / 64
        self.filter = nn.Parameter(taps.view(1, 1, 1, 8).repeat(channels, 1, 1, 1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        fh = self.filter.to(x.dtype)  # (C, 1, 1, 8)
        fv = fh.transpose(2, 3)  # (C, 1, 8, 1)
        horiz = F.conv2d(F.pad(x, (3, 4, 0, 0), mode="reflect"), fh, groups=c)  # value at x + 0.5
        vert = F.conv2d(F.pad(x, (0, 0, 3, 4), mode="reflect"), fv, groups=c)  # value at y + 0.5
        diag = F.conv2d(F.pad(vert, (3, 4, 0, 0), mode="reflect"), fh, groups=c)
        # Sub-pixel order (dy, dx) = (0,0), (0,1), (1,0), (1,1) as pixel_shuffle expects.
        stacked = torch.stack([x, horiz, vert, diag], dim=2).reshape(b, c * 4, h, w)
        return F.pixel_shuffle(stacked, 2)

"""PWC-Net (sniklaus/pytorch-pwc layout, spec §2.5.1): the optical-flow estimator of BLFNet.

Flows are (B, 2, H/4, W/4), channel 0 horizontal, in full-resolution pixels divided by 20. The feature
pyramids of both frames are computed once and reused for both directions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import backwarp, correlation

LEVEL_NAMES = {2: "netTwo", 3: "netThr", 4: "netFou", 5: "netFiv", 6: "netSix"}
DENSE_NAMES = ("netOne", "netTwo", "netThr", "netFou", "netFiv")
DENSE_WIDTHS = (128, 128, 96, 64, 32)
EXTRACTOR_WIDTHS = (16, 32, 64, 96, 128, 196)
VOLUME = 81  # (2 * 4 + 1) ** 2 correlation channels


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=False)


class Extractor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        cin = 3
        for name, c in zip(("netOne", "netTwo", "netThr", "netFou", "netFiv", "netSix"), EXTRACTOR_WIDTHS):
            self.add_module(
                name,
                nn.Sequential(
                    nn.Conv2d(cin, c, 3, 2, 1),
                    _lrelu(),
                    nn.Conv2d(c, c, 3, 1, 1),
                    _lrelu(),
                    nn.Conv2d(c, c, 3, 1, 1),
                    _lrelu(),
                ),
            )
            cin = c

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for module in self.children():
            x = module(x)
            feats.append(x)
        return feats  # H/2 ... H/64


def _decoder_input(level: int) -> int:
    return VOLUME if level == 6 else VOLUME + EXTRACTOR_WIDTHS[level - 1] + 2 + 2


class Decoder(nn.Module):
    def __init__(self, level: int) -> None:
        super().__init__()
        cin = _decoder_input(level)
        if level < 6:
            prev = _decoder_input(level + 1) + sum(DENSE_WIDTHS)
            self.netUpflow = nn.ConvTranspose2d(2, 2, 4, 2, 1)
            self.netUpfeat = nn.ConvTranspose2d(prev, 2, 4, 2, 1)
            self.backwarp_scale = 20.0 / 2**level
        width = cin
        for name, c in zip(DENSE_NAMES, DENSE_WIDTHS):
            self.add_module(name, nn.Sequential(nn.Conv2d(width, c, 3, 1, 1), _lrelu()))
            width += c
        self.netSix = nn.Sequential(nn.Conv2d(width, 2, 3, 1, 1))
        self.level = level

    def forward(
        self, f1: torch.Tensor, f2: torch.Tensor, previous: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if previous is None:
            feat = F.leaky_relu(correlation(f1, f2), 0.1)
        else:
            flow = self.netUpflow(previous[0])
            upfeat = self.netUpfeat(previous[1])
            volume = F.leaky_relu(correlation(f1, backwarp(f2, flow * self.backwarp_scale)), 0.1)
            feat = torch.cat([volume, f1, flow, upfeat], dim=1)
        for name in DENSE_NAMES:
            feat = torch.cat([getattr(self, name)(feat), feat], dim=1)
        return self.netSix(feat), feat


class Refiner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        widths = (_decoder_input(2) + sum(DENSE_WIDTHS), 128, 128, 128, 96, 64, 32, 2)
        dilations = (1, 2, 4, 8, 16, 1, 1)
        layers: list[nn.Module] = []
        for i, d in enumerate(dilations):
            layers.append(nn.Conv2d(widths[i], widths[i + 1], 3, 1, d, dilation=d))
            if i < len(dilations) - 1:
                layers.append(_lrelu())
        self.netMain = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.netMain(x)


class PWCNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.netExtractor = Extractor()
        for level in (2, 3, 4, 5, 6):
            self.add_module(LEVEL_NAMES[level], Decoder(level))
        self.netRefiner = Refiner()

    def flow(self, feats1: list[torch.Tensor], feats2: list[torch.Tensor]) -> torch.Tensor:
        """Flow from frame 1 to frame 2 given both feature pyramids; (B, 2, H/4, W/4), pixels / 20."""
        estimate = None
        for level in (6, 5, 4, 3, 2):
            estimate = getattr(self, LEVEL_NAMES[level])(feats1[level - 1], feats2[level - 1], estimate)
        flow, feat = estimate
        return flow + self.netRefiner(feat)

    def forward(self, im1: torch.Tensor, im2: torch.Tensor) -> torch.Tensor:
        return self.flow(self.netExtractor(im1), self.netExtractor(im2))

"""MIFNet feature extractor: a U-Net of multi-scale ResNeXt blocks with SE attention (spec §2.1).

Input cat(norm(I1), norm(I2)) (B, 6, H, W); output F (B, feat_channels[0], H/2, W/2). Skips are
additions, so each decoder level has the width of the encoder level it joins.
"""

from __future__ import annotations

import torch
from torch import nn

GROUPS = 32


class ResNextBlock(nn.Module):
    """ResNeXt bottleneck (32 groups, base width 4); `down=False` makes the k x k conv transposed."""

    def __init__(self, down: bool, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        inner = (cout * 4 // 64) * GROUPS
        self.conv1 = nn.Conv2d(cin, inner, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        if down:
            self.conv2 = nn.Conv2d(inner, inner, kernel, stride, (kernel - 1) // 2, groups=GROUPS, bias=False)
        else:
            self.conv2 = nn.ConvTranspose2d(
                inner, inner, kernel, stride, (kernel - stride) // 2, groups=GROUPS, bias=False
            )
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv3 = nn.Conv2d(inner, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            if down:
                proj: nn.Module = nn.Conv2d(cin, cout, 1, stride, bias=False)
            else:
                proj = nn.ConvTranspose2d(cin, cout, 2, 2, bias=False)
            self.downsample = nn.Sequential(proj, nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class SEBlock(nn.Module):
    """Squeeze-and-excitation channel attention with reduction 16."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = channels // 16
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc(x.mean(dim=(2, 3)))  # (B, C)
        return x * w[:, :, None, None]


class MultiScaleResNextBlock(nn.Module):
    """Two ResNeXt blocks with small and large kernels side by side, concatenated, then SE."""

    def __init__(self, down: bool, cin: int, cout: int, k_small: int, k_large: int, stride: int) -> None:
        super().__init__()
        self.resnext_small = ResNextBlock(down, cin, cout // 2, k_small, stride)
        self.resnext_large = ResNextBlock(down, cin, cout // 2, k_large, stride)
        self.attention = SEBlock(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(torch.cat([self.resnext_small(x), self.resnext_large(x)], dim=1))


class UMultiScaleResNext(nn.Module):
    """The U-Net: four strided encoder levels, a bottleneck, three transposed decoder levels."""

    def __init__(self, channels: tuple[int, int, int, int], in_channels: int = 6) -> None:
        super().__init__()
        c0, c1, c2, c3 = channels
        self.conv1 = MultiScaleResNextBlock(True, in_channels, c0, 3, 7, 2)
        self.conv2 = MultiScaleResNextBlock(True, c0, c1, 3, 7, 2)
        self.conv3 = MultiScaleResNextBlock(True, c1, c2, 3, 5, 2)
        self.conv4 = MultiScaleResNextBlock(True, c2, c3, 3, 5, 2)
        self.deconv4 = MultiScaleResNextBlock(True, c3, c3, 3, 5, 1)
        self.deconv3 = MultiScaleResNextBlock(False, c3, c2, 4, 6, 2)
        self.deconv2 = MultiScaleResNextBlock(False, c2, c1, 4, 8, 2)
        self.deconv1 = MultiScaleResNextBlock(False, c1, c0, 4, 8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = self.conv2(self.conv1(x))  # H/4
        x3 = self.conv3(x2)  # H/8
        x4 = self.conv4(x3)  # H/16
        x = self.deconv4(x4)
        x = self.deconv3(x + x4)  # H/8
        x = self.deconv2(x + x3)  # H/4
        return self.deconv1(x + x2)  # H/2

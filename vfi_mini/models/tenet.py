"""TENet: the texture-enhancement 3-D U-Net (`UNet3d_18`, spec §2.7; adapted from FLAVR).

Input: the stack (I0, I1, Ĩ, I2, I3) as (B, 3, T=5, H, W), raw values. Output: a residual R (B, 3, H, W).
Time is never strided.
"""

from __future__ import annotations

import torch
from torch import nn


class SEGating(nn.Module):
    """Channel gating: global average pool, 1x1x1 conv, sigmoid, multiply."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.attn_layer = nn.Sequential(nn.Conv3d(channels, channels, 1, bias=True), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attn_layer(x.mean(dim=(2, 3, 4), keepdim=True))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: tuple[int, int, int] = (1, 1, 1)) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv3d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm3d(cout),
                                   nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(nn.Conv3d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm3d(cout))
        self.fg = SEGating(cout)
        self.downsample: nn.Module | None = None
        if stride != (1, 1, 1) or cin != cout:
            self.downsample = nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fg(self.conv2(self.conv1(x)))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class R3DEncoder(nn.Module):
    """R3D-18 encoder with SE gating, layers [2, 2, 2, 2], no temporal striding."""

    def __init__(self, widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = nn.Sequential(nn.Conv3d(3, w0, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                                  nn.BatchNorm3d(w0), nn.ReLU(inplace=True))
        self.layer1 = nn.Sequential(BasicBlock(w0, w0), BasicBlock(w0, w0))
        self.layer2 = nn.Sequential(BasicBlock(w0, w1, (1, 2, 2)), BasicBlock(w1, w1))
        self.layer3 = nn.Sequential(BasicBlock(w1, w2, (1, 2, 2)), BasicBlock(w2, w2))
        self.layer4 = nn.Sequential(BasicBlock(w2, w3), BasicBlock(w3, w3))
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


class Conv3dBlock(nn.Module):
    """`Conv_3d`: conv 3x3x3 with bias, SE gating, BN."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv3d(cin, cout, 3, 1, 1, bias=True), SEGating(cout), nn.BatchNorm3d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UpConv3dBlock(nn.Module):
    """`upConv3D`: transposed conv (3, 4, 4) / (1, 2, 2), SE gating, BN."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.upconv = nn.Sequential(nn.ConvTranspose3d(cin, cout, (3, 4, 4), (1, 2, 2), (1, 1, 1), bias=True),
                                    SEGating(cout), nn.BatchNorm3d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upconv(x)


class UNet3d18(nn.Module):
    def __init__(self, enc: tuple[int, int, int, int], dec: tuple[int, int, int, int, int], fuse: int,
                 n_frames: int = 5) -> None:
        super().__init__()
        self.encoder = R3DEncoder(enc)
        self.decoder = nn.Sequential(
            Conv3dBlock(enc[3], dec[0]),
            UpConv3dBlock(dec[0] + enc[2], dec[1]),
            UpConv3dBlock(dec[1] + enc[1], dec[2]),
            Conv3dBlock(dec[2] + enc[0], dec[3]),
            UpConv3dBlock(dec[3] + enc[0], dec[4]),
        )
        self.feature_fuse = nn.Sequential(nn.Conv2d(dec[4] * n_frames, fuse, 1, bias=False), nn.BatchNorm2d(fuse))
        self.outconv = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(fuse, 3, 7))
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.encoder
        x0 = e.stem(x)  # (B, enc0, T, H/2, W/2)
        x1 = e.layer1(x0)
        x2 = e.layer2(x1)  # H/4
        x3 = e.layer3(x2)  # H/8
        x4 = e.layer4(x3)
        d = torch.cat([self.lrelu(self.decoder[0](x4)), x3], dim=1)
        d = torch.cat([self.lrelu(self.decoder[1](d)), x2], dim=1)
        d = torch.cat([self.lrelu(self.decoder[2](d)), x1], dim=1)
        d = torch.cat([self.lrelu(self.decoder[3](d)), x0], dim=1)
        d = self.lrelu(self.decoder[4](d))  # (B, dec4, T, H, W)
        d = torch.cat(torch.unbind(d, dim=2), dim=1)  # frame-major (B, T*dec4, H, W)
        return self.outconv(self.lrelu(self.feature_fuse(d)))

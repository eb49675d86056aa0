"""TENet: the texture-enhancement 3-D U-Net (`UNet3d_18`, spec §2.7; adapted from FLAVR).

Input: the stack (I0, I1, Ĩ, I2, I3) as (B, 3, T=5, H, W), raw values. Output: a residual R (B, 3, H, W).
Time is never strided.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _shifted_stack(x: torch.Tensor, shifts: tuple[int, ...]) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, len(shifts)*C, H, W): frame t holds frames t+s (zero outside), s in shifts."""
    b, c, t, h, w = x.shape
    pad = max(abs(s) for s in shifts)
    xp = F.pad(x, (0, 0, 0, 0, pad, pad))
    parts = [xp[:, :, pad + s : pad + s + t] for s in shifts]
    return torch.cat(parts, dim=1).transpose(1, 2).reshape(b * t, len(shifts) * c, h, w)


class Conv3d(nn.Conv3d):
    """nn.Conv3d that runs as one 2-D convolution when time is unstrided (kernel 3 / pad 1, or kernel 1).

    PyTorch has no oneDNN path for 3-D convolutions on CPU (it falls back to a slow im2col); stacking the
    three temporal taps along channels gives the same result through the fast 2-D kernels (about 3x
    faster here). Parameters and state_dict keys are those of nn.Conv3d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kt, st, pt = self.kernel_size[0], self.stride[0], self.padding[0]
        if st != 1 or self.groups != 1 or self.dilation[0] != 1 or (kt, pt) not in ((3, 1), (1, 0)):
            return super().forward(x)
        b, _, t = x.shape[:3]
        shifts = tuple(range(-pt, kt - pt))
        weight = self.weight.transpose(1, 2).flatten(1, 2)  # (O, kt*I, kh, kw), tap-major like the stack
        y = F.conv2d(_shifted_stack(x, shifts), weight, self.bias, self.stride[1:], self.padding[1:], self.dilation[1:])
        return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)


class ConvTranspose3d(nn.ConvTranspose3d):
    """nn.ConvTranspose3d as one 2-D transposed convolution when time is unstrided (kernel 3, pad 1)."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        kt, st, pt = self.kernel_size[0], self.stride[0], self.padding[0]
        if (
            output_size is not None
            or st != 1
            or self.groups != 1
            or self.dilation[0] != 1
            or self.output_padding[0] != 0
            or (kt, pt) != (3, 1)
        ):
            return super().forward(x, output_size)
        b, _, t = x.shape[:3]
        # Output frame t receives input frame t + pad - k through temporal tap k.
        shifts = tuple(pt - k for k in range(kt))
        weight = self.weight.permute(2, 0, 1, 3, 4).flatten(0, 1)  # (kt*I, O, kh, kw), tap-major
        stacked = _shifted_stack(x, shifts)
        spatial = (self.kernel_size[1:], self.stride[1:], self.padding[1:], self.output_padding[1:], self.dilation[1:])
        if spatial == ((4, 4), (2, 2), (1, 1), (0, 0), (1, 1)):
            y = _conv_transpose2d_x2(stacked, weight, self.bias)
        else:
            y = F.conv_transpose2d(
                stacked,
                weight,
                self.bias,
                self.stride[1:],
                self.padding[1:],
                self.output_padding[1:],
                1,
                self.dilation[1:],
            )
        return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)


# Sub-pixel form of a transposed convolution with kernel 4, stride 2, padding 1: output row 2i + r is a
# 3-tap correlation of input rows i-1, i, i+1 with transposed-kernel taps _SUBPIXEL_TAPS[r] (-1: none).
_SUBPIXEL_TAPS = ((3, 1, -1), (-1, 2, 0))


def _conv_transpose2d_x2(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.conv_transpose2d(x, weight, bias, stride=2, padding=1) for a 4x4 kernel, as one 3x3 convolution
    with 4x the output channels and a pixel shuffle: the same sums, through oneDNN's fast convolution
    instead of PyTorch's slow CPU transposed-convolution path. weight: (I, O, 4, 4)."""
    cin, cout = weight.shape[:2]
    taps = torch.tensor(_SUBPIXEL_TAPS, device=weight.device)  # (2, 3)
    # kernel[o, ry, rx, i, jy, jx] = weight[i, o, taps[ry, jy], taps[rx, jx]], zero where a tap is -1.
    w = weight.permute(1, 0, 2, 3)  # (O, I, 4, 4)
    t = taps.clamp(min=0)
    k = w[:, :, t[:, None, :, None], t[None, :, None, :]]  # (O, I, ry, rx, jy, jx)
    valid = (taps >= 0)[:, None, :, None] & (taps >= 0)[None, :, None, :]  # (2, 2, 3, 3)
    k = (k * valid.to(k.dtype)).permute(0, 2, 3, 1, 4, 5).reshape(cout * 4, cin, 3, 3)
    b = None if bias is None else bias.repeat_interleave(4)
    return F.pixel_shuffle(F.conv2d(x, k, b, padding=1), 2)


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
        self.conv1 = nn.Sequential(
            Conv3d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)
        )
        self.conv2 = nn.Sequential(Conv3d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm3d(cout))
        self.fg = SEGating(cout)
        self.downsample: nn.Module | None = None
        if stride != (1, 1, 1) or cin != cout:
            self.downsample = nn.Sequential(Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fg(self.conv2(self.conv1(x)))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class R3DEncoder(nn.Module):
    """R3D-18 encoder with SE gating, layers [2, 2, 2, 2], no temporal striding."""

    def __init__(self, widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = nn.Sequential(
            Conv3d(3, w0, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
            nn.BatchNorm3d(w0),
            nn.ReLU(inplace=True),
        )
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
        self.conv = nn.Sequential(Conv3d(cin, cout, 3, 1, 1, bias=True), SEGating(cout), nn.BatchNorm3d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UpConv3dBlock(nn.Module):
    """`upConv3D`: transposed conv (3, 4, 4) / (1, 2, 2), SE gating, BN."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.upconv = nn.Sequential(
            ConvTranspose3d(cin, cout, (3, 4, 4), (1, 2, 2), (1, 1, 1), bias=True),
            SEGating(cout),
            nn.BatchNorm3d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upconv(x)


class UNet3d18(nn.Module):
    def __init__(
        self,
        enc: tuple[int, int, int, int],
        dec: tuple[int, int, int, int, int],
        fuse: int,
        n_frames: int = 5,
    ) -> None:
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

"""TENet: the texture-enhancement 3-D U-Net (`UNet3d_18`, spec §2.7; adapted from FLAVR).

Input: the stack (I0, I1, Ĩ, I2, I3) as (B, 3, T=5, H, W), raw values. Output: a residual R (B, 3, H, W).
Time is never strided.

Inside `UNet3d18` activations are "frames in batch": (B*T, C, H, W), b-major, in the input's memory format,
so no layer needs a 5-D transpose. In channels-last memory that is also the channels-last-3d clip
(B, C, T, H, W), and a 3-D convolution runs either as oneDNN's 3-D kernel on that view (bf16 on CPU) or as
one 2-D convolution of the temporal taps stacked along channels (elsewhere: PyTorch runs fp32 3-D
convolutions of small batches on CPU as a slow im2col). The blocks take (x, t); `Conv3d`, `ConvTranspose3d`
and `SEGating` keep their 5-D `forward` and add `frames(x, t)`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Whether PyTorch runs bf16 convolutions on this CPU through oneDNN, 3-D ones included.
_ONEDNN_BF16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a convolution of x computes in: autocast's for float32 x under autocast, else x's."""
    if x.dtype == torch.float32 and torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def _use_3d_kernels(x: torch.Tensor) -> bool:
    """Whether 3-D convolutions of frames in batch x run as oneDNN 3-D kernels on the clip view: bf16 on
    CPU, channels-last (about 3x faster than the 2-D form, and no stack to build)."""
    return (
        _ONEDNN_BF16
        and x.device.type == "cpu"
        and _compute_dtype(x) == torch.bfloat16
        and x.is_contiguous(memory_format=torch.channels_last)
    )


def _clips(x: torch.Tensor, t: int) -> torch.Tensor:
    """Frames in batch (B*T, C, H, W) -> the clip view (B, C, T, H, W)."""
    return x.unflatten(0, (-1, t)).transpose(1, 2)


def _frames(x: torch.Tensor) -> torch.Tensor:
    """Clips (B, C, T, H, W) -> frames in batch (B*T, C, H, W); a view for channels-last-3d clips."""
    return x.transpose(1, 2).flatten(0, 1)


def _cat(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(list(parts), dim=1)


def _shifted_stack(x: torch.Tensor, shifts: tuple[int, ...]) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, len(shifts)*C, H, W): frame t holds frames t+s (zero outside), s in shifts."""
    b, c, t, h, w = x.shape
    pad = max(abs(s) for s in shifts)
    xp = F.pad(x, (0, 0, 0, 0, pad, pad))
    parts = [xp[:, :, pad + s : pad + s + t] for s in shifts]
    return torch.cat(parts, dim=1).transpose(1, 2).reshape(b * t, len(shifts) * c, h, w)


def _frame_stack(xs: Sequence[torch.Tensor], t: int, shifts: tuple[int, ...]) -> torch.Tensor:
    """Frames in batch (B*T, C_i, H, W), joined along channels, -> (B*T, len(shifts)*C, H, W): frame t holds
    frames t+s (zero outside the clip), s in shifts, tap-major. One allocation in the layout of xs[0]."""
    return _FrameStack.apply(t, shifts, *xs)


def _tap_blocks(widths: Sequence[int], t: int, shifts: tuple[int, ...]) -> Iterator[tuple[int, slice, slice, slice]]:
    """(part i, frames of the stack, their source frames in part i, channels of the stack) per tap and part."""
    c = sum(widths)
    for k, s in enumerate(shifts):
        lo, hi = max(0, -s), min(t, t - s)  # frames whose frame t+s is inside the clip
        c0 = k * c
        for i, width in enumerate(widths):
            yield i, slice(lo, hi), slice(lo + s, hi + s), slice(c0, c0 + width)
            c0 += width


class _FrameStack(torch.autograd.Function):
    """`_frame_stack`, with a backward that gathers each part's gradient from the stack's: plain autograd would
    record every slice copy and clone the whole stack's gradient for each."""

    @staticmethod
    def forward(ctx, t: int, shifts: tuple[int, ...], *xs: torch.Tensor) -> torch.Tensor:
        ctx.t, ctx.shifts = t, shifts
        ctx.widths, ctx.dtypes = [x.shape[1] for x in xs], [x.dtype for x in xs]
        bt, _, h, w = xs[0].shape
        cl = xs[0].is_contiguous(memory_format=torch.channels_last)
        out = torch.empty(
            (bt, len(shifts) * sum(ctx.widths), h, w),
            dtype=_compute_dtype(xs[0]),  # the convolution would cast the stack anyway
            device=xs[0].device,
            memory_format=torch.channels_last if cl else torch.contiguous_format,
        )
        dst = out.unflatten(0, (-1, t))  # (B, T, len(shifts)*C, H, W)
        for i, frames, sources, channels in _tap_blocks(ctx.widths, t, shifts):
            block = dst[:, :, channels]
            block[:, frames].copy_(xs[i].unflatten(0, (-1, t))[:, sources])
            block[:, : frames.start].zero_()
            block[:, frames.stop :].zero_()
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        g = grad.unflatten(0, (-1, ctx.t))
        grads: list[torch.Tensor | None] = [None] * len(ctx.widths)
        for i, frames, sources, channels in _tap_blocks(ctx.widths, ctx.t, ctx.shifts):
            if ctx.needs_input_grad[2 + i]:
                if grads[i] is None:
                    grads[i] = torch.zeros_like(grad[:, channels], dtype=ctx.dtypes[i])
                grads[i].unflatten(0, (-1, ctx.t))[:, sources] += g[:, frames, channels]
        return None, None, *grads


class Conv3d(nn.Conv3d):
    """nn.Conv3d that runs as one 2-D convolution when time is unstrided (kernel 3 / pad 1, or kernel 1).

    PyTorch runs fp32 3-D convolutions of small batches on CPU as a slow im2col; stacking the three
    temporal taps along channels gives the same result through oneDNN's 2-D kernels (about 3x faster
    here). Parameters and state_dict keys are those of nn.Conv3d.
    """

    def _shifts(self) -> tuple[int, ...] | None:
        """Temporal offset of each tap when the 2-D form applies, else None."""
        kt, st, pt = self.kernel_size[0], self.stride[0], self.padding[0]
        if st != 1 or self.groups != 1 or self.dilation[0] != 1 or (kt, pt) not in ((3, 1), (1, 0)):
            return None
        return tuple(range(-pt, kt - pt))

    def _conv2d(self, stacked: torch.Tensor) -> torch.Tensor:
        weight = self.weight.transpose(1, 2).flatten(1, 2)  # (O, kt*I, kh, kw), tap-major like the stack
        if self.kernel_size[1:] == (1, 1) and self.padding[1:] == (0, 0) and self.stride[1:] != (1, 1):
            # A strided 1x1 convolution reads a subsampled input. Taking the subsample first is the same sum,
            # cheaper, and avoids PyTorch 2.13's CPU backward of strided 1x1 convolutions of channels-last
            # input, which corrupts the heap with 2+ threads.
            sy, sx = self.stride[1:]
            return F.conv2d(stacked[:, :, ::sy, ::sx], weight, self.bias)
        return F.conv2d(stacked, weight, self.bias, self.stride[1:], self.padding[1:], self.dilation[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifts = self._shifts()
        if shifts is None:
            return super().forward(x)
        b, _, t = x.shape[:3]
        y = self._conv2d(_shifted_stack(x, shifts))
        return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)

    def frames(self, x: torch.Tensor | Sequence[torch.Tensor], t: int) -> torch.Tensor:
        """Frames in batch (B*T, C, H, W), or channel parts of it to concatenate, -> (B*T, O, H', W')."""
        shifts = self._shifts()
        if shifts is None:
            raise ValueError("frames() needs an unstrided temporal kernel 3 / pad 1 or 1 / pad 0")
        parts = [x] if isinstance(x, torch.Tensor) else list(x)
        if shifts == (0,) and len(parts) == 1:
            return self._conv2d(parts[0])  # kernel 1 in time: the frames are the stack
        if _use_3d_kernels(parts[0]):
            return _frames(super().forward(_clips(_cat(parts), t)))
        return self._conv2d(_frame_stack(parts, t, shifts))


class ConvTranspose3d(nn.ConvTranspose3d):
    """nn.ConvTranspose3d as one 2-D transposed convolution when time is unstrided (kernel 3, pad 1)."""

    def _shifts(self) -> tuple[int, ...] | None:
        """Temporal offset of the input frame each tap reads when the 2-D form applies, else None."""
        kt, st, pt = self.kernel_size[0], self.stride[0], self.padding[0]
        if st != 1 or self.groups != 1 or self.dilation[0] != 1 or self.output_padding[0] != 0 or (kt, pt) != (3, 1):
            return None
        return tuple(pt - k for k in range(kt))  # output frame t receives input frame t + pad - k through tap k

    def _conv_transpose2d(self, stacked: torch.Tensor) -> torch.Tensor:
        weight = self.weight.permute(2, 0, 1, 3, 4).flatten(0, 1)  # (kt*I, O, kh, kw), tap-major
        spatial = (self.kernel_size[1:], self.stride[1:], self.padding[1:], self.output_padding[1:], self.dilation[1:])
        if spatial == ((4, 4), (2, 2), (1, 1), (0, 0), (1, 1)):
            return _conv_transpose2d_x2(stacked, weight, self.bias)
        return F.conv_transpose2d(
            stacked,
            weight,
            self.bias,
            self.stride[1:],
            self.padding[1:],
            self.output_padding[1:],
            1,
            self.dilation[1:],
        )

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        shifts = self._shifts()
        if output_size is not None or shifts is None:
            return super().forward(x, output_size)
        b, _, t = x.shape[:3]
        y = self._conv_transpose2d(_shifted_stack(x, shifts))
        return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)

    def frames(self, x: torch.Tensor | Sequence[torch.Tensor], t: int) -> torch.Tensor:
        """Frames in batch (B*T, C, H, W), or channel parts of it to concatenate, -> (B*T, O, H', W')."""
        shifts = self._shifts()
        if shifts is None:
            raise ValueError("frames() needs an unstrided temporal kernel 3 / pad 1")
        parts = [x] if isinstance(x, torch.Tensor) else list(x)
        if _use_3d_kernels(parts[0]):
            return _frames(super().forward(_clips(_cat(parts), t)))
        return self._conv_transpose2d(_frame_stack(parts, t, shifts))


# Sub-pixel form of a transposed convolution with kernel 4, stride 2, padding 1: output row 2i + r is a
# 3-tap correlation of input rows i-1, i, i+1 with the transposed kernel's taps (3, 1, none) for r = 0 and
# (none, 2, 0) for r = 1.


def _subpixel_taps(w: torch.Tensor) -> torch.Tensor:
    """(..., 4) kernel taps -> (..., 2, 3): per output phase r, the taps read by input offsets -1, 0, +1
    (zero where none). Slices and pads only, so it can run inside a CUDA graph capture."""
    f = w.flip(-1)  # taps 3, 2, 1, 0
    return torch.stack([F.pad(f[..., 0::2], (0, 1)), F.pad(f[..., 1::2], (1, 0))], dim=-2)


def _conv_transpose2d_x2(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.conv_transpose2d(x, weight, bias, stride=2, padding=1) for a 4x4 kernel, as one 3x3 convolution
    with 4x the output channels and a pixel shuffle: the same sums, through oneDNN's fast convolution
    instead of PyTorch's slow CPU transposed-convolution path. weight: (I, O, 4, 4)."""
    cin, cout = weight.shape[:2]
    kx = _subpixel_taps(weight.permute(1, 0, 2, 3))  # (O, I, 4y, rx, jx)
    k = _subpixel_taps(kx.permute(0, 1, 3, 4, 2))  # (O, I, rx, jx, ry, jy)
    k = k.permute(0, 4, 2, 1, 5, 3).reshape(cout * 4, cin, 3, 3)  # channel o*4 + ry*2 + rx: pixel shuffle's
    b = None if bias is None else bias.repeat_interleave(4)
    return F.pixel_shuffle(F.conv2d(x, k, b, padding=1), 2)


class BatchNorm3d(nn.BatchNorm3d):
    """nn.BatchNorm3d that also takes frames in batch (B*T, C, H, W): the statistics over (B*T, H, W) are
    those over (B, T, H, W), so train/eval behaviour and running statistics are unchanged."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (4, 5):
            raise ValueError(f"expected 4-D (frames in batch) or 5-D input, got {input.dim()}-D")


class SEGating(nn.Module):
    """Channel gating: global average pool, 1x1x1 conv, sigmoid, multiply."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.attn_layer = nn.Sequential(nn.Conv3d(channels, channels, 1, bias=True), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attn_layer(x.mean(dim=(2, 3, 4), keepdim=True))

    def frames(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """The same on frames in batch (B*T, C, H, W)."""
        conv, sigmoid = self.attn_layer
        clips = x.unflatten(0, (-1, t))  # (B, T, C, H, W)
        if x.is_contiguous(memory_format=torch.channels_last):
            # The mean over (T, H, W) as a product with ones: PyTorch's CPU reductions over the outer
            # dimensions of channels-last memory are several times slower.
            rows = clips.permute(0, 1, 3, 4, 2).flatten(1, 3)  # (B, T*H*W, C), a view
            pooled = (x.new_ones(1, rows.shape[1]) @ rows).squeeze(1) / rows.shape[1]
        else:
            pooled = clips.mean(dim=(1, 3, 4))  # (B, C)
        gate = sigmoid(F.linear(pooled, conv.weight.flatten(1), conv.bias))  # the 1x1x1 conv
        return x * gate.repeat_interleave(t, dim=0)[:, :, None, None]


def _run_frames(layers: nn.Sequential, x: torch.Tensor | Sequence[torch.Tensor], t: int) -> torch.Tensor:
    """Run `layers` on frames in batch; the temporal layers get the clip length t."""
    for layer in layers:
        x = layer.frames(x, t) if isinstance(layer, (Conv3d, ConvTranspose3d, SEGating)) else layer(x)
    return x


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: tuple[int, int, int] = (1, 1, 1)) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            Conv3d(cin, cout, 3, stride, 1, bias=False), BatchNorm3d(cout), nn.ReLU(inplace=True)
        )
        self.conv2 = nn.Sequential(Conv3d(cout, cout, 3, 1, 1, bias=False), BatchNorm3d(cout))
        self.fg = SEGating(cout)
        self.downsample: nn.Module | None = None
        if stride != (1, 1, 1) or cin != cout:
            self.downsample = nn.Sequential(Conv3d(cin, cout, 1, stride, bias=False), BatchNorm3d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """Frames in batch (B*T, C, H, W) -> (B*T, cout, H', W')."""
        out = self.fg.frames(_run_frames(self.conv2, _run_frames(self.conv1, x, t), t), t)
        return self.relu(out + (x if self.downsample is None else _run_frames(self.downsample, x, t)))


class R3DEncoder(nn.Module):
    """R3D-18 encoder with SE gating, layers [2, 2, 2, 2], no temporal striding."""

    def __init__(self, widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = nn.Sequential(
            Conv3d(3, w0, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
            BatchNorm3d(w0),
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

    def forward(self, x: torch.Tensor, t: int) -> list[torch.Tensor]:
        """Frames in batch (B*T, 3, H, W) -> the stem's and the four layers' outputs (x0 at H/2, x4 at H/8)."""
        outs = [_run_frames(self.stem, x, t)]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = outs[-1]
            for block in layer:
                x = block(x, t)
            outs.append(x)
        return outs


class Conv3dBlock(nn.Module):
    """`Conv_3d`: conv 3x3x3 with bias, SE gating, BN."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(Conv3d(cin, cout, 3, 1, 1, bias=True), SEGating(cout), BatchNorm3d(cout))

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor], t: int) -> torch.Tensor:
        """Frames in batch (B*T, cin, H, W), or channel parts of it -> (B*T, cout, H, W)."""
        return _run_frames(self.conv, x, t)


class UpConv3dBlock(nn.Module):
    """`upConv3D`: transposed conv (3, 4, 4) / (1, 2, 2), SE gating, BN."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.upconv = nn.Sequential(
            ConvTranspose3d(cin, cout, (3, 4, 4), (1, 2, 2), (1, 1, 1), bias=True),
            SEGating(cout),
            BatchNorm3d(cout),
        )

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor], t: int) -> torch.Tensor:
        """Frames in batch (B*T, cin, H, W), or channel parts of it -> (B*T, cout, 2H, 2W)."""
        return _run_frames(self.upconv, x, t)


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
        """(B, 3, T, H, W) -> (B, 3, H, W)."""
        b, c, t, h, w = x.shape
        # Frames in batch; a view for the stack of channels-last frames that STMFNet passes.
        x0, x1, x2, x3, x4 = self.encoder(x.transpose(1, 2).reshape(b * t, c, h, w), t)
        # Each skip connection goes in as a second channel part, joined by the block's temporal stack.
        d = self.lrelu(self.decoder[0](x4, t))
        d = self.lrelu(self.decoder[1]([d, x3], t))  # H/4
        d = self.lrelu(self.decoder[2]([d, x2], t))  # H/2
        d = self.lrelu(self.decoder[3]([d, x1], t))
        d = self.lrelu(self.decoder[4]([d, x0], t))  # (B*T, dec4, H, W)
        conv, bn = self.feature_fuse
        if _use_3d_kernels(d):
            # The 1x1 fusion of frame-major channels is a (T, 1, 1) 3-D convolution of the clip view.
            weight = conv.weight.unflatten(1, (t, -1)).transpose(1, 2)  # (fuse, dec4, T, 1, 1)
            fused = F.conv3d(_clips(d, t), weight).squeeze(2)
        else:
            fused = conv(d.unflatten(0, (b, t)).flatten(1, 2))  # frame-major (B, T*dec4, H, W)
        return self.outconv(self.lrelu(bn(fused)))

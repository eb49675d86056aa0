"""AdaCoF: adaptive collaboration of flows (spec §2.4).

Every output pixel is a weighted sum of K*K deformable bilinear taps on a replication-padded image.
Offsets are split with a C integer cast (truncation toward zero), so a negative fractional offset
extrapolates from the ceiling side, e.g. alpha = -0.3 gives 1.3 * I[p] - 0.3 * I[p + 1]; the released
ST-MFNet / Mini weights were trained with exactly this function. Each of the four corner indices is
clamped to the padded image separately.

The PyTorch implementation loops over taps and row chunks, gathering the four corners from a flat
(B, C, Hp*Wp) view of the image, and keeps temporaries cache-sized on CPU. Its autograd Function
saves only the inputs and recomputes the gathers in backward, like the CUDA kernels; no gradient
flows to the image (as upstream).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import _cupy

# Elements per (B, C, rows*W) temporary. On CPU ~2 MiB of float32 keeps the per-tap temporaries in
# cache (measured ~2x faster than whole-image taps); on CUDA large chunks only save launches.
_CHUNK_ELEMENTS = {"cpu": 1 << 19}
_CHUNK_ELEMENTS_DEFAULT = 1 << 25
# Flat indices are formed in floating point (cheaper than int64 arithmetic) while that is exact.
_FLOAT_INDEX_LIMIT = 1 << 24
_GRID_CHUNK = 1 << 20  # samples per grid_sample call in the floor inference path


def adacof(
    image: torch.Tensor,
    weight: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    dilation: int = 1,
    backend: str = "auto",
    rounding: str = "trunc",
) -> torch.Tensor:
    """AdaCoF deformable filtering of a padded image (spec §2.4).

    For output pixel (i, j) and tap t = k*K + l, the tap samples the padded image at
    (i + k*dilation + alpha[t], j + l*dilation + beta[t]) with truncation-based bilinear weights,
    and the taps are summed with `weight[t]`.

    Args:
        image: (B, C, H + (K-1)*dilation, W + (K-1)*dilation), already replication-padded.
        weight: (B, K*K, H, W) tap weights; K is inferred from the channel count.
        alpha: (B, K*K, H, W) vertical (row) offsets in pixels.
        beta: (B, K*K, H, W) horizontal (column) offsets in pixels.
        dilation: tap spacing D >= 1.
        backend: "auto" (CuPy kernel for CUDA float32/16 tensors when available and self-checked,
            else PyTorch), "torch" or "cupy".
        rounding: how an offset is split into whole and fractional parts. "trunc" (default) is upstream
            AdaCoF: truncation toward zero, so a negative fraction extrapolates from the ceiling side;
            the released ST-MFNet weights need it. "floor" gives true bilinear sampling between the two
            nearest pixels (an architecture option for newly trained weights, `STMFNetConfig`).

    Returns:
        (B, C, H, W) in the promoted dtype of the inputs. float16/bfloat16 are computed in float32.
        Differentiable w.r.t. weight, alpha and beta; the image receives no gradient.

    Raises:
        ValueError: inconsistent shapes, K*K not a perfect square, dilation < 1, unknown backend.
        BackendUnavailable: backend="cupy" without CuPy or with non-CUDA tensors.
    """
    _check_shapes(image, weight, alpha, beta, dilation)
    if rounding not in ("trunc", "floor"):
        raise ValueError(f"adacof: rounding must be 'trunc' or 'floor', got {rounding!r}")
    floor = rounding == "floor"
    out_dtype, dtype = _cupy.compute_dtypes(image, weight, alpha, beta)
    if _cupy.use_cupy(backend, "adacof", image.device, dtype, _probe):
        tensors = [t.to(torch.float32).contiguous() for t in (image, weight, alpha, beta)]
        return _cupy.adacof(*tensors, dilation, floor).to(out_dtype)
    # .to()/.contiguous() are no-ops for float32 NCHW inputs; channels_last and half inputs are copied.
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (image, weight, alpha, beta))
    if floor and not grad:
        # Maps in any layout and float dtype (channels-last bf16 from the heads): no conversion copies.
        return _adacof_grid_sample(image.to(dtype).contiguous(), weight, alpha, beta, dilation).to(out_dtype)
    image, weight, alpha, beta = (t.to(dtype).contiguous() for t in (image, weight, alpha, beta))
    if grad:
        out = _AdaCoFFunction.apply(image, weight, alpha, beta, dilation, floor)
    else:
        out = _adacof_forward(image, weight, alpha, beta, dilation, floor)
    return out.to(out_dtype)


def _check_shapes(image, weight, alpha, beta, dilation) -> int:
    if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"adacof: dilation must be an int >= 1, got {dilation!r}")
    if image.dim() != 4 or weight.dim() != 4:
        raise ValueError(f"adacof: expected 4-D image and maps, got {tuple(image.shape)} and {tuple(weight.shape)}")
    if alpha.shape != weight.shape or beta.shape != weight.shape:
        raise ValueError(
            f"adacof: weight {tuple(weight.shape)}, alpha {tuple(alpha.shape)} and beta "
            f"{tuple(beta.shape)} must have the same shape"
        )
    b, kk, h, w = weight.shape
    k = math.isqrt(kk)
    if k * k != kk or kk == 0:
        raise ValueError(f"adacof: weight has {kk} channels, which is not K*K for an integer K")
    pad = (k - 1) * dilation
    if image.shape[0] != b or image.shape[2:] != (h + pad, w + pad):
        raise ValueError(
            f"adacof: image {tuple(image.shape)} does not fit maps {tuple(weight.shape)} with "
            f"K={k}, dilation={dilation}: expected ({b}, C, {h + pad}, {w + pad})"
        )
    return k


def _trunc(x: torch.Tensor) -> torch.Tensor:
    # Same values as torch.trunc (the C integer cast of upstream), but vectorised on CPU, where
    # torch.trunc is ~20x slower than floor.
    return x.abs().floor_().copysign_(x)


def _taps(
    image: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, dilation: int, floor: bool = False
) -> Iterator[tuple]:
    """Yield, for every row chunk [y0, y1) of the output and every tap t:
    (y0, y1, t, fa, fb, (v00, v10, v01, v11)), with fa, fb: (B, 1, n) the signed fractional offsets
    and vYX: (B, C, n) the samples at the clamped corners (row y0/y1, column x0/x1), n = (y1-y0)*W."""
    b, c, hp, wp = image.shape
    kk, h, w = alpha.shape[1:]
    k = math.isqrt(kk)
    # One more replicated pixel on every side turns the separately clamped pair
    # (clamp(v, 0, Hp-1), clamp(v+1, 0, Hp-1)) into (r, r+1) in padded coordinates with
    # r = clamp(v+1, 0, Hp); the four corners are then four fixed shifts of one flat index.
    h2, w2 = hp + 2, wp + 2
    flat = F.pad(image, (1, 1, 1, 1), mode="replicate").view(b, c, h2 * w2)
    span = h2 * w2 - w2 - 1
    corners = [flat[:, :, s : s + span] for s in (0, w2, 1, w2 + 1)]  # 00, 10, 01, 11; each (B, C, span)
    float_index = h2 * w2 <= (_FLOAT_INDEX_LIMIT if alpha.dtype == torch.float32 else 1 << 53)
    cols = torch.arange(w, device=image.device, dtype=alpha.dtype)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS.get(image.device.type, _CHUNK_ELEMENTS_DEFAULT) // (b * c * w))
    for y0 in range(0, h, rows_per_chunk):
        y1 = min(h, y0 + rows_per_chunk)
        n = (y1 - y0) * w
        rows = torch.arange(y0, y1, device=image.device, dtype=alpha.dtype).view(-1, 1)
        for t in range(kk):
            a, bb = alpha[:, t, y0:y1], beta[:, t, y0:y1]  # (B, R, W)
            whole_a, whole_b = (a.floor(), bb.floor()) if floor else (_trunc(a), _trunc(bb))
            fa, fb = (a - whole_a).view(b, 1, n), (bb - whole_b).view(b, 1, n)
            # NaN offsets would make invalid indices: send them to 0 (the output stays NaN via fa/fb).
            r = whole_a.add_(rows).add_((t // k) * dilation + 1).nan_to_num_(0.0).clamp_(0, hp)
            s = whole_b.add_(cols).add_((t % k) * dilation + 1).nan_to_num_(0.0).clamp_(0, wp)
            index = r.mul_(w2).add_(s).long() if float_index else r.long() * w2 + s.long()
            index = index.view(b, 1, n).expand(b, c, n)
            yield y0, y1, t, fa, fb, tuple(src.gather(2, index) for src in corners)


def _adacof_forward(image, weight, alpha, beta, dilation, floor=False) -> torch.Tensor:
    b, c = image.shape[:2]
    h, w = weight.shape[2:]
    out = image.new_empty(b, c, h, w)
    for y0, y1, t, fa, fb, (v00, v10, v01, v11) in _taps(image, alpha, beta, dilation, floor):
        acc = out[:, :, y0:y1].view(b, c, -1)  # (B, C, n) view into out
        if t == 0:
            acc.zero_()
        # lerp with weights outside [0, 1] is the truncation extrapolation, in one pass per pair.
        tap = torch.lerp(torch.lerp(v00, v10, fa), torch.lerp(v01, v11, fa), fb)
        acc.addcmul_(tap, weight[:, t, y0:y1].reshape(b, 1, -1))
    return out


def _adacof_grid_sample(image, weight, alpha, beta, dilation) -> torch.Tensor:
    """Forward for floor rounding, where every tap is plain bilinear sampling, through `grid_sample` (a
    fused, vectorised kernel). Clamping the sample position to the image ("border") equals clamping each
    corner index separately, so this is the same function as `_adacof_forward(..., floor=True)`.

    The maps are read as (B, H, W, K*K): free for the channels-last maps the heads produce on CPU. Each
    chunk of rows samples all taps of a pixel side by side (a grid of (B, R, W*K*K)) and reduces them with
    the weights. The maps may be of a lower precision than `image`, whose dtype positions and sums use.
    """
    b, c, hp, wp = image.shape
    kk, h, w = weight.shape[1:]
    k = math.isqrt(kk)
    w_t, a_t, b_t = (m.permute(0, 2, 3, 1).contiguous() for m in (weight, alpha, beta))  # (B, H, W, KK)
    taps = torch.arange(kk, device=image.device)
    # Sample position of tap t at pixel (i, j): (i + (t // k) * D + alpha, j + (t % k) * D + beta), in
    # grid_sample's align_corners=True coordinates, where -1 / +1 are the centres of the first / last pixel.
    sy, sx = 2.0 / max(hp - 1, 1), 2.0 / max(wp - 1, 1)
    tap_y = ((taps // k) * dilation).to(image.dtype)
    tap_x = ((taps % k) * dilation).to(image.dtype)
    xs = (torch.arange(w, device=image.device, dtype=image.dtype).view(w, 1) + tap_x).mul_(sx).sub_(1.0)  # (W, KK)
    out = image.new_empty(b, c, h, w)
    # grid_sample runs its batch items in parallel, one thread each: with a single frame, the rows of a
    # chunk are split into `parts` batch items that sample the same (expanded, not copied) image.
    parts = torch.get_num_threads() if b == 1 and image.device.type == "cpu" else 1
    rows = parts * max(1, _GRID_CHUNK // (b * w * kk * parts))
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        n = y1 - y0
        p = parts if n % parts == 0 else 1
        ys = (torch.arange(y0, y1, device=image.device, dtype=image.dtype).view(-1, 1, 1) + tap_y).mul_(sy).sub_(1.0)
        gx = (b_t[:, y0:y1].to(image.dtype) * sx).add_(xs)  # (B, R, W, KK); never in place on the maps
        gy = (a_t[:, y0:y1].to(image.dtype) * sy).add_(ys)
        grid = torch.stack((gx, gy), dim=-1).view(b * p, n // p, w * kk, 2)
        source = image.expand(p, c, hp, wp) if p > 1 else image
        samples = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=True)
        taps_w = w_t[:, y0:y1].reshape(b * p, 1, n // p, w, kk)
        mixed = samples.view(b * p, c, n // p, w, kk).mul_(taps_w).sum(-1)  # (B*P, C, R/P, W)
        if p > 1:  # (P, C, R/P, W) -> (C, R, W)
            mixed = mixed.transpose(0, 1).reshape(1, c, n, w)
        out[:, :, y0:y1] = mixed
    return out


def _adacof_backward(grad_out, image, weight, alpha, beta, dilation, needs, floor=False):
    b, c = image.shape[:2]
    grad_w, grad_a, grad_b = (torch.empty_like(weight) if need else None for need in needs)
    for y0, y1, t, fa, fb, (v00, v10, v01, v11) in _taps(image, alpha, beta, dilation, floor):
        g = grad_out[:, :, y0:y1].reshape(b, c, -1)  # (B, C, n)
        col0, col1 = torch.lerp(v00, v10, fa), torch.lerp(v01, v11, fa)  # rows mixed, at x0 / x1
        w_t = weight[:, t, y0:y1]  # (B, R, W)
        shape = w_t.shape
        if grad_w is not None:
            grad_w[:, t, y0:y1] = (g * torch.lerp(col0, col1, fb)).sum(1).view(shape)
        if grad_a is not None:  # d tap / d alpha = (1-fb)(v10 - v00) + fb (v11 - v01)
            grad_a[:, t, y0:y1] = (g * torch.lerp(v10 - v00, v11 - v01, fb)).sum(1).view(shape) * w_t
        if grad_b is not None:  # d tap / d beta = (1-fa)(v01 - v00) + fa (v11 - v10)
            grad_b[:, t, y0:y1] = (g * (col1 - col0)).sum(1).view(shape) * w_t
    return grad_w, grad_a, grad_b


class _AdaCoFFunction(torch.autograd.Function):
    """Saves only the inputs; the gathers are recomputed in backward (no per-tap activations)."""

    @staticmethod
    def forward(ctx, image, weight, alpha, beta, dilation: int, floor: bool = False):
        ctx.save_for_backward(image, weight, alpha, beta)
        ctx.dilation, ctx.floor = dilation, floor
        return _adacof_forward(image, weight, alpha, beta, dilation, floor)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        image, weight, alpha, beta = ctx.saved_tensors
        grads = _adacof_backward(
            grad_out.contiguous(), image, weight, alpha, beta, ctx.dilation, ctx.needs_input_grad[1:4], ctx.floor
        )
        return None, *grads, None, None


def _probe(device: torch.device):
    """Self-check input for the CuPy kernel: forward and all three gradients, both paths."""
    gen = torch.Generator().manual_seed(0)
    k, d, h, w = 3, 2, 9, 13
    image = torch.rand(2, 3, h + (k - 1) * d, w + (k - 1) * d, generator=gen).to(device)
    maps = [torch.rand(2, k * k, h, w, generator=gen)] + [
        4 * torch.randn(2, k * k, h, w, generator=gen) for _ in range(2)
    ]
    grad = torch.randn(2, 3, h, w, generator=gen).to(device)
    results = []
    for impl in (_cupy.adacof, _AdaCoFFunction.apply):
        leaves = [m.to(device, copy=True).requires_grad_() for m in maps]
        out = impl(image, *leaves, d)
        results.append([out.detach(), *torch.autograd.grad(out, leaves, grad)])
    return results[0], results[1]

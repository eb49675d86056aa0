"""Softmax splatting (spec §2.5.3): forward warping with exp(metric) soft z-buffering.

Summation splatting Σsplat(x, f) adds every source value to the four floor-based bilinear neighbours
of its target (x + f_x, y + f_y); neighbours outside the frame are dropped. Softmax splatting is
Σsplat(I·e^Z, f) / Σsplat(e^Z, f), with the denominator replaced by 1 where it is exactly 0, so holes
stay 0. Only Σsplat is a kernel; the normalisation is shared PyTorch code for both backends.
"""

from __future__ import annotations

import torch

from . import _cupy


def softsplat(image: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Forward-warp `image` along `flow`, resolving collisions with softmax weights exp(metric).

    Args:
        image: (B, C, H, W) source image.
        flow: (B, 2, H, W) forward flow in pixels; channel 0 is horizontal (x), channel 1 vertical (y).
        metric: (B, 1, H, W) importance Z of each source pixel. exp(Z) is taken without
            max-subtraction, as upstream (safe for the trained metric, which is <= 0).
        backend: "auto" (CuPy Σsplat kernel for CUDA float32/16 tensors when available and
            self-checked, else PyTorch), "torch" or "cupy".

    Returns:
        (B, C, H, W) in the promoted dtype of the inputs (float16/bfloat16 are computed in float32);
        target pixels that receive nothing are 0. Differentiable w.r.t. image, flow and metric.

    Raises:
        ValueError: inconsistent shapes or unknown backend.
        BackendUnavailable: backend="cupy" without CuPy or with non-CUDA tensors.
    """
    for name, t, channels in (("flow", flow, 2), ("metric", metric, 1)):
        if image.dim() != 4 or t.shape != (image.shape[0], channels, *image.shape[2:]):
            raise ValueError(
                f"softsplat: {name} {tuple(t.shape)} must be (B, {channels}, H, W) for image {tuple(image.shape)}"
            )
    out_dtype, dtype = _cupy.compute_dtypes(image, flow, metric)
    image, flow, metric = (t.to(dtype) for t in (image, flow, metric))
    weight = metric.exp()
    splat = _sumsplat(torch.cat([image * weight, weight], 1), flow, backend)  # (B, C+1, H, W)
    numerator, denominator = splat[:, :-1], splat[:, -1:]
    # where() instead of in-place masking keeps autograd intact; holes: 0 / 1 = 0.
    denominator = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return (numerator / denominator).to(out_dtype)


def _sumsplat(image: torch.Tensor, flow: torch.Tensor, backend: str) -> torch.Tensor:
    if _cupy.use_cupy(backend, "softsplat", image.device, image.dtype, _probe):
        return _cupy.sumsplat(image.float().contiguous(), flow.float().contiguous()).to(image.dtype)
    return _sumsplat_torch(image, flow)


def _sumsplat_torch(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Summation splatting with scatter_add; (B, C, H, W), (B, 2, H, W) -> (B, C, H, W).

    Autograd gives the gradients w.r.t. image and flow (the floor is constant); results are
    deterministic on CPU.
    """
    b, c, h, w = image.shape
    tx = flow[:, 0] + torch.arange(w, device=flow.device, dtype=flow.dtype)  # (B, H, W)
    ty = flow[:, 1] + torch.arange(h, device=flow.device, dtype=flow.dtype).view(-1, 1)
    x0, y0 = tx.detach().floor(), ty.detach().floor()
    # Bilinear factors in the upstream form (x0 + 1 - tx), (tx - x0): west/east, north/south.
    fx = {0: x0 + 1 - tx, 1: tx - x0}
    fy = {0: y0 + 1 - ty, 1: ty - y0}
    src = image.reshape(b, c, h * w)
    out = image.new_zeros(b, c, h * w)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        xs, ys = x0 + dx, y0 + dy
        valid = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)  # False for NaN/inf targets too
        weight = torch.where(valid, fx[dx] * fy[dy], torch.zeros_like(tx))
        index = torch.where(valid, ys, 0).long() * w + torch.where(valid, xs, 0).long()
        out.scatter_add_(2, index.view(b, 1, -1).expand(b, c, -1), src * weight.view(b, 1, -1))
    return out.view(b, c, h, w)


def _probe(device: torch.device):
    """Self-check input for the CuPy Σsplat kernel: forward and gradients w.r.t. image and flow."""
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 12, 17, generator=gen)
    flow = 3 * torch.randn(2, 2, 12, 17, generator=gen)
    grad = torch.randn(2, 3, 12, 17, generator=gen).to(device)
    results = []
    for impl in (_cupy.sumsplat, _sumsplat_torch):
        leaves = [image.to(device, copy=True).requires_grad_(), flow.to(device, copy=True).requires_grad_()]
        out = impl(*leaves)
        results.append([out.detach(), *torch.autograd.grad(out, leaves, grad)])
    return results[0], results[1]

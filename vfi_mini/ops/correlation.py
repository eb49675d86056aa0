"""PWC-Net cost volume (spec §2.5.4): FlowNet2-style correlation, kernel 1, max displacement 4."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _cupy

MAX_DISPLACEMENT = 4
CHANNELS = (2 * MAX_DISPLACEMENT + 1) ** 2  # 81


def correlation(f1: torch.Tensor, f2: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Cost volume between two feature maps.

    Channel (dy + 4) * 9 + (dx + 4), for dy, dx in [-4, 4] (row-major in dy), holds
    mean_c f1[c, y, x] * f2[c, y + dy, x + dx], with f2 zero outside the frame. The LeakyReLU of
    PWC-Net is applied by the caller, not here.

    Args:
        f1: (B, C, H, W) features of the first frame.
        f2: (B, C, H, W) features of the second (possibly backward-warped) frame.
        backend: "auto" (CuPy forward kernel for CUDA float32/16 tensors when available and
            self-checked, else PyTorch), "torch" or "cupy". The CuPy path differentiates through the
            PyTorch implementation in backward.

    Returns:
        (B, 81, H, W) in the promoted dtype of the inputs (float16/bfloat16 are computed in float32).

    Raises:
        ValueError: f1 and f2 differ in shape or are not 4-D; unknown backend.
        BackendUnavailable: backend="cupy" without CuPy or with non-CUDA tensors.
    """
    if f1.dim() != 4 or f1.shape != f2.shape:
        raise ValueError(
            f"correlation: expected two (B, C, H, W) tensors of one shape, got {tuple(f1.shape)} and {tuple(f2.shape)}"
        )
    out_dtype, dtype = _cupy.compute_dtypes(f1, f2)
    if _cupy.use_cupy(backend, "correlation", f1.device, dtype, _probe):
        f1, f2 = (t.to(torch.float32).contiguous() for t in (f1, f2))
        return _cupy.correlation(f1, f2, _correlation_torch).to(out_dtype)
    return _correlation_torch(f1.to(dtype), f2.to(dtype)).to(out_dtype)


def _correlation_torch(f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    # 81 shifted products keep memory at one (B, C, H, W) temporary; on 2 CPU cores this is as fast
    # as unfold/bmm/einsum variants at PWC-Net's feature sizes.
    h, w = f1.shape[2:]
    d = MAX_DISPLACEMENT
    padded = F.pad(f2, (d, d, d, d))
    volume = [
        (f1 * padded[:, :, dy : dy + h, dx : dx + w]).mean(1) for dy in range(2 * d + 1) for dx in range(2 * d + 1)
    ]
    return torch.stack(volume, 1)  # (B, 81, H, W)


def _probe(device: torch.device):
    """Self-check input for the CuPy forward kernel."""
    gen = torch.Generator().manual_seed(0)
    f1, f2 = (torch.randn(2, 7, 10, 13, generator=gen).to(device) for _ in range(2))
    return [_cupy.correlation(f1, f2, _correlation_torch)], [_correlation_torch(f1, f2)]

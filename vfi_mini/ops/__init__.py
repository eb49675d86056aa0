"""Custom operators of ST-MFNet: AdaCoF, softmax splatting, correlation and backward warping.

Conventions (all ops):
- Tensors are NCHW; channels_last and other strided inputs are accepted (copied to contiguous).
- Flows are in pixels with channel 0 horizontal (x) and channel 1 vertical (y); AdaCoF's alpha is the
  vertical and beta the horizontal offset.
- Outputs have the promoted dtype of the inputs; float16/bfloat16 are computed in float32, float64 in
  float64 (for gradcheck).
- `backend` chooses the implementation: "torch" is the pure-PyTorch reference (any device), "cupy"
  the optional CUDA kernels (`pip install vfi-mini[cuda12]`), "auto" the kernels when the tensors are
  on CUDA, CuPy is importable and the kernel passed its one-time self-check, else PyTorch.
  `backwarp` is plain `grid_sample` and has no backend choice.
"""

from __future__ import annotations

from . import _cupy
from .adacof import adacof
from .backwarp import backwarp
from .correlation import correlation
from .softsplat import softsplat

__all__ = ["adacof", "available_backends", "backwarp", "correlation", "softsplat"]


def available_backends() -> list[str]:
    """Op backends usable in this process: always "torch", plus "cupy" when CuPy and CUDA are."""
    return ["torch", "cupy"] if _cupy.is_available() else ["torch"]

"""Backward warping as used by PWC-Net and the occlusion metric (spec §2.5.4), device-agnostic.

Upstream hard-codes `.cuda()` for the sampling grid; here the grid is built on the flow's device.
The grid/normalisation pair is slightly inconsistent (pixel-centre grid, flow divided by (size-1)/2)
and is kept as is for compatibility with the released weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _cupy


def backwarp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `image` at (x + flow_x, y + flow_y) and zero every pixel whose sample leaves the frame.

    The base grid is linspace(-1 + 1/W, 1 - 1/W, W) (and likewise for H, with the flow's size),
    the flow is normalised by ((W_image - 1) / 2, (H_image - 1) / 2), `grid_sample` is bilinear with
    zero padding and align_corners=False, and a pixel is kept only where a sampled ones-channel is
    > 0.999.

    Args:
        image: (B, C, H_image, W_image) image or features.
        flow: (B, 2, H, W) backward flow in pixels; channel 0 is horizontal (x), channel 1 vertical (y).

    Returns:
        (B, C, H, W) in the promoted dtype of the inputs (float16/bfloat16 are computed in float32:
        a half-precision sampling grid would be off by up to ~0.5 pixel at 1000 pixels).

    Raises:
        ValueError: flow not (B, 2, H, W) for image's batch size.
    """
    if image.dim() != 4 or flow.dim() != 4 or flow.shape[:2] != (image.shape[0], 2):
        raise ValueError(f"backwarp: flow {tuple(flow.shape)} must be (B, 2, H, W) for image {tuple(image.shape)}")
    out_dtype, dtype = _cupy.compute_dtypes(image, flow)
    image, flow = image.to(dtype), flow.to(dtype)
    b, _, hi, wi = image.shape
    h, w = flow.shape[2:]
    hor = torch.linspace(-1.0 + 1.0 / w, 1.0 - 1.0 / w, w, device=flow.device, dtype=dtype).view(1, 1, w)
    ver = torch.linspace(-1.0 + 1.0 / h, 1.0 - 1.0 / h, h, device=flow.device, dtype=dtype).view(1, h, 1)
    grid_x = hor + flow[:, 0] / ((wi - 1.0) / 2.0)  # (B, H, W)
    grid_y = ver + flow[:, 1] / ((hi - 1.0) / 2.0)
    grid = torch.stack([grid_x, grid_y], -1)  # (B, H, W, 2)
    sampled = F.grid_sample(
        torch.cat([image, image.new_ones(b, 1, hi, wi)], 1),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    mask = (sampled[:, -1:] > 0.999).to(dtype)  # constant: upstream's in-place masking passes no gradient
    return (sampled[:, :-1] * mask).to(out_dtype)

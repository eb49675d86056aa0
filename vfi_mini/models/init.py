"""Blend initialisation: a freshly built model whose output starts at (almost exactly) the frame blend.

A randomly initialised ST-MFNet starts far below the simplest baseline (50/50 blending of I1 and I2) and,
on our CPU budget, takes thousands of steps to climb back to it. Here the last layer of every branch is
set so that, at step 0:

- every AdaCoF weight head puts almost all weight on the centre tap (centre logit `centre_logit`, the
  other 24 near 0) and every offset head outputs ~0, so each AdaCoF candidate is ~the source frame itself;
- the GridNet passes its row-1 input straight through (identity shortcut, zeroed residual branches, zeroed
  down/up blocks) and its output block averages the two AdaCoF candidates;
- the TENet's output convolution is zero, so its residual is 0.

The output is then the blend of I1 and I2, up to a faint 5x5 blur. Every layer still receives gradient
(zero-initialised last layers of residual branches, as in "zero-init residual" training), and a small
random part (`noise` times PyTorch's default initialisation) is kept on the zeroed-in layers where the
model would otherwise stay symmetric. The centre tap is where a flow-like motion can be learned first:
its offsets get the full image gradient, and flow distillation pulls exactly on them.
"""

from __future__ import annotations

import torch
from torch import nn

from .gridnet import LateralBlock, MIMOGridNet
from .kernels import KernelEstimation
from .stmfnet import STMFNet


def _last_conv(seq: nn.Sequential) -> nn.Conv2d:
    return [m for m in seq if isinstance(m, nn.Conv2d)][-1]


def _zero(conv: nn.Module) -> None:
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


@torch.no_grad()
def _init_kernels(heads: KernelEstimation, kernel_size: int, centre_logit: float, noise: float) -> None:
    centre = (kernel_size * kernel_size) // 2
    for name, head in heads.named_children():
        conv = _last_conv(head)
        conv.weight.mul_(noise)
        nn.init.zeros_(conv.bias)
        if name.startswith("moduleWeight"):
            conv.bias[centre] = centre_logit


@torch.no_grad()
def _init_gridnet(grid: MIMOGridNet, row1_in: int) -> None:
    width = grid.lateral_1_0.conv.out_channels if grid.lateral_1_0.conv is not None else row1_in
    if width < row1_in:
        raise ValueError(f"blend init needs GridNet row-1 width >= {row1_in}, got {width}")
    for name, block in grid.named_children():
        if isinstance(block, LateralBlock) and (name.startswith("lateral_1_") or name == "lateral_final_1"):
            _zero(block.f[-1])
        elif name in ("down_0_0", "down_0_1", "up_1_0", "up_1_1"):  # the blocks that feed row 1
            _zero(block.f[-1])
    if grid.lateral_1_0.conv is not None:
        # Exact copy into the first row1_in channels; the other channels keep their random init so that
        # they carry features (and the output block's zero weights on them receive gradient).
        conv = grid.lateral_1_0.conv
        conv.weight[:row1_in].zero_()
        conv.weight[:row1_in, :, 1, 1] = torch.eye(row1_in)
        conv.bias[:row1_in].zero_()
    final = grid.lateral_final_1.conv
    _zero(final)
    final.weight[:, :3, 1, 1] = 0.5 * torch.eye(3)  # AdaCoF candidate of I1
    final.weight[:, 3:6, 1, 1] = 0.5 * torch.eye(3)  # AdaCoF candidate of I2


@torch.no_grad()
def blend_init(model: STMFNet, centre_logit: float = 8.0, noise: float = 0.1) -> STMFNet:
    """Re-initialise `model` in place so that its output starts at the blend of I1 and I2 (see module doc)."""
    cfg = model.config
    _init_kernels(model.get_kernel, cfg.kernel_size, centre_logit, noise)
    _init_gridnet(model.scale_synthesis, 12 if cfg.flow else 6)
    _zero(model.dyntex_generator.outconv[-1])
    return model

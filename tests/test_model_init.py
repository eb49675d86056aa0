"""Blend initialisation: a fresh model whose output starts at the frame blend and that still learns."""

import pytest
import torch
import torch.nn.functional as F

from vfi_mini.models import build_model
from vfi_mini.models.init import blend_init


def _smooth_frames(seed: int, size: int = 128) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [F.interpolate(torch.rand(1, 3, 16, 16, generator=g), size=(size, size), mode="bilinear") for _ in range(4)]


@pytest.mark.parametrize("arch", ["stmfnet-mini", "stmfnet"])
def test_blend_init_output_is_the_blend(arch):
    torch.manual_seed(0)
    model = blend_init(build_model(arch)).eval()
    frames = _smooth_frames(1)
    with torch.no_grad():
        out = model(*frames)
    blend = (frames[1] + frames[2]) / 2
    assert (out - blend).abs().max() < 5e-3
    # A default-initialised model is nowhere near the blend.
    with torch.no_grad():
        plain = build_model(arch).eval()(*frames)
    assert (plain - blend).abs().mean() > 10 * (out - blend).abs().mean()


def _stuck_after_training(model: torch.nn.Module) -> set[str]:
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    opt = torch.optim.Adamax(model.parameters(), lr=1e-3)
    for step in range(3):
        frames = _smooth_frames(10 + step)
        target = 0.3 * frames[1] + 0.7 * frames[2]  # not the blend: something to learn
        out = model(*frames)
        out = out["frame1"] if isinstance(out, dict) else out
        loss = (out - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k for k, v in model.state_dict().items() if v.is_floating_point() and torch.equal(v, before[k])}


def test_blend_init_leaves_no_dead_layers():
    """Zeroed last layers must not leave parts of the network without gradient: after three steps the
    parameters that have not moved are exactly those that do not move from a default initialisation
    either (frozen filters, GridNet's dead row-0 blocks, PReLUs on non-negative inputs, ...)."""
    torch.manual_seed(0)
    default = _stuck_after_training(build_model("stmfnet-mini"))
    torch.manual_seed(0)
    blend = _stuck_after_training(blend_init(build_model("stmfnet-mini")))
    assert "gauss_kernel" in blend and "scale_synthesis.lateral_0_3.f.1.weight" in blend  # the check can fail
    assert blend <= default, sorted(blend - default)

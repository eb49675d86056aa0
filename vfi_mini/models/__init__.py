"""The ST-MFNet model family: one configurable module, named presets."""

from __future__ import annotations

from .config import PRESET_PARAMS, PRESETS, STMFNetConfig, resolve_arch
from .stmfnet import STMFNet


def build_model(arch: str | STMFNetConfig = "stmfnet-mini") -> STMFNet:
    """Build a randomly initialised model from a preset name or a config.

    Raises:
        KeyError: `arch` names no preset.
    """
    if isinstance(arch, str):
        if arch not in PRESETS:
            raise KeyError(f"unknown architecture {arch!r}; choose one of {', '.join(PRESETS)}")
        arch = PRESETS[arch]
    return STMFNet(arch)


def count_parameters(model: STMFNet) -> int:
    """Number of parameter elements, frozen filter taps included (the figure the papers quote)."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["PRESETS", "PRESET_PARAMS", "STMFNet", "STMFNetConfig", "build_model", "count_parameters", "resolve_arch"]

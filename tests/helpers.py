"""Test helpers shared by several test modules (no fixtures here: see conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

DATA = Path(__file__).parent / "data"
MANIFESTS = {
    "stmfnet": DATA / "stmfnet_state_dict.json",
    "stmfnet-mini": DATA / "stmfnet_mini_state_dict.json",
}


def manifest(arch: str) -> dict[str, list[int]]:
    return json.loads(MANIFESTS[arch].read_text())


def random_state_dict_from_manifest(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict with every key and shape of the official checkpoint, filled with random values that
    keep the network numerically sane (small weights, positive BN variances)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in manifest(arch).items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(int(torch.randint(0, 1000, (), generator=g)), dtype=torch.int64)
        elif key.endswith("running_var"):
            sd[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith("running_mean"):
            sd[key] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) >= 2:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod()))
            sd[key] = torch.randn(shape, generator=g) / fan_in**0.5
        else:
            sd[key] = 0.1 * torch.randn(shape, generator=g) + (1.0 if key.endswith(".weight") else 0.0)
    return sd


def save_official(path: Path, sd: dict[str, torch.Tensor], epoch: int = 7) -> Path:
    torch.save({"epoch": epoch, "state_dict": sd}, str(path))
    return path

"""Density report of a (sparse) model: per parameter tensor, non-zeros / elements (spec §12.3).

- A tensor's density is d = 1 - zeros / elements.
- The global density is sum(non-zeros) / sum(elements) over every parameter whose name contains "weight"
  (the development fork's definition: conv, linear, BN and PReLU weights; biases are left out).
- The mean layer density is the unweighted mean of d over the tensors with >= 2 dimensions.
- Component densities are sum(non-zeros) / sum(elements) over all parameters of each top-level module.
The fixed filter taps (`FIXED_TAPS`, never trained) are listed with ``frozen: true`` and count in no summary.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

FIXED_TAPS = ("gauss_kernel", "upsampler.filter")


@dataclass(frozen=True)
class TensorDensity:
    name: str
    shape: tuple[int, ...]
    nonzero: int
    frozen: bool = False

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def density(self) -> float:
        return self.nonzero / self.numel if self.numel else 1.0


@dataclass
class DensityReport:
    tensors: list[TensorDensity] = field(default_factory=list)

    @classmethod
    def from_model(cls, model: torch.nn.Module) -> DensityReport:
        """Count the exact zeros of every parameter of `model`."""
        return cls(
            [
                TensorDensity(name, tuple(p.shape), int(torch.count_nonzero(p.detach())), name in FIXED_TAPS)
                for name, p in model.named_parameters()
            ]
        )

    @property
    def density(self) -> dict[str, float]:
        return {t.name: t.density for t in self.tensors}

    @property
    def numel(self) -> dict[str, int]:
        return {t.name: t.numel for t in self.tensors}

    def _live(self) -> Iterable[TensorDensity]:
        return (t for t in self.tensors if not t.frozen)

    @property
    def global_density(self) -> float:
        chosen = [t for t in self._live() if "weight" in t.name]
        return _ratio(chosen)

    @property
    def mean_layer_density(self) -> float:
        chosen = [t.density for t in self._live() if len(t.shape) >= 2]
        return sum(chosen) / len(chosen) if chosen else 1.0

    @property
    def components(self) -> dict[str, float]:
        groups: dict[str, list[TensorDensity]] = {}
        for t in self._live():
            groups.setdefault(t.name.split(".")[0], []).append(t)
        return {k: _ratio(v) for k, v in groups.items()}

    def component_density(self, prefixes: tuple[str, ...]) -> float | None:
        """sum(non-zeros) / sum(elements) over the live tensors under these prefixes (None: no such tensor)."""
        chosen = [t for t in self._live() if t.name.startswith(prefixes)]
        return _ratio(chosen) if chosen else None

    def to_dict(self) -> dict[str, Any]:
        live = list(self._live())
        return {
            "global_density": self.global_density,
            "mean_layer_density": self.mean_layer_density,
            "parameters": sum(t.numel for t in live),
            "nonzero": sum(t.nonzero for t in live),
            "components": self.components,
            "tensors": [
                {
                    "name": t.name,
                    "shape": list(t.shape),
                    "numel": t.numel,
                    "nonzero": t.nonzero,
                    "density": t.density,
                    **({"frozen": True} if t.frozen else {}),
                }
                for t in self.tensors
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DensityReport:
        return cls(
            [
                TensorDensity(t["name"], tuple(t["shape"]), int(t["nonzero"]), bool(t.get("frozen", False)))
                for t in d["tensors"]
            ]
        )

    def table(self) -> str:
        """A fixed-width text table: one line per tensor, then the component and global densities."""
        width = max([len(t.name) for t in self.tensors] + [6])
        lines = [f"{'tensor':<{width}}  {'shape':<20} {'elements':>10} {'density':>8}"]
        for t in self.tensors:
            shape = "x".join(str(s) for s in t.shape) or "scalar"
            note = "  (frozen)" if t.frozen else ""
            lines.append(f"{t.name:<{width}}  {shape:<20} {t.numel:>10,} {t.density:>8.4f}{note}")
        lines.append("")
        for name, d in self.components.items():
            lines.append(f"{name:<{width}}  density {d:.4f}")
        lines.append(f"{'mean layer density (tensors >= 2-D)':<{width}}  {self.mean_layer_density:.4f}")
        lines.append(f"{'global density (all weights)':<{width}}  {self.global_density:.4f}")
        return "\n".join(lines) + "\n"

    def write(self, directory: str | Path) -> tuple[Path, Path]:
        """Write ``density.json`` and ``density.txt`` into `directory`."""
        directory = Path(directory)
        j, t = directory / "density.json", directory / "density.txt"
        j.write_text(json.dumps(self.to_dict(), indent=1))
        t.write_text(self.table())
        return j, t


def _ratio(tensors: list[TensorDensity]) -> float:
    total = sum(t.numel for t in tensors)
    return sum(t.nonzero for t in tensors) / total if total else 1.0


def global_density(model: torch.nn.Module) -> float:
    """The §12.3 global density of `model`, cheaply (for logging during training)."""
    nonzero = total = 0
    for name, p in model.named_parameters():
        if "weight" in name and name not in FIXED_TAPS:
            nonzero += int(torch.count_nonzero(p.detach()))
            total += p.numel()
    return nonzero / total if total else 1.0

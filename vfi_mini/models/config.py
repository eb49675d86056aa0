"""Architecture configuration of the ST-MFNet family.

One frozen dataclass describes every width of the network; the full ST-MFNet and ST-MFNet Mini are two
presets of it, and the pruning command produces further instances (pruned widths are data, not code).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError


@dataclass(frozen=True)
class STMFNetConfig:
    """Widths and options of an ST-MFNet-family model (spec §2, §3).

    Attributes:
        feat_channels: output widths of the MIFNet U-Net levels 1-4 (the decoder mirrors them, since the
            skips are additions). Each must be even and >= 32 (ResNeXt groups of 32, SE hidden >= 1).
        kernel_hidden: hidden width of the 18 AdaCoF kernel/offset heads.
        kernel_size: AdaCoF kernel size K (K*K taps).
        dilation: AdaCoF dilation D.
        grid_channels: GridNet row widths (2H, H, H/2 rows).
        tenet_channels: TENet encoder widths (stem/layer1, layer2, layer3, layer4).
        tenet_decoder: TENet decoder output widths d0..d4.
        tenet_fuse: width of the 1x1 fusion after unbinding time.
        flow: whether the BLFNet flow branch (PWC-Net + softmax splatting) is present.
        adacof_rounding: "trunc" (upstream AdaCoF, needed by the released weights: negative fractional
            offsets extrapolate) or "floor" (true bilinear sampling; see `vfi_mini.ops.adacof`).
    """

    feat_channels: tuple[int, int, int, int] = (64, 128, 256, 512)
    kernel_hidden: int = 64
    kernel_size: int = 5
    dilation: int = 1
    grid_channels: tuple[int, int, int] = (32, 64, 96)
    tenet_channels: tuple[int, int, int, int] = (32, 64, 96, 128)
    tenet_decoder: tuple[int, int, int, int, int] = (96, 64, 32, 32, 32)
    tenet_fuse: int = 32
    flow: bool = True
    adacof_rounding: str = "trunc"

    def __post_init__(self) -> None:
        for name in ("feat_channels", "grid_channels", "tenet_channels", "tenet_decoder"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        problems = []
        if len(self.feat_channels) != 4 or any(c < 32 or c % 2 for c in self.feat_channels):
            problems.append(f"feat_channels must be 4 even widths >= 32, got {self.feat_channels}")
        if len(self.grid_channels) != 3 or min(self.grid_channels) < 1:
            problems.append(f"grid_channels must be 3 positive widths, got {self.grid_channels}")
        if len(self.tenet_channels) != 4 or min(self.tenet_channels) < 1:
            problems.append(f"tenet_channels must be 4 positive widths, got {self.tenet_channels}")
        if len(self.tenet_decoder) != 5 or min(self.tenet_decoder) < 1:
            problems.append(f"tenet_decoder must be 5 positive widths, got {self.tenet_decoder}")
        if self.kernel_hidden < 1 or self.tenet_fuse < 1:
            problems.append("kernel_hidden and tenet_fuse must be positive")
        if self.kernel_size < 1 or self.dilation < 1 or ((self.kernel_size - 1) * self.dilation) % 2:
            problems.append(
                f"kernel_size {self.kernel_size} with dilation {self.dilation} needs an even "
                "(K-1)*D for symmetric padding"
            )
        if self.adacof_rounding not in ("trunc", "floor"):
            problems.append(f"adacof_rounding must be 'trunc' or 'floor', got {self.adacof_rounding!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def size_multiple(self) -> int:
        """Frame sides the network itself accepts must be multiples of this (before 128-padding)."""
        return 64 if self.flow else 16

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> STMFNetConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown architecture field(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def preset_name(self) -> str | None:
        for name, cfg in PRESETS.items():
            if cfg == self:
                return name
        return None


PRESETS: dict[str, STMFNetConfig] = {
    "stmfnet": STMFNetConfig(),
    "stmfnet-mini": STMFNetConfig(
        feat_channels=(32, 64, 96, 128),
        kernel_hidden=30,
        grid_channels=(16, 32, 46),
        tenet_channels=(16, 24, 32, 40),
        tenet_decoder=(32, 24, 16, 16, 16),
        tenet_fuse=8,
        flow=False,
    ),
}

# Parameter counts from spec §5.1, checked by the tests.
PRESET_PARAMS = {"stmfnet": 21_028_799, "stmfnet-mini": 1_822_162}


def resolve_arch(arch: str) -> STMFNetConfig:
    """A preset name or an architecture JSON file (a config, or {"config": ...} as `prune` writes it).

    Raises:
        UsageError: neither, or an invalid file.
    """
    if arch in PRESETS:
        return PRESETS[arch]
    p = Path(arch)
    if not p.is_file():
        raise UsageError(f"--arch {arch!r} is neither a preset ({', '.join(PRESETS)}) nor a JSON file")
    try:
        data = json.loads(p.read_text())
        return STMFNetConfig.from_dict(data.get("config", data) if isinstance(data, dict) else data)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"architecture file {p} is invalid: {exc}") from exc

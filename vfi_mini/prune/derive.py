"""From layer densities to a dense, smaller architecture (spec §12.3).

Width groups. Every width of `STMFNetConfig` is one group: ``feat_channels.0-3`` (MIFNet levels),
``kernel_hidden``, ``grid_channels.0-2`` (GridNet rows), ``tenet_channels.0-3``, ``tenet_decoder.0-4`` and
``tenet_fuse``. `layer_roles` says, for every weight tensor of >= 2 dimensions, which group (or fixed data
channels: RGB frames, the 6-channel MIFNet input, the K*K AdaCoF taps, the GridNet row inputs, the 3-channel
outputs) its input and output channels belong to. Couplings are therefore structural: both sides of a
U-Net or GridNet skip addition, a ResNeXt block's grouped convolution and its 1x1 neighbours, and a
residual block's convolutions all share one group, so one ratio serves them all.

The rule: ratio propagation (spec §12.3), solved jointly. Shrinking a layer's input channels by r_in and
its output channels by r_out keeps r_in * r_out of its weights, so the density of layer l should be

    d_l = r_in(l) * r_out(l)

where a side made of fixed channels has r = 1, and a side that concatenates several groups (the TENet
decoder's skip concatenations) has the channel-weighted mean of their ratios. On a chain starting at the
RGB input this is exactly r_n = d_n / r_{n-1}; on a square layer inside one group it is CDFI's
Cin' = sqrt(d) * Cin, Cout' = sqrt(d) * Cout. Because ST-MFNet is not a chain, the group ratios are the
least-squares solution of ``log d_l = log r_in(l) + log r_out(l)`` over all layers, weighted by each
layer's number of elements (Gauss-Newton from the geometric-mean linearisation; densities are floored at
1e-3 so that an all-zero layer pulls its groups down without making the problem singular).

Widths. r is capped at 1, and width' = r * width is rounded to the nearest admissible width:
- MIFNet levels: a multiple of 32, at least 32 (ResNeXt blocks have 32 groups and an inner width of
  32 * floor(width / 32), so other widths waste channels; the config requires >= 32);
- every other width: an integer, at least min(width, `min_width`) (8), and GridNet row 1 at least its
  input channels (6, or 12 with BLFNet) so that `--init blend` can still pass the input through.
No width ever grows.

BLFNet. PWC-Net has fixed widths, so it is either kept or dropped: it is dropped (``flow=False``) when
the density of ``flow_estimator`` and ``metric`` together falls to `flow_threshold` (0.05) or below.

Left out of the fit: 1-D tensors (biases, BN, PReLU), layers with fixed channels on both sides
(``get_kernel.*.7``, ``lateral_final_1.f.3``), the GridNet row-0 blocks of the upward columns (they never
reach the output and keep their initial values, see models/gridnet.py), and BLFNet.

Check against the Mini (§3): a density table with d_l = r_in * r_out for the Mini/ST-MFNet width ratios
(MIFNet 0.5/0.5/0.375/0.25, heads 30/64, GridNet 0.5/0.5/46/96, TENet 0.5/0.375/0.33/0.31, decoder
0.33/0.375/0.5/0.5/0.5, fuse 0.25) and a BLFNet density of 0.01 gives back exactly the Mini preset
(1,822,162 parameters). With +-20 % uniform noise on every layer's density (30 seeds) the MIFNet widths
stay exact, the head and GridNet widths within 6 %, the TENet encoder within 10 %, and the small TENet
decoder and fuse widths, seen mostly through concatenations and SE layers, within 25 % (tests/test_prune.py).
The Mini's own widths were hand-chosen; no upstream code computes them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..models import STMFNetConfig
from ..models.kernels import KINDS, SCALES

Side = tuple[tuple[str | None, int], ...]  # (group, channels); group None: channels fixed by the data

FLOW_PREFIXES = ("flow_estimator.", "metric.")
# GridNet blocks that never reach the output row (see models/gridnet.py); they receive no gradient.
DEAD_GRID_BLOCKS = ("lateral_0_2", "lateral_0_3", "up_0_0", "up_0_1")
FEAT_MULTIPLE = 32
DENSITY_FLOOR = 1e-3


@dataclass(frozen=True)
class Role:
    """The width groups of a weight tensor's input and output channels."""

    inputs: Side
    outputs: Side

    @property
    def in_channels(self) -> int:
        return sum(c for _, c in self.inputs)

    @property
    def out_channels(self) -> int:
        return sum(c for _, c in self.outputs)


def _feature_roles(cfg: STMFNetConfig) -> dict[str, Role]:
    c = cfg.feat_channels
    level = [f"feat_channels.{i}" for i in range(4)]
    # block: (input level or None for the 6-channel input, output level)
    blocks = {
        "conv1": (None, 0),
        "conv2": (0, 1),
        "conv3": (1, 2),
        "conv4": (2, 3),
        "deconv4": (3, 3),
        "deconv3": (3, 2),
        "deconv2": (2, 1),
        "deconv1": (1, 0),
    }
    roles = {}
    for block, (li, lo) in blocks.items():
        inp: Side = ((None, 6),) if li is None else ((level[li], c[li]),)
        cout, g = c[lo], level[lo]
        branch = cout // 2
        inner = (branch * 4 // 64) * 32
        pre = f"feature_extractor.{block}"
        for side in ("resnext_small", "resnext_large"):
            roles[f"{pre}.{side}.conv1.weight"] = Role(inp, ((g, inner),))
            roles[f"{pre}.{side}.conv2.weight"] = Role(((g, inner),), ((g, inner),))
            roles[f"{pre}.{side}.conv3.weight"] = Role(((g, inner),), ((g, branch),))
            roles[f"{pre}.{side}.downsample.0.weight"] = Role(inp, ((g, branch),))
        roles[f"{pre}.attention.fc.0.weight"] = Role(((g, cout),), ((g, cout // 16),))
        roles[f"{pre}.attention.fc.2.weight"] = Role(((g, cout // 16),), ((g, cout),))
    return roles


def _kernel_roles(cfg: STMFNetConfig) -> dict[str, Role]:
    feat: Side = (("feat_channels.0", cfg.feat_channels[0]),)
    hidden: Side = (("kernel_hidden", cfg.kernel_hidden),)
    taps: Side = ((None, cfg.kernel_size**2),)
    roles = {}
    for scale in SCALES:
        for frame in (1, 2):
            for kind in KINDS:
                pre = f"get_kernel.module{kind}{frame}{scale}"
                roles[f"{pre}.0.weight"] = Role(feat, hidden)
                roles[f"{pre}.2.weight"] = Role(hidden, hidden)
                roles[f"{pre}.4.weight"] = Role(hidden, taps)
    return roles


def _grid_roles(cfg: STMFNetConfig) -> dict[str, Role]:
    g = cfg.grid_channels
    row: list[Side] = [((f"grid_channels.{r}", g[r]),) for r in range(3)]
    row_in: list[Side] = [((None, 6),), ((None, 12 if cfg.flow else 6),), ((None, 6),)]
    pre = "scale_synthesis"
    roles = {}
    for r in range(3):
        for c in range(4):
            name = f"lateral_{r}_{c}"
            if name in DEAD_GRID_BLOCKS:
                continue
            first = row_in[r] if c == 0 else row[r]
            roles[f"{pre}.{name}.f.1.weight"] = Role(first, row[r])
            roles[f"{pre}.{name}.f.3.weight"] = Role(row[r], row[r])
            if c == 0 and row_in[r][0][1] != g[r]:
                roles[f"{pre}.{name}.conv.weight"] = Role(row_in[r], row[r])
    for r in range(2):
        for c in range(2):
            roles[f"{pre}.down_{r}_{c}.f.1.weight"] = Role(row[r], row[r + 1])
            roles[f"{pre}.down_{r}_{c}.f.3.weight"] = Role(row[r + 1], row[r + 1])
            if f"up_{r}_{c}" not in DEAD_GRID_BLOCKS:
                roles[f"{pre}.up_{r}_{c}.f.2.weight"] = Role(row[r + 1], row[r])
                roles[f"{pre}.up_{r}_{c}.f.4.weight"] = Role(row[r], row[r])
    rgb: Side = ((None, 3),)
    roles[f"{pre}.lateral_final_1.f.1.weight"] = Role(row[1], rgb)
    roles[f"{pre}.lateral_final_1.conv.weight"] = Role(row[1], rgb)
    return roles


def _tenet_roles(cfg: STMFNetConfig) -> dict[str, Role]:
    t = [((f"tenet_channels.{i}", w),) for i, w in enumerate(cfg.tenet_channels)]
    d = [((f"tenet_decoder.{i}", w),) for i, w in enumerate(cfg.tenet_decoder)]
    fuse: Side = (("tenet_fuse", cfg.tenet_fuse),)
    enc, dec = "dyntex_generator.encoder", "dyntex_generator.decoder"
    roles = {f"{enc}.stem.0.weight": Role(((None, 3),), t[0])}
    for k in range(1, 5):
        cin, cout = t[max(0, k - 2)], t[k - 1]
        strided = k in (2, 3)
        for b in (0, 1):
            bin_ = cin if b == 0 else cout
            pre = f"{enc}.layer{k}.{b}"
            roles[f"{pre}.conv1.0.weight"] = Role(bin_, cout)
            roles[f"{pre}.conv2.0.weight"] = Role(cout, cout)
            roles[f"{pre}.fg.attn_layer.0.weight"] = Role(cout, cout)
            if b == 0 and (strided or cin[0][1] != cout[0][1]):
                roles[f"{pre}.downsample.0.weight"] = Role(cin, cout)
    skips = (None, t[2], t[1], t[0], t[0])  # what each decoder step's input is concatenated with
    for i, kind in enumerate(("conv", "upconv", "upconv", "conv", "upconv")):
        inp = t[3] if i == 0 else d[i - 1] + skips[i]
        roles[f"{dec}.{i}.{kind}.0.weight"] = Role(inp, d[i])
        roles[f"{dec}.{i}.{kind}.1.attn_layer.0.weight"] = Role(d[i], d[i])
    n_frames = 5
    roles["dyntex_generator.feature_fuse.0.weight"] = Role(((d[4][0][0], n_frames * d[4][0][1]),), fuse)
    roles["dyntex_generator.outconv.1.weight"] = Role(fuse, ((None, 3),))
    return roles


def layer_roles(cfg: STMFNetConfig) -> dict[str, Role]:
    """The width groups of every weight tensor that enters the fit (see the module docstring)."""
    return {**_feature_roles(cfg), **_kernel_roles(cfg), **_grid_roles(cfg), **_tenet_roles(cfg)}


def width_groups(cfg: STMFNetConfig) -> dict[str, int]:
    """Every width group and its current width."""
    out: dict[str, int] = {}
    for f in ("feat_channels", "grid_channels", "tenet_channels", "tenet_decoder"):
        for i, w in enumerate(getattr(cfg, f)):
            out[f"{f}.{i}"] = w
    out["kernel_hidden"] = cfg.kernel_hidden
    out["tenet_fuse"] = cfg.tenet_fuse
    return out


def predicted_density(role: Role, ratios: Mapping[str, float]) -> float:
    """d = r_in * r_out, each side the channel-weighted mean of its groups' ratios (fixed channels: 1)."""

    def side(s: Side) -> float:
        total = sum(c for _, c in s)
        return sum(c * (1.0 if g is None else ratios[g]) for g, c in s) / total

    return side(role.inputs) * side(role.outputs)


def solve_ratios(roles: Mapping[str, Role], density: Mapping[str, float], numel: Mapping[str, int]) -> dict[str, float]:
    """Least-squares group ratios: minimise sum_l numel_l * (log predicted_l - log d_l)^2 (not capped).

    Raises:
        ValueError: `density` lacks a tensor of `roles`.
    """
    missing = [n for n in roles if n not in density]
    if missing:
        raise ValueError(
            f"the density table lacks tensor {missing[0]!r}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        )
    groups = sorted({g for r in roles.values() for side in (r.inputs, r.outputs) for g, _ in side if g})
    index = {g: i for i, g in enumerate(groups)}
    names = list(roles)
    n, m = len(names), len(groups)
    # Channel fractions per side: F_in[l, g], F_out[l, g]; the rest of each side is fixed (ratio 1).
    f_in = torch.zeros(n, m, dtype=torch.float64)
    f_out = torch.zeros(n, m, dtype=torch.float64)
    for row, name in enumerate(names):
        for mat, side in ((f_in, roles[name].inputs), (f_out, roles[name].outputs)):
            total = sum(c for _, c in side)
            for g, c in side:
                if g is not None:
                    mat[row, index[g]] += c / total
    fix_in, fix_out = 1 - f_in.sum(1), 1 - f_out.sum(1)
    y = torch.tensor([math.log(max(float(density[k]), DENSITY_FLOOR)) for k in names], dtype=torch.float64)
    w = torch.tensor([float(numel.get(k, 1)) for k in names], dtype=torch.float64)
    w = w / w.sum()
    ridge = 1e-10 * torch.eye(m, dtype=torch.float64)

    def predict(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r = u.exp()
        a, b = fix_in + f_in @ r, fix_out + f_out @ r
        jac = f_in * r / a[:, None] + f_out * r / b[:, None]  # d log(pred) / d u
        return a.log() + b.log(), jac, r

    def loss(u: torch.Tensor) -> float:
        return float((w * (predict(u)[0] - y) ** 2).sum())

    # Start from the linearisation log(side) ~ sum(fraction * u): an ordinary weighted least squares.
    lin = f_in + f_out
    u = torch.linalg.solve(lin.T @ (w[:, None] * lin) + ridge, lin.T @ (w * y))
    current = loss(u)
    for _ in range(100):  # Gauss-Newton with backtracking
        pred, jac, _ = predict(u)
        du = torch.linalg.solve(jac.T @ (w[:, None] * jac) + ridge, jac.T @ (w * (y - pred)))
        step = 1.0
        while step > 1e-6:
            trial = loss(u + step * du)
            if trial <= current:
                break
            step /= 2
        if step <= 1e-6:
            break
        u, improvement, current = u + step * du, current - trial, trial
        if improvement < 1e-15 and float(du.abs().max()) < 1e-10:
            break
    return {g: float(math.exp(u[index[g]])) for g in groups}


@dataclass(frozen=True)
class Derivation:
    """A derived architecture and how it was reached."""

    config: STMFNetConfig
    ratios: dict[str, float]  # per width group, as solved (before capping and rounding)
    flow_density: float | None  # None: the source model has no BLFNet

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "ratios": self.ratios, "flow_density": self.flow_density}


def _snap(width: int, ratio: float, multiple: int, floor: int) -> int:
    target = min(ratio, 1.0) * width
    snapped = int(math.floor(target / multiple + 0.5)) * multiple
    return max(min(floor, width), min(snapped, width))


def derive_architecture(
    config: STMFNetConfig,
    density: Mapping[str, float],
    numel: Mapping[str, int],
    *,
    flow_threshold: float = 0.05,
    min_width: int = 8,
) -> Derivation:
    """Derive a dense architecture from the densities of a sparse model of architecture `config`.

    Args:
        config: the architecture the densities were measured on.
        density: tensor name -> density (non-zeros / elements), e.g. `DensityReport.density`.
        numel: tensor name -> number of elements (the least-squares weights; BLFNet's density).
        flow_threshold: drop BLFNet when its density is at most this.
        min_width: smallest width of the non-MIFNet groups (never above the current width).

    Returns:
        The derived config, the solved per-group ratios and BLFNet's density.

    Raises:
        ValueError: the table lacks a tensor the rule needs.
    """
    ratios = solve_ratios(layer_roles(config), density, numel)
    flow_density = None
    flow = False
    if config.flow:
        names = [k for k in density if k.startswith(FLOW_PREFIXES)]
        total = sum(numel[k] for k in names)
        if not total:
            raise ValueError("the density table has no flow_estimator tensors although the model has BLFNet")
        flow_density = sum(density[k] * numel[k] for k in names) / total
        flow = flow_density > flow_threshold

    def width(group: str, current: int, multiple: int = 1, floor: int = min_width) -> int:
        return _snap(current, ratios[group], multiple, floor)

    def tup(field: str, **kw: int) -> tuple[int, ...]:
        return tuple(width(f"{field}.{i}", w, **kw) for i, w in enumerate(getattr(config, field)))

    grid = list(tup("grid_channels"))
    grid[1] = max(grid[1], min(config.grid_channels[1], 12 if flow else 6))
    derived = dataclasses.replace(
        config,
        feat_channels=tup("feat_channels", multiple=FEAT_MULTIPLE, floor=FEAT_MULTIPLE),
        kernel_hidden=width("kernel_hidden", config.kernel_hidden),
        grid_channels=tuple(grid),
        tenet_channels=tup("tenet_channels"),
        tenet_decoder=tup("tenet_decoder"),
        tenet_fuse=width("tenet_fuse", config.tenet_fuse),
        flow=flow,
    )
    return Derivation(derived, ratios, flow_density)

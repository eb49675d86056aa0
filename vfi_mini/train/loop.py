"""One readable training loop for the ST-MFNet family: plain training and knowledge distillation.

Loss without a teacher: Lap(S, GT). With a teacher: alpha * Lap(S, GT) + Lap(S, T) (spec §9: the
distillation term is not weighted by 1 - alpha). Teacher-only data (no ground truth) contributes
Lap(S, T) alone. Flow distillation adds `flow_distill * L1(student displacement, teacher flow)` at each
AdaCoF scale (see `effective_displacement`).

A run directory holds:
- ``config.json``: the TrainConfig and the architecture;
- ``metrics.jsonl``: one JSON object per logged step / validation;
- ``last.pth`` / ``best.pth``: the student in the official checkpoint format (plus ``model_config`` when
  the architecture is not a preset), usable directly with ``vfi-mini double --weights``;
- ``state.pt``: everything needed to resume bit-for-bit (optimizer, scheduler, step, data position,
  RNG state); read back with ``weights_only=True``.

Randomness: every sample's crop/flip/reversal comes from (seed, epoch, index) inside the datasets, and the
sample order of each epoch from a generator seeded with (seed, epoch), so a resumed run sees exactly the
samples an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, Dataset

from ..errors import InputError, ProcessingError, UsageError
from ..interpolator import PAD_MULTIPLE, check_precision, pad_to_multiple, resolve_device, to_channels_last
from ..metrics import psnr, ssim_matlab
from ..models import STMFNet, build_model, count_parameters, resolve_arch
from ..models.init import blend_init
from ..weights import load_model, save_weights
from .losses import gaussian_blur, get_loss

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Every option of a training run (flat, as on the command line)."""

    data: list[str]
    out: str
    arch: str = "stmfnet-mini"  # preset name or path to an architecture JSON (e.g. from `prune`)
    init: str | None = None  # weights to start from, or "blend" (see vfi_mini.models.init)
    teacher: str | None = None
    alpha: float = 0.1
    teacher_only_data: list[str] = field(default_factory=list)
    flow_distill: float = 0.0
    coarse_warp: float = 0.0  # motion stage: weight of the blurred-frame warp term (coarse_warp_loss)
    loss: str = "lap"
    lr: float = 1e-3
    schedule: str = "step"  # step | plateau | constant
    lr_step: int = 20_000  # steps between halvings for the step schedule
    gamma: float = 0.5
    patience: int = 5  # validations without improvement before a plateau decay
    epochs: int | None = None
    max_steps: int | None = None
    time_budget: float | None = None  # seconds, for this invocation (a resumed run gets a new budget)
    batch_size: int = 4
    crop: int = 256
    seed: int = 0
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast)
    channels_last: bool = True  # NHWC convolutions: ~15% faster steps on CPU (oneDNN)
    val_data: list[str] = field(default_factory=list)
    val_every: int = 500
    val_limit: int = 32
    val_crop: int = 256
    ckpt_every: int = 200
    log_every: int = 10
    device: str = "auto"
    threads: int | None = None
    teacher_cache: str | None = None  # directory; keeps each window's augmentation fixed across epochs
    teacher_gate: bool = False  # drop the teacher term on samples where the teacher is worse than blending
    optimizer: str = "adamax"  # adamax | obproxsg (L1 sparsity training for pruning, spec §12)
    obprox_lambda: float = 1e-4  # OBProx-SG L1 weight
    obprox_np: int = 2  # OBProx-SG: Prox-SG epochs before the Orthant steps (an epoch = batches per epoch)
    obprox_eps: float = 1e-4  # OBProx-SG Orthant projection threshold
    finetune_flow: bool = False  # also train PWC-Net, frozen otherwise (pruning trains it, as upstream)
    # full | motion (x1 motion path only: see STMFNet.motion) | synthesis (all but the motion path: the
    # feature extractor and kernel heads are frozen, GridNet and TENet learn to fuse and refine)
    stage: str = "full"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_run(cls, out: str | Path) -> TrainConfig:
        """The configuration stored in a run directory's ``config.json`` (for ``--resume``).

        Raises:
            UsageError: the directory holds no config.json.
        """
        path = Path(out) / "config.json"
        if not path.is_file():
            raise UsageError(f"--resume: {out} holds no config.json")
        return cls(**json.loads(path.read_text())["train"])


def parse_duration(text: str) -> float:
    """'90', '90s', '45m', '2h', '1h30m' -> seconds."""
    import re

    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"cannot read duration {text!r}; use e.g. 90s, 45m, 2h or 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


# --- distribution ------------------------------------------------------------------------------------


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    """Join a torchrun job if WORLD_SIZE > 1 (NCCL on CUDA, Gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


# --- data --------------------------------------------------------------------------------------------


def _make_datasets(specs: list[str], crop: int, seed: int, split: str) -> Dataset | None:
    if not specs:
        return None
    from ..data import make_dataset

    sets = [make_dataset(s, crop=crop, seed=seed, split=split) for s in specs]
    for s, d in zip(specs, sets):
        if len(d) == 0:
            raise InputError(f"training data {s!r} holds no usable samples")
    return sets[0] if len(sets) == 1 else ConcatDataset(sets)


class EpochSampler:
    """Deterministic infinite sample order: epoch e is a permutation seeded by (seed, e), sharded by rank.

    The position (epoch, index) is part of the resumable state.
    """

    def __init__(self, n: int, seed: int, d: Dist) -> None:
        self.n, self.seed, self.d = n, seed, d
        self.epoch, self.pos = 0, 0

    def _order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        return perm[self.d.rank :: self.d.world]

    def take(self, k: int) -> list[tuple[int, int]]:
        """Next k (epoch, index) pairs."""
        out = []
        order = self._order()
        while len(out) < k:
            if self.pos >= len(order):
                self.epoch, self.pos = self.epoch + 1, 0
                order = self._order()
            out.append((self.epoch, order[self.pos]))
            self.pos += 1
        return out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load(self, s: dict[str, int]) -> None:
        self.epoch, self.pos = int(s["epoch"]), int(s["pos"])


def _fetch(dataset: Dataset, items: list[tuple[int, int]], fixed_augment: bool = False) -> dict[str, torch.Tensor]:
    """Stack the samples (epoch, index); `fixed_augment` gives every epoch the crops of epoch 0."""
    samples = []
    for epoch, idx in items:
        _set_epoch_recursive(dataset, 0 if fixed_augment else epoch)
        samples.append(dataset[idx])
    return {k: torch.stack([s[k] for s in samples]) for k in ("frames", "target") if k in samples[0]}


def _set_epoch_recursive(dataset: Dataset, epoch: int) -> None:
    if isinstance(dataset, ConcatDataset):
        for d in dataset.datasets:
            _set_epoch_recursive(d, epoch)
    elif hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)


# --- teachers and flow distillation ------------------------------------------------------------------


class Teacher:
    """A frozen teacher in eval mode under no_grad: an ST-MFNet-family checkpoint or a RIFE v4 IFNet."""

    def __init__(self, path: str, device: torch.device) -> None:
        self.kind, self.model = _load_teacher(path)
        self.model.to(device).eval().requires_grad_(False)
        self.device = device

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """frames (B, 4, 3, H, W) -> {'frame': (B, 3, H, W)[, 'flow_t0', 'flow_t1': (B, 2, H, W)]}."""
        if self.kind == "rife":
            return self.model(frames[:, 1], frames[:, 2])
        return {"frame": self.model(*frames.unbind(1)).clamp(0, 1)}


class TeacherCache:
    """Content-addressed store of teacher outputs: one file per sample, keyed by a hash of the teacher file
    and the sample's 8-bit input frames. Values are float16 tensors read back with ``weights_only=True``.

    Samples repeat only when their crop and flips repeat, so `train` keeps each window's augmentation the
    same in every epoch when a cache is used (the order of the windows still changes).
    """

    def __init__(self, directory: str | Path, teacher_path: str) -> None:
        import hashlib

        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha1()
        with open(teacher_path, "rb") as f:
            h.update(f.read(1 << 20))
        h.update(str(Path(teacher_path).stat().st_size).encode())
        self.teacher_id = h.hexdigest()[:16]
        self.hits = self.misses = 0

    def _key(self, frames: torch.Tensor) -> Path:
        import hashlib

        q = torch.round(frames.detach().float().clamp(0, 1) * 255).to(torch.uint8).cpu().contiguous()
        digest = hashlib.sha1(self.teacher_id.encode() + str(tuple(q.shape)).encode() + q.numpy().tobytes())
        key = digest.hexdigest()
        return self.dir / key[:2] / f"{key}.pt"

    def __call__(
        self, frames: torch.Tensor, teacher: Callable[[torch.Tensor], dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        paths = [self._key(f) for f in frames]
        found: dict[int, dict[str, torch.Tensor]] = {}
        for i, p in enumerate(paths):
            if p.is_file():
                try:
                    found[i] = torch.load(p, map_location="cpu", weights_only=True)
                except Exception:  # noqa: BLE001 - a damaged entry is recomputed
                    p.unlink(missing_ok=True)
        missing = [i for i in range(len(paths)) if i not in found]
        self.hits += len(found)
        self.misses += len(missing)
        if missing:
            out = teacher(frames[missing])
            for j, i in enumerate(missing):
                entry = {k: v[j].detach().to("cpu", torch.float16).contiguous() for k, v in out.items()}
                paths[i].parent.mkdir(exist_ok=True)
                tmp = paths[i].with_suffix(".tmp")
                torch.save(entry, tmp)
                os.replace(tmp, paths[i])
                found[i] = entry
        keys = found[0].keys()
        return {k: torch.stack([found[i][k] for i in range(len(paths))]).to(frames.device, torch.float32) for k in keys}


def _load_teacher(path: str) -> tuple[str, torch.nn.Module]:
    """Pick the teacher kind from the file's keys: a RIFE IFNet or an ST-MFNet-family checkpoint."""
    from ..teachers.rife import RifeTeacher, is_rife_state_dict, load_rife

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"teacher file {path} not found")
    if p.suffix != ".safetensors":
        try:
            raw = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - load_model below reports unreadable files properly
            raw = None
        if isinstance(raw, dict) and is_rife_state_dict(raw):
            return "rife", RifeTeacher(load_rife(p))
    model, _ = load_model(p)
    return "stmfnet", model


def _tap_offsets(weight: torch.Tensor, dilation: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Column and row offsets of the K*K AdaCoF taps, each (1, K*K, 1, 1), for weight maps (B, K*K, H, W):
    tap t sits at row (t // K) * D - pad and column (t % K) * D - pad, pad = (K - 1) * D / 2."""
    taps = weight.shape[1]
    k = math.isqrt(taps)
    grid = torch.arange(k, device=weight.device, dtype=weight.dtype) * dilation - (k - 1) * dilation / 2
    return grid.repeat(k).view(1, taps, 1, 1), grid.repeat_interleave(k).view(1, taps, 1, 1)


def effective_displacement(
    weight: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, dilation: int
) -> torch.Tensor:
    """Weight-averaged AdaCoF sampling displacement: sum_t w_t * (tap_t + offset_t), in pixels.

    weight, alpha, beta: (B, K*K, H, W). Returns (B, 2, H, W) with channel 0 horizontal (x) and channel 1
    vertical (y), relative to the output pixel, i.e. a backward flow from the new frame to the source.
    """
    tx, ty = _tap_offsets(weight, dilation)
    dx = (weight * (tx + beta)).sum(1, keepdim=True)
    dy = (weight * (ty + alpha)).sum(1, keepdim=True)
    return torch.cat([dx, dy], dim=1)


def flow_distillation_loss(maps: list[torch.Tensor], teacher: dict[str, torch.Tensor], dilation: int) -> torch.Tensor:
    """L1 between the student's AdaCoF displacement and the teacher's flow at the three scales.

    Sum-reduced over pixels (like the Lap loss) and averaged over the six maps, so a weight around 0.01
    gives a term of the same order as Lap; each scale's target is the teacher flow resized to that scale.
    """
    total = maps[0].new_zeros(())
    for s, scale in enumerate((0.5, 1.0, 2.0)):
        for f, key in enumerate(("flow_t0", "flow_t1")):
            w, a, b = maps[6 * s + 3 * f : 6 * s + 3 * f + 3]
            disp = effective_displacement(w, a, b, dilation)
            target = (
                torch.nn.functional.interpolate(
                    teacher[key], size=disp.shape[-2:], mode="bilinear", align_corners=False
                )
                * scale
            )
            total = total + (disp - target).abs().sum() * (scale * scale) ** -1
    return total / 6


def sharp_flow_loss(maps: list[torch.Tensor], teacher: dict[str, torch.Tensor], dilation: int) -> torch.Tensor:
    """Per-tap flow distillation on the x1 maps: sum over taps of w_t * |tap_t + offset_t - teacher flow|.

    `flow_distillation_loss` pulls only the weight-averaged displacement, which a spread-out (blurring)
    kernel can match as well as a sharp one. Here every tap that carries weight must itself point at the
    teacher's flow, so the kernel learns to sample one place, as a warp does. maps: the 6 maps of
    `STMFNet.motion`. Sum-reduced over pixels (like Lap) and averaged over the two frames.
    """
    total = maps[0].new_zeros(())
    for f, key in enumerate(("flow_t0", "flow_t1")):
        weight, alpha, beta = maps[3 * f : 3 * f + 3]
        tx, ty = _tap_offsets(weight, dilation)
        flow = teacher[key].to(weight.dtype)
        err = (tx + beta - flow[:, :1]).abs() + (ty + alpha - flow[:, 1:]).abs()
        total = total + (weight * err).sum()
    return total / 2


COARSE_SIGMAS = (2.0, 4.0)


def coarse_warp_loss(
    model: STMFNet, im1: torch.Tensor, im2: torch.Tensor, maps: list[torch.Tensor], target: torch.Tensor
) -> torch.Tensor:
    """Sum-reduced L1 between the mean of the two x1 warps of Gaussian-blurred I1 and I2 (same maps) and the
    equally blurred ground truth, summed over the blur sigmas `COARSE_SIGMAS`.

    The gradient of a warp with respect to its offsets is the image gradient at the sampled point: on sharp
    frames it points the right way only within a pixel or two of the true motion, so the ground-truth term
    alone teaches small motions (the m6 weights move ~0.5 px where RIFE sees 3.8 px on the held-out bikes
    clip). On frames blurred with sigma s it stays informative over about s pixels: the coarse-to-fine
    argument of variational optical flow, applied to the loss instead of the model.
    """
    total = target.new_zeros(())
    for sigma in COARSE_SIGMAS:
        with torch.no_grad(), torch.autocast(target.device.type, enabled=False):
            b1, b2, bt = (gaussian_blur(x, sigma) for x in (im1, im2, target))
        mean = model.mean_warp(b1.to(im1.dtype), b2.to(im2.dtype), maps)
        total = total + F.l1_loss(mean.float(), bt, reduction="sum")
    return total


def _teacher_gate(frames: torch.Tensor, target: torch.Tensor, teacher_frame: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the samples whose teacher output is closer to the ground truth than frame blending is.

    A teacher is not right everywhere: RIFE 4.25 loses ~5 dB to plain blending on slow, finely textured
    pans (the held-out birds clip). Distilling those samples teaches the student the teacher's mistakes.
    """
    blend = (frames[:, 1] + frames[:, 2]) / 2
    err_t = (teacher_frame.float() - target).square().mean(dim=(1, 2, 3))
    err_b = (blend.float() - target).square().mean(dim=(1, 2, 3))
    return err_t <= err_b


def _masked(loss_fn: Callable[..., torch.Tensor], pred: torch.Tensor, target: torch.Tensor, keep: torch.Tensor):
    """A sum-reduced loss over the selected samples only (0 when none is selected)."""
    if not bool(keep.any()):
        return pred.sum() * 0.0
    return loss_fn(pred[keep], target[keep])


def _full_terms(
    cfg: TrainConfig,
    model: torch.nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    inputs: list[torch.Tensor],
    frames: torch.Tensor,
    target: torch.Tensor,
    teach: Callable[[torch.Tensor], dict[str, torch.Tensor]] | None,
    amp_dtype: torch.dtype,
    dilation: int,
) -> tuple[dict[str, torch.Tensor], int]:
    """The loss terms of one step of the whole model, and how many samples --teacher-gate dropped."""
    n_gated = 0
    with torch.autocast(inputs[0].device.type, dtype=amp_dtype, enabled=amp_dtype is not torch.float32):
        want_maps = cfg.flow_distill > 0
        out = model(*inputs, return_maps=want_maps)
        pred, maps = out if want_maps else (out, None)
    pred = pred.float()
    terms: dict[str, torch.Tensor] = {"gt": loss_fn(pred, target)}
    if teach:
        t_out = teach(frames)
        keep = _teacher_gate(frames, target, t_out["frame"]) if cfg.teacher_gate else None
        if keep is None or bool(keep.all()):
            terms["gt"] = cfg.alpha * terms["gt"]
            terms["teacher"] = loss_fn(pred, t_out["frame"].float())
        else:  # samples where the teacher is worse than blending are learned from ground truth only
            terms["gt"] = cfg.alpha * _masked(loss_fn, pred, target, keep) + _masked(loss_fn, pred, target, ~keep)
            terms["teacher"] = _masked(loss_fn, pred, t_out["frame"].float(), keep)
            n_gated = int((~keep).sum())
        if maps is not None and "flow_t0" in t_out and (keep is None or bool(keep.any())):
            sel = slice(None) if keep is None else keep
            terms["flow"] = cfg.flow_distill * flow_distillation_loss(
                [m[sel].float() for m in maps],
                {k: v[sel] for k, v in t_out.items() if torch.is_tensor(v)},
                dilation,
            )
    return terms, n_gated


def _motion_terms(
    cfg: TrainConfig,
    model: torch.nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    inputs: list[torch.Tensor],
    target: torch.Tensor,
    t_out: dict[str, torch.Tensor],
    amp_dtype: torch.dtype,
    dilation: int,
) -> dict[str, torch.Tensor]:
    """Motion pre-training (--stage motion): the x1 path learns the teacher's flow, per tap (sharp_flow_loss,
    when --flow-distill > 0), plus --alpha times the loss of the mean of its two warped candidates against the
    ground truth (with --flow-distill 0 that is all it learns from: the control arm of the flow ablation)."""
    if cfg.flow_distill > 0 and "flow_t0" not in t_out:
        raise UsageError("--stage motion with --flow-distill needs a teacher that estimates flow (RIFE)")
    with torch.autocast(inputs[0].device.type, dtype=amp_dtype, enabled=amp_dtype is not torch.float32):
        warped, maps = model(inputs[0], inputs[1], inputs[2], inputs[3], motion_only=True)
    terms = {}
    if cfg.flow_distill > 0:
        terms["flow"] = cfg.flow_distill * sharp_flow_loss([m.float() for m in maps], t_out, dilation)
    if cfg.alpha > 0:
        terms["gt"] = cfg.alpha * loss_fn(warped.float(), target)
    if cfg.coarse_warp > 0:
        net = getattr(model, "module", model)  # DistributedDataParallel wraps the STMFNet
        with torch.autocast(inputs[0].device.type, dtype=amp_dtype, enabled=amp_dtype is not torch.float32):
            terms["coarse"] = cfg.coarse_warp * coarse_warp_loss(net, inputs[1], inputs[2], maps, target)
    return terms


# --- the loop ----------------------------------------------------------------------------------------


def validate(model: STMFNet, samples: list[dict[str, torch.Tensor]], device: torch.device) -> dict[str, float]:
    """Mean PSNR / SSIM (spec §10) of the model and of frame blending on fixed validation samples."""
    modes = [(m, m.training) for m in model.modules()]  # restored as they were (frozen parts stay in eval)
    model.eval()
    ps, ss, pb = [], [], []
    with torch.inference_mode():
        for s in samples:
            frames = s["frames"].unsqueeze(0).to(device)
            gt = s["target"].unsqueeze(0).to(device)
            h, w = gt.shape[-2:]
            padded = pad_to_multiple(frames.flatten(0, 1), PAD_MULTIPLE).unflatten(0, (1, 4))
            out = model(*padded.unbind(1))[..., :h, :w].clamp(0, 1)
            ps.append(float(psnr(out, gt)))
            ss.append(float(ssim_matlab(out, gt)))
            pb.append(float(psnr((frames[:, 1] + frames[:, 2]) / 2, gt)))
    for m, mode in modes:
        m.training = mode
    n = max(1, len(ps))
    return {"val_psnr": sum(ps) / n, "val_ssim": sum(ss) / n, "val_psnr_blend": sum(pb) / n, "val_n": len(ps)}


def _validation_samples(cfg: TrainConfig) -> list[dict[str, torch.Tensor]]:
    specs = cfg.val_data
    if not specs:
        return []
    from ..data import make_dataset

    out = []
    for spec in specs:
        ds = make_dataset(spec, crop=cfg.val_crop, seed=cfg.seed, split="val")
        n = len(ds)
        if n == 0:
            continue
        k = min(n, max(1, cfg.val_limit // len(specs)))
        idx = sorted({int(i * n / k) for i in range(k)})
        out += [ds[i] for i in idx]
    return out


def make_optimizer(cfg: TrainConfig, params: list[torch.nn.Parameter], steps_per_epoch: int) -> torch.optim.Optimizer:
    """AdaMax with the paper's settings, or OBProx-SG whose epoch is `steps_per_epoch` optimizer steps."""
    if cfg.optimizer == "obproxsg":
        from ..prune.obprox import OBProxSG

        return OBProxSG(
            params,
            lr=cfg.lr,
            lambda_=cfg.obprox_lambda,
            eps=cfg.obprox_eps,
            np=cfg.obprox_np,
            epoch_size=steps_per_epoch,
        )
    return torch.optim.Adamax(params, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)


def _sparsity_log(model: STMFNet, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The pruning post-step: global density and OBProx-SG phase, for the log rows of sparsity training."""
    from ..prune.density import global_density
    from ..prune.obprox import OBProxSG

    if not isinstance(opt, OBProxSG):
        return {}
    return {"density": global_density(model), "phase": "orthant" if opt.orthant_phase else "prox-sg"}


def _schedule_lr(cfg: TrainConfig, step: int, plateau_decays: int) -> float:
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** (step // max(1, cfg.lr_step))
    if cfg.schedule == "plateau":
        return cfg.lr * cfg.gamma**plateau_decays
    return cfg.lr


def train(
    cfg: TrainConfig, progress: Callable[[dict[str, Any]], None] | None = None, resume: bool = False
) -> dict[str, Any]:
    """Run (or resume) training as configured; returns a summary. See the module docstring."""
    device = resolve_device(cfg.device)
    amp_dtype = check_precision(cfg.precision, device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.schedule not in ("step", "plateau", "constant"):
        raise UsageError(f"unknown schedule {cfg.schedule!r}; use step, plateau or constant")
    if cfg.crop % 16:
        raise UsageError(f"--crop must be a multiple of 16, got {cfg.crop}")
    if cfg.max_steps is None and cfg.epochs is None and cfg.time_budget is None:
        raise UsageError("give at least one of --epochs, --max-steps or --time-budget")
    if (cfg.teacher_only_data or cfg.flow_distill) and not cfg.teacher:
        raise UsageError("--teacher-only-data and --flow-distill need a --teacher")
    if cfg.optimizer not in ("adamax", "obproxsg"):
        raise UsageError(f"unknown optimizer {cfg.optimizer!r}; use adamax or obproxsg")
    if cfg.stage not in ("full", "motion", "synthesis"):
        raise UsageError(f"unknown stage {cfg.stage!r}; use full, motion or synthesis")
    if cfg.coarse_warp and cfg.stage != "motion":
        raise UsageError("--coarse-warp is a term of --stage motion")
    if cfg.stage == "motion" and not (cfg.alpha > 0 or cfg.flow_distill > 0):
        raise UsageError("--stage motion needs --alpha > 0 (ground truth) or --flow-distill > 0 (a RIFE teacher)")
    d = init_distributed(device)
    run = Path(cfg.out)
    state_path = run / "state.pt"
    if resume and not state_path.is_file():
        raise UsageError(f"--resume: {run} holds no state.pt to resume from")
    if not resume and state_path.is_file():
        raise UsageError(f"{run} already holds a run; use --resume to continue it or choose another --out")

    torch.manual_seed(cfg.seed)
    arch = resolve_arch(cfg.arch)
    model = build_model(arch)
    if cfg.init == "blend":
        blend_init(model)
    elif cfg.init:
        init_model, _ = load_model(cfg.init, config=arch)
        model.load_state_dict(init_model.state_dict())
    if cfg.finetune_flow and arch.flow:
        model.flow_estimator.requires_grad_(True)
    model.to(device).train()
    if cfg.stage == "synthesis":  # the motion path frozen, batch-norm statistics included
        for part in (model.feature_extractor, model.get_kernel):
            part.requires_grad_(False).eval()
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    if cfg.channels_last:
        to_channels_last(model)
    params = [p for p in model.parameters() if p.requires_grad]
    ddp_model: torch.nn.Module = model
    if d.world > 1:
        # find_unused_parameters: GridNet's dead row-0 blocks (see gridnet.py) never get gradients.
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )

    dataset = _make_datasets(cfg.data, cfg.crop, cfg.seed, "train")
    if dataset is None:
        raise UsageError("give at least one --data")
    teacher_only = _make_datasets(cfg.teacher_only_data, cfg.crop, cfg.seed + 1, "train")
    sampler = EpochSampler(len(dataset), cfg.seed, d)
    steps_per_epoch = math.ceil(len(dataset) / (cfg.batch_size * d.world))
    opt = make_optimizer(cfg, params, steps_per_epoch)
    sampler_t = EpochSampler(len(teacher_only), cfg.seed + 1, d) if teacher_only is not None else None
    teacher = Teacher(cfg.teacher, device) if cfg.teacher else None
    cache = TeacherCache(cfg.teacher_cache, cfg.teacher) if (teacher and cfg.teacher_cache) else None

    def teach(frames: torch.Tensor) -> dict[str, torch.Tensor]:  # only called when there is a teacher
        return cache(frames, teacher) if cache is not None else teacher(frames)  # type: ignore[misc]

    loss_fn = get_loss(cfg.loss)
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn.to(device)
    val_samples = _validation_samples(cfg) if d.main else []

    step, best, plateau_decays, since_best, elapsed_before = 0, -math.inf, 0, 0, 0.0
    if resume:
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sampler.load(st["sampler"])
        if sampler_t is not None and st.get("sampler_t"):
            sampler_t.load(st["sampler_t"])
        step, best = int(st["step"]), float(st["best"])
        plateau_decays, since_best = int(st["plateau_decays"]), int(st["since_best"])
        elapsed_before = float(st["elapsed"])
        torch.set_rng_state(st["rng"])
    elif d.main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(
            json.dumps(
                {
                    "train": cfg.to_dict(),
                    "model_config": arch.to_dict(),
                    "parameters": count_parameters(model),
                },
                indent=2,
            )
        )

    max_steps = cfg.max_steps
    if cfg.epochs is not None:
        by_epochs = cfg.epochs * steps_per_epoch
        max_steps = by_epochs if max_steps is None else min(max_steps, by_epochs)
    t_start = time.monotonic()

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - t_start

    def save_state() -> None:
        if not d.main:
            return
        tmp = state_path.with_suffix(".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "sampler": sampler.state(),
                "sampler_t": sampler_t.state() if sampler_t else None,
                "step": step,
                "best": best,
                "plateau_decays": plateau_decays,
                "since_best": since_best,
                "elapsed": elapsed(),
                "rng": torch.get_rng_state(),
            },
            tmp,
        )
        os.replace(tmp, state_path)
        _atomic_save_weights(model, run / "last.pth", step)

    def log_row(row: dict[str, Any]) -> None:
        if d.main:
            with open(run / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            if progress:
                progress(row)

    interrupted = False
    last_val_step = step

    def run_validation() -> None:
        nonlocal best, since_best, plateau_decays
        v = validate(model, val_samples, device)
        if v["val_psnr"] > best + 0.01:
            best, since_best = v["val_psnr"], 0
            _atomic_save_weights(model, run / "best.pth", step)
        else:
            since_best += 1
            if cfg.schedule == "plateau" and since_best >= cfg.patience:
                plateau_decays, since_best = plateau_decays + 1, 0
        log_row({"step": step, **v, "best_psnr": best, "elapsed": round(elapsed(), 1)})

    def on_sigterm(signum: int, frame: Any) -> None:  # noqa: ARG001
        raise KeyboardInterrupt

    old_handler = signal.signal(signal.SIGTERM, on_sigterm) if _in_main_thread() else None
    window_loss, window_n, window_t = 0.0, 0, time.monotonic()
    window_terms: dict[str, float] = {}
    n_gated = 0  # samples (since the last log line) whose teacher term was dropped by --teacher-gate
    try:
        # The time budget counts this invocation only, so `--resume --time-budget 2h` trains 2 more hours.
        while (max_steps is None or step < max_steps) and (
            cfg.time_budget is None or time.monotonic() - t_start < cfg.time_budget
        ):
            lr = _schedule_lr(cfg, step, plateau_decays)
            for g in opt.param_groups:
                g["lr"] = lr
            batch = _fetch(dataset, sampler.take(cfg.batch_size), fixed_augment=cache is not None)
            frames = batch["frames"].to(device)
            inputs = [f.contiguous(memory_format=fmt) for f in frames.unbind(1)]
            target = batch["target"].to(device).contiguous()
            if cfg.stage == "motion":
                t_out = teach(frames) if cfg.flow_distill > 0 else {}
                terms = _motion_terms(cfg, ddp_model, loss_fn, inputs, target, t_out, amp_dtype, arch.dilation)
            else:
                t_fn = teach if teacher is not None else None
                terms, n = _full_terms(cfg, ddp_model, loss_fn, inputs, frames, target, t_fn, amp_dtype, arch.dilation)
                n_gated += n
            if teacher_only is not None and sampler_t is not None and teacher is not None:
                tf = _fetch(teacher_only, sampler_t.take(cfg.batch_size), cache is not None)["frames"].to(device)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not torch.float32):
                    tp = ddp_model(*[f.contiguous(memory_format=fmt) for f in tf.unbind(1)]).float()
                terms["teacher_only"] = loss_fn(tp, teach(tf)["frame"].float())
            loss = sum(terms.values())
            if cfg.optimizer == "obproxsg" and not torch.isfinite(loss):
                # Plain gradient steps on the sum-reduced loss diverge quickly when lr is too large; stop
                # before the Orthant projection silently zeroes the NaN weights.
                raise ProcessingError(f"the loss became non-finite at step {step + 1}; lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            window_loss += float(loss.detach())
            for k, v in terms.items():
                window_terms[k] = window_terms.get(k, 0.0) + float(v.detach())
            window_n += 1
            if step % cfg.log_every == 0 or step == max_steps:
                now = time.monotonic()
                log_row(
                    {
                        "step": step,
                        "loss": window_loss / window_n,
                        **{f"loss_{k}": v / window_n for k, v in window_terms.items()},
                        "lr": lr,
                        "elapsed": round(elapsed(), 1),
                        "samples_per_s": window_n * cfg.batch_size * d.world / max(1e-9, now - window_t),
                        **({"teacher_gated": n_gated} if cfg.teacher_gate and teacher is not None else {}),
                        "epoch": sampler.epoch,
                        **_sparsity_log(model, opt),
                    }
                )
                window_loss, window_n, window_t, window_terms, n_gated = 0.0, 0, now, {}, 0
            if val_samples and (step % cfg.val_every == 0):
                run_validation()
                last_val_step = step
                window_t = time.monotonic()  # keep validation time out of the training throughput
            if step % cfg.ckpt_every == 0:
                save_state()
        if window_n:  # the last partial logging window
            log_row(
                {
                    "step": step,
                    "loss": window_loss / window_n,
                    **{f"loss_{k}": v / window_n for k, v in window_terms.items()},
                    "lr": lr,
                    "elapsed": round(elapsed(), 1),
                    "epoch": sampler.epoch,
                    **_sparsity_log(model, opt),
                }
            )
        if val_samples and last_val_step != step:  # every run ends with a validation
            run_validation()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
    save_state()
    if d.world > 1:
        dist.barrier()
    summary = {
        "step": step,
        "interrupted": interrupted,
        "best_val_psnr": best if best > -math.inf else None,
        "elapsed": round(elapsed(), 1),
        "run_dir": str(run),
    }
    if cache is not None:
        summary["teacher_cache"] = {"hits": cache.hits, "misses": cache.misses}
    if interrupted:
        raise TrainingInterrupted(summary)
    return summary


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after Ctrl-C / SIGTERM once the resumable state has been saved."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__("training interrupted; state saved")
        self.summary = summary


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _atomic_save_weights(model: STMFNet, path: Path, step: int) -> None:
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    save_weights(model, tmp, epoch=step)
    os.replace(tmp, path)

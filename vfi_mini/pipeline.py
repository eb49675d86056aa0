"""Frame-rate conversion: windowing and retiming (multiples, target rates, scene cuts, duplicates), the
threaded decode -> interpolate -> encode pipeline, the timing contract, and the two library entry points
`double_video` and `interpolate_frames`.

Conventions:

- A frame is a float32 tensor (C, H, W) in [0, 1]: C = 3 (RGB) for video; 1 (grey), 3 or 4 (RGBA) for
  image sequences. Times and durations are `fractions.Fraction` seconds; rates are `Fraction` frames
  per second (30000/1001, never 29.97).
- An interpolator is any callable that takes a window (B, 4, 3, H, W), frames (t-1, t, t+1, t+2), and
  returns the frames at t + 0.5, (B, 3, H, W) in [0, 1] (on any device; moved to the CPU here). Both
  `vfi_mini.interpolator.Interpolator` and ``lambda w: (w[:, 1] + w[:, 2]) / 2`` qualify.
- The frame between inputs k and k+1 is made from the window (k-1, k, k+1, k+2); at the ends the missing
  neighbours are replaced by the nearest existing frame, so every gap is interpolated.
- Frame-count contract for video: N input frames give exactly 2N output frames,
  ``f0, m0, f1, m1, ..., f(N-1), f(N-1)``, at exactly twice the input rate: the last frame is held once so
  that the output lasts as long as the input and audio stays in sync. Image sequences give 2N - 1 frames
  (inputs at even positions, nothing held).
- Timing contract for video: input frames keep their own PTS; m(k) sits midway between f(k) and f(k+1);
  the held last frame sits at t(N-1) + d/2, where d is the last frame's duration as stored in the file,
  else the previous interval, else 1/rate. Variable-frame-rate input therefore stays correct.
- Other multiples and rates (`retime_stream`, timing in `vfi_mini.timing`): ``multi`` = 4 or 8 gives
  ``multi * N`` frames, ``multi - 1`` evenly spaced between neighbours, the last frame held ``multi - 1``
  times; a target rate gives ``ceil(duration * rate)`` frames at exactly ``t0 + n / rate``, the last one cut
  short so that the duration is unchanged. Frames off the t + 0.5 grid come from recursive midpoints (the
  frame at k + 1/4 is the middle of the window at spacing 1/2 around it), made lazily where needed.
- Scene cuts (`vfi_mini.scenes`, on by default in `double_video` / `interpolate_frames`): the new frames
  between the last frame of a shot and the first of the next repeat the last frame of the shot, and windows
  replicate the frames at a shot's ends instead of reaching across the cut. Duplicate removal merges a run of
  near-identical frames into one key whose successors are interpolated at the output frames' own times.
- Grey frames are replicated to RGB for the model and the mean of its output is kept. Alpha is
  interpolated by the model too, as a second grey pass batched with the colour window.
- Memory does not depend on the length of the input: decoding and encoding run in their own threads,
  joined to the interpolation (in the caller's thread) by queues of `queue_size` frames, and retiming holds
  a few distinct frames (3 behind and 3 ahead, plus 2 of scene-cut look-ahead; with duplicate removal, each
  up to 8 input frames long) and the midpoints later frames can still need.
- Output files are written to a temporary name next to the destination and renamed on success only; on
  any error or Ctrl-C the temporary output is deleted and the exception propagates. The input is never
  written to.
- With `resume`, or split across the ranks of a torchrun job (`shard`), `double_video` works in segments
  that are converted with a few frames of context, kept in a work directory and joined losslessly, with the
  same result as one pass (`vfi_mini.segments`).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import queue
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
import torch

from .errors import (
    EXIT_ERROR,
    BackendUnavailable,
    InputError,
    ProcessingError,
    UsageError,
    VfiError,
)
from .io.images import ImageInfo, list_images, probe_image, read_image, write_image
from .io.video import (
    DecodeReport,
    EncodeOptions,
    PipeInput,
    VideoWriter,
    check_output_format,
    decode_frames,
    hw_decodes,
    hw_device_problem,
    probe_video,
)
from .scenes import (
    CONTEXT,
    DEFAULT_DEDUPE_MAX_RUN,
    DEFAULT_SCENE_THRESHOLD,
    SceneCut,
    block_difference,
    cut_score,
    difference,
    luma,
    thumbnail,
)
from .segments import (
    DEFAULT_SEGMENT_SECONDS,
    DEFAULT_WAIT_TIMEOUT,
    Shard,
    discard_and_raise,
    double_segmented,
    work_dir_for,
)
from .timing import FPS_DEPTH, Slot, Span, grid_length, parse_rate, plan_fps, plan_multi

log = logging.getLogger(__name__)

T = TypeVar("T")
InterpolateFn = Callable[[torch.Tensor], torch.Tensor]
ProgressFn = Callable[[int, "int | None"], None]
"""progress(done, total): output frames written so far and the expected total (None if unknown)."""

FRAME_NAME = "{index:08d}.{ext}"
_FRAME_NAME_RE = re.compile(r"\d{8}\.(png|jpg)")
IMAGE_FORMATS = ("png", "jpg")
# Windows per interpolator call for ``batch_size=None`` on CUDA, where larger calls keep the GPU busy; on the
# CPU batching gains nothing and costs memory, so None means 1 there.
CUDA_BATCH_SIZE = 4


# --------------------------------------------------------------------------------------------------
# Windowing and interpolation


@dataclass(frozen=True)
class Frame:
    """A frame moving through the pipeline.

    Attributes:
        image: (C, H, W) float32 in [0, 1].
        time: presentation time in seconds (None for image sequences).
        duration: display duration in seconds, when known.
        kind: ``"input"``, ``"interpolated"`` or ``"held"`` (the repeated last frame).
    """

    image: torch.Tensor
    time: Fraction | None = None
    duration: Fraction | None = None
    kind: str = "input"


def iter_windows(frames: Iterable[T]) -> Iterator[tuple[T, T, T, T]]:
    """Yield the window (f[k-1], f[k], f[k+1], f[k+2]) for each gap k = 0 .. N-2, replicating the
    first and last frame where a neighbour is missing. Holds at most four frames.

    >>> list(iter_windows("abc"))
    [('a', 'a', 'b', 'c'), ('a', 'b', 'c', 'c')]
    """
    it = iter(frames)
    try:
        cur = next(it)
        nxt = next(it)
    except StopIteration:
        return
    prev = cur
    while True:
        try:
            after = next(it)
            done = False
        except StopIteration:
            after, done = nxt, True
        yield prev, cur, nxt, after
        if done:
            return
        prev, cur, nxt = cur, nxt, after


def resolve_batch_size(batch_size: int | None, interpolator: Any) -> int:
    """`batch_size`, or for None (auto) `CUDA_BATCH_SIZE` when the interpolator's ``device`` is CUDA and
    1 otherwise. Raises UsageError when it is below 1."""
    if batch_size is None:
        device = getattr(interpolator, "device", None)
        return CUDA_BATCH_SIZE if isinstance(device, torch.device) and device.type == "cuda" else 1
    if batch_size < 1:
        raise UsageError(f"batch size must be >= 1, got {batch_size}")
    return batch_size


def _run_model(interpolator: InterpolateFn, windows: Sequence[Sequence[torch.Tensor]]) -> list[torch.Tensor]:
    """Middle frames for a batch of windows of four (C, H, W) images; handles grey (C=1), grey+alpha (2),
    RGB (3) and RGBA (4)."""
    batch = torch.stack([torch.stack(list(w)) for w in windows])  # (B, 4, C, H, W)
    b, _, c, h, w = batch.shape
    if c == 3:
        x = batch
    elif c == 1:
        x = batch.expand(-1, -1, 3, -1, -1)
    elif c == 4:
        x = torch.cat([batch[:, :, :3], batch[:, :, 3:].expand(-1, -1, 3, -1, -1)])  # (2B, 4, 3, H, W)
    elif c == 2:
        x = torch.cat([batch[:, :, :1].expand(-1, -1, 3, -1, -1), batch[:, :, 1:].expand(-1, -1, 3, -1, -1)])
    else:
        raise InputError(f"frames with {c} channels are not supported (1, 2, 3 or 4)")
    try:
        with torch.inference_mode():  # no autograd anywhere in the pipeline
            y = interpolator(x.contiguous())
    except (VfiError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - model failures (CUDA OOM, ...) become one-line errors
        raise ProcessingError(f"interpolation failed on a {w}x{h} frame: {type(exc).__name__}: {exc}") from exc
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (x.shape[0], 3, h, w):
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ProcessingError(f"the interpolator returned {got}, expected {(x.shape[0], 3, h, w)}")
    y = y.detach().to("cpu", torch.float32).clamp(0.0, 1.0)
    if c == 3:
        out = y
    elif c == 1:
        out = y.mean(1, keepdim=True)
    elif c == 4:
        out = torch.cat([y[:b], y[b:].mean(1, keepdim=True)], 1)
    else:
        out = torch.cat([y[:b].mean(1, keepdim=True), y[b:].mean(1, keepdim=True)], 1)
    return list(out.unbind(0))


class _Tap:
    """Passes frames through and remembers how many there were and the last two."""

    def __init__(self, frames: Iterable[Frame] = ()) -> None:
        self.source = frames
        self.count = 0
        self.first: Frame | None = None
        self.prev: Frame | None = None
        self.last: Frame | None = None

    def __iter__(self) -> Iterator[Frame]:
        for frame in self.source:
            self.count += 1
            if self.first is None:
                self.first = frame
            self.prev, self.last = self.last, frame
            yield frame


def interpolate_stream(
    frames: Iterable[Frame],
    interpolator: InterpolateFn,
    *,
    batch_size: int | None = 1,
    hold_last: bool = True,
    default_step: Fraction | None = None,
) -> Iterator[Frame]:
    """Double a stream of frames: each input frame followed by the interpolated frame after it.

    The plain 2x case of `retime_stream` (no scene detection, no duplicate removal).

    Args:
        frames: input frames in order (`Frame` with (C, H, W) images, optionally timed).
        interpolator: window (B, 4, 3, H, W) -> middle frames (B, 3, H, W).
        batch_size: windows per interpolator call (None: auto, see `resolve_batch_size`).
        hold_last: end with the last frame twice (video: 2N frames, same duration) instead of once
            (image sequences: 2N - 1 frames).
        default_step: frame interval to assume for the held frame when neither the last frame's duration
            nor a previous interval is known (a one-frame video).

    Yields:
        Output `Frame` objects with times and durations set when the inputs have times.
    """
    yield from retime_stream(
        frames, interpolator, batch_size=batch_size, hold_last=hold_last, default_step=default_step
    )


# --------------------------------------------------------------------------------------------------
# Retiming: scene cuts, duplicates, multiples of the rate and target rates


@dataclass
class RetimeReport:
    """What `retime_stream` found, filled in while the stream is consumed.

    Attributes:
        input_frames, output_frames: frames read and yielded so far.
        cuts: the scene cuts found (`SceneCut`: first frame of the new shot, its time, the score).
        duplicates: input frames merged into the frame before them (duplicate removal).
    """

    input_frames: int = 0
    output_frames: int = 0
    cuts: list[SceneCut] = field(default_factory=list)
    duplicates: int = 0


@dataclass
class _Key:
    """A distinct input frame (with the duplicates merged into it)."""

    index: int
    image: torch.Tensor
    time: Fraction
    members: list[Fraction]
    first_frame: int
    thumb: torch.Tensor | None
    cut_after: bool | None = None  # None until the look-ahead has decided


def _default_depth(multi: int, fps: Fraction | None, dedupe: float | None) -> int:
    if fps is not None:
        return FPS_DEPTH
    # Without duplicates, positions are exact multiples of 1/multi; merged runs of r frames need r-ths.
    return multi.bit_length() - 1 + (2 if dedupe is not None else 0)


class _Retimer:
    """The stages of `retime_stream`: frames -> keys (duplicates merged) -> spans (cuts decided) -> slots
    (`vfi_mini.timing`) -> pictures (recursive midpoints). Holds a few keys of look-ahead and the midpoints
    that later output frames can still need; nothing grows with the length of the input."""

    def __init__(
        self,
        interpolator: InterpolateFn,
        *,
        batch_size: int,
        depth: int,
        scene_threshold: float | None,
        dedupe: float | None,
        dedupe_max_run: int,
        report: RetimeReport,
    ) -> None:
        self.interpolator = interpolator
        self.batch_size = batch_size
        self.depth = depth
        self.scene_threshold = scene_threshold
        self.dedupe = dedupe
        self.max_run = dedupe_max_run
        self.report = report
        self.keys: dict[int, _Key] = {}
        self.cache: dict[Fraction, torch.Tensor] = {}  # midpoints by position (key index units)
        self.timed: bool | None = None
        self.end: Fraction | None = None

    # -- frames -> keys ------------------------------------------------------------------------------

    def keys_of(
        self, frames: Iterable[Frame], hold_last: bool, default_step: Fraction | None, fps: bool
    ) -> Iterator[_Key]:
        run: list[tuple[Frame, int, Fraction]] = []  # frames merged so far into the next key
        ref: torch.Tensor | None = None  # full-size luma of the run's first frame (duplicate test)
        still = False  # the run outgrew `max_run`: a real still, every frame its own key
        count = 0
        last: tuple[Fraction, Fraction | None] | None = None
        prev_time: Fraction | None = None

        def key(members: list[tuple[Frame, int, Fraction]]) -> _Key:
            frame, k, t = members[0]
            thumb = thumbnail(frame.image) if self.scene_threshold is not None else None
            return _Key(count, frame.image, t, [m[2] for m in members], k, thumb)

        for k, frame in enumerate(frames):
            self.report.input_frames += 1
            timed = frame.time is not None
            if self.timed is None:
                self.timed = timed
                if fps and not timed:
                    raise UsageError("a target frame rate needs timed frames (a video), not an image sequence")
            elif timed != self.timed:
                raise InputError(f"frame {k} {'has' if timed else 'has no'} time, unlike the frames before it")
            t = frame.time if frame.time is not None else Fraction(k)
            if last is not None:
                prev_time = last[0]
            last = (t, frame.duration)
            if ref is not None and self.dedupe is not None:
                y = luma(frame.image)
                if y.shape == ref.shape and block_difference(ref, y) <= self.dedupe:
                    if still:
                        yield key([(frame, k, t)])
                        count += 1
                        continue
                    run.append((frame, k, t))
                    if len(run) > self.max_run:
                        still = True
                        for member in run:
                            yield key([member])
                            count += 1
                        run = []
                    continue
            if run:
                yield key(run)
                count += 1
                self.report.duplicates += len(run) - 1
            run, still = [(frame, k, t)], False
            ref = luma(frame.image) if self.dedupe is not None else None
        if run:
            yield key(run)
            self.report.duplicates += len(run) - 1
        if last is None:
            return
        t_last, d_last = last
        if not hold_last:
            self.end = t_last
            return
        step = d_last
        if step is None and prev_time is not None:
            step = t_last - prev_time
        if step is None:
            step = default_step if self.timed else Fraction(1)
        if step is None:
            raise UsageError("the last frame's duration is unknown: pass default_step to hold it")
        self.end = t_last + step

    # -- keys -> spans -------------------------------------------------------------------------------

    def spans_of(self, keys: Iterator[_Key]) -> Iterator[Span]:
        """Spans in order, each once the keys its pictures can need (up to 3 ahead) are here and the
        cuts within that reach are decided (2 more keys of look-ahead with scene detection)."""
        diffs: dict[int, float] = {}  # gap g (between keys g and g + 1) -> thumbnail difference
        undecided: list[int] = []
        waiting: list[_Key] = []  # keys whose span is not out yet
        newest: _Key | None = None
        lookahead = 3 + (CONTEXT if self.scene_threshold is not None else 0)

        def decide(g: int) -> None:
            k = self.keys[g]
            if self.scene_threshold is None:
                k.cut_after = False
                return
            before = [diffs[i] for i in range(g - CONTEXT, g) if i in diffs]
            after = [diffs[i] for i in range(g + 1, g + 1 + CONTEXT) if i in diffs]
            score = cut_score(diffs[g], before, after)
            k.cut_after = score >= self.scene_threshold
            if k.cut_after:
                nxt = self.keys[g + 1]
                self.report.cuts.append(SceneCut(nxt.first_frame, nxt.time if self.timed else None, score))
            for old in [i for i in diffs if i < g - CONTEXT]:
                del diffs[old]

        def span(k: _Key, final: bool) -> Span:
            end = self.keys[k.index + 1].time if not final else self.end
            assert end is not None
            return Span(k.index, k.time, end, tuple(k.members), bool(not final and not k.cut_after), final)

        for key in keys:
            self.keys[key.index] = key
            if newest is not None:
                if self.scene_threshold is not None:
                    assert newest.thumb is not None and key.thumb is not None
                    diffs[newest.index] = difference(newest.thumb, key.thumb)
                    newest.thumb = None
                undecided.append(newest.index)
            newest = key
            while undecided and (self.scene_threshold is None or undecided[0] + CONTEXT in diffs):
                decide(undecided.pop(0))
            waiting.append(key)
            while waiting and waiting[0].index + lookahead <= key.index:
                yield span(waiting.pop(0), final=False)
        for g in undecided:
            decide(g)
        if newest is not None:
            newest.cut_after = False
        for i, k in enumerate(waiting):
            yield span(k, final=i == len(waiting) - 1)

    # -- slots -> pictures ---------------------------------------------------------------------------

    def _shot(self, j: int) -> tuple[int, int]:
        """First and last key of the shot around the (blending) gap j, as far as the held keys go."""
        s = j
        while s - 1 in self.keys and self.keys[s - 1].cut_after is False:
            s -= 1
        e = j + 1
        while e + 1 in self.keys and self.keys[e].cut_after is False:
            e += 1
        return s, e

    def _require(self, x: Fraction, s: int, e: int, need: dict[Fraction, tuple[Fraction, ...]]) -> None:
        if x.denominator == 1 or x in self.cache or x in need:
            return
        h = Fraction(1, x.denominator)
        # The model's window (t-1, t, t+1, t+2) at spacing 2h around x, kept inside the shot.
        window = (max(x - 3 * h, Fraction(s)), x - h, x + h, min(x + 3 * h, Fraction(e)))
        need[x] = window
        for y in window:
            self._require(y, s, e, need)

    def _picture(self, x: Fraction) -> torch.Tensor:
        return self.keys[int(x)].image if x.denominator == 1 else self.cache[x]

    def _evaluate(self, slots: list[Slot]) -> None:
        need: dict[Fraction, tuple[Fraction, ...]] = {}
        for slot in slots:
            if slot.frac:
                self._require(slot.position, *self._shot(slot.key), need)
        for level in sorted({x.denominator for x in need}):  # coarse midpoints first
            todo = sorted(x for x in need if x.denominator == level)
            for i in range(0, len(todo), self.batch_size):
                chunk = todo[i : i + self.batch_size]
                mids = _run_model(self.interpolator, [[self._picture(y) for y in need[x]] for x in chunk])
                self.cache.update(zip(chunk, mids, strict=True))

    def _evict(self, frontier: Fraction) -> None:
        """Forget what no output frame at or after `frontier` can need: a midpoint of level L (spacing
        2**-L) is only used within 3 * (2**-L - 2**-depth) of the frames that need it."""
        limit = Fraction(1, 1 << self.depth)
        for x in [x for x in self.cache if x < frontier - 3 * (Fraction(1, x.denominator) - limit)]:
            del self.cache[x]
        for j in [j for j in self.keys if j < frontier - 3]:
            del self.keys[j]

    def frames_of(self, slots: Iterable[Slot]) -> Iterator[Frame]:
        pending: list[Slot] = []
        missing = 0

        def flush() -> Iterator[Frame]:
            self._evaluate(pending)
            for slot in pending:
                key = self.keys[slot.key]
                if slot.frac:
                    image, kind = self.cache[slot.position], "interpolated"
                else:
                    image, kind = key.image, ("input" if slot.time == key.time else "held")
                self.report.output_frames += 1
                if self.timed:
                    yield Frame(image, slot.time, slot.duration, kind)
                else:
                    yield Frame(image, kind=kind)
            self._evict(pending[-1].position)
            pending.clear()

        for slot in slots:
            pending.append(slot)
            if slot.frac and slot.position not in self.cache:
                missing += 1
            if missing >= self.batch_size:
                yield from flush()
                missing = 0
        if pending:
            yield from flush()


def retime_stream(
    frames: Iterable[Frame],
    interpolator: InterpolateFn,
    *,
    multi: int = 2,
    fps: Fraction | None = None,
    scene_threshold: float | None = None,
    dedupe: float | None = None,
    dedupe_max_run: int = DEFAULT_DEDUPE_MAX_RUN,
    depth: int | None = None,
    batch_size: int | None = 1,
    hold_last: bool = True,
    default_step: Fraction | None = None,
    report: RetimeReport | None = None,
    origin: Fraction | None = None,
    start: Fraction | None = None,
    stop: Fraction | None = None,
) -> Iterator[Frame]:
    """Convert a stream of frames to `multi` times its rate, or to the constant rate `fps`.

    Frames are placed by `vfi_mini.timing` (`plan_multi` / `plan_fps`) and made by recursive midpoints:
    the frame at ``k + 1/4`` is the model's middle of the window at spacing 1/2 around it, whose frames are
    inputs and midpoints ``k + 1/2`` (so ``multi=4`` is two passes of doubling, computed lazily and only
    where an output frame needs them).

    - Scene cuts (`scene_threshold`, see `vfi_mini.scenes`): output frames between the last frame of a shot
      and the first of the next repeat the last frame of the shot, and no window reaches across a cut
      (frames of the same shot are repeated at its ends instead, as at the ends of the video).
    - Duplicates (`dedupe`): a run of up to `dedupe_max_run` frames that repeat its first frame counts as
      that one frame held longer; the output frames keep the times they would have had, and show the
      picture interpolated between the run's frame and the next distinct frame at the position nearest to
      their time (``2**-depth`` steps). Longer runs are real stills and are kept as they are.

    Args:
        frames: input frames in order (`Frame`; timed for video, untimed for image sequences, where frame k
            counts as time k).
        interpolator: window (B, 4, 3, H, W) -> middle frames (B, 3, H, W).
        multi: output frames per input frame (a power of two); ignored when `fps` is given.
        fps: constant output rate (video only): frame n at exactly ``first time + n / fps``.
        scene_threshold: cut score that makes a cut (percent); None: no scene detection.
        dedupe: duplicate threshold (percent, largest 8x8 block difference); None: keep duplicates.
        dedupe_max_run: longest run of frames merged into one.
        depth: finest midpoint level (positions are multiples of ``2**-depth`` of a span); default
            ``log2(multi)`` (+2 with `dedupe`), 3 with `fps`.
        batch_size: windows per interpolator call (None: auto, see `resolve_batch_size`).
        hold_last: after the last frame, fill its own duration (video: ``multi * N`` frames, same
            duration) instead of stopping at it (image sequences: ``multi * (N - 1) + 1`` frames).
        default_step: the last frame's duration when neither the file nor a previous interval tells it.
        report: filled in with cuts, duplicates and counts.
        origin: with `fps`, the time of the video's first frame when `frames` is a later part of it (a
            segment): the output frames are those of the whole video's grid (default: the first frame's time).
        start, stop: make and yield only the output frames with times in [start, stop) (None: no limit); the
            frames outside are context for those inside (a segment of a longer video).

    Yields:
        Output `Frame` objects (kind ``"input"``: an input frame at its own time; ``"interpolated"``: made
        by the model; ``"held"``: an input frame shown at another time - the held end, across a cut, or the
        nearest picture to an output time).

    Raises:
        UsageError: bad settings, or `fps` with untimed frames.
        InputError: frames with and without times mixed.
        ProcessingError: the model failed.
    """
    batch_size = resolve_batch_size(batch_size, interpolator)
    if multi < 2 or multi & (multi - 1):
        raise UsageError(f"the frame-rate multiple must be a power of two >= 2 (midpoints only), got {multi}")
    if fps is not None and fps <= 0:
        raise UsageError(f"the target frame rate must be positive, got {fps}")
    if dedupe_max_run < 2:
        raise UsageError(f"the longest duplicate run must be >= 2, got {dedupe_max_run}")
    depth = _default_depth(multi, fps, dedupe) if depth is None else depth
    if depth < 1:
        raise UsageError(f"depth must be >= 1, got {depth}")
    retimer = _Retimer(
        interpolator,
        batch_size=batch_size,
        depth=depth,
        scene_threshold=scene_threshold,
        dedupe=dedupe,
        dedupe_max_run=dedupe_max_run,
        report=report if report is not None else RetimeReport(),
    )
    spans = retimer.spans_of(retimer.keys_of(frames, hold_last, default_step, fps=fps is not None))
    slots = plan_fps(spans, fps, depth, origin) if fps is not None else plan_multi(spans, multi, depth)
    if start is not None or stop is not None:
        slots = _between(slots, start, stop)
    yield from retimer.frames_of(slots)


def _between(slots: Iterable[Slot], start: Fraction | None, stop: Fraction | None) -> Iterator[Slot]:
    for slot in slots:  # in time order
        if stop is not None and slot.time >= stop:
            return
        if start is None or slot.time >= start:
            yield slot


# --------------------------------------------------------------------------------------------------
# Threads


class _Stopped(Exception):
    """Another stage failed or the run was interrupted."""


_END = object()


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while not stop.is_set():  # once stopped, queued items are abandoned
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    raise _Stopped


def _join(thread: threading.Thread) -> None:
    while thread.is_alive():  # join with a timeout so that Ctrl-C is not held up
        thread.join(0.1)


def run_threaded(
    source: Iterator[Any],
    transform: Callable[[Iterator[Any]], Iterator[Any]],
    sink: Callable[[Any], None],
    *,
    queue_size: int = 4,
    progress: ProgressFn | None = None,
    total: int | None = None,
) -> int:
    """Run `source` in a reader thread and `sink` in a writer thread around `transform`, which runs in the
    calling thread (so Ctrl-C lands there). The stages are joined by bounded queues.

    The first exception raised by any stage stops the others and is re-raised here.

    Args:
        source: produces input items (a generator; closed when the run ends).
        transform: maps an iterator of input items to an iterator of output items.
        sink: consumes each output item.
        queue_size: capacity of each queue.
        progress: called in the calling thread as progress(items sunk, total); the last call has
            total = items sunk.
        total: expected number of output items (an estimate is fine), passed to `progress`.

    Returns:
        The number of items passed to `sink`.
    """
    if queue_size < 1:
        raise UsageError(f"queue size must be >= 1, got {queue_size}")
    stop = threading.Event()
    errors: list[BaseException] = []
    lock = threading.Lock()
    q_in: queue.Queue = queue.Queue(maxsize=queue_size)
    q_out: queue.Queue = queue.Queue(maxsize=queue_size)
    done = [0]

    def fail(exc: BaseException) -> None:
        with lock:
            if not errors:
                errors.append(exc)
        stop.set()

    def produce() -> None:
        try:
            for item in source:
                if not _put(q_in, item, stop):
                    return
            _put(q_in, _END, stop)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            fail(exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001
                    log.debug("closing the source failed", exc_info=True)

    def consume() -> None:
        try:
            while True:
                item = _get(q_out, stop)
                if item is _END:
                    return
                sink(item)
                done[0] += 1
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            fail(exc)

    def incoming() -> Iterator[Any]:
        while True:
            item = _get(q_in, stop)
            if item is _END:
                return
            yield item

    reader = threading.Thread(target=produce, name="vfi-read", daemon=True)
    writer = threading.Thread(target=consume, name="vfi-write", daemon=True)
    reader.start()
    writer.start()
    try:
        if progress is not None:
            progress(0, total)
        outputs = transform(incoming())
        try:
            for item in outputs:
                if not _put(q_out, item, stop):
                    raise _Stopped
                if progress is not None:
                    progress(done[0], total)
            if not _put(q_out, _END, stop):
                raise _Stopped
            while writer.is_alive():
                writer.join(0.1)
                if progress is not None:
                    progress(done[0], total)
        except _Stopped:
            pass
        finally:
            close = getattr(outputs, "close", None)
            if close is not None:
                close()
        if errors:
            raise errors[0]
        if progress is not None:
            progress(done[0], done[0])  # the final call carries the exact total
        return done[0]
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        _join(reader)
        _join(writer)


# --------------------------------------------------------------------------------------------------
# Tensors <-> arrays


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W, C) uint8/uint16 -> (C, H, W) float32 in [0, 1]."""
    scale = np.float32(1 / 65535 if array.dtype == np.uint16 else 1 / 255)
    out = np.empty((array.shape[2], array.shape[0], array.shape[1]), np.float32)
    np.multiply(array.transpose(2, 0, 1), scale, out=out)  # one pass; torch's permute-copy is ~15x slower
    return torch.from_numpy(out)


def _to_array(image: torch.Tensor, bits: int = 16) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W, C) uint8/uint16, rounded to nearest."""
    scale = 65535.0 if bits == 16 else 255.0
    a = image.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy()
    a = np.clip(a * scale + 0.5, 0.0, scale)
    return a.astype(np.uint16 if bits == 16 else np.uint8)


# --------------------------------------------------------------------------------------------------
# Output safety


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _temp_sibling(dst: Path, suffix: str = "") -> Path:
    return dst.parent / f".{dst.name}.vfi-tmp-{secrets.token_hex(4)}{suffix}"


def check_output_file(src: str | Path, dst: str | Path, *, overwrite: bool = False) -> None:
    """Refuse an output file that is the input, an existing file (without `overwrite`), a directory,
    in a missing directory, or with an extension that names no container.

    Raises:
        UsageError: with the reason.
    """
    src, dst = Path(src), Path(dst)
    if _same_path(src, dst):
        raise UsageError(f"the output {dst} is the input file; choose another output name")
    if dst.is_dir():
        raise UsageError(f"the output {dst} is a directory; give a file name such as {dst / 'out.mp4'}")
    if dst.exists() and not overwrite:
        raise UsageError(f"the output {dst} exists; pass -y/--overwrite to replace it")
    if not dst.parent.is_dir():
        raise UsageError(f"the output directory {dst.parent} does not exist")
    if not os.access(dst.parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to the output directory {dst.parent} (permission denied)")
    check_output_format(dst)


def check_output_dir(src_dir: str | Path, dst_dir: str | Path, *, overwrite: bool = False) -> None:
    """Refuse an output directory that is the input directory, a file, or not empty (without `overwrite`).

    Raises:
        UsageError: with the reason.
    """
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    if _same_path(src_dir, dst_dir):
        raise UsageError(f"the output directory {dst_dir} is the input directory; choose another one")
    if dst_dir.exists() and not dst_dir.is_dir():
        raise UsageError(f"the output {dst_dir} exists and is not a directory")
    if dst_dir.is_dir() and any(dst_dir.iterdir()) and not overwrite:
        raise UsageError(f"the output directory {dst_dir} is not empty; pass -y/--overwrite to write into it")


# --------------------------------------------------------------------------------------------------
# Video

# Choices of `double_video(hwaccel=...)`: where the input video is decoded.
HWACCELS = ("auto", "none", "cuda")


@functools.cache
def _auto_hwaccel() -> str | None:
    """``hwaccel="auto"``: cuda when PyTorch sees a CUDA GPU and FFmpeg opens a CUDA device, else None."""
    problem = "PyTorch sees no CUDA GPU" if not torch.cuda.is_available() else hw_device_problem("cuda")
    if problem is not None:
        log.debug("--hwaccel auto: decoding in software (%s)", problem)
        return None
    log.debug("--hwaccel auto: decoding on the cuda device (NVDEC) where it can")
    return "cuda"


def resolve_hwaccel(hwaccel: str = "auto") -> str | None:
    """The hardware device type `double_video` decodes on for `hwaccel`, or None for software decoding.

    Args:
        hwaccel: ``"auto"`` (cuda when PyTorch sees a CUDA GPU and the FFmpeg that PyAV loads can open a
            CUDA device; else software, with a debug log line), ``"none"``, or ``"cuda"``.

    Returns:
        ``"cuda"`` or None.

    Raises:
        UsageError: an unknown value.
        BackendUnavailable: ``"cuda"`` asked for, and FFmpeg has no CUDA support or opens no CUDA device.
    """
    if hwaccel not in HWACCELS:
        raise UsageError(f"--hwaccel must be one of {', '.join(HWACCELS)}, got {hwaccel!r}")
    if hwaccel == "none":
        return None
    if hwaccel == "auto":
        return _auto_hwaccel()
    problem = hw_device_problem(hwaccel)
    if problem is not None:
        raise BackendUnavailable(f"--hwaccel {hwaccel}: {problem}; use --hwaccel none or auto")
    return hwaccel


def _rational(value: Fraction | None) -> str | None:
    if value is None:
        return None
    return f"{value.numerator}/{value.denominator}" if value.denominator != 1 else str(value.numerator)


@dataclass
class DoubleResult:
    """What `double_video` did. `to_dict` gives the CLI's JSON summary."""

    input: Path
    output: Path
    input_frames: int
    output_frames: int
    input_rate: Fraction
    output_rate: Fraction
    input_duration: Fraction | None
    output_duration: Fraction | None
    seconds: float
    device: str | None = None
    codec: str = ""
    pix_fmt: str = ""
    audio_copied: int = 0
    audio_reencoded: int = 0
    subtitles_copied: int = 0
    frames_skipped: int = 0
    multi: int | None = 2
    scene_threshold: float | None = None
    scene_cuts: list[SceneCut] = field(default_factory=list)
    dedupe_threshold: float | None = None
    duplicates: int = 0
    segments: dict[str, Any] | None = None
    hwaccel: str = "none"

    @property
    def fps(self) -> float:
        """Output frames per second of wall time."""
        return self.output_frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        def seconds(value: Fraction | None) -> float | None:
            return None if value is None else round(float(value), 6)

        return {
            "input": str(self.input),
            "output": str(self.output),
            "input_frames": self.input_frames,
            "output_frames": self.output_frames,
            "input_rate": _rational(self.input_rate),
            "output_rate": _rational(self.output_rate),
            "input_duration": seconds(self.input_duration),
            "output_duration": seconds(self.output_duration),
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 3),
            "device": self.device,
            "hwaccel": self.hwaccel,
            "codec": self.codec,
            "pix_fmt": self.pix_fmt,
            "audio_streams_copied": self.audio_copied,
            "audio_streams_reencoded": self.audio_reencoded,
            "subtitle_streams_copied": self.subtitles_copied,
            "damaged_frames_skipped": self.frames_skipped,
            "multi": self.multi,
            "scene_threshold": self.scene_threshold,
            "scene_cuts": [cut.to_dict() for cut in self.scene_cuts],
            "dedupe_threshold": self.dedupe_threshold,
            "duplicates": self.duplicates,
            **({"segments": self.segments} if self.segments is not None else {}),
        }


def _device_name(interpolator: Any) -> str | None:
    device = getattr(interpolator, "device", None)
    return str(device) if device is not None else None


def double_video(
    src: str | Path | PipeInput,
    dst: str | Path | BinaryIO,
    interpolator: InterpolateFn,
    *,
    encode: EncodeOptions | None = None,
    audio: bool = True,
    subtitles: bool = True,
    overwrite: bool = False,
    strict: bool = False,
    batch_size: int | None = 1,
    queue_size: int = 4,
    progress: ProgressFn | None = None,
    multi: int = 2,
    fps: Fraction | str | int | float | None = None,
    scene_threshold: float | None = DEFAULT_SCENE_THRESHOLD,
    dedupe: float | None = None,
    output_format: str | None = None,
    resume: bool = False,
    segment_seconds: float | None = None,
    shard: Shard | None = None,
    model_key: str = "",
    wait_timeout: float | None = None,
    hwaccel: str = "auto",
) -> DoubleResult:
    """Write `dst`: the video `src` at twice (or `multi` times) its frame rate, or at the constant rate
    `fps`, other streams copied.

    N input frames give 2N output frames at exactly twice the input rate, the last frame held once so
    that the duration is unchanged (see the module docstring for the timing contract); ``multi * N`` at
    `multi` times the rate. With `fps`, ``ceil(duration * fps)`` frames at exactly `fps`, frame n at
    ``start + n / fps``, the last one cut short so that the duration is unchanged (`vfi_mini.timing`).
    Scene cuts are not blended across, and duplicate frames can be merged (`retime_stream`).

    Args:
        src: input video file (never modified), or a `PipeInput` (a stream such as stdin, read once; only
            its video is used).
        dst: output file; its extension picks the container. Written under a temporary name next to it
            and renamed when complete. Or a binary stream (``sys.stdout.buffer``), written as it goes in
            the container `output_format` (default yuv4mpeg, which needs ``rawvideo`` as the codec).
        interpolator: window (B, 4, 3, H, W) -> (B, 3, H, W), e.g. an `Interpolator`.
        encode: video encoder settings (default libx264, CRF 18, preset medium, the input's pixel
            format).
        audio: copy the audio streams (re-encoding those the container cannot hold).
        subtitles: copy the subtitle streams where the container can hold them.
        overwrite: replace an existing `dst`.
        strict: fail (InputError) at the first damaged video frame instead of skipping damaged frames
            with a warning (the frames around a gap keep their timestamps, so timing stays right).
        batch_size: windows per interpolator call (None: 4 for an interpolator on CUDA, else 1).
        queue_size: frames buffered between decoder, model and encoder.
        progress: progress(output frames written, expected total or None), called in this thread.
        multi: output frames per input frame: 2, 4 or 8 (recursive midpoints); ignored with `fps`.
        fps: constant output rate (a `Fraction`, or text for `vfi_mini.timing.parse_rate`: ``"59.94"``,
            ``"60000/1001"``, ``"ntsc"``).
        scene_threshold: scene-cut score threshold (percent, `vfi_mini.scenes`); None: no detection.
        dedupe: duplicate-frame threshold (percent); None: keep duplicates as they are.
        output_format: FFmpeg container format; for a file, None lets the extension decide.
        resume: convert in segments kept in ``DST.vfi-parts/`` until the output is complete, continuing from
            the segments an earlier, interrupted run with `resume` finished (`vfi_mini.segments`).
        segment_seconds: segment length (split at the first input keyframe after it; default 60 s).
        shard: this process's rank in a job of several (`Shard.from_env()` under torchrun): with
            ``world_size > 1`` the video is split into segments, rank r converts those with index
            ``i % world_size == r``, and rank 0 waits for them and joins them into `dst`.
        model_key: what identifies the model (weights file, precision, tiling): a resumed conversion must
            use the same model as its finished segments (it is stored in the manifest).
        wait_timeout: rank 0 stops waiting for the other ranks' segments after this many seconds without
            progress (default 600).
        hwaccel: decode the input on the GPU (NVDEC): ``"cuda"``, ``"none"``, or ``"auto"`` (see
            `resolve_hwaccel`). Streams the GPU cannot decode are decoded in software (with a warning for
            ``"cuda"``); the output is the same either way, and `DoubleResult.hwaccel` tells which was used.

    Returns:
        A `DoubleResult` (on ranks other than 0 of a split video: the segments they converted).

    Raises:
        InputError: unreadable input, no video stream, no frames.
        UsageError: bad output path or encoder settings.
        BackendUnavailable: ``hwaccel="cuda"`` where it cannot be used, or a hardware encoder that does not
            open.
        ProcessingError: decoding, interpolation or encoding failed part-way (a full disk included).
        KeyboardInterrupt: passed through after the temporary output is deleted (in segments: the finished
            segments are kept for `resume`).
    """
    started = time.perf_counter()
    pipe = src if isinstance(src, PipeInput) else None
    piped_out = hasattr(dst, "write")
    src = pipe.path if pipe is not None else Path(src)  # type: ignore[arg-type]
    shard = shard or Shard()
    batch_size = resolve_batch_size(batch_size, interpolator)
    segmented = resume or shard.world_size > 1
    if segmented and (pipe is not None or piped_out):
        raise UsageError("--resume and splitting a video across ranks need an input file and an output file, not pipes")
    if segmented and dedupe is not None:
        raise UsageError(
            "--dedupe cannot be combined with --resume or with splitting a video across ranks (a run of duplicates "
            "can reach across any segment boundary); run it in one process without --resume"
        )
    if pipe is None and not src.exists():
        raise InputError(f"input file not found: {src}")
    dst_path = Path("stdout") if piped_out else Path(dst)  # type: ignore[arg-type]
    if not piped_out:
        check_output_file(src, dst_path, overwrite=overwrite)
    info = pipe.info if pipe is not None else probe_video(src)
    device_type = resolve_hwaccel(hwaccel)
    if device_type is not None and (pipe is not None or not hw_decodes(info.codec, device_type)):
        if hwaccel != "auto":
            what = "a piped input" if pipe is not None else f"{info.codec} video"
            log.warning("--hwaccel %s: the %s device cannot decode %s; decoding in software", hwaccel, hwaccel, what)
        device_type = None
    rate = parse_rate(fps) if fps is not None else None
    if rate is None and multi not in (2, 4, 8):
        raise UsageError(f"--multi must be 2, 4 or 8, got {multi}")
    out_rate = rate if rate is not None else info.rate * multi
    # A time base that holds every output time exactly: the input's split `multi` ways, or (for a
    # target rate) a common multiple of the input's and 1/fps.
    if rate is None:
        time_base = info.time_base / multi
    else:
        time_base = Fraction(1, math.lcm(info.time_base.denominator, rate.numerator))
    encode = encode or EncodeOptions()
    if rate is not None:
        total = grid_length(info.duration, rate) if info.duration else None
    else:
        total = multi * info.frames if info.frames else None
    if segmented:
        if output_format is not None:
            raise UsageError("--resume and splitting a video across ranks pick the container from the output's name")
        return double_segmented(
            src,
            dst_path,
            interpolator,
            info,
            encode=encode,
            audio=audio,
            subtitles=subtitles,
            strict=strict,
            batch_size=batch_size,
            queue_size=queue_size,
            progress=progress,
            multi=multi,
            rate=rate,
            out_rate=out_rate,
            time_base=time_base,
            scene_threshold=scene_threshold,
            total=total,
            segment_seconds=DEFAULT_SEGMENT_SECONDS if segment_seconds is None else segment_seconds,
            shard=shard,
            model_key=model_key,
            wait_timeout=DEFAULT_WAIT_TIMEOUT if wait_timeout is None else wait_timeout,
            hwaccel=device_type,
        )
    if not piped_out and work_dir_for(dst_path).is_dir():
        log.warning(
            "%s holds the finished segments of an interrupted --resume run; they are not used without --resume",
            work_dir_for(dst_path),
        )
    if piped_out and output_format is None:
        output_format = "yuv4mpegpipe"
    tmp = None if piped_out else _temp_sibling(dst_path, dst_path.suffix)
    log.info(
        "%s: %dx%d %s, %s fps, colour %s -> %s fps",
        src,
        info.width,
        info.height,
        info.pix_fmt,
        _rational(info.rate),
        info.colour.description,
        _rational(out_rate),
    )
    writer: VideoWriter | None = None
    try:
        writer = VideoWriter(
            dst if tmp is None else tmp,  # type: ignore[arg-type]
            info,
            out_rate,
            encode,
            audio=audio,
            subtitles=subtitles,
            time_base=time_base,
            format=output_format,
        )
        tap = _Tap()  # counts the input frames and keeps the first and last two
        retimed = RetimeReport()

        def transform(frames: Iterator[Frame]) -> Iterator[Frame]:
            tap.source = frames
            return retime_stream(
                tap,
                interpolator,
                multi=multi,
                fps=rate,
                scene_threshold=scene_threshold,
                dedupe=dedupe,
                batch_size=batch_size,
                hold_last=True,
                default_step=1 / info.rate,
                report=retimed,
            )

        def sink(frame: Frame) -> None:
            assert writer is not None and frame.time is not None
            writer.write(_to_array(frame.image), frame.time, frame.duration)

        report = DecodeReport()
        if pipe is not None:
            decoded = pipe.frames()
            report = pipe.report
        else:
            decoded = decode_frames(src, info, strict=strict, report=report, hwaccel=device_type)
        source = (Frame(_to_tensor(f.rgb), f.time, f.duration) for f in decoded)
        written = run_threaded(source, transform, sink, queue_size=queue_size, progress=progress, total=total)
        if tap.count == 0:
            raise InputError(f"{src} has a video stream but no decodable frames")
        writer.close()
        if tmp is not None:
            os.replace(tmp, dst_path)
        elif hasattr(dst, "flush"):
            dst.flush()  # type: ignore[union-attr]
    except BaseException as exc:
        discard_and_raise(writer, tmp, dst_path, exc, also=None if pipe is None else pipe.close)
    if tap.count == 1:
        log.warning("%s has a single frame: the output holds it (same duration)", src)
    if info.frames_exact and info.frames != tap.count and not report.damaged:  # else already reported
        log.warning("%s: the container lists %d frames but %d were decoded", src, info.frames, tap.count)
    assert tap.first is not None and tap.last is not None and tap.first.time is not None
    last_step = tap.last.duration
    if last_step is None and tap.prev is not None and tap.prev.time is not None and tap.last.time is not None:
        last_step = tap.last.time - tap.prev.time
    in_duration = (tap.last.time + (last_step or 1 / info.rate)) - tap.first.time  # type: ignore[operator]
    return DoubleResult(
        input=src,
        output=dst_path,
        input_frames=tap.count,
        output_frames=written,
        input_rate=info.rate,
        output_rate=out_rate,
        input_duration=in_duration,
        output_duration=writer.video_duration,
        seconds=time.perf_counter() - started,
        device=_device_name(interpolator),
        codec=encode.codec,
        pix_fmt=writer.pix_fmt,
        audio_copied=len(writer.audio_copied),
        audio_reencoded=len(writer.audio_reencoded),
        subtitles_copied=len(writer.subtitles_copied),
        frames_skipped=report.broken,
        multi=None if rate is not None else multi,
        scene_threshold=scene_threshold,
        scene_cuts=retimed.cuts,
        dedupe_threshold=dedupe,
        duplicates=retimed.duplicates,
        hwaccel=report.hwaccel,
    )


# --------------------------------------------------------------------------------------------------
# Batches


@dataclass
class BatchItem:
    """The outcome for one file of `double_batch`. `to_dict` gives the CLI's JSON line.

    Attributes:
        input, output: the file and where its output goes.
        status: ``"ok"``, ``"skipped"`` (the output exists and `skip_existing`) or ``"failed"``.
        result: the `DoubleResult` when ok.
        error, exit_code: the one-line message and the CLI exit code of the failure.
    """

    input: Path
    output: Path
    status: str
    result: DoubleResult | None = None
    error: str | None = None
    exit_code: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"input": str(self.input), "output": str(self.output), "status": self.status}
        if self.result is not None:
            out.update(self.result.to_dict())
        if self.status == "failed":
            out.update(error=self.error, exit_code=self.exit_code)
        return out


def batch_outputs(inputs: Sequence[str | Path], out_dir: str | Path, ext: str | None = None) -> list[Path]:
    """The output of each input in `out_dir`: the input's name with its own extension, or `ext`.

    >>> [str(p) for p in batch_outputs(["a/x.mp4", "y.mkv"], "out", ext="mov")]
    ['out/x.mov', 'out/y.mov']
    """
    suffix = None if ext is None else "." + ext.lstrip(".")
    return [Path(out_dir) / (Path(p).stem + (suffix if suffix is not None else Path(p).suffix)) for p in inputs]


def _failed(src: Path, dst: Path, message: str, code: int) -> BatchItem:
    log.error("%s: %s", src, message)
    return BatchItem(src, dst, "failed", error=message, exit_code=code)


def double_batch(
    inputs: Sequence[str | Path],
    outputs: Sequence[str | Path],
    load: Callable[[], InterpolateFn],
    *,
    skip_existing: bool = False,
    overwrite: bool = False,
    shard: Shard | None = None,
    **kwargs: Any,
) -> Iterator[BatchItem]:
    """Run `double_video` over several files, yielding one `BatchItem` per file as each finishes.

    A file that fails is reported and the batch goes on. Each file's input and output are checked before
    the model is needed, and `load` is called once, for the first file that gets that far, so a batch of
    skipped or unreadable files never loads the model. Two inputs with the same output: the later fails.
    With a `shard` of several processes, this process takes the inputs i with ``i % world_size == rank``
    (and yields nothing for the others).

    Args:
        inputs, outputs: the files, pairwise (see `batch_outputs`).
        load: returns the interpolator; errors it raises (missing weights, ...) end the batch.
        skip_existing: skip inputs whose output exists (status ``"skipped"``), even with `overwrite`.
        overwrite: replace existing outputs.
        shard: this process's share of the inputs (`Shard.from_env()` under torchrun); default all of them.
        **kwargs: passed to `double_video` (encode, multi, fps, progress, ...).

    Yields:
        `BatchItem` objects, in input order.

    Raises:
        Whatever `load` raises; KeyboardInterrupt (the current file's temporary output deleted).
    """
    if len(inputs) != len(outputs):
        raise UsageError(f"{len(inputs)} inputs but {len(outputs)} outputs")
    interpolator: InterpolateFn | None = None
    claimed: dict[Path, Path] = {}
    shard = shard or Shard()
    for i, (src, dst) in enumerate(zip(inputs, outputs, strict=True)):
        src, dst = Path(src), Path(dst)
        if not shard.mine(i):
            claimed.setdefault(dst.resolve(), src)  # the same clash is found on every rank
            continue
        if skip_existing and dst.exists():
            yield BatchItem(src, dst, "skipped")
            continue
        try:
            key = dst.resolve()
            if key in claimed:
                raise UsageError(f"{claimed[key]} already writes {dst} in this batch; rename one of the inputs")
            claimed[key] = src
            if not src.exists():
                raise InputError(f"input file not found: {src}")
            check_output_file(src, dst, overwrite=overwrite)
            probe_video(src)
        except VfiError as exc:
            yield _failed(src, dst, str(exc), exc.exit_code)
            continue
        if interpolator is None:
            interpolator = load()  # its errors end the batch: every file would fail the same way
        try:
            result = double_video(src, dst, interpolator, overwrite=overwrite, **kwargs)
        except VfiError as exc:
            yield _failed(src, dst, str(exc), exc.exit_code)
            continue
        except MemoryError:
            yield _failed(src, dst, "out of memory (try a smaller --tile or fewer threads)", EXIT_ERROR)
            continue
        except Exception as exc:  # noqa: BLE001 - one broken file must not end the batch
            yield _failed(src, dst, f"internal error: {type(exc).__name__}: {exc}", EXIT_ERROR)
            continue
        yield BatchItem(src, dst, "ok", result=result)


# --------------------------------------------------------------------------------------------------
# Image sequences


@dataclass
class FramesResult:
    """What `interpolate_frames` did. `to_dict` gives the CLI's JSON summary."""

    input: Path
    output: Path
    input_frames: int
    output_frames: int
    image_format: str
    width: int
    height: int
    channels: int
    bits: int
    seconds: float
    device: str | None = None
    files: list[str] = field(default_factory=list, repr=False)
    multi: int = 2
    scene_threshold: float | None = None
    scene_cuts: list[SceneCut] = field(default_factory=list)
    dedupe_threshold: float | None = None
    duplicates: int = 0

    @property
    def fps(self) -> float:
        return self.output_frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": str(self.input),
            "output": str(self.output),
            "input_frames": self.input_frames,
            "output_frames": self.output_frames,
            "format": self.image_format,
            "width": self.width,
            "height": self.height,
            "channels": self.channels,
            "bits": self.bits,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 3),
            "device": self.device,
            "multi": self.multi,
            "scene_threshold": self.scene_threshold,
            "scene_cuts": [cut.to_dict() for cut in self.scene_cuts],
            "dedupe_threshold": self.dedupe_threshold,
            "duplicates": self.duplicates,
        }


def _common_layout(infos: list[ImageInfo]) -> tuple[int, int]:
    first = infos[0]
    for info in infos[1:]:
        if (info.width, info.height) != (first.width, first.height):
            raise InputError(
                f"{info.path.name} is {info.width}x{info.height} but {first.path.name} is "
                f"{first.width}x{first.height}; all frames must have the same size"
            )
    channels = max(i.channels for i in infos)
    if channels == 1 and any(i.channels == 3 for i in infos):
        channels = 3
    return channels, max(i.bits for i in infos)


def _install_dir(tmp: Path, dst: Path) -> None:
    """Move the finished frames from `tmp` into `dst` (renaming `tmp` when `dst` does not exist).

    In an existing `dst`, earlier frames named like ours (``00000012.png``) are removed first so that a
    shorter run leaves no stale frames behind; other files are left alone.
    """
    if not dst.exists():
        os.replace(tmp, dst)
        return
    for old in dst.iterdir():
        if old.is_file() and _FRAME_NAME_RE.fullmatch(old.name):
            old.unlink()
    for new in sorted(tmp.iterdir()):
        os.replace(new, dst / new.name)
    tmp.rmdir()


def interpolate_frames(
    src_dir: str | Path,
    dst_dir: str | Path,
    interpolator: InterpolateFn,
    *,
    image_format: str = "png",
    overwrite: bool = False,
    batch_size: int | None = 1,
    queue_size: int = 4,
    progress: ProgressFn | None = None,
    multi: int = 2,
    scene_threshold: float | None = DEFAULT_SCENE_THRESHOLD,
    dedupe: float | None = None,
) -> FramesResult:
    """Interpolate an image sequence: N images in `src_dir` give 2N - 1 images in `dst_dir`
    (``multi * (N - 1) + 1`` with `multi`).

    Inputs are PNG/JPEG/TIFF/WebP/BMP files in natural sort order (``frame2`` before ``frame10``). Outputs
    are named ``%08d.png`` (or ``.jpg``) from ``00000000``: inputs at even numbers (multiples of `multi`),
    interpolated frames between (``ffmpeg -i %08d.png`` reads them back). PNG keeps 16-bit depth, grey and
    alpha; JPEG is 8-bit RGB. Scene cuts and duplicates are handled as by `retime_stream` (image k counts
    as time k): across a cut the new frames repeat the image before it, and with `dedupe` the images of a
    duplicate run are replaced by interpolations.

    Args:
        src_dir: input directory (never modified).
        dst_dir: output directory; created if missing (with its parents). Frames are written to a
            temporary directory next to it and moved in when all are done.
        interpolator: window (B, 4, 3, H, W) -> (B, 3, H, W).
        image_format: ``"png"`` or ``"jpg"``.
        overwrite: write into a non-empty `dst_dir` (replacing frames named like ours).
        batch_size: windows per interpolator call (None: 4 for an interpolator on CUDA, else 1).
        queue_size: frames buffered between reader, model and writer.
        progress: progress(images written, total), called in this thread.
        multi: output images per input gap: 2, 4 or 8 (recursive midpoints).
        scene_threshold: scene-cut score threshold (percent, `vfi_mini.scenes`); None: no detection.
        dedupe: duplicate-frame threshold (percent); None: keep duplicates as they are.

    Returns:
        A `FramesResult`.

    Raises:
        InputError: missing directory, no images, unreadable image, frames of different sizes.
        UsageError: bad output directory or format.
        ProcessingError: interpolation or writing failed.
    """
    started = time.perf_counter()
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    image_format = image_format.lower().replace("jpeg", "jpg")
    if image_format not in IMAGE_FORMATS:
        raise UsageError(f"unknown image format {image_format!r}; use png or jpg")
    if multi not in (2, 4, 8):
        raise UsageError(f"--multi must be 2, 4 or 8, got {multi}")
    batch_size = resolve_batch_size(batch_size, interpolator)
    files = list_images(src_dir)
    check_output_dir(src_dir, dst_dir, overwrite=overwrite)
    infos = [probe_image(p) for p in files]
    channels, bits = _common_layout(infos)
    out_channels, out_bits = channels, bits
    if image_format == "jpg":
        if channels == 4:
            log.warning(
                "JPEG has no alpha channel: the alpha of the input frames is dropped (use --format png to keep it)"
            )
            out_channels = 3
        out_bits = 8
    if len(files) == 1:
        log.warning("%s holds a single image: there is nothing to interpolate; it is copied", src_dir)
    total = multi * (len(files) - 1) + 1
    retimed = RetimeReport()
    dst_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(dst_dir)
    tmp.mkdir()
    names: list[str] = []

    def source() -> Iterator[Frame]:
        for path in files:
            yield Frame(_to_tensor(read_image(path, channels, bits)))

    def transform(frames: Iterator[Frame]) -> Iterator[Frame]:
        return retime_stream(
            frames,
            interpolator,
            multi=multi,
            scene_threshold=scene_threshold,
            dedupe=dedupe,
            batch_size=batch_size,
            hold_last=False,
            report=retimed,
        )

    def sink(frame: Frame) -> None:
        image = frame.image[:out_channels] if out_channels != channels else frame.image
        name = FRAME_NAME.format(index=len(names), ext=image_format)
        write_image(tmp / name, _to_array(image, out_bits), image_format)
        names.append(name)

    try:
        written = run_threaded(source(), transform, sink, queue_size=queue_size, progress=progress, total=total)
        if written != total:
            raise ProcessingError(f"wrote {written} frames, expected {total}")
        _install_dir(tmp, dst_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    first = infos[0]
    return FramesResult(
        input=src_dir,
        output=dst_dir,
        input_frames=len(files),
        output_frames=written,
        image_format=image_format,
        width=first.width,
        height=first.height,
        channels=out_channels,
        bits=out_bits,
        seconds=time.perf_counter() - started,
        device=_device_name(interpolator),
        files=names,
        multi=multi,
        scene_threshold=scene_threshold,
        scene_cuts=retimed.cuts,
        dedupe_threshold=dedupe,
        duplicates=retimed.duplicates,
    )

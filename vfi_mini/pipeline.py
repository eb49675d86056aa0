"""Frame-rate doubling: windowing, the threaded decode -> interpolate -> encode pipeline, the timing
contract, and the two library entry points `double_video` and `interpolate_frames`.

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
- Grey frames are replicated to RGB for the model and the mean of its output is kept. Alpha is
  interpolated by the model too, as a second grey pass batched with the colour window.
- Memory does not depend on the length of the input: decoding and encoding run in their own threads,
  joined to the interpolation (in the caller's thread) by queues of `queue_size` frames, and the window
  holds four frames.
- Output files are written to a temporary name next to the destination and renamed on success only; on
  any error or Ctrl-C the temporary output is deleted and the exception propagates. The input is never
  written to.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from .errors import InputError, ProcessingError, UsageError, VfiError
from .io.images import ImageInfo, list_images, probe_image, read_image, write_image
from .io.video import (
    EncodeOptions,
    VideoWriter,
    check_output_format,
    decode_frames,
    probe_video,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
InterpolateFn = Callable[[torch.Tensor], torch.Tensor]
ProgressFn = Callable[[int, "int | None"], None]
"""progress(done, total): output frames written so far and the expected total (None if unknown)."""

FRAME_NAME = "{index:08d}.{ext}"
_FRAME_NAME_RE = re.compile(r"\d{8}\.(png|jpg)")
IMAGE_FORMATS = ("png", "jpg")


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


def _run_model(
    interpolator: InterpolateFn, windows: list[tuple[Frame, Frame, Frame, Frame]]
) -> list[torch.Tensor]:
    """Middle frames for a batch of windows; handles grey (C=1), grey+alpha (2), RGB (3) and RGBA (4)."""
    batch = torch.stack([torch.stack([f.image for f in w]) for w in windows])  # (B, 4, C, H, W)
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
        raise ProcessingError(
            f"interpolation failed on a {w}x{h} frame: {type(exc).__name__}: {exc}"
        ) from exc
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
    batch_size: int = 1,
    hold_last: bool = True,
    default_step: Fraction | None = None,
) -> Iterator[Frame]:
    """Double a stream of frames: each input frame followed by the interpolated frame after it.

    Args:
        frames: input frames in order (`Frame` with (C, H, W) images, optionally timed).
        interpolator: window (B, 4, 3, H, W) -> middle frames (B, 3, H, W).
        batch_size: windows per interpolator call.
        hold_last: end with the last frame twice (video: 2N frames, same duration) instead of once
            (image sequences: 2N - 1 frames).
        default_step: frame interval to assume for the held frame when neither the last frame's duration
            nor a previous interval is known (a one-frame video).

    Yields:
        Output `Frame` objects with times and durations set when the inputs have times.
    """
    if batch_size < 1:
        raise UsageError(f"batch size must be >= 1, got {batch_size}")
    tap = _Tap(frames)
    pending: list[tuple[Frame, Frame, Frame, Frame]] = []

    def emit() -> Iterator[Frame]:
        mids = _run_model(interpolator, pending)
        for (_, a, b, _), m in zip(pending, mids, strict=True):
            if a.time is not None and b.time is not None:
                tm = (a.time + b.time) / 2
                yield replace(a, duration=tm - a.time, kind="input")
                yield Frame(m, tm, b.time - tm, "interpolated")
            else:
                yield replace(a, kind="input")
                yield Frame(m, kind="interpolated")
        pending.clear()

    for window in iter_windows(tap):
        pending.append(window)
        if len(pending) >= batch_size:
            yield from emit()
    if pending:
        yield from emit()
    last = tap.last
    if last is None:
        return
    if not hold_last:
        yield replace(last, kind="input")
        return
    step = last.duration
    if step is None and tap.prev is not None and last.time is not None and tap.prev.time is not None:
        step = last.time - tap.prev.time
    if step is None:
        step = default_step
    if last.time is None or step is None:
        yield replace(last, kind="input")
        yield Frame(last.image, kind="held")
        return
    half = step / 2
    yield replace(last, duration=half, kind="input")
    yield Frame(last.image, last.time + half, half, "held")


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
            "codec": self.codec,
            "pix_fmt": self.pix_fmt,
            "audio_streams_copied": self.audio_copied,
            "audio_streams_reencoded": self.audio_reencoded,
            "subtitle_streams_copied": self.subtitles_copied,
        }


def _device_name(interpolator: Any) -> str | None:
    device = getattr(interpolator, "device", None)
    return str(device) if device is not None else None


def double_video(
    src: str | Path,
    dst: str | Path,
    interpolator: InterpolateFn,
    *,
    encode: EncodeOptions | None = None,
    audio: bool = True,
    subtitles: bool = True,
    overwrite: bool = False,
    batch_size: int = 1,
    queue_size: int = 4,
    progress: ProgressFn | None = None,
) -> DoubleResult:
    """Write `dst`: the video `src` at twice its frame rate, other streams copied.

    N input frames give 2N output frames at exactly twice the input rate, the last frame held once so
    that the duration is unchanged (see the module docstring for the timing contract).

    Args:
        src: input video file (never modified).
        dst: output file; its extension picks the container. Written under a temporary name next to it
            and renamed when complete.
        interpolator: window (B, 4, 3, H, W) -> (B, 3, H, W), e.g. an `Interpolator`.
        encode: video encoder settings (default libx264, CRF 18, preset medium, the input's pixel
            format).
        audio: copy the audio streams (re-encoding those the container cannot hold).
        subtitles: copy the subtitle streams where the container can hold them.
        overwrite: replace an existing `dst`.
        batch_size: windows per interpolator call.
        queue_size: frames buffered between decoder, model and encoder.
        progress: progress(output frames written, expected total or None), called in this thread.

    Returns:
        A `DoubleResult`.

    Raises:
        InputError: unreadable input, no video stream, no frames.
        UsageError: bad output path or encoder settings.
        ProcessingError: decoding, interpolation or encoding failed part-way.
        KeyboardInterrupt: passed through after the temporary output is deleted.
    """
    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise InputError(f"input file not found: {src}")
    check_output_file(src, dst, overwrite=overwrite)
    info = probe_video(src)
    out_rate = info.rate * 2
    encode = encode or EncodeOptions()
    tmp = _temp_sibling(dst, dst.suffix)
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
        writer = VideoWriter(tmp, info, out_rate, encode, audio=audio, subtitles=subtitles)
        tap = _Tap()  # counts the input frames and keeps the first and last two

        def transform(frames: Iterator[Frame]) -> Iterator[Frame]:
            tap.source = frames
            return interpolate_stream(
                tap, interpolator, batch_size=batch_size, hold_last=True, default_step=1 / info.rate
            )

        def sink(frame: Frame) -> None:
            assert writer is not None and frame.time is not None
            writer.write(_to_array(frame.image), frame.time, frame.duration)

        source = (Frame(_to_tensor(f.rgb), f.time, f.duration) for f in decode_frames(src, info))
        total = 2 * info.frames if info.frames else None
        written = run_threaded(source, transform, sink, queue_size=queue_size, progress=progress, total=total)
        if tap.count == 0:
            raise InputError(f"{src} has a video stream but no decodable frames")
        writer.close()
        os.replace(tmp, dst)
    except BaseException:
        if writer is not None:
            writer.abort()
        tmp.unlink(missing_ok=True)
        raise
    if tap.count == 1:
        log.warning("%s has a single frame: the output holds it twice (same duration)", src)
    if info.frames_exact and info.frames != tap.count:
        log.warning("%s: the container lists %d frames but %d were decoded", src, info.frames, tap.count)
    assert tap.first is not None and tap.last is not None and tap.first.time is not None
    last_step = tap.last.duration
    if last_step is None and tap.prev is not None and tap.prev.time is not None and tap.last.time is not None:
        last_step = tap.last.time - tap.prev.time
    in_duration = (tap.last.time + (last_step or 1 / info.rate)) - tap.first.time  # type: ignore[operator]
    return DoubleResult(
        input=src,
        output=dst,
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
    )


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
    batch_size: int = 1,
    queue_size: int = 4,
    progress: ProgressFn | None = None,
) -> FramesResult:
    """Interpolate an image sequence: N images in `src_dir` give 2N - 1 images in `dst_dir`.

    Inputs are PNG/JPEG/TIFF/WebP/BMP files in natural sort order (``frame2`` before ``frame10``). Outputs
    are named ``%08d.png`` (or ``.jpg``) from ``00000000``: inputs at even numbers, interpolated frames at
    odd ones (``ffmpeg -i %08d.png`` reads them back). PNG keeps 16-bit depth, grey and alpha; JPEG is
    8-bit RGB.

    Args:
        src_dir: input directory (never modified).
        dst_dir: output directory; created if missing (with its parents). Frames are written to a
            temporary directory next to it and moved in when all are done.
        interpolator: window (B, 4, 3, H, W) -> (B, 3, H, W).
        image_format: ``"png"`` or ``"jpg"``.
        overwrite: write into a non-empty `dst_dir` (replacing frames named like ours).
        batch_size: windows per interpolator call.
        queue_size: frames buffered between reader, model and writer.
        progress: progress(images written, total), called in this thread.

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
    files = list_images(src_dir)
    check_output_dir(src_dir, dst_dir, overwrite=overwrite)
    infos = [probe_image(p) for p in files]
    channels, bits = _common_layout(infos)
    out_channels, out_bits = channels, bits
    if image_format == "jpg":
        if channels == 4:
            log.warning(
                "JPEG has no alpha channel: the alpha of the input frames is dropped "
                "(use --format png to keep it)"
            )
            out_channels = 3
        out_bits = 8
    if len(files) == 1:
        log.warning("%s holds a single image: there is nothing to interpolate; it is copied", src_dir)
    total = 2 * len(files) - 1
    dst_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(dst_dir)
    tmp.mkdir()
    names: list[str] = []

    def source() -> Iterator[Frame]:
        for path in files:
            yield Frame(_to_tensor(read_image(path, channels, bits)))

    def transform(frames: Iterator[Frame]) -> Iterator[Frame]:
        return interpolate_stream(frames, interpolator, batch_size=batch_size, hold_last=False)

    def sink(frame: Frame) -> None:
        image = frame.image[:out_channels] if out_channels != channels else frame.image
        name = FRAME_NAME.format(index=len(names), ext=image_format)
        write_image(tmp / name, _to_array(image, out_bits), image_format)
        names.append(name)

    try:
        written = run_threaded(
            source(), transform, sink, queue_size=queue_size, progress=progress, total=total
        )
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
    )

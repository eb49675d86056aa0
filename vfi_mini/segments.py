"""Long conversions in segments: `--resume` after an interruption, and one video split across the ranks of a
`torchrun` job.

Conventions:

- A *segment* is the input frames with times in ``[start, end)``, where the boundaries are input keyframes:
  the first keyframe at least `segment_seconds` after the previous boundary (None: the start or the end of
  the video). The segments of a video are planned from its packets alone (`vfi_mini.io.video.index_packets`).
- A segment is converted from `CONTEXT_FRAMES` input frames before its start to `CONTEXT_FRAMES` after its
  end (decoding from the keyframe before), and only the output frames with times in ``[start, end)`` are
  kept. The model's windows, the recursive midpoints of `--multi` and `--fps` and the scene-cut scores reach
  at most 6 input frames, so every kept frame is made from exactly the frames, midpoints and cut decisions
  of a conversion in one pass: the joined segments equal it frame for frame (with a lossless codec, bit
  for bit; a lossy encoder gets the same frames but starts each segment with a keyframe). `--fps` output
  times are counted from the video's first frame in every segment. Duplicate removal (`--dedupe`) can
  reach across any boundary and is not done in segments.
- Each segment's video is encoded into a *part* file, and the parts are joined packet for packet (nothing
  re-encoded) into the output, with audio and subtitles copied from the input as in one pass. Parts need
  a container that stores timestamps (`SEGMENT_FORMATS`: MP4, MOV, Matroska, WebM).
- The work directory ``OUTPUT.vfi-parts/`` holds ``manifest.json`` (the input's identity - size,
  modification time, SHA-256 of its first MiB -, the options that shape the video, the model's identity
  and the segment plan) and, per finished segment, ``seg-NNNNN.EXT`` and ``seg-NNNNN.json``. Every file
  is written under a temporary name, flushed to disk and renamed, and a segment's ``.json`` comes last, so
  a part without one is unfinished and is converted again. The directory is removed once the output is
  complete; a manifest that does not match the input or the options is an error (exit code 2) that names
  what differs.
- Ranks (`Shard`, from torchrun's ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``): rank r converts the segments
  i with ``i % world_size == r`` into a work directory all ranks can see; rank 0 then waits for the other
  ranks' segments, polling the work directory (no process group is needed), and joins. It gives up when
  nothing in the work directory has changed for `wait_timeout` seconds (each rank touches
  ``rank-R.alive`` every `HEARTBEAT_SECONDS` while it converts); the finished segments are kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from .errors import InputError, ProcessingError, UsageError
from .io.video import (
    DecodeReport,
    EncodeOptions,
    PacketIndex,
    PartsWriter,
    VideoInfo,
    VideoWriter,
    check_output_format,
    decode_frames,
    index_packets,
    write_error_message,
)
from .scenes import SceneCut

log = logging.getLogger(__name__)

CONTEXT_FRAMES = 10
"""Input frames decoded and converted on each side of a segment (at least 6 are needed: see the module doc)."""
DEFAULT_SEGMENT_SECONDS = 60.0
DEFAULT_WAIT_TIMEOUT = 600.0
HEARTBEAT_SECONDS = 30.0
SEGMENT_FORMATS = {"mp4", "mov", "matroska", "webm"}
MANIFEST_VERSION = 1
MANIFEST = "manifest.json"
_HEAD_BYTES = 1 << 20


# --------------------------------------------------------------------------------------------------
# Ranks


@dataclass(frozen=True)
class Shard:
    """This process's place in a job of `world_size` processes (torchrun), each doing its share.

    Attributes:
        rank: this process, 0 .. world_size - 1 (rank 0 joins the segments of a split video).
        world_size: the number of processes.
        local_rank: this process on its machine (picks its GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Shard:
        """The shard torchrun describes in ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (one process without them).

        Raises:
            UsageError: the variables are not integers or do not fit together.
        """
        env = os.environ if environ is None else environ
        try:
            world = int(env.get("WORLD_SIZE", "1"))
            rank = int(env.get("RANK", "0"))
            local = int(env.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise UsageError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
        if world < 1 or not 0 <= rank < world or local < 0:
            raise UsageError(f"RANK={rank} does not fit WORLD_SIZE={world}")
        return cls(rank, world, local)

    def mine(self, index: int) -> bool:
        """Whether item `index` (an input of a batch, a segment of a video) is this process's."""
        return index % self.world_size == self.rank

    def device(self, device: str) -> str:
        """`device` for this process: with several processes, ``auto`` and ``cuda`` mean ``cuda:LOCAL_RANK``
        where CUDA is present (modulo the number of GPUs, so that more processes than GPUs share them)."""
        if self.world_size == 1 or device not in ("auto", "cuda"):
            return device
        import torch

        if not torch.cuda.is_available():
            return device
        return f"cuda:{self.local_rank % torch.cuda.device_count()}"


# --------------------------------------------------------------------------------------------------
# Planning


@dataclass(frozen=True)
class Segment:
    """The input frames with times in [start, end) (None: from the first frame, to the last one).

    Attributes:
        index: position in the video, from 0.
        start, end: the boundaries (input keyframe times, seconds).
        context_start: the time of the first frame to convert (`CONTEXT_FRAMES` before `start`).
    """

    index: int
    start: Fraction | None
    end: Fraction | None
    context_start: Fraction | None

    def owns(self, time: Fraction) -> bool:
        return (self.start is None or time >= self.start) and (self.end is None or time < self.end)

    def to_list(self) -> list[str | None]:
        return [_text(self.start), _text(self.end), _text(self.context_start)]


def discard_and_raise(
    writer: Any, tmp: Path | None, path: Path, exc: BaseException, also: Callable[[], None] | None = None
) -> NoReturn:
    """A failed write of `path` through `tmp`: abort the writer, remove the temporary file (None when writing
    straight to a pipe), run `also` (closing an input pipe, say), re-raise (an OSError as a one-line
    ProcessingError naming `path`: a full disk, a closed pipe)."""
    if writer is not None:
        writer.abort()
    if tmp is not None:
        tmp.unlink(missing_ok=True)
    if also is not None:
        also()
    if isinstance(exc, OSError):
        raise ProcessingError(write_error_message(path, exc)) from exc
    raise exc


def plan_segments(index: PacketIndex | None, seconds: float, context: int = CONTEXT_FRAMES) -> list[Segment]:
    """Split a video at keyframes into segments of at least `seconds` (one segment without an index).

    >>> import numpy as np
    >>> idx = PacketIndex(Fraction(1, 10), np.arange(100), np.arange(0, 100, 25))
    >>> [(s.start, s.end, s.context_start) for s in plan_segments(idx, 4)]
    [(None, Fraction(5, 1), None), (Fraction(5, 1), None, Fraction(4, 1))]
    """
    if seconds <= 0:
        raise UsageError(f"the segment length must be positive, got {seconds:g} s")
    if index is None or index.pts.size == 0:
        return [Segment(0, None, None, None)]
    tb = index.time_base
    step = max(1, math.ceil(Fraction(str(seconds)) / tb))  # str: 0.2 means 1/5, not the float's 0.2000...01
    bounds: list[int] = []
    target = int(index.pts[0]) + step
    for key in index.keyframes.tolist():
        if key >= target:
            bounds.append(key)
            target = key + step
    segments = []
    starts: list[int | None] = [None, *bounds]
    ends: list[int | None] = [*bounds, None]
    for i, (start, end) in enumerate(zip(starts, ends)):
        if start is None:
            segments.append(Segment(i, None, None if end is None else end * tb, None))
            continue
        j = int(np.searchsorted(index.pts, start))
        ctx = int(index.pts[max(0, j - context)])
        segments.append(Segment(i, start * tb, None if end is None else end * tb, ctx * tb))
    return segments


def _text(value: Fraction | None) -> str | None:
    return None if value is None else str(value)


def _fraction(value: str | None) -> Fraction | None:
    return None if value is None else Fraction(value)


# --------------------------------------------------------------------------------------------------
# Work directory


def work_dir_for(dst: str | Path) -> Path:
    """The work directory of the output `dst`: ``DST.vfi-parts`` next to it."""
    dst = Path(dst)
    return dst.with_name(dst.name + ".vfi-parts")


def input_identity(path: Path) -> dict[str, Any]:
    """Size, modification time (ns) and SHA-256 of the first MiB: enough to tell another or changed file."""
    stat = path.stat()
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(_HEAD_BYTES)).hexdigest()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "head_sha256": head}


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every file system syncs directories
    finally:
        os.close(fd)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write `obj` as JSON to `path` so that readers see the old file or the new one, never a partial one
    (temporary file, flushed to disk, renamed)."""
    tmp = path.with_name(f".{path.name}.vfi-tmp-{secrets.token_hex(4)}")
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ProcessingError(write_error_message(path, exc)) from exc
    _fsync_dir(path.parent)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(prefix + key)
    return out


def _sync_manifest(work: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest, or check that the one there describes the same conversion.

    Raises:
        UsageError: the work directory belongs to another conversion.
    """
    path = work / MANIFEST
    old = _read_json(path)
    if old is None:
        if path.exists():
            raise UsageError(f"{path} is unreadable; delete {work} to start the conversion again")
        write_json_atomic(path, manifest)
        return
    if old != manifest:
        what = ", ".join(_differences(old, manifest)[:6]) or "the format version"
        raise UsageError(
            f"{work} holds the segments of another conversion (different {what}); run with the same input, "
            f"options and weights, or delete {work} to start again"
        )


def _part_name(index: int, suffix: str) -> str:
    return f"seg-{index:05d}{suffix}"


def _finished(work: Path, segment: Segment, suffix: str) -> dict[str, Any] | None:
    """The record of a finished segment, or None when it is missing, unreadable or its part is not intact."""
    record = _read_json(work / (_part_name(segment.index, "") + ".json"))
    if not isinstance(record, dict) or record.get("index") != segment.index:
        return None
    name = record.get("file")
    if name is not None:
        part = work / name
        if not part.is_file() or part.stat().st_size != record.get("size"):
            return None
    return record


class _Heartbeat:
    """Touches a file every `every` seconds from a daemon thread, so that rank 0 can tell a rank that is
    still working from one that has gone."""

    def __init__(self, path: Path, every: float = HEARTBEAT_SECONDS) -> None:
        self.path = path
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vfi-heartbeat", daemon=True)

    def _run(self) -> None:
        while True:
            try:
                self.path.touch()
            except OSError:
                pass  # only a hint for rank 0's patience
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.path.unlink(missing_ok=True)


def _latest_change(work: Path) -> float:
    latest = 0.0
    try:
        for entry in os.scandir(work):
            try:
                latest = max(latest, entry.stat().st_mtime)
            except OSError:
                continue
    except OSError:
        pass
    return latest


# --------------------------------------------------------------------------------------------------
# Conversion


@dataclass
class _Job:
    """What every segment of one conversion shares."""

    src: Path
    dst: Path
    work: Path
    info: VideoInfo
    interpolator: Any
    encode: EncodeOptions
    strict: bool
    batch_size: int
    queue_size: int
    multi: int
    rate: Fraction | None
    out_rate: Fraction
    time_base: Fraction
    scene_threshold: float | None
    origin: Fraction
    done_frames: int = 0
    total: int | None = None
    progress: Callable[[int, int | None], None] | None = None
    converted: list[int] = field(default_factory=list)
    hwaccel: str | None = None  # hardware device type to decode on (`decode_frames`)


def _convert_segment(job: _Job, segment: Segment) -> dict[str, Any]:
    """Convert one segment into its part file and write its record (see the module docstring)."""
    from .pipeline import Frame, RetimeReport, _temp_sibling, _to_array, _to_tensor, retime_stream, run_threaded

    started = time.perf_counter()
    suffix = job.dst.suffix
    part = job.work / _part_name(segment.index, suffix)
    tmp = _temp_sibling(part, suffix)
    decoded = DecodeReport()
    retimed = RetimeReport()
    own: dict[str, Any] = {
        "count": 0,
        "before": 0,
        "first": None,
        "last": None,
        "last_step": None,
        "output_first": None,
        "output_last_duration": None,
    }

    def source() -> Iterator[Frame]:
        after = 0
        prev: Fraction | None = None
        frames = decode_frames(
            job.src, job.info, strict=job.strict, report=decoded, start=segment.context_start, hwaccel=job.hwaccel
        )
        for f in frames:
            if segment.end is not None and f.time >= segment.end:
                if after == CONTEXT_FRAMES:
                    return
                after += 1
            elif segment.start is not None and f.time < segment.start:
                own["before"] += 1
            else:
                own["count"] += 1
                own["first"] = f.time if own["first"] is None else own["first"]
                own["last"] = f.time
                own["last_step"] = f.duration if f.duration else (f.time - prev if prev is not None else None)
            prev = f.time
            yield Frame(_to_tensor(f.rgb), f.time, f.duration)

    def transform(frames: Iterator[Frame]) -> Iterator[Frame]:
        return retime_stream(
            frames,
            job.interpolator,
            multi=job.multi,
            fps=job.rate,
            scene_threshold=job.scene_threshold,
            batch_size=job.batch_size,
            hold_last=True,
            default_step=1 / job.info.rate,
            report=retimed,
            origin=job.origin,
            start=segment.start,
            stop=segment.end,
        )

    base = job.done_frames

    def progress(done: int, total: int | None) -> None:
        if job.progress is not None:
            job.progress(base + done, job.total)

    writer: VideoWriter | None = None
    try:
        writer = VideoWriter(
            tmp, job.info, job.out_rate, job.encode, audio=False, subtitles=False, time_base=job.time_base
        )

        def sink(frame: Frame) -> None:
            assert writer is not None and frame.time is not None
            if own["output_first"] is None:
                own["output_first"] = frame.time
            own["output_last_duration"] = frame.duration
            writer.write(_to_array(frame.image), frame.time, frame.duration)

        written = run_threaded(source(), transform, sink, queue_size=job.queue_size, progress=progress)
        if written:
            writer.close()
            _fsync(tmp)
            os.replace(tmp, part)
        else:  # no frame of the input falls in it (damaged)
            writer.abort()
            tmp.unlink(missing_ok=True)
    except BaseException as exc:
        discard_and_raise(writer, tmp, part, exc)
    cuts = [
        [cut.frame - own["before"], _text(cut.time), round(cut.score, 3)]
        for cut in retimed.cuts
        if cut.time is not None and segment.owns(cut.time)
    ]
    record = {
        "index": segment.index,
        "file": part.name if written else None,
        "size": part.stat().st_size if written else None,
        "input_frames": own["count"],
        "output_frames": written,
        "output_first": _text(own["output_first"]),
        "output_last_duration": _text(own["output_last_duration"]),
        "first": _text(own["first"]),
        "last": _text(own["last"]),
        "last_step": _text(own["last_step"]),
        "cuts": cuts,
        "damaged_frames": decoded.broken,
        "hwaccel": decoded.hwaccel,
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json_atomic(job.work / (_part_name(segment.index, "") + ".json"), record)
    job.done_frames += written
    job.converted.append(segment.index)
    log.info("segment %d of %s: %d -> %d frames", segment.index, job.dst, own["count"], written)
    return record


def _wait_for_segments(
    job: _Job, segments: list[Segment], records: dict[int, dict[str, Any]], timeout: float, poll: float = 0.5
) -> None:
    """Rank 0: wait until every segment is finished (by the other ranks), with records filled in.

    Raises:
        ProcessingError: nothing in the work directory changed for `timeout` seconds.
    """
    suffix = job.dst.suffix
    last_change, last_seen = time.monotonic(), _latest_change(job.work)
    reported = False
    while True:
        for segment in segments:
            if segment.index not in records:
                record = _finished(job.work, segment, suffix)
                if record is not None:
                    records[segment.index] = record
        missing = [s.index for s in segments if s.index not in records]
        if not missing:
            return
        if not reported:
            log.info("%s: waiting for segment(s) %s from the other ranks", job.dst, missing)
            reported = True
        seen = _latest_change(job.work)
        now = time.monotonic()
        if seen != last_seen:
            last_change, last_seen = now, seen
        elif now - last_change > timeout:
            listed = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
            raise ProcessingError(
                f"segment(s) {listed} of {job.dst} were not finished: nothing changed in {job.work} for "
                f"{timeout:g} s (did a rank stop?); the finished segments are kept: run again with --resume"
            )
        time.sleep(poll)


def double_segmented(
    src: Path,
    dst: Path,
    interpolator: Any,
    info: VideoInfo,
    *,
    encode: EncodeOptions,
    audio: bool,
    subtitles: bool,
    strict: bool,
    batch_size: int,
    queue_size: int,
    progress: Callable[[int, int | None], None] | None,
    multi: int,
    rate: Fraction | None,
    out_rate: Fraction,
    time_base: Fraction,
    scene_threshold: float | None,
    total: int | None,
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
    shard: Shard | None = None,
    model_key: str = "",
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    hwaccel: str | None = None,
) -> Any:
    """`vfi_mini.pipeline.double_video` in segments (see the module docstring); called by it. `hwaccel`: the
    hardware device type to decode on (`decode_frames`), None for software.

    Returns:
        A `DoubleResult` with `segments` filled in. On a rank other than 0, it describes the segments this
        process converted (``joined`` False, no output duration).

    Raises:
        UsageError: the output container cannot hold parts, or the work directory belongs to another
            conversion.
        ProcessingError: as `double_video`, or the other ranks did not finish (rank 0).
    """
    from .pipeline import DoubleResult, _device_name, _rational, _temp_sibling

    started = time.perf_counter()
    shard = shard or Shard()
    fmt = check_output_format(dst)
    if fmt not in SEGMENT_FORMATS:
        raise UsageError(
            f"resuming and splitting need an .mp4, .mov, .mkv or .webm output (container {fmt} does not store "
            "the timestamps the segments are joined by)"
        )
    first = next(decode_frames(src, info, strict=strict), None)
    if first is None:
        raise InputError(f"{src} has a video stream but no decodable frames")
    index = index_packets(src, info)
    if index is None:
        log.warning("%s: its timestamps do not place every frame; it is converted as one segment", src)
    segments = plan_segments(index, segment_seconds)
    work = work_dir_for(dst)
    manifest = {
        "version": MANIFEST_VERSION,
        "input": input_identity(src),
        "options": {
            "container": fmt,
            "codec": encode.codec,
            "crf": encode.crf,
            "preset": encode.preset,
            "pix_fmt": encode.pix_fmt,
            "encoder_options": {str(k): str(v) for k, v in encode.options.items()},
            "multi": multi if rate is None else None,
            "fps": _rational(rate),
            "scene_threshold": scene_threshold,
            "strict": strict,
            "batch_size": batch_size,
            "model": model_key,
            "segment_seconds": segment_seconds,
            "context_frames": CONTEXT_FRAMES,
        },
        "segments": [s.to_list() for s in segments],
    }
    try:
        work.mkdir(exist_ok=True)
    except OSError as exc:
        raise ProcessingError(write_error_message(work, exc, "creating")) from exc
    _sync_manifest(work, manifest)
    records: dict[int, dict[str, Any]] = {}
    for segment in segments:
        record = _finished(work, segment, dst.suffix)
        if record is not None:
            records[segment.index] = record
    reused = sorted(i for i in records if shard.mine(i))
    job = _Job(
        src=src,
        dst=dst,
        work=work,
        info=info,
        interpolator=interpolator,
        encode=encode,
        strict=strict,
        batch_size=batch_size,
        queue_size=queue_size,
        multi=multi,
        rate=rate,
        out_rate=out_rate,
        time_base=time_base,
        scene_threshold=scene_threshold,
        origin=first.time,
        done_frames=sum(r["output_frames"] for r in records.values()),
        total=total,
        progress=progress,
        hwaccel=hwaccel,
    )
    todo = [s for s in segments if shard.mine(s.index) and s.index not in records]
    if reused:
        log.info("%s: %d of %d segment(s) already finished", dst, len(reused), len(segments))
    for segment in todo:  # leftovers of an interrupted run
        for stale in work.glob(f".{_part_name(segment.index, '')}.*vfi-tmp-*"):
            stale.unlink(missing_ok=True)
    with _Heartbeat(work / f"rank-{shard.rank}.alive"):
        for segment in todo:
            records[segment.index] = _convert_segment(job, segment)
    info_segments = {
        "count": len(segments),
        "converted": job.converted,
        "reused": reused,
        "rank": shard.rank,
        "world_size": shard.world_size,
        "joined": False,
    }

    def result(output_duration: Fraction | None, indices: list[int], writer: PartsWriter | None) -> Any:
        mine = [records[i] for i in indices]
        cuts, offset = [], 0
        for i in sorted(records):
            if i in indices:
                for rel, t, score in records[i]["cuts"]:
                    cuts.append(SceneCut(offset + rel, Fraction(t), score))
            offset += records[i]["input_frames"]
        first_t = _fraction(records[0]["first"]) if 0 in records else None
        last = records[max(records)]
        last_t, last_step = _fraction(last["last"]), _fraction(last["last_step"])
        duration = None
        if first_t is not None and last_t is not None and writer is not None:
            duration = last_t + (last_step or 1 / info.rate) - first_t
        return DoubleResult(
            input=src,
            output=dst,
            input_frames=sum(r["input_frames"] for r in mine),
            output_frames=sum(r["output_frames"] for r in mine),
            input_rate=info.rate,
            output_rate=out_rate,
            input_duration=duration,
            output_duration=output_duration,
            seconds=time.perf_counter() - started,
            device=_device_name(interpolator),
            codec=encode.codec,
            pix_fmt=writer.pix_fmt if writer is not None else "",
            audio_copied=len(writer.audio_copied) if writer is not None else 0,
            audio_reencoded=len(writer.audio_reencoded) if writer is not None else 0,
            subtitles_copied=len(writer.subtitles_copied) if writer is not None else 0,
            frames_skipped=sum(r["damaged_frames"] for r in mine),
            multi=None if rate is not None else multi,
            scene_threshold=scene_threshold,
            scene_cuts=cuts,
            segments=info_segments,
            hwaccel=next((r["hwaccel"] for r in mine if r.get("hwaccel", "none") != "none"), "none"),
        )

    if shard.rank != 0:
        return result(None, sorted(job.converted), None)
    _wait_for_segments(job, segments, records, wait_timeout)
    input_frames = sum(r["input_frames"] for r in records.values())
    if input_frames == 0:
        raise InputError(f"{src} has a video stream but no decodable frames")
    if strict and info.frames_exact and info.frames is not None and input_frames < info.frames:
        raise InputError(
            f"{src}: the container lists {info.frames} frames but only {input_frames} could be decoded; "
            "without --strict, the missing frames are skipped"
        )
    parts = [
        (
            work / records[s.index]["file"],
            Fraction(records[s.index]["output_first"]),
            _fraction(records[s.index]["output_last_duration"]),
        )
        for s in segments
        if records[s.index]["file"] is not None
    ]
    for stale in dst.parent.glob(f".{dst.name}.vfi-tmp-*"):  # a join of these segments that was cut off
        stale.unlink(missing_ok=True)
    tmp = _temp_sibling(dst, dst.suffix)
    writer: PartsWriter | None = None
    try:
        writer = PartsWriter(tmp, info, out_rate, parts[0][0], audio=audio, subtitles=subtitles, time_base=time_base)
        for part, first_time, last_duration in parts:
            writer.write_part(part, first_time, last_duration)
        writer.close()
        os.replace(tmp, dst)
    except BaseException as exc:
        discard_and_raise(writer, tmp, dst, exc)
    shutil.rmtree(work, ignore_errors=True)
    info_segments["joined"] = True
    if progress is not None:
        progress(writer.frames_written, writer.frames_written)
    return result(writer.video_duration, sorted(records), writer)

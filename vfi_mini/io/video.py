"""Decode a video stream to RGB, encode RGB back, and copy every other stream, with PyAV.

Conventions:

- Decoded frames are (H, W, 3) `uint16` RGB in full range (0..65535), converted with the stream's own
  YUV matrix (BT.601/709/2020, ...) and range (limited/full). An untagged matrix is guessed the way
  players do (BT.709 above 1024x576, BT.601 below); an untagged range is limited (full for ``yuvj*``).
  16 bits per channel keep 10- and 12-bit sources intact.
- Encoding converts RGB back with the same matrix and range and writes the same colour tags (matrix,
  range, primaries, transfer) on the output stream. Every output frame, original or interpolated, takes
  the same RGB -> YUV path, so originals and new frames cannot differ in brightness or hue.
- One set of swscale flags (bicubic, accurate rounding, full chroma in and out) is used both ways: with
  it, YUV -> RGB -> YUV round-trips luma exactly and chroma to within about 0.1 code values, also for odd
  frame sizes (plain bilinear drifts by 1-2 codes per generation).
- Timestamps and durations are `fractions.Fraction` seconds taken from the input's own PTS; a frame rate
  is a `Fraction` (30000/1001). The output video stream's time base is half the input's (exact
  midpoints), except for encoders limited to 16-bit time bases (MPEG-4 Part 2, ...), which get
  1/rate.
- Other streams are read from a second demuxer over the same file and interleaved with the encoded
  video by decode timestamp as the video is written, so nothing is buffered beyond the muxer's own
  interleaving queue. Audio is copied packet for packet when the output container accepts the codec,
  otherwise re-encoded (AAC, or the container's default audio codec) with a warning naming the stream.
  Subtitles and attachments are copied where the container accepts them, else dropped with a warning.
- Hardware decoding (`decode_frames(hwaccel="cuda")`, NVDEC) is optional and changes nothing downstream:
  frames are copied back to memory in the decoder's own layout (nv12, p010, p016, yuv444p16, ...), and
  `_ToRgb` converts those with the stream's matrix and range to the very same RGB as the software-decoded
  format (the tests check this sample for sample on those layouts made from real clips). Codecs and
  profiles the device cannot decode (ProRes, 4:2:2 H.264, AV1 read by libdav1d, ...) are decoded in
  software. `probe_video` always decodes in software. Hardware encoders (``h264_nvenc``, ...) are chosen by
  name like any other encoder; one that does not open is a `BackendUnavailable` with FFmpeg's reason.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import itertools
import logging
import math
import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import av.logging
import numpy as np
from av.codec.hwaccel import HWAccel, hwdevices_available
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

from ..errors import BackendUnavailable, InputError, ProcessingError, UsageError

log = logging.getLogger(__name__)

RGB16 = "rgb48le"
SWS_FLAGS = (
    Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP
)

# FFmpeg AVColorSpace values -> the swscale matrix that implements them.
_MATRIX = {
    1: Colorspace.ITU709,
    4: Colorspace.FCC,
    5: Colorspace.ITU601,  # BT.470BG
    6: Colorspace.ITU601,  # SMPTE 170M
    7: Colorspace.SMPTE240M,
    9: Colorspace.BT2020,  # BT.2020 non-constant luminance
    10: Colorspace.BT2020,  # constant luminance: closest swscale has
}
_MATRIX_NAMES = {
    Colorspace.ITU709: "bt709",
    Colorspace.ITU601: "bt601",
    Colorspace.FCC: "fcc",
    Colorspace.SMPTE240M: "smpte240m",
    Colorspace.BT2020: "bt2020",
}
_SPC_RGB, _SPC_UNSPECIFIED = 0, 2
_RANGE_UNSPECIFIED, _RANGE_LIMITED, _RANGE_FULL = 0, 1, 2

# The pipeline holds about 20 copies of a frame (decoded, float RGB, the 4-frame window, the queues,
# padding) at ~12 bytes per pixel: 8 GB at this size (8K UHD, 7680x4320, is 33.2 MP). The model itself
# runs in tiles, so width alone is no limit (16384x1024 panoramas are fine).
MAX_FRAME_PIXELS = 8192 * 4096
MIN_RATE = Fraction(1, 60)  # nominal rates below one frame a minute come from damaged headers
DEFAULT_CODEC = "libx264"
DEFAULT_CRF = 18
DEFAULT_PRESET = "medium"
# Encoders whose time base must fit in 16 bits (or a fixed rate list): they get 1/rate, not 1/(2*tb).
_COARSE_TIME_BASE = {
    "mpeg4",
    "h263",
    "h263p",
    "mpeg1video",
    "mpeg2video",
    "msmpeg4",
    "msmpeg4v2",
    "msmpeg4v3",
    "wmv1",
    "wmv2",
    "flv",
}
# Encoders that take `preset` names like libx264's (others name presets differently or use numbers).
_X26X_PRESETS = {"libx264", "libx264rgb", "libx265"}
# Encoder options that choose a rate control of their own.
_RATE_CONTROL = {"crf", "qp", "b", "q", "cq", "global_quality", "qscale"}
# Tags that describe the old file, not the new one.
_STALE_TAGS = {
    "encoder",
    "major_brand",
    "minor_version",
    "compatible_brands",
    "duration",
    "number_of_frames",
    "number_of_bytes",
    "bps",
    "statistics_writing_app",
    "statistics_writing_date_utc",
    "statistics_tags",
}

_IDENTITY_MATRIX = (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)

# Hardware device types `decode_frames` can decode on -> the pixel format a decoder reports while it
# decodes on that device (its frames are then copied back to memory).
HW_DEVICE_PIX_FMTS = {"cuda": "cuda"}
# Decoders tried, in order, to open a hardware device without an input file.
_HW_PROBE_DECODERS = ("h264", "hevc", "av1", "vp9", "mpeg2video")
# FFmpeg names its hardware encoders after the API they use: they need a GPU (and its driver) to open.
_HW_ENCODER_SUFFIXES = ("_nvenc", "_qsv", "_vaapi", "_amf", "_videotoolbox", "_v4l2m2m", "_vulkan", "_mf", "_d3d12va")


def _ffmpeg_message(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's own error line behind `exc` when PyAV kept it (see `_ffmpeg_error_lines`), else its message.

    For hardware failures the error code alone says little ("Operation not permitted"); the line says why
    ("Cannot load libcuda.so.1").
    """
    line = getattr(exc, "log", None)
    if isinstance(line, tuple) and len(line) == 3 and str(line[2]).strip():
        return str(line[2]).strip()
    return _ffmpeg_message(exc)


@contextlib.contextmanager
def _ffmpeg_error_lines() -> Iterator[None]:
    """Let PyAV attach FFmpeg's last error line to the exceptions raised meanwhile (``exc.log``).

    PyAV drops FFmpeg's log unless a level is set; at PANIC, error lines are still recorded for its
    exceptions but nothing is printed. A level set by the application is left alone.
    """
    level = av.logging.get_level()
    if level is None:
        av.logging.set_level(av.logging.PANIC)
    try:
        yield
    finally:
        if level is None:
            av.logging.set_level(None)


def is_hw_encoder(codec: str) -> bool:
    """Whether `codec` names a hardware encoder (``h264_nvenc``, ``hevc_vaapi``, ...)."""
    return codec.endswith(_HW_ENCODER_SUFFIXES)


def hw_decodes(codec: str, device_type: str) -> bool:
    """Whether FFmpeg's `codec` decoder (a decoder name, as in `VideoInfo.codec`) can decode on `device_type`.

    Only the decoder FFmpeg picks for a stream counts: AV1 is read by libdav1d where the build has it, and
    libdav1d has no hardware path.
    """
    try:
        configs = av.Codec(codec, "r").hardware_configs
    except (ValueError, av.FFmpegError):  # no such decoder
        return False
    return any(c.device_type.name == device_type and c.is_supported for c in configs or ())


@functools.cache
def hw_device_problem(device_type: str) -> str | None:
    """Why video cannot be decoded on a `device_type` device (``"cuda"``) here, or None when one opens.

    Opens and closes the device as a decoder would, which is what fails without the GPU or its driver.
    Cached: the answer does not change while the process runs.
    """
    if device_type not in HW_DEVICE_PIX_FMTS:
        return f"vfi-mini decodes on cuda devices only, not {device_type}"
    if device_type not in hwdevices_available():
        return f"the FFmpeg {av.ffmpeg_version_info} that PyAV loads was built without {device_type} support"
    decoder = next((name for name in _HW_PROBE_DECODERS if hw_decodes(name, device_type)), None)
    if decoder is None:
        return f"the FFmpeg {av.ffmpeg_version_info} that PyAV loads has no {device_type} decoders"
    try:
        with _ffmpeg_error_lines():
            HWAccel(device_type=device_type).create(av.Codec(decoder, "r"))  # freed again at once
    except (av.FFmpegError, NotImplementedError) as exc:
        return f"no {device_type} device can be opened ({_ffmpeg_reason(exc)})"
    return None


def write_error_message(path: str | Path, exc: BaseException, doing: str = "writing") -> str:
    """One line for a failed write, in plain words for a full disk or a closed pipe."""
    number = getattr(exc, "errno", None)
    if number == errno.ENOSPC:
        return f"{doing} {path} failed: no space left on device"
    if number == errno.EPIPE:
        return f"{doing} {path} failed: the reading end of the pipe was closed"
    return f"{doing} {path} failed ({_ffmpeg_message(exc)})"


def _fraction(value: Any) -> Fraction | None:
    if value is None:
        return None
    f = Fraction(value)
    return f if f > 0 else None


def snap_rate(rate: Fraction) -> Fraction:
    """Snap a rate that is an approximation of an integer or NTSC-style (n*1000/1001) rate to it.

    Matroska stores frame durations in nanoseconds and FFmpeg reads them back as a ratio with a
    numerator below 30000, so 60000/1001 comes back as 19001/317; this recovers 60000/1001.
    """
    if rate.denominator in (1, 1001):
        return rate
    for candidate in (Fraction(round(rate)), Fraction(round(rate * Fraction(1001, 1000)) * 1000, 1001)):
        if candidate > 0 and abs(candidate - rate) / rate < Fraction(1, 50000):
            return candidate
    return rate


def _tag_duration(tags: Mapping[str, str]) -> Fraction | None:
    """Matroska's per-stream ``DURATION`` tag ("00:01:02.480000000") in seconds."""
    value = next((v for k, v in tags.items() if k.lower() == "duration"), None)
    match = re.fullmatch(r"(\d+):(\d{2}):(\d{2})(?:\.(\d+))?", value.strip()) if value else None
    if not match:
        return None
    h, m, sec, frac = match.groups()
    whole = Fraction(int(h) * 3600 + int(m) * 60 + int(sec))
    return whole + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)


@dataclass(frozen=True)
class Colour:
    """Colour properties of a video stream.

    Attributes:
        colorspace, color_range, color_primaries, color_trc: the tags as stored (FFmpeg enum values;
            2 / 0 / 2 / 2 mean unspecified). They are written back unchanged.
        matrix: the swscale matrix used to convert (`Colorspace`), guessed when untagged; None for RGB.
        full_range: whether YUV samples use the full range.
    """

    colorspace: int
    color_range: int
    color_primaries: int
    color_trc: int
    matrix: int | None
    full_range: bool

    @property
    def description(self) -> str:
        if self.matrix is None:
            return "rgb"
        name = _MATRIX_NAMES.get(Colorspace(self.matrix), str(self.matrix))
        guessed = "" if self.colorspace in _MATRIX else " (untagged, guessed)"
        return f"{name}{guessed} {'full' if self.full_range else 'limited'} range"


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learns about an input file (its first decodable video stream).

    Attributes:
        path: the file.
        container: demuxer name (``"mov,mp4,m4a,3gp,3g2,mj2"``, ``"matroska,webm"``, ...).
        stream_index: index of the video stream in the container.
        codec: decoder name.
        width, height: frame size in pixels.
        pix_fmt: decoded pixel format (``"yuv420p"``, ``"yuv420p10le"``, ...).
        bit_depth: bits per sample of the pixel format.
        rate: nominal frame rate (Fraction); for variable-frame-rate files an average.
        time_base: the stream's time base (Fraction seconds per tick).
        frames: frame count stored in the container, or estimated from duration x rate; None if unknown.
        frames_exact: whether `frames` is the container's count rather than an estimate.
        duration: stream (or container) duration in seconds, None if unknown.
        colour: colour tags and the conversion they imply.
        display_matrix: the 3x3 display matrix (rotation/flip) as 9 ints, None when identity/absent.
        audio_streams, subtitle_streams: how many of each the container holds.
        pipe: read from a stream (stdin) that cannot be opened again: its other streams are not copied.
        sample_aspect_ratio: the pixels' width:height (anamorphic video, e.g. 64/45 for 16:9 PAL DVD);
            None when square or unstated.
    """

    path: Path
    container: str
    stream_index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    rate: Fraction
    time_base: Fraction
    frames: int | None
    frames_exact: bool
    duration: Fraction | None
    colour: Colour
    display_matrix: tuple[int, ...] | None
    audio_streams: int
    subtitle_streams: int
    pipe: bool = False
    sample_aspect_ratio: Fraction | None = None


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded video frame.

    Attributes:
        rgb: (H, W, 3) uint16 RGB, full range.
        time: presentation time in seconds (the input's own PTS).
        duration: how long the frame is shown, in seconds, when the container says; else None.
        index: position in decode (= presentation) order, from 0.
    """

    rgb: np.ndarray
    time: Fraction
    duration: Fraction | None
    index: int


@dataclass(frozen=True)
class EncodeOptions:
    """How to encode the output video stream.

    Attributes:
        codec: FFmpeg encoder name.
        crf: constant-rate-factor quality; None: 18 where the encoder has a CRF mode.
        preset: speed/size preset; None: ``medium`` for libx264/libx265, the encoder's default otherwise.
        pix_fmt: output pixel format; None: the input's if the encoder supports it, else the closest one
            of the same bit depth (``yuv420p`` for 8-bit).
        options: further encoder options (``{"tune": "film", "x264-params": "..."}``).
    """

    codec: str = DEFAULT_CODEC
    crf: float | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# Reading


def _open_input(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise InputError(f"input file not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a directory, not a video file: {path}")
    try:
        # Damaged files can hold tags that are not UTF-8; PyAV's default (strict) would raise on them.
        return av.open(str(path), mode="r", metadata_errors="replace")
    except av.FFmpegError as exc:
        raise InputError(f"cannot read {path}: not a media file or damaged ({_ffmpeg_message(exc)})") from exc
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc


def hwaccel_settings(device_type: str) -> HWAccel:
    """PyAV's hardware decoding settings for `device_type` (``"cuda"``): the default device, frames copied
    back to memory, and software decoding for what the device cannot decode."""
    return HWAccel(device_type=device_type, allow_software_fallback=True)


def _open_for_decoding(path: Path, hwaccel: str | None) -> av.container.InputContainer:
    """`_open_input`, with the video decoders set up to decode on a `hwaccel` device (``"cuda"``) if given.

    Raises:
        InputError: as `_open_input`.
        BackendUnavailable: the device cannot be opened.
    """
    if hwaccel is None:
        return _open_input(path)
    try:
        with _ffmpeg_error_lines():
            return av.open(str(path), mode="r", metadata_errors="replace", hwaccel=hwaccel_settings(hwaccel))
    except (av.FFmpegError, OSError) as exc:
        _open_input(path).close()  # the file's own problems come first
        raise BackendUnavailable(
            f"--hwaccel {hwaccel}: cannot set up decoding of {path} on the {hwaccel} device ({_ffmpeg_reason(exc)})"
        ) from exc


def _decodes_on_device(stream: av.video.stream.VideoStream, device_type: str) -> bool:
    """Whether `stream`'s decoder is decoding on the device; asked after its first frame, when the decoder
    has chosen between the device's pixel format and software decoding."""
    ctx = stream.codec_context
    return bool(ctx.is_hwaccel) and ctx.pix_fmt == HW_DEVICE_PIX_FMTS.get(device_type)


def _pick_video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        what = " (it only holds audio)" if container.streams.audio else ""
        raise InputError(f"{path} has no video stream{what}")
    decodable = [s for s in streams if s.codec_context is not None]  # None: no decoder for its codec id
    if not decodable:
        raise InputError(f"{path} has a video stream in a format FFmpeg cannot decode (damaged or unknown codec)")
    return decodable[0]


def _colour(stream: av.video.stream.VideoStream, frame: av.VideoFrame) -> Colour:
    ctx = stream.codec_context

    def tag(name: str, unspecified: int) -> int:
        for obj in (frame, ctx):
            value = int(getattr(obj, name, unspecified) or unspecified)
            if value != unspecified:
                return value
        return unspecified

    colorspace = tag("colorspace", _SPC_UNSPECIFIED)
    color_range = tag("color_range", _RANGE_UNSPECIFIED)
    primaries = tag("color_primaries", 2)
    trc = tag("color_trc", 2)
    fmt = frame.format
    if fmt.is_rgb:
        return Colour(colorspace, color_range, primaries, trc, matrix=None, full_range=True)
    if colorspace in _MATRIX:
        matrix = int(_MATRIX[colorspace])
    else:  # what players assume for untagged video
        hd = frame.width > 1024 or frame.height > 576
        matrix = int(Colorspace.ITU709 if hd else Colorspace.ITU601)
    full = color_range == _RANGE_FULL or (color_range == _RANGE_UNSPECIFIED and fmt.name.startswith("yuvj"))
    return Colour(colorspace, color_range, primaries, trc, matrix=matrix, full_range=full)


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    for sd in frame.side_data:
        if sd.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
            raw = bytes(sd)
            if len(raw) >= 36:
                matrix = struct.unpack("=9i", raw[:36])
                return None if matrix == _IDENTITY_MATRIX else matrix
    return None


def _check_frame_size(path: Path, width: int, height: int) -> None:
    if width * height > MAX_FRAME_PIXELS:
        raise InputError(
            f"{path}: {width}x{height} frames ({width * height / 1e6:.1f} megapixels) are larger than the "
            f"{MAX_FRAME_PIXELS / 1e6:.1f} megapixels (8192x4096) vfi-mini can hold in memory; scale the video "
            "down first (for example ffmpeg -vf scale=7680:-2)"
        )


def _bit_depth(fmt: av.video.format.VideoFormat) -> int:
    return max((c.bits for c in fmt.components), default=8)


def probe_video(path: str | Path) -> VideoInfo:
    """Open a video file, decode its first frame, and describe its video stream.

    Args:
        path: the input file.

    Returns:
        A `VideoInfo`.

    Raises:
        InputError: missing or unreadable file, no video stream, no decodable frame, or frames larger
            than `MAX_FRAME_PIXELS`.
    """
    path = Path(path)
    container = _open_input(path)
    try:
        stream = _pick_video_stream(container, path)
        _check_frame_size(path, stream.codec_context.width, stream.codec_context.height)  # before decoding
        stream.codec_context.thread_type = "AUTO"
        first = next(_decode(container, stream, path, warn=False), None)  # decode_frames warns
        if first is None:
            raise InputError(f"{path} has a video stream but no decodable frames")
        return _describe(container, stream, path, first)
    finally:
        container.close()


def _describe(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    path: Path,
    first: av.VideoFrame,
    pipe: bool = False,
) -> VideoInfo:
    tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
    guessed, average = _fraction(stream.guessed_rate), _fraction(stream.average_rate)
    if guessed and average and abs(guessed - average) / average > Fraction(1, 100):
        rate: Fraction | None = average  # variable frame rate: the average describes it best
    else:
        rate = guessed or average or _fraction(stream.base_rate)
    if rate is not None:
        rate = snap_rate(rate)
    if rate is not None and rate < MIN_RATE:  # e.g. a damaged header claiming a frame lasts for days
        log.warning("%s: ignoring an implausible frame rate of %.3g fps", path, float(rate))
        rate = None
    if rate is None:
        rate = Fraction(25)
        log.warning(
            "%s does not state a frame rate; assuming 25 fps for the rate tag (timestamps are kept as they are)",
            path,
        )
    if stream.duration:
        duration: Fraction | None = stream.duration * tb
    elif _tag_duration(stream.metadata) is not None:
        duration = _tag_duration(stream.metadata)
    elif container.duration:
        duration = Fraction(container.duration, av.time_base)
    else:
        duration = None
    frames: int | None = stream.frames or None
    exact = frames is not None
    if frames is None and duration is not None:
        frames = max(1, round(duration * rate))
    _check_frame_size(path, first.width, first.height)
    fmt = first.format
    return VideoInfo(
        path=path,
        container=container.format.name,
        stream_index=stream.index,
        codec=stream.codec_context.name,
        width=first.width,
        height=first.height,
        pix_fmt=fmt.name,
        bit_depth=_bit_depth(fmt),
        rate=rate,
        time_base=tb,
        frames=frames,
        frames_exact=exact,
        duration=duration,
        colour=_colour(stream, first),
        display_matrix=_display_matrix(first),
        audio_streams=len(container.streams.audio),
        subtitle_streams=len(container.streams.subtitles),
        pipe=pipe,
        sample_aspect_ratio=_sample_aspect_ratio(stream),
    )


def _sample_aspect_ratio(stream: av.video.stream.VideoStream) -> Fraction | None:
    # The container's value (MP4 pasp, Matroska display size) wins over the bitstream's (H.264 VUI), as in
    # FFmpeg; 0/1 means unknown.
    for value in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        sar = _fraction(value)
        if sar is not None:
            return None if sar == 1 else sar
    return None


@dataclass
class DecodeReport:
    """What decoding had to leave out; filled in by `decode_frames` as it goes.

    Attributes:
        frames: frames decoded and passed on.
        broken: damaged frames skipped: packets the decoder rejected plus frames it marked corrupt.
        truncated: reading stopped early at a part of the file that cannot be demuxed.
        hwaccel: where the frames were decoded: a hardware device type (``"cuda"``), or ``"none"`` for
            software.
    """

    frames: int = 0
    broken: int = 0
    truncated: bool = False
    hwaccel: str = "none"

    @property
    def damaged(self) -> bool:
        return self.broken > 0 or self.truncated


def _decode(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    path: Path,
    *,
    strict: bool = False,
    report: DecodeReport | None = None,
    warn: bool = True,
    hwaccel: str | None = None,
) -> Iterator[av.VideoFrame]:
    """Frames in presentation order. A packet the decoder rejects, or a frame it marks corrupt, is skipped
    (as ffmpeg does for the former); a file that cannot be read any further ends the stream. One warning
    at the end counts what was lost. The surviving frames keep their own timestamps, so the gaps are
    interpolated over and the timing stays right. With `hwaccel` (the container was opened for it), the
    first frame tells `report` whether the device or software decodes.

    Raises:
        InputError: with `strict`, at the first damaged packet or frame.
    """
    report = report if report is not None else DecodeReport()

    def damaged(what: str, time: Fraction | None, detail: str = "") -> None:
        where = f" at {float(time):.3f} s" if time is not None else ""
        detail = f" ({detail})" if detail else ""
        raise InputError(f"{path}: {what}{where}{detail}; without --strict, damaged frames are skipped")

    tb = Fraction(stream.time_base) if stream.time_base else None
    asked = False  # whether the decoder was asked where it decodes (at the first frame)
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                if strict:
                    ts = packet.pts if packet.pts is not None else packet.dts
                    damaged("damaged video data", ts * tb if ts is not None and tb else None, _ffmpeg_message(exc))
                report.broken += 1
                continue
            for frame in frames:
                if frame.is_corrupt:
                    if strict:
                        damaged("corrupt video frame", frame.pts * tb if frame.pts is not None and tb else None)
                    report.broken += 1
                    continue
                report.frames += 1
                if hwaccel is not None and not asked:
                    asked = True
                    on_device = _decodes_on_device(stream, hwaccel)
                    report.hwaccel = hwaccel if on_device else "none"
                    if not on_device:
                        log.info("%s: the %s device cannot decode this stream; decoding in software", path, hwaccel)
                yield frame
    except av.FFmpegError as exc:
        if strict:
            damaged("the file cannot be read any further", None, _ffmpeg_message(exc))
        report.truncated = True
        if warn:
            log.warning(
                "%s: stopped reading at a damaged part after %d frames (%s); the rest of the video is lost",
                path,
                report.frames,
                _ffmpeg_message(exc),
            )
    if report.broken and warn:
        log.warning(
            "%s: skipped %d damaged video frame(s); their neighbours keep their timestamps and the gaps are "
            "interpolated (use --strict to stop instead)",
            path,
            report.broken,
        )


def _plain_copy(frame: av.VideoFrame) -> av.VideoFrame:
    """The same pixels in a new frame without the decoder's properties.

    Decoders tag subsampled chroma with its siting (H.264 and MPEG-2: "left"), which swscale honours,
    while frames built from RGB for encoding carry none (swscale then uses "center"). Converting both
    ways with the same (default) siting makes YUV -> RGB -> YUV return the input's chroma samples, and
    the output keeps the input's siting convention; otherwise chroma would move half a pixel per pass.
    """
    out = av.VideoFrame(frame.width, frame.height, frame.format.name)
    for src, dst in zip(frame.planes, out.planes, strict=True):
        n = min(src.line_size, dst.line_size)
        a = np.frombuffer(src, np.uint8).reshape(src.height, src.line_size)
        b = np.frombuffer(dst, np.uint8).reshape(dst.height, dst.line_size)
        b[:, :n] = a[:, :n]
    return out


class _ToRgb:
    """Decoded frame -> (H, W, 3) uint16 RGB with the stream's matrix and range."""

    def __init__(self, info: VideoInfo) -> None:
        self._reformatter = VideoReformatter()
        self._size = (info.width, info.height)
        c = info.colour
        self._yuv_args: dict[str, Any] = {}
        if c.matrix is not None:
            self._yuv_args = dict(
                src_colorspace=c.matrix,
                dst_colorspace=c.matrix,
                src_color_range=ColorRange.JPEG if c.full_range else ColorRange.MPEG,
                dst_color_range=ColorRange.JPEG,
            )

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        args = self._yuv_args if not frame.format.is_rgb else {}
        if args and frame.format.chroma_width(frame.width) * frame.format.chroma_height(frame.height) != (
            frame.width * frame.height
        ):
            frame = _plain_copy(frame)
        rgb = self._reformatter.reformat(
            frame, width=self._size[0], height=self._size[1], format=RGB16, interpolation=SWS_FLAGS, **args
        )
        return rgb.to_ndarray()


def decode_frames(
    path: str | Path,
    info: VideoInfo | None = None,
    *,
    strict: bool = False,
    report: DecodeReport | None = None,
    start: Fraction | None = None,
    hwaccel: str | None = None,
) -> Iterator[DecodedFrame]:
    """Decode the video stream of `path` to RGB frames, in presentation order.

    Times come from each frame's PTS. A frame without a PTS, or whose PTS does not increase, is placed
    one nominal frame interval after the previous one (with a warning). Frames whose size changes
    mid-stream are scaled to the first frame's size. Damaged frames are skipped with one warning that
    counts them (the others keep their timestamps), unless `strict`.

    Args:
        path: the input file.
        info: the result of `probe_video(path)` (probed again when None).
        strict: raise at the first damaged packet or frame, at a part of the file that cannot be read,
            and (reading from the start) when fewer frames decode than the container lists.
        report: filled in with what was skipped.
        start: begin at the frame at this time (seconds): seek to the keyframe before it and decode from
            there, dropping the frames before `start`. A seek that lands after `start` (an inexact index)
            is retried further back, then replaced by reading from the beginning.
        hwaccel: decode on this hardware device type (``"cuda"``: NVDEC) where it can decode the stream,
            in software otherwise; `report` tells which (see the module docstring). None: software.

    Yields:
        `DecodedFrame` objects.

    Raises:
        InputError: the file cannot be opened; with `strict`, damaged or missing frames.
        BackendUnavailable: the `hwaccel` device cannot be opened.
    """
    path = Path(path)
    info = info or probe_video(path)
    report = report if report is not None else DecodeReport()
    if start is None:
        container = _open_for_decoding(path, hwaccel)
        try:
            stream = container.streams[info.stream_index]
            stream.codec_context.thread_type = "AUTO"
            decoded = _decode(container, stream, path, strict=strict, report=report, hwaccel=hwaccel)
            yield from _timed(decoded, info, strict, report)
        finally:
            container.close()
        return
    for back in (Fraction(0), Fraction(1), Fraction(10), Fraction(60), None):  # None: from the beginning
        container = _open_for_decoding(path, hwaccel)
        try:
            stream = container.streams[info.stream_index]
            stream.codec_context.thread_type = "AUTO"
            if back is not None:
                target = max(Fraction(0), start - back)
                try:
                    container.seek(int(target / info.time_base), stream=stream, backward=True)
                except av.FFmpegError:
                    continue
            attempt = DecodeReport()
            decoded = _decode(container, stream, path, strict=strict, report=attempt, hwaccel=hwaccel)
            frames = _timed(decoded, info, False, attempt)
            first = next(frames, None)
            if first is not None and first.time > start and back is not None:
                continue  # the seek landed after `start`: some frames would be missing
            try:
                for frame in itertools.chain([first] if first is not None else [], frames):
                    if frame.time >= start:
                        yield frame
            finally:
                report.frames, report.broken, report.truncated = attempt.frames, attempt.broken, attempt.truncated
                report.hwaccel = attempt.hwaccel
            return
        finally:
            container.close()


@dataclass(frozen=True)
class PacketIndex:
    """Where the frames and keyframes of a video stream are, from its packets (nothing decoded).

    Attributes:
        time_base: the stream's time base.
        pts: presentation timestamps of the frames (one per packet), sorted, in `time_base` units.
        keyframes: those of the keyframe packets, sorted.
    """

    time_base: Fraction
    pts: np.ndarray
    keyframes: np.ndarray


def index_packets(path: str | Path, info: VideoInfo) -> PacketIndex | None:
    """Read the video packets of `path` (without decoding them) and list their timestamps.

    Returns:
        A `PacketIndex`, or None when the timestamps do not place every frame (a packet without a PTS, two
        packets with the same PTS): only decoding can tell where such frames are. Reading stops at a part
        of the file that cannot be demuxed.

    Raises:
        InputError: the file cannot be opened.
    """
    path = Path(path)
    pts: list[int] = []
    keys: list[int] = []
    with _open_input(path) as container:
        stream = container.streams[info.stream_index]
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # end-of-stream marker
                if packet.pts is None:
                    return None
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except av.FFmpegError:
            pass  # decoding stops at the same place
    sorted_pts = np.sort(np.asarray(pts, np.int64))
    if sorted_pts.size and np.any(np.diff(sorted_pts) <= 0):
        return None
    return PacketIndex(info.time_base, sorted_pts, np.unique(np.asarray(keys, np.int64)))


def _timed(
    decoded: Iterator[av.VideoFrame], info: VideoInfo, strict: bool, report: DecodeReport
) -> Iterator[DecodedFrame]:
    """Decoded frames -> `DecodedFrame` with increasing times (see `decode_frames`)."""
    path = info.path
    to_rgb = _ToRgb(info)
    tb = info.time_base
    step = 1 / info.rate
    prev: Fraction | None = None
    fixed = 0
    for index, frame in enumerate(decoded):
        ts = frame.pts if frame.pts is not None else frame.dts
        time = ts * tb if ts is not None else None
        if time is None or (prev is not None and time <= prev):
            time = (prev + step) if prev is not None else Fraction(0)
            fixed += 1
            if fixed == 1:
                log.warning(
                    "%s: frame %d has a missing or non-increasing timestamp; placing it one "
                    "frame interval after the previous frame",
                    path,
                    index,
                )
        prev = time
        duration = frame.duration * tb if frame.duration else None
        yield DecodedFrame(rgb=to_rgb(frame), time=time, duration=duration, index=index)
    if strict and info.frames_exact and info.frames is not None and report.frames < info.frames:
        raise InputError(
            f"{path}: the container lists {info.frames} frames but only {report.frames} could be decoded; "
            "without --strict, the missing frames are skipped"
        )


# Stream formats for pipes (`-` as input or output): CLI name -> FFmpeg format name.
PIPE_FORMATS = {"y4m": "yuv4mpegpipe", "nut": "nut"}


def _sniff(fileobj: BinaryIO) -> str | None:
    """The FFmpeg format of a stream from its first bytes, without consuming them (None: let FFmpeg probe)."""
    peek = getattr(fileobj, "peek", None)
    try:
        head = peek(32)[:32] if peek is not None else b""
    except (OSError, ValueError):
        head = b""
    if head.startswith(b"YUV4MPEG2"):
        return "yuv4mpegpipe"
    if head.startswith(b"nut/multimedia container"):
        return "nut"
    return None


class PipeInput:
    """A video read once, front to back, from a stream that cannot be reopened or sought (stdin).

    The first frame is decoded on opening, for `info`; `frames` then yields every frame, the first one
    included. Only the video stream is used (nothing can be read twice to copy other streams).

    Args:
        fileobj: a binary stream, e.g. ``sys.stdin.buffer``.
        name: how messages name it.
        format: FFmpeg format name (``"yuv4mpegpipe"``, ``"nut"``); None: told from the first bytes (y4m,
            NUT), else probed by FFmpeg.
        strict: as for `decode_frames`.

    Raises:
        InputError: not a readable video stream, or no decodable frame.
    """

    def __init__(self, fileobj: BinaryIO, name: str = "stdin", format: str | None = None, strict: bool = False) -> None:
        self.path = Path(name)
        self.strict = strict
        self.report = DecodeReport()
        try:
            self._container = av.open(fileobj, mode="r", format=format or _sniff(fileobj), metadata_errors="replace")
        except (av.FFmpegError, ValueError) as exc:
            raise InputError(
                f"cannot read a video from {name}: expected a yuv4mpeg (y4m) or NUT stream ({_ffmpeg_message(exc)})"
            ) from exc
        try:
            stream = _pick_video_stream(self._container, self.path)
            _check_frame_size(self.path, stream.codec_context.width, stream.codec_context.height)
            stream.codec_context.thread_type = "AUTO"
            self._decoded = _decode(self._container, stream, self.path, strict=strict, report=self.report)
            self._first = next(self._decoded, None)
            if self._first is None:
                raise InputError(f"{name} has a video stream but no decodable frames")
            self.info = _describe(self._container, stream, self.path, self._first, pipe=True)
        except BaseException:
            self.close()
            raise

    def frames(self) -> Iterator[DecodedFrame]:
        """Every frame, as `decode_frames` yields them (once only)."""
        if self._first is None:
            raise ProcessingError(f"{self.path} has been read already")
        first, self._first = self._first, None
        try:
            yield from _timed(itertools.chain([first], self._decoded), self.info, self.strict, self.report)
        finally:
            self.close()

    def close(self) -> None:
        self._container.close()


# --------------------------------------------------------------------------------------------------
# Writing


def check_output_format(path: str | Path) -> str:
    """Name of the muxer FFmpeg picks for `path` from its extension. Creates no file.

    Raises:
        UsageError: the extension names no known container format.
    """
    try:
        container = av.open(str(path), mode="w")
    except ValueError as exc:
        raise UsageError(
            f"cannot tell the container format from the name {Path(path).name!r}; "
            "use an extension such as .mp4, .mkv or .mov"
        ) from exc
    try:
        return container.format.name
    finally:
        container.close()


def _codec_formats(codec: str) -> list[str]:
    try:
        formats = av.Codec(codec, "w").video_formats
    except (ValueError, av.FFmpegError) as exc:  # UnknownCodecError is a ValueError
        if is_hw_encoder(codec):
            raise BackendUnavailable(
                f"the FFmpeg {av.ffmpeg_version_info} that PyAV loads has no {codec} hardware encoder; "
                "use a software encoder such as libx264"
            ) from exc
        raise UsageError(f"unknown video encoder {codec!r} (try libx264, libx265, libvpx-vp9 or ffv1)") from exc
    return [f.name for f in formats] if formats else []


def choose_pix_fmt(source: VideoInfo, codec: str, requested: str | None = None) -> str:
    """The output pixel format: `requested`, else the input's, else the encoder's closest match.

    ``yuvj*`` inputs map to the matching ``yuv*`` format (the full range travels as a tag). Odd frame
    sizes cannot use chroma-subsampled formats and move to the 4:4:4 format of the same depth.

    Raises:
        UsageError: `requested` is not a format the encoder supports.
    """
    supported = _codec_formats(codec)
    if requested:
        try:
            av.video.format.VideoFormat(requested)
        except (ValueError, av.FFmpegError) as exc:
            raise UsageError(f"unknown pixel format {requested!r}") from exc
        if supported and requested not in supported:
            raise UsageError(f"{codec} cannot encode {requested}; it supports {', '.join(supported)}")
        return requested
    want = source.pix_fmt
    if want.startswith("yuvj"):
        want = "yuv" + want[4:]
    if source.width % 2 or source.height % 2:
        sub = want.replace("yuv420p", "yuv444p").replace("yuv422p", "yuv444p").replace("nv12", "yuv444p")
        if sub != want:
            log.warning(
                "%dx%d has an odd side, which %s cannot store; encoding %s instead",
                source.width,
                source.height,
                want,
                sub,
            )
            want = sub
    if not supported or want in supported:
        return want
    depth = source.bit_depth
    choices = (
        ["yuv420p"]
        if depth <= 8
        else [f"yuv420p{d}le" for d in (10, 12) if d >= depth] + ["yuv420p10le", "yuv420p12le", "yuv420p"]
    )
    if source.width % 2 or source.height % 2:
        choices = [c.replace("yuv420p", "yuv444p") for c in choices] + choices
    for candidate in choices:
        if candidate in supported:
            log.warning("%s cannot encode the input's pixel format %s; using %s", codec, source.pix_fmt, candidate)
            return candidate
    log.warning("%s cannot encode the input's pixel format %s; using %s", codec, source.pix_fmt, supported[0])
    return supported[0]


def _container_accepts(format_name: str, template: av.stream.Stream) -> bool:
    """Whether `format_name` can hold a packet copy of `template` (tried on a header in memory)."""
    buffer = io.BytesIO()
    try:
        container = av.open(buffer, mode="w", format=format_name)
    except (ValueError, av.FFmpegError):
        return False
    try:
        container.add_stream_from_template(template, opaque=True)
        container.start_encoding()
        return True
    except (ValueError, av.FFmpegError, NotImplementedError):
        return False
    finally:
        try:
            container.close()
        except (ValueError, av.FFmpegError):
            pass


def _clean_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k.lower() not in _STALE_TAGS and not k.lower().startswith("_statistics")}


def _stream_tags(stream: av.stream.Stream) -> dict[str, str]:
    tags = _clean_tags(stream.metadata)
    # FFmpeg's MP4/MOV demuxer reads a track's title as "name" but its muxers write "title".
    if "name" in tags and "title" not in tags and stream.container.format.name.startswith("mov,"):
        tags["title"] = tags.pop("name")
    return tags


def _describe_stream(stream: av.stream.Stream) -> str:
    if stream.codec_context is not None:
        name = stream.codec_context.name
    else:
        name = stream.metadata.get("filename") or "data"
    lang = stream.metadata.get("language")
    return f"{stream.type} stream #{stream.index} ({name}{', ' + lang if lang and lang != 'und' else ''})"


class VideoWriter:
    """Encodes RGB frames into a new file and copies the other streams of the source alongside.

    Use as a context manager: leaving the block normally finishes the file (`close`); leaving it with an
    exception leaves a partial file for the caller to delete (`abort`).

    Args:
        path: output file; its extension picks the container. Or a binary stream (``sys.stdout.buffer``),
            written front to back, with `format` naming the container.
        source: `probe_video` of the input (size, colour, rotation, and the file to copy streams from).
        rate: nominal output frame rate (written as the stream's rate; timestamps are given per frame).
        encode: encoder settings.
        audio: copy (or re-encode) the audio streams.
        subtitles: copy the subtitle streams (and font attachments).
        time_base: the output video stream's time base (default: half the source's, for exact midpoints);
            encoders limited to 16-bit time bases, and yuv4mpeg streams (which store a rate only), get
            1/rate.
        format: FFmpeg container format (required for a stream; for a file, the extension decides).

    Raises:
        UsageError: unknown container, encoder, pixel format or encoder option.
        InputError: the source cannot be reopened.
    """

    def __init__(
        self,
        path: str | Path | BinaryIO,
        source: VideoInfo,
        rate: Fraction,
        encode: EncodeOptions | None = None,
        *,
        audio: bool = True,
        subtitles: bool = True,
        time_base: Fraction | None = None,
        format: str | None = None,
    ) -> None:
        stream_out = hasattr(path, "write")
        self.path = Path("stdout") if stream_out else Path(path)  # type: ignore[arg-type]
        self._time_base = time_base
        self.source = source
        self.rate = Fraction(rate)
        self.encode_options = encode or EncodeOptions()
        self.frames_written = 0
        self.audio_copied: list[int] = []
        self.audio_reencoded: list[int] = []
        self.subtitles_copied: list[int] = []
        self._src: av.container.InputContainer | None = None
        self._plan: dict[int, tuple[str, av.stream.Stream, Any]] = {}
        self._pending: tuple[av.Packet, Fraction | None] | None = None
        self._other: Iterator[tuple[av.Packet, Fraction | None]] | None = None
        self._last_pts: int | None = None
        self._durations: dict[int, int] = {}
        self._video_start: Fraction | None = None
        self._video_end: Fraction | None = None
        self._closed = False
        if stream_out:
            if not format:
                raise UsageError("writing to a stream needs a container format (y4m or nut)")
            try:
                self._out = av.open(path, mode="w", format=format)
            except ValueError as exc:
                raise UsageError(f"unknown output format {format!r}") from exc
        else:
            check_output_format(self.path)
            self._out = av.open(str(self.path), mode="w", format=format)
        try:
            self._out.metadata.update(_clean_tags(self._source_metadata()))
            self._setup_video()
            if audio or subtitles:
                self._setup_other_streams(audio, subtitles)
        except BaseException:
            self._close_quietly()
            raise

    # -- set-up ------------------------------------------------------------------------------------

    def _source_metadata(self) -> dict[str, str]:
        if self.source.pipe:  # cannot be read a second time
            self._video_tags = {}
            return {}
        with _open_input(self.source.path) as container:
            self._video_tags = _stream_tags(container.streams[self.source.stream_index])
            return dict(container.metadata)

    def _stream_time_base(self, codec: str) -> Fraction:
        if codec in _COARSE_TIME_BASE or self._out.format.name == "yuv4mpegpipe":
            return 1 / self.rate
        tb = self._time_base or self.source.time_base / 2
        return self.source.time_base if tb.denominator > 2**31 - 1 else tb

    def _setup_video(self) -> None:
        opts = self.encode_options
        src = self.source
        codec = opts.codec
        self.pix_fmt = choose_pix_fmt(src, codec, opts.pix_fmt)
        try:
            stream = self._out.add_stream(codec, rate=self.rate)
        except ValueError as exc:
            where = self.path.suffix or "this"
            raise UsageError(f"cannot put {codec} video in {where} files ({exc})") from exc
        ctx = stream.codec_context
        stream.width, stream.height = src.width, src.height
        stream.pix_fmt = self.pix_fmt
        if self._out.format.name == "yuv4mpegpipe" and codec not in ("rawvideo", "wrapped_avframe"):
            raise UsageError(f"yuv4mpeg (y4m) streams hold raw video only, not {codec}; use --format nut for {codec}")
        tb = self._stream_time_base(codec)
        self.time_base = tb
        ctx.time_base = tb
        stream.time_base = tb
        ctx.framerate = self.rate
        ctx.thread_type = "AUTO"
        if src.sample_aspect_ratio is not None:
            ctx.sample_aspect_ratio = src.sample_aspect_ratio  # anamorphic: same display shape

        out_fmt = av.video.format.VideoFormat(self.pix_fmt)
        c = src.colour
        if out_fmt.is_rgb:
            matrix = None
            tags = dict(
                colorspace=_SPC_RGB,
                color_range=_RANGE_FULL,
                color_primaries=c.color_primaries,
                color_trc=c.color_trc,
            )
            full = True
        else:
            # An RGB source going to YUV needs a matrix; tag the one used.
            matrix = c.matrix if c.matrix is not None else int(Colorspace.ITU709)
            colorspace = c.colorspace if c.matrix is not None else 1
            full = c.full_range if c.matrix is not None else False
            color_range = c.color_range if c.matrix is not None else _RANGE_LIMITED
            if self.pix_fmt.startswith("yuvj"):
                full, color_range = True, _RANGE_FULL
            elif full and color_range == _RANGE_UNSPECIFIED:
                color_range = _RANGE_FULL  # yuvj input written as yuv: keep the range as a tag
            tags = dict(
                colorspace=colorspace,
                color_range=color_range,
                color_primaries=c.color_primaries,
                color_trc=c.color_trc,
            )
        for name, value in tags.items():
            setattr(ctx, name, value)
        self._frame_tags = tags
        self._to_yuv: dict[str, Any] = {}
        if matrix is not None:
            self._to_yuv = dict(
                src_colorspace=matrix,
                dst_colorspace=matrix,
                src_color_range=ColorRange.JPEG,
                dst_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
            )
        self._reformatter = VideoReformatter()

        user = {str(k): str(v) for k, v in opts.options.items()}
        private = {o.name for o in ctx.supported_options.private}
        options: dict[str, str] = {}
        # A rate control of the user's own (-e qp=0, -e b=4M) replaces the default CRF.
        own_rate_control = bool(_RATE_CONTROL & set(user))
        if opts.crf is not None or ("crf" in private and not own_rate_control):
            if "crf" not in private:
                raise UsageError(
                    f"{codec} has no --crf setting; pass its own rate control with --encoder-opt (for example b=4M)"
                )
            crf = DEFAULT_CRF if opts.crf is None else opts.crf
            options["crf"] = f"{crf:g}"
            if codec.startswith("libvpx") and "b" not in user:
                options["b"] = "0"  # constant quality mode
        if opts.preset is not None:
            if "preset" not in private:
                raise UsageError(f"{codec} has no --preset setting")
            options["preset"] = opts.preset
        elif codec in _X26X_PRESETS:
            options["preset"] = DEFAULT_PRESET
        options.update(user)
        # Setting ctx.thread_count does not reach libx264 through PyAV; the generic option does (auto).
        options.setdefault("threads", "0")
        ctx.options = options

        if src.display_matrix is not None:
            stream.set_display_matrix(list(src.display_matrix))
        stream.metadata.update(self._video_tags)
        try:
            with _ffmpeg_error_lines():
                ctx.open()
        except (av.FFmpegError, ValueError) as exc:
            if is_hw_encoder(codec):
                raise BackendUnavailable(
                    f"cannot open the {codec} hardware encoder with {self.pix_fmt} {src.width}x{src.height} and "
                    f"options {options} ({_ffmpeg_reason(exc)}); it needs a GPU and driver that support it "
                    "(or use a software encoder such as libx264)"
                ) from exc
            raise UsageError(
                f"cannot open the {codec} encoder with {self.pix_fmt} {src.width}x{src.height} "
                f"and options {options} ({_ffmpeg_message(exc)})"
            ) from exc
        unused = sorted(set(ctx.options) & set(user))
        if unused:
            raise UsageError(f"{codec} does not know the encoder option(s) {', '.join(unused)}")
        self._video = stream
        log.info("encoding %s %s, colour %s, time base %s", codec, self.pix_fmt, c.description, tb)

    def _setup_other_streams(self, audio: bool, subtitles: bool) -> None:
        if self.source.pipe:
            others = self.source.audio_streams + self.source.subtitle_streams
            if others and (audio or subtitles):
                log.warning("%s: %d audio/subtitle stream(s) in a piped input are not copied", self.source.path, others)
            return
        self._src = _open_input(self.source.path)
        fmt = self._out.format.name
        selected: list[av.stream.Stream] = []
        for stream in self._src.streams:
            if stream.index == self.source.stream_index:
                continue
            what = _describe_stream(stream)
            if stream.type == "audio" and audio:
                if _container_accepts(fmt, stream):
                    out = self._out.add_stream_from_template(stream, opaque=True)
                    self._plan[stream.index] = ("copy", out, None)
                    self.audio_copied.append(stream.index)
                else:
                    out = self._add_reencoded_audio(stream, fmt, what)
                    if out is None:
                        continue
                    self._plan[stream.index] = ("encode", out, stream)
                    self.audio_reencoded.append(stream.index)
            elif stream.type in ("subtitle", "attachment") and subtitles:
                if stream.type == "attachment" and fmt != "matroska":
                    log.warning(
                        "%s (a font or file attached to the subtitles) cannot be stored in %s files; dropped",
                        what,
                        self.path.suffix or fmt,
                    )
                    continue
                if stream.type == "subtitle" and not _container_accepts(fmt, stream):
                    log.warning("%s cannot be stored in %s files; dropped", what, self.path.suffix or fmt)
                    continue
                try:
                    out = self._out.add_stream_from_template(stream, opaque=True)
                except (ValueError, av.FFmpegError):
                    log.warning("%s cannot be stored in %s files; dropped", what, self.path.suffix or fmt)
                    continue
                if stream.type == "attachment":
                    continue  # its payload travels in the stream header; there are no packets
                self._plan[stream.index] = ("copy", out, None)
                self.subtitles_copied.append(stream.index)
            elif stream.type == "video":
                log.warning("%s is not the main video; dropped", what)
                continue
            elif stream.type == "data":
                log.info("%s dropped", what)
                continue
            else:
                continue
            out.metadata.update(_stream_tags(stream))
            out.disposition = stream.disposition
            selected.append(stream)
        if selected:
            self._other = self._other_packets(selected)
        else:
            self._src.close()
            self._src = None

    def _add_reencoded_audio(self, stream: av.audio.stream.AudioStream, fmt: str, what: str) -> Any:
        if stream.codec_context is None:  # no decoder for its codec id (unknown or damaged)
            log.warning("%s cannot be stored in %s files and cannot be decoded; dropped", what, self.path.suffix or fmt)
            return None
        codec = "aac"
        probe = av.open(io.BytesIO(), mode="w", format=fmt)
        try:
            if "aac" not in probe.supported_codecs:
                codec = probe.default_audio_codec
                if codec == "none":
                    codec = ""
        finally:
            probe.close()
        if not codec:
            log.warning(
                "%s cannot be stored in %s files and there is no audio codec to re-encode it to; dropped",
                what,
                self.path.suffix or fmt,
            )
            return None
        rate = stream.codec_context.sample_rate or 48000
        rates = av.Codec(codec, "w").audio_rates
        if rates and rate not in rates:  # Opus only takes 8/12/16/24/48 kHz
            rate = min(rates, key=lambda r: (abs(r - rate), -r))
        try:
            out = self._out.add_stream(codec, rate=rate)
            out.layout = stream.codec_context.layout
        except (ValueError, av.FFmpegError) as exc:
            log.warning(
                "%s cannot be stored in %s files and re-encoding it to %s failed (%s); dropped",
                what,
                self.path.suffix or fmt,
                codec,
                exc,
            )
            return None
        log.warning(
            "%s cannot be copied into %s files; re-encoding it to %s",
            what,
            self.path.suffix or fmt,
            out.codec_context.name,
        )
        return out

    # -- other streams -------------------------------------------------------------------------------

    def _other_packets(self, streams: list[av.stream.Stream]) -> Iterator[tuple[av.Packet, Fraction | None]]:
        assert self._src is not None
        # Damaged files can have copied packets whose DTS goes backwards, which the muxer refuses (and
        # then the whole output would be lost): such packets are dropped, with one warning at the end.
        nonstrict = bool(self._out.format.flags & av.format.Flags.ts_nonstrict.value)
        last_dts: dict[int, int] = {}
        dropped = 0
        try:
            for packet in self._src.demux(*streams):
                kind, out, template = self._plan[packet.stream.index]
                if kind == "copy":
                    if packet.dts is None and packet.size == 0:
                        continue  # demuxer's end-of-stream marker
                    index = packet.stream.index
                    if packet.dts is not None:
                        last = last_dts.get(index)
                        if last is not None and (packet.dts < last or (packet.dts == last and not nonstrict)):
                            dropped += 1
                            continue
                        last_dts[index] = packet.dts
                    ts = packet.dts if packet.dts is not None else packet.pts
                    time = ts * Fraction(packet.time_base) if ts is not None else None
                    packet.stream = out
                    yield packet, time
                else:
                    try:
                        frames = packet.decode()
                    except av.FFmpegError:
                        continue
                    for frame in frames:
                        for out_packet in out.encode(frame):
                            yield out_packet, self._packet_time(out_packet)
        except av.FFmpegError as exc:
            log.warning(
                "%s: stopped copying audio/subtitles at a damaged part (%s)",
                self.source.path,
                _ffmpeg_message(exc),
            )
        if dropped:
            log.warning(
                "%s: dropped %d audio/subtitle packet(s) whose timestamps go backwards (damaged file)",
                self.source.path,
                dropped,
            )
        for kind, out, _ in self._plan.values():
            if kind == "encode":
                for out_packet in out.encode(None):
                    yield out_packet, self._packet_time(out_packet)

    @staticmethod
    def _packet_time(packet: av.Packet) -> Fraction | None:
        ts = packet.dts if packet.dts is not None else packet.pts
        return ts * Fraction(packet.time_base) if ts is not None and packet.time_base else None

    def _copy_until(self, time: Fraction | None) -> None:
        """Mux the other streams' packets up to `time` (all of them when None)."""
        if self._other is None:
            return
        while True:
            if self._pending is None:
                self._pending = next(self._other, None)
                if self._pending is None:
                    self._other = None
                    return
            packet, ptime = self._pending
            if time is not None and ptime is not None and ptime > time:
                return
            self._pending = None
            self._mux(packet)

    def _mux(self, packet: av.Packet) -> None:
        try:
            self._out.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            raise ProcessingError(write_error_message(self.path, exc)) from exc

    def _mux_video(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            # Encoders with frame reordering do not all carry frame durations over to the right packet
            # (libx264 does not); the muxer takes the last sample's length from it, so set it here.
            duration = self._durations.pop(packet.pts, None) if packet.pts is not None else None
            if duration is not None:
                packet.duration = duration
            self._copy_until(self._packet_time(packet))
            self._mux(packet)
            if packet.pts is not None and packet.time_base:  # now in the muxer's time base
                tb = Fraction(packet.time_base)
                start = packet.pts * tb
                end = (packet.pts + (packet.duration or 0)) * tb
                self._video_start = start if self._video_start is None else min(self._video_start, start)
                self._video_end = end if self._video_end is None else max(self._video_end, end)

    @property
    def video_duration(self) -> Fraction | None:
        """Duration of the video stream written so far, in seconds, as the muxer stored it."""
        if self._video_start is None or self._video_end is None:
            return None
        return self._video_end - self._video_start

    # -- frames --------------------------------------------------------------------------------------

    def write(self, rgb: np.ndarray, time: Fraction, duration: Fraction | None = None) -> None:
        """Encode one frame.

        Args:
            rgb: (H, W, 3) uint16 RGB, full range, of the source's size.
            time: presentation time in seconds; must increase from frame to frame.
            duration: display duration in seconds (sets the last frame's length in the file).
        """
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=RGB16)
        frame = self._reformatter.reformat(frame, format=self.pix_fmt, interpolation=SWS_FLAGS, **self._to_yuv)
        pts = round(Fraction(time) / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = self.time_base
        if duration is not None:
            frame.duration = max(1, round(Fraction(duration) / self.time_base))
            self._durations[pts] = frame.duration
        for name, value in self._frame_tags.items():
            setattr(frame, name, value)
        try:
            packets = self._video.encode(frame)
        except av.FFmpegError as exc:
            raise ProcessingError(f"encoding frame {self.frames_written} failed ({_ffmpeg_message(exc)})") from exc
        self._mux_video(packets)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, copy the rest of the other streams, and finish the file."""
        if self._closed:
            return
        self._mux_video(self._flush_video())
        self._copy_until(None)
        self._closed = True
        try:
            self._out.close()
        except (av.FFmpegError, OSError) as exc:
            raise ProcessingError(write_error_message(self.path, exc, "finishing")) from exc
        finally:
            if self._src is not None:
                self._src.close()

    def _flush_video(self) -> list[av.Packet]:
        try:
            return self._video.encode(None)
        except av.FFmpegError as exc:
            raise ProcessingError(f"finishing the video stream failed ({_ffmpeg_message(exc)})") from exc

    def abort(self) -> None:
        """Stop without finishing the file (the caller deletes it)."""
        self._close_quietly()

    def _close_quietly(self) -> None:
        self._closed = True
        for container in (self._out if hasattr(self, "_out") else None, self._src):
            if container is None:
                continue
            try:
                container.close()
            except Exception:  # noqa: BLE001 - already failing; the partial file is deleted anyway
                log.debug("closing %s after an error failed", container.name, exc_info=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class PartsWriter(VideoWriter):
    """Joins separately encoded pieces of one video (the segments of a conversion: each starts with a
    keyframe, all encoded with the same settings) into one file, packet for packet, with nothing
    re-encoded, and copies the source's other streams alongside as `VideoWriter` does.

    Call `write_part` for each piece in order, then `close` (or use it as a context manager).

    Args:
        path: the output file; its extension picks the container.
        source: `probe_video` of the input.
        rate: nominal output frame rate.
        template: the first piece: the output's video stream takes its codec parameters.
        audio, subtitles, time_base: as for `VideoWriter`.

    Raises:
        UsageError: unknown container.
        ProcessingError: the template cannot be read.
    """

    def __init__(
        self,
        path: str | Path,
        source: VideoInfo,
        rate: Fraction,
        template: str | Path,
        *,
        audio: bool = True,
        subtitles: bool = True,
        time_base: Fraction | None = None,
    ) -> None:
        self._template = Path(template)
        self._last_dts: Fraction | None = None
        super().__init__(path, source, rate, None, audio=audio, subtitles=subtitles, time_base=time_base)

    def _open_part(self, path: Path) -> av.container.InputContainer:
        try:
            return av.open(str(path), mode="r", metadata_errors="replace")
        except (av.FFmpegError, OSError) as exc:
            raise ProcessingError(f"cannot read the finished segment {path} ({_ffmpeg_message(exc)})") from exc

    def _setup_video(self) -> None:
        with self._open_part(self._template) as part:
            template = part.streams.video[0]
            stream = self._out.add_stream_from_template(template, opaque=True)
            self._extradata = template.codec_context.extradata
            self.pix_fmt = template.codec_context.pix_fmt or ""
            codec = template.codec_context.name
        tb = self._stream_time_base(codec)
        self.time_base = tb
        stream.time_base = tb
        stream.codec_context.framerate = self.rate
        if self.source.display_matrix is not None:
            stream.set_display_matrix(list(self.source.display_matrix))
        stream.metadata.update(self._video_tags)
        self._video = stream
        log.info("joining %s segments, time base %s", codec, tb)

    def _flush_video(self) -> list[av.Packet]:
        return []

    def write_part(self, path: str | Path, first_time: Fraction, last_duration: Fraction | None = None) -> int:
        """Mux the video packets of one piece (a file written by `VideoWriter` without other streams, in a
        container that stores timestamps: MP4, MOV, Matroska, WebM).

        Args:
            path: the piece.
            first_time: the exact time of its first frame (seconds). MP4 and MOV store where a file starts
                in milliseconds (an edit list in the movie's time scale), so a piece that does not start at 0
                reads back up to half a millisecond off; its packets are moved back by that much.
            last_duration: the duration given to its last frame (Matroska reads back the default duration).

        Returns:
            The number of packets (frames) muxed.

        Raises:
            ProcessingError: the piece cannot be read, was encoded with other settings, or its decode times
                overlap the previous piece's.
        """
        path = Path(path)
        with self._open_part(path) as part:
            stream = part.streams.video[0]
            if stream.codec_context.extradata != self._extradata:
                raise ProcessingError(f"{path} was encoded with other settings than the first segment; cannot join")
            tb = Fraction(stream.time_base)
            try:
                stamps = [p.pts for p in part.demux(stream) if p.size and p.pts is not None]
            except av.FFmpegError as exc:
                raise ProcessingError(f"cannot read the finished segment {path} ({_ffmpeg_message(exc)})") from exc
        if not stamps:
            return 0
        lowest, highest = min(stamps), max(stamps)
        shift = lowest - math.floor(Fraction(first_time) / tb + Fraction(1, 2))  # rounded as FFmpeg rounds
        last = None
        if last_duration is not None:  # as `write` rounds it, then the muxer
            ticks = max(1, round(Fraction(last_duration) / self.time_base))
            last = math.floor(ticks * self.time_base / tb + Fraction(1, 2))
        count = 0
        with self._open_part(path) as part:
            stream = part.streams.video[0]
            try:
                for packet in part.demux(stream):
                    if packet.size == 0:
                        continue
                    if last is not None and packet.pts == highest:
                        packet.duration = last
                    if shift:
                        packet.pts = packet.pts - shift if packet.pts is not None else None
                        packet.dts = packet.dts - shift if packet.dts is not None else None
                    if packet.dts is not None:
                        dts = packet.dts * tb
                        if self._last_dts is not None and dts <= self._last_dts:
                            raise ProcessingError(
                                f"{path}: its decode times overlap the previous segment's; cannot join"
                            )
                        self._last_dts = dts
                    packet.stream = self._video
                    self._mux_video([packet])
                    count += 1
            except av.FFmpegError as exc:
                raise ProcessingError(f"cannot read the finished segment {path} ({_ffmpeg_message(exc)})") from exc
        self.frames_written += count
        return count

"""Synthetic test media, written with PyAV inside the tests (nothing is downloaded or checked in).

`pattern(t, w, h)` is a smooth moving picture: its value at a fractional t is the true in-between
frame, so interpolated frames can be checked against it. `make_video` writes clips with any mix of audio
tracks (`AudioTrack`: codec, rate, channel layout, language), subtitles, colour tags, rotation, an
anamorphic sample aspect ratio, 10-bit samples and variable frame timing; `make_images` writes image
sequences. Keep clips tiny: the suite runs on 2 CPU cores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

_FLAGS = (
    Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP
)


def pattern(t: float, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float64 in [0.1, 0.9]: gratings moving 2-3 pixels per unit of t, different per channel."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 0.5 + 0.35 * np.sin(2 * np.pi * (x - 3.0 * t) / 40.0)
    g = 0.5 + 0.35 * np.sin(2 * np.pi * (y + 2.0 * t) / 32.0)
    b = 0.5 + 0.3 * np.sin(2 * np.pi * (x + y - 2.5 * t) / 48.0)
    return np.stack([r, g, b], axis=-1)


@dataclass(frozen=True)
class AudioTrack:
    """One audio stream of `make_video`: a sine tone as long as the video.

    Attributes:
        codec: encoder name (``"aac"``, ``"libmp3lame"``, ``"libopus"``, ...).
        rate: sample rate in Hz.
        layout: channel layout (``"stereo"``, ``"mono"``, ``"5.1"``, ...).
        language: ISO 639-2 ``language`` tag of the stream (None: no tag).
        title: ``title`` tag of the stream (None: no tag).
        tone: frequency of the sine in Hz (different tracks get different packets).
    """

    codec: str = "aac"
    rate: int = 48000
    layout: str = "stereo"
    language: str | None = "eng"
    title: str | None = None
    tone: float = 440.0


def _rgb_frame(image: np.ndarray, bits: int) -> av.VideoFrame:
    if bits > 8:
        return av.VideoFrame.from_ndarray(np.round(image * 65535).astype(np.uint16), format="rgb48le")
    return av.VideoFrame.from_ndarray(np.round(image * 255).astype(np.uint8), format="rgb24")


def make_video(
    path: str | Path,
    *,
    frames: int = 12,
    size: tuple[int, int] = (64, 48),
    rate: Fraction | int = Fraction(25),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    times: Sequence[Fraction] | None = None,
    time_base: Fraction | None = None,
    audio: bool = True,
    audio_codec: str = "aac",
    audio_rate: int = 48000,
    audio_seconds: float | None = None,
    audio_tracks: Sequence[AudioTrack] | None = None,
    subtitles: bool = False,
    colour: dict[str, int] | None = None,
    rotation: int | None = None,
    sar: Fraction | tuple[int, int] | None = None,
    metadata: dict[str, str] | None = None,
    lossless: bool = False,
    encoder_options: dict[str, str] | None = None,
    picture: Callable[[float, int, int], np.ndarray] | None = None,
) -> Path:
    """Write a short clip of `pattern` and return its path.

    Args:
        frames: number of video frames (ignored when `times` is given).
        size: (width, height).
        rate: nominal frame rate; frame i is at i / rate unless `times` is given.
        times: presentation times in seconds (variable frame rate).
        time_base: stream time base (default 1/rate, or 1/1000 with `times`).
        audio: add a stereo sine track (`audio_codec` at `audio_rate`, language ``eng``) as long as the video.
        audio_seconds: audio length (default: the video's duration).
        audio_tracks: audio streams to write instead of the one `audio` describes (any number, in order).
        subtitles: add a SubRip subtitle stream (Matroska only).
        colour: codec tags, e.g. {"colorspace": 1, "color_primaries": 1, "color_trc": 1, "color_range": 1};
            the pixels are converted with the matching matrix and range.
        rotation: display rotation in degrees (display-matrix side data).
        sar: sample (pixel) aspect ratio, e.g. ``Fraction(64, 45)`` for 16:9 PAL DVD (set on the encoder:
            stored in the H.264 VUI and by the MP4/Matroska muxers).
        metadata: container tags.
        lossless: encode with qp 0 (content checks).
        picture: picture(t, width, height) -> (H, W, 3) floats in [0, 1], with t in frames (default
            `pattern`); e.g. a hard cut or frames held on twos.
    """
    path = Path(path)
    rate = Fraction(rate)
    width, height = size
    if times is None:
        times = [Fraction(i) / rate for i in range(frames)]
    tb = time_base or (Fraction(1, 1000) if _irregular(times) else 1 / rate)
    colour = dict(colour or {})
    matrix = {1: Colorspace.ITU709, 9: Colorspace.BT2020}.get(colour.get("colorspace", 2), Colorspace.ITU601)
    full = colour.get("color_range") == 2 or pix_fmt.startswith("yuvj")
    bits = 10 if "10" in pix_fmt else 8

    with av.open(str(path), mode="w") as out:
        if metadata:
            out.metadata.update(metadata)
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        vs.codec_context.time_base = tb
        vs.time_base = tb
        options = {"preset": "ultrafast"} if codec in ("libx264", "libx265") else {}
        if lossless and codec == "libx264":
            options["qp"] = "0"
        options.update(encoder_options or {})
        vs.codec_context.options = options
        for name, value in colour.items():
            setattr(vs.codec_context, name, value)
        if rotation is not None:
            vs.set_display_rotation(rotation)
        if sar is not None:
            vs.codec_context.sample_aspect_ratio = Fraction(*sar) if isinstance(sar, tuple) else Fraction(sar)
        if audio_tracks is None:
            audio_tracks = [AudioTrack(audio_codec, audio_rate)] if audio else []
        audio_streams = []
        for track in audio_tracks:
            aus = out.add_stream(track.codec, rate=track.rate)
            aus.layout = track.layout
            if track.language is not None:
                aus.metadata["language"] = track.language
            if track.title is not None:
                aus.metadata["title"] = track.title
            audio_streams.append((track, aus))
        sub = None
        srt_container = None
        if subtitles:
            srt = path.with_suffix(".srt")
            srt.write_text("1\n00:00:00,000 --> 00:00:00,200\nHello\n\n2\n00:00:00,250 --> 00:00:00,400\nWorld\n")
            srt_container = av.open(str(srt))
            sub = out.add_stream_from_template(srt_container.streams.subtitles[0])

        for i, t in enumerate(times):
            rgb = _rgb_frame((picture or pattern)(float(t * rate), width, height), bits)
            frame = rgb.reformat(
                format=pix_fmt,
                dst_colorspace=matrix,
                src_color_range=ColorRange.JPEG,
                dst_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
                interpolation=_FLAGS,
            )
            frame.pts = round(t / tb)
            frame.time_base = tb
            if i + 1 < len(times):
                frame.duration = round((times[i + 1] - t) / tb)
            for name, value in colour.items():
                setattr(frame, name, value)
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))

        if audio_streams and audio_seconds is None:
            step = times[-1] - times[-2] if len(times) > 1 else 1 / rate
            audio_seconds = float(times[-1] + step)
        for track, aus in audio_streams:
            _write_tone(out, aus, track, audio_seconds)
        if sub is not None and srt_container is not None:
            for packet in srt_container.demux(srt_container.streams.subtitles[0]):
                if packet.dts is None:
                    continue
                packet.stream = sub
                out.mux(packet)
            srt_container.close()
    return path


def _write_tone(
    out: av.container.OutputContainer, aus: av.audio.stream.AudioStream, track: AudioTrack, seconds: float
) -> None:
    n = int(seconds * track.rate)
    channels = av.AudioLayout(track.layout).nb_channels
    t = np.arange(n) / track.rate
    tone = (0.2 * np.sin(2 * np.pi * track.tone * t)).astype(np.float32)
    samples = np.stack([tone] * channels)
    chunk = 1024
    for start in range(0, n, chunk):
        block = np.ascontiguousarray(samples[:, start : start + chunk])
        if aus.codec_context.format.name == "fltp":
            af = av.AudioFrame.from_ndarray(block, format="fltp", layout=track.layout)
        else:  # PyAV's encoder converts to the codec's own sample format
            af = av.AudioFrame.from_ndarray(
                np.ascontiguousarray((block.T * 32767).astype(np.int16).reshape(1, -1)),
                format="s16",
                layout=track.layout,
            )
        af.sample_rate = track.rate
        af.pts = start
        af.time_base = Fraction(1, track.rate)
        out.mux(aus.encode(af))
    out.mux(aus.encode(None))


def _irregular(times: Sequence[Fraction]) -> bool:
    steps = {b - a for a, b in zip(times, times[1:], strict=False)}
    return len(steps) > 1


def make_images(
    directory: str | Path,
    count: int = 5,
    *,
    size: tuple[int, int] = (48, 32),
    ext: str = "png",
    mode: str = "rgb",
    bits: int = 8,
    names: str = "frame{i}",
) -> list[Path]:
    """Write `count` images of `pattern` (frame i at t = 2 * i, so that t = 2i + 1 is the true middle).

    Args:
        mode: ``"rgb"``, ``"gray"`` or ``"rgba"`` (alpha is a moving ramp).
        bits: 8 or 16 (PNG/TIFF only).
        names: file-name template with ``{i}`` (unpadded by default, to test natural sorting).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    width, height = size
    paths = []
    for i in range(count):
        image = image_at(2.0 * i, width, height, mode)
        scale = 65535 if bits == 16 else 255
        array = np.round(image * scale).astype(np.uint16 if bits == 16 else np.uint8)
        fmt = {
            ("rgb", 8): "rgb24",
            ("rgb", 16): "rgb48le",
            ("gray", 8): "gray",
            ("gray", 16): "gray16le",
            ("rgba", 8): "rgba",
            ("rgba", 16): "rgba64le",
        }[(mode, bits)]
        frame = av.VideoFrame.from_ndarray(array[..., 0] if mode == "gray" else array, format=fmt)
        path = directory / f"{names.format(i=i)}.{ext}"
        codec = {
            "png": "png",
            "jpg": "mjpeg",
            "tif": "tiff",
            "tiff": "tiff",
            "webp": "libwebp",
            "bmp": "bmp",
        }[ext]
        target = {
            "png": {
                "rgb24": "rgb24",
                "rgb48le": "rgb48be",
                "gray": "gray",
                "gray16le": "gray16be",
                "rgba": "rgba",
                "rgba64le": "rgba64be",
            }[fmt],
            "mjpeg": "yuvj444p",
            "tiff": fmt,
            "libwebp": "yuv420p",
            "bmp": "bgr24",
        }[codec]
        if target.startswith("yuv"):
            full = target.startswith("yuvj")
            frame = frame.reformat(
                format=target,
                dst_colorspace=Colorspace.ITU601,
                src_color_range=ColorRange.JPEG,
                dst_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
            )
        else:
            frame = frame.reformat(format=target)
        frame.pts = 0
        with av.open(str(path), mode="w", format="image2", options={"update": "1"}) as out:
            stream = out.add_stream(codec, rate=1)
            stream.width, stream.height, stream.pix_fmt = width, height, target
            if codec == "mjpeg":
                stream.codec_context.color_range = 2
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        paths.append(path)
    return paths


def image_at(t: float, width: int, height: int, mode: str = "rgb") -> np.ndarray:
    """The true image of `make_images` at time t, (H, W, C) float in [0, 1]."""
    rgb = pattern(t, width, height)
    if mode == "gray":
        return rgb.mean(axis=-1, keepdims=True)
    if mode == "rgba":
        x = np.arange(width, dtype=np.float64)[None, :].repeat(height, 0)
        alpha = 0.5 + 0.4 * np.sin(2 * np.pi * (x - 2.0 * t) / 36.0)
        return np.concatenate([rgb, alpha[..., None]], axis=-1)
    return rgb


def video_stream_info(path: str | Path) -> dict:
    """Facts about a written file's video stream, read back with PyAV (frames decoded)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        info = {
            "format": container.format.name,
            "codec": ctx.name,
            "pix_fmt": ctx.pix_fmt,
            "width": ctx.width,
            "height": ctx.height,
            "time_base": stream.time_base,
            "average_rate": stream.average_rate,
            "guessed_rate": stream.guessed_rate,
            "colorspace": int(ctx.colorspace),
            "color_range": int(ctx.color_range),
            "color_primaries": int(ctx.color_primaries),
            "color_trc": int(ctx.color_trc),
            "sample_aspect_ratio": stream.sample_aspect_ratio,  # None or 1 when square or unstated
            "display_aspect_ratio": Fraction(ctx.width, ctx.height) * (stream.sample_aspect_ratio or 1),
            "duration": stream.duration * stream.time_base
            if stream.duration
            else (Fraction(container.duration, av.time_base) if container.duration else None),
            "metadata": dict(container.metadata),
            "stream_types": [s.type for s in container.streams],
        }
        times, rotations = [], []
        for frame in container.decode(stream):
            times.append(frame.pts * stream.time_base)
            rotations.append(frame.rotation)
        info["times"] = times
        info["frames"] = len(times)
        info["rotation"] = rotations[0] if rotations else None
    return info


def audio_streams_info(path: str | Path) -> list[dict]:
    """Per audio stream of a file, in order: codec, sample rate, layout, tags, disposition, and its packets
    (count, bytes, first and last presentation time, total duration; times in seconds)."""
    infos = []
    with av.open(str(path)) as container:
        for stream in container.streams.audio:
            ctx = stream.codec_context
            infos.append(
                {
                    "codec": ctx.name,
                    "sample_rate": ctx.sample_rate,
                    "layout": ctx.layout.name,
                    "language": stream.metadata.get("language"),
                    "title": stream.metadata.get("title", stream.metadata.get("name")),  # MP4 reads "name"
                    # DURATION is Matroska's per-stream tag, written by the muxer itself.
                    "tags": {k: v for k, v in stream.metadata.items() if k != "DURATION"},
                    "disposition": int(stream.disposition),
                    "time_base": stream.time_base,
                    "packets": 0,
                    "bytes": 0,
                    "start": None,
                    "end": None,
                    "duration": Fraction(0),
                }
            )
        for packet in container.demux(*container.streams.audio):
            if packet.size == 0:
                continue
            info = infos[[s.index for s in container.streams.audio].index(packet.stream.index)]
            tb = packet.stream.time_base
            info["packets"] += 1
            info["bytes"] += packet.size
            start = packet.pts * tb
            end = start + (packet.duration or 0) * tb
            info["start"] = start if info["start"] is None else min(info["start"], start)
            info["end"] = end if info["end"] is None else max(info["end"], end)
            info["duration"] += (packet.duration or 0) * tb
    return infos


def decode_rgb(path: str | Path) -> list[np.ndarray]:
    """All frames of a file's video stream as (H, W, 3) float64 RGB in [0, 1], decoded with the file's own
    matrix and range (via vfi_mini's decoder)."""
    from vfi_mini.io.video import decode_frames

    return [f.rgb.astype(np.float64) / 65535.0 for f in decode_frames(path)]


def packets(path: str | Path, kind: str = "audio", index: int = 0) -> list[tuple[bytes, int | None, int | None]]:
    """(payload, pts, duration) of every packet of one stream, timestamps in that stream's time base
    rescaled to seconds x 1e6 so that files with different time bases compare."""
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[index]
        tb = stream.time_base
        out = []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            pts = round(packet.pts * tb * 1_000_000) if packet.pts is not None else None
            out.append((bytes(packet), pts, packet.duration))
        return out


class LogCapture:
    """Collects the records of the ``vfi_mini`` logger directly (works even after the CLI has set
    ``propagate = False`` on it, which hides records from pytest's caplog)."""

    def __init__(self, level: int = 30) -> None:
        import logging

        self.records: list = []
        self._logger = logging.getLogger("vfi_mini")
        self._level = level
        outer = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                outer.records.append(record)

        self._handler = _Handler(level)

    def __enter__(self) -> LogCapture:
        self._old_level = self._logger.level
        self._logger.addHandler(self._handler)
        if self._logger.level == 0 or self._logger.level > self._level:
            self._logger.setLevel(self._level)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._old_level)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]

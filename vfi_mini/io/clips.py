"""Reading clips for training and evaluation: video files, frame folders, images, `.npy` caches.

Everything returns uint8 RGB numpy arrays: ``(T, H, W, 3)`` for clips and ``(H, W, 3)`` for images.
This module is the only one of the data pipeline that imports PyAV.

Colour: YUV frames are converted with the stream's own colour matrix and range (BT.601 / BT.709 /
SMPTE 240M / BT.2020, limited or full range). When the stream leaves them unspecified, the matrix
is guessed from the size (BT.709 from 1280x720 up, BT.601 below, as players do) and the range
from the pixel format (``yuvj*`` = full range, otherwise limited). Output RGB is always full range.

Downscaling (``max_short_side``) happens inside the same swscale call as the colour conversion,
with area averaging, so it is cheap and alias-free.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import InputError

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ClipInfo",
    "is_frame_folder",
    "is_image_file",
    "is_video_file",
    "iter_frames",
    "list_frame_files",
    "probe",
    "read_clip",
    "read_image",
    "resize_rgb",
    "scaled_size",
    "write_frame_folder",
    "write_image",
    "write_video",
]

VIDEO_EXTENSIONS = frozenset(
    ".avi .mp4 .mov .mkv .webm .ogv .ogg .mpg .mpeg .m4v .flv .wmv .y4m .3gp .ts .mts .m2ts .gif".split()
)
IMAGE_EXTENSIONS = frozenset(".png .jpg .jpeg .bmp .tif .tiff .webp .ppm .pgm .pnm".split())

# AVColorSpace values (libavutil/pixfmt.h) -> swscale colour matrix names understood by PyAV.
_MATRIX_BY_AVCOL_SPC = {
    1: "ITU709",  # BT709
    4: "FCC",
    5: "ITU601",  # BT470BG
    6: "ITU601",  # SMPTE170M
    7: "SMPTE240M",
    9: "BT2020",  # BT2020_NCL
    10: "BT2020",  # BT2020_CL (approximated by the NCL matrix)
}
_RANGE_MPEG, _RANGE_JPEG = 1, 2
_I = av.video.reformatter.Interpolation
_INTERP_SAME = _I.BILINEAR | _I.ACCURATE_RND | _I.FULL_CHR_H_INT
_INTERP_SHRINK = _I.AREA | _I.ACCURATE_RND | _I.FULL_CHR_H_INT


def is_video_file(path: str | Path) -> bool:
    p = Path(path)
    return p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS


def is_image_file(path: str | Path) -> bool:
    p = Path(path)
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_frame_files(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, in natural order (``f2`` before ``f10``)."""
    d = Path(folder)
    if not d.is_dir():
        return []
    files = [p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: _natural_key(p.name))


def is_frame_folder(path: str | Path, min_frames: int = 1) -> bool:
    return len(list_frame_files(path)) >= min_frames


def scaled_size(width: int, height: int, max_short_side: int | None) -> tuple[int, int]:
    """(width, height) after downscaling so that the short side is at most ``max_short_side``.

    Never upscales. The aspect ratio is kept to the nearest pixel.
    """
    if not max_short_side or min(width, height) <= max_short_side:
        return width, height
    s = max_short_side / min(width, height)
    if width <= height:
        return max_short_side, max(1, round(height * s))
    return max(1, round(width * s)), max_short_side


def _to_rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """Convert one decoded frame to (height, width, 3) uint8 full-range RGB."""
    fmt = frame.format
    name = fmt.name
    interp = _INTERP_SHRINK if (width, height) != (frame.width, frame.height) else _INTERP_SAME
    is_yuv = (
        not fmt.is_rgb
        and name not in {"gray", "gray8", "pal8", "monob", "monow"}
        and not name.startswith(("gray", "ya"))
    )
    if not is_yuv:
        out = frame.reformat(width=width, height=height, format="rgb24", interpolation=interp)
        return out.to_ndarray()
    matrix = _MATRIX_BY_AVCOL_SPC.get(int(frame.colorspace))
    if matrix is None:  # unspecified: guess like players do
        matrix = "ITU709" if (frame.width >= 1280 or frame.height >= 720) else "ITU601"
    rng = int(frame.color_range)
    if rng not in (_RANGE_MPEG, _RANGE_JPEG):
        rng = _RANGE_JPEG if name.startswith("yuvj") else _RANGE_MPEG
    out = frame.reformat(
        width=width,
        height=height,
        format="rgb24",
        src_colorspace=matrix,
        dst_colorspace=matrix,
        src_color_range=rng,
        dst_color_range=_RANGE_JPEG,
        interpolation=interp,
    )
    return out.to_ndarray()


def resize_rgb(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an (H, W, 3) uint8 RGB image (area averaging when shrinking, bilinear otherwise)."""
    if img.shape[1] == width and img.shape[0] == height:
        return img
    fr = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
    interp = _INTERP_SHRINK if width < img.shape[1] else _INTERP_SAME
    return fr.reformat(width=width, height=height, format="rgb24", interpolation=interp).to_ndarray()


@dataclass(frozen=True)
class ClipInfo:
    """What `probe` learns about a clip without decoding all of it."""

    path: str
    kind: str  # "video", "frames" (a frame folder), "npy" or "image"
    width: int
    height: int
    fps: Fraction | None  # None when unknown (frame folders, caches)
    frames: int | None  # None when the container does not say


def _open(path: Path):
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(f"cannot open {path}: {e}") from e


def probe(path: str | Path) -> ClipInfo:
    p = Path(path)
    if not p.exists():
        raise InputError(f"no such file or directory: {p}")
    if p.is_dir():
        files = list_frame_files(p)
        if not files:
            raise InputError(f"{p}: folder holds no image files")
        h, w = read_image(files[0]).shape[:2]
        return ClipInfo(str(p), "frames", w, h, None, len(files))
    if p.suffix.lower() == ".npy":
        a = np.load(p, mmap_mode="r")
        if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8:
            raise InputError(f"{p}: expected a uint8 (T, H, W, 3) array, got {a.dtype} {a.shape}")
        return ClipInfo(str(p), "npy", a.shape[2], a.shape[1], None, a.shape[0])
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        h, w = read_image(p).shape[:2]
        return ClipInfo(str(p), "image", w, h, None, 1)
    with _open(p) as c:
        if not c.streams.video:
            raise InputError(f"{p}: no video stream")
        s = c.streams.video[0]
        cc = s.codec_context
        rate = s.average_rate or s.guessed_rate or s.base_rate
        fps = Fraction(rate) if rate else None
        n = s.frames or None
        if not n and s.duration and s.time_base and fps:
            n = round(float(s.duration * s.time_base) * float(fps))
        elif not n and c.duration and fps:
            n = round(c.duration / 1e6 * float(fps))
        return ClipInfo(str(p), "video", cc.width, cc.height, fps, n or None)


def iter_frames(
    path: str | Path,
    max_short_side: int | None = None,
    start: int = 0,
    stop: int | None = None,
    step: int = 1,
) -> Iterator[np.ndarray]:
    """Yield (H, W, 3) uint8 RGB frames of a video file, frame folder, `.npy` clip or image.

    ``start``, ``stop`` and ``step`` select frames by their decoding index, like ``range``.
    """
    p = Path(path)
    if step < 1 or start < 0:
        raise ValueError("start must be >= 0 and step >= 1")
    if not p.exists():
        raise InputError(f"no such file or directory: {p}")
    if p.is_dir():
        files = list_frame_files(p)
        if not files:
            raise InputError(f"{p}: folder holds no image files")
        for f in files[start:stop:step]:
            yield _resize_short(read_image(f), max_short_side)
        return
    suffix = p.suffix.lower()
    if suffix == ".npy":
        a = np.load(p, mmap_mode="r")
        if a.ndim != 4 or a.shape[-1] != 3:
            raise InputError(f"{p}: expected a (T, H, W, 3) array, got {a.shape}")
        for i in range(start, a.shape[0] if stop is None else min(stop, a.shape[0]), step):
            yield _resize_short(np.asarray(a[i]), max_short_side)
        return
    if suffix in IMAGE_EXTENSIONS:
        if start == 0 and (stop is None or stop > 0):
            yield _resize_short(read_image(p), max_short_side)
        return
    with _open(p) as c:
        if not c.streams.video:
            raise InputError(f"{p}: no video stream")
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        size = None
        i = -1
        errors = 0
        for packet in c.demux(s):
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as e:
                # Damaged packets: skip them (a few), keep what decodes.
                errors += 1
                if errors > 25:
                    if size is None:
                        raise InputError(f"cannot decode {p}: {e}") from e
                    return
                continue
            for fr in decoded:
                i += 1
                if stop is not None and i >= stop:
                    return
                if i < start or (i - start) % step:
                    continue
                if size is None:
                    size = scaled_size(fr.width, fr.height, max_short_side)
                yield _to_rgb(fr, *size)


def _resize_short(img: np.ndarray, max_short_side: int | None) -> np.ndarray:
    w, h = scaled_size(img.shape[1], img.shape[0], max_short_side)
    return resize_rgb(img, w, h)


def read_clip(
    path: str | Path,
    max_short_side: int | None = None,
    start: int = 0,
    stop: int | None = None,
    step: int = 1,
) -> np.ndarray:
    """Read a whole clip (or the frames ``range(start, stop, step)`` of it) as (T, H, W, 3) uint8 RGB.

    A `.npy` clip without downscaling or a frame range is memory-mapped, not loaded.
    """
    p = Path(path)
    if p.suffix.lower() == ".npy" and p.is_file() and not max_short_side:
        a = np.load(p, mmap_mode="r")
        if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8:
            raise InputError(f"{p}: expected a uint8 (T, H, W, 3) array, got {a.dtype} {a.shape}")
        return a[start:stop:step]
    frames = list(iter_frames(p, max_short_side, start, stop, step))
    if not frames:
        raise InputError(f"{p}: no frames in the requested range")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:  # frame folders or streams with changing size: fit all to the first
        h, w = frames[0].shape[:2]
        frames = [resize_rgb(f, w, h) for f in frames]
    return np.stack(frames)


def read_image(path: str | Path) -> np.ndarray:
    """Read one image file as (H, W, 3) uint8 RGB (grey and palette images are expanded)."""
    p = Path(path)
    with _open(p) as c:
        if not c.streams.video:
            raise InputError(f"{p}: not an image")
        try:
            for fr in c.decode(video=0):
                return _to_rgb(fr, fr.width, fr.height)
        except av.error.FFmpegError as e:
            raise InputError(f"cannot decode image {p}: {e}") from e
    raise InputError(f"{p}: image holds no picture")


def write_image(path: str | Path, img: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB array as a lossless PNG (any other suffix: PyAV's image codec)."""
    p = Path(path)
    img = np.ascontiguousarray(img, dtype=np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    codec = {".png": "png", ".bmp": "bmp", ".ppm": "ppm", ".jpg": "mjpeg", ".jpeg": "mjpeg"}.get(
        p.suffix.lower(), "png"
    )
    cc = av.CodecContext.create(codec, "w")
    cc.width, cc.height = img.shape[1], img.shape[0]
    fr = av.VideoFrame.from_ndarray(img, format="rgb24")
    if codec == "mjpeg":
        cc.pix_fmt = "yuvj444p"
        fr = fr.reformat(format="yuvj444p")
        cc.time_base = Fraction(1, 25)
    else:
        cc.pix_fmt = "rgb24"
    packets = list(cc.encode(fr)) + list(cc.encode(None))
    p.write_bytes(b"".join(bytes(pk) for pk in packets))


def write_frame_folder(folder: str | Path, frames: Sequence[np.ndarray] | np.ndarray, pattern: str = "{:05d}.png"):
    """Write frames as numbered PNG files (``pattern.format(i)``) into ``folder``."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, f in enumerate(frames):
        out = d / pattern.format(i)
        write_image(out, f)
        paths.append(out)
    return paths


def write_video(
    path: str | Path,
    frames: Sequence[np.ndarray] | np.ndarray,
    fps: Fraction | int | float = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    matrix: str = "ITU709",
    full_range: bool = False,
) -> None:
    """Encode (H, W, 3) uint8 RGB frames into a video file.

    YUV codecs: the colour ``matrix`` (``ITU709`` or ``ITU601``) and range are used for the conversion and
    tagged in the stream, so `read_clip` gives the RGB back.
    """
    p = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(p), "w") as c:
        s = c.add_stream(codec, rate=rate)
        h, w = frames[0].shape[:2]
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        if options is None and codec in ("libx264", "h264"):
            options = {"crf": "12", "preset": "veryfast"}
        if options:
            s.options = dict(options)
        yuv = not av.VideoFormat(pix_fmt).is_rgb and not pix_fmt.startswith("gray")
        spc = {"ITU709": 1, "ITU601": 6, "SMPTE240M": 7, "BT2020": 9}[matrix]
        rng = _RANGE_JPEG if full_range else _RANGE_MPEG
        if yuv:
            s.codec_context.colorspace = spc
            s.codec_context.color_range = rng
        for f in frames:
            fr = av.VideoFrame.from_ndarray(np.ascontiguousarray(f, dtype=np.uint8), format="rgb24")
            if yuv:
                fr = fr.reformat(
                    format=pix_fmt,
                    src_colorspace=matrix,
                    dst_colorspace=matrix,
                    src_color_range=_RANGE_JPEG,
                    dst_color_range=rng,
                    interpolation=_INTERP_SAME,
                )
                fr.colorspace = spc
                fr.color_range = rng
            for pk in s.encode(fr):
                c.mux(pk)
        for pk in s.encode(None):
            c.mux(pk)

"""Still images in and out with PyAV: PNG, JPEG, TIFF, WebP and BMP.

Conventions: an image is a numpy array (H, W, C) with C = 1 (grey), 3 (RGB) or 4 (RGBA), dtype uint8
or uint16 (16-bit PNG/TIFF). Grey+alpha sources are read as RGBA. Palette images are RGBA when the
palette has transparency, else RGB. YUV-coded images (JPEG, lossy WebP) are converted to RGB with their
own matrix and range (JPEG: BT.601 full range). Written images: PNG keeps the array's depth and channels;
JPEG is 8-bit 4:4:4 at quality q=2 (ffmpeg ``-q:v 2``) and has no alpha.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

from ..errors import InputError, ProcessingError
from .video import SWS_FLAGS, _ffmpeg_message

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")

# (channels, bits) -> the pixel format frames are read into (native little-endian for numpy).
_READ_FORMAT = {
    (1, 8): "gray",
    (1, 16): "gray16le",
    (3, 8): "rgb24",
    (3, 16): "rgb48le",
    (4, 8): "rgba",
    (4, 16): "rgba64le",
}
# (channels, bits) -> the PNG encoder's pixel format.
_PNG_FORMAT = {
    (1, 8): "gray",
    (1, 16): "gray16be",
    (3, 8): "rgb24",
    (3, 16): "rgb48be",
    (4, 8): "rgba",
    (4, 16): "rgba64be",
}
_MATRIX = {
    1: Colorspace.ITU709,
    5: Colorspace.ITU601,
    6: Colorspace.ITU601,
    9: Colorspace.BT2020,
    10: Colorspace.BT2020,
}
_JPEG_QUALITY = 2  # ffmpeg -q:v scale: 2 is near-transparent
_FF_QP2LAMBDA = 118


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders embedded numbers by value: ``frame2`` before ``frame10``."""
    parts = re.split(r"(\d+)", name.lower())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)) + (name,)


def list_images(directory: str | Path) -> list[Path]:
    """The image files directly inside `directory`, in natural sort order (hidden files skipped).

    Raises:
        InputError: the directory is missing, not a directory, or holds no images.
    """
    directory = Path(directory)
    if not directory.exists():
        raise InputError(f"input directory not found: {directory}")
    if not directory.is_dir():
        raise InputError(f"input is not a directory: {directory}")
    files = [
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if not files:
        raise InputError(f"{directory} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return sorted(files, key=lambda p: natural_key(p.name))


@dataclass(frozen=True)
class ImageInfo:
    """Size and sample layout of an image file.

    Attributes:
        path: the file.
        width, height: size in pixels.
        channels: 1 (grey), 3 (RGB) or 4 (RGBA) as the image will be read.
        bits: 8 or 16 bits per sample as read.
        pix_fmt: the decoder's pixel format.
    """

    path: Path
    width: int
    height: int
    channels: int
    bits: int
    pix_fmt: str


def _decode_one(path: Path) -> av.VideoFrame:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} is not an image")
            for frame in container.decode(video=0):
                return frame
    except av.FFmpegError as exc:
        raise InputError(f"cannot read image {path} ({_ffmpeg_message(exc)})") from exc
    except OSError as exc:
        raise InputError(f"cannot read image {path} ({exc.strerror or exc})") from exc
    raise InputError(f"cannot read image {path} (no picture in it)")


def _layout(frame: av.VideoFrame) -> tuple[int, int]:
    fmt = frame.format
    bits = 16 if max((c.bits for c in fmt.components), default=8) > 8 else 8
    if fmt.has_palette or fmt.name == "pal8":
        rgba = frame.reformat(format="rgba").to_ndarray()
        return (4 if int(rgba[..., 3].min()) < 255 else 3), 8
    has_alpha = any(c.is_alpha for c in fmt.components)
    colour = sum(1 for c in fmt.components if not c.is_alpha)
    if has_alpha:
        return 4, bits  # grey+alpha is read as RGBA
    return (1 if colour == 1 else 3), bits


def probe_image(path: str | Path) -> ImageInfo:
    """Size and layout of an image (decodes it).

    Raises:
        InputError: not a readable image.
    """
    path = Path(path)
    frame = _decode_one(path)
    channels, bits = _layout(frame)
    return ImageInfo(path, frame.width, frame.height, channels, bits, frame.format.name)


def _to_array(frame: av.VideoFrame, channels: int, bits: int) -> np.ndarray:
    fmt = frame.format
    args: dict[str, Any] = {}
    if not fmt.is_rgb and any(c.is_chroma for c in fmt.components):
        full = int(frame.color_range) == 2 or fmt.name.startswith("yuvj")
        matrix = _MATRIX.get(int(frame.colorspace), Colorspace.ITU601)
        args = dict(
            src_colorspace=matrix,
            dst_colorspace=matrix,
            src_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
            dst_color_range=ColorRange.JPEG,
        )
    out = VideoReformatter().reformat(frame, format=_READ_FORMAT[(channels, bits)], interpolation=SWS_FLAGS, **args)
    array = out.to_ndarray()
    if array.ndim == 2:
        array = array[..., None]
    return array


def read_image(path: str | Path, channels: int | None = None, bits: int | None = None) -> np.ndarray:
    """Read an image as (H, W, C) uint8/uint16.

    Args:
        path: the file.
        channels: 1, 3 or 4 to convert to; None: the image's own layout.
        bits: 8 or 16 to convert to; None: the image's own depth.

    Raises:
        InputError: not a readable image.
    """
    path = Path(path)
    frame = _decode_one(path)
    own_channels, own_bits = _layout(frame)
    return _to_array(frame, channels or own_channels, bits or own_bits)


def write_image(path: str | Path, array: np.ndarray, image_format: str | None = None) -> None:
    """Write (H, W, C) uint8/uint16 as PNG or JPEG.

    Args:
        path: the file to write.
        array: C = 1, 3 or 4; uint16 gives a 16-bit PNG.
        image_format: ``"png"`` or ``"jpg"``; None: from the extension.

    Raises:
        ProcessingError: the encoder or the disk failed.
    """
    path = Path(path)
    image_format = (image_format or path.suffix.lstrip(".")).lower()
    if array.ndim == 2:
        array = array[..., None]
    channels = array.shape[2]
    bits = 16 if array.dtype == np.uint16 else 8
    frame = av.VideoFrame.from_ndarray(
        np.ascontiguousarray(array if channels > 1 else array[..., 0]), format=_READ_FORMAT[(channels, bits)]
    )
    if image_format == "png":
        codec, pix_fmt = "png", _PNG_FORMAT[(channels, bits)]
        frame = frame.reformat(format=pix_fmt)
    elif image_format in ("jpg", "jpeg"):
        codec, pix_fmt = "mjpeg", "yuvj444p"
        frame = frame.reformat(
            format=pix_fmt,
            dst_colorspace=Colorspace.ITU601,
            src_color_range=ColorRange.JPEG,
            dst_color_range=ColorRange.JPEG,
            interpolation=SWS_FLAGS,
        )
    else:
        raise ValueError(f"unsupported image format {image_format!r}")
    frame.pts = 0
    try:
        with av.open(str(path), mode="w", format="image2", options={"update": "1"}) as out:
            stream = out.add_stream(codec, rate=1)
            stream.width, stream.height, stream.pix_fmt = array.shape[1], array.shape[0], pix_fmt
            if codec == "mjpeg":
                ctx = stream.codec_context
                ctx.qscale = True
                ctx.global_quality = _JPEG_QUALITY * _FF_QP2LAMBDA
                ctx.qmin = ctx.qmax = _JPEG_QUALITY
                ctx.color_range = 2
                ctx.colorspace = 5
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    except (av.FFmpegError, OSError) as exc:
        raise ProcessingError(f"writing {path} failed ({getattr(exc, 'strerror', None) or exc})") from exc

"""Media input and output with PyAV. The only part of vfi-mini that imports `av`.

- `video`: probe, decode a video stream to RGB, encode RGB back with the source's colour properties, and
  copy (or, where the container refuses the codec, re-encode) the other streams.
- `images`: list, read and write still images (PNG, JPEG, TIFF, WebP, BMP), 8- or 16-bit, grey, RGB or
  RGBA.
- `clips` (data pipeline): reading training and evaluation clips as uint8 arrays.

Conventions: pixels cross this boundary as numpy arrays, (H, W, C) `uint16` in full range 0..65535 for
video, `uint8` or `uint16` for images; timestamps and rates are `fractions.Fraction` (seconds, frames per
second). Errors are raised as `vfi_mini.errors` classes, never as `av` exceptions.
"""

from .images import (
    IMAGE_EXTENSIONS,
    ImageInfo,
    list_images,
    natural_key,
    probe_image,
    read_image,
    write_image,
)
from .video import (
    DecodedFrame,
    EncodeOptions,
    VideoInfo,
    VideoWriter,
    decode_frames,
    probe_video,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "DecodedFrame",
    "EncodeOptions",
    "ImageInfo",
    "VideoInfo",
    "VideoWriter",
    "decode_frames",
    "list_images",
    "natural_key",
    "probe_image",
    "probe_video",
    "read_image",
    "write_image",
]

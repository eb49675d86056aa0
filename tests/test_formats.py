"""Formats through `double_video`: pixel formats, colour and HDR tags, and containers (tiny clips, blend model)."""

from __future__ import annotations

import av
import pytest
from media import make_video, video_stream_info

from vfi_mini.io.video import EncodeOptions
from vfi_mini.pipeline import double_video


def blend(window):
    return (window[:, 1] + window[:, 2]) / 2


FAST = EncodeOptions(preset="ultrafast")
BT2020_PQ = {"colorspace": 9, "color_primaries": 9, "color_trc": 16, "color_range": 1}


@pytest.mark.parametrize(
    ("pix_fmt", "colour"),
    [
        ("yuv422p10le", BT2020_PQ),
        ("yuv444p", {"colorspace": 1, "color_primaries": 1, "color_trc": 1, "color_range": 1}),
    ],
)
def test_pixel_format_and_colour_tags_are_kept(tmp_path, pix_fmt, colour):
    src = make_video(tmp_path / "in.mkv", frames=6, pix_fmt=pix_fmt, colour=colour, audio=False)
    dst = tmp_path / "out.mkv"
    double_video(src, dst, blend, encode=FAST, scene_threshold=None)
    info = video_stream_info(dst)
    assert info["pix_fmt"] == pix_fmt and info["frames"] == 12
    assert {k: info[k] for k in colour} == colour


@pytest.mark.parametrize(
    ("ext", "codec", "audio_codec"),
    [("mp4", "libx264", "aac"), ("mov", "libx264", "aac"), ("avi", "mpeg4", "mp3"), ("webm", "libvpx-vp9", "libopus")],
)
def test_containers(tmp_path, ext, codec, audio_codec):
    for name in (codec, audio_codec):
        try:
            av.Codec(name, "w")
        except (ValueError, av.FFmpegError):
            pytest.skip(f"this FFmpeg has no {name} encoder")
    src = make_video(tmp_path / f"in.{ext}", frames=6, codec=codec, audio_codec=audio_codec, audio_rate=48000)
    dst = tmp_path / f"out.{ext}"
    options = {"deadline": "realtime", "cpu-used": "8"} if codec == "libvpx-vp9" else {}
    preset = "ultrafast" if codec == "libx264" else None
    result = double_video(
        src, dst, blend, encode=EncodeOptions(codec=codec, preset=preset, options=options), scene_threshold=None
    )
    info = video_stream_info(dst)
    assert info["frames"] == 12 and result.output_frames == 12
    assert "audio" in info["stream_types"] and result.audio_copied == 1

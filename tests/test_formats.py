"""Formats through `double_video` and `vfi-mini double`: pixel formats, colour and HDR tags, containers,
several audio tracks and anamorphic (non-square pixel) video (tiny clips, blend model)."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import pytest
from click.testing import CliRunner
from media import AudioTrack, audio_streams_info, make_video, packets, video_stream_info
from test_cli_double import Blend

import vfi_mini.cli.double as cli_double
from vfi_mini.cli import cli
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


# -- through the CLI: several audio tracks, anamorphic video --------------------------------------------


@pytest.fixture
def model(monkeypatch):
    monkeypatch.setattr(cli_double, "load_interpolator", lambda *a, **k: Blend())


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


CLI_FAST = ("--preset", "ultrafast", "--threads", "1")

# Two tracks that differ in everything a copy could mix up: codec, sample rate, channels, tags, default flag.
TWO_TRACKS = (
    AudioTrack("aac", 48000, "stereo", language="eng", title="Main"),
    AudioTrack("libmp3lame", 44100, "mono", language="fra", title="Commentary", tone=660.0),
)


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_double_keeps_every_audio_track_packet_for_packet(tmp_path, model, ext):
    try:
        av.Codec("libmp3lame", "w")
    except (ValueError, av.FFmpegError):
        pytest.skip("this FFmpeg has no MP3 encoder")
    src = make_video(tmp_path / f"in.{ext}", frames=6, audio_tracks=TWO_TRACKS)
    dst = tmp_path / f"out.{ext}"
    result = run("double", src, "-o", dst, "--json", *CLI_FAST)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["audio_streams_copied"] == 2 and summary["audio_streams_reencoded"] == 0

    before, after = audio_streams_info(src), audio_streams_info(dst)
    described = [(a["codec"], a["sample_rate"], a["layout"], a["language"], a["title"]) for a in after]
    assert described == [("aac", 48000, "stereo", "eng", "Main"), ("mp3float", 44100, "mono", "fra", "Commentary")]
    # Same codec parameters, tags (language, title/name, handler), default flag, packet count and bytes,
    # first and last times: nothing re-encoded, dropped or shifted.
    assert after == before
    for index in range(2):
        assert packets(dst, "audio", index) == packets(src, "audio", index)

    video = video_stream_info(dst)
    assert video["frames"] == 12 and video["stream_types"] == ["video", "audio", "audio"]
    video_end = video["times"][-1] + Fraction(1, 50)
    assert video_end == Fraction(6, 25)  # the input's duration
    for track in after:
        # The audio ends with the video, up to the encoder's padding of its last packet (one packet).
        assert abs(track["end"] - video_end) <= track["duration"] / track["packets"], track


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
@pytest.mark.parametrize(
    ("sar", "dar"),
    [(Fraction(32, 27), Fraction(16, 9)), (Fraction(8, 9), Fraction(4, 3))],  # 720x480 NTSC DVD, 16:9 and 4:3
)
def test_double_keeps_the_sample_aspect_ratio(tmp_path, model, ext, sar, dar):
    src = make_video(tmp_path / f"in.{ext}", frames=4, size=(72, 48), sar=sar, audio=False)  # 720x480 / 10
    assert video_stream_info(src)["sample_aspect_ratio"] == sar
    dst = tmp_path / f"out.{ext}"
    result = run("double", src, "-o", dst, "-q", *CLI_FAST)
    assert result.exit_code == 0, result.output
    info = video_stream_info(dst)
    assert (info["width"], info["height"], info["frames"]) == (72, 48, 8)
    assert info["sample_aspect_ratio"] == sar and info["display_aspect_ratio"] == dar
    # In the H.264 stream (VUI), which is where Matroska files written through PyAV keep it (PyAV cannot set
    # the stream's own aspect ratio, from which the Matroska muxer writes its display size).
    with av.open(str(dst)) as container:
        assert container.streams.video[0].codec_context.sample_aspect_ratio == sar
    if ext == "mp4":
        assert b"pasp" in dst.read_bytes()  # and in MP4's own pixel-aspect box

"""vfi_mini.io.video: probing, RGB decoding with the stream's own colour, encoding back, stream copying."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from media import make_video, pattern

from vfi_mini.errors import InputError, UsageError
from vfi_mini.io.video import (
    EncodeOptions,
    VideoWriter,
    check_output_format,
    choose_pix_fmt,
    decode_frames,
    probe_video,
    snap_rate,
)

BT709 = {"colorspace": 1, "color_primaries": 1, "color_trc": 1, "color_range": 1}


def _error(frames: list[np.ndarray], t0: float = 0.0) -> float:
    """Mean absolute difference between decoded frames and the true pattern."""
    h, w = frames[0].shape[:2]
    return float(np.mean([np.abs(f - pattern(t0 + i, w, h)).mean() for i, f in enumerate(frames)]))


def _rgb(path) -> list[np.ndarray]:
    return [f.rgb.astype(np.float64) / 65535 for f in decode_frames(path)]


# --- probing ----------------------------------------------------------------------------------------


def test_probe_reports_exact_rate_size_and_count(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=7, size=(130, 98), rate=Fraction(30000, 1001))
    info = probe_video(src)
    assert (info.width, info.height, info.pix_fmt, info.bit_depth) == (130, 98, "yuv420p", 8)
    assert info.rate == Fraction(30000, 1001) and isinstance(info.rate, Fraction)
    assert info.frames == 7 and info.frames_exact
    assert info.audio_streams == 1 and info.subtitle_streams == 0
    assert info.display_matrix is None


def test_probe_matroska_rate_and_frame_estimate(tmp_path):
    src = make_video(tmp_path / "a.mkv", frames=9, rate=Fraction(30000, 1001), subtitles=True)
    info = probe_video(src)
    assert info.rate == Fraction(30000, 1001)
    assert info.frames == 9 and not info.frames_exact  # from the stream's DURATION tag
    assert info.subtitle_streams == 1


def test_snap_rate_recovers_ntsc_rates():
    assert snap_rate(Fraction(19001, 317)) == Fraction(60000, 1001)  # Matroska's 59.94 read back
    assert snap_rate(Fraction(2997, 100)) == Fraction(30000, 1001)  # 29.97 means NTSC
    assert snap_rate(Fraction(2996, 100)) == Fraction(2996, 100)  # too far from it
    assert snap_rate(Fraction(30000, 1001)) == Fraction(30000, 1001)
    assert snap_rate(Fraction(250001, 10000)) == 25
    assert snap_rate(Fraction(350, 19)) == Fraction(350, 19)


def test_probe_colour_and_rotation(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=3, colour=BT709, rotation=90)
    info = probe_video(src)
    c = info.colour
    assert (c.colorspace, c.color_range, c.color_primaries, c.color_trc) == (1, 1, 1, 1)
    assert not c.full_range and "bt709" in c.description
    assert info.display_matrix is not None


@pytest.mark.parametrize("kind", ["missing", "directory", "text", "truncated", "audio_only", "empty"])
def test_probe_bad_inputs_raise_input_error(tmp_path, kind):
    path = tmp_path / "bad.mp4"
    if kind == "directory":
        path.mkdir()
    elif kind == "text":
        path.write_text("this is not a video\n" * 20)
    elif kind == "truncated":
        good = make_video(tmp_path / "good.mp4", frames=10)
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "audio_only":
        path = tmp_path / "bad.m4a"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("aac", rate=48000)
            frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, 0
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(InputError) as err:
        probe_video(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    if kind == "audio_only":
        assert "no video stream" in message


# --- decoding -----------------------------------------------------------------------------------------


def test_decode_keeps_variable_timestamps(tmp_path):
    times = [Fraction(t, 1000) for t in (0, 40, 80, 160, 200, 300, 340)]
    src = make_video(tmp_path / "vfr.mp4", times=times)
    decoded = list(decode_frames(src))
    assert [f.time for f in decoded] == times
    assert [f.index for f in decoded] == list(range(7))
    assert decoded[2].duration == Fraction(80, 1000)


@pytest.mark.parametrize(
    "pix_fmt,colour,size",
    [
        ("yuv420p", None, (64, 48)),  # untagged SD: BT.601 limited
        ("yuv420p", BT709, (130, 98)),
        ("yuv420p", {"colorspace": 1, "color_range": 2}, (64, 48)),  # BT.709 full range
        ("yuvj420p", None, (64, 48)),  # JPEG range implied by the format
        ("yuv420p10le", {"colorspace": 9, "color_primaries": 9, "color_trc": 14, "color_range": 1}, (64, 48)),
        ("yuv444p", BT709, (63, 49)),  # odd size
    ],
)
def test_decode_uses_the_streams_matrix_and_range(tmp_path, pix_fmt, colour, size):
    src = make_video(
        tmp_path / "a.mp4", frames=3, size=size, pix_fmt=pix_fmt, colour=colour, lossless=True, audio=False
    )
    err = _error(_rgb(src))
    # Chroma subsampling and 8-bit rounding cost ~0.003; a wrong matrix or range costs 0.01-0.05.
    assert err < 0.006, err


def test_decode_of_ten_bit_keeps_more_than_eight_bits(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=2, pix_fmt="yuv444p10le", lossless=True, audio=False)
    frames = _rgb(src)
    levels = np.unique(np.round(frames[0][..., 1] * 65535))
    assert levels.size > 256  # more distinct green levels than 8 bits can hold
    assert _error(frames) < 0.002


# --- encoding -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pix_fmt,colour,size",
    [
        ("yuv420p", None, (130, 98)),
        ("yuv420p", BT709, (64, 48)),
        ("yuv420p10le", BT709, (64, 48)),
        ("yuvj420p", None, (64, 48)),
    ],
)
def test_writer_reencodes_through_the_same_colour_path(tmp_path, pix_fmt, colour, size):
    """Decode -> encode (lossless) -> decode changes nothing visible: originals do not drift, so original
    and interpolated frames (which take the same path) cannot flicker against each other."""
    src = make_video(
        tmp_path / "a.mp4", frames=4, size=size, pix_fmt=pix_fmt, colour=colour, lossless=True, audio=False
    )
    info = probe_video(src)
    first = list(decode_frames(src, info))
    out = tmp_path / "b.mp4"
    with VideoWriter(out, info, info.rate, EncodeOptions(options={"qp": "0"}, preset="ultrafast")) as writer:
        for f in first:
            writer.write(f.rgb, f.time, f.duration)
    second = list(decode_frames(out))
    assert len(second) == len(first)
    # swscale rounds full-range chroma down by half a code value per pass (limited range: exact luma,
    # chroma within 0.1 codes); both are far below what the eye sees and the same for every frame.
    limit = 0.004 if info.colour.full_range else 0.002
    for a, b in zip(first, second, strict=True):
        diff = np.abs(a.rgb.astype(np.float64) - b.rgb.astype(np.float64)) / 65535
        assert diff.mean() < limit, diff.mean()
    out_info = probe_video(out)
    assert out_info.pix_fmt.replace("yuvj", "yuv") == pix_fmt.replace("yuvj", "yuv")
    assert out_info.colour.full_range == info.colour.full_range
    assert out_info.colour.matrix == info.colour.matrix


def test_writer_sets_exact_timestamps_and_durations(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=2, audio=False)
    info = probe_video(src)
    rgb = next(decode_frames(src, info)).rgb
    times = [Fraction(0), Fraction(1, 50), Fraction(3, 50), Fraction(7, 100)]
    out = tmp_path / "b.mp4"
    with VideoWriter(out, info, Fraction(50), EncodeOptions(preset="ultrafast")) as writer:
        for t, t_next in zip(times, times[1:] + [Fraction(8, 100)], strict=True):
            writer.write(rgb, t, t_next - t)
    assert writer.video_duration == Fraction(8, 100)
    assert [f.time for f in decode_frames(out)] == times


def test_choose_pix_fmt(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=1, pix_fmt="yuvj420p", audio=False)
    info = probe_video(src)
    assert choose_pix_fmt(info, "libx264") == "yuv420p"
    assert choose_pix_fmt(info, "libx264", "yuv444p") == "yuv444p"
    with pytest.raises(UsageError, match="cannot encode"):
        choose_pix_fmt(info, "mpeg4", "yuv444p")
    with pytest.raises(UsageError, match="unknown pixel format"):
        choose_pix_fmt(info, "libx264", "nonsense")
    with pytest.raises(UsageError, match="unknown video encoder"):
        choose_pix_fmt(info, "no-such-codec")
    ten = probe_video(make_video(tmp_path / "b.mp4", frames=1, pix_fmt="yuv420p10le", audio=False))
    assert choose_pix_fmt(ten, "libx264") == "yuv420p10le"
    assert choose_pix_fmt(ten, "mpeg4") == "yuv420p"  # no 10-bit there: closest it has


def test_writer_rejects_bad_settings(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=1, audio=False)
    info = probe_video(src)
    with pytest.raises(UsageError, match="does not know the encoder option"):
        VideoWriter(tmp_path / "b.mp4", info, Fraction(50), EncodeOptions(options={"no-such-option": "1"}))
    with pytest.raises(UsageError, match="no --crf"):
        VideoWriter(tmp_path / "b.mp4", info, Fraction(50), EncodeOptions(codec="mpeg4", crf=20))
    with pytest.raises(UsageError, match="cannot tell the container format"):
        check_output_format(tmp_path / "b.nosuchformat")
    with pytest.raises(UsageError):
        VideoWriter(tmp_path / "b.webm", info, Fraction(50), EncodeOptions(codec="libx264"))
    assert not (tmp_path / "b.mp4").exists() and not (tmp_path / "b.webm").exists()

"""vfi_mini.pipeline: windows, the frame-count and timing contract, threads, and the library entry points
`double_video` / `interpolate_frames` on real files written by PyAV (with a blend as the model)."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from media import LogCapture, image_at, make_images, make_video, packets, pattern, video_stream_info

from vfi_mini.errors import InputError, ProcessingError, UsageError
from vfi_mini.io.images import read_image
from vfi_mini.io.video import EncodeOptions, decode_frames
from vfi_mini.pipeline import (
    Frame,
    double_video,
    interpolate_frames,
    interpolate_stream,
    iter_windows,
    run_threaded,
)

LOSSLESS = EncodeOptions(options={"qp": "0"}, preset="ultrafast")
FAST = EncodeOptions(preset="ultrafast")


def blend(window: torch.Tensor) -> torch.Tensor:
    """A stand-in model: the mean of the two middle frames."""
    return (window[:, 1] + window[:, 2]) / 2


def _leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".vfi-tmp-" in p.name)


# --- windows and the contract on tensors ------------------------------------------------------------


@pytest.mark.parametrize("n", range(6))
def test_windows_replicate_the_edges(n):
    frames = list(range(n))
    windows = list(iter_windows(frames))
    assert len(windows) == max(n - 1, 0)
    for k, w in enumerate(windows):
        assert w == (max(k - 1, 0), k, k + 1, min(k + 2, n - 1))


def _timed(n: int, step: Fraction = Fraction(1, 25), c: int = 3) -> list[Frame]:
    return [Frame(torch.full((c, 4, 6), float(i) / 10), i * step, step) for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_stream_gives_2n_frames_with_midpoint_times(n, batch_size):
    out = list(
        interpolate_stream(_timed(n), blend, batch_size=batch_size, hold_last=True, default_step=Fraction(1, 25))
    )
    assert len(out) == 2 * n
    assert [f.kind for f in out] == ["input", "interpolated"] * (n - 1) + ["input", "held"]
    assert [f.time for f in out] == [Fraction(i, 50) for i in range(2 * n)]
    assert all(f.duration == Fraction(1, 50) for f in out)
    assert sum(f.duration for f in out) == Fraction(n, 25)  # same duration as the input
    for i, f in enumerate(out[:-1]):
        torch.testing.assert_close(f.image, torch.full((3, 4, 6), i / 20))  # blend of neighbours
    torch.testing.assert_close(out[-1].image, out[-2].image)


def test_stream_without_hold_gives_2n_minus_1():
    out = list(interpolate_stream(_timed(4), blend, hold_last=False))
    assert len(out) == 7 and out[-1].kind == "input"


def test_stream_variable_timing_and_held_duration():
    times = [Fraction(0), Fraction(1, 10), Fraction(3, 10), Fraction(4, 10)]
    frames = [Frame(torch.zeros(3, 2, 2), t) for t in times]  # no durations: the last gap is used
    out = list(interpolate_stream(frames, blend))
    assert [f.time for f in out] == [
        0,
        Fraction(1, 20),
        Fraction(1, 10),
        Fraction(2, 10),
        Fraction(3, 10),
        Fraction(35, 100),
        Fraction(4, 10),
        Fraction(45, 100),
    ]
    assert out[-1].duration == Fraction(1, 20)


def test_window_order_reaches_the_model():
    seen = []

    def spy(window):
        seen.append(torch.round(window[:, :, 0, 0, 0] * 10).int().tolist())
        return window[:, 1]

    list(interpolate_stream(_timed(4), spy, batch_size=2))
    assert [w for batch in seen for w in batch] == [[0, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 3]]


def test_grey_and_alpha_channels():
    calls = []

    def model(window):
        calls.append(tuple(window.shape))
        return blend(window)

    grey = [Frame(torch.full((1, 4, 4), v)) for v in (0.0, 0.5)]
    out = list(interpolate_stream(grey, model, hold_last=False))
    assert [tuple(f.image.shape) for f in out] == [(1, 4, 4)] * 3
    assert torch.allclose(out[1].image, torch.full((1, 4, 4), 0.25))
    rgba = [Frame(torch.cat([torch.full((3, 4, 4), v), torch.full((1, 4, 4), 1 - v)])) for v in (0.0, 1.0)]
    out = list(interpolate_stream(rgba, model, hold_last=False))
    assert calls[-1] == (2, 4, 3, 4, 4)  # colour and alpha windows in one call
    assert torch.allclose(out[1].image, torch.full((4, 4, 4), 0.5))


def test_model_failures_become_processing_errors():
    with pytest.raises(ProcessingError, match="interpolation failed.*boom"):
        list(interpolate_stream(_timed(3), lambda w: (_ for _ in ()).throw(RuntimeError("boom"))))
    with pytest.raises(ProcessingError, match="returned"):
        list(interpolate_stream(_timed(3), lambda w: w[:, 1, :2]))


# --- threads --------------------------------------------------------------------------------------------


def test_threads_pass_errors_from_any_stage_and_stop():
    def bad_source():
        yield 1
        raise InputError("decoder broke")

    with pytest.raises(InputError, match="decoder broke"):
        run_threaded(bad_source(), lambda it: it, lambda x: None)

    def bad_sink(x):
        raise ProcessingError("encoder broke")

    with pytest.raises(ProcessingError, match="encoder broke"):
        run_threaded(iter(range(1000)), lambda it: it, bad_sink)
    assert not [t for t in threading.enumerate() if t.name.startswith("vfi-")]


def test_threads_keep_memory_bounded():
    produced = [0]

    def source():
        for i in range(200):
            produced[0] += 1
            yield i

    def slow(it):
        for i, x in enumerate(it):
            # decoding may run ahead by the queue plus the item in hand, never by the whole input
            assert produced[0] - i <= 4 + 2
            time.sleep(0.001)
            yield x

    got = []
    assert run_threaded(source(), slow, got.append, queue_size=4) == 200
    assert got == list(range(200))


# --- double_video on real files ------------------------------------------------------------------------


def _check_contract(src, dst, n: int, rate: Fraction):
    a, b = video_stream_info(src), video_stream_info(dst)
    assert b["frames"] == 2 * n
    times = b["times"]
    assert all(t1 > t0 for t0, t1 in zip(times, times[1:], strict=False))  # strictly increasing
    assert times[0::2] == a["times"]  # inputs keep their own timestamps (even positions)
    assert abs(b["duration"] - a["duration"]) <= 1 / (2 * rate)  # within one output frame
    return a, b


@pytest.mark.parametrize(
    "rate,size,container",
    [
        (Fraction(25), (64, 48), "mp4"),
        (Fraction(30000, 1001), (130, 98), "mp4"),
        (Fraction(30000, 1001), (64, 48), "mov"),
    ],
)
def test_double_video_contract(tmp_path, rate, size, container):
    src = make_video(tmp_path / f"in.{container}", frames=11, size=size, rate=rate)
    dst = tmp_path / f"out.{container}"
    result = double_video(src, dst, blend, encode=FAST)
    a, b = _check_contract(src, dst, 11, rate)
    assert b["average_rate"] == 2 * rate and b["guessed_rate"] == 2 * rate  # exact rationals
    assert (result.input_frames, result.output_frames) == (11, 22)
    assert result.output_rate == 2 * rate and isinstance(result.output_rate, Fraction)
    assert result.input_duration == result.output_duration == Fraction(11) / rate
    assert packets(src) == packets(dst)  # audio: same bytes, same times
    assert (b["width"], b["height"]) == size
    assert _leftovers(tmp_path) == []
    summary = result.to_dict()
    assert summary["output_rate"] == f"{(2 * rate).numerator}" + (
        f"/{(2 * rate).denominator}" if (2 * rate).denominator != 1 else ""
    )


def test_double_video_variable_frame_rate(tmp_path):
    times = [Fraction(t, 1000) for t in (0, 40, 80, 160, 200, 300, 340, 380)]
    src = make_video(tmp_path / "vfr.mp4", times=times)
    dst = tmp_path / "out.mp4"
    double_video(src, dst, blend, encode=FAST)
    out = video_stream_info(dst)["times"]
    assert out[0::2] == times
    assert out[1::2] == [(a + b) / 2 for a, b in zip(times, times[1:], strict=False)] + [Fraction(400, 1000)]
    assert packets(src) == packets(dst)


def test_double_video_keeps_ten_bit_colour_tags_rotation_metadata(tmp_path):
    tags = {"colorspace": 9, "color_primaries": 9, "color_trc": 14, "color_range": 1}
    src = make_video(
        tmp_path / "in.mp4",
        frames=5,
        pix_fmt="yuv420p10le",
        colour=tags,
        rotation=90,
        metadata={"title": "Ten bits", "comment": "kept"},
    )
    dst = tmp_path / "out.mp4"
    double_video(src, dst, blend, encode=FAST)
    a, b = video_stream_info(src), video_stream_info(dst)
    assert b["pix_fmt"] == "yuv420p10le"
    for key in tags:
        assert b[key] == a[key] == tags[key], key
    assert b["rotation"] == a["rotation"] == 90
    assert b["metadata"]["title"] == "Ten bits" and b["metadata"]["comment"] == "kept"


def test_double_video_bt709_full_range(tmp_path):
    tags = {"colorspace": 1, "color_primaries": 1, "color_trc": 1, "color_range": 2}
    src = make_video(tmp_path / "in.mp4", frames=3, colour=tags, audio=False)
    dst = tmp_path / "out.mp4"
    double_video(src, dst, blend, encode=FAST)
    b = video_stream_info(dst)
    assert (b["colorspace"], b["color_range"], b["color_primaries"], b["color_trc"]) == (1, 2, 1, 1)


def test_double_video_matroska_with_subtitles(tmp_path):
    src = make_video(tmp_path / "in.mkv", frames=9, rate=Fraction(30000, 1001), subtitles=True)
    dst = tmp_path / "out.mkv"
    result = double_video(src, dst, blend, encode=FAST)
    a, b = _check_contract(src, dst, 9, Fraction(30000, 1001))
    assert b["stream_types"] == ["video", "audio", "subtitle"]
    assert packets(src, "subtitles") == packets(dst, "subtitles")
    assert packets(src) == packets(dst)
    assert result.subtitles_copied == 1 and result.output_rate == Fraction(60000, 1001)
    with av.open(str(dst)) as c:
        assert c.streams.audio[0].metadata.get("language") == "eng"  # stream tags kept


def test_double_video_drops_what_the_container_cannot_hold(tmp_path):
    src = make_video(tmp_path / "in.mkv", frames=4, subtitles=True)
    dst = tmp_path / "out.mp4"
    with LogCapture() as log:
        double_video(src, dst, blend, encode=FAST)
    assert video_stream_info(dst)["stream_types"] == ["video", "audio"]
    assert any("subtitle stream #2" in m and "dropped" in m for m in log.messages())


def test_double_video_reencodes_audio_the_container_refuses(tmp_path):
    src = make_video(tmp_path / "in.mkv", frames=4, audio_codec="pcm_s16le")
    dst = tmp_path / "out.webm"
    vp9 = EncodeOptions(codec="libvpx-vp9", options={"deadline": "realtime", "cpu-used": "8"})
    with LogCapture() as log:
        result = double_video(src, dst, blend, encode=vp9)
    assert result.audio_reencoded == 1 and result.output_frames == 8
    with av.open(str(dst)) as c:
        assert c.streams.audio[0].codec_context.name in ("opus", "libopus", "vorbis")
        assert c.streams.audio[0].metadata.get("language") == "eng"
    assert any("audio stream #1 (pcm_s16le, eng)" in m and "re-encoding" in m for m in log.messages())


def test_double_video_without_audio_and_subtitles(tmp_path):
    src = make_video(tmp_path / "in.mkv", frames=3, subtitles=True)
    dst = tmp_path / "out.mkv"
    double_video(src, dst, blend, encode=FAST, audio=False, subtitles=False)
    assert video_stream_info(dst)["stream_types"] == ["video"]


def test_double_video_single_frame(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=1)
    dst = tmp_path / "out.mp4"
    with LogCapture() as log:
        result = double_video(src, dst, blend, encode=FAST)
    assert result.output_frames == 2 and video_stream_info(dst)["frames"] == 2
    assert result.output_duration == result.input_duration == Fraction(1, 25)
    assert any("single frame" in m for m in log.messages())


def test_interpolated_frames_land_between_their_neighbours(tmp_path):
    """On a smoothly moving pattern, output frame 2k+1 is closer to the true picture at k + 1/2 than to
    the pictures at k and k + 1, and the inputs come back in place."""
    w, h = 96, 64
    src = make_video(tmp_path / "in.mp4", frames=6, size=(w, h), pix_fmt="yuv444p", lossless=True, audio=False)
    dst = tmp_path / "out.mp4"
    double_video(src, dst, blend, encode=LOSSLESS)
    out = [f.rgb.astype(np.float64) / 65535 for f in decode_frames(dst)]
    assert len(out) == 12
    for j, frame in enumerate(out[:-1]):
        t = j / 2
        err = {s: np.abs(frame - pattern(s, w, h)).mean() for s in (t - 0.5, t, t + 0.5)}
        assert err[t] < min(err[t - 0.5], err[t + 0.5]) / 2, (j, err)


def test_window_order_through_a_video(tmp_path):
    """A model that returns frame t+2 of its window: the new frame after input k is input min(k+2, N-1)."""
    src = make_video(tmp_path / "in.mp4", frames=5, pix_fmt="yuv444p", lossless=True, audio=False)
    dst = tmp_path / "out.mp4"
    double_video(src, dst, lambda w: w[:, 3], encode=LOSSLESS)
    inputs = [f.rgb.astype(np.int64) for f in decode_frames(src)]
    out = [f.rgb.astype(np.int64) for f in decode_frames(dst)]
    for k in range(4):
        assert np.abs(out[2 * k + 1] - inputs[min(k + 2, 4)]).mean() < 50  # of 65535
        assert np.abs(out[2 * k] - inputs[k]).mean() < 50


def test_double_video_refuses_bad_outputs(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=2)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.mp4").hardlink_to(src)
    for same in (tmp_path / "sub" / ".." / "in.mp4", tmp_path / "link.mp4"):
        with pytest.raises(UsageError, match="is the input"):
            double_video(src, same, blend, overwrite=True)
    existing = tmp_path / "out.mp4"
    existing.write_bytes(b"keep me")
    with pytest.raises(UsageError, match="exists"):
        double_video(src, existing, blend)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(UsageError, match="does not exist"):
        double_video(src, tmp_path / "missing" / "out.mp4", blend)
    double_video(src, existing, blend, overwrite=True, encode=FAST)
    assert video_stream_info(existing)["frames"] == 4
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_double_video_failure_leaves_nothing(tmp_path, failure):
    src = make_video(tmp_path / "in.mp4", frames=8)
    before = src.read_bytes()
    calls = [0]

    def model(window):
        calls[0] += 1
        if calls[0] == 3:
            raise failure("stop")
        return blend(window)

    expected = KeyboardInterrupt if failure is KeyboardInterrupt else ProcessingError
    with pytest.raises(expected):
        double_video(src, tmp_path / "out.mp4", model, encode=FAST)
    assert not (tmp_path / "out.mp4").exists()
    assert _leftovers(tmp_path) == []
    assert src.read_bytes() == before
    assert not [t for t in threading.enumerate() if t.name.startswith("vfi-")]


def test_double_video_progress_is_called_in_this_thread(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=6)
    calls = []
    main = threading.get_ident()
    double_video(
        src,
        tmp_path / "out.mp4",
        blend,
        encode=FAST,
        progress=lambda done, total: calls.append((done, total, threading.get_ident())),
    )
    assert calls[-1][:2] == (12, 12)
    assert all(c[2] == main for c in calls)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


# --- interpolate_frames -------------------------------------------------------------------------------


def test_frames_natural_order_names_and_content(tmp_path):
    make_images(tmp_path / "in", 11, names="frame{i}")  # frame2 must come before frame10
    result = interpolate_frames(tmp_path / "in", tmp_path / "out", blend)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"{i:08d}.png" for i in range(21)]
    assert result.output_frames == 21 and result.input_frames == 11
    for i in range(11):  # inputs unchanged at even positions
        assert np.array_equal(
            read_image(tmp_path / "out" / f"{2 * i:08d}.png"), read_image(tmp_path / "in" / f"frame{i}.png")
        )
    middle = read_image(tmp_path / "out" / "00000005.png").astype(np.float64) / 255
    err = {t: np.abs(middle - image_at(t, 48, 32)).mean() for t in (4.0, 5.0, 6.0)}
    assert err[5.0] < min(err[4.0], err[6.0])
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "mode,bits,ext",
    [
        ("rgb", 16, "png"),
        ("gray", 8, "png"),
        ("gray", 16, "png"),
        ("rgba", 8, "png"),
        ("rgba", 16, "png"),
        ("rgb", 8, "jpg"),
        ("rgb", 8, "tif"),
        ("rgb", 16, "tif"),
        ("rgb", 8, "webp"),
        ("rgb", 8, "bmp"),
    ],
)
def test_frames_formats_depths_and_channels(tmp_path, mode, bits, ext):
    make_images(tmp_path / "in", 3, ext=ext, mode=mode, bits=bits)
    interpolate_frames(tmp_path / "in", tmp_path / "out", blend)
    out = [read_image(tmp_path / "out" / f"{i:08d}.png") for i in range(5)]
    want_bits = 16 if bits == 16 else 8
    assert out[0].dtype == (np.uint16 if want_bits == 16 else np.uint8)
    assert out[0].shape == (32, 48, {"rgb": 3, "gray": 1, "rgba": 4}[mode])
    scale = 65535.0 if want_bits == 16 else 255.0
    truth = image_at(2.0, 48, 32, mode)  # output 2 is input 1, at t = 2
    tolerance = 0.002 if ext in ("png", "tif", "bmp") else 0.03
    assert np.abs(out[2] / scale - truth).mean() < tolerance
    if mode == "rgba":  # alpha interpolated, not copied
        alpha = out[1][..., 3] / scale
        expected = (image_at(0, 48, 32, mode)[..., 3] + image_at(2, 48, 32, mode)[..., 3]) / 2
        assert np.abs(alpha - expected).max() < 0.01


def test_frames_as_jpeg(tmp_path):
    make_images(tmp_path / "in", 3, mode="rgba")
    with LogCapture() as log:
        interpolate_frames(tmp_path / "in", tmp_path / "out", blend, image_format="jpg")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{i:08d}.jpg" for i in range(5)]
    assert read_image(tmp_path / "out" / "00000000.jpg").shape == (32, 48, 3)
    assert any("alpha" in m for m in log.messages())


def test_frames_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        interpolate_frames(tmp_path / "nope", tmp_path / "out", blend)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        interpolate_frames(tmp_path / "empty", tmp_path / "out", blend)
    make_images(tmp_path / "mixed", 3, size=(48, 32))
    make_images(tmp_path / "odd", 1, size=(40, 32), names="frame9")
    (tmp_path / "mixed" / "frame9.png").write_bytes((tmp_path / "odd" / "frame9.png").read_bytes())
    with pytest.raises(InputError, match=r"frame9.png is 40x32 but frame0.png is 48x32"):
        interpolate_frames(tmp_path / "mixed", tmp_path / "out", blend)
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []
    with pytest.raises(UsageError, match="is the input directory"):
        interpolate_frames(tmp_path / "mixed", tmp_path / "mixed", blend, overwrite=True)
    with pytest.raises(UsageError, match="unknown image format"):
        interpolate_frames(tmp_path / "mixed", tmp_path / "out", blend, image_format="gif")


def test_frames_output_directory_rules(tmp_path):
    make_images(tmp_path / "in", 3)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "00000099.png").write_bytes(b"stale")
    with pytest.raises(UsageError, match="not empty"):
        interpolate_frames(tmp_path / "in", out, blend)
    interpolate_frames(tmp_path / "in", out, blend, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [f"{i:08d}.png" for i in range(5)] + ["notes.txt"]
    interpolate_frames(tmp_path / "in", tmp_path / "new" / "deeper", blend)  # created with parents
    assert len(list((tmp_path / "new" / "deeper").iterdir())) == 5


def test_frames_failure_leaves_no_output(tmp_path):
    make_images(tmp_path / "in", 5)

    def model(window):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interpolate_frames(tmp_path / "in", tmp_path / "out", model)
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []

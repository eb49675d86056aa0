"""vfi_mini.scenes and the scene-cut / duplicate-frame handling of `retime_stream`, `double_video` and the
CLI, on tensors and on real clips written by PyAV (a hard cut between two patterns, animation on twos)."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from media import make_video, packets, pattern, video_stream_info

import vfi_mini.cli.double as cli_double
from vfi_mini.cli import cli
from vfi_mini.io.images import read_image, write_image
from vfi_mini.io.video import EncodeOptions, decode_frames
from vfi_mini.pipeline import Frame, RetimeReport, double_video, retime_stream
from vfi_mini.scenes import block_difference, cut_score, difference, find_cuts, thumbnail

LOSSLESS = EncodeOptions(preset="ultrafast", pix_fmt="yuv444p", options={"qp": "0"})
CUT = 6  # first frame of the second shot in the clips below


def blend(window: torch.Tensor) -> torch.Tensor:
    return (window[:, 1] + window[:, 2]) / 2


# --- the detector on numbers and pictures ----------------------------------------------------------


@pytest.mark.parametrize(
    "diffs,cuts",
    [
        ([2, 2, 2, 40, 2, 2], [3]),  # a hard cut
        ([20, 22, 19, 21, 20, 22], []),  # fast motion: large but even
        ([0, 0, 0, 20, 20, 20], []),  # a pan starts: large from then on
        ([18, 18, 40, 0, 0], [2]),  # from a fast shot to a still one
        ([1, 1, 40, 40, 1, 1], [2, 3]),  # a one-frame flash: both its gaps
        ([30], [0]),  # two frames, nothing to compare with
        ([1, 1, 9, 1, 1], []),  # below the threshold
    ],
)
def test_find_cuts(diffs, cuts):
    assert find_cuts(diffs) == cuts


def test_cut_score_uses_the_busier_side():
    assert cut_score(30, [2, 4], [10, 20]) == 15
    assert cut_score(30, [], []) == 30
    assert cut_score(30, [100, 100, 2, 4], [10]) == 20  # only the nearest CONTEXT = 2 on each side


def test_thumbnail_and_differences():
    image = torch.rand(3, 480, 640)
    thumb = thumbnail(image)
    assert thumb.shape == (48, 64)
    luma = 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]
    assert torch.allclose(thumb, luma.reshape(48, 10, 64, 10).mean((1, 3)), atol=1e-5)
    assert thumbnail(torch.rand(1, 20, 30)).shape == (20, 30)  # small grey pictures are kept
    a = torch.zeros(256, 256)
    b = a.clone()
    b[40:48, 80:88] = 1.0  # a small object moves in: invisible in the mean, not in its 8x8 block
    assert difference(thumbnail(a[None]), thumbnail(b[None])) < 0.2
    assert block_difference(a, b) == pytest.approx(100.0)


# --- retime_stream on tensors ----------------------------------------------------------------------


def _shots(n: int = 12, cut: int = CUT) -> list[Frame]:
    """Flat frames: shot A rises slowly from 0.2, shot B falls slowly from 0.8 (1 % per frame)."""
    levels = [0.2 + 0.01 * k if k < cut else 0.8 - 0.01 * k for k in range(n)]
    return [Frame(torch.full((3, 8, 8), v), Fraction(k, 25), Fraction(1, 25)) for k, v in enumerate(levels)]


class Spy:
    """A blend that records which shot each frame of each window came from (A: level < 0.5)."""

    def __init__(self) -> None:
        self.windows: list[list[str]] = []

    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        for w in window:
            self.windows.append(["A" if float(f.mean()) > 0.35 else "B" for f in w])
        return blend(window)


class LevelSpy(Spy):
    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        for w in window:
            self.windows.append(["A" if float(f.mean()) < 0.5 else "B" for f in w])
        return blend(window)


@pytest.mark.parametrize("multi", [2, 4])
def test_cut_is_found_and_never_blended(multi):
    frames = _shots()
    spy = LevelSpy()
    report = RetimeReport()
    out = list(retime_stream(frames, spy, multi=multi, scene_threshold=10.0, report=report))
    assert [(c.frame, c.time) for c in report.cuts] == [(CUT, Fraction(CUT, 25))]
    assert report.cuts[0].score > 10
    assert len(out) == multi * 12
    gap = out[multi * (CUT - 1) : multi * CUT]  # the last frame of shot A and the new frames after it
    assert [f.kind for f in gap] == ["input"] + ["held"] * (multi - 1)
    for f in gap:
        torch.testing.assert_close(f.image, frames[CUT - 1].image)
    assert spy.windows and all(len(set(w)) == 1 for w in spy.windows)  # no window mixes the shots
    assert sum(1 for f in out if f.kind == "interpolated") == (multi - 1) * 10  # 11 gaps, one of them a cut


def test_without_scene_detection_the_cut_is_blended():
    """The same stream without detection: windows do mix the shots (so the test above can fail)."""
    spy = LevelSpy()
    report = RetimeReport()
    out = list(retime_stream(_shots(), spy, scene_threshold=None, report=report))
    assert report.cuts == []
    assert any(len(set(w)) == 2 for w in spy.windows)
    assert out[2 * CUT - 1].kind == "interpolated"


def test_duplicates_become_one_frame_held_longer():
    """Animation on twos: levels 0.1, 0.1, 0.2, 0.2, ... With duplicates merged, the output level rises
    smoothly (quarter steps of each two-frame span, by recursive midpoints) at the same times as without."""
    n = 12
    frames = [Frame(torch.full((3, 8, 8), 0.1 + 0.1 * (k // 2)), Fraction(k, 24), Fraction(1, 24)) for k in range(n)]
    plain = list(retime_stream(frames, blend))
    report = RetimeReport()
    out = list(retime_stream(frames, blend, dedupe=3.0, report=report))
    assert report.duplicates == n // 2
    assert [f.time for f in out] == [f.time for f in plain] == [Fraction(i, 48) for i in range(2 * n)]
    levels = [float(f.image.mean()) for f in out]
    for i, level in enumerate(levels):
        tau = min(i / 2, n - 2)  # in input frames; after the last distinct frame it is held
        assert level == pytest.approx(0.1 + 0.05 * tau, abs=1e-6), i
    assert [float(f.image.mean()) for f in plain][:4] == pytest.approx([0.1, 0.1, 0.1, 0.15])  # stutter
    assert out[2].kind == "interpolated"  # input frame 1 (a duplicate) is replaced


def test_long_stills_are_not_merged():
    levels = [0.1, 0.2] + [0.3] * 12 + [0.4, 0.5]
    frames = [Frame(torch.full((3, 8, 8), v), Fraction(k, 24)) for k, v in enumerate(levels)]
    report = RetimeReport()
    out = list(retime_stream(frames, blend, dedupe=3.0, dedupe_max_run=8, report=report))
    assert report.duplicates == 0
    got = [round(float(f.image.mean()), 4) for f in out]
    assert got[4:28] == [0.3] * 23 + [0.35]  # the still stays still; only its last gap moves on


# --- real clips ------------------------------------------------------------------------------------


def two_shots(t: float, width: int, height: int) -> np.ndarray:
    """Shot A: the moving test pattern (mean ~0.5); from frame CUT, shot B: a dark, different pattern."""
    if t < CUT - 0.5:
        return pattern(t, width, height)
    return 0.1 + 0.2 * pattern(3 * t + 17, width, height)[:, ::-1, ::-1]


def test_cut_in_a_real_video(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=12, size=(96, 64), picture=two_shots, pix_fmt="yuv444p", lossless=True)
    dst = tmp_path / "out.mp4"
    spy = Spy()
    result = double_video(src, dst, spy, encode=LOSSLESS)
    assert [(c.frame, c.time) for c in result.scene_cuts] == [(CUT, Fraction(CUT, 25))]
    summary = result.to_dict()
    assert summary["scene_cuts"][0]["frame"] == CUT and summary["scene_cuts"][0]["time"] == pytest.approx(0.24)
    assert summary["scene_threshold"] == 10.0
    assert spy.windows and all(len(set(w)) == 1 for w in spy.windows)
    out = [f.rgb.astype(np.int64) for f in decode_frames(dst)]
    assert len(out) == 24 and result.output_duration == result.input_duration
    # the frame between the last of shot A and the first of shot B is the last of shot A
    assert np.abs(out[2 * CUT - 1] - out[2 * (CUT - 1)]).max() <= 256  # of 65535 (YUV rounding)
    assert np.abs(out[2 * CUT - 3] - out[2 * (CUT - 2)]).mean() > 1000  # elsewhere frames are new
    assert packets(src) == packets(dst)

    plain = double_video(src, tmp_path / "plain.mp4", blend, encode=LOSSLESS, scene_threshold=None)
    assert plain.scene_cuts == [] and plain.to_dict()["scene_threshold"] is None
    mixed = [f.rgb.astype(np.int64) for f in decode_frames(tmp_path / "plain.mp4")]
    assert np.abs(mixed[2 * CUT - 1] - mixed[2 * (CUT - 1)]).mean() > 1000  # blended across the cut


def test_cut_with_a_target_rate(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=12, picture=two_shots, pix_fmt="yuv444p", lossless=True)
    spy = Spy()
    result = double_video(src, tmp_path / "out.mp4", spy, encode=LOSSLESS, fps="60")
    assert [c.frame for c in result.scene_cuts] == [CUT] and result.output_frames == 29
    assert all(len(set(w)) == 1 for w in spy.windows)
    out = [f.rgb.astype(np.int64) for f in decode_frames(tmp_path / "out.mp4")]
    before = [n for n in range(29) if Fraction(CUT - 1, 25) <= Fraction(n, 60) < Fraction(CUT, 25)]
    assert len(before) >= 2
    for n in before:  # every output frame in the gap across the cut shows the last frame of shot A
        assert np.abs(out[n] - out[before[0]]).max() <= 256


def on_twos(t: float, width: int, height: int) -> np.ndarray:
    """Flat grey whose level changes every second frame (0.1, 0.1, 0.15, 0.15, ...)."""
    return np.full((height, width, 3), 0.1 + 0.05 * math.floor(t / 2 + 1e-9))


@pytest.fixture
def model(monkeypatch):
    monkeypatch.setattr(cli_double, "load_interpolator", lambda *a, **k: blend)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_cli_dedupe_real_video(tmp_path, model):
    n = 12
    src = make_video(tmp_path / "in.mp4", frames=n, rate=24, picture=on_twos, pix_fmt="yuv444p", lossless=True)
    common = ["--preset", "ultrafast", "--pix-fmt", "yuv444p", "-e", "qp=0", "--json"]
    plain = run("double", src, "-o", tmp_path / "plain.mp4", *common)
    result = run("double", src, "-o", tmp_path / "out.mp4", "--dedupe", *common)
    assert result.exit_code == 0 and plain.exit_code == 0, result.output + plain.output
    summary = json.loads(result.stdout)
    assert summary["duplicates"] == n // 2 and summary["dedupe_threshold"] == 3.0
    assert json.loads(plain.stdout)["duplicates"] == 0
    assert summary["output_frames"] == 2 * n and summary["output_duration"] == summary["input_duration"]
    a, b = video_stream_info(tmp_path / "plain.mp4"), video_stream_info(tmp_path / "out.mp4")
    assert b["times"] == a["times"] == [Fraction(i, 48) for i in range(2 * n)]  # timing preserved
    levels = [float(f.rgb.mean()) / 65535 for f in decode_frames(tmp_path / "out.mp4")]
    for i, level in enumerate(levels):
        assert level == pytest.approx(0.1 + 0.025 * min(i / 2, n - 2), abs=0.005), i  # a smooth ramp
    stutter = [float(f.rgb.mean()) / 65535 for f in decode_frames(tmp_path / "plain.mp4")]
    assert abs(stutter[2] - stutter[0]) < 0.005  # without --dedupe the duplicate stands still
    assert packets(src) == packets(tmp_path / "out.mp4")


def test_cli_no_scene_detect_and_threshold(tmp_path, model):
    src = make_video(tmp_path / "in.mp4", frames=12, picture=two_shots)
    result = run("double", src, "-o", tmp_path / "a.mp4", "--json", "--preset", "ultrafast")
    assert [c["frame"] for c in json.loads(result.stdout)["scene_cuts"]] == [CUT]
    result = run("double", src, "-o", tmp_path / "b.mp4", "--json", "--no-scene-detect", "--preset", "ultrafast")
    summary = json.loads(result.stdout)
    assert summary["scene_cuts"] == [] and summary["scene_threshold"] is None
    result = run("double", src, "-o", tmp_path / "c.mp4", "--json", "--scene-threshold", "90", "--preset", "ultrafast")
    assert json.loads(result.stdout)["scene_cuts"] == []


def test_cli_frames_multi_with_a_cut(tmp_path, model):
    src = tmp_path / "in"
    src.mkdir()
    levels = [0.2, 0.22, 0.24, 0.26, 0.8, 0.78, 0.76, 0.74]
    for i, v in enumerate(levels):
        write_image(src / f"f{i}.png", np.full((24, 32, 3), round(v * 255), np.uint8), "png")
    result = run("frames", src, "-o", tmp_path / "out", "--multi", "4", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["output_frames"] == 29 and summary["multi"] == 4
    assert summary["scene_cuts"] == [{"frame": 4, "time": None, "score": summary["scene_cuts"][0]["score"]}]
    out = [read_image(tmp_path / "out" / f"{i:08d}.png") for i in range(29)]
    for i in range(4):
        assert np.array_equal(out[4 * i], read_image(src / f"f{i}.png"))
    for i in (13, 14, 15):  # between the last image of the first shot and the first of the second
        assert np.array_equal(out[i], out[12])
    assert int(out[1].mean()) == round(0.205 * 255)  # a quarter step inside the shot


@pytest.mark.parametrize("options", [{"multi": 8, "dedupe": 1.0}, {"fps": Fraction(60)}])
def test_retiming_streams_in_bounded_memory(options):
    """300 frames with cuts and duplicates: the input is read only a few frames ahead of the output, and
    input pictures are let go once no output frame can need them."""
    import weakref

    alive: set[int] = set()
    pulled = [0]

    def drawing(k: int) -> tuple[str, int]:  # shot A on twos, shot B (dark, different) on threes
        return ("A", k // 2) if (k // 50) % 2 == 0 else ("B", k // 3)

    def frames():
        for k in range(300):
            shot, step = drawing(k)
            if shot == "A":
                picture = pattern(step, 32, 32)
            else:
                picture = 0.05 + 0.15 * pattern(3 * step + 17, 32, 32)[:, ::-1, ::-1]
            image = torch.from_numpy(np.ascontiguousarray(picture.transpose(2, 0, 1))).float()
            alive.add(k)
            weakref.finalize(image, alive.discard, k)
            pulled[0] += 1
            yield Frame(image, Fraction(k, 25), Fraction(1, 25))

    report = RetimeReport()
    most_alive = 0
    for frame in retime_stream(frames(), blend, scene_threshold=10.0, report=report, **options):
        input_index = int(frame.time * 25)
        assert pulled[0] - input_index <= 3 * 7 + 1  # a few keys of look-ahead (runs of up to 3 frames)
        most_alive = max(most_alive, len(alive))
        del frame
    assert [c.frame for c in report.cuts] == [50, 100, 150, 200, 250]
    repeats = sum(1 for k in range(1, 300) if drawing(k) == drawing(k - 1))
    assert report.duplicates == (repeats if "dedupe" in options else 0)
    assert most_alive <= 20

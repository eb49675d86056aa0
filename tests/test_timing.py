"""vfi_mini.timing and the --multi / --fps contracts: rate parsing, dyadic placement, a simulated two-hour
film without drift, and real encoded clips converted 25 -> 60, 24000/1001 -> 60000/1001 and 4x."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from media import make_video, packets, video_stream_info

import vfi_mini.cli.double as cli_double
from vfi_mini.cli import cli
from vfi_mini.errors import UsageError
from vfi_mini.io.video import EncodeOptions, decode_frames
from vfi_mini.pipeline import Frame, double_video, retime_stream
from vfi_mini.timing import Span, grid_length, nearest_dyadic, parse_rate, plan_fps, plan_multi

FAST = EncodeOptions(preset="ultrafast")
LOSSLESS = EncodeOptions(preset="ultrafast", pix_fmt="yuv444p", options={"qp": "0"})
NTSC_FILM, NTSC_60 = Fraction(24000, 1001), Fraction(60000, 1001)


def blend(window: torch.Tensor) -> torch.Tensor:
    return (window[:, 1] + window[:, 2]) / 2


# --- rates ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,rate",
    [
        ("60", Fraction(60)),
        ("59.94", NTSC_60),
        ("29.97", Fraction(30000, 1001)),
        ("23.976", NTSC_FILM),
        ("23.98", NTSC_FILM),
        ("60000/1001", NTSC_60),
        (" 30000:1001 ", Fraction(30000, 1001)),
        ("ntsc", Fraction(30000, 1001)),
        ("NTSC", Fraction(30000, 1001)),
        ("pal", Fraction(25)),
        ("film", Fraction(24)),
        ("ntsc-film", NTSC_FILM),
        ("25.0", Fraction(25)),
        ("12.5", Fraction(25, 2)),  # not near an NTSC rate: kept exactly
        ("50/2", Fraction(25)),
    ],
)
def test_parse_rate(text, rate):
    assert parse_rate(text) == rate
    assert isinstance(parse_rate(text), Fraction)


def test_parse_rate_numbers():
    assert parse_rate(59.94) == NTSC_60 and parse_rate(48) == 48 and parse_rate(Fraction(5, 2)) == Fraction(5, 2)


@pytest.mark.parametrize("text", ["abc", "0", "-5", "1/0", "inf", "nan", "", "60fps"])
def test_parse_rate_rejects(text):
    with pytest.raises(UsageError, match="frame rate"):
        parse_rate(text)


def test_nearest_dyadic_is_nearest():
    for depth in (1, 2, 3, 4):
        grid = [Fraction(q, 2**depth) for q in range(2**depth + 1)]
        for num in range(0, 97):
            f = Fraction(num, 96)
            got = nearest_dyadic(f, depth)
            best = min(abs(g - f) for g in grid)
            assert got in grid and abs(got - f) == best, (f, depth, got)
            assert abs(got - f) <= Fraction(1, 2 ** (depth + 1))
    assert nearest_dyadic(Fraction(1, 16), 3) == Fraction(1, 8)  # halves round up


def test_grid_length():
    assert grid_length(Fraction(2, 5), Fraction(60)) == 24
    assert grid_length(9 / NTSC_FILM, NTSC_60) == 23  # 22.5 frames: the last one is cut short
    assert grid_length(10 / NTSC_FILM, NTSC_60) == 25


# --- planning ------------------------------------------------------------------------------------------


def _spans(times: list[Fraction], end: Fraction, cuts: set[int] = frozenset()) -> list[Span]:
    n = len(times)
    return [
        Span(k, t, times[k + 1] if k + 1 < n else end, (t,), k + 1 < n and k not in cuts, k == n - 1)
        for k, t in enumerate(times)
    ]


def test_plan_multi_variable_rate_and_cut():
    times = [Fraction(0), Fraction(1, 10), Fraction(3, 10)]
    slots = list(plan_multi(_spans(times, Fraction(4, 10), cuts={1}), 4, 2))
    assert len(slots) == 12
    assert [s.time for s in slots] == [Fraction(i, 40) for i in range(4)] + [
        Fraction(1, 10) + Fraction(i, 20) for i in range(4)
    ] + [Fraction(3, 10) + Fraction(i, 40) for i in range(4)]
    assert [s.position for s in slots[:4]] == [0, Fraction(1, 4), Fraction(1, 2), Fraction(3, 4)]
    assert [s.position for s in slots[4:8]] == [1, 1, 1, 1]  # across the cut: the frame before it
    assert [s.position for s in slots[8:]] == [2, 2, 2, 2]  # held end
    assert sum(s.duration for s in slots) == Fraction(4, 10)


def test_plan_fps_two_hour_film_without_drift():
    """24000/1001 -> 60000/1001 over two hours (172,627 input frames): every output frame sits at exactly
    n / rate, shows a picture within 1/16 of an input interval (far below half an output frame) of its time,
    and the last frame ends exactly where the input does."""
    n_in = round(7200 * NTSC_FILM)
    starts = [Fraction(k * 1001, 24000) for k in range(n_in + 1)]
    duration = starts[-1]
    spans = (Span(k, starts[k], starts[k + 1], (starts[k],), k < n_in - 1, k == n_in - 1) for k in range(n_in))
    n = 0
    worst = 0.0
    last = None
    for slot in plan_fps(spans, NTSC_60):
        t = slot.time
        assert t.numerator * 60000 == n * 1001 * t.denominator  # exactly n * 1001 / 60000
        if slot.key == n_in - 1:  # after the last input frame: held, by the duration contract
            assert slot.frac == 0
        else:
            content = slot.key + float(slot.frac)  # in input frames
            worst = max(worst, abs(0.4 * n - content))
        last = slot
        n += 1
    assert n == grid_length(duration, NTSC_60) == math.ceil(n_in * 2.5)
    assert last is not None and last.time + last.duration == duration
    assert worst <= 1 / 16 + 1e-9  # the documented bound, in input frame intervals
    assert worst / NTSC_FILM < 1 / (2 * NTSC_60)  # less than half an output frame, in seconds


def test_retime_stream_fps_needs_times():
    frames = [Frame(torch.zeros(3, 4, 4)) for _ in range(3)]
    with pytest.raises(UsageError, match="timed"):
        list(retime_stream(frames, blend, fps=Fraction(60)))
    with pytest.raises(UsageError, match="power of two"):
        list(retime_stream(frames, blend, multi=3))


def test_multi_4_recursive_midpoints_on_tensors():
    """Level values reveal positions: with a blend model, position x of a linear ramp has value x / 10."""
    frames = [Frame(torch.full((3, 2, 2), k / 10), Fraction(k, 25), Fraction(1, 25)) for k in range(5)]
    seen = []

    def spy(window):
        seen.append(window[:, :, 0, 0, 0].mul(40).round().int().tolist())
        return blend(window)

    out = list(retime_stream(frames, spy, multi=4))
    assert len(out) == 20
    assert [f.time for f in out] == [Fraction(i, 100) for i in range(20)]
    values = [round(float(f.image[0, 0, 0]) * 40) for f in out]
    assert values == list(range(17)) + [16, 16, 16]  # quarters of the ramp, then the held end
    windows = [w for batch in seen for w in batch]
    assert [0, 4, 8, 12] in windows and [0, 0, 2, 4] in windows  # 1/4 from (-1/2 -> 0, 0, 1/2, 1)


# --- real files ----------------------------------------------------------------------------------------


def ramp(t: float, width: int, height: int) -> np.ndarray:
    """A flat grey whose level grows linearly with time (0.08 per frame): a blend model makes exactly the
    level of the position it is asked for, so output levels reveal the positions chosen."""
    return np.full((height, width, 3), 0.1 + 0.08 * t)


@pytest.mark.parametrize(
    "rate,target,frames,expected",
    [
        (Fraction(25), "60", 10, 24),
        (NTSC_FILM, "60000/1001", 10, 25),
        (NTSC_FILM, "59.94", 9, 23),  # 22.5 frames of 60000/1001: the last one is cut short
    ],
)
def test_fps_conversion_of_a_real_video(tmp_path, rate, target, frames, expected):
    src = make_video(tmp_path / "in.mp4", frames=frames, rate=rate, picture=ramp, pix_fmt="yuv444p", lossless=True)
    dst = tmp_path / "out.mp4"
    result = double_video(src, dst, blend, fps=target, encode=LOSSLESS)
    out_rate = parse_rate(target)
    duration = frames / rate
    info = video_stream_info(dst)
    assert result.output_frames == info["frames"] == expected == grid_length(duration, out_rate)
    assert result.output_rate == out_rate and info["guessed_rate"] == out_rate
    assert result.input_duration == result.output_duration == duration == info["duration"]
    assert info["times"] == [n / out_rate for n in range(expected)]  # exact, no drift
    assert packets(src) == packets(dst)  # audio untouched
    assert result.to_dict()["multi"] is None and result.to_dict()["output_rate"] == str(out_rate)
    levels = [float(f.rgb[..., 1].mean()) / 65535 for f in decode_frames(dst)]
    for n, level in enumerate(levels):
        position = min(float(n / out_rate * rate), frames - 1)  # in input frames; the end is held
        assert abs(level - (0.1 + 0.08 * position)) < 0.08 / 16 + 0.006, (n, level, position)


def test_multi_4_real_video(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=6, rate=Fraction(30000, 1001))
    dst = tmp_path / "out.mp4"
    result = double_video(src, dst, blend, multi=4, encode=FAST)
    a, b = video_stream_info(src), video_stream_info(dst)
    assert result.output_frames == b["frames"] == 24
    assert result.output_rate == Fraction(120000, 1001) == b["average_rate"] == b["guessed_rate"]
    assert result.output_duration == result.input_duration == Fraction(6 * 1001, 30000) == b["duration"]
    assert b["times"][0::4] == a["times"]
    step = Fraction(1001, 30000)
    assert b["times"] == [k * step + i * step / 4 for k in range(6) for i in range(4)]
    assert packets(src) == packets(dst)


# --- CLI -----------------------------------------------------------------------------------------------


@pytest.fixture
def model(monkeypatch):
    monkeypatch.setattr(cli_double, "load_interpolator", lambda *a, **k: blend)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_cli_fps_and_multi(tmp_path, model):
    src = make_video(tmp_path / "in.mp4", frames=8, rate=NTSC_FILM)
    result = run("double", src, "-o", tmp_path / "a.mp4", "--fps", "ntsc", "--json", "--preset", "ultrafast")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["output_rate"] == "30000/1001" and summary["output_frames"] == 10
    assert summary["input_duration"] == summary["output_duration"]
    result = run("double", src, "-o", tmp_path / "b.mp4", "-m", "8", "--json", "--preset", "ultrafast")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["output_frames"] == 64 and summary["output_rate"] == "192000/1001" and summary["multi"] == 8


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--fps", "sixty"], "invalid frame rate"),
        (["--fps", "0"], "positive"),
        (["--multi", "3"], "'3' is not one of"),
        (["--fps", "60", "--multi", "4"], "exclude each other"),
    ],
)
def test_cli_bad_rate_options(tmp_path, model, args, fragment):
    src = make_video(tmp_path / "in.mp4", frames=2, audio=False)
    result = run("double", src, "-o", tmp_path / "out.mp4", *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "out.mp4").exists()

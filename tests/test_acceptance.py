"""Acceptance check of issue 7 ("How we will check it"): one hostile little video (a hard scene cut, a run of
exactly duplicated frames, variable frame timing, 10-bit 4:2:2, BT.2020 PQ limited-range tags, a rotation,
two different audio tracks; Matroska with subtitles, and MP4) through `vfi-mini double` as 2x, as
`--multi 4 --dedupe` and as `--fps 60000/1001 --dedupe`. Every output is checked against the README's
contracts: exact frame count, timestamps, duration, pixel format, colour tags, rotation, audio packets, the
cut in `--json` and nothing blended across it.

The model is the blend of the CLI tests (`test_cli_double.Blend`), here also recording which shot each
frame of each window comes from; outputs are encoded losslessly (``-e qp=0``) so pictures can be compared.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from media import audio_streams_info, decode_rgb, make_video, packets, pattern, video_stream_info
from test_cli_double import Blend
from test_formats import BT2020_PQ, TWO_TRACKS

import vfi_mini.cli.double as cli_double
from vfi_mini.cli import cli

N, CUT, DUP = 30, 16, 6  # frames; first frame of shot B; frames DUP + 1 and DUP + 2 repeat frame DUP
STEPS_MS = (40, 32, 48, 40, 40, 32, 48, 40)  # variable timing; multiples of 8 ms, so that quarters of every
# interval are whole milliseconds (Matroska's resolution) and 2x / 4x times are exact in both containers
TIMES = [Fraction(sum(STEPS_MS[i % len(STEPS_MS)] for i in range(k)), 1000) for k in range(N)]
LAST_STEP = TIMES[-1] - TIMES[-2]  # the last frame lasts as long as the interval before it (and 1/25 s)
END = TIMES[-1] + LAST_STEP
NOMINAL = Fraction(25)
NTSC_60 = Fraction(60000, 1001)
SHOT_A, SHOT_B = 0.5, 0.2  # mean level of the two shots' pictures
ROTATION = 90
CLI_LOSSLESS = ("--preset", "ultrafast", "-e", "qp=0", "--threads", "1")

MODES = {  # name: (extra CLI options, how many output frames per input interval, or None for --fps)
    "double": ((), 2),
    "multi4-dedupe": (("--multi", "4", "--dedupe"), 4),
    "fps-ntsc60-dedupe": (("--fps", "60000/1001", "--dedupe"), None),
}


def drawing(k: int) -> int:
    """The picture input frame k shows: motion pauses on frame DUP for three frames, then goes on."""
    return k if k <= DUP else max(DUP, k - 2)


def picture(t: float, width: int, height: int) -> np.ndarray:
    """Shot A: the moving test pattern (mean 0.5); from frame CUT, shot B: a dark, mirrored, faster one."""
    k = int(np.argmin([abs(float(x * NOMINAL) - t) for x in TIMES]))  # `make_video` passes t = time x 25
    d = drawing(k)
    if k < CUT:
        return pattern(d, width, height)
    return 0.1 + 0.2 * pattern(3 * d + 17, width, height)[:, ::-1, ::-1]


def shot_of(image: np.ndarray | torch.Tensor) -> str:
    """'A', 'B', or 'blend' for a picture halfway between the two shots' levels."""
    level = float(image.mean())
    return "A" if level > 0.4 else "B" if level < 0.3 else "blend"


class ShotSpy(Blend):
    """The CLI tests' blend, recording the shot of every frame of every window the model is given."""

    def __init__(self) -> None:
        super().__init__()
        self.windows: list[list[str]] = []

    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        self.windows += [[shot_of(frame) for frame in w] for w in window]
        return super().__call__(window)


def video_end(path) -> Fraction:
    """End of the video stream as stored: the latest packet time plus its duration (seconds)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return max((p.pts + p.duration) * stream.time_base for p in container.demux(stream) if p.size)


def expected_times(per_interval: int | None) -> list[Fraction]:
    """The README's timing contract for this input: `multi` evenly spaced frames from each input frame to
    the next (the last one held up to the end), or the constant 60000/1001 grid ``t0 + n / rate``."""
    if per_interval is None:
        return [TIMES[0] + n / NTSC_60 for n in range(math.ceil((END - TIMES[0]) * NTSC_60))]
    bounds = [*TIMES, END]
    return [a + i * (b - a) / per_interval for a, b in zip(bounds, bounds[1:]) for i in range(per_interval)]


@pytest.fixture(scope="module", params=["mkv", "mp4"])
def source(request, tmp_path_factory):
    ext = request.param
    src = make_video(
        tmp_path_factory.mktemp(ext) / f"in.{ext}",
        times=TIMES,
        rate=NOMINAL,
        pix_fmt="yuv422p10le",
        colour=BT2020_PQ,
        rotation=ROTATION,
        audio_tracks=TWO_TRACKS,
        subtitles=ext == "mkv",
        lossless=True,
        picture=picture,
    )
    info = video_stream_info(src)
    # The input is what the test claims: VFR times, the tags, exact duplicates, two shots.
    assert info["times"] == TIMES and video_end(src) == END
    assert info["pix_fmt"] == "yuv422p10le" and info["rotation"] == ROTATION
    assert {k: info[k] for k in BT2020_PQ} == BT2020_PQ
    frames = decode_rgb(src)
    assert np.array_equal(frames[DUP], frames[DUP + 1]) and np.array_equal(frames[DUP], frames[DUP + 2])
    assert [shot_of(f) for f in frames] == ["A"] * CUT + ["B"] * (N - CUT)
    return src, info, frames


@pytest.fixture
def spy(monkeypatch):
    model = ShotSpy()
    monkeypatch.setattr(cli_double, "load_interpolator", lambda *a, **k: model)
    return model


@pytest.mark.parametrize("mode", MODES)
def test_hostile_video_through_double(source, spy, tmp_path, mode):
    src, src_info, src_frames = source
    options, per_interval = MODES[mode]
    dst = tmp_path / f"out{src.suffix}"
    result = CliRunner().invoke(
        cli, ["double", str(src), "-o", str(dst), "--json", *CLI_LOSSLESS, *options], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    times = expected_times(per_interval)

    # Frame count: 2N, 4N, or ceil(duration x 60000/1001) = 72; the duration is the input's.
    assert summary["input_frames"] == N
    assert summary["output_frames"] == len(times) == {2: 2 * N, 4: 4 * N, None: 72}[per_interval]
    if per_interval is None:
        assert summary["output_rate"] == "60000/1001" and summary["multi"] is None
    else:
        assert Fraction(summary["output_rate"]) == per_interval * Fraction(summary["input_rate"])
        assert summary["multi"] == per_interval
    assert summary["input_duration"] == summary["output_duration"] == round(float(END), 6)
    info = video_stream_info(dst)
    assert info["frames"] == len(times) and video_end(dst) == END

    # Timestamps: each input frame keeps its time and new frames sit evenly between the VFR neighbours
    # (midway for 2x); --fps: a constant 1001/60000 step from the first frame. Matroska stores
    # milliseconds, so there the 60000/1001 grid reads back rounded to the nearest one.
    assert all(a < b for a, b in zip(info["times"], info["times"][1:]))
    if per_interval is None and src.suffix == ".mkv":
        assert all(abs(got - want) <= Fraction(1, 2000) for got, want in zip(info["times"], times, strict=True))
    else:
        assert info["times"] == times
    if per_interval is not None:
        assert info["times"][::per_interval] == TIMES
    if per_interval == 2:
        mids = [(a + b) / 2 for a, b in zip(TIMES, TIMES[1:])] + [TIMES[-1] + LAST_STEP / 2]
        assert info["times"][1::2] == mids

    # Pixels, colours and rotation as in the input.
    assert summary["pix_fmt"] == info["pix_fmt"] == "yuv422p10le"
    for key in ("colorspace", "color_primaries", "color_trc", "color_range", "rotation"):
        assert info[key] == src_info[key], key
    assert (info["width"], info["height"]) == (src_info["width"], src_info["height"])

    # Both audio tracks (and the subtitles) copied packet for packet, in order, with their tags.
    assert summary["audio_streams_copied"] == 2 and summary["audio_streams_reencoded"] == 0
    assert audio_streams_info(dst) == audio_streams_info(src)
    for index in range(2):
        assert packets(dst, "audio", index) == packets(src, "audio", index)
    assert info["stream_types"] == src_info["stream_types"]
    if src.suffix == ".mkv":
        assert summary["subtitle_streams_copied"] == 1
        assert packets(dst, "subtitles") == packets(src, "subtitles")

    # The cut: reported, no window reaching across it, no blended picture, and the new frames between the
    # last frame of shot A and the first of shot B repeat the last frame of shot A.
    cuts = summary["scene_cuts"]
    assert [(c["frame"], c["time"]) for c in cuts] == [(CUT, float(TIMES[CUT]))] and cuts[0]["score"] >= 10
    assert spy.windows and all(len(set(w)) == 1 and w[0] != "blend" for w in spy.windows)
    out = decode_rgb(dst)
    assert [shot_of(f) for f in out] == ["A" if t < TIMES[CUT] else "B" for t in times]
    gap = [n for n, t in enumerate(times) if TIMES[CUT - 1] <= t < TIMES[CUT]]
    assert len(gap) == {2: 2, 4: 4, None: 3}[per_interval]
    assert all(np.array_equal(out[n], out[gap[0]]) for n in gap)
    assert np.abs(out[gap[0]] - src_frames[CUT - 1]).max() < 0.01  # 10-bit 4:2:2 round trip

    # Duplicates: without --dedupe the repeated frames stand still (the default); with it they count as
    # one frame held longer and the motion goes on through them, at the same times.
    run = [n for n, t in enumerate(times) if TIMES[DUP] <= t < TIMES[DUP + 3]]
    if "--dedupe" in options:
        assert summary["duplicates"] == 2 and summary["dedupe_threshold"] == 3.0
        assert all(not np.array_equal(out[a], out[b]) for a, b in zip(run, run[1:]))
    else:
        assert summary["duplicates"] == 0 and summary["dedupe_threshold"] is None
        still = [n for n in run if times[n] <= TIMES[DUP + 2]]
        assert all(np.array_equal(out[n], out[still[0]]) for n in still)
    if per_interval is not None:  # input frames other than the merged duplicates are shown at their times
        for k in (0, CUT - 1, CUT, N - 1):
            assert np.abs(out[per_interval * k] - src_frames[k]).max() < 0.01, k

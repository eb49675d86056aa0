"""Conversion in segments: `--resume` after an interruption and one video split across torchrun ranks.

The model is a fixed mix of all four frames of its window, so a window at a segment boundary that used
the wrong neighbours would change the result; segmented and one-pass outputs are compared frame for frame
through a lossless encoder (libx264 at qp 0), with their timestamps and JSON summaries.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from media import decode_rgb, make_video, packets, pattern, video_stream_info

import vfi_mini.cli.double as cli_double
from vfi_mini.cli import cli
from vfi_mini.errors import ProcessingError, UsageError
from vfi_mini.io.video import EncodeOptions, PacketIndex
from vfi_mini.pipeline import double_video
from vfi_mini.segments import CONTEXT_FRAMES, Segment, Shard, plan_segments, work_dir_for

LOSSLESS = EncodeOptions(codec="libx264", preset="ultrafast", options={"qp": "0"})
CLI_LOSSLESS = ("--preset", "ultrafast", "-e", "qp=0", "--threads", "1")
GOP = {"g": "5", "keyint_min": "5", "sc_threshold": "0"}  # an input keyframe every 5 frames (0.2 s)


class Mix:
    """A deterministic stand-in for the model that uses every frame of its window."""

    device = torch.device("cpu")

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.calls = 0
        self.interrupt_at = interrupt_at

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.interrupt_at is not None and self.calls >= self.interrupt_at:
            raise KeyboardInterrupt
        return (0.1 * w[:, 0] + 0.4 * w[:, 1] + 0.4 * w[:, 2] + 0.1 * w[:, 3]).clamp(0, 1)


def two_cuts(t: float, width: int, height: int) -> np.ndarray:
    """Three shots; the cuts (frames 6 and 11) sit one frame after a keyframe and just before one."""
    if t >= 11:
        return 1 - pattern(2 * t + 50, width, height)
    if t >= 6:
        return pattern(t + 30, width, height)[::-1].copy()
    return pattern(t, width, height)


def assert_same_video(a: Path, b: Path) -> None:
    frames_a, frames_b = decode_rgb(a), decode_rgb(b)
    assert len(frames_a) == len(frames_b)
    assert all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b))
    info_a, info_b = video_stream_info(a), video_stream_info(b)
    assert info_a == info_b  # timestamps, rate, duration, colour tags, rotation, stream types
    assert packets(a) == packets(b)  # audio copied the same way


def summary(result) -> dict:
    d = result.to_dict()
    for key in ("output", "seconds", "fps", "segments"):
        d.pop(key, None)
    return d


# -- planning ------------------------------------------------------------------------------------------


def test_plan_segments_splits_at_keyframes_with_context():
    index = PacketIndex(Fraction(1, 25), np.arange(100), np.arange(0, 100, 10))  # a keyframe every 0.4 s
    segments = plan_segments(index, 1.0)
    starts = [Fraction(30, 25), Fraction(60, 25), Fraction(90, 25)]  # the first keyframes 1 s or more apart
    assert [s.index for s in segments] == [0, 1, 2, 3]
    assert [s.start for s in segments] == [None, *starts]
    assert [s.end for s in segments] == [*starts, None]
    assert [s.context_start for s in segments] == [None] + [x - Fraction(CONTEXT_FRAMES, 25) for x in starts]
    whole = [Segment(0, None, None, None)]
    assert plan_segments(None, 1.0) == plan_segments(index, 100.0) == whole
    with pytest.raises(UsageError):
        plan_segments(index, 0)


def test_shard_from_env_and_device():
    assert Shard.from_env({}) == Shard(0, 1, 0)
    assert Shard.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Shard(3, 4, 1)
    assert [i for i in range(7) if Shard(1, 3).mine(i)] == [1, 4]
    for bad in ({"RANK": "2", "WORLD_SIZE": "2"}, {"WORLD_SIZE": "two"}):
        with pytest.raises(UsageError):
            Shard.from_env(bad)
    assert Shard(0, 1).device("auto") == "auto" and Shard(1, 2, 1).device("cpu") == "cpu"
    expected = "cuda:1" if torch.cuda.is_available() else "auto"
    assert Shard(1, 2, 1).device("auto") == expected


# -- segments equal one pass -----------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"multi": 4}, {"fps": "60000/1001"}], ids=["double", "multi4", "fps"])
def test_segments_join_to_the_one_pass_result(tmp_path, options):
    src = make_video(tmp_path / "in.mp4", frames=18, picture=two_cuts, encoder_options=GOP)
    one = double_video(src, tmp_path / "one.mp4", Mix(), encode=LOSSLESS, **options)
    assert [c.frame for c in one.scene_cuts] == [6, 11]
    seg = double_video(src, tmp_path / "seg.mp4", Mix(), encode=LOSSLESS, resume=True, segment_seconds=0.2, **options)
    assert seg.segments["count"] == 4 and seg.segments["converted"] == [0, 1, 2, 3] and seg.segments["joined"]
    assert_same_video(tmp_path / "one.mp4", tmp_path / "seg.mp4")
    assert summary(seg) == summary(one)  # frame counts, durations, cuts (global frame numbers)
    assert not work_dir_for(tmp_path / "seg.mp4").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "one.mp4", "seg.mp4"]


def test_segments_keep_variable_timing_subtitles_and_rotation_in_matroska(tmp_path):
    times = [Fraction(i, 25) + (Fraction(1, 100) if i % 3 == 1 else 0) for i in range(16)]
    src = make_video(tmp_path / "in.mkv", times=times, subtitles=True, rotation=90, encoder_options=GOP)
    double_video(src, tmp_path / "one.mkv", Mix(), encode=LOSSLESS)
    seg = double_video(src, tmp_path / "seg.mkv", Mix(), encode=LOSSLESS, resume=True, segment_seconds=0.1)
    assert seg.segments["count"] == 4 and seg.subtitles_copied == 1
    assert_same_video(tmp_path / "one.mkv", tmp_path / "seg.mkv")


# -- resume ----------------------------------------------------------------------------------------------


@pytest.fixture
def mix(monkeypatch):
    """The CLI's model is `mix["model"]` (replace it between runs)."""
    holder = {"model": Mix()}
    monkeypatch.setattr(cli_double, "load_interpolator", lambda *a, **k: holder["model"])
    return holder


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_resume_after_an_interruption_continues_and_gives_the_same_result(tmp_path, mix):
    src = make_video(tmp_path / "in.mp4", frames=20, encoder_options=GOP)
    one_model = Mix()
    double_video(src, tmp_path / "one.mp4", one_model, encode=LOSSLESS)
    assert one_model.calls == 19  # one window per gap

    dst = tmp_path / "out.mp4"
    args = ("double", src, "-o", dst, "--resume", "--segment-seconds", "0.2", "--json", *CLI_LOSSLESS)
    mix["model"] = Mix(interrupt_at=12)  # Ctrl-C in the middle of the third segment
    result = run(*args)
    assert result.exit_code == 130 and result.stderr.strip().splitlines() == ["vfi-mini: interrupted"]
    work = work_dir_for(dst)
    assert not dst.exists() and [p.name for p in tmp_path.iterdir() if ".vfi-tmp-" in p.name] == []
    assert sorted(p.name for p in work.iterdir()) == [
        "manifest.json",
        "seg-00000.json",
        "seg-00000.mp4",
        "seg-00001.json",
        "seg-00001.mp4",
    ]

    mix["model"] = resumed = Mix()
    result = run(*args)
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["segments"]["reused"] == [0, 1] and d["segments"]["converted"] == [2, 3]
    assert resumed.calls == 19 - 10  # the 10 gaps of the first two segments are not made again
    assert d["input_frames"] == 20 and d["output_frames"] == 40 and d["output_duration"] == 0.8
    assert_same_video(tmp_path / "one.mp4", dst)
    assert not work.exists()


_SLOW_DRIVER = """
import sys, time
import torch
import vfi_mini.cli.double as d

class Slow:
    device = torch.device("cpu")

    def __call__(self, w):
        time.sleep(0.1)
        return (0.1 * w[:, 0] + 0.4 * w[:, 1] + 0.4 * w[:, 2] + 0.1 * w[:, 3]).clamp(0, 1)

d.load_interpolator = lambda *a, **k: Slow()
from vfi_mini.cli import cli
cli.main(args=sys.argv[1:], prog_name="vfi-mini")
"""


def test_resume_after_the_process_was_killed(tmp_path, mix):
    """SIGKILL (a crash, a power cut: nothing is cleaned up) after two segments; --resume finishes the job."""
    src = make_video(tmp_path / "in.mp4", frames=20, encoder_options=GOP)
    dst = tmp_path / "out.mp4"
    args = ["double", str(src), "-o", str(dst), "--resume", "--segment-seconds", "0.2", *CLI_LOSSLESS]
    driver = tmp_path / "driver.py"
    driver.write_text(_SLOW_DRIVER)
    proc = subprocess.Popen([sys.executable, str(driver), *args], stderr=subprocess.PIPE, text=True, env=_env())
    record = work_dir_for(dst) / "seg-00001.json"
    deadline = time.monotonic() + 120
    while not record.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()
    proc.communicate(timeout=60)
    assert record.exists() and proc.returncode == -signal.SIGKILL and not dst.exists()

    mix["model"] = Mix()
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    reused = json.loads(result.stdout)["segments"]["reused"]
    assert reused[:2] == [0, 1] and json.loads(result.stdout)["segments"]["converted"] == list(range(len(reused), 4))
    double_video(src, tmp_path / "one.mp4", Mix(), encode=LOSSLESS)
    assert_same_video(tmp_path / "one.mp4", dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["driver.py", "in.mp4", "one.mp4", "out.mp4"]


def test_resume_refuses_the_segments_of_another_conversion(tmp_path, mix):
    src = make_video(tmp_path / "in.mp4", frames=12, encoder_options=GOP)
    dst = tmp_path / "out.mp4"
    args = ("double", src, "-o", dst, "--resume", "--segment-seconds", "0.2", *CLI_LOSSLESS)
    mix["model"] = Mix(interrupt_at=7)
    assert run(*args).exit_code == 130
    before = sorted(p.name for p in work_dir_for(dst).iterdir())
    assert "seg-00000.json" in before

    result = run(*args, "--crf", "20")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "another conversion" in lines[0] and "options.crf" in lines[0], lines
    make_video(src, frames=13, encoder_options=GOP)  # the input changed
    result = run(*args)
    assert result.exit_code == 2 and "input." in result.stderr and "delete" in result.stderr
    assert sorted(p.name for p in work_dir_for(dst).iterdir()) == before and not dst.exists()


def test_a_run_without_resume_leaves_the_segments_alone(tmp_path, mix):
    src = make_video(tmp_path / "in.mp4", frames=12, encoder_options=GOP)
    dst = tmp_path / "out.mp4"
    mix["model"] = Mix(interrupt_at=7)
    assert run("double", src, "-o", dst, "--resume", "--segment-seconds", "0.2", *CLI_LOSSLESS).exit_code == 130
    mix["model"] = Mix()
    result = run("double", src, "-o", dst, *CLI_LOSSLESS)
    assert result.exit_code == 0 and "not used without --resume" in result.stderr
    assert dst.exists() and (work_dir_for(dst) / "seg-00000.json").exists()


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (("--dedupe=3",), "--dedupe"),
        (("-o", "OUT.avi"), ".mp4, .mov, .mkv or .webm"),
        (("-o", "-"), "pipes"),
    ],
    ids=["dedupe", "avi", "pipe"],
)
def test_resume_usage_errors(tmp_path, mix, extra, fragment):
    src = make_video(tmp_path / "in.mp4", frames=3, audio=False)
    extra = tuple(str(tmp_path / x) if x.startswith("OUT") else x for x in extra)
    output = () if "-o" in extra else ("-o", tmp_path / "out.mp4")
    result = run("double", src, *output, *extra, "--resume", *CLI_LOSSLESS)
    assert result.exit_code == 2 and fragment in result.stderr and "Traceback" not in result.output
    assert mix["model"].calls == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


# -- ranks -----------------------------------------------------------------------------------------------


def test_rank_0_gives_up_without_the_other_ranks_and_resume_finishes(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=20, encoder_options=GOP)
    dst = tmp_path / "out.mp4"
    with pytest.raises(ProcessingError, match=r"segment\(s\) 1, 3 .* run again with --resume"):
        double_video(src, dst, Mix(), encode=LOSSLESS, segment_seconds=0.2, shard=Shard(0, 2), wait_timeout=0.3)
    assert not dst.exists()
    rest = Mix()
    result = double_video(src, dst, rest, encode=LOSSLESS, segment_seconds=0.2, resume=True)
    assert result.segments["reused"] == [0, 2] and result.segments["converted"] == [1, 3] and rest.calls == 9
    double_video(src, tmp_path / "one.mp4", Mix(), encode=LOSSLESS)
    assert_same_video(tmp_path / "one.mp4", dst)


_DRIVER = """
import sys
import torch
import vfi_mini.cli.double as d

class Mix:
    device = torch.device("cpu")

    def __call__(self, w):
        return (0.1 * w[:, 0] + 0.4 * w[:, 1] + 0.4 * w[:, 2] + 0.1 * w[:, 3]).clamp(0, 1)

d.load_interpolator = lambda *a, **k: Mix()
from vfi_mini.cli import cli
cli.main(args=sys.argv[1:], prog_name="vfi-mini")
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1", **extra}


def test_ranks_share_the_inputs_of_a_batch(tmp_path):
    """Two processes with RANK/WORLD_SIZE (as torchrun sets them): each input is converted exactly once."""
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    srcs = [make_video(tmp_path / f"{name}.mp4", frames=3, audio=False) for name in "abc"]
    out = tmp_path / "out"
    procs = [
        subprocess.Popen(
            [sys.executable, str(driver), "double", *map(str, srcs), "-o", f"{out}/", "--json", *CLI_LOSSLESS],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank)),
        )
        for rank in (0, 1)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
    done = [[Path(json.loads(line)["input"]).name for line in r[0].splitlines()] for r in results]
    assert done == [["a.mp4", "c.mp4"], ["b.mp4"]]
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mp4", "c.mp4"]
    assert all(video_stream_info(out / f"{n}.mp4")["frames"] == 6 for n in "abc")


def test_torchrun_splits_one_video_across_ranks(tmp_path):
    """`torchrun --nproc_per_node 2`: ranks 0 and 1 convert alternate segments, rank 0 joins them, and the
    output equals a one-process run."""
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    src = make_video(tmp_path / "in.mp4", frames=20, picture=two_cuts, encoder_options=GOP)
    dst = tmp_path / "out.mp4"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "0"]
    if shutil.which("torchrun") is None:
        pytest.skip("torchrun is not installed")
    proc = subprocess.run(
        [*launcher, str(driver), "double", str(src), "-o", str(dst), "--segment-seconds", "0.2", "--json"]
        + list(CLI_LOSSLESS),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    lines = {json.loads(line)["segments"]["rank"]: json.loads(line) for line in proc.stdout.splitlines()}
    assert lines[0]["segments"]["converted"] == [0, 2] and lines[0]["segments"]["joined"]
    assert lines[1]["segments"]["converted"] == [1, 3] and lines[1]["status"] == "segments"
    assert lines[0]["output_frames"] == 40 and [c["frame"] for c in lines[0]["scene_cuts"]] == [6, 11]
    double_video(src, tmp_path / "one.mp4", Mix(), encode=LOSSLESS)
    assert_same_video(tmp_path / "one.mp4", dst)
    assert not work_dir_for(dst).exists()

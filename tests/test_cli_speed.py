"""--batch and --cuda-graphs of `double`, `frames` and `bench`: the windows per model call reach the model,
a batch gives the frames of one window at a time (the real network, lossless output, tiled too), and bad
values are one-line usage errors. The CUDA side (pinned copies, graph replay) is tested in
test_interpolator.py under the `gpu` marker."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from media import decode_rgb, make_images, make_video

import vfi_mini.cli.double as cli_double
from vfi_mini.cli import cli
from vfi_mini.interpolator import Interpolator

LOSSLESS = ("--preset", "ultrafast", "--pix-fmt", "yuv444p", "-e", "qp=0", "-q")
REAL_CPU = ("--device", "cpu", "--precision", "fp32", "--threads", "1")


class Blend:
    """A stand-in for `Interpolator` (the mean of the middle frames) that records the windows per call."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.batches: list[int] = []

    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        self.batches.append(window.shape[0])
        return (window[:, 1] + window[:, 2]) / 2


@pytest.fixture
def model(monkeypatch):
    """Replace the model by a `Blend`; returns a dict with the model and the loader's keyword arguments."""
    seen: dict = {"model": Blend()}

    def load(weights, device, precision, threads, **kwargs):
        seen.update(loaded=True, **kwargs)
        return seen["model"]

    monkeypatch.setattr(cli_double, "load_interpolator", load)
    return seen


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _usage_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vfi-mini: error: ") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def _args(command: str, tmp_path) -> list:
    """The positional arguments and output of a run of `command` that would otherwise succeed."""
    if command == "double":
        return [make_video(tmp_path / "in.mp4", frames=3, audio=False), "-o", tmp_path / "out.mp4"]
    if command == "frames":
        make_images(tmp_path / "in", 3)
        return [tmp_path / "in", "-o", tmp_path / "out"]
    return ["--arch", "stmfnet-mini", "--size", "96x64", "--frames", "1", "--pipeline-frames", "0"]


def test_batch_reaches_the_model(tmp_path, model):
    src = make_video(tmp_path / "in.mp4", frames=7, audio=False)
    result = run("double", src, "-o", tmp_path / "a.mp4", "-q", "--preset", "ultrafast")
    assert result.exit_code == 0, result.output
    assert model["model"].batches == [1] * 6 and model["cuda_graphs"] is False  # auto on the CPU: 1
    for batch, device in (("4", "cpu"), ("auto", "cuda")):  # auto on CUDA: 4 (a stand-in, no GPU needed)
        model["model"] = Blend(device)
        result = run("double", src, "-o", tmp_path / f"{batch}.mp4", "-q", "--preset", "ultrafast", "--batch", batch)
        assert result.exit_code == 0, result.output
        assert model["model"].batches[0] == 4 and sum(model["model"].batches) == 6
    make_images(tmp_path / "frames", 5)
    model["model"] = Blend()
    result = run("frames", tmp_path / "frames", "-o", tmp_path / "frames-out", "-q", "--batch", "3")
    assert result.exit_code == 0, result.output
    assert model["model"].batches == [3, 1] and len(list((tmp_path / "frames-out").iterdir())) == 9


@pytest.mark.parametrize("command", ["double", "frames", "bench"])
@pytest.mark.parametrize("value,fragment", [("0", "at least 1"), ("-3", "at least 1"), ("two", "a whole number")])
def test_bad_batch_is_a_one_line_usage_error(tmp_path, model, command, value, fragment):
    result = run(command, *_args(command, tmp_path), f"--batch={value}")
    _usage_error(result, f"--batch must be {fragment}")
    assert "loaded" not in model and not (tmp_path / "out.mp4").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["double", "frames", "bench"])
def test_cuda_graphs_on_the_cpu_is_a_one_line_usage_error(tmp_path, model, command):
    result = run(command, *_args(command, tmp_path), "--device", "cpu", "--cuda-graphs")
    _usage_error(result, "--cuda-graphs needs a CUDA device")
    assert "loaded" not in model and not (tmp_path / "out.mp4").exists() and not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("size,tiling", [((64, 48), ()), ((200, 96), ("--tile", "128"))])
def test_batch_3_gives_the_frames_of_batch_1(tmp_path, monkeypatch, size, tiling):
    """The bundled network in fp32 on the CPU, output encoded losslessly: the same frames whether the model
    gets one window per call or three (in tiles too). A batch changes the order of some float sums in the
    convolutions (differences of about 1e-6), which can move a value across an 8-bit rounding boundary, and
    a one-level step in the encoded YUV can become two in RGB: the frames may differ by at most two levels,
    in a few pixels."""
    tiled: list[int] = []
    run_tiles = Interpolator._run_tiles

    def spy(self, x, plan):
        tiled.append(x.shape[0])
        return run_tiles(self, x, plan)

    monkeypatch.setattr(Interpolator, "_run_tiles", spy)
    src = make_video(tmp_path / "in.mp4", frames=4, size=size, audio=False)
    outs = []
    for batch in ("1", "3"):
        dst = tmp_path / f"batch{batch}.mkv"
        result = run("double", src, "-o", dst, *REAL_CPU, *LOSSLESS, *tiling, "--batch", batch)
        assert result.exit_code == 0, result.output
        outs.append(np.stack(decode_rgb(dst)))
    assert tiled == ([1, 1, 1, 3] if tiling else [])
    assert outs[0].shape == outs[1].shape == (8, size[1], size[0], 3)
    levels = np.abs(np.round(outs[0] * 255) - np.round(outs[1] * 255))
    assert levels.max() <= 2 and (levels > 0).mean() < 0.01, (levels.max(), (levels > 0).mean())


def test_bench_reports_per_frame_figures_for_a_batch(monkeypatch):
    batches: list[int] = []
    interpolate = Interpolator.interpolate

    def spy(self, window):
        batches.append(window.shape[0])
        return interpolate(self, window)

    monkeypatch.setattr(Interpolator, "interpolate", spy)
    common = ["--arch", "stmfnet-mini", "--size", "96x64", "--device", "cpu", "--threads", "1", "--json", "-q"]
    result = run("bench", *common, "--precision", "fp32", "--frames", "2", "--pipeline-frames", "3", "--batch", "2")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout.strip().splitlines()[-1])
    assert r["batch"] == 2 and r["cuda_graphs"] is False and len(r["model_seconds_all"]) == 2
    assert r["pipeline_frames"] == 6 and r["pipeline_fps"] > 0
    assert set(batches) == {2}  # timing, profiling and the pipeline (3 frames: 2 windows) all run 2 a call
    result = run("bench", *common, "--frames", "1", "--pipeline-frames", "0")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["batch"] == 1  # auto on the CPU

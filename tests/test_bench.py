"""`vfi-mini bench`: the JSON report the speed issue names, on the bundled weights and on a random --arch."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from vfi_mini.cli import cli

KEYS = {
    "model_seconds_per_frame",
    "pipeline_fps",
    "peak_rss_mb",
    "cuda_max_allocated_mb",
    "gflops_per_frame",
    "achieved_gflops_per_s",
    "machine_conv_gflops_per_s",
    "device",
    "precision",
    "width",
    "height",
}
SMALL = ["--size", "96x64", "--device", "cpu", "--frames", "1", "--pipeline-frames", "2", "--threads", "1"]


def _bench(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["bench", *args])
    return res.exit_code, res.output


def test_bench_times_the_default_weights_and_reports_every_field():
    code, out = _bench(*SMALL, "--json", "-q")
    assert code == 0, out
    r = json.loads(out.strip().splitlines()[-1])
    assert KEYS <= r.keys()
    assert "stmfnet-mini.safetensors" in r["weights"]  # what `double` runs, not a random model
    assert (r["width"], r["height"], r["device"], r["cuda_max_allocated_mb"]) == (96, 64, "cpu", None)
    assert r["precision"] in ("bf16", "fp32")  # auto: bf16 only on CPUs with native bf16
    assert r["model_seconds_per_frame"] > 0 and r["pipeline_fps"] > 0 and r["peak_rss_mb"] > 0
    # The model runs at the padded size (128x128); at 854x480 (padded 896x512) it is 607.7 GFLOP, 1.32 MFLOP
    # per padded pixel, and FLOPs scale with the pixel count.
    assert 1.2e6 < r["gflops_per_frame"] * 1e9 / (128 * 128) < 1.5e6
    assert r["machine_conv_gflops_per_s"] > 0
    assert 0.9 * r["gflops_per_frame"] < r["conv_gflops_per_frame"] <= r["gflops_per_frame"]  # nearly all convs
    assert 0 < r["conv_seconds_per_frame"] < r["model_seconds_all"][0] * 3
    assert r["conv_gflops_per_s"] == pytest.approx(r["conv_gflops_per_frame"] / r["conv_seconds_per_frame"], 0.01)
    assert abs(r["achieved_gflops_per_s"] - r["gflops_per_frame"] / r["model_seconds_per_frame"]) < 0.01 * (
        r["achieved_gflops_per_s"] + 1
    )


def test_bench_random_arch_and_usage_errors():
    code, out = _bench(*SMALL, "--arch", "stmfnet-mini", "--precision", "fp32", "--pipeline-frames", "0", "--json")
    assert code == 0, out
    r = json.loads(out.strip().splitlines()[-1])
    assert r["weights"] == "random stmfnet-mini" and r["precision"] == "fp32" and r["pipeline_fps"] is None
    code, out = _bench("--weights", "x.pth", "--arch", "stmfnet-mini")
    assert code == 2 and "not both" in out
    code, out = _bench("--size", "big", "--arch", "stmfnet-mini")
    assert code == 2 and "--size" in out and "Traceback" not in out
    code, out = _bench("--arch", "no-such-arch", *SMALL)
    assert code == 2 and "neither a preset" in out

"""`vfi-mini frames`: image sequences through the CLI (blend model), exit codes and output-directory rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from media import make_images

import vfi_mini.cli.double as cli_double
from vfi_mini.cli import cli
from vfi_mini.io.images import read_image


class Blend:
    device = torch.device("cpu")

    def __init__(self, error: type[BaseException] | None = None) -> None:
        self.error = error

    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        if self.error is not None:
            raise self.error("model failed")
        return (window[:, 1] + window[:, 2]) / 2


@pytest.fixture
def model(monkeypatch):
    seen: dict = {"model": Blend()}

    def load(weights, device, precision, threads, **tiling):
        seen.update(loaded=True, **tiling)
        return seen["model"]

    monkeypatch.setattr(cli_double, "load_interpolator", load)
    return seen


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _one_error_line(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vfi-mini: error: ") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_frames_json_and_numbering(tmp_path, model):
    make_images(tmp_path / "in", 12, bits=16)
    result = run("frames", tmp_path / "in", "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["input_frames"] == 12 and summary["output_frames"] == 23
    assert summary["bits"] == 16 and summary["format"] == "png" and summary["device"] == "cpu"
    assert _names(tmp_path / "out") == [f"{i:08d}.png" for i in range(23)]
    # frame10 and frame11 sort after frame9: output 20 is input frame10
    assert np.array_equal(read_image(tmp_path / "out" / "00000020.png"), read_image(tmp_path / "in" / "frame10.png"))
    assert read_image(tmp_path / "out" / "00000001.png").dtype == np.uint16


def test_frames_jpeg_output(tmp_path, model):
    make_images(tmp_path / "in", 3, ext="jpg")
    result = run("frames", tmp_path / "in", "-o", tmp_path / "out", "--format", "jpg", "-q", "--tile", "off")
    assert result.exit_code == 0 and result.stderr == ""
    assert model["tile"] is None and model["tile_overlap"] == 32  # the shared model options reach the loader
    assert _names(tmp_path / "out") == [f"{i:08d}.jpg" for i in range(5)]


def test_frames_output_directory_rules(tmp_path, model):
    make_images(tmp_path / "in", 3)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    _one_error_line(run("frames", tmp_path / "in", "--out", out), 2, "not empty")
    assert "loaded" not in model
    result = run("frames", tmp_path / "in", "--out", out, "-y")
    assert result.exit_code == 0
    assert _names(out) == [f"{i:08d}.png" for i in range(5)] + ["keep.txt"]
    same = run("frames", tmp_path / "in", "--out", tmp_path / "in", "-y")
    _one_error_line(same, 2, "is the input directory")
    (tmp_path / "file").write_text("x")
    _one_error_line(run("frames", tmp_path / "in", "--out", tmp_path / "file", "-y"), 2, "not a directory")


def test_frames_bad_inputs(tmp_path, model):
    _one_error_line(run("frames", tmp_path / "nope", "--out", tmp_path / "out"), 3, "not found")
    (tmp_path / "empty").mkdir()
    _one_error_line(run("frames", tmp_path / "empty", "--out", tmp_path / "out"), 3, "holds no images")
    make_images(tmp_path / "in", 3, size=(48, 32))
    make_images(tmp_path / "other", 1, size=(50, 32), names="zz")
    (tmp_path / "in" / "zz.png").write_bytes((tmp_path / "other" / "zz.png").read_bytes())
    _one_error_line(run("frames", tmp_path / "in", "--out", tmp_path / "out"), 3, "zz.png is 50x32")
    (tmp_path / "in" / "zz.png").write_text("not an image")
    _one_error_line(run("frames", tmp_path / "in", "--out", tmp_path / "out"), 3, "zz.png")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if ".vfi-tmp-" in p.name]


@pytest.mark.parametrize("error,code", [(KeyboardInterrupt, 130), (RuntimeError, 1)])
def test_frames_failure_leaves_nothing(tmp_path, model, error, code):
    make_images(tmp_path / "in", 4)
    before = {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir()}
    model["model"] = Blend(error)
    result = run("frames", tmp_path / "in", "--out", tmp_path / "out")
    assert result.exit_code == code and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if ".vfi-tmp-" in p.name]
    assert {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir()} == before

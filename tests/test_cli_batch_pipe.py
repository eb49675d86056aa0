"""`vfi-mini double` batches (several inputs, an output directory, --skip-existing, one JSON line per file),
pipes (`-` for stdin and stdout, y4m and NUT), and a full disk. The model is a blend stand-in."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from media import make_video
from test_cli_double import Blend, _leftovers

import vfi_mini.io.video as io_video
from vfi_mini.cli import cli

FAST = ("--preset", "ultrafast", "--threads", "1")


@pytest.fixture
def model(monkeypatch):
    """Replace the model by a blend; records that it was loaded."""
    import vfi_mini.cli.double as cli_double

    seen: dict = {}

    def load(*args, **kwargs):
        seen["loaded"] = seen.get("loaded", 0) + 1
        return Blend()

    monkeypatch.setattr(cli_double, "load_interpolator", load)
    return seen


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def y4m_stream(frames: int = 5, rate: Fraction = Fraction(25), size: tuple[int, int] = (64, 48)) -> bytes:
    """A yuv4mpeg stream of a moving gradient, made with PyAV in memory."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            rgb = np.zeros((size[1], size[0], 3), np.uint8)
            rgb[..., 0] = (np.arange(size[0]) * 4 + 20 * i) % 256
            rgb[..., 1] = 128
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def decode_stream(data: bytes) -> tuple[str, Fraction, int]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return container.format.name, Fraction(stream.average_rate), count


# -- batches -----------------------------------------------------------------------------------------


def test_batch_writes_one_output_per_input_and_loads_the_model_once(tmp_path, model):
    a = make_video(tmp_path / "a.mp4", frames=4, audio=False)
    b = make_video(tmp_path / "b.mkv", frames=5, audio=False)
    out = tmp_path / "out"
    result = run("double", a, b, "-o", f"{out}/", "--json", *FAST)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [(d["input"], d["output"], d["status"]) for d in lines] == [
        (str(a), str(out / "a.mp4"), "ok"),
        (str(b), str(out / "b.mkv"), "ok"),
    ]
    assert [d["output_frames"] for d in lines] == [8, 10]
    assert (out / "a.mp4").exists() and (out / "b.mkv").exists()
    assert model["loaded"] == 1


def test_batch_loads_the_model_once(tmp_path, monkeypatch):
    import vfi_mini.cli.double as cli_double

    calls = []
    monkeypatch.setattr(cli_double, "load_interpolator", lambda *a, **k: calls.append(1) or Blend())
    srcs = [make_video(tmp_path / f"{n}.mp4", frames=3, audio=False) for n in "xyz"]
    (tmp_path / "out").mkdir()
    result = run("double", *srcs, "-o", tmp_path / "out", "--ext", "mkv", "-q", *FAST)
    assert result.exit_code == 0, result.output
    assert calls == [1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.mkv", "y.mkv", "z.mkv"]


def test_batch_goes_on_after_a_failure_and_exits_non_zero(tmp_path, model):
    good = make_video(tmp_path / "good.mp4", frames=3, audio=False)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    out = tmp_path / "out"
    out.mkdir()
    result = run("double", bad, good, "-o", out, "--json", *FAST)
    assert result.exit_code == 3, result.output  # the only failure is a bad input
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [d["status"] for d in lines] == ["failed", "ok"]
    assert lines[0]["exit_code"] == 3 and "bad.mp4" in lines[0]["error"]
    assert (out / "good.mp4").exists() and not (out / "bad.mp4").exists()
    assert "Traceback" not in result.stderr
    assert _leftovers(out) == []


def test_batch_mixed_failures_exit_1(tmp_path, model):
    missing = tmp_path / "missing.mp4"
    good = make_video(tmp_path / "good.mp4", frames=3, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "good.mp4").write_bytes(b"old")  # exists, no -y: a usage failure (2) next to an input failure (3)
    result = run("double", missing, good, "-o", out, "--json", *FAST)
    assert result.exit_code == 1, result.output
    codes = [json.loads(line)["exit_code"] for line in result.stdout.strip().splitlines()]
    assert codes == [3, 2]
    assert (out / "good.mp4").read_bytes() == b"old"


def test_batch_skip_existing(tmp_path, model):
    a = make_video(tmp_path / "a.mp4", frames=3, audio=False)
    b = make_video(tmp_path / "b.mp4", frames=3, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.mp4").write_bytes(b"done before")
    result = run("double", a, b, "-o", out, "--skip-existing", "--json", *FAST)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [d["status"] for d in lines] == ["skipped", "ok"]
    assert (out / "a.mp4").read_bytes() == b"done before"


def test_one_input_into_a_directory_and_same_names(tmp_path, model):
    a = make_video(tmp_path / "a.mp4", frames=3, audio=False)
    (tmp_path / "sub").mkdir()
    b = make_video(tmp_path / "sub" / "a.mkv", frames=3, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    result = run("double", a, "-o", out, "-q", *FAST)  # one input, -o a directory: named after the input
    assert result.exit_code == 0, result.output
    assert (out / "a.mp4").exists()
    result = run("double", a, b, "-o", out, "--ext", "mov", "--json", *FAST)
    statuses = [json.loads(line)["status"] for line in result.stdout.strip().splitlines()]
    assert statuses == ["ok", "failed"] and result.exit_code == 2  # both would write out/a.mov


def test_batch_needs_a_directory(tmp_path, model):
    a = make_video(tmp_path / "a.mp4", frames=3, audio=False)
    result = run("double", a, a, "-o", tmp_path / "x.mp4", *FAST)
    assert result.exit_code == 2
    assert "must be a directory" in result.stderr and len(result.stderr.strip().splitlines()) == 1


# -- pipes -------------------------------------------------------------------------------------------


def test_pipe_y4m_in_and_out(model):
    result = run("double", "-", "-o", "-", input=y4m_stream(frames=5, rate=Fraction(25)))
    assert result.exit_code == 0, result.stderr
    fmt, rate, count = decode_stream(result.stdout_bytes)
    assert (fmt, rate, count) == ("yuv4mpegpipe", Fraction(50), 10)


def test_pipe_nut_out_and_json_on_stderr(model):
    result = run("double", "-", "-o", "-", "--format", "nut", "--json", input=y4m_stream(frames=4))
    assert result.exit_code == 0, result.stderr
    fmt, rate, count = decode_stream(result.stdout_bytes)
    assert fmt == "nut" and count == 8 and rate == 50
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    assert summary["output_frames"] == 8 and summary["output"] == "stdout"


def test_pipe_file_to_stdout_and_stdin_to_file(tmp_path, model):
    src = make_video(tmp_path / "in.mp4", frames=4, rate=Fraction(30000, 1001), audio=False)
    result = run("double", src, "-o", "-", "-q")
    assert result.exit_code == 0, result.stderr
    assert decode_stream(result.stdout_bytes) == ("yuv4mpegpipe", Fraction(60000, 1001), 8)
    dst = tmp_path / "out.mkv"
    result = run("double", "-", "-o", dst, "-q", *FAST, input=result.stdout_bytes)
    assert result.exit_code == 0, result.stderr
    with av.open(str(dst)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 16


def test_pipe_y4m_refuses_an_encoder(model):
    result = run("double", "-", "-o", "-", "--codec", "libx264", input=y4m_stream(frames=3))
    assert result.exit_code == 2 and result.stdout_bytes == b""
    assert "--format nut" in result.stderr and len(result.stderr.strip().splitlines()) == 1


_BLEND_DRIVER = """
import sys
import torch
import vfi_mini.cli.double as d

class Blend:
    device = torch.device("cpu")

    def __call__(self, w):
        return (w[:, 1] + w[:, 2]) / 2

d.load_interpolator = lambda *a, **k: Blend()
from vfi_mini.cli import cli
cli.main(args=sys.argv[1:], prog_name="vfi-mini")
"""


def _process(tmp_path: Path, *args: str, stdin: bytes) -> subprocess.CompletedProcess:
    driver = tmp_path / "driver.py"
    driver.write_text(_BLEND_DRIVER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, str(driver), *args], input=stdin, capture_output=True, env=env, timeout=120)


def test_pipe_through_a_real_process(tmp_path):
    proc = _process(tmp_path, "double", "-", "-o", "-", stdin=y4m_stream(frames=6, rate=Fraction(24)))
    assert proc.returncode == 0, proc.stderr.decode()
    assert decode_stream(proc.stdout) == ("yuv4mpegpipe", Fraction(48), 12)


def test_pipe_garbage_on_stdin_is_one_line(tmp_path):
    proc = _process(tmp_path, "double", "-", "-o", "-", stdin=b"this is not a video stream" * 10)
    assert proc.returncode == 3 and proc.stdout == b""
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vfi-mini: error: ") and "stdin" in lines[0]


# -- disk full ---------------------------------------------------------------------------------------


def test_disk_full_is_one_clear_line_and_leaves_nothing(tmp_path, model, monkeypatch):
    src = make_video(tmp_path / "in.mp4", frames=8)
    dst = tmp_path / "out.mp4"
    real_write = io_video.VideoWriter.write

    def write(self, rgb, time, duration=None):
        if self.frames_written == 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(self, rgb, time, duration)

    monkeypatch.setattr(io_video.VideoWriter, "write", write)
    result = run("double", src, "-o", dst, *FAST)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no space left on device" in lines[0] and str(dst) in lines[0], lines
    assert not dst.exists() and _leftovers(tmp_path) == []

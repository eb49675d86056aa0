"""The documented shell pipelines with a real ffmpeg binary (the static build of the `imageio-ffmpeg` wheel,
in the `test` extra): ffmpeg decodes to a y4m or NUT pipe, `vfi-mini double - -o -` converts, another
ffmpeg encodes the result. Skipped where imageio-ffmpeg is not installed.

Each command is its own process joined by OS pipes, as a shell runs
``ffmpeg -i in.mp4 -f yuv4mpegpipe - | vfi-mini double - -o - --format y4m | ffmpeg -f yuv4mpegpipe -i - out.mp4``.
The model is a blend (a driver script replaces the loader, to keep the test fast) except in
the test marked slow, which runs the console entry point with an untrained ST-MFNet Mini checkpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from media import make_video, video_stream_info
from test_cli_batch_pipe import _BLEND_DRIVER

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

ROOT = Path(__file__).resolve().parents[1]
# ffmpeg's side of each pipe: the muxer (and codec) it writes to vfi-mini, the demuxer it reads back with.
PIPES = {
    "y4m": (["-f", "yuv4mpegpipe"], ["-f", "yuv4mpegpipe"]),
    "nut": (["-f", "nut", "-c:v", "rawvideo"], ["-f", "nut"]),
}


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def _blend_vfi_mini(tmp_path: Path) -> list[str]:
    driver = tmp_path / "vfi_mini_blend.py"
    driver.write_text(_BLEND_DRIVER)
    return [sys.executable, str(driver)]


def pipeline(commands: list[list[str]], timeout: float = 300) -> list[tuple[int, str]]:
    """Run `commands` joined stdout -> stdin like a shell pipeline; (exit code, stderr) of each."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs: list[subprocess.Popen] = []
    for i, command in enumerate(commands):
        procs.append(
            subprocess.Popen(
                command,
                stdin=procs[-1].stdout if procs else subprocess.DEVNULL,
                stdout=subprocess.PIPE if i + 1 < len(commands) else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
            )
        )
        if i > 0:
            procs[-2].stdout.close()  # only the next process holds the pipe: a reader that dies is seen
    results = []
    try:
        # Reading stderr one process after another cannot block: each stderr is only a few lines.
        for proc in reversed(procs):
            _, err = proc.communicate(timeout=timeout)
            results.append((proc.returncode, err.decode(errors="replace")))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results[::-1]


def _check(results: list[tuple[int, str]]) -> None:
    for (code, err), name in zip(results, ("ffmpeg (decode)", "vfi-mini", "ffmpeg (encode)")):
        assert code == 0, f"{name} exited with {code}: {err}"


@pytest.mark.parametrize("fmt", ["y4m", "nut"])
def test_ffmpeg_to_vfi_mini_to_ffmpeg(tmp_path, ffmpeg, fmt):
    src = make_video(tmp_path / "in.mp4", frames=5, rate=Fraction(24000, 1001), audio=False)
    dst = tmp_path / "out.mp4"
    mux, demux = PIPES[fmt]
    results = pipeline(
        [
            [ffmpeg, "-v", "error", "-nostdin", "-i", str(src), *mux, "-"],
            [*_blend_vfi_mini(tmp_path), "double", "-", "-o", "-", "--format", fmt, "-q"],
            [ffmpeg, "-v", "error", "-y", *demux, "-i", "-", "-c:v", "libx264", "-preset", "ultrafast", str(dst)],
        ]
    )
    _check(results)
    assert results[1][1] == ""  # -q: nothing but the video, and no message
    info = video_stream_info(dst)
    assert info["frames"] == 10
    assert info["average_rate"] == info["guessed_rate"] == Fraction(48000, 1001)
    assert info["times"] == [i * Fraction(1001, 48000) for i in range(10)]


def test_ffmpeg_y4m_input_keeps_the_aspect_ratio(tmp_path, ffmpeg):
    """ffmpeg writes an anamorphic video's sample aspect ratio into the y4m header (A32:27); a file written
    from that pipe keeps it."""
    src = make_video(tmp_path / "in.mp4", frames=3, size=(72, 48), sar=Fraction(32, 27), audio=False)
    dst = tmp_path / "out.mp4"
    results = pipeline(
        [
            [ffmpeg, "-v", "error", "-nostdin", "-i", str(src), "-f", "yuv4mpegpipe", "-"],
            [*_blend_vfi_mini(tmp_path), "double", "-", "-o", str(dst), "-q", "--preset", "ultrafast"],
        ]
    )
    for code, err in results:
        assert code == 0, err
    info = video_stream_info(dst)
    assert info["frames"] == 6 and info["sample_aspect_ratio"] == Fraction(32, 27)


@pytest.mark.slow
def test_ffmpeg_pipeline_with_the_console_script_and_a_real_network(tmp_path, ffmpeg):
    """The same pipeline through `python -m vfi_mini` (the console entry point) with an untrained
    ST-MFNet Mini checkpoint: the model really runs in the middle process."""
    import torch

    from vfi_mini.models import build_model

    torch.manual_seed(0)
    weights = tmp_path / "mini.pth"
    torch.save({"epoch": 0, "state_dict": build_model("stmfnet-mini").state_dict()}, weights)
    src = make_video(tmp_path / "in.mp4", frames=4, rate=Fraction(25), audio=False)
    dst = tmp_path / "out.mp4"
    vfi = [sys.executable, "-m", "vfi_mini", "double", "-", "-o", "-", "--format", "y4m"]
    results = pipeline(
        [
            [ffmpeg, "-v", "error", "-nostdin", "-i", str(src), "-f", "yuv4mpegpipe", "-"],
            [*vfi, "--weights", str(weights), "--device", "cpu", "--threads", "1"],
            [ffmpeg, "-v", "error", "-y", "-f", "yuv4mpegpipe", "-i", "-", "-c:v", "libx264", str(dst)],
        ]
    )
    _check(results)
    assert "4 -> 8 frames" in results[1][1]  # the summary line, on stderr
    info = video_stream_info(dst)
    assert info["frames"] == 8 and info["average_rate"] == Fraction(50)

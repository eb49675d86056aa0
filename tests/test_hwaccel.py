"""Hardware decoding and encoding (NVDEC / NVENC through PyAV): `--hwaccel`, hardware `--codec` names, and what
happens on a machine without them (this CPU-only one): one-line errors, exit code 2, nothing written.

Without a GPU, the hardware path is checked in its parts: the frames a hardware decoder hands back (its own
layouts, simulated sample for sample) convert to the same RGB as software decoding, the settings reach
`av.open`, and the decoder path taken reaches the JSON summary. `benchmarks/gpu.sh` runs the real thing.
"""

from __future__ import annotations

import io
import json
import logging
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from media import LogCapture, make_video, packets
from test_cli_double import Blend, _leftovers

import vfi_mini.io.video as io_video
import vfi_mini.pipeline as pipeline
from vfi_mini.cli import cli
from vfi_mini.errors import BackendUnavailable, InputError, UsageError

FAST = ("--preset", "ultrafast", "--threads", "1")
BT709 = {"colorspace": 1, "color_primaries": 1, "color_trc": 1, "color_range": 1}
CUDA_PROBLEM = io_video.hw_device_problem("cuda")
needs_no_cuda = pytest.mark.skipif(CUDA_PROBLEM is None, reason="a CUDA device opens here")


def _encoder_opens(codec: str) -> bool:
    try:
        with av.open(io.BytesIO(), mode="w", format="matroska") as out:
            stream = out.add_stream(codec, rate=25)
            stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
            stream.codec_context.open()
        return True
    except (ValueError, av.FFmpegError):
        return False


@pytest.fixture
def model(monkeypatch):
    """Replace the model by a blend; records that it was loaded."""
    import vfi_mini.cli.double as cli_double

    seen: dict = {}

    def load(*args, **kwargs):
        seen["loaded"] = True
        return Blend()

    monkeypatch.setattr(cli_double, "load_interpolator", load)
    return seen


@pytest.fixture
def fake_cuda(monkeypatch):
    """Pretend a CUDA device opens: `av.open` records the hardware settings it is given and opens the file
    without them (software decoding), and the decoder is taken for one on the device. Returns the settings."""
    seen: list = []
    real_open = av.open

    def open_(*args, hwaccel=None, **kwargs):
        if hwaccel is not None:
            seen.append(hwaccel)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(io_video.av, "open", open_)
    monkeypatch.setattr(io_video, "_decodes_on_device", lambda stream, device_type: True)
    monkeypatch.setattr(pipeline, "hw_device_problem", lambda device_type: None)
    monkeypatch.setattr(pipeline.torch.cuda, "is_available", lambda: True)
    pipeline._auto_hwaccel.cache_clear()
    yield seen
    pipeline._auto_hwaccel.cache_clear()


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


# --- frames from a hardware decoder ---------------------------------------------------------------------------


def _device_layout(frame: av.VideoFrame, layout: str) -> av.VideoFrame:
    """`frame` as a hardware decoder hands it back: `layout` is semi-planar (nv12, p010le, p016le: U and V
    interleaved) or planar, its samples in the top bits of 8 or 16 (NVDEC's output surfaces)."""
    bits = max(c.bits for c in frame.format.components)
    dtype = np.uint16 if bits > 8 else np.uint8
    shift = 16 - bits if bits > 8 else 0
    samples = [np.frombuffer(p, dtype).reshape(p.height, -1)[:, : p.width].astype(dtype) << shift for p in frame.planes]
    out = av.VideoFrame(frame.width, frame.height, layout)
    if len(out.planes) == 2:
        samples = [samples[0], np.stack(samples[1:], axis=-1).reshape(samples[1].shape[0], -1)]
    for plane, values in zip(out.planes, samples, strict=True):
        np.frombuffer(plane, dtype).reshape(plane.height, -1)[:, : values.shape[1]] = values
    return out


@pytest.mark.parametrize(
    "codec,pix_fmt,layout,colour,size",
    [
        ("libx264", "yuv420p", "nv12", None, (64, 48)),
        ("libx264", "yuv420p", "nv12", BT709, (70, 46)),
        ("libx264", "yuvj420p", "nv12", None, (64, 48)),
        ("libx264", "yuv420p10le", "p010le", BT709, (70, 46)),
        ("ffv1", "yuv420p12le", "p016le", BT709, (64, 48)),
        ("ffv1", "yuv420p12le", "p012le", None, (64, 48)),
        ("libx264", "yuv444p", "yuv444p", None, (64, 48)),
        ("libx264", "yuv444p10le", "yuv444p16le", BT709, (64, 48)),
        ("libx264", "yuv444p10le", "yuv444p10msble", None, (64, 48)),
    ],
)
def test_hardware_layouts_give_the_same_rgb(tmp_path, codec, pix_fmt, layout, colour, size):
    """NVDEC hands frames back as nv12 / p010 / p016 / yuv444p16 (FFmpeg 8: also p012, yuv444p10msb); the
    conversion to RGB must give exactly what the software decoder's own format gives."""
    try:
        av.VideoFormat(layout)
    except ValueError:
        pytest.skip(f"this FFmpeg has no {layout}")
    src = make_video(tmp_path / "a.mkv", frames=2, size=size, codec=codec, pix_fmt=pix_fmt, colour=colour, audio=False)
    info = io_video.probe_video(src)
    to_rgb = io_video._ToRgb(info)
    expected = [f.rgb for f in io_video.decode_frames(src, info)]
    with av.open(str(src)) as container:
        frames = list(container.decode(video=0))
    assert frames[0].format.name == pix_fmt
    for frame, want in zip(frames, expected, strict=True):
        np.testing.assert_array_equal(to_rgb(_device_layout(frame, layout)), want)


# --- decoding settings ---------------------------------------------------------------------------------------


def test_hwaccel_settings_copy_frames_back_and_fall_back_to_software():
    settings = io_video.hwaccel_settings("cuda")
    assert settings.allow_software_fallback is True
    assert settings.is_hw_owned is False  # frames come back to memory
    assert settings.options == {} and settings.device_id == 0  # the default device


def test_decode_frames_passes_the_settings_to_av_open(tmp_path, fake_cuda, monkeypatch):
    src = make_video(tmp_path / "a.mp4", frames=3)
    info = io_video.probe_video(src)
    report = io_video.DecodeReport()
    frames = list(io_video.decode_frames(src, info, report=report, hwaccel="cuda"))
    assert len(frames) == 3 and report.hwaccel == "cuda"
    assert len(fake_cuda) == 1 and isinstance(fake_cuda[0], av.codec.hwaccel.HWAccel)
    assert fake_cuda[0].allow_software_fallback is True
    # Seeking (segments) opens the file the same way.
    frames = list(io_video.decode_frames(src, info, report=report, hwaccel="cuda", start=Fraction(1, 25)))
    assert len(frames) == 2 and report.hwaccel == "cuda" and len(fake_cuda) >= 2
    # A decoder that turns out to work in software is reported as such.
    monkeypatch.setattr(io_video, "_decodes_on_device", lambda stream, device_type: False)
    with LogCapture(level=20) as logs:
        list(io_video.decode_frames(src, info, report=report, hwaccel="cuda"))
    assert report.hwaccel == "none"
    assert any("cannot decode this stream" in m for m in logs.messages())


def test_a_software_decoder_is_not_taken_for_a_device(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=2)
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        next(container.decode(stream))
        assert io_video._decodes_on_device(stream, "cuda") is False


@needs_no_cuda
def test_decode_frames_on_cuda_without_it(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=2)
    info = io_video.probe_video(src)
    with pytest.raises(BackendUnavailable, match="--hwaccel cuda") as caught:
        list(io_video.decode_frames(src, info, hwaccel="cuda"))
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="not found"):  # the file's own problems come first
        list(io_video.decode_frames(tmp_path / "gone.mp4", info, hwaccel="cuda"))


def test_hw_decodes_knows_the_decoders():
    assert not io_video.hw_decodes("ffv1", "cuda")
    assert not io_video.hw_decodes("no-such-decoder", "cuda")
    if "cuda" in av.codec.hwaccel.hwdevices_available():
        assert io_video.hw_decodes("h264", "cuda")


def test_resolve_hwaccel(monkeypatch):
    assert pipeline.resolve_hwaccel("none") is None
    with pytest.raises(UsageError, match="--hwaccel must be one of"):
        pipeline.resolve_hwaccel("vaapi")
    monkeypatch.setattr(pipeline, "hw_device_problem", lambda device_type: "no cuda device can be opened (x)")
    with pytest.raises(BackendUnavailable, match=r"--hwaccel cuda: no cuda device can be opened \(x\); use"):
        pipeline.resolve_hwaccel("cuda")
    pipeline._auto_hwaccel.cache_clear()
    try:
        monkeypatch.setattr(pipeline.torch.cuda, "is_available", lambda: True)
        assert pipeline.resolve_hwaccel("auto") is None  # PyTorch sees a GPU, FFmpeg opens none
        pipeline._auto_hwaccel.cache_clear()
        monkeypatch.setattr(pipeline, "hw_device_problem", lambda device_type: None)
        assert pipeline.resolve_hwaccel("auto") == "cuda"
        assert pipeline.resolve_hwaccel("cuda") == "cuda"
        pipeline._auto_hwaccel.cache_clear()
        monkeypatch.setattr(pipeline.torch.cuda, "is_available", lambda: False)
        assert pipeline.resolve_hwaccel("auto") is None  # FFmpeg could, PyTorch sees no GPU
    finally:
        pipeline._auto_hwaccel.cache_clear()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_auto_is_software_here_with_a_debug_line(tmp_path):
    pipeline._auto_hwaccel.cache_clear()
    with LogCapture(level=10) as logs:
        assert pipeline.resolve_hwaccel("auto") is None
    # levelno, not levelname: the CLI renames the levels ("debug") once any CLI test has run in this process.
    assert [(r.levelno, r.getMessage()) for r in logs.records if "--hwaccel" in r.getMessage()] == [
        (logging.DEBUG, "--hwaccel auto: decoding in software (PyTorch sees no CUDA GPU)")
    ]


# --- vfi-mini double -------------------------------------------------------------------------------------------


def test_default_and_none_decode_in_software_with_the_same_output(tmp_path, model):
    src = make_video(tmp_path / "in.mp4", frames=5)
    outputs = []
    for name, extra in (("default", ()), ("none", ("--hwaccel", "none"))):
        dst = tmp_path / f"{name}.mp4"
        result = run("double", src, "-o", dst, "--json", *FAST, *extra)
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["hwaccel"] == "none" or torch.cuda.is_available()
        assert summary["output_frames"] == 10
        outputs.append(dst)
    assert packets(outputs[0], "video") == packets(outputs[1], "video")
    assert packets(outputs[0]) == packets(src)  # audio copied as before


def test_cuda_decoding_reaches_the_summary_with_the_same_output(tmp_path, model, fake_cuda):
    src = make_video(tmp_path / "in.mp4", frames=5)
    plain, hw = tmp_path / "plain.mp4", tmp_path / "hw.mp4"
    assert run("double", src, "-o", plain, "--hwaccel", "none", *FAST).exit_code == 0
    assert fake_cuda == []
    result = run("double", src, "-o", hw, "--hwaccel", "cuda", "--json", *FAST)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hwaccel"] == "cuda" and len(fake_cuda) == 1
    assert packets(hw, "video") == packets(plain, "video")
    # auto takes the device where PyTorch sees a GPU and FFmpeg opens one.
    result = run("double", src, "-o", tmp_path / "auto.mp4", "--json", *FAST)
    assert json.loads(result.stdout)["hwaccel"] == "cuda" and len(fake_cuda) == 2


def test_cuda_with_a_codec_the_device_cannot_decode_warns(tmp_path, model, fake_cuda):
    src = make_video(tmp_path / "in.mkv", frames=3, codec="ffv1", pix_fmt="yuv420p", audio=False)
    result = run("double", src, "-o", tmp_path / "out.mkv", "--hwaccel", "cuda", "--json", *FAST)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hwaccel"] == "none" and fake_cuda == []
    assert "cannot decode ffv1 video; decoding in software" in result.stderr
    result = run("double", src, "-o", tmp_path / "auto.mkv", "--json", *FAST)  # auto: silently
    assert json.loads(result.stdout)["hwaccel"] == "none" and "warning" not in result.stderr


def test_cuda_in_segments_reaches_the_summary(tmp_path, model, fake_cuda):
    src = make_video(tmp_path / "in.mp4", frames=6)
    result = run("double", src, "-o", tmp_path / "out.mp4", "--hwaccel", "cuda", "--resume", "--json", *FAST)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hwaccel"] == "cuda" and fake_cuda


def _assert_refused(result, tmp_path, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vfi-mini: error: "), result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.output and result.stdout == ""
    assert not (tmp_path / "out.mp4").exists() and _leftovers(tmp_path) == []


@needs_no_cuda
def test_hwaccel_cuda_without_a_gpu_is_refused(tmp_path, model):
    src = make_video(tmp_path / "in.mp4", frames=3)
    result = run("double", src, "-o", tmp_path / "out.mp4", "--hwaccel", "cuda", "--json", *FAST)
    _assert_refused(result, tmp_path, "--hwaccel cuda: ")
    assert "loaded" not in model  # refused before the model loads


@needs_no_cuda
def test_hwaccel_cuda_without_a_gpu_refuses_a_batch_once(tmp_path, model):
    a, b = make_video(tmp_path / "a.mp4", frames=2), make_video(tmp_path / "b.mp4", frames=2)
    (tmp_path / "out").mkdir()
    result = run("double", a, b, "-o", tmp_path / "out", "--hwaccel", "cuda", *FAST)
    _assert_refused(result, tmp_path, "--hwaccel cuda: ")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("codec", ["h264_nvenc", "hevc_nvenc", "av1_nvenc"])
def test_a_hardware_encoder_that_does_not_open_is_refused(tmp_path, model, codec):
    if _encoder_opens(codec):
        pytest.skip(f"{codec} works here")
    src = make_video(tmp_path / "in.mp4", frames=3)
    result = run("double", src, "-o", tmp_path / "out.mp4", "--codec", codec, "--hwaccel", "none")
    _assert_refused(result, tmp_path, codec)
    assert "libx264" in result.stderr  # what to use instead


def test_an_unknown_hardware_encoder_is_refused(tmp_path, model):
    src = make_video(tmp_path / "in.mp4", frames=2)
    result = run("double", src, "-o", tmp_path / "out.mp4", "--codec", "h266_nvenc")
    _assert_refused(result, tmp_path, "has no h266_nvenc hardware encoder")

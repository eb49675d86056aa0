"""`vfi-mini bench`: how fast the model and the whole pipeline run on this machine.

Reports the model's seconds per interpolated frame (median of several runs after a warm-up), the whole
`double` pipeline's output frames per second with decode, model and encode timed separately, peak memory
(process RSS and CUDA max allocated), the model's FLOPs per frame (counted with
`torch.utils.flop_counter`), the FLOP/s achieved, and the machine's own dense-convolution throughput
measured in the same run, so that the model's speed is also a fraction of what this machine can do; and
the same for the convolutions alone (the heavy layers), timed with the PyTorch profiler on CPU.

With a batch of N windows per model call (``batch``), the model and the pipeline run N windows per call
and every time is still given per interpolated frame (a call's time divided by N).

FLOPs count a multiply-add as 2 FLOPs (the flop_counter convention); the custom AdaCoF operator is not a
convolution and is not counted.
"""

from __future__ import annotations

import copy
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import UsageError
from .interpolator import Interpolator, pad_to_multiple

SIZES = {
    "480p": (854, 480),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "2160p": (3840, 2160),
    "4k": (3840, 2160),
}


def parse_size(text: str) -> tuple[int, int]:
    """'720p' or 'WxH' -> (width, height)."""
    key = text.lower()
    if key in SIZES:
        return SIZES[key]
    try:
        w, h = (int(v) for v in key.split("x"))
    except ValueError:
        raise UsageError(f"--size {text!r}: use 480p, 720p, 1080p, 2160p or WxH") from None
    if w < 1 or h < 1:
        raise UsageError(f"--size {text!r}: width and height must be positive")
    return w, h


@dataclass
class BenchResult:
    device: str
    precision: str
    width: int
    height: int
    threads: int
    batch: int  # windows per model call
    cuda_graphs: bool  # CUDA graphs in use at the end (False after a failed capture)
    model_seconds_per_frame: float
    model_seconds_all: list[float]
    gflops_per_frame: float
    achieved_gflops_per_s: float
    machine_conv_gflops_per_s: float
    fraction_of_machine: float
    # The model's heavy layers alone: convolution FLOPs per frame, the time spent in them (profiled, CPU
    # only), their throughput and its fraction of the machine's dense-convolution throughput.
    conv_gflops_per_frame: float
    conv_seconds_per_frame: float | None
    conv_gflops_per_s: float | None
    conv_fraction_of_machine: float | None
    pipeline_fps: float | None
    decode_seconds_per_frame: float | None
    encode_seconds_per_frame: float | None
    pipeline_frames: int | None
    peak_rss_mb: float
    cuda_max_allocated_mb: float | None
    torch: str
    weights: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 4)
        d["model_seconds_all"] = [round(v, 4) for v in self.model_seconds_all]
        return d


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def count_flops(interp: Interpolator, width: int, height: int) -> tuple[float, float]:
    """FLOPs of one interpolated frame (padded size, as the model really runs), counted on the CPU: (all,
    convolutions only).

    Counted in the layout and (bf16 autocast) precision the model runs in, so each layer is counted in the
    form it runs in: TENet's stride-2 transposed convolutions run as sub-pixel 3x3 convolutions whose zero
    taps count (about 9 % more FLOPs than the model's arithmetic at 854x480).
    """
    from torch.utils.flop_counter import FlopCounterMode

    # A CPU copy: moving the interpolator's own model would leave its captured CUDA graphs (which point at
    # the parameters' memory) reading freed memory.
    model = interp.model if interp.device.type == "cpu" else copy.deepcopy(interp.model).to("cpu")
    frames = pad_to_multiple(torch.zeros(4, 3, height, width), interp.multiple).unsqueeze(0)
    frames = [f.contiguous(memory_format=torch.channels_last) for f in frames.unbind(1)]  # as Interpolator
    counter = FlopCounterMode(display=False)
    bf16 = interp.dtype == torch.bfloat16
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), counter:
        model(*frames)
    per_op = counter.get_flop_counts().get("Global", {})
    conv = sum(n for op, n in per_op.items() if "convolution" in str(op))
    return float(counter.get_total_flops()), float(conv)


def conv_seconds(interp: Interpolator, width: int, height: int, batch: int = 1) -> float | None:
    """Seconds of one interpolated frame spent inside convolutions (CPU: profiled on one call of `batch`
    windows; None on other devices).

    Every convolution, whatever its backend, runs through one `aten::convolution` call; its total time
    includes the backend kernel and any layout or precision conversion of its inputs.
    """
    if interp.device.type != "cpu":
        return None
    from torch.profiler import ProfilerActivity, profile

    window = torch.rand(batch, 4, 3, height, width, generator=torch.Generator().manual_seed(0))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        interp(window)
    return sum(e.cpu_time_total for e in prof.key_averages() if e.key == "aten::convolution") / 1e6 / batch


def machine_conv_gflops(device: torch.device, dtype: torch.dtype, seconds: float = 1.5) -> float:
    """Dense 3x3 convolution throughput (64 -> 64 channels, 256x256) in GFLOP/s for this device and dtype."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).to(device).eval()
    x = torch.randn(1, 64, 256, 256, device=device)
    flops = 2 * 64 * 64 * 9 * 256 * 256
    autocast = dtype is not torch.float32
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=autocast):
        for _ in range(2):
            conv(x)
        _sync(device)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            conv(x)
            n += 1
        _sync(device)
        dt = time.perf_counter() - t0
    return flops * n / dt / 1e9


def time_model(interp: Interpolator, width: int, height: int, runs: int, batch: int = 1) -> list[float]:
    """Seconds per interpolated frame for `runs` timed calls of `batch` windows after one warm-up call."""
    g = torch.Generator().manual_seed(0)
    window = torch.rand(batch, 4, 3, height, width, generator=g)
    times = []
    for i in range(runs + 1):
        _sync(interp.device)
        t0 = time.perf_counter()
        interp(window)
        _sync(interp.device)
        if i:
            times.append((time.perf_counter() - t0) / batch)
    return times


def _synthetic_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """A short clip of smoothly moving texture at the benchmark size (libx264, yuv420p)."""
    from .io.clips import write_video

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    seq = []
    for t in range(frames):
        r = 0.5 + 0.4 * np.sin((x - 4 * t) / 17.0) * np.cos(y / 23.0)
        g = 0.5 + 0.4 * np.sin((y + 3 * t) / 13.0)
        b = 0.5 + 0.4 * np.cos((x + y - 5 * t) / 29.0)
        seq.append((np.stack([r, g, b], -1) * 255).astype(np.uint8))
    write_video(path, seq, fps=Fraction(25), options={"crf": "18", "preset": "veryfast"})
    return path


def time_pipeline(interp: Interpolator, video: Path, work: Path, batch: int = 1) -> dict[str, float]:
    """Decode alone, encode alone, and the whole `double` pipeline on `video` (`batch` windows per call)."""
    from .io.video import EncodeOptions, VideoWriter, decode_frames, probe_video
    from .pipeline import double_video

    info = probe_video(video)
    t0 = time.perf_counter()
    decoded = list(decode_frames(video, info))
    decode_s = (time.perf_counter() - t0) / max(1, len(decoded))

    t0 = time.perf_counter()
    writer = VideoWriter(work / "encode-only.mp4", info, info.rate * 2, EncodeOptions(), audio=False, subtitles=False)
    try:
        half = Fraction(1, 2) / info.rate
        for f in decoded:
            writer.write(f.rgb, f.time, half)
            writer.write(f.rgb, f.time + half, half)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    encode_s = (time.perf_counter() - t0) / max(1, 2 * len(decoded))
    del decoded

    t0 = time.perf_counter()
    result = double_video(video, work / "doubled.mp4", interp, overwrite=True, batch_size=batch)
    total = time.perf_counter() - t0
    return {
        "pipeline_fps": result.output_frames / total,
        "decode": decode_s,
        "encode": encode_s,
        "frames": result.output_frames,
    }


def run_bench(
    weights: str | None,
    arch: str | None,
    size: tuple[int, int],
    device: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    runs: int = 5,
    input_video: str | None = None,
    pipeline_frames: int = 8,
    progress: Callable[[str], None] | None = None,
    batch: int | None = None,
    cuda_graphs: bool = False,
) -> BenchResult:
    """Measure everything `vfi-mini bench` reports (see the module docstring). `batch`: windows per model
    call (None: auto, `vfi_mini.pipeline.resolve_batch_size`); `cuda_graphs`: as `Interpolator`."""
    from .models import build_model, resolve_arch
    from .pipeline import resolve_batch_size
    from .weights import default_weights, load_model

    say = progress or (lambda msg: None)
    if arch:
        # Speed depends on the architecture, not on the values of the weights: a random initialisation.
        torch.manual_seed(0)
        model, label = build_model(resolve_arch(arch)), f"random {arch}"
    else:  # what `double` runs: the given or the bundled default weights
        model, ckpt = load_model(weights or default_weights())
        label = str(ckpt.path)
    interp = Interpolator(model, device=device, precision=precision, threads=threads, cuda_graphs=cuda_graphs)
    batch = resolve_batch_size(batch, interp)
    width, height = size
    dev = interp.device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    say(f"model: {runs} timed runs of {batch} window(s) at {width}x{height} on {dev} ({interp.precision})")
    times = time_model(interp, width, height, runs, batch)
    median = statistics.median(times)
    say("counting FLOPs")
    flops, conv_flops = count_flops(interp, width, height)
    say("profiling the convolutions")
    conv_s = conv_seconds(interp, width, height, batch)
    say("measuring the machine's convolution throughput")
    machine = machine_conv_gflops(dev, interp.dtype)
    pipe = None
    if input_video or pipeline_frames > 0:
        with tempfile.TemporaryDirectory(prefix="vfi-bench-") as tmp:
            work = Path(tmp)
            video = (
                Path(input_video) if input_video else _synthetic_clip(work / "clip.mp4", width, height, pipeline_frames)
            )
            say(f"pipeline on {video.name}")
            pipe = time_pipeline(interp, video, work, batch)
    achieved = flops / median / 1e9
    return BenchResult(
        device=str(dev),
        precision=interp.precision,
        width=width,
        height=height,
        threads=torch.get_num_threads(),
        batch=batch,
        cuda_graphs=interp.cuda_graphs,
        model_seconds_per_frame=median,
        model_seconds_all=times,
        gflops_per_frame=flops / 1e9,
        achieved_gflops_per_s=achieved,
        machine_conv_gflops_per_s=machine,
        fraction_of_machine=achieved / machine if machine else 0.0,
        conv_gflops_per_frame=conv_flops / 1e9,
        conv_seconds_per_frame=conv_s,
        conv_gflops_per_s=conv_flops / conv_s / 1e9 if conv_s else None,
        conv_fraction_of_machine=conv_flops / conv_s / 1e9 / machine if conv_s and machine else None,
        pipeline_fps=pipe["pipeline_fps"] if pipe else None,
        decode_seconds_per_frame=pipe["decode"] if pipe else None,
        encode_seconds_per_frame=pipe["encode"] if pipe else None,
        pipeline_frames=int(pipe["frames"]) if pipe else None,
        peak_rss_mb=_peak_rss_mb(),
        cuda_max_allocated_mb=torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None,
        torch=torch.__version__,
        weights=label,
    )

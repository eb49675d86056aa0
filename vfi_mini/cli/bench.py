"""`vfi-mini bench`: model and pipeline speed, memory and FLOP/s on this machine."""

from __future__ import annotations

import click

from . import cli
from ._common import echo_json, handle_errors, setup_logging
from .double import check_speed_options, speed_options


@cli.command()
@click.option("--size", default="480p", show_default=True, help="480p (854x480), 720p, 1080p, 2160p or WxH.")
@click.option("-w", "--weights", metavar="FILE", help="Weights to time (default: the bundled default weights).")
@click.option(
    "--arch",
    help="Time a random initialisation of this architecture (preset name or JSON) instead of weights.",
)
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--precision",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "fp32", "fp16", "bf16"]),
    help="auto: the default of double (bf16 on CPUs with native bf16, else fp32).",
)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: PyTorch's choice).")
@click.option(
    "--frames",
    "runs",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Timed model runs after one warm-up (the median is reported).",
)
@click.option(
    "--input",
    "input_video",
    type=click.Path(exists=True, dir_okay=False),
    help="Time the pipeline on this video instead of a synthetic clip of --pipeline-frames frames.",
)
@click.option(
    "--pipeline-frames",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="Frames of the synthetic clip for the pipeline timing (0: skip the pipeline).",
)
@speed_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("-q", "--quiet", is_flag=True)
@handle_errors
def bench(
    size: str,
    weights: str | None,
    arch: str | None,
    device: str,
    precision: str,
    threads: int | None,
    runs: int,
    input_video: str | None,
    pipeline_frames: int,
    batch: str,
    cuda_graphs: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Time the model and the whole `double` pipeline, and compare with this machine's conv throughput.

    With --batch N the model runs N windows per call; times are still per interpolated frame.
    """
    from ..bench import parse_size, run_bench

    if weights and arch:
        raise click.UsageError("give --weights or --arch, not both")
    setup_logging(quiet)
    batch_size = check_speed_options(batch, cuda_graphs, device)
    say = None if quiet else (lambda msg: click.echo(f"vfi-mini bench: {msg}", err=True))
    r = run_bench(
        weights,
        arch,
        parse_size(size),
        device=device,
        precision=precision,
        threads=threads,
        runs=runs,
        input_video=input_video,
        pipeline_frames=pipeline_frames,
        progress=say,
        batch=batch_size,
        cuda_graphs=cuda_graphs,
    )
    if as_json:
        echo_json(r.to_dict())
        return
    graphs = ", CUDA graphs" if r.cuda_graphs else ""
    click.echo(
        f"{r.width}x{r.height} on {r.device}, {r.precision}, {r.threads} threads, batch {r.batch}{graphs} ({r.weights})"
    )
    click.echo(
        f"  model: {r.model_seconds_per_frame:.3f} s per interpolated frame (median of {len(r.model_seconds_all)})"
    )
    click.echo(
        f"  compute: {r.gflops_per_frame:.1f} GFLOP per frame, {r.achieved_gflops_per_s:.1f} GFLOP/s achieved, "
        f"machine conv {r.machine_conv_gflops_per_s:.1f} GFLOP/s ({100 * r.fraction_of_machine:.0f}%)"
    )
    if r.conv_gflops_per_s is not None and r.conv_fraction_of_machine is not None:
        click.echo(
            f"  convolutions: {r.conv_gflops_per_frame:.1f} GFLOP in {r.conv_seconds_per_frame:.3f} s per frame, "
            f"{r.conv_gflops_per_s:.1f} GFLOP/s ({100 * r.conv_fraction_of_machine:.0f}% of the machine)"
        )
    if r.pipeline_fps is not None:
        click.echo(
            f"  pipeline: {r.pipeline_fps:.2f} output fps over {r.pipeline_frames} frames; decode "
            f"{1000 * r.decode_seconds_per_frame:.1f} ms/frame, encode {1000 * r.encode_seconds_per_frame:.1f} ms/frame"
        )
    mem = f"  memory: peak RSS {r.peak_rss_mb:.0f} MB"
    if r.cuda_max_allocated_mb is not None:
        mem += f", CUDA max allocated {r.cuda_max_allocated_mb:.0f} MB"
    click.echo(mem)

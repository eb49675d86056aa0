"""`vfi-mini double`: a video at twice its frame rate, with its audio, subtitles and metadata kept.

Also home of the pieces `vfi-mini frames` shares: `load_interpolator` (module-level so that tests can
replace it) and the tqdm progress bar.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from . import cli
from ._common import echo_json, handle_errors, setup_logging

log = logging.getLogger("vfi_mini")

DEVICE_HELP = "auto (CUDA if present, else CPU), cpu, cuda or cuda:N."


def load_interpolator(weights: str | None, device: str, precision: str, threads: int | None) -> Any:
    """Build the interpolator the commands use (tests replace this function).

    Raises:
        WeightsError: no default weights yet, or the file does not load.
        BackendUnavailable: the device or precision is not available.
    """
    from ..interpolator import Interpolator

    return Interpolator.from_weights(weights, device=device, precision=precision, threads=threads)


@contextlib.contextmanager
def progress_bar(enabled: bool, unit: str = "frame") -> Iterator[Any]:
    """A `progress(done, total)` callback drawing a tqdm bar on stderr, or None when disabled or when
    stderr is not a terminal. Log lines are routed around the bar while it is shown."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    bars: list[Any] = []  # created at the first update, when the total is known

    def update(done: int, total: int | None) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, smoothing=0.05))
        bar = bars[0]
        if total is not None and bar.total != max(total, done):
            bar.total = max(total, done)
            bar.refresh()
        if done != bar.n:
            bar.update(done - bar.n)

    with logging_redirect_tqdm(loggers=[logging.getLogger("vfi_mini")]):
        try:
            yield update
        finally:
            if bars:
                bars[0].close()


def model_options(func: Any) -> Any:
    """--weights, --device, --precision, --threads (shared with `frames`)."""
    func = click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="CPU threads for the model (default: PyTorch's choice).",
    )(func)
    func = click.option(
        "--precision",
        type=click.Choice(["fp32", "fp16", "bf16"]),
        default="fp32",
        show_default=True,
        help="Model precision (fp16 needs CUDA).",
    )(func)
    func = click.option("--device", default="auto", show_default=True, metavar="DEVICE", help=DEVICE_HELP)(
        func
    )
    func = click.option(
        "--weights", "-w", metavar="FILE", default=None, help="Weights file (default: the bundled weights)."
    )(func)
    return func


def output_options(func: Any) -> Any:
    """-y, -q, -v, --json (shared with `frames`)."""
    func = click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON summary line on stdout at the end."
    )(func)
    func = click.option("-v", "--verbose", is_flag=True, help="Log more (debug).")(func)
    func = click.option("-q", "--quiet", is_flag=True, help="No progress bar, no warnings.")(func)
    func = click.option("-y", "--overwrite", is_flag=True, help="Replace an existing output.")(func)
    return func


def _parse_encoder_opts(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    options: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", ctx=ctx, param=param)
        options[key.strip()] = val
    return options


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "output_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Output video; the extension picks the container (.mp4, .mkv, .mov, ...).",
)
@model_options
@click.option("--codec", default="libx264", show_default=True, help="Video encoder.")
@click.option(
    "--crf",
    type=click.FloatRange(min=0),
    default=None,
    help="Constant-quality factor (default 18 for encoders that have one).",
)
@click.option("--preset", default=None, help="Encoder preset (default medium for libx264/libx265).")
@click.option(
    "--pix-fmt",
    default=None,
    metavar="FMT",
    help="Output pixel format (default: the input's, if the encoder supports it).",
)
@click.option(
    "-e",
    "--encoder-opt",
    "encoder_opts",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_encoder_opts,
    help="Extra encoder option; repeatable (e.g. -e tune=film).",
)
@click.option("--no-audio", is_flag=True, help="Leave the audio streams out.")
@click.option("--no-subs", is_flag=True, help="Leave the subtitle streams out.")
@output_options
@handle_errors
def double(
    input_path: Path,
    output_path: Path,
    weights: str | None,
    device: str,
    precision: str,
    threads: int | None,
    codec: str,
    crf: float | None,
    preset: str | None,
    pix_fmt: str | None,
    encoder_opts: dict[str, str],
    no_audio: bool,
    no_subs: bool,
    overwrite: bool,
    quiet: bool,
    verbose: bool,
    as_json: bool,
) -> None:
    """Write OUTPUT: the video INPUT at twice its frame rate.

    \b
    N input frames give exactly 2N output frames at exactly twice the input
    rate (30000/1001 -> 60000/1001): every gap gets a new frame and the last
    frame is held once, so the duration is unchanged and audio stays in sync.
    Output timestamps come from the input's own, so variable frame rates stay
    correct. Colours are converted with the input's own matrix and range and
    tagged the same; 10-bit stays 10-bit. Audio is copied packet for packet
    (re-encoded only if the container cannot hold it), subtitles where the
    container can hold them, metadata and rotation kept.

    \b
    Exit codes: 0 done, 1 processing failed, 2 usage error (bad option,
    OUTPUT exists without -y, OUTPUT is INPUT), 3 bad input, 4 weights
    missing or invalid, 130 interrupted. Nothing is left at OUTPUT on failure.
    """
    from ..io.video import EncodeOptions, probe_video
    from ..pipeline import check_output_file, double_video

    setup_logging(quiet=quiet, verbose=verbose)
    encode = EncodeOptions(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, options=encoder_opts)
    # Input and output problems are reported before the model loads.
    probe_video(input_path)
    check_output_file(input_path, output_path, overwrite=overwrite)
    interpolator = load_interpolator(weights, device, precision, threads)
    with progress_bar(enabled=not quiet) as progress:
        result = double_video(
            input_path,
            output_path,
            interpolator,
            encode=encode,
            audio=not no_audio,
            subtitles=not no_subs,
            overwrite=overwrite,
            progress=progress,
        )
    if as_json:
        echo_json(result.to_dict())
    elif not quiet:
        d = result.to_dict()
        click.echo(
            f"vfi-mini: wrote {output_path}: {d['input_frames']} -> {d['output_frames']} frames, "
            f"{d['input_rate']} -> {d['output_rate']} fps, {d['seconds']:.1f} s "
            f"({d['fps']:.2f} frames/s on {d['device'] or 'cpu'})",
            err=True,
        )

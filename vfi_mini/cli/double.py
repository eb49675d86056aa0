"""`vfi-mini double`: a video at twice its frame rate, with its audio, subtitles and metadata kept.

Also home of the pieces `vfi-mini frames` shares: `load_interpolator` (module-level so that tests can
replace it) and the tqdm progress bar.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from . import cli
from ._common import echo_json, handle_errors, setup_logging

log = logging.getLogger("vfi_mini")

DEVICE_HELP = "auto (CUDA if present, else CPU), cpu, cuda or cuda:N."


def load_interpolator(
    weights: str | None,
    device: str,
    precision: str,
    threads: int | None,
    tile: int | str | None = "auto",
    tile_overlap: int = 32,
    cuda_graphs: bool = False,
) -> Any:
    """Build the interpolator the commands use (tests replace this function).

    Raises:
        WeightsError: no default weights yet, or the file does not load.
        BackendUnavailable: the device or precision is not available.
        UsageError: bad tile settings, or CUDA graphs without CUDA.
    """
    from ..interpolator import Interpolator

    return Interpolator.from_weights(
        weights,
        device=device,
        precision=precision,
        threads=threads,
        tile=tile,
        tile_overlap=tile_overlap,
        cuda_graphs=cuda_graphs,
    )


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


def _parse_tile(ctx: click.Context, param: click.Parameter, value: str) -> int | str | None:
    text = value.strip().lower()
    if text == "auto":
        return "auto"
    if text in ("off", "0"):
        return None
    try:
        size = int(text)
    except ValueError:
        raise click.BadParameter(
            f"expected a size in pixels, auto or off, got {value!r}", ctx=ctx, param=param
        ) from None
    if size < 128:
        raise click.BadParameter(f"tiles must be at least 128 pixels, got {size}", ctx=ctx, param=param)
    return size


def model_options(func: Any) -> Any:
    """--weights, --device, --precision, --threads, --tile, --tile-overlap (shared with `frames`)."""
    func = click.option(
        "--tile-overlap",
        type=click.IntRange(min=0),
        default=32,
        show_default=True,
        metavar="PX",
        help="Minimum overlap of neighbouring tiles; overlaps are blended with linear ramps (no seams).",
    )(func)
    func = click.option(
        "--tile",
        default="auto",
        show_default=True,
        metavar="SIZE|auto|off",
        callback=_parse_tile,
        help="Interpolate in overlapping tiles of at most SIZE x SIZE pixels (rounded down to a multiple "
        "of 128) to bound memory. auto: on CPU, tile frames whose activations would exceed 3.5 GiB (above "
        "about 0.5 megapixels, e.g. 720p and up); on CUDA, retry in tiles after an out-of-memory error. "
        "off: never tile.",
    )(func)
    func = click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="CPU threads for the model (default: PyTorch's choice).",
    )(func)
    func = click.option(
        "--precision",
        type=click.Choice(["auto", "fp32", "fp16", "bf16"]),
        default="auto",
        show_default=True,
        help="Model precision (fp16 needs CUDA). auto: bf16 on CPUs with native bf16 (AVX-512 BF16, AMX), else fp32.",
    )(func)
    func = click.option("--device", default="auto", show_default=True, metavar="DEVICE", help=DEVICE_HELP)(func)
    func = click.option(
        "--weights", "-w", metavar="FILE", default=None, help="Weights file (default: the bundled weights)."
    )(func)
    return func


def speed_options(func: Any) -> Any:
    """--batch, --cuda-graphs (shared with `frames` and `bench`); check them with `check_speed_options`."""
    func = click.option(
        "--cuda-graphs",
        is_flag=True,
        help="Capture the model as a CUDA graph for each frame size and replay it for the following frames "
        "(CUDA only; less CPU work per model call). If the capture fails, a warning is printed and the model "
        "runs as usual. Tiled frames run without graphs.",
    )(func)
    func = click.option(
        "--batch",
        default="auto",
        show_default=True,
        metavar="N|auto",
        help="Windows (new frames) per model call. auto: 4 on CUDA, where bigger calls keep the GPU busy; 1 on "
        "CPU, where batching gains nothing and needs more memory. Results match --batch 1 within float "
        "round-off.",
    )(func)
    return func


def check_speed_options(batch: str, cuda_graphs: bool, device: str) -> int | None:
    """The --batch size (None: auto, see `vfi_mini.pipeline.resolve_batch_size`), checked before any work.

    Raises:
        UsageError: --batch is not a whole number >= 1 or auto; --cuda-graphs without a CUDA device.
        BackendUnavailable: --cuda-graphs with a device that is not there.
    """
    from ..errors import UsageError

    if cuda_graphs:
        from ..interpolator import check_cuda_graphs, resolve_device

        check_cuda_graphs(resolve_device(device))
    text = batch.strip().lower()
    if text == "auto":
        return None
    try:
        size = int(text)
    except ValueError:
        raise UsageError(f"--batch must be a whole number >= 1 or auto, got {batch!r}") from None
    if size < 1:
        raise UsageError(f"--batch must be at least 1, got {size}")
    return size


def output_options(func: Any) -> Any:
    """-y, -q, -v, --json (shared with `frames`)."""
    func = click.option("--json", "as_json", is_flag=True, help="Print one JSON summary line on stdout at the end.")(
        func
    )
    func = click.option("-v", "--verbose", is_flag=True, help="Log more (debug).")(func)
    func = click.option("-q", "--quiet", is_flag=True, help="No progress bar, no warnings.")(func)
    func = click.option("-y", "--overwrite", is_flag=True, help="Replace an existing output.")(func)
    return func


def _parse_fps(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from ..errors import UsageError
    from ..timing import parse_rate

    if value is None:
        return None
    try:
        return parse_rate(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def retime_options(func: Any) -> Any:
    """--multi, --scene-threshold, --no-scene-detect, --dedupe (shared with `frames`)."""
    from ..scenes import DEFAULT_DEDUPE_THRESHOLD, DEFAULT_SCENE_THRESHOLD

    func = click.option(
        "--dedupe",
        type=click.FloatRange(min=0),
        is_flag=False,
        flag_value=DEFAULT_DEDUPE_THRESHOLD,
        default=None,
        metavar="[THRESHOLD]",
        help="Treat runs of (near-)identical frames (animation on twos, screen recordings) as one frame "
        "held longer and interpolate across the real change; output times are unchanged. A frame repeats "
        "the one before when no 8x8 block of luma differs by more than THRESHOLD percent on average "
        f"(default {DEFAULT_DEDUPE_THRESHOLD:g}); runs of more than 8 frames are real stills and kept. "
        "Write --dedupe=T, or put it after INPUT.",
    )(func)
    func = click.option(
        "--no-scene-detect", is_flag=True, help="Do not look for scene cuts (interpolate across every gap)."
    )(func)
    func = click.option(
        "--scene-threshold",
        type=click.FloatRange(min=0),
        default=DEFAULT_SCENE_THRESHOLD,
        show_default=True,
        metavar="SCORE",
        help="Scene-cut sensitivity (lower finds more cuts). The score of a gap is the mean absolute luma "
        "difference (percent) of the two frames shrunk to 64 pixels, minus the larger of the mean "
        "differences of the two gaps before and the two after, so that fast motion is not a cut. Across "
        "a cut the new frames repeat the last frame of the shot and no model window mixes the shots.",
    )(func)
    func = click.option(
        "-m",
        "--multi",
        type=click.Choice(["2", "4", "8"]),
        default=None,
        help="Output frames per input frame (recursive midpoints) [default: 2].",
    )(func)
    return func


def retime_kwargs(
    multi: str | None, scene_threshold: float, no_scene_detect: bool, dedupe: float | None
) -> dict[str, Any]:
    """The `double_video` / `interpolate_frames` keywords for the `retime_options` values."""
    return {
        "multi": int(multi or 2),
        "scene_threshold": None if no_scene_detect else scene_threshold,
        "dedupe": dedupe,
    }


def _parse_encoder_opts(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    options: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", ctx=ctx, param=param)
        options[key.strip()] = val
    return options


@cli.command()
@click.argument("input_paths", metavar="INPUT...", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    "output_arg",
    required=True,
    metavar="OUTPUT",
    help="Output video; the extension picks the container (.mp4, .mkv, .mov, ...). A directory for several "
    "inputs (created if the name ends with /). - for stdout.",
)
@click.option(
    "--ext",
    default=None,
    metavar="EXT",
    help="Batches: container extension of the outputs (mp4, mkv, ...) [default: each input's own].",
)
@click.option(
    "--skip-existing", is_flag=True, help="Skip inputs whose output exists (reported as skipped, exit code 0)."
)
@click.option(
    "--format",
    "pipe_format",
    type=click.Choice(["y4m", "nut"]),  # = io.video.PIPE_FORMATS (not imported: av loads slowly)
    default=None,
    help="Container of -o - (stdout): y4m (raw video, the default) or nut (raw video, or any --codec).",
)
@model_options
@speed_options
@click.option("--codec", default=None, help="Video encoder [default: libx264; rawvideo for -o -].")
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
@click.option(
    "--strict",
    is_flag=True,
    help="Fail (exit code 3) at the first damaged video frame instead of skipping damaged frames with a "
    "warning (the frames around a gap keep their timestamps).",
)
@click.option(
    "--hwaccel",
    type=click.Choice(["auto", "none", "cuda"]),  # = pipeline.HWACCELS (not imported: torch loads slowly)
    default="auto",
    show_default=True,
    help="Decode the input on the GPU (cuda: NVDEC) or not (none). auto: cuda when PyTorch sees a CUDA GPU and "
    "PyAV's FFmpeg can open it. Codecs and profiles the GPU cannot decode are decoded on the CPU; the output is "
    "the same either way and --json reports which was used. cuda without a usable GPU: exit code 2. For "
    "hardware encoding name the encoder: --codec h264_nvenc, hevc_nvenc or av1_nvenc.",
)
@retime_options
@click.option(
    "--fps",
    "fps",
    metavar="RATE",
    default=None,
    callback=_parse_fps,
    help="Constant output rate instead of a multiple: 60, 59.94 (= 60000/1001), 60000/1001, ntsc, pal, film, "
    "ntsc-film. Frame n sits at exactly n/RATE and shows the recursive midpoint nearest its time (within "
    "1/16 of an input frame interval); the output lasts exactly as long as the input.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Convert in segments (split at input keyframes) kept in OUTPUT.vfi-parts/ until OUTPUT is complete, so "
    "that the same command run again after an interruption (Ctrl-C, a crash, a power cut) continues from the last "
    "finished segment; the result is the same frame for frame. Needs the same input, options and weights, and an "
    ".mp4, .mov, .mkv or .webm output.",
)
@click.option(
    "--segment-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="S",
    help="Segment length for --resume and for splitting one video across torchrun ranks: segments start at the "
    "first input keyframe S seconds or more after the previous start [default: 60].",
)
@output_options
@handle_errors
def double(
    input_paths: tuple[str, ...],
    output_arg: str,
    ext: str | None,
    skip_existing: bool,
    pipe_format: str | None,
    weights: str | None,
    device: str,
    precision: str,
    threads: int | None,
    tile: int | str | None,
    tile_overlap: int,
    batch: str,
    cuda_graphs: bool,
    codec: str | None,
    crf: float | None,
    preset: str | None,
    pix_fmt: str | None,
    encoder_opts: dict[str, str],
    no_audio: bool,
    no_subs: bool,
    strict: bool,
    hwaccel: str,
    multi: str | None,
    scene_threshold: float,
    no_scene_detect: bool,
    dedupe: float | None,
    fps: Any,
    resume: bool,
    segment_seconds: float | None,
    overwrite: bool,
    quiet: bool,
    verbose: bool,
    as_json: bool,
) -> None:
    """Write OUTPUT: the video INPUT at twice its frame rate (or --multi 4
    or 8 times, or at the constant rate --fps RATE).

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
    --multi M: M x N frames at exactly M times the rate (last frame held
    M-1 times). --fps RATE: ceil(duration x RATE) frames at exactly RATE,
    the last one cut short so that the duration is unchanged. Scene cuts
    are detected (--scene-threshold) and never blended; --json lists them.

    \b
    Several INPUTs (or -o an existing directory): a batch, each output
    named after its input in the directory (--ext to change the
    container), --skip-existing, one --json line per file; the others go
    on when one fails. - as INPUT reads y4m/NUT from stdin; -o - writes y4m
    (or --format nut) to stdout.

    \b
    --resume: work in segments that survive an interruption; run the same
    command again to continue. Under torchrun (RANK, WORLD_SIZE set), the
    inputs of a batch are shared out between the ranks, and a single input
    is split into segments converted by all ranks and joined by rank 0.

    \b
    Exit codes: 0 done, 1 processing failed, 2 usage error (bad option,
    OUTPUT exists without -y, OUTPUT is INPUT, --hwaccel cuda or a hardware
    --codec that cannot be used here), 3 bad input, 4 weights
    missing or invalid, 130 interrupted. Nothing is left at OUTPUT on failure.
    A batch exits with the code its failed files share, else 1.
    """
    from ..errors import UsageError
    from ..segments import Shard

    setup_logging(quiet=quiet, verbose=verbose)
    shard = Shard.from_env()
    batch_size = check_speed_options(batch, cuda_graphs, shard.device(device))
    if fps is not None and multi is not None:
        raise UsageError("--fps and --multi exclude each other: give one")
    piped_out = output_arg == "-"
    if pipe_format is not None and not piped_out:
        raise UsageError("--format is for -o - (stdout); for a file, the extension picks the container")
    from ..pipeline import resolve_hwaccel

    resolve_hwaccel(hwaccel)  # --hwaccel cuda without a usable GPU fails here, before the model loads
    settings = dict(
        retime=retime_kwargs(multi, scene_threshold, no_scene_detect, dedupe),
        codec=codec or ("rawvideo" if piped_out else "libx264"),
        crf=crf,
        preset=preset,
        pix_fmt=pix_fmt,
        encoder_opts=encoder_opts,
        audio=not no_audio,
        subtitles=not no_subs,
        strict=strict,
        hwaccel=hwaccel,
        fps=fps,
        resume=resume,
        segment_seconds=segment_seconds,
        model_key=_model_key(weights, precision, tile, tile_overlap),
        shard=shard,
        batch_size=batch_size,
    )
    model = (weights, shard.device(device), precision, threads, tile, tile_overlap, cuda_graphs)
    out_dir = Path(output_arg)
    if len(input_paths) > 1 or (not piped_out and input_paths[0] != "-" and out_dir.is_dir()):
        _double_batch(input_paths, output_arg, ext, skip_existing, overwrite, quiet, as_json, model, settings)
        return
    if ext is not None:
        raise UsageError("--ext names the outputs of a batch; with one input, give the output file name")
    _double_one(input_paths[0], output_arg, pipe_format, skip_existing, overwrite, quiet, as_json, model, settings)


def _model_key(weights: str | None, precision: str, tile: int | str | None, tile_overlap: int) -> str:
    """What a resumed conversion must share with its finished segments about the model."""
    parts = [f"weights={weights or 'default'}"]
    path = Path(weights) if weights else None
    if path is not None and path.is_file():
        stat = path.stat()
        parts.append(f"size={stat.st_size} mtime_ns={stat.st_mtime_ns}")
    parts.append(f"precision={precision} tile={tile} tile_overlap={tile_overlap}")
    return " ".join(parts)


def _encode_options(settings: dict[str, Any]) -> Any:
    from ..io.video import EncodeOptions

    return EncodeOptions(
        codec=settings["codec"],
        crf=settings["crf"],
        preset=settings["preset"],
        pix_fmt=settings["pix_fmt"],
        options=settings["encoder_opts"],
    )


def _video_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    return dict(
        encode=_encode_options(settings),
        audio=settings["audio"],
        subtitles=settings["subtitles"],
        strict=settings["strict"],
        hwaccel=settings["hwaccel"],
        fps=settings["fps"],
        resume=settings["resume"],
        segment_seconds=settings["segment_seconds"],
        model_key=settings["model_key"],
        batch_size=settings["batch_size"],
        **settings["retime"],
    )


def _double_one(
    input_arg: str,
    output_arg: str,
    pipe_format: str | None,
    skip_existing: bool,
    overwrite: bool,
    quiet: bool,
    as_json: bool,
    model: tuple[Any, ...],
    settings: dict[str, Any],
) -> None:
    """One input: a file or stdin (-) to a file or stdout (-)."""
    from ..io.video import PIPE_FORMATS, PipeInput, probe_video
    from ..pipeline import check_output_file, double_video

    piped_out = output_arg == "-"
    input_path, output_path = Path(input_arg), Path(output_arg)
    if skip_existing and not piped_out and output_path.exists():
        if as_json:
            echo_json({"input": input_arg, "output": output_arg, "status": "skipped"})
        elif not quiet:
            click.echo(f"vfi-mini: skipped {input_arg}: {output_arg} exists", err=True)
        return
    # Input and output problems are reported before the model loads.
    source: Any
    if input_arg == "-":
        source = PipeInput(sys.stdin.buffer, name="stdin", strict=settings["strict"])
    else:
        probe_video(input_path)
        source = input_path
    try:
        if not piped_out:
            check_output_file(Path("-") if input_arg == "-" else input_path, output_path, overwrite=overwrite)
        interpolator = load_interpolator(*model[:4], tile=model[4], tile_overlap=model[5], cuda_graphs=model[6])
        with progress_bar(enabled=not quiet) as progress:
            result = double_video(
                source,
                sys.stdout.buffer if piped_out else output_path,
                interpolator,
                overwrite=overwrite,
                progress=progress,
                output_format=PIPE_FORMATS[pipe_format or "y4m"] if piped_out else None,
                shard=settings["shard"],
                **_video_kwargs(settings),
            )
    finally:
        if isinstance(source, PipeInput):
            source.close()
    d = result.to_dict()
    segments = d.get("segments")
    if segments is not None and not segments["joined"]:  # another rank joins them
        if as_json:
            echo_json({**d, "status": "segments"})
        elif not quiet:
            done = ", ".join(map(str, segments["converted"])) or "none"
            click.echo(
                f"vfi-mini: rank {segments['rank']} of {segments['world_size']}: converted segment(s) {done} of "
                f"{segments['count']} of {output_arg}; rank 0 joins them",
                err=True,
            )
        return
    if as_json:
        if piped_out:  # stdout carries the video
            click.echo(json.dumps(d, separators=(",", ":"), default=str), err=True)
        else:
            echo_json(d)
    elif not quiet:
        click.echo(
            f"vfi-mini: wrote {output_arg if not piped_out else 'stdout'}: {d['input_frames']} -> "
            f"{d['output_frames']} frames, {d['input_rate']} -> {d['output_rate']} fps, {d['seconds']:.1f} s "
            f"({d['fps']:.2f} frames/s on {d['device'] or 'cpu'})",
            err=True,
        )


def _double_batch(
    input_args: tuple[str, ...],
    output_arg: str,
    ext: str | None,
    skip_existing: bool,
    overwrite: bool,
    quiet: bool,
    as_json: bool,
    model: tuple[Any, ...],
    settings: dict[str, Any],
) -> None:
    """Several inputs (or one and an existing directory): one output each in the directory."""
    from ..errors import UsageError, batch_exit_code
    from ..pipeline import batch_outputs, double_batch

    if "-" in input_args:
        raise UsageError("- (stdin) can only be the single input, not part of a batch")
    out_dir = Path(output_arg)
    if output_arg == "-":
        raise UsageError("several inputs cannot all go to stdout; give an output directory")
    if not out_dir.is_dir():
        if out_dir.exists() or not output_arg.endswith(("/", os.sep)):
            raise UsageError(
                f"with several inputs, -o must be a directory (end the name with / to create it): {out_dir}"
            )
        out_dir.mkdir(parents=True)
    outputs = batch_outputs(input_args, out_dir, ext)
    failed: list[int] = []
    with progress_bar(enabled=not quiet) as progress:
        items = double_batch(
            input_args,
            outputs,
            lambda: load_interpolator(*model[:4], tile=model[4], tile_overlap=model[5], cuda_graphs=model[6]),
            skip_existing=skip_existing,
            overwrite=overwrite,
            progress=progress,
            shard=settings["shard"],
            **_video_kwargs(settings),
        )
        for item in items:
            if item.status == "failed":
                failed.append(item.exit_code)
            if as_json:
                echo_json(item.to_dict())
            elif not quiet and item.status != "failed":  # failures are logged as errors already
                click.echo(f"vfi-mini: {'wrote' if item.status == 'ok' else 'skipped'} {item.output}", err=True)
    if failed:
        shard = settings["shard"]
        mine = len(range(shard.rank, len(input_args), shard.world_size))
        click.echo(f"vfi-mini: {len(failed)} of {mine} file(s) failed", err=True)
        sys.exit(batch_exit_code(failed))

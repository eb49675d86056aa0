"""`vfi-mini frames`: interpolate an image sequence (N images in, 2N - 1 out)."""

from __future__ import annotations

from pathlib import Path

import click

from . import cli
from . import double as _double
from ._common import echo_json, handle_errors, setup_logging


@cli.command()
@click.argument("input_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    "output_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Output directory (created if missing).",
)
@click.option(
    "--format",
    "image_format",
    type=click.Choice(["png", "jpg"]),
    default="png",
    show_default=True,
    help="Output image format.",
)
@_double.model_options
@_double.speed_options
@_double.retime_options
@_double.output_options
@handle_errors
def frames(
    input_dir: Path,
    output_dir: Path,
    image_format: str,
    weights: str | None,
    device: str,
    precision: str,
    threads: int | None,
    tile: int | str | None,
    tile_overlap: int,
    batch: str,
    cuda_graphs: bool,
    multi: str | None,
    scene_threshold: float,
    no_scene_detect: bool,
    dedupe: float | None,
    overwrite: bool,
    quiet: bool,
    verbose: bool,
    as_json: bool,
) -> None:
    """Interpolate the images in DIR and write them with the new frames to --out.

    \b
    Reads PNG, JPEG, TIFF, WebP and BMP files in natural order (frame2 before
    frame10). N images give 2N - 1, named 00000000.png, 00000001.png, ...:
    inputs at even numbers, new frames at odd ones (ffmpeg -i %08d.png reads
    them back). PNG output keeps 16-bit depth, grey and alpha (alpha is
    interpolated too); JPEG output is 8-bit RGB. All images must have the
    same size. A non-empty --out is refused without -y; with -y, frames
    named like ours there are replaced and other files are left alone.

    \b
    --multi M: M x (N - 1) + 1 images, inputs at multiples of M. Scene cuts
    are detected as for videos (the new images across a cut repeat the one
    before it); --dedupe replaces repeated images by interpolations.

    \b
    Exit codes: 0 done, 1 processing failed, 2 usage error, 3 bad input,
    4 weights missing or invalid, 130 interrupted.
    """
    from ..io.images import list_images
    from ..pipeline import check_output_dir, interpolate_frames

    setup_logging(quiet=quiet, verbose=verbose)
    batch_size = _double.check_speed_options(batch, cuda_graphs, device)
    list_images(input_dir)
    check_output_dir(input_dir, output_dir, overwrite=overwrite)
    interpolator = _double.load_interpolator(
        weights, device, precision, threads, tile=tile, tile_overlap=tile_overlap, cuda_graphs=cuda_graphs
    )
    with _double.progress_bar(enabled=not quiet) as progress:
        result = interpolate_frames(
            input_dir,
            output_dir,
            interpolator,
            image_format=image_format,
            overwrite=overwrite,
            batch_size=batch_size,
            progress=progress,
            **_double.retime_kwargs(multi, scene_threshold, no_scene_detect, dedupe),
        )
    if as_json:
        echo_json(result.to_dict())
    elif not quiet:
        click.echo(
            f"vfi-mini: wrote {result.output_frames} frames to {output_dir} "
            f"({result.seconds:.1f} s, {result.fps:.2f} frames/s on {result.device or 'cpu'})",
            err=True,
        )

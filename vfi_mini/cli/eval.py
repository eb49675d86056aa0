"""`vfi-mini eval`: PSNR / SSIM of the model, or of a classical baseline, on a test set or on footage."""

from __future__ import annotations

from pathlib import Path

import click

from . import cli, double
from ._common import echo_json, handle_errors, setup_logging
from .double import DEVICE_HELP, progress_bar


@cli.command(name="eval")
@click.option(
    "--data",
    "data",
    required=True,
    metavar="PATH",
    help="Test-set folder (or its parent), video file, frame folder, .npy clip or footage cache.",
)
@click.option(
    "--layout",
    required=True,
    metavar="LAYOUT",
    help="ucf101, davis, snufilm-easy|medium|hard|extreme, vimeo-septuplet, vfitex, video or heldout.",
)
@click.option(
    "--weights",
    "-w",
    metavar="FILE",
    default=None,
    help="Weights to evaluate (default: the bundled weights).",
)
@click.option(
    "--baseline",
    type=click.Choice(["repeat", "blend", "minterpolate", "minterpolate-aobmc"]),
    default=None,
    help="Evaluate a classical method instead of the model.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="At most N evenly spaced samples per sequence/clip (DAVIS, VFITex, video, heldout), "
    "or in all (other layouts).",
)
@click.option(
    "--short",
    "max_short_side",
    type=click.IntRange(min=1),
    default=None,
    metavar="PX",
    help="video layout: decode videos and frame folders with the short side at most PX.",
)
@click.option(
    "--splits",
    "splits_file",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="heldout layout: splits file (default: vfi_mini/data/splits.json).",
)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Write one row per sample to FILE.",
)
@click.option("--device", default="auto", show_default=True, metavar="DEVICE", help=DEVICE_HELP)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "fp16", "bf16"]),
    default="auto",
    show_default=True,
    help="Model precision (fp16 needs CUDA). auto: bf16 on CPUs with native bf16 (AVX-512 BF16, AMX), else fp32.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="CPU threads (default: PyTorch's choice).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (means, sequences, rows) on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no warnings.")
@click.option("-v", "--verbose", is_flag=True, help="Log more (per-sample scores).")
@handle_errors
def eval_cmd(
    data: str,
    layout: str,
    weights: str | None,
    baseline: str | None,
    limit: int | None,
    max_short_side: int | None,
    splits_file: str | None,
    csv_path: Path | None,
    device: str,
    precision: str,
    threads: int | None,
    as_json: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    """PSNR, SSIM (spec "matlab" 3-D SSIM and standard SSIM) of the model or a baseline.

    \b
    Layouts: the published test sets (ucf101, davis, snufilm-<mode>,
    vimeo-septuplet, vfitex) read from their own folder structure; `video`:
    any clip(s), each frame t predicted from t-3, t-1, t+1, t+3; `heldout`:
    the held-out clips of splits.json in a footage cache (footage/clips).
    Baselines run through the same code path as the model.

    \b
    Exit codes: 0 done, 1 processing failed, 2 usage error, 3 bad data
    (missing path, unknown layout, empty set), 4 weights missing or invalid.
    """
    import torch

    from ..errors import UsageError
    from ..evaluate import evaluate, make_baseline, method_label, open_test_set

    setup_logging(quiet=quiet, verbose=verbose)
    if weights and baseline:
        raise UsageError("give --weights or --baseline, not both")
    test_set = open_test_set(data, layout, limit=limit, max_short_side=max_short_side, splits_file=splits_file)
    if baseline:
        if threads is not None:
            torch.set_num_threads(threads)
        interp = make_baseline(baseline)
    else:
        interp = double.load_interpolator(weights, device, precision, threads)  # tests replace it
    method = method_label(weights, baseline)

    with progress_bar(enabled=not quiet, unit="sample") as progress:
        result = evaluate(interp, test_set, method=method, progress=progress)
    if csv_path is not None:
        result.write_csv(csv_path)
    if as_json:
        echo_json(result.to_dict())
        return
    m = result.means()
    if result.per_sequence:
        gm = result.group_means()
        width = max([len(g) for g in gm] + [8])
        click.echo(f"{'sequence':<{width}}  samples     PSNR  SSIM(matlab)    SSIM")
        for g, v in gm.items():
            click.echo(f"{g:<{width}}  {v['samples']:7d}  {v['psnr']:7.3f}  {v['ssim_matlab']:12.4f}  {v['ssim']:6.4f}")
    n = len(result.groups())
    n_seq = f", {n} sequence{'s' if n != 1 else ''}" if result.per_sequence else ""
    click.echo(
        f"{layout} ({test_set.root}), {method}: {len(result.rows)} samples{n_seq}: "
        f"PSNR {m['psnr']:.3f} dB, SSIM(matlab) {m['ssim_matlab']:.4f}, SSIM {m['ssim']:.4f}"
    )

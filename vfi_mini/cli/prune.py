"""`vfi-mini prune`: OBProx-SG sparsity training, density report and a compressed architecture."""

from __future__ import annotations

import sys

import click

from ..errors import EXIT_INTERRUPTED, UsageError
from . import cli
from ._common import echo_json, handle_errors, setup_logging


@cli.command("prune")
@click.option("--weights", "-w", metavar="MODEL", help="Trained weights to prune (e.g. the full stmfnet.pth).")
@click.option(
    "--data",
    "data",
    multiple=True,
    metavar="SPEC",
    help="Training data, repeatable: vimeo:DIR, bvidvc:DIR, clips:DIR, video:FILE, synthetic:DIR, or a path.",
)
@click.option("--out", "out", required=True, metavar="DIR", help="Output directory (run files and reports).")
@click.option("--epochs", type=int)
@click.option("--max-steps", type=int)
@click.option("--time-budget", metavar="DURATION", help="Stop after this long, e.g. 45m or 2h.")
@click.option("--lambda", "lambda_", type=float, default=1e-4, show_default=True, help="L1 weight.")
@click.option(
    "--np",
    "np_epochs",
    type=int,
    help="Prox-SG epochs before the Orthant steps  [default: epochs // 10 with --epochs, else 2]",
)
@click.option("--eps", type=float, default=1e-4, show_default=True, help="Orthant projection threshold.")
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option(
    "--flow-threshold",
    type=float,
    default=0.05,
    show_default=True,
    help="Drop BLFNet from the derived architecture when its density is at most this.",
)
@click.option("--crop", type=int, default=256, show_default=True, help="Training crop size.")
@click.option("--batch-size", type=int, default=2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=int)
@click.option("--resume", is_flag=True, help="Continue the interrupted prune in --out.")
@click.option("-q", "--quiet", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary line at the end.")
@handle_errors
def prune_cmd(
    weights: str | None,
    data: tuple[str, ...],
    out: str,
    time_budget: str | None,
    np_epochs: int | None,
    resume: bool,
    quiet: bool,
    as_json: bool,
    **opts,
) -> None:
    """Fine-tune MODEL under OBProx-SG (L1 sparsity) and derive a smaller dense architecture.

    Writes into --out: density.json and density.txt (per-tensor densities), arch.json (for
    `vfi-mini train --arch`), sparse.pth (the sparse weights), and the training run's files.
    Ctrl-C saves a resumable state and exits with code 130; --resume continues.
    """
    from ..prune import prune
    from ..train import TrainingInterrupted, parse_duration

    setup_logging(quiet)
    if not resume and not weights:
        raise UsageError("give the --weights to prune")
    budget = parse_duration(time_budget) if time_budget else None

    def progress(row: dict) -> None:
        if not quiet and "loss" in row:
            click.echo(
                f"step {row['step']}: loss {row['loss']:.4g}, density {row['density']:.4f} ({row['phase']})",
                err=True,
            )

    try:
        summary = prune(
            weights,
            list(data),
            out,
            time_budget=budget,
            np=np_epochs,
            resume=resume,
            progress=progress,
            **opts,
        )
    except TrainingInterrupted as exc:
        click.echo(
            f"vfi-mini: interrupted at step {exc.summary['step']}; state saved in {out} (continue with --resume)",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    if as_json:
        echo_json(summary)
    elif not quiet:
        cfg = summary["derived_config"]
        click.echo(
            f"pruned {summary['step']} steps: density {summary['global_density']:.4f}; derived architecture "
            f"{summary['derived_parameters']:,} parameters (from {summary['source_parameters']:,}), "
            f"flow={cfg['flow']}; see {summary['files']['arch']} and {summary['files']['table']}",
            err=True,
        )

"""`vfi-mini train`: train or distil an ST-MFNet-family model."""

from __future__ import annotations

import sys

import click

from ..errors import EXIT_INTERRUPTED, UsageError
from . import cli
from ._common import echo_json, handle_errors, setup_logging


@cli.command("train")
@click.option(
    "--data",
    "data",
    multiple=True,
    metavar="SPEC",
    help="Training data, repeatable: vimeo:DIR, bvidvc:DIR, clips:DIR, video:FILE, synthetic:DIR, or a path.",
)
@click.option("--out", "out", required=True, metavar="RUN_DIR", help="Run directory (checkpoints, metrics).")
@click.option(
    "--arch", default="stmfnet-mini", show_default=True, help="Preset name or architecture JSON (from prune)."
)
@click.option(
    "--init",
    metavar="WEIGHTS",
    help="Start from these weights, or 'blend': a fresh model whose output starts at the frame blend.",
)
@click.option("--teacher", metavar="FILE", help="ST-MFNet checkpoint or RIFE v4 flownet.pkl to distil from.")
@click.option(
    "--alpha",
    type=float,
    default=0.1,
    show_default=True,
    help="Weight of the ground-truth term with a teacher.",
)
@click.option("--teacher-only-data", multiple=True, metavar="SPEC", help="Footage used with teacher targets only.")
@click.option(
    "--flow-distill",
    type=float,
    default=0.0,
    show_default=True,
    metavar="WEIGHT",
    help="Pull the AdaCoF displacement towards the teacher's flow (RIFE teacher).",
)
@click.option(
    "--coarse-warp",
    type=float,
    default=0.0,
    show_default=True,
    metavar="WEIGHT",
    help="--stage motion: also compare the warps of Gaussian-blurred frames (sigma 2 and 4) with the blurred "
    "ground truth, a term whose gradient sees motions of several pixels (on a 2-core CPU it lengthened the "
    "learned motion without making it more accurate; see BENCHMARKS.md).",
)
@click.option(
    "--teacher-gate/--no-teacher-gate",
    default=False,
    show_default=True,
    help="Drop the teacher term on samples where the teacher is worse than frame blending "
    "(they are learned from the ground truth alone).",
)
@click.option(
    "--stage",
    default="full",
    show_default=True,
    type=click.Choice(["full", "motion", "synthesis"]),
    help="motion: train only the feature extractor and x1 kernel heads, on the mean of their two warped "
    "frames (--alpha weighs its ground-truth loss) and, with --flow-distill, the RIFE teacher's flow. "
    "synthesis: freeze those and train GridNet and TENet (the fusion and refinement).",
)
@click.option(
    "--teacher-cache",
    metavar="DIR",
    help="Store teacher outputs here and reuse them; each window then keeps the same crop every epoch.",
)
@click.option("--loss", default="lap", show_default=True, type=click.Choice(["lap", "charbonnier", "l1"]))
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--schedule", default="step", show_default=True, type=click.Choice(["step", "plateau", "constant"]))
@click.option("--lr-step", type=int, default=20_000, show_default=True, help="Steps between halvings (step schedule).")
@click.option("--epochs", type=int)
@click.option("--max-steps", type=int)
@click.option("--time-budget", metavar="DURATION", help="Stop after this long, e.g. 45m or 2h.")
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--crop", type=int, default=256, show_default=True, help="Training crop size (128 for quick CPU work).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--precision", default="fp32", show_default=True, type=click.Choice(["fp32", "bf16", "fp16"]))
@click.option(
    "--channels-last/--no-channels-last",
    default=True,
    show_default=True,
    help="NHWC convolution layout (faster on CPUs with oneDNN and on GPUs).",
)
@click.option("--val-data", multiple=True, metavar="SPEC", help="Held-out data for validation.")
@click.option(
    "--val-crop", type=int, default=256, show_default=True, help="Centre crop of validation frames (0: full)."
)
@click.option("--val-every", type=int, default=500, show_default=True)
@click.option("--val-limit", type=int, default=32, show_default=True)
@click.option("--ckpt-every", type=int, default=200, show_default=True)
@click.option("--log-every", type=int, default=10, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=int)
@click.option("--resume", is_flag=True, help="Continue the run in --out where it stopped.")
@click.option("-q", "--quiet", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary line at the end.")
@handle_errors
def train_cmd(quiet: bool, as_json: bool, resume: bool, time_budget: str | None, **opts) -> None:
    """Train an ST-MFNet-family model, optionally distilling from a teacher.

    Ctrl-C saves a resumable state and exits with code 130; --resume continues bit-for-bit.
    """
    from ..train import TrainConfig, TrainingInterrupted, parse_duration, train

    setup_logging(quiet)
    budget = parse_duration(time_budget) if time_budget else None
    if resume:
        cfg = TrainConfig.from_run(opts["out"])
        # Only the stopping criteria and machine settings may change when resuming.
        for key, value in (
            ("max_steps", opts["max_steps"]),
            ("epochs", opts["epochs"]),
            ("time_budget", budget),
            ("threads", opts["threads"]),
        ):
            if value is not None:
                setattr(cfg, key, value)
    else:
        if not opts["data"]:
            raise UsageError("give at least one --data (or --resume an existing run)")
        for key in ("data", "teacher_only_data", "val_data"):
            opts[key] = list(opts[key])
        cfg = TrainConfig(time_budget=budget, **opts)
    bar = None
    if not quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=cfg.max_steps, unit="step", file=sys.stderr, dynamic_ncols=True)

    def progress(row: dict) -> None:
        if bar is None:
            return
        bar.n = row["step"]
        bar.set_postfix(
            {
                k: (round(v, 3) if isinstance(v, float) else v)
                for k, v in row.items()
                if k in ("loss", "samples_per_s", "val_psnr")
            }
        )
        bar.refresh()

    try:
        summary = train(cfg, progress=progress, resume=resume)
    except TrainingInterrupted as exc:
        if bar is not None:
            bar.close()
        click.echo(
            f"vfi-mini: interrupted at step {exc.summary['step']}; state saved in {cfg.out} (continue with --resume)",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    if bar is not None:
        bar.close()
    if as_json:
        echo_json(summary)
    elif not quiet:
        click.echo(
            f"trained {summary['step']} steps in {summary['elapsed']} s; weights in {cfg.out}/last.pth",
            err=True,
        )

"""`prune`: OBProx-SG sparsity training of a trained model, its density report and a derived architecture.

The paper's first phase (spec §12): fine-tune a trained model (upstream: the full ST-MFNet) with the
Laplacian loss under OBProx-SG, PWC-Net included, then read off which layers kept their weights. The
training is the ordinary loop of `vfi_mini.train` with ``optimizer="obproxsg"``; this module only sets it
up and post-processes the final weights. The output directory holds the training run's files
(``config.json``, ``metrics.jsonl`` with a ``density`` column, ``last.pth``, ``state.pt``) and:

- ``density.json`` / ``density.txt``: per parameter tensor, its shape and density, plus the component,
  mean-layer and global densities (`DensityReport`);
- ``arch.json``: the derived dense architecture (`derive_architecture`) under ``config``, with its parameter
  count, the per-group ratios and BLFNet's density; ``vfi-mini train --arch DIR/arch.json`` reads it;
- ``sparse.pth``: the sparse weights (the same tensors as ``last.pth``) in the official format, carrying
  ``density`` and ``derived_config`` entries that ``vfi-mini info --weights`` shows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import ProcessingError, UsageError
from ..models import build_model, count_parameters
from ..train import TrainConfig, train
from ..weights import load_model, read_checkpoint, save_weights
from .density import DensityReport
from .derive import derive_architecture

log = logging.getLogger(__name__)

DEFAULT_NP = 2  # upstream's floor(20 epochs / 10), used when no --epochs gives the length of the run


def prune(
    weights: str | Path | None,
    data: list[str],
    out: str | Path,
    *,
    epochs: int | None = None,
    max_steps: int | None = None,
    time_budget: float | None = None,
    lambda_: float = 1e-4,
    np: int | None = None,
    eps: float = 1e-4,
    lr: float = 1e-3,
    crop: int = 256,
    batch_size: int = 2,
    seed: int = 0,
    threads: int | None = None,
    device: str = "auto",
    flow_threshold: float = 0.05,
    log_every: int = 10,
    progress: Callable[[dict[str, Any]], None] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Prune `weights` on `data` into `out`; see the module docstring for what is written.

    Args:
        weights: the trained model (any format `load_model` reads). Ignored with `resume`.
        data: training data specs, as for `vfi-mini train`.
        out: output directory; must not hold a run unless `resume`.
        epochs, max_steps, time_budget: when to stop (at least one, as for training).
        lambda_, np, eps: OBProx-SG settings (spec §12.1); `np` defaults to epochs // 10 with `epochs`,
            else 2. An epoch is one pass over `data` (its number of batches).
        lr: step size (constant, like upstream's 20-epoch run).
        crop, batch_size, seed, threads, device, log_every: as for training (upstream: crop 256, batch 2).
        flow_threshold: drop BLFNet when its density is at most this.
        progress: called with each training log row (it has a ``density`` entry).
        resume: continue the interrupted prune in `out` (new stopping criteria may be given).

    Returns:
        A summary: steps, global density, the derived config and its parameter count, the files written.

    Raises:
        UsageError: invalid options, or `out` already holds a run (without `resume`).
        WeightsError: `weights` does not load.
        InputError: `data` is unusable.
        ProcessingError: the weights became non-finite (lower `lr`).
        TrainingInterrupted: Ctrl-C / SIGTERM; the state is saved and `resume` continues.
    """
    out = Path(out)
    if resume:
        cfg = _stored_config(out)
        for key, value in (("epochs", epochs), ("max_steps", max_steps), ("time_budget", time_budget)):
            if value is not None:
                setattr(cfg, key, value)
        if threads is not None:
            cfg.threads = threads
    else:
        if weights is None:
            raise UsageError("give the --weights to prune")
        if not data:
            raise UsageError("give at least one --data")
        if lambda_ < 0 or eps < 0 or (np is not None and np < 0):
            raise UsageError("--lambda, --eps and --np must not be negative")
        if (out / "state.pt").is_file():
            raise UsageError(f"{out} already holds a run; use --resume to continue it or choose another --out")
        source = read_checkpoint(weights)
        arch = source.config.preset_name()
        if arch is None:  # the training loop reads custom architectures from a JSON file
            out.mkdir(parents=True, exist_ok=True)
            arch_file = out / "source_arch.json"
            arch_file.write_text(json.dumps({"config": source.config.to_dict()}, indent=1))
            arch = str(arch_file.resolve())
        cfg = TrainConfig(
            data=list(data),
            out=str(out),
            arch=arch,
            init=str(source.path),
            optimizer="obproxsg",
            obprox_lambda=lambda_,
            obprox_np=np if np is not None else (epochs // 10 if epochs is not None else DEFAULT_NP),
            obprox_eps=eps,
            finetune_flow=True,  # upstream prunes PWC-Net too (--finetune_pwc is always on there)
            loss="lap",
            lr=lr,
            schedule="constant",
            epochs=epochs,
            max_steps=max_steps,
            time_budget=time_budget,
            batch_size=batch_size,
            crop=crop,
            seed=seed,
            threads=threads,
            device=device,
            log_every=log_every,
        )
    summary = train(cfg, progress=progress, resume=resume)
    _warn_without_orthant_steps(out, cfg)
    return {**summary, **finish(out, flow_threshold=flow_threshold, step=summary["step"])}


def finish(out: str | Path, flow_threshold: float = 0.05, step: int = 0) -> dict[str, Any]:
    """Write the density report, ``arch.json`` and ``sparse.pth`` from the run's ``last.pth``.

    Raises:
        ProcessingError: the weights hold non-finite values.
    """
    out = Path(out)
    model, _ = load_model(out / "last.pth")
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise ProcessingError(f"pruned weights became non-finite (first: {bad[0]}); lower --lr")
    report = DensityReport.from_model(model)
    json_path, table_path = report.write(out)
    derivation = derive_architecture(model.config, report.density, report.numel, flow_threshold=flow_threshold)
    derived_params = count_parameters(build_model(derivation.config))
    arch_path = out / "arch.json"
    arch_path.write_text(
        json.dumps(
            {
                **derivation.to_dict(),
                "parameters": derived_params,
                "source": {
                    "config": model.config.to_dict(),
                    "parameters": count_parameters(model),
                    "global_density": report.global_density,
                },
            },
            indent=1,
        )
    )
    sparse_path = save_weights(
        model,
        out / "sparse.pth",
        epoch=step,
        metadata={"density": f"{report.global_density:.6f}", "derived_config": derivation.config.to_json()},
    )
    return {
        "global_density": report.global_density,
        "mean_layer_density": report.mean_layer_density,
        "flow_density": derivation.flow_density,
        "derived_config": derivation.config.to_dict(),
        "derived_parameters": derived_params,
        "source_parameters": count_parameters(model),
        "files": {
            "density": str(json_path),
            "table": str(table_path),
            "arch": str(arch_path),
            "weights": str(sparse_path),
        },
    }


def _stored_config(out: Path) -> TrainConfig:
    cfg = TrainConfig.from_run(out)
    if cfg.optimizer != "obproxsg":
        raise UsageError(f"--resume: {out} holds a training run, not a prune run")
    return cfg


def _warn_without_orthant_steps(out: Path, cfg: TrainConfig) -> None:
    state = torch.load(out / "state.pt", map_location="cpu", weights_only=True)["optimizer"].get("obprox", {})
    epoch, it = int(state.get("epoch", 0)), int(state.get("iter", 0))
    if (epoch, it) <= (cfg.obprox_np, 0):
        log.warning(
            "the run ended within its %d Prox-SG epoch(s), before any Orthant step, so the weights are "
            "hardly sparse; train longer or lower --np",
            cfg.obprox_np,
        )

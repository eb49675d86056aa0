"""`vfi-mini info`: architectures, bundled weights, what a weights file holds, compute backends."""

from __future__ import annotations

import click

from . import cli
from ._common import echo_json, handle_errors, setup_logging


def gather_info(weights: str | None) -> dict:
    import torch

    from .. import __version__
    from ..models import PRESETS, build_model, count_parameters
    from ..ops import available_backends
    from ..weights import bundled_weights, describe

    info: dict = {
        "version": __version__,
        "architectures": {
            name: {"parameters": count_parameters(build_model(cfg)), "config": cfg.to_dict()}
            for name, cfg in PRESETS.items()
        },
        "bundled_weights": [str(p) for p in bundled_weights()],
        "torch": torch.__version__,
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "op_backends": available_backends(),
        "cpu_threads": torch.get_num_threads(),
    }
    if weights is not None:
        info["weights"] = describe(weights)
    return info


@cli.command()
@click.option("--weights", "-w", metavar="FILE", help="Describe this weights file (path, bundled name or hf://...).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@handle_errors
def info(weights: str | None, as_json: bool) -> None:
    """Show architectures, bundled weights and, with --weights, what a weights file contains.

    Exits with code 4 if the weights file does not load.
    """
    setup_logging()
    data = gather_info(weights)
    if as_json:
        echo_json(data)
        return
    click.echo(f"vfi-mini {data['version']} (torch {data['torch']})")
    click.echo("architectures:")
    for name, a in data["architectures"].items():
        click.echo(f"  {name:14s} {a['parameters']:>12,} parameters")
    click.echo("bundled weights:")
    for p in data["bundled_weights"] or ["(none yet)"]:
        click.echo(f"  {p}")
    click.echo(
        f"devices: cpu ({data['cpu_threads']} threads)"
        + "".join(f", cuda:{i} {n}" for i, n in enumerate(data["cuda_devices"]))
    )
    click.echo(f"op backends: {', '.join(data['op_backends'])}")
    if "weights" in data:
        w = data["weights"]
        click.echo(f"weights {w['path']}:")
        click.echo(f"  architecture: {w['architecture']} ({w['config_source']})")
        click.echo(f"  parameters:   {w['parameters']:,}")
        if w["epoch"] is not None:
            click.echo(f"  epoch:        {w['epoch']}")
        click.echo("  loads:        yes (strict)")
        if "derived_architecture" in w:
            der = w["derived_architecture"]
            click.echo(f"  density:      {w['density']:.4f} (non-zero weights, from vfi-mini prune)")
            click.echo(f"  derived architecture: {der['name']}, {der['parameters']:,} parameters")
            for key, value in der["config"].items():
                click.echo(f"    {key + ':':15s} {value}")

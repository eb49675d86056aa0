"""Command-line interface: a thin shim over the library.

Each subcommand parses its options, calls one library function, and maps `vfi_mini.errors.VfiError`
subclasses to exit codes through `_common.handle_errors`. Set ``VFI_MINI_DEBUG=1`` to get full
tracebacks instead of one-line errors.
"""

from __future__ import annotations

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vfi-mini")
def cli() -> None:
    """Neural video frame-rate conversion with ST-MFNet Mini (CPU and CUDA)."""


def main() -> None:
    """Entry point of the ``vfi-mini`` console script."""
    cli.main(prog_name="vfi-mini")


# Each module adds its command to `cli`.
from . import bench, double, eval, frames, info, prune, train  # noqa: E402,F401

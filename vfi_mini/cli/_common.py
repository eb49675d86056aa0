"""Shared CLI plumbing: error-to-exit-code mapping, logging set-up, JSON output."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..errors import EXIT_ERROR, EXIT_INTERRUPTED, VfiError

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("vfi_mini")


def debug_enabled() -> bool:
    return os.environ.get("VFI_MINI_DEBUG", "") not in ("", "0")


def fail(message: str, code: int) -> None:
    """Print a one-line error on stderr and exit with `code`."""
    click.echo(f"vfi-mini: error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Map library exceptions to one-line messages and exit codes (no tracebacks)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except VfiError as exc:
            if debug_enabled():
                raise
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            click.echo("vfi-mini: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except MemoryError:
            if debug_enabled():
                raise
            fail("out of memory (try a smaller --tile or fewer threads)", EXIT_ERROR)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - last line of defence for batch pipelines
            if debug_enabled():
                raise
            fail(
                f"internal error: {type(exc).__name__}: {exc} (set VFI_MINI_DEBUG=1 for a traceback)",
                EXIT_ERROR,
            )

    return wrapper  # type: ignore[return-value]


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Log warnings (or more with -v) to stderr as `vfi-mini: warning: ...` lines."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose else logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("vfi-mini: %(levelname)s: %(message)s"))
    root = logging.getLogger("vfi_mini")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    logging.addLevelName(logging.WARNING, "warning")
    logging.addLevelName(logging.ERROR, "error")
    logging.addLevelName(logging.INFO, "info")
    logging.addLevelName(logging.DEBUG, "debug")


def echo_json(obj: Any) -> None:
    """Print one JSON object on one line on stdout."""
    click.echo(json.dumps(obj, separators=(",", ":"), default=str))

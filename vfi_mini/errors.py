"""Domain exceptions. The library raises these; the CLI maps each to an exit code.

Every message is one line that names the problem (a path, a key, a value) so that a user in a
batch pipeline can act on it without a traceback.
"""

from __future__ import annotations

# Exit codes of the command-line interface (documented in README.md).
EXIT_OK = 0
EXIT_ERROR = 1  # processing failed (model, encoder, disk full, ...)
EXIT_USAGE = 2  # bad options, output exists without -y, output == input
EXIT_INPUT = 3  # input missing, unreadable or invalid (no video stream, zero frames, ...)
EXIT_WEIGHTS = 4  # weights missing, corrupt or not matching any architecture
EXIT_INTERRUPTED = 130  # Ctrl-C


def batch_exit_code(codes: list[int]) -> int:
    """Exit code of a batch from the exit codes of its failed files: 0 when none failed, their common code
    when they all failed the same way (all inputs bad: 3), else 1."""
    if not codes:
        return EXIT_OK
    return codes[0] if len(set(codes)) == 1 else EXIT_ERROR


class VfiError(Exception):
    """Base class of every error vfi-mini reports to the user."""

    exit_code = EXIT_ERROR


class UsageError(VfiError):
    """The request itself is invalid (conflicting options, output already exists, ...)."""

    exit_code = EXIT_USAGE


class InputError(VfiError):
    """An input file or directory is missing, unreadable or not usable."""

    exit_code = EXIT_INPUT


class WeightsError(VfiError):
    """A weights file is missing, cannot be read, or does not fit the architecture."""

    exit_code = EXIT_WEIGHTS


class BackendUnavailable(VfiError):
    """An explicitly requested backend (CuPy, CUDA, bf16, ...) is not available here."""

    exit_code = EXIT_USAGE


class ProcessingError(VfiError):
    """Decoding, interpolation or encoding failed part-way."""

    exit_code = EXIT_ERROR

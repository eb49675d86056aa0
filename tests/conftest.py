"""Fixtures shared by every test module."""

import logging

import pytest


@pytest.fixture(autouse=True)
def _restore_logging():
    """CLI commands configure the `vfi_mini` logger for their own stderr; undo that after each test so that
    later tests (and pytest's caplog) see the library's records again."""
    logger = logging.getLogger("vfi_mini")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved

"""Suite-wide fixtures."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from masc.daemon.logs import LOGGER_NAME


@pytest.fixture(autouse=True)
def _restore_the_masc_logger() -> Iterator[None]:
    """A test that runs a CLI in-process (``masc sim``, logging setup) points the "masc"
    logger at that test's captured stderr and raises its level; left so, every later test
    logs at that level into a closed stream, and each record costs a printed traceback."""
    logger = logging.getLogger(LOGGER_NAME)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]

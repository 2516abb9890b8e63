"""Suite-wide fixtures."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from masc import compiled_modules
from masc.daemon.logs import LOGGER_NAME


def pytest_sessionstart(session: pytest.Session) -> None:
    """tests/test_compiled.py runs tests against the compiled build: this writes which
    modules ran compiled, so that it can tell it did not test the pure ones instead."""
    report = os.environ.get("MASC_TEST_REPORT_COMPILED")
    if report:
        import masc.sim.run  # noqa: F401  (imports every module the build compiles)

        Path(report).write_text(json.dumps(compiled_modules()))


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

"""Suite-wide fixtures."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
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


ROOT = Path(__file__).resolve().parent.parent
_EARLY_BUILD = pytest.StashKey[subprocess.Popen[bytes]]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """When tests/test_compiled.py will run, start building the compiled modules now, in
    the background and at the lowest CPU priority (benchmarks/compiled.py --build-only,
    about two minutes of one core): the test then finds the build ready, or waits for it
    under the build's lock, instead of compiling when its turn comes.  Not in a nested run
    (test_compiled's own), an xdist worker, a collect- or setup-only session, or with
    MASC_TEST_EARLY_BUILD=0."""
    config = session.config
    wanted = any(item.path.name == "test_compiled.py" for item in session.items)
    if (
        not wanted
        or os.environ.get("MASC_TEST_REPORT_COMPILED")
        or os.environ.get("MASC_TEST_EARLY_BUILD") == "0"
        or hasattr(config, "workerinput")
        or config.option.collectonly
        or getattr(config.option, "setuponly", False)
        or getattr(config.option, "setupplan", False)
    ):
        return
    # Its output is not read: if it fails, the test's own build fails the same way, and
    # says why.
    config.stash[_EARLY_BUILD] = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "compiled.py"), "--build-only"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, to stop it with its compiler
        preexec_fn=lambda: os.nice(19),  # the tests under way keep their core
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A session that ended before the build did (-x, ^C) stops it: a build stopped
    half-way leaves only a temporary directory, which the next build removes."""
    early = session.config.stash.get(_EARLY_BUILD, None)
    if early is not None and early.poll() is None:
        os.killpg(early.pid, signal.SIGTERM)
        early.wait()


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

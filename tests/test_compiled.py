"""The compiled build (setup.py: mypyc, ``MASC_COMPILE=1``) is the same program as the pure
Python one: the tests of the modules it compiles pass against it, and a simulation split
between two processes gives the same report to the figure.

Compiled code enforces the annotations at run time, binds module constants and methods
early, and refuses some Python (a dataclass field typed ``object``, async generators,
subclasses of ``weakref.ref``, pickled frozen dataclasses): each of these met in this code
was either changed or left out of the build (setup.py says which).  This is what finds the
next one.  The build is made once per content by benchmarks/compiled.py (a few minutes on
a fresh clone), at C optimization level 3, as the benchmarks use it."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPILED_PY = ROOT / "benchmarks" / "compiled.py"

# The tests of what the build compiles (setup.py's COMPILED), the property tests that feed
# the codec and the engine arbitrary input, and real daemon processes over TCP (one file of
# tests/e2e, 25 s: it runs ``masc run`` with this interpreter and environment, so compiled;
# all of tests/e2e would add over two minutes to CI).
SUITES = [
    "tests/protocol",
    "tests/properties",
    "tests/maas/test_grants.py",
    "tests/daemon/test_peer_runner.py",
    "tests/daemon/test_domain_runner.py",
    "tests/sim/test_network.py",
    "tests/sim/test_demand_model.py",
    "tests/sim/test_figure1.py",
    "tests/sim/test_claim_collide.py",
    "tests/sim/test_regressions.py",
    "tests/sim/test_split.py",
    "tests/e2e/test_daemons.py",
]

# Tests that look inside the pure modules in ways compiled callers do not see: they replace
# a module constant (compiled code has inlined it) or a method (compiled callers call it
# directly) to count calls or shrink a queue.
LOOK_INSIDE = {
    "tests/protocol/test_engine.py::"
    "test_too_many_claims_waiting_to_be_added_drop_the_occupied_set":
        "replaces the Final _ARRIVALS_KEPT",
    "tests/maas/test_grants.py::"
    "test_sync_cost_hundreds_of_grants_unchanged_space_places_nothing":
        "counts placements by replacing a module function",
    "tests/daemon/test_peer_runner.py::"
    "test_session_learns_at_once_when_a_non_reading_peer_is_dropped":
        "shrinks the module constant _OUTBOX_DEPTH",
    "tests/sim/test_demand_model.py::"
    "test_driver_visits_every_maas_due_in_one_tick_at_once":
        "counts visits by replacing DemandDriver._visit",
}  # fmt: skip


def _compiled(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(COMPILED_PY), *command],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=1800,
    )


def _expected_modules() -> list[str]:
    compiled = runpy.run_path(str(ROOT / "setup.py"))["COMPILED"]
    return sorted(str(p).removesuffix(".py").replace("/", ".") for p in compiled)


def test_the_tests_of_the_compiled_modules_pass_against_the_compiled_build(
    tmp_path: Path,
) -> None:
    loaded = tmp_path / "compiled-modules.json"
    deselect = [arg for test in LOOK_INSIDE for arg in ("--deselect", test)]
    done = _compiled(
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        # The checkout's own masc (pure) must not come before the compiled copy.
        "--import-mode=append",
        *deselect,
        *SUITES,
        env={"MASC_TEST_REPORT_COMPILED": str(loaded)},
    )
    tail = (done.stdout + done.stderr)[-6000:]
    assert done.returncode == 0, tail
    assert " passed" in done.stdout and " failed" not in done.stdout, tail
    # tests/conftest.py wrote what ran compiled: every module setup.py lists.
    assert json.loads(loaded.read_text()) == _expected_modules()


def test_a_split_simulation_reports_the_same_figures_compiled_and_pure(tmp_path: Path) -> None:
    """Two processes: the bridge's messages and each worker's figures cross by pickle,
    which compiled classes must survive too."""
    text = (ROOT / "scenarios" / "strawman.toml").read_text()
    small = text
    for old, new in (
        ("tlds = 128 ", "tlds = 4 "),
        ("children = 64 ", "children = 8 "),
        ('duration = "30d"', 'duration = "8d"'),
    ):
        assert old in small, old  # else this would run the whole strawman
        small = small.replace(old, new)
    scenario = tmp_path / "small.toml"
    scenario.write_text(small)
    reports, statuses = {}, {}
    for build in ("pure", "compiled"):
        out = tmp_path / build
        command = ["-m", "masc", "sim", str(scenario), "--out", str(out), "--no-plot"]
        if build == "pure":
            done = subprocess.run(
                [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=600
            )
        else:
            done = _compiled(*command)
        report = out / "report.json"
        assert report.exists(), done.stdout + done.stderr
        statuses[build] = done.returncode
        reports[build] = json.loads(report.read_text())
    assert statuses["compiled"] == statuses["pure"]  # 0, or 1: demand left waiting
    pure, compiled = reports["pure"], reports["compiled"]
    assert pure["totals"].pop("compiled_modules") == 0
    assert compiled["totals"].pop("compiled_modules") == len(_expected_modules())
    for report in (pure, compiled):
        del report["wall_seconds"], report["peak_rss_bytes"]
    assert pure["totals"]["processes"] == 2 and pure["totals"]["messages"] > 1000
    assert pure["safety"] == []
    # As text: compiled code converts an int stored in a float attribute, and 5 == 5.0.
    assert json.dumps(compiled, sort_keys=True) == json.dumps(pure, sort_keys=True)

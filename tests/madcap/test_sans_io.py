"""The line never crossed, for MADCAP: the sans-IO half of masc/madcap imports only the
standard library minus I/O, clock and randomness (STYLE.md), and within masc only other
sans-IO modules (its own and masc.protocol).  The list of modules is explicit: a new
module in masc/madcap must be put on one side or the other before the suite passes."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import masc.madcap
from tests.protocol.test_sans_io import FORBIDDEN, imported_roots

PACKAGE = Path(masc.madcap.__file__).parent
# Issue 6 design, "Sans-IO modules".
SANS_IO = ("constants", "messages", "codec", "nesting", "rules", "retransmit", "scopes", "pool",
           "server")  # fmt: skip
# The I/O half: allowed anything (trio, sqlite3, pydantic, time, random).
WITH_IO = ("__init__", "config", "store", "client")
# Those present now (helpers land their modules one by one); none is skipped.
PRESENT = [name for name in SANS_IO if (PACKAGE / f"{name}.py").exists()]


def masc_imports(path: Path) -> list[str]:
    """Every masc module ``path`` imports, relative imports resolved against masc.madcap."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "masc"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join(["masc", "madcap"][: 3 - node.level])
                base = f"{parent}.{base}" if base else parent
            if base.split(".")[0] != "masc":
                continue
            if base in ("masc", "masc.madcap", "masc.protocol"):
                found += [f"{base}.{a.name}" for a in node.names]  # `from pkg import module`
            else:
                found.append(base)
    return found


def test_the_core_modules_exist() -> None:
    # The codec's own three and the lead's two are here from the start.
    assert {"constants", "messages", "codec", "nesting", "rules"} <= set(PRESENT)


@pytest.mark.parametrize("name", PRESENT)
def test_sans_io_module_imports_nothing_forbidden(name: str) -> None:
    assert imported_roots(PACKAGE / f"{name}.py") & FORBIDDEN == set()


@pytest.mark.parametrize("name", PRESENT)
def test_sans_io_module_imports_only_stdlib_and_sans_io_masc(name: str) -> None:
    path = PACKAGE / f"{name}.py"
    allowed = set(sys.stdlib_module_names) | {"masc", "__future__"}
    assert imported_roots(path) - allowed == set()
    for module in masc_imports(path):
        parts = module.split(".")
        in_madcap = parts[:2] == ["masc", "madcap"] and len(parts) > 2 and parts[2] in SANS_IO
        in_protocol = parts[:2] == ["masc", "protocol"]
        assert in_madcap or in_protocol, f"{name}.py imports {module}"


def test_every_madcap_module_is_on_one_side_of_the_line() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules - set(SANS_IO) - set(WITH_IO) == set()


def test_the_check_would_catch_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import random\nfrom masc.madcap import client\nfrom .store import x\n"
        "from masc.madcap.codec import decode\n"
    )
    assert imported_roots(bad) & FORBIDDEN == {"random"}
    assert masc_imports(bad) == ["masc.madcap.client", "masc.madcap.store", "masc.madcap.codec"]

"""The line never crossed: masc/protocol imports only the standard library, and not the parts
of it that do I/O, read the clock or draw randomness (STYLE.md).  Time, randomness and bytes
are inputs; that is what lets the same code run under a virtual clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import masc.protocol

CORE = Path(masc.protocol.__file__).parent
FORBIDDEN = {
    "trio", "anyio", "asyncio", "socket", "select", "selectors", "ssl", "sqlite3", "pydantic",
    "time", "random", "secrets", "os", "subprocess", "threading", "logging", "datetime",
}  # fmt: skip
MODULES = sorted(CORE.rglob("*.py"))


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(CORE)) for p in MODULES])
def test_core_module_imports_nothing_forbidden(path: Path) -> None:
    assert imported_roots(path) & FORBIDDEN == set()


def test_core_imports_only_stdlib_and_itself() -> None:
    import sys

    allowed = set(sys.stdlib_module_names) | {"masc", "__future__"}
    for path in MODULES:
        outside = imported_roots(path) - allowed
        assert not outside, f"{path.relative_to(CORE)} imports {outside}"
    # ... and within masc, only the core itself.
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("masc"):
                assert node.module.startswith("masc.protocol"), (path, node.module)


def test_the_forbidden_list_would_catch_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom trio import sleep\n")
    assert imported_roots(bad) & FORBIDDEN == {"time", "trio"}

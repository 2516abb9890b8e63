"""Run a Python command against the compiled build of this checkout (setup.py, mypyc).

    python benchmarks/compiled.py [--opt N] SCRIPT [ARGS...]
    python benchmarks/compiled.py [--opt N] -m MODULE [ARGS...]
    python benchmarks/compiled.py [--opt N] --build-only

The modules setup.py lists are compiled once per content (cached under
build/compiled/<hash of every masc source, setup.py, pyproject.toml and the versions of
Python, mypy, trio and pydantic>), then a fresh copy of this checkout's ``masc`` package
with the compiled modules beside their sources is put first on PYTHONPATH, and the command
runs with this interpreter.  A compiled module loads instead of its ``.py`` (Python prefers
an extension module in the same directory); every other module is the checkout's current
source.  ``--opt`` (C optimization level 0-3, default 3) must come first.  ``--build-only``
builds (or finds) the build and runs nothing: the test suite starts it in the background
when it will run tests/test_compiled.py (tests/conftest.py).

Compiling takes about two minutes (``--opt 0``: a little less; the C code is the same).
Needs mypy, setuptools, a C compiler and the Python headers.  Old builds stay until
removed (``rm -rf build/compiled``), some 25 MB each.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import runpy
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILDS = ROOT / "build" / "compiled"


def compiled_modules() -> list[str]:
    """setup.py's COMPILED list (setup() runs only as a script)."""
    modules = runpy.run_path(str(ROOT / "setup.py"))["COMPILED"]
    return [str(m) for m in modules]


def stamp(opt: str) -> str:
    """What the build depends on: every masc source (mypyc reads the modules the compiled
    ones import, and copies their constants in), setup.py and pyproject.toml (mypy's
    settings), and the versions of Python, mypy and the dependencies it type-checks
    against."""
    digest = hashlib.sha256()
    sources = sorted((ROOT / "masc").rglob("*.py"))
    for path in [*sources, ROOT / "setup.py", ROOT / "pyproject.toml"]:
        name = path.relative_to(ROOT).as_posix()
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    try:
        versions = [metadata.version(d) for d in ("mypy", "trio", "pydantic")]
    except metadata.PackageNotFoundError as missing:
        sys.exit(f"the compiled build needs {missing.name}: pip install -e '.[test]'")
    digest.update(f"{versions} {sys.version} {opt}".encode())
    return digest.hexdigest()[:16]


def build(opt: str) -> Path:
    """The directory of the compiled extension modules for the current sources: built
    under a lock (two runs at once build it once) into a temporary directory, renamed
    into place when complete."""
    out = BUILDS / stamp(opt)
    BUILDS.mkdir(parents=True, exist_ok=True)
    with (BUILDS / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Only the lock's holder builds: a temporary directory seen now is a build that
        # was stopped half-way (the test suite stops its early build when it ends first).
        for stopped in BUILDS.glob("building-*"):
            shutil.rmtree(stopped, ignore_errors=True)
        if not out.exists():
            _compile(out, opt)
    return out


def _compile(out: Path, opt: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="building-", dir=BUILDS))
    modules = compiled_modules()
    print(f"compiling {len(modules)} modules with mypyc into {out} ...", file=sys.stderr)
    env = {
        **os.environ,
        "MASC_COMPILE": "1",
        "MASC_COMPILE_OPT": opt,
        "MASC_COMPILE_C_DIR": str(work / "c"),
    }
    log = work / "build.log"
    with log.open("w") as sink:
        done = subprocess.run(
            [
                sys.executable,
                "setup.py",
                "build_ext",
                "--build-lib",
                str(work / "lib"),
                "--build-temp",
                str(work / "temp"),
            ],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        sys.exit(f"compiling failed (exit {done.returncode}), see {log}:\n{_tail(log)}")
    shutil.rmtree(work / "temp", ignore_errors=True)
    work.rename(out)


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def tree(built: Path) -> Path:
    """A fresh copy of the checkout's package with the compiled modules beside it (one
    per run: runs at once do not share it)."""
    run = Path(tempfile.mkdtemp(prefix="run-", dir=built))
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    # Only the checkout's sources: an extension module left in it (an editable compiled
    # install) would shadow the current source of a module no longer compiled.
    shutil.copytree(
        ROOT / "masc", run / "masc", ignore=shutil.ignore_patterns("__pycache__", f"*{suffix}")
    )
    for library in (built / "lib").rglob(f"*{suffix}"):
        target = run / library.relative_to(built / "lib")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(library, target)
    return run


def main() -> int:
    argv = sys.argv[1:]
    opt = "3"
    if argv[:1] == ["--opt"] and len(argv) > 1 and argv[1] in ("0", "1", "2", "3"):
        opt, argv = argv[1], argv[2:]
    if (
        not argv
        or argv[0] in ("-h", "--help", "--opt")
        or (argv[0] == "--build-only" and len(argv) > 1)
    ):
        print(__doc__, file=sys.stderr)
        return 2
    built = build(opt)
    if argv == ["--build-only"]:
        print(built)
        return 0
    run = tree(built)
    if stamp(opt) != built.name:  # edited while compiling: the copy is not what was built
        shutil.rmtree(run, ignore_errors=True)
        sys.exit("the sources changed while compiling; run again")
    try:
        path = os.pathsep.join(p for p in (str(run), os.environ.get("PYTHONPATH", "")) if p)
        # PYTHONSAFEPATH: neither the working directory nor the script's may put the
        # checkout's own masc (no compiled modules) before the copy.
        env = {**os.environ, "PYTHONPATH": path, "PYTHONSAFEPATH": "1"}
        return subprocess.call([sys.executable, *argv], env=env)
    finally:
        shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

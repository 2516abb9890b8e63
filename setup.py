"""Build hook for a compiled masc (docs/architecture.md, "Compiled build").

The package is plain Python and installs as such.  With ``MASC_COMPILE=1`` the modules in
:data:`COMPILED` (the per-message path: codec, session FSM, claim engine, allocator, the
peer and domain runners, the simulator's network and demand) are also compiled to C
extension modules with mypyc, from the same type-checked source; each then loads instead
of its ``.py``.  mypyc type-checks them against the installed dependencies, so those come
first; it also needs a C compiler and the Python headers::

    pip install mypy setuptools wheel .
    MASC_COMPILE=1 pip install --no-build-isolation --force-reinstall --no-deps .

``MASC_COMPILE_OPT`` sets the C optimization level (0-3, default 3), ``MASC_COMPILE_C_DIR``
where the generated C goes (default ``build``).
"""

from __future__ import annotations

import os

from setuptools import setup

# Compiled together as one group (calls between them are C calls).  Not here: the wire
# messages (claims.shared keeps weak references to Claims, which compiled classes cannot
# have) and masc.protocol.sharing (a weakref.ref subclass); modules whose frozen
# dataclasses cross between simulation processes by pickle (masc.sim.metrics, split,
# safety), which compiled frozen dataclasses do not survive (a mutable one does:
# masc.sim.demand's DomainDemand); and everything off the per-message path.
COMPILED = [
    "masc/protocol/allocation.py",
    "masc/protocol/claims.py",
    "masc/protocol/constants.py",
    "masc/protocol/engine.py",
    "masc/protocol/errors.py",
    "masc/protocol/events.py",
    "masc/protocol/limits.py",
    "masc/protocol/open_checks.py",
    "masc/protocol/propagation.py",
    "masc/protocol/session.py",
    "masc/protocol/space.py",
    "masc/protocol/wire/codec.py",
    "masc/protocol/wire/framing.py",
    "masc/maas/grants.py",
    "masc/daemon/domain.py",
    "masc/daemon/peer.py",
    "masc/sim/demand.py",
    "masc/sim/network.py",
]


def _ext_modules() -> list[object]:
    if os.environ.get("MASC_COMPILE", "") != "1":
        return []
    from mypyc.build import mypycify

    return list(
        mypycify(
            COMPILED,
            opt_level=os.environ.get("MASC_COMPILE_OPT", "3"),
            # Where the generated C goes (benchmarks/compiled.py: a directory per build).
            target_dir=os.environ.get("MASC_COMPILE_C_DIR", "build"),
        )
    )


if __name__ == "__main__":  # as setuptools runs it; benchmarks/compiled.py reads COMPILED
    setup(ext_modules=_ext_modules())

"""masc: an implementation of the MASC protocol (RFC 2909) and its MALLOC companions."""

import sys
from importlib.machinery import EXTENSION_SUFFIXES

__version__ = "0.1.0"


def compiled_modules() -> list[str]:
    """The loaded masc modules that run compiled (setup.py's ``MASC_COMPILE=1`` build), so
    that figures measured can say which build they are of."""
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name.startswith("masc.")
        and str(getattr(module, "__file__", "") or "").endswith(tuple(EXTENSION_SUFFIXES))
    )

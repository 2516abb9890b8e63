"""Durations as operators write them: ``"48h"``, ``"10m"``, ``"1h30m"``, ``"0.5s"`` or seconds.

RFC 2909 states its timers in whatever unit reads best — WAITING_PERIOD is 48 hours and
INITIATE_CLAIM_DELAY 10 minutes (§6), hold times are seconds (§7.2) — so the configuration
accepts the same spellings instead of making operators multiply by 3600.

The syntax is Go's ``time.ParseDuration`` plus days and weeks: one or more ``<number><unit>``
groups with no spaces, units ``ms s m h d w``. A bare TOML number is seconds. Arithmetic is
done on exact fractions, so ``"1.1h"`` is exactly 3960 seconds and a whole-seconds check on
the result (the hold time) is not fooled by binary floating point.

Standard library only: this module is shared by the config models and anything that wants to
read a duration from a command line.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Final

__all__ = ["UNIT_SECONDS", "parse_duration"]

# Seconds per unit. "m" is minutes (as in Go and systemd), never months: a month has no fixed
# length and no MASC timer needs one.
UNIT_SECONDS: Final[dict[str, Fraction]] = {
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
    "d": Fraction(86_400),
    "w": Fraction(604_800),
}

# "ms" must be tried before "m" so that "10ms" is not read as 10 minutes followed by junk.
_GROUP: Final = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d|w)")

_SYNTAX_HINT: Final = (
    "expected <number><unit> groups such as '48h', '10m', '1h30m' or '0.5s' "
    "(units: ms, s, m, h, d, w; no spaces)"
)


def parse_duration(value: object) -> float:
    """Return ``value`` as a non-negative, finite number of seconds.

    Accepts an ``int`` or ``float`` (seconds) or a duration string. Raises ``ValueError`` with
    a message fit to show an operator (it becomes the text of a ``ConfigError``); anything
    that is not a number or a string is a ``ValueError`` too, so a TOML ``true`` or a TOML
    time-of-day cannot slip through as a timer.
    """
    # bool is an int subclass; `hold_time = true` is a mistake, not one second.
    if isinstance(value, bool):
        raise ValueError(f"expected seconds or a duration string, got {str(value).lower()}")
    if isinstance(value, int | float):
        return _check_seconds(float(value), repr(value))
    if not isinstance(value, str):
        raise ValueError(
            f"expected seconds or a duration string, got {type(value).__name__} {value}"
        )
    return _parse_string(value)


def _parse_string(text: str) -> float:
    stripped = text.strip()
    if not stripped:
        raise ValueError("empty duration; " + _SYNTAX_HINT)
    if stripped.startswith("-"):
        raise ValueError(f"duration {text!r} is negative; durations must be >= 0")
    total = Fraction(0)
    pos = 0
    while pos < len(stripped):
        match = _GROUP.match(stripped, pos)
        if match is None:
            if _looks_numeric(stripped):
                raise ValueError(
                    f"duration {text!r} has no unit; write '{stripped}s' or a bare number of"
                    " seconds"
                )
            if pos > 0:
                raise ValueError(f"invalid duration {text!r} at {stripped[pos:]!r}: {_SYNTAX_HINT}")
            raise ValueError(f"invalid duration {text!r}: {_SYNTAX_HINT}")
        number, unit = match.groups()
        total += Fraction(number) * UNIT_SECONDS[unit]
        pos = match.end()
    try:
        seconds = float(total)
    except OverflowError:
        raise ValueError(f"duration {text!r} is too large") from None
    return _check_seconds(seconds, repr(text))


def _looks_numeric(text: str) -> bool:
    """True for strings such as ``"240"`` that are missing only their unit."""
    return re.fullmatch(r"\d+(?:\.\d+)?|\.\d+", text) is not None


def _check_seconds(seconds: float, shown: str) -> float:
    if math.isnan(seconds):
        raise ValueError("duration is not a number (nan)")
    if seconds < 0:
        raise ValueError(f"duration {shown} is negative; durations must be >= 0")
    if math.isinf(seconds):
        raise ValueError(f"duration {shown} is too large")
    return seconds

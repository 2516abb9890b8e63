"""parse_duration: every accepted spelling and every rejection, with its message."""

from __future__ import annotations

import datetime
import math

import pytest

from masc.config import parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        # bare numbers are seconds
        (0, 0.0),
        (240, 240.0),
        (0.5, 0.5),
        (1.25, 1.25),
        # one group per unit
        ("250ms", 0.25),
        ("30s", 30.0),
        ("10m", 600.0),
        ("48h", 172_800.0),
        ("30d", 2_592_000.0),
        ("2w", 1_209_600.0),
        # fractions
        ("0.5s", 0.5),
        (".5s", 0.5),
        ("1.5h", 5400.0),
        ("1.1h", 3960.0),  # exact: summed as fractions, not binary floats
        # several groups, any order
        ("1h30m", 5400.0),
        ("1d12h", 129_600.0),
        ("1m30s500ms", 90.5),
        ("30s1m", 90.0),
        # zero and surrounding whitespace
        ("0s", 0.0),
        ("  10m ", 600.0),
    ],
)
def test_accepted_forms(value: int | float | str, seconds: float) -> None:
    result = parse_duration(value)
    assert result == seconds
    assert isinstance(result, float)


def test_ms_is_not_minutes() -> None:
    assert parse_duration("10ms") == 0.01
    assert parse_duration("10m") == 600.0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty duration"),
        ("   ", "empty duration"),
        ("-5s", "is negative"),
        ("-1h30m", "is negative"),
        (-1, "is negative"),
        (-0.5, "is negative"),
        ("240", "has no unit; write '240s'"),
        ("1.5", "has no unit"),
        ("10", "has no unit"),
        ("h", "invalid duration 'h'"),
        ("10x", "invalid duration '10x'"),
        ("10 m", "invalid duration '10 m'"),
        ("1h 30m", "at ' 30m'"),
        ("1h30", "at '30'"),
        ("1.s", "invalid duration '1.s'"),
        ("1e3s", "invalid duration '1e3s'"),
        ("10M", "invalid duration '10M'"),
        ("ten minutes", "invalid duration"),
        ("+5s", "invalid duration"),
        (math.nan, "not a number"),
        (math.inf, "too large"),
        ("9" * 400 + "w", "too large"),
    ],
)
def test_rejected_strings_and_numbers(value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    assert message in str(info.value)


def test_syntax_error_lists_the_units() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration("10x")
    assert "units: ms, s, m, h, d, w" in str(info.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "got true"),
        (False, "got false"),
        (None, "got NoneType None"),
        ([1], "got list [1]"),
        (datetime.time(0, 4), "got time"),
    ],
)
def test_rejected_types(value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    assert "expected seconds or a duration string" in str(info.value)
    assert message in str(info.value)

"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.daemons import Daemon


@pytest.fixture
def cluster() -> Iterator[dict[int, Daemon]]:
    """Daemons a test starts; all are stopped afterwards, whatever happened."""
    daemons: dict[int, Daemon] = {}
    yield daemons
    for d in daemons.values():
        d.stop()

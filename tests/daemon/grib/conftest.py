from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.netns_kit import namespace


@pytest.fixture
def netns() -> Iterator[str]:
    with namespace("grib") as name:
        yield name

"""Fixtures: every reactor-level test runs once per selector class available here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reactor import Reactor
from tests.helpers import SELECTOR_NAMES


@pytest.fixture(params=SELECTOR_NAMES)
def reactor(request: pytest.FixtureRequest) -> Iterator[Reactor]:
    loop = Reactor(request.param)
    yield loop
    loop.close()

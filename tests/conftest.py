"""Fixtures: every reactor-level test runs once per selector class available here, in debug
mode, so every protocol the test creates has its callback order checked (reactor.checker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reactor import Reactor
from tests.helpers import SELECTOR_NAMES


@pytest.fixture(params=SELECTOR_NAMES)
def reactor(request: pytest.FixtureRequest) -> Iterator[Reactor]:
    loop = Reactor(request.param, debug=True)
    yield loop
    loop.close()
    assert not loop.contract_violations, loop.contract_violations

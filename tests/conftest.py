"""Fixtures: every reactor-level test runs once per selector class available here, in debug
mode, so every protocol the test creates has its callback order checked (reactor.checker)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from reactor import Reactor
from tests.helpers import SELECTOR_NAMES, Server, start_server
from tests.processes import Launcher
from tests.redis_process import RedisServer
from tests.tls_certs import Certificates, make_certificates, require_openssl


@pytest.fixture(params=SELECTOR_NAMES)
def reactor(request: pytest.FixtureRequest) -> Iterator[Reactor]:
    loop = Reactor(request.param, debug=True)
    yield loop
    loop.close()
    assert not loop.contract_violations, loop.contract_violations


@pytest.fixture
def launch() -> Iterator[Launcher]:
    """Starts example programs the way a user does; every one is stopped when the test ends."""
    launcher = Launcher()
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture
def serve(reactor: Reactor) -> Iterator[Callable[..., Server]]:
    """``serve(factory, blocking_clients=True)`` listens on loopback with ``factory``
    (``tests/helpers.py``'s ``Server``); closed when the test ends."""
    servers: list[Server] = []
    yield start_server(reactor, servers)
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A test CA and server certificates signed by it (``tests/tls_certs.py``), made once."""
    require_openssl()
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh ``redis-server`` on a free loopback port, no persistence; stopped after."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()

"""Connector: refusal, timeout, unresolvable names, cancel, success and address fallback."""

from __future__ import annotations

import errno
import logging
import select
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import reactor.connector as connector_module
from reactor import ByteBuffer, Protocol, Reactor
from reactor.connection import Connection, ConnectionState
from reactor.connector import Connector
from tests.helpers import Echo, run_until
from tests.processes import ipv6_loopback_available


class Client(Protocol):
    """Records what happened; says hello on connect and keeps the replies."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.received = bytearray()
        self.conn: Connection | None = None

    def connection_made(self, transport: Connection) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.conn = transport
        self.log.append(("made", transport))
        transport.write(b"hello")

    def data_received(self, buffer: ByteBuffer) -> None:
        self.received += buffer.take()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.log.append(("lost", exc))


class Attempt:
    """One connect_tcp call with everything it reports recorded."""

    def __init__(self, reactor: Reactor, host: str, port: int, **options: Any) -> None:
        self.events: list[Any] = []
        self.errors: list[BaseException] = []
        self.protocols: list[Client] = []

        def factory() -> Client:
            protocol = Client(self.events)
            self.protocols.append(protocol)
            return protocol

        options.setdefault("on_error", self.errors.append)
        self.connector = reactor.connect_tcp(factory, host, port, **options)

    def close(self) -> None:
        for protocol in self.protocols:
            if protocol.conn is not None:
                protocol.conn.abort()
        self.connector.cancel()


@pytest.fixture
def attempts(reactor: Reactor) -> Iterator[Callable[..., Attempt]]:
    made: list[Attempt] = []

    def start(host: str, port: int, **options: Any) -> Attempt:
        attempt = Attempt(reactor, host, port, **options)
        made.append(attempt)
        return attempt

    yield start
    for attempt in made:
        attempt.close()
    reactor.run_once(0)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: a SYN to it is answered with RST (refused)."""
    reserved = socket.socket()
    reserved.bind(("127.0.0.1", 0))
    yield reserved.getsockname()[1]
    reserved.close()


@pytest.fixture
def echo_server(reactor: Reactor) -> Iterator[Any]:
    listener = reactor.listen_tcp(Echo, "127.0.0.1", 0)
    yield listener
    for connection in list(listener.connections):
        connection.abort()
    listener.close()
    reactor.run_once(0)


@pytest.fixture
def blackhole() -> Iterator[tuple[str, int]]:
    """A listener whose accept queue is full, so the kernel drops new SYNs: a connect to it
    neither succeeds nor fails until the connector's own timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    address = server.getsockname()
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(address)
            fillers.append(filler)
            _, writable, _ = select.select([], [filler], [], 0.2)
            if not writable:  # this filler's SYN was dropped: the queue is full
                break
        else:
            pytest.skip("the kernel completed every connect: cannot fill an accept queue here")
        yield address
    finally:
        for filler in fillers:
            filler.close()
        server.close()


# -- failures --------------------------------------------------------------------------------


def test_refused_connect_reports_connection_refused_on_a_later_pass(
    reactor: Reactor, attempts: Callable[..., Attempt], closed_port: int
) -> None:
    attempt = attempts("127.0.0.1", closed_port)
    assert attempt.errors == []  # never from inside connect_tcp()
    assert "connecting" in repr(attempt.connector)
    run_until(reactor, lambda: attempt.errors, timeout=2.0)
    [error] = attempt.errors
    assert isinstance(error, ConnectionRefusedError)
    assert error.errno == errno.ECONNREFUSED
    assert attempt.protocols == []
    assert attempt.connector.connection is None
    assert len(reactor._timers) == 0  # the timeout was cancelled
    assert len(reactor.poller) == 1  # only the waker: the socket is gone
    assert "done" in repr(attempt.connector)
    for _ in range(3):
        reactor.run_once(0)
    assert len(attempt.errors) == 1


def test_connect_timeout_reports_timeout_error(
    reactor: Reactor, attempts: Callable[..., Attempt], blackhole: tuple[str, int]
) -> None:
    start = time.monotonic()
    attempt = attempts(*blackhole, timeout=0.3)
    run_until(reactor, lambda: attempt.errors, timeout=3.0)
    elapsed = time.monotonic() - start
    [error] = attempt.errors
    assert isinstance(error, TimeoutError)
    assert "timed out after 0.3s" in str(error)
    assert 0.29 <= elapsed < 1.0
    assert attempt.protocols == []
    assert len(reactor.poller) == 1  # the connecting socket was unregistered and closed


#: A name no resolver knows; ``unresolvable`` answers for it as getaddrinfo would, without
#: asking this machine's DNS server (which, offline or behind a rewriting resolver, may take
#: seconds or answer with an address).
UNRESOLVABLE_HOST = "no-such-host.invalid"


@pytest.fixture
def unresolvable(monkeypatch: pytest.MonkeyPatch) -> str:
    def resolve(host: str, port: int, *, passive: bool) -> list[Any]:
        assert host == UNRESOLVABLE_HOST
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(connector_module, "resolve_stream", resolve)
    return UNRESOLVABLE_HOST


def test_unresolvable_name_reports_gaierror_on_a_later_pass(
    reactor: Reactor, attempts: Callable[..., Attempt], unresolvable: str
) -> None:
    attempt = attempts(unresolvable, 80)
    assert attempt.errors == []
    run_until(reactor, lambda: attempt.errors, timeout=5.0)
    [error] = attempt.errors
    assert isinstance(error, socket.gaierror)
    assert attempt.protocols == []
    assert len(reactor._timers) == 0


def test_without_on_error_a_failure_is_logged_as_a_warning(
    reactor: Reactor, attempts: Callable[..., Attempt], closed_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="reactor"):
        attempts("127.0.0.1", closed_port, on_error=None)
        run_until(reactor, lambda: caplog.records, timeout=2.0)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert f"connect to 127.0.0.1:{closed_port} failed" in record.getMessage()
    assert "ECONNREFUSED" in record.getMessage()


def test_an_exception_from_on_error_is_logged_and_the_loop_goes_on(
    reactor: Reactor, attempts: Callable[..., Attempt], closed_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def on_error(exc: BaseException) -> None:
        raise ValueError("handler bug")

    with caplog.at_level(logging.ERROR, logger="reactor"):
        attempts("127.0.0.1", closed_port, on_error=on_error)
        run_until(reactor, lambda: caplog.records, timeout=2.0)
    [record] = caplog.records
    assert "on_error" in record.getMessage()
    assert isinstance(record.exc_info[1], ValueError)  # type: ignore[index]
    ran: list[int] = []
    reactor.call_soon(ran.append, 1)
    reactor.run_once(0)
    assert ran == [1]


# -- cancel ----------------------------------------------------------------------------------


def test_cancel_before_the_handshake_completes_calls_nothing(
    reactor: Reactor, attempts: Callable[..., Attempt], echo_server: Any
) -> None:
    attempt = attempts(*echo_server.address, timeout=0.05)
    attempt.connector.cancel()
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        reactor.run_once(0.02)
    assert attempt.protocols == []
    assert attempt.errors == []
    assert attempt.connector.connection is None
    assert len(reactor._timers) == 0
    assert attempt.connector._sock is None


@pytest.mark.parametrize("where", ["refused", "unresolvable"])
def test_cancel_after_a_failure_was_scheduled_calls_nothing(
    reactor: Reactor, attempts: Callable[..., Attempt], closed_port: int, where: str,
    request: pytest.FixtureRequest,
) -> None:
    if where == "refused":
        attempt = attempts("127.0.0.1", closed_port)
    else:
        attempt = attempts(request.getfixturevalue("unresolvable"), 80)
    attempt.connector.cancel()
    for _ in range(5):
        reactor.run_once(0.02)
    assert attempt.errors == []
    assert attempt.protocols == []


# -- success ---------------------------------------------------------------------------------


def test_successful_connect_makes_a_connection_to_the_listener(
    reactor: Reactor, attempts: Callable[..., Attempt], echo_server: Any
) -> None:
    attempt = attempts(*echo_server.address)
    assert attempt.events == []
    run_until(reactor, lambda: attempt.events, timeout=2.0)
    [(event, conn)] = attempt.events
    assert event == "made"
    assert conn is attempt.connector.connection
    assert conn.state is ConnectionState.OPEN
    assert conn.peer_address == echo_server.address
    assert conn.peer_name == f"127.0.0.1:{echo_server.address[1]}"
    assert conn._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert attempt.errors == []
    assert len(reactor._timers) == 0  # the timeout was cancelled
    protocol = attempt.protocols[0]
    run_until(reactor, lambda: protocol.received == b"hello", timeout=2.0)
    run_until(reactor, lambda: len(echo_server.connections) == 1, timeout=2.0)
    [server_side] = echo_server.connections
    assert server_side.peer_address == conn.local_address


def test_without_timeout_no_timer_is_armed(
    reactor: Reactor, attempts: Callable[..., Attempt], echo_server: Any
) -> None:
    attempt = attempts(*echo_server.address, timeout=None)
    assert len(reactor._timers) == 0
    run_until(reactor, lambda: attempt.events, timeout=2.0)


def test_failing_protocol_factory_closes_the_socket_and_is_logged(
    reactor: Reactor, echo_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def factory() -> Protocol:
        raise RuntimeError("no protocol for you")

    errors: list[BaseException] = []
    with caplog.at_level(logging.ERROR, logger="reactor"):
        connector = reactor.connect_tcp(factory, *echo_server.address, on_error=errors.append)
        run_until(reactor, lambda: caplog.records, timeout=2.0)
    assert "protocol factory" in caplog.records[0].getMessage()
    assert connector.connection is None
    run_until(reactor, lambda: echo_server.connections, timeout=2.0)
    [server_side] = echo_server.connections
    # The client socket was closed: the server side reads EOF and closes too.
    run_until(reactor, lambda: server_side.state is ConnectionState.CLOSED, timeout=2.0)
    assert len(reactor.poller) == 2  # the waker and the listener: nothing of the client is left


def test_reset_between_handshake_and_getpeername_reaches_on_error(reactor: Reactor) -> None:
    class ResetSocket:
        family = socket.AF_UNIX
        closed = False

        def getpeername(self) -> Any:
            raise ConnectionResetError(errno.ECONNRESET, "reset before we looked")

        def close(self) -> None:
            self.closed = True

    errors: list[BaseException] = []
    made: list[Protocol] = []
    connector = Connector(reactor, lambda: made.append(Protocol()), "test:1", errors.append)
    sock = ResetSocket()
    connector._connected(sock)  # type: ignore[arg-type]
    reactor.run_once(0)
    assert sock.closed
    assert made == []
    assert len(errors) == 1 and isinstance(errors[0], ConnectionResetError)


# -- several addresses ---------------------------------------------------------------------------


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1) here")
def test_a_name_with_several_addresses_falls_back_to_the_next(
    reactor: Reactor, attempts: Callable[..., Attempt], echo_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = echo_server.address[1]  # listening on 127.0.0.1 only: ::1 refuses

    def resolve_both(host: str, port: int, *, passive: bool) -> list[Any]:
        assert host == "dual.test"
        return (socket.getaddrinfo("::1", port, type=socket.SOCK_STREAM)
                + socket.getaddrinfo("127.0.0.1", port, type=socket.SOCK_STREAM))

    monkeypatch.setattr(connector_module, "resolve_stream", resolve_both)
    attempt = attempts("dual.test", port)
    run_until(reactor, lambda: attempt.events or attempt.errors, timeout=2.0)
    assert attempt.errors == []
    assert attempt.connector.connection is not None
    assert attempt.connector.connection.peer_address == ("127.0.0.1", port)


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1) here")
def test_when_every_address_fails_the_last_error_is_reported_once(
    reactor: Reactor, attempts: Callable[..., Attempt], closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def resolve_both(host: str, port: int, *, passive: bool) -> list[Any]:
        return (socket.getaddrinfo("::1", port, type=socket.SOCK_STREAM)
                + socket.getaddrinfo("127.0.0.1", port, type=socket.SOCK_STREAM))

    monkeypatch.setattr(connector_module, "resolve_stream", resolve_both)
    attempt = attempts("dual.test", closed_port)
    run_until(reactor, lambda: attempt.errors, timeout=2.0)
    for _ in range(3):
        reactor.run_once(0)
    [error] = attempt.errors
    assert isinstance(error, ConnectionRefusedError)
    assert attempt.protocols == []


def localhost_tries_ipv6_first() -> bool:
    try:
        infos = socket.getaddrinfo("localhost", 80, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except OSError:
        return False
    families = [info[0] for info in infos]
    return (bool(families) and families[0] == socket.AF_INET6 and socket.AF_INET in families
            and ipv6_loopback_available())


@pytest.mark.skipif(not localhost_tries_ipv6_first(),
                    reason="'localhost' does not resolve to ::1 before 127.0.0.1 here")
def test_localhost_falls_back_from_ipv6_to_ipv4(
    reactor: Reactor, attempts: Callable[..., Attempt], echo_server: Any
) -> None:
    attempt = attempts("localhost", echo_server.address[1])
    run_until(reactor, lambda: attempt.events or attempt.errors, timeout=2.0)
    assert attempt.errors == []
    assert attempt.connector.connection is not None
    assert attempt.connector.connection.peer_address[0] == "127.0.0.1"

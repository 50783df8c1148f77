"""Limits every server needs: idle timeout, maximum connections, graceful shutdown.

Reactor-level tests run over every selector class; the example servers are tested as
subprocesses, started the way a user starts them.
"""

from __future__ import annotations

import signal
import socket
import time

import pytest

from protocols.echo import EchoProtocol
from protocols.line import LineProtocol
from reactor import Reactor
from reactor.connection import ConnectionState
from reactor.idle import IdleSweeper
from reactor.protocol import Protocol
from reactor.testing import ManualClock
from tests.helpers import run_until
from tests.processes import Launcher




def blocking_client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def read_until_eof(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    parts = []
    while data := sock.recv(65536):
        parts.append(data)
    return b"".join(parts)


# -- idle timeout ------------------------------------------------------------------------------


def test_idle_connection_is_told_why_and_closed(reactor: Reactor) -> None:
    listener = reactor.listen_tcp(LineProtocol, "127.0.0.1", 0, idle_timeout=0.2)
    client = blocking_client(listener.address[1])
    run_until(reactor, lambda: len(listener.connections) == 1)
    started = time.monotonic()
    received = bytearray()
    client.setblocking(False)

    def eof_seen() -> bool:
        try:
            data = client.recv(4096)
        except BlockingIOError:
            return False
        received.extend(data)
        return not data

    run_until(reactor, eof_seen, timeout=3)
    elapsed = time.monotonic() - started
    assert bytes(received) == b"error: idle for 0.2s, closing\n"
    assert 0.2 <= elapsed < 1.0
    run_until(reactor, lambda: not listener.connections)
    client.close()
    listener.close()


def test_active_connection_outlives_the_idle_timeout(reactor: Reactor) -> None:
    listener = reactor.listen_tcp(EchoProtocol, "127.0.0.1", 0, idle_timeout=0.2)
    client = blocking_client(listener.address[1])
    deadline = time.monotonic() + 0.8  # four timeouts, with a round trip every 50 ms
    while time.monotonic() < deadline:
        client.sendall(b"x")
        got = bytearray()

        def echoed() -> bool:
            client.setblocking(False)
            try:
                got.extend(client.recv(16))
            except BlockingIOError:
                pass
            return bool(got)

        run_until(reactor, echoed)
        end = time.monotonic() + 0.05
        while time.monotonic() < end:
            reactor.run_once(0.01)
    assert len(listener.connections) == 1
    (connection,) = listener.connections
    assert connection.state is ConnectionState.OPEN
    client.close()
    listener.close()


class StuckCloser(Protocol):
    """Queues more than the peer will read, then closes: the close can never flush."""

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        super().connection_made(transport)
        transport.write(b"x" * (32 * 1024 * 1024))

    def idle_timed_out(self, idle_seconds: float) -> None:
        assert self.transport is not None
        self.transport.close()


def test_close_that_never_flushes_is_aborted_after_another_idle_period(reactor: Reactor) -> None:
    listener = reactor.listen_tcp(StuckCloser, "127.0.0.1", 0, idle_timeout=0.2)
    client = blocking_client(listener.address[1])  # never reads
    run_until(reactor, lambda: len(listener.connections) == 1)
    (connection,) = listener.connections
    run_until(reactor, lambda: connection.state is ConnectionState.CLOSING, timeout=3)
    run_until(reactor, lambda: connection.state is ConnectionState.CLOSED, timeout=3)
    assert connection.send_buffer.peek(1) == b""  # the queue was dropped: an abort
    client.setblocking(True)
    client.settimeout(5)
    with pytest.raises(ConnectionResetError):
        while client.recv(1024 * 1024):
            pass
    client.close()
    listener.close()


def test_idle_sweeper_closes_between_one_and_one_and_a_quarter_timeouts() -> None:
    clock = ManualClock()
    reactor = Reactor(clock=clock)
    closed_at: list[float] = []

    class FakeConnection:
        reads = writes = 0

        def _idle_timed_out(self, seconds: float) -> None:
            closed_at.append(clock.time())

    connection = FakeConnection()
    sweeper = IdleSweeper(reactor, {connection}, timeout=4.0)  # type: ignore[arg-type]
    try:
        for _ in range(40):
            clock.advance(0.5)
            reactor.run_once(0)
            if closed_at:
                break
        assert closed_at and 4.0 <= closed_at[0] <= 5.0 + 0.5
    finally:
        sweeper.cancel()
        reactor.close()


def test_idle_timeout_must_be_positive(reactor: Reactor) -> None:
    with pytest.raises(ValueError):
        reactor.listen_tcp(EchoProtocol, "127.0.0.1", 0, idle_timeout=0)


# -- maximum connections ------------------------------------------------------------------------


def test_connection_over_the_limit_is_told_why_and_closed_while_others_are_served(
        reactor: Reactor) -> None:
    listener = reactor.listen_tcp(EchoProtocol, "127.0.0.1", 0, max_connections=2,
                                  reject_message=b"error: full\n")
    first, second = (blocking_client(listener.address[1]) for _ in range(2))
    run_until(reactor, lambda: len(listener.connections) == 2)
    third = blocking_client(listener.address[1])
    third.setblocking(False)
    received = bytearray()

    def third_closed() -> bool:
        try:
            data = third.recv(4096)
        except BlockingIOError:
            return False
        received.extend(data)
        return not data

    run_until(reactor, third_closed)
    assert bytes(received) == b"error: full\n"
    first.sendall(b"still served")
    first.setblocking(False)
    echoed = bytearray()

    def first_echoed() -> bool:
        try:
            echoed.extend(first.recv(4096))
        except BlockingIOError:
            pass
        return bytes(echoed) == b"still served"

    run_until(reactor, first_echoed)
    first.close()
    run_until(reactor, lambda: len(listener.connections) == 1)
    fourth = blocking_client(listener.address[1])
    fourth.sendall(b"room again")
    fourth.setblocking(False)
    run_until(reactor, lambda: len(listener.connections) == 2)
    for sock in (second, third, fourth):
        sock.close()
    listener.close()


# -- the example servers ------------------------------------------------------------------------


def test_uppercase_server_idle_timeout_flag_closes_with_a_reason(launch: Launcher) -> None:
    server = launch.server("uppercase_server", "--idle-timeout", "0.3")
    client = server.connect()
    assert client.read_until_eof() == b"error: idle for 0.3s, closing\n"
    client.close()
    server.stop_cleanly()


def test_chat_server_has_an_idle_timeout_by_default(launch: Launcher) -> None:
    help_text = launch.run("chat_server", "--help").stdout.decode()
    assert "(default: 600)" in help_text
    echo_help = " ".join(launch.run("echo_server", "--help").stdout.decode().split())
    assert "close connections idle this long (at most 10 days); 0, off or inf: never " \
        "(default: off)" in echo_help


def test_chat_server_over_max_connections_tells_the_newcomer(launch: Launcher) -> None:
    server = launch.server("chat_server", "--max-connections", "1")
    member = server.connect()
    assert member.line().startswith("* welcome")
    late = server.connect()
    assert late.read_until_eof() == b"error: the room is full; try again later\n"
    member.send_line("/who")
    assert member.line().startswith("* online: ")
    for client in (member, late):
        client.close()
    server.stop_cleanly()


def test_shutdown_aborts_a_client_that_never_reads_after_the_grace_period(
        launch: Launcher) -> None:
    server = launch.server("echo_server", "--shutdown-grace", "0.5")
    hog = server.connect()
    hog.sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # fill both directions: the server's queue is stuck
        try:
            sent += hog.sock.send(b"y" * 65536)
        except BlockingIOError:
            break
    assert sent > 0
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    assert server.wait(5) == 0
    assert 0.4 <= time.monotonic() - started < 3.0
    server.assert_no_traceback()
    hog.close()


def test_second_signal_aborts_at_once(launch: Launcher) -> None:
    server = launch.server("echo_server", "--shutdown-grace", "30")
    hog = server.connect()
    hog.sock.setblocking(False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            hog.sock.send(b"z" * 65536)
        except BlockingIOError:
            break
    server.send_signal(signal.SIGTERM)
    started = time.monotonic()
    server.send_signal(signal.SIGINT)
    assert server.wait(5) == 0
    assert time.monotonic() - started < 3.0, "the second signal must not wait for the grace"
    server.assert_no_traceback()
    hog.close()

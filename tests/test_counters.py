"""What a connection and the loop count: bytes, syscalls, short sends, back-pressure, buffer peaks,
the state history, passes and the slowest pass; and the chat server's ``/stats`` line that shows
them to a user.

Every figure is checked against what the other end really sent or read over a loopback socket.
Reactor-level tests use the ``reactor`` fixture (every selector, debug mode); where seconds are
counted, a manual clock makes the expected figure exact.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from protocols.echo import EchoProtocol
from reactor import ByteBuffer, Protocol, Reactor
from reactor.connection import Connection, ConnectionState
from reactor.testing import ManualClock
from reactor.transport import NO_SLOW_PATH_YET
from tests.helpers import SELECTOR_NAMES, Server, fill_socket, run_until, start_server
from tests.processes import Client, Launcher, ServerProcess

S = ConnectionState
#: More than the kernel's send buffer plus the peer's receive buffer on loopback.
BULK = b"x" * (8 * 1024 * 1024)
BUSY_SECONDS = 0.02

STATS_KEYS = {
    "fd", "peer", "state", "reading", "writing", "recv_buffer", "send_buffer", "bytes_received",
    "bytes_sent", "reads", "writes", "partial_sends", "would_blocks", "watermark_pauses",
    "paused_seconds", "peak_recv_buffer", "peak_send_buffer", "history",
}


def busy_wait(seconds: float) -> None:
    """Hold the loop's thread for ``seconds``, as slow protocol code would."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class Flood(Protocol):
    """Writes ``BULK`` when connected (default back-pressure: reading stops while it queues)."""

    def connection_made(self, transport: Connection) -> None:  # type: ignore[override]
        super().connection_made(transport)
        transport.write(BULK)


class Hoarder(Protocol):
    """Leaves every byte in the receive buffer until a ``b"!"`` arrives, then takes it all."""

    def data_received(self, buffer: ByteBuffer) -> None:
        if buffer.find(b"!") >= 0:
            buffer.clear()


class KeepOpen(EchoProtocol):
    """Stays half-open after the peer's FIN; the test closes it."""

    def eof_received(self) -> bool:
        return True


class SlowReader(Protocol):
    """Spends ``BUSY_SECONDS`` in every ``data_received``."""

    def data_received(self, buffer: ByteBuffer) -> None:
        buffer.clear()
        busy_wait(BUSY_SECONDS)


@pytest.fixture(params=SELECTOR_NAMES)
def manual(request: pytest.FixtureRequest) -> Iterator[tuple[Reactor, ManualClock, Any]]:
    """A debug-mode reactor on a clock that moves only when the test says so, and ``serve``."""
    clock = ManualClock(100.0)
    loop = Reactor(request.param, clock=clock, debug=True)
    servers: list[Server] = []
    yield loop, clock, start_server(loop, servers)
    for server in servers:
        server.close()
    loop.close()
    assert loop.contract_violations == []


def receive(reactor: Reactor, sock: socket.socket, size: int, timeout: float = 5.0) -> bytes:
    """Run the loop while the non-blocking client ``sock`` (``serve(...,
    blocking_clients=False)``) reads exactly ``size`` bytes."""
    got = bytearray()

    def enough() -> bool:
        while len(got) < size:
            try:
                data = sock.recv(min(size - len(got), 1 << 20))
            except BlockingIOError:
                break
            assert data, f"EOF after {len(got)} of {size} bytes"
            got.extend(data)
        return len(got) >= size

    run_until(reactor, enough, timeout)
    return bytes(got)


def receive_until_eof(reactor: Reactor, sock: socket.socket) -> bytes:
    got = bytearray()
    eof: list[bool] = []

    def at_eof() -> bool:
        while True:
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                return False
            if not data:
                eof.append(True)
                return True
            got.extend(data)

    run_until(reactor, at_eof)
    return bytes(got)


# -- bytes and syscalls ----------------------------------------------------------------------------


def test_counters_after_an_exchange_match_what_the_peer_sent_and_received(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol, blocking_clients=False)
    client, conn = server.connect()
    messages = [b"a" * 100, b"b" * 2000, b"c" * 7]
    for message in messages:
        client.sendall(message)
        assert receive(reactor, client, len(message)) == message
    total = sum(map(len, messages))
    assert conn.bytes_received == conn.bytes_sent == total
    assert conn.reads == conn.writes == len(messages)  # one recv, one send per message
    assert conn.partial_sends == conn.would_blocks == 0
    assert conn.peak_send_buffer == conn.peak_recv_buffer == 0
    client.shutdown(socket.SHUT_WR)
    assert receive_until_eof(reactor, client) == b""
    assert conn.reads == len(messages)  # the FIN (recv returning 0) is not a read of data
    assert conn.stats()["bytes_received"] == total


def test_partial_sends_count_while_the_peer_does_not_read_then_every_byte_is_counted(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(Flood, blocking_clients=False)
    client, conn = server.connect()
    assert conn.partial_sends == conn.writes == 1
    assert conn.bytes_sent == len(BULK) - conn.get_write_buffer_size() > 0
    assert conn.would_blocks == 0
    assert receive(reactor, client, len(BULK), timeout=10) == BULK
    run_until(reactor, lambda: conn.get_write_buffer_size() == 0)
    assert conn.bytes_sent == len(BULK)
    assert conn.writes > conn.partial_sends >= 1  # the last send took all that was left


def test_a_send_into_a_full_kernel_buffer_counts_as_would_block_not_as_a_write(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(Protocol, blocking_clients=False)
    client, conn = server.connect()
    # Fill the kernel's send buffer behind the transport's back, through a second descriptor.
    with socket.socket(fileno=os.dup(conn.fileno())) as twin:
        filled = fill_socket(twin)
    conn.write(b"abc")
    assert (conn.would_blocks, conn.writes, conn.bytes_sent) == (1, 0, 0)
    conn.write(b"def")  # queued behind the first: no send() tried, nothing more counted
    assert conn.would_blocks == 1
    assert conn.get_write_buffer_size() == conn.peak_send_buffer == 6
    assert receive(reactor, client, filled + 6, timeout=10)[-6:] == b"abcdef"
    run_until(reactor, lambda: conn.get_write_buffer_size() == 0)
    assert conn.bytes_sent == 6
    assert conn.stats()["would_blocks"] >= 1


def test_slow_path_counters_are_shared_zeros_until_a_connection_takes_a_slow_path(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    # An idle or always-fast connection carries one reference to the shared zeros instead of
    # seven counters of its own; the first slow path gives it its own (reactor/transport.py).
    flooded = serve(Flood, blocking_clients=False)
    quiet = serve(EchoProtocol, blocking_clients=False)
    flood_client, flooding = flooded.connect()
    quiet_client, echoing = quiet.connect()
    quiet_client.sendall(b"ping")
    assert receive(reactor, quiet_client, 4) == b"ping"
    assert echoing._slow is NO_SLOW_PATH_YET
    assert flooding._slow is not NO_SLOW_PATH_YET
    assert flooding.partial_sends == flooding.pauses == 1 and flooding.peak_send_buffer > 0
    assert (echoing.partial_sends, echoing.pauses, echoing.peak_send_buffer) == (0, 0, 0)
    with pytest.raises(AttributeError):
        NO_SLOW_PATH_YET.partial_sends = 1
    with pytest.raises(AttributeError):
        echoing.partial_sends = 1  # type: ignore[misc]  # read-only: counted by the transport
    flood_client.close()


# -- back-pressure ---------------------------------------------------------------------------------


def test_paused_time_grows_while_paused_and_paused_seconds_adds_up_each_pause(
        manual: tuple[Reactor, ManualClock, Callable[..., Server]]) -> None:
    reactor, clock, serve = manual
    server = serve(Flood, blocking_clients=False)
    client, conn = server.connect()
    assert conn.pauses == 1
    assert conn.paused_time() == conn.paused_seconds == 0.0
    clock.advance(1.5)
    assert conn.paused_time() == 1.5  # still paused: the running pause counts
    assert conn.paused_seconds == 0.0  # ...but is not added until it ends
    assert conn.stats()["paused_seconds"] == 1.5
    clock.advance(0.25)
    assert conn.paused_time() == 1.75
    receive(reactor, client, len(BULK), timeout=10)
    run_until(reactor, lambda: conn.get_write_buffer_size() == 0)
    assert conn.paused_seconds == conn.paused_time() == 1.75
    clock.advance(10)
    assert conn.paused_time() == 1.75  # not paused any more: nothing accrues
    with socket.socket(fileno=os.dup(conn.fileno())) as twin:
        fill_socket(twin)  # a full kernel buffer, so that all of the next write is queued
    conn.write(b"y" * 100_000)  # past the high-water mark again: a second pause
    assert conn.pauses == conn.stats()["watermark_pauses"] == 2
    clock.advance(0.5)
    assert conn.paused_time() == 2.25
    assert conn.paused_seconds == 1.75


def test_paused_time_grows_on_the_real_clock(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(Flood, blocking_clients=False)
    client, conn = server.connect()
    first = conn.paused_time()
    start = reactor.time()
    while reactor.time() == start:
        pass  # the clock's next tick, however fine it is
    assert conn.paused_time() > first


def test_peak_send_buffer_is_the_largest_queue_seen(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(Flood, blocking_clients=False)
    client, conn = server.connect()
    queued = conn.get_write_buffer_size()
    assert conn.peak_send_buffer == queued == len(BULK) - conn.bytes_sent
    receive(reactor, client, len(BULK), timeout=10)
    run_until(reactor, lambda: conn.get_write_buffer_size() == 0)
    assert conn.peak_send_buffer == queued  # draining does not lower a peak
    assert conn.stats()["peak_send_buffer"] == queued


def test_peak_recv_buffer_counts_input_the_protocol_left_unconsumed(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(Hoarder, blocking_clients=False)
    client, conn = server.connect()
    client.sendall(b"a" * 1000)
    run_until(reactor, lambda: conn.bytes_received == 1000)
    assert conn.peak_recv_buffer == len(conn.recv_buffer) == 1000
    client.sendall(b"b" * 500)
    run_until(reactor, lambda: conn.bytes_received == 1500)
    assert conn.peak_recv_buffer == 1500
    client.sendall(b"!")
    run_until(reactor, lambda: conn.bytes_received == 1501)
    assert len(conn.recv_buffer) == 0
    assert conn.peak_recv_buffer == conn.stats()["peak_recv_buffer"] == 1500


# -- the state history -----------------------------------------------------------------------------


def assert_history(conn: Connection, states: list[ConnectionState]) -> None:
    """History starts at OPEN (reactor/connection.py: "every state entered from OPEN on")."""
    assert [state for _, state in conn.history] == states
    times = [when for when, _ in conn.history]
    assert times == sorted(times)
    assert conn.stats()["history"] == [(round(when, 6), state.name)
                                       for when, state in conn.history]


def test_history_of_a_connection_the_peer_half_closes(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol, blocking_clients=False)
    client, conn = server.connect()
    client.shutdown(socket.SHUT_WR)
    receive_until_eof(reactor, client)
    run_until(reactor, lambda: conn.state is S.CLOSED)
    assert_history(conn, [S.OPEN, S.CLOSING, S.CLOSED])


def test_history_of_a_connection_kept_half_open_then_closed(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(KeepOpen, blocking_clients=False)
    client, conn = server.connect()
    client.shutdown(socket.SHUT_WR)
    run_until(reactor, lambda: conn.state is S.HALF_CLOSED)
    conn.close()
    receive_until_eof(reactor, client)
    assert_history(conn, [S.OPEN, S.HALF_CLOSED, S.CLOSING, S.CLOSED])


def test_history_of_a_connection_that_wrote_eof_first(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol, blocking_clients=False)
    client, conn = server.connect()
    conn.write_eof()
    assert receive_until_eof(reactor, client) == b""
    client.shutdown(socket.SHUT_WR)
    run_until(reactor, lambda: conn.state is S.CLOSED)
    assert_history(conn, [S.OPEN, S.WRITE_SHUT, S.CLOSING, S.CLOSED])


def test_history_of_an_aborted_connection(reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol, blocking_clients=False)
    client, conn = server.connect()
    conn.abort()
    assert_history(conn, [S.OPEN, S.CLOSED])


def test_history_records_when_each_state_was_entered_on_the_loops_clock(
        manual: tuple[Reactor, ManualClock, Callable[..., Server]]) -> None:
    reactor, clock, serve = manual
    server = serve(EchoProtocol, blocking_clients=False)
    client, conn = server.connect()
    clock.advance(2.0)
    client.shutdown(socket.SHUT_WR)
    run_until(reactor, lambda: conn.state is S.CLOSED)
    assert conn.history == [(100.0, S.OPEN), (102.0, S.CLOSING), (102.0, S.CLOSED)]


# -- stats() ---------------------------------------------------------------------------------------


def test_stats_has_every_key_and_agrees_with_the_attributes(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol, blocking_clients=False)
    client, conn = server.connect()
    client.sendall(b"stats")
    receive(reactor, client, 5)
    stats = conn.stats()
    assert stats.keys() == STATS_KEYS
    assert stats == {
        "fd": conn.fileno(), "peer": conn.peer_name, "state": "OPEN", "reading": True,
        "writing": False, "recv_buffer": 0, "send_buffer": 0, "bytes_received": 5,
        "bytes_sent": 5, "reads": 1, "writes": 1, "partial_sends": 0, "would_blocks": 0,
        "watermark_pauses": 0, "paused_seconds": 0.0, "peak_recv_buffer": 0,
        "peak_send_buffer": 0,
        "history": [(round(when, 6), state.name) for when, state in conn.history],
    }
    assert stats["peer"] == "127.0.0.1:%d" % client.getsockname()[1]


# -- the loop's own figures ------------------------------------------------------------------------


def test_passes_goes_up_by_one_per_run_once(reactor: Reactor) -> None:
    assert reactor.passes == 0
    reactor.run_once(0)
    assert reactor.passes == 1
    reactor.call_soon(busy_wait, 0)
    reactor.call_soon(busy_wait, 0)
    reactor.run_once(0)  # two callbacks, one pass
    assert reactor.passes == 2


def test_run_counts_each_of_its_passes(reactor: Reactor) -> None:
    def countdown(left: int) -> None:
        if left:
            reactor.call_soon(countdown, left - 1)
        else:
            reactor.stop()

    reactor.call_soon(countdown, 3)
    reactor.run()
    assert reactor.passes == 4


def test_run_after_an_early_stop_runs_one_pass(reactor: Reactor) -> None:
    ran: list[int] = []
    reactor.call_soon(ran.append, 1)
    reactor.stop()
    reactor.run()
    assert reactor.passes == 1
    assert ran == [1]


def test_slowest_pass_seconds_covers_a_slow_callback(reactor: Reactor) -> None:
    reactor.call_soon(busy_wait, BUSY_SECONDS)
    reactor.run_once(0)
    slowest = reactor.slowest_pass_seconds
    assert slowest >= BUSY_SECONDS
    reactor.run_once(0)
    reactor.run_once(0)
    assert reactor.slowest_pass_seconds == slowest  # a quick pass does not lower the record
    assert reactor.snapshot()["slowest_pass_seconds"] == slowest


def test_slowest_pass_seconds_does_not_count_time_spent_waiting(reactor: Reactor) -> None:
    fired: list[int] = []
    reactor.call_later(0.05, fired.append, 1)
    run_until(reactor, lambda: fired)
    assert reactor.slowest_pass_seconds < 0.05


def test_slowest_pass_seconds_covers_a_slow_data_received(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(SlowReader, blocking_clients=False)
    client, conn = server.connect()
    client.sendall(b"slow")
    run_until(reactor, lambda: conn.bytes_received == 4)
    assert reactor.slowest_pass_seconds >= BUSY_SECONDS


# -- the chat server's /stats -----------------------------------------------------------------------


def join(server: ServerProcess, *present: Client) -> Client:
    client = server.connect()
    assert client.line() == f"* welcome, you are {client.name}; /help lists commands"
    for member in present:
        assert member.line() == f"* {client.name} joined"
    return client


def stats(client: Client) -> dict[str, str]:
    client.send_line("/stats")
    line = client.line()
    assert line.startswith("* stats: "), line
    return dict(pair.split("=", 1) for pair in line.removeprefix("* stats: ").split(" "))


def test_chat_stats_reports_the_room_and_the_loop(launch: Launcher) -> None:
    server = launch.server("chat_server")
    alice = join(server)
    bob = join(server, alice)
    first = stats(alice)
    assert list(first) == ["members", "lines_in", "bytes_in", "lines_out", "bytes_out",
                           "connections", "loop_passes", "slowest_pass_ms"]
    assert first["members"] == "2"
    assert first["connections"] == "2"
    assert first["lines_in"] == "1"  # this /stats line itself
    assert first["bytes_in"] == str(len("/stats"))
    assert int(first["lines_out"]) == 3  # two welcomes and "bob joined"
    assert int(first["loop_passes"]) > 0
    assert 0 <= float(first["slowest_pass_ms"]) < 5000
    alice.send_line("hello")
    assert bob.line() == f"{alice.name}: hello"
    second = stats(bob)
    assert second["lines_in"] == "3"
    assert second["bytes_in"] == str(len("/stats") + len("hello") + len("/stats"))
    assert int(second["loop_passes"]) > int(first["loop_passes"])
    assert float(second["slowest_pass_ms"]) >= float(first["slowest_pass_ms"])
    carol = join(server, alice, bob)
    assert stats(carol)["members"] == "3"
    carol.send_line("/quit")
    assert carol.line() == "* goodbye"
    carol.expect_eof()
    assert alice.line() == f"* {carol.name} left"
    assert bob.line() == f"* {carol.name} left"
    assert stats(alice)["members"] == "2"
    server.stop_cleanly()

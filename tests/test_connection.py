"""Connection over real loopback sockets: the read and write paths, back-pressure, half-close,
close, abort, resets, the callback order and the exception policy.

Servers are built with ``reactor.listen_tcp``; clients are plain sockets driven by ``Peer``,
which does its non-blocking I/O between loop passes so one thread plays both ends.
"""

from __future__ import annotations

import array
import errno
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import reactor.connection as connection_module
from reactor import ByteBuffer, Protocol, Reactor
from reactor.connection import ALLOWED_TRANSITIONS, Connection, ConnectionState
from reactor.transport import HIGH_WATER_BYTES, LOW_WATER_BYTES
from reactor.poller import EVENT_READ, EVENT_WRITE
from tests.helpers import (
    Peer,
    Recorder,
    Server,
    pump_until,
    recorder_of,
    run_until,
)
from tests.resets import close_with_reset

S = ConnectionState
#: More than the kernel's send plus receive buffers on loopback, so some of it must queue.
BULK = bytes(range(256)) * (16 * 1024 * 1024 // 256)


def same(a: bytes | bytearray, b: bytes | bytearray) -> bool:
    """Equality without pytest diffing megabytes on failure."""
    return len(a) == len(b) and a == b


def recv_until_error_or_eof(
    sock: socket.socket, timeout: float = 2.0
) -> tuple[int, OSError | None]:
    """Read until EOF or an error; return how many bytes came and the error, if any."""
    sock.setblocking(True)
    sock.settimeout(timeout)
    total = 0
    try:
        while True:
            data = sock.recv(1 << 20)
            if not data:
                return total, None
            total += len(data)
    except (ConnectionResetError, BrokenPipeError) as exc:
        return total, exc


@pytest.fixture
def pair_connection(
    reactor: Reactor,
) -> Iterator[Callable[[Protocol], tuple[Connection, socket.socket]]]:
    """A Connection over one end of a socketpair (small kernel buffers: EAGAIN comes fast)."""
    made: list[tuple[Connection, socket.socket]] = []

    def make(protocol: Protocol) -> tuple[Connection, socket.socket]:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        theirs.setblocking(False)
        conn = Connection(reactor, ours, protocol, "socketpair")
        conn._start()
        made.append((conn, theirs))
        return conn, theirs

    yield make
    for conn, theirs in made:
        conn.abort()
        theirs.close()
    reactor.run_once(0)


def mask(reactor: Reactor, conn: Connection) -> int:
    return reactor.poller.masks().get(conn.fileno(), 0)


# -- the read and write paths --------------------------------------------------------------------


def test_echo_round_trip_returns_every_byte(reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(lambda: Recorder(echo=True))
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    message = b"hello, reactor\n" * 1000
    peer.send(message)
    pump_until(reactor, [peer], lambda: len(peer.received) >= len(message))
    assert same(peer.received, message)
    assert same(protocol.received, message)
    assert conn.get_write_buffer_size() == 0
    assert conn.state is S.OPEN


def test_small_write_goes_straight_to_the_socket_without_queueing(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(Recorder)
    client, conn = server.connect()
    protocol = recorder_of(conn)
    conn.write(b"direct")
    assert conn.get_write_buffer_size() == 0
    assert mask(reactor, conn) == EVENT_READ
    client.settimeout(2)
    assert client.recv(100) == b"direct"


def test_write_queues_tail_when_send_is_partial_and_registers_the_writer(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(Recorder)
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    peer.reading = False
    conn.write(BULK)
    queued = conn.get_write_buffer_size()
    assert 0 < queued < len(BULK)
    assert mask(reactor, conn) & EVENT_WRITE
    conn.write(b"tail")
    assert conn.get_write_buffer_size() == queued + 4
    for _ in range(3):
        reactor.run_once(0)  # the peer reads nothing: the queue cannot shrink much
    assert conn.get_write_buffer_size() > 0
    peer.reading = True
    pump_until(reactor, [peer], lambda: len(peer.received) >= len(BULK) + 4)
    assert same(peer.received, BULK + b"tail")
    assert conn.get_write_buffer_size() == 0
    assert not mask(reactor, conn) & EVENT_WRITE


def test_many_small_writes_behind_a_full_socket_arrive_in_order(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(Recorder)
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    conn.write(BULK)
    pieces = [b"%06d|" % i * 20 for i in range(2000)]  # queued: go out by vectored sendmsg
    conn.writelines(pieces)
    expected = BULK + b"".join(pieces)
    assert conn.get_write_buffer_size() > len(b"".join(pieces))
    pump_until(reactor, [peer], lambda: len(peer.received) >= len(expected))
    assert same(peer.received, expected)


def test_pause_and_resume_writing_strictly_alternate_across_the_watermarks(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(Recorder)
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    assert conn.get_write_buffer_limits() == (HIGH_WATER_BYTES, LOW_WATER_BYTES)
    chunk = BULK[: 64 * 1024]
    expected = bytearray()
    for cycle in range(2):
        peer.reading = False
        for _ in range(len(BULK) // len(chunk)):
            conn.write(chunk)
            expected += chunk
        assert protocol.events.count("pause") == cycle + 1
        peer.reading = True
        pump_until(reactor, [peer], lambda: len(peer.received) >= len(expected))
        assert protocol.events.count("resume") == cycle + 1
    flow = [e for e in protocol.events if e in ("pause", "resume")]
    assert flow == ["pause", "resume", "pause", "resume"]
    assert all(size > HIGH_WATER_BYTES for size in protocol.sizes_at_pause)
    assert all(size <= LOW_WATER_BYTES for size in protocol.sizes_at_resume)
    assert same(peer.received, expected)


def test_default_back_pressure_stops_reading_while_writing_is_paused(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(lambda: Recorder(back_pressure=True))  # what Protocol does by default
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    assert conn.is_reading()
    peer.reading = False
    conn.write(BULK)
    assert protocol.events == ["made", "pause"]
    assert not conn.is_reading()
    assert mask(reactor, conn) == EVENT_WRITE
    peer.send(b"request while paused")
    for _ in range(5):
        peer.pump()
        reactor.run_once(0.01)
    assert "data" not in protocol.events
    peer.reading = True
    pump_until(reactor, [peer], lambda: protocol.received == b"request while paused")
    assert conn.is_reading()
    assert protocol.events[:3] == ["made", "pause", "resume"]


@pytest.mark.parametrize(
    ("high", "low"), [(10, 20), (None, -1), (-1, None), (-8, -2)],
)
def test_set_write_buffer_limits_rejects_bad_marks(
    pair_connection: Callable[..., Any], high: int | None, low: int | None
) -> None:
    conn, _ = pair_connection(Recorder())
    with pytest.raises(ValueError):
        conn.set_write_buffer_limits(high, low)
    assert conn.get_write_buffer_limits() == (HIGH_WATER_BYTES, LOW_WATER_BYTES)


@pytest.mark.parametrize(
    ("high", "low", "expected"),
    [
        (None, None, (HIGH_WATER_BYTES, HIGH_WATER_BYTES // 4)),
        (1000, None, (1000, 250)),
        (None, 100, (400, 100)),
        (500, 500, (500, 500)),
        (0, 0, (0, 0)),
    ],
)
def test_set_write_buffer_limits_fills_in_the_missing_mark(
    pair_connection: Callable[..., Any], high: int | None, low: int | None,
    expected: tuple[int, int],
) -> None:
    conn, _ = pair_connection(Recorder())
    conn.set_write_buffer_limits(high, low)
    assert conn.get_write_buffer_limits() == expected


def test_changing_the_marks_pauses_or_resumes_at_once(
    pair_connection: Callable[..., Any],
) -> None:
    protocol = Recorder()
    conn, _ = pair_connection(protocol)
    conn.set_write_buffer_limits(high=10 * 1024 * 1024)
    conn.write(BULK[: 2 * 1024 * 1024])
    queued = conn.get_write_buffer_size()
    assert queued > 0
    assert "pause" not in protocol.events
    conn.set_write_buffer_limits(high=queued - 1)
    assert protocol.events[-1] == "pause"
    conn.set_write_buffer_limits(high=4 * queued, low=queued)
    assert protocol.events[-1] == "resume"
    assert protocol.events.count("pause") == protocol.events.count("resume") == 1


def test_pause_reading_holds_input_until_resume_reading(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(Recorder)
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    conn.pause_reading()
    assert not conn.is_reading()
    assert mask(reactor, conn) == 0
    peer.send(b"held")
    for _ in range(5):
        peer.pump()
        reactor.run_once(0.01)
    assert protocol.received == b""
    conn.resume_reading()
    assert conn.is_reading()
    pump_until(reactor, [peer], lambda: protocol.received == b"held")


def test_unconsumed_input_stays_in_the_buffer_for_the_next_call(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    lines: list[bytes] = []

    class Lines(Recorder):
        def data_received(self, buffer: ByteBuffer) -> None:
            while (line := buffer.take_line()) is not None:
                lines.append(line)

    server = serve(Lines)
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    peer.send(b"one\ntw")
    pump_until(reactor, [peer], lambda: lines == [b"one"])
    assert len(conn.recv_buffer) == 2
    peer.send(b"o\n")
    pump_until(reactor, [peer], lambda: lines == [b"one", b"two"])
    assert len(conn.recv_buffer) == 0


@pytest.mark.parametrize("bad", ["text", ByteBuffer(b"the receive buffer")])
def test_write_rejects_str_and_bytebuffer_with_type_error(
    pair_connection: Callable[..., Any], bad: object
) -> None:
    conn, _ = pair_connection(Recorder())
    with pytest.raises(TypeError):
        conn.write(bad)
    conn.write(BULK[: 4 * 1024 * 1024])
    queued = conn.get_write_buffer_size()
    assert queued > 0
    with pytest.raises(TypeError):
        conn.write(bad)  # with a queue: rejected by the buffer, not by send()
    assert conn.get_write_buffer_size() == queued
    assert conn.state is S.OPEN


def test_write_of_bytearray_is_copied_when_queued(
    reactor: Reactor, pair_connection: Callable[..., Any],
) -> None:
    conn, theirs = pair_connection(Recorder())
    conn.write(BULK[: 1024 * 1024])
    data = bytearray(b"A" * 100_000)
    conn.write(data)
    data[:] = b"B" * 100_000
    peer = Peer(reactor, theirs)
    pump_until(reactor, [peer], lambda: len(peer.received) >= 1024 * 1024 + 100_000)
    assert same(peer.received, BULK[: 1024 * 1024] + b"A" * 100_000)


def test_write_of_a_multi_byte_memoryview_sends_every_byte(
    reactor: Reactor, pair_connection: Callable[..., Any],
) -> None:
    conn, theirs = pair_connection(Recorder())
    items = array.array("H", range(65536)) * 8  # 1 MiB: more than a socketpair takes at once
    expected = items.tobytes()
    conn.write(memoryview(items))
    peer = Peer(reactor, theirs)
    pump_until(reactor, [peer], lambda: len(peer.received) >= len(expected)
               or conn.get_write_buffer_size() == 0, timeout=2.0)
    for _ in range(5):
        peer.pump()
        reactor.run_once(0.01)
    assert same(peer.received, expected)


def test_write_after_close_is_dropped(pair_connection: Callable[..., Any]) -> None:
    protocol = Recorder()
    conn, theirs = pair_connection(protocol)
    conn.close()
    conn.write(b"too late")
    assert conn.get_write_buffer_size() == 0
    assert conn.is_closing()


# -- repr and state ---------------------------------------------------------------------------


def test_repr_shows_fd_peer_state_and_buffer_sizes(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(Recorder)
    client, conn = server.connect()
    protocol = recorder_of(conn)
    text = repr(conn)
    host, port = client.getsockname()
    assert f"fd={conn.fileno()}" in text
    assert f"peer={host}:{port}" in text
    assert "OPEN" in text
    assert "reading" in text
    assert "recv_buffer=0" in text
    assert "send_buffer=0" in text
    conn.write(BULK)
    text = repr(conn)
    assert "writing" in text
    assert f"send_buffer={conn.get_write_buffer_size()}" in text
    assert conn.peer_name == f"{host}:{port}"
    assert conn.peer_address == (host, port)
    assert conn.local_address == server.listener.address


ILLEGAL = [(old, new) for old in S for new in S if new not in ALLOWED_TRANSITIONS[old]]


@pytest.mark.parametrize(("old", "new"), ILLEGAL, ids=[f"{o.name}->{n.name}" for o, n in ILLEGAL])
def test_illegal_state_transition_raises(
    pair_connection: Callable[..., Any], old: ConnectionState, new: ConnectionState
) -> None:
    conn, _ = pair_connection(Recorder())
    conn._state = old
    with pytest.raises(RuntimeError, match=f"illegal state change {old.name} -> {new.name}"):
        conn._set_state(new)
    assert conn.state is old
    conn._state = S.OPEN


# -- half-close ------------------------------------------------------------------------------


def test_peer_half_close_gets_every_echoed_byte_then_eof(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(lambda: Recorder(echo=True))
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    message = BULK[: 3 * 1024 * 1024]
    peer.send(message)
    peer.finish()
    pump_until(reactor, [peer], lambda: peer.eof)
    assert same(peer.received, message)
    assert peer.error is None
    peer.sock.close()
    run_until(reactor, lambda: protocol.lost)
    assert protocol.events[0] == "made"
    assert protocol.events[-2:] == ["eof", "lost"]
    assert protocol.lost_with == [None]
    assert conn.state is S.CLOSED


def test_eof_received_returning_true_keeps_the_connection_half_closed(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(lambda: Recorder(keep_open=True))
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    peer.send(b"request")
    peer.finish()
    pump_until(reactor, [peer], lambda: "eof" in protocol.events)
    assert conn.state is S.HALF_CLOSED
    assert not conn.is_reading()
    assert not conn.is_closing()
    assert protocol.received == b"request"
    conn.write(b"late reply")
    pump_until(reactor, [peer], lambda: peer.received == b"late reply")
    assert not peer.eof
    conn.close()
    assert conn.state is S.CLOSED
    pump_until(reactor, [peer], lambda: peer.eof and protocol.lost)
    assert peer.error is None
    assert protocol.events == ["made", "data", "eof", "lost"]
    assert protocol.lost_with == [None]


def test_write_eof_after_the_peer_eof_closes(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(lambda: Recorder(keep_open=True))
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    peer.finish()
    pump_until(reactor, [peer], lambda: conn.state is S.HALF_CLOSED)
    conn.write_eof()
    assert conn.state is S.CLOSED
    pump_until(reactor, [peer], lambda: peer.eof and protocol.lost)


def test_write_eof_sends_fin_while_still_reading_the_peer(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(Recorder)
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    conn.write(b"last words")
    conn.write_eof()
    assert conn.state is S.WRITE_SHUT
    assert conn.is_reading()
    pump_until(reactor, [peer], lambda: peer.eof)
    assert peer.received == b"last words"
    with pytest.raises(RuntimeError, match="write_eof"):
        conn.write(b"more")
    conn.write_eof()  # a second one is harmless
    peer.send(b"the peer still talks")
    pump_until(reactor, [peer], lambda: protocol.received == b"the peer still talks")
    assert conn.state is S.WRITE_SHUT
    peer.finish()
    pump_until(reactor, [peer], lambda: protocol.lost)
    assert protocol.events == ["made", "data", "eof", "lost"]
    assert protocol.lost_with == [None]
    assert conn.state is S.CLOSED


def test_write_eof_waits_for_the_queue_to_drain_before_fin(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(Recorder)
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    conn.write(BULK)
    conn.write_eof()
    assert conn.state is S.WRITE_SHUT
    assert conn.get_write_buffer_size() > 0
    pump_until(reactor, [peer], lambda: peer.eof)
    assert same(peer.received, BULK)
    assert conn.state is S.WRITE_SHUT


# -- close, abort, resets --------------------------------------------------------------------


def test_close_flushes_queued_data_before_closing(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(Recorder)
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    conn.write(BULK)
    conn.close()
    assert conn.state is S.CLOSING
    assert conn.is_closing()
    assert conn.get_write_buffer_size() > 0
    pump_until(reactor, [peer], lambda: peer.eof)
    assert same(peer.received, BULK)
    assert peer.error is None
    peer.sock.close()
    run_until(reactor, lambda: protocol.lost)
    assert protocol.lost_with == [None]
    assert conn.fileno() not in reactor.poller.masks()


def test_lingering_close_delivers_the_reply_then_eof_not_a_reset(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    class ReplyAndClose(Recorder):
        def data_received(self, buffer: ByteBuffer) -> None:
            self.events.append("data")
            buffer.clear()
            if self.conn is not None and not self.conn.is_closing():
                self.conn.write(b"goodbye\n")
                self.conn.close()

    server = serve(ReplyAndClose)
    client, conn = server.connect()
    protocol = recorder_of(conn)
    client.setblocking(False)
    sent = 0
    try:  # far more than one recv() takes: the rest is unread when the server closes
        while sent < 2 * 1024 * 1024:
            sent += client.send(BULK[sent : sent + 256 * 1024])
    except BlockingIOError:
        pass
    assert sent > connection_module.MAX_READ_BYTES
    run_until(reactor, lambda: conn.is_closing())
    assert conn.state is S.CLOSING  # lingering: discarding input, waiting for FIN
    received, error = recv_until_error_or_eof(client)
    assert error is None
    assert received == len(b"goodbye\n")
    client.close()
    run_until(reactor, lambda: protocol.lost)
    assert protocol.lost_with == [None]
    assert len(reactor._timers) == 0  # the linger timer was cancelled


def test_lingering_close_gives_up_after_the_linger_timeout(
    reactor: Reactor, serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection_module, "CLOSE_LINGER_SECONDS", 0.1)
    server = serve(Recorder)
    client, conn = server.connect()
    protocol = recorder_of(conn)
    conn.close()
    assert conn.state is S.CLOSING
    run_until(reactor, lambda: protocol.lost, timeout=2.0)
    assert protocol.lost_with == [None]
    client.settimeout(2)
    assert client.recv(10) == b""


def test_abort_resets_the_peer(reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(Recorder)
    client, conn = server.connect()
    protocol = recorder_of(conn)
    conn.abort()
    assert conn.state is S.CLOSED
    assert "lost" not in protocol.events
    client.settimeout(2)
    with pytest.raises(ConnectionResetError):
        client.recv(100)
    reactor.run_once(0)
    assert protocol.events == ["made", "lost"]
    assert protocol.lost_with == [None]


def test_abort_drops_the_send_queue(reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(Recorder)
    client, conn = server.connect()
    protocol = recorder_of(conn)
    conn.write(BULK)
    assert conn.get_write_buffer_size() > 0
    conn.abort()
    assert conn.get_write_buffer_size() == 0
    assert conn.fileno() not in reactor.poller.masks()
    received, error = recv_until_error_or_eof(client)
    assert isinstance(error, ConnectionResetError)
    assert received < len(BULK)
    run_until(reactor, lambda: protocol.lost)
    assert protocol.events.count("lost") == 1


def test_peer_reset_while_data_is_queued_reports_the_error_once(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(Recorder)
    client, conn = server.connect()
    protocol = recorder_of(conn)
    conn.write(BULK)
    assert conn.get_write_buffer_size() > 0
    close_with_reset(client)
    run_until(reactor, lambda: protocol.lost, timeout=2.0)
    for _ in range(3):
        reactor.run_once(0)
    assert protocol.events.count("lost") == 1
    [exc] = protocol.lost_with
    assert isinstance(exc, (ConnectionResetError, BrokenPipeError))
    assert exc.errno in (errno.ECONNRESET, errno.EPIPE)
    assert conn.get_write_buffer_size() == 0
    assert conn.state is S.CLOSED
    assert conn.fileno() not in reactor.poller.masks()
    assert conn not in server.listener.connections


def test_close_then_abort_delivers_connection_lost_once(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(Recorder)
    client, conn = server.connect()
    protocol = recorder_of(conn)
    conn.write(BULK)
    conn.close()
    conn.close()
    conn.abort()
    conn.abort()
    conn.close()
    for _ in range(3):
        reactor.run_once(0)
    assert protocol.events == ["made", "pause", "lost"]
    assert protocol.lost_with == [None]


# -- the callback contract ---------------------------------------------------------------------


def test_callback_order_is_made_data_eof_lost_exactly_once(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    server = serve(Recorder)
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    for part in (b"one", b"two", b"three"):
        peer.send(part)
        pump_until(reactor, [peer], lambda: protocol.received.endswith(part))
    peer.finish()
    pump_until(reactor, [peer], lambda: peer.eof)
    peer.sock.close()
    run_until(reactor, lambda: protocol.lost)
    for _ in range(3):
        reactor.run_once(0)
    events = protocol.events
    assert events[0] == "made"
    assert events[-2:] == ["eof", "lost"]
    assert set(events[1:-2]) == {"data"}
    assert events.count("lost") == 1
    assert protocol.received == b"onetwothree"


class SignalledWhenClosed(socket.socket):
    """A socket whose ``close()`` is followed at once by a SIGUSR1 to this process: as when the
    peer, the moment it sees our FIN, has someone signal us (a test sending SIGTERM to a server
    whose last client just left). Python runs the handler at its next bytecode, so inside the
    reactor's teardown, right after the ``close()``."""

    signalled = False

    def close(self) -> None:
        super().close()
        if not self.signalled:
            self.signalled = True
            os.kill(os.getpid(), signal.SIGUSR1)


def test_what_the_close_of_a_socket_causes_is_handled_after_its_connection_lost(
    reactor: Reactor,
) -> None:
    order: list[str] = []

    class Noted(Recorder):
        def connection_lost(self, exc: BaseException | None) -> None:
            super().connection_lost(exc)
            order.append("connection_lost")

    previous = signal.getsignal(signal.SIGUSR1)
    reactor.add_signal_handler(signal.SIGUSR1, order.append, "signal")
    ours, theirs = socket.socketpair()
    try:
        conn = Connection(reactor, SignalledWhenClosed(fileno=ours.detach()), Noted(), "pair")
        conn._start()
        conn.abort()  # the socket closes now; connection_lost is due on the next pass
        run_until(reactor, lambda: len(order) == 2)
        assert order == ["connection_lost", "signal"]
    finally:
        reactor.remove_signal_handler(signal.SIGUSR1)
        theirs.close()
    assert signal.getsignal(signal.SIGUSR1) is previous


@pytest.mark.parametrize("how", ["close", "abort"])
def test_connection_lost_comes_on_a_later_pass_not_inside_close(
    reactor: Reactor, serve: Callable[..., Server], how: str
) -> None:
    server = serve(lambda: Recorder(keep_open=True))
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    peer.finish()
    pump_until(reactor, [peer], lambda: conn.state is S.HALF_CLOSED)
    getattr(conn, how)()
    assert conn.state is S.CLOSED  # torn down at once...
    assert "lost" not in protocol.events  # ...but told on the next pass
    reactor.run_once(0)
    assert protocol.events[-1] == "lost"


def test_nothing_is_delivered_after_close(reactor: Reactor, serve: Callable[..., Server]) -> None:
    class CloseOnFirstData(Recorder):
        def data_received(self, buffer: ByteBuffer) -> None:
            super().data_received(buffer)
            assert self.conn is not None
            self.conn.close()

    server = serve(CloseOnFirstData)
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    peer.send(b"first")
    pump_until(reactor, [peer], lambda: conn.is_closing())
    peer.send(b"second, ignored")
    peer.finish()
    pump_until(reactor, [peer], lambda: peer.eof and protocol.lost)
    assert protocol.events == ["made", "data", "lost"]
    assert protocol.received == b"first"
    assert peer.error is None


def test_exception_in_data_received_aborts_only_that_connection(
    reactor: Reactor, serve: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    class Fragile(Recorder):
        def data_received(self, buffer: ByteBuffer) -> None:
            super().data_received(buffer)
            if b"boom" in self.received:
                raise ValueError("protocol bug")

    server = serve(lambda: Fragile(echo=True))
    bad, bad_conn = server.peer()
    bad_protocol = recorder_of(bad_conn)
    good, good_conn = server.peer()
    good_protocol = recorder_of(good_conn)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        bad.send(b"boom")
        pump_until(reactor, [bad, good], lambda: bad_protocol.lost)
    assert bad_protocol.events == ["made", "data", "lost"]
    [exc] = bad_protocol.lost_with
    assert isinstance(exc, ValueError)
    [record] = [r for r in caplog.records if "data_received" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[1] is exc
    assert "Traceback" in caplog.text
    pump_until(reactor, [bad], lambda: bad.error is not None or bad.eof)
    assert isinstance(bad.error, ConnectionResetError)
    good.send(b"still served")
    pump_until(reactor, [good], lambda: good.received == b"still served")
    assert good_conn.state is S.OPEN


def test_exception_in_connection_made_aborts_only_that_connection(
    reactor: Reactor, serve: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    made = [0]

    class FirstOneFails(Recorder):
        def connection_made(self, transport: Connection) -> None:  # type: ignore[override]
            super().connection_made(transport)
            made[0] += 1
            if made[0] == 1:
                raise RuntimeError("cannot start")

    server = serve(lambda: FirstOneFails(echo=True))
    with caplog.at_level(logging.ERROR, logger="reactor"):
        bad, bad_conn = server.peer()
        bad_protocol = recorder_of(bad_conn)
        run_until(reactor, lambda: bad_protocol.lost)
    assert bad_protocol.events == ["made", "lost"]
    assert isinstance(bad_protocol.lost_with[0], RuntimeError)
    assert any("connection_made" in r.getMessage() and r.exc_info for r in caplog.records)
    pump_until(reactor, [bad], lambda: bad.error is not None or bad.eof)
    good, good_conn = server.peer()
    good_protocol = recorder_of(good_conn)
    good.send(b"hello")
    pump_until(reactor, [good], lambda: good.received == b"hello")
    assert good_conn.state is S.OPEN


def test_exception_in_connection_lost_is_logged(
    reactor: Reactor, serve: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    class BadLoss(Recorder):
        def connection_lost(self, exc: BaseException | None) -> None:
            super().connection_lost(exc)
            raise KeyError("in connection_lost")

    server = serve(BadLoss)
    client, conn = server.connect()
    protocol = recorder_of(conn)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        conn.abort()
        run_until(reactor, lambda: protocol.lost)
    assert any("connection_lost" in r.getMessage() for r in caplog.records)
    assert conn not in server.listener.connections


def test_unconsumed_input_beyond_the_read_limit_closes_with_a_warning(
    reactor: Reactor, serve: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    class Hoarder(Recorder):
        def connection_made(self, transport: Connection) -> None:  # type: ignore[override]
            super().connection_made(transport)
            transport.set_read_buffer_limit(1000)

    server = serve(lambda: Hoarder(consume=False))
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    with caplog.at_level(logging.WARNING, logger="reactor.connection"):
        peer.send(b"x" * 5000)
        pump_until(reactor, [peer], lambda: peer.eof)
    assert conn.state is S.CLOSING
    assert len(conn.recv_buffer) == 0
    [record] = [r for r in caplog.records if "not consumed" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "limit 1000" in record.getMessage()
    assert peer.error is None
    peer.sock.close()
    run_until(reactor, lambda: protocol.lost)
    assert protocol.lost_with == [None]


def test_read_limit_must_be_positive(pair_connection: Callable[..., Any]) -> None:
    conn, _ = pair_connection(Recorder())
    with pytest.raises(ValueError):
        conn.set_read_buffer_limit(0)


def test_close_from_resume_writing_arms_a_single_linger_timer(
    reactor: Reactor, serve: Callable[..., Server]
) -> None:
    class CloseWhenDrained(Recorder):
        def connection_made(self, transport: Connection) -> None:  # type: ignore[override]
            super().connection_made(transport)
            transport.set_write_buffer_limits(high=64 * 1024, low=0)  # resume only when empty

        def resume_writing(self) -> None:
            super().resume_writing()
            assert self.conn is not None
            self.conn.close()

    server = serve(CloseWhenDrained)
    peer, conn = server.peer()
    protocol = recorder_of(conn)
    conn.write(BULK)
    pump_until(reactor, [peer], lambda: peer.eof)
    assert same(peer.received, BULK)
    peer.sock.close()
    run_until(reactor, lambda: protocol.lost)
    assert protocol.lost_with == [None]
    assert len(reactor._timers) == 0

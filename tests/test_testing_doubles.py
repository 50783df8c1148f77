"""reactor.testing: the fake transport behaves like the real connection's interface says."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from reactor.buffer import ByteBuffer
from reactor.protocol import Protocol
from reactor.testing import FakeTransport, ManualClock, connect, feed, feed_eof

if TYPE_CHECKING:
    from reactor.connection import Connection


class EventLog(Protocol):
    """Records every event it is given, by name."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.received = b""

    def connection_made(self, transport: Connection) -> None:
        self.events.append("connection_made")
        super().connection_made(transport)

    def data_received(self, buffer: ByteBuffer) -> None:
        self.events.append("data_received")
        self.received += buffer.take()

    def eof_received(self) -> bool:
        self.events.append("eof_received")
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append(f"connection_lost({exc!r})")
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        self.events.append("pause_writing")
        super().pause_writing()

    def resume_writing(self) -> None:
        self.events.append("resume_writing")
        super().resume_writing()


def test_connect_calls_connection_made_with_the_transport() -> None:
    protocol = EventLog()
    transport = connect(protocol)
    assert protocol.events == ["connection_made"]
    assert protocol.transport is transport


def test_write_records_bytes_in_order_and_keeps_bytes_objects() -> None:
    transport = FakeTransport()
    data = b"abc"
    transport.write(data)
    transport.write(bytearray(b"de"))
    transport.write(memoryview(b"fg"))
    transport.writelines([b"h", b"i"])
    transport.write(b"")
    assert transport.writes[0] is data
    assert transport.writes == [b"abc", b"de", b"fg", b"h", b"i"]
    assert transport.written == b"abcdefghi"


def test_clear_forgets_what_was_written() -> None:
    transport = FakeTransport()
    transport.write(b"old")
    transport.clear()
    transport.write(b"new")
    assert transport.written == b"new"


@pytest.mark.parametrize("bad", ["text", ByteBuffer(b"buffer"), 42])
def test_write_rejects_anything_not_bytes_like(bad: object) -> None:
    transport = FakeTransport()
    with pytest.raises(TypeError):
        transport.write(bad)  # type: ignore[arg-type]
    transport.close()
    with pytest.raises(TypeError):
        transport.write(bad)  # type: ignore[arg-type]


def test_write_after_close_or_abort_is_dropped() -> None:
    closed, aborted = FakeTransport(), FakeTransport()
    closed.close()
    aborted.abort()
    for transport in (closed, aborted):
        transport.write(b"late")
        assert transport.written == b""
        assert transport.is_closing()


def test_close_is_idempotent_and_does_not_call_connection_lost() -> None:
    protocol = EventLog()
    transport = connect(protocol)
    transport.close()
    transport.close()
    assert transport.closed and not transport.aborted
    assert protocol.events == ["connection_made"]


def test_lose_calls_connection_lost_exactly_once() -> None:
    protocol = EventLog()
    transport = connect(protocol)
    error = ConnectionResetError()
    transport.lose(error)
    transport.lose()
    assert protocol.events == ["connection_made", f"connection_lost({error!r})"]
    assert protocol.transport is None
    assert transport.is_closing()


def test_write_after_write_eof_raises() -> None:
    transport = FakeTransport()
    transport.write_eof()
    assert transport.eof_written
    assert not transport.is_closing()
    with pytest.raises(RuntimeError):
        transport.write(b"x")


def test_reading_can_be_paused_and_resumed() -> None:
    transport = FakeTransport()
    assert transport.is_reading()
    transport.pause_reading()
    assert not transport.is_reading() and not transport.reading
    transport.resume_reading()
    assert transport.is_reading()


def test_addresses_and_peer_name() -> None:
    ipv4 = FakeTransport(peer_address=("127.0.0.1", 5555), local_address=("127.0.0.1", 80))
    ipv6 = FakeTransport(peer_address=("::1", 5555, 0, 0))
    assert ipv4.peer_name == "127.0.0.1:5555"
    assert ipv4.local_address == ("127.0.0.1", 80)
    assert ipv6.peer_name == "[::1]:5555"
    assert isinstance(ipv4.recv_buffer, ByteBuffer)
    assert isinstance(ipv4.send_buffer, ByteBuffer)


def test_writes_count_as_sent_while_the_peer_reads() -> None:
    transport = FakeTransport()
    transport.write(b"x" * 100_000)
    assert transport.get_write_buffer_size() == 0


def test_peer_not_reading_queues_writes_until_drained() -> None:
    transport = FakeTransport()
    transport.peer_reading = False
    transport.write(b"abc")
    transport.write(b"def")
    assert transport.get_write_buffer_size() == 6
    assert transport.drain(4) == b"abcd"
    assert transport.get_write_buffer_size() == 2
    assert transport.drain() == b"ef"
    assert transport.written == b"abcdef"


def test_abort_drops_the_queue() -> None:
    transport = FakeTransport()
    transport.peer_reading = False
    transport.write(b"queued")
    transport.abort()
    assert transport.aborted
    assert transport.get_write_buffer_size() == 0


def test_watermarks_call_pause_writing_then_resume_writing_once_each() -> None:
    protocol = EventLog()
    transport = connect(protocol)
    transport.peer_reading = False
    transport.set_write_buffer_limits(high=10, low=4)
    transport.write(b"x" * 10)
    assert protocol.events == ["connection_made"]
    transport.write(b"x")
    transport.write(b"x")
    assert protocol.events == ["connection_made", "pause_writing"]
    assert not transport.is_reading()
    transport.drain(7)
    assert protocol.events == ["connection_made", "pause_writing"]
    transport.drain(1)
    transport.drain(1)
    assert protocol.events == ["connection_made", "pause_writing", "resume_writing"]
    assert transport.is_reading()


def test_raising_the_limits_above_the_queue_resumes_writing() -> None:
    protocol = EventLog()
    transport = connect(protocol)
    transport.peer_reading = False
    transport.set_write_buffer_limits(high=4)
    transport.write(b"x" * 10)
    transport.set_write_buffer_limits(high=100)
    assert protocol.events == ["connection_made", "pause_writing", "resume_writing"]


def test_write_buffer_limits_default_low_to_a_quarter_and_reject_low_above_high() -> None:
    transport = FakeTransport()
    transport.set_write_buffer_limits(high=400)
    assert transport.get_write_buffer_limits() == (400, 100)
    with pytest.raises(ValueError):
        transport.set_write_buffer_limits(high=10, low=20)


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 100, None])
def test_feed_appends_then_calls_data_received_per_chunk(chunk_size: int | None) -> None:
    protocol = EventLog()
    transport = connect(protocol)
    assert feed(protocol, transport, b"hello", chunk_size) == 5
    assert protocol.received == b"hello"
    expected_calls = 1 if chunk_size is None else -(-5 // chunk_size)
    assert protocol.events.count("data_received") == expected_calls


def test_feed_leaves_unconsumed_bytes_in_the_receive_buffer() -> None:
    class TakesNothing(Protocol):
        def __init__(self) -> None:
            self.sizes_seen: list[int] = []

        def data_received(self, buffer: ByteBuffer) -> None:
            self.sizes_seen.append(len(buffer))

    protocol = TakesNothing()
    transport = connect(protocol)
    feed(protocol, transport, b"abcd", chunk_size=2)
    assert protocol.sizes_seen == [2, 4]
    assert transport.recv_buffer.peek() == b"abcd"


def test_feed_stops_once_the_transport_is_closing() -> None:
    class CloseAtOnce(EventLog):
        def data_received(self, buffer: ByteBuffer) -> None:
            super().data_received(buffer)
            assert self.transport is not None
            self.transport.close()

    protocol = CloseAtOnce()
    transport = connect(protocol)
    assert feed(protocol, transport, b"abcdef", chunk_size=2) == 2
    assert protocol.received == b"ab"


def test_feed_stops_while_reading_is_paused() -> None:
    protocol = EventLog()
    transport = connect(protocol)
    transport.pause_reading()
    assert feed(protocol, transport, b"abc") == 0
    assert protocol.events == ["connection_made"]


def test_feed_rejects_a_chunk_size_below_one() -> None:
    protocol = EventLog()
    transport = connect(protocol)
    with pytest.raises(ValueError):
        feed(protocol, transport, b"abc", chunk_size=0)


def test_feed_eof_closes_only_when_eof_received_returns_false() -> None:
    keeps_open = EventLog()
    transport = connect(keeps_open)
    assert feed_eof(keeps_open, transport) is True
    assert not transport.closed
    closes = Protocol()
    transport = connect(closes)
    assert feed_eof(closes, transport) is False
    assert transport.closed


def test_feed_eof_delivers_nothing_once_closing() -> None:
    protocol = EventLog()
    transport = connect(protocol)
    transport.close()
    feed_eof(protocol, transport)
    assert "eof_received" not in protocol.events


def test_manual_clock_moves_only_when_advanced() -> None:
    clock = ManualClock(start=100.0)
    assert clock.time() == clock() == 100.0
    clock.advance(2.5)
    assert clock.time() == clock() == 102.5
    clock.advance(0)
    assert clock.time() == 102.5


def test_manual_clock_never_goes_back() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError):
        clock.advance(-1)
    assert clock.time() == 0.0

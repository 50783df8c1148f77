"""LineProtocol framing, fed through reactor.testing: no sockets, no loop."""

from __future__ import annotations

import pytest

from protocols.line import LineProtocol
from reactor.buffer import ByteBuffer
from reactor.testing import connect, feed, feed_eof


class RecordingLineProtocol(LineProtocol):
    """Keeps every line and counts line_too_long calls; closes on b"quit"."""

    def __init__(self, max_line_length: int | None = None, delimiter: bytes | None = None) -> None:
        self.lines: list[bytes] = []
        self.too_long_calls = 0
        if max_line_length is not None:
            self.max_line_length = max_line_length
        if delimiter is not None:
            self.delimiter = delimiter

    def line_received(self, line: bytes) -> None:
        self.lines.append(line)
        if line == b"quit":
            assert self.transport is not None
            self.transport.close()

    def line_too_long(self) -> None:
        self.too_long_calls += 1
        super().line_too_long()


class SearchRecordingBuffer(ByteBuffer):
    """A ByteBuffer that counts the bytes each find() had to look at."""

    __slots__ = ("bytes_searched",)

    def __init__(self) -> None:
        super().__init__()
        self.bytes_searched = 0

    def find(self, needle: bytes, start: int = 0) -> int:
        self.bytes_searched += max(0, len(self) - start)
        return super().find(needle, start)


MIXED_INPUT = (
    b"first\n"
    b"crlf line\r\n"
    b"\n"
    b"\r\n"
    b"utf-8 \xe5\xbc\xa0\xe4\xb8\x89\n"
    b"inner \r carriage return\n"
    b"two carriage returns\r\r\n"
    b"last"
)
MIXED_LINES = [
    b"first",
    b"crlf line",
    b"",
    b"",
    b"utf-8 \xe5\xbc\xa0\xe4\xb8\x89",
    b"inner \r carriage return",
    b"two carriage returns\r",
]


@pytest.mark.parametrize("chunk_size", range(1, len(MIXED_INPUT) + 1))
def test_every_chunk_size_gives_the_same_lines(chunk_size: int) -> None:
    protocol = RecordingLineProtocol()
    transport = connect(protocol)
    feed(protocol, transport, MIXED_INPUT, chunk_size)
    assert protocol.lines == MIXED_LINES
    assert transport.recv_buffer.peek() == b"last"


def test_multi_byte_delimiter_split_across_every_chunk_boundary() -> None:
    data = b"alpha<END>beta<E<END><END>gamma<END"
    for chunk_size in range(1, len(data) + 1):
        protocol = RecordingLineProtocol(delimiter=b"<END>")
        transport = connect(protocol)
        feed(protocol, transport, data, chunk_size)
        assert protocol.lines == [b"alpha", b"beta<E", b""], chunk_size
        assert transport.recv_buffer.peek() == b"gamma<END"


def test_crlf_and_lf_lines_are_both_accepted() -> None:
    protocol = RecordingLineProtocol()
    transport = connect(protocol)
    feed(protocol, transport, b"a\r\nb\nc\r\n")
    assert protocol.lines == [b"a", b"b", b"c"]


def test_only_one_trailing_carriage_return_is_stripped() -> None:
    protocol = RecordingLineProtocol()
    transport = connect(protocol)
    feed(protocol, transport, b"a\r\r\n")
    assert protocol.lines == [b"a\r"]


def test_line_of_exactly_max_length_is_delivered_with_lf_or_crlf() -> None:
    protocol = RecordingLineProtocol(max_line_length=8)
    transport = connect(protocol)
    feed(protocol, transport, b"12345678\n12345678\r\n", chunk_size=1)
    assert protocol.lines == [b"12345678", b"12345678"]
    assert protocol.too_long_calls == 0
    assert not transport.is_closing()


def test_complete_overlong_line_sends_error_and_closes_once() -> None:
    protocol = RecordingLineProtocol(max_line_length=8)
    transport = connect(protocol)
    feed(protocol, transport, b"ok\n123456789\nafter\n")
    assert protocol.lines == [b"ok"]
    assert protocol.too_long_calls == 1
    assert transport.written == b"error: line too long (max 8 bytes); closing the connection\n"
    assert transport.closed


@pytest.mark.parametrize("chunk_size", [1, 3, 100])
def test_partial_overlong_line_sends_error_and_closes_once(chunk_size: int) -> None:
    protocol = RecordingLineProtocol(max_line_length=8)
    transport = connect(protocol)
    feed(protocol, transport, b"x" * 100, chunk_size)
    assert protocol.too_long_calls == 1
    assert transport.written == b"error: line too long (max 8 bytes); closing the connection\n"
    assert transport.closed
    assert len(transport.recv_buffer) == 0


def test_overlong_line_stops_delivery_even_if_handler_keeps_connection_open() -> None:
    class Lenient(RecordingLineProtocol):
        def line_too_long(self) -> None:
            self.too_long_calls += 1

    protocol = Lenient(max_line_length=4)
    transport = connect(protocol)
    feed(protocol, transport, b"12345678", chunk_size=1)
    feed(protocol, transport, b"\nmore\nlines\n" + b"y" * 50)
    assert protocol.lines == []
    assert protocol.too_long_calls == 1
    assert not transport.is_closing()
    assert len(transport.recv_buffer) == 0


def test_partial_line_that_can_still_end_within_limit_is_kept() -> None:
    protocol = RecordingLineProtocol(max_line_length=8)
    transport = connect(protocol)
    feed(protocol, transport, b"12345678\r")
    assert protocol.too_long_calls == 0
    feed(protocol, transport, b"\n")
    assert protocol.lines == [b"12345678"]


def test_closing_inside_line_received_stops_further_delivery() -> None:
    protocol = RecordingLineProtocol()
    transport = connect(protocol)
    feed(protocol, transport, b"a\nquit\nb\nc\n")
    assert protocol.lines == [b"a", b"quit"]
    feed(protocol, transport, b"d\n")
    assert protocol.lines == [b"a", b"quit"]


def test_no_line_is_delivered_after_connection_lost() -> None:
    protocol = RecordingLineProtocol()
    transport = connect(protocol)
    transport.lose()
    protocol.data_received(ByteBuffer(b"late\n"))
    assert protocol.lines == []


def test_unterminated_final_line_is_delivered_at_eof_then_closes() -> None:
    protocol = RecordingLineProtocol()
    transport = connect(protocol)
    feed(protocol, transport, b"a\nabc\r")
    assert feed_eof(protocol, transport) is False
    assert protocol.lines == [b"a", b"abc"]
    assert transport.closed


def test_eof_with_nothing_buffered_delivers_nothing() -> None:
    protocol = RecordingLineProtocol()
    transport = connect(protocol)
    feed(protocol, transport, b"a\n")
    assert protocol.eof_received() is False
    assert protocol.lines == [b"a"]


def test_overlong_unterminated_final_line_at_eof_is_rejected() -> None:
    protocol = RecordingLineProtocol(max_line_length=8)
    transport = connect(protocol)
    feed(protocol, transport, b"123456789")
    assert protocol.too_long_calls == 0
    assert protocol.eof_received() is False
    assert protocol.lines == []
    assert protocol.too_long_calls == 1
    assert transport.written == b"error: line too long (max 8 bytes); closing the connection\n"


def test_final_line_at_eof_is_not_delivered_after_close() -> None:
    protocol = RecordingLineProtocol()
    transport = connect(protocol)
    feed(protocol, transport, b"quit\npending")
    assert protocol.eof_received() is False
    assert protocol.lines == [b"quit"]


def test_trickled_line_is_searched_in_linear_time() -> None:
    """One byte per segment: each byte is searched about once, not once per later segment."""
    size = 20_000
    protocol = RecordingLineProtocol()
    transport = connect(protocol)
    transport.recv_buffer = buffer = SearchRecordingBuffer()
    feed(protocol, transport, b"x" * size + b"\n", chunk_size=1)
    assert protocol.lines == [b"x" * size]
    assert buffer.bytes_searched <= 2 * (size + 1)


def test_search_restarts_from_zero_after_a_line_is_taken() -> None:
    protocol = RecordingLineProtocol()
    transport = connect(protocol)
    feed(protocol, transport, b"abc", chunk_size=1)
    feed(protocol, transport, b"\ndef\nghi", chunk_size=1)
    feed(protocol, transport, b"\n")
    assert protocol.lines == [b"abc", b"def", b"ghi"]


def test_send_line_writes_line_and_delimiter_in_one_call() -> None:
    protocol = RecordingLineProtocol()
    transport = connect(protocol)
    protocol.send_line(b"bytes")
    protocol.send_line("straße 张三")
    assert transport.writes == [b"bytes\n", "straße 张三\n".encode("utf-8")]


def test_send_line_after_connection_lost_is_dropped() -> None:
    protocol = RecordingLineProtocol()
    transport = connect(protocol)
    transport.lose()
    protocol.send_line("late")
    assert transport.written == b""

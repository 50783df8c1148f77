"""RESP: command encoding, and the reply parser at every chunk size, against hand-made streams,
replies captured from a real redis-server, and streams that break the protocol or the budget."""

from __future__ import annotations

from typing import Any

import pytest

from protocols.resp import (
    MAX_DEPTH,
    ReplyError,
    RespParser,
    RespProtocolError,
    encode_command,
)
from reactor.buffer import ByteBuffer
from tests.redis_process import RedisServer

#: Every RESP2 type, nil, empty, nesting, and a bulk string holding CRLF and a lone CR and LF.
STREAM = (b"+OK\r\n-ERR wrong\r\n:0\r\n:-17\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n"
          b"$8\r\na\r\nb\rc\nd\r\n*3\r\n:1\r\n*2\r\n$1\r\nx\r\n*0\r\n-WRONGTYPE no\r\n+\r\n")
PARSED: list[Any] = ["OK", ReplyError("ERR wrong"), 0, -17, b"", None, None, [],
                     b"a\r\nb\rc\nd", [1, [b"x", []], ReplyError("WRONGTYPE no")], ""]


def parse_in_chunks(data: bytes, size: int, parser: RespParser | None = None) -> list[Any]:
    """Feed ``data`` ``size`` bytes at a time, as reads would; check nothing is left over."""
    parser = parser or RespParser()
    buffer = ByteBuffer()
    replies: list[Any] = []
    for start in range(0, len(data), size):
        buffer.append(data[start:start + size])
        parser.feed(buffer, replies.append)
    assert len(buffer) == 0, f"chunk size {size}: {len(buffer)} bytes left unparsed"
    return replies


def test_every_type_parses_alike_at_every_chunk_size_from_one_byte() -> None:
    for size in range(1, len(STREAM) + 1):
        assert parse_in_chunks(STREAM, size) == PARSED, f"chunk size {size}"


def test_an_error_reply_keeps_its_code_and_message() -> None:
    (error,) = parse_in_chunks(b"-NOAUTH Authentication required.\r\n", 100)
    assert isinstance(error, ReplyError)
    assert error.code == "NOAUTH" and error.message == "NOAUTH Authentication required."


def test_an_incomplete_reply_stays_in_the_buffer_until_the_rest_arrives() -> None:
    parser, buffer, replies = RespParser(), ByteBuffer(), []
    buffer.append(b"*2\r\n$5\r\nhel")
    parser.feed(buffer, replies.append)
    assert replies == [] and buffer.peek() == b"hel"  # the headers were taken, the body waits
    buffer.append(b"lo\r\n:7\r\n+next")
    parser.feed(buffer, replies.append)
    assert replies == [[b"hello", 7]] and buffer.peek() == b"+next"


class CountingBuffer(ByteBuffer):
    """A receive buffer that counts the bytes ``take()`` hands out (each is a copy or a join)."""

    __slots__ = ("taken",)

    def __init__(self) -> None:
        super().__init__()
        self.taken = 0

    def take(self, size: int | None = None) -> bytes:
        data = super().take(size)
        self.taken += len(data)
        return data


def test_a_large_bulk_string_arriving_in_small_reads_is_not_reparsed_on_every_read() -> None:
    body = bytes(range(256)) * (4 * 4096)  # 4 MiB, every byte value, CRLFs included
    data = b"$%d\r\n" % len(body) + body + b"\r\n"
    parser, buffer, replies = RespParser(), CountingBuffer(), []
    for start in range(0, len(data), 4096):
        buffer.append(data[start:start + 4096])
        parser.feed(buffer, replies.append)
    assert replies == [body]
    # Taken once for the header and once whole: not once per read (1,025 reads).
    assert buffer.taken <= 2 * len(data)


def test_a_partial_line_trickling_in_is_searched_once_not_from_its_start_every_time() -> None:
    parser, buffer, replies = RespParser(), CountingBuffer(), []
    for byte in b"+" + b"x" * 5000:
        buffer.append(bytes([byte]))
        parser.feed(buffer, replies.append)
    assert buffer.taken == 0  # nothing copied out while the line has no end
    buffer.append(b"\r\n")
    parser.feed(buffer, replies.append)
    assert replies == ["x" * 5000]


@pytest.mark.parametrize(("stream", "message"), [
    (b"$100\r\n", "bulk string of 100 bytes"),
    (b"*40\r\n", "array of 40 replies cannot fit"),
    (b"+" + b"x" * 100, "without ending"),
    (b"*2\r\n$40\r\n" + b"y" * 40 + b"\r\n$40\r\n", "bulk string of 40 bytes"),
], ids=["bulk", "array", "line", "array-total"])
def test_a_reply_over_budget_is_refused_before_its_body_is_buffered(stream: bytes,
                                                                    message: str) -> None:
    parser, buffer = RespParser(max_reply_bytes=64), ByteBuffer(stream)
    with pytest.raises(RespProtocolError, match=message):
        parser.feed(buffer, lambda reply: None)


def test_the_budget_is_per_reply_so_many_small_replies_pass() -> None:
    data = b":1\r\n" * 1000
    assert parse_in_chunks(data, 4096, RespParser(max_reply_bytes=8)) == [1] * 1000


@pytest.mark.parametrize(("stream", "message"), [
    (b"!3\r\nabc\r\n", "unknown reply type"),
    (b":12a\r\n", "not an integer"),
    (b": 12\r\n", "not an integer"),
    (b"$3\r\nabcd\r\n", "not followed by CRLF"),
    (b"$-2\r\n", "negative bulk string length"),
    (b"*-5\r\n", "negative array length"),
    (b"*1\r\n" * (MAX_DEPTH + 1) + b":1\r\n", "nested more than"),
], ids=["type", "integer", "space", "crlf", "bulk-length", "array-length", "depth"])
def test_bytes_that_are_not_resp_are_a_protocol_error(stream: bytes, message: str) -> None:
    with pytest.raises(RespProtocolError, match=message):
        parse_in_chunks(stream, 1)


def test_replies_before_a_bad_one_are_delivered() -> None:
    replies: list[Any] = []
    with pytest.raises(RespProtocolError):
        RespParser().feed(ByteBuffer(b"+one\r\n:2\r\n?bad\r\n"), replies.append)
    assert replies == ["one", 2]


def test_commands_are_arrays_of_bulk_strings() -> None:
    assert encode_command(["SET", b"k\r\n", 42, "straße"]) == (
        b"*4\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n42\r\n$7\r\nstra\xc3\x9fe\r\n")
    with pytest.raises(TypeError, match="NoneType"):
        encode_command(["GET", None])  # type: ignore[list-item]


# -- against a real server --------------------------------------------------------------------

MARKER = encode_command(["ECHO", "end of capture"])
MARKER_REPLY = b"$14\r\nend of capture\r\n"


def capture(redis_server: RedisServer, commands: list[list[Any]]) -> bytes:
    control = redis_server.control()
    try:
        return control.raw(b"".join(encode_command(command) for command in commands) + MARKER,
                           MARKER_REPLY)
    finally:
        control.close()


def test_replies_captured_from_redis_parse_alike_at_every_chunk_size(
        redis_server: RedisServer) -> None:
    commands: list[list[Any]] = [
        ["SET", "k", b"line one\r\nline two"], ["GET", "k"], ["GET", "missing"],
        ["INCRBY", "n", -5], ["RPUSH", "l", "a", "", "c"], ["LRANGE", "l", 0, -1],
        ["XADD", "s", "1-1", "field", "value"], ["XRANGE", "s", "-", "+"],
        ["MULTI"], ["INCR", "k"], ["PING"], ["EXEC"],
        ["EVAL", "return {1, {2, {3, 'x'}}, redis.error_reply('BOOM deep')}", 0],
        ["BLPOP", "nothing", "0.01"], ["NOSUCHCOMMAND"], ["HGETALL", "absent"],
    ]
    data = capture(redis_server, commands)
    expected = [
        "OK", b"line one\r\nline two", None, -5, 3, [b"a", b"", b"c"], b"1-1",
        [[b"1-1", [b"field", b"value"]]], "OK", "QUEUED", "QUEUED",
        [ReplyError("ERR value is not an integer or out of range"), "PONG"],
        [1, [2, [3, b"x"]], ReplyError("BOOM deep")], None,
        None,  # the unknown command's error, checked below
        [], b"end of capture"]
    for size in range(1, len(data) + 1):
        replies = parse_in_chunks(data, size)
        unknown = replies[14]
        assert isinstance(unknown, ReplyError) and unknown.code == "ERR"
        replies[14] = None
        assert replies == expected, f"chunk size {size}"


def test_a_large_value_captured_from_redis_parses_at_any_chunk_size(
        redis_server: RedisServer) -> None:
    value = bytes(range(256)) * 1024  # 256 KiB with every byte value
    data = capture(redis_server, [["SET", "big", value], ["GET", "big"], ["STRLEN", "big"]])
    for size in (1, 2, 1000, 4096, 65536, len(data)):
        assert parse_in_chunks(data, size) == ["OK", value, len(value), b"end of capture"]

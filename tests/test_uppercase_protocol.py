"""UppercaseProtocol: Unicode upper-casing, UTF-8 errors, and the line limit."""

from __future__ import annotations

import pytest

from protocols.uppercase import UppercaseProtocol
from reactor.testing import FakeTransport, connect, feed


def started() -> tuple[UppercaseProtocol, FakeTransport]:
    protocol = UppercaseProtocol()
    return protocol, connect(protocol)


REQUEST = "hello\r\nstraße\n张三 and ñ\n\n".encode("utf-8")
REPLY = "HELLO\nSTRASSE\n张三 AND Ñ\n\n".encode("utf-8")


@pytest.mark.parametrize("chunk_size", range(1, len(REQUEST) + 1))
def test_every_chunk_size_gets_the_same_replies(chunk_size: int) -> None:
    protocol, transport = started()
    feed(protocol, transport, REQUEST, chunk_size)
    assert transport.written == REPLY


def test_sharp_s_becomes_two_letters() -> None:
    protocol, transport = started()
    feed(protocol, transport, "straße\n".encode("utf-8"))
    assert transport.written == b"STRASSE\n"


def test_han_characters_are_unchanged() -> None:
    protocol, transport = started()
    feed(protocol, transport, "张三\n".encode("utf-8"))
    assert transport.written == "张三\n".encode("utf-8")


def test_invalid_utf8_gets_one_error_line_and_connection_stays_open() -> None:
    protocol, transport = started()
    feed(protocol, transport, b"bad \xff\xfe bytes\n")
    assert transport.written == b"error: line is not valid UTF-8\n"
    assert not transport.is_closing()
    transport.clear()
    feed(protocol, transport, b"still here\n")
    assert transport.written == b"STILL HERE\n"


def test_overlong_line_gets_error_and_close() -> None:
    protocol, transport = started()
    protocol.max_line_length = 16
    feed(protocol, transport, b"a" * 17 + b"\nnext\n")
    assert transport.written == b"error: line too long (max 16 bytes); closing the connection\n"
    assert transport.closed


def test_default_limit_is_64_kib() -> None:
    protocol, transport = started()
    feed(protocol, transport, b"a" * (64 * 1024) + b"\n")
    assert transport.written == b"A" * (64 * 1024) + b"\n"
    feed(protocol, transport, b"a" * (64 * 1024 + 2))
    assert transport.closed

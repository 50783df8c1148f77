"""EchoProtocol: every byte back, in order, without copying one whole chunk."""

from __future__ import annotations

import pytest

from protocols.echo import EchoProtocol
from reactor.testing import connect, feed, feed_eof

DATA = bytes(range(256)) + b"\r\n\x00 tail"


@pytest.mark.parametrize("chunk_size", range(1, len(DATA) + 1))
def test_every_chunk_size_echoes_every_byte_in_order(chunk_size: int) -> None:
    protocol = EchoProtocol()
    transport = connect(protocol)
    feed(protocol, transport, DATA, chunk_size)
    assert transport.written == DATA
    assert len(transport.recv_buffer) == 0


def test_one_whole_chunk_is_written_back_without_a_copy() -> None:
    protocol = EchoProtocol()
    transport = connect(protocol)
    chunk = b"x" * 4096
    feed(protocol, transport, chunk)
    assert transport.writes[0] is chunk


def test_eof_returns_false_so_the_connection_closes_after_flushing() -> None:
    protocol = EchoProtocol()
    transport = connect(protocol)
    feed(protocol, transport, b"last words")
    assert feed_eof(protocol, transport) is False
    assert transport.written == b"last words"
    assert transport.closed
    assert not transport.aborted

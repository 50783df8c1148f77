"""Tests of the key-value protocol: without sockets first, then once over a real socket.

Run them with ``python -m pytest docs/tutorial``.
"""

from __future__ import annotations

import socket
import time

import pytest

from docs.tutorial.kv_protocol import KeyValueProtocol, Store
from reactor import Reactor
from reactor.testing import FakeTransport, ManualClock, connect, feed, feed_eof


def new_connection(store: Store | None = None) -> tuple[KeyValueProtocol, FakeTransport]:
    protocol = KeyValueProtocol(store if store is not None else Store())
    return protocol, connect(protocol)


REQUESTS = b"SET greeting hello world\r\nGET greeting\nDEL greeting\nGET greeting\nPING\n"
REPLIES = (b"OK\nVALUE hello world\nDELETED\nNOT_FOUND\n"
           b"error: commands are SET, GET, DEL, EXPIRE and QUIT\n")


@pytest.mark.parametrize("chunk_size", range(1, len(REQUESTS) + 1))
def test_every_chunk_size_gets_the_same_replies(chunk_size: int) -> None:
    protocol, transport = new_connection()
    feed(protocol, transport, REQUESTS, chunk_size)
    assert transport.written == REPLIES


def test_connections_share_one_store() -> None:
    store = Store()
    first, first_transport = new_connection(store)
    second, second_transport = new_connection(store)
    feed(first, first_transport, b"SET colour blue\n")
    feed(second, second_transport, b"GET colour\n")
    assert second_transport.written == b"VALUE blue\n"


def test_a_key_expires_on_the_store_clock() -> None:
    clock = ManualClock()
    protocol, transport = new_connection(Store(clock=clock))
    feed(protocol, transport, b"SET session abc\nEXPIRE session 30\nGET session\n")
    clock.advance(29.9)
    feed(protocol, transport, b"GET session\n")
    clock.advance(0.1)
    feed(protocol, transport, b"GET session\n")
    assert transport.written == b"OK\nOK\nVALUE abc\nVALUE abc\nNOT_FOUND\n"


def test_quit_says_bye_closes_and_reads_no_further() -> None:
    protocol, transport = new_connection()
    feed(protocol, transport, b"QUIT\nSET never stored\n")
    assert transport.written == b"BYE\n"
    assert transport.closed
    transport.lose()  # the real connection calls connection_lost on a later pass
    assert protocol.transport is None


def test_a_last_line_without_newline_is_answered_before_the_close() -> None:
    protocol, transport = new_connection()
    feed(protocol, transport, b"SET k v\nGET k")
    assert transport.written == b"OK\n"
    assert feed_eof(protocol, transport) is False  # the peer's FIN: close once replies are out
    assert transport.written == b"OK\nVALUE v\n"
    assert transport.closed


def test_a_peer_that_does_not_read_stops_being_read() -> None:
    protocol, transport = new_connection()
    transport.peer_reading = False  # our writes now stay queued in transport.send_buffer
    feed(protocol, transport, b"SET big " + b"x" * 10_000 + b"\n")
    requests = b"GET big\n" * 100
    delivered = feed(protocol, transport, requests, chunk_size=8)
    assert transport.writing_paused and not transport.reading  # pause_writing paused reading
    assert delivered < len(requests)  # so the rest of the requests were not read
    transport.drain()  # the peer reads everything we queued
    assert transport.reading  # resume_writing resumed reading


def test_errors_keep_the_connection_open() -> None:
    protocol, transport = new_connection()
    feed(protocol, transport, b"SET\nEXPIRE k soon\nEXPIRE k nan\nGET\n")
    assert transport.written == (b"error: usage: SET key value\n"
                                 + b"error: usage: EXPIRE key seconds\n" * 2
                                 + b"error: commands are SET, GET, DEL, EXPIRE and QUIT\n")
    assert not transport.is_closing()


def test_a_full_store_refuses_new_keys_but_updates_old_ones() -> None:
    protocol, transport = new_connection(Store(max_keys=1))
    feed(protocol, transport, b"SET a 1\nSET b 2\nSET a 3\nGET a\n")
    assert transport.written == b"OK\nerror: the store is full\nOK\nVALUE 3\n"


def test_an_overlong_line_gets_an_error_and_a_close() -> None:
    protocol, transport = new_connection()
    feed(protocol, transport, b"SET k " + b"x" * 20_000 + b"\nGET k\n")
    assert transport.written == b"error: line too long (max 16384 bytes); closing the connection\n"
    assert transport.closed


def test_over_a_real_socket() -> None:
    reactor = Reactor()
    listener = reactor.listen_tcp(Store().protocol_factory, "127.0.0.1", 0)
    client = socket.create_connection(listener.address)
    client.setblocking(False)
    try:
        client.sendall(b"SET k v\nGET k\nQUIT\n")
        received = b""
        deadline = time.monotonic() + 5
        while not received.endswith(b"BYE\n"):
            assert time.monotonic() < deadline, f"no BYE yet; got {received!r}"
            reactor.run_once(0.05)  # one loop pass: accept, recv, send...
            try:
                received += client.recv(4096)
            except BlockingIOError:
                pass
        assert received == b"OK\nVALUE v\nBYE\n"
        client.close()  # our FIN ends the server's lingering close
        while listener.connections:
            assert time.monotonic() < deadline, "the server still holds the connection"
            reactor.run_once(0.05)
    finally:
        client.close()
        listener.close()
        reactor.close()

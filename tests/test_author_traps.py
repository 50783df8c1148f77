"""What a protocol author trips over first, made loud: a forgotten super().connection_made,
a ByteBuffer used as bytes, a protocol that never consumes its input (in the doubles too)."""

from __future__ import annotations

import logging
import socket

import pytest

from protocols.line import LineProtocol
from reactor import DatagramProtocol, Protocol, Reactor
from reactor.buffer import ByteBuffer
from reactor.connection import MAX_UNCONSUMED_INPUT_BYTES
from reactor.testing import FakeTransport, connect, feed
from tests.helpers import run_until

pytestmark = pytest.mark.timeout(20)


class ForgetsSuper(LineProtocol):
    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        self.greeting = "hello"  # and no super().connection_made(transport)

    def line_received(self, line: bytes) -> None:
        self.send_line(line)


class KeepsItsOwnWay(LineProtocol):
    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        self.transport = transport  # setting it by hand is fine too


class NeverConsumes(Protocol):
    def data_received(self, buffer: ByteBuffer) -> None:
        pass  # leaves every byte in the buffer


def test_the_double_refuses_a_connection_made_that_did_not_keep_the_transport() -> None:
    with pytest.raises(RuntimeError, match=r"super\(\)\.connection_made\(transport\)"):
        connect(ForgetsSuper())
    assert connect(KeepsItsOwnWay()).protocol is not None


def test_a_real_connection_is_aborted_with_one_error_naming_the_fix(
        caplog: pytest.LogCaptureFixture) -> None:
    reactor = Reactor()
    listener = reactor.listen_tcp(ForgetsSuper, "127.0.0.1", 0)
    client = socket.create_connection(listener.address, timeout=5)
    client.setblocking(False)
    received: list[bytes] = []

    def ended() -> bool:
        try:
            chunk = client.recv(100)
        except BlockingIOError:
            return False
        except ConnectionResetError:  # the abort: SO_LINGER 0, so the kernel sent RST
            return True
        received.append(chunk)
        return chunk == b""

    try:
        with caplog.at_level(logging.ERROR):
            client.send(b"ping\n")
            run_until(reactor, ended)
        assert b"".join(received) == b"", "nothing may be answered on such a connection"
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, caplog.text
        assert "super().connection_made(transport)" in caplog.text
    finally:
        client.close()
        listener.close()
        reactor.close()


def test_a_datagram_protocol_that_forgets_is_refused_too(caplog: pytest.LogCaptureFixture) -> None:
    class Forgets(DatagramProtocol):
        def connection_made(self, transport):  # type: ignore[no-untyped-def]
            pass

    reactor = Reactor()
    try:
        with caplog.at_level(logging.ERROR):
            reactor.listen_udp(Forgets, "127.0.0.1", 0)  # connection_made before it returns
        # Logged, not closed: a datagram transport's policy for any protocol error.
        assert "super().connection_made(transport)" in caplog.text
    finally:
        reactor.close()


@pytest.mark.parametrize("use", [
    lambda b: bytes(b), lambda b: b[::-1], lambda b: b[0], lambda b: b == b"QUIT",
    lambda b: b != b"QUIT", lambda b: list(b), lambda b: b"Q" in b,
], ids=["bytes()", "slice", "index", "==", "!=", "iterate", "in"])
def test_a_buffer_used_as_bytes_says_to_take_and_keeps_its_bytes(use) -> None:  # type: ignore[no-untyped-def]
    buffer = ByteBuffer(b"QUIT")
    with pytest.raises(TypeError, match=r"buffer\.take\(\)"):
        use(buffer)
    assert buffer.take() == b"QUIT"


def test_buffers_still_compare_and_hash_as_objects() -> None:
    one, two = ByteBuffer(b"a"), ByteBuffer(b"a")
    assert one == one and one != two and len({one, two}) == 2


def test_the_double_closes_a_protocol_that_never_consumes_at_the_real_limit() -> None:
    protocol = NeverConsumes()
    transport = connect(protocol)
    delivered = feed(protocol, transport, b"x" * (2 * MAX_UNCONSUMED_INPUT_BYTES), 64 * 1024)
    assert transport.closed and transport.closed_for_unconsumed_input
    assert delivered == MAX_UNCONSUMED_INPUT_BYTES + 64 * 1024  # the chunk that passed it


def test_the_double_takes_the_limit_a_protocol_sets() -> None:
    protocol = NeverConsumes()
    transport: FakeTransport = connect(protocol)
    transport.set_read_buffer_limit(10)
    feed(protocol, transport, b"0123456789")
    assert not transport.closed
    feed(protocol, transport, b"!")
    assert transport.closed_for_unconsumed_input

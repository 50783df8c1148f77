"""Test doubles for protocol authors: a fake transport, a chunk feeder and a manual clock.

Owns no socket and no loop. A protocol only ever talks to its transport, so a protocol can be
unit-tested by handing it a ``FakeTransport`` that records what it is told to do, and by calling
the protocol's events by hand (Twisted ships the same idea as ``StringTransport``)::

    from protocols.uppercase import UppercaseProtocol
    from reactor.testing import connect, feed

    protocol = UppercaseProtocol()
    transport = connect(protocol)                  # calls connection_made(transport)
    feed(protocol, transport, b"hi\\nthere\\n", chunk_size=1)
    assert transport.written == b"HI\\nTHERE\\n"
    transport.lose()                               # calls connection_lost(None), once

Framing code should be fed at every chunk size from 1 byte up (``feed``'s ``chunk_size``), since
TCP may split a stream anywhere. ``FakeTransport`` never calls ``connection_lost`` by itself, even
after ``close()``: the real connection does that on a later loop pass, and a test says when with
``lose()``. Set ``peer_reading = False`` to simulate a peer that does not read: written bytes then
stay queued (``get_write_buffer_size()`` grows, ``pause_writing`` is called past the high-water
mark) until ``drain()``.

Read next: ``tests/test_line_protocol.py``, which uses all of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from reactor.address import SocketAddress, format_address
from reactor.buffer import ByteBuffer
from reactor.transport import HIGH_WATER_BYTES, LOW_WATER_BYTES, resolve_write_limits

if TYPE_CHECKING:
    from reactor.connection import Connection
    from reactor.protocol import Protocol



class FakeTransport:
    """The transport interface of ``reactor.connection.Connection``, recording instead of sending.

    ``writes`` is every accepted ``write`` call in order (``bytes`` are kept as the very objects
    written, so a test can check that nothing was copied); ``written`` is them joined. ``closed``,
    ``aborted``, ``eof_written`` and ``reading`` record the commands received.
    """

    def __init__(
        self,
        protocol: Protocol | None = None,
        peer_address: SocketAddress = ("127.0.0.1", 5555),
        local_address: SocketAddress = ("127.0.0.1", 8000),
    ) -> None:
        self.protocol = protocol
        self.peer_address = peer_address
        self.local_address = local_address
        self.recv_buffer = ByteBuffer()
        self.send_buffer = ByteBuffer()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.eof_written = False
        self.reading = True
        self.lost = False
        self.peer_reading = True
        self.writing_paused = False
        self.high_water_bytes = HIGH_WATER_BYTES
        self.low_water_bytes = LOW_WATER_BYTES

    def __repr__(self) -> str:
        return (
            f"<FakeTransport peer={self.peer_name} closing={self.is_closing()} "
            f"written={len(self.written)} queued={len(self.send_buffer)}>"
        )

    @property
    def peer_name(self) -> str:
        return format_address(self.peer_address)

    @property
    def written(self) -> bytes:
        """Everything written so far, as one ``bytes``."""
        return b"".join(self.writes)

    def clear(self) -> None:
        """Forget what was written (not what is still queued), to check the next reply alone."""
        self.writes.clear()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Record ``data``; like the real one, ``TypeError`` unless bytes-like, dropped if closing.

        Raises ``RuntimeError`` after ``write_eof()``: the FIN is already promised, so the bytes
        could never arrive, and a protocol doing this has a bug a test should see.
        """
        if type(data) is not bytes:
            data = bytes(memoryview(data))
        if self.is_closing():
            return
        if self.eof_written:
            raise RuntimeError("write() after write_eof()")
        if not data:
            return
        self.writes.append(data)
        if not self.peer_reading:
            self.send_buffer.append(data)
            self._check_high_water()

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in lines:
            self.write(data)

    def write_eof(self) -> None:
        self.eof_written = True

    def close(self) -> None:
        """Record the close; queued bytes stay queued (the real one flushes them first)."""
        self.closed = True

    def abort(self) -> None:
        """Record the abort and drop the queue, as the real one does."""
        self.aborted = True
        self.send_buffer.clear()

    def is_closing(self) -> bool:
        return self.closed or self.aborted or self.lost

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Same rule as the real one (asyncio's): ``low`` defaults to a quarter of ``high``, and
        a queue already past a new mark calls ``pause_writing``/``resume_writing`` at once."""
        self.high_water_bytes, self.low_water_bytes = resolve_write_limits(high, low)
        self._check_high_water()
        self._check_low_water()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.high_water_bytes, self.low_water_bytes

    def get_write_buffer_size(self) -> int:
        return len(self.send_buffer)

    def drain(self, size: int | None = None) -> bytes:
        """The peer reads ``size`` queued bytes (all when ``None``); returns them.

        Calls ``resume_writing`` once the queue is at or below the low-water mark.
        """
        data = self.send_buffer.take(size)
        self._check_low_water()
        return data

    def lose(self, exc: BaseException | None = None) -> None:
        """The connection is over: call ``protocol.connection_lost(exc)``, only the first time.

        Use it after ``close()``/``abort()`` (the real reactor calls ``connection_lost`` on a
        later loop pass) or to simulate the peer vanishing (``exc=ConnectionResetError()``).
        """
        if self.lost:
            return
        self.lost = True
        if self.protocol is not None:
            self.protocol.connection_lost(exc)

    def _check_high_water(self) -> None:
        if not self.writing_paused and len(self.send_buffer) > self.high_water_bytes:
            self.writing_paused = True
            if self.protocol is not None:
                self.protocol.pause_writing()

    def _check_low_water(self) -> None:
        if self.writing_paused and len(self.send_buffer) <= self.low_water_bytes:
            self.writing_paused = False
            if self.protocol is not None:
                self.protocol.resume_writing()


def connect(
    protocol: Protocol,
    peer: SocketAddress = ("127.0.0.1", 5555),
    local: SocketAddress = ("127.0.0.1", 8000),
) -> FakeTransport:
    """A ``FakeTransport`` for ``protocol``, after calling ``protocol.connection_made`` with it."""
    transport = FakeTransport(protocol, peer_address=peer, local_address=local)
    # FakeTransport has Connection's interface without being one: the cast says so to a checker.
    protocol.connection_made(cast("Connection", transport))
    return transport


def feed(
    protocol: Protocol,
    transport: FakeTransport,
    data: bytes,
    chunk_size: int | None = None,
) -> int:
    """Deliver ``data`` the way the connection would: append, then ``data_received``, per chunk.

    Chunks are ``chunk_size`` bytes (all of ``data`` at once when ``None``). Stops, as the real
    connection does, once the transport is closing or reading is paused; returns how many bytes
    were delivered, so a test can tell.
    """
    if chunk_size is None:
        chunk_size = max(1, len(data))
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    delivered = 0
    while delivered < len(data) and transport.reading and not transport.is_closing():
        chunk = data[delivered:delivered + chunk_size]
        transport.recv_buffer.append(chunk)
        delivered += len(chunk)
        protocol.data_received(transport.recv_buffer)
    return delivered


def feed_eof(protocol: Protocol, transport: FakeTransport) -> bool:
    """Deliver the peer's FIN: ``eof_received()``, then ``close()`` if it returned false.

    Returns what ``eof_received`` returned. Nothing is delivered once the transport is closing.
    """
    if transport.is_closing():
        return False
    keep_open = bool(protocol.eof_received())
    if not keep_open:
        transport.close()
    return keep_open


class ManualClock:
    """A monotonic clock that moves only when a test calls ``advance``.

    Call it or its ``time()`` method: either can stand in for ``time.monotonic``.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def __call__(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``; a monotonic clock never goes back."""
        if seconds < 0:
            raise ValueError(f"cannot move a monotonic clock back ({seconds} seconds)")
        self._now += seconds

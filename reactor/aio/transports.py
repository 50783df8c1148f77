"""asyncio transports made of the reactor's own: a ``Connection`` or ``DatagramTransport`` below,
an ``asyncio.Transport`` / ``asyncio.DatagramTransport`` on top, and a small bridge protocol
between them that turns the reactor's callbacks into asyncio's.

Three differences are bridged here, each on purpose (docs/design.md, "The asyncio layer"):

* The reactor hands ``data_received`` its receive *buffer*; asyncio protocols get ``bytes``.
  ``AsyncioConnection`` hands the bytes of each ``recv()`` straight to the transport (the bridge
  takes the whole buffer on the reactor's own path: traced, or ``reactor_close=True``), so the
  unconsumed-input limit never applies; a ``BufferedProtocol`` is fed through its own
  ``get_buffer``/``buffer_updated``.
* The reactor's ``pause_writing`` also stops reading the peer (back-pressure by default);
  asyncio's is only a notification, so the bridge forwards it and reads on.
* The reactor's ``close()`` lingers up to 2 s for the peer's FIN, and its ``abort()`` sends RST.
  asyncio closes as soon as the queue is flushed, and its ``abort()`` just closes. The
  connection class here (``AsyncioConnection``) does what asyncio does; set
  ``ReactorEventLoop(reactor_close=True)`` to keep the reactor's behaviour.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from asyncio import constants, transports, trsock
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reactor.connection import MAX_READ_BYTES, Connection, ConnectionState
from reactor.datagram import DatagramTransport
from reactor.errors import ErrorKind, classify
from reactor.protocol import DatagramProtocol, Protocol

if TYPE_CHECKING:
    from reactor.aio.loop import ReactorEventLoop

CLOSING = ConnectionState.CLOSING

#: asyncio's Server counts its transports; from 3.13 it also keeps them (close_clients()).
ATTACH_TAKES_TRANSPORT = sys.version_info >= (3, 13)


class AsyncioConnection(Connection):
    """A ``Connection`` that closes the way asyncio's transports do: no lingering wait for the
    peer's FIN once our queue is flushed, and ``abort()`` as a plain close, not RST."""

    __slots__ = ("on_drained", "_app")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Called once each time the send buffer empties (sendfile waits for it).
        self.on_drained: Callable[[], None] | None = None
        #: The asyncio transport on top, which hands each read's bytes to its protocol.
        self._app: SocketTransport | None = None

    def _on_readable(self) -> None:
        """``Connection._on_readable`` for an asyncio protocol, which takes every byte of every
        read: the bytes go from ``recv()`` to ``SocketTransport._deliver`` without passing
        through the receive buffer, the bridge's ``data_received`` and ``ByteBuffer.take()``.
        Measured under callgrind, Protocol echo 1 KiB, 1 connection: 25.2k -> 22.4k
        instructions per round trip."""
        if self._tracer is not None:
            super()._on_readable()  # whose trace shows the bytes in the receive buffer
            return
        try:
            data = self._io.recv(MAX_READ_BYTES)
        except OSError as exc:
            self._io_failed(exc, "recv")
            return
        if not data:
            self._on_eof()
            return
        self.reads += 1
        self.bytes_received += len(data)
        self._app._deliver(data)  # type: ignore[union-attr]  # set before reading starts

    def _send_buffer_drained(self) -> None:
        super()._send_buffer_drained()
        if self.on_drained is not None and not self._send_buffer._length:
            self.on_drained()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        # _write_closed first: one attribute on the common path. With SocketTransport.write's
        # same test and _deliver's cached _buffered, the asyncio Protocol echo on our loop went
        # from 2.19 to 1.60 user us per round trip (1.35x -> 1.06x asyncio's loop; bench
        # aio-echo, 1 KiB x 10 connections, 3 interleaved rounds).
        if self._write_closed and self._state is ConnectionState.CLOSING and not self._closed:
            # asyncio's transports take writes after close() for as long as the queue is being
            # flushed (sslproto's close_notify comes that way), and send them before closing.
            self._write_closed = False
            try:
                super().write(data)
            finally:
                self._write_closed = True
            return
        super().write(data)

    def _resume_protocol_writing(self) -> None:
        super()._resume_protocol_writing()
        if self._state is ConnectionState.CLOSING and not self._closed:
            # The reactor tells a closing protocol nothing more; asyncio's keep hearing
            # resume_writing until the socket closes (so sslproto can flush its close_notify).
            try:
                self._protocol.resume_writing()
            except Exception as exc:
                self._protocol_failed(exc, "resume_writing")

    def write_eof(self) -> None:
        if self._state is ConnectionState.OPEN and not self._send_buffer._length:
            # asyncio's transport shuts down at once and lets the kernel's refusal reach the
            # caller (ENOTCONN once the peer has reset), leaving the transport as it was; the
            # reactor's would treat it as the peer gone and abort.
            self._send_fin()
            self._set_state(ConnectionState.WRITE_SHUT)
            return
        super().write_eof()

    def _finish_closing(self) -> None:
        # asyncio's selector transport closes the socket once its buffer is empty; the kernel
        # then sends FIN (or RST if unread input is still queued, as it would for asyncio).
        self._teardown(None)

    def abort(self) -> None:
        self._send_buffer.clear()
        self._teardown(None)


def peer_of(sock: socket.socket) -> Any:
    try:
        return sock.getpeername()
    except OSError:
        return None


def sock_name(sock: socket.socket) -> Any:
    try:
        return sock.getsockname()
    except OSError:
        return None


class _Bridge(Protocol):
    """The reactor-side protocol of one asyncio stream transport: forwards every callback."""

    def __init__(self, app: SocketTransport) -> None:
        self.app = app

    def connection_made(self, transport: Connection) -> None:
        super().connection_made(transport)
        # asyncio calls connection_made on a later iteration (call_soon) and no data may come
        # before it: hold reading until it has run.
        transport.pause_reading()
        self.app._loop.call_soon(self.app._connected)

    def data_received(self, buffer: Any) -> None:
        self.app._deliver(buffer.take())

    def eof_received(self) -> bool:
        return self.app._eof_received()

    def pause_writing(self) -> None:
        self.app._protocol_paused = True
        self.app._call_protocol("pause_writing")

    def resume_writing(self) -> None:
        self.app._protocol_paused = False
        self.app._call_protocol("resume_writing")

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.app._lost(exc)


class SocketTransport(transports._FlowControlMixin):
    """``asyncio.Transport`` over a reactor ``Connection`` (TCP or a Unix stream socket).

    It is a ``_FlowControlMixin`` as asyncio's own transports are, because sendfile's fallback
    accepts only those; the watermarks themselves are the connection's.
    """

    # asyncio's private attributes (set by _FlowControlMixin and BaseTransport); typeshed
    # declares only their names in __slots__.
    _extra: dict[str, Any]
    _protocol_paused: bool

    # asyncio.start_tls() and aiohttp check this: the transport can carry sslproto's layer.
    _start_tls_compatible = True
    # loop.sendfile() tries os.sendfile() on the socket first (ReactorEventLoop._sendfile_native).
    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE

    def __init__(self, loop: ReactorEventLoop, sock: socket.socket, protocol: Any,
                 waiter: asyncio.Future[Any] | None = None, extra: dict[str, Any] | None = None,
                 server: Any = None, *, reactor_close: bool = False) -> None:
        super().__init__(extra, loop)
        self._loop: ReactorEventLoop = loop
        self._sock = sock
        self._protocol = protocol
        #: A BufferedProtocol is fed through get_buffer(); asked once, not on every read.
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)
        self._waiter = waiter
        self._server = server
        self._extra.setdefault("socket", trsock.TransportSocket(sock))
        self._extra.setdefault("sockname", sock_name(sock))
        self._extra.setdefault("peername", peer_of(sock))
        self._closing = False
        self._paused_by_app = False
        self._made = False
        #: While loop.sendfile() owns the socket: done once our queue is empty.
        self._empty_waiter: asyncio.Future[None] | None = None
        if server is not None:
            server._attach(*((self,) if ATTACH_TAKES_TRANSPORT else ()))
        kind = Connection if reactor_close else AsyncioConnection
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio's transports set TCP_NODELAY too: small writes go out at once.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = kind(loop._reactor, sock, _Bridge(self), self._extra["peername"])  # type: ignore[arg-type]
        if isinstance(connection, AsyncioConnection):
            connection._app = self
        self._connection = connection
        connection._start()

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return f"<reactor.aio SocketTransport fd={self._connection.fileno()} {state}>"

    # -- from the reactor ----------------------------------------------------------------------

    def _connected(self) -> None:
        self._made = True
        try:
            self._protocol.connection_made(self)
        except BaseException as exc:
            self._fatal_error(exc, "protocol.connection_made() call failed")
            raise
        # Reading starts on the next pass, with the waiter's task: the coroutine awaiting
        # create_connection() then has its transport before the first data_received (asyncio
        # orders it so, and protocols rely on it).
        self._loop.call_soon(self._start_reading)
        if self._waiter is not None and not self._waiter.cancelled():
            self._waiter.set_result(None)

    def _start_reading(self) -> None:
        if not self._paused_by_app and not self._closing:
            self._connection.resume_reading()

    def _deliver(self, data: bytes) -> None:
        try:
            if self._buffered:
                _feed_buffered(self._protocol, data)
            else:
                self._protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")

    def _eof_received(self) -> bool:
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return True
        if not keep_open:
            self._closing = True
        return bool(keep_open)

    def _call_protocol(self, name: str) -> None:
        try:
            getattr(self._protocol, name)()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": f"protocol.{name}() failed", "exception": exc,
                "transport": self, "protocol": self._protocol})

    def _lost(self, exc: BaseException | None) -> None:
        self._closing = True
        if self._empty_waiter is not None and not self._empty_waiter.done():
            self._empty_waiter.set_exception(exc or ConnectionError("Connection is closed by peer"))
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc or ConnectionError("connection closed"))
        try:
            if self._made:
                self._protocol.connection_lost(exc)
        finally:
            # As asyncio's transports do: drop the protocol so that the cycle protocol <->
            # transport does not keep both (and an SSL context, say) alive until a gc pass.
            self._protocol = None
            if self._server is not None:
                self._server._detach(*((self,) if ATTACH_TAKES_TRANSPORT else ()))
                self._server = None

    def _make_empty_waiter(self) -> asyncio.Future[None]:
        """A future done once everything written so far has left our send buffer: sendfile
        then writes to the socket directly, after those bytes and not among them."""
        if self._empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        waiter = self._empty_waiter = self._loop.create_future()
        connection = self._connection
        if not connection.get_write_buffer_size():
            waiter.set_result(None)
        elif isinstance(connection, AsyncioConnection):
            connection.on_drained = self._drained
        return waiter

    def _drained(self) -> None:
        if isinstance(self._connection, AsyncioConnection):
            self._connection.on_drained = None
        if self._empty_waiter is not None and not self._empty_waiter.done():
            self._empty_waiter.set_result(None)

    def _reset_empty_waiter(self) -> None:
        self._empty_waiter = None

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        if not isinstance(exc, OSError):
            self._loop.call_exception_handler({
                "message": message, "exception": exc, "transport": self,
                "protocol": self._protocol})
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        """What sslproto calls on a fatal TLS error: drop everything, close now."""
        self._closing = True
        connection = self._connection
        connection._send_buffer.clear()
        connection._teardown(exc)

    # -- asyncio.Transport -----------------------------------------------------------------------

    def write(self, data: Any) -> None:
        connection = self._connection
        if (type(data) is bytes and data and not connection._write_closed
                and not connection._send_buffer._length and self._empty_waiter is None):
            # As asyncio's selector transport does: nothing queued, so try send() at once, here
            # rather than two calls down in Connection.write. Measured under callgrind, Protocol
            # echo 1 KiB, 1 connection: 22.4k -> 19.7k instructions per round trip.
            try:
                sent = connection._io.send(data)
            except OSError as exc:
                if classify(exc) is not ErrorKind.WOULD_BLOCK:
                    connection._io_failed(exc, "send")
                    return
                sent = -1
            if sent == len(data):
                connection.writes += 1
                connection.bytes_sent += sent
                if connection._tracer is not None:
                    connection._trace_send(sent, sent)
            else:
                connection._queue_unsent(data, sent)
            return
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        connection = self._connection
        if connection._write_closed and connection._state is ConnectionState.WRITE_SHUT:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to write; sendfile is in progress")
        if data:
            connection.write(data)

    def write_eof(self) -> None:
        self._connection.write_eof()

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._connection.close()

    def abort(self) -> None:
        self._closing = True
        self._connection.abort()

    def is_closing(self) -> bool:
        # Connection.is_closing's test, inline: StreamWriter.drain() asks on every write.
        # Measured under callgrind, streams echo 1 KiB, 1 connection: 52.9k -> 51.7k
        # instructions per round trip.
        connection = self._connection
        return self._closing or connection._state is CLOSING or connection._closed

    def pause_reading(self) -> None:
        self._paused_by_app = True
        self._connection.pause_reading()

    def resume_reading(self) -> None:
        self._paused_by_app = False
        if self._made:
            self._connection.resume_reading()

    def is_reading(self) -> bool:
        return not self._paused_by_app and not self.is_closing()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is not None and low is not None and not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._connection.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._connection.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        high, low = self._connection.get_write_buffer_limits()
        return low, high  # asyncio's order

    def set_protocol(self, protocol: Any) -> None:
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)

    def get_protocol(self) -> Any:
        return self._protocol


def _feed_buffered(protocol: asyncio.BufferedProtocol, data: bytes) -> None:
    """Copy ``data`` into the buffers a ``BufferedProtocol`` lends, as much as each holds."""
    view = memoryview(data)
    while view:
        buffer = memoryview(protocol.get_buffer(len(view)))
        size = min(len(buffer), len(view))
        if not size:
            raise RuntimeError("get_buffer() returned an empty buffer")
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]


class _DatagramBridge(DatagramProtocol):
    def __init__(self, app: DatagramSocketTransport) -> None:
        self.app = app

    def connection_made(self, transport: DatagramTransport) -> None:
        super().connection_made(transport)
        self.app._loop.call_soon(self.app._connected)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.app._protocol.datagram_received(data, addr)

    def error_received(self, exc: OSError) -> None:
        self.app._protocol.error_received(exc)

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.app._protocol.connection_lost(exc)


class DatagramSocketTransport(asyncio.DatagramTransport, asyncio.Transport):
    """``asyncio.DatagramTransport`` over a reactor ``DatagramTransport`` (also an
    ``asyncio.Transport``, as asyncio's own datagram transport is)."""

    _extra: dict[str, Any]  # BaseTransport's, private (typeshed leaves it out)

    def __init__(self, loop: ReactorEventLoop, sock: socket.socket, protocol: Any,
                 address: Any = None, waiter: asyncio.Future[Any] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(extra)
        self._loop = loop
        self._protocol = protocol
        self._waiter = waiter
        self._address = address
        self._extra.setdefault("socket", trsock.TransportSocket(sock))
        self._extra.setdefault("sockname", sock_name(sock))
        self._extra.setdefault("peername", address)
        sock.setblocking(False)
        self._transport = DatagramTransport(loop._reactor, sock, _DatagramBridge(self),  # type: ignore[arg-type]
                                            address)
        self._transport._start()

    def _connected(self) -> None:
        self._protocol.connection_made(self)
        if self._waiter is not None and not self._waiter.cancelled():
            self._waiter.set_result(None)

    def sendto(self, data: Any, addr: Any = None) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        if self._address is not None and addr not in (None, self._address):
            raise ValueError(f"Invalid address: must be None or {self._address}")
        self._transport.sendto(data, addr)

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def set_protocol(self, protocol: Any) -> None:
        self._protocol = protocol

    def get_protocol(self) -> Any:
        return self._protocol

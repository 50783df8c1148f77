"""Connection: one connected stream socket, its two buffers, and its state.

Owns the socket, the receive buffer, the send buffer and the state. Does not own the protocol's
logic (that is the protocol's) nor the accept or connect that made it (listener, connector).
Users never construct one: they get it in ``protocol.connection_made(transport)``.

Facts the code below depends on
-------------------------------
* ``recv()`` on a non-blocking socket returns what the kernel's receive buffer holds, up to the size
  asked: one call may hold half a message or ten. Framing is the protocol's job.
* ``recv()`` returning ``b""`` is the peer's FIN: it will send nothing more, though it may still
  read. That is a *half-close*; we tell the protocol with ``eof_received()``.
* ``send()`` copies into the kernel's send buffer and may take only part of what we give it (a
  *partial write*), or raise EAGAIN when the buffer is full because the peer reads slowly. We then
  queue the unsent tail and register for writability: only while the queue is non-empty, since a
  level-triggered selector reports a writable socket on every pass.
* ``shutdown(SHUT_WR)`` sends FIN after everything already in the kernel's send buffer: the
  peer reads all our data, then EOF. ``close()`` does the same, unless...
* ...closing a socket whose receive buffer still holds unread bytes makes the kernel send RST
  instead of FIN (RFC 2525, 2.17), and an RST can destroy our last reply in the peer's kernel
  before the peer reads it. So a close we start waits for the peer's FIN, reading and discarding
  for at most ``CLOSE_LINGER_SECONDS`` (Apache and nginx call this a lingering close).
* ``abort()`` sets ``SO_LINGER`` to zero, which makes ``close()`` send RST at once and drop the
  queue: the peer's next ``recv()`` fails with ECONNRESET.
* EPIPE/ECONNRESET on ``send()`` mean the peer reset the connection: unsent data is lost.

States (one ``_set_state`` checks every move against ``ALLOWED_TRANSITIONS``)::

    CONNECTING -> OPEN                  connection_made
    CONNECTING | OPEN -> HANDSHAKING    TLS (reactor/tls.py): an ``ssl=`` connection, or start_tls()
    HANDSHAKING -> OPEN                 handshake complete (connection_made, for an ``ssl=`` one)
    OPEN -> HALF_CLOSED                 peer FIN, eof_received() returned true: we may still write
    OPEN -> CLOSING                     close(), or peer FIN and eof_received() returned false
    OPEN -> WRITE_SHUT                  write_eof(): FIN once the queue drains; we still read
    HALF_CLOSED | WRITE_SHUT -> CLOSING close(), or the other direction ends too
    CLOSING -> CLOSED                   queue flushed (and peer FIN seen or linger timed out)
    any -> CLOSED                       abort(), peer reset, fatal error, exception in a hook

Read next: ``reactor/listener.py`` and ``reactor/connector.py``, which create connections.
"""

from __future__ import annotations

import enum
import logging
import socket
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable

from reactor.address import SocketAddress, format_address
from reactor.buffer import EMPTY_BUFFER, ByteBuffer
from reactor.errors import ErrorKind, classify, describe, report_callback_error
from reactor.poller import EVENT_READ
from reactor.protocol import require_transport_kept
from reactor.transport import BaseTransport, slow_counter

if TYPE_CHECKING:
    import ssl

    from reactor.loop import Reactor
    from reactor.protocol import Protocol
    from reactor.timers import Timer

log = logging.getLogger("reactor.connection")

#: One ``recv()`` asks for at most this much: a 100 KiB message is one read and one send, not
#: two of each. Measured with examples.bench (server user CPU per round trip vs asyncio, 10
#: connections, without MALLOC_TOP_PAD_): 64 KiB gave 0.75x at 1 KiB but 1.20x at 100 KiB.
#: (recv_into a reused buffer plus a copy out was worse: 0.87x and 1.68x. A read size adapting
#: between the two flip-flopped and was worse too.) Why just under 128 KiB: ``recv(n)`` first
#: allocates an n-byte ``bytes``, then shrinks it to what arrived. glibc serves an allocation of
#: 128 KiB or more (its mmap threshold) with ``mmap`` whenever the heap's free top is smaller,
#: and the shrink and the free then cost ``mremap`` and ``munmap``: three syscalls more per
#: read. 256 KiB reads did that on every request once the heap's history left the top short
#: (strace: 10,000 connections at one 1 KiB request a second each, ``bench many``, went from
#: 34 % to 74 % of a core, nearly all of it system time); this size never crosses the threshold
#: (the object's 33-byte header and malloc's 16 included), and measured 34 % again.
MAX_READ_BYTES = 128 * 1024 - 64
#: Unconsumed input beyond this closes the connection: the one bound on what a peer can make
#: us hold that the protocol did not take.
MAX_UNCONSUMED_INPUT_BYTES = 1024 * 1024
#: Chunks handed to one vectored ``sendmsg()`` (Linux allows 1024, IOV_MAX).
SENDMSG_MAX_CHUNKS = 64
#: How long a close we started waits for the peer's FIN before closing anyway.
CLOSE_LINGER_SECONDS = 2.0

#: A TLS handshake not finished this long after it began is closed (``reactor/tls.py``): a peer
#: that connects and sends nothing, or stops half-way, would otherwise hold a descriptor forever.
TLS_HANDSHAKE_TIMEOUT_SECONDS = 10.0

#: ``struct linger {int l_onoff; int l_linger;}`` with l_linger 0: close() sends RST.
LINGER_RESET = struct.pack("ii", 1, 0)


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    HANDSHAKING = "handshaking"
    OPEN = "open"
    HALF_CLOSED = "half-closed"
    WRITE_SHUT = "write-shut"
    CLOSING = "closing"
    CLOSED = "closed"


S = ConnectionState
ALLOWED_TRANSITIONS: dict[ConnectionState, frozenset[ConnectionState]] = {
    S.CONNECTING: frozenset({S.OPEN, S.HANDSHAKING, S.CLOSED}),
    S.HANDSHAKING: frozenset({S.OPEN, S.CLOSED}),
    S.OPEN: frozenset({S.HANDSHAKING, S.HALF_CLOSED, S.WRITE_SHUT, S.CLOSING, S.CLOSED}),
    S.HALF_CLOSED: frozenset({S.CLOSING, S.CLOSED}),
    S.WRITE_SHUT: frozenset({S.CLOSING, S.CLOSED}),
    S.CLOSING: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
}
#: States in which we still want the peer's bytes.
READING_STATES = frozenset({S.OPEN, S.WRITE_SHUT})
#: States in which write() is accepted (during start_tls's handshake it queues).
WRITING_STATES = frozenset({S.OPEN, S.HALF_CLOSED, S.HANDSHAKING})


class Connection(BaseTransport):
    """The transport of one stream connection (TCP or Unix). See the module docstring."""

    __slots__ = (
        "_sock", "_io", "_tls", "_recv_buffer", "_send_buffer", "_state",
        "_write_closed", "_reading", "_reading_paused", "_max_unconsumed", "_eof_pending",
        "_saw_eof", "_linger_timer", "_peer_address", "_on_closed",
        # Counters (see ``stats()``), updated on every event; what only the slow paths count
        # (queueing, pausing) is in ``_slow``, a ``reactor.transport.SlowPathCounters``.
        "bytes_received", "bytes_sent", "reads", "writes", "_history",
    )

    partial_sends = slow_counter("partial_sends", "Sends that took some bytes but not all.")
    would_blocks = slow_counter("would_blocks", "Sends that took nothing (EAGAIN).")
    peak_recv_buffer = slow_counter("peak_recv_buffer", "Most input left unconsumed at once.")
    peak_send_buffer = slow_counter("peak_send_buffer", "Most output queued at once.")

    def __init__(
        self,
        reactor: Reactor,
        sock: socket.socket,
        protocol: Protocol,
        peer_address: SocketAddress,
        on_closed: Callable[[Connection], Any] | None = None,
    ) -> None:
        self._reactor = reactor
        self._poller = reactor.poller
        self._sock = sock
        self._fd = sock.fileno()
        #: What the read and write paths call ``recv``, ``send`` and ``sendmsg`` on: the socket
        #: itself, or for a ``reactor.tls.TLSConnection`` an object that encrypts and decrypts
        #: on the way. One slot rather than three cached bound methods: 232 bytes less per
        #: connection (tracemalloc), and no slower (callgrind, 1 KiB echo over 10 connections:
        #: 19.6k instead of 19.9k instructions per round trip).
        self._io: Any = sock
        #: The TLS session of a ``reactor.tls.TLSConnection``.
        self._tls: Any = None
        self._protocol = protocol
        # Both start as the one shared EMPTY_BUFFER; the first bytes in either direction give
        # the connection a buffer of its own (``recv_buffer``/``send_buffer`` below).
        self._recv_buffer: ByteBuffer = EMPTY_BUFFER
        self._send_buffer: ByteBuffer = EMPTY_BUFFER
        self._state = ConnectionState.CONNECTING
        self._init_flow_control()
        # Plain mirrors of the state, for the checks made on every event (the enum is for
        # transitions, logs and repr).
        self._write_closed = False
        self._reading = False
        self._reading_paused = False
        self._max_unconsumed = MAX_UNCONSUMED_INPUT_BYTES
        self._eof_pending = False
        self._saw_eof = False
        self._linger_timer: Timer | None = None
        self._peer_address = peer_address
        self._tracer = reactor.tracer
        self._on_closed = on_closed
        self.bytes_received = self.bytes_sent = self.reads = self.writes = 0
        # ``history``, flat: when, state, when, state... One tuple grown by concatenation (a
        # connection changes state three or four times in its life) rather than a list of
        # pairs: 88 bytes less per idle connection (tracemalloc, 10,000 open).
        self._history: tuple[Any, ...] = ()

    # -- what users can look at ----------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def history(self) -> list[tuple[float, ConnectionState]]:
        """``(when, state)`` for every state entered from OPEN on, on the reactor's clock."""
        flat = self._history
        return list(zip(flat[::2], flat[1::2]))

    @property
    def recv_buffer(self) -> ByteBuffer:
        """What arrived and the protocol has not taken yet (what ``data_received`` gets)."""
        buffer = self._recv_buffer
        if buffer is EMPTY_BUFFER:
            buffer = self._recv_buffer = ByteBuffer()
        return buffer

    @property
    def send_buffer(self) -> ByteBuffer:
        """What ``write()`` queued because the kernel's send buffer was full."""
        buffer = self._send_buffer
        if buffer is EMPTY_BUFFER:
            buffer = self._send_buffer = ByteBuffer()
        return buffer

    @property
    def peer_address(self) -> SocketAddress:
        return self._peer_address

    @property
    def peer_name(self) -> str:
        """The peer as ``HOST:PORT`` (``[::1]:PORT`` for IPv6). A Unix socket's client is
        usually unnamed (its address is ``""``), so it is named after our descriptor."""
        return format_address(self._peer_address) or f"unix-peer-fd{self._fd}"

    @property
    def local_address(self) -> SocketAddress:
        return self._sock.getsockname() if not self._closed else None

    @property
    def trace_label(self) -> str:
        return f"fd={self._fd} {self.peer_name}"

    def is_closing(self) -> bool:
        """True once ``close()``/``abort()`` was called or the connection ended."""
        return self._state is S.CLOSING or self._closed

    def is_reading(self) -> bool:
        return self._reading

    def get_write_buffer_size(self) -> int:
        return self._send_buffer._length

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``peername``, ``sockname`` or ``socket``, as asyncio names them (a TLS connection
        adds its own: ``reactor/tls.py``)."""
        if name == "peername":
            return self._peer_address
        if name == "sockname":
            return self.local_address
        if name == "socket":
            return self._sock
        return default

    def start_tls(
        self, context: ssl.SSLContext, *, server_side: bool,
        server_hostname: str | None = None,
        handshake_timeout: float | None = TLS_HANDSHAKE_TIMEOUT_SECONDS,
    ) -> None:
        """Upgrade this open connection to TLS in band (STARTTLS): see ``reactor.tls.start_tls``.
        The protocol hears ``handshake_completed()`` once it is done. (Through the reactor:
        ``reactor/tls.py`` builds on this module, so this one cannot import it back.)"""
        self._reactor.start_tls(self, context, server_side=server_side,
                                server_hostname=server_hostname,
                                handshake_timeout=handshake_timeout)

    def stats(self) -> dict[str, Any]:
        """Everything this connection has counted, for snapshots, ``/stats`` and tests."""
        return {
            "fd": self._fd, "peer": self.peer_name, "state": self._state.name,
            "reading": self._reading, "writing": self._writing,
            "recv_buffer": self._recv_buffer._length, "send_buffer": self._send_buffer._length,
            "bytes_received": self.bytes_received, "bytes_sent": self.bytes_sent,
            "reads": self.reads, "writes": self.writes, "partial_sends": self.partial_sends,
            "would_blocks": self.would_blocks, "watermark_pauses": self.pauses,
            "paused_seconds": round(self.paused_time(), 6),
            "peak_recv_buffer": self.peak_recv_buffer, "peak_send_buffer": self.peak_send_buffer,
            "history": [(round(when, 6), state.name) for when, state in self.history],
        }

    def __repr__(self) -> str:
        flags = " ".join(name for name, on in (("reading", self._reading),
                                               ("writing", self._writing)) if on)
        return (
            f"<Connection fd={self._fd} peer={self.peer_name} {self._state.name}"
            f"{' ' + flags if flags else ''} recv_buffer={self._recv_buffer._length}"
            f" send_buffer={self._send_buffer._length}>"
        )

    # -- birth ---------------------------------------------------------------------------------

    def _start(self) -> None:
        """Called by the listener or connector once the socket is connected."""
        self._set_state(S.OPEN)
        self._reactor._add_transport(self)
        if self._tracer is not None:
            self._trace("connection_made")
        try:
            self._protocol.connection_made(self)
            require_transport_kept(self._protocol, self)
        except Exception as exc:
            self._protocol_failed(exc, "connection_made")
            return
        if self._state in READING_STATES and not self._reading_paused:
            self._start_reading()

    # -- the read path -------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = self._io.recv(MAX_READ_BYTES)
        except OSError as exc:
            # Inline try/except instead of a helper around recv(): one less call per read on
            # the hottest path (docs/design.md, performance note 2); the policy stays in
            # classify().
            self._io_failed(exc, "recv")
            return
        if not data:
            self._on_eof()
            return
        size = len(data)
        self.reads += 1
        self.bytes_received += size
        buffer = self._recv_buffer
        if buffer._length:
            buffer.append(data)
        else:
            # The usual case, an empty buffer, done here rather than in ByteBuffer.append:
            # one Python call less per read. Measured with callgrind on the 1 KiB echo server:
            # 12.6k instead of 13.9k instructions per round trip (-9 %).
            if buffer is EMPTY_BUFFER:
                buffer = self._recv_buffer = ByteBuffer()  # this connection's first bytes
            buffer._chunks = [data]
            buffer._length = size
        if self._tracer is not None:
            self._trace("recv", bytes=size)
            self._trace("calling data_received")
        try:
            self._protocol.data_received(buffer)
        except Exception as exc:
            self._protocol_failed(exc, "data_received")
            return
        if self._tracer is not None:
            self._trace("data_received returned")  # the buffer sizes show what it took
        # ``buffer._length``, not ``len(buffer)`` or ``if buffer``: a Python-level __len__ or
        # __bool__ is a function call on every read (docs/design.md, performance note 2).
        if buffer._length:
            self._input_left_over(buffer._length)

    def _input_left_over(self, size: int) -> None:
        """The protocol left ``size`` bytes unconsumed: note the peak, enforce the limit."""
        if size > self._slow.peak_recv_buffer:
            self._own_slow_counters().peak_recv_buffer = size
        if size > self._max_unconsumed and not self._closed:
            log.warning("%r: %d bytes of input not consumed by the protocol (limit %d); closing",
                        self, size, self._max_unconsumed)
            self.close()

    def _on_eof(self) -> None:
        """``recv()`` returned ``b""``: the peer sent FIN."""
        self._saw_eof = True
        self._stop_reading()
        if self._tracer is not None:
            self._trace("eof", meaning="recv returned 0: the peer sent FIN")
        try:
            keep_open = self._protocol.eof_received()
        except Exception as exc:
            self._protocol_failed(exc, "eof_received")
            return
        if self._tracer is not None:
            self._trace("eof_received returned", value=bool(keep_open),
                        meaning="stay half-open: we may still write" if keep_open else
                        "close once our queue is sent")
        if self.is_closing():
            return  # the protocol closed it from eof_received
        if self._state is S.WRITE_SHUT or not keep_open:
            self.close()  # both directions are done, or the protocol wants out
        else:
            self._set_state(S.HALF_CLOSED)

    def _idle_timed_out(self, idle_seconds: float) -> None:
        """Nothing moved for ``idle_seconds`` (``reactor/idle.py``). The protocol may say why
        and close; a connection already closing that still made no progress is aborted."""
        if self._closed:
            return
        if self._tracer is not None:
            self._trace("idle", seconds=idle_seconds)
        if self._state is S.CLOSING:
            log.info("%r: still not flushed %gs after close(); aborting", self, idle_seconds)
            self.abort()
            return
        try:
            self._protocol.idle_timed_out(idle_seconds)
        except Exception as exc:
            self._protocol_failed(exc, "idle_timed_out")

    def pause_reading(self) -> None:
        """Stop reading: the kernel's receive buffer fills, TCP's window closes, the peer's
        ``send()`` blocks. This is how back-pressure reaches the sender."""
        self._reading_paused = True
        if self._state in READING_STATES:
            self._stop_reading()

    def resume_reading(self) -> None:
        self._reading_paused = False
        if self._state in READING_STATES:
            self._start_reading()

    def set_read_buffer_limit(self, max_unconsumed_bytes: int) -> None:
        """How much input the protocol may leave unconsumed before the connection is closed."""
        if max_unconsumed_bytes <= 0:
            raise ValueError("the limit must be positive")
        self._max_unconsumed = max_unconsumed_bytes

    def _start_reading(self) -> None:
        if not self._reading:
            self._reading = True
            self._poller.watch(self._fd, self, self._poll_mask | EVENT_READ)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._poller.watch(self._fd, self, self._poll_mask & ~EVENT_READ)

    # -- the write path ------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``: straight to ``send()`` when nothing is queued, else queue it.

        Never blocks. Raises ``TypeError`` for anything not bytes-like (a ``str``, or the
        receive buffer passed by mistake), and ``RuntimeError`` after ``write_eof()``. After
        ``close()`` or ``abort()`` the data is dropped: the connection is going away.
        """
        if self._write_closed:
            if self._state is S.WRITE_SHUT:
                raise RuntimeError(f"{self!r}: write() after write_eof()")
            return
        if type(data) is not bytes:
            # Count bytes, not items: len() of an array('H') view counts 2-byte items, and
            # send() returns bytes. Raises TypeError for str and for the ByteBuffer itself.
            data = memoryview(data).cast("B")
        buffer = self._send_buffer
        if buffer._length:  # see _on_readable on ``_length``
            buffer.append(data)
            self._note_queued()
            return
        # Inline rather than a method the asyncio transport could share too: one call more per
        # write cost 2.8 % (callgrind, 1 KiB echo over 10 connections: 11.3k -> 11.6k
        # instructions per round trip).
        try:
            sent = self._io.send(data)
        except OSError as exc:
            if classify(exc) is not ErrorKind.WOULD_BLOCK:
                self._io_failed(exc, "send")
                return
            sent = -1
        if sent == len(data):
            self.writes += 1
            self.bytes_sent += sent
            if self._tracer is not None:
                self._trace_send(sent, sent)
            return
        self._queue_unsent(data, sent)

    def _queue_unsent(self, data: bytes | memoryview, sent: int) -> None:
        """A ``send()`` with nothing queued took only ``sent`` bytes of ``data`` (-1: EAGAIN,
        none): queue the rest and wait for writability."""
        self.send_buffer.append_unsent(data, max(sent, 0))
        self._send_fell_short(sent, len(data))
        self._start_writing()
        self._note_queued()

    def _note_queued(self) -> None:
        """Bytes were queued: note the peak, and tell the protocol once past the high-water
        mark."""
        size = self._send_buffer._length
        if size > self._slow.peak_send_buffer:
            self._own_slow_counters().peak_send_buffer = size
        if not self._write_paused and size > self._high_water:
            self._pause_protocol_writing()

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        """Write each item in order; queued items go out together in one ``sendmsg()``."""
        for data in lines:
            self.write(data)

    def _send_fell_short(self, sent: int, wanted: int) -> None:
        """Count a send that took less than asked: ``sent`` -1 means EAGAIN (nothing taken)."""
        if sent < 0:
            self._own_slow_counters().would_blocks += 1
        else:
            self.writes += 1
            self.bytes_sent += sent
            self._own_slow_counters().partial_sends += 1
        if self._tracer is not None:
            self._trace_send(sent, wanted)

    def _on_writable(self) -> None:
        buffer = self._send_buffer
        chunks = buffer.head_chunks(SENDMSG_MAX_CHUNKS)
        try:
            io = self._io
            sent = io.send(chunks[0]) if len(chunks) == 1 else io.sendmsg(chunks)
        except OSError as exc:
            if classify(exc) is ErrorKind.WOULD_BLOCK:
                self._send_fell_short(-1, len(buffer))  # a spurious wakeup: try again later
            else:
                self._io_failed(exc, "send")
            return
        wanted = buffer._length  # see _on_readable on ``_length``
        buffer.consume(sent)
        if sent < wanted:
            self._send_fell_short(sent, wanted)
        else:
            self.writes += 1
            self.bytes_sent += sent
            if self._tracer is not None:
                self._trace_send(sent, sent)
        if buffer:
            if self._write_paused and self.get_write_buffer_size() <= self._low_water:
                self._resume_protocol_writing()
            return
        self._send_buffer_drained()

    def _send_buffer_drained(self) -> None:
        """Everything queued was sent: stop watching writability, then resume, close or FIN."""
        self._stop_writing()
        if self._write_paused:
            self._resume_protocol_writing()  # may write again, or close()
            if self._send_buffer._length or self._closed:
                return
        if self._state is S.CLOSING:
            self._finish_closing()
        elif self._eof_pending:
            self._shutdown_write()

    # -- half-close, close, abort ----------------------------------------------------------------

    def can_write_eof(self) -> bool:
        """True: a TCP or Unix stream socket can always half-close (asyncio's name; TLS 1.2
        cannot, ``reactor/tls.py``)."""
        return True

    def write_eof(self) -> None:
        """Half-close our side: FIN goes out after the queued data; we keep reading.

        After the peer's FIN too (HALF_CLOSED) there is nothing left to read: this closes.
        """
        if self._state is S.HALF_CLOSED:
            self.close()
            return
        if self._state is not S.OPEN:
            return
        self._set_state(S.WRITE_SHUT)
        if self._send_buffer._length:
            self._eof_pending = True
        else:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        self._eof_pending = False
        try:
            self._send_fin()
        except OSError as exc:
            self._io_failed(exc, "shutdown")

    def _send_fin(self) -> None:
        """``shutdown(SHUT_WR)``: the kernel sends FIN after what it already holds. Raises the
        kernel's refusal (ENOTCONN once the peer has reset) to the caller."""
        self._sock.shutdown(socket.SHUT_WR)
        if self._tracer is not None:
            self._trace("shutdown", meaning="SHUT_WR: our FIN is on its way")

    def close(self) -> None:
        """Stop reading, send what is queued, then close. Idempotent.

        ``connection_lost(None)`` follows on a later pass, once the socket is closed.
        """
        if self._state is S.CLOSING or self._closed:
            return
        self._set_state(S.CLOSING)
        self._stop_reading()
        self._recv_buffer.clear()
        if not self._send_buffer._length:
            self._finish_closing()

    def _finish_closing(self) -> None:
        """The queue is flushed. Close now if the peer has sent FIN; otherwise send ours and wait
        (briefly) for theirs, discarding input, so the kernel sends FIN rather than RST."""
        if self._linger_timer is not None:
            return  # already lingering
        if self._saw_eof:
            self._teardown(None)
            return
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._teardown(None)  # already reset or not connected: nothing to linger for
            return
        if self._tracer is not None:
            self._trace("shutdown", meaning="SHUT_WR: our FIN is on its way; waiting for theirs")
        self._poller.set_reader(self._fd, self._discard_input)
        self._reading = True
        self._linger_timer = self._reactor.call_later(CLOSE_LINGER_SECONDS, self._teardown, None)

    def _discard_input(self) -> None:
        try:
            data = self._io.recv(MAX_READ_BYTES)
        except OSError as exc:
            if classify(exc) is not ErrorKind.WOULD_BLOCK:
                self._teardown(None)  # our output was already flushed: the close was clean
            return
        if not data:
            self._teardown(None)

    def abort(self) -> None:
        """Close at once and drop the queue; the peer sees a reset (RST), not FIN."""
        self._abort(None)

    def _abort(self, exc: BaseException | None) -> None:
        if self._closed:
            return
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        except OSError:
            pass  # the socket is already dead: close() will not send anything either way
        self._send_buffer.clear()
        if self._tracer is not None:
            peer_gone = isinstance(exc, OSError) and classify(exc) is ErrorKind.PEER_GONE
            self._trace("abort", meaning="the peer is already gone: closing our end" if peer_gone
                        else "SO_LINGER 0 then close: the peer gets RST")
        self._teardown(exc)

    def _teardown(self, exc: BaseException | None) -> None:
        """The one place a connection's socket is closed. ``connection_lost`` comes later."""
        if self._closed:
            return
        self._set_state(S.CLOSED)
        self._closed = self._write_closed = True
        self._reading = self._writing = False
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        self._poller.remove(self._fd)  # before close(): see poller.py
        # Queue connection_lost *before* close(): the peer learns of the close (our FIN or RST)
        # the moment close() returns and may react at once, say by sending us a signal. Queued
        # first, connection_lost runs before any callback such a reaction schedules (seen: a
        # SIGINT landing between close() and call_soon() counted this connection as open).
        self._reactor.call_soon(self._call_connection_lost, exc)
        self._sock.close()
        self._reactor._forget_transport(self)
        if self._tracer is not None:
            self._trace("close", meaning="socket closed; connection_lost follows on the next pass")
        self._recv_buffer.clear()
        self._send_buffer.clear()

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        # The reactor's tracer, not our cached one: we left reactor.transports at teardown, so
        # a set_tracer() since then did not reach us.
        self._tracer = self._reactor.tracer
        if self._tracer is not None:
            self._trace("connection_lost", exc=describe(exc) if exc is not None else None)
        try:
            self._protocol.connection_lost(exc)
        except Exception as error:
            report_callback_error(error, f"{type(self.protocol).__name__}.connection_lost")
        if self._on_closed is not None:
            self._on_closed(self)

    # -- errors ----------------------------------------------------------------------------------

    def _io_failed(self, exc: OSError, syscall: str) -> None:
        """A syscall on our socket raised: apply the policy of ``reactor.errors``."""
        kind = classify(exc)
        if kind is ErrorKind.WOULD_BLOCK:
            return
        if self._tracer is not None:
            self._trace(f"{syscall} failed", error=describe(exc))
        if kind is ErrorKind.PEER_GONE:
            log.debug("%r: %s failed, peer gone: %s", self, syscall, describe(exc))
        else:
            log.error("%r: %s failed", self, syscall, exc_info=exc)
        self._abort(exc)

    def _protocol_failed(self, exc: Exception, hook: str) -> None:
        """An exception escaped a protocol hook: log it and abort this connection only."""
        report_callback_error(exc, f"{type(self.protocol).__name__}.{hook} on {self!r}")
        self._abort(exc)

    def _set_state(self, new: ConnectionState) -> None:
        old = self._state
        if new not in ALLOWED_TRANSITIONS[old]:
            raise RuntimeError(f"{self!r}: illegal state change {old.name} -> {new.name}")
        self._state = new
        self._history += (self._reactor.time(), new)
        if new not in WRITING_STATES:
            self._write_closed = True
        if self._tracer is not None:
            self._trace("state", change=f"{old.name} -> {new.name}")

    # -- tracing -------------------------------------------------------------------------------

    def _trace(self, name: str, **fields: Any) -> None:
        fields["recv_buffer"] = self._recv_buffer._length
        fields["send_buffer"] = self._send_buffer._length
        if self._tracer is not None:
            self._tracer.event(self, name, **fields)

    def _trace_send(self, sent: int, wanted: int) -> None:
        if sent == wanted:
            self._trace("send", bytes=sent)
        elif sent < 0:
            self._trace("send", bytes=0, of=wanted, error="EAGAIN",
                        meaning="the kernel's send buffer is full; queued, waiting for "
                                "writability")
        else:
            self._trace("send", bytes=sent, of=wanted,
                        meaning=f"partial: the kernel took {sent} of {wanted}; the rest is "
                                "queued until the socket is writable")

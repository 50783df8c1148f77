"""Datagrams: UDP sockets on the reactor (their protocol interface, ``DatagramProtocol``, is
in ``reactor/protocol.py`` beside the stream one, and importable from here too).

Owns, per transport, one datagram socket, the queue of whole datagrams the kernel could not take
yet, and the transport's state (OPEN, CLOSING, CLOSED). Does not own what a datagram means (that
is the protocol's) nor any per-peer state: one transport serves every peer that sends to it.

What UDP is on the wire
-----------------------
* There is no connection and no handshake. A datagram is one IP packet (or a few fragments of
  one) that names its destination; the sender names the destination in every ``sendto()``.
  Nothing tells the receiver that a peer "arrived" or "left".
* A server learns each datagram's source address from ``recvfrom()`` and replies to it: that is
  the whole of "answering a client" (``datagram_received(data, addr)``, ``sendto(reply, addr)``).
* Datagrams may be lost, duplicated or reordered, and nobody says so: a full receive buffer, a
  congested router or a checksum error drops them silently. Retries, ordering and timeouts are
  the application's job (``examples/udp_client.py`` waits a bounded time for each reply).
* Message boundaries are kept: one ``sendto()`` is one ``recvfrom()`` on the other side, whole,
  never split or merged as a TCP byte stream is. There is no partial send and no framing.
* ``connect()`` on a UDP socket sends nothing. It sets the default destination, makes the kernel
  drop datagrams from any other source, and lets ICMP errors for that peer reach us: a
  "port unreachable" comes back as ECONNREFUSED on the next ``send()`` or ``recv()`` (Linux, and
  the BSDs, do not report them on unconnected sockets).

Facts the code below depends on
-------------------------------
* ``recvfrom(n)`` returns one datagram and silently truncates it to ``n`` bytes, so we ask for
  ``MAX_READ_BYTES``, more than any UDP payload. A zero-length datagram is a datagram, not an EOF:
  UDP has no end of stream.
* The largest payload is 65535 - 20 (IPv4 header) - 8 (UDP header) = 65507 bytes over IPv4, and
  65535 - 8 = 65527 over IPv6, whose length field does not count its own header. ``sendto()``
  refuses anything larger with ``ValueError`` before the kernel sees it. The kernel's own EMSGSIZE
  (an IPv6 socket sending to a v4-mapped address, where the IPv4 limit holds) goes to
  ``error_received``.
* ``sendto()`` sends the whole datagram or nothing. EAGAIN means the socket's send buffer is full:
  we queue the *whole* datagram and wait for writability, registered only while the queue is
  non-empty (level-triggered, as in ``connection.py``). On Linux, UDP to loopback almost never
  says EAGAIN (the datagram goes straight to the receiver, which drops it if its buffer is full);
  a busy network interface and Unix datagram sockets do.
* ENOBUFS (or ENOMEM) from ``sendto()``: an interface queue or the kernel's memory is short,
  common on the BSDs. The socket may still poll writable, so waiting for writability could spin:
  we retry the queue after ``SEND_RETRY_DELAY_SECONDS`` instead (the listener's EMFILE rule).
* No ``SO_REUSEADDR`` for UDP: on Linux it lets a second socket bind the same port and take a
  share of its datagrams, where for TCP it only skips TIME_WAIT. ``reuse_port`` asks for that
  sharing on purpose.

Error policy (the same ``classify()`` as TCP, applied to a transport with no single peer)
-----------------------------------------------------------------------------------------
* would block: stop reading, or queue the datagram; try again on the next readiness event;
* errors about one datagram or one peer (ECONNREFUSED, EHOSTUNREACH, EMSGSIZE, a bad
  destination...): the datagram is gone, ``error_received(exc)`` is told, the transport stays
  open for every other datagram and peer;
* errors that mean the socket itself is unusable (``SOCKET_BROKEN_ERRNOS``): logged with a
  traceback; the transport closes and ``connection_lost(exc)`` follows;
* an exception from a protocol hook is logged with its traceback and the transport keeps serving.
  TCP aborts the one connection whose protocol failed; here the transport is shared by every peer,
  so closing it would punish them all for one bad datagram.

``error_received`` never runs inside ``sendto()``: an error met there is delivered on the next
pass, so a protocol that sends from ``error_received`` cannot recurse into itself.

Read next: ``protocols/udp.py`` (the two example protocols), then ``examples/udp_client.py``.
"""

from __future__ import annotations

import enum
import errno
import logging
import socket
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from reactor.address import SocketAddress, bind_socket, format_address, strip_brackets
from reactor.errors import ErrorKind, classify, describe, report_callback_error
from reactor.poller import EVENT_READ
from reactor.protocol import DatagramProtocol, require_transport_kept
from reactor.transport import BaseTransport

if TYPE_CHECKING:
    from reactor.loop import Reactor
    from reactor.timers import Timer

__all__ = ["DatagramProtocol", "DatagramTransport"]  # DatagramProtocol: its old import path

log = logging.getLogger("reactor.datagram")

#: One ``recvfrom()`` asks for this much: more than the largest UDP payload, so nothing truncates.
MAX_READ_BYTES = 65536
#: Datagrams read per readiness event before giving other fds their turn.
MAX_DATAGRAMS_PER_EVENT = 32
#: The largest payload one datagram carries, by address family (see the module docstring).
MAX_DATAGRAM_BYTES = {socket.AF_INET: 65507, socket.AF_INET6: 65527}
#: The bound on the send queue: a datagram that would pass it is dropped (error_received).
MAX_QUEUED_DATAGRAM_BYTES = 1024 * 1024
#: After ENOBUFS/ENOMEM from sendto(), retry the queue this much later instead of spinning.
SEND_RETRY_DELAY_SECONDS = 0.01

#: The errors that close a datagram transport: the socket itself is unusable. Anything else is
#: about one datagram or one peer and goes to ``error_received``.
SOCKET_BROKEN_ERRNOS = frozenset({errno.EBADF, errno.ENOTSOCK, errno.EFAULT})
#: The kinds of ``sendto()`` error after which the datagram is kept and sent later.
SEND_LATER_KINDS = frozenset({ErrorKind.WOULD_BLOCK, ErrorKind.RESOURCES_EXHAUSTED})


class DatagramState(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


ALLOWED_TRANSITIONS: dict[DatagramState, frozenset[DatagramState]] = {
    DatagramState.OPEN: frozenset({DatagramState.CLOSING, DatagramState.CLOSED}),
    DatagramState.CLOSING: frozenset({DatagramState.CLOSED}),
    DatagramState.CLOSED: frozenset(),
}


class DatagramTransport(BaseTransport):
    """The transport of one datagram socket. See the module docstring.

    Users get one from ``reactor.listen_udp``/``connect_udp`` (or ``from_socket`` for a datagram
    socket made elsewhere, such as a Unix ``socketpair``), in ``protocol.connection_made``.
    """

    __slots__ = (
        "_sock", "_recvfrom", "_send", "_sendto", "_state", "_closing", "_queue",
        "_queued_bytes", "_retry_timer", "_local_address", "_peer_address", "_max_datagram",
    )

    def __init__(
        self,
        reactor: Reactor,
        sock: socket.socket,
        protocol: DatagramProtocol,
        peer_address: SocketAddress | None,
    ) -> None:
        self._reactor = reactor
        self._poller = reactor.poller
        self._sock = sock
        self._fd = sock.fileno()
        # Bound methods cached once: looked up on every event otherwise (docs/design.md,
        # performance note 2).
        self._recvfrom = sock.recvfrom
        self._send = sock.send
        self._sendto = sock.sendto
        self._protocol = protocol
        self._state = DatagramState.OPEN
        # Plain mirrors of the state for the checks made on every datagram.
        self._init_flow_control()
        self._closing = False
        self._queue: deque[tuple[bytes, SocketAddress | None]] = deque()
        self._queued_bytes = 0
        self._retry_timer: Timer | None = None
        self._local_address: SocketAddress = sock.getsockname()
        self._peer_address = peer_address
        self._max_datagram = MAX_DATAGRAM_BYTES.get(sock.family)
        self._tracer = reactor.tracer

    # -- birth ---------------------------------------------------------------------------------

    @classmethod
    def listen(
        cls, reactor: Reactor, protocol_factory: Callable[[], Any], host: str | None, port: int,
        *, reuse_port: bool = False,
    ) -> DatagramTransport:
        """Bind a UDP socket on the first address ``host`` resolves to (``port=0``: any free one;
        ``reactor.address.bind_socket``). Raises ``OSError`` at once if it cannot be bound."""
        sock = bind_socket(host, port, socket.SOCK_DGRAM, reuse_address=False,
                           reuse_port=reuse_port)
        return cls.from_socket(reactor, protocol_factory, sock)

    @classmethod
    def connect(
        cls, reactor: Reactor, protocol_factory: Callable[[], Any], host: str, port: int,
    ) -> DatagramTransport:
        """A UDP socket connected to ``host:port``: each address ``host`` resolves to is tried in
        order until ``connect()`` succeeds; the last ``OSError`` is raised if none does.

        UDP's ``connect()`` sends nothing and returns at once (it fails only when there is no
        route, say). A host *name* is resolved by ``getaddrinfo``, which may block: see
        ``reactor.address.resolve_stream``.
        """
        infos = socket.getaddrinfo(strip_brackets(host), port, socket.AF_UNSPEC,
                                   socket.SOCK_DGRAM)
        errors: list[OSError] = []
        for family, type_, proto, _, address in infos:
            sock = socket.socket(family, type_, proto)
            try:
                sock.connect(address)
            except OSError as exc:
                sock.close()
                errors.append(exc)
                continue
            except BaseException:
                sock.close()
                raise
            return cls.from_socket(reactor, protocol_factory, sock)
        raise errors[-1]  # getaddrinfo returned at least one address or raised itself

    @classmethod
    def from_socket(
        cls, reactor: Reactor, protocol_factory: Callable[[], Any], sock: socket.socket,
    ) -> DatagramTransport:
        """Serve ``sock``, a bound (and perhaps connected) datagram socket, which we now own.

        The protocol gets ``connection_made`` before this returns, and reading starts. An
        exception from the factory closes ``sock`` and propagates.
        """
        try:
            sock.setblocking(False)
            try:
                peer_address: SocketAddress | None = sock.getpeername()
            except OSError:
                peer_address = None  # ENOTCONN: not connected, sendto() names each destination
            protocol = protocol_factory()
        except BaseException:
            sock.close()
            raise
        transport = cls(reactor, sock, protocol, peer_address)
        transport._start()
        return transport

    def _start(self) -> None:
        self._reactor._add_transport(self)
        if self._tracer is not None:
            self._trace("open", local=format_address(self._local_address),
                        peer=self.peer_name or "none")
        try:
            self._protocol.connection_made(self)
            require_transport_kept(self._protocol, self)
        except Exception as exc:
            self._protocol_failed(exc, "connection_made")
        if not self._closing:
            self._poller.watch(self._fd, self, self._poll_mask | EVENT_READ)

    # -- what users can look at ----------------------------------------------------------------

    @property
    def state(self) -> DatagramState:
        return self._state

    @property
    def local_address(self) -> SocketAddress:
        """The address the socket is bound to (with ``port=0``, the port the kernel chose)."""
        return self._local_address

    @property
    def peer_address(self) -> SocketAddress | None:
        """The connected peer (``connect_udp``), or ``None`` when each ``sendto`` names one."""
        return self._peer_address

    @property
    def peer_name(self) -> str | None:
        return None if self._peer_address is None else format_address(self._peer_address)

    @property
    def max_datagram_size(self) -> int | None:
        """The largest payload ``sendto`` accepts (65507 for IPv4, 65527 for IPv6); ``None`` for
        other families, where only the kernel decides."""
        return self._max_datagram

    @property
    def trace_label(self) -> str:
        peer = f" -> {self.peer_name}" if self._peer_address is not None else ""
        return f"udp fd={self._fd} {format_address(self._local_address)}{peer}"

    def is_closing(self) -> bool:
        """True once ``close()``/``abort()`` was called or the socket failed."""
        return self._closing

    def stats(self) -> dict[str, Any]:
        """State, queue and flow-control figures, for snapshots (the same keys as a stream's
        where they mean the same thing)."""
        return {
            "fd": self._fd, "local": format_address(self._local_address),
            "peer": self.peer_name or None, "state": self._state.name,
            "writing": self._writing, "send_queue_datagrams": len(self._queue),
            "send_buffer": self._queued_bytes, "watermark_pauses": self.pauses,
            "paused_seconds": round(self.paused_time(), 6),
        }

    def get_write_buffer_size(self) -> int:
        """Bytes of whole datagrams queued and not yet accepted by the kernel."""
        return self._queued_bytes

    def __repr__(self) -> str:
        return (
            f"<DatagramTransport fd={self._fd} local={format_address(self._local_address)} "
            f"peer={self.peer_name} {self._state.name}"
            f"{' writing' if self._writing else ''} queue={len(self._queue)} datagrams/"
            f"{self._queued_bytes} bytes>"
        )

    # -- the read path -------------------------------------------------------------------------

    def _on_readable(self) -> None:
        protocol = self._protocol
        for _ in range(MAX_DATAGRAMS_PER_EVENT):
            try:
                data, addr = self._recvfrom(MAX_READ_BYTES)
            except OSError as exc:
                # Inline try/except as in connection.py (docs/design.md, performance note 2);
                # the policy stays in classify() and _io_failed().
                if classify(exc) is not ErrorKind.WOULD_BLOCK:
                    self._io_failed(exc, "recvfrom")
                return
            if self._tracer is not None:
                self._trace("recvfrom", bytes=len(data), sender=format_address(addr))
            try:
                protocol.datagram_received(data, addr)
            except Exception as exc:
                self._protocol_failed(exc, "datagram_received")
            if self._closing:
                return  # the protocol closed the transport

    # -- the write path ------------------------------------------------------------------------

    def sendto(self, data: bytes | bytearray | memoryview, addr: SocketAddress | None = None,
               ) -> None:
        """Send ``data`` as one datagram to ``addr`` (``None``: the connected peer). Never blocks.

        Straight to ``sendto()`` when nothing is queued; otherwise, or if the kernel says EAGAIN,
        the whole datagram is queued. Raises ``ValueError`` for a datagram larger than
        ``max_datagram_size`` (nothing is sent, nothing truncated) and for ``addr=None`` on an
        unconnected transport. A datagram that would pass ``MAX_QUEUED_DATAGRAM_BYTES`` of queue
        is dropped and ``error_received`` hears of it, as it hears of the kernel's errors, on the
        next pass. After ``close()`` or ``abort()`` the datagram is dropped.

        ``addr`` should be numeric, as the source address of a received datagram is: a host
        name is resolved by the OS on every call, and may block.
        """
        if self._closing:
            return
        size = len(data)
        if self._max_datagram is not None and size > self._max_datagram:
            raise ValueError(
                f"datagram of {size} bytes refused: one "
                f"{'IPv6' if self._sock.family == socket.AF_INET6 else 'IPv4'} UDP datagram "
                f"carries at most {self._max_datagram} bytes; nothing was sent")
        if addr is None and self._peer_address is None:
            raise ValueError(f"{self!r} is not connected: sendto() needs an address")
        if self._queue:
            self._enqueue(data, addr)
            return
        try:
            self._send_now(data, addr)
        except OSError as exc:
            kind = classify(exc)
            if kind in SEND_LATER_KINDS:
                self._enqueue(data, addr)
                if self._queue:
                    self._wait_to_send(kind)
            else:
                self._io_failed(exc, "sendto", deliver_later=True)

    def _send_now(self, data: bytes | bytearray | memoryview, addr: SocketAddress | None) -> None:
        """One ``send()``/``sendto()`` of one whole datagram; ``OSError`` is the caller's."""
        if addr is None:
            self._send(data)
        else:
            self._sendto(data, addr)
        if self._tracer is not None:
            self._trace("sendto", bytes=len(data), to=self.peer_name if addr is None
                        else format_address(addr))

    def _enqueue(self, data: bytes | bytearray | memoryview, addr: SocketAddress | None) -> None:
        """Queue one whole datagram, or drop it if the queue would pass its bound."""
        size = len(data)
        if self._queued_bytes + size > MAX_QUEUED_DATAGRAM_BYTES:
            exc = OSError(errno.ENOBUFS,
                          f"send queue full ({self._queued_bytes} bytes in {len(self._queue)} "
                          f"datagrams, limit {MAX_QUEUED_DATAGRAM_BYTES}): datagram of {size} "
                          f"bytes dropped")
            if self._tracer is not None:
                self._trace("drop", bytes=size, meaning="send queue full")
            self._reactor.call_soon(self._call_error_received, exc)
            return
        # A bytearray or memoryview may change after we return; the queue keeps its own copy.
        self._queue.append((data if type(data) is bytes else bytes(data), addr))
        self._queued_bytes += size
        if self._tracer is not None:
            self._trace("queued", bytes=size,
                        meaning="the kernel's send buffer is full; waiting to send it whole")
        if not self._write_paused and self._queued_bytes > self._high_water:
            self._pause_protocol_writing()

    def _wait_to_send(self, kind: ErrorKind) -> None:
        """EAGAIN: wait for writability. ENOBUFS/ENOMEM: retry on a timer (module docstring)."""
        if kind is ErrorKind.WOULD_BLOCK:
            self._start_writing()
            return
        self._stop_writing()
        if self._retry_timer is None:
            self._retry_timer = self._reactor.call_later(SEND_RETRY_DELAY_SECONDS,
                                                         self._retry_send)

    def _retry_send(self) -> None:
        self._retry_timer = None
        if not self._closed:
            self._on_writable()

    def _on_writable(self) -> None:
        """Send queued datagrams in order until the queue is empty or the kernel says wait."""
        queue = self._queue
        while queue:
            data, addr = queue[0]
            try:
                self._send_now(data, addr)
            except OSError as exc:
                kind = classify(exc)
                if kind in SEND_LATER_KINDS:
                    self._wait_to_send(kind)
                    break
                queue.popleft()
                self._queued_bytes -= len(data)
                self._io_failed(exc, "sendto")
                if self._closed:
                    return
                continue
            queue.popleft()
            self._queued_bytes -= len(data)
        if self._write_paused and self._queued_bytes <= self._low_water:
            self._resume_protocol_writing()
        if not queue and not self._closed:
            self._stop_writing()
            if self._closing:
                self._teardown(None)

    # -- close, abort ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop reading, send what is queued, then close. Idempotent.

        ``connection_lost(None)`` follows on a later pass, once the socket is closed.
        """
        if self._closing:
            return
        self._set_state(DatagramState.CLOSING)
        self._closing = True
        self._poller.watch(self._fd, self, self._poll_mask & ~EVENT_READ)
        if not self._queue:
            self._teardown(None)

    def abort(self) -> None:
        """Drop the queue and close now; ``connection_lost(None)`` follows on a later pass."""
        self._teardown(None)

    def _teardown(self, exc: BaseException | None) -> None:
        """The one place the socket is closed. ``connection_lost`` comes on a later pass."""
        if self._closed:
            return
        self._set_state(DatagramState.CLOSED)
        self._closing = self._closed = True
        self._writing = False
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        self._poller.remove(self._fd)  # before close(): see poller.py
        self._reactor.call_soon(self._call_connection_lost, exc)  # first, as Connection does
        self._sock.close()
        self._reactor._forget_transport(self)
        if self._queue and self._tracer is not None:
            self._trace("drop", datagrams=len(self._queue), meaning="closed with a queue")
        self._queue.clear()
        self._queued_bytes = 0

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        except Exception as error:
            report_callback_error(error, f"{type(self._protocol).__name__}.connection_lost")

    # -- errors ----------------------------------------------------------------------------------

    def _io_failed(self, exc: OSError, syscall: str, *, deliver_later: bool = False) -> None:
        """A syscall failed with something other than would-block: the module's error policy.

        ``deliver_later``: we are inside ``sendto()``, called by the protocol, so
        ``error_received`` waits for the next pass.
        """
        if self._tracer is not None:
            self._trace(f"{syscall} failed", error=describe(exc))
        if exc.errno in SOCKET_BROKEN_ERRNOS:
            log.error("%r: %s failed; closing", self, syscall, exc_info=exc)
            self._teardown(exc)
            return
        log.debug("%r: %s failed (%s): %s", self, syscall, classify(exc).value, describe(exc))
        if deliver_later:
            self._reactor.call_soon(self._call_error_received, exc)
        else:
            self._call_error_received(exc)

    def _call_error_received(self, exc: OSError) -> None:
        if self._closing:
            return  # nothing is delivered after close() or abort()
        try:
            self._protocol.error_received(exc)
        except Exception as error:
            self._protocol_failed(error, "error_received")

    def _protocol_failed(self, exc: Exception, hook: str) -> None:
        """An exception escaped a protocol hook: log it; the transport keeps serving everyone."""
        report_callback_error(exc, f"{type(self._protocol).__name__}.{hook} on {self!r}")

    def _set_state(self, new: DatagramState) -> None:
        old = self._state
        if new not in ALLOWED_TRANSITIONS[old]:
            raise RuntimeError(f"{self!r}: illegal state change {old.name} -> {new.name}")
        self._state = new
        if self._tracer is not None:
            self._trace("state", change=f"{old.name} -> {new.name}")

    # -- tracing -------------------------------------------------------------------------------

    def _trace(self, name: str, **fields: Any) -> None:
        fields["queued"] = self._queued_bytes
        if self._tracer is not None:
            self._tracer.event(self, name, **fields)

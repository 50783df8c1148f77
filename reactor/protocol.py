"""Protocol and DatagramProtocol: the base classes every protocol subclasses, and their
callback-order contracts.

Owns nothing. A protocol is the object the reactor calls when something happens on one
connection; the connection (the transport) is the object the protocol calls to act. Keeping the two
apart (Twisted's protocol/transport split) is what lets a protocol be tested with a fake transport
(``reactor.testing``) and reused over TCP, a Unix socket or a proxy.

Callback order, for one connection::

    connection_made(transport)            exactly once, before any other callback
        data_received(buffer)             zero or more times
        pause_writing() / resume_writing()   strictly alternating, any time while open
        idle_timed_out(seconds)           when the server has an idle timeout and it passed
        eof_received()                    at most once: the peer sent FIN (recv() returned b"")
                                          or, over TLS, its close_notify
        handshake_completed()             after start_tls(), once the TLS handshake is done
    connection_lost(exc)                  exactly once, on a later loop pass than its cause

Nothing is delivered after you call ``transport.close()`` or ``transport.abort()`` except the
final ``connection_lost``. ``exc`` is ``None`` for a clean close and the exception otherwise
(``ConnectionResetError`` when the peer sent RST).

Read next: ``reactor/connection.py``, which makes these calls.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Self

from reactor.errors import describe

if TYPE_CHECKING:
    from reactor.address import SocketAddress
    from reactor.buffer import ByteBuffer
    from reactor.connection import Connection
    from reactor.datagram import DatagramTransport

datagram_log = logging.getLogger("reactor.datagram")


def require_transport_kept(protocol: object, transport: object) -> None:
    """Raise if a ``connection_made`` override forgot ``super().connection_made(transport)``.

    Every helper of the base classes (``send_line``, the idle timeout, ``connection_lost``)
    reaches the connection through ``self.transport``; with it left ``None`` they would drop
    every write without a word, in the test doubles and on real sockets alike. The transports
    call this right after ``connection_made``, so the mistake is one logged error naming the
    fix on the first connection (which is aborted; a datagram transport logs it and goes on,
    as for any error of its protocol). A protocol that does not
    subclass ``Protocol``/``DatagramProtocol`` keeps its transport however it likes.
    """
    protocol = getattr(protocol, "__wrapped__", protocol)  # the debug checker wraps the user's
    if isinstance(protocol, (Protocol, DatagramProtocol)) and protocol.transport is not transport:
        raise RuntimeError(
            f"{type(protocol).__name__}.connection_made did not keep the transport: call "
            "super().connection_made(transport) (or set self.transport = transport) in it")


class Protocol:
    """Base class: override the events you care about.

    The defaults give the safe behaviour: input nobody consumes is discarded, the peer's FIN
    closes the connection once our queued output is sent, and back-pressure is on (see
    ``pause_writing``).
    """

    #: The connection, kept by ``connection_made`` and dropped by ``connection_lost`` (the
    #: defaults do both), so it is ``None`` before and after them. Typed without ``None``: every
    #: callback in between may use it unchecked. Code that may run at other times (a timer,
    #: another connection's callback) tests ``self.transport is not None`` first.
    transport: Connection

    # A slot, so a subclass that declares ``__slots__`` of its own (even empty) has no
    # ``__dict__``: 40 bytes less per connection (tracemalloc; ``protocols/echo.py`` does). A
    # subclass that declares none gets a ``__dict__`` as usual.
    __slots__ = ("transport",)

    def __new__(cls, *args: object, **kwargs: object) -> Self:
        # Set here rather than in __init__, which a subclass may override without calling
        # super().__init__(): an unset slot would raise AttributeError instead of being None.
        protocol = super().__new__(cls)
        protocol.transport = None  # type: ignore[assignment]  # see ``transport``
        return protocol

    def connection_made(self, transport: Connection) -> None:
        """The connection is open. Keep ``transport`` to write to it (the default does).

        An override must call ``super().connection_made(transport)``: the transports check
        that ``self.transport`` is set afterwards and abort the connection with one logged error
        if not, since every helper here writes through it.
        """
        self.transport = transport

    def data_received(self, buffer: ByteBuffer) -> None:
        """New bytes arrived in ``buffer``, the connection's receive buffer.

        ``buffer`` is a ``ByteBuffer``, not ``bytes`` (asyncio's ``data_received`` gets bytes):
        ``data = buffer.take()`` gives you the bytes and empties it; ``bytes(buffer)``, slicing
        and comparing it with bytes raise a ``TypeError`` that says so. Take what you can use
        (``buffer.take()``, ``buffer.take_line()``) and leave the rest: it is still there, with
        more appended, on the next call. The connection closes with a logged reason if
        unconsumed input passes its limit (1 MiB unless ``set_read_buffer_limit`` says
        otherwise; the test doubles enforce it too). The default discards everything.
        """
        buffer.clear()

    def eof_received(self) -> bool:
        """The peer half-closed its side (FIN): no more data will arrive.

        Return true to keep the connection half-open (we may still write, then ``close()``);
        return false (the default) to close once the queued output has been sent.
        """
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        """The connection is closed; ``exc`` says why (``None`` for a clean close)."""
        self.transport = None  # type: ignore[assignment]  # see ``transport``

    def idle_timed_out(self, idle_seconds: float) -> None:
        """Nothing was read or written for ``idle_seconds`` (servers started with an idle
        timeout). Default: close. Line protocols say why first."""
        if self.transport is not None:
            self.transport.close()

    def handshake_completed(self) -> None:
        """The TLS handshake begun by ``transport.start_tls()`` completed: from now on every
        byte is encrypted (``transport.tls_version``, ``cipher``, ``peer_certificate`` say how).
        A failed one closes the connection instead (``connection_lost(exc)``). Default: nothing."""

    def pause_writing(self) -> None:
        """The send queue crossed its high-water mark: the peer is not keeping up.

        Default: stop reading from this peer until it drains, so a peer that sends requests but
        never reads the replies cannot make us buffer without bound. Protocols that write to
        *other* connections (a chat room) override this and decide per peer.
        """
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        """The send queue drained below its low-water mark. Default: read again."""
        if self.transport is not None:
            self.transport.resume_reading()


class DatagramProtocol:
    """Base class for datagram protocols: override the events you care about.

    Callback order, for one transport::

        connection_made(transport)           exactly once, before any other callback
            datagram_received(data, addr)    once per datagram, whole, in the order read
            error_received(exc)              a datagram was not delivered or an ICMP error came
            pause_writing() / resume_writing()   strictly alternating, while open
        connection_lost(exc)                 exactly once, on a later pass than its cause

    Nothing is delivered after ``transport.close()`` or ``transport.abort()`` except the final
    ``connection_lost`` (``exc`` is ``None`` unless the socket failed). There is no
    ``eof_received``: UDP has no end of stream.
    """

    transport: DatagramTransport | None = None

    def connection_made(self, transport: DatagramTransport) -> None:
        """The socket is bound (and connected, for ``connect_udp``). The default keeps it."""
        self.transport = transport

    def datagram_received(self, data: bytes, addr: SocketAddress) -> None:
        """One datagram arrived from ``addr``; reply with ``transport.sendto(reply, addr)``."""

    def error_received(self, exc: OSError) -> None:
        """A datagram could not be sent, or an ICMP error came back (on a connected transport,
        ``ConnectionRefusedError``: nothing listens at the peer's port). The transport stays
        open. The default logs it at INFO level."""
        datagram_log.info("%s: %s", type(self).__name__, describe(exc))

    def connection_lost(self, exc: BaseException | None) -> None:
        """The transport is closed; ``exc`` is ``None`` unless the socket failed."""
        self.transport = None

    def pause_writing(self) -> None:
        """The send queue crossed its high-water mark. UDP cannot slow the peers that make us
        send, so the default does nothing; the queue's bound drops what does not fit."""

    def resume_writing(self) -> None:
        """The send queue drained to its low-water mark. The default does nothing."""

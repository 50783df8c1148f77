"""Protocol: the base class every protocol subclasses, and the callback-order contract.

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

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reactor.buffer import ByteBuffer
    from reactor.connection import Connection


class Protocol:
    """Base class: override the events you care about.

    The defaults give the safe behaviour: input nobody consumes is discarded, the peer's FIN
    closes the connection once our queued output is sent, and back-pressure is on (see
    ``pause_writing``).
    """

    transport: Connection | None = None

    def connection_made(self, transport: Connection) -> None:
        """The connection is open. Keep ``transport`` to write to it (the default does)."""
        self.transport = transport

    def data_received(self, buffer: ByteBuffer) -> None:
        """New bytes arrived in ``buffer``, the connection's receive buffer.

        Take what you can use (``buffer.take()``, ``buffer.take_line()``) and leave the rest: it
        is still there, with more appended, on the next call. The connection closes with a logged
        reason if unconsumed input passes its limit. The default discards everything.
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
        self.transport = None

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

"""TLS: a layer between socket and protocol, made of ``ssl.MemoryBIO`` and ``ssl.SSLObject``.

Owns one connection's TLS session: the ``SSLObject`` (OpenSSL's state machine), its two memory
BIOs, the ciphertext the kernel has not taken yet, and the handshake's timer. Does not own the
socket, the buffers or the connection's state (``reactor/connection.py`` does: a
``TLSConnection`` *is* a ``Connection`` whose bytes pass through here), nor certificates (the
caller's ``ssl.SSLContext`` holds them).

Why memory BIOs and not ``SSLContext.wrap_socket``: a wrapped socket reads and writes the socket
itself, so its ``recv`` can fail with "want write" and its ``send`` with "want read", and the
reactor would no longer know what it is waiting for. With ``wrap_bio`` OpenSSL never touches the
socket. We move the bytes::

    socket.recv() -> incoming BIO -> SSLObject.read()  -> plaintext -> recv_buffer -> protocol
    protocol.write() -> send_buffer -> SSLObject.write() -> outgoing BIO -> pending -> socket.send()

Facts the code below depends on
-------------------------------
* ``SSLWantReadError`` means "OpenSSL needs more ciphertext from the peer before it can go on":
  feed the incoming BIO when the socket is readable and call again. It is the normal answer of a
  handshake step and of ``read()`` when only part of a record has arrived (a record is up to
  16 KiB of plaintext; TCP delivers it in pieces). ``SSLWantWriteError`` means "flush the output
  first": with a memory BIO, which never fills, OpenSSL has no reason to say it, but we treat it
  the same way (flush, wait) if it ever does.
* Every call may produce output: a handshake step its flight of records, ``read()`` a reply to a
  post-handshake message (a TLS 1.3 KeyUpdate), ``unwrap()`` a close_notify alert. So after each
  call the outgoing BIO is moved to ``pending`` and offered to the kernel.
* ``SSLObject.write()`` always takes everything and encrypts it into the outgoing BIO, which is
  unbounded. So the bound is ours: we encrypt only while the kernel takes the ciphertext, and at
  most ``MAX_PENDING_CIPHERTEXT_BYTES`` waits outside it; while it does, our ``send`` answers
  EAGAIN, the protocol's plaintext queues in ``send_buffer`` as for plain TCP, and
  ``get_write_buffer_size()`` counts both, so the watermarks pause the protocol as usual.
* After the handshake, TLS 1.3 servers send session tickets: records that carry no application
  data. ``read()`` consumes them and raises ``SSLWantReadError``; nothing reaches the protocol.
* The peer's close_notify alert is its EOF: ``read()`` returns ``b""`` (or raises
  ``SSLZeroReturnError`` once we have sent ours). A TCP FIN without close_notify (a "ragged EOF")
  raises ``SSLEOFError``; like most servers we treat it as EOF too, and say so in the trace:
  a protocol with its own framing (lengths, delimiters) notices a truncated message itself.
* The last handshake flight may arrive in the same segment as the first application data. The
  data then sits in the incoming BIO and the socket will not become readable for it, so after the
  handshake we decrypt what is buffered at once.

Choices (what a mature server does where the issue leaves room):

* ``connection_made`` comes after the handshake. A failed handshake never reaches the protocol:
  the server logs one line naming the peer and the reason, sends OpenSSL's alert if it has one,
  and closes. A client's failure goes to the connector's ``on_error``. A handshake not finished
  within ``handshake_timeout`` seconds (``TLS_HANDSHAKE_TIMEOUT_SECONDS``) is closed the same
  way: a FIN, not an RST, since a slow peer has done nothing wrong that a reset would signal.
  (The protocol factory has run at accept all the same: count connections in
  ``connection_made``, not in the factory.)
* A record that does not decrypt (garbage, a bad MAC) after the handshake: one log line,
  OpenSSL's alert (``bad_record_mac``), then FIN; ``connection_lost`` gets the ``SSLError``.
* ``close()``: close_notify after the queued data, then FIN, then the usual lingering close.
  ``abort()``: RST, no close_notify (the peer must not mistake it for a clean end).
* ``write_eof()`` sends close_notify and FIN while we keep reading. That is a half-close TLS 1.3
  allows (RFC 8446, 6.1). TLS 1.2 does not: a 1.2 peer answers close_notify by closing (RFC 5246,
  7.2.1), so there ``write_eof()`` raises ``RuntimeError``; ``can_write_eof()`` says which.
* Renegotiation is not supported: TLS 1.3 has none, and a TLS 1.2 renegotiation, which would make
  ``write()`` wait for a read, closes the connection with an error.

Read next: ``reactor/connection.py`` for the state table (``HANDSHAKING``) and the buffers.
"""

from __future__ import annotations

import errno
import logging
import ssl
from typing import TYPE_CHECKING, Any, Callable

from reactor.address import SocketAddress
from reactor.buffer import EMPTY_BUFFER, ByteBuffer
from reactor.connection import (
    MAX_READ_BYTES, READING_STATES, SENDMSG_MAX_CHUNKS, TLS_HANDSHAKE_TIMEOUT_SECONDS, Connection,
    ConnectionState,
)
from reactor.errors import ErrorKind, classify, describe

if TYPE_CHECKING:
    import socket

    from reactor.loop import Reactor
    from reactor.protocol import Protocol
    from reactor.timers import Timer

log = logging.getLogger("reactor.tls")

S = ConnectionState

#: At most this much ciphertext waits for the kernel outside its send buffer; plaintext is
#: encrypted only in pieces this big, and only while the kernel takes the previous piece.
MAX_PENDING_CIPHERTEXT_BYTES = 64 * 1024

#: OpenSSL's reason codes for the handshake failures people meet, in words that name the cause.
REASON_HINTS = {
    "HTTP_REQUEST": "a plain-text HTTP client on a TLS port",
    "WRONG_VERSION_NUMBER": "not TLS: perhaps plain text on a TLS port",
    "UNEXPECTED_EOF_WHILE_READING": "the peer closed the connection during the handshake",
    "NO_SHARED_CIPHER": "no cipher both sides accept",
    "UNSUPPORTED_PROTOCOL": "no TLS version both sides accept",
    "TLSV1_ALERT_UNKNOWN_CA": "the peer does not trust our certificate's CA",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the peer rejected our certificate",
}


def describe_tls_error(exc: BaseException) -> str:
    """One line for a failed handshake or a broken record: ``http request (a plain-text ...)``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        words = exc.reason.lower().replace("_", " ")
        hint = REASON_HINTS.get(exc.reason)
        return f"{words} ({hint})" if hint else words
    return describe(exc)


class TLSSession:
    """The TLS state of one connection (see the module docstring); ``TLSConnection`` drives it."""

    __slots__ = (
        "context", "ssl_object", "incoming", "outgoing", "pending", "server_side",
        "handshake_timeout", "timer", "on_failed", "protocol_told", "close_notify_sent",
        "eof_after_data", "handshake_steps", "step_bytes_in", "ciphertext_received",
        "ciphertext_sent",
    )

    def __init__(
        self, context: ssl.SSLContext, *, server_side: bool, server_hostname: str | None,
        handshake_timeout: float | None = TLS_HANDSHAKE_TIMEOUT_SECONDS,
        on_failed: Callable[[BaseException], Any] | None = None,
    ) -> None:
        self.context = context
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        # Raises ValueError at once if the context checks hostnames and none was given.
        self.ssl_object = context.wrap_bio(self.incoming, self.outgoing, server_side=server_side,
                                           server_hostname=server_hostname)
        #: Ciphertext (and, after start_tls, the last plaintext sent in the clear) not yet
        #: taken by the kernel, in order.
        self.pending = ByteBuffer()
        self.server_side = server_side
        if handshake_timeout is not None and handshake_timeout <= 0:
            raise ValueError("the handshake timeout must be positive")
        self.handshake_timeout = handshake_timeout
        self.timer: Timer | None = None
        #: Who hears of a failed handshake instead of the protocol (a connector's on_error).
        self.on_failed = on_failed
        #: Whether the protocol has had connection_made (start_tls: before the handshake).
        self.protocol_told = False
        self.close_notify_sent = False
        #: close_notify arrived together with data: the EOF follows that data.
        self.eof_after_data = False
        self.handshake_steps = 0
        self.step_bytes_in = 0
        self.ciphertext_received = self.ciphertext_sent = 0

    def stats(self) -> dict[str, Any]:
        obj = self.ssl_object
        return {"version": obj.version(), "cipher": (obj.cipher() or (None,))[0],
                "pending_ciphertext": len(self.pending),
                "ciphertext_received": self.ciphertext_received,
                "ciphertext_sent": self.ciphertext_sent}


class _PlaintextIO:
    """What a ``TLSConnection``'s read and write paths call ``recv``/``send``/``sendmsg`` on
    (``Connection._io``, the socket for a plain one): the same three calls, in plaintext, over
    the connection's TLS session. So the Connection's buffering, counters and back-pressure serve
    TLS unchanged, one method call away."""

    __slots__ = ("_connection",)

    def __init__(self, connection: TLSConnection) -> None:
        self._connection = connection

    def recv(self, size: int) -> bytes:
        return self._connection._recv_plaintext(size)

    def send(self, data: Any) -> int:
        return self._connection._encrypt_and_send(data)

    def sendmsg(self, chunks: list[Any]) -> int:
        return self._connection._encrypt_and_sendmsg(chunks)


class TLSConnection(Connection):
    """A ``Connection`` whose bytes pass through a ``TLSSession``. Same buffers, same states plus
    ``HANDSHAKING``; the protocol sees only plaintext. See the module docstring."""

    # No slots of its own: the TLS state is the one ``_tls`` slot of Connection, so that
    # ``start_tls`` can turn a plain Connection into this class in place (the same layout).
    __slots__ = ()

    _tls: TLSSession

    def __init__(
        self, reactor: Reactor, sock: socket.socket, protocol: Protocol,
        peer_address: SocketAddress, on_closed: Callable[[Connection], Any] | None = None, *,
        session: TLSSession,
    ) -> None:
        super().__init__(reactor, sock, protocol, peer_address, on_closed)
        self._attach(session)

    def _attach(self, session: TLSSession) -> None:
        """Route the read and write paths through ``session``: the Connection's ``recv``,
        ``send`` and ``sendmsg`` now reach ``_PlaintextIO`` instead of the socket."""
        self._tls = session
        self._io = _PlaintextIO(self)

    # -- what protocols can ask ----------------------------------------------------------------

    @property
    def tls_version(self) -> str | None:
        """``"TLSv1.3"``, ``"TLSv1.2"``; ``None`` until the handshake completes."""
        return self._tls.ssl_object.version()

    @property
    def cipher(self) -> tuple[str, str, int] | None:
        """``(name, protocol, secret bits)`` of the negotiated cipher, as ``SSLObject.cipher()``."""
        return self._tls.ssl_object.cipher()

    @property
    def peer_certificate(self) -> dict[str, Any] | None:
        """The peer's certificate as ``SSLObject.getpeercert()`` decodes it; ``None`` when the
        peer sent none (a client, usually) or it was not verified (``CERT_NONE``)."""
        return self._tls.ssl_object.getpeercert() or None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Also ``ssl_object``, ``sslcontext``, ``peercert``, ``cipher``, ``version``."""
        tls = self._tls
        values = {"ssl_object": tls.ssl_object, "sslcontext": tls.context,
                  "peercert": self.peer_certificate, "cipher": self.cipher,
                  "version": self.tls_version}
        if name in values:
            value = values[name]
            return default if value is None else value
        return super().get_extra_info(name, default)

    def can_write_eof(self) -> bool:
        """Only TLS 1.3 has a half-close (see the module docstring); ``False`` until the
        handshake has said which version this is."""
        return self.tls_version == "TLSv1.3"

    def get_write_buffer_size(self) -> int:
        """Plaintext queued plus ciphertext the kernel has not taken: what the watermarks see."""
        return self._send_buffer._length + len(self._tls.pending)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "tls": self._tls.stats()}

    # -- the handshake ---------------------------------------------------------------------------

    def _start(self) -> None:
        """The socket is connected: shake hands before the protocol hears of it."""
        self._set_state(S.HANDSHAKING)
        self._reactor._add_transport(self)
        self._begin_handshake()

    def _begin_handshake(self) -> None:
        tls = self._tls
        if tls.handshake_timeout is not None:
            tls.timer = self._reactor.call_later(tls.handshake_timeout, self._handshake_timed_out)
        if self._tracer is not None:
            self._trace("tls handshake begins", side="server" if tls.server_side else "client")
        self._start_reading()  # _on_readable dispatches on HANDSHAKING
        self._handshake_step()  # a client's first step writes its ClientHello

    def _handshake_step(self) -> None:
        """One ``do_handshake()``: feed it what arrived, send what it wrote, wait for more."""
        tls = self._tls
        tls.handshake_steps += 1
        try:
            tls.ssl_object.do_handshake()
        except ssl.SSLWantReadError:
            outcome = "want-read"
        except ssl.SSLWantWriteError:
            outcome = "want-write"
        except (ssl.SSLError, ssl.CertificateError) as exc:
            self._handshake_failed(exc)
            return
        else:
            outcome = "done"
        written = self._collect_output()
        if self._tracer is not None:
            meaning = {"want-read": "OpenSSL needs the peer's next flight; waiting for "
                                    "readability",
                       "want-write": "OpenSSL wants its output flushed first",
                       "done": "handshake complete"}[outcome]
            self._trace("tls handshake", step=tls.handshake_steps, bytes_in=tls.step_bytes_in,
                        bytes_out=written, result=outcome, meaning=meaning)
        tls.step_bytes_in = 0
        try:
            self._flush_ciphertext()
        except OSError as exc:
            self._handshake_failed(exc)
            return
        if tls.pending:
            self._start_writing()
        if outcome == "done":
            self._handshake_completed()

    def _handshake_readable(self) -> None:
        tls = self._tls
        try:
            data = self._sock.recv(MAX_READ_BYTES)
        except OSError as exc:
            if classify(exc) is not ErrorKind.WOULD_BLOCK:
                self._handshake_failed(exc)
            return
        if data:
            tls.incoming.write(data)
            tls.step_bytes_in += len(data)
            tls.ciphertext_received += len(data)
        else:
            tls.incoming.write_eof()  # the next step raises SSLEOFError: the peer left
        self._handshake_step()

    def _handshake_writable(self) -> None:
        try:
            flushed = self._flush_ciphertext()
        except OSError as exc:
            self._handshake_failed(exc)
            return
        if flushed:
            self._stop_writing()  # plaintext the protocol queued waits for the handshake

    def _handshake_completed(self) -> None:
        tls = self._tls
        if tls.timer is not None:
            tls.timer.cancel()
            tls.timer = None
        if self._tracer is not None:
            obj = tls.ssl_object
            cert = obj.getpeercert()
            subject = ", ".join("=".join(pair) for rdn in cert.get("subject", ())
                                for pair in rdn) if cert else "none"
            self._trace("tls established", version=obj.version(),
                        cipher=(obj.cipher() or ("?",))[0], peer_certificate=subject)
        self._stop_reading()  # re-registered below unless the protocol paused reading
        if tls.protocol_told:  # start_tls: the protocol already has the connection
            self._set_state(S.OPEN)
            if not self._reading_paused:
                self._start_reading()
            if self._send_buffer._length or tls.pending:
                self._start_writing()
            try:
                self._protocol.handshake_completed()
            except Exception as exc:
                self._protocol_failed(exc, "handshake_completed")
                return
        else:
            tls.protocol_told = True
            Connection._start(self)  # OPEN, connection_made, start reading
        if tls.incoming.pending and self._state in READING_STATES and not self._reading_paused:
            self._on_readable()  # application data that came with the last flight

    def _handshake_timed_out(self) -> None:
        tls = self._tls
        tls.timer = None
        exc = TimeoutError(errno.ETIMEDOUT, f"TLS handshake not finished within "
                                            f"{tls.handshake_timeout:g}s")
        self._handshake_failed(exc)

    def _handshake_failed(self, exc: BaseException) -> None:
        """One log line (or the connector's on_error), OpenSSL's alert if it wrote one, close."""
        if self._closed:
            return
        tls = self._tls
        if tls.timer is not None:
            tls.timer.cancel()
            tls.timer = None
        if self._tracer is not None:
            self._trace("tls handshake failed", reason=describe_tls_error(exc))
        if tls.on_failed is None:
            log.warning("TLS handshake with %s failed: %s", self.peer_name,
                        describe_tls_error(exc))
        self._send_alert_and_close(exc)

    def _send_alert_and_close(self, exc: BaseException) -> None:
        """Offer OpenSSL's alert, if it wrote one, to the kernel, and close: FIN, or RST if the
        peer's bytes are still unread in the kernel. Best effort: we do not wait for the alert."""
        self._collect_output()
        try:
            self._flush_ciphertext()
        except OSError:
            pass
        self._teardown(exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        tls = self._tls
        if tls.protocol_told:
            super()._call_connection_lost(exc)
            return
        # The handshake never completed: the protocol never existed as far as it knows.
        if tls.on_failed is not None and exc is not None:
            tls.on_failed(exc)
        if self._on_closed is not None:
            self._on_closed(self)

    def _idle_timed_out(self, idle_seconds: float) -> None:
        if self._state is not S.HANDSHAKING:  # the handshake timer covers that phase
            super()._idle_timed_out(idle_seconds)

    # -- the read path ---------------------------------------------------------------------------

    def _on_readable(self) -> None:
        if self._state is S.HANDSHAKING:
            self._handshake_readable()
            return
        super()._on_readable()
        tls = self._tls
        if tls.eof_after_data and self._state in READING_STATES:
            tls.eof_after_data = False
            self._on_eof()

    def _recv_plaintext(self, size: int) -> bytes:
        """The Connection's ``recv``: ciphertext in, plaintext out. Raises ``BlockingIOError``
        when no whole record has arrived yet, returns ``b""`` at the peer's close_notify."""
        tls = self._tls
        try:
            data = self._sock.recv(size)
        except BlockingIOError:
            if not tls.incoming.pending:
                raise
            data = None  # nothing new, but records left from the handshake's last flight
        if data:
            tls.incoming.write(data)
            tls.ciphertext_received += len(data)
        elif data is not None:
            tls.incoming.write_eof()
        pieces = []
        eof = False
        read = tls.ssl_object.read
        while True:
            try:
                piece = read(size)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except ssl.SSLZeroReturnError:
                piece = b""  # close_notify, after we sent ours
            except ssl.SSLEOFError:
                if self._tracer is not None:
                    self._trace("tls ragged eof", meaning="TCP FIN without close_notify: "
                                "treated as EOF; a truncation would go unnoticed by TLS")
                piece = b""
            if not piece:
                eof = True
                if self._tracer is not None:
                    self._trace("tls eof", meaning="the peer's close_notify (or FIN): its EOF")
                break
            pieces.append(piece)
        plaintext = b"".join(pieces) if len(pieces) != 1 else pieces[0]
        if self._tracer is not None:
            if data:
                self._trace("tls read", ciphertext=len(data), plaintext=len(plaintext))
            elif data is None and plaintext:
                self._trace("tls read", ciphertext=0, plaintext=len(plaintext),
                            meaning="records that came with the handshake's last flight")
        if self._collect_output():  # a reply to a post-handshake message
            if not self._flush_ciphertext():
                self._start_writing()
        if eof:
            if plaintext:
                tls.eof_after_data = True
                return plaintext
            return b""
        if plaintext:
            return plaintext
        raise BlockingIOError(errno.EAGAIN, "no complete TLS record yet")

    # -- the write path --------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._state is S.HANDSHAKING and not self._write_closed:
            # start_tls's handshake is under way: queue; it is encrypted once it completes.
            self.send_buffer.append(data)
        else:
            super().write(data)  # raises after write_eof(), drops after close()
        if not (self._write_paused or self._write_closed) \
                and self.get_write_buffer_size() > self._high_water:
            self._pause_protocol_writing()  # the ciphertext counts too

    def _encrypt_and_send(self, data: Any) -> int:
        """The Connection's ``send``: returns how much plaintext was taken, like ``send()``.
        Raises ``BlockingIOError`` while ciphertext still waits for the kernel, so the protocol's
        bytes queue in ``send_buffer`` where the watermarks see them."""
        tls = self._tls
        if not self._flush_ciphertext():
            raise BlockingIOError(errno.EAGAIN, "TLS ciphertext still waiting for the kernel")
        view = memoryview(data)
        total = len(view)
        taken = 0
        while taken < total:
            piece = view[taken:taken + MAX_PENDING_CIPHERTEXT_BYTES]
            try:
                tls.ssl_object.write(piece)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise ssl.SSLError("the peer started a renegotiation, which is not supported")
            taken += len(piece)
            written = self._collect_output()
            if self._tracer is not None:
                self._trace("tls write", plaintext=len(piece), ciphertext=written)
            if not self._flush_ciphertext():
                self._start_writing()
                break
        return taken

    def _encrypt_and_sendmsg(self, chunks: list[Any]) -> int:
        """The Connection's ``sendmsg``: encrypt the queued chunks in order, while the kernel
        takes the ciphertext."""
        total = 0
        for chunk in chunks:
            try:
                taken = self._encrypt_and_send(chunk)
            except BlockingIOError:
                if total:
                    break
                raise
            total += taken
            if taken < len(chunk) or self._tls.pending:
                break
        return total

    def _collect_output(self) -> int:
        """Move what OpenSSL wrote into the outgoing BIO to ``pending``; returns its size."""
        tls = self._tls
        if not tls.outgoing.pending:
            return 0
        data = tls.outgoing.read()
        tls.pending.append(data)
        return len(data)

    def _flush_ciphertext(self) -> bool:
        """Offer ``pending`` to the kernel; True when nothing is left. EAGAIN leaves it queued;
        any other ``OSError`` is the caller's."""
        pending = self._tls.pending
        while pending:
            chunks = pending.head_chunks(SENDMSG_MAX_CHUNKS)
            wanted = sum(len(chunk) for chunk in chunks)
            try:
                sent = self._sock.send(chunks[0]) if len(chunks) == 1 else \
                    self._sock.sendmsg(chunks)
            except OSError as exc:
                if classify(exc) is ErrorKind.WOULD_BLOCK:
                    return False
                raise
            pending.consume(sent)
            self._tls.ciphertext_sent += sent
            if sent < wanted:
                return False  # the kernel's send buffer is full
        return True

    def _flush_or_fail(self) -> bool:
        """``_flush_ciphertext`` for the data phase: a failed send aborts (and returns False)."""
        try:
            return self._flush_ciphertext()
        except OSError as exc:
            self._io_failed(exc, "send")
            return False

    def _on_writable(self) -> None:
        if self._state is S.HANDSHAKING:
            self._handshake_writable()
            return
        if not self._flush_or_fail():
            return
        if self._send_buffer._length:
            super()._on_writable()
        else:
            self._send_buffer_drained()

    def _send_buffer_drained(self) -> None:
        if self._tls.pending:  # ciphertext still queued: stay registered for writability
            if self._write_paused and self.get_write_buffer_size() <= self._low_water:
                self._resume_protocol_writing()
            return
        super()._send_buffer_drained()

    # -- half-close, close, abort ----------------------------------------------------------------

    def write_eof(self) -> None:
        """Send close_notify, then FIN, after the queued data; keep reading (TLS 1.3 only: see
        the module docstring). Raises ``RuntimeError`` over TLS 1.2 or during the handshake."""
        if self._state is S.HANDSHAKING:
            raise RuntimeError(f"{self!r}: write_eof() during the TLS handshake")
        if self._state is S.OPEN and self.tls_version != "TLSv1.3":
            raise RuntimeError(
                f"{self!r}: write_eof() needs TLS 1.3 ({self.tls_version} has no half-close: a "
                "TLS 1.2 peer answers close_notify by closing); use close()")
        super().write_eof()

    def _queue_close_notify(self) -> None:
        tls = self._tls
        if tls.close_notify_sent:
            return
        tls.close_notify_sent = True
        try:
            tls.ssl_object.unwrap()
        except ssl.SSLWantReadError:
            pass  # sent ours; the peer's has not come yet, and we do not wait for it here
        except ssl.SSLError as exc:
            if self._tracer is not None:
                self._trace("tls close_notify not sent", error=describe_tls_error(exc))
            return
        written = self._collect_output()
        if self._tracer is not None:
            self._trace("tls close_notify", bytes=written,
                        meaning="our TLS EOF; TCP FIN follows once it is sent")

    def _shutdown_write(self) -> None:
        self._queue_close_notify()
        if not self._flush_or_fail():
            if self._closed:
                return
            self._eof_pending = True  # _send_buffer_drained comes back here
            self._start_writing()
            return
        super()._shutdown_write()

    def close(self) -> None:
        if self._state is S.HANDSHAKING:
            # Nothing the protocol wrote can be sent before the handshake: just go.
            self._teardown(None)
            return
        super().close()

    def _finish_closing(self) -> None:
        if self._linger_timer is not None:
            return
        self._queue_close_notify()
        try:
            flushed = self._flush_ciphertext()
        except OSError:
            self._teardown(None)
            return
        if not flushed:
            self._start_writing()  # _send_buffer_drained comes back here
            return
        super()._finish_closing()

    def _teardown(self, exc: BaseException | None) -> None:
        tls = self._tls
        if tls.timer is not None:
            tls.timer.cancel()
            tls.timer = None
        tls.pending.clear()
        super()._teardown(exc)

    # -- errors ----------------------------------------------------------------------------------

    def _io_failed(self, exc: OSError, syscall: str) -> None:
        """A broken record (garbage, a bad MAC) is the peer's fault: one line, no traceback,
        the alert OpenSSL wrote for it, and a close."""
        if isinstance(exc, ssl.SSLError):
            if self._tracer is not None:
                self._trace("tls error", error=describe_tls_error(exc))
            log.warning("%s: TLS error, closing: %s", self.peer_name, describe_tls_error(exc))
            self._send_buffer.clear()  # nothing more of ours is worth sending on a broken stream
            self._send_alert_and_close(exc)
            return
        super()._io_failed(exc, syscall)


def start_tls(
    connection: Connection, context: ssl.SSLContext, *, server_side: bool,
    server_hostname: str | None = None,
    handshake_timeout: float | None = TLS_HANDSHAKE_TIMEOUT_SECONDS,
) -> None:
    """Turn an open plain connection into a TLS one, in place (STARTTLS).

    What the protocol queued before is sent in the clear first; bytes already received but not
    consumed are the peer's first TLS bytes and go to the handshake. The protocol may write at
    once: that plaintext is encrypted after the handshake, when ``handshake_completed()`` is
    called. A failed handshake closes the connection (``connection_lost(exc)``).
    """
    if isinstance(connection, TLSConnection):
        raise RuntimeError(f"{connection!r} already speaks TLS")
    if connection.state is not S.OPEN:
        raise RuntimeError(f"start_tls() needs an OPEN connection, not {connection.state.name}")
    session = TLSSession(context, server_side=server_side, server_hostname=server_hostname,
                         handshake_timeout=handshake_timeout)
    session.protocol_told = True
    # Nothing is watched while the class changes: the handshake registers what it needs.
    connection._stop_reading()
    connection._stop_writing()
    connection.__class__ = TLSConnection
    assert isinstance(connection, TLSConnection)
    connection._attach(session)
    session.pending, connection._send_buffer = connection.send_buffer, EMPTY_BUFFER
    for chunk in connection._recv_buffer.head_chunks(connection._recv_buffer.chunk_count()):
        session.incoming.write(chunk)
    connection._recv_buffer.clear()
    connection._set_state(S.HANDSHAKING)
    connection._begin_handshake()

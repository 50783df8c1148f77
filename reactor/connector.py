"""Connector: a non-blocking ``connect()``, from the first SYN to a Connection or a failure.

Owns the connecting socket until the handshake finishes, then hands it to a new ``Connection``.
Does not retry after a failure: it reports it, once, to ``on_error``.

Facts:

* ``connect()`` on a non-blocking TCP socket returns at once with EINPROGRESS: the kernel has sent
  SYN and the handshake goes on without us. (``connect_ex`` returns the errno instead of raising.)
* The socket becomes *writable* when the handshake ends, whether it succeeded or not. Only
  ``getsockopt(SOL_SOCKET, SO_ERROR)`` tells which: 0, or the errno the connect would have
  raised: ECONNREFUSED (the peer answered our SYN with RST: nothing listens on that port),
  ETIMEDOUT, EHOSTUNREACH/ENETUNREACH (an ICMP error came back).
* The kernel's own SYN retries take minutes to give up, so the connector keeps its own timeout.
* A name can resolve to several addresses (``localhost`` to ``::1`` and ``127.0.0.1``): they are
  tried in order until one connects, and the last error is reported if none does.

Read next: ``reactor/connection.py``.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from typing import TYPE_CHECKING, Any, Callable

from reactor.address import format_address, resolve_stream, set_nodelay
from reactor.connection import TLS_HANDSHAKE_TIMEOUT_SECONDS, Connection
from reactor.errors import describe, report_callback_error
from reactor.tls import TLSConnection, TLSSession

if TYPE_CHECKING:
    import ssl

    from reactor.loop import Reactor
    from reactor.timers import Timer

log = logging.getLogger("reactor.connector")

#: What a non-blocking TCP ``connect()`` returns while the handshake goes on. (A Unix socket
#: connects at once or fails; its EAGAIN means the server's backlog is full, and is an error.)
CONNECT_IN_PROGRESS = errno.EINPROGRESS

#: How long a connect (and, with TLS, its handshake's start) may take before it fails.
CONNECT_TIMEOUT_SECONDS = 10.0

#: Makes the connecting socket from ``getaddrinfo``'s (family, type, proto): ``socket.socket``,
#: or, in tests, a double that scripts what each syscall answers (``reactor.testing``).
SocketFactory = Callable[[int, int, int], socket.socket]


class Connector:
    """One connection attempt. ``cancel()`` abandons it without calling anything.

    With ``ssl`` (a client ``SSLContext``) the attempt goes on through the TLS handshake: the
    protocol is made aware only once it completes, and a failed one (an untrusted or expired
    certificate, a wrong host name) reaches ``on_error`` like a refused connect.
    ``socket_factory`` makes the socket (the seam tests use to script the syscalls).

    ``start_tcp`` and ``start_unix`` pass their keyword options through to this one signature.
    """

    def __init__(
        self, reactor: Reactor, protocol_factory: Callable[[], Any], target: str,
        on_error: Callable[[BaseException], Any] | None = None,
        timeout: float | None = CONNECT_TIMEOUT_SECONDS, *,
        ssl: ssl.SSLContext | None = None, server_hostname: str | None = None,
        handshake_timeout: float | None = TLS_HANDSHAKE_TIMEOUT_SECONDS,
        socket_factory: SocketFactory = socket.socket,
    ) -> None:
        self._reactor = reactor
        self._socket_factory = socket_factory
        self._ssl = ssl
        self._server_hostname = server_hostname
        self._handshake_timeout = handshake_timeout
        self._protocol_factory = protocol_factory
        self.target = target
        self._on_error = on_error
        self._addresses: list[tuple[Any, ...]] = []
        self._sock: socket.socket | None = None
        self._timeout_timer: Timer | None = None
        if timeout is not None:
            self._timeout_timer = reactor.call_later(timeout, self._timed_out, timeout)
        self._done = False
        self.connection: Connection | None = None

    @classmethod
    def start_tcp(
        cls, reactor: Reactor, protocol_factory: Callable[[], Any], host: str, port: int,
        **options: Any,
    ) -> Connector:
        """Resolve ``host`` and connect to each address in turn. With ``ssl``,
        ``server_hostname`` defaults to ``host``: the name the certificate must match (an IP
        address matches the certificate's IP subjectAltName)."""
        if options.get("ssl") is not None and options.get("server_hostname") is None:
            options["server_hostname"] = host
        connector = cls(reactor, protocol_factory, format_address((host, port)), **options)
        try:
            connector._addresses = resolve_stream(host, port, passive=False)
        except (OSError, UnicodeError) as exc:  # socket.gaierror: the name does not resolve
            reactor.call_soon(connector._fail, exc)
            return connector
        connector._try_next(None)
        return connector

    @classmethod
    def start_unix(
        cls, reactor: Reactor, protocol_factory: Callable[[], Any], path: str, **options: Any,
    ) -> Connector:
        connector = cls(reactor, protocol_factory, path, **options)
        connector._addresses = [(socket.AF_UNIX, socket.SOCK_STREAM, 0, "", path)]
        connector._try_next(None)
        return connector

    @property
    def trace_label(self) -> str:
        return f"connect {self.target}"

    def __repr__(self) -> str:
        state = "done" if self._done else "connecting"
        return f"<Connector {self.target} {state}>"

    def cancel(self) -> None:
        """Abandon the attempt: no protocol is created and ``on_error`` is not called."""
        self._done = True
        self._close_socket()
        if self._timeout_timer is not None:
            self._timeout_timer.cancel()

    def _try_next(self, previous_error: OSError | None) -> None:
        """Start connecting to the next address, or report the last error if none is left."""
        while self._addresses:
            family, type_, proto, _, address = self._addresses.pop(0)
            try:
                sock = self._socket_factory(family, type_, proto)
            except OSError as exc:  # EMFILE, or a family this host lacks
                previous_error = exc
                continue
            sock.setblocking(False)
            try:
                code = sock.connect_ex(address)
            except OSError as exc:  # an address connect_ex cannot even encode (a long path)
                sock.close()
                previous_error = exc
                continue
            if code == 0:  # done at once (Unix sockets can): still report on a later pass
                self._sock = sock
                self._reactor.call_soon(self._connected, sock)
                return
            if code == CONNECT_IN_PROGRESS:
                self._sock = sock
                self._reactor.poller.set_writer(sock.fileno(), self._on_writable)
                if self._reactor.tracer is not None:
                    self._reactor.tracer.event(self, "connect", address=format_address(address),
                                               meaning="SYN sent; waiting for writability")
                return
            sock.close()
            previous_error = OSError(code, os.strerror(code))
        # Deliver on a later pass: on_error never runs inside connect_tcp() itself.
        self._reactor.call_soon(self._fail, previous_error or OSError(
            errno.EADDRNOTAVAIL, f"no address to connect to for {self.target}"))

    def _on_writable(self) -> None:
        """The handshake ended: ``SO_ERROR`` says how."""
        sock = self._sock
        assert sock is not None
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self._reactor.poller.remove(sock.fileno())
        self._sock = None
        if code == 0:
            self._connected(sock)
            return
        sock.close()
        # OSError(errno, text) builds the matching subclass, e.g. ConnectionRefusedError.
        error = OSError(code, os.strerror(code))
        if self._reactor.tracer is not None:
            self._reactor.tracer.event(self, "connect failed", error=describe(error))
        self._try_next(error)

    def _connected(self, sock: socket.socket) -> None:
        if self._done:
            return  # cancelled or timed out in between
        self._sock = None
        try:
            peer_address = sock.getpeername() or self.target  # a Unix peer: its path
        except OSError as exc:  # reset between the handshake and now
            sock.close()
            self._fail(exc)
            return
        if self._timeout_timer is not None:
            self._timeout_timer.cancel()
        self._done = True
        set_nodelay(sock)
        try:
            protocol = self._protocol_factory()
        except Exception as exc:
            sock.close()
            report_callback_error(exc, f"protocol factory of {self!r}")
            return
        if self._ssl is None:
            self.connection = Connection(self._reactor, sock, protocol, peer_address)
        else:
            try:
                session = TLSSession(self._ssl, server_side=False,
                                     server_hostname=self._server_hostname,
                                     handshake_timeout=self._handshake_timeout,
                                     on_failed=self._report)
            except ValueError as exc:  # check_hostname without a server_hostname
                sock.close()
                self._report(exc)
                return
            self.connection = TLSConnection(self._reactor, sock, protocol, peer_address,
                                            session=session)
        if self._reactor.tracer is not None:
            self._reactor.tracer.event(self, "connected", fd=sock.fileno())
        self.connection._start()

    def _timed_out(self, timeout: float) -> None:
        self._timeout_timer = None
        self._close_socket()
        self._addresses.clear()
        self._fail(TimeoutError(errno.ETIMEDOUT, f"connect to {self.target} timed out "
                                                 f"after {timeout:g}s"))

    def _fail(self, exc: BaseException) -> None:
        if self._done:
            return
        self._done = True
        if self._timeout_timer is not None:
            self._timeout_timer.cancel()
        self._report(exc)

    def _report(self, exc: BaseException) -> None:
        """Tell ``on_error`` (or the log): the connect, or the TLS handshake after it, failed."""
        if self._on_error is None:
            log.warning("connect to %s failed: %s", self.target, describe(exc))
            return
        try:
            self._on_error(exc)
        except Exception as error:
            report_callback_error(error, f"on_error of {self!r}")

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._reactor.poller.remove(self._sock.fileno())
            self._sock.close()
            self._sock = None

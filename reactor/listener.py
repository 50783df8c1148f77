"""Listener: a listening socket that turns accepted sockets into connections.

Owns the listening socket and the set of connections it accepted. Does not own what happens on
them (that is ``Connection`` and the protocol).

Facts:

* ``socket() / bind() / listen()`` make a passive socket. The kernel completes each client's
  three-way handshake (SYN, SYN-ACK, ACK) by itself and queues the finished connection in the
  *accept backlog*; ``accept()`` only takes one off that queue. So a client is "connected" before
  our code has run at all, and a full backlog makes new clients' SYNs wait or fail.
* The listening socket is readable while the backlog is non-empty. We accept in batches of at most
  ``MAX_ACCEPTS_PER_EVENT`` until EAGAIN, so one flood of connects cannot starve the clients we
  already serve for a whole pass.
* ECONNABORTED: a client reset the connection while it sat in the backlog. Skip it.
* EMFILE/ENFILE/ENOBUFS/ENOMEM: no descriptor or memory for the new socket. The connection stays
  in the backlog, so the socket stays readable and an immediate retry would spin the CPU. We stop
  accepting, log once, and try again after ``ACCEPT_RETRY_DELAY_SECONDS``.
* ``SO_REUSEADDR`` lets a restarted server bind its port while connections of the previous run
  are still in TIME_WAIT; it does not let two live servers share a port (``SO_REUSEPORT`` does).

Read next: ``reactor/connection.py``.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from collections.abc import KeysView
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from reactor.address import (
    SocketAddress, bind_socket, format_address, remove_stale_unix_socket, set_nodelay,
)
from reactor.connection import TLS_HANDSHAKE_TIMEOUT_SECONDS, Connection
from reactor.errors import ErrorKind, classify, describe, report_callback_error
from reactor.idle import IdleSweeper
from reactor.protocol import Protocol
from reactor.tls import TLSConnection, TLSSession

if TYPE_CHECKING:
    import ssl

    from reactor.loop import Reactor
    from reactor.timers import Timer

log = logging.getLogger("reactor.listener")

MAX_ACCEPTS_PER_EVENT = 64
ACCEPT_RETRY_DELAY_SECONDS = 0.5


class RejectProtocol(Protocol):
    """What a connection over ``max_connections`` gets instead of the real protocol: one
    optional line saying why, then a close. Accepting and closing at once, rather than not
    accepting, tells the client now; a connection left in the backlog would just hang."""

    def __init__(self, message: bytes | None) -> None:
        self.message = message

    def connection_made(self, transport: Connection) -> None:
        super().connection_made(transport)
        if self.message:
            transport.write(self.message)
        transport.close()


@dataclass(frozen=True)
class ListenerOptions:
    """How a listener treats the connections it accepts: the one place these options are
    declared. ``reactor.listen_tcp(..., **options)`` and ``listen_unix`` take them as keywords
    (a misspelt one is a ``TypeError`` naming it), and pass them here unchanged."""

    #: Beyond this many open connections, new ones are accepted and closed at once...
    max_connections: int | None = None
    #: ...after this is written to them, if given (a line saying why).
    reject_message: bytes | None = None
    #: Connections on which nothing is read or written for this many seconds get
    #: ``protocol.idle_timed_out`` (``reactor/idle.py``).
    idle_timeout: float | None = None
    #: An ``SSLContext`` made for servers: the port then speaks TLS only, each connection shaking
    #: hands before its protocol is made aware (``reactor/tls.py``)...
    ssl: ssl.SSLContext | None = None
    #: ...within this many seconds, or it is closed (FIN, not RST: reactor/tls.py).
    handshake_timeout: float | None = TLS_HANDSHAKE_TIMEOUT_SECONDS


class Listener:
    """Accepts connections on one listening socket until ``close()``, treating them as
    ``options`` say (``ListenerOptions``)."""

    def __init__(
        self, reactor: Reactor, sock: socket.socket, protocol_factory: Callable[[], Any],
        options: ListenerOptions = ListenerOptions(),
    ) -> None:
        self._reactor = reactor
        self._ssl = options.ssl
        self._handshake_timeout = options.handshake_timeout
        self._sock = sock
        self._protocol_factory = protocol_factory
        self.max_connections = options.max_connections
        self.reject_message = options.reject_message
        self.address: SocketAddress = sock.getsockname()
        # Dicts used as ordered sets: a dict's compact entries cost 29 bytes each against a
        # set's 52 (tracemalloc, 10,000 entries). ``connections`` and ``rejected`` show their keys.
        self._connections: dict[Connection, None] = {}
        self._rejected: dict[Connection, None] = {}
        #: Called each time the last of ``connections`` is gone, after its ``connection_lost``
        #: (a TLS connection whose handshake failed counts too: it never reached its protocol,
        #: but it held a descriptor). The example servers' graceful shutdown waits on it.
        self.when_empty: Callable[[], object] | None = None
        # Each connection's ``on_closed``, made once and shared: a bound method per connection
        # cost 72 bytes each (tracemalloc, 10,000 idle connections).
        self._forget_connection = self._connection_closed
        self._forget_rejected = self._rejected_closed
        self._closed = False
        self._retry_timer: Timer | None = None
        self._accept_failing = False  # logged once per episode, not on every retry
        self._unix_path_inode: tuple[str, int] | None = None
        self._idle_sweeper = (IdleSweeper(reactor, self.connections, options.idle_timeout)
                              if options.idle_timeout is not None else None)
        sock.setblocking(False)
        reactor.poller.set_reader(sock.fileno(), self._on_readable)
        if reactor.tracer is not None:
            reactor.tracer.event(self, "listening", address=self.name)

    @classmethod
    def open_tcp(
        cls, reactor: Reactor, protocol_factory: Callable[[], Any], host: str | None, port: int,
        *, backlog: int = 128, reuse_port: bool = False,
        options: ListenerOptions = ListenerOptions(),
    ) -> Listener:
        """``socket() / bind() / listen()`` on the first address ``host`` resolves to
        (``reactor.address.bind_socket``). Raises ``OSError`` if it cannot be bound."""
        sock = bind_socket(host, port, socket.SOCK_STREAM, reuse_address=True,
                           reuse_port=reuse_port)
        try:
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        return cls(reactor, sock, protocol_factory, options)

    @classmethod
    def open_unix(
        cls, reactor: Reactor, protocol_factory: Callable[[], Any], path: str,
        *, backlog: int = 128, options: ListenerOptions = ListenerOptions(),
    ) -> Listener:
        """Listen on a Unix domain stream socket at ``path``, replacing a stale socket file
        (``reactor.address.remove_stale_unix_socket``) but never a live server's."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                sock.bind(path)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                remove_stale_unix_socket(path)
                sock.bind(path)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        listener = cls(reactor, sock, protocol_factory, options)
        listener._unix_path_inode = (path, os.stat(path).st_ino)
        return listener

    @property
    def connections(self) -> KeysView[Connection]:
        """The open connections accepted here: a live, set-like view."""
        return self._connections.keys()

    @property
    def rejected(self) -> KeysView[Connection]:
        """Connections over the limit, being told so: they do not count against the limit."""
        return self._rejected.keys()

    @property
    def name(self) -> str:
        """The bound address as ``HOST:PORT``; with port 0, the port the kernel chose."""
        return format_address(self.address)

    @property
    def trace_label(self) -> str:
        return f"listener {self.name}"

    def __repr__(self) -> str:
        state = "closed" if self._closed else "accepting"
        return f"<Listener {self.name} {state} connections={len(self.connections)}>"

    def _on_readable(self) -> None:
        for _ in range(MAX_ACCEPTS_PER_EVENT):
            try:
                sock, peer_address = self._sock.accept()
            except OSError as exc:
                kind = classify(exc)
                if kind is ErrorKind.WOULD_BLOCK:
                    return
                if kind is ErrorKind.PEER_GONE:
                    continue  # reset while in the backlog: nothing to serve
                self._pause_accepting(exc)
                return
            if self._accept_failing:
                self._accept_failing = False
                log.warning("%s: accepting again", self.name)
            self._accepted(sock, peer_address)
            if self._closed:
                return  # a protocol closed us from connection_made: the socket is gone

    def _accepted(self, sock: socket.socket, peer_address: SocketAddress) -> None:
        if type(peer_address) is tuple:
            # accept() makes a new host string for every peer, though a server's peers share a
            # handful of hosts: kept interned, 58 bytes less per idle connection (tracemalloc).
            peer_address = (sys.intern(peer_address[0]), *peer_address[1:])
        sock.setblocking(False)
        set_nodelay(sock)
        full = (self.max_connections is not None
                and len(self._connections) >= self.max_connections)
        try:
            protocol = RejectProtocol(self.reject_message) if full else self._protocol_factory()
        except Exception as exc:
            report_callback_error(exc, f"protocol factory of {self!r}")
            sock.close()
            return
        group = self._rejected if full else self._connections
        on_closed = self._forget_rejected if full else self._forget_connection
        if full:
            count = len(self.connections)
            log.info("%s: %d connection%s already; rejecting %s", self.name, count,
                     "" if count == 1 else "s", format_address(peer_address))
        if self._ssl is None:
            connection = Connection(self._reactor, sock, protocol, peer_address,
                                    on_closed=on_closed)
        else:
            connection = self._tls_connection(sock, protocol, peer_address, on_closed)
        group[connection] = None
        if self._reactor.tracer is not None:
            self._reactor.tracer.event(self, "accept", fd=sock.fileno(),
                                       peer=format_address(peer_address))
        connection._start()

    def _connection_closed(self, connection: Connection) -> None:
        self._connections.pop(connection, None)
        if not self._connections and self.when_empty is not None:
            self.when_empty()

    def _rejected_closed(self, connection: Connection) -> None:
        self._rejected.pop(connection, None)

    def _tls_connection(self, sock: socket.socket, protocol: Protocol,
                        peer_address: SocketAddress,
                        on_closed: Callable[[Connection], Any]) -> Connection:
        assert self._ssl is not None
        session = TLSSession(self._ssl, server_side=True, server_hostname=None,
                             handshake_timeout=self._handshake_timeout)
        return TLSConnection(self._reactor, sock, protocol, peer_address, on_closed,
                             session=session)

    def _pause_accepting(self, exc: OSError) -> None:
        """Out of descriptors or memory: stop accepting for a while instead of spinning."""
        self._reactor.poller.remove_reader(self._sock.fileno())
        if not self._accept_failing:
            self._accept_failing = True
            if classify(exc) is ErrorKind.RESOURCES_EXHAUSTED:
                log.warning("%s: accept failed with %s; retrying every %.1fs until it succeeds",
                            self.name, describe(exc), ACCEPT_RETRY_DELAY_SECONDS)
            else:
                log.error("%s: accept failed; retrying every %.1fs", self.name,
                          ACCEPT_RETRY_DELAY_SECONDS, exc_info=exc)
        self._retry_timer = self._reactor.call_later(ACCEPT_RETRY_DELAY_SECONDS,
                                                     self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._retry_timer = None
        if not self._closed:
            self._reactor.poller.set_reader(self._sock.fileno(), self._on_readable)

    def close(self) -> None:
        """Stop listening: new connects are refused. Accepted connections stay open; close or
        abort them through ``connections`` (the example servers do, on SIGINT/SIGTERM)."""
        if self._closed:
            return
        self._closed = True
        if self._retry_timer is not None:
            self._retry_timer.cancel()
        if self._idle_sweeper is not None:
            self._idle_sweeper.cancel()
        self._reactor.poller.remove(self._sock.fileno())
        self._sock.close()
        if self._unix_path_inode is not None:
            path, inode = self._unix_path_inode
            try:
                if os.stat(path).st_ino == inode:  # still ours, not a successor's
                    os.unlink(path)
            except FileNotFoundError:
                pass


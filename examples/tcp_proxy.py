"""TCP proxy: every client connection is forwarded to one upstream address, with optional chaos.

    python -m examples.tcp_proxy --listen 127.0.0.1:9000 --to 127.0.0.1:8888
    python -m examples.tcp_proxy --listen 127.0.0.1:9000 --to 127.0.0.1:8888 \\
        --chaos-split 7 --chaos-delay 0.01 --chaos-reset 0.1 --seed 42
    python -m examples.tcp_proxy --listen 127.0.0.1:9443 --to 127.0.0.1:8888 \\
        --tls-cert cert.pem --tls-key key.pem

Each accepted client gets a *tunnel*: the client's connection and an upstream connection opened
for it. Both ends are the same protocol, ``ProxySide``: what one side reads, the other writes.
A client's bytes that arrive before upstream has answered stay in the kernel: the client is not
read until there is somewhere to put its bytes. Three things make forwarding harder than
``peer.write(buffer.take())``.

Back-pressure across two connections. A one-connection server (echo) stops reading a peer when
*that peer's* send queue passes its high-water mark: ``Protocol.pause_writing``'s default. In a
proxy the queue is filled by the *other* connection: a client that reads slowly makes the client
side's send queue grow with what upstream sends. Pausing the client would not slow upstream at
all, and the queue would grow without bound. So ``ProxySide.pause_writing`` pauses the *peer's*
reading and ``resume_writing`` resumes it. The stall then travels back hop by hop, with no extra
code: we stop reading upstream, the kernel's receive buffer fills, TCP's window closes, upstream's
``send()`` fails with EAGAIN, and upstream's own back-pressure stops it reading its producer. The
proxy holds about one high-water mark per direction, whatever the two peers' speeds.

Half-close. TCP's two directions end separately. A client may send a request, then
``shutdown(SHUT_WR)`` (FIN), and read the whole answer: upstream sees EOF and only then finishes.
A proxy that closed both connections at the client's FIN would cut the answer off; one that
ignored the FIN would leave upstream waiting forever for the end of the request. So a FIN read
on one side becomes ``write_eof()`` on the other (our FIN, after everything queued), and
``eof_received`` returns true to keep the first connection half-open for the way back. Each
connection then closes itself once both its directions are done: ``write_eof()`` on a
half-closed connection closes it, and so does a FIN on one whose writing is shut.

Resets. An RST is not an orderly end: bytes in flight may have been lost. When one side's
``connection_lost`` reports an exception (ECONNRESET, a failed send), the other side is aborted,
so its peer sees a reset too, not a clean EOF that would pass a truncated stream off as complete.

TLS termination (``--tls-cert``/``--tls-key``, what stunnel and hitch do): clients speak TLS to
the proxy, which speaks plain TCP to ``--to``. Nothing above changes, because the client side is
still a ``Connection`` that hands ``ProxySide`` plaintext: its send queue counts the ciphertext
too, so the same watermarks hold the same bound; the client's close_notify is its EOF and becomes
upstream's FIN; upstream's FIN becomes our close_notify and FIN (``write_eof``); a reset or a
broken record on either side aborts the other. Two differences. Upstream is dialled only once the
handshake is done, so a client that fails it costs no upstream connection. And TLS 1.2 has no
half-close (``can_write_eof()`` is false): there, upstream's FIN ends the whole tunnel once what
is in flight is written.

Chaos, for tests and demos of the programs behind the proxy:

* ``--chaos-split MAX_BYTES``: each chunk forwarded is cut into pieces of 1 to MAX_BYTES bytes,
  each its own ``write()``, and so, while nothing is queued, its own ``send()`` and (with
  TCP_NODELAY) its own segment: what the receiver's ``recv()`` returns can end anywhere, even
  inside a UTF-8 character.
* ``--chaos-delay MAX_SECONDS``: each piece is written 0 to MAX_SECONDS after the one before.
* ``--chaos-reset FRACTION``: that fraction of tunnels is aborted on both sides once more than a
  random number of bytes (up to ``CHAOS_RESET_MAX_BYTES``) has passed through, or, if it ends
  before that, at its first FIN: ``--chaos-reset 1`` resets every connection.
* ``--seed N``: the one ``random.Random`` of the proxy. Each tunnel draws its fate and the seeds
  of its two directions when it is accepted, so one seed and one sequence of connections give
  the same resets every run. Piece sizes also depend on how the kernel chunked what we read,
  which no seed controls; the order of bytes never changes (see ``ChaosWriter``).

``--to`` may be a name, but a name is resolved on every connect, and ``getaddrinfo`` blocks this
single-threaded loop while it runs (``reactor/address.py``): give an address where you can.

Read next: ``reactor/connector.py``, which opens the upstream connections.
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports: a signal may come during them
    from examples import early_signals
    early_signals.catch()

import logging
import random
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from examples import early_signals
from examples.args import (
    EXIT_OK,
    Parser,
    add_logging_arguments,
    cannot_listen,
    host_and_port,
    positive_count,
    positive_seconds,
    usage_error,
)
from examples.chaos import CHAOS_RESET_MAX_BYTES, ChaosSettings, ChaosWriter, fraction
from examples.logsetup import TraceFileError, close_reactor, make_reactor
from examples.serving import Closable, GracefulShutdown, announcement
from examples.tlsargs import (
    TLSSetupError, add_server_tls_arguments, check_server_tls_arguments, server_context,
)
from reactor.address import format_address
from reactor.buffer import ByteBuffer
from reactor.errors import describe
from reactor.protocol import Protocol

if TYPE_CHECKING:
    from reactor.connection import Connection
    from reactor.connector import Connector
    from reactor.loop import Reactor

log = logging.getLogger("examples.tcp_proxy")

#: How long upstream may take to accept a connection before its client is closed.
UPSTREAM_CONNECT_TIMEOUT_SECONDS = 10.0


class TcpProxy:
    """The proxy: the upstream address, the chaos settings and their seeded generator, and the
    set of open tunnels. Does not own the listener (``main`` does) nor any connection (each
    ``Tunnel`` holds its two)."""

    def __init__(self, reactor: Reactor, upstream: tuple[str, int], chaos: ChaosSettings,
                 seed: int) -> None:
        self.reactor = reactor
        self.upstream = upstream
        self.chaos = chaos
        self._random = random.Random(seed)
        self.tunnels: set[Tunnel] = set()
        #: Called when the last tunnel is gone (the shutdown waits for it).
        self.when_none_left: Callable[[], object] = lambda: None

    def client_accepted(self) -> ProxySide:
        """The listener's protocol factory: a new tunnel for each client, returning its client side.

        Every tunnel takes the same four draws whatever the settings, so its fate depends only on
        the seed and how many clients came before it.
        """
        draw = self._random
        struck = draw.random() < self.chaos.reset_fraction
        reset_budget = draw.randint(0, CHAOS_RESET_MAX_BYTES)
        tunnel = Tunnel(self, reset_after_bytes=reset_budget if struck else None,
                        client_seed=draw.getrandbits(64), upstream_seed=draw.getrandbits(64))
        return tunnel.client  # joins self.tunnels at its client's connection_made

    def open_tunnels(self) -> list[Closable]:
        """For ``GracefulShutdown``: a tunnel closes and aborts as one."""
        return list(self.tunnels)


class Tunnel:
    """One client and the upstream connection opened for it.

    Owns the two ``ProxySide`` objects, the ``Connector`` while upstream has not answered, and the
    chaos reset budget. Its life::

        client accepted     nothing yet (with TLS: the handshake; a failed one ends it unseen)
        client connected    join TcpProxy.tunnels; client not read yet; connect to upstream
        upstream connected  read the client: bytes flow both ways
        connect failed      close the client (one log line)
        a side reset        abort the other side
        both sides lost     leave TcpProxy.tunnels
    """

    def __init__(self, proxy: TcpProxy, *, reset_after_bytes: int | None, client_seed: int,
                 upstream_seed: int) -> None:
        self.proxy = proxy
        self.client = ProxySide(self, "client", client_seed)
        self.upstream = ProxySide(self, "upstream", upstream_seed)
        self.client.peer = self.upstream
        self.upstream.peer = self.client
        self.name = "new client"
        self._connector: Connector | None = None
        self._open_sides: set[ProxySide] = set()
        self._reset_after_bytes = reset_after_bytes
        self._forwarded_bytes = 0

    def __repr__(self) -> str:
        return f"<Tunnel {self.name} -> {format_address(self.proxy.upstream)}>"

    def side_connected(self, side: ProxySide) -> None:
        self._open_sides.add(side)
        if side is self.upstream:
            self._connector = None
            self.client.start_reading()
            return
        assert side.transport is not None
        self.name = side.transport.peer_name
        # Only now: over TLS the factory ran at accept, and a client whose handshake fails is
        # never connected, nor lost, so it must never be counted.
        self.proxy.tunnels.add(self)
        # Nowhere to forward to yet. Rather than read the client's bytes into memory, leave them
        # in the kernel's receive buffer: TCP's window then holds the client back for us.
        side.stop_reading()
        host, port = self.proxy.upstream
        self._connector = self.proxy.reactor.connect_tcp(
            lambda: self.upstream, host, port, timeout=UPSTREAM_CONNECT_TIMEOUT_SECONDS,
            on_error=self._upstream_failed)

    def _upstream_failed(self, exc: BaseException) -> None:
        self._connector = None
        log.warning("%s: cannot connect to %s: %s; closing the client", self.name,
                    format_address(self.proxy.upstream), describe(exc))
        self.client.close_after_pending()

    def side_lost(self, side: ProxySide, exc: BaseException | None) -> None:
        self._open_sides.discard(side)
        if exc is not None:
            side.peer.abort()
        # A clean end needs nothing from us: a connection closes cleanly only once both its
        # directions are done, and each FIN was passed on, so its peer is done too.
        if not self._open_sides and self._connector is None:
            self.proxy.tunnels.discard(self)
            if not self.proxy.tunnels:
                self.proxy.when_none_left()

    def chaos_reset_due(self, size: int) -> bool:
        """Count ``size`` more bytes forwarded; true once this tunnel's reset budget is spent."""
        if self._reset_after_bytes is None:
            return False
        self._forwarded_bytes += size
        return self._forwarded_bytes > self._reset_after_bytes

    @property
    def chaos_reset_pending(self) -> bool:
        return self._reset_after_bytes is not None

    def chaos_reset(self) -> None:
        log.info("%s: chaos reset after %d bytes", self.name, self._forwarded_bytes)
        self.abort()

    def close(self) -> None:
        """Stop reading both sides; close each once what is in flight towards it is written."""
        self._cancel_connect()
        for side in (self.client, self.upstream):
            side.stop_reading()
            side.close_after_pending()

    def abort(self) -> None:
        """Drop everything in flight and reset both sides (RST)."""
        self._cancel_connect()
        self.client.abort()
        self.upstream.abort()

    def _cancel_connect(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            self._connector = None


class ProxySide(Protocol):
    """One of a tunnel's two connections: forwards what it reads to its peer, and turns its own
    send queue's watermark events into pause and resume of the *peer's* reading.

    Owns its ``ChaosWriter``, if the chaos options reshape writes. Does not own the peer, nor
    when the tunnel starts and ends (``Tunnel``).
    """

    peer: ProxySide

    def __init__(self, tunnel: Tunnel, role: str, writer_seed: int) -> None:
        self.tunnel = tunnel
        self.role = role
        self._writer_seed = writer_seed
        self.writer: ChaosWriter | None = None

    def __repr__(self) -> str:
        return f"<ProxySide {self.role} of {self.tunnel!r}>"

    # -- events from our own connection ---------------------------------------------------------

    def connection_made(self, transport: Connection) -> None:
        super().connection_made(transport)
        chaos = self.tunnel.proxy.chaos
        if chaos.reshapes_writes:
            self.writer = ChaosWriter(self, self.tunnel.proxy.reactor, chaos,
                                      random.Random(self._writer_seed))
        self.tunnel.side_connected(self)

    def data_received(self, buffer: ByteBuffer) -> None:
        data = buffer.take()
        if self.tunnel.chaos_reset_due(len(data)):
            self.tunnel.chaos_reset()
            return
        self.peer.send(data)

    def eof_received(self) -> bool:
        """Our far end sent FIN: pass it on as the peer's FIN, after what is queued for it, and
        stay half-open: the answer may still be coming back through us. A tunnel chosen for a
        chaos reset that ends before its byte budget is reset here instead."""
        if self.tunnel.chaos_reset_pending:
            self.tunnel.chaos_reset()
            return True
        self.peer.send_eof()
        return True

    def pause_writing(self) -> None:
        """Our send queue passed high water: stop reading the peer that fills it.

        Not ``Protocol``'s default, which stops reading *this* connection: here that would only
        stop the client's requests while upstream's answers kept piling up in our queue.
        """
        if self.writer is None:
            self.peer.stop_reading()
        else:
            self.writer.hold()  # its own queue then fills and stops the peer (ChaosWriter)

    def resume_writing(self) -> None:
        if self.writer is None:
            self.peer.start_reading()
        else:
            self.writer.release()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if self.writer is not None:
            self.writer.discard()
        self.tunnel.side_lost(self, exc)

    # -- commands from the peer and the tunnel ---------------------------------------------------

    def send(self, data: bytes) -> None:
        assert self.transport is not None  # the peer is read only while we are connected
        if self.writer is None:
            self.transport.write(data)
        else:
            self.writer.write(data)

    def send_eof(self) -> None:
        assert self.transport is not None
        if self.transport.can_write_eof():
            self._after_pending(self.transport.write_eof)
        else:
            self.tunnel.close()  # TLS 1.2 has no half-close: end both, after what is in flight

    def close_after_pending(self) -> None:
        if self.transport is not None:
            self._after_pending(self.transport.close)

    def _after_pending(self, action: Callable[[], None]) -> None:
        """Run ``action`` (write_eof, close) after the bytes the chaos writer still holds."""
        if self.writer is None:
            action()  # the transport itself sends FIN only after its queue
        else:
            self.writer.then(action)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.discard()
        if self.transport is not None:
            self.transport.abort()

    def stop_peer_reading(self) -> None:
        self.peer.stop_reading()

    def start_peer_reading(self) -> None:
        self.peer.start_reading()

    def stop_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def start_reading(self) -> None:
        # None once this side is gone: the peer may still drain its queue and resume us.
        if self.transport is not None:
            self.transport.resume_reading()


# -- command line ----------------------------------------------------------------------------------


def proxy_parser() -> Parser:
    parser = Parser(__doc__.splitlines()[0], __spec__.name)
    parser.add_argument("--listen", type=host_and_port, required=True, metavar="HOST:PORT",
                        help="where to accept clients; port 0 picks any free port "
                             "(IPv6 in brackets: [::1]:0)")
    parser.add_argument("--to", type=host_and_port, required=True, metavar="HOST:PORT",
                        help="the upstream server every client is forwarded to")
    add_logging_arguments(parser)
    add_server_tls_arguments(parser)
    chaos = parser.add_argument_group("chaos, for tests and demos")
    chaos.add_argument("--chaos-split", type=positive_count, metavar="MAX_BYTES",
                       help="cut every chunk forwarded into pieces of 1 to MAX_BYTES bytes")
    chaos.add_argument("--chaos-delay", type=positive_seconds, metavar="MAX_SECONDS",
                       help="write each piece 0 to MAX_SECONDS after the previous one")
    chaos.add_argument("--chaos-reset", type=fraction, default=0.0, metavar="FRACTION",
                       help="reset this fraction of connections (1: every one), after a "
                            f"random number of forwarded bytes (at most {CHAOS_RESET_MAX_BYTES}) "
                            "or at the connection's first FIN if that comes sooner")
    chaos.add_argument("--seed", type=int,
                       help="seed of the chaos, so a run repeats (default: a random one, logged)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Listen, announce, forward until SIGINT/SIGTERM. Like ``examples.serving.run_server``, which
    cannot serve here: it makes its reactor itself, and the proxy needs one to connect upstream."""
    parser = proxy_parser()
    args = parser.parse_args(argv)
    if args.to[1] == 0:
        parser.error("--to needs the upstream's port; 0 is not one")
    check_server_tls_arguments(parser, args)
    if early_signals.stop_requested():
        return EXIT_OK
    try:
        tls = server_context(args)
    except TLSSetupError as exc:
        return usage_error("tcp_proxy", str(exc))
    try:
        reactor = make_reactor(args)
    except TraceFileError as exc:
        return usage_error("tcp_proxy", str(exc))
    chaos = ChaosSettings(args.chaos_split, args.chaos_delay, args.chaos_reset)
    seed = args.seed
    if seed is None:
        seed = random.randrange(2**32)
        if chaos.enabled:
            log.warning("chaos seed %d (pass --seed %d to repeat this run)", seed, seed)
    proxy = TcpProxy(reactor, args.to, chaos, seed)
    host, port = args.listen
    try:
        listener = reactor.listen_tcp(proxy.client_accepted, host, port, ssl=tls,
                                      handshake_timeout=args.tls_handshake_timeout)
    except OSError as exc:
        close_reactor(reactor)
        return cannot_listen("tcp_proxy", format_address(args.listen), exc)
    shutdown = GracefulShutdown(reactor, listener.close, proxy.open_tunnels)
    proxy.when_none_left = shutdown.connection_closed
    # Handlers before the announcement: a supervisor may signal the moment it reads it.
    if shutdown.install():
        print(announcement(listener.name, tls), flush=True)
    try:
        reactor.run()
    finally:
        close_reactor(reactor)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

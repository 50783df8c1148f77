"""Serving until a signal: listen, announce, run, and shut down gracefully.

Owns the life of a server process: ``run_server`` listens (TCP, Unix or UDP), prints the
``listening on`` line, runs the reactor until SIGINT/SIGTERM, and then ``GracefulShutdown``
stops listening, closes every connection (each flushes its queue) and ends the loop when the last
one reports ``connection_lost``, or aborts what is left after ``--shutdown-grace`` seconds.
A second signal aborts at once. Signals that came before the reactor's handlers were in place
(``examples/early_signals.py``) are replayed: a server signalled while starting exits 0
without announcing itself. ``--workers N`` is ``examples/workers.py``. With ``--tls-cert`` and
``--tls-key`` (``examples/tlsargs.py``) the port serves TLS only, and the line says so:
``listening on 127.0.0.1:5000 (TLS)``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import ssl
from collections.abc import Callable
from typing import Any, Protocol

from examples import early_signals
from examples.args import EXIT_OK, SHUTDOWN_GRACE_SECONDS, cannot_listen, usage_error
from examples.logsetup import TraceFileError, close_reactor, make_reactor
from examples.tlsargs import TLSSetupError, server_context
from reactor import Reactor
from reactor.address import format_address

log = logging.getLogger("examples")


def run_server(protocol_factory: Callable[[], Any], args: argparse.Namespace, program: str,
               *, udp: bool = False, reject_message: bytes | None = None,
               on_start: Callable[[Reactor], object] | None = None,
               on_shutdown: Callable[[], object] | None = None) -> int:
    """Listen, announce, serve until SIGINT/SIGTERM, shut down gracefully.

    ``reject_message`` is what a client over ``--max-connections`` reads before the close;
    ``on_start(reactor)`` runs before listening (the chat server hands its room the reactor's
    figures there); ``on_shutdown()`` runs when the shutdown begins, before connections close
    (the chat server says goodbye). Returns the exit status: 0 after a signal, 2 if the address
    cannot be bound, the trace file cannot be written or the TLS certificate and key cannot be
    loaded (loaded once, before any worker is forked, so a bad file is one line).
    """
    try:
        tls = None if udp else server_context(args)
    except TLSSetupError as exc:
        return usage_error(program, str(exc))

    def serve_one(port: int, reuse_port: bool, on_listening: Callable[[], object] | None) -> int:
        return serve(protocol_factory, args, program, udp=udp, reject_message=reject_message,
                     on_start=on_start, on_shutdown=on_shutdown, port=port,
                     reuse_port=reuse_port, on_listening=on_listening, tls=tls)

    if getattr(args, "workers", 1) > 1:
        from examples.workers import run_workers  # only servers with --workers need it

        return run_workers(args, program, lambda port, on_listening: serve_one(
            port, True, on_listening), announce=lambda name: announcement(name, tls))
    return serve_one(args.port, False, None)


def serve(protocol_factory: Callable[[], Any], args: argparse.Namespace, program: str, *,
          udp: bool, reject_message: bytes | None,
          on_start: Callable[[Reactor], object] | None,
          on_shutdown: Callable[[], object] | None, port: int, reuse_port: bool,
          on_listening: Callable[[], object] | None, tls: ssl.SSLContext | None = None) -> int:
    """One process's server: the whole of ``run_server`` without workers, one worker with.

    Once listening it prints the ``listening on`` line, or, as a worker, calls ``on_listening``
    and leaves the announcing to the parent."""
    if early_signals.stop_requested():
        return EXIT_OK
    try:
        reactor = make_reactor(args)
    except TraceFileError as exc:
        return usage_error(program, str(exc))
    if on_start is not None:
        on_start(reactor)
    host = args.host
    unix_path = getattr(args, "unix", None)
    where = f"unix:{unix_path}" if unix_path else format_address((host, port))
    try:
        if udp:
            # One socket, one protocol: its connection_lost tells the shutdown it is closed.
            lost = UdpLost()
            transport = reactor.listen_udp(lost.watching(protocol_factory), host, port,
                                           reuse_port=reuse_port)
            stop_listening: Callable[[], object] = lambda: None
            open_transports: Callable[[], list[Closable]] = lambda: (
                [] if lost.seen else [transport])
            name = format_address(transport.local_address)
        else:
            limits: dict[str, Any] = {"max_connections": args.max_connections,
                                      "reject_message": reject_message,
                                      "idle_timeout": args.idle_timeout}
            if tls is not None:
                limits.update(ssl=tls, handshake_timeout=args.tls_handshake_timeout)
            if unix_path:
                listener = reactor.listen_unix(protocol_factory, unix_path, **limits)
            else:
                listener = reactor.listen_tcp(protocol_factory, host, port,
                                              reuse_port=reuse_port, **limits)
            stop_listening = listener.close
            # The rejected close themselves after their one line; the shutdown waits for
            # the connections the listener counts.
            open_transports = lambda: [*listener.connections, *listener.rejected]
            name = f"unix:{listener.name}" if unix_path else listener.name
    except OSError as exc:
        close_reactor(reactor)
        return cannot_listen(program, where + (" (UDP)" if udp else ""), exc)
    shutdown = GracefulShutdown(reactor, stop_listening, open_transports,
                                args.shutdown_grace, on_shutdown=on_shutdown)
    if udp:
        lost.then = shutdown.connection_closed
    else:
        listener.when_empty = shutdown.connection_closed
    # Handlers before the announcement: a supervisor may signal the moment it reads it.
    if shutdown.install():
        if on_listening is None:
            print(announcement(name, tls), flush=True)
        else:
            on_listening()
    try:
        reactor.run()
    finally:
        close_reactor(reactor)
    return EXIT_OK


def announcement(name: str, tls: ssl.SSLContext | None) -> str:
    """The first stdout line: ``listening on HOST:PORT``, then `` (TLS)`` for a TLS port."""
    return f"listening on {name}{' (TLS)' if tls is not None else ''}"


def with_line_limit(factory: Callable[[], Any], max_line_bytes: int) -> Callable[[], Any]:
    """``factory``'s line protocols, each with ``max_line_length`` set (``--max-line-bytes``)."""
    def make() -> Any:
        protocol = factory()
        protocol.max_line_length = max_line_bytes
        return protocol

    return make


class Closable(Protocol):
    def close(self) -> None: ...
    def abort(self) -> None: ...


class UdpLost:
    """Whether a UDP server's one protocol has had ``connection_lost``, and ``then()`` when it
    has: how the shutdown learns that its socket is closed, from the transport itself.

    Stream servers need no such wrapper: their listener counts its connections, from accept to
    the end of ``connection_lost``, and calls ``Listener.when_empty`` when the last is gone
    (wrapping each connection's protocol instead cost 577 bytes per idle connection)."""

    def __init__(self) -> None:
        self.seen = False
        self.then: Callable[[], object] = lambda: None

    def watching(self, factory: Callable[[], Any]) -> Callable[[], Any]:
        def make() -> Any:
            protocol = factory()
            lost = protocol.connection_lost

            def connection_lost(exc: BaseException | None) -> None:
                try:
                    lost(exc)
                finally:
                    self.seen = True
                    self.then()

            protocol.connection_lost = connection_lost
            return protocol

        return make


class GracefulShutdown:
    """First signal: stop listening, close every transport (each flushes its queue), stop when
    the last one is lost or after the grace period (``--shutdown-grace``). Second signal: abort
    everything now."""

    def __init__(self, reactor: Reactor, stop_listening: Callable[[], object],
                 open_transports: Callable[[], list[Closable]],
                 grace_seconds: float = SHUTDOWN_GRACE_SECONDS, *,
                 on_shutdown: Callable[[], object] | None = None) -> None:
        self._reactor = reactor
        self._stop_listening = stop_listening
        self._open_transports = open_transports
        self._grace_seconds = grace_seconds
        self._on_shutdown = on_shutdown
        self._started = False

    def install(self) -> bool:
        """Take SIGINT/SIGTERM over; replay those that came during start-up. False if one did:
        the server is stopping before it was ever announced."""
        for stop_signal in early_signals.STOP_SIGNALS:
            self._reactor.add_signal_handler(stop_signal, self._on_signal, stop_signal)
        early = early_signals.handed_over()
        for signum in early:
            self._reactor.call_soon(self._on_signal, signum)
        return not early

    def connection_closed(self) -> None:
        """The last open connection reported ``connection_lost``: nothing is left to flush."""
        if self._started:
            self._reactor.stop()

    def _on_signal(self, signum: int) -> None:
        if self._started:
            self._abort_all()
            return
        self._started = True
        transports = self._open_transports()
        log.warning("%s: shutting down; closing %d connection%s (a second signal aborts them)",
                    signal.Signals(signum).name, len(transports),
                    "" if len(transports) == 1 else "s")
        self._stop_listening()
        if self._on_shutdown is not None:
            self._on_shutdown()
        for transport in transports:
            transport.close()
        self._reactor.call_later(self._grace_seconds, self._abort_all)
        if not transports:
            self._reactor.stop()

    def _abort_all(self) -> None:
        for transport in self._open_transports():
            transport.abort()
        # connection_lost runs on the next pass; stop after it.
        self._reactor.call_soon(self._reactor.stop)

"""The command-line conventions every example shares.

Servers: ``--host`` (default 127.0.0.1), ``--port`` (0: any free port), ``--log-level``,
``--trace``; the first stdout line is ``listening on HOST:PORT``, flushed; a bind failure is one
stderr line and exit status 2; SIGINT/SIGTERM close the listener, flush every connection for up
to ``SHUTDOWN_GRACE_SECONDS``, abort what is left, and exit 0 (a second signal aborts at once).

Clients: ``--host``/``--port``; a failed connect is one stderr line and exit status 1; stdin is
read through the reactor (``StdinReader``), so one thread serves the terminal and the socket.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from reactor import Listener, LoggingTracer, Reactor
from reactor.address import format_address, strip_brackets
from reactor.errors import describe

#: How long shutdown waits for queued output to reach slow clients before aborting them.
SHUTDOWN_GRACE_SECONDS = 2.0
#: Bytes read from stdin per readiness event.
STDIN_READ_BYTES = 64 * 1024

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to use: an IPv4/IPv6 literal ([::1] accepted) or a name "
                             "(default: %(default)s)")
    parser.add_argument("--log-level", default="warning",
                        choices=["debug", "info", "warning", "error"],
                        help="logging threshold on stderr (default: %(default)s)")
    parser.add_argument("--trace", action="store_true",
                        help="log every reactor event (accepts, reads, writes, EOF, closes, "
                             "buffer sizes) to stderr")
    return parser


def server_parser(description: str) -> argparse.ArgumentParser:
    parser = base_parser(description)
    parser.add_argument("--port", type=int, default=0,
                        help="TCP port; 0 picks any free port (default: %(default)s)")
    return parser


def client_parser(description: str) -> argparse.ArgumentParser:
    parser = base_parser(description)
    parser.add_argument("--port", type=int, required=True, help="the server's TCP port")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the connection (default: %(default)s)")
    return parser


def make_reactor(args: argparse.Namespace) -> Reactor:
    """Logging to stderr as the flags say, and a reactor with a tracer under ``--trace``."""
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tracer = None
    if args.trace:
        logging.getLogger("reactor.trace").setLevel(logging.INFO)
        tracer = LoggingTracer()
    return Reactor(tracer=tracer)


def run_server(protocol_factory: Callable[[], Any], args: argparse.Namespace,
               program: str) -> int:
    """Listen, announce, serve until SIGINT/SIGTERM, shut down gracefully. Returns the exit code."""
    reactor = make_reactor(args)
    host = strip_brackets(args.host)
    try:
        listener = reactor.listen_tcp(protocol_factory, host, args.port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"{program}: cannot listen on {format_address((host, args.port))}: {reason}",
              file=sys.stderr)
        reactor.close()
        return EXIT_USAGE
    print(f"listening on {listener.name}", flush=True)
    GracefulShutdown(reactor, listener).install()
    try:
        reactor.run()
    finally:
        reactor.close()
    return EXIT_OK


class GracefulShutdown:
    """First signal: stop accepting, close every connection (flushing), stop when all are gone
    or the grace period ends. Second signal: abort everything now."""

    def __init__(self, reactor: Reactor, listener: Listener) -> None:
        self._reactor = reactor
        self._listener = listener
        self._started = False

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._reactor.add_signal_handler(signum, self._on_signal)

    def _on_signal(self) -> None:
        if self._started:
            self._abort_all()
            return
        self._started = True
        logging.getLogger("examples").info("shutting down: closing %d connections",
                                          len(self._listener.connections))
        self._listener.close()
        for connection in list(self._listener.connections):
            connection.close()
        self._reactor.call_later(SHUTDOWN_GRACE_SECONDS, self._abort_all)
        self._stop_when_idle()

    def _stop_when_idle(self) -> None:
        if self._listener.connections:
            self._reactor.call_later(0.05, self._stop_when_idle)
        else:
            self._reactor.stop()

    def _abort_all(self) -> None:
        for connection in list(self._listener.connections):
            connection.abort()
        # connection_lost runs on the next pass; stop after it.
        self._reactor.call_soon(self._reactor.stop)


class StdinReader:
    """Feeds stdin to ``on_data(bytes)`` through the reactor; ``on_data(b"")`` means EOF.

    A terminal or a pipe is registered with the selector like a socket. A regular file
    (``< input.txt``) is always "ready", and epoll refuses to watch it (EPERM), so it is read
    in chunks from ordinary callbacks instead. stdin is never made non-blocking: the flag
    belongs to the open file, which the shell and other programs share.
    """

    def __init__(self, reactor: Reactor, on_data: Callable[[bytes], Any],
                 fd: int | None = None) -> None:
        self._reactor = reactor
        self._on_data = on_data
        self._fd = sys.stdin.fileno() if fd is None else fd
        self._registered = False
        self._paused = False
        self._eof = False

    def start(self) -> None:
        self.resume()

    def pause(self) -> None:
        """Stop reading (the socket's send queue is full): back-pressure reaches the producer."""
        self._paused = True
        if self._registered:
            self._reactor.remove_reader(self._fd)
            self._registered = False

    def resume(self) -> None:
        self._paused = False
        if self._eof or self._registered:
            return
        try:
            self._reactor.add_reader(self._fd, self._read)
            self._registered = True
        except PermissionError:
            self._reactor.call_soon(self._read_file_chunk)

    def _read_file_chunk(self) -> None:
        if not self._paused and not self._eof:
            self._read()
            if not self._eof:
                self._reactor.call_soon(self._read_file_chunk)

    def _read(self) -> None:
        try:
            data = os.read(self._fd, STDIN_READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._eof = True
            self.pause()
        self._on_data(data)


class ClientRun:
    """A client program's outcome: callbacks call ``finish(code)``, which stops the loop."""

    def __init__(self, reactor: Reactor, program: str) -> None:
        self.reactor = reactor
        self.program = program
        self.exit_code = EXIT_OK

    def finish(self, exit_code: int = EXIT_OK, message: str | None = None) -> None:
        if message:
            print(f"{self.program}: {message}", file=sys.stderr, flush=True)
        self.exit_code = exit_code
        self.reactor.stop()

    def connect_failed(self, host: str, port: int) -> Callable[[BaseException], None]:
        """An ``on_error`` for ``connect_tcp``: one line on stderr, exit status 1."""

        def on_error(exc: BaseException) -> None:
            if isinstance(exc, ConnectionRefusedError):
                reason = "connection refused (is the server running?)"
            elif isinstance(exc, OSError) and exc.strerror:
                reason = exc.strerror
            else:
                reason = describe(exc)
            self.finish(EXIT_FAILURE, f"cannot connect to {format_address((host, port))}: "
                                      f"{reason}")

        return on_error

    def run(self) -> int:
        """Run until ``finish()`` or SIGINT/SIGTERM; returns the exit status."""
        self.reactor.stop_on_signals()
        try:
            self.reactor.run()
        finally:
            self.reactor.close()
        return self.exit_code

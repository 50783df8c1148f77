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
from typing import Any, Protocol

from protocols.line import LineProtocol
from reactor import Connection, Reactor
from reactor.trace import JsonTracer, PassTracer, TeeTracer, Tracer
from reactor.address import format_address, strip_brackets
from reactor.datagram import DatagramState
from reactor.errors import describe

#: How long shutdown waits for queued output to reach slow clients before aborting them.
SHUTDOWN_GRACE_SECONDS = 2.0
#: Bytes read from stdin per readiness event.
STDIN_READ_BYTES = 64 * 1024

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def port_number(text: str) -> int:
    """An argparse type: 0 to 65535. (getaddrinfo would quietly take a larger port modulo
    65536, and a server asked for port 70000 would listen on 4464.)"""
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0 to 65535, not {port}")
    return port


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags ``make_reactor`` reads (``--log-level``, ``--trace``, ``--trace-json``), for a
    program whose address flags are not ``base_parser``'s ``--host``/``--port``."""
    parser.add_argument("--log-level", default="warning",
                        choices=["debug", "info", "warning", "error"],
                        help="logging threshold on stderr (default: %(default)s)")
    parser.add_argument("--trace", action="store_true",
                        help="log every loop pass to stderr: why it woke, each accept, recv, "
                             "send, shutdown and close, each protocol callback, buffer sizes")
    parser.add_argument("--trace-json", metavar="FILE",
                        help="write the same events to FILE as JSON lines, for tools")


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to use: an IPv4/IPv6 literal ([::1] accepted; :: is "
                             "every IPv6 and IPv4 address) or a name (default: %(default)s)")
    add_logging_arguments(parser)
    return parser


def positive_seconds(text: str) -> float:
    seconds = float(text)
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return seconds


def positive_count(text: str) -> int:
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {count}")
    return count


def server_parser(description: str, *, udp: bool = False, idle_timeout: float | None = None,
                  workers: bool = False) -> argparse.ArgumentParser:
    """The server flags; ``idle_timeout`` is this server's default (``None``: off);
    ``workers``: the server can run as several processes (its state is per connection)."""
    parser = base_parser(description)
    parser.add_argument("--port", type=port_number, default=0,
                        help=f"{'UDP' if udp else 'TCP'} port; 0 picks any free port "
                             "(default: %(default)s)")
    parser.add_argument("--shutdown-grace", type=positive_seconds,
                        default=SHUTDOWN_GRACE_SECONDS, metavar="SECONDS",
                        help="on SIGINT/SIGTERM, how long queued output may take to drain "
                             "before connections are aborted (default: %(default)s)")
    if not udp:
        parser.add_argument("--unix", metavar="PATH",
                            help="listen on a Unix domain socket at PATH instead")
        parser.add_argument("--idle-timeout", type=positive_seconds, default=idle_timeout,
                            metavar="SECONDS",
                            help="close connections idle this long (default: "
                                 f"{'off' if idle_timeout is None else idle_timeout})")
        parser.add_argument("--max-connections", type=positive_count, metavar="N",
                            help="accept at most N connections at once; more are told so "
                                 "and closed (default: no limit; per worker with --workers)")
    if workers:
        parser.add_argument("--workers", type=positive_count, default=1, metavar="N",
                            help="run N processes, each with its own reactor, sharing the "
                                 "port with SO_REUSEPORT (default: %(default)s)")
    return parser


def client_parser(description: str, *, udp: bool = False,
                  timeout: float = 10.0) -> argparse.ArgumentParser:
    parser = base_parser(description)
    parser.add_argument("--port", type=port_number, required=udp,
                        help=f"the server's {'UDP' if udp else 'TCP'} port")
    if not udp:
        parser.add_argument("--unix", metavar="PATH",
                            help="connect to a Unix domain socket at PATH instead")
    parser.add_argument("--timeout", type=float, default=timeout,
                        help=f"seconds to wait for {'each reply' if udp else 'the connection'} "
                             "(default: %(default)s)")
    return parser


def make_reactor(args: argparse.Namespace) -> Reactor:
    """Logging to stderr as the flags say, and a reactor traced as ``--trace`` and
    ``--trace-json`` say. Call ``finish_tracing`` when the loop is done."""
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tracers: list[Tracer] = []
    if args.trace:
        logging.getLogger("reactor.trace").setLevel(logging.INFO)
        tracers.append(PassTracer())
    if args.trace_json:
        tracers.append(JsonTracer(open(args.trace_json, "w", encoding="utf-8")))
    tracer = tracers[0] if len(tracers) == 1 else TeeTracer(*tracers) if tracers else None
    return Reactor(tracer=tracer)


def close_reactor(reactor: Reactor) -> None:
    """Print the last pass's trace block and release the reactor."""
    tracers = getattr(reactor.tracer, "tracers", (reactor.tracer,))
    for tracer in tracers:
        if isinstance(tracer, PassTracer):
            tracer.flush()
    reactor.close()


def run_server(protocol_factory: Callable[[], Any], args: argparse.Namespace, program: str,
               *, udp: bool = False, reject_message: bytes | None = None,
               on_start: Callable[[Reactor], object] | None = None) -> int:
    """Listen (TCP, Unix or UDP), announce, serve until SIGINT/SIGTERM, shut down gracefully.

    ``reject_message`` is what a client over ``--max-connections`` reads before the close;
    ``on_start(reactor)`` runs before listening (the chat server hands its room the reactor's
    figures there). Returns the exit status: 0 after a signal, 2 if the address cannot be bound.
    """
    if getattr(args, "workers", 1) > 1:
        from examples.workers import run_workers

        return run_workers(args, program, lambda port, on_listening: serve(
            protocol_factory, args, program, udp=udp, reject_message=reject_message,
            on_start=on_start, port=port, reuse_port=True, on_listening=on_listening))
    return serve(protocol_factory, args, program, udp=udp, reject_message=reject_message,
                 on_start=on_start, port=args.port, reuse_port=False, on_listening=None)


def cannot_listen(program: str, where: str, exc: OSError) -> int:
    """The bind-failure convention: one stderr line naming the address and the reason, 2."""
    print(f"{program}: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
    return EXIT_USAGE


def serve(protocol_factory: Callable[[], Any], args: argparse.Namespace, program: str, *,
          udp: bool, reject_message: bytes | None,
          on_start: Callable[[Reactor], object] | None, port: int, reuse_port: bool,
          on_listening: Callable[[], object] | None) -> int:
    """One process's server: the whole of ``run_server`` without workers, one worker with.

    Once listening it prints the ``listening on`` line, or, as a worker, calls ``on_listening``
    and leaves the announcing to the parent."""
    reactor = make_reactor(args)
    if on_start is not None:
        on_start(reactor)
    host = strip_brackets(args.host)
    unix_path = getattr(args, "unix", None)
    where = f"unix:{unix_path}" if unix_path else format_address((host, port))
    try:
        if udp:
            transport = reactor.listen_udp(protocol_factory, host, port, reuse_port=reuse_port)
            shutdown = GracefulShutdown(reactor, lambda: None, lambda: (
                [] if transport.state is DatagramState.CLOSED else [transport]),
                args.shutdown_grace)
            name = format_address(transport.local_address)
        else:
            limits: dict[str, Any] = {"max_connections": args.max_connections,
                                      "reject_message": reject_message,
                                      "idle_timeout": args.idle_timeout}
            if unix_path:
                listener = reactor.listen_unix(protocol_factory, unix_path, **limits)
            else:
                listener = reactor.listen_tcp(protocol_factory, host, port,
                                              reuse_port=reuse_port, **limits)
            shutdown = GracefulShutdown(reactor, listener.close,
                                        lambda: [*listener.connections, *listener.rejected],
                                        args.shutdown_grace)
            name = f"unix:{listener.name}" if unix_path else listener.name
    except OSError as exc:
        close_reactor(reactor)
        return cannot_listen(program, where + (" (UDP)" if udp else ""), exc)
    # Handlers before the announcement: a supervisor may signal the moment it reads it.
    shutdown.install()
    if on_listening is None:
        print(f"listening on {name}", flush=True)
    else:
        on_listening()
    try:
        reactor.run()
    finally:
        close_reactor(reactor)
    return EXIT_OK


class Closable(Protocol):
    def close(self) -> None: ...
    def abort(self) -> None: ...


class GracefulShutdown:
    """First signal: stop listening, close every transport (each flushes its queue), stop when
    all are gone or after the grace period (``--shutdown-grace``). Second signal: abort
    everything now."""

    def __init__(self, reactor: Reactor, stop_listening: Callable[[], object],
                 open_transports: Callable[[], list[Closable]],
                 grace_seconds: float = SHUTDOWN_GRACE_SECONDS) -> None:
        self._reactor = reactor
        self._stop_listening = stop_listening
        self._open_transports = open_transports
        self._grace_seconds = grace_seconds
        self._started = False

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._reactor.add_signal_handler(signum, self._on_signal)

    def _on_signal(self) -> None:
        if self._started:
            self._abort_all()
            return
        self._started = True
        transports = self._open_transports()
        logging.getLogger("examples").info("shutting down: closing %d connections",
                                          len(transports))
        self._stop_listening()
        for transport in transports:
            transport.close()
        self._reactor.call_later(self._grace_seconds, self._abort_all)
        self._stop_when_idle()

    def _stop_when_idle(self) -> None:
        if self._open_transports():
            self._reactor.call_later(0.05, self._stop_when_idle)
        else:
            self._reactor.stop()

    def _abort_all(self) -> None:
        for transport in self._open_transports():
            transport.abort()
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

    def connect(self, protocol_factory: Callable[[], Any], args: argparse.Namespace) -> None:
        """Connect as the client flags say: ``--unix PATH``, or ``--host`` and ``--port``."""
        if args.unix:
            self.reactor.connect_unix(protocol_factory, args.unix, timeout=args.timeout,
                                      on_error=self.connect_failed(f"unix:{args.unix}"))
            return
        if args.port is None:
            self.finish(EXIT_USAGE, "give --port (with --host) or --unix PATH")
            return
        host = strip_brackets(args.host)
        self.reactor.connect_tcp(protocol_factory, host, args.port, timeout=args.timeout,
                                 on_error=self.connect_failed(format_address((host, args.port))))

    def connect_failed(self, target: str) -> Callable[[BaseException], None]:
        """An ``on_error`` for ``connect_tcp``: one line on stderr, exit status 1."""

        def on_error(exc: BaseException) -> None:
            if isinstance(exc, ConnectionRefusedError):
                reason = "connection refused (is the server running?)"
            elif isinstance(exc, OSError) and exc.strerror:
                reason = exc.strerror
            else:
                reason = describe(exc)
            self.finish(EXIT_FAILURE, f"cannot connect to {target}: {reason}")

        return on_error

    def run(self) -> int:
        """Run until ``finish()`` or SIGINT/SIGTERM; returns the exit status."""
        self.reactor.stop_on_signals()
        try:
            self.reactor.run()
        finally:
            close_reactor(self.reactor)
        return self.exit_code


class TerminalClient(LineProtocol):
    """A line client with stdin on the same reactor: prints each line that arrives, forwards
    what stdin gives (``stdin_received``), and pauses stdin, never the socket, while the send
    queue is over its high-water mark: stopping to read the server while it waits for us to
    read would leave both sides waiting with full buffers."""

    def __init__(self, run: ClientRun) -> None:
        self.run = run
        self.stdin = StdinReader(run.reactor, self.stdin_received)

    def connection_made(self, transport: Connection) -> None:
        super().connection_made(transport)
        self.stdin.start()

    def stdin_received(self, data: bytes) -> None:
        """``data`` from stdin; ``b""`` at its EOF. Override to send it."""

    def line_received(self, line: bytes) -> None:
        sys.stdout.write(line.decode("utf-8", "replace") + "\n")
        sys.stdout.flush()

    def pause_writing(self) -> None:
        self.stdin.pause()

    def resume_writing(self) -> None:
        self.stdin.resume()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.stdin.pause()


def host_and_port(text: str) -> tuple[str, int]:
    """An argparse type for ``HOST:PORT``: ``127.0.0.1:8080``, ``localhost:8080``, ``[::1]:8080``.

    The port follows the *last* colon, and an IPv6 literal must be in brackets, as in URLs
    (RFC 3986): in ``::1:8080`` nobody can tell where the address ends.
    """
    host, colon, port = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    if not colon or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {text!r}")
    if ":" in host and not bracketed:
        raise argparse.ArgumentTypeError(f"put an IPv6 address in brackets: [{host}]:{port}")
    return host, port_number(port)

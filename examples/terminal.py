"""What the example clients share: stdin on the reactor, the run's outcome, a line client.

Owns the client side of the conventions: a failed connect is one stderr line and exit status 1,
and so is a TLS handshake that fails (``certificate verify failed: certificate has expired``);
stdin is read through the reactor (``StdinReader``), so one thread serves the terminal and the
socket; a closed stdout (``| head -2``) ends the client quietly with the status a shell gives a
program killed by SIGPIPE, 141 (128 + 13), as Unix tools do, with no traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import sys
from collections.abc import Callable
from typing import Any

from examples import early_signals
from examples.args import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, usage_error
from examples.logsetup import TraceFileError, close_reactor, make_reactor
from examples.tlsargs import TLSSetupError, client_tls_options
from protocols.line import LineProtocol
from reactor import Connection, Reactor
from reactor.address import format_address
from reactor.errors import describe
from reactor.tls import describe_tls_error

#: Bytes read from stdin per readiness event.
STDIN_READ_BYTES = 64 * 1024
#: The exit status of a program whose stdout reader went away: a shell's 128 + SIGPIPE.
EXIT_STDOUT_CLOSED = 128 + signal.SIGPIPE


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
        self.stdout_closed = False

    def finish(self, exit_code: int = EXIT_OK, message: str | None = None) -> None:
        """End the run with ``exit_code``; ``message`` is one stderr line. After stdout was
        closed the outcome is already decided (``EXIT_STDOUT_CLOSED``) and nothing is said."""
        if self.stdout_closed:
            return
        if message:
            self.report(message)
        self.exit_code = exit_code
        self.reactor.stop()

    def report(self, message: str) -> None:
        if not self.stdout_closed:
            print(f"{self.program}: {message}", file=sys.stderr, flush=True)

    def print_line(self, text: str) -> None:
        """Write one line to stdout. If its reader is gone (EPIPE: ``| head -2`` has exited),
        end the run quietly, as a program killed by SIGPIPE would: Python ignores SIGPIPE, so
        the write raises ``BrokenPipeError`` instead, and each later write would raise again."""
        if self.stdout_closed:
            return
        try:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            self.exit_code = EXIT_STDOUT_CLOSED
            self.stdout_closed = True
            # What is still buffered can never be written; point stdout at /dev/null so the
            # interpreter's flush at exit does not raise (and print) the same error again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            self.reactor.stop()

    def connect(self, protocol_factory: Callable[[], Any], args: argparse.Namespace,
                tls: dict[str, Any]) -> None:
        """Connect as the client flags say: ``--unix PATH``, or ``--host`` and ``--port``;
        ``tls``: ``client_tls_options(args)``, empty for plain TCP."""
        if args.unix:
            self.reactor.connect_unix(protocol_factory, args.unix, timeout=args.timeout,
                                      on_error=self.connect_failed(f"unix:{args.unix}"), **tls)
            return
        if args.port is None:
            self.finish(EXIT_USAGE, "give --port (with --host) or --unix PATH")
            return
        host = args.host
        self.reactor.connect_tcp(protocol_factory, host, args.port, timeout=args.timeout,
                                 on_error=self.connect_failed(format_address((host, args.port))),
                                 **tls)

    def connect_failed(self, target: str) -> Callable[[BaseException], None]:
        """An ``on_error`` for ``connect_tcp``: one line on stderr, exit status 1."""

        def on_error(exc: BaseException) -> None:
            if isinstance(exc, ssl.SSLError):  # a certificate that fails verification, too
                reason = f"TLS handshake failed: {describe_tls_error(exc)}"
            elif isinstance(exc, ConnectionRefusedError):
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
        if early_signals.handed_over():  # a signal came while we were starting
            self.reactor.stop()
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
        self.run.print_line(line.decode("utf-8", "replace"))

    def pause_writing(self) -> None:
        self.stdin.pause()

    def resume_writing(self) -> None:
        self.stdin.resume()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.stdin.pause()


def run_line_client(args: argparse.Namespace, program: str,
                    client: Callable[[ClientRun], TerminalClient]) -> int:
    """A whole line client's life: a reactor as the flags say, connect, run, the exit status."""
    try:
        reactor = make_reactor(args)
    except TraceFileError as exc:
        return usage_error(program, str(exc))
    try:
        tls = client_tls_options(args)
    except TLSSetupError as exc:
        close_reactor(reactor)
        return usage_error(program, str(exc))
    run = ClientRun(reactor, program)
    run.connect(lambda: client(run), args, tls)
    return run.run()

"""Start the example programs the way a user does, and talk to them with deadlines.

Every program runs as ``python -m examples.NAME`` from the repository root, in its own process.
Nothing here sleeps for luck: every wait is a ``select()`` on a pipe or socket, bounded by a
deadline, and a missed deadline fails the test with what was seen so far.

A program's stderr goes to a temporary file rather than a pipe: a program that logs a lot
(``--trace``) can then never block on a full pipe while a test waits for something else, and the
whole of it can be read after the process exits. stdout stays a pipe, read line by line (a
server's first line is ``listening on HOST:PORT``).

``Launcher`` owns every process and socket a test starts; its ``close()`` (run by each test
module's fixture) kills what is still running, reaps it and closes every pipe and socket, so no
process outlives its test, pass or fail.
"""

from __future__ import annotations

import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NamedTuple

import pytest

from examples.bench.load import NO_COMPILER
from tests.resets import PEER_RESET_ERRORS, close_with_reset, shutdown_write

REPO_ROOT = Path(__file__).resolve().parent.parent

#: How long a program may take to start (interpreter start-up, imports, bind) and announce itself.
STARTUP_TIMEOUT = 10.0
#: The default deadline for one expected event (a line, an EOF, an exit).
TIMEOUT = 5.0
#: How long a server may take to exit after SIGINT/SIGTERM: the promise is "about 2 s" (the
#: shutdown grace period); this leaves room for a loaded machine.
SHUTDOWN_TIMEOUT = 4.0

SERVERS = ("echo_server", "uppercase_server", "chat_server")

#: A server's first line; a TLS port says so after the address.
LISTENING = re.compile(r"listening on (?P<host>\[[^\]]+\]|[^:\s]+):(?P<port>\d+)(?P<tls> \(TLS\))?")


def built_or_skip(built: tuple[Path | None, str]) -> Path:
    """A load client ``examples.bench.load.build_load`` built: skip only when this machine has
    no C compiler; our own C source failing to build is a failure."""
    binary, how = built
    if binary is not None:
        return binary
    if how == NO_COMPILER:
        pytest.skip(how)
    pytest.fail(how)


def command(program: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"examples.{program}", *args]


def format_address(address: tuple[Any, ...]) -> str:
    """``127.0.0.1:PORT`` or ``[::1]:PORT``: how the programs print an address."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ipv6_loopback_available() -> bool:
    """True if ``::1`` can be bound here (some containers have no IPv6)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def vm_rss_kib(pid: int) -> int | None:
    """The resident set size of process ``pid`` in KiB, or ``None`` without ``/proc``."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class LineReader:
    """Lines from one pipe or socket; every read waits on ``select()`` with a deadline.

    ``read`` is the non-blocking-safe read call (``os.read`` on a pipe, ``sock.recv``); it is only
    called after ``select()`` said the descriptor is readable, so it never blocks. It returns
    ``b""`` at EOF. Errors (``ConnectionResetError``) propagate to the test.
    """

    def __init__(self, fileno: int, read: Callable[[int], bytes], what: str) -> None:
        self._fileno = fileno
        self._read = read
        self.what = what
        self.buffer = bytearray()
        self.eof = False

    def _fill(self, deadline: float) -> bool:
        """Read one chunk into the buffer; False at EOF; AssertionError past the deadline."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining > 0:
            readable, _, _ = select.select([self._fileno], [], [], remaining)
        else:
            readable = []
        if not readable:
            raise AssertionError(f"{self.what}: nothing more arrived before the deadline; "
                                 f"buffered so far: {bytes(self.buffer[-300:])!r}")
        data = self._read(65536)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def read_line(self, timeout: float = TIMEOUT) -> bytes:
        """The next line, with its ``b"\\n"``; AssertionError at EOF or past the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end + 1])
                del self.buffer[:end + 1]
                return line
            if not self._fill(deadline):
                raise AssertionError(f"{self.what}: EOF before a complete line; "
                                     f"got {bytes(self.buffer)!r}")

    def read_line_or_eof(self, timeout: float = TIMEOUT) -> bytes:
        """The next line with its ``b"\\n"``, or ``b""`` at EOF with nothing buffered."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            if not self._fill(deadline):
                assert not self.buffer, f"{self.what}: EOF after {bytes(self.buffer)!r}"
                return b""
        return self.read_line(timeout)

    def read_exactly(self, size: int, timeout: float = TIMEOUT) -> bytes:
        """The next ``size`` bytes; AssertionError at EOF or past the deadline."""
        deadline = time.monotonic() + timeout
        while len(self.buffer) < size:
            if not self._fill(deadline):
                raise AssertionError(f"{self.what}: EOF after {len(self.buffer)} of {size} bytes")
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def line(self, timeout: float = TIMEOUT) -> str:
        """The next line as text, without its ``"\\n"`` (it must be valid UTF-8)."""
        return self.read_line(timeout)[:-1].decode("utf-8")

    def read_until_eof(self, timeout: float = TIMEOUT) -> bytes:
        """Everything up to EOF (including what was already buffered)."""
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def expect_eof(self, timeout: float = TIMEOUT) -> None:
        """Assert that nothing but EOF comes next."""
        rest = self.read_until_eof(timeout)
        assert rest == b"", f"{self.what}: expected EOF, got {rest[:300]!r} first"


class Client:
    """A raw TCP client socket with a line reader (the tests' stand-in for ``nc``)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.name = format_address(sock.getsockname())  # what the chat calls us by default
        self.reader = LineReader(sock.fileno(), sock.recv, f"client {self.name}")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_line(self, text: str) -> None:
        self.sock.sendall(text.encode("utf-8") + b"\n")

    def read_line(self, timeout: float = TIMEOUT) -> bytes:
        return self.reader.read_line(timeout)

    def line(self, timeout: float = TIMEOUT) -> str:
        return self.reader.line(timeout)

    def read_exactly(self, size: int, timeout: float = TIMEOUT) -> bytes:
        return self.reader.read_exactly(size, timeout)

    def read_until_eof(self, timeout: float = TIMEOUT) -> bytes:
        return self.reader.read_until_eof(timeout)

    def expect_eof(self, timeout: float = TIMEOUT) -> None:
        self.reader.expect_eof(timeout)

    def shutdown_write(self) -> None:
        """Our FIN; ``ConnectionResetError`` if the server already reset the connection."""
        shutdown_write(self.sock)

    def reset(self) -> None:
        """Close with RST instead of FIN."""
        close_with_reset(self.sock)

    def close(self) -> None:
        self.sock.close()


class Transferred(NamedTuple):
    """What ``transfer`` saw: the bytes that came back, how many of ours the kernel took, and
    whether the connection was reset (by whichever call met the RST: see tests/resets.py)."""

    received: bytes
    sent: int
    reset: bool


def transfer(sock: socket.socket, data: bytes, *, rng: random.Random | None = None,
             timeout: float = 2 * TIMEOUT) -> Transferred:
    """Send ``data`` while reading what comes back, shut down our write side after the last
    byte (FIN), and read until the peer's EOF or reset.

    Reading while sending matters: a server with back-pressure stops reading from a client that
    does not read its replies, and a blocking ``sendall`` would then wait forever. Each ``send``
    offers 64 KiB, or with ``rng`` a random 1 byte to 64 KiB, so the peer sees other cuts. An EOF
    before everything was sent ends the transfer early (``sent`` says how far it got).
    """
    sock.setblocking(False)
    view = memoryview(data)
    sent = 0
    received = bytearray()
    shut = False
    deadline = time.monotonic() + timeout
    try:
        while True:
            if not shut and sent == len(data):
                shutdown_write(sock)
                shut = True
            remaining = deadline - time.monotonic()
            assert remaining > 0, (f"transfer: sent {sent} of {len(data)} bytes, received "
                                   f"{len(received)} before the deadline")
            readable, writable, _ = select.select([sock], [] if shut else [sock], [], remaining)
            if writable:
                size = rng.randint(1, 65536) if rng is not None else 65536
                try:
                    sent += sock.send(view[sent:sent + size])
                except BlockingIOError:
                    pass
            if readable:
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    return Transferred(bytes(received), sent, reset=False)
                received += chunk
    except PEER_RESET_ERRORS:
        return Transferred(bytes(received), sent, reset=True)


def exchange(sock: socket.socket, data: bytes, timeout: float = 2 * TIMEOUT) -> bytes:
    """``transfer`` to a server that must answer all of ``data``, then close cleanly; returns
    everything received."""
    received, sent, reset = transfer(sock, data, timeout=timeout)
    assert not reset, f"exchange: reset after sending {sent} of {len(data)} bytes"
    assert sent == len(data), f"exchange: EOF after sending only {sent} of {len(data)} bytes"
    return received


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes from a blocking socket (plain or TLS): its own timeout bounds each
    ``recv``; an EOF before the last byte fails the test, naming what had arrived."""
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"EOF after {bytes(data)!r}"
        data += chunk
    return bytes(data)


def connect(port: int, host: str = "127.0.0.1", *, timeout: float = TIMEOUT) -> Client:
    return Client(socket.create_connection((host, port), timeout=timeout))


class Program:
    """One running example program: stdout read by lines, stderr collected in a file.

    ``runner`` is the command that starts a program not run as ``python -m examples.NAME``
    (``[python, "-m", "reactor.aio", "examples/asyncio_chat.py"]``); ``args`` follow it.
    """

    def __init__(self, program: str, args: list[str], *, stdin: int | None,
                 runner: list[str] | None = None) -> None:
        self.program = program
        self._stderr_file: IO[bytes] = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            command(program, *args) if runner is None else [*runner, *args], cwd=REPO_ROOT,
            stdin=stdin, stdout=subprocess.PIPE, stderr=self._stderr_file)
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        self.stdout = LineReader(fd, lambda size: os.read(fd, size), f"{program} stdout")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def send_signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = TIMEOUT) -> int:
        """The exit status; AssertionError if the program is still running at the deadline."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.program} still running after {timeout}s; "
                                 f"stderr: {self.stderr()[-2000:]}") from None

    def stderr(self) -> str:
        """Everything written to stderr so far."""
        self._stderr_file.seek(0)
        return self._stderr_file.read().decode("utf-8", "replace")

    def assert_no_traceback(self) -> None:
        text = self.stderr()
        assert "Traceback" not in text, f"{self.program} printed a traceback:\n{text}"

    def close(self) -> None:
        """Kill the program if it still runs, reap it, close the pipes and the stderr file."""
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass  # stdin: the program is gone and our buffered bytes cannot be flushed
        self._stderr_file.close()


class ServerProcess(Program):
    """A server started with ``--port 0`` (unless the test gives one); knows its host and port."""

    def __init__(self, program: str, args: list[str], runner: list[str] | None = None) -> None:
        if "--port" not in args:
            args = ["--port", "0", *args]
        super().__init__(program, args, stdin=subprocess.DEVNULL, runner=runner)
        self.clients: list[Client] = []
        self.first_line = ""
        self.host = ""
        self.port = 0

    def announced(self) -> ServerProcess:
        """Read the first stdout line and parse ``listening on HOST:PORT`` from it."""
        try:
            self.first_line = self.stdout.line(STARTUP_TIMEOUT)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; stderr: {self.stderr()}") from None
        match = LISTENING.fullmatch(self.first_line)
        assert match, f"{self.program}: first stdout line is {self.first_line!r}"
        self.host = match["host"].strip("[]")
        self.port = int(match["port"])
        assert self.port > 0
        return self

    @property
    def address(self) -> str:
        return format_address((self.host, self.port))

    def connect(self, *, timeout: float = TIMEOUT) -> Client:
        client = connect(self.port, self.host, timeout=timeout)
        self.clients.append(client)
        return client

    def stop(self, signum: int = signal.SIGTERM, timeout: float = SHUTDOWN_TIMEOUT) -> int:
        """Send ``signum`` and wait for the exit; returns the exit status."""
        self.send_signal(signum)
        return self.wait(timeout)

    def stop_cleanly(self, signum: int = signal.SIGTERM) -> None:
        """Close our clients, then check the shutdown promise: exit status 0 in time, and no
        traceback on stderr. (A client left open would make the server linger for its FIN.)"""
        for client in self.clients:
            client.close()
        status = self.stop(signum)
        assert status == 0, f"{self.program} exited {status}; stderr: {self.stderr()}"
        self.assert_no_traceback()

    def close(self) -> None:
        for client in self.clients:
            client.close()
        super().close()


class ProxyProcess(ServerProcess):
    """A running ``tcp_proxy``: a server in every way but its address flag, ``--listen
    HOST:PORT`` rather than the ``--port`` that ``ServerProcess`` adds."""

    def __init__(self, args: list[str]) -> None:
        Program.__init__(self, "tcp_proxy", args, stdin=subprocess.DEVNULL)
        self.clients: list[Client] = []
        self.first_line = ""
        self.host = ""
        self.port = 0


class ClientProcess(Program):
    """A client program with its stdin as a pipe the test writes to."""

    def __init__(self, program: str, args: list[str]) -> None:
        super().__init__(program, args, stdin=subprocess.PIPE)

    def type(self, text: str | bytes) -> None:
        """Write to the program's stdin, as if typed."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode("utf-8") if isinstance(text, str) else text)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()


class Launcher:
    """Starts programs for one test and cleans every one of them up in ``close()``."""

    def __init__(self) -> None:
        self._programs: list[Program] = []
        self._sockets: list[socket.socket] = []

    def server(self, program: str, *args: str, runner: list[str] | None = None
               ) -> ServerProcess:
        """Start a server and wait for its ``listening on`` line (``runner``: see ``Program``)."""
        server = self.start_server(program, *args, runner=runner)
        return server.announced()

    def start_server(self, program: str, *args: str, runner: list[str] | None = None
                     ) -> ServerProcess:
        """Start a server without waiting for anything (for start-up failures)."""
        server = ServerProcess(program, list(args), runner)
        self._programs.append(server)
        return server

    def proxy(self, upstream_port: int, *args: str) -> ProxyProcess:
        """Start a proxy on a free loopback port in front of ``upstream_port``; wait for its
        ``listening on`` line."""
        proxy = self.start_proxy("--listen", "127.0.0.1:0", "--to", f"127.0.0.1:{upstream_port}",
                                 *args)
        proxy.announced()
        return proxy

    def start_proxy(self, *args: str) -> ProxyProcess:
        """Start ``tcp_proxy`` with exactly ``args``, without waiting for anything."""
        proxy = ProxyProcess(list(args))
        self._programs.append(proxy)
        return proxy

    def client(self, program: str, *args: str) -> ClientProcess:
        client = ClientProcess(program, list(args))
        self._programs.append(client)
        return client

    def run(self, program: str, *args: str, input: bytes = b"",
            timeout: float = TIMEOUT) -> subprocess.CompletedProcess[bytes]:
        """Run a program to completion with ``input`` on stdin (killed at the deadline)."""
        return subprocess.run(command(program, *args), cwd=REPO_ROOT, input=input,
                              capture_output=True, timeout=timeout, check=False)

    def upstream_socket(self) -> socket.socket:
        """A listening loopback socket, for a test that plays a proxy's upstream server itself
        (so it can half-close and reset exactly when it wants)."""
        sock = self.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.settimeout(TIMEOUT)
        return sock

    def socket(self, *args: Any) -> socket.socket:
        sock = socket.socket(*args)
        self._sockets.append(sock)
        return sock

    def close(self) -> None:
        for program in self._programs:
            program.close()
        for sock in self._sockets:
            sock.close()


"""A real ``redis-server`` for the tests: started on a free loopback port, stopped after.

``RedisServer`` runs one with no persistence (``--save '' --appendonly no``) in a temporary
directory, logging to its stdout; it is ready when it has said ``Ready to accept connections``
(waited for with ``select()`` and a deadline, never a sleep) and answers ``PING``. ``kill()``
and ``start()`` again make a crash and a restart on the same port. ``BlockingRedis`` is the
tests' own control connection: a blocking socket and ``protocols.resp`` to read the replies.

``require_redis_server()`` skips a test when ``redis-server`` is not installed, except under CI
(``CI`` set), where it fails: the CI script installs it, so its absence there is a bug.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any

from protocols.resp import Argument, RespParser, encode_command
from reactor.buffer import ByteBuffer
from tests.real_commands import require_command

STARTUP_TIMEOUT = 10.0
READY_LINE = b"Ready to accept connections"
#: How many free ports to try: another process may take the one we picked before Redis binds it.
PORT_ATTEMPTS = 5


def require_redis_server() -> str:
    return require_command("redis-server", "the shared chat room's tests",
                           "apt-get install redis-server")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class BlockingRedis:
    """A blocking connection for a test to set up, inspect and disturb the server."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buffer = ByteBuffer()
        self._parser = RespParser()
        self._replies: list[Any] = []

    def command(self, *args: Argument) -> Any:
        """Send one command and return its reply (an error reply is returned, not raised)."""
        self.sock.sendall(encode_command(args))
        while not self._replies:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the control connection")
            self._buffer.append(data)
            self._parser.feed(self._buffer, self._replies.append)
        return self._replies.pop(0)

    def raw(self, data: bytes, ends_with: bytes) -> bytes:
        """Send ``data`` and return the bytes that come back, up to and including
        ``ends_with`` (the encoded reply of a last command sent as a marker): replies exactly as
        the server encodes them, to feed the parser under test."""
        self.sock.sendall(data)
        received = b""
        while not received.endswith(ends_with):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the control connection")
            received += chunk
        return received

    def close(self) -> None:
        self.sock.close()


class RedisServer:
    """One ``redis-server`` process. ``url`` is its ``redis://`` address."""

    def __init__(self, *extra_args: str) -> None:
        self.executable = require_redis_server()
        self.extra_args = extra_args
        self.directory = tempfile.TemporaryDirectory(prefix="redis-test-")
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.output = b""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        """Start on the port used before (a restart), or on a free one the first time."""
        attempts = 1 if self.port else PORT_ATTEMPTS
        for _ in range(attempts):
            port = self.port or free_port()
            if self._start_on(port):
                self.port = port
                return self
        raise AssertionError(f"redis-server did not start: {self.output[-2000:]!r}")

    def _start_on(self, port: int) -> bool:
        self.output = b""
        self.process = subprocess.Popen(
            [self.executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.directory.name, "--logfile", "",
             "--daemonize", "no", *self.extra_args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while READY_LINE not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self.kill()
                raise AssertionError(f"redis-server not ready within {STARTUP_TIMEOUT}s: "
                                     f"{self.output[-2000:]!r}")
            chunk = os.read(fd, 65536)
            if not chunk:  # it exited: most likely the port was taken
                self.process.wait()
                return False
            self.output += chunk
        self.port = port
        self.ping()
        return True

    def ping(self) -> None:
        control = BlockingRedis(self.port)
        try:
            reply = control.command("PING")
            assert reply in ("PONG",) or "NOAUTH" in str(reply), reply
        finally:
            control.close()

    def control(self) -> BlockingRedis:
        return BlockingRedis(self.port)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Stop at once, as a crash would; ``start()`` brings it back on the same port."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signum)
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
        self.process = None

    def close(self) -> None:
        self.kill()
        self.directory.cleanup()

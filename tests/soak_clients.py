"""Many raw clients driven from one test thread, and the figures a soak test reports.

Owns the client side of the soak tests (``tests/test_soak.py``): ``EchoExchange`` is one echo
client's script as a small state machine over a non-blocking socket, ``EchoDriver`` runs thousands
of them through one ``selectors`` loop with a bound on how many are in flight and a deadline,
``ChatMember`` is a line client whose every received line is checked against what the test
expects. It does not start servers (``tests/processes.py`` does) and owns no server code.

Facts the code below depends on:

* A non-blocking ``connect_ex`` returns EINPROGRESS; the socket turns writable when the handshake
  is done, and ``SO_ERROR`` then says whether it failed.
* The kernel completes handshakes on its own and queues them in the listener's accept backlog
  (128 for our servers). A flood of connects larger than the backlog gets SYNs dropped and
  retried a second later, so the driver keeps at most ``concurrency`` exchanges unfinished, and
  an exchange is finished only once the server has answered it (so it was accepted).
* ``selectors.DefaultSelector`` is epoll here: ``select.select`` cannot watch descriptors above
  1023, and the 5,000-connection test has thousands of them.

Read next: ``tests/test_soak.py``.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import json
import os
import resource
import selectors
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tests.resets import LINGER_RESET, shutdown_write

#: One ``recv()`` asks for at most this much, unless an exchange asks for less.
RECV_BYTES = 65536

T = TypeVar("T")


def report(test: str, **figures: object) -> None:
    """Print the figures, and append them as one JSON line to the file named by $SOAK_REPORT."""
    line = json.dumps({"test": test, **figures}, sort_keys=False)
    print(f"\nSOAK {line}")
    path = os.environ.get("SOAK_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")


def open_fds(pid: int) -> int:
    """How many descriptors process ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def nofile_soft_limit(pid: int) -> int | None:
    """Process ``pid``'s soft RLIMIT_NOFILE as ``/proc/PID/limits`` shows it (None: unlimited)."""
    with open(f"/proc/{pid}/limits", encoding="ascii") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                soft = line.split()[3]
                return None if soft == "unlimited" else int(soft)
    raise AssertionError(f"no 'Max open files' line in /proc/{pid}/limits")


@contextmanager
def nofile_soft_limit_raised(wanted: int) -> Iterator[int]:
    """Raise this process's soft RLIMIT_NOFILE to ``wanted`` (never past the hard limit) and
    restore it afterwards; yields the soft limit in force. Children started inside inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    try:
        yield resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def poll_until(read: Callable[[], T], done: Callable[[T], bool], timeout: float,
               what: str, interval: float = 0.02) -> T:
    """Call ``read()`` until ``done(value)``; returns that value. Fails after ``timeout`` seconds
    with the last value seen. (For figures only the kernel knows, such as a process's fd count.)"""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: still {value!r} after {timeout}s")
        time.sleep(interval)


class Ending(enum.Enum):
    """How an echo exchange ends, once the payload is sent."""

    KEEP_OPEN = "keep open"            # every byte back, then the socket stays open
    CLOSE = "close"                    # every byte back, then close(): FIN
    HALF_CLOSE = "half-close"          # shutdown(SHUT_WR) after the last byte; read to EOF
    RESET = "reset"                    # every byte back, then close with SO_LINGER 0: RST
    RESET_BEFORE_ECHO = "reset early"  # RST right after sending, the echo unread


class EchoExchange:
    """One echo client: connect, send ``payload`` cut into ``chunks``, read it all back, end.

    Each writable event sends at most one chunk, so the server sees the cuts we chose (with
    TCP_NODELAY, Nagle does not glue small sends together). What comes back is hashed as it
    arrives; ``check()`` compares count and SHA-256 with what was sent.
    """

    def __init__(self, label: str, payload: bytes, ending: Ending,
                 chunks: list[int] | None = None, recv_bytes: int = RECV_BYTES) -> None:
        self.label = label
        self.ending = ending
        self.recv_bytes = recv_bytes
        self.sock: socket.socket | None = None
        self.connecting = False
        self.shut = False
        self.eof = False
        self.sent_total = 0
        self.received_total = 0
        self._sent_digest = hashlib.sha256()
        self._received_digest = hashlib.sha256()
        self._payload = memoryview(b"")
        self._chunks: list[int] = []
        self._sent = 0
        self._chunk_index = 0
        self._round_received = 0
        self.new_round(payload, chunks)

    def new_round(self, payload: bytes, chunks: list[int] | None = None) -> None:
        """Send ``payload`` next (again on an open socket, for a second round trip)."""
        assert not self.shut and not self.eof, f"{self.label}: no new round after EOF"
        self._payload = memoryview(payload)
        self._chunks = chunks if chunks is not None else [len(payload)]
        assert sum(self._chunks) == len(payload), f"{self.label}: chunks do not add up"
        self._sent = self._chunk_index = self._round_received = 0
        self._sent_digest.update(payload)

    def __repr__(self) -> str:
        return (f"<EchoExchange {self.label} {self.ending.value} connecting={self.connecting} "
                f"sent={self._sent}/{len(self._payload)} received={self._round_received} "
                f"shut={self.shut} eof={self.eof}>")

    def start(self, address: tuple[str, int]) -> socket.socket:
        """Create the socket and begin a non-blocking connect."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            raise OSError(code, f"{self.label}: connect: {os.strerror(code)}")
        self.sock = sock
        self.connecting = code != 0
        return sock

    @property
    def sending(self) -> bool:
        return self._sent < len(self._payload) or (
            self.ending is Ending.HALF_CLOSE and not self.shut)

    @property
    def finished(self) -> bool:
        """The server has answered everything this exchange waits for."""
        if self.connecting:
            return False
        if self.ending is Ending.RESET_BEFORE_ECHO:
            return not self.sending
        if self.ending is Ending.HALF_CLOSE:
            return self.shut and self.eof
        return not self.sending and self._round_received == len(self._payload)

    def events(self) -> int:
        """The selector events this exchange waits for now (0 once finished)."""
        if self.finished:
            return 0
        if self.connecting:
            return selectors.EVENT_WRITE
        mask = 0 if self.eof else selectors.EVENT_READ
        if self.sending:
            mask |= selectors.EVENT_WRITE
        return mask

    def handle(self, mask: int) -> None:
        assert self.sock is not None
        if self.connecting:
            code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, f"{self.label}: connect: {os.strerror(code)}")
            self.connecting = False
            return
        if mask & selectors.EVENT_WRITE and self.sending:
            self._send_next()
        if mask & selectors.EVENT_READ and not self.eof:
            self._receive()

    def _send_next(self) -> None:
        assert self.sock is not None
        if self._sent < len(self._payload):
            end = self._sent + self._chunks[self._chunk_index]
            try:
                sent = self.sock.send(self._payload[self._sent:end])
            except BlockingIOError:
                return
            self._sent += sent
            self.sent_total += sent
            if self._sent == end:
                self._chunk_index += 1
            else:
                # A partial send: the rest of this chunk is the next chunk.
                self._chunks[self._chunk_index] = end - self._sent
        if self._sent == len(self._payload) and self.ending is Ending.HALF_CLOSE:
            # The echo server never resets a client that half-closes: a ConnectionResetError from
            # here is a server bug, reported as one (not as ENOTCONN).
            shutdown_write(self.sock)
            self.shut = True

    def _receive(self) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(self.recv_bytes)
        except BlockingIOError:
            return
        if not data:
            self.eof = True
            if self.ending is not Ending.HALF_CLOSE or self._round_received < len(self._payload):
                raise AssertionError(f"{self!r}: EOF from the server before every byte came back")
            return
        self._round_received += len(data)
        self.received_total += len(data)
        self._received_digest.update(data)
        if self._round_received > len(self._payload):
            raise AssertionError(f"{self!r}: more bytes came back than were sent")

    def end(self) -> None:
        """Finish as ``ending`` says: close (FIN or RST), or keep the socket open."""
        if self.sock is None or self.ending is Ending.KEEP_OPEN:
            return
        if self.ending in (Ending.RESET, Ending.RESET_BEFORE_ECHO):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def check(self) -> None:
        """Every byte sent came back, in order (count and SHA-256 match)."""
        if self.ending is Ending.RESET_BEFORE_ECHO:
            return
        assert self.received_total == self.sent_total, (
            f"{self!r}: sent {self.sent_total} bytes, got {self.received_total} back")
        assert self._received_digest.hexdigest() == self._sent_digest.hexdigest(), (
            f"{self!r}: the {self.received_total} bytes that came back differ from those sent")


class EchoDriver:
    """Runs echo exchanges from one thread: one ``DefaultSelector``, a bound on how many are
    unfinished at once, one deadline for the lot."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self._selector = selectors.DefaultSelector()
        self.completed = 0

    def close(self) -> None:
        self._selector.close()

    def run(self, exchanges: Iterable[EchoExchange], *, concurrency: int, timeout: float,
            started: bool = False) -> None:
        """Run every exchange to ``finished``, at most ``concurrency`` at a time, then ``end()``
        it. With ``started``, the exchanges are already connected (a new round on open sockets).
        Fails the test if the lot is not done within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        pending = iter(exchanges)
        active: dict[int, tuple[EchoExchange, int]] = {}  # fd -> (exchange, registered mask)
        selector = self._selector
        exhausted = False

        def admit() -> None:
            nonlocal exhausted
            while not exhausted and len(active) < concurrency:
                exchange = next(pending, None)
                if exchange is None:
                    exhausted = True
                    return
                sock = exchange.sock if started else exchange.start(self.address)
                assert sock is not None
                settle(sock.fileno(), exchange, 0)

        def settle(fd: int, exchange: EchoExchange, registered: int) -> None:
            """Register the events the exchange now waits for, or retire it if finished."""
            wanted = exchange.events()
            if wanted == registered:
                if not wanted:
                    retire(fd, exchange, registered)
                return
            if not wanted:
                retire(fd, exchange, registered)
            elif registered:
                selector.modify(fd, wanted, exchange)
                active[fd] = (exchange, wanted)
            else:
                selector.register(fd, wanted, exchange)
                active[fd] = (exchange, wanted)

        def retire(fd: int, exchange: EchoExchange, registered: int) -> None:
            if registered:
                selector.unregister(fd)
            active.pop(fd, None)
            exchange.end()
            self.completed += 1

        try:
            admit()
            while active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    stuck = [exchange for exchange, _ in list(active.values())[:5]]
                    raise AssertionError(
                        f"{len(active)} exchanges unfinished after {timeout}s "
                        f"({self.completed} completed); for example: {stuck}")
                for key, mask in selector.select(min(remaining, 0.5)):
                    exchange = key.data
                    exchange.handle(mask)
                    settle(key.fd, exchange, active[key.fd][1])
                admit()
        finally:
            for fd, (exchange, registered) in list(active.items()):
                if registered:
                    selector.unregister(fd)
                exchange.close()  # only after a failure: the test is over


class ChatMember:
    """A chat client whose every received line is checked, as it arrives, against ``expected``.

    The test appends to ``expected`` before the action that causes the line, so a line beyond
    ``expected``, or a different one, fails at once with both transcripts' tails.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.name = "{}:{}".format(*sock.getsockname()[:2])  # what the room calls us by default
        self.label = self.name
        sock.setblocking(False)
        self.lines: list[str] = []
        self.expected: list[str] = []
        self.expect_eof = False
        self.eof = False
        self.closed = False
        self._buffer = bytearray()

    def __repr__(self) -> str:
        return (f"<ChatMember {self.label} as {self.name!r} got {len(self.lines)} of "
                f"{len(self.expected)} lines eof={self.eof}>")

    def expect(self, line: str) -> None:
        self.expected.append(line)

    @property
    def caught_up(self) -> bool:
        return len(self.lines) == len(self.expected) and (self.eof or not self.expect_eof)

    def send_line(self, text: str) -> None:
        self.sock.setblocking(True)
        try:
            self.sock.sendall(text.encode("utf-8") + b"\n")
        finally:
            self.sock.setblocking(False)

    def receive(self) -> None:
        """Read what the kernel holds; split it into lines and check each."""
        while not self.eof:
            try:
                data = self.sock.recv(RECV_BYTES)
            except BlockingIOError:
                return
            if not data:
                self.eof = True
                assert self.expect_eof and not self._buffer, (
                    f"{self!r}: unexpected EOF; unterminated tail {bytes(self._buffer)!r}")
                return
            self._buffer += data
            start = 0
            while (end := self._buffer.find(b"\n", start)) >= 0:
                self._take(self._buffer[start:end].decode("utf-8"))
                start = end + 1
            del self._buffer[:start]

    def _take(self, line: str) -> None:
        index = len(self.lines)
        self.lines.append(line)
        wanted = self.expected[index] if index < len(self.expected) else "(nothing more)"
        assert line == wanted, (
            f"{self!r}: line {index} is {line!r}, expected {wanted!r}; last lines received "
            f"{self.lines[-5:]}, expected {self.expected[max(0, index - 4):index + 1]}")

    def close(self, *, reset: bool = False) -> None:
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        self.sock.close()
        self.closed = True


class ChatReader:
    """One selector over every open ``ChatMember``: reads until the members asked for have
    caught up with their expected lines."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()

    def add(self, member: ChatMember) -> None:
        self._selector.register(member.sock, selectors.EVENT_READ, member)

    def remove(self, member: ChatMember) -> None:
        """Stop watching ``member`` (already done if it saw EOF)."""
        if not member.eof:
            self._selector.unregister(member.sock)

    def close(self) -> None:
        self._selector.close()

    def settle(self, members: Iterable[ChatMember], timeout: float) -> None:
        """Read from every readable member until each of ``members`` is caught up."""
        waiting = [member for member in members if not member.caught_up]
        deadline = time.monotonic() + timeout
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{len(waiting)} members not caught up after {timeout}s, "
                                     f"for example {waiting[:3]}")
            for key, _ in self._selector.select(min(remaining, 0.5)):
                member = key.data
                member.receive()
                if member.eof:
                    self._selector.unregister(member.sock)
            waiting = [member for member in waiting if not member.caught_up]

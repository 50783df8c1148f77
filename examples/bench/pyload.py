"""A pure-Python verifying load client: the fallback when no C compiler can build echo_load.

    python -m examples.bench.pyload --port P [--conns 10] [--size 1024] [--pipeline 1]
        [--mode echo|line-upper] [--seconds 5] [--warmup 1] [--tls [--cafile FILE]]

Same contract as ``echo_load.c`` for the two modes the benchmark uses: each connection keeps
``--pipeline`` messages of ``--size`` bytes in flight, every byte that comes back is checked
(``echo``: the same bytes; ``line-upper``: ``size - 1`` lowercase letters and ``\\n`` come back
upper-cased), and one JSON line is printed. Exit status 1 on a mismatch or a lost connection.

Lower fidelity, and the harness says so: this client spends several microseconds of Python per
round trip, so it drives a fast server below that server's capacity. Requests/s then says as much
about the client as about the server, and even the server's user CPU per round trip shifts (a
server woken for fewer requests at a time pays its per-wakeup cost over fewer of them): compare
servers measured in the same run, not with figures taken with echo_load.

With ``--tls`` every connection shakes hands (blocking, before the clock starts) and then speaks
TLS through ``ssl.SSLSocket``, non-blocking. Two facts of such a socket shape the loop: "would
block" is ``SSLWantReadError``/``SSLWantWriteError`` (not ``BlockingIOError``; a read that
consumed only a session ticket says it too), and plaintext OpenSSL has already decrypted is not
in the kernel, so no readiness event announces it: ``recv_tls`` drains ``pending()``. The
handshake's cost is not in the window: this measures the records, not the key exchange.
"""

from __future__ import annotations

import selectors
import socket
import ssl
import sys
import time
from collections import deque
from collections.abc import Callable

from examples.bench.clientkit import (
    PATTERN_PERIOD,
    Window,
    connect_all,
    parser,
    pattern,
    print_result,
)

RECV_BYTES = 256 * 1024
#: What a non-blocking plain or TLS socket raises when it has nothing for us or cannot take more.
WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
HANDSHAKE_TIMEOUT_SECONDS = 10.0


class Connection:
    """One connection's messages in flight and the reply bytes it still expects."""

    def __init__(self, sock: socket.socket, number: int) -> None:
        self.sock = sock
        self.number = number
        self.next_message = 0
        self.outgoing = bytearray()
        self.expected = bytearray()
        self.checked = 0  # bytes of ``expected`` already matched
        self.sent_ns: deque[int] = deque()
        self.writing = False


class EchoLoad:
    def __init__(self, socks: list[socket.socket], size: int, pipeline: int, mode: str,
                 window: Window) -> None:
        self.size = size
        self.pipeline = pipeline
        self.window = window
        self.send_pattern = pattern(PATTERN_PERIOD + size, letters=mode != "echo")
        self.expect_pattern = self.send_pattern.upper() if mode != "echo" else self.send_pattern
        self.line = mode != "echo"
        self.selector = selectors.DefaultSelector()
        self.connections = [Connection(sock, number) for number, sock in enumerate(socks)]
        self.mismatches = 0
        self.errors = 0
        self.alive = len(self.connections)
        self.recv = recv_tls if socks and isinstance(socks[0], ssl.SSLSocket) else recv_plain
        for connection in self.connections:
            self.selector.register(connection.sock, selectors.EVENT_READ, connection)

    def message(self, connection: Connection) -> tuple[bytes, bytes]:
        """Message ``next_message`` of ``connection`` and the reply it must get."""
        offset = (connection.number * 2654435761 + connection.next_message * 40503 + 17) \
            % PATTERN_PERIOD
        connection.next_message += 1
        if self.line:
            end = offset + self.size - 1
            return (self.send_pattern[offset:end] + b"\n",
                    self.expect_pattern[offset:end] + b"\n")
        end = offset + self.size
        return self.send_pattern[offset:end], self.expect_pattern[offset:end]

    def queue(self, connection: Connection, now_ns: int) -> None:
        request, reply = self.message(connection)
        connection.outgoing += request
        connection.expected += reply
        connection.sent_ns.append(now_ns)

    def flush(self, connection: Connection) -> None:
        try:
            sent = connection.sock.send(connection.outgoing)
        except WOULD_BLOCK:
            sent = 0  # a TLS socket retries the same (now longer) buffer: OpenSSL allows that
        del connection.outgoing[:sent]
        want = bool(connection.outgoing)
        if want != connection.writing:
            connection.writing = want
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            self.selector.modify(connection.sock, events, connection)

    def received(self, connection: Connection, data: bytes, now_ns: int) -> None:
        start = connection.checked
        if connection.expected[start:start + len(data)] != data:
            self.fail(connection, mismatch=True)
            return
        connection.checked += len(data)
        size = self.size
        while connection.checked >= size:
            del connection.expected[:size]
            connection.checked -= size
            self.window.record(now_ns, now_ns - connection.sent_ns.popleft())
            if not self.window.over(now_ns):
                self.queue(connection, now_ns)
        self.flush(connection)

    def fail(self, connection: Connection, *, mismatch: bool) -> None:
        if mismatch:
            self.mismatches += 1
        else:
            self.errors += 1
        self.selector.unregister(connection.sock)
        connection.sock.close()
        self.alive -= 1

    def run(self) -> None:
        """Fill every connection's pipeline, then keep it full until the window is over."""
        now = time.monotonic_ns()
        for connection in self.connections:
            for _ in range(self.pipeline):
                self.queue(connection, now)
            self.flush(connection)
        self.pump(self.window.over)

    def settle(self, deadline_ns: int) -> None:
        """After ``run``: no request goes out any more; wait for the replies still in flight
        (or the deadline), so that the server has answered exactly what was sent."""
        self.pump(lambda now: not self.in_flight() or now >= deadline_ns)

    def in_flight(self) -> int:
        """Requests sent on connections still open whose replies have not come back whole."""
        return sum(len(connection.sent_ns) for connection in self.connections
                   if connection.sock.fileno() != -1)

    def requests_sent(self) -> int:
        return sum(connection.next_message for connection in self.connections)

    def pump(self, done: Callable[[int], bool]) -> None:
        """Read, check and send as the sockets allow until ``done(now)`` or every connection
        is lost."""
        now = time.monotonic_ns()
        while self.alive and not done(now):
            for key, events in self.selector.select(0.1):
                connection = key.data
                if events & selectors.EVENT_READ:
                    try:
                        data = self.recv(connection.sock)
                    except WOULD_BLOCK:
                        continue
                    except OSError:
                        data = b""
                    now = time.monotonic_ns()
                    if data:
                        self.received(connection, data, now)
                    else:
                        self.fail(connection, mismatch=False)
                elif events & selectors.EVENT_WRITE:
                    self.flush(connection)
            now = time.monotonic_ns()


def recv_plain(sock: socket.socket) -> bytes:
    return sock.recv(RECV_BYTES)


def recv_tls(sock: socket.socket) -> bytes:
    """One read of an ``SSLSocket`` and whatever OpenSSL decrypted but did not return yet."""
    assert isinstance(sock, ssl.SSLSocket)
    data = sock.recv(RECV_BYTES)
    left = sock.pending()
    if not left:
        return data
    pieces = [data]
    while left:
        pieces.append(sock.recv(left))
        left = sock.pending()
    return b"".join(pieces)


def shake_hands(socks: list[socket.socket], cafile: str | None,
                server_hostname: str) -> list[socket.socket]:
    """Each socket wrapped in TLS, the handshake done (blocking), then non-blocking again.
    The server's certificate is verified against ``cafile`` (or the system's trust store)."""
    context = ssl.create_default_context(cafile=cafile)
    wrapped: list[socket.socket] = []
    for sock in socks:
        sock.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        tls = context.wrap_socket(sock, server_hostname=server_hostname)
        tls.setblocking(False)
        wrapped.append(tls)
    return wrapped


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--mode", choices=["echo", "line-upper"], default="echo")
    arguments.add_argument("--tls", action="store_true",
                           help="speak TLS, verifying the server's certificate for --host")
    arguments.add_argument("--cafile", metavar="FILE",
                           help="with --tls: trust this CA or self-signed certificate")
    args = arguments.parse_args(argv)
    if args.cafile and not args.tls:
        arguments.error("--cafile needs --tls")
    socks = connect_all(args.host, args.port, args.conns)
    if args.tls:
        try:
            socks = shake_hands(socks, args.cafile, args.host)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            print(f"pyload: TLS handshake with {args.host}:{args.port} failed: {exc}",
                  file=sys.stderr)
            return 1
    window = Window(args.warmup, args.seconds)
    load = EchoLoad(socks, args.size, args.pipeline, args.mode, window)
    load.run()
    rate = window.count / args.seconds
    print_result(window, args, rate, mode=args.mode, tls=args.tls, errors=load.errors,
                 mismatches=load.mismatches, conns_lost=len(socks) - load.alive)
    return 1 if load.errors or load.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())

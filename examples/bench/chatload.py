"""Chat load: N members of one room each keep lines in flight; the room broadcasts every line.

    python -m examples.bench.chatload --port P [--other-ports P2,...] [--conns 10]
        [--size 1024] [--pipeline 1] [--seconds 5] [--warmup 1]

The method. ``--conns`` members join (the load waits until every welcome and join notice has
arrived, so the room is complete before the clock starts). Each member then keeps
``--pipeline`` lines of ``--size`` bytes (``"SEQ letters...\\n"``) in flight; a line is done when
every *other* member has received ``"NAME: SEQ letters..."``, and only then may its sender send
another (a closed loop, like echo_load's pipeline). Every delivery is checked: it must be the
next line of that sender for that receiver, byte for byte, so loss, duplication, reordering and
misattribution are all caught. The line counted is a **delivery** (one line written by the server
to one member; each line sent yields ``conns - 1``); latency is from sending a line until its last
delivery (``p50_ms``, ``p99_ms``) and until each delivery (``delivery_p50_ms``...). Any room
notice during the run (someone dropped as too slow) counts as an error.

With ``--other-ports`` the room is one shared by several servers (``chat_server --redis``): the
members are spread over them in contiguous blocks, the deliveries that crossed servers are also
timed apart (``remote_p50_ms``...), and a ``* NAME joined`` that arrives after the run began is
no error (see ``ChatLoad.join``). ``chat_load.c`` does the same, and prints the same keys.

The client is Python, with lower fidelity than echo_load: at 100 members it reads 99 lines for
each one it sends and can saturate its core before the server does (the harness prints the
load's CPU so this can be seen).
"""

from __future__ import annotations

import selectors
import socket
import sys
import time
from collections import deque

from examples.bench.clientkit import (
    PATTERN_PERIOD,
    Window,
    connect_all,
    int_list,
    parser,
    pattern,
    percentile_ms,
    print_result,
)

RECV_BYTES = 256 * 1024
SETUP_TIMEOUT_SECONDS = 30.0


class Line:
    """One line in flight: when it was sent, what receivers must see, how many have not yet."""

    __slots__ = ("sent_ns", "delivered_as", "waiting")

    def __init__(self, sent_ns: int, delivered_as: bytes, waiting: int) -> None:
        self.sent_ns = sent_ns
        self.delivered_as = delivered_as
        self.waiting = waiting


class Member:
    def __init__(self, sock: socket.socket, number: int, members: int, server: int) -> None:
        self.sock = sock
        self.number = number
        self.server = server  # which of the room's servers it is connected to
        self.name = b""
        self.prefix = b""  # b"NAME: ", how our lines reach the others
        self.partial = b""
        self.outgoing = bytearray()
        self.writing = False
        self.next_seq = 0
        self.first_in_flight = 0  # seq of in_flight[0]
        self.in_flight: deque[Line] = deque()
        self.expect_seq = [0] * members  # next seq due from each sender


class ChatLoad:
    def __init__(self, socks: list[socket.socket], size: int, pipeline: int,
                 server_of: list[int] | None = None) -> None:
        self.size = size
        self.pipeline = pipeline
        self.letters = pattern(PATTERN_PERIOD + size, letters=True)
        servers = server_of or [0] * len(socks)
        self.shared = len(set(servers)) > 1
        self.members = [Member(sock, number, len(socks), servers[number])
                        for number, sock in enumerate(socks)]
        self.by_name: dict[bytes, Member] = {}
        self.selector = selectors.DefaultSelector()
        for member in self.members:
            self.selector.register(member.sock, selectors.EVENT_READ, member)
        self.notices = 0
        self.errors = 0
        self.mismatches = 0
        self.late_joins = 0
        self.delivery_ns: list[int] = []  # every delivery in the window
        self.remote_ns: list[int] = []  # those that crossed servers
        self.window: Window | None = None

    # -- setup: wait for the room to be complete ----------------------------------------------

    def join(self) -> None:
        """Read welcomes and join notices until all arrived: N + N(N-1)/2 lines, and until
        every member has its welcome. With several servers the count alone can be reached
        early: two members joining at the same instant may each be told of the other (the
        servers learn of each other's joins through Redis, not in one order)."""
        count = len(self.members)
        expected = count + count * (count - 1) // 2
        deadline = time.monotonic() + SETUP_TIMEOUT_SECONDS
        while self.notices < expected or not all(member.name for member in self.members):
            if time.monotonic() > deadline:
                raise TimeoutError(f"room setup: {self.notices} of {expected} notices arrived")
            for key, _ in self.selector.select(0.1):
                member = key.data
                for line in self.read_lines(member):
                    self.setup_notice(member, line)

    def setup_notice(self, member: Member, line: bytes) -> None:
        self.notices += 1
        if line.startswith(b"* welcome, you are "):
            member.name = line[len(b"* welcome, you are "):].split(b";", 1)[0]
            member.prefix = member.name + b": "
            self.by_name[member.name] = member

    # -- the run ------------------------------------------------------------------------------

    def send_lines(self, member: Member, now_ns: int) -> None:
        while len(member.in_flight) < self.pipeline:
            seq = member.next_seq
            member.next_seq += 1
            head = b"%d " % seq
            offset = (member.number * 7919 + seq * 40503) % PATTERN_PERIOD
            text = head + self.letters[offset:offset + self.size - 1 - len(head)]
            member.outgoing += text + b"\n"
            member.in_flight.append(Line(now_ns, member.prefix + text, len(self.members) - 1))
        self.flush(member)

    def flush(self, member: Member) -> None:
        try:
            sent = member.sock.send(member.outgoing)
        except BlockingIOError:
            sent = 0
        del member.outgoing[:sent]
        want = bool(member.outgoing)
        if want != member.writing:
            member.writing = want
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            self.selector.modify(member.sock, events, member)

    def read_lines(self, member: Member) -> list[bytes]:
        try:
            data = member.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return []
        if not data:
            raise ConnectionError(f"the server closed member {member.number}'s connection")
        lines = (member.partial + data).split(b"\n")
        member.partial = lines.pop()
        return lines

    def delivered(self, receiver: Member, line: bytes, now_ns: int) -> None:
        if line.startswith(b"* "):
            if self.shared and line.endswith(b" joined"):
                self.late_joins += 1  # see join(): not an error
            else:
                self.errors += 1  # a member left or was dropped during the run
            return
        sender = self.by_name.get(line[:line.find(b": ")])
        if sender is None or sender is receiver:
            self.mismatches += 1
            return
        seq = receiver.expect_seq[sender.number]
        index = seq - sender.first_in_flight
        if not 0 <= index < len(sender.in_flight) or sender.in_flight[index].delivered_as != line:
            self.mismatches += 1
            return
        receiver.expect_seq[sender.number] = seq + 1
        in_flight = sender.in_flight
        line_in_flight = in_flight[index]
        line_in_flight.waiting -= 1
        window = self.window
        assert window is not None
        inside = window.inside(now_ns)
        if inside:
            window.count += 1
            latency = now_ns - line_in_flight.sent_ns
            self.delivery_ns.append(latency)
            if sender.server != receiver.server:
                self.remote_ns.append(latency)
        completed = False
        while in_flight and in_flight[0].waiting == 0:
            done = in_flight.popleft()
            sender.first_in_flight += 1
            completed = True
            if inside:
                window.latencies_ns.append(now_ns - done.sent_ns)
        if completed and not window.over(now_ns):
            self.send_lines(sender, now_ns)

    def run(self, window: Window) -> None:
        self.window = window
        now = time.monotonic_ns()
        for member in self.members:
            self.send_lines(member, now)
        while not window.over(now) and not self.mismatches:
            for key, events in self.selector.select(0.1):
                member = key.data
                if events & selectors.EVENT_READ:
                    lines = self.read_lines(member)
                    now = time.monotonic_ns()
                    for line in lines:
                        self.delivered(member, line, now)
                if events & selectors.EVENT_WRITE:
                    self.flush(member)
            now = time.monotonic_ns()


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--other-ports", type=int_list, default=[],
                           help="more servers of the same room, comma-separated")
    args = arguments.parse_args(argv)
    ports = [args.port, *args.other_ports]
    if args.conns < max(2, len(ports)):
        print("chatload: a room needs at least 2 members, and one on each server",
              file=sys.stderr)
        return 2
    # Contiguous blocks, as chat_load.c: with two servers, the first half on the first.
    server_of = [number * len(ports) // args.conns for number in range(args.conns)]
    socks = []
    for server, port in enumerate(ports):
        socks += connect_all(args.host, port, server_of.count(server))
    load = ChatLoad(socks, args.size, args.pipeline, server_of)
    try:
        load.join()
        window = Window(args.warmup, args.seconds)
        load.run(window)
    except (ConnectionError, TimeoutError) as exc:
        print(f"chatload: {exc}", file=sys.stderr)
        return 1
    print_result(window, args, window.count / args.seconds, mode="chat", errors=load.errors,
                 mismatches=load.mismatches, servers=len(ports),
                 lines_sent_per_s=round(len(window.latencies_ns) / args.seconds, 1),
                 late_join_notices=load.late_joins,
                 delivery_p50_ms=percentile_ms(load.delivery_ns, 0.50),
                 delivery_p99_ms=percentile_ms(load.delivery_ns, 0.99),
                 remote_p50_ms=percentile_ms(load.remote_ns, 0.50),
                 remote_p99_ms=percentile_ms(load.remote_ns, 0.99))
    return 1 if load.errors or load.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())

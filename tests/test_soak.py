"""Soak and stress, bounded in time: the example servers under many clients, as subprocesses.

Every test drives all its clients from this one thread through a ``selectors`` loop
(``tests/soak_clients.py``), uses a seeded ``random.Random`` so a failure can be replayed, and
bounds every wait with a deadline. Each prints its figures and appends them as one JSON line to
the file named by ``$SOAK_REPORT``, if set.

Server-side figures come from ``/proc``: the open-descriptor count of the server process (which
must return to its baseline once every client is gone) and its resident set size.
"""

from __future__ import annotations

import os
import random
import resource
import socket
import time
from collections.abc import Iterator

import pytest

from protocols.chat import HELP_TEXT
from tests.processes import Launcher, ServerProcess, TIMEOUT, vm_rss_kib
from tests.soak_clients import (
    ChatMember, ChatReader, EchoDriver, EchoExchange, Ending, nofile_soft_limit,
    nofile_soft_limit_raised, open_fds, poll_until, report,
)

#: Every test's random choices; set $SOAK_SEED to replay or vary a run.
SEED = int(os.environ.get("SOAK_SEED", "20240611"))
#: How long the server may take to close its side of every connection the clients closed.
FD_SETTLE_SECONDS = 10.0

WELCOME = "* welcome, you are {}; /help lists commands"




def fds_back_to(server: ServerProcess, baseline: int) -> int:
    """Wait until the server holds no more descriptors than at ``baseline``; returns the count."""
    return poll_until(lambda: open_fds(server.pid), lambda count: count <= baseline,
                      FD_SETTLE_SECONDS, f"{server.program} open descriptors (baseline {baseline})")


def stop_quietly(server: ServerProcess) -> int:
    """Stop the server (exit 0, no traceback); returns how many lines it wrote to stderr
    besides the one ``shutting down`` line every server logs when it is stopped.

    The servers log at "warning" by default, so under a load the server was built for, any
    stderr output at all is worth a look: the caller reports the count, then asserts it is 0.
    """
    server.stop_cleanly()
    return len([line for line in server.stderr().splitlines() if "shutting down;" not in line])


def assert_quiet(server: ServerProcess, stderr_lines: int) -> None:
    assert stderr_lines == 0, f"{server.program} wrote to stderr:\n{server.stderr()[-3000:]}"


def rss_kib(server: ServerProcess) -> int:
    rss = vm_rss_kib(server.pid)
    assert rss is not None, "no /proc/PID/status here"
    return rss


# -- 1. many clients, random sizes and cuts, some half-closing ------------------------------------

ECHO_CLIENTS = 200
HALF_CLOSE_ONE_IN = 4
#: Per client: (weight, smallest, largest payload in bytes).
PAYLOAD_SIZES = ((4, 0, 2048), (4, 2049, 128 * 1024), (2, 128 * 1024 + 1, 1024 * 1024))
#: How a client cuts its payload into sends: (smallest, largest) chunk; None: one send.
CHUNKINGS = (None, (1, 16), (1, 1460), (1, 65536))


def random_chunks(rng: random.Random, size: int) -> list[int]:
    bounds = rng.choice(CHUNKINGS)
    if bounds == (1, 16) and size > 4096:
        bounds = (1, 1460)  # a megabyte one to sixteen bytes at a time is a test of patience
    if bounds is None or size == 0:
        return [size]
    chunks = []
    left = size
    while left:
        chunk = min(left, rng.randint(*bounds))
        chunks.append(chunk)
        left -= chunk
    return chunks


@pytest.mark.timeout(90)
def test_200_clients_with_random_sizes_and_cuts_get_every_byte_back_in_order(
        launch: Launcher) -> None:
    rng = random.Random(SEED)
    server = launch.server("echo_server")
    fds_before, rss_before = open_fds(server.pid), rss_kib(server)
    exchanges = []
    for index in range(ECHO_CLIENTS):
        _, smallest, largest = rng.choices(PAYLOAD_SIZES, [w for w, _, _ in PAYLOAD_SIZES])[0]
        payload = rng.randbytes(rng.randint(smallest, largest))
        ending = Ending.HALF_CLOSE if index % HALF_CLOSE_ONE_IN == 0 else Ending.CLOSE
        exchanges.append(EchoExchange(
            f"client {index}", payload, ending, random_chunks(rng, len(payload)),
            recv_bytes=rng.choice((1024, 16384, 65536))))
    rng.shuffle(exchanges)
    driver = EchoDriver((server.host, server.port))
    started = time.monotonic()
    try:
        # 100 unfinished at most: below the backlog of 128, so no SYN waits a second for a retry.
        driver.run(exchanges, concurrency=100, timeout=45)
    finally:
        driver.close()
    seconds = time.monotonic() - started
    for exchange in exchanges:
        exchange.check()
    fds_after = fds_back_to(server, fds_before)
    rss_after = rss_kib(server)
    total = sum(exchange.sent_total for exchange in exchanges)
    stderr_lines = stop_quietly(server)
    report("echo_200_random_clients", seed=SEED, connections=len(exchanges),
           half_closed=sum(e.ending is Ending.HALF_CLOSE for e in exchanges),
           bytes_each_way=total, seconds=round(seconds, 2),
           mib_per_second=round(total / seconds / 2**20, 1),
           server_fds_before=fds_before, server_fds_after=fds_after,
           server_rss_kib_before=rss_before, server_rss_kib_after=rss_after,
           server_stderr_lines=stderr_lines)
    assert_quiet(server, stderr_lines)


# -- 2. five thousand connections at once ---------------------------------------------------------

HELD_CONNECTIONS = 5000
#: Descriptors beyond the connections: pytest, pipes, the selector, a margin.
SPARE_FDS = 200


@pytest.mark.timeout(120)
def test_5000_concurrent_connections_are_held_echoed_and_all_released(launch: Launcher) -> None:
    wanted = HELD_CONNECTIONS + SPARE_FDS
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"RLIMIT_NOFILE hard limit is {hard}: {HELD_CONNECTIONS} connections need "
                    f"about {wanted} descriptors in this process and in the server")
    # The server is started inside the raised limit: a child inherits its parent's rlimits.
    with nofile_soft_limit_raised(wanted) as soft:
        server = launch.server("echo_server")
        server_limit = nofile_soft_limit(server.pid)
        assert server_limit is None or server_limit >= wanted, (
            f"the server's soft RLIMIT_NOFILE is {server_limit}, below {wanted}")
        fds_before, rss_before = open_fds(server.pid), rss_kib(server)
        driver = EchoDriver((server.host, server.port))
        exchanges = [EchoExchange(f"connection {index}", f"hello {index}\n".encode(),
                                  Ending.KEEP_OPEN) for index in range(HELD_CONNECTIONS)]
        try:
            started = time.monotonic()
            # Batches of 100 in flight, each finished only once echoed (so accepted).
            driver.run(exchanges, concurrency=100, timeout=60)
            connect_seconds = time.monotonic() - started
            fds_held = open_fds(server.pid)
            rss_held = rss_kib(server)
            assert HELD_CONNECTIONS <= fds_held - fds_before <= HELD_CONNECTIONS + 10, (
                f"server descriptors went from {fds_before} to {fds_held} with "
                f"{HELD_CONNECTIONS} connections open")

            # A second round trip, on all of them at once.
            for index, exchange in enumerate(exchanges):
                exchange.new_round(f"again {index}\n".encode())
            started = time.monotonic()
            driver.run(exchanges, concurrency=HELD_CONNECTIONS, timeout=60, started=True)
            round_seconds = time.monotonic() - started
            for exchange in exchanges:
                exchange.check()
        finally:
            driver.close()
            for exchange in exchanges:
                exchange.close()
        started = time.monotonic()
        fds_after = fds_back_to(server, fds_before)
        release_seconds = time.monotonic() - started
        rss_after = rss_kib(server)
        stderr_lines = stop_quietly(server)
        report("echo_5000_concurrent", connections=HELD_CONNECTIONS, nofile_soft_limit=soft,
               server_nofile_soft_limit=server_limit,
               bytes_each_way=sum(e.sent_total for e in exchanges),
               connect_and_echo_seconds=round(connect_seconds, 2),
               second_round_seconds=round(round_seconds, 2),
               release_seconds=round(release_seconds, 2),
               server_fds_before=fds_before, server_fds_held=fds_held,
               server_fds_after=fds_after, server_rss_kib_before=rss_before,
               server_rss_kib_held=rss_held, server_rss_kib_after=rss_after,
               server_stderr_lines=stderr_lines)
        assert_quiet(server, stderr_lines)


# -- 3. ten thousand connect/close cycles ---------------------------------------------------------

CYCLES = 10_000
WARM_UP_CYCLES = 1_000
CYCLE_CONCURRENCY = 50
#: How each cycle ends, by weight.
CYCLE_ENDINGS = {Ending.CLOSE: 40, Ending.RESET: 25, Ending.HALF_CLOSE: 25,
                 Ending.RESET_BEFORE_ECHO: 10}
MAX_RSS_GROWTH_KIB = 8 * 1024


def cycles(rng: random.Random, first: int, count: int) -> Iterator[EchoExchange]:
    endings, weights = list(CYCLE_ENDINGS), list(CYCLE_ENDINGS.values())
    for index in range(first, first + count):
        yield EchoExchange(f"cycle {index}", rng.randbytes(1),
                           rng.choices(endings, weights)[0])


@pytest.mark.timeout(120)
def test_10000_connect_close_cycles_leave_no_descriptors_and_no_memory_creep(
        launch: Launcher) -> None:
    rng = random.Random(SEED)
    server = launch.server("echo_server")
    fds_before, rss_start = open_fds(server.pid), rss_kib(server)
    driver = EchoDriver((server.host, server.port))
    tally: dict[Ending, int] = dict.fromkeys(CYCLE_ENDINGS, 0)

    def run(first: int, count: int) -> float:
        exchanges = []

        def counted() -> Iterator[EchoExchange]:
            for exchange in cycles(rng, first, count):
                tally[exchange.ending] += 1
                exchanges.append(exchange)
                yield exchange

        started = time.monotonic()
        driver.run(counted(), concurrency=CYCLE_CONCURRENCY, timeout=60)
        for exchange in exchanges:
            exchange.check()
        return time.monotonic() - started

    try:
        warm_up_seconds = run(0, WARM_UP_CYCLES)
        fds_warm = fds_back_to(server, fds_before)
        rss_warm = rss_kib(server)
        rest_seconds = run(WARM_UP_CYCLES, CYCLES - WARM_UP_CYCLES)
    finally:
        driver.close()
    fds_after = fds_back_to(server, fds_before)
    rss_after = rss_kib(server)
    seconds = warm_up_seconds + rest_seconds
    stderr_lines = stop_quietly(server)
    report("echo_10000_cycles", seed=SEED, cycles=driver.completed, concurrency=CYCLE_CONCURRENCY,
           endings={ending.value: count for ending, count in tally.items()},
           seconds=round(seconds, 2), cycles_per_second=round(driver.completed / seconds),
           server_fds_before=fds_before, server_fds_after_warm_up=fds_warm,
           server_fds_after=fds_after, server_rss_kib_start=rss_start,
           server_rss_kib_after_warm_up=rss_warm, server_rss_kib_after=rss_after,
           rss_growth_kib=rss_after - rss_warm, server_stderr_lines=stderr_lines)
    assert driver.completed == CYCLES
    assert rss_after - rss_warm < MAX_RSS_GROWTH_KIB, (
        f"server RSS grew from {rss_warm} KiB after {WARM_UP_CYCLES} cycles to {rss_after} KiB "
        f"after {CYCLES}")
    assert_quiet(server, stderr_lines)


# -- 4. a chat room with members coming and going -------------------------------------------------

CHAT_MEMBERS = 100
#: While members are still arriving: the chance a step is a join.
JOIN_CHANCE = 0.3
#: Every other step: (action, weight) while members arrive, and once all have arrived.
ACTIONS_ARRIVING = {"talk": 80, "me": 4, "nick": 4, "msg": 4, "quit": 4, "drop": 4}
ACTIONS_LEAVING = {"talk": 66, "me": 4, "nick": 5, "msg": 5, "quit": 10, "drop": 10}
WORDS = ("hello", "ok", "straße", "你好", "why?", "see: colons", "3.14", "ünïcødé", "lol", "🙂")
SETTLE_SECONDS = 10.0


class ChatModel:
    """The room as the test sees it: who is in it, in which order, under which name. Each
    action writes the lines every member should get into ``expected`` before it happens, then
    waits until those members have read them (one action at a time, so the order is known)."""

    def __init__(self, server: ServerProcess, rng: random.Random) -> None:
        self.server = server
        self.rng = rng
        self.reader = ChatReader()
        self.room: list[ChatMember] = []
        self.everyone: list[ChatMember] = []
        self.counts: dict[str, int] = {}
        self.peak = 0
        self._serial = 0

    def close(self) -> None:
        for member in self.everyone:
            if not member.closed:
                member.close()
        self.reader.close()

    def _count(self, action: str) -> None:
        self.counts[action] = self.counts.get(action, 0) + 1

    def _text(self) -> str:
        self._serial += 1
        words = self.rng.choices(WORDS, k=self.rng.randint(1, 6))
        return f"#{self._serial} " + " ".join(words)

    def _settle(self, *members: ChatMember) -> None:
        self.reader.settle(members, SETTLE_SECONDS)

    def join(self) -> None:
        self._count("join")
        sock = socket.create_connection((self.server.host, self.server.port), timeout=TIMEOUT)
        member = ChatMember(sock)
        member.label = f"member {len(self.everyone)}"
        for other in self.room:
            other.expect(f"* {member.name} joined")
        member.expect(WELCOME.format(member.name))
        self.reader.add(member)
        self.everyone.append(member)
        self.room.append(member)
        self.peak = max(self.peak, len(self.room))
        self._settle(*self.room)

    def _sync(self, member: ChatMember) -> None:
        """Wait until the server has handled everything ``member`` sent: its ``/help`` reply
        comes back. For an action no other member sees, where there is no line to wait for,
        and the next action (a join) could otherwise overtake it."""
        member.expect(HELP_TEXT)
        member.send_line("/help")
        self._settle(member)

    def _heard(self, member: ChatMember, others: list[ChatMember]) -> None:
        """Wait until every other member got what ``member`` said (or, alone, for a sync)."""
        if others:
            self._settle(*others)
        else:
            self._sync(member)

    def act(self, action: str) -> None:
        if action == "msg" and len(self.room) < 2:
            action = "talk"
        if action == "drop" and len(self.room) < 2:
            # Nobody would hear of it, so nothing would show the server is done with it; the
            # last member says /quit, whose EOF comes after the server has taken it out.
            action = "quit"
        self._count(action)
        member = self.rng.choice(self.room)
        others = [other for other in self.room if other is not member]
        if action == "talk":
            text = self._text()
            for other in others:
                other.expect(f"{member.name}: {text}")
            member.send_line(text)
            self._heard(member, others)
        elif action == "me":
            text = self._text()
            for other in others:
                other.expect(f"* {member.name} {text}")
            member.send_line(f"/me {text}")
            self._heard(member, others)
        elif action == "nick":
            self._serial += 1
            name = self.rng.choice(("nick", "ник", "名")) + str(self._serial)
            member.expect(f"* you are now known as {name}")
            for other in others:
                other.expect(f"* {member.name} is now known as {name}")
            member.send_line(f"/nick {name}")
            member.name = name
            self._settle(*self.room)
        elif action == "msg":
            target = self.rng.choice(others)
            text = self._text()
            target.expect(f"[private] {member.name}: {text}")
            member.send_line(f"/msg {target.name} {text}")
            self._settle(target)
        elif action == "quit":
            member.expect("* goodbye")
            member.expect_eof = True
            self.room.remove(member)
            for other in others:
                other.expect(f"* {member.name} left")
            member.send_line("/quit")
            self._settle(member, *others)
            member.close()
        elif action == "drop":
            self._sync(member)  # and so nothing unexpected is on its way to it
            self.reader.remove(member)
            member.close(reset=self.rng.random() < 0.5)
            self.room.remove(member)
            for other in others:
                other.expect(f"* {member.name} left")
            self._settle(*others)
        else:
            raise AssertionError(f"unknown action {action}")


@pytest.mark.timeout(120)
def test_chat_with_100_members_coming_and_going_at_random_each_gets_exactly_its_lines(
        launch: Launcher) -> None:
    rng = random.Random(SEED)
    server = launch.server("chat_server")
    fds_before, rss_before = open_fds(server.pid), rss_kib(server)
    model = ChatModel(server, rng)
    started = time.monotonic()
    try:
        while len(model.everyone) < CHAT_MEMBERS or model.room:
            arriving = len(model.everyone) < CHAT_MEMBERS
            if arriving and (not model.room or rng.random() < JOIN_CHANCE):
                model.join()
                continue
            weights = ACTIONS_ARRIVING if arriving else ACTIONS_LEAVING
            model.act(rng.choices(list(weights), list(weights.values()))[0])
        seconds = time.monotonic() - started
        for member in model.everyone:
            assert member.lines == member.expected, f"{member!r}: transcripts differ"
    finally:
        model.close()
    plain = sum(1 for member in model.everyone for line in member.lines
                if not line.startswith(("* ", "[private] ")))
    fds_after = fds_back_to(server, fds_before)
    rss_after = rss_kib(server)
    stderr_lines = stop_quietly(server)
    report("chat_100_members", seed=SEED, members=len(model.everyone), peak_room=model.peak,
           actions=dict(sorted(model.counts.items())),
           lines_received=sum(len(member.lines) for member in model.everyone),
           plain_messages_received=plain, seconds=round(seconds, 2),
           server_fds_before=fds_before, server_fds_after=fds_after,
           server_rss_kib_before=rss_before, server_rss_kib_after=rss_after,
           server_stderr_lines=stderr_lines)
    assert_quiet(server, stderr_lines)

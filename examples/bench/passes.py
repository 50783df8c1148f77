"""The cost of one loop pass with many idle connections and a few active ones, per selector.

Owns the socketpairs of one measurement. In-process: a ``reactor.Reactor(selector=NAME)``
watches the read ends of N idle socketpairs (never readable) and of 10 active ones (each holds one
unread byte, so level-triggered polling reports it on every pass; its callback only counts). One
``run_once`` is then: hand the interest set to the kernel, get 10 ready fds back, dispatch 10
callbacks. ``select()`` and ``poll()`` pass and scan the whole set on every call, so their pass
grows with N; ``epoll`` keeps the set in the kernel and returns only the ready fds, so its pass
does not. That is the whole argument for epoll at scale, measured.

``select()`` takes only descriptors below FD_SETSIZE (1024): with more open, its row says
``n/a (FD_SETSIZE)`` instead of failing. N socketpairs use 2N descriptors, so by default the
sweep starts with counts that select can still take (100, 400), then 1,000 and 5,000.
"""

from __future__ import annotations

import itertools
import socket
import statistics
import time
from typing import Any

from examples.bench.launch import raise_nofile
from examples.bench.report import table
from reactor import Reactor
from reactor.poller import SELECTOR_CLASSES

DEFAULT_IDLE = (100, 400, 1000, 5000)
DEFAULT_SELECTORS = ("select", "poll", "epoll")
ACTIVE = 10
FD_SETSIZE = 1024
#: Passes per timed batch; the median of BATCHES batches is reported.
PASSES = 2000
BATCHES = 5
NOT_AVAILABLE = "n/a (FD_SETSIZE)"


def socketpairs(count: int) -> list[tuple[socket.socket, socket.socket]]:
    return [socket.socketpair() for _ in range(count)]


def pass_cost_us(selector: str, idle: list[socket.socket], active: list[socket.socket],
                 passes: int) -> float:
    """Median microseconds per ``run_once`` over ``BATCHES`` batches of ``passes`` passes."""
    reactor = Reactor(selector=selector)
    callbacks = itertools.count()
    try:
        for sock in idle:
            reactor.add_reader(sock.fileno(), lambda: None)
        for sock in active:
            reactor.add_reader(sock.fileno(), next, callbacks)
        for _ in range(passes // 10):  # warm-up
            reactor.run_once(0)
        batches = []
        for _ in range(BATCHES):
            first = next(callbacks)
            started = time.perf_counter()
            for _ in range(passes):
                reactor.run_once(0)
            batches.append((time.perf_counter() - started) / passes * 1e6)
            dispatched = next(callbacks) - first - 1
            if dispatched != passes * len(active):
                raise RuntimeError(f"{selector}: {dispatched} callbacks in {passes} passes, "
                                   f"expected {passes * len(active)}")
        return statistics.median(batches)
    finally:
        reactor.close()


def measure(idle_counts: list[int], selectors: list[str], passes: int) -> list[dict[str, Any]]:
    raise_nofile(2 * (max(idle_counts) + ACTIVE) + 256)
    rows = []
    for count in idle_counts:
        idle_pairs = socketpairs(count)
        active_pairs = socketpairs(ACTIVE)
        try:
            for _, writer in active_pairs:
                writer.send(b"x")
            idle = [reader for reader, _ in idle_pairs]
            active = [reader for reader, _ in active_pairs]
            highest_fd = max(sock.fileno() for pair in idle_pairs + active_pairs for sock in pair)
            row: dict[str, Any] = {"idle": count, "active": ACTIVE, "highest_fd": highest_fd}
            for name in selectors:
                if name not in SELECTOR_CLASSES:
                    row[name] = "n/a (not on this platform)"
                elif name == "select" and highest_fd >= FD_SETSIZE:
                    row[name] = NOT_AVAILABLE
                else:
                    row[name] = round(pass_cost_us(name, idle, active, passes), 2)
            rows.append(row)
        finally:
            for pair in idle_pairs + active_pairs:
                for sock in pair:
                    sock.close()
    return rows


def render(rows: list[dict[str, Any]], selectors: list[str]) -> str:
    def show(value: Any) -> str:
        return f"{value:.1f}" if isinstance(value, float) else str(value)

    body = [[f"{row['idle']:,}", str(row["active"]), *(show(row[name]) for name in selectors)]
            for row in rows]
    return table(["idle conns", "active", *(f"{name} us/pass" for name in selectors)], body)

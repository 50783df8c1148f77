"""What a server process costs, read from ``/proc``: user CPU, resident memory, open descriptors.

Owns no state but one measurement window at a time (``CpuWindow``).

Why **user CPU per round trip** is the number to compare, not requests/s: on loopback the
kernel's TCP work (accounted as system time and softirq, partly on the client's core) is most of
every round trip, so requests/s between two fast servers is compressed and noisy (a C epoll
server measured only 1.1-1.4x asyncio: docs/design.md, "Performance notes"). The server's
*user* time is what its own code spends: the reactor, the protocol, the interpreter. Divided by
the round trips it served, it is stable to about +-10 % between runs and is the clean measure
of a reactor's cost.

How the window is taken: ``utime`` (field 14 of ``/proc/PID/stat``, in clock ticks of
``SC_CLK_TCK``, usually 10 ms) is read when the load generator's warm-up is over and again when
its measured window ends. The harness reads it rather than the load generator, so one method
serves every load generator (C or Python) and multi-process servers (the sum over the process
tree). Both reads are offset from the load generator's own window by the same start-up delay,
and both windows lie in the steady state, so the CPU *rate* (user seconds per wall second) over
ours divided by the requests/s over its window is the CPU per round trip.

The limit of the method is the tick. On loopback a Python server spends most of each round trip
in the kernel, often only 5-25 % of a core in user space, so a 2 s window may hold just 10-50
ticks of user time: +-2-10 % from granularity alone. ``MIN_PRECISE_TICKS`` marks such windows in
the tables; longer ``--seconds`` is the cure.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
#: Fields 14 (utime) and 15 (stime) of /proc/PID/stat, counted from field 3, the first after ")".
UTIME_INDEX = 14 - 3
STIME_INDEX = 15 - 3
#: Fewer user ticks than this in a window: granularity alone is worth more than +-2 %.
MIN_PRECISE_TICKS = 50


def cpu_ticks(pid: int, *, system: bool = False) -> int:
    """User CPU of one process so far (plus system CPU if ``system``), in clock ticks. The
    command name may hold spaces and parentheses, so fields are counted from the last ``)``."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
        text = stat.read()
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[UTIME_INDEX]) + (int(fields[STIME_INDEX]) if system else 0)


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (the workers of a multi-process server)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                text = stat.read()
        except OSError:
            continue  # exited while we looked
        parent = int(text[text.rindex(")") + 2:].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def tree_cpu_ticks(pid: int, *, system: bool = False) -> int:
    """``cpu_ticks`` summed over ``pid`` and its live descendants."""
    total = 0
    for member in [pid, *descendants(pid)]:
        try:
            total += cpu_ticks(member, system=system)
        except OSError:
            pass  # a worker that exited between the listing and the read
    return total


def status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/PID/status``: ``VmRSS`` now, ``VmHWM`` the peak so far."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(f"no {field} in /proc/{pid}/status")


def tree_rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its live descendants, in KiB."""
    total = 0
    for member in [pid, *descendants(pid)]:
        try:
            total += status_kib(member, "VmRSS")
        except (OSError, LookupError):
            pass
    return total


def open_fds(pid: int) -> int:
    """How many descriptors ``pid`` has open (how many connections it has accepted, plus a few)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class CpuWindow:
    """CPU of a process tree between ``start()`` and ``stop()``: user time only (the server's
    own cost), or user + system (``system=True``: how busy the load generator was)."""

    pid: int
    system: bool = False
    ticks: int = 0  # at start(); after stop(), the ticks used in the window
    started: float = 0.0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0

    def start(self) -> None:
        self.ticks = tree_cpu_ticks(self.pid, system=self.system)
        self.started = time.monotonic()

    def stop(self) -> None:
        self.wall_seconds = time.monotonic() - self.started
        self.ticks = tree_cpu_ticks(self.pid, system=self.system) - self.ticks
        self.cpu_seconds = self.ticks / CLOCK_TICKS_PER_SECOND

    @property
    def fraction(self) -> float:
        """CPU seconds per wall second (1.0 = one core busy)."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def us_per(self, rate_per_second: float) -> float:
        """CPU microseconds per event, given the events per second over the same steady state."""
        return self.fraction / rate_per_second * 1e6 if rate_per_second else 0.0

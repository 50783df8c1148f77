"""Which CPU the server gets, which the load generator gets, and the harness's own place.

Owns the split of this machine's CPUs, decided once. Why pin at all: on a 2-core machine an
unpinned server and load generator migrate between the cores and sometimes share one, and
the numbers then vary with the scheduler's mood. One core each makes a run repeatable. The
harness itself only sleeps and reads ``/proc``, but it sits on the load generator's core too,
so nothing of ours ever runs on the server's core except the server.

Multi-process servers (``--workers N``) are not pinned: N processes on one core would measure
nothing. On a 2-core machine their second worker then competes with the load generator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuPlan:
    server: frozenset[int]
    load: frozenset[int]
    every: frozenset[int]

    @property
    def pinned(self) -> bool:
        """False when there are fewer than two CPUs to split."""
        return self.server != self.load

    def note(self) -> str:
        if not self.pinned:
            return ("only one CPU is available: server and load generator share it, so "
                    "requests/s is meaningless; user CPU per round trip still holds")
        return (f"server pinned to CPU {format_cpus(self.server)}, load generator and harness to "
                f"CPU {format_cpus(self.load)}")

    def pin_harness(self, cpus: frozenset[int] | None = None) -> None:
        """Move this process (default: to the load generator's CPU)."""
        os.sched_setaffinity(0, cpus if cpus is not None else self.load)


def format_cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


def plan() -> CpuPlan:
    """The first allowed CPU for servers, the second for the load generator."""
    allowed = sorted(os.sched_getaffinity(0))
    every = frozenset(allowed)
    if len(allowed) < 2:
        return CpuPlan(every, every, every)
    return CpuPlan(frozenset({allowed[0]}), frozenset({allowed[1]}), every)

"""IdleSweeper: closes connections on which nothing has happened for a while.

Owns a periodic timer and, per connection, the activity count it last saw and since when. Does
not own the connections (the listener does) nor what "closing politely" means (the protocol's
``idle_timed_out``).

Why a sweep and not a timer per connection: re-arming a timer on every read and write would put
a heap operation on the hot path. Instead each connection already counts its reads and writes;
every quarter of the timeout the sweeper compares the count with the one it saw before. A
connection whose count has not moved for ``timeout`` seconds is idle: it is closed somewhere
between 1 and 1.25 timeouts after its last activity. (Redis's ``clientsCron`` checks idle
clients on a timer the same way, a slice at a time.)

A connection that is already closing and still makes no progress (its peer reads nothing, so
the queue never drains) is aborted at the next idle period: a close can then never hang forever.
"""

from __future__ import annotations

from collections.abc import Set
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reactor.connection import Connection
    from reactor.loop import Reactor

#: Sweeps per timeout: the precision of the timeout, against the cost of a sweep.
SWEEPS_PER_TIMEOUT = 4


class IdleSweeper:
    def __init__(self, reactor: Reactor, connections: Set[Connection], timeout: float) -> None:
        if timeout <= 0:
            raise ValueError("the idle timeout must be positive")
        self._reactor = reactor
        self._connections = connections
        self.timeout = timeout
        self._seen: dict[Connection, tuple[int, float]] = {}
        self._timer = reactor.call_every(timeout / SWEEPS_PER_TIMEOUT, self._sweep)

    def _sweep(self) -> None:
        now = self._reactor.time()
        seen = self._seen
        for connection in list(self._connections):
            activity = connection.reads + connection.writes
            previous = seen.get(connection)
            if previous is None or previous[0] != activity:
                seen[connection] = (activity, now)
            elif now - previous[1] >= self.timeout:
                seen[connection] = (activity, now)  # a polite close gets one more period
                connection._idle_timed_out(self.timeout)
        for gone in seen.keys() - self._connections:
            del seen[gone]

    def cancel(self) -> None:
        self._timer.cancel()
        self._seen.clear()

"""Backoff: how long to wait before the next reconnection attempt.

Owns a count of failed attempts in a row. The delay doubles with each failure up to a cap
(``base * 2**n``, at most ``cap``) and is then scaled by a random factor in [1/2, 1]: after an
outage every client of a restarted server would otherwise retry at the same instants and arrive
together (AWS's "Exponential Backoff And Jitter" names this "equal jitter"). ``reset()`` after a
success starts again from ``base``.
"""

from __future__ import annotations

import random

BASE_DELAY_SECONDS = 0.1
MAX_DELAY_SECONDS = 5.0


class Backoff:
    def __init__(self, base: float = BASE_DELAY_SECONDS, cap: float = MAX_DELAY_SECONDS,
                 rng: random.Random | None = None) -> None:
        if not 0 < base <= cap:
            raise ValueError(f"need 0 < base <= cap, got base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        """The wait before the next attempt; counts one more failure."""
        ceiling = min(self.cap, self.base * 2 ** min(self.failures, 32))
        self.failures += 1
        return ceiling * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0

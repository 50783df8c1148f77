"""Chaos for the TCP proxy: writes cut into random pieces at random moments, and resets.

Owns what the ``--chaos-*`` flags ask for (``ChaosSettings``) and the writer that reshapes one
direction's bytes (``ChaosWriter``). Does not own the tunnel: ``examples/tcp_proxy.py`` forwards
and decides when a tunnel's reset is due; this module only knows one side's transport and how to
stop and restart the side that feeds it (``WriterSide``).
"""

from __future__ import annotations

import argparse
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from reactor.transport import HIGH_WATER_BYTES, LOW_WATER_BYTES

if TYPE_CHECKING:
    from reactor.connection import Connection
    from reactor.loop import Reactor
    from reactor.timers import Timer

#: A chaos reset strikes once more than a random 0 to this many bytes have been forwarded, or,
#: for a tunnel that ends sooner, when its first FIN arrives.
CHAOS_RESET_MAX_BYTES = 16 * 1024


@dataclass(frozen=True)
class ChaosSettings:
    """What the ``--chaos-*`` options asked for; the defaults are no chaos at all."""

    split_max_bytes: int | None = None
    delay_max_seconds: float | None = None
    reset_fraction: float = 0.0

    @property
    def reshapes_writes(self) -> bool:
        return self.split_max_bytes is not None or self.delay_max_seconds is not None

    @property
    def enabled(self) -> bool:
        return self.reshapes_writes or self.reset_fraction > 0


def fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, not {text}")
    return value



class WriterSide(Protocol):
    """What a ``ChaosWriter`` needs of the connection side it writes for."""

    transport: Connection

    def stop_peer_reading(self) -> None: ...
    def start_peer_reading(self) -> None: ...


class ChaosWriter:
    """Writes one side's output as random small pieces at random moments, in order.

    Owns a FIFO of pieces, the one timer that writes the next piece, and the actions to run once
    the FIFO is empty (``write_eof``, ``close``). Does not own the transport (its side's).

    Order: one chain of timers per direction. A timer writes one piece and only then arms the
    next. Arming one timer per piece at once, each with its own random delay, would let a later
    piece with a shorter delay overtake an earlier one: reordered bytes, which TCP never delivers.

    Bounds: the FIFO is a second send queue in front of the transport's, so it follows the same
    contract. While the transport is over its high-water mark the writer holds its pieces
    (``hold``/``release``, from its side's ``pause_writing``/``resume_writing``); the FIFO then
    fills, and past ``HIGH_WATER_BYTES`` it stops the peer's reading until it drains to
    ``LOW_WATER_BYTES``. Once an action is queued the peer is not resumed: a side whose writer
    will send FIN or close has no use for more input.
    """

    def __init__(self, side: WriterSide, reactor: Reactor, settings: ChaosSettings,
                 rng: random.Random) -> None:
        self._side = side
        self._reactor = reactor
        self._split_max = settings.split_max_bytes
        self._delay_max = settings.delay_max_seconds
        self._rng = rng
        self._pieces: deque[bytes] = deque()
        self._queued_bytes = 0
        self._timer: Timer | None = None
        self._held = False
        self._peer_stopped = False
        self._when_empty: list[Callable[[], None]] = []

    def write(self, data: bytes) -> None:
        if self._split_max is None:
            self._pieces.append(data)
        else:
            start = 0
            while start < len(data):
                end = start + self._rng.randint(1, self._split_max)
                self._pieces.append(data[start:end])
                start = end
        self._queued_bytes += len(data)
        if not self._peer_stopped and self._queued_bytes > HIGH_WATER_BYTES:
            self._peer_stopped = True
            self._side.stop_peer_reading()
        self._pump()

    def then(self, action: Callable[[], None]) -> None:
        """Run ``action`` once every piece queued so far is written."""
        self._when_empty.append(action)
        self._pump()

    def hold(self) -> None:
        """The transport's queue is over high water: keep the pieces here until it drains."""
        self._held = True

    def release(self) -> None:
        self._held = False
        self._pump()

    def discard(self) -> None:
        """The connection is gone or being aborted: drop the pieces, the timer and the actions."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pieces.clear()
        self._queued_bytes = 0
        self._when_empty.clear()

    def _pump(self) -> None:
        """Write pieces until one has to wait: for its delay, or for the transport to drain."""
        while self._pieces and self._timer is None and not self._held:
            delay = 0.0 if self._delay_max is None else self._rng.uniform(0.0, self._delay_max)
            if delay > 0:
                self._timer = self._reactor.call_later(delay, self._delay_elapsed)
                return
            self._write_piece()
        if not self._pieces and self._timer is None:
            actions, self._when_empty = self._when_empty, []
            for action in actions:
                action()

    def _delay_elapsed(self) -> None:
        self._timer = None
        self._write_piece()
        self._pump()

    def _write_piece(self) -> None:
        piece = self._pieces.popleft()
        self._queued_bytes -= len(piece)
        transport = self._side.transport
        assert transport is not None  # discard() cancels the timer when the connection goes
        transport.write(piece)  # may call pause_writing, and so hold(), before it returns
        if self._peer_stopped and self._queued_bytes <= LOW_WATER_BYTES and not self._when_empty:
            self._peer_stopped = False
            self._side.start_peer_reading()

"""BaseTransport: what the stream and the datagram transports share.

Owns the write-side bookkeeping both need: whether the socket is registered for writability, and
the send queue's watermarks with the ``pause_writing``/``resume_writing`` calls they trigger. Does
not own a queue (a stream queues bytes in a ``ByteBuffer``, a datagram socket whole datagrams) nor
any read path.

Two rules live here so they are written once:

* Register for writability only while something is queued: the selectors are level-triggered, so
  a writable socket registered with nothing to send wakes the loop on every pass.
* Watermarks: crossing ``high`` calls ``protocol.pause_writing()`` once; draining to ``low`` or
  below calls ``resume_writing()`` once. The two strictly alternate.

Read next: ``reactor/connection.py`` (TCP and Unix streams) and ``reactor/datagram.py`` (UDP).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reactor.poller import EVENT_WRITE

if TYPE_CHECKING:
    from reactor.loop import Reactor
    from reactor.poller import Poller
    from reactor.trace import Tracer

#: Send-queue watermarks: crossing HIGH pauses the protocol's writing, draining to LOW resumes it.
HIGH_WATER_BYTES = 64 * 1024
LOW_WATER_BYTES = 16 * 1024


def resolve_write_limits(high: int | None, low: int | None) -> tuple[int, int]:
    """Fill in and check a (high, low) watermark pair: asyncio's rule, low defaults to high / 4."""
    if high is None:
        high = HIGH_WATER_BYTES if low is None else 4 * low
    if low is None:
        low = high // 4
    if not 0 <= low <= high:
        raise ValueError(f"need 0 <= low <= high, got high={high} low={low}")
    return high, low


class SlowPathCounters:
    """What only a transport's slow paths count: sends that fell short, the buffers' peaks, the
    watermark pauses.

    A transport holds the shared ``NO_SLOW_PATH_YET`` (all zeros, refuses writes) until its first
    slow path gives it counters of its own (``BaseTransport._own_slow_counters``). An idle
    connection never takes one, and one slot in place of seven is 48 bytes less for each of them
    (the bench: 819 -> 743 bytes per idle echo connection; ``docs/design.md``, "Idle
    memory, round four"). The fast paths never touch these.
    """

    __slots__ = ("partial_sends", "would_blocks", "peak_recv_buffer", "peak_send_buffer",
                 "pauses", "paused_seconds", "paused_at")

    def __init__(self) -> None:
        self.partial_sends = 0     # send() took some bytes, not all: the rest was queued
        self.would_blocks = 0      # send() took none (EAGAIN): the kernel's send buffer was full
        self.peak_recv_buffer = 0  # most input the protocol left unconsumed at once
        self.peak_send_buffer = 0  # most output queued at once
        self.pauses = 0            # times the queue crossed the high-water mark
        self.paused_seconds = 0.0  # time spent over it, pauses that ended
        self.paused_at: float | None = None  # when the pause going on began


class _NoSlowPathYet(SlowPathCounters):
    """The shared zeros: a write to them would count for every connection at once."""

    __slots__ = ()

    def __init__(self) -> None:
        zeros = SlowPathCounters()
        for name in SlowPathCounters.__slots__:
            object.__setattr__(self, name, getattr(zeros, name))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("NO_SLOW_PATH_YET is shared; write to _own_slow_counters()")


NO_SLOW_PATH_YET: SlowPathCounters = _NoSlowPathYet()


def slow_counter(name: str, doc: str) -> Any:
    """A read-only transport attribute read from its ``SlowPathCounters``."""
    return property(lambda transport: getattr(transport._slow, name), doc=doc)


class BaseTransport:
    """Writer registration and flow control for one socket; subclasses supply the queue."""

    # ``_poll_mask`` is the poller's (``reactor/poller.py``): a transport is its fd's watcher.
    __slots__ = ("_reactor", "_poller", "_fd", "_protocol", "_tracer", "_closed", "_writing",
                 "_write_paused", "_high_water", "_low_water", "_slow", "_poll_mask")

    _reactor: Reactor
    _poller: Poller
    _fd: int
    _protocol: Any
    _tracer: Tracer | None
    _slow: SlowPathCounters

    pauses = slow_counter("pauses", "How often the queue crossed the high-water mark.")
    paused_seconds = slow_counter("paused_seconds", "Seconds writing was paused, ended pauses.")

    def _init_flow_control(self) -> None:
        self._poll_mask = 0
        self._closed = False
        self._writing = False
        self._write_paused = False
        self._high_water = HIGH_WATER_BYTES
        self._low_water = LOW_WATER_BYTES
        self._slow = NO_SLOW_PATH_YET

    def _own_slow_counters(self) -> SlowPathCounters:
        """This transport's own ``SlowPathCounters``, made on its first slow path."""
        counters = self._slow
        if counters is NO_SLOW_PATH_YET:
            counters = self._slow = SlowPathCounters()
        return counters

    def paused_time(self) -> float:
        """Seconds spent over the high-water mark so far, including a pause still going on."""
        counters = self._slow
        if counters.paused_at is None:
            return counters.paused_seconds
        return counters.paused_seconds + self._reactor.time() - counters.paused_at

    @property
    def protocol(self) -> Any:
        """The protocol this transport calls: the user's, even in debug mode, where the one
        called is a checker that names what it wraps ``__wrapped__`` (``reactor/checker.py``)."""
        protocol = self._protocol
        return getattr(protocol, "__wrapped__", protocol)

    def fileno(self) -> int:
        return self._fd

    def get_write_buffer_size(self) -> int:
        """Bytes queued for sending (subclasses count their own queue)."""
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        """State, buffers and counters, for ``reactor.snapshot()``."""
        raise NotImplementedError

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._high_water, self._low_water

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the send-queue watermarks; crossing them now calls the protocol at once."""
        self._high_water, self._low_water = high, low = resolve_write_limits(high, low)
        size = self.get_write_buffer_size()
        if not self._write_paused and size > high:
            self._pause_protocol_writing()
        elif self._write_paused and size <= low:
            self._resume_protocol_writing()

    def _pause_protocol_writing(self) -> None:
        self._write_paused = True
        counters = self._own_slow_counters()
        counters.pauses += 1
        counters.paused_at = self._reactor.time()
        if self._tracer is not None:
            self._trace("pause_writing", high_water=self._high_water)
        try:
            self._protocol.pause_writing()
        except Exception as exc:
            self._protocol_failed(exc, "pause_writing")

    def _resume_protocol_writing(self) -> None:
        self._write_paused = False
        counters = self._slow
        if counters.paused_at is not None:
            counters.paused_seconds += self._reactor.time() - counters.paused_at
            counters.paused_at = None
        if self._tracer is not None:
            self._trace("resume_writing", low_water=self._low_water)
        if self.is_closing():
            return  # after close() the protocol hears nothing but connection_lost
        try:
            self._protocol.resume_writing()
        except Exception as exc:
            self._protocol_failed(exc, "resume_writing")

    def _start_writing(self) -> None:
        if not self._writing:
            self._writing = True
            self._poller.watch(self._fd, self, self._poll_mask | EVENT_WRITE)

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self._poller.watch(self._fd, self, self._poll_mask & ~EVENT_WRITE)

    def is_closing(self) -> bool:
        raise NotImplementedError

    def _on_readable(self) -> None:
        raise NotImplementedError

    def _on_writable(self) -> None:
        raise NotImplementedError

    def _protocol_failed(self, exc: Exception, hook: str) -> None:
        raise NotImplementedError

    def _trace(self, name: str, **fields: Any) -> None:
        raise NotImplementedError

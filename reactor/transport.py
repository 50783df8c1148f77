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


class BaseTransport:
    """Writer registration and flow control for one socket; subclasses supply the queue."""

    # ``_poll_mask`` is the poller's (``reactor/poller.py``): a transport is its fd's watcher.
    __slots__ = ("_reactor", "_poller", "_fd", "_protocol", "_tracer", "_closed", "_writing",
                 "_write_paused", "_high_water", "_low_water", "pauses", "paused_seconds",
                 "_paused_at", "_poll_mask")

    _reactor: Reactor
    _poller: Poller
    _fd: int
    _protocol: Any
    _tracer: Tracer | None

    def _init_flow_control(self) -> None:
        self._poll_mask = 0
        self._closed = False
        self._writing = False
        self._write_paused = False
        self._high_water = HIGH_WATER_BYTES
        self._low_water = LOW_WATER_BYTES
        #: How often the queue crossed the high-water mark, and for how long writing was paused.
        self.pauses = 0
        self.paused_seconds = 0.0
        self._paused_at: float | None = None

    def paused_time(self) -> float:
        """Seconds spent over the high-water mark so far, including a pause still going on."""
        if self._paused_at is None:
            return self.paused_seconds
        return self.paused_seconds + self._reactor.time() - self._paused_at

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
        self.pauses += 1
        self._paused_at = self._reactor.time()
        if self._tracer is not None:
            self._trace("pause_writing", high_water=self._high_water)
        try:
            self._protocol.pause_writing()
        except Exception as exc:
            self._protocol_failed(exc, "pause_writing")

    def _resume_protocol_writing(self) -> None:
        self._write_paused = False
        if self._paused_at is not None:
            self.paused_seconds += self._reactor.time() - self._paused_at
            self._paused_at = None
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

"""Waker: a socketpair that makes a sleeping ``select()`` return now.

Owns the two ends of a socketpair. The loop keeps the read end registered; anything that needs
the loop's attention from outside a callback writes one byte to the other end:

* another thread, after queueing a callback with ``call_soon_threadsafe``;
* ``stop()``, so a loop asleep with no timers notices at once;
* a signal: ``signal.set_wakeup_fd(write end)`` makes the C-level signal handler write the signal
  number here. Python runs its own handlers only between bytecodes, so without this a SIGINT that
  arrives during a long ``select()`` would wait for the next unrelated event.

Both ends are non-blocking. If the pipe is already full, a wakeup is already pending, so a
would-block on write is simply ignored: one byte or a thousand wake the loop the same way.
This is the self-pipe trick (D. J. Bernstein); asyncio and libuv use the same idea.
"""

from __future__ import annotations

import socket

#: How much to drain per readiness event; a burst of wakeups collapses into one read.
DRAIN_BYTES = 4096


class Waker:
    __slots__ = ("_reader", "_writer")

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def fileno(self) -> int:
        """The read end, to register for readability."""
        return self._reader.fileno()

    def write_fileno(self) -> int:
        """The write end, for ``signal.set_wakeup_fd``."""
        return self._writer.fileno()

    def wake(self) -> None:
        """Make the loop's next (or current) ``select()`` return. Safe from any thread."""
        try:
            self._writer.send(b"\0")
        except OSError:
            # BlockingIOError: the socket is full, so a wakeup is already pending. Any other
            # error: the waker was closed during shutdown, and nobody is waiting any more.
            pass

    def drain(self) -> bytes:
        """Read every pending wakeup byte (signal numbers, when they came from signals)."""
        received = bytearray()
        while True:
            try:
                data = self._reader.recv(DRAIN_BYTES)
            except BlockingIOError:  # drained (EINTR is retried inside recv: PEP 475)
                break
            if not data:  # the write end is gone: nothing more will ever come
                break
            received += data
        return bytes(received)

    def close(self) -> None:
        self._reader.close()
        self._writer.close()

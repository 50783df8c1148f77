"""Poller: the one place that talks to ``selectors``.

Owns the selector object and, per file descriptor, the *watcher* it calls: an object with
``_on_readable()`` and ``_on_writable()`` methods and the interest mask the poller keeps on it,
``_poll_mask`` (muduo calls such an object a Channel, Twisted a read/write descriptor). Every
transport is its own watcher; plain callbacks (``add_reader``, the waker, a listener) are held in
a ``CallbackWatcher``. Does not own the descriptors themselves: whoever registered an fd closes
it, after unregistering it here.

Facts this module depends on:

* All of ``select``, ``poll`` and ``epoll`` as used here are *level-triggered*: an fd is reported
  on every pass for as long as the condition holds. So a writer must be registered only while
  there is something to send; an always-writable socket registered for EVENT_WRITE turns the loop
  into a busy spin. And a reader that does not drain the socket is simply told again next pass.
* Readiness is a hint, not a promise: a spurious wakeup, or another callback in the same pass
  having already read the data, means the syscall that follows may still say EAGAIN. Every
  caller treats EAGAIN as "not yet".
* An error or hang-up on the fd (POLLERR/POLLHUP) is reported by ``selectors`` as both readable
  and writable: the ``recv()`` or ``send()`` that follows returns the actual error.
* ``select()`` and ``poll()`` hand the whole interest set to the kernel on every call, so a pass
  costs O(registered fds); ``epoll`` keeps the set in the kernel and costs O(ready fds).
* Closing an fd removes it from an epoll set only when no other descriptor refers to the same
  open file, which is why we always unregister *before* closing (same rule as selectors' docs).
* Every backend has a largest timeout: ``epoll`` and ``poll`` take an ``int`` of milliseconds and
  raise ``OverflowError`` beyond it (about 24.8 days), ``select`` a ``timeval``. A timer a year
  away must not crash the loop, so no wait is longer than ``MAX_WAIT_SECONDS`` (one day, as in
  asyncio): a loop that wakes up with nothing due simply waits again.
* A signal arriving during the wait (EINTR) never reaches us as ``InterruptedError``: since
  PEP 475 the call runs the Python signal handler and retries with the time left. If the handler
  raises (KeyboardInterrupt), that exception propagates out of ``poll()``; ours only queue a
  callback and write to the waker, whose fd then ends the retried wait at once.

The backend seam is the selector class (Redis's ae has the same seam with aeApiAddEvent and
friends): the reactor and its tests run over every class ``selectors`` offers on this platform.
"""

from __future__ import annotations

import select
import selectors
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

Callback = Callable[[], object]

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE

#: The longest single wait: see the module docstring (backends overflow on longer timeouts).
MAX_WAIT_SECONDS = 86400.0

SELECTOR_CLASSES: dict[str, type[selectors.BaseSelector]] = {
    name: getattr(selectors, class_name)
    for name, class_name in (
        ("select", "SelectSelector"),
        ("poll", "PollSelector"),
        ("epoll", "EpollSelector"),
        ("devpoll", "DevpollSelector"),
        ("kqueue", "KqueueSelector"),
    )
    if hasattr(selectors, class_name)
}
SELECTOR_CLASSES["default"] = selectors.DefaultSelector


def selector_class(
    choice: str | type[selectors.BaseSelector] | None,
) -> type[selectors.BaseSelector]:
    """A ``selectors`` class from a name (``"select"``, ``"poll"``, ``"epoll"``,
    ``"default"``), a class, or ``None`` (the default)."""
    if choice is None:
        return selectors.DefaultSelector
    if isinstance(choice, str):
        try:
            return SELECTOR_CLASSES[choice]
        except KeyError:
            names = ", ".join(sorted(SELECTOR_CLASSES))
            raise ValueError(f"unknown selector {choice!r}; available here: {names}") from None
    return choice


class Watcher(Protocol):
    """What the poller calls for one fd: ``_on_readable()`` while ``_poll_mask`` has
    ``EVENT_READ``, ``_on_writable()`` while it has ``EVENT_WRITE``. The poller alone sets
    ``_poll_mask`` (``Poller.watch``); a watcher reads it to know what it asked for."""

    _poll_mask: int

    def _on_readable(self) -> object: ...

    def _on_writable(self) -> object: ...


class CallbackWatcher:
    """A watcher made of two plain callbacks, either of which may be unset: what
    ``set_reader``/``set_writer`` register for the waker, listeners, connectors and
    ``add_reader``. The poller calls the callbacks themselves: the slots have the method names."""

    __slots__ = ("_on_readable", "_on_writable", "_poll_mask")

    def __init__(self) -> None:
        self._on_readable: Callback | None = None
        self._on_writable: Callback | None = None
        self._poll_mask = 0

    def wanted_mask(self) -> int:
        """The mask its callbacks ask for."""
        return (EVENT_READ if self._on_readable is not None else 0) | (
            EVENT_WRITE if self._on_writable is not None else 0)


class Poller:
    """Registers fds with a selector and dispatches readiness to their watchers.

    One watcher per fd, in ``_watchers``; the mask lives on the watcher (``_poll_mask``), so a
    transport costs the poller one dict entry and nothing else (a ``[reader, writer]`` list of
    bound methods per fd cost 136 bytes per idle connection, tracemalloc). A watcher removed
    during a pass has its mask cleared at once, so the rest of that pass calls nothing on it.

    ``Poller.create(choice)`` picks the backend: ``EpollPoller`` (below) for ``"epoll"`` and
    ``"default"`` on Linux, this generic ``selectors`` one for everything else, including any
    ``selectors`` class passed in.
    """

    __slots__ = ("_selector", "_watchers", "_on_error", "_clock", "woke_at", "_event_cap")

    def __init__(
        self,
        selector: str | type[selectors.BaseSelector] | None = None,
        on_error: Callable[[BaseException, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_events: int | None = None,
    ) -> None:
        if max_events is not None and max_events < 1:
            raise ValueError("max_events must be at least 1")
        self._selector = self._open_selector(selector)
        self._watchers: dict[int, Watcher] = {}
        self._on_error = on_error
        self._clock = clock
        # At most this many ready fds per pass (``max_events=None``: all), honoured by
        # ``EpollPoller`` only. ``select()`` and ``poll()`` report the ready fds in fd order on
        # every call, so taking the first few would starve the highest fds for as long as the
        # lower ones stay ready; epoll round-robins through a ready set larger than one call
        # takes (epoll(7)). An int either way, so the pass compares without testing for None.
        self._event_cap = sys.maxsize if max_events is None else max_events
        #: When the last ``select()`` returned: the start of the pass's work, for the reactor's
        #: slowest-pass figure (the I/O callbacks below are part of that work).
        self.woke_at = clock()

    @staticmethod
    def create(
        selector: str | type[selectors.BaseSelector] | None = None,
        on_error: Callable[[BaseException, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_events: int | None = None,
    ) -> Poller:
        """The poller for ``selector``: a name, a ``selectors`` class, or ``None`` (default)."""
        if selector in (None, "default", "epoll") and hasattr(select, "epoll"):
            return EpollPoller(None, on_error, clock, max_events)
        return Poller(selector, on_error, clock, max_events)

    def _open_selector(self, choice: str | type[selectors.BaseSelector] | None) -> Any:
        return selector_class(choice)()

    @property
    def backend_name(self) -> str:
        return type(self._selector).__name__

    def __len__(self) -> int:
        return len(self._watchers)

    def masks(self) -> dict[int, int]:
        """Every registered fd and its event mask (for snapshots and tests)."""
        return {fd: watcher._poll_mask for fd, watcher in self._watchers.items()}

    def callbacks(self, fd: int) -> tuple[Callback | None, Callback | None]:
        """The (on_readable, on_writable) pair registered for ``fd``."""
        watcher = self._watchers.get(fd)
        if watcher is None:
            return None, None
        mask = watcher._poll_mask
        return (watcher._on_readable if mask & EVENT_READ else None,
                watcher._on_writable if mask & EVENT_WRITE else None)

    def watch(self, fd: int, watcher: Watcher, mask: int) -> None:
        """Have ``watcher`` called for the events in ``mask`` on ``fd`` (0: forget ``fd``),
        replacing any other watcher of ``fd``. Every register/modify/unregister the reactor
        makes goes through these lines."""
        watchers = self._watchers
        old = watchers.get(fd)
        if old is None:
            if mask:
                self._register(fd, mask)  # first: a refused fd (EPERM: a regular file) stays out
                watchers[fd] = watcher
                watcher._poll_mask = mask
            return
        old_mask = old._poll_mask
        old._poll_mask = 0  # a replaced or removed watcher hears nothing more this pass
        if not mask:
            del watchers[fd]
            self._unregister(fd)
            return
        watchers[fd] = watcher
        watcher._poll_mask = mask
        if mask != old_mask:
            self._modify(fd, mask)

    def set_reader(self, fd: int, callback: Callback) -> None:
        self._set_callback(fd, EVENT_READ, callback)

    def set_writer(self, fd: int, callback: Callback) -> None:
        self._set_callback(fd, EVENT_WRITE, callback)

    def remove_reader(self, fd: int) -> bool:
        return self._set_callback(fd, EVENT_READ, None)

    def remove_writer(self, fd: int) -> bool:
        return self._set_callback(fd, EVENT_WRITE, None)

    def remove(self, fd: int) -> None:
        """Forget ``fd`` entirely: call before closing it."""
        watcher = self._watchers.get(fd)
        if watcher is not None:
            self.watch(fd, watcher, 0)

    def _set_callback(self, fd: int, event: int, callback: Callback | None) -> bool:
        """Store or clear one plain callback. Returns whether ``fd`` was watched for ``event``
        before. A watcher other than a ``CallbackWatcher`` loses just that event when cleared,
        and is replaced when a callback is set (a closing connection's lingering reader)."""
        watcher = self._watchers.get(fd)
        had_event = watcher is not None and bool(watcher._poll_mask & event)
        if isinstance(watcher, CallbackWatcher):
            callbacks = watcher
        elif callback is None:
            if watcher is not None and had_event:
                self.watch(fd, watcher, watcher._poll_mask & ~event)
            return had_event
        else:
            callbacks = CallbackWatcher()
        if event == EVENT_READ:
            callbacks._on_readable = callback
        else:
            callbacks._on_writable = callback
        # A Watcher whose callbacks may be None: the poller calls only those in the mask.
        self.watch(fd, cast(Watcher, callbacks), callbacks.wanted_mask())
        return had_event

    # The three verbs a backend provides (Redis's ae calls them aeApiAddEvent & co.).

    def _register(self, fd: int, mask: int) -> None:
        self._selector.register(fd, mask)

    def _modify(self, fd: int, mask: int) -> None:
        self._selector.modify(fd, mask)

    def _unregister(self, fd: int) -> None:
        self._selector.unregister(fd)

    def poll(self, timeout: float | None,
             observe: Callable[[list[tuple[int, int]]], None] | None = None) -> int:
        """Wait up to ``timeout`` seconds (``None``: forever) and run the ready callbacks.

        Runs them while walking the selector's result instead of building a second list
        (measured: docs/design.md, "Performance notes"). Read before write: a readable-and-writable
        socket that the read path closes is not then written to. ``observe``, when given, first
        sees every ready ``(fd, mask)``: one check per pass, none per event. Returns the number
        of ready fds. ``timeout`` is capped at ``MAX_WAIT_SECONDS``.
        """
        events = self._selector.select(capped(timeout))
        self.woke_at = self._clock()
        if observe is not None:
            observe([(key.fd, mask) for key, mask in events])
        watchers = self._watchers
        for key, mask in events:
            watcher = watchers.get(key.fd)
            if watcher is None:
                continue  # unregistered by an earlier callback of this pass
            try:
                if mask & watcher._poll_mask & EVENT_READ:
                    watcher._on_readable()
                if mask & watcher._poll_mask & EVENT_WRITE:
                    watcher._on_writable()
            except Exception as exc:
                if self._on_error is None:
                    raise
                self._on_error(exc, key.fd)
        return len(events)

    def close(self) -> None:
        self._watchers.clear()
        self._selector.close()


class EpollPoller(Poller):
    """The same poller on Linux's ``epoll`` object directly, without the ``selectors`` layer.

    ``selectors.EpollSelector.select()`` looks up a key object and builds a tuple for every
    ready fd before we see it; here ``epoll.poll()``'s ``(fd, events)`` pairs index our own
    table. Measured with callgrind on the echo server, 1 KiB round trips over 10 connections:
    13.9k instead of 14.6k instructions per round trip (-5 %). The mapping of epoll bits is
    ``selectors.EpollSelector``'s: anything but a bare EPOLLOUT counts as readable (EPOLLIN,
    and EPOLLERR/EPOLLHUP, so the read path meets the error or the EOF), anything but a bare
    EPOLLIN as writable.
    """

    __slots__ = ()

    def _open_selector(self, choice: str | type[selectors.BaseSelector] | None) -> Any:
        return select.epoll()

    @property
    def backend_name(self) -> str:
        return "epoll"

    def _register(self, fd: int, mask: int) -> None:
        self._selector.register(fd, EPOLL_BITS[mask])

    def _modify(self, fd: int, mask: int) -> None:
        self._selector.modify(fd, EPOLL_BITS[mask])

    def poll(self, timeout: float | None,
             observe: Callable[[list[tuple[int, int]]], None] | None = None) -> int:
        """As ``Poller.poll``; epoll takes -1 for "no timeout" and at most as many events as
        there are registered fds (it never reports more), or ``max_events`` if that is fewer."""
        watchers = self._watchers
        wanted = len(watchers) or 1
        if wanted > self._event_cap:
            wanted = self._event_cap
        events = self._selector.poll(-1 if timeout is None else capped(timeout), wanted)
        self.woke_at = self._clock()
        if observe is not None:
            observe([(fd, epoll_to_mask(bits)) for fd, bits in events])
        for fd, bits in events:
            # Indexing in a try rather than watchers.get(): no method call per event (callgrind,
            # 1 KiB echo over 10 connections: 11.80k -> 11.63k instructions per round trip).
            try:
                watcher = watchers[fd]
            except KeyError:
                continue  # unregistered by an earlier callback of this pass
            try:
                if bits & NOT_ONLY_EPOLLOUT and watcher._poll_mask & EVENT_READ:
                    watcher._on_readable()
                if bits & NOT_ONLY_EPOLLIN and watcher._poll_mask & EVENT_WRITE:
                    watcher._on_writable()
            except Exception as exc:
                if self._on_error is None:
                    raise
                self._on_error(exc, fd)
        return len(events)


def capped(timeout: float | None) -> float | None:
    """``timeout``, or ``MAX_WAIT_SECONDS`` if it is longer (``None``, forever, stays)."""
    if timeout is not None and timeout > MAX_WAIT_SECONDS:
        return MAX_WAIT_SECONDS
    return timeout


if hasattr(select, "epoll"):
    EPOLL_BITS = {EVENT_READ: select.EPOLLIN, EVENT_WRITE: select.EPOLLOUT,
                  EVENT_READ | EVENT_WRITE: select.EPOLLIN | select.EPOLLOUT}
    NOT_ONLY_EPOLLOUT = ~select.EPOLLOUT
    NOT_ONLY_EPOLLIN = ~select.EPOLLIN


def epoll_to_mask(bits: int) -> int:
    return (EVENT_READ if bits & NOT_ONLY_EPOLLOUT else 0) | (
        EVENT_WRITE if bits & NOT_ONLY_EPOLLIN else 0)

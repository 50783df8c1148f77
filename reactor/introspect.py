"""Looking inside the loop: the per-pass trace events, ``snapshot()`` and ``step()``.

Owns nothing; reads the reactor's poller, timers, ready queue and transports. Kept apart from
``loop.py`` so that the loop itself stays a page long: nothing here runs unless a tracer is
installed or a snapshot is asked for.

Per pass, a tracer sees (see ``reactor/trace.py`` for how they are printed)::

    pass      number, the timeout chosen, and why (callbacks ready / next timer / nothing due)
    woke      which fds were ready, for what, and whose they are; or "timeout"
    wakeup    the waker fired: a signal (by number) or another thread / stop()
    ...       each syscall and protocol callback, from the transports (connection.py)
    callbacks the timers and callbacks about to run, in order
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from reactor.poller import EVENT_READ, EVENT_WRITE

if TYPE_CHECKING:
    from reactor.loop import Reactor
    from reactor.timers import Handle
    from reactor.trace import Tracer


def describe_callback(callback: object) -> str:
    """``Connection._on_readable of fd=7 127.0.0.1:5000`` style, for traces and snapshots."""
    if isinstance(callback, functools.partial):  # add_reader(fd, callback, *args) binds args
        callback = callback.func
    owner = getattr(callback, "__self__", None)
    name = getattr(callback, "__qualname__", None) or type(callback).__name__
    label = getattr(owner, "trace_label", None)
    return f"{name} of {label}" if label else name


def describe_mask(mask: int) -> str:
    return ("R" if mask & EVENT_READ else "") + ("W" if mask & EVENT_WRITE else "")


def explain_timeout(reactor: Reactor, wait: float | None, requested: float | None) -> str:
    """Why ``select()`` may sleep ``wait`` seconds this pass, in words."""
    if reactor._ready:
        return f"{len(reactor._ready)} callbacks are ready: poll without waiting"
    if reactor._stopping:
        return "stopping: poll without waiting"
    next_due = reactor._timers.next_due()
    if next_due is not None and (requested is None or next_due - reactor.time() <= requested):
        timer = reactor._timers.pending()[0]
        return f"next timer: {describe_callback(timer.callback)}"
    if requested is not None:
        return "the caller's timeout"
    return "no timers and no callbacks: wait for I/O, however long"


def trace_pass_start(reactor: Reactor, tracer: Tracer, wait: float | None,
                     requested: float | None) -> None:
    tracer.event(reactor, "pass", number=reactor.passes + 1,
                 timeout="none" if wait is None else round(wait, 6),
                 why=explain_timeout(reactor, wait, requested))


def trace_pass_begins_with_callbacks(reactor: Reactor, tracer: Tracer) -> None:
    """With ``callbacks_before_io`` a pass runs its ready callbacks before it decides how long
    to wait (they may queue more): the pass is announced first, its ``select()`` after them."""
    tracer.event(reactor, "pass_begins", number=reactor.passes + 1,
                 why="the ready callbacks first, then select() (asyncio's order)")


def tracing_observer(reactor: Reactor,
                     tracer: Tracer) -> Callable[[list[tuple[int, int]]], None]:
    """What the poller calls with the ready fds when tracing: reports what woke the loop."""

    def observe(events: list[tuple[int, int]]) -> None:
        if not events:
            tracer.event(reactor, "woke", by="timeout: no fd was ready")
            return
        ready = []
        for fd, mask in events:
            on_readable, on_writable = reactor.poller.callbacks(fd)
            owner = describe_callback(on_readable or on_writable)
            ready.append(f"fd {fd} {describe_mask(mask)} ({owner})")
        tracer.event(reactor, "woke", by="; ".join(ready))

    return observe


def trace_wakeup(reactor: Reactor, tracer: Tracer, received: bytes) -> None:
    """The waker's bytes are signal numbers (from ``set_wakeup_fd``) or zeros (``wake()``)."""
    signals = sorted({byte for byte in received if byte})
    if signals:
        names = ", ".join(signal.Signals(number).name for number in signals)
        tracer.event(reactor, "wakeup", by=f"signal {names}")
    else:
        tracer.event(reactor, "wakeup", by="another thread or stop()")


def trace_callbacks(reactor: Reactor, tracer: Tracer, to_run: Iterable[Handle]) -> None:
    names = [describe_callback(handle.callback) for handle in to_run if not handle.cancelled]
    if names:
        tracer.event(reactor, "callbacks", run=names)


def snapshot(reactor: Reactor) -> dict[str, Any]:
    now = reactor.time()
    poller = reactor.poller
    fds = {}
    for fd, mask in sorted(poller.masks().items()):
        on_readable, on_writable = poller.callbacks(fd)
        fds[fd] = {"mask": describe_mask(mask),
                   "owner": describe_callback(on_readable or on_writable)}
    return {
        "time": now,
        "backend": poller.backend_name,
        "passes": reactor.passes,
        "slowest_pass_seconds": reactor.slowest_pass_seconds,
        "fds": fds,
        "timers": [
            {"due_in": round(timer.when - now, 6), "callback": describe_callback(timer.callback),
             "every": timer.interval}
            for timer in reactor._timers.pending()
        ],
        "ready": [describe_callback(handle.callback) for handle in reactor._ready
                  if not handle.cancelled],
        "transports": sorted((transport.stats() for transport in reactor.transports),
                             key=lambda stats: stats["fd"]),
    }


def step(reactor: Reactor, timeout: float) -> list[dict[str, Any]]:
    from reactor.trace import RecordingTracer

    previous = reactor.tracer
    recorder = RecordingTracer(forward_to=previous)
    reactor.set_tracer(recorder)
    try:
        reactor.run_once(timeout)
    finally:
        reactor.set_tracer(previous)
    return recorder.events

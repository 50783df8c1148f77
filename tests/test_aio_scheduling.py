"""Scheduling on our asyncio loop, next to asyncio's own as the control where both apply: the
handle ``call_soon`` returns is asyncio's, a due timer runs after the callbacks scheduled before
it, and the reactor follows a patched or overridden ``loop.time``. (The fast paths of
``reactor/aio/loop.py`` take shortcuts around asyncio's own code; these pin what they keep.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from unittest import mock

import pytest

import reactor.aio
from reactor.aio.loop import ReactorEventLoop

LOOPS = [pytest.param(reactor.aio.new_event_loop, id="our-loop"),
         pytest.param(asyncio.new_event_loop, id="asyncio-loop")]
#: How far a patched clock runs ahead: a timer read against the real clock would wait this long.
CLOCK_OFFSET_SECONDS = 1000.0


@pytest.mark.timeout(10)
@pytest.mark.parametrize("new_loop", LOOPS)
def test_call_soon_returns_an_asyncio_handle_that_cancels(
        new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    ran: list[str] = []
    loop = new_loop()
    try:
        kept = loop.call_soon(ran.append, "kept")
        dropped = loop.call_soon(ran.append, "dropped")
        assert isinstance(kept, asyncio.Handle)
        assert repr(kept).startswith("<Handle "), repr(kept)
        assert not kept.cancelled()
        dropped.cancel()
        assert dropped.cancelled()
        assert repr(dropped) == "<Handle cancelled>"
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    assert ran == ["kept"]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_due_timer_runs_after_the_callbacks_scheduled_before_it(
        new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    order: list[str] = []
    loop = new_loop()

    def schedule_both() -> None:
        loop.call_soon(order.append, "soon")
        loop.call_at(loop.time() - 1.0, order.append, "timer")  # due already

    try:
        loop.call_soon(schedule_both)
        loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        loop.close()
    assert order == ["soon", "timer"]


@pytest.mark.timeout(10)
def test_the_reactor_follows_a_patched_loop_time() -> None:
    fired: list[float] = []
    loop = reactor.aio.new_event_loop()
    try:
        with mock.patch.object(loop, "time", lambda: time.monotonic() + CLOCK_OFFSET_SECONDS):
            # call_later computes `when` on the patched clock; on the real one it would be due
            # in CLOCK_OFFSET_SECONDS and the test would time out.
            loop.call_later(0.01, lambda: fired.append(loop.time()))
            loop.run_until_complete(asyncio.sleep(0.05))
        assert len(fired) == 1
        loop.call_later(0.01, lambda: fired.append(loop.time()))
        loop.run_until_complete(asyncio.sleep(0.05))  # the real clock again, once unpatched
    finally:
        loop.close()
    assert len(fired) == 2


class OffsetClockLoop(ReactorEventLoop):
    def time(self) -> float:
        return time.monotonic() + CLOCK_OFFSET_SECONDS


@pytest.mark.timeout(10)
def test_the_reactor_follows_a_subclass_time() -> None:
    fired: list[float] = []
    loop = OffsetClockLoop()
    try:
        loop.call_later(0.01, lambda: fired.append(loop.time()))
        loop.run_until_complete(asyncio.sleep(0.05))
    finally:
        loop.close()
    assert len(fired) == 1

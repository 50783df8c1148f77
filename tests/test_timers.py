"""Timers and the ready queue, driven by a manual clock so no test waits for real time."""

from __future__ import annotations

import selectors
from collections.abc import Iterator

import pytest

from reactor import Reactor
from reactor.timers import COMPACT_MIN_ENTRIES, Handle, Timer, TimerQueue
from tests.helpers import SELECTOR_NAMES


class ManualClock:
    """A clock that moves only when the test says so."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Clocked:
    def __init__(self, reactor: Reactor, clock: ManualClock) -> None:
        self.reactor = reactor
        self.clock = clock

    def run_at(self, when: float) -> None:
        """Move the clock to ``when`` and run one pass (never blocks: timers make wait <= 0)."""
        self.clock.now = when
        self.reactor.run_once(0)


@pytest.fixture(params=SELECTOR_NAMES)
def loop(request: pytest.FixtureRequest) -> Iterator[Clocked]:
    clock = ManualClock()
    reactor = Reactor(request.param, clock=clock)
    yield Clocked(reactor, clock)
    reactor.close()


class RecordingSelector:
    """Wraps a real selector; records the timeout the loop asked for and never sleeps."""

    def __init__(self, inner: selectors.BaseSelector) -> None:
        self.inner = inner
        self.timeouts: list[float | None] = []

    def select(self, timeout: float | None = None):  # type: ignore[no-untyped-def]
        self.timeouts.append(timeout)
        return self.inner.select(0)

    def poll(self, timeout: float = -1, maxevents: int = -1):  # type: ignore[no-untyped-def]
        """The same for EpollPoller, which calls ``select.epoll.poll`` (-1: no timeout)."""
        self.timeouts.append(None if timeout == -1 else timeout)
        return self.inner.poll(0, maxevents)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


@pytest.fixture
def recorded(loop: Clocked, monkeypatch: pytest.MonkeyPatch) -> RecordingSelector:
    selector = RecordingSelector(loop.reactor.poller._selector)
    monkeypatch.setattr(loop.reactor.poller, "_selector", selector)
    return selector


# -- one-shot timers ---------------------------------------------------------------------------


def test_reactor_time_is_the_injected_clock(loop: Clocked) -> None:
    assert loop.reactor.time() == 100.0
    loop.clock.advance(2.5)
    assert loop.reactor.time() == 102.5


def test_call_later_runs_in_due_order_not_scheduling_order(loop: Clocked) -> None:
    ran: list[str] = []
    loop.reactor.call_later(3, ran.append, "three")
    loop.reactor.call_later(1, ran.append, "one")
    loop.reactor.call_later(2, ran.append, "two")
    loop.run_at(100.999)
    assert ran == []
    loop.run_at(101.0)
    assert ran == ["one"]
    loop.run_at(103.0)
    assert ran == ["one", "two", "three"]
    assert len(loop.reactor._timers) == 0


def test_call_at_uses_absolute_time_on_the_loop_clock(loop: Clocked) -> None:
    ran: list[float] = []
    loop.reactor.call_at(105.0, lambda: ran.append(loop.reactor.time()))
    loop.run_at(104.0)
    assert ran == []
    loop.run_at(106.0)
    assert ran == [106.0]


def test_timers_due_at_the_same_time_run_in_scheduling_order(loop: Clocked) -> None:
    ran: list[int] = []
    for i in range(20):
        loop.reactor.call_at(110.0, ran.append, i)
    loop.run_at(110.0)
    assert ran == list(range(20))


def test_cancel_before_due_means_never_run(loop: Clocked) -> None:
    ran: list[str] = []
    keep = loop.reactor.call_later(1, ran.append, "kept")
    dropped = loop.reactor.call_later(1, ran.append, "dropped")
    assert len(loop.reactor._timers) == 2
    dropped.cancel()
    assert dropped.cancelled
    assert len(loop.reactor._timers) == 1
    loop.run_at(200.0)
    assert ran == ["kept"]
    assert not keep.cancelled
    assert len(loop.reactor._timers) == 0


def test_cancel_twice_counts_once(loop: Clocked) -> None:
    a = loop.reactor.call_later(1, lambda: None)
    loop.reactor.call_later(2, lambda: None)
    a.cancel()
    a.cancel()
    assert len(loop.reactor._timers) == 1


def test_cancel_after_a_one_shot_timer_ran_does_not_corrupt_the_count(loop: Clocked) -> None:
    ran: list[int] = []
    timer = loop.reactor.call_later(1, ran.append, 1)
    loop.reactor.call_later(5, ran.append, 5)
    loop.run_at(101.0)
    assert ran == [1]
    timer.cancel()
    assert len(loop.reactor._timers) == 1
    loop.run_at(105.0)
    assert ran == [1, 5]
    assert len(loop.reactor._timers) == 0


def test_a_callback_cancels_a_timer_due_in_the_same_pass(loop: Clocked) -> None:
    ran: list[str] = []
    second: list[Timer] = []
    loop.reactor.call_at(101.0, lambda: (ran.append("first"), second[0].cancel()))
    second.append(loop.reactor.call_at(101.0, ran.append, "second"))
    loop.run_at(101.0)
    assert ran == ["first"]


# -- repeating timers ---------------------------------------------------------------------------


def test_call_every_repeats_at_each_interval(loop: Clocked) -> None:
    ran: list[float] = []
    timer = loop.reactor.call_every(1.0, lambda: ran.append(loop.reactor.time()))
    for when in (100.5, 101.0, 101.5, 102.0, 103.0):
        loop.run_at(when)
    assert ran == [101.0, 102.0, 103.0]
    assert timer.when == 104.0
    assert len(loop.reactor._timers) == 1


def test_call_every_first_delay_sets_the_first_tick(loop: Clocked) -> None:
    ran: list[float] = []
    loop.reactor.call_every(10.0, lambda: ran.append(loop.reactor.time()), first_delay=0.5)
    loop.run_at(100.5)
    loop.run_at(110.0)
    loop.run_at(110.5)
    assert ran == [100.5, 110.5]


def test_call_every_skips_missed_ticks_instead_of_bursting(loop: Clocked) -> None:
    ran: list[float] = []
    timer = loop.reactor.call_every(1.0, lambda: ran.append(loop.reactor.time()))
    loop.run_at(105.5)  # five ticks were due: run once, not five times
    assert ran == [105.5]
    assert timer.when == 106.5
    loop.run_at(106.0)
    assert ran == [105.5]
    loop.run_at(106.5)
    assert ran == [105.5, 106.5]


@pytest.mark.parametrize("interval", [0, -1.0])
def test_call_every_rejects_non_positive_interval(loop: Clocked, interval: float) -> None:
    with pytest.raises(ValueError):
        loop.reactor.call_every(interval, lambda: None)


def test_repeating_timer_can_cancel_itself_from_its_own_callback(loop: Clocked) -> None:
    ran: list[int] = []
    holder: list[Timer] = []

    def tick() -> None:
        ran.append(len(ran))
        if len(ran) == 3:
            holder[0].cancel()

    holder.append(loop.reactor.call_every(1.0, tick))
    for second in range(1, 8):
        loop.run_at(100.0 + second)
    assert ran == [0, 1, 2]
    assert len(loop.reactor._timers) == 0
    assert loop.reactor._timers.next_due() is None
    assert loop.reactor._timers._heap == []


def test_repeating_timer_with_args(loop: Clocked) -> None:
    ran: list[tuple[str, int]] = []
    loop.reactor.call_every(2.0, lambda a, b: ran.append((a, b)), "x", 7)
    loop.run_at(102.0)
    loop.run_at(104.0)
    assert ran == [("x", 7), ("x", 7)]


# -- TimerQueue --------------------------------------------------------------------------------


def test_timer_queue_next_due_skips_cancelled_entries() -> None:
    queue = TimerQueue()
    first = queue.schedule(1.0, print)
    queue.schedule(2.0, print)
    assert queue.next_due() == 1.0
    first.cancel()
    assert queue.next_due() == 2.0
    assert len(queue) == 1
    assert len(queue._heap) == 1


def test_timer_queue_pop_due_returns_live_timers_in_due_order() -> None:
    queue = TimerQueue()
    c = queue.schedule(3.0, print)
    a = queue.schedule(1.0, print)
    b = queue.schedule(2.0, print)
    dropped = queue.schedule(1.5, print)
    dropped.cancel()
    assert queue.pop_due(2.5) == [a, b]
    assert len(queue) == 1
    assert queue.pending() == [c]
    assert queue.pop_due(2.9) == []
    assert queue.next_due() == 3.0


def test_timer_queue_is_empty_when_nothing_is_scheduled() -> None:
    queue = TimerQueue()
    assert len(queue) == 0
    assert queue.next_due() is None
    assert queue.pop_due(10**9) == []
    assert queue.pending() == []


def test_heap_is_compacted_when_cancelled_entries_outnumber_live_ones() -> None:
    queue = TimerQueue()
    timers = [queue.schedule(float(i), print) for i in range(1000)]
    for timer in timers[:900]:
        timer.cancel()
    assert len(queue) == 100
    assert len(queue._heap) <= 2 * 100 + 1
    assert queue.pending() == timers[900:]
    assert queue.next_due() == 900.0


def test_small_heaps_are_not_compacted() -> None:
    queue = TimerQueue()
    timers = [queue.schedule(float(i), print) for i in range(COMPACT_MIN_ENTRIES)]
    for timer in timers[:-1]:
        timer.cancel()
    assert len(queue) == 1
    assert len(queue._heap) == COMPACT_MIN_ENTRIES


def test_arming_and_cancelling_idle_timeouts_keeps_the_heap_bounded(loop: Clocked) -> None:
    live = [loop.reactor.call_later(1000.0, lambda: None) for _ in range(10)]
    for _ in range(10_000):
        loop.reactor.call_later(30.0, lambda: None).cancel()
    timers = loop.reactor._timers
    assert len(timers) == 10
    assert len(timers._heap) <= 2 * COMPACT_MIN_ENTRIES + 2
    assert timers.pending() == live


def test_handle_and_timer_repr_show_the_callback_and_state() -> None:
    def on_tick() -> None:
        pass

    handle = Handle(on_tick, ())
    assert "on_tick" in repr(handle)
    handle.cancel()
    assert "cancelled" in repr(handle)
    timer = Timer(12.5, on_tick, (), interval=2.0)
    assert "at 12.500" in repr(timer)
    assert "every 2.0s" in repr(timer)


# -- the ready queue and how long a pass may sleep ---------------------------------------------


def test_call_soon_runs_in_fifo_order_with_args(loop: Clocked) -> None:
    ran: list[tuple[int, str]] = []
    for i in range(5):
        loop.reactor.call_soon(lambda i, s: ran.append((i, s)), i, "x")
    loop.reactor.run_once(0)
    assert ran == [(i, "x") for i in range(5)]


def test_cancelled_call_soon_handle_does_not_run(loop: Clocked) -> None:
    ran: list[str] = []
    handle = loop.reactor.call_soon(ran.append, "cancelled")
    loop.reactor.call_soon(ran.append, "kept")
    handle.cancel()
    loop.reactor.run_once(0)
    assert ran == ["kept"]
    assert len(loop.reactor._ready) == 0


def test_callbacks_scheduled_during_a_pass_run_on_the_next_pass(loop: Clocked) -> None:
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        loop.reactor.call_soon(ran.append, "scheduled by first")

    loop.reactor.call_soon(first)
    loop.reactor.run_once(0)
    assert ran == ["first"]
    assert len(loop.reactor._ready) == 1
    loop.reactor.run_once(0)
    assert ran == ["first", "scheduled by first"]


def test_a_self_rescheduling_callback_runs_once_per_pass(loop: Clocked) -> None:
    count = [0]

    def again() -> None:
        count[0] += 1
        loop.reactor.call_soon(again)

    loop.reactor.call_soon(again)
    for _ in range(5):
        loop.reactor.run_once(0)
    assert count[0] == 5


def test_timer_due_now_runs_in_the_same_pass_after_ready_callbacks(loop: Clocked) -> None:
    ran: list[str] = []
    loop.reactor.call_at(101.0, ran.append, "timer")
    loop.reactor.call_soon(ran.append, "soon")
    loop.run_at(101.0)
    assert ran == ["soon", "timer"]


def test_pass_does_not_sleep_when_callbacks_are_ready(
    loop: Clocked, recorded: RecordingSelector
) -> None:
    loop.reactor.call_later(50.0, lambda: None)
    loop.reactor.call_soon(lambda: None)
    loop.reactor.run_once(None)
    assert recorded.timeouts == [0.0]


def test_pass_sleeps_until_the_earliest_timer(loop: Clocked, recorded: RecordingSelector) -> None:
    loop.reactor.call_later(7.0, lambda: None)
    loop.reactor.call_later(3.0, lambda: None)
    loop.reactor.run_once(None)
    loop.clock.advance(1.0)
    loop.reactor.run_once(None)
    assert recorded.timeouts == [3.0, 2.0]


def test_pass_timeout_argument_caps_the_sleep(loop: Clocked, recorded: RecordingSelector) -> None:
    loop.reactor.call_later(3.0, lambda: None)
    loop.reactor.run_once(1.0)
    loop.reactor.run_once(5.0)
    assert recorded.timeouts == [1.0, 3.0]


def test_pass_does_not_sleep_for_an_overdue_timer(
    loop: Clocked, recorded: RecordingSelector
) -> None:
    ran: list[str] = []
    loop.reactor.call_later(1.0, ran.append, "late")
    loop.clock.advance(10.0)
    loop.reactor.run_once(None)
    assert recorded.timeouts == [0.0]
    assert ran == ["late"]


def test_pass_sleeps_without_limit_when_nothing_is_scheduled(
    loop: Clocked, recorded: RecordingSelector
) -> None:
    loop.reactor.run_once(None)
    assert recorded.timeouts == [None]


def test_cancelled_timers_do_not_shorten_the_sleep(
    loop: Clocked, recorded: RecordingSelector
) -> None:
    loop.reactor.call_later(1.0, lambda: None).cancel()
    loop.reactor.call_later(4.0, lambda: None)
    loop.reactor.run_once(None)
    assert recorded.timeouts == [4.0]


def test_pass_does_not_sleep_once_stop_was_called(
    loop: Clocked, recorded: RecordingSelector
) -> None:
    loop.reactor.stop()
    loop.reactor.run_once(None)
    assert recorded.timeouts == [0.0]


def test_timers_due_by_the_poll_run_in_that_pass_and_see_its_wake_up_time(loop: Clocked) -> None:
    seen: list[float] = []
    loop.reactor.call_later(1, lambda: seen.append(loop.reactor.time()))
    loop.run_at(101.0)
    assert seen == [101.0]
    assert loop.reactor._timers.earliest == float("inf")  # nothing left to compare with


def test_with_callbacks_before_io_a_due_timer_waits_behind_the_callbacks_already_queued() -> None:
    """asyncio's order: a callback that queues a step and arms a timer already due (the pass
    ran late) sees the step run first; the timer joins the ready queue behind it."""
    clock = ManualClock()
    reactor = Reactor(clock=clock, callbacks_before_io=True)
    ran: list[str] = []

    def task_step() -> None:
        reactor.call_soon(ran.append, "queued step")
        reactor.call_at(clock.now + 0.0001, ran.append, "timeout")
        clock.advance(0.001)  # the rest of the pass takes longer than the timeout

    reactor.call_soon(task_step)
    try:
        reactor.run_once(0)
        assert ran == []  # both wait for the next pass: the step first
        reactor.run_once(0)
        assert ran == ["queued step", "timeout"]
    finally:
        reactor.close()

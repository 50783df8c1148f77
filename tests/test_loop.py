"""The loop: run/stop, cross-thread wakeups, the one exception guard, fds and signals."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reactor import Reactor
from reactor.poller import EVENT_READ, EVENT_WRITE
from tests.helpers import fill_socket, run_until

Pair = tuple[socket.socket, socket.socket]


@pytest.fixture
def pair() -> Iterator[Pair]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


class PollEntered:
    """Stands in for a poller's selector object and sets ``event`` on every wait, so another
    thread can tell that the loop has reached ``select()`` (or ``epoll.poll()``)."""

    def __init__(self, selector: Any) -> None:
        self._selector = selector
        self.event = threading.Event()

    def select(self, *args: Any) -> Any:
        self.event.set()
        return self._selector.select(*args)

    def poll(self, *args: Any) -> Any:
        self.event.set()
        return self._selector.poll(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._selector, name)


class Later(threading.Thread):
    """Runs ``action`` in another thread ``delay`` seconds after ``reactor``'s loop first
    waits in its poll; ``acted_at`` is when.

    Waiting for the poll first matters: an action that came before ``run()`` (a thread started
    on a loaded machine can get there first) would find no loop to wake, and a stop that comes
    first is kept, so the test would pass without testing the wake-up. A loop with no timers
    that returns after ``acted_at`` was woken by the action: nothing else could wake it, and the
    test's timeout bounds the wait if nothing does. (An upper bound on the elapsed time instead
    failed on a loaded machine.)"""

    def __init__(self, reactor: Reactor, delay: float, action: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        poller = reactor._poller
        self.polling = PollEntered(poller._selector)
        poller._selector = self.polling
        self.delay = delay
        self.action = action
        self.acted_at: float | None = None
        self.start()

    def run(self) -> None:
        if not self.polling.event.wait(5.0):
            return  # the loop never polled: acted_at stays None, and run_woken_by says so
        time.sleep(self.delay)
        self.acted_at = time.monotonic()
        self.action()


def run_woken_by(reactor: Reactor, thread: Later) -> float:
    """Run until the loop stops; assert that it stopped after ``thread`` acted. Returns the
    time run() took."""
    start = time.monotonic()
    reactor.run()
    returned_at = time.monotonic()
    thread.join(5.0)
    assert thread.acted_at is not None and thread.acted_at <= returned_at
    return returned_at - start


# -- run and stop --------------------------------------------------------------------------------


def test_stop_from_a_callback_makes_run_return(reactor: Reactor) -> None:
    ran: list[str] = []
    reactor.call_soon(ran.append, "before")
    reactor.call_soon(reactor.stop)
    reactor.call_soon(ran.append, "same pass")
    reactor.run()
    assert ran == ["before", "same pass"]
    assert not reactor.is_running()


def test_run_can_be_started_again_after_stop(reactor: Reactor) -> None:
    reactor.call_soon(reactor.stop)
    reactor.run()
    ran: list[int] = []
    reactor.call_later(0.01, ran.append, 2)
    reactor.call_later(0.02, reactor.stop)
    reactor.run()
    assert ran == [2]


def test_is_running_is_true_only_inside_run(reactor: Reactor) -> None:
    seen: list[bool] = []
    reactor.call_soon(lambda: seen.append(reactor.is_running()))
    reactor.call_soon(reactor.stop)
    assert not reactor.is_running()
    reactor.run()
    assert seen == [True]
    assert not reactor.is_running()


def test_run_while_running_raises(reactor: Reactor) -> None:
    errors: list[BaseException] = []

    def nested() -> None:
        try:
            reactor.run()
        except RuntimeError as exc:
            errors.append(exc)
        reactor.stop()

    reactor.call_soon(nested)
    reactor.run()
    assert len(errors) == 1
    assert "already running" in str(errors[0])


@pytest.mark.timeout(10)
def test_stop_from_another_thread_wakes_a_loop_blocked_with_no_timers(reactor: Reactor) -> None:
    elapsed = run_woken_by(reactor, Later(reactor, 0.1, reactor.stop))
    assert elapsed >= 0.09  # it really waited for the stop


@pytest.mark.timeout(10)
def test_call_soon_threadsafe_wakes_the_loop_and_runs_in_the_loop_thread(
    reactor: Reactor,
) -> None:
    ran_in: list[int] = []

    def in_loop() -> None:
        ran_in.append(threading.get_ident())
        reactor.stop()

    run_woken_by(reactor, Later(reactor, 0.1, lambda: reactor.call_soon_threadsafe(in_loop)))
    assert ran_in == [threading.get_ident()]


@pytest.mark.timeout(10)
def test_many_threadsafe_calls_all_run_in_order(reactor: Reactor) -> None:
    ran: list[int] = []

    def producer() -> None:
        for i in range(500):
            reactor.call_soon_threadsafe(ran.append, i)
        reactor.call_soon_threadsafe(reactor.stop)

    thread = threading.Thread(target=producer)
    thread.start()
    reactor.run()
    thread.join(1.0)
    assert ran == list(range(500))


# -- the one guard ---------------------------------------------------------------------------------


def test_exception_in_a_callback_is_logged_with_traceback_and_the_loop_keeps_running(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise ValueError("callback failed")

    reactor.call_soon(broken)
    reactor.call_soon(ran.append, "after in same pass")
    reactor.call_later(0.01, ran.append, "timer later")
    reactor.call_later(0.02, reactor.stop)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        reactor.run()
    assert ran == ["after in same pass", "timer later"]
    [record] = caplog.records
    assert record.name == "reactor"
    assert record.levelno == logging.ERROR
    assert "unhandled exception in callback" in record.getMessage()
    assert "broken" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)
    assert "ValueError: callback failed" in caplog.text
    assert "Traceback" in caplog.text


def test_exception_in_a_timer_callback_is_logged(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    reactor.call_later(0.0, lambda: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        run_until(reactor, lambda: caplog.records, timeout=2.0)
    assert isinstance(caplog.records[0].exc_info[1], ZeroDivisionError)  # type: ignore[index]


def test_keyboard_interrupt_in_a_callback_propagates_out_of_run(reactor: Reactor) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    reactor.call_soon(interrupt)
    with pytest.raises(KeyboardInterrupt):
        reactor.run()
    assert not reactor.is_running()
    reactor.call_soon(reactor.stop)
    reactor.run()  # still usable


# -- any fd ------------------------------------------------------------------------------------


def test_add_reader_calls_back_with_args_when_the_fd_is_readable(
    reactor: Reactor, pair: Pair
) -> None:
    a, b = pair
    got: list[tuple[str, bytes]] = []
    reactor.add_reader(a.fileno(), lambda tag: got.append((tag, a.recv(100))), "tag")
    assert reactor.poller.masks()[a.fileno()] == EVENT_READ
    b.send(b"ping")
    run_until(reactor, lambda: got, timeout=2.0)
    assert got == [("tag", b"ping")]
    assert reactor.remove_reader(a.fileno()) is True
    assert reactor.remove_reader(a.fileno()) is False
    assert a.fileno() not in reactor.poller.masks()


def test_add_writer_calls_back_while_writable_until_removed(reactor: Reactor, pair: Pair) -> None:
    a, b = pair
    calls: list[int] = []

    def on_writable(n: int) -> None:
        calls.append(n)
        if len(calls) == 3:
            reactor.remove_writer(a.fileno())

    reactor.add_writer(a.fileno(), on_writable, 7)
    assert reactor.poller.masks()[a.fileno()] == EVENT_WRITE
    run_until(reactor, lambda: len(calls) == 3, timeout=2.0)
    reactor.run_once(0)
    assert calls == [7, 7, 7]
    assert a.fileno() not in reactor.poller.masks()


def test_add_writer_is_not_called_while_the_socket_is_full(reactor: Reactor, pair: Pair) -> None:
    a, b = pair
    fill_socket(a)
    calls: list[int] = []
    reactor.add_writer(a.fileno(), lambda: calls.append(1))
    reactor.run_once(0)
    assert calls == []
    drained = 0
    while True:
        try:
            drained += len(b.recv(1 << 20))
        except BlockingIOError:
            break
    assert drained > 0
    run_until(reactor, lambda: calls, timeout=2.0)
    reactor.remove_writer(a.fileno())


def test_reader_and_writer_on_one_fd_share_a_registration(reactor: Reactor, pair: Pair) -> None:
    a, _ = pair
    reactor.add_reader(a.fileno(), lambda: None)
    reactor.add_writer(a.fileno(), lambda: None)
    assert reactor.poller.masks()[a.fileno()] == EVENT_READ | EVENT_WRITE
    reactor.remove_writer(a.fileno())
    assert reactor.poller.masks()[a.fileno()] == EVENT_READ
    reactor.remove_reader(a.fileno())


# -- signals -----------------------------------------------------------------------------------


@pytest.fixture
def restore_signals() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.timeout(10)
def test_signal_handler_runs_promptly_while_blocked_in_run(
    reactor: Reactor, restore_signals: None
) -> None:
    got: list[tuple[str, int]] = []

    def on_usr1(tag: str) -> None:
        got.append((tag, threading.get_ident()))
        reactor.stop()

    reactor.add_signal_handler(signal.SIGUSR1, on_usr1, "usr1")
    run_woken_by(reactor, Later(reactor, 0.1, lambda: os.kill(os.getpid(), signal.SIGUSR1)))
    assert got == [("usr1", threading.get_ident())]


@pytest.mark.timeout(10)
def test_stop_on_signals_makes_run_return(reactor: Reactor, restore_signals: None) -> None:
    reactor.stop_on_signals([signal.SIGUSR2])
    run_woken_by(reactor, Later(reactor, 0.1, lambda: os.kill(os.getpid(), signal.SIGUSR2)))


def test_remove_signal_handler_restores_the_previous_handler(
    reactor: Reactor, restore_signals: None
) -> None:
    def previous(signum: int, frame: object) -> None:
        pass

    signal.signal(signal.SIGUSR1, previous)
    reactor.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert signal.getsignal(signal.SIGUSR1) is not previous
    assert reactor.remove_signal_handler(signal.SIGUSR1) is True
    assert signal.getsignal(signal.SIGUSR1) is previous
    assert reactor.remove_signal_handler(signal.SIGUSR1) is False


def test_close_restores_signal_handlers_and_the_wakeup_fd(restore_signals: None) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    wakeup_before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup_before)
    reactor = Reactor()
    reactor.add_signal_handler(signal.SIGUSR1, lambda: None)
    reactor.add_signal_handler(signal.SIGUSR1, lambda: None)  # twice: still restores the original
    reactor.stop_on_signals([signal.SIGUSR2])
    assert signal.getsignal(signal.SIGUSR1) is not before[signal.SIGUSR1]
    reactor.close()
    assert {s: signal.getsignal(s) for s in before} == before
    wakeup_after = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup_after)
    assert wakeup_after == wakeup_before


def test_add_signal_handler_outside_the_main_thread_raises(reactor: Reactor) -> None:
    before = signal.getsignal(signal.SIGUSR1)
    errors: list[BaseException] = []

    def body() -> None:
        try:
            reactor.add_signal_handler(signal.SIGUSR1, lambda: None)
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(2.0)
    assert len(errors) == 1
    assert "main thread" in str(errors[0])
    assert signal.getsignal(signal.SIGUSR1) is before


# -- close and repr ------------------------------------------------------------------------------


def test_close_while_running_raises(reactor: Reactor) -> None:
    errors: list[BaseException] = []

    def try_close() -> None:
        try:
            reactor.close()
        except RuntimeError as exc:
            errors.append(exc)
        reactor.stop()

    reactor.call_soon(try_close)
    reactor.run()
    assert len(errors) == 1


def test_close_is_idempotent_and_drops_ready_callbacks() -> None:
    reactor = Reactor()
    reactor.call_soon(lambda: None)
    reactor.close()
    reactor.close()
    assert len(reactor._ready) == 0
    assert "closed" in repr(reactor)


def test_repr_shows_state_backend_and_counts(reactor: Reactor) -> None:
    reactor.call_later(10, lambda: None)
    reactor.call_soon(lambda: None)
    text = repr(reactor)
    assert text.startswith("<Reactor idle backend=")
    assert reactor.poller.backend_name in text
    assert "fds=1" in text  # the waker
    assert "timers=1" in text
    assert "ready=1" in text

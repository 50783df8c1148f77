"""Poller over every selector class: derived masks, dispatch, removal mid-pass, errors."""

from __future__ import annotations

import logging
import select
import selectors
import socket
from collections.abc import Callable, Iterator

import pytest

from reactor import Reactor
from reactor.poller import EVENT_READ, EVENT_WRITE, SELECTOR_CLASSES, Poller, selector_class
from tests.helpers import SELECTOR_NAMES, fill_socket, run_until

Pair = tuple[socket.socket, socket.socket]


@pytest.fixture(params=SELECTOR_NAMES)
def poller(request: pytest.FixtureRequest) -> Iterator[Poller]:
    p = Poller(request.param)
    yield p
    p.close()


@pytest.fixture
def pair() -> Iterator[Pair]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def make_pairs(count: int) -> list[Pair]:
    pairs = []
    for _ in range(count):
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        pairs.append((a, b))
    return pairs


def close_pairs(pairs: list[Pair]) -> None:
    for a, b in pairs:
        a.close()
        b.close()


# -- selector choice ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SELECTOR_NAMES)
def test_selector_names_map_to_their_classes(name: str) -> None:
    assert selector_class(name) is SELECTOR_CLASSES[name]
    poller = Poller(name)
    try:
        assert poller.backend_name == SELECTOR_CLASSES[name].__name__
    finally:
        poller.close()


def test_selector_class_accepts_a_class_and_none() -> None:
    assert selector_class(selectors.SelectSelector) is selectors.SelectSelector
    assert selector_class(None) is selectors.DefaultSelector
    assert selector_class("default") is selectors.DefaultSelector


def test_unknown_selector_name_raises_value_error_listing_choices() -> None:
    with pytest.raises(ValueError, match="unknown selector 'bogus'.*select"):
        selector_class("bogus")


# -- registration and masks --------------------------------------------------------------------


def test_masks_reflect_reader_and_writer_callbacks(poller: Poller, pair: Pair) -> None:
    a, _ = pair
    fd = a.fileno()
    assert poller.masks() == {}
    poller.set_reader(fd, lambda: None)
    assert poller.masks() == {fd: EVENT_READ}
    poller.set_writer(fd, lambda: None)
    assert poller.masks() == {fd: EVENT_READ | EVENT_WRITE}
    assert len(poller) == 1
    assert poller.remove_reader(fd) is True
    assert poller.masks() == {fd: EVENT_WRITE}
    assert poller.remove_writer(fd) is True
    assert poller.masks() == {}
    assert len(poller) == 0


def test_writer_alone_registers_only_write(poller: Poller, pair: Pair) -> None:
    a, _ = pair
    poller.set_writer(a.fileno(), lambda: None)
    assert poller.masks() == {a.fileno(): EVENT_WRITE}
    poller.set_reader(a.fileno(), lambda: None)
    assert poller.masks() == {a.fileno(): EVENT_READ | EVENT_WRITE}
    poller.remove_writer(a.fileno())
    assert poller.masks() == {a.fileno(): EVENT_READ}


def test_remove_returns_false_when_nothing_was_there(poller: Poller, pair: Pair) -> None:
    a, _ = pair
    fd = a.fileno()
    assert poller.remove_reader(fd) is False
    assert poller.remove_writer(fd) is False
    poller.set_reader(fd, lambda: None)
    assert poller.remove_writer(fd) is False
    assert poller.masks() == {fd: EVENT_READ}


def test_replacing_a_callback_keeps_the_mask_and_calls_the_new_one(
    poller: Poller, pair: Pair
) -> None:
    a, b = pair
    called: list[str] = []
    poller.set_reader(a.fileno(), lambda: called.append("old"))
    poller.set_reader(a.fileno(), lambda: called.append("new"))
    assert poller.masks() == {a.fileno(): EVENT_READ}
    b.send(b"x")
    assert poller.poll(1.0) == 1
    assert called == ["new"]


def test_remove_forgets_the_fd_so_it_can_be_closed(poller: Poller) -> None:
    a, b = socket.socketpair()
    fd = a.fileno()
    poller.set_reader(fd, lambda: None)
    poller.set_writer(fd, lambda: None)
    poller.remove(fd)
    assert poller.masks() == {}
    assert len(poller) == 0
    a.close()
    b.close()
    assert poller.poll(0) == 0
    poller.remove(fd)  # unknown fd: nothing to do
    c, d = socket.socketpair()  # very likely reuses the number: must register cleanly
    try:
        poller.set_reader(c.fileno(), lambda: None)
        assert poller.masks() == {c.fileno(): EVENT_READ}
    finally:
        poller.remove(c.fileno())
        c.close()
        d.close()


# -- dispatch --------------------------------------------------------------------------------


def test_reader_is_called_while_data_is_unread_level_triggered(poller: Poller, pair: Pair) -> None:
    a, b = pair
    calls: list[int] = []
    poller.set_reader(a.fileno(), lambda: calls.append(1))
    assert poller.poll(0) == 0
    b.send(b"data")
    poller.poll(1.0)
    poller.poll(1.0)
    assert calls == [1, 1]
    assert a.recv(100) == b"data"
    assert poller.poll(0) == 0
    assert calls == [1, 1]


def test_writer_is_called_only_while_writable(poller: Poller, pair: Pair) -> None:
    a, b = pair
    calls: list[int] = []
    poller.set_writer(a.fileno(), lambda: calls.append(1))
    poller.poll(0)
    assert calls == [1]
    fill_socket(a)
    calls.clear()
    assert poller.poll(0) == 0
    assert calls == []


def test_read_runs_before_write_for_the_same_fd(poller: Poller, pair: Pair) -> None:
    a, b = pair
    order: list[str] = []
    poller.set_writer(a.fileno(), lambda: order.append("write"))
    poller.set_reader(a.fileno(), lambda: order.append("read"))
    b.send(b"x")
    poller.poll(1.0)
    assert order == ["read", "write"]


def test_writer_removed_by_the_reader_of_the_same_fd_is_not_called(
    poller: Poller, pair: Pair
) -> None:
    a, b = pair
    order: list[str] = []

    def on_readable() -> None:
        order.append("read")
        poller.remove_writer(a.fileno())

    poller.set_writer(a.fileno(), lambda: order.append("write"))
    poller.set_reader(a.fileno(), on_readable)
    b.send(b"x")
    poller.poll(1.0)
    assert order == ["read"]


@pytest.mark.parametrize("how", ["remove_reader", "remove"])
def test_callback_removed_during_a_pass_is_not_called_later_in_that_pass(
    poller: Poller, how: str
) -> None:
    pairs = make_pairs(2)
    try:
        (a1, b1), (a2, b2) = pairs
        called: list[int] = []

        def make(me: int, other: socket.socket) -> Callable[[], None]:
            def on_readable() -> None:
                called.append(me)
                getattr(poller, how)(other.fileno())
            return on_readable

        poller.set_reader(a1.fileno(), make(1, a2))
        poller.set_reader(a2.fileno(), make(2, a1))
        b1.send(b"x")
        b2.send(b"x")
        # Both are ready before the pass: whichever runs first removes the other.
        assert poller.poll(1.0) == 2
        assert len(called) == 1
    finally:
        close_pairs(pairs)


def test_poll_returns_the_number_of_ready_fds(poller: Poller) -> None:
    pairs = make_pairs(3)
    try:
        for a, b in pairs:
            poller.set_reader(a.fileno(), lambda: None)
        pairs[0][1].send(b"x")
        pairs[2][1].send(b"x")
        assert poller.poll(1.0) == 2
    finally:
        close_pairs(pairs)


needs_epoll = pytest.mark.skipif(not hasattr(select, "epoll"), reason="epoll is Linux's")


@needs_epoll
def test_epoll_with_max_events_takes_the_ready_fds_in_turn() -> None:
    """Five fds stay readable (nothing drains them); two a pass, five passes: epoll hands out
    a ready set larger than one call takes round-robin (epoll(7)), so each got exactly two."""
    poller = Poller.create("epoll", max_events=2)
    pairs = make_pairs(5)
    calls = dict.fromkeys(range(5), 0)
    try:
        for index, (a, b) in enumerate(pairs):
            poller.set_reader(a.fileno(), lambda index=index: calls.__setitem__(
                index, calls[index] + 1))
            b.send(b"x")
        assert [poller.poll(1.0) for _ in range(5)] == [2] * 5
        assert calls == dict.fromkeys(range(5), 2)
    finally:
        close_pairs(pairs)
        poller.close()


@pytest.mark.parametrize("name", [name for name in SELECTOR_NAMES if name != "epoll"])
def test_other_backends_take_every_ready_fd_whatever_max_events_says(name: str) -> None:
    """select() and poll() report in fd order: a cap would starve the highest fds."""
    poller = Poller.create(name, max_events=1)
    pairs = make_pairs(3)
    try:
        for a, b in pairs:
            poller.set_reader(a.fileno(), lambda: None)
            b.send(b"x")
        assert poller.poll(1.0) == 3
    finally:
        close_pairs(pairs)
        poller.close()


def test_max_events_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Poller.create(max_events=0)


@needs_epoll
def test_a_reactor_with_max_events_runs_that_many_readers_a_pass() -> None:
    reactor = Reactor("epoll", max_events=2)
    pairs = make_pairs(3)
    called: list[int] = []
    try:
        for index, (a, b) in enumerate(pairs):
            reactor.add_reader(a.fileno(), called.append, index)
            b.send(b"x")
        reactor.run_once(1.0)
        assert len(called) == 2
        reactor.run_once(1.0)
        assert len(called) == 4 and set(called) == {0, 1, 2}  # the third had its turn
    finally:
        close_pairs(pairs)
        reactor.close()


def test_without_on_error_an_io_callback_exception_propagates(poller: Poller, pair: Pair) -> None:
    a, b = pair

    def broken() -> None:
        raise ValueError("from the reader")

    poller.set_reader(a.fileno(), broken)
    b.send(b"x")
    with pytest.raises(ValueError, match="from the reader"):
        poller.poll(1.0)


def test_on_error_gets_the_exception_and_the_fd(pair: Pair) -> None:
    a, b = pair
    seen: list[tuple[BaseException, int]] = []
    poller = Poller("select", on_error=lambda exc, fd: seen.append((exc, fd)))
    try:
        error = ValueError("boom")

        def broken() -> None:
            raise error

        poller.set_reader(a.fileno(), broken)
        b.send(b"x")
        poller.poll(1.0)
        assert seen == [(error, a.fileno())]
    finally:
        poller.close()


# -- through the reactor: the error is logged and the loop goes on ------------------------------


def test_exception_in_an_io_callback_is_logged_and_the_loop_continues(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    pairs = make_pairs(2)
    try:
        (bad_a, bad_b), (good_a, good_b) = pairs
        good: list[bytes] = []

        def broken() -> None:
            bad_a.recv(10)
            raise RuntimeError("reader blew up")

        reactor.add_reader(bad_a.fileno(), broken)
        reactor.add_reader(good_a.fileno(), lambda: good.append(good_a.recv(10)))
        bad_b.send(b"x")
        good_b.send(b"y")
        with caplog.at_level(logging.ERROR, logger="reactor"):
            run_until(reactor, lambda: good == [b"y"], timeout=2.0)
            run_until(reactor, lambda: caplog.records, timeout=2.0)
        [record] = [r for r in caplog.records if "I/O callback" in r.getMessage()]
        assert record.levelno == logging.ERROR
        assert f"fd {bad_a.fileno()}" in record.getMessage()
        assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
        # The loop keeps going: a new event on the good fd is still dispatched.
        good_b.send(b"z")
        ran: list[str] = []
        reactor.call_soon(ran.append, "later")
        run_until(reactor, lambda: good == [b"y", b"z"] and ran == ["later"], timeout=2.0)
        reactor.remove_reader(bad_a.fileno())
        reactor.remove_reader(good_a.fileno())
    finally:
        close_pairs(pairs)


# -- waits longer than a backend can express ----------------------------------------------------

#: Every backend: the generic poller over each selectors class, and the direct epoll one.
BACKENDS = [*((name, "generic") for name in SELECTOR_NAMES), ("epoll", "direct")]


@pytest.mark.parametrize(("name", "kind"), BACKENDS, ids=[f"{n}-{k}" for n, k in BACKENDS])
@pytest.mark.parametrize("timeout", [1e7, 3e9, float("inf")])
def test_a_wait_too_long_for_the_backend_is_capped_not_an_overflow(
    name: str, kind: str, timeout: float, pair: Pair
) -> None:
    if name not in SELECTOR_CLASSES:
        pytest.skip(f"no {name} on this platform")
    poller = Poller.create(name) if kind == "direct" else Poller(name)
    assert (kind == "direct") == (type(poller).__name__ == "EpollPoller")
    try:
        ran: list[str] = []
        pair[1].send(b"x")  # already readable: the capped wait returns at once
        poller.set_reader(pair[0].fileno(), lambda: ran.append("read"))
        assert poller.poll(timeout) == 1 and ran == ["read"]
    finally:
        poller.close()


@pytest.mark.parametrize("name", SELECTOR_NAMES)
def test_a_timer_far_in_the_future_does_not_crash_the_loop(name: str, pair: Pair) -> None:
    reactor = Reactor(name)
    try:
        reactor.call_later(1e7, lambda: None)  # about 116 days: over epoll's int milliseconds
        woke: list[str] = []
        pair[1].send(b"x")
        reactor.add_reader(pair[0].fileno(), lambda: woke.append("read"))
        reactor.run_once()
        assert woke == ["read"] and len(reactor._timers) == 1
    finally:
        reactor.close()

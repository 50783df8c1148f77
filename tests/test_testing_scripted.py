"""reactor.testing's scripted doubles: steps play in order, the rest is the real socket's, and
a scripted selector adds readiness exactly as a real one reports it."""

from __future__ import annotations

import errno
import selectors
import socket
from collections.abc import Iterator

import pytest

from reactor import Protocol, Reactor
from reactor.connection import Connection
from reactor.poller import EVENT_READ, EVENT_WRITE, SELECTOR_CLASSES
from reactor.testing import (
    SELECT_HISTORY_LENGTH,
    ScriptedSelector,
    ScriptedSocket,
    Step,
    scripted_listening_socket,
    scripted_socketpair,
)
from tests.helpers import SELECTOR_NAMES


@pytest.fixture
def pair() -> Iterator[tuple[ScriptedSocket, socket.socket]]:
    sock, peer = scripted_socketpair()
    yield sock, peer
    sock.close()
    peer.close()


# -- Step and ScriptedSocket -----------------------------------------------------------------


@pytest.mark.parametrize(("code", "kind"), [(errno.ECONNRESET, ConnectionResetError),
                                            (errno.EAGAIN, BlockingIOError),
                                            (errno.EPIPE, BrokenPipeError),
                                            (errno.EMFILE, OSError)])
def test_raises_an_errno_as_the_oserror_subclass_the_kernel_would_give(
    pair: tuple[ScriptedSocket, socket.socket], code: int, kind: type[OSError]
) -> None:
    sock, _ = pair
    sock.script("recv", Step.raises(code))
    with pytest.raises(OSError) as caught:
        sock.recv(10)
    assert type(caught.value) is kind and caught.value.errno == code


def test_raises_any_exception_instance_as_given(pair: tuple[ScriptedSocket, socket.socket]) -> None:
    sock, _ = pair
    interrupt = KeyboardInterrupt()
    sock.script("connect", Step.raises(interrupt))
    with pytest.raises(KeyboardInterrupt) as caught:
        sock.connect("anywhere")
    assert caught.value is interrupt


def test_returns_a_value_without_touching_the_socket(
    pair: tuple[ScriptedSocket, socket.socket]
) -> None:
    sock, peer = pair
    peer.send(b"real")
    sock.script("recv", Step.returns(b""))
    assert sock.recv(10) == b""
    assert sock.recv(10) == b"real"  # still there: the scripted call did not read it


def test_accepts_gives_exactly_k_bytes_to_the_real_socket_for_send_and_sendmsg(
    pair: tuple[ScriptedSocket, socket.socket]
) -> None:
    sock, peer = pair
    sock.script("send", Step.accepts(3))
    sock.script("sendmsg", Step.accepts(4))
    assert sock.send(b"hello") == 3
    assert sock.sendmsg([b"ab", memoryview(b"cdef")]) == 4
    assert peer.recv(100) == b"helabcd"


def test_real_puts_a_real_call_between_scripted_ones(
    pair: tuple[ScriptedSocket, socket.socket]
) -> None:
    sock, peer = pair
    sock.script("send", Step.raises(errno.EAGAIN), Step.real(), Step.raises(errno.EPIPE))
    with pytest.raises(BlockingIOError):
        sock.send(b"a")
    assert sock.send(b"b") == 1
    with pytest.raises(BrokenPipeError):
        sock.send(b"c")
    assert sock.send(b"d") == 1  # the script ran out: the real socket answers
    assert peer.recv(10) == b"bd"


def test_every_call_is_recorded_with_its_step_and_outcome(
    pair: tuple[ScriptedSocket, socket.socket]
) -> None:
    sock, _ = pair
    sock.script("recv", Step.raises(errno.EINTR))
    with pytest.raises(InterruptedError):
        sock.recv(5)
    with pytest.raises(BlockingIOError):  # real: nothing to read on a non-blocking socket
        sock.recv(5)
    first, second = sock.calls
    assert (first.name, first.args, first.step is not None) == ("recv", (5, 0), True)
    assert isinstance(first.error, InterruptedError)
    assert second.step is None and isinstance(second.error, BlockingIOError)
    assert sock.called("recv") == [first, second] and sock.called("send") == []


def test_unused_lists_the_steps_not_played_yet(pair: tuple[ScriptedSocket, socket.socket]) -> None:
    sock, _ = pair
    step = Step.raises(errno.ENOTCONN)
    sock.script("shutdown", step)
    sock.script("recv")
    assert sock.unused() == {"shutdown": [step]}
    with pytest.raises(OSError):
        sock.shutdown(socket.SHUT_WR)
    assert sock.unused() == {}


def test_only_calls_the_reactor_makes_can_be_scripted(
    pair: tuple[ScriptedSocket, socket.socket]
) -> None:
    sock, _ = pair
    with pytest.raises(ValueError, match="cannot script 'recv_into'"):
        sock.script("recv_into", Step.returns(0))
    original = socket.socket()
    with pytest.raises(ValueError):
        ScriptedSocket(original, dup=[Step.returns(None)])
    assert original.fileno() != -1  # refused before taking the descriptor over
    original.close()


def test_repr_plays_no_step(pair: tuple[ScriptedSocket, socket.socket]) -> None:
    sock, _ = pair
    sock.script("getsockname", Step.returns("scripted"))
    assert "ScriptedSocket" in repr(sock)
    assert sock.getsockname() == "scripted"


def test_it_takes_over_the_descriptor_and_stays_non_blocking() -> None:
    original = socket.socket()
    fd = original.fileno()
    sock = ScriptedSocket(original)
    try:
        assert original.fileno() == -1 and sock.fileno() == fd
        assert isinstance(sock, socket.socket) and sock.getblocking() is False
    finally:
        sock.close()


def test_tcp_pairs_datagram_pairs_and_listening_sockets_are_real() -> None:
    tcp, tcp_peer = scripted_socketpair(socket.AF_INET)
    datagram, datagram_peer = scripted_socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    listening = scripted_listening_socket(accept=[Step.raises(errno.EMFILE)])
    client = socket.create_connection(listening.getsockname(), timeout=2)
    try:
        assert tcp.family == socket.AF_INET and tcp.getpeername() == tcp_peer.getsockname()
        tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        datagram.send(b"one")
        datagram.send(b"two")
        assert [datagram_peer.recv(10), datagram_peer.recv(10)] == [b"one", b"two"]
        with pytest.raises(OSError) as caught:
            listening.accept()
        assert caught.value.errno == errno.EMFILE
        accepted, _ = listening.accept()  # the real backlog still holds the client
        accepted.close()
    finally:
        for sock in (tcp, tcp_peer, datagram, datagram_peer, listening, client):
            sock.close()


def test_the_module_docstring_example_runs_against_a_real_connection() -> None:
    reactor = Reactor()
    sock, peer = scripted_socketpair(send=[Step.accepts(3), Step.raises(errno.EPIPE)])
    try:
        conn = Connection(reactor, sock, Protocol(), "peer")
        conn._start()
        conn.write(b"hello")
        reactor.run_once(0)
        assert peer.recv(10) == b"hel"
        assert [call.name for call in sock.calls] == ["send", "send", "setsockopt", "close"]
    finally:
        peer.close()
        reactor.run_once(0)
        reactor.close()


# -- ScriptedSelector ------------------------------------------------------------------------


@pytest.fixture(params=SELECTOR_NAMES)
def selector(request: pytest.FixtureRequest) -> Iterator[ScriptedSelector]:
    made = ScriptedSelector.over(SELECTOR_CLASSES[request.param])()
    yield made
    made.close()


@pytest.fixture
def plain_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_over_makes_a_class_that_keeps_its_own_instances() -> None:
    first = ScriptedSelector.over(selectors.PollSelector)
    second = ScriptedSelector.over(selectors.PollSelector)
    made = first()
    try:
        assert first.instances == [made] and second.instances == []
        assert first.__name__ == "ScriptedPollSelector"
    finally:
        made.close()
    with pytest.raises(TypeError, match="over"):
        ScriptedSelector()


def test_a_reactor_runs_on_a_scripted_selector() -> None:
    selector_class = ScriptedSelector.over(selectors.DefaultSelector)
    reactor = Reactor(selector_class)
    try:
        ran: list[int] = []
        reactor.call_soon(ran.append, 1)
        reactor.run_once(0)
        assert ran == [1] and len(selector_class.instances) == 1
    finally:
        reactor.close()


@pytest.mark.timeout(5)
def test_a_report_makes_the_next_select_return_at_once_with_it_then_only_the_kernel_speaks(
    selector: ScriptedSelector, plain_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = plain_pair
    selector.register(a.fileno(), EVENT_READ | EVENT_WRITE, "data")
    selector.report(a.fileno(), EVENT_READ)
    [(key, events)] = selector.select(None)  # None would block forever without the report
    assert key.data == "data" and events == EVENT_READ | EVENT_WRITE  # writable for real too
    [(_, events)] = selector.select(0)
    assert events == EVENT_WRITE
    assert list(selector.history)[-2:] == [{a.fileno(): EVENT_READ | EVENT_WRITE},
                                           {a.fileno(): EVENT_WRITE}]


def test_a_report_is_masked_by_the_registered_interest_like_a_real_selector(
    selector: ScriptedSelector, plain_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = plain_pair
    selector.register(b.fileno(), EVENT_READ)
    selector.report(b.fileno(), EVENT_READ | EVENT_WRITE)  # a hang-up
    selector.report(a.fileno(), EVENT_READ)  # not registered: not reported
    assert [(key.fd, events) for key, events in selector.select(0)] == [(b.fileno(), EVENT_READ)]


def test_history_is_bounded(
    selector: ScriptedSelector, plain_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = plain_pair
    selector.register(a.fileno(), EVENT_WRITE)
    for _ in range(SELECT_HISTORY_LENGTH + 5):
        selector.select(0)
    assert len(selector.history) == SELECT_HISTORY_LENGTH


def test_register_modify_and_unregister_go_to_the_real_selector(
    selector: ScriptedSelector, plain_pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = plain_pair
    selector.register(a.fileno(), EVENT_READ, 1)
    selector.modify(a.fileno(), EVENT_WRITE, 2)
    assert selector.get_key(a.fileno()).data == 2
    assert [events for _, events in selector.select(0)] == [EVENT_WRITE]
    selector.unregister(a.fileno())
    assert len(selector.get_map()) == 0
    assert selector.select(0) == []

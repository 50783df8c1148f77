"""The test helpers against a peer that already reset the connection (``tests/resets.py``).

Another process decides when its RST arrives, so a helper that sends, shuts down and reads may
meet it at any of those calls. Here the RST is made to arrive first, for real, over loopback:
the other end closes with ``SO_LINGER`` 0 and the test waits until our socket has seen it. For
the window between a helper's last ``send`` and its ``shutdown``, the socket's ``send`` itself
resets the peer before it returns.
"""

from __future__ import annotations

import errno
import select
import socket
from collections.abc import Callable, Iterator

import pytest

from reactor import Reactor
from tests.helpers import Peer
from tests.processes import Client, exchange, transfer
from tests.resets import close_with_reset, shutdown_write

Connect = Callable[..., tuple[socket.socket, socket.socket]]


def wait_for_reset(sock: socket.socket, other_end: socket.socket) -> None:
    """Reset the connection from ``other_end`` and wait until ``sock`` has taken the RST in (a
    pending error makes a socket readable)."""
    close_with_reset(other_end)
    readable, _, _ = select.select([sock], [], [], 5.0)
    assert readable, "the RST did not arrive within 5 s"


class ResetAfterSend(socket.socket):
    """A client socket whose peer resets the connection as soon as a ``send`` has succeeded: the
    RST is in before the caller's next call, as when a proxy's chaos reset strikes at the last
    byte we sent."""

    other_end: socket.socket | None = None

    def send(self, data: bytes, flags: int = 0) -> int:  # type: ignore[override]
        sent = super().send(data, flags)
        if self.other_end is not None:
            wait_for_reset(self, self.other_end)
            self.other_end = None
        return sent


@pytest.fixture
def connect() -> Iterator[Connect]:
    """``connect(cls=socket.socket)``: a connected loopback pair (ours, the other end); every
    socket is closed when the test ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    made: list[socket.socket] = [listener]

    def make(cls: type[socket.socket] = socket.socket) -> tuple[socket.socket, socket.socket]:
        ours = cls(socket.AF_INET, socket.SOCK_STREAM)
        made.append(ours)
        ours.settimeout(5.0)
        ours.connect(listener.getsockname())
        other_end, _ = listener.accept()
        made.append(other_end)
        return ours, other_end

    yield make
    for sock in made:
        sock.close()


# -- the facts the helpers depend on ---------------------------------------------------------------


def test_after_a_reset_shutdown_says_enotconn_and_leaves_the_reset_for_recv(
        connect: Connect) -> None:
    ours, other_end = connect()
    wait_for_reset(ours, other_end)
    with pytest.raises(OSError) as raised:
        ours.shutdown(socket.SHUT_WR)
    assert raised.value.errno == errno.ENOTCONN
    with pytest.raises(ConnectionResetError):
        ours.recv(100)
    assert ours.recv(100) == b"", "once reported, a reset reads as an EOF"


def test_after_a_send_met_the_reset_the_next_send_says_epipe(connect: Connect) -> None:
    ours, other_end = connect()
    wait_for_reset(ours, other_end)
    with pytest.raises(ConnectionResetError):
        ours.send(b"x")
    with pytest.raises(BrokenPipeError):
        ours.send(b"x")


# -- the helpers ------------------------------------------------------------------------------------


def test_shutdown_write_reports_a_reset_that_came_first_as_connection_reset_error(
        connect: Connect) -> None:
    ours, other_end = connect()
    wait_for_reset(ours, other_end)
    with pytest.raises(ConnectionResetError, match="ENOTCONN"):
        shutdown_write(ours)


def test_shutdown_write_on_a_live_connection_sends_fin(connect: Connect) -> None:
    ours, other_end = connect()
    shutdown_write(ours)
    other_end.settimeout(5.0)
    assert other_end.recv(100) == b""


def test_transfer_reports_a_reset_that_lands_between_the_last_send_and_the_shutdown(
        connect: Connect) -> None:
    ours, other_end = connect(ResetAfterSend)
    assert isinstance(ours, ResetAfterSend)
    ours.other_end = other_end
    received, sent, reset = transfer(ours, b"all of it")  # once raised OSError: ENOTCONN
    assert reset
    assert sent == len(b"all of it") and received == b""


def test_transfer_reports_a_reset_that_came_before_anything_was_sent(connect: Connect) -> None:
    ours, other_end = connect()
    wait_for_reset(ours, other_end)
    assert transfer(ours, b"too late") == (b"", 0, True)


def test_exchange_fails_on_a_reset_saying_so(connect: Connect) -> None:
    ours, other_end = connect()
    wait_for_reset(ours, other_end)
    with pytest.raises(AssertionError, match="reset after sending 0 of 5 bytes"):
        exchange(ours, b"hello")


def test_client_shutdown_write_after_a_reset_raises_connection_reset_error(
        connect: Connect) -> None:
    ours, other_end = connect()
    wait_for_reset(ours, other_end)
    with pytest.raises(ConnectionResetError):
        Client(ours).shutdown_write()


@pytest.mark.parametrize("first", ["send", "finish", "pump"])
def test_peer_keeps_a_reset_met_by_any_call_and_then_stops(connect: Connect, first: str) -> None:
    ours, other_end = connect()
    reactor = Reactor()
    try:
        peer = Peer(reactor, ours)
        wait_for_reset(ours, other_end)
        {"send": lambda: peer.send(b"after the reset"), "finish": peer.finish,
         "pump": peer.pump}[first]()
        assert isinstance(peer.error, ConnectionResetError)
        peer.send(b"more")
        peer.finish()
        peer.pump()
        assert isinstance(peer.error, ConnectionResetError)
        assert not peer.eof, "the b'' after a reported reset is not the server's FIN"
        assert peer.outgoing == b""
    finally:
        reactor.close()

"""connection_lost is queued before the socket is closed.

The peer learns of our close the moment ``close()`` returns, and may react at once: the race
seen was a test that sent SIGINT as soon as it read our FIN, and the server's shutdown counted
the connection as still open, because the signal's callback had been queued between
``sock.close()`` and the ``call_soon(connection_lost)`` that followed it. Here the socket's
own ``close()`` plays the peer and schedules its reaction at exactly that moment.
"""

from __future__ import annotations

import socket

import pytest

from reactor import DatagramProtocol, Protocol, Reactor
from reactor.connection import Connection
from reactor.datagram import DatagramTransport
from tests.helpers import run_until

pytestmark = pytest.mark.timeout(10)


class ReactingSocket(socket.socket):
    """A socket whose ``close()`` schedules what a fast peer would do on seeing it."""

    reactor: Reactor
    order: list[str]

    def close(self) -> None:
        super().close()
        self.reactor.call_soon(self.order.append, "the peer's reaction")


def reacting_pair(reactor: Reactor, order: list[str],
                  kind: int = socket.SOCK_STREAM) -> tuple[ReactingSocket, socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, kind)
    sock = ReactingSocket(fileno=ours.detach())
    sock.reactor, sock.order = reactor, order
    sock.setblocking(False)
    return sock, theirs


class Records(Protocol):
    def __init__(self, order: list[str]) -> None:
        self.order = order

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.order.append("connection_lost")


@pytest.mark.parametrize("ending", ["close", "abort"])
def test_connection_lost_comes_before_anything_the_close_caused(ending: str) -> None:
    reactor, order = Reactor(), []
    sock, theirs = reacting_pair(reactor, order)
    try:
        connection = Connection(reactor, sock, Records(order), "socketpair")
        connection._start()
        theirs.shutdown(socket.SHUT_WR)  # their FIN first, so close() need not linger
        run_until(reactor, lambda: connection.state.name != "OPEN" or connection._saw_eof)
        getattr(connection, ending)()
        run_until(reactor, lambda: len(order) == 2)
        assert order == ["connection_lost", "the peer's reaction"]
    finally:
        theirs.close()
        reactor.close()


def test_a_datagram_transport_queues_connection_lost_first_too() -> None:
    class DatagramRecords(DatagramProtocol):
        def connection_lost(self, exc: BaseException | None) -> None:
            super().connection_lost(exc)
            order.append("connection_lost")

    reactor, order = Reactor(), []
    sock, theirs = reacting_pair(reactor, order, socket.SOCK_DGRAM)
    try:
        transport = DatagramTransport(reactor, sock, DatagramRecords(), None)
        transport._start()
        transport.close()
        run_until(reactor, lambda: len(order) == 2)
        assert order == ["connection_lost", "the peer's reaction"]
    finally:
        theirs.close()
        reactor.close()

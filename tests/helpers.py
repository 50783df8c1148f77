"""Helpers shared by the tests: run a reactor until something happens, with a deadline."""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable
from typing import Any

from reactor import Connection, Reactor
from reactor.poller import SELECTOR_CLASSES

#: Every selector class this platform offers, by name ("default" is one of the others).
SELECTOR_NAMES = sorted(name for name in SELECTOR_CLASSES if name != "default")


def run_until(reactor: Reactor, condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Run loop passes until ``condition()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"condition not met within {timeout}s: {condition}")
        reactor.run_once(min(remaining, 0.05))


def fill_socket(sock: socket.socket) -> int:
    """Write into non-blocking ``sock`` until the kernel says EAGAIN; return bytes written."""
    sock.setblocking(False)
    total = 0
    chunk = b"x" * 65536
    while True:
        try:
            total += sock.send(chunk)
        except BlockingIOError:
            return total


def drain_socket(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read from ``sock`` until EOF (or the deadline, which fails the test)."""
    sock.settimeout(timeout)
    parts = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(parts)
        parts.append(data)


def selector_class(name: str) -> type[selectors.BaseSelector]:
    return SELECTOR_CLASSES[name]


class Server:
    """A listener that keeps its protocols (the user's, not the checker's wrappers) and clients."""

    def __init__(self, reactor: Reactor, factory: Callable[[], Any],
                 blocking_clients: bool = True) -> None:
        self.reactor = reactor
        self.blocking_clients = blocking_clients
        self.protocols: list[Any] = []
        self.clients: list[socket.socket] = []

        def make() -> Any:
            protocol = factory()
            self.protocols.append(protocol)
            return protocol

        self.listener = reactor.listen_tcp(make, "127.0.0.1", 0)

    def connect(self) -> tuple[socket.socket, Connection]:
        """A client socket (blocking with a 5 s timeout, or non-blocking), and the server's
        connection once it is accepted."""
        client = socket.create_connection(self.listener.address, timeout=5)
        if not self.blocking_clients:
            client.setblocking(False)
        self.clients.append(client)
        count = len(self.protocols)
        run_until(self.reactor, lambda: len(self.protocols) > count)
        transport = self.protocols[count].transport
        assert transport is not None
        return client, transport

    def close(self) -> None:
        for connection in list(self.listener.connections):
            connection.abort()
        self.listener.close()
        for client in self.clients:
            client.close()
        self.reactor.run_once(0)


def start_server(reactor: Reactor, servers: list[Server], *,
                 blocking_clients: bool = True) -> Callable[[Callable[[], Any]], Server]:
    """A ``serve(factory)`` function that records every server it starts in ``servers``."""

    def start(factory: Callable[[], Any]) -> Server:
        server = Server(reactor, factory, blocking_clients)
        servers.append(server)
        return server

    return start

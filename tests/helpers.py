"""Helpers shared by the tests: run a reactor until something happens, with a deadline."""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable

from reactor import Reactor
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

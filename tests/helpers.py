"""Helpers shared by the reactor-level tests: run a reactor until something happens, with a
deadline; the protocols that record what the reactor did (``Recorder``, ``DatagramRecorder``) or
echo (``Echo``); a plain client socket driven between loop passes (``Peer``); and a loopback
listener that keeps its protocols and clients for the test to look at and to clean up
(``Server``, behind conftest's ``serve`` fixture).

One thread plays both ends of every connection here, so nothing in this module blocks on a
socket: a client does its non-blocking I/O between the reactor's passes (``pump_until``).

The other end resetting the connection is an outcome a test looks at, never a crash of the
helper: ``Peer`` keeps it in ``error`` from whichever call met it (``tests/resets.py`` says why
that can be any of them).

Read next: ``tests/conftest.py`` (the ``reactor`` and ``serve`` fixtures) and
``tests/processes.py`` (the same ideas for example programs run as subprocesses).
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from reactor import ByteBuffer, Connection, DatagramProtocol, Protocol, Reactor
from reactor.datagram import DatagramTransport
from reactor.poller import SELECTOR_CLASSES
from tests.resets import PEER_RESET_ERRORS, close_with_reset, shutdown_write

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
    parts: list[bytes] = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(parts)
        parts.append(data)


def selector_class(name: str) -> type[selectors.BaseSelector]:
    return SELECTOR_CLASSES[name]


# -- protocols that record -----------------------------------------------------------------------


class ProtocolBug(Exception):
    """Raised on purpose by a recorder's callback named in its ``fail_in``."""


class Recording:
    """What both recorders share: every callback in ``events``, in order, by a short name;
    every ``connection_lost`` argument in ``lost_with`` (one, when the contract holds); and
    ``fail_in``, the callbacks that raise ``ProtocolBug`` once they have recorded, to test the
    reactor's exception policy."""

    def __init__(self, fail_in: Iterable[str]) -> None:
        self.fail_in = frozenset(fail_in)
        self.events: list[str] = []
        self.lost_with: list[BaseException | None] = []

    def _event(self, name: str) -> None:
        self.events.append(name)
        if name in self.fail_in:
            raise ProtocolBug(f"{name} failed on purpose")

    def _lost(self, exc: BaseException | None) -> None:
        self.lost_with.append(exc)
        self._event("lost")

    @property
    def lost(self) -> bool:
        return "lost" in self.events


class Recorder(Recording, Protocol):
    """A stream protocol that records every callback in ``events``, in order, by a short name
    (``made``, ``data``, ``pause``, ``resume``, ``idle``, ``eof``, ``lost``), and otherwise does
    only what the test asks, so that what a test sees is what the reactor did.

    ``keep_open`` is what ``eof_received`` answers, returned as given (the debug-mode checker
    must turn a non-bool answer into a bool); true keeps the connection half-open after the
    peer's FIN. ``consume`` (on by default) takes what arrives into ``received``; off, the bytes
    stay in the connection's receive buffer, to reach its limit. ``echo`` writes them back.
    ``back_pressure`` also does ``Protocol``'s default on ``pause_writing``/``resume_writing``
    (stop, then restart, reading this peer); off, writing tests keep reading. ``idle_timed_out``
    only records: the base class would close.

    ``conn`` is the connection, kept after ``connection_lost`` (which clears ``transport``);
    ``sizes_at_pause`` and ``sizes_at_resume`` the send queue's size at each of those calls.
    """

    def __init__(self, *, keep_open: Any = False, consume: bool = True, echo: bool = False,
                 back_pressure: bool = False, fail_in: Iterable[str] = ()) -> None:
        self.keep_open = keep_open
        self.consume = consume
        self.echo = echo
        self.back_pressure = back_pressure
        super().__init__(fail_in)
        self.received = bytearray()
        self.conn: Connection | None = None
        self.sizes_at_pause: list[int] = []
        self.sizes_at_resume: list[int] = []

    def events_but_data(self) -> list[str]:
        """``events`` without ``data``: how many ``data_received`` calls some bytes take depends
        on how the kernel split them, which a test about the other callbacks does not decide."""
        return [event for event in self.events if event != "data"]

    def connection_made(self, transport: Connection) -> None:
        super().connection_made(transport)
        self.conn = transport
        self._event("made")

    def data_received(self, buffer: ByteBuffer) -> None:
        if self.consume:
            data = buffer.take()
            self.received += data
            if self.echo:
                assert self.conn is not None
                self.conn.write(data)
        self._event("data")

    def eof_received(self) -> bool:
        self._event("eof")
        return self.keep_open  # as given, not made a bool: see the class docstring

    def pause_writing(self) -> None:
        if self.conn is not None:
            self.sizes_at_pause.append(self.conn.get_write_buffer_size())
        if self.back_pressure:
            super().pause_writing()
        self._event("pause")

    def resume_writing(self) -> None:
        if self.conn is not None:
            self.sizes_at_resume.append(self.conn.get_write_buffer_size())
        if self.back_pressure:
            super().resume_writing()
        self._event("resume")

    def idle_timed_out(self, idle_seconds: float) -> None:
        self._event("idle")

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self._lost(exc)


class Echo(Protocol):
    """Writes back everything it receives. Appends itself to ``made`` when given one; keeps its
    connection in ``conn`` after ``connection_lost`` and every exception it was lost with."""

    def __init__(self, made: list[Echo] | None = None) -> None:
        self.conn: Connection | None = None
        self.lost_with: list[BaseException | None] = []
        if made is not None:
            made.append(self)

    def connection_made(self, transport: Connection) -> None:
        super().connection_made(transport)
        self.conn = transport

    def data_received(self, buffer: ByteBuffer) -> None:
        assert self.conn is not None
        self.conn.write(buffer.take())

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.lost_with.append(exc)


class DatagramRecorder(Recording, DatagramProtocol):
    """``Recorder`` for datagram transports: ``events`` are ``made``, ``datagram``, ``error``,
    ``pause``, ``resume``, ``lost``; each datagram is in ``datagrams`` with its sender at the same
    index of ``senders``, every ``error_received`` in ``errors``."""

    def __init__(self, *, fail_in: Iterable[str] = ()) -> None:
        super().__init__(fail_in)
        self.datagrams: list[bytes] = []
        self.senders: list[Any] = []
        self.errors: list[OSError] = []

    def connection_made(self, transport: DatagramTransport) -> None:
        super().connection_made(transport)
        self._event("made")

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams.append(data)
        self.senders.append(addr)
        self._event("datagram")

    def error_received(self, exc: OSError) -> None:
        self.errors.append(exc)
        self._event("error")

    def pause_writing(self) -> None:
        self._event("pause")

    def resume_writing(self) -> None:
        self._event("resume")

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self._lost(exc)


RecorderT = TypeVar("RecorderT", bound=Recording)


def _recorder_of(transport: Connection | DatagramTransport, kind: type[RecorderT]) -> RecorderT:
    """The ``kind`` behind ``transport``: in debug mode ``transport.protocol`` is the user's
    protocol, not the checker wrapped around it."""
    protocol = transport.protocol
    assert isinstance(protocol, kind), protocol
    return protocol


def recorder_of(conn: Connection) -> Recorder:
    return _recorder_of(conn, Recorder)


def datagram_recorder_of(transport: DatagramTransport) -> DatagramRecorder:
    return _recorder_of(transport, DatagramRecorder)


# -- the client side -----------------------------------------------------------------------------


class Peer:
    """The other end of a connection under test: a plain socket, made non-blocking, whose I/O
    happens between loop passes (``pump``), so one thread plays both ends.

    ``send`` writes what the kernel takes at once and queues the rest, in order; ``finish`` asks
    for ``shutdown(SHUT_WR)`` (our FIN) once the queue is empty. ``pump`` sends what it can of
    the queue, shuts down if asked and everything went, then reads all the kernel holds into
    ``received`` unless ``reading`` is false (a peer that does not read fills the server's send
    queue). ``eof`` is set when ``recv`` returns ``b""``, the server's FIN. ``error`` is the server's
    reset, met by whichever of ``send``, ``shutdown`` or ``recv`` came first after it; from then
    on the peer does no more I/O (a later ``recv`` would return ``b""`` as if at a clean EOF) and
    drops what it had queued.
    """

    def __init__(self, reactor: Reactor, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.reactor = reactor
        self.sock = sock
        self.outgoing = bytearray()
        self.shutdown_when_sent = False
        self.received = bytearray()
        self.reading = True
        self.eof = False
        self.error: OSError | None = None

    def _reset(self, exc: OSError) -> None:
        self.error = exc
        self.outgoing.clear()
        self.shutdown_when_sent = False

    def send(self, data: bytes) -> None:
        if self.error is None:  # after a reset there is nobody to send to
            self.outgoing += data
            self._flush()

    def finish(self) -> None:
        """``shutdown(SHUT_WR)`` once everything queued has been sent."""
        self.shutdown_when_sent = True
        self._flush()

    def _flush(self) -> None:
        try:
            while self.outgoing and self.error is None:
                del self.outgoing[:self.sock.send(self.outgoing)]
            if self.shutdown_when_sent and not self.outgoing and self.error is None:
                self.shutdown_when_sent = False
                shutdown_write(self.sock)
        except BlockingIOError:
            pass
        except PEER_RESET_ERRORS as exc:
            self._reset(exc)

    def pump(self) -> None:
        self._flush()
        while self.reading and not self.eof and self.error is None:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return
            except PEER_RESET_ERRORS as exc:
                self._reset(exc)
                return
            if not data:
                self.eof = True
                return
            self.received += data

    def pump_until(self, condition: Callable[[], object], timeout: float = 5.0) -> None:
        pump_until(self.reactor, [self], condition, timeout)

    def line(self) -> bytes:
        """The next line the server sent (waiting for it), taken out of ``received``."""
        self.pump_until(lambda: b"\n" in self.received)
        end = self.received.index(b"\n") + 1
        line = bytes(self.received[:end])
        del self.received[:end]
        return line

    def until_closed(self) -> None:
        """Pump until the server's FIN or RST."""
        self.pump_until(lambda: self.eof or self.error is not None)

    def reset(self) -> None:
        """Close with RST instead of FIN."""
        close_with_reset(self.sock)


def pump_until(reactor: Reactor, peers: Iterable[Peer], condition: Callable[[], object],
               timeout: float = 5.0) -> None:
    """Run loop passes, pumping every peer before each check of ``condition``."""
    peers = list(peers)

    def step() -> object:
        for peer in peers:
            peer.pump()
        return condition()

    run_until(reactor, step, timeout)


# -- the server side -----------------------------------------------------------------------------


class Server:
    """A loopback listener that keeps, for the test to look at and to clean up, the protocols its
    factory made (the user's objects, not debug mode's checker wrappers), in accept order, and
    every client it connected (blocking with a 5 s timeout, or non-blocking if told)."""

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
        """A client socket, and the server's connection once it is accepted (its protocol's
        ``connection_made`` has run: ``connection_lost`` can only come on a later pass)."""
        client = socket.create_connection(self.listener.address, timeout=5)
        if not self.blocking_clients:
            client.setblocking(False)
        self.clients.append(client)
        count = len(self.protocols)
        run_until(self.reactor, lambda: len(self.protocols) > count)
        transport = self.protocols[count].transport
        assert transport is not None
        return client, transport

    def peer(self) -> tuple[Peer, Connection]:
        """``connect()``, with the client as a ``Peer``."""
        client, conn = self.connect()
        return Peer(self.reactor, client), conn

    def close(self) -> None:
        """Abort every connection still open (those over ``max_connections`` too), close the
        listener and the clients."""
        for connection in list(self.listener.connections):
            connection.abort()
        for protocol in self.protocols:
            if getattr(protocol, "transport", None) is not None:
                protocol.transport.abort()
        self.listener.close()
        for client in self.clients:
            client.close()
        self.reactor.run_once(0)


def start_server(reactor: Reactor, servers: list[Server]) -> Callable[..., Server]:
    """A ``serve(factory, blocking_clients=True)`` function that records every server it starts
    in ``servers``."""

    def start(factory: Callable[[], Any], *, blocking_clients: bool = True) -> Server:
        server = Server(reactor, factory, blocking_clients)
        servers.append(server)
        return server

    return start

"""Test doubles: for protocol authors, a fake transport, a chunk feeder and a manual clock; for the
reactor's own tests, scripted sockets and a scripted selector.

Owns no loop, and no socket except the real ones a scripted socket stands on.

Protocols without sockets
-------------------------
A protocol only ever talks to its transport, so a protocol can be unit-tested by handing it a
``FakeTransport`` that records what it is told to do, and by calling the protocol's events by hand
(Twisted ships the same idea as ``StringTransport``)::

    from protocols.uppercase import UppercaseProtocol
    from reactor.testing import connect, feed

    protocol = UppercaseProtocol()
    transport = connect(protocol)                  # calls connection_made(transport)
    feed(protocol, transport, b"hi\\nthere\\n", chunk_size=1)
    assert transport.written == b"HI\\nTHERE\\n"
    transport.lose()                               # calls connection_lost(None), once

Framing code should be fed at every chunk size from 1 byte up (``feed``'s ``chunk_size``), since
TCP may split a stream anywhere. ``FakeTransport`` never calls ``connection_lost`` by itself, even
after ``close()``: the real connection does that on a later loop pass, and a test says when with
``lose()``. Set ``peer_reading = False`` to simulate a peer that does not read: written bytes then
stay queued (``get_write_buffer_size()`` grows, ``pause_writing`` is called past the high-water
mark) until ``drain()``.

The reactor against exact OS behaviour
--------------------------------------
The real ``Connection``, ``Listener`` and ``Connector`` must meet what the kernel says rarely as
well as what it says every day: a ``send()`` that takes 3 bytes and then says EAGAIN, ECONNRESET in
the middle of a write, EMFILE on the third ``accept()``, ``SO_ERROR`` = ECONNREFUSED. Most of it
can be made for real with a ``socketpair`` (fill it for EAGAIN; close one end with unread input
for ECONNRESET); the rest cannot be made on demand, so a ``ScriptedSocket`` plays it. It *is* a
real socket (one end of a real pair, so the selector watches a real fd and readiness is real)
whose calls follow a script, one ``Step`` per call, and fall through to the real socket once the
script runs out. Every call is recorded::

    sock, peer = scripted_socketpair(send=[Step.accepts(3), Step.raises(errno.EPIPE)])
    conn = Connection(reactor, sock, protocol, "peer")
    conn._start()                              # what the listener does with an accepted socket
    conn.write(b"hello")                       # "hel" really goes to the peer; "lo" is queued
    reactor.run_once(0)                        # writable: send("lo") -> EPIPE: the conn aborts
    assert peer.recv(10) == b"hel"
    assert [call.name for call in sock.calls] == ["send", "send", "setsockopt", "close"]

``scripted_listening_socket(accept=[...])`` does the same for a listening socket (wrap it in
``Listener(reactor, sock, factory)``). A ``ScriptedSelector`` wraps a real selector class and
reports readiness the kernel did not (a spurious wakeup, or an error reported as both readable
and writable); ``Reactor(ScriptedSelector.over(selectors.PollSelector))`` runs a loop on one.

Read next: ``tests/test_line_protocol.py`` (the protocol doubles) and ``tests/test_faults.py``
(the scripted ones, with a table of every error branch of the reactor and its test).
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import selectors
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

from reactor.address import SocketAddress, format_address
from reactor.buffer import ByteBuffer
from reactor.connection import MAX_UNCONSUMED_INPUT_BYTES
from reactor.protocol import require_transport_kept
from reactor.transport import HIGH_WATER_BYTES, LOW_WATER_BYTES, resolve_write_limits

if TYPE_CHECKING:
    from reactor.connection import Connection
    from reactor.protocol import Protocol

log = logging.getLogger("reactor.testing")


class FakeTransport:
    """The transport interface of ``reactor.connection.Connection``, recording instead of sending.

    ``writes`` is every accepted ``write`` call in order (``bytes`` are kept as the very objects
    written, so a test can check that nothing was copied); ``written`` is them joined. ``closed``,
    ``aborted``, ``eof_written`` and ``reading`` record the commands received.
    """

    def __init__(
        self,
        protocol: Protocol | None = None,
        peer_address: SocketAddress = ("127.0.0.1", 5555),
        local_address: SocketAddress = ("127.0.0.1", 8000),
    ) -> None:
        self.protocol = protocol
        self.peer_address = peer_address
        self.local_address = local_address
        self.recv_buffer = ByteBuffer()
        self.send_buffer = ByteBuffer()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.eof_written = False
        self.reading = True
        self.lost = False
        self.peer_reading = True
        self.writing_paused = False
        self.high_water_bytes = HIGH_WATER_BYTES
        self.low_water_bytes = LOW_WATER_BYTES
        #: As on a real connection: ``feed`` closes the transport when the protocol leaves more
        #: than this unconsumed (``set_read_buffer_limit`` changes it).
        self.max_unconsumed_bytes = MAX_UNCONSUMED_INPUT_BYTES
        #: Set when ``feed`` closed the transport for that reason, so a test can assert it.
        self.closed_for_unconsumed_input = False

    def __repr__(self) -> str:
        return (
            f"<FakeTransport peer={self.peer_name} closing={self.is_closing()} "
            f"written={len(self.written)} queued={len(self.send_buffer)}>"
        )

    @property
    def peer_name(self) -> str:
        return format_address(self.peer_address)

    @property
    def written(self) -> bytes:
        """Everything written so far, as one ``bytes``."""
        return b"".join(self.writes)

    def clear(self) -> None:
        """Forget what was written (not what is still queued), to check the next reply alone."""
        self.writes.clear()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Record ``data``; like the real one, ``TypeError`` unless bytes-like, dropped if closing.

        Raises ``RuntimeError`` after ``write_eof()``: the FIN is already promised, so the bytes
        could never arrive, and a protocol doing this has a bug a test should see.
        """
        if type(data) is not bytes:
            data = bytes(memoryview(data))
        if self.is_closing():
            return
        if self.eof_written:
            raise RuntimeError("write() after write_eof()")
        if not data:
            return
        self.writes.append(data)
        if not self.peer_reading:
            self.send_buffer.append(data)
            self._check_high_water()

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in lines:
            self.write(data)

    def write_eof(self) -> None:
        self.eof_written = True

    def set_read_buffer_limit(self, max_unconsumed_bytes: int) -> None:
        """How much input the protocol may leave unconsumed before ``feed`` closes us."""
        if max_unconsumed_bytes <= 0:
            raise ValueError("the limit must be positive")
        self.max_unconsumed_bytes = max_unconsumed_bytes

    def close(self) -> None:
        """Record the close; queued bytes stay queued (the real one flushes them first)."""
        self.closed = True

    def abort(self) -> None:
        """Record the abort and drop the queue, as the real one does."""
        self.aborted = True
        self.send_buffer.clear()

    def is_closing(self) -> bool:
        return self.closed or self.aborted or self.lost

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Same rule as the real one (asyncio's): ``low`` defaults to a quarter of ``high``, and
        a queue already past a new mark calls ``pause_writing``/``resume_writing`` at once."""
        self.high_water_bytes, self.low_water_bytes = resolve_write_limits(high, low)
        self._check_high_water()
        self._check_low_water()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.high_water_bytes, self.low_water_bytes

    def get_write_buffer_size(self) -> int:
        return len(self.send_buffer)

    def drain(self, size: int | None = None) -> bytes:
        """The peer reads ``size`` queued bytes (all when ``None``); returns them.

        Calls ``resume_writing`` once the queue is at or below the low-water mark.
        """
        data = self.send_buffer.take(size)
        self._check_low_water()
        return data

    def lose(self, exc: BaseException | None = None) -> None:
        """The connection is over: call ``protocol.connection_lost(exc)``, only the first time.

        Use it after ``close()``/``abort()`` (the real reactor calls ``connection_lost`` on a
        later loop pass) or to simulate the peer vanishing (``exc=ConnectionResetError()``).
        """
        if self.lost:
            return
        self.lost = True
        if self.protocol is not None:
            self.protocol.connection_lost(exc)

    def _check_high_water(self) -> None:
        if not self.writing_paused and len(self.send_buffer) > self.high_water_bytes:
            self.writing_paused = True
            if self.protocol is not None:
                self.protocol.pause_writing()

    def _check_low_water(self) -> None:
        if self.writing_paused and len(self.send_buffer) <= self.low_water_bytes:
            self.writing_paused = False
            if self.protocol is not None:
                self.protocol.resume_writing()


def connect(
    protocol: Protocol,
    peer: SocketAddress = ("127.0.0.1", 5555),
    local: SocketAddress = ("127.0.0.1", 8000),
) -> FakeTransport:
    """A ``FakeTransport`` for ``protocol``, after calling ``protocol.connection_made`` with it."""
    transport = FakeTransport(protocol, peer_address=peer, local_address=local)
    # FakeTransport has Connection's interface without being one: the cast says so to a checker.
    protocol.connection_made(cast("Connection", transport))
    # As the real transports do: a forgotten super().connection_made fails here, loudly.
    require_transport_kept(protocol, transport)
    return transport


def feed(
    protocol: Protocol,
    transport: FakeTransport,
    data: bytes,
    chunk_size: int | None = None,
) -> int:
    """Deliver ``data`` the way the connection would: append, then ``data_received``, per chunk.

    Chunks are ``chunk_size`` bytes (all of ``data`` at once when ``None``). Stops, as the real
    connection does, once the transport is closing or reading is paused; returns how many bytes
    were delivered, so a test can tell.
    """
    if chunk_size is None:
        chunk_size = max(1, len(data))
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    delivered = 0
    while delivered < len(data) and transport.reading and not transport.is_closing():
        chunk = data[delivered:delivered + chunk_size]
        transport.recv_buffer.append(chunk)
        delivered += len(chunk)
        protocol.data_received(transport.recv_buffer)
        if len(transport.recv_buffer) > transport.max_unconsumed_bytes:
            # What Connection does on a real socket (one warning, then close): a protocol that
            # never consumes must fail here, in its tests, not first in production.
            log.warning("%r: %d bytes of input not consumed by the protocol (limit %d); closing",
                        transport, len(transport.recv_buffer), transport.max_unconsumed_bytes)
            transport.closed_for_unconsumed_input = True
            transport.close()
    return delivered


def feed_eof(protocol: Protocol, transport: FakeTransport) -> bool:
    """Deliver the peer's FIN: ``eof_received()``, then ``close()`` if it returned false.

    Returns what ``eof_received`` returned. Nothing is delivered once the transport is closing.
    """
    if transport.is_closing():
        return False
    keep_open = bool(protocol.eof_received())
    if not keep_open:
        transport.close()
    return keep_open


class ManualClock:
    """A monotonic clock that moves only when a test calls ``advance``.

    Call it or its ``time()`` method: either can stand in for ``time.monotonic``.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def __call__(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``; a monotonic clock never goes back."""
        if seconds < 0:
            raise ValueError(f"cannot move a monotonic clock back ({seconds} seconds)")
        self._now += seconds


# -- scripted doubles: the reactor itself against exact OS behaviour ------------------------------
#
# For tests of Connection, Listener and Connector (see the module docstring), not of protocols.
# A ScriptedSocket is a real, non-blocking ``socket.socket``: the reactor calls its methods
# and the selector watches its fd like any other. Each scriptable call plays the next Step of that
# call's own script, and goes to the real socket once the script is empty.

#: The socket calls a script can be given for: every call the reactor makes on a socket.
SCRIPTABLE_CALLS = frozenset({
    "accept", "close", "connect", "connect_ex", "getpeername", "getsockname", "getsockopt",
    "listen", "recv", "recvfrom", "send", "sendmsg", "sendto", "setblocking", "setsockopt",
    "shutdown",
})
#: How many past ``select()`` results a ScriptedSelector keeps, for assertions.
SELECT_HISTORY_LENGTH = 64

Perform = Callable[[Callable[..., Any], tuple[Any, ...]], Any]


class Step:
    """What one call on a ``ScriptedSocket`` does instead of (or by way of) the real call.

    * ``Step.returns(value)``: return ``value`` without touching the socket (``recv`` -> ``b""``
      is the peer's FIN; ``getsockopt`` -> ``errno.ECONNREFUSED`` is what ``SO_ERROR`` says after
      a refused connect; ``accept`` -> ``(sock, address)``).
    * ``Step.raises(errno.ECONNRESET)``: raise ``OSError(code, strerror)``, which the ``OSError``
      constructor turns into the subclass the kernel's errno gets (``ConnectionResetError``,
      ``BlockingIOError``...), exactly as a failed syscall does. Any exception instance works too.
    * ``Step.accepts(k)``: for ``send``/``sendmsg``, give only the first ``k`` bytes to the real
      socket: the peer reads exactly them and the call returns how many the kernel took.
    * ``Step.real()``: make the real call (to put a real call between scripted ones).
    """

    __slots__ = ("description", "_perform")

    def __init__(self, description: str, perform: Perform) -> None:
        self.description = description
        self._perform = perform

    def __repr__(self) -> str:
        return f"<Step {self.description}>"

    def perform(self, real: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """Play this step for a call whose real method is ``real``, called with ``args``."""
        return self._perform(real, args)

    @classmethod
    def returns(cls, value: Any) -> Step:
        return cls(f"returns {value!r}", lambda real, args: value)

    @classmethod
    def raises(cls, error: int | BaseException) -> Step:
        def perform(real: Callable[..., Any], args: tuple[Any, ...]) -> Any:
            if isinstance(error, BaseException):
                raise error
            raise OSError(error, os.strerror(error))

        name = errno.errorcode.get(error, str(error)) if isinstance(error, int) else repr(error)
        return cls(f"raises {name}", perform)

    @classmethod
    def accepts(cls, size: int) -> Step:
        def perform(real: Callable[..., Any], args: tuple[Any, ...]) -> Any:
            data, *rest = args
            if isinstance(data, list):  # sendmsg's buffers: the first ``size`` bytes across them
                return real([b"".join(data)[:size]], *rest)
            return real(memoryview(data)[:size], *rest)

        return cls(f"accepts {size} bytes", perform)

    @classmethod
    def real(cls) -> Step:
        return cls("makes the real call", lambda real, args: real(*args))


@dataclass(frozen=True)
class Call:
    """One call made on a ``ScriptedSocket``: what was called with what, the step that played it
    (``None``: the real socket answered) and what came of it."""

    name: str
    args: tuple[Any, ...]
    step: Step | None
    result: Any = None
    error: BaseException | None = None


def check_scriptable(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is one of ``SCRIPTABLE_CALLS``."""
    if name not in SCRIPTABLE_CALLS:
        choices = ", ".join(sorted(SCRIPTABLE_CALLS))
        raise ValueError(f"cannot script {name!r}; scriptable: {choices}")


class ScriptedSocket(socket.socket):
    """A real non-blocking socket whose calls follow per-call scripts of ``Step``s.

    ``ScriptedSocket(sock, recv=[...], send=[...])`` takes over ``sock``'s descriptor (``sock``
    is left detached) and gives each named call its own script, played in call order; a call
    whose script is empty goes to the real socket. Owns that descriptor: ``close()`` closes it.
    ``calls`` records every scriptable call in order, scripted or real; ``unused()`` lists the
    steps not yet played, so a test can check that its whole script happened.
    """

    def __init__(self, sock: socket.socket, **scripts: Iterable[Step]) -> None:
        for name in scripts:
            check_scriptable(name)  # before taking the descriptor over
        super().__init__(fileno=sock.detach())
        super().setblocking(False)
        self.calls: list[Call] = []
        self._scripts: dict[str, collections.deque[Step]] = {}
        for name, steps in scripts.items():
            self.script(name, *steps)

    def __repr__(self) -> str:
        # Not socket.socket's repr: it calls getsockname() and getpeername(), playing their steps.
        return f"<ScriptedSocket fd={self.fileno()} calls={len(self.calls)} unused={self.unused()}>"

    def script(self, name: str, *steps: Step) -> None:
        """Add ``steps`` to the end of the script of call ``name``."""
        check_scriptable(name)
        self._scripts.setdefault(name, collections.deque()).extend(steps)

    def unused(self) -> dict[str, list[Step]]:
        """The steps not played yet, by call name (empty once every script has run)."""
        return {name: list(steps) for name, steps in self._scripts.items() if steps}

    def called(self, name: str) -> list[Call]:
        """The recorded calls of ``name``, in order."""
        return [call for call in self.calls if call.name == name]

    def _play(self, name: str, real: Callable[..., Any], *args: Any) -> Any:
        script = self._scripts.get(name)
        step = script.popleft() if script else None
        try:
            result = real(*args) if step is None else step.perform(real, args)
        except BaseException as exc:
            self.calls.append(Call(name, args, step, error=exc))
            raise
        self.calls.append(Call(name, args, step, result=result))
        return result

    # One real method per call, overriding the socket's own: ``sock.recv`` and the others.

    def accept(self) -> tuple[socket.socket, Any]:
        return cast("tuple[socket.socket, Any]", self._play("accept", super().accept))

    def close(self) -> None:
        self._play("close", super().close)

    def connect(self, address: Any) -> None:
        self._play("connect", super().connect, address)

    def connect_ex(self, address: Any) -> int:
        return cast(int, self._play("connect_ex", super().connect_ex, address))

    def getpeername(self) -> Any:
        return self._play("getpeername", super().getpeername)

    def getsockname(self) -> Any:
        return self._play("getsockname", super().getsockname)

    def getsockopt(self, level: int, option: int, *buflen: int) -> Any:
        return self._play("getsockopt", super().getsockopt, level, option, *buflen)

    def listen(self, backlog: int = socket.SOMAXCONN) -> None:
        self._play("listen", super().listen, backlog)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return cast(bytes, self._play("recv", super().recv, bufsize, flags))

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        return cast("tuple[bytes, Any]", self._play("recvfrom", super().recvfrom, bufsize, flags))

    def send(self, data: Any, flags: int = 0) -> int:
        return cast(int, self._play("send", super().send, data, flags))

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        return cast(int, self._play("sendmsg", super().sendmsg, buffers, *args))

    def sendto(self, data: Any, *args: Any) -> int:
        return cast(int, self._play("sendto", super().sendto, data, *args))

    def setblocking(self, flag: bool) -> None:
        self._play("setblocking", super().setblocking, flag)

    def setsockopt(self, level: int, option: int, *value: Any) -> None:
        self._play("setsockopt", super().setsockopt, level, option, *value)

    def shutdown(self, how: int) -> None:
        self._play("shutdown", super().shutdown, how)


def scripted_socketpair(
    family: int = socket.AF_UNIX, type: int = socket.SOCK_STREAM, /, **scripts: Iterable[Step]
) -> tuple[ScriptedSocket, socket.socket]:
    """A connected pair: a ``ScriptedSocket`` and the plain other end, both non-blocking.

    ``AF_UNIX`` is ``socket.socketpair(AF_UNIX, type)`` (``SOCK_DGRAM`` for a datagram pair);
    ``AF_INET`` is a real TCP connection over 127.0.0.1, for code that does something only for
    TCP (``TCP_NODELAY``). The caller closes the other end.
    """
    if family == socket.AF_UNIX:
        ours, theirs = socket.socketpair(family, type)
    else:
        with socket.create_server(("127.0.0.1", 0)) as server:
            ours = socket.create_connection(server.getsockname())
            theirs, _ = server.accept()
    theirs.setblocking(False)
    return ScriptedSocket(ours, **scripts), theirs


def scripted_listening_socket(**scripts: Iterable[Step]) -> ScriptedSocket:
    """A ``ScriptedSocket`` listening on 127.0.0.1 (a free port): clients really connect, and
    ``accept`` follows its script (EMFILE on the third call: ``[Step.real(), Step.real(),
    Step.raises(errno.EMFILE)]``). Serve it with ``Listener(reactor, sock, factory)``."""
    return ScriptedSocket(socket.create_server(("127.0.0.1", 0)), **scripts)


class ScriptedSelector(selectors.BaseSelector):
    """A real selector that can also report readiness the kernel did not.

    Owns the real selector it wraps (``inner_class``); make the class with ``over()`` and let the
    reactor instantiate it: ``Reactor(ScriptedSelector.over(selectors.EpollSelector))``. The
    instances it makes are kept in its ``instances``.

    ``report(fd, events)`` makes the next ``select()`` return at once and say ``fd`` is ready for
    ``events`` besides whatever the kernel says: a spurious wakeup (EVENT_READ on an empty
    socket), or an error on the socket (a reset), which every selector reports as
    EVENT_READ | EVENT_WRITE. Like the real selectors, it reports only events the fd is
    registered for. ``history`` holds the last ``SELECT_HISTORY_LENGTH`` results as
    ``{fd: events}``, so a test can check what a real selector said.
    """

    inner_class: ClassVar[type[selectors.BaseSelector]]
    instances: ClassVar[list[ScriptedSelector]]

    @classmethod
    def over(cls, inner_class: type[selectors.BaseSelector]) -> type[ScriptedSelector]:
        """A ScriptedSelector class wrapping ``inner_class``, with its own ``instances`` list."""
        return type(f"Scripted{inner_class.__name__}", (cls,),
                    {"inner_class": inner_class, "instances": [], "__module__": cls.__module__})

    def __init__(self) -> None:
        if "instances" not in type(self).__dict__:
            raise TypeError("make the class with ScriptedSelector.over(selector_class)")
        self._inner = self.inner_class()
        self._reports: dict[int, int] = {}
        self.history: collections.deque[dict[int, int]] = collections.deque(
            maxlen=SELECT_HISTORY_LENGTH)
        type(self).instances.append(self)

    def report(self, fd: int, events: int) -> None:
        """Say, on the next ``select()`` only, that ``fd`` is ready for ``events``."""
        self._reports[fd] = self._reports.get(fd, 0) | events

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        reports, self._reports = self._reports, {}
        ready = {key.fd: (key, events)
                 for key, events in self._inner.select(0 if reports else timeout)}
        keys = self._inner.get_map()
        for fd, events in reports.items():
            key = keys.get(fd)
            if key is not None and events & key.events:
                ready[fd] = (key, (ready[fd][1] if fd in ready else 0) | (events & key.events))
        self.history.append({fd: events for fd, (_, events) in ready.items()})
        return list(ready.values())

    def close(self) -> None:
        self._inner.close()

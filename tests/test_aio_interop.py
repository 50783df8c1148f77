"""asyncio code on our loop, against real peers: what CPython's own asyncio suite does not cover.

Every test runs twice in this process: on our loop (``reactor.aio.run``) and, as the control,
on asyncio's own (``asyncio.run``); the same code must pass on both. Each run fails if the loop
reported an error to its exception handler or anything logged a warning.

* asyncio clients (streams, a ``Protocol``, a ``BufferedProtocol``) against our example servers,
  started as a user starts them (``python -m examples.echo_server``, ``uppercase_server``);
* a connect cancelled while the kernel holds its SYN (the server's accept queue is full), by
  ``task.cancel()`` and by ``asyncio.timeout``: the socket is closed and forgotten by the loop;
* hostile peers against an ordinary ``asyncio.start_server`` server running on the loop: a
  flood from a client that never reads, a reset in the middle of a line, an endless line. Each
  time the server's buffers stay bounded and another client is served correctly meanwhile.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import socket
from collections.abc import Callable, Coroutine, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import reactor.aio
from reactor.aio import ReactorEventLoop
from tests.processes import TIMEOUT, Launcher
from tests.resets import close_with_reset

#: Loop runners under test: ours, and asyncio's own as the control.
RUNNERS: dict[str, Callable[[Coroutine[Any, Any, Any]], Any]] = {
    "our-loop": reactor.aio.run,
    "asyncio-loop": asyncio.run,
}
#: How long one test's coroutine may take in all.
TEST_DEADLINE_SECONDS = 4 * TIMEOUT
POLL_SECONDS = 0.005

PROC_NET_TCP = Path("/proc/net/tcp")
TCP_SYN_SENT = "02"  # the kernel's state number in /proc/net/tcp (include/net/tcp_states.h)

Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=list(RUNNERS))
def run(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Iterator[Run]:
    """``run(coroutine)`` on the loop under test, bounded by ``TEST_DEADLINE_SECONDS``; the test
    fails afterwards if the loop's exception handler was called or a warning was logged."""
    errors: list[dict[str, Any]] = []
    ours = request.param == "our-loop"

    async def watched(coroutine: Coroutine[Any, Any, Any]) -> Any:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, ReactorEventLoop) == ours, type(loop)
        loop.set_exception_handler(lambda loop, context: errors.append(context))
        async with asyncio.timeout(TEST_DEADLINE_SECONDS):
            return await coroutine

    caplog.set_level(logging.WARNING)
    yield lambda coroutine: RUNNERS[request.param](watched(coroutine))
    assert [(context["message"], repr(context.get("exception"))) for context in errors] == []
    assert [record.getMessage() for record in caplog.records
            if record.levelno >= logging.WARNING] == []


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the loop run until ``condition()`` holds; fail after ``TIMEOUT`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not condition():
        assert loop.time() < deadline, f"still waiting for {what}"
        await asyncio.sleep(POLL_SECONDS)


# -- asyncio clients against our example servers -------------------------------------------------


def test_streams_round_trip_of_1_mib_in_random_chunks_is_byte_exact(
        run: Run, launch: Launcher) -> None:
    echo = launch.server("echo_server")
    rng = random.Random(11)
    data = rng.randbytes(1024 * 1024)

    async def main() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", echo.port)

        async def send() -> None:
            sent = 0
            while sent < len(data):
                size = rng.randint(1, 65536)
                writer.write(data[sent:sent + size])
                sent += size
                await writer.drain()
            writer.write_eof()  # the echo server closes after echoing everything

        sender = asyncio.create_task(send())
        received = bytearray()
        while chunk := await reader.read(rng.randint(1, 65536)):
            received += chunk
        await sender
        writer.close()
        await writer.wait_closed()
        return bytes(received)

    received = run(main())
    assert len(received) == len(data)
    assert received == data
    echo.stop_cleanly()


class RecordingProtocol(asyncio.Protocol):
    """Records every callback, in order; ``done`` resolves at ``connection_lost``."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.received = bytearray()
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.calls.append("connection_made")
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert isinstance(data, bytes)  # asyncio's contract: bytes, not our buffer
        if self.calls[-1] != "data_received":
            self.calls.append("data_received")
        self.received += data

    def eof_received(self) -> bool | None:
        self.calls.append("eof_received")
        return None  # let the transport close

    def connection_lost(self, exc: BaseException | None) -> None:
        self.calls.append("connection_lost")
        self.done.set_result(exc)


def test_protocol_client_gets_bytes_then_eof_then_connection_lost(
        run: Run, launch: Launcher) -> None:
    upper = launch.server("uppercase_server")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(
            RecordingProtocol, "127.0.0.1", upper.port)
        assert protocol.transport is transport
        assert transport.get_extra_info("peername") == ("127.0.0.1", upper.port)
        sock = transport.get_extra_info("socket")
        assert transport.get_extra_info("sockname") == sock.getsockname()
        for piece in (b"hello\nwor", b"ld, ", b"caf\xc3\xa9\r\n", b"last"):  # lines cut anywhere
            transport.write(piece)
        transport.write_eof()
        assert await protocol.done is None
        assert transport.is_closing()
        assert protocol.calls == ["connection_made", "data_received", "eof_received",
                                  "connection_lost"]
        assert bytes(protocol.received) == "HELLO\nWORLD, CAFÉ\nLAST\n".encode()

    run(main())
    upper.stop_cleanly()


class SmallBuffersProtocol(asyncio.BufferedProtocol):
    """A ``BufferedProtocol`` lending a 1000-byte buffer, so every read takes many of them."""

    def __init__(self) -> None:
        self.buffer = bytearray(1000)
        self.received = bytearray()
        self.fills = 0
        self.done: asyncio.Future[BaseException | None] = (
            asyncio.get_running_loop().create_future())

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.fills += 1
        self.received += self.buffer[:nbytes]

    def connection_lost(self, exc: BaseException | None) -> None:
        self.done.set_result(exc)


def test_buffered_protocol_client_is_fed_through_its_own_small_buffers(
        run: Run, launch: Launcher) -> None:
    echo = launch.server("echo_server")
    data = random.Random(12).randbytes(200_000)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(
            SmallBuffersProtocol, "127.0.0.1", echo.port)
        transport.write(data)
        transport.write_eof()
        assert await protocol.done is None
        assert bytes(protocol.received) == data
        assert protocol.fills >= len(data) // len(protocol.buffer)

    run(main())
    echo.stop_cleanly()


# -- a connect cancelled while the kernel holds its SYN ----------------------------------------


def syn_sent_to(port: int) -> int:
    """How many sockets on this host are in SYN_SENT towards 127.0.0.1:``port``."""
    count = 0
    with PROC_NET_TCP.open(encoding="ascii") as table:
        next(table)  # the header
        for row in table:
            remote, state = row.split()[2:4]
            if state == TCP_SYN_SENT and int(remote.partition(":")[2], 16) == port:
                count += 1
    return count


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def listener_with_full_backlog(launch: Launcher) -> int:
    """A listening port whose accept queue is full: ``listen(0)`` queues one connection, which
    we make and never accept. The kernel then drops every new SYN (the client retransmits it
    after 1 s, 3 s, ...), so a connect stays in progress for as long as the test needs."""
    listener = launch.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = launch.socket(socket.AF_INET, socket.SOCK_STREAM)
    filler.settimeout(TIMEOUT)
    filler.connect(listener.getsockname())
    port: int = listener.getsockname()[1]
    return port


@pytest.mark.skipif(not PROC_NET_TCP.exists(), reason="needs Linux's /proc/net/tcp")
@pytest.mark.parametrize("how", ["task.cancel", "asyncio.timeout"])
def test_connect_cancelled_while_the_syn_is_held_closes_its_socket_and_the_loop_goes_on(
        run: Run, launch: Launcher, how: str) -> None:
    port = listener_with_full_backlog(launch)
    echo = launch.server("echo_server")

    async def main() -> None:
        before = open_fds()
        deadlines: list[asyncio.Timeout] = []

        async def connect() -> None:
            async with asyncio.timeout(None) as deadline:  # no deadline until we set one
                deadlines.append(deadline)
                await asyncio.open_connection("127.0.0.1", port)

        task = asyncio.create_task(connect())
        await until(lambda: syn_sent_to(port) == 1, "the connect's SYN")
        assert not task.done()
        if how == "task.cancel":
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            deadlines[0].reschedule(asyncio.get_running_loop().time())  # expire now
            with pytest.raises(TimeoutError):
                await task
        assert syn_sent_to(port) == 0  # closing a socket in SYN_SENT just drops it
        assert open_fds() == before  # the socket is closed, nothing else was left open

        # The loop forgot that descriptor: a new socket (most likely given the same number)
        # connects and is served.
        reader, writer = await asyncio.open_connection("127.0.0.1", echo.port)
        writer.write(b"after the cancel\n")
        assert await reader.readline() == b"after the cancel\n"
        writer.close()
        await writer.wait_closed()

    run(main())
    echo.stop_cleanly()


CONNECT_STEPS = 10  # more loop iterations than any connect to loopback takes on either loop


def test_connect_cancelled_after_any_number_of_steps_leaves_nothing_open(
        run: Run, launch: Launcher) -> None:
    """Cancel ``open_connection`` after 0, 1, 2, ... loop iterations: in the middle of the
    connect, while the transport is made, or once it is done. Whichever it was, no descriptor
    is left open and nothing is reported."""
    listener = launch.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(CONNECT_STEPS)

    async def main() -> list[str]:
        outcomes = []
        for steps in range(CONNECT_STEPS):
            before = open_fds()
            task = asyncio.create_task(asyncio.open_connection(*listener.getsockname()))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            try:
                _, writer = await task
            except asyncio.CancelledError:
                outcomes.append("cancelled")
            else:
                outcomes.append("connected")
                writer.close()
                await writer.wait_closed()
            assert open_fds() == before, f"cancelled after {steps} steps"
        return outcomes

    outcomes = run(main())
    # The steps reach from before the connect began to after it was done.
    assert outcomes[0] == "cancelled" and outcomes[-1] == "connected", outcomes


# -- hostile peers against an asyncio streams server on the loop ---------------------------------

#: The server's write-buffer high-water mark (set explicitly: the loops' defaults differ).
HIGH_WATER_BYTES = 64 * 1024
#: The StreamReader limit: a longer line makes readline() raise ValueError.
LINE_LIMIT_BYTES = 16 * 1024
#: 1000 bytes, so that a full buffer is never exactly at the mark.
FLOOD_LINE = b"x" * 999 + b"\n"
FLOOD_BYTES = 8 * 1024 * 1024  # about 1 MiB is held back already; the rest is margin
SMALL_SOCKET_BUFFER_BYTES = 4096


@dataclass
class Seen:
    """What the server saw of one client connection."""

    outcome: asyncio.Future[str]
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    transport: asyncio.Transport | None = None
    lines: int = 0
    max_write_buffer: int = 0


class UppercaseServer:
    """The server under attack, written as ordinary asyncio streams code: each line comes back
    in upper case, with ``await writer.drain()`` after each reply (back-pressure) and a
    ``readline()`` limit. It records what it saw of each client, by the client's port."""

    def __init__(self) -> None:
        self.clients: dict[int, Seen] = {}
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0,
                                                 limit=LINE_LIMIT_BYTES)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def seen(self, port: int) -> Seen:
        if port not in self.clients:
            self.clients[port] = Seen(asyncio.get_running_loop().create_future())
        return self.clients[port]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen = self.seen(writer.get_extra_info("peername")[1])
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)  # reading and writing, on both loops
        seen.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER_BYTES)
        # A small kernel send buffer: a client that never reads fills ours after a few lines.
        writer.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_SOCKET_BUFFER_BYTES)
        try:
            try:
                while line := await reader.readline():
                    writer.write(line.upper())
                    seen.lines += 1
                    pending = transport.get_write_buffer_size()
                    seen.max_write_buffer = max(seen.max_write_buffer, pending)
                    if pending > HIGH_WATER_BYTES:
                        seen.stalled.set()  # drain() waits from here
                    await writer.drain()
                seen.outcome.set_result("eof")
            except ValueError:  # readline() past the limit: an endless line
                seen.outcome.set_result("line too long")
                writer.write(b"error: line too long\n")
                writer.write_eof()
                while await reader.read(65536):
                    pass  # discard up to the client's FIN, so that our close is no RST
        except ConnectionError as exc:
            seen.outcome.set_result(f"lost: {type(exc).__name__}")
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()


async def client_socket(launch: Launcher, port: int, *, small_buffers: bool = False
                        ) -> socket.socket:
    """A raw client socket, connected through the loop (``launch`` closes it after the test)."""
    sock = launch.socket(socket.AF_INET, socket.SOCK_STREAM)
    if small_buffers:  # before connect(): the window is agreed in the handshake
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_SOCKET_BUFFER_BYTES)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_SOCKET_BUFFER_BYTES)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def receive_until_eof(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    received = bytearray()
    while chunk := await loop.sock_recv(sock, 65536):
        received += chunk
    return bytes(received)


async def served_correctly(server: UppercaseServer) -> None:
    """A well-behaved client: three lines (one of 10 KB) in one write, every reply exact, then
    our FIN and the server's."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    seen = server.seen(writer.get_extra_info("sockname")[1])
    long_line = bytes(random.Random(13).choices(b"abcdefghij", k=10_000))
    writer.write(b"one\ntwo\n" + long_line + b"\n")
    assert await reader.readline() == b"ONE\n"
    assert await reader.readline() == b"TWO\n"
    assert await reader.readline() == long_line.upper() + b"\n"
    writer.write_eof()
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()
    assert await seen.outcome == "eof"


def test_flood_from_a_client_that_never_reads_is_held_back_with_bounded_buffers(
        run: Run, launch: Launcher) -> None:
    async def main() -> None:
        server = UppercaseServer()
        await server.start()
        loop = asyncio.get_running_loop()
        flooder = await client_socket(launch, server.port, small_buffers=True)
        seen = server.seen(flooder.getsockname()[1])
        flood = asyncio.create_task(loop.sock_sendall(flooder, FLOOD_LINE * (FLOOD_BYTES // 1000)))
        await asyncio.wait_for(seen.stalled.wait(), TIMEOUT)  # its replies pass the mark
        transport = seen.transport
        assert transport is not None
        # Its StreamReader now holds more than twice the limit, so it paused the transport.
        await until(lambda: not transport.is_reading(), "the flooder's reads to pause")
        lines = seen.lines

        await served_correctly(server)  # meanwhile, another client is served in full

        assert seen.lines == lines  # the flooder's handler waited in drain() all along
        assert not flood.done()  # and the flooder is held back by full kernel buffers
        assert seen.max_write_buffer <= HIGH_WATER_BYTES + len(FLOOD_LINE)
        flood.cancel()
        with pytest.raises(asyncio.CancelledError):
            await flood
        close_with_reset(flooder)
        assert (await seen.outcome).startswith("lost: ")
        await served_correctly(server)
        await server.stop()

    run(main())


def test_client_that_resets_mid_line_is_dropped_and_others_are_served(
        run: Run, launch: Launcher) -> None:
    async def main() -> None:
        server = UppercaseServer()
        await server.start()
        loop = asyncio.get_running_loop()
        resetter = await client_socket(launch, server.port)
        seen = server.seen(resetter.getsockname()[1])
        await loop.sock_sendall(resetter, b"complete\nhalf a li")
        reply = b""
        while len(reply) < len(b"COMPLETE\n"):  # the server has read the half line too
            reply += await loop.sock_recv(resetter, 64)
        assert reply == b"COMPLETE\n"
        await served_correctly(server)  # while the half line waits
        close_with_reset(resetter)
        assert await seen.outcome == "lost: ConnectionResetError"
        await served_correctly(server)
        await server.stop()

    run(main())


def test_endless_line_gets_an_error_and_a_clean_close_and_others_are_served(
        run: Run, launch: Launcher) -> None:
    async def main() -> None:
        server = UppercaseServer()
        await server.start()
        loop = asyncio.get_running_loop()
        talker = await client_socket(launch, server.port)
        seen = server.seen(talker.getsockname()[1])
        endless = asyncio.create_task(loop.sock_sendall(talker, b"y" * (1024 * 1024)))
        assert await seen.outcome == "line too long"
        await served_correctly(server)  # while the rest of the endless line is discarded
        await endless  # every byte was taken: the server read on, to discard it
        talker.shutdown(socket.SHUT_WR)
        assert await receive_until_eof(talker) == b"error: line too long\n"  # then FIN, no RST
        await served_correctly(server)
        await server.stop()

    run(main())


# -- differences from asyncio's loop found here (reported in the lead's notes) ----------------


TCP_CLOSE = 7  # tcpi_state of a socket the peer has reset (include/net/tcp_states.h)


def tcp_state(sock: Any) -> int:
    """The kernel's TCP state of ``sock``: the first byte of ``TCP_INFO``."""
    info: bytes = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return info[0]


@pytest.mark.parametrize("run", [
    "our-loop",
    "asyncio-loop",
], indirect=True)
def test_write_eof_after_the_peer_reset_raises_enotconn_at_once(
        run: Run, launch: Launcher) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        accepted: asyncio.Future[asyncio.Transport] = loop.create_future()

        class NotReading(asyncio.Protocol):
            """Reads nothing, so the transport cannot notice the reset by a recv()."""

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                transport.pause_reading()
                accepted.set_result(transport)

        server = await loop.create_server(NotReading, "127.0.0.1", 0)
        client = await client_socket(launch, server.sockets[0].getsockname()[1])
        transport = await accepted
        close_with_reset(client)
        sock = transport.get_extra_info("socket")
        await until(lambda: tcp_state(sock) == TCP_CLOSE, "the RST to arrive")
        try:
            with pytest.raises(OSError) as raised:
                transport.write_eof()
            assert raised.value.errno == errno.ENOTCONN
        finally:
            transport.abort()
            server.close()
            await server.wait_closed()

    run(main())

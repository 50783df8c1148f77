"""Listener: binding, IPv6, closing, accept batches, failing factories and EMFILE without a spin."""

from __future__ import annotations

import errno
import json
import logging
import socket
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reactor import Protocol, Reactor
from reactor.connection import Connection
from reactor.listener import MAX_ACCEPTS_PER_EVENT, Listener
from tests.helpers import Echo, run_until
from tests.processes import ipv6_loopback_available

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cleanup(reactor: Reactor) -> Iterator[list[Any]]:
    """Listeners and client sockets to close after the test (listeners' connections aborted)."""
    things: list[Any] = []
    yield things
    for thing in things:
        if isinstance(thing, Listener):
            for connection in list(thing.connections):
                connection.abort()
        thing.close()
    reactor.run_once(0)


def echo_round_trip(reactor: Reactor, client: socket.socket, message: bytes) -> bytes:
    """Send ``message`` from a blocking client and run the loop until it comes back."""
    client.setblocking(False)
    client.sendall(message)
    received = bytearray()

    def back() -> bool:
        try:
            received.extend(client.recv(65536))
        except BlockingIOError:
            pass
        return len(received) >= len(message)

    run_until(reactor, back, timeout=5.0)
    return bytes(received)


# -- binding -----------------------------------------------------------------------------------


def test_address_has_the_port_the_kernel_chose(reactor: Reactor, cleanup: list[Any]) -> None:
    listener = reactor.listen_tcp(Echo, "127.0.0.1", 0)
    cleanup.append(listener)
    host, port = listener.address
    assert host == "127.0.0.1"
    assert port > 0
    assert listener.name == f"127.0.0.1:{port}"
    assert repr(listener) == f"<Listener 127.0.0.1:{port} accepting connections=0>"
    probe = socket.create_connection(listener.address, timeout=2)
    cleanup.append(probe)


def test_binding_a_port_in_use_raises_at_once(reactor: Reactor, cleanup: list[Any]) -> None:
    listener = reactor.listen_tcp(Echo, "127.0.0.1", 0)
    cleanup.append(listener)
    with pytest.raises(OSError) as info:
        reactor.listen_tcp(Echo, "127.0.0.1", listener.address[1])
    assert info.value.errno == errno.EADDRINUSE
    assert len(reactor.poller) == 2  # the waker and the first listener only


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1) here")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_ipv6_loopback_listen_and_connect(reactor: Reactor, cleanup: list[Any], host: str) -> None:
    made: list[Echo] = []
    listener = reactor.listen_tcp(lambda: Echo(made), host, 0)
    cleanup.append(listener)
    assert listener.address[0] == "::1"
    assert listener.name == f"[::1]:{listener.address[1]}"
    client = socket.create_connection(("::1", listener.address[1]), timeout=2)
    cleanup.append(client)
    assert echo_round_trip(reactor, client, b"over IPv6") == b"over IPv6"
    assert made[0].conn is not None
    assert made[0].conn.peer_name == f"[::1]:{client.getsockname()[1]}"


# -- accepting -----------------------------------------------------------------------------------


def test_accepted_connections_are_tracked_until_lost(reactor: Reactor, cleanup: list[Any]) -> None:
    made: list[Echo] = []
    listener = reactor.listen_tcp(lambda: Echo(made), "127.0.0.1", 0)
    cleanup.append(listener)
    client = socket.create_connection(listener.address, timeout=2)
    run_until(reactor, lambda: made)
    conn = made[0].conn
    assert listener.connections == {conn}
    assert conn is not None and conn.peer_address == client.getsockname()
    assert conn._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    client.close()
    run_until(reactor, lambda: made[0].lost_with)
    assert listener.connections == set()


def test_when_empty_comes_after_the_last_connection_lost_and_only_then(
        reactor: Reactor, cleanup: list[Any]) -> None:
    made: list[Echo] = []
    listener = reactor.listen_tcp(lambda: Echo(made), "127.0.0.1", 0)
    cleanup.append(listener)
    emptied: list[int] = []  # how many protocols had heard connection_lost each time
    listener.when_empty = lambda: emptied.append(sum(bool(p.lost_with) for p in made))
    first = socket.create_connection(listener.address, timeout=2)
    second = socket.create_connection(listener.address, timeout=2)
    run_until(reactor, lambda: len(made) == 2)
    first.close()
    run_until(reactor, lambda: any(p.lost_with for p in made))
    assert emptied == []  # one is still open
    second.close()
    run_until(reactor, lambda: emptied)
    assert emptied == [2]
    assert listener.connections == set()


def test_close_refuses_new_connections_and_keeps_accepted_ones(
    reactor: Reactor, cleanup: list[Any]
) -> None:
    made: list[Echo] = []
    listener = reactor.listen_tcp(lambda: Echo(made), "127.0.0.1", 0)
    cleanup.append(listener)
    client = socket.create_connection(listener.address, timeout=2)
    cleanup.append(client)
    run_until(reactor, lambda: made)
    listener.close()
    listener.close()  # idempotent
    assert "closed" in repr(listener)
    assert len(reactor.poller) == 2  # the waker and the accepted connection
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(listener.address, timeout=2)
    assert echo_round_trip(reactor, client, b"still here") == b"still here"


def somaxconn() -> int:
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return 4096


@pytest.mark.skipif(somaxconn() <= 200, reason="net.core.somaxconn too small for 200 pending")
def test_accepts_in_bounded_batches_and_serves_every_client(
    reactor: Reactor, cleanup: list[Any]
) -> None:
    clients_wanted = 200
    pass_number = [0]
    accepted_in_pass: list[int] = []

    class Counted(Echo):
        def connection_made(self, transport: Connection) -> None:  # type: ignore[override]
            super().connection_made(transport)
            accepted_in_pass.append(pass_number[0])

    listener = reactor.listen_tcp(Counted, "127.0.0.1", 0, backlog=1024)
    cleanup.append(listener)
    clients = []
    for _ in range(clients_wanted):  # all in the backlog before the loop runs
        client = socket.create_connection(listener.address, timeout=5)
        cleanup.append(client)
        clients.append(client)
    while len(accepted_in_pass) < clients_wanted and pass_number[0] < 100:
        pass_number[0] += 1
        reactor.run_once(0.05)
    per_pass = Counter(accepted_in_pass)
    assert len(accepted_in_pass) == clients_wanted
    assert max(per_pass.values()) <= MAX_ACCEPTS_PER_EVENT
    assert per_pass[1] == MAX_ACCEPTS_PER_EVENT
    assert len(listener.connections) == clients_wanted
    for i, client in enumerate(clients):
        client.setblocking(False)
        client.send(b"%03d" % i)
    replies: dict[int, bytes] = {}

    def all_replied() -> bool:
        for i, client in enumerate(clients):
            if i not in replies:
                try:
                    replies[i] = client.recv(10)
                except BlockingIOError:
                    pass
        return len(replies) == clients_wanted

    run_until(reactor, all_replied, timeout=5.0)
    assert replies == {i: b"%03d" % i for i in range(clients_wanted)}


def test_failing_protocol_factory_is_logged_and_the_listener_keeps_accepting(
    reactor: Reactor, cleanup: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    made: list[Echo] = []
    calls = [0]

    def factory() -> Echo:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("factory failed")
        return Echo(made)

    listener = reactor.listen_tcp(factory, "127.0.0.1", 0)
    cleanup.append(listener)
    first = socket.create_connection(listener.address, timeout=2)
    cleanup.append(first)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        run_until(reactor, lambda: calls[0] == 1)
    [record] = caplog.records
    assert "protocol factory" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
    assert listener.connections == set()
    assert len(reactor.poller) == 2  # the accepted socket was closed, never registered
    first.settimeout(2)
    try:
        assert first.recv(10) == b""
    except ConnectionResetError:
        pass  # also a correct "go away"
    second = socket.create_connection(listener.address, timeout=2)
    cleanup.append(second)
    assert echo_round_trip(reactor, second, b"served") == b"served"
    assert len(made) == 1


class ScriptedListeningSocket:
    """Stands in for a listening socket whose ``accept()`` follows a script (an exact errno
    sequence the kernel will not produce on demand). A real socketpair provides the fd."""

    def __init__(self, script: list[Any]) -> None:
        self._fd_owner, self._other = socket.socketpair()
        self.script = script

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 9)

    def setblocking(self, flag: bool) -> None:
        pass

    def fileno(self) -> int:
        return self._fd_owner.fileno()

    def accept(self) -> Any:
        step = self.script.pop(0) if self.script else BlockingIOError(errno.EAGAIN, "empty")
        if isinstance(step, BaseException):
            raise step
        return step

    def close(self) -> None:
        self._fd_owner.close()
        self._other.close()


def test_connection_aborted_in_the_backlog_is_skipped_quietly(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    ours, theirs = socket.socketpair()
    fake = ScriptedListeningSocket([
        ConnectionAbortedError(errno.ECONNABORTED, "aborted"),
        (ours, "peer"),
    ])
    made: list[Echo] = []
    listener = Listener(reactor, fake, lambda: Echo(made))  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.DEBUG, logger="reactor"):
            listener._on_readable()
        assert len(made) == 1
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert fake.fileno() in reactor.poller.masks()
    finally:
        for connection in list(listener.connections):
            connection.abort()
        listener.close()
        theirs.close()
        reactor.run_once(0)


def test_resource_errors_pause_accepting_and_close_cancels_the_retry(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    fake = ScriptedListeningSocket([OSError(errno.EMFILE, "Too many open files")])
    listener = Listener(reactor, fake, Echo)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="reactor"):
        listener._on_readable()
    assert fake.fileno() not in reactor.poller.masks()
    assert len(reactor._timers) == 1
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "EMFILE" in record.getMessage()
    listener.close()
    assert len(reactor._timers) == 0


def test_closing_the_listener_from_connection_made_ends_the_accept_batch_quietly(
    reactor: Reactor, cleanup: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    holder: list[Listener] = []

    class OneShot(Echo):
        def connection_made(self, transport: Connection) -> None:  # type: ignore[override]
            super().connection_made(transport)
            holder[0].close()

    listener = reactor.listen_tcp(OneShot, "127.0.0.1", 0)
    holder.append(listener)
    cleanup.append(listener)
    for _ in range(3):
        cleanup.append(socket.create_connection(listener.address, timeout=2))
    with caplog.at_level(logging.WARNING, logger="reactor"):
        run_until(reactor, lambda: listener.connections)
        reactor.run_once(0)
    assert [r.getMessage() for r in caplog.records] == []
    assert len(reactor._timers) == 0


# -- EMFILE, for real, in a child process ------------------------------------------------------

EMFILE_CHILD = textwrap.dedent(
    """
    import json, logging, os, resource, sys, time
    from reactor import Protocol, Reactor

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(levelname)s %(name)s %(message)s")
    expected = int(sys.argv[1])
    echoed = []

    class Echo(Protocol):
        def data_received(self, buffer):
            self.transport.write(buffer.take())
            echoed.append(1)
            if len(echoed) == expected:
                reactor.stop()

    def cpu_seconds():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    reactor = Reactor()
    listener = reactor.listen_tcp(Echo, "127.0.0.1", 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    spare = []
    while True:  # use up every descriptor: accept() must now fail with EMFILE
        try:
            spare.append(os.dup(0))
        except OSError:
            break
    print(json.dumps({"port": listener.address[1]}), flush=True)
    sys.stdin.readline()  # the parent's clients are connected and have sent their data

    cpu, wall = cpu_seconds(), time.monotonic()
    reactor.call_later(1.5, reactor.stop)
    reactor.run()
    starved = {"cpu": cpu_seconds() - cpu, "wall": time.monotonic() - wall,
               "echoed": len(echoed)}

    for fd in spare:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    deadline = reactor.call_later(5.0, reactor.stop)
    reactor.run()
    deadline.cancel()
    print(json.dumps({"starved": starved, "echoed": len(echoed)}), flush=True)
    """
)


@pytest.mark.timeout(30)
def test_emfile_on_accept_does_not_spin_and_pending_clients_are_served_later() -> None:
    clients_wanted = 3
    child = subprocess.Popen(
        [sys.executable, "-c", EMFILE_CHILD, str(clients_wanted)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    clients: list[socket.socket] = []
    try:
        assert child.stdout is not None and child.stdin is not None
        port = json.loads(child.stdout.readline())["port"]
        for i in range(clients_wanted):
            client = socket.create_connection(("127.0.0.1", port), timeout=10)
            client.sendall(b"ping %d" % i)
            clients.append(client)
        child.stdin.write("go\n")
        child.stdin.flush()
        replies = [client.recv(100) for client in clients]
        out, err = child.communicate(timeout=15)
    finally:
        for client in clients:
            client.close()
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    starved = result["starved"]
    assert starved["echoed"] == 0  # nothing could be accepted while out of descriptors
    assert starved["wall"] >= 1.4
    assert starved["cpu"] < 0.5, f"the loop spun: {starved}"
    assert err.count("accept failed with EMFILE") == 1, err
    assert replies == [b"ping %d" % i for i in range(clients_wanted)]
    assert result["echoed"] == clients_wanted

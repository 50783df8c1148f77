"""The TCP proxy, end to end: ``python -m examples.tcp_proxy`` in front of the example servers.

Every byte must come through, in order, however the chaos options cut and delay it; FIN must
travel in each direction on its own (half-close); a reset on one side must reach the other as a
reset; and a client that never reads must be held back by back-pressure across both connections,
not buffered for. Chaos runs are seeded. Where a test plays the upstream server itself, it uses a
plain listening socket, so it can half-close and reset exactly when it wants.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import select
import signal
import socket
import time

import pytest

from examples.cli import host_and_port
from tests.processes import (
    SHUTDOWN_TIMEOUT,
    STARTUP_TIMEOUT,
    TIMEOUT,
    Client,
    Launcher,
    ProxyProcess,
    exchange,
    recv_exactly,
    transfer,
    vm_rss_kib,
)

MiB = 1024 * 1024
#: Pieces of up to 4 KiB, each up to 2 ms after the last: about a second per MiB each way.
CHAOS = ("--chaos-split", "4096", "--chaos-delay", "0.002", "--seed", "1")
#: Every chaos reset strikes within 16 KiB (CHAOS_RESET_MAX_BYTES): this is far more.
RESET_TEST_BYTES = 128 * 1024


def digest(data: bytes) -> str:
    return f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}"


def accept(upstream: socket.socket) -> socket.socket:
    """The proxy's connection to the upstream socket (blocking, with the default timeout)."""
    conn, _ = upstream.accept()
    conn.settimeout(TIMEOUT)
    return conn


def recv_until_eof(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


# -- bytes, in order ------------------------------------------------------------------------------


def test_echo_behind_chaos_proxy_returns_one_mib_in_random_chunkings_unchanged(
        launch: Launcher) -> None:
    server = launch.server("echo_server")
    proxy = launch.proxy(server.port, *CHAOS)
    client = proxy.connect()
    payload = random.Random(1).randbytes(MiB)
    received, _, reset = transfer(client.sock, payload, rng=random.Random(2))
    assert not reset
    assert digest(received) == digest(payload)
    proxy.stop_cleanly()
    server.stop_cleanly()


def test_client_half_close_passes_through_and_the_answer_still_arrives_before_eof(
        launch: Launcher) -> None:
    # The echoes are still on their way through the chaos delays when the client's FIN arrives:
    # a proxy that closed at that FIN would cut them off, one that dropped it would leave the
    # echo server (and so the client) waiting forever.
    server = launch.server("echo_server")
    proxy = launch.proxy(server.port, *CHAOS)
    client = proxy.connect()
    payload = random.Random(3).randbytes(100 * 1024)
    client.send(payload)
    client.shutdown_write()
    assert digest(client.read_until_eof()) == digest(payload)  # then EOF, not a reset
    proxy.stop_cleanly()
    server.stop_cleanly()


def test_upstream_half_close_passes_through_and_the_client_can_still_send(
        launch: Launcher) -> None:
    upstream = launch.upstream_socket()
    proxy = launch.proxy(upstream.getsockname()[1], *CHAOS)
    client = proxy.connect()
    client.send(b"request")
    with accept(upstream) as conn:
        assert recv_exactly(conn, 7) == b"request"
        conn.sendall(b"answer")
        conn.shutdown(socket.SHUT_WR)
        assert client.read_until_eof() == b"answer"
        client.send(b"more, after the server's FIN")
        client.shutdown_write()
        assert recv_until_eof(conn) == b"more, after the server's FIN"
    proxy.stop_cleanly()


def test_uppercase_behind_chaos_proxy_answers_every_line_in_order(
        launch: Launcher) -> None:
    # Pieces of 1 to 5 bytes: lines, and UTF-8 characters, arrive cut anywhere.
    server = launch.server("uppercase_server")
    proxy = launch.proxy(server.port, "--chaos-split", "5", "--chaos-delay", "0.001",
                         "--seed", "2")
    client = proxy.connect()
    words = ["straße", "张三", "hello, world", "", "ça va", "ﬁne"]
    lines = [f"{i} {words[i % len(words)]}" for i in range(200)]
    request = "".join(line + "\n" for line in lines).encode()
    expected = "".join(line.upper() + "\n" for line in lines).encode()
    assert exchange(client.sock, request) == expected
    proxy.stop_cleanly()
    server.stop_cleanly()


def test_chat_behind_chaos_proxy_delivers_each_members_lines_complete_and_in_order(
        launch: Launcher) -> None:
    server = launch.server("chat_server")
    proxy = launch.proxy(server.port, *CHAOS)
    members: list[Client] = []
    for _ in range(3):
        member = proxy.connect()
        welcome = member.line()
        # The chat server sees the proxy's upstream connection, so that is the name it gives.
        assert welcome.startswith("* welcome, you are 127.0.0.1:"), welcome
        member.name = welcome.removeprefix("* welcome, you are ").split(";")[0]
        for present in members:
            assert present.line() == f"* {member.name} joined"
        members.append(member)
    count = 40
    for member in members:
        member.send("".join(f"message {i} from {member.name}, straße\n"
                            for i in range(count)).encode())
    for member in members:
        received = [member.line() for _ in range(count * (len(members) - 1))]
        for sender in members:
            from_sender = [text for text in received if text.startswith(f"{sender.name}: ")]
            expected = [] if sender is member else [
                f"{sender.name}: message {i} from {sender.name}, straße" for i in range(count)]
            assert from_sender == expected, f"{member.name} from {sender.name}"
    proxy.stop_cleanly()
    server.stop_cleanly()


# -- resets ---------------------------------------------------------------------------------------


def test_client_reset_reaches_upstream_as_a_reset(launch: Launcher) -> None:
    upstream = launch.upstream_socket()
    proxy = launch.proxy(upstream.getsockname()[1])
    client = proxy.connect()
    client.send(b"hello")
    with accept(upstream) as conn:
        assert recv_exactly(conn, 5) == b"hello"
        client.reset()
        with pytest.raises(ConnectionResetError):
            conn.recv(100)
    proxy.stop_cleanly()


def test_upstream_reset_reaches_the_client_as_a_reset(launch: Launcher) -> None:
    upstream = launch.upstream_socket()
    proxy = launch.proxy(upstream.getsockname()[1])
    client = proxy.connect()
    client.send(b"hello")
    conn = accept(upstream)
    assert recv_exactly(conn, 5) == b"hello"
    Client(conn).reset()
    with pytest.raises(ConnectionResetError):
        client.read_until_eof()
    proxy.stop_cleanly()


def reset_pattern(proxy: ProxyProcess, connections: int) -> list[bool]:
    """Run ``connections`` echo transfers one after another; which of them were reset. One that
    was not must have come back whole."""
    pattern = []
    for index in range(connections):
        payload = random.Random(index).randbytes(RESET_TEST_BYTES)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT) as sock:
            received, _, reset = transfer(sock, payload, rng=random.Random(index))
        cut = reset or received != payload
        if cut:
            assert payload.startswith(received), "what did arrive before the reset is in order"
        pattern.append(cut)
    return pattern


def test_chaos_reset_of_every_connection_resets_every_connection(
        launch: Launcher) -> None:
    server = launch.server("echo_server")
    proxy = launch.proxy(server.port, "--chaos-reset", "1", "--seed", "5")
    assert reset_pattern(proxy, 4) == [True] * 4
    proxy.stop_cleanly()
    server.stop_cleanly()


def test_chaos_reset_of_half_resets_the_same_connections_for_the_same_seed(
        launch: Launcher) -> None:
    server = launch.server("echo_server")
    chaos = ("--chaos-reset", "0.5", "--seed", "7")
    first = launch.proxy(server.port, *chaos)
    second = launch.proxy(server.port, *chaos)
    pattern = reset_pattern(first, 10)
    assert True in pattern and False in pattern, pattern
    assert reset_pattern(second, 10) == pattern
    first.stop_cleanly()
    second.stop_cleanly()
    server.stop_cleanly()


# -- back-pressure, failures, signals -----------------------------------------------------------


def flood(sock: socket.socket, limit: int = 400 * MiB, timeout: float = 15.0) -> int:
    """Send from non-blocking ``sock`` until the peer stops taking bytes; returns bytes sent.

    EAGAIN means every buffer on the way is full. Were the proxy still reading, room would appear
    within moments; a whole second without any means it stopped. Fails at ``limit`` bytes.
    """
    sock.setblocking(False)
    chunk = b"x" * 65536
    sent = 0
    deadline = time.monotonic() + timeout
    while sent < limit:
        assert time.monotonic() < deadline, f"still sending after {timeout} s ({sent} bytes)"
        try:
            sent += sock.send(chunk)
            continue
        except BlockingIOError:
            pass
        if not select.select([], [sock], [], 1.0)[1]:
            return sent
    raise AssertionError(f"the proxy read {limit} bytes meant for a client that never reads")


def assert_rss_bounded(proxy: ProxyProcess, before: int | None) -> None:
    after = vm_rss_kib(proxy.pid)
    if before is not None and after is not None:
        assert after - before < 32 * 1024, f"proxy RSS grew from {before} KiB to {after} KiB"


THROTTLE_CHAOS = pytest.mark.parametrize(
    "chaos", [(), ("--chaos-split", "16384", "--seed", "3")], ids=["plain", "chaos-split"])


@THROTTLE_CHAOS
def test_client_that_sends_to_echo_but_never_reads_is_throttled_not_buffered(
        launch: Launcher, chaos: tuple[str, ...]) -> None:
    server = launch.server("echo_server")
    proxy = launch.proxy(server.port, *chaos)
    rss_before = vm_rss_kib(proxy.pid)
    flooder = proxy.connect()
    flood(flooder.sock)
    assert_rss_bounded(proxy, rss_before)
    other = proxy.connect()
    other.send(b"still serving\n")
    assert other.read_line() == b"still serving\n"
    proxy.stop_cleanly()
    server.stop_cleanly()


@THROTTLE_CHAOS
def test_upstream_streaming_to_a_client_that_never_reads_is_throttled_not_buffered(
        launch: Launcher, chaos: tuple[str, ...]) -> None:
    # The case Protocol's default pause_writing gets wrong in a proxy: the client side's queue
    # is full, and only pausing the *upstream* side's reading stops it growing.
    upstream = launch.upstream_socket()
    proxy = launch.proxy(upstream.getsockname()[1], *chaos)
    rss_before = vm_rss_kib(proxy.pid)
    sleeper = proxy.connect()
    with accept(upstream) as conn:
        flood(conn)
        assert_rss_bounded(proxy, rss_before)
        sleeper.reset()  # the proxy aborts the upstream side in turn
        conn.settimeout(TIMEOUT)
        with pytest.raises(ConnectionResetError):
            recv_until_eof(conn)
    proxy.stop_cleanly()


def test_upstream_refusing_closes_the_client_promptly_with_one_log_line_per_client(
        launch: Launcher) -> None:
    nobody = launch.socket(socket.AF_INET, socket.SOCK_STREAM)
    nobody.bind(("127.0.0.1", 0))  # bound, never listening: a connect to it is refused
    port = nobody.getsockname()[1]
    proxy = launch.proxy(port)
    for count in (1, 2):
        client = proxy.connect()
        client.send(b"anyone there?\n")
        started = time.monotonic()
        client.expect_eof()  # a FIN: recv() would raise ConnectionResetError on a reset
        assert time.monotonic() - started < 1.0
        lines = proxy.stderr().splitlines()
        assert len(lines) == count, lines
        assert f"cannot connect to 127.0.0.1:{port}: ECONNREFUSED" in lines[-1]
        assert proxy.running()
    proxy.stop_cleanly()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_closes_open_tunnels_and_exits_0_promptly(
        launch: Launcher, signum: int) -> None:
    server = launch.server("echo_server")
    proxy = launch.proxy(server.port, *CHAOS)
    client = proxy.connect()
    client.send(b"ping\n")
    assert client.read_line() == b"ping\n"
    started = time.monotonic()
    proxy.send_signal(signum)
    client.expect_eof()
    client.close()
    assert proxy.wait(SHUTDOWN_TIMEOUT) == 0, proxy.stderr()
    assert time.monotonic() - started < 2.5
    proxy.assert_no_traceback()
    assert proxy.stdout.read_until_eof() == b"", "nothing but the announcement on stdout"
    server.stop_cleanly()


def test_listen_address_in_use_is_one_stderr_line_and_exit_status_2(
        launch: Launcher) -> None:
    blocker = launch.upstream_socket()
    address = f"127.0.0.1:{blocker.getsockname()[1]}"
    proxy = launch.start_proxy("--listen", address, "--to", "127.0.0.1:9")
    assert proxy.wait(STARTUP_TIMEOUT) == 2
    lines = proxy.stderr().splitlines()
    assert len(lines) == 1, lines
    assert address in lines[0] and "address already in use" in lines[0].lower()
    assert proxy.stdout.read_until_eof() == b""


@pytest.mark.parametrize(("text", "parsed"), [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    ("localhost:0", ("localhost", 0)),
    ("[::1]:8080", ("::1", 8080)),
])
def test_host_and_port_takes_ipv6_in_brackets(text: str, parsed: tuple[str, int]) -> None:
    assert host_and_port(text) == parsed


@pytest.mark.parametrize("text", ["8080", ":8080", "::1:8080", "[]:80", "host:65536", "host:x"])
def test_host_and_port_refuses_what_is_not_host_colon_port(text: str) -> None:
    with pytest.raises((argparse.ArgumentTypeError, ValueError)):
        host_and_port(text)

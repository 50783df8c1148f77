"""The example servers, end to end: each one run as ``python -m examples.NAME``, as a user would.

The conventions every server promises (``examples/serving.py``, ``examples/args.py``): the first stdout line is
``listening on HOST:PORT``; SIGINT and SIGTERM close the listener and every connection and exit 0
within about 2 s; a bind failure is one stderr line and exit status 2; ``--trace`` and
``--log-level`` write to stderr. Then what the echo and uppercase servers do with bytes. (The chat
server's own behaviour is in ``test_examples_chat.py``.) Every test ends by checking that the
server printed no traceback.
"""

from __future__ import annotations

import os
import random
import re
import select
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.processes import (
    REPO_ROOT,
    SERVERS,
    SHUTDOWN_TIMEOUT,
    STARTUP_TIMEOUT,
    Client,
    Launcher,
    LineReader,
    ServerProcess,
    command,
    exchange,
    ipv6_loopback_available,
    vm_rss_kib,
)

MiB = 1024 * 1024




def check_served(server: ServerProcess, client: Client) -> None:
    """One request answered: proves the server's loop, and so its signal handlers, is running."""
    if server.program == "chat_server":
        assert client.line() == f"* welcome, you are {client.name}; /help lists commands"
        client.send(b"/who\n")
        assert client.line() == f"* online: {client.name}"
    else:
        client.send(b"ping\n")
        expected = b"ping\n" if server.program == "echo_server" else b"PING\n"
        assert client.read_line() == expected


# -- conventions shared by every server ----------------------------------------------------------


@pytest.mark.parametrize("program", SERVERS)
def test_first_stdout_line_announces_the_loopback_address_and_the_chosen_port(
        launch: Launcher, program: str) -> None:
    server = launch.server(program)  # reads the first line with a deadline: it was flushed
    assert server.first_line == f"listening on 127.0.0.1:{server.port}"
    client = server.connect()
    check_served(server, client)
    client.close()
    server.stop_cleanly()
    assert server.stdout.read_until_eof() == b"", "nothing but the announcement on stdout"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("program", SERVERS)
def test_signal_gives_idle_client_eof_and_server_exits_0_promptly(
        launch: Launcher, program: str, signum: int) -> None:
    # A grace far longer than the bound below: an exit that waited it out cannot pass.
    server = launch.server(program, "--shutdown-grace", "30")
    client = server.connect()
    check_served(server, client)
    started = time.monotonic()
    server.send_signal(signum)
    if program == "chat_server":  # members are told before the close
        assert client.read_line() == b"* the server is shutting down; goodbye\n"
    client.expect_eof()  # a FIN, not a reset: recv() would raise ConnectionResetError
    client.close()
    status = server.wait(SHUTDOWN_TIMEOUT)
    elapsed = time.monotonic() - started
    assert status == 0, server.stderr()
    assert elapsed < 2.5, f"exit took {elapsed:.2f}s: it waited for the grace, not the client"
    server.assert_no_traceback()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("program", SERVERS)
def test_signal_after_the_last_client_left_exits_0_at_once_with_one_shutdown_line(
        launch: Launcher, program: str, signum: int) -> None:
    server = launch.server(program)
    client = server.connect()
    check_served(server, client)
    client.shutdown_write()
    client.read_until_eof()
    client.close()
    started = time.monotonic()
    server.stop_cleanly(signum)
    assert time.monotonic() - started < 1.0, "nothing to flush: no reason to wait"
    lines = server.stderr().splitlines()
    assert len(lines) == 1 and "shutting down; closing 0 connections" in lines[0], lines


@pytest.mark.parametrize("program", SERVERS)
def test_shutdown_refuses_new_clients_and_ends_within_grace_when_a_client_never_closes(
        launch: Launcher, program: str) -> None:
    # A short grace, so the bound below leaves a loaded machine seconds of slack.
    server = launch.server(program, "--shutdown-grace", "0.5")
    stubborn = server.connect()
    check_served(server, stubborn)
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    if program == "chat_server":
        assert stubborn.read_line() == b"* the server is shutting down; goodbye\n"
    stubborn.expect_eof()  # the server is shutting down; we keep our socket open regardless
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    status = server.wait(SHUTDOWN_TIMEOUT)
    elapsed = time.monotonic() - started
    assert status == 0, server.stderr()
    # It waits the grace out for the client that never closes, and no longer.
    assert 0.5 <= elapsed < 3.0, f"exit took {elapsed:.2f}s (promise: about 0.5 s)"
    server.assert_no_traceback()


def test_second_signal_aborts_remaining_connections_at_once(launch: Launcher) -> None:
    server = launch.server("echo_server")
    stubborn = server.connect()
    check_served(server, stubborn)
    server.send_signal(signal.SIGINT)
    stubborn.expect_eof()  # the first signal was handled: the server now lingers for our FIN
    started = time.monotonic()
    server.send_signal(signal.SIGINT)
    status = server.wait(SHUTDOWN_TIMEOUT)
    assert status == 0, server.stderr()
    assert time.monotonic() - started < 1.5, "the second signal should not wait out the grace"
    server.assert_no_traceback()


@pytest.mark.parametrize("program", SERVERS)
def test_port_in_use_is_one_stderr_line_naming_the_port_and_exit_status_2(
        launch: Launcher, program: str) -> None:
    blocker = launch.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    server = launch.start_server(program, "--port", str(port))
    status = server.wait(STARTUP_TIMEOUT)
    assert status == 2
    lines = server.stderr().splitlines()
    assert len(lines) == 1, lines
    assert f"127.0.0.1:{port}" in lines[0]
    assert "address already in use" in lines[0].lower()
    assert server.stdout.read_until_eof() == b"", "no 'listening on' line after a bind failure"


def test_port_out_of_range_is_a_usage_error_not_a_different_port(launch: Launcher) -> None:
    server = launch.start_server("echo_server", "--port", "65536")
    first = server.stdout.read_line_or_eof(STARTUP_TIMEOUT)
    assert first == b"", f"asked for port 65536, got {first!r}"
    assert server.wait(STARTUP_TIMEOUT) == 2
    assert "65536" in server.stderr()


def wait_until_blocked_writing_to_a_pipe(proc: subprocess.Popen[bytes],
                                         timeout: float = STARTUP_TIMEOUT) -> None:
    """Poll ``/proc/PID/wchan`` (there is no descriptor to wait on) until the process sleeps in
    the kernel's pipe write; skip where the kernel does not show it, fail if it exited."""
    wchan = Path(f"/proc/{proc.pid}/wchan")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = proc.poll()
        if status is not None:
            pytest.fail(f"the server exited (status {status}) before it blocked writing its "
                        "announcement")
        try:
            if "pipe_write" in wchan.read_text():
                return
        except OSError:
            pytest.skip("/proc/PID/wchan is not readable here")
        time.sleep(0.01)
    pytest.skip("the kernel does not show a process blocked in a pipe write in wchan")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_arriving_while_the_announcement_is_written_still_exits_0_cleanly(
        signum: int) -> None:
    # The race between the announcement and the handlers made deterministic: the server's stdout
    # is a pipe we filled up, so its print() blocks; we signal it exactly there, then drain.
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        while True:
            os.write(write_end, b"." * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(write_end, True)
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(command("echo_server", "--port", "0"), cwd=REPO_ROOT,
                                stdin=subprocess.DEVNULL, stdout=write_end, stderr=stderr)
        os.close(write_end)
        try:
            wait_until_blocked_writing_to_a_pipe(proc)
            proc.send_signal(signum)
            output = LineReader(read_end, lambda size: os.read(read_end, size), "stdout")
            assert b"listening on 127.0.0.1:" in output.read_until_eof(SHUTDOWN_TIMEOUT)
            status = proc.wait(SHUTDOWN_TIMEOUT)
            stderr.seek(0)
            text = stderr.read().decode()
            assert status == 0, f"exit status {status}; stderr: {text}"
            assert "Traceback" not in text
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            os.close(read_end)


@pytest.mark.parametrize("program", SERVERS)
def test_trace_shows_accept_recv_eof_state_changes_and_send_on_stderr(
        launch: Launcher, program: str) -> None:
    server = launch.server(program, "--trace")
    client = server.connect()
    check_served(server, client)  # sends exactly 5 bytes: "ping\n" or "/who\n"
    client.shutdown_write()
    client.expect_eof()
    client.close()
    server.stop_cleanly()
    trace = server.stderr()
    assert re.search(r"pass \d+: select\(\) with ", trace), trace
    assert "woke: fd " in trace
    assert f"listener 127.0.0.1:{server.port}  accept  fd=" in trace
    assert f"peer={client.name}" in trace
    assert re.search(r"  recv  bytes=5  \[recv buffer 5 B, send buffer 0 B\]", trace), trace
    assert "calling data_received" in trace and "data_received returned" in trace
    assert "eof — recv returned 0: the peer sent FIN" in trace
    assert "change=CONNECTING -> OPEN" in trace
    assert "change=OPEN -> CLOSING" in trace
    assert "change=CLOSING -> CLOSED" in trace
    assert re.search(r"  send  bytes=\d+", trace), trace
    assert "connection_lost  exc=None" in trace


@pytest.mark.parametrize("program", SERVERS)
def test_log_level_info_logs_the_shutdown_and_no_trace_without_the_flag(
        launch: Launcher, program: str) -> None:
    server = launch.server(program, "--log-level", "info")
    client = server.connect()
    check_served(server, client)
    server.send_signal(signal.SIGTERM)
    if program == "chat_server":
        assert client.read_line() == b"* the server is shutting down; goodbye\n"
    client.expect_eof()
    client.close()
    assert server.wait(SHUTDOWN_TIMEOUT) == 0
    log = server.stderr()
    assert "shutting down; closing 1 connection " in log
    assert "  recv  bytes=" not in log, "reactor events are traced only with --trace"
    server.assert_no_traceback()


@pytest.mark.skipif(not ipv6_loopback_available(), reason="::1 cannot be bound here")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
@pytest.mark.parametrize("program", SERVERS)
def test_ipv6_loopback_is_announced_in_brackets_and_serves_an_ipv6_client(
        launch: Launcher, program: str, host: str) -> None:
    server = launch.server(program, "--host", host)
    assert server.first_line == f"listening on [::1]:{server.port}"
    client = server.connect()
    assert client.sock.family == socket.AF_INET6
    assert client.name == f"[::1]:{client.sock.getsockname()[1]}"
    check_served(server, client)
    client.close()
    server.stop_cleanly()


# -- echo_server ----------------------------------------------------------------------------------


def test_echo_returns_arbitrary_bytes_unchanged(launch: Launcher) -> None:
    server = launch.server("echo_server")
    client = server.connect()
    payload = bytes(range(256)) + "straße 张三\r\n".encode()
    client.send(payload)
    assert client.read_exactly(len(payload)) == payload
    client.send(b"no newline")
    assert client.read_exactly(10) == b"no newline"
    server.stop_cleanly()


def test_echo_returns_one_mib_in_order_then_eof_after_client_half_close(
        launch: Launcher) -> None:
    server = launch.server("echo_server")
    client = server.connect()
    payload = random.Random(1).randbytes(MiB)
    received = exchange(client.sock, payload)
    assert len(received) == len(payload)
    assert received == payload
    server.stop_cleanly()


def test_echo_client_that_never_reads_is_throttled_by_back_pressure_not_buffered(
        launch: Launcher) -> None:
    server = launch.server("echo_server")
    rss_before = vm_rss_kib(server.pid)
    flooder = server.connect()
    flooder.sock.setblocking(False)
    limit = 50 * MiB
    chunk = b"x" * 65536
    sent = 0
    deadline = time.monotonic() + 20
    while sent < limit:
        assert time.monotonic() < deadline, f"still sending after 20 s ({sent} bytes)"
        try:
            sent += flooder.sock.send(chunk)
            continue
        except BlockingIOError:
            pass
        # EAGAIN: every buffer between us and the server is full. If the server still read, room
        # would appear within moments; a whole second without room means it stopped reading.
        _, writable, _ = select.select([], [flooder.sock], [], 1.0)
        if not writable:
            break
    assert sent < limit, "the server kept reading 50 MB from a client that never reads its echoes"
    rss_after = vm_rss_kib(server.pid)
    if rss_before is not None and rss_after is not None:
        assert rss_after - rss_before < 64 * 1024, (
            f"server RSS grew from {rss_before} KiB to {rss_after} KiB")
    other = server.connect()
    other.send(b"still serving\n")
    assert other.read_line() == b"still serving\n"
    flooder.close()  # unread echoes: the kernel resets the connection
    other.send(b"and after the flooder left\n")
    assert other.read_line() == b"and after the flooder left\n"
    server.stop_cleanly()


def test_echo_shutdown_flushes_queued_echoes_to_a_slow_reader_before_its_eof(
        launch: Launcher) -> None:
    server = launch.server("echo_server")
    client = server.connect()
    client.sock.setblocking(False)
    generator = random.Random(2)
    sent = bytearray()
    deadline = time.monotonic() + 20
    while True:  # fill every buffer until the server stops reading (back-pressure)
        assert time.monotonic() < deadline and len(sent) < 50 * MiB
        chunk = generator.randbytes(65536)
        try:
            sent += chunk[:client.sock.send(chunk)]
            continue
        except BlockingIOError:
            pass
        if not select.select([], [client.sock], [], 1.0)[1]:
            break
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    client.sock.settimeout(SHUTDOWN_TIMEOUT)
    echoed = client.read_until_eof()  # ConnectionResetError here would mean data was dropped
    assert len(echoed) > 64 * 1024, "the server's queue held at least its high-water mark"
    assert echoed == sent[:len(echoed)], "every queued echo arrives, in order, before EOF"
    client.close()
    assert server.wait(SHUTDOWN_TIMEOUT) == 0
    assert time.monotonic() - started < 2.5
    server.assert_no_traceback()


def test_echo_client_reset_mid_transfer_leaves_server_serving_others(launch: Launcher) -> None:
    server = launch.server("echo_server")
    resetter = server.connect()
    resetter.sock.setblocking(False)
    data = b"y" * (256 * 1024)
    sent = 0
    while sent < len(data):
        try:
            sent += resetter.sock.send(data[sent:])
        except BlockingIOError:
            break
    resetter.sock.settimeout(5)
    assert resetter.read_exactly(1) == b"y"  # echoes are flowing: the transfer is under way
    resetter.reset()
    other = server.connect()
    other.send(b"hello\n")
    assert other.read_line() == b"hello\n"
    server.stop_cleanly()
    logged = [line for line in server.stderr().splitlines() if "shutting down" not in line]
    assert logged == [], "a peer's reset is an everyday event: nothing to log"


# -- uppercase_server -----------------------------------------------------------------------------


@pytest.mark.parametrize(("request_line", "reply"), [
    ("straße\n", "STRASSE\n"),
    ("张三\n", "张三\n"),
    ("hello, world\r\n", "HELLO, WORLD\n"),
    ("\n", "\n"),
], ids=["sharp-s-grows", "han-unchanged", "crlf-accepted", "empty-line"])
def test_uppercase_replies_with_the_line_upper_cased(
        launch: Launcher, request_line: str, reply: str) -> None:
    server = launch.server("uppercase_server")
    client = server.connect()
    client.send(request_line.encode())
    assert client.read_line() == reply.encode()
    server.stop_cleanly()


def test_uppercase_answers_pipelined_lines_in_order(launch: Launcher) -> None:
    server = launch.server("uppercase_server")
    client = server.connect()
    client.send("one\ntwo\r\nstraße\n张三\n".encode())
    assert client.read_exactly(len("ONE\nTWO\nSTRASSE\n张三\n".encode())) == \
        "ONE\nTWO\nSTRASSE\n张三\n".encode()
    server.stop_cleanly()


def test_uppercase_invalid_utf8_gets_one_error_line_and_the_connection_stays_open(
        launch: Launcher) -> None:
    server = launch.server("uppercase_server")
    client = server.connect()
    client.send(b"caf\xe9 \xff\xfe\n")
    error = client.read_line()
    assert error.startswith(b"error:"), error
    client.send(b"next\n")
    assert client.read_line() == b"NEXT\n"
    server.stop_cleanly()


def test_uppercase_endless_line_gets_an_error_line_then_a_clean_close(launch: Launcher) -> None:
    server = launch.server("uppercase_server")
    client = server.connect()
    client.send(b"a" * (200 * 1024))  # no newline, ever
    error = client.read_line()
    assert error.startswith(b"error: line too long"), error
    client.expect_eof()  # then FIN; recv() raising ConnectionResetError would fail here
    other = server.connect()
    other.send(b"fine\n")
    assert other.read_line() == b"FINE\n"
    server.stop_cleanly()


def test_uppercase_last_line_without_newline_is_answered_before_the_close(
        launch: Launcher) -> None:
    server = launch.server("uppercase_server")
    client = server.connect()
    assert exchange(client.sock, "first\nstraße".encode()) == "FIRST\nSTRASSE\n".encode()
    server.stop_cleanly()


def test_uppercase_client_that_sends_but_never_reads_is_throttled(launch: Launcher) -> None:
    server = launch.server("uppercase_server")
    flooder = server.connect()
    flooder.sock.setblocking(False)
    chunk = b"request line\n" * 5000
    sent = 0
    deadline = time.monotonic() + 20
    while sent < 50 * MiB:
        assert time.monotonic() < deadline
        try:
            sent += flooder.sock.send(chunk)
            continue
        except BlockingIOError:
            pass
        _, writable, _ = select.select([], [flooder.sock], [], 1.0)
        if not writable:
            break
    assert sent < 50 * MiB, "the server kept reading from a client that never reads its replies"
    other = server.connect()
    other.send(b"ok\n")
    assert other.read_line() == b"OK\n"
    flooder.close()
    server.stop_cleanly()

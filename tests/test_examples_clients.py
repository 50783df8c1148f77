"""The example clients, end to end: ``uppercase_client`` and ``chat_client`` as processes, with
stdin a pipe the test writes to (or ``input=``), against real example servers.

Promises: uppercase_client prints every reply, half-closes at stdin's EOF and exits 0 once all
replies arrived (a last line without newline counts); a refused connect is one stderr line with
"refused" and exit status 1. chat_client prints what arrives, sends what is typed, and exits on
/quit, at stdin's EOF, or when the server closes.
"""

from __future__ import annotations

import re
import signal
import socket

import pytest

from tests.processes import (
    SHUTDOWN_TIMEOUT,
    ClientProcess,
    Launcher,
    ServerProcess,
    ipv6_loopback_available,
)

WELCOME = re.compile(r"\* welcome, you are (?P<name>\S+); /help lists commands")




def refused_port(launch: Launcher) -> int:
    """A loopback port where a connect is refused: bound by us, but not listening (no race with
    another program taking a port we just released)."""
    sock = launch.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


# -- uppercase_client ---------------------------------------------------------------------------


def test_uppercase_client_prints_every_reply_including_an_unterminated_last_line_and_exits_0(
        launch: Launcher) -> None:
    server = launch.server("uppercase_server")
    result = launch.run("uppercase_client", "--port", str(server.port),
                        input="hello\nstraße\n张三\nlast line".encode())
    assert result.returncode == 0, result.stderr
    assert result.stdout == "HELLO\nSTRASSE\n张三\nLAST LINE\n".encode()
    assert result.stderr == b""
    server.stop_cleanly()


def test_uppercase_client_gets_every_reply_to_a_large_input_in_order(launch: Launcher) -> None:
    server = launch.server("uppercase_server")
    lines = [f"line {i} of many, straße" for i in range(20_000)]
    result = launch.run("uppercase_client", "--port", str(server.port),
                        input="\n".join(lines).encode() + b"\n", timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [line.upper() for line in lines]
    assert result.stderr == b""
    server.stop_cleanly()


def test_uppercase_client_with_empty_stdin_exits_0_without_output(launch: Launcher) -> None:
    server = launch.server("uppercase_server")
    result = launch.run("uppercase_client", "--port", str(server.port), input=b"")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    server.stop_cleanly()


@pytest.mark.skipif(not ipv6_loopback_available(), reason="::1 cannot be bound here")
def test_uppercase_client_talks_to_an_ipv6_server(launch: Launcher) -> None:
    server = launch.server("uppercase_server", "--host", "::1")
    result = launch.run("uppercase_client", "--host", "::1", "--port", str(server.port),
                        input=b"over ipv6\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"OVER IPV6\n"
    server.stop_cleanly()


@pytest.mark.parametrize("program", ["uppercase_client", "chat_client"])
def test_client_refused_connection_is_one_stderr_line_and_exit_status_1(
        launch: Launcher, program: str) -> None:
    port = refused_port(launch)
    result = launch.run(program, "--port", str(port), input=b"hello\n")
    assert result.returncode == 1
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert "refused" in lines[0]
    assert f"127.0.0.1:{port}" in lines[0]
    assert "Traceback" not in result.stderr.decode()


# -- chat_client ----------------------------------------------------------------------------------


def start_chat_client(launch: Launcher, server: ServerProcess) -> tuple[ClientProcess, str]:
    """Start a chat_client; return it and the name the room gave it (from its welcome)."""
    client = launch.client("chat_client", "--port", str(server.port))
    match = WELCOME.fullmatch(client.stdout.line())
    assert match, "the first thing printed is the welcome"
    return client, match["name"]


def test_chat_client_line_typed_in_one_is_printed_by_the_other_and_quit_exits_0(
        launch: Launcher) -> None:
    server = launch.server("chat_server")
    alice, alice_name = start_chat_client(launch, server)
    bob, bob_name = start_chat_client(launch, server)
    assert alice.stdout.line() == f"* {bob_name} joined"

    alice.type("hello bob\n")
    assert bob.stdout.line() == f"{alice_name}: hello bob"
    bob.type("hi alice, 你好\n")
    assert alice.stdout.line() == f"{bob_name}: hi alice, 你好"

    bob.type("/quit\n")
    assert bob.stdout.line() == "* goodbye"
    assert bob.wait() == 0
    assert bob.stdout.read_until_eof() == b""
    assert alice.stdout.line() == f"* {bob_name} left"
    bob.assert_no_traceback()

    alice.close_stdin()
    assert alice.wait() == 0
    alice.assert_no_traceback()
    server.stop_cleanly()


def test_chat_client_talks_with_a_raw_socket_member(launch: Launcher) -> None:
    server = launch.server("chat_server")
    client, name = start_chat_client(launch, server)
    raw = server.connect()
    assert raw.line().startswith("* welcome, you are ")
    assert client.stdout.line() == f"* {raw.name} joined"
    raw.send_line("from the socket")
    assert client.stdout.line() == f"{raw.name}: from the socket"
    client.type("from the program\n")
    assert raw.line() == f"{name}: from the program"
    client.type("/quit\n")
    assert client.stdout.line() == "* goodbye"
    assert client.wait() == 0
    server.stop_cleanly()


def test_chat_client_exits_0_at_stdin_eof_and_the_room_hears_it_left(launch: Launcher) -> None:
    server = launch.server("chat_server")
    client, name = start_chat_client(launch, server)
    raw = server.connect()
    raw.line()  # welcome
    assert client.stdout.line() == f"* {raw.name} joined"
    client.type("last words")  # no newline: still delivered when stdin ends
    client.close_stdin()
    assert client.wait() == 0
    assert raw.line() == f"{name}: last words"
    assert raw.line() == f"* {name} left"
    client.assert_no_traceback()
    server.stop_cleanly()


def test_chat_client_exits_when_the_server_shuts_down(launch: Launcher) -> None:
    server = launch.server("chat_server")
    client, _ = start_chat_client(launch, server)
    server.send_signal(signal.SIGTERM)
    assert client.wait(SHUTDOWN_TIMEOUT) == 0
    assert client.stdout.read_until_eof() == b"* the server is shutting down; goodbye\n"
    assert "chat_client: connection closed by the server" in client.stderr()
    client.assert_no_traceback()
    assert server.wait(SHUTDOWN_TIMEOUT) == 0
    server.assert_no_traceback()

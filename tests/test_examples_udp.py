"""The UDP example programs, run as ``python -m examples.NAME`` the way a user starts them.

Servers promise what TCP servers promise (``examples/serving.py``, ``examples/args.py``): first stdout line
``listening on HOST:PORT``, exit 0 on SIGINT/SIGTERM, one stderr line and exit 2 when the port is
taken. ``udp_client`` promises a bounded wait per line and a plain sentence when no reply comes;
its exit status is 1 when every request failed. Every wait has a deadline (``tests/processes.py``),
and every process is killed and reaped by the fixture, pass or fail.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import pytest

from tests.processes import TIMEOUT, Launcher, ServerProcess, ipv6_loopback_available

UDP_SERVERS = ("udp_echo_server", "udp_uppercase_server")




def ask(server: ServerProcess, data: bytes) -> bytes:
    """One request datagram from a plain socket and its reply: proves the server's loop runs."""
    family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendto(data, (server.host, server.port))
        return sock.recv(65536)


def udp_client(launch: Launcher, port: int, stdin: bytes, *args: str,
               ) -> subprocess.CompletedProcess[bytes]:
    return launch.run("udp_client", "--port", str(port), *args, input=stdin)


def free_udp_port(launch: Launcher) -> int:
    """A UDP port nothing listens on: bind one, note it, close it."""
    sock = launch.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def test_udp_echo_server_and_udp_client_round_trip_and_exit_0(launch: Launcher) -> None:
    server = launch.server("udp_echo_server")
    assert server.first_line == f"listening on 127.0.0.1:{server.port}"
    result = udp_client(launch, server.port, b"hello\nworld\nlast line without newline")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello\nworld\nlast line without newline\n"
    assert result.stderr == b""
    server.stop_cleanly(signal.SIGTERM)


def test_udp_uppercase_server_answers_strasse(launch: Launcher) -> None:
    server = launch.server("udp_uppercase_server")
    result = udp_client(launch, server.port, "straße\nhello\n".encode())
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "STRASSE\nHELLO\n"


def test_udp_client_says_plainly_when_nothing_listens_and_exits_1(launch: Launcher) -> None:
    port = free_udp_port(launch)
    started = time.monotonic()
    result = udp_client(launch, port, b"ping\n", "--timeout", "3.0")
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode() == (f"udp_client: nothing is listening at 127.0.0.1:{port} "
                                      f"(ICMP port unreachable: connection refused)\n")
    assert time.monotonic() - started < 3.0  # the ICMP error ended the wait, not the timeout


def test_udp_client_says_plainly_when_no_reply_comes_and_exits_1(launch: Launcher) -> None:
    silent = launch.socket(socket.AF_INET, socket.SOCK_DGRAM)  # reads, never answers
    silent.bind(("127.0.0.1", 0))
    silent.settimeout(TIMEOUT)
    result = udp_client(launch, silent.getsockname()[1], b"hello?\n", "--timeout", "0.3")
    assert silent.recv(100) == b"hello?"
    assert result.returncode == 1
    assert result.stderr == b"udp_client: no reply within 0.3s (UDP may drop datagrams)\n"


def test_udp_client_with_empty_stdin_sends_nothing_and_exits_0(launch: Launcher) -> None:
    result = udp_client(launch, free_udp_port(launch), b"")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


@pytest.mark.parametrize("program", UDP_SERVERS)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_udp_server_exits_0_on_signal(launch: Launcher, program: str, signum: int) -> None:
    server = launch.server(program)
    assert ask(server, b"ping") in (b"ping", b"PING")  # the loop, so its handlers, is running
    server.stop_cleanly(signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_udp_server_signalled_as_soon_as_it_announces_exits_0(
    launch: Launcher, signum: int,
) -> None:
    launch.server("udp_echo_server").stop_cleanly(signum)  # handlers precede the announcement


def test_udp_server_on_a_taken_port_exits_2_with_one_stderr_line(launch: Launcher) -> None:
    taken = launch.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    server = launch.start_server("udp_echo_server", "--port", str(port))
    assert server.wait() == 2
    assert server.stdout.read_until_eof() == b""
    assert server.stderr() == (f"udp_echo_server: cannot listen on 127.0.0.1:{port} (UDP): "
                               f"Address already in use\n")


@pytest.mark.skipif(not ipv6_loopback_available(), reason="this machine cannot bind ::1 (no IPv6)")
def test_udp_server_on_ipv6_loopback_announces_a_bracketed_address(launch: Launcher) -> None:
    server = launch.server("udp_echo_server", "--host", "::1")
    assert server.first_line == f"listening on [::1]:{server.port}"
    assert ask(server, b"six") == b"six"
    result = udp_client(launch, server.port, b"via client\n", "--host", "[::1]")
    assert (result.returncode, result.stdout) == (0, b"via client\n"), result.stderr

"""What an operator types and what the programs answer: flags, limits, errors, pipelines.

Each program runs as ``python -m examples.NAME``, the way a user starts it. Errors are one
stderr line (after argparse's usage) naming the flag, never a Python function, and exit 2.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.processes import REPO_ROOT, Launcher

SERVERS = ["echo_server", "uppercase_server", "chat_server", "udp_echo_server",
           "udp_uppercase_server"]
CLIENTS = [("chat_client", ["--port", "1"]), ("uppercase_client", ["--port", "1"]),
           ("udp_client", ["--port", "1"])]
PROXY = [("tcp_proxy", ["--listen", "127.0.0.1:0", "--to", "127.0.0.1:1"])]
EVERY_PROGRAM = [(name, []) for name in SERVERS] + CLIENTS + PROXY


def run(program: str, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"examples.{program}", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.mark.parametrize("program", SERVERS + ["chat_client", "tcp_proxy"])
def test_usage_names_the_program_as_a_user_starts_it(program: str) -> None:
    result = run(program, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: python -m examples.{program} ")


def test_a_bad_port_names_the_flag_not_a_function() -> None:
    result = run("echo_server", "--port", "abc")
    assert result.returncode == 2
    assert last_line(result.stderr).endswith("argument --port: not a port number: 'abc'")
    assert "port_number" not in result.stderr


def test_chat_help_offers_workers_only_with_redis() -> None:
    text = " ".join(run("chat_server", "--help").stdout.split())
    assert "--workers N" in text and "--redis URL" in text
    assert "share the room through this Redis (needed for --workers)" in text


@pytest.mark.parametrize("args, complaint", [
    (["--redis", "http://h"], "argument --redis: 'http://h': expected redis://"),
    (["--redis", "redis://h:99999"], "argument --redis: 'redis://h:99999': not a port number"),
    (["--room", "two words"], "argument --room: 1 to 64 letters"),
    (["--redis-expiry", "0"], "argument --redis-expiry: must be a positive number"),
])
def test_chat_redis_flags_are_checked(args: list[str], complaint: str) -> None:
    result = run("chat_server", *args)
    assert result.returncode == 2
    assert complaint in result.stderr, result.stderr


@pytest.mark.parametrize("args, complaint", [
    (["--unix", "/tmp/x.sock", "--port", "5000"], "--unix cannot be combined with --port"),
    (["--unix", ""], "argument --unix: empty path"),
    (["--host", "[::1"], "argument --host: not a host: '[::1'"),
    (["--log-level", "loud"], "argument --log-level: invalid choice"),
    (["--idle-timeout", "-1"], "argument --idle-timeout: must be seconds, 0 or off"),
    (["--shutdown-grace", "-1"], "argument --shutdown-grace: must be 0 or more seconds"),
])
def test_server_refuses_bad_flags_in_one_line_with_status_2(args: list[str],
                                                            complaint: str) -> None:
    result = run("echo_server", *args)
    assert result.returncode == 2, result.stderr
    assert complaint in last_line(result.stderr)
    assert "Traceback" not in result.stderr


def test_client_refuses_a_negative_timeout() -> None:
    result = run("uppercase_client", "--port", "1", "--timeout", "-3")
    assert result.returncode == 2
    assert "argument --timeout: must be a positive number of seconds" in result.stderr


@pytest.mark.parametrize("program, args", [
    ("echo_server", ["--shutdown-grace", "0"]),
    ("echo_server", ["--log-level", "DEBUG"]),
    ("chat_server", ["--idle-timeout", "0"]),
    ("chat_server", ["--idle-timeout", "off"]),
    ("chat_server", ["--idle-timeout", "inf"]),
    ("chat_server", ["--idle-timeout", "30000000"]),
])
def test_server_accepts_what_an_operator_may_reasonably_type(
        launch: Launcher, program: str, args: list[str]) -> None:
    server = launch.server(program, *args)
    client = server.connect()
    client.close()
    server.stop_cleanly()
    server.assert_no_traceback()


@pytest.mark.parametrize("bad_path", ["/nonexistent/dir/t.json", "/tmp"])
@pytest.mark.parametrize("program, args", EVERY_PROGRAM + [("echo_server", ["--workers", "2"])])
def test_trace_json_to_a_bad_path_is_one_line_and_status_2(program: str, args: list[str],
                                                           bad_path: str) -> None:
    result = run(program, *args, "--trace-json", bad_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"cannot write --trace-json {bad_path}" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("program, limit", [("chat_server", "4096"),
                                            ("chat_server", "would pass --max-pending-bytes is "
                                                            "disconnected"),
                                            ("chat_server", "(default: 1048576)"),
                                            ("chat_server", "Names are 1 to 32 characters"),
                                            ("uppercase_server", "65536"),
                                            ("echo_server", "1 MiB (1048576 bytes)")])
def test_help_states_the_limits_that_close_a_connection(program: str, limit: str) -> None:
    assert limit in " ".join(run(program, "--help").stdout.split())


def test_chat_refuses_a_pending_limit_that_is_not_a_positive_count() -> None:
    result = run("chat_server", "--max-pending-bytes", "0")
    assert result.returncode == 2
    assert last_line(result.stderr).endswith(
        "argument --max-pending-bytes: must be at least 1, not 0"), result.stderr

"""The benchmark starts, explains itself, and its load clients and peers do what it relies on.

Not a measurement: the whole benchmark takes minutes. One second of load is enough to show that
a load client connects, checks what comes back and reports round trips; echo_load's rate mode is
checked against a server that stops answering (every slot late), and ``many`` on 50 clients.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import selectors
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from examples.bench import copies, instructions
from examples.bench.cpus import plan
from examples.bench.load import build_echo_load
from examples.bench.servers import LaunchOptions
from examples.bench.slow_reader import footnotes, pause_cell
from tests.processes import REPO_ROOT, TIMEOUT, Launcher, built_or_skip, exchange
from tests.real_commands import require_command
from tests.tls_certs import require_openssl


@pytest.mark.parametrize("module", ["examples.bench", "examples.bench.__main__",
                                    "examples.bench.pyload", "examples.bench.matrix",
                                    "examples.bench.fanout", "examples.bench.tls", "examples.bench.many",
                                    "examples.bench.copies", "examples.bench.instructions",
                                    "examples.bench.peers.lean_echo"])
def test_bench_modules_import(module: str) -> None:
    importlib.import_module(module)


def test_bench_help_is_plain_text() -> None:
    result = subprocess.run([sys.executable, "-m", "examples.bench", "--help"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m examples.bench")
    assert "``" not in result.stdout, "reStructuredText markup in --help"


def test_a_server_gets_the_glibc_settings_in_front_of_those_it_inherited() -> None:
    # The last setting of a name counts in glibc, so a tunable the user set wins (checked with
    # ``ld.so --list-tunables`` when this was written). Checked on the environment handed to
    # Popen: glibc rewrites the variable in place at start-up, so /proc/PID/environ shows only
    # part of it.
    options = LaunchOptions(plan(), malloc_top_pad=4096,
                            glibc_tunables="glibc.cpu.x86_rep_movsb_threshold=16777216")
    env = options.environment({"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.check=0"})
    assert env == {"PATH": "/bin", "MALLOC_TOP_PAD_": "4096", "GLIBC_TUNABLES":
                   "glibc.cpu.x86_rep_movsb_threshold=16777216:glibc.malloc.check=0"}
    assert options.environment({})["GLIBC_TUNABLES"] == "glibc.cpu.x86_rep_movsb_threshold=16777216"
    assert LaunchOptions(plan()).environment({"PATH": "/bin"}) == {"PATH": "/bin"}


def test_copies_times_every_distance_under_both_settings(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.bench", "copies", "--size", "8192",
         "--json", str(tmp_path / "results.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    section = json.loads((tmp_path / "results.json").read_text())["copies"]
    assert section["size"] == 8192
    assert list(section["columns"]) == ["default", section["meta"]["glibc_tunables"]]
    for column in section["columns"].values():
        assert sorted(map(int, column)) == sorted(copies.DISTANCES)
        assert all(microseconds > 0 for microseconds in column.values())
    assert "distance mod 4096" in result.stdout


def test_copies_without_tunables_to_compare_says_so() -> None:
    result = subprocess.run([sys.executable, "-m", "examples.bench", "copies",
                             "--glibc-tunables", ""],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert "give --glibc-tunables" in result.stderr


def test_python_load_client_runs_one_second_against_echo(launch: Launcher) -> None:
    server = launch.server("echo_server")
    result = subprocess.run(
        [sys.executable, "-m", "examples.bench.pyload", "--port", str(server.port),
         "--conns", "2", "--size", "1024", "--seconds", "1", "--warmup", "0.2"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["conns"] == 2 and report["size"] == 1024
    assert report["rtts"] > 0 and report["rps"] > 0
    server.stop_cleanly()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_lean_echo_peer_echoes_and_stops_cleanly(launch: Launcher, signum: int) -> None:
    server = launch.server("bench.peers.lean_echo")
    assert server.host == "127.0.0.1"
    waiting = server.connect()  # held open across the other's exchange: both in its dict
    # 512 KiB: several of the peer's recv(RECV_BYTES) and sendall calls
    payload = bytes(range(256)) * 2048
    assert exchange(server.connect().sock, payload) == payload
    waiting.send(b"still served")
    assert waiting.read_exactly(12) == b"still served"
    server.stop_cleanly(signum)


def test_slow_reader_says_none_for_a_server_without_back_pressure() -> None:
    rows = [{"back_pressure": True, "pause_writing_events": None},
            {"back_pressure": True, "pause_writing_events": 20},
            {"back_pressure": False, "pause_writing_events": None}]
    assert [pause_cell(row) for row in rows] == ["n/o", "20", "none"]
    assert [note.split(":")[0] for note in footnotes(rows)] == ["pause_writing n/o",
                                                                "pause_writing none"]
    assert footnotes(rows[1:2]) == []


def echo_load_binary() -> Path:
    return built_or_skip(build_echo_load())


def test_rate_mode_counts_every_slot_of_a_stalled_server_as_late() -> None:
    """A server that answers each connection's first message (echo_load's proof that it was
    accepted) and nothing after: in the window, every slot finds its reply still due."""
    binary = echo_load_binary()
    size, conns = 64, 2
    accepted: list[socket.socket] = []

    def answer_first_message_only(listener: socket.socket) -> None:
        for _ in range(conns):
            client, _ = listener.accept()
            client.settimeout(TIMEOUT)
            accepted.append(client)
            first = b""
            while len(first) < size:
                first += client.recv(size - len(first))
            client.sendall(first)

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        server = threading.Thread(target=answer_first_message_only, args=(listener,))
        server.start()
        try:
            # Slots every 0.05 s (2 connections, 0.1 s apart); the window [0.2, 0.7) holds 10.
            result = subprocess.run(
                [str(binary), "--port", str(listener.getsockname()[1]), "--conns", str(conns),
                 "--size", str(size), "--rate-interval", "0.1", "--warmup", "0.2",
                 "--seconds", "0.5"], capture_output=True, text=True, timeout=20)
        finally:
            server.join(TIMEOUT)
            for sock in accepted:
                sock.close()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["late"] == 10 and report["rtts"] == 0 and report["errors"] == 0
    assert report["offered_rps"] == 20.0


def test_many_runs_fifty_connections_on_ours_and_lean_echo(tmp_path: Path) -> None:
    echo_load_binary()
    result = subprocess.run(
        [sys.executable, "-m", "examples.bench", "many", "--servers", "echo,lean-echo",
         "--connections", "50", "--interval", "0.5", "--seconds", "1", "--warmup", "0.2",
         "--json", str(tmp_path / "results.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=40)
    assert result.returncode == 0, result.stderr
    assert "late" in result.stdout and "lean-echo" in result.stdout
    results = json.loads((tmp_path / "results.json").read_text())["many"]["results"]
    assert [row["server"] for row in results] == ["echo", "lean-echo"]
    for row in results:
        assert "error" not in row, row
        assert row["connections"] == 50 and row["offered_rps"] == 100
        assert 80 <= row["rps"] <= 120  # 50 clients, one request each per half second
        assert row["late"] == 0 and row["errors"] == 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["srv_cpu_pct"] >= row["srv_user_pct"] >= 0


def test_tls_command_makes_a_certificate_and_a_row_for_ours_and_asyncio(tmp_path: Path) -> None:
    require_openssl()
    result = subprocess.run(
        [sys.executable, "-m", "examples.bench", "tls", "--servers", "echo,asyncio-echo",
         "--rounds", "1", "--sizes", "1024", "--conns", "2", "--seconds", "0.3",
         "--warmup", "0.1", "--json", str(tmp_path / "results.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "TLS echo 1 KiB x 2 conns x pipeline 1" in result.stdout
    [cell] = json.loads((tmp_path / "results.json").read_text())["tls"]["cells"]
    assert set(cell["summaries"]) == {"echo", "asyncio-echo"}
    for run in cell["runs"]:
        assert run["ok"] and run["load_json"]["tls"] is True and run["load_json"]["rtts"] > 0


def require_valgrind() -> None:
    require_command("valgrind", "the instructions benchmark's tests", "apt-get install valgrind")


@pytest.mark.timeout(240)
def test_instructions_counts_round_trips_of_ours_and_lean_echo_under_callgrind(
        tmp_path: Path) -> None:
    require_valgrind()
    # --slowdown 5: start 75 s, client 30 s and stop 25 s at most, so a stall fails the command
    # with its own message inside this test's 220 s rather than being cut off.
    result = subprocess.run(
        [sys.executable, "-m", "examples.bench", "instructions", "--servers", "echo,lean-echo",
         "--conns", "2", "--round-trips", "50,250", "--slowdown", "5",
         "--json", str(tmp_path / "results.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=220)
    assert result.returncode == 0, result.stderr
    assert "/ lean-echo" in result.stdout
    rows = json.loads((tmp_path / "results.json").read_text())["instructions"]["rows"]
    assert [(row["server"], row["conns"]) for row in rows] == [("echo", 2), ("lean-echo", 2)]
    for row in rows:
        # Every request asked for was answered, and those in flight when the count was reached
        # too (at most one more per other connection).
        short, long = row["round_trips"]
        assert 50 <= short <= 51 and 250 <= long <= 251, row
        # A Python round trip is thousands of instructions, not hundreds and not millions: the
        # difference of two runs measured it, not start-up or shutdown.
        assert 2_000 < row["instructions_per_round_trip"] < 200_000, row
    ours, lean = (row["instructions_per_round_trip"] for row in rows)
    assert ours > lean  # the floor has none of the contract; a swapped pair would show here


@pytest.mark.parametrize("arguments", [
    ["--round-trips", "100"], ["--round-trips", "300,200"], ["--round-trips", "0,100"],
    ["--round-trips", "1,2,3"], ["--size", "0"], ["--conns", "1,0"], ["--slowdown", "-1"],
])
def test_instructions_refuses_bad_arguments_as_usage_errors(arguments: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.bench", "instructions", *arguments],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 2
    assert f"argument {arguments[0]}: " in result.stderr, result.stderr


def test_instructions_refuses_a_multi_process_server() -> None:
    require_valgrind()
    result = subprocess.run(
        [sys.executable, "-m", "examples.bench", "instructions", "--servers", "echo",
         "--server-args", "--workers 2"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 2
    assert "counts one process" in result.stderr, result.stderr


@contextlib.contextmanager
def serving(handler: Callable[[socket.socket], None]) -> Iterator[int]:
    """A misbehaving server on loopback: ``handler`` runs in a thread with the listener; yields
    its port, and joins the thread on the way out."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        server = threading.Thread(target=handler, args=(listener,))
        server.start()
        try:
            yield listener.getsockname()[1]
        finally:
            server.join(TIMEOUT)


@pytest.mark.timeout(30)
def test_instructions_client_refuses_a_server_that_leaves_a_request_in_flight_unanswered() -> None:
    """Two connections, two round trips wanted: the server answers both on the first
    connection that speaks and never answers the other, so the count is reached while a
    request stays in flight. The client must say so rather than count it as answered."""
    done = threading.Event()

    def answer_one_connection(listener: socket.socket) -> None:
        clients = [listener.accept()[0] for _ in range(2)]
        try:
            with selectors.DefaultSelector() as selector:
                for client in clients:
                    selector.register(client, selectors.EVENT_READ)
                ready = selector.select(TIMEOUT)
                assert ready
                chosen = ready[0][0].fileobj
                assert isinstance(chosen, socket.socket)
            chosen.settimeout(TIMEOUT)
            for _ in range(2):
                message = b""
                while len(message) < 512:
                    message += chosen.recv(512 - len(message))
                chosen.sendall(message)
            done.wait(TIMEOUT)  # hold the other request, and both connections, open
        finally:
            for client in clients:
                client.close()

    with serving(answer_one_connection) as port:
        try:
            with pytest.raises(RuntimeError, match="1 requests still unanswered 2 s after"):
                instructions.round_trips("127.0.0.1", port, 2, 512, 2, 2.0)
        finally:
            done.set()  # before serving() joins the thread


def test_instructions_client_refuses_a_server_that_echoes_the_wrong_bytes() -> None:
    def echo_reversed(listener: socket.socket) -> None:
        client, _ = listener.accept()
        with client:
            client.settimeout(TIMEOUT)
            message = b""
            while len(message) < 512:
                message += client.recv(512 - len(message))
            client.sendall(message[::-1])

    with serving(echo_reversed) as port:
        with pytest.raises(RuntimeError, match="wrong bytes echoed after 0 round trips"):
            instructions.round_trips("127.0.0.1", port, 3, 512, 1, TIMEOUT)

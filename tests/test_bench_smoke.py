"""The benchmark starts, explains itself, and its Python load client drives our echo server.

Not a measurement: the whole benchmark takes minutes. One second of load is enough to show that
the load client connects, checks what comes back and reports round trips.
"""

from __future__ import annotations

import importlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import REPO_ROOT, Launcher, exchange
from tests.redis_process import require_redis_server
from tests.tls_certs import require_openssl


@pytest.mark.parametrize("module", ["examples.bench", "examples.bench.__main__",
                                    "examples.bench.pyload", "examples.bench.matrix",
                                    "examples.bench.fanout", "examples.bench.tls",
                                    "examples.bench.peers.lean_echo"])
def test_bench_modules_import(module: str) -> None:
    importlib.import_module(module)


def test_bench_help_is_plain_text() -> None:
    result = subprocess.run([sys.executable, "-m", "examples.bench", "--help"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m examples.bench")
    assert "``" not in result.stdout, "reStructuredText markup in --help"


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
    payload = bytes(range(256)) * 2048  # 512 KiB: several recv(262144) and sendall calls
    assert exchange(server.connect().sock, payload) == payload
    waiting.send(b"still served")
    assert waiting.read_exactly(12) == b"still served"
    server.stop_cleanly(signum)


def test_fanout_runs_both_rooms_for_half_a_second(tmp_path: Path) -> None:
    require_redis_server()
    result = subprocess.run(
        [sys.executable, "-m", "examples.bench", "fanout", "--members", "3", "--seconds", "0.5",
         "--warmup", "0.2", "--json", str(tmp_path / "results.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "results.json").read_text())["fanout"]["results"]
    assert [row["shape"] for row in results] == ["1 process", "2 servers + Redis"]
    for row in results:
        assert row["members"] == 6 and row["deliveries_per_s"] > 0
    assert results[1]["remote_p50_ms"] > 0  # deliveries crossed servers through Redis


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

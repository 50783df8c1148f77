"""The benchmark starts, explains itself, and its Python load client drives our echo server.

Not a measurement: the whole benchmark takes minutes. One second of load is enough to show that
the load client connects, checks what comes back and reports round trips.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from tests.processes import REPO_ROOT, Launcher


@pytest.mark.parametrize("module", ["examples.bench", "examples.bench.__main__",
                                    "examples.bench.pyload", "examples.bench.matrix"])
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

"""The load generators, and one measured run of a load against a running server.

Owns the choice of load generator and the build of the C clients in this folder (``echo_load``,
and ``chat_load`` for the fan-out command), each compiled with the system compiler into a cache
directory outside the repository (never into it) and named by a hash of its source and of the
``loadkit.h`` both include, so an edited source or header is rebuilt and an unchanged one is
not. Without a compiler the pure-Python ``pyload`` takes its place, with lower fidelity, and the
harness says so. In the throughput matrix the chat server is driven by ``chatload`` (Python):
echo_load has no mode in which one connection's message comes back on the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from examples.bench.cpus import CpuPlan, format_cpus
from examples.bench.measure import MIN_PRECISE_TICKS, CpuWindow
from examples.bench.servers import REPO_ROOT, ServerProcess

SOURCE = Path(__file__).with_name("echo_load.c")
CHAT_SOURCE = Path(__file__).with_name("chat_load.c")
#: The header both C clients include (``#include "loadkit.h"``, found beside the source).
KIT = Path(__file__).with_name("loadkit.h")
#: How the echo_load modes match our servers: echo gets bytes back, the uppercase server lines.
MODES = {"echo": "echo", "line": "line-upper"}
#: A run's load may take this long beyond warm-up + window (connecting 100 clients, exiting).
RUN_GRACE_SECONDS = 60.0
#: Above this share of one core the load generator, not the server, is the limit on requests/s.
LOAD_BOUND_FRACTION = 0.95


@dataclass(frozen=True)
class Cell:
    """One point of the matrix: a kind of server, message size, connections, pipeline depth."""

    kind: str
    size: int
    conns: int
    pipeline: int

    def label(self) -> str:
        size = f"{self.size // 1024} KiB" if self.size % 1024 == 0 else f"{self.size} B"
        return f"{self.kind} {size} x {self.conns} conns x pipeline {self.pipeline}"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/handreactor-bench`` (``~/.cache/...``), or a temporary directory."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    directory = base / "handreactor-bench"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return directory
    except OSError:
        return Path(tempfile.mkdtemp(prefix="handreactor-bench-"))


#: ``build_load``'s reason when there is nothing to build with (any other reason is a build that
#: failed: a defect in the source, which the tests report as a failure, not a skip).
NO_COMPILER = "no C compiler (cc, gcc, clang) found"


def build_load(source: Path) -> tuple[Path | None, str]:
    """The compiled C load client ``source`` (building it if needed) and a note on how it was
    found."""
    name = source.stem
    compiler = next((found for name in ("cc", "gcc", "clang") if (found := shutil.which(name))),
                    None)
    if compiler is None:
        return None, NO_COMPILER
    # the header is part of what gets compiled: an edit to it alone must not reuse a stale binary
    digest = hashlib.sha256(source.read_bytes() + KIT.read_bytes()).hexdigest()[:12]
    directory = cache_dir()
    binary = directory / f"{name}-{digest}"
    if binary.exists():
        return binary, f"{name} (C, cached at {binary})"
    partial = directory / f".{name}-{digest}.{os.getpid()}"
    result = subprocess.run([compiler, "-O2", "-o", str(partial), str(source)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        return None, f"{compiler} failed to build {name}: {result.stderr.strip()[:500]}"
    partial.replace(binary)  # atomic: a concurrent run never sees half a binary
    return binary, f"{name} (C, built with {compiler} into {binary})"


def build_echo_load() -> tuple[Path | None, str]:
    """``build_load`` of ``echo_load.c``, the echo and line servers' load."""
    return build_load(SOURCE)


@dataclass(frozen=True)
class LoadGenerators:
    """The command prefix for echo and line loads, and what to tell the reader about it."""

    echo_prefix: tuple[str, ...]
    description: str
    fidelity_note: str | None = None

    def command(self, cell: Cell, host: str, port: int, warmup: float,
                seconds: float) -> list[str]:
        common = ["--host", host, "--port", str(port), "--conns", str(cell.conns),
                  "--size", str(cell.size), "--pipeline", str(cell.pipeline),
                  "--seconds", str(seconds), "--warmup", str(warmup)]
        if cell.kind == "chat":
            return [sys.executable, "-m", "examples.bench.chatload", *common]
        return [*self.echo_prefix, *common, "--mode", MODES[cell.kind]]


def choose(preference: str) -> LoadGenerators:
    """``preference``: ``auto`` (C if it builds), ``c`` (C or fail), ``python``."""
    python = (sys.executable, "-m", "examples.bench.pyload")
    python_note = ("pure-Python load client (examples/bench/pyload.py), lower fidelity: it is "
                   "slower than the servers it drives, and a server woken for fewer requests at "
                   "a time spends more user CPU on each, so compare servers within this run "
                   "only, not with figures taken with echo_load")
    if preference == "python":
        return LoadGenerators(python, "pyload (Python, chosen with --load python)", python_note)
    binary, how = build_echo_load()
    if binary is not None:
        return LoadGenerators((str(binary),), how)
    if preference == "c":
        raise RuntimeError(how)
    return LoadGenerators(python, f"pyload (Python): {how}", python_note)


def choose_chat(preference: str) -> tuple[tuple[str, ...], str]:
    """The fan-out load's command prefix and what to call it: ``chat_load`` (C) unless
    ``preference`` is ``python`` or it does not build (then ``chatload``, unless ``c``)."""
    python = (sys.executable, "-m", "examples.bench.chatload")
    if preference == "python":
        return python, "chatload (Python, chosen with --load python)"
    binary, how = build_load(CHAT_SOURCE)
    if binary is not None:
        return (str(binary),), how
    if preference == "c":
        raise RuntimeError(how)
    return python, f"chatload (Python): {how}"


@dataclass
class RunResult:
    """One load run against one server: the load's JSON plus the CPU the harness measured."""

    server: str
    round: int
    ok: bool
    rps: float = 0.0
    mbps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    user_us_per_rt: float = 0.0
    server_user_pct: float = 0.0
    server_user_ticks: int = 0
    load_cpu_pct: float = 0.0
    error: str | None = None
    load_json: dict[str, Any] = field(default_factory=dict)

    @property
    def load_bound(self) -> bool:
        return self.load_cpu_pct >= LOAD_BOUND_FRACTION * 100

    @property
    def coarse(self) -> bool:
        """Too few clock ticks of server user CPU for a precise user us/RT."""
        return self.server_user_ticks < MIN_PRECISE_TICKS


def start_load(command: Sequence[str], cpus: CpuPlan) -> subprocess.Popen[bytes]:
    """A load client pinned to the load generator's CPU, stdout and stderr piped (it prints one
    JSON line; ``last_json`` reads it)."""
    return subprocess.Popen([sys.executable, "-m", "examples.bench.launch",
                             "--cpus", format_cpus(cpus.load), "--", *command],
                            cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def last_json(out: bytes) -> dict[str, Any]:
    """A load client's result: the JSON object on the last line of its stdout, or ``{}`` if it
    printed none (it died first, or printed something else)."""
    lines = out.decode("utf-8", "replace").strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


class LoadOverran(Exception):
    """The load client did not finish within ``RUN_GRACE_SECONDS`` of its window (it was
    killed)."""


def load_window(load: subprocess.Popen[bytes], windows: Sequence[CpuWindow], warmup: float,
                seconds: float) -> tuple[dict[str, Any], str]:
    """Sleep through ``load``'s warm-up, time ``windows`` over its measured ``seconds``, then
    collect what it printed: its JSON result (``{}`` if none) and its stderr. A load still
    running ``RUN_GRACE_SECONDS`` later is killed (``LoadOverran``), as it is on any exception
    here, Ctrl-C included."""
    try:
        time.sleep(warmup)
        for window in windows:
            window.start()
        time.sleep(seconds)
        for window in windows:
            window.stop()
        out, err = load.communicate(timeout=RUN_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        load.kill()
        load.communicate()
        raise LoadOverran(f"the load did not finish within {RUN_GRACE_SECONDS:.0f} s of its "
                          "window") from None
    except BaseException:
        load.kill()
        load.communicate()
        raise
    return last_json(out), err.decode("utf-8", "replace").strip()


def load_failure(returncode: int | None, data: dict[str, Any], problems: str) -> str | None:
    """Why a finished load's run does not count, or ``None``: it printed no result, exited
    non-zero, counted errors or mismatched bytes, or completed no round trip."""
    if not data:
        return f"load printed no result (exit {returncode}): {problems[-300:]}"
    failures = int(data.get("errors", 0)) + int(data.get("mismatches", 0))
    if returncode != 0 or failures or not data.get("rtts"):
        return (f"exit {returncode}, errors {data.get('errors')}, mismatches "
                f"{data.get('mismatches')}: {problems[-300:]}")
    return None


def measure_run(server: ServerProcess, cell: Cell, loads: LoadGenerators, cpus: CpuPlan,
                warmup: float, seconds: float, round_number: int) -> RunResult:
    """Drive ``server`` with the cell's load; take the CPU windows after ``warmup``.

    The harness sleeps through the load rather than asking it for its figures: see
    ``measure.py`` for why its window, offset by the load's start-up, still measures the same
    steady state.
    """
    load = start_load(loads.command(cell, server.host, server.port, warmup, seconds), cpus)
    server_cpu = CpuWindow(server.pid)
    load_cpu = CpuWindow(load.pid, system=True)
    result = RunResult(server.spec.name, round_number, ok=False)
    try:
        data, problems = load_window(load, [server_cpu, load_cpu], warmup, seconds)
    except LoadOverran as exc:
        result.error = str(exc)
        return result
    failure = load_failure(load.returncode, data, problems)
    if data:
        result.load_json = data
        result.rps = float(data["rps"])
        result.mbps = float(data["mbps"])
        result.p50_ms = float(data["p50_ms"])
        result.p99_ms = float(data["p99_ms"])
        result.user_us_per_rt = server_cpu.us_per(result.rps)
        result.server_user_pct = round(server_cpu.fraction * 100, 1)
        result.server_user_ticks = server_cpu.ticks
        result.load_cpu_pct = round(load_cpu.fraction * 100, 1)
    if failure is not None:
        result.error = failure
        return result
    result.ok = True
    return result

"""Fan-out: one chat room of ``--members``, ours against the same room written with asyncio.

    python -m examples.bench fanout [--members 100] [--size 128] [--seconds 5] [--warmup 1]
        [--rounds 3] [--servers chat,asyncio-chat,uvloop-chat,aio-chat]
        [--shapes single,redis] [--load auto|c|python]

The method. Each row is one room of ``--members`` members, every member keeping one line in
flight (a closed loop: a line is done when every other member has it, and only then is the
next one sent):

* shape ``single`` (the default), one row per chat server of ``--servers``: ours
  (``examples.chat_server``), ``asyncio-chat`` (``examples/asyncio_chat.py``, the same wire
  contract on asyncio streams: the baseline), ``uvloop-chat`` (that file on uvloop) and
  ``aio-chat`` (that file on our loop, ``reactor.aio``), all members on the one process;
* shape ``redis``, the row ``chat-redis``: a ``redis-server`` (no persistence) and two
  ``chat_server --redis``, half the members on each, so every line reaches half the room
  through Redis. Its "other-server" latencies are of the deliveries that took that path.

Rows are interleaved in rounds (every row, then again), as the throughput matrix's servers are,
so a slow minute of the machine hits every row alike; ``vs asyncio-chat`` is the median of the
same-round ratios. Every server is started once for all rounds. Before each run the harness
waits until the room's processes have closed the previous run's connections (their descriptor
counts are back to what they were before any member came), so no ``* NAME left`` of one run can
reach the next run's members as a notice.

The load is ``chat_load.c`` (``--load c``, the default when it builds) or ``chatload.py``, in
its own process pinned to the load CPU; both check every delivery byte for byte (the right
sender, in order) and print the same JSON keys. The server CPU (user + system, from ``/proc``,
summed over the row's processes: servers and Redis share the server CPU, so both shapes get the
same one core) is divided by the deliveries: microseconds per delivery, and user alone beside
it. A delivery is one line written by a server to one member; latency is from sending a line
until that member has it.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import Any

from examples.bench.cpus import CpuPlan, format_cpus
from examples.bench.load import (
    LOAD_BOUND_FRACTION, LoadOverran, RunResult, load_failure, load_window,
)
from examples.bench.measure import MIN_PRECISE_TICKS, CpuWindow, open_fds
from examples.bench.report import rate, ratio, same_round_ratio, spread, summarise, table
from examples.bench.servers import (
    BASELINES,
    REPO_ROOT,
    LaunchOptions,
    ServerProcess,
    ServerSpec,
)

REDIS_STARTUP_TIMEOUT_SECONDS = 10.0
#: How long a server may take to close the previous run's connections.
IDLE_TIMEOUT_SECONDS = 10.0
IDLE_POLL_SECONDS = 0.05
DEFAULT_MEMBERS = 100
SHAPES = ("single", "redis")
SERVERS = ("chat", "asyncio-chat", "uvloop-chat", "aio-chat")
REDIS_ROW = "chat-redis"
BASELINE = BASELINES["chat"]
FOOTNOTES = (
    f"*  after deliveries/s: the load client used >= {LOAD_BOUND_FRACTION:.0%} of its core, so "
    "deliveries/s is the client's limit there; the CPU per delivery is still the server's",
    f"~  after user us/dlv: some window held fewer than {MIN_PRECISE_TICKS} clock ticks of "
    "server user CPU; use a longer --seconds",
)


def shape_list(text: str) -> list[str]:
    """An argparse type: ``single``, ``redis`` or ``single,redis``."""
    shapes = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [shape for shape in shapes if shape not in SHAPES]
    if unknown or not shapes:
        raise argparse.ArgumentTypeError(f"shapes are {', '.join(SHAPES)}; not {text!r}")
    return shapes


@dataclass
class FanoutRun(RunResult):
    """One run of one room: ``rps`` is deliveries/s, ``p50_ms``/``p99_ms`` the deliveries'
    latency, ``user_us_per_rt`` the server user CPU per delivery; and what only fan-out has."""

    members: int = 0
    cpu_us_per_delivery: float = 0.0  # user + system, every process of the room
    lines_sent_per_s: float = 0.0
    remote_p50_ms: float | None = None
    remote_p99_ms: float | None = None


class RedisProcess:
    """A throwaway ``redis-server`` on a free loopback port, pinned like the servers."""

    def __init__(self, cpus: CpuPlan) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server not found (apt-get install redis-server)")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "examples.bench.launch", "--cpus", format_cpus(cpus.server),
             "--", executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--logfile", "", "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.process.stdout is not None
        output = b""
        deadline = time.monotonic() + REDIS_STARTUP_TIMEOUT_SECONDS
        fd = self.process.stdout.fileno()
        while b"Ready to accept connections" not in output:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self.stop()
                raise RuntimeError(f"redis-server did not start: {output[-500:]!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                self.stop()
                raise RuntimeError(f"redis-server exited: {output[-500:]!r}")
            output += chunk

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> RedisProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass
class Room:
    """One row: the servers that hold the room and every process whose CPU is the room's."""

    name: str
    servers: list[ServerProcess]
    pids: list[int]
    idle_fds: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.idle_fds = [open_fds(pid) for pid in self.pids]

    def wait_until_idle(self) -> None:
        """Until every process has closed the connections of the previous run."""
        deadline = time.monotonic() + IDLE_TIMEOUT_SECONDS
        while any(open_fds(pid) > idle for pid, idle in zip(self.pids, self.idle_fds)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} still holds the last run's connections after "
                                   f"{IDLE_TIMEOUT_SECONDS:.0f} s")
            time.sleep(IDLE_POLL_SECONDS)


def start_rooms(stack: ExitStack, specs: Sequence[ServerSpec], shapes: Sequence[str],
                options: LaunchOptions) -> tuple[list[Room | tuple[str, str]], list[str]]:
    """Every row's room, or ``(name, why it did not start)`` (its runs then fail; the others
    go on); and the names of the rows in order."""
    rooms: list[Room | tuple[str, str]] = []
    if "single" in shapes:
        for spec in specs:
            try:
                server = stack.enter_context(ServerProcess(spec, options))
                rooms.append(Room(spec.name, [server], [server.pid]))
            except RuntimeError as exc:
                rooms.append((spec.name, str(exc)))
    if "redis" in shapes:
        try:
            redis = stack.enter_context(RedisProcess(options.cpus))
            shared = ServerSpec(REDIS_ROW, "chat", "examples.chat_server",
                                ("--redis", redis.url), ours=True)
            servers = [stack.enter_context(ServerProcess(shared, options)) for _ in range(2)]
            rooms.append(Room(REDIS_ROW, servers,
                              [*(server.pid for server in servers), redis.process.pid]))
        except RuntimeError as exc:
            rooms.append((REDIS_ROW, str(exc)))
    return rooms, [room.name if isinstance(room, Room) else room[0] for room in rooms]


def measure_run(room: Room, load_prefix: Sequence[str], cpus: CpuPlan, members: int, size: int,
                warmup: float, seconds: float, round_number: int) -> FanoutRun:
    """Drive ``room`` with one load run; the CPU windows are taken as ``load.measure_run``
    takes them (after the warm-up, by the harness, for every load alike)."""
    result = FanoutRun(room.name, round_number, ok=False, members=members)
    for server in room.servers:
        if not server.alive():
            result.error = f"server exited: {server.stop().strip()[-300:]}"
            return result
    try:
        room.wait_until_idle()
    except RuntimeError as exc:
        result.error = str(exc)
        return result
    first, *others = room.servers
    command = [sys.executable, "-m", "examples.bench.launch", "--cpus", format_cpus(cpus.load),
               "--", *load_prefix, "--host", first.host, "--port", str(first.port),
               "--conns", str(members), "--size", str(size), "--pipeline", "1",
               "--seconds", str(seconds), "--warmup", str(warmup)]
    if others:
        command += ["--other-ports", ",".join(str(server.port) for server in others)]
    load = subprocess.Popen(command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    user = [CpuWindow(pid) for pid in room.pids]
    total = [CpuWindow(pid, system=True) for pid in room.pids]
    load_cpu = CpuWindow(load.pid, system=True)
    windows = [*user, *total, load_cpu]
    try:
        data, problems = load_window(load, windows, warmup, seconds)
    except LoadOverran as exc:
        result.error = str(exc)
        return result
    if data:
        result.load_json = data
    failure = load_failure(load.returncode, data, problems)
    if failure is not None:
        result.error = failure
        return result
    deliveries = float(data["rps"])
    result.rps = deliveries
    result.mbps = float(data["mbps"])
    result.p50_ms = float(data["delivery_p50_ms"])
    result.p99_ms = float(data["delivery_p99_ms"])
    result.remote_p50_ms = data.get("remote_p50_ms")
    result.remote_p99_ms = data.get("remote_p99_ms")
    result.lines_sent_per_s = float(data["lines_sent_per_s"])
    result.user_us_per_rt = sum(window.us_per(deliveries) for window in user)
    result.cpu_us_per_delivery = sum(window.us_per(deliveries) for window in total)
    result.server_user_pct = round(sum(window.fraction for window in user) * 100, 1)
    result.server_user_ticks = sum(window.ticks for window in user)
    result.load_cpu_pct = round(load_cpu.fraction * 100, 1)
    result.ok = True
    return result


def cpu_us_per_delivery(run: RunResult) -> float:
    """The metric for ``same_round_ratio``, which takes any run."""
    return run.cpu_us_per_delivery if isinstance(run, FanoutRun) else 0.0


@dataclass
class FanoutResult:
    """Every run of every row, and what the reader needs of them."""

    rows: list[str]
    members: int
    runs: list[FanoutRun] = field(default_factory=list)

    def runs_of(self, name: str) -> list[FanoutRun]:
        return [run for run in self.runs if run.server == name]

    def summaries(self) -> dict[str, dict[str, Any]]:
        baseline = self.runs_of(BASELINE) if BASELINE in self.rows else None
        summaries = {}
        for name in self.rows:
            runs = self.runs_of(name)
            summary = summarise(runs, baseline)
            good = [run for run in runs if run.ok]
            if good:
                summary["cpu_us_per_delivery"] = spread([run.cpu_us_per_delivery
                                                         for run in good])
                summary["lines_sent_per_s"] = statistics.median(run.lines_sent_per_s
                                                                for run in good)
                remote = [run for run in good if run.remote_p50_ms is not None]
                summary["remote_p50_ms"] = (statistics.median(run.remote_p50_ms or 0.0
                                                              for run in remote)
                                            if remote else None)
                summary["remote_p99_ms"] = (statistics.median(run.remote_p99_ms or 0.0
                                                              for run in remote)
                                            if remote else None)
                if baseline is not None:
                    summary["cpu_us_ratio"] = same_round_ratio(runs, baseline,
                                                               cpu_us_per_delivery)
            summaries[name] = summary
        return summaries

    def render(self, rounds: int) -> str:
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.2f}"

        shared = REDIS_ROW in self.rows
        headers = ["room", "deliveries/s (min-max)", f"vs {BASELINE}", "srv CPU us/dlv",
                   "srv user us/dlv", "p50 ms", "p99 ms",
                   *(["other-server p50 ms", "other-server p99 ms"] if shared else []),
                   "load CPU"]
        rows = []
        for name, summary in self.summaries().items():
            if not summary.get("rounds_ok"):
                rows.append([name, "FAILED (below)", *[""] * (len(headers) - 2)])
                continue
            deliveries = summary["rps"]
            rows.append([
                name,
                f"{rate(deliveries['median'])} ({rate(deliveries['min'])}-"
                f"{rate(deliveries['max'])})" + ("*" if summary["load_bound"] else ""),
                ratio(summary.get("rps_ratio")),
                f"{summary['cpu_us_per_delivery']['median']:.2f}",
                f"{summary['user_us_per_rt']['median']:.2f}" + ("~" if summary["coarse"] else ""),
                ms(summary["p50_ms"]), ms(summary["p99_ms"]),
                *([ms(summary["remote_p50_ms"]), ms(summary["remote_p99_ms"])] if shared else []),
                f"{summary['load_cpu_pct']:.0f}%",
            ])
        title = (f"chat fan-out, {self.members} members, one line each in flight ({rounds} rounds;"
                 f" medians; 'vs {BASELINE}': median of same-round deliveries/s ratios)")
        failures = [f"  {run.server} round {run.round} failed: "
                    + " | ".join((run.error or "").splitlines())[:300]
                    for run in self.runs if not run.ok]
        return "\n".join([title, table(headers, rows), *failures, *FOOTNOTES])

    def to_json(self) -> dict[str, Any]:
        return {"members": self.members, "rows": self.summaries(),
                "runs": [asdict(run) for run in self.runs]}


def measure(specs: Sequence[ServerSpec], shapes: Sequence[str], options: LaunchOptions,
            load_prefix: Sequence[str], args: argparse.Namespace) -> FanoutResult:
    """Every row's rounds, interleaved."""
    with ExitStack() as stack:
        rooms, names = start_rooms(stack, specs, shapes, options)
        result = FanoutResult(names, args.members)
        total = args.rounds * len(rooms)
        for round_number in range(1, args.rounds + 1):
            for room in rooms:
                if isinstance(room, Room):
                    run = measure_run(room, load_prefix, options.cpus, args.members, args.size,
                                      args.warmup, args.seconds, round_number)
                else:
                    run = FanoutRun(room[0], round_number, ok=False, members=args.members,
                                    error=f"did not start: {room[1]}")
                result.runs.append(run)
                progress(len(result.runs), total, run)
    return result


def progress(done: int, total: int, run: FanoutRun) -> None:
    if run.ok:
        figures = (f"{rate(run.rps)} deliveries/s, {run.cpu_us_per_delivery:.2f} server CPU "
                   f"us/delivery, load CPU {run.load_cpu_pct:.0f}%")
    else:
        figures = f"FAILED: {(run.error or '').splitlines()[0][:100]}"
    print(f"[{done}/{total}] fan-out round {run.round} {run.server}: {figures}",
          file=sys.stderr, flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--members", type=int, default=DEFAULT_MEMBERS,
                        help="members of the room (with the redis shape, half on each server; "
                             "default: %(default)s)")
    parser.add_argument("--size", type=int, default=128, help="bytes per line (default: 128)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--shapes", type=shape_list, default=["single"],
                        help="single: each chat server of --servers in one process (default "
                             f"{','.join(SERVERS)}); redis: our room on 2 chat_server --redis "
                             "+ redis-server; or single,redis")
    parser.add_argument("--load", choices=["auto", "c", "python"], default="auto",
                        help="load generator: chat_load (C) when it builds, else Python "
                             "(chatload)")

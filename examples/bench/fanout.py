"""Fan-out: one chat room on two servers through Redis, next to the same room in one process.

    python -m examples.bench fanout [--members 50] [--size 128] [--seconds 5] [--warmup 1]

The method. Two shapes of the same room of ``2 x --members`` members:

* ``1 process``: one ``chat_server``, every member on it;
* ``2 servers + Redis``: a ``redis-server`` (no persistence) and two ``chat_server --redis``,
  half the members on each, so every line reaches half the room through Redis.

The load is ``chatload``'s closed loop (``examples/bench/chatload.py``): every member keeps one
line in flight, a line is done when every other member has it, byte for byte, from the right
sender, in order. The figures: deliveries per second (one line written to one member), the
latency of every delivery, and for the shared room the latency of the deliveries to the *other*
server's members (the path through Redis), p50 and p99. Servers and Redis are pinned to the
server CPU, the load (this process) to the other, so both shapes get the same one core.

The load is Python and reads ``2 x members - 1`` lines for each it sends: it may saturate its
core before the servers do (its CPU is printed).
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from typing import Any

from examples.bench.chatload import SETUP_TIMEOUT_SECONDS, ChatLoad, Member
from examples.bench.clientkit import Window, connect_all
from examples.bench.cpus import CpuPlan, format_cpus
from examples.bench.measure import CLOCK_TICKS_PER_SECOND, cpu_ticks
from examples.bench.report import table
from examples.bench.servers import LaunchOptions, ServerProcess, ServerSpec

REDIS_STARTUP_TIMEOUT_SECONDS = 10.0
DEFAULT_MEMBERS = 50


class FanoutLoad(ChatLoad):
    """``ChatLoad`` that also times each delivery, split by whether it crossed servers."""

    def __init__(self, socks: list[socket.socket], size: int, server_of: list[int]) -> None:
        super().__init__(socks, size, pipeline=1)
        self.server_of = server_of
        self.local_ns: list[int] = []
        self.late_joins = 0
        self.remote_ns: list[int] = []

    def join(self) -> None:
        """As ``ChatLoad.join``, and until every member has its welcome: with two servers, two
        members joining at the same instant may each be told of the other (the servers learn of
        each other's joins through Redis, not in one order), so the count alone can be reached
        early by such a notice."""
        super().join()
        deadline = time.monotonic() + SETUP_TIMEOUT_SECONDS
        while not all(member.name for member in self.members):
            if time.monotonic() > deadline:
                raise TimeoutError("room setup: not every member was welcomed")
            for key, _ in self.selector.select(0.1):
                for line in self.read_lines(key.data):
                    self.setup_notice(key.data, line)

    def delivered(self, receiver: Member, line: bytes, now_ns: int) -> None:
        if line.startswith(b"* ") and line.endswith(b" joined"):
            self.late_joins += 1  # see join(): not an error
            return
        sender = self.by_name.get(line[:line.find(b": ")])
        window = self.window
        if sender is not None and sender is not receiver and window is not None \
                and window.inside(now_ns):
            index = receiver.expect_seq[sender.number] - sender.first_in_flight
            if 0 <= index < len(sender.in_flight):
                latency = now_ns - sender.in_flight[index].sent_ns
                crossed = self.server_of[sender.number] != self.server_of[receiver.number]
                (self.remote_ns if crossed else self.local_ns).append(latency)
        super().delivered(receiver, line, now_ns)


def percentile_ms(values: list[int], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(fraction * len(ordered) + 0.999) - 1))] / 1e6


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


def run_shape(name: str, servers: list[ServerProcess], pids: list[int], members: int,
              size: int, warmup: float, seconds: float) -> dict[str, Any]:
    """One measurement: ``members`` on each server (all on one, for the single process)."""
    per_server = members * 2 // len(servers)
    socks: list[socket.socket] = []
    server_of: list[int] = []
    for number, server in enumerate(servers):
        socks += connect_all(server.host, server.port, per_server)
        server_of += [number] * per_server
    load = FanoutLoad(socks, size, server_of)
    try:
        load.join()
        window = Window(warmup, seconds)
        # User + system CPU over warm-up and window together: the whole time the load ran.
        before_ticks = sum(cpu_ticks(pid, system=True) for pid in pids)
        before_load = time.process_time()
        load.run(window)
        server_cpu = (sum(cpu_ticks(pid, system=True) for pid in pids)
                      - before_ticks) / CLOCK_TICKS_PER_SECOND
        load_cpu = time.process_time() - before_load
    finally:
        for sock in socks:
            sock.close()
    if load.errors or load.mismatches:
        raise RuntimeError(f"{name}: {load.errors} notices and {load.mismatches} mismatched "
                           "deliveries during the run")
    everyone = load.local_ns + load.remote_ns
    return {
        "shape": name, "members": members * 2, "servers": len(servers),
        "deliveries_per_s": round(window.count / seconds, 1),
        "lines_sent_per_s": round(len(window.latencies_ns) / seconds, 1),
        "p50_ms": percentile_ms(everyone, 0.50), "p99_ms": percentile_ms(everyone, 0.99),
        "remote_p50_ms": percentile_ms(load.remote_ns, 0.50),
        "remote_p99_ms": percentile_ms(load.remote_ns, 0.99),
        "server_side_cpu_pct": round(100 * server_cpu / (seconds + warmup), 1),
        "load_cpu_pct": round(100 * load_cpu / (seconds + warmup), 1),
        "late_join_notices": load.late_joins,
    }


def measure(options: LaunchOptions, members: int, size: int, warmup: float,
            seconds: float) -> list[dict[str, Any]]:
    results = []
    single = ServerSpec("chat", "chat", "examples.chat_server", ours=True)
    with ServerProcess(single, options) as server:
        results.append(run_shape("1 process", [server], [server.pid], members, size, warmup,
                                 seconds))
    with ExitStack() as stack:
        redis = stack.enter_context(RedisProcess(options.cpus))
        shared = ServerSpec("chat-redis", "chat", "examples.chat_server",
                            ("--redis", redis.url), ours=True)
        servers = [stack.enter_context(ServerProcess(shared, options)) for _ in range(2)]
        results.append(run_shape("2 servers + Redis", servers,
                                 [*(server.pid for server in servers), redis.process.pid],
                                 members, size, warmup, seconds))
    return results


def render(results: list[dict[str, Any]]) -> str:
    def ms(value: float) -> str:
        return "–" if value != value else f"{value:.2f}"  # NaN: no such delivery

    rows = [[result["shape"], str(result["members"]), f"{result['deliveries_per_s']:,.0f}",
             f"{result['lines_sent_per_s']:,.0f}", ms(result["p50_ms"]), ms(result["p99_ms"]),
             ms(result["remote_p50_ms"]), ms(result["remote_p99_ms"]),
             f"{result['server_side_cpu_pct']:.0f}%", f"{result['load_cpu_pct']:.0f}%"]
            for result in results]
    return table(["room", "members", "deliveries/s", "lines sent/s", "p50 ms", "p99 ms",
                  "other-server p50 ms", "other-server p99 ms", "server-side CPU",
                  "load CPU"], rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--members", type=int, default=DEFAULT_MEMBERS,
                        help="members per server; the single process gets twice as many "
                             "(default: %(default)s)")
    parser.add_argument("--size", type=int, default=128, help="bytes per line (default: 128)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)

"""Many connections: 10,000 clients, each sending a 1 KiB request once a second.

    python -m examples.bench many [--connections 10000] [--interval 1] [--size 1024]
        [--seconds 10] [--warmup 3]

Why a separate measurement: the throughput matrix keeps 10 or 100 connections busy, so every
wake-up of the server finds work on most of them. A real server holds thousands of connections
that are mostly quiet; then what a loop pays per connection it is *not* serving (walking
descriptor sets, per-connection timers, bookkeeping on every pass) shows, and so does whether
it keeps up with a load it does not choose. Here the load is open loop: every server is offered
the same ``connections / interval`` requests per second, so server CPU % compares directly and
CPU per request says what each one costs.

The method:

* The load is ``echo_load --rate-interval`` (C; the Python load clients have no rate mode,
  so this measurement needs a C compiler). Each connection sends one message per
  interval, the connections' slots spread evenly over it. A slot that comes while the
  connection's previous reply is still due is *late*: it is sent when that reply arrives (the
  offered rate holds) and counted. Latency runs from a request's write to its reply's last byte.
* Connections open in batches of 100, each connection's first echo proving the server accepted
  it before the next batch, so the accept backlog (128 in every server) never overflows and no
  SYN waits a second for its retry. That phase is outside the window; the warm-up follows it.
* Server CPU is read by the load client itself (``--server-pid``: ``utime`` and ``stime`` of
  ``/proc/PID/stat``, the fields ``measure.cpu_ticks`` reads) at the edges of its own window,
  not by this harness as in the matrix: connecting 10,000 clients takes a second or several,
  differently per server, so a harness sleeping through the warm-up could not find the window.
  System time counts here (unlike the matrix's headline): with 10,000 sockets, what the kernel
  does for the server's ``epoll`` and socket calls is part of its cost.
* Descriptors: the server starts with its soft ``RLIMIT_NOFILE`` raised for the connections
  (``examples.bench.launch --nofile``); echo_load raises its own to the hard limit.

One server at a time, each started afresh, pinned as in the matrix.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from examples.bench.load import RUN_GRACE_SECONDS, Cell, LoadGenerators, last_json, start_load
from examples.bench.measure import MIN_PRECISE_TICKS
from examples.bench.memory import DEFAULT_CONNECTIONS
from examples.bench.report import rate, table
from examples.bench.servers import LaunchOptions, ServerProcess, ServerSpec

SERVERS = ("echo", "asyncio-echo", "uvloop-echo", "lean-echo", "aio-echo")
#: Beyond warm-up, window and the grace for exiting: the most connecting may take, per client.
CONNECT_SECONDS_PER_CONNECTION = 0.005
FOOTNOTES = (
    "req/s: replies per second in the window (offered: connections / interval); CPU % and "
    "user %: the server's user + system and user CPU over the window, 100 = one core; "
    "us/req: those divided by the requests served; late: slots that came while the "
    "connection's previous reply was still due; errors: connections lost or replies that "
    "did not match; connect s: opening every connection, before the warm-up; others CPU %: "
    "what neither the server nor the load used of the machine in the window (other tenants: "
    "when it is high, latency and CPU figures are noisy)",
    f"~  after user us/req: fewer than {MIN_PRECISE_TICKS} clock ticks of server user CPU in "
    "the window, so tick granularity alone is worth more than +-2 %; use a longer --seconds",
)


def positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argparse type: a number above 0 (an interval of 0 would be echo_load's closed loop)."""
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names it in "invalid int value"
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connections", type=positive(int), default=DEFAULT_CONNECTIONS,
                        help="concurrent clients (default: %(default)s)")
    parser.add_argument("--interval", type=positive(float), default=1.0,
                        help="seconds between one client's requests (default: %(default)s)")
    parser.add_argument("--size", type=positive(int), default=1024,
                        help="bytes per request and per reply (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="measured window per server (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds of load before the window (default: %(default)s)")


def measure(spec: ServerSpec, options: LaunchOptions, loads: LoadGenerators, connections: int,
            args: argparse.Namespace) -> dict[str, Any]:
    """One server under the rate load; the load's figures, or what went wrong."""
    result: dict[str, Any] = {"server": spec.name, "connections": connections,
                              "interval": args.interval, "size": args.size,
                              "offered_rps": connections / args.interval}
    try:
        server = ServerProcess(spec, options.for_connections(connections))
    except RuntimeError as exc:
        result["error"] = f"did not start: {exc}"
        return result
    with server:
        cell = Cell(spec.kind, args.size, connections, 1)
        command = [*loads.command(cell, server.host, server.port, args.warmup, args.seconds),
                   "--rate-interval", str(args.interval), "--server-pid", str(server.pid)]
        load = start_load(command, options.cpus)
        timeout = (args.warmup + args.seconds + RUN_GRACE_SECONDS
                   + connections * CONNECT_SECONDS_PER_CONNECTION)
        try:
            out, err = load.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            load.kill()
            load.communicate()
            result["error"] = f"the load did not finish within {timeout:.0f} s"
            return result
        except BaseException:
            load.kill()
            load.communicate()
            raise
        alive = server.alive()
    data = last_json(out)
    problems = " | ".join(err.decode("utf-8", "replace").strip().splitlines())[-300:]
    if "srv_cpu_pct" not in data:
        result["error"] = (f"load exit {load.returncode}, server "
                           f"{'running' if alive else 'exited'}: {problems or 'no result'}")
        result["load_json"] = data
        return result
    result.update({
        "rps": data["rps"], "srv_cpu_pct": data["srv_cpu_pct"],
        "srv_user_pct": data["srv_user_pct"], "srv_us_per_req": data["srv_us_per_rt"],
        "srv_user_us_per_req": data["srv_user_us_per_rt"], "p50_ms": data["p50_ms"],
        "p99_ms": data["p99_ms"], "late": data["late"],
        "errors": data["errors"] + data["mismatches"],
        "connect_seconds": data["connect_seconds"],
        "other_cpu_pct": data.get("other_cpu_pct"),
        "coarse": data["srv_user_ticks"] < MIN_PRECISE_TICKS, "load_json": data,
    })
    if load.returncode != 0 or not data["rtts"]:
        result["error"] = f"load exit {load.returncode}: {problems or 'no replies'}"
    return result


def progress(result: dict[str, Any]) -> str:
    """One line for stderr as each server finishes."""
    if "rps" not in result:
        return f"{result['server']}: FAILED: {result['error'][:100]}"
    return (f"{result['server']}: {rate(result['rps'])} req/s, CPU {result['srv_cpu_pct']:.0f}%, "
            f"p99 {result['p99_ms']:.2f} ms, late {result['late']}, errors {result['errors']}")


def render(results: Sequence[dict[str, Any]]) -> str:
    rows = []
    for result in results:
        if "rps" not in result:
            rows.append([result["server"] + " FAILED", *[""] * 12])
            continue
        rows.append([
            result["server"] + (" FAILED" if "error" in result else ""),
            f"{result['connections']:,}",
            rate(result["rps"]),
            f"{result['srv_cpu_pct']:.0f}",
            f"{result['srv_user_pct']:.0f}",
            f"{result['srv_us_per_req']:.1f}",
            f"{result['srv_user_us_per_req']:.1f}" + ("~" if result["coarse"] else ""),
            f"{result['p50_ms']:.3f}",
            f"{result['p99_ms']:.3f}",
            str(result["late"]),
            str(result["errors"]),
            f"{result['connect_seconds']:.1f}",
            "?" if result["other_cpu_pct"] is None else f"{result['other_cpu_pct']:.0f}",
        ])
    lines = [table(["server", "conns", "req/s", "CPU %", "user %", "CPU us/req",
                    "user us/req", "p50 ms", "p99 ms", "late", "errors", "connect s",
                    "others CPU %"], rows)]
    lines += [f"  {result['server']}: {result['error']}" for result in results
              if "error" in result]
    return "\n".join(lines)

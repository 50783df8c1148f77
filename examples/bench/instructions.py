"""Instructions per round trip: what one request costs a server, counted rather than timed.

Owns the callgrind runs of one measurement. Timing on a shared machine drifts by tens of percent
between runs; Valgrind's callgrind counts every instruction the server's process executes in user
space, so the same code under the same inputs gives the same count to within a fraction of a
percent. That makes it the instrument for a change of a few percent, which the throughput
matrix cannot see (``docs/design.md``, "The CPU gap to the lean loop", used it to price each
part of the per-event contract).

Method: the server runs under ``valgrind --tool=callgrind`` (with ``PYTHONHASHSEED=0``, so dict
layouts, and with them lookups, are the same every run), and a client in this process makes N
round trips of ``--size`` bytes, on one connection or on several each keeping one message in
flight; then the server is stopped and callgrind's ``summary:`` line read. Start-up, imports and
shutdown cost the same in a short run and a long one, so the difference between a run of
``short`` and one of ``long`` round trips, divided by ``long - short``, is what one round trip
costs. Everything the kernel does is outside the count; ``throughput`` measures that.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from examples.bench.clientkit import RoundTripBudget, connect_all
from examples.bench.matrix import int_list
from examples.bench.pyload import EchoLoad
from examples.bench.report import table
from examples.bench.servers import LaunchOptions, ServerProcess, ServerSpec

SERVERS = ("echo", "lean-echo")
BASELINE = "lean-echo"
DEFAULT_ROUND_TRIPS = (2_000, 12_000)
INSTALL_HINT = "apt-get install valgrind"
#: Python under callgrind runs tens of times slower: start-up alone takes seconds.
SLOWDOWN = 20.0
#: How long one run's round trips may take in all before the server counts as stalled.
CLIENT_TIMEOUT_SECONDS = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=1024, help="bytes per message "
                                                               "(default: %(default)s)")
    parser.add_argument("--conns", type=int_list, default=[1, 10],
                        help="connections, each a cell (default: 1,10)")
    parser.add_argument("--round-trips", type=short_and_long, default=DEFAULT_ROUND_TRIPS,
                        metavar="SHORT,LONG",
                        help="the two runs whose difference is measured (default: 2000,12000)")


def short_and_long(text: str) -> tuple[int, int]:
    """An argparse type for ``--round-trips``: two counts, the first smaller, so that their
    difference is a positive number of round trips."""
    counts = int_list(text)
    if len(counts) != 2 or not 0 < counts[0] < counts[1]:
        raise argparse.ArgumentTypeError(f"want SHORT,LONG with 0 < SHORT < LONG, not {text!r}")
    return counts[0], counts[1]


def valgrind() -> str | None:
    return shutil.which("valgrind")


def round_trips(host: str, port: int, count: int, size: int, conns: int) -> None:
    """Make ``count`` round trips of ``size`` bytes over ``conns`` connections, one message in
    flight on each, with ``pyload``'s verifying client: every byte that comes back must be the
    byte sent. When the count is reached the other connections' last replies are not waited
    for; that is at most ``conns - 1`` round trips, the same in both runs of a measurement, so
    the difference cancels them."""
    socks = connect_all(host, port, min(conns, count))
    budget = RoundTripBudget(count, CLIENT_TIMEOUT_SECONDS)
    load = EchoLoad(socks, size, 1, "echo", budget)
    try:
        load.run()
    finally:
        for sock in socks:
            sock.close()
        load.selector.close()
    if load.mismatches:
        raise RuntimeError(f"wrong bytes echoed after {budget.count} round trips")
    if load.errors:
        raise RuntimeError(f"the server closed a connection after {budget.count} round trips")
    if budget.count < count:
        raise RuntimeError(f"only {budget.count} of {count} round trips within "
                           f"{CLIENT_TIMEOUT_SECONDS:.0f} s")


def counted_run(spec: ServerSpec, options: LaunchOptions, count: int, size: int,
                conns: int) -> int:
    """The instructions the server ran, start to exit, when serving ``count`` round trips."""
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "callgrind.out"
        wrapped = replace(options, wrapper=(
            "env", "PYTHONHASHSEED=0", valgrind() or "valgrind", "--tool=callgrind",
            f"--callgrind-out-file={output}"), slowdown=SLOWDOWN)
        with ServerProcess(spec, wrapped) as server:
            round_trips(server.host, server.port, count, size, conns)
        if server.process.returncode != 0:
            raise RuntimeError(f"{spec.name} under callgrind exited with status "
                               f"{server.process.returncode}: {server.stderr_text[-500:]}")
        for line in output.read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError(f"no summary line in {spec.name}'s callgrind output")


def measure(specs: list[ServerSpec], options: LaunchOptions,
            args: argparse.Namespace) -> list[dict[str, Any]]:
    short, long = args.round_trips
    rows = []
    for conns in args.conns:
        for spec in specs:
            before = counted_run(spec, options, short, args.size, conns)
            after = counted_run(spec, options, long, args.size, conns)
            rows.append({"server": spec.name, "conns": conns, "size": args.size,
                         "instructions_per_round_trip": (after - before) / (long - short)})
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    baseline = {row["conns"]: row["instructions_per_round_trip"] for row in rows
                if row["server"] == BASELINE}
    lines = []
    for row in rows:
        per_trip = row["instructions_per_round_trip"]
        floor = baseline.get(row["conns"])
        lines.append([row["server"], str(row["conns"]), f"{per_trip / 1000:,.2f}k",
                      f"{per_trip / floor:.2f}x" if floor else "-"])
    return table(["server", "conns", "instructions/RT", f"/ {BASELINE}"], lines)

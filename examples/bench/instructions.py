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
``short`` and one of ``long`` round trips, divided by the difference in round trips the server
answered (``round_trips`` says why that is exact), is what one round trip costs. Everything the
kernel does is outside the count; ``throughput`` measures that.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from examples.args import positive_count, positive_number
from examples.bench.clientkit import RoundTripBudget, connect_all, int_list
from examples.bench.pyload import EchoLoad
from examples.bench.report import table
from examples.bench.servers import LaunchOptions, ServerProcess, ServerSpec

SERVERS = ("echo", "lean-echo")
BASELINE = "lean-echo"
DEFAULT_ROUND_TRIPS = (2_000, 12_000)
INSTALL_HINT = "apt-get install valgrind"
#: Python under callgrind runs tens of times slower: start-up alone takes seconds. The start,
#: stop and client deadlines are this many times the usual ones.
DEFAULT_SLOWDOWN = 20.0
#: How long one run's round trips may take in all, natively, before the server counts as
#: stalled (times ``--slowdown``).
CLIENT_SECONDS = 6.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=positive_count, default=1024,
                        help="bytes per message (default: %(default)s)")
    parser.add_argument("--conns", type=positive_counts, default=[1, 10],
                        help="connections, each a cell (default: 1,10)")
    parser.add_argument("--round-trips", type=short_and_long, default=DEFAULT_ROUND_TRIPS,
                        metavar="SHORT,LONG",
                        help="the two runs whose difference is measured (default: 2000,12000)")
    parser.add_argument("--slowdown", type=positive_number, default=DEFAULT_SLOWDOWN,
                        help="how many times the usual time a server under valgrind may take "
                             "to start, serve and stop (default: %(default)s)")


def positive_counts(text: str) -> list[int]:
    """An argparse type: ``1,10``, each at least 1."""
    return [positive_count(part) for part in text.split(",")]


def short_and_long(text: str) -> tuple[int, int]:
    """An argparse type for ``--round-trips``: two counts, the first smaller, so that their
    difference is a positive number of round trips."""
    counts = int_list(text)
    if len(counts) != 2 or not 0 < counts[0] < counts[1]:
        raise argparse.ArgumentTypeError(f"want SHORT,LONG with 0 < SHORT < LONG, not {text!r}")
    return counts[0], counts[1]


def valgrind() -> str | None:
    return shutil.which("valgrind")


def round_trips(host: str, port: int, count: int, size: int, conns: int,
                timeout: float) -> int:
    """Make at least ``count`` round trips of ``size`` bytes over ``conns`` connections, one
    message in flight on each, with ``pyload``'s verifying client (every byte that comes back
    must be the byte sent), and return how many the server answered.

    Once ``count`` replies are in, no request goes out, but the ones still in flight (up to
    ``conns - 1``) are waited for before the sockets close: every request then costs the server
    one whole round trip and each connection ends with a plain EOF, so the count returned is
    exactly what the server did."""
    socks = connect_all(host, port, min(conns, count))
    budget = RoundTripBudget(count, timeout)
    load = EchoLoad(socks, size, 1, "echo", budget)
    try:
        load.run()
        load.settle(budget.closes)
        unanswered = load.in_flight()  # before closing: a closed connection counts none
    finally:
        for sock in socks:
            sock.close()
        load.selector.close()
    if load.mismatches:
        raise RuntimeError(f"wrong bytes echoed after {budget.count} round trips")
    if load.errors:
        raise RuntimeError(f"the server closed a connection after {budget.count} round trips")
    if budget.count < count:
        raise RuntimeError(f"only {budget.count} of {count} round trips within {timeout:.0f} s")
    if unanswered:
        raise RuntimeError(f"{unanswered} requests still unanswered {timeout:.0f} s after the "
                           f"first {count} round trips began")
    return load.requests_sent()


def counted_run(spec: ServerSpec, options: LaunchOptions, valgrind_path: str, count: int,
                size: int, conns: int) -> tuple[int, int]:
    """The instructions the server ran, start to exit, and the round trips it answered, when
    asked for ``count``."""
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "callgrind.out"
        wrapped = replace(options, wrapper=(
            "env", "PYTHONHASHSEED=0", valgrind_path, "--tool=callgrind",
            f"--callgrind-out-file={output}"))
        with ServerProcess(spec, wrapped) as server:
            answered = round_trips(server.host, server.port, count, size, conns,
                                   CLIENT_SECONDS * options.slowdown)
        if server.process.returncode != 0:
            raise RuntimeError(f"{spec.name} under callgrind exited with status "
                               f"{server.process.returncode}: {server.stderr_text[-500:]}")
        for line in output.read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1]), answered
    raise RuntimeError(f"no summary line in {spec.name}'s callgrind output")


def measure(specs: list[ServerSpec], options: LaunchOptions, valgrind_path: str,
            args: argparse.Namespace) -> list[dict[str, Any]]:
    """``options`` should carry the ``--slowdown``; each row divides the two runs' difference
    in instructions by their difference in round trips answered."""
    short, long = args.round_trips
    rows = []
    for conns in args.conns:
        for spec in specs:
            before, short_trips = counted_run(spec, options, valgrind_path, short, args.size,
                                              conns)
            after, long_trips = counted_run(spec, options, valgrind_path, long, args.size,
                                            conns)
            rows.append({"server": spec.name, "conns": conns, "size": args.size,
                         "round_trips": [short_trips, long_trips],
                         "instructions_per_round_trip":
                             (after - before) / (long_trips - short_trips)})
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

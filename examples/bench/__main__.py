"""``python -m examples.bench [throughput|memory|passes|slow-reader|fanout|tls|many|copies|
instructions] ...``: run, print, save.

Owns the command line: which servers, which cells, how long; prints each table to stdout
(progress goes to stderr) and writes its section of the JSON results file.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from examples.bench import (
    copies,
    fanout,
    instructions,
    many,
    matrix,
    memory,
    passes,
    redis_check,
    slow_reader,
    tls,
)
from examples.bench.clientkit import int_list
from examples.bench.cpus import CpuPlan, format_cpus, plan
from examples.bench.launch import connections_possible
from examples.bench.load import choose, choose_chat
from examples.bench.report import THROUGHPUT_FOOTNOTES, table, update_json
from examples.bench.servers import (
    OURS,
    PEERS,
    LaunchOptions,
    ServerSpec,
    spec_for,
    unavailable,
    workers_in,
)

FULL_SERVERS = ("echo", "asyncio-echo", "uvloop-echo", "twisted-echo", "lean-echo", "echo-2w",
                "upper", "asyncio-upper", "uvloop-upper", "twisted-upper", "chat")
QUICK_SERVERS = ("echo", "asyncio-echo", "uvloop-echo", "lean-echo")
ECHO_SERVERS = ("echo", "asyncio-echo", "uvloop-echo", "twisted-echo", "lean-echo")
KIB = 1024
#: glibc: a large recv() can page-fault dozens of times per 100 KiB message depending on heap
#: history (docs/design.md, "Performance notes"); padding the heap's top takes that out of the
#: comparison.
MALLOC_TOP_PAD_BYTES = 4 * 1024 * 1024
#: glibc 2.36 (Debian 12) copies 2 KiB to 512 KiB with ``rep movsb``, which on this AMD EPYC runs
#: about fifteen times slower when the destination starts 1 to 31 bytes past the source modulo 4096
#: (``python -m examples.bench copies``); where malloc happens to put two buffers then decides what
#: a copy costs, whichever loop runs (docs/design.md, "Copies and page aliasing"). Above this
#: threshold glibc copies with vector instructions, whose speed does not depend on the addresses.
GLIBC_TUNABLES_DEFAULT = "glibc.cpu.x86_rep_movsb_threshold=16777216"

COMMANDS = ("throughput", "memory", "passes", "slow-reader", "fanout", "tls", "many", "copies",
            "instructions")
WORKERS_CAVEAT = ("multi-worker servers are not pinned; on a 2-core machine the load generator "
                  "competes with the second worker for CPU 1, so 2 workers cannot show 2x here")


def name_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", type=Path, default=Path("bench-results.json"),
                        help="results file; each command replaces its own section "
                             "(default: %(default)s)")
    common.add_argument("--servers", type=name_list,
                        help=f"comma-separated: {', '.join([*OURS, *PEERS])}, "
                             "or NAME-Nw (ours with --workers N)")
    common.add_argument("--server-args", default="",
                        help="extra arguments for our servers, e.g. \"--workers 2\"")
    common.add_argument("--malloc-top-pad", type=int, default=MALLOC_TOP_PAD_BYTES,
                        help="MALLOC_TOP_PAD_ for every server, 0 for glibc's default "
                             "(default: %(default)s)")
    common.add_argument("--glibc-tunables", default=GLIBC_TUNABLES_DEFAULT,
                        help="GLIBC_TUNABLES added for every server, '' for glibc's own "
                             "choices (default: %(default)s)")

    parser = argparse.ArgumentParser(
        prog="python -m examples.bench",
        description="Run the benchmarks against the example servers and their peers, print "
                    "each table, and save the results (see examples/bench/README.md).",
        epilog="Without a command: throughput. 'python -m examples.bench COMMAND -h' for its "
               "options.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    throughput = commands.add_parser("throughput", parents=[common],
                                     help="the matrix: req/s, MB/s, latency, user CPU per RT")
    throughput.add_argument("--quick", action="store_true",
                            help="about a minute: 1 and 100 KiB x 10 conns x pipeline 1, "
                                 "ours vs asyncio vs uvloop vs the lean selectors loop, "
                                 "3 rounds of 2 s")
    throughput.add_argument("--seconds", type=float, help="measured window per run (default 3; "
                                                          "quick 2)")
    throughput.add_argument("--warmup", type=float, help="warm-up per run (default 1; quick 0.5)")
    throughput.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    throughput.add_argument("--sizes", type=int_list,
                            help="message bytes (default 1024,10240,102400; quick 1024,102400)")
    throughput.add_argument("--conns", type=int_list, help="connections (default 10,100; quick 10)")
    throughput.add_argument("--pipelines", type=int_list,
                            help="messages in flight per connection (default 1,16; quick 1)")
    throughput.add_argument("--load", choices=["auto", "c", "python"], default="auto",
                            help="load generator: echo_load (C) when it builds, else Python")

    mem = commands.add_parser("memory", parents=[common],
                              help="server RSS per idle connection, 10,000 open")
    mem.add_argument("--connections", type=int, default=memory.DEFAULT_CONNECTIONS)

    loop = commands.add_parser("passes", parents=[common],
                               help="one loop pass with N idle + 10 active fds, per selector")
    loop.add_argument("--idle", type=int_list, default=list(passes.DEFAULT_IDLE))
    loop.add_argument("--selectors", type=name_list, default=list(passes.DEFAULT_SELECTORS))
    loop.add_argument("--passes", type=int, default=passes.PASSES, help="passes per batch")

    slow = commands.add_parser("slow-reader", parents=[common],
                               help="clients that read slower than they send")
    slow.add_argument("--clients", type=int, default=10)
    slow.add_argument("--seconds", type=float, default=5.0)
    slow.add_argument("--burst", type=int, default=1024 * KIB, help="bytes per burst")
    slow.add_argument("--read-rate", type=float, default=1.0,
                      help="MiB/s each client reads, at most (default: %(default)s)")
    fanout.add_arguments(commands.add_parser(
        "fanout", parents=[common],
        help="one chat room of 100 members: ours vs asyncio, uvloop and asyncio on our loop "
             "(--shapes redis: on 2 servers + Redis)"))
    tls.add_arguments(commands.add_parser(
        "tls", parents=[common], help="TLS echo, ours vs asyncio: req/s, user CPU per RT"))
    many.add_arguments(commands.add_parser(
        "many", parents=[common],
        help="10,000 clients, one 1 KiB request a second each: server CPU, latency, late"))
    copies.add_arguments(commands.add_parser(
        "copies", parents=[common],
        help="one memcpy by the distance of its buffers, glibc's default vs --glibc-tunables"))
    instructions.add_arguments(commands.add_parser(
        "instructions", parents=[common],
        help="instructions per round trip under callgrind: ours vs the lean loop, counted"))
    return parser


def resolve(names: Sequence[str], kinds: Sequence[str] | None = None
            ) -> tuple[list[ServerSpec], list[str]]:
    """The specs that can run here, and a note for each one that cannot."""
    specs, notes = [], []
    for name in names:
        spec = spec_for(name)
        reason = unavailable(spec)
        if reason is None and kinds is not None and spec.kind not in kinds:
            reason = f"this measurement drives {'/'.join(kinds)} servers only"
        if reason:
            notes.append(f"{name} skipped: {reason}")
        else:
            specs.append(spec)
    return specs, notes


def multi_process(specs: Sequence[ServerSpec], options: LaunchOptions) -> bool:
    """Whether any server of the run starts more than one worker process."""
    return any(spec.workers > 1 for spec in specs) or workers_in(options.extra_args) > 1


def header(title: str, cpus: CpuPlan, options: LaunchOptions, specs: Sequence[ServerSpec],
           notes: Sequence[str]) -> None:
    print(f"handreactor benchmark: {title}")
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; {cpus.note()}")
    if options.malloc_top_pad:
        print(f"every server runs with MALLOC_TOP_PAD_={options.malloc_top_pad} (glibc page "
              "faults at 100 KiB depend on heap history otherwise)")
    if options.glibc_tunables:
        print(f"every server runs with GLIBC_TUNABLES={options.glibc_tunables} (memcpy's speed "
              "depends on where malloc put the buffers otherwise)")
    if options.extra_args:
        print(f"our servers get: {shlex.join(options.extra_args)}")
    print("servers: " + ", ".join(spec.name for spec in specs))
    for note in notes:
        print(f"note: {note}")
    if multi_process(specs, options):
        print(f"note: {WORKERS_CAVEAT}")
    print(flush=True)


def meta(cpus: CpuPlan, options: LaunchOptions, args: argparse.Namespace) -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "cpu_plan": cpus.note(),
            "malloc_top_pad": options.malloc_top_pad, "glibc_tunables": options.glibc_tunables,
            "server_args": list(options.extra_args),
            "argv": sys.argv[1:], "json": str(args.json)}


def run_throughput(args: argparse.Namespace, cpus: CpuPlan, options: LaunchOptions) -> int:
    quick = args.quick
    seconds = args.seconds if args.seconds is not None else (2.0 if quick else 3.0)
    warmup = args.warmup if args.warmup is not None else (0.5 if quick else 1.0)
    sizes = args.sizes or ([KIB, 100 * KIB] if quick else [KIB, 10 * KIB, 100 * KIB])
    conns = args.conns or ([10] if quick else [10, 100])
    pipelines = args.pipelines or ([1] if quick else [1, 16])
    specs, notes = resolve(args.servers or (QUICK_SERVERS if quick else FULL_SERVERS))
    kinds = list(dict.fromkeys(spec.kind for spec in specs))
    cells, size_notes = matrix.plan_cells(kinds, sizes, conns, pipelines)
    loads = choose(args.load)
    notes += size_notes
    notes.append(f"load generator: {loads.description}")
    if loads.fidelity_note:
        notes.append(loads.fidelity_note)
    if "chat" in kinds:
        notes.append("chat: req/s counts lines delivered (each line sent reaches conns - 1 "
                     "members), latency is until its last delivery, user us/RT is per delivered "
                     "line; driven by the Python chatload (examples/bench/chatload.py); its "
                     "peer, asyncio-chat, runs when --servers names it")
    estimate = matrix.estimate_seconds(cells, specs, args.rounds, warmup, seconds)
    header(f"throughput{' (quick)' if quick else ''}, {args.rounds} interleaved rounds of "
           f"{warmup:g} s warm-up + {seconds:g} s (estimated {estimate / 60:.1f} min)",
           cpus, options, specs, notes)
    started = time.monotonic()
    results, redis = matrix.run_matrix(cells, specs, options, loads, args.rounds, warmup, seconds)
    for result in results:
        print(result.render(args.rounds), end="\n\n")
    print("\n".join(THROUGHPUT_FOOTNOTES))
    if redis:
        print("\nredis-benchmark -c 50 -P 16 (compatibility and pipelining check, not a ranking;"
              " echo: ECHO <1 KiB>, line: inline PING)")
        print(table(["server", "redis-benchmark"], [[name, verdict]
                                                   for name, verdict in redis.items()]))
    elif not redis_check.available():
        print(f"\nredis-benchmark not found: {redis_check.INSTALL_HINT} adds a compatibility "
              "check column")
    print(f"\nfinished in {time.monotonic() - started:.0f} s; results in {args.json}")
    update_json(args.json, "throughput", {
        "meta": meta(cpus, options, args), "notes": notes, "rounds": args.rounds,
        "warmup_seconds": warmup, "seconds": seconds, "load": loads.description,
        "cells": [result.to_json() for result in results], "redis_benchmark": redis})
    failed = any(not run.ok for result in results for run in result.runs)
    return 1 if failed else 0


def possible_connections(wanted: int, notes: list[str]) -> int:
    """``wanted``, or as many as the hard descriptor limit allows, with a note saying so."""
    connections = connections_possible(wanted)
    if connections < wanted:
        notes.append(f"the hard RLIMIT_NOFILE allows only {connections} "
                     f"connection{'' if connections == 1 else 's'}")
    return connections


def run_memory(args: argparse.Namespace, cpus: CpuPlan, options: LaunchOptions) -> int:
    specs, notes = resolve(args.servers or ECHO_SERVERS)
    connections = possible_connections(args.connections, notes)
    header(f"memory per idle connection ({connections:,} open)", cpus, options, specs, notes)
    results = [memory.measure(spec, options, connections) for spec in specs]
    print(memory.render(results))
    update_json(args.json, "memory", {"meta": meta(cpus, options, args), "notes": notes,
                                      "results": results})
    return 0


def run_passes(args: argparse.Namespace, cpus: CpuPlan, options: LaunchOptions) -> int:
    cpus.pin_harness(cpus.server)  # in-process: the reactor under test runs here
    print(f"handreactor benchmark: one loop pass, {passes.ACTIVE} active fds + N idle "
          f"socketpairs (median of {passes.BATCHES} batches of {args.passes} run_once passes; "
          f"in-process on CPU {min(cpus.server)})\n", flush=True)
    rows = passes.measure(args.idle, args.selectors, args.passes)
    print(passes.render(rows, args.selectors))
    print(f"\nselect() takes only fds below FD_SETSIZE ({passes.FD_SETSIZE}); N socketpairs use "
          "2N fds, hence n/a from 1,000 idle")
    update_json(args.json, "passes", {"meta": meta(cpus, options, args), "rows": rows})
    return 0


def run_copies(args: argparse.Namespace, cpus: CpuPlan, options: LaunchOptions) -> int:
    if not options.glibc_tunables:
        print("examples.bench copies: give --glibc-tunables to compare with", file=sys.stderr)
        return 2
    print(f"handreactor benchmark: one copy of {args.size:,} bytes by the distance of its "
          f"destination past its source (fastest of {copies.BATCHES} batches of "
          f"{copies.COPIES_PER_BATCH}; on CPU {format_cpus(cpus.load)})\n", flush=True)
    result = copies.measure(args.size, options)
    print(copies.render(result))
    update_json(args.json, "copies", {"meta": meta(cpus, options, args), **result})
    return 0


def run_slow_reader(args: argparse.Namespace, cpus: CpuPlan, options: LaunchOptions) -> int:
    specs, notes = resolve(args.servers or ECHO_SERVERS, kinds=["echo"])
    read_rate = int(args.read_rate * 1024 * 1024)
    header(f"slow readers: {args.clients} clients send {args.burst // KIB} KiB bursts and read "
           f"at most {args.read_rate:g} MiB/s each, {args.seconds:g} s", cpus, options, specs,
           notes)
    results = [slow_reader.measure(spec, options, args.clients, args.seconds, args.burst,
                                   read_rate) for spec in specs]
    print(slow_reader.render(results))
    print("", *slow_reader.footnotes(results), sep="\n")
    update_json(args.json, "slow_reader", {"meta": meta(cpus, options, args), "notes": notes,
                                           "results": results})
    return 1 if any("error" in result for result in results) else 0


def run_fanout(args: argparse.Namespace, cpus: CpuPlan, options: LaunchOptions) -> int:
    specs, notes = resolve(args.servers or fanout.SERVERS, kinds=["chat"])
    shapes = args.shapes
    if "redis" in shapes:
        notes.append(f"{fanout.REDIS_ROW}: 2 x chat_server --redis and redis-server, all on the "
                     "server CPU")
    try:
        load_prefix, load_description = choose_chat(args.load)
    except RuntimeError as exc:
        print(f"examples.bench: {exc}", file=sys.stderr)
        return 2
    notes.append(f"load generator: {load_description}")
    header(f"chat fan-out: {args.members} members, one line each in flight, {args.rounds} "
           f"interleaved rounds of {args.warmup:g} s warm-up + {args.seconds:g} s", cpus, options,
           specs if "single" in shapes else [], notes)
    result = fanout.measure(specs, shapes, options, load_prefix, args)
    print(result.render(args.rounds))
    update_json(args.json, "fanout", {
        "meta": meta(cpus, options, args), "notes": notes, "rounds": args.rounds,
        "warmup_seconds": args.warmup, "seconds": args.seconds, "size": args.size,
        "shapes": shapes, "load": load_description, **result.to_json()})
    return 1 if any(not run.ok for run in result.runs) else 0


def run_tls(args: argparse.Namespace, cpus: CpuPlan, options: LaunchOptions) -> int:
    specs, notes = resolve(args.servers or tls.SERVERS, kinds=["echo"])
    specs, more_notes = tls.capable(specs)
    notes += [*more_notes, f"certificate: {shlex.join(tls.CERTIFICATE_COMMAND)} (in a temporary "
              "directory)", "load generator: pyload --tls (Python; echo_load.c is plain TCP)"]
    header(f"TLS echo, {args.rounds} interleaved rounds of {args.warmup:g} s warm-up + "
           f"{args.seconds:g} s", cpus, options, specs, notes)
    try:
        with tls.certificate() as (cert, key):
            results = tls.measure(specs, options, args, cert, key)
    except tls.CertificateError as exc:
        print(f"examples.bench: {exc}", file=sys.stderr)
        return 2
    print("\n\n".join(tls.render(result, args.rounds) for result in results), end="\n\n")
    print("\n".join(THROUGHPUT_FOOTNOTES))
    update_json(args.json, "tls", {"meta": meta(cpus, options, args), "notes": notes,
                                   "cells": [result.to_json() for result in results]})
    return 1 if any(not run.ok for result in results for run in result.runs) else 0


def run_many(args: argparse.Namespace, cpus: CpuPlan, options: LaunchOptions) -> int:
    specs, notes = resolve(args.servers or many.SERVERS, kinds=["echo"])
    try:
        loads = choose("c")
    except RuntimeError as exc:
        print(f"examples.bench: many needs echo_load (C): {exc}", file=sys.stderr)
        return 2
    connections = possible_connections(args.connections, notes)
    notes.append(f"load generator: {loads.description}, --rate-interval {args.interval:g}")
    header(f"many connections: {connections:,} clients, one {args.size}-byte request every "
           f"{args.interval:g} s each ({connections / args.interval:,.0f} req/s offered), "
           f"{args.warmup:g} s warm-up + {args.seconds:g} s", cpus, options, specs, notes)
    results = []
    for number, spec in enumerate(specs, 1):
        results.append(many.measure(spec, options, loads, connections, args))
        print(f"[{number}/{len(specs)}] {many.progress(results[-1])}", file=sys.stderr,
              flush=True)
    print(many.render(results))
    print("", *many.FOOTNOTES, sep="\n")
    update_json(args.json, "many", {"meta": meta(cpus, options, args), "notes": notes,
                                    "results": results})
    return 1 if any("error" in result for result in results) else 0


def run_instructions(args: argparse.Namespace, cpus: CpuPlan, options: LaunchOptions) -> int:
    valgrind = instructions.valgrind()
    if valgrind is None:
        print(f"examples.bench: instructions needs valgrind ({instructions.INSTALL_HINT})",
              file=sys.stderr)
        return 2
    specs, notes = resolve(args.servers or instructions.SERVERS, kinds=["echo"])
    if multi_process(specs, options):
        # Every worker would write the one callgrind output file, and which of them served a
        # request is the kernel's choice: no count would mean anything.
        print("examples.bench: instructions counts one process; give single-process servers",
              file=sys.stderr)
        return 2
    options = dataclasses.replace(options, slowdown=args.slowdown)
    short, long = args.round_trips
    header(f"instructions per round trip of {args.size} bytes under valgrind --tool=callgrind "
           f"(a run of {long:,} round trips minus one of {short:,})", cpus, options, specs, notes)
    try:
        rows = instructions.measure(specs, options, valgrind, args)
    except RuntimeError as exc:
        print(f"examples.bench: {exc}", file=sys.stderr)
        return 1
    print(instructions.render(rows))
    update_json(args.json, "instructions", {"meta": meta(cpus, options, args), "notes": notes,
                                            "rows": rows})
    return 0


RUNNERS: dict[str, Callable[[argparse.Namespace, CpuPlan, LaunchOptions], int]] = {
    "throughput": run_throughput, "memory": run_memory, "passes": run_passes,
    "slow-reader": run_slow_reader, "fanout": run_fanout, "tls": run_tls, "many": run_many,
    "copies": run_copies, "instructions": run_instructions,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv.insert(0, "throughput")
    args = build_parser().parse_args(argv)
    try:
        for name in args.servers or ():
            spec_for(name)
    except ValueError as exc:
        print(f"examples.bench: {exc}", file=sys.stderr)
        return 2
    cpus = plan()
    cpus.pin_harness()
    options = LaunchOptions(cpus, tuple(shlex.split(args.server_args)), args.malloc_top_pad,
                            args.glibc_tunables)
    try:
        return RUNNERS[args.command](args, cpus, options)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

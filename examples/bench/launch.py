"""Start one benchmark process with its CPU set and descriptor limit, then become it.

    python -m examples.bench.launch --cpus 0 --nofile 20100 -- \
        python -m examples.echo_server --port 0

Owns nothing: it sets two properties of its own process and calls ``exec``, so the program
keeps this process's PID (the harness reads ``/proc/PID`` of the PID it started) and inherits
both settings. Why a wrapper rather than ``preexec_fn``: it works the same for every program
(our servers, the peers, the C load generator) and needs no code between ``fork`` and ``exec``
in the harness.

* ``--cpus``: ``sched_setaffinity`` before ``exec`` pins the program, and every thread and child
  it starts, to those CPUs; the server on one core and the load generator on another keeps them
  from taking turns on the same core.
* ``--nofile``: raises the soft ``RLIMIT_NOFILE`` (never above the hard limit, which only root
  may raise), because 10,000 idle connections need more descriptors than the usual soft 1,024.

The descriptor budget of the benchmarks that hold thousands of connections (``memory``,
``many``) lives here too, beside the limit it budgets: ``connections_possible``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys


def cpu_set(text: str) -> set[int]:
    """An argparse type: ``"0"`` or ``"0,1"``."""
    return {int(part) for part in text.split(",") if part}


#: Descriptors a process needs beyond its connections: stdio, listener, selector, waker, logs...
SPARE_DESCRIPTORS = 256


def connections_possible(wanted: int) -> int:
    """``wanted`` connections, or fewer if the hard descriptor limit cannot hold them (with
    ``SPARE_DESCRIPTORS`` to spare): what a benchmark holding many connections can open."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return wanted
    return max(0, min(wanted, hard - SPARE_DESCRIPTORS))


def raise_nofile(wanted: int) -> int:
    """Raise the soft descriptor limit to ``wanted`` (capped by the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=cpu_set, help="CPUs to run on, e.g. 0 or 0,1")
    parser.add_argument("--nofile", type=int, help="soft RLIMIT_NOFILE to ask for")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- PROGRAM ARGS...: what to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the program to run after --")
    if args.cpus:
        os.sched_setaffinity(0, args.cpus)
    if args.nofile:
        raise_nofile(args.nofile)
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main())

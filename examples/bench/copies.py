"""``python -m examples.bench copies``: what one copy of a message costs, by where its source and
destination sit relative to each other modulo a 4 KiB page.

Why a network benchmark measures ``memcpy``: asyncio's ``StreamReader`` copies every message
into a new buffer two or three times (``bytearray.extend``, then ``read()``'s ``bytes()``; on
3.11 a slice first), and so does any protocol that joins its input. glibc picks how to copy by
size and CPU; for 2 KiB to 512 KiB on an AMD EPYC under glibc 2.36 it picks ``rep movsb``,
whose speed there depends on the distance between the two buffers modulo 4096. Which distance
a copy gets is decided by where malloc happened to put its buffers, so two runs of one server,
or two loops under one program, can pay very different prices for the same bytes. This table
shows whether a machine does that; the benchmark's ``--glibc-tunables`` default
(``__main__.py``) is the column on the right.

Run in child processes: glibc reads ``GLIBC_TUNABLES`` once, when a program starts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from examples.bench.report import table
from examples.bench.servers import LaunchOptions

DEFAULT_SIZE = 100 * 1024
#: Distances of the destination past the source, modulo 4096: both edges of the slow range
#: measured on the AMD EPYC (1 to 31 bytes; 32 to 63 a little slow), and the rest of the page.
DISTANCES = (0, 1, 8, 16, 31, 32, 48, 63, 64, 128, 1024, 2048, 4032, 4095)
COPIES_PER_BATCH = 100
BATCHES = 5
PAGE = 4096


def time_copies(size: int) -> dict[int, float]:
    """The fastest of ``BATCHES`` batches of copies, in µs per copy, for each distance. One
    arena holds both buffers, so only their distance changes between rows; slice assignment
    between two ``memoryview`` slices is one ``memmove()``, the function ``memcpy`` shares."""
    gap = (size // PAGE + 2) * PAGE  # whole pages between the source and the destination
    arena = memoryview(bytearray(gap + size + PAGE))
    source = arena[:size]
    timings = {}
    for distance in DISTANCES:
        destination = arena[gap + distance:gap + distance + size]
        best = float("inf")
        for _ in range(BATCHES):
            start = time.perf_counter()
            for _ in range(COPIES_PER_BATCH):
                destination[:] = source
            best = min(best, (time.perf_counter() - start) / COPIES_PER_BATCH)
        timings[distance] = best * 1e6
    return timings


def measure(size: int, options: LaunchOptions) -> dict[str, Any]:
    """Run ``time_copies`` in a child with glibc's defaults and in one with the environment
    every benchmarked server gets (``LaunchOptions.environment``)."""
    tunables = options.glibc_tunables
    columns = {}
    for label, env in (("default", dict(os.environ)), (tunables, options.environment(os.environ))):
        result = subprocess.run([sys.executable, "-m", "examples.bench.copies", str(size)],
                                capture_output=True, text=True, env=env, check=True,
                                timeout=120)
        columns[label] = {int(key): value for key, value in json.loads(result.stdout).items()}
    return {"size": size, "tunables": tunables, "columns": columns}


def render(result: dict[str, Any]) -> str:
    labels = list(result["columns"])
    rows = [[str(distance), *(f"{result['columns'][label][distance]:.2f}" for label in labels)]
            for distance in DISTANCES]
    headers = ["distance mod 4096", *(f"µs per copy, {label}" for label in labels)]
    return table(headers, rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                        help="bytes per copy (default: %(default)s)")


def main(argv: list[str] | None = None) -> int:
    """The child: ``python -m examples.bench.copies SIZE`` prints its timings as JSON."""
    args = sys.argv[1:] if argv is None else argv
    print(json.dumps(time_copies(int(args[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A real client's view: redis-benchmark (Debian ``redis-tools``) against our servers.

Owns one check per server. Not a ranking: redis-benchmark saturates its own core before a fast
server, so its requests/s cannot tell servers apart (docs/design.md). What it shows is
compatibility under pipelining: 50 connections with 16 requests in flight each, from a client
we did not write. An echo server passes because the echoed request parses as a reply
(``ECHO <payload>``: RESP array in, the same array out). Line servers get inline ``PING``; ours
answer ``PING\\n``, which is not RESP (``+PONG\\r\\n``), so redis-benchmark waits for a reply it
never recognises: the check times out and says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from examples.bench.cpus import CpuPlan, format_cpus

INSTALL_HINT = "apt-get install redis-tools"
REQUESTS = 20000
PAYLOAD_BYTES = 1024
TIMEOUT_SECONDS = 3.0
RATE = re.compile(r"([\d.]+) requests per second")


def available() -> bool:
    return shutil.which("redis-benchmark") is not None


def check(kind: str, host: str, port: int, cpus: CpuPlan) -> str:
    """One short verdict for a table cell: ``ok 812k/s``, ``timeout ...`` or ``failed ...``."""
    command = ["taskset", "-c", format_cpus(cpus.load)] if shutil.which("taskset") else []
    command += ["redis-benchmark", "-h", host, "-p", str(port), "-c", "50", "-P", "16", "-q",
                "-n", str(REQUESTS)]
    command += ["ECHO", "x" * PAYLOAD_BYTES] if kind == "echo" else ["PING"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return "no reply parsed (timeout)"
    rates = RATE.findall(result.stdout.replace("\r", "\n"))
    if result.returncode == 0 and rates:
        return f"ok {float(rates[-1]) / 1000:.0f}k/s"
    return f"failed (exit {result.returncode}): {(result.stderr or result.stdout).strip()[:80]}"

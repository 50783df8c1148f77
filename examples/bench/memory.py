"""Memory per idle connection: how much a server's resident set grows per open, silent client.

Owns the 10,000 client sockets of one measurement. The server is started with its soft
descriptor limit raised (``examples.bench.launch --nofile``) and so is this process; both are
capped by the hard limit, and fewer connections are opened, with a note, if that is too low.

Method: after one warm-up round trip (so the first accept's one-off allocations are in the
baseline) the server's VmRSS is read; then the clients connect, in batches that wait for the
server to catch up (a full accept backlog would make SYNs wait a second for a retry), until
``/proc/PID/fd`` shows every connection accepted; after a short settle VmRSS is read again.
(after - before) / connections is the cost of one idle connection: the socket object, the
transport, the protocol, their buffers and the selector's entry, as the server allocates them.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from examples.bench.launch import SPARE_DESCRIPTORS, raise_nofile
from examples.bench.measure import open_fds, tree_rss_kib
from examples.bench.report import table
from examples.bench.servers import LaunchOptions, ServerProcess, ServerSpec

DEFAULT_CONNECTIONS = 10_000
BATCH = 200
#: How far the server's accepts may lag our connects (below every server's backlog).
MAX_LAG = 50
SETTLE_SECONDS = 0.5
ACCEPT_TIMEOUT_SECONDS = 60.0


def wait_for_accepts(pid: int, target: int, deadline: float) -> None:
    while open_fds(pid) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server holds {open_fds(pid)} descriptors, expected {target}")
        time.sleep(0.01)


def measure(spec: ServerSpec, options: LaunchOptions, connections: int) -> dict[str, Any]:
    raise_nofile(connections + SPARE_DESCRIPTORS)  # this process holds the clients
    with ServerProcess(spec, options.for_connections(connections)) as server:
        with socket.create_connection((server.host, server.port), timeout=10) as warm:
            warm.sendall(b"x")
            warm.recv(1)
        time.sleep(SETTLE_SECONDS)
        before_kib = tree_rss_kib(server.pid)
        base_fds = open_fds(server.pid)
        deadline = time.monotonic() + ACCEPT_TIMEOUT_SECONDS
        socks: list[socket.socket] = []
        try:
            while len(socks) < connections:
                for _ in range(min(BATCH, connections - len(socks))):
                    socks.append(socket.create_connection((server.host, server.port), timeout=10))
                wait_for_accepts(server.pid, base_fds + len(socks) - MAX_LAG, deadline)
            wait_for_accepts(server.pid, base_fds + connections, deadline)
            time.sleep(SETTLE_SECONDS)
            after_kib = tree_rss_kib(server.pid)
        finally:
            for sock in socks:
                sock.close()
    return {"server": spec.name, "connections": connections, "rss_before_kib": before_kib,
            "rss_after_kib": after_kib,
            "bytes_per_connection": round((after_kib - before_kib) * 1024 / connections)}


def render(results: list[dict[str, Any]]) -> str:
    rows = [[result["server"], str(result["connections"]),
             f"{result['rss_before_kib'] / 1024:.1f}", f"{result['rss_after_kib'] / 1024:.1f}",
             f"{result['bytes_per_connection']}",
             f"{result['bytes_per_connection'] / 1024:.2f}"] for result in results]
    return table(["server", "idle conns", "RSS before MiB", "RSS after MiB", "bytes/conn",
                  "KiB/conn"], rows)

"""What the Python load clients share: their flags, connecting, the measured window, latencies
and the one JSON line they print (the same keys as ``echo_load.c``'s, so the harness reads all
load generators alike).

Owns no socket after ``connect_all`` returns them; each client owns its own loop.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import socket
import time
from typing import Any

#: Distinct message offsets in a pattern (a prime, as in echo_load.c), so neighbouring messages,
#: and different connections' messages, differ: cross-talk or reordering shows as a mismatch.
PATTERN_PERIOD = 65521
LOWERCASE = bytes(ord("a") + index % 26 for index in range(256))


def int_list(text: str) -> list[int]:
    """An argparse type for every comma-separated list of counts the suite takes: ``--sizes
    1024,10240``, ``--conns 10,100``, ``--other-ports 5001,5002``."""
    return [int(part) for part in text.split(",") if part]


def parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--conns", type=int, default=10, help="connections (default: %(default)s)")
    parser.add_argument("--size", type=int, default=1024,
                        help="bytes per message, delimiter included (default: %(default)s)")
    parser.add_argument("--pipeline", type=int, default=1,
                        help="messages in flight per connection (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before the window")
    return parser


def pattern(length: int, *, letters: bool, seed: int = 0x9E3779B9) -> bytes:
    """Deterministic pseudo-random bytes: lowercase letters, or any byte but ``\\n``."""
    raw = random.Random(seed).randbytes(length)
    return raw.translate(LOWERCASE) if letters else raw.replace(b"\n", b"\xa5")


def connect_all(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` connected, non-blocking sockets with Nagle off (each message goes out at once);
    if one cannot connect, those already connected are closed before the error goes up."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, port), timeout=10)
            socks.append(sock)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


class Window:
    """Warm-up, then the measured window: counts and latencies only inside it."""

    def __init__(self, warmup: float, seconds: float) -> None:
        start = time.monotonic_ns()
        self.opens = start + int(warmup * 1e9)
        self.closes = self.opens + int(seconds * 1e9)
        self.count = 0
        self.latencies_ns: list[int] = []

    def inside(self, now_ns: int) -> bool:
        return self.opens <= now_ns < self.closes

    def over(self, now_ns: int) -> bool:
        return now_ns >= self.closes

    def record(self, now_ns: int, latency_ns: int) -> None:
        if self.opens <= now_ns < self.closes:
            self.count += 1
            self.latencies_ns.append(latency_ns)

    def percentile_ms(self, fraction: float) -> float:
        """Nearest-rank percentile of the window's latencies, 0 when there were none."""
        found = percentile_ms(self.latencies_ns, fraction)
        return 0.0 if found is None else found


class RoundTripBudget(Window):
    """A window measured in round trips, not seconds: open from the start, over after ``count``
    replies, or at ``deadline_seconds`` if the server stalls. For an instrument that counts
    instructions (``instructions``), where how many round trips ran must be known exactly and
    how long they took means nothing."""

    def __init__(self, count: int, deadline_seconds: float) -> None:
        super().__init__(0.0, deadline_seconds)
        self.wanted = count

    def over(self, now_ns: int) -> bool:
        return self.count >= self.wanted or now_ns >= self.closes


def percentile_ms(latencies_ns: list[int], fraction: float) -> float | None:
    """Nearest-rank percentile in ms, ``None`` without latencies (sorts once per call)."""
    if not latencies_ns:
        return None
    ordered = sorted(latencies_ns)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1] / 1e6


def print_result(window: Window, args: argparse.Namespace, rate: float, **extra: Any) -> None:
    """One JSON line on stdout, with echo_load's key names for what both measure."""
    result = {
        "rps": round(rate, 1), "mbps": round(rate * args.size / 1e6, 3),
        "p50_ms": window.percentile_ms(0.50), "p99_ms": window.percentile_ms(0.99),
        "conns": args.conns, "size": args.size, "pipeline": args.pipeline,
        "seconds": (window.closes - window.opens) / 1e9, "rtts": window.count,
        **extra,
    }
    print(json.dumps(result), flush=True)

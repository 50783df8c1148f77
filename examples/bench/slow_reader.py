"""Slow readers against echo servers: throughput, the server's peak memory, pause_writing count.

Owns one measurement per server. On loopback no ``send()`` is partial at the matrix's sizes, so
the send queue, the watermarks and back-pressure are never on the throughput path (docs/design.md,
"Performance notes"); this benchmark puts them there. ``slowload`` clients send 1 MiB bursts and
read at a throttled rate, so every server must either stop reading them (back-pressure: memory
stays flat, ``pause_writing`` fires) or buffer what they send.

The server's peak resident set is the larger of VmRSS sampled every 50 ms and VmHWM (the kernel's
own high-water mark, which catches a spike between samples). ``pause_writing`` events are
reported by the peers on exit; our reactor does not expose its count to another process, so ours
shows ``n/o`` (not observable) and RSS and throughput speak for it. ``lean-echo`` has no
back-pressure to count (``none``): it blocks in ``sendall`` while a slow reader's socket is
full, and every other client waits meanwhile; nothing is queued in user space, so its memory
stays flat.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from examples.bench.load import last_json, start_load
from examples.bench.measure import CpuWindow, status_kib, tree_rss_kib
from examples.bench.report import table
from examples.bench.servers import LaunchOptions, ServerProcess, ServerSpec

SAMPLE_SECONDS = 0.05
SETTLE_SECONDS = 0.3
MIB = 1024 * 1024


def measure(spec: ServerSpec, options: LaunchOptions, clients: int, seconds: float,
            burst: int, read_rate: int) -> dict[str, Any]:
    with ServerProcess(spec, options) as server:
        time.sleep(SETTLE_SECONDS)
        before_kib = tree_rss_kib(server.pid)
        command = [sys.executable, "-m", "examples.bench.slowload", "--host", server.host,
                   "--port", str(server.port), "--conns", str(clients), "--burst", str(burst),
                   "--read-rate", str(read_rate), "--seconds", str(seconds)]
        cpu = CpuWindow(server.pid)
        cpu.start()
        load = start_load(command, options.cpus)
        peak_kib = before_kib
        while load.poll() is None:
            peak_kib = max(peak_kib, tree_rss_kib(server.pid))
            time.sleep(SAMPLE_SECONDS)
        cpu.stop()
        peak_kib = max(peak_kib, status_kib(server.pid, "VmHWM"))
        out, err = load.communicate()
    data = last_json(out)
    result: dict[str, Any] = {"server": spec.name, "rss_before_kib": before_kib,
                              "rss_peak_kib": peak_kib,
                              "pause_writing_events": server.pause_writing_events(),
                              "back_pressure": spec.back_pressure,
                              "server_user_pct": round(cpu.fraction * 100, 1)}
    if load.returncode != 0 or not data:
        result["error"] = f"slowload exit {load.returncode}: {err.decode()[-300:]}"
    result.update(data)
    return result


def pause_cell(result: dict[str, Any]) -> str:
    """``none``: the server has no back-pressure; ``n/o``: it has, but does not report it."""
    if not result["back_pressure"]:
        return "none"
    pauses = result["pause_writing_events"]
    return "n/o" if pauses is None else str(pauses)


def footnotes(results: list[dict[str, Any]]) -> list[str]:
    """What ``none`` and ``n/o`` mean, for those that appear in this table."""
    cells = {pause_cell(result) for result in results}
    notes = []
    if "n/o" in cells:
        notes.append("pause_writing n/o: not observable from outside our server's process; "
                     "its RSS shows whether it buffered")
    if "none" in cells:
        notes.append("pause_writing none: no back-pressure at all (lean-echo): it blocks in "
                     "sendall while a slow reader's socket is full, and every other client "
                     "waits meanwhile; nothing is queued in user space, so its RSS stays flat")
    return notes


def render(results: list[dict[str, Any]]) -> str:
    rows = []
    for result in results:
        rows.append([
            result["server"] + (" FAILED" if "error" in result else ""),
            f"{result.get('echoed_mbps', 0):.2f}",
            f"{result.get('sent_mb', 0):.1f}",
            f"{result.get('most_outstanding_mb', 0):.1f}",
            f"{result['rss_before_kib'] / 1024:.1f}",
            f"{result['rss_peak_kib'] / 1024:.1f}",
            f"{(result['rss_peak_kib'] - result['rss_before_kib']) / 1024:.1f}",
            pause_cell(result),
            f"{result['server_user_pct']:.0f}",
        ])
    return table(["server", "echoed MB/s", "sent MB", "max in flight MB/conn", "RSS before MiB",
                  "RSS peak MiB", "growth MiB", "pause_writing", "srv user %"], rows)

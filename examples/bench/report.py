"""Turning runs into what a reader needs: medians, spreads, same-round ratios, tables, JSON.

Owns the statistics and the formatting; measures nothing.

Why medians and same-round ratios: servers are run interleaved (A B C, A B C, ...), so a slow
minute of the machine (another tenant, thermal limits, a noisy neighbour's cache) hits every
server of a round alike. The ratio of a server to asyncio *within* a round cancels that drift;
the median of those ratios over rounds then ignores one bad round. The min-max spread is shown so
that a difference smaller than the noise is seen to be one.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from examples.bench.load import RunResult
from examples.bench.measure import MIN_PRECISE_TICKS


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[index])) for row in [headers, *rows])
              for index in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(cell).ljust(width) if index == 0 else str(cell).rjust(width)
                         for index, (cell, width) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), line(["-" * width for width in widths]),
                      *(line(row) for row in rows)])


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def same_round_ratio(runs: Sequence[RunResult], baseline: Sequence[RunResult],
                     metric: Callable[[RunResult], float]) -> float | None:
    """Median over rounds of ``metric(this server) / metric(baseline)`` in the same round."""
    base_by_round = {run.round: metric(run) for run in baseline if run.ok and metric(run)}
    ratios = [metric(run) / base_by_round[run.round] for run in runs
              if run.ok and run.round in base_by_round]
    return statistics.median(ratios) if ratios else None


def summarise(runs: Sequence[RunResult], baseline: Sequence[RunResult] | None) -> dict[str, Any]:
    """One server in one cell: medians with spreads, and ratios to the baseline's same rounds."""
    good = [run for run in runs if run.ok]
    summary: dict[str, Any] = {"rounds_ok": len(good), "rounds": len(runs),
                               "errors": [run.error for run in runs if run.error]}
    if not good:
        return summary
    summary.update({
        "rps": spread([run.rps for run in good]),
        "mbps": statistics.median(run.mbps for run in good),
        "p50_ms": statistics.median(run.p50_ms for run in good),
        "p99_ms": statistics.median(run.p99_ms for run in good),
        "user_us_per_rt": spread([run.user_us_per_rt for run in good]),
        "server_user_pct": statistics.median(run.server_user_pct for run in good),
        "load_cpu_pct": statistics.median(run.load_cpu_pct for run in good),
        "load_bound": any(run.load_bound for run in good),
        "coarse": any(run.coarse for run in good),
    })
    if baseline is not None:
        summary["user_us_ratio"] = same_round_ratio(runs, baseline, lambda run: run.user_us_per_rt)
        summary["rps_ratio"] = same_round_ratio(runs, baseline, lambda run: run.rps)
    return summary


def rate(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def with_spread(stats: dict[str, float], show: Callable[[float], str]) -> str:
    return f"{show(stats['median'])} ({show(stats['min'])}-{show(stats['max'])})"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


THROUGHPUT_HEADERS = ("server", "req/s (min-max)", "MB/s", "p50 ms", "p99 ms",
                      "user us/RT (min-max)", "us/RT vs base", "req/s vs base", "srv user %")
THROUGHPUT_FOOTNOTES = (
    "*  after req/s: the load generator used >= 95 % of its core, so req/s is the client's "
    "limit there; user us/RT is still the server's",
    f"~  after user us/RT: some window held fewer than {MIN_PRECISE_TICKS} clock ticks of server "
    "user CPU, so tick granularity alone is worth more than +-2 %; use a longer --seconds",
)


def throughput_row(name: str, summary: dict[str, Any]) -> list[str]:
    if not summary.get("rounds_ok"):
        return [name, "FAILED (below)", *[""] * 7]
    bound = "*" if summary["load_bound"] else ""
    return [
        name,
        with_spread(summary["rps"], rate) + bound,
        f"{summary['mbps']:.1f}",
        f"{summary['p50_ms']:.3f}",
        f"{summary['p99_ms']:.3f}",
        with_spread(summary["user_us_per_rt"], lambda value: f"{value:.2f}")
        + ("~" if summary["coarse"] else ""),
        ratio(summary.get("user_us_ratio")),
        ratio(summary.get("rps_ratio")),
        f"{summary['server_user_pct']:.0f}",
    ]


def update_json(path: Path, section: str, data: Any) -> None:
    """Replace one section of the results file, keeping the others (each subcommand owns one),
    so ``--quick``, ``memory`` and ``passes`` run one after another fill one file."""
    try:
        document = json.loads(path.read_text())
        if not isinstance(document, dict):
            document = {}
    except (OSError, ValueError):
        document = {}
    document[section] = {"written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **data}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")

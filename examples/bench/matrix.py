"""The throughput matrix: every cell, every server of its kind, interleaved rounds.

Owns the order of runs. Why interleave (A B C, A B C, ...) rather than all of A, then B: the
machine drifts over minutes (frequency scaling, other tenants, page cache), and a server measured
in one block would carry that drift as if it were its own. Interleaved, every round sees every
server under the same conditions, and ``report.same_round_ratio`` compares within the round.

Each cell starts its servers afresh (all of a kind at once; the idle ones sleep in ``select`` on
the server core and cost nothing) and stops them after its rounds, so one cell's heap history
does not carry into the next.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import Any

from examples.bench import redis_check
from examples.bench.load import Cell, LoadGenerators, RunResult, measure_run
from examples.bench.report import (
    THROUGHPUT_HEADERS,
    rate,
    ratio,
    same_round_ratio,
    summarise,
    table,
    throughput_row,
)
from examples.bench.servers import BASELINES, VARIANT, LaunchOptions, ServerProcess, ServerSpec
from protocols.chat import MAX_LINE_BYTES as CHAT_MAX_LINE_BYTES
from protocols.line import LineProtocol

#: The longest message each kind can carry: a line (delimiter included) within the servers'
#: line limit. An echo server takes any size.
MAX_MESSAGE_BYTES = {"line": LineProtocol.max_line_length + 1, "chat": CHAT_MAX_LINE_BYTES + 1}
#: Seconds each run spends outside its warm-up and window (start-up, connect, exit).
RUN_OVERHEAD_SECONDS = 0.3


@dataclass
class CellResult:
    cell: Cell
    servers: list[str]
    runs: list[RunResult] = field(default_factory=list)

    def runs_of(self, name: str) -> list[RunResult]:
        return [run for run in self.runs if run.server == name]

    def summaries(self) -> dict[str, dict[str, Any]]:
        baseline_name = BASELINES.get(self.cell.kind)
        baseline = self.runs_of(baseline_name) if baseline_name in self.servers else None
        return {name: summarise(self.runs_of(name), baseline) for name in self.servers}

    def render(self, rounds: int) -> str:
        baseline = BASELINES.get(self.cell.kind)
        title = f"{self.cell.label()}   ({rounds} rounds; median (min-max)"
        if baseline in self.servers:
            short = baseline.split("-")[0]
            title += f"; 'vs {short}': median of same-round ratios to {baseline})"
        else:
            short = "-"
            title += "; no baseline to compare with)"
        headers = [header.replace("base", short) for header in THROUGHPUT_HEADERS]
        rows = [throughput_row(name, summary) for name, summary in self.summaries().items()]
        return "\n".join([title, table(headers, rows), *self.worker_comparisons(),
                          *self.failures()])

    def failures(self) -> list[str]:
        return [f"  {run.server} round {run.round} failed: "
                + " | ".join((run.error or "").splitlines())[:300]
                for run in self.runs if not run.ok]

    def worker_comparisons(self) -> list[str]:
        """``echo-2w`` against ``echo`` in the same rounds: what the second process bought."""
        lines = []
        for name in self.servers:
            match = VARIANT.fullmatch(name)
            if match and match["base"] in self.servers:
                one = self.runs_of(match["base"])
                many = self.runs_of(name)
                rps = same_round_ratio(many, one, lambda run: run.rps)
                cpu = same_round_ratio(many, one, lambda run: run.user_us_per_rt)
                lines.append(f"  {match['workers']} workers vs 1 ({name} / {match['base']}, "
                             f"same-round medians): req/s {ratio(rps)}, user us/RT {ratio(cpu)}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {"cell": asdict(self.cell), "summaries": self.summaries(),
                "runs": [asdict(run) for run in self.runs]}


def plan_cells(kinds: Sequence[str], sizes: Sequence[int], conns: Sequence[int],
               pipelines: Sequence[int]) -> tuple[list[Cell], list[str]]:
    """The cells to run, and a note for each size a kind cannot carry."""
    cells: list[Cell] = []
    notes: list[str] = []
    for kind in kinds:
        limit = MAX_MESSAGE_BYTES.get(kind)
        for size in sizes:
            if limit is not None and size > limit:
                notes.append(f"{kind}: {size}-byte messages skipped: n/a, longer than the "
                             f"servers' line limit ({limit - 1} bytes + delimiter)")
                continue
            cells += [Cell(kind, size, count, depth) for count in conns for depth in pipelines]
    return cells, notes


def estimate_seconds(cells: Sequence[Cell], specs: Sequence[ServerSpec], rounds: int,
                     warmup: float, seconds: float) -> float:
    runs = sum(rounds * sum(spec.kind == cell.kind for spec in specs) for cell in cells)
    return runs * (warmup + seconds + RUN_OVERHEAD_SECONDS)


def run_matrix(cells: Sequence[Cell], specs: Sequence[ServerSpec], options: LaunchOptions,
               loads: LoadGenerators, rounds: int, warmup: float,
               seconds: float) -> tuple[list[CellResult], dict[str, str]]:
    """Every cell's interleaved rounds; also one redis-benchmark check per server (with the
    servers of its first cell), returned as ``{server: verdict}``."""
    results: list[CellResult] = []
    redis: dict[str, str] = {}
    total = sum(rounds * sum(spec.kind == cell.kind for spec in specs) for cell in cells)
    done = 0
    for cell in cells:
        kind_specs = [spec for spec in specs if spec.kind == cell.kind]
        if not kind_specs:
            continue
        result = CellResult(cell, [spec.name for spec in kind_specs])
        results.append(result)
        with ExitStack() as stack:
            servers = [start(stack, spec, options) for spec in kind_specs]
            for round_number in range(1, rounds + 1):
                for spec, server in zip(kind_specs, servers):
                    done += 1
                    run = run_one(spec, server, cell, loads, options, warmup, seconds,
                                  round_number)
                    result.runs.append(run)
                    progress(done, total, cell, run)
            for server in servers:
                if isinstance(server, ServerProcess) and cell.kind in ("echo", "line") \
                        and server.spec.name not in redis and redis_check.available() \
                        and server.alive():
                    redis[server.spec.name] = redis_check.check(cell.kind, server.host,
                                                                server.port, options.cpus)
    return results, redis


def start(stack: ExitStack, spec: ServerSpec, options: LaunchOptions) -> ServerProcess | str:
    """A running server, or why it would not start (its runs then fail; the others go on)."""
    try:
        return stack.enter_context(ServerProcess(spec, options))
    except RuntimeError as exc:
        return str(exc)


def run_one(spec: ServerSpec, server: ServerProcess | str, cell: Cell, loads: LoadGenerators,
            options: LaunchOptions, warmup: float, seconds: float,
            round_number: int) -> RunResult:
    if isinstance(server, str):
        return RunResult(spec.name, round_number, ok=False, error=f"did not start: {server}")
    if not server.alive():
        return RunResult(spec.name, round_number, ok=False,
                         error=f"server exited: {server.stop().strip()[-300:]}")
    return measure_run(server, cell, loads, options.cpus, warmup, seconds, round_number)


def progress(done: int, total: int, cell: Cell, run: RunResult) -> None:
    if run.ok:
        figures = (f"{rate(run.rps)} req/s, {run.user_us_per_rt:.2f} user us/RT, "
                   f"load CPU {run.load_cpu_pct:.0f}%")
    else:
        figures = f"FAILED: {(run.error or '').splitlines()[0][:100]}"
    print(f"[{done}/{total}] {cell.label()} round {run.round} {run.server}: {figures}",
          file=sys.stderr, flush=True)

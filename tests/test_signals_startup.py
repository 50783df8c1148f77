"""A stop signal at any instant of a server's start-up ends it with status 0 and no traceback.

Each example kind (TCP echo, UDP echo, echo with ``--workers 2``, echo on ``--unix``) is started
many times and sent SIGINT or SIGTERM after a random 0 to 200 ms: before the ``listening on``
line, during the imports, while binding, while the reactor's handlers are installed, during the
first pass, or while serving. Several run at once, so the test stays short and the machine is
busy, as a supervisor's machine is.

The child starts with SIGINT and SIGTERM blocked, the way a careful supervisor forks: a signal
that lands during the interpreter's own start-up, before the program's first line can install a
handler, then waits pending instead of meeting the kernel's default action, which no program can
change (``examples/early_signals.py``). The program unblocks them itself.

``python tests/test_signals_startup.py 200 [--unblocked]`` runs the long version by hand.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

RUNS_PER_KIND = 25
AT_ONCE = 6
EXIT_DEADLINE_SECONDS = 3.0
MAX_DELAY_SECONDS = 0.2
#: By hand only (``--unblocked``): start the child with the signals unblocked, to count the
#: runs a signal hits during the interpreter's own start-up.
UNBLOCKED = "--unblocked" in sys.argv

KINDS = {
    "tcp": ["echo_server"],
    "udp": ["udp_echo_server"],
    "workers": ["echo_server", "--workers", "2"],
    "unix": ["echo_server", "--unix", "{path}"],
}


def block_stop_signals() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def one_run(kind: str, index: int, rng: random.Random, scratch: str) -> str | None:
    """Start, signal after a random delay, wait; a description of what went wrong, or None."""
    argv = [word.format(path=os.path.join(scratch, f"s{index}.sock")) for word in KINDS[kind]]
    signum = rng.choice([signal.SIGINT, signal.SIGTERM])
    delay = rng.uniform(0.0, MAX_DELAY_SECONDS)
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", f"examples.{argv[0]}", *argv[1:]], cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            preexec_fn=None if UNBLOCKED else block_stop_signals)
        try:
            time.sleep(delay)
            process.send_signal(signum)
            status = process.wait(EXIT_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            status = None
        stderr.seek(0)
        text = stderr.read().decode("utf-8", "replace")
    what = f"{kind} {signal.Signals(signum).name} after {delay * 1000:.0f} ms"
    if status is None:
        return f"{what}: still running after {EXIT_DEADLINE_SECONDS}s; stderr: {text[-500:]}"
    if status != 0 or "Traceback" in text:
        return f"{what}: exit status {status}; stderr: {text[-800:]}"
    return None


def run_kind(kind: str, runs: int, seed: int) -> list[str]:
    """``runs`` starts of ``kind``, ``AT_ONCE`` at a time; returns the failures."""
    from concurrent.futures import ThreadPoolExecutor

    rngs = [random.Random(seed * 100_000 + index) for index in range(runs)]
    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(AT_ONCE) as pool:
        results = pool.map(lambda index: one_run(kind, index, rngs[index], scratch),
                           range(runs))
        return [failure for failure in results if failure is not None]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_stop_signal_at_a_random_instant_of_start_up_exits_0_without_traceback(
        kind: str) -> None:
    failures = run_kind(kind, RUNS_PER_KIND, seed=sorted(KINDS).index(kind))
    assert not failures, f"{len(failures)} of {RUNS_PER_KIND} runs failed:\n" + "\n".join(
        failures[:5])


if __name__ == "__main__":
    numbers = [word for word in sys.argv[1:] if word.isdigit()]
    runs = int(numbers[0]) if numbers else 200
    for name in sorted(KINDS):
        started = time.monotonic()
        failed = run_kind(name, runs, seed=1000 + sorted(KINDS).index(name))
        print(f"{name}: {runs - len(failed)}/{runs} exited 0 without traceback "
              f"({time.monotonic() - started:.1f}s)", flush=True)
        for failure in failed[:5]:
            print("   ", failure)

"""A family in a child process, with an outer deadline; one hang never hides the rest.

The child (``python -m tests.asyncio_suite.run FAMILY``) bounds each test itself (``guard``):
SIGALRM turns a slow test into a ``timeout`` result, and faulthandler ends the process when the
test still does not return. The child can also die on its own (a segfault in C code, an
``os._exit`` in a forked helper that went wrong). Either way the last ``start`` line has no
``end``: that test is recorded as ``timeout`` (faulthandler's "Timeout (h:mm:ss)!" is on stderr)
or ``crashed``, and a new child starts with ``--start-after`` it, so the tests behind it still
run. A new child is started only after one that made progress, so this always ends.

The outer deadline covers what the child's own limits cannot: a child stuck before its first
test (an import that blocks), or in a C call that SIGALRM does not interrupt and faulthandler's
thread cannot end. Past it the child's process group is killed and the tests not yet run are
recorded as ``not run``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

from tests.asyncio_suite.loops import ENVIRONMENT_VARIABLE, chosen_loop_name
from tests.asyncio_suite.run import TEST_TIME_LIMIT_SECONDS
from tests.processes import REPO_ROOT, LineReader

#: A family's whole run, every child included. The slowest family (ssl) takes about 15 s on a
#: quiet machine; the deadline leaves room for a loaded one and for a few hung tests.
FAMILY_DEADLINE_SECONDS = 300.0
#: How long a child may take to exit once it reported ``done`` (atexit, thread joins).
EXIT_GRACE_SECONDS = 10.0
#: Characters of the child's stderr kept with a crashed or timed-out test.
STDERR_TAIL_CHARS = 3000
#: What faulthandler.dump_traceback_later writes first when it ends the process.
FAULTHANDLER_TIMEOUT_MARK = "Timeout ("

#: How the child is started after the interpreter's path: the family runner of this package.
RUNNER = ("-m", "tests.asyncio_suite.run")

#: Outcomes that count as a failure of the test (``passed`` and ``skipped`` do not).
FAILED_OUTCOMES = ("failed", "error", "timeout", "crashed", "not run")


@dataclass(frozen=True)
class Outcome:
    id: str
    outcome: str
    seconds: float
    detail: str

    @property
    def failed(self) -> bool:
        return self.outcome in FAILED_OUTCOMES


@dataclass
class FamilyRun:
    """Every test of one family on one Python and one loop, and how each ended.

    ``ids`` is the first child's plan; ``outcomes`` may also hold ids that are not tests (a
    ``Class.setUpClass`` that failed), so a broken fixture is never silent."""

    family: str
    python: str
    loop: str
    python_version: str = ""
    ids: list[str] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    children: int = 0
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def record(self, test: str, outcome: str, detail: str, seconds: float = 0.0) -> None:
        self.outcomes[test] = Outcome(test, outcome, seconds, detail)

    def not_yet_run(self) -> list[str]:
        return [test for test in self.ids if test not in self.outcomes]


def child_command(python: str, runner: Sequence[str], family: str, start_after: str | None,
                  time_limit: float) -> list[str]:
    command = [python, *runner, family, "--time-limit", f"{time_limit:g}"]
    return command + (["--start-after", start_after] if start_after else [])


def child_environment(loop: str) -> dict[str, str]:
    """This environment, with the repository importable and the loop named. PYTHONPATH is
    replaced, not extended: another interpreter must not import this one's packages."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONDONTWRITEBYTECODE="1")
    env[ENVIRONMENT_VARIABLE] = loop
    return env


class _Child:
    """One child process: stdout read as JSON lines, stderr kept in a file (a full stderr pipe
    would block the child while we wait for its stdout)."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: str) -> None:
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        # Its own session and process group: on the deadline we kill the child and anything it
        # started (a test's server subprocess), and nothing else.
        self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._stderr,
                                     start_new_session=True)
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        self.stdout = LineReader(fd, lambda size: os.read(fd, size), "asyncio suite child")

    def next_event(self, deadline: float) -> dict[str, Any] | None:
        """The next JSON line as a dict; None at EOF; TimeoutError past the deadline. A line
        that is not JSON (nothing should write one) is skipped."""
        while True:
            try:
                line = self.stdout.read_line_or_eof(max(0.0, deadline - time.monotonic()))
            except AssertionError as exc:  # LineReader's way to say deadline (or torn line)
                if time.monotonic() >= deadline:
                    raise TimeoutError(str(exc)) from None
                return None
            if not line:
                return None
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                return event

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def stderr_tail(self) -> str:
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - 4 * STDERR_TAIL_CHARS))
        return self._stderr.read().decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]

    def close(self) -> None:
        self.kill()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()


def _exit_description(status: int | None) -> str:
    if status is None:
        return "still running"
    if status < 0:
        return f"killed by {signal.Signals(-status).name}"
    return f"exit status {status}"


def _run_child(run: FamilyRun, runner: Sequence[str], start_after: str | None,
               deadline: float, time_limit: float, cwd: str) -> str | None:
    """One child from ``start_after`` on; returns the id to restart after, or None when the
    family is finished (or cannot go on)."""
    child = _Child(child_command(run.python, runner, run.family, start_after, time_limit),
                   child_environment(run.loop), cwd)
    run.children += 1
    current: str | None = None
    last_ended: str | None = None
    done = False
    try:
        try:
            while (event := child.next_event(deadline)) is not None:
                kind = event.get("event")
                if kind == "plan" and not run.ids:
                    run.ids = list(event["ids"])
                    run.python_version = str(event["python"])
                elif kind == "start":
                    current = str(event["id"])
                elif kind == "end":
                    run.record(str(event["id"]), str(event["outcome"]), str(event["detail"]),
                               float(event["seconds"]))
                    if event["id"] == current:
                        last_ended, current = current, None
                elif kind == "done":
                    done = True
        except TimeoutError:
            child.kill()
            why = f"the family's outer deadline passed ({_describe_deadline(run)})"
            if current is not None:
                run.record(current, "timeout", f"{why}\n{child.stderr_tail()}")
            for test in run.not_yet_run():
                run.record(test, "not run", why)
            run.notes.append(why)
            return None
        status = child.wait(EXIT_GRACE_SECONDS if done else max(0.0, deadline - time.monotonic()))
        if status is None:
            run.notes.append(f"a child did not exit within {EXIT_GRACE_SECONDS:g} s of its last "
                             "test; killed")
            child.kill()
        stderr = child.stderr_tail()
        if current is not None:
            hung = FAULTHANDLER_TIMEOUT_MARK in stderr
            run.record(current, "timeout" if hung else "crashed",
                       f"the child ended during the test ({_exit_description(status)}); "
                       f"its stderr ends:\n{stderr}")
            return current
        if done:
            # Planned tests that never started: their class's setUpClass failed (recorded).
            for test in run.not_yet_run():
                run.record(test, "not run", "never started (see the class fixture's error)")
            return None
        if not run.ids:
            run.notes.append(f"the child reported no plan ({_exit_description(status)}); "
                             f"its stderr ends:\n{stderr}")
            return None
        if last_ended is not None and run.not_yet_run():
            run.notes.append(f"a child ended between tests after {last_ended} "
                             f"({_exit_description(status)})")
            return last_ended
        for test in run.not_yet_run():
            run.record(test, "crashed", f"the child ended before this test "
                                        f"({_exit_description(status)}):\n{stderr}")
        return None
    finally:
        child.close()


def _describe_deadline(run: FamilyRun) -> str:
    return f"{run.family} on {run.loop}, {run.children} child process(es)"


def supervise(family: str, *, python: str = sys.executable, loop: str | None = None,
              deadline_seconds: float = FAMILY_DEADLINE_SECONDS,
              time_limit: float = TEST_TIME_LIMIT_SECONDS,
              runner: Sequence[str] = RUNNER) -> FamilyRun:
    """Run ``family`` with ``python`` on ``loop`` (default: ``REACTOR_AIO_LOOP``'s choice) in as
    many child processes as it takes, and return every test's outcome. ``runner`` replaces
    the family runner (the supervisor's own tests give a scripted child)."""
    run = FamilyRun(family, python, loop or chosen_loop_name())
    started = time.monotonic()
    deadline = started + deadline_seconds
    start_after: str | None = None
    # CPython's tests write their scratch files (``test.support.os_helper.TESTFN``, such as
    # test_sendfile's 256 KiB "@test_<pid>_tmp\u00e6") into the current directory and remove
    # them in tearDown: a child killed mid-test leaves them behind. So the children run in a
    # directory of their own, removed with whatever is left in it, as regrtest's temp_cwd does.
    with tempfile.TemporaryDirectory(prefix=f"asyncio-suite-{family}-",
                                     ignore_cleanup_errors=True) as cwd:
        while True:
            restart_after = _run_child(run, runner, start_after, deadline, time_limit, cwd)
            if restart_after is None:
                break
            start_after = restart_after
    run.wall_seconds = round(time.monotonic() - started, 2)
    return run


def supervise_families(families: Sequence[str], *, python: str = sys.executable,
                       loop: str | None = None, jobs: int = 1) -> list[FamilyRun]:
    """``supervise`` each family, ``jobs`` at a time; the runs in the order given."""
    if jobs <= 1:
        return [supervise(family, python=python, loop=loop) for family in families]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda family: supervise(family, python=python, loop=loop),
                             families))

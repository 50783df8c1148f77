"""CPython's own asyncio tests (``test.test_asyncio``) on our loop, on every Python found here.

One pytest test per (Python, family): it passes when every test of the family passed on
``reactor.aio``'s loop except the entries of ``tests/asyncio_suite/expected_failures.py``, and
every one of those did fail (a stale entry fails too, so the list stays true). Each family runs
in child processes under ``tests/asyncio_suite/supervise.py``, which bounds every test and
restarts after a hang.

The Pythons: this one, and 3.12 and 3.13 where installed (``python3.12`` on PATH, or a pyenv
build). A Python without ``test.test_asyncio`` (Debian's python3 ships it separately) is
skipped, saying so. The families mostly wait on sockets and timers rather than compute, so they
run two at a time in the background, started when the first of these tests asks: each test then
waits only for its own family. The end of the run prints "passed X of Y ran" per family.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache

import pytest

from tests.asyncio_suite.families import FAMILY_NAMES
from tests.asyncio_suite.supervise import FamilyRun, supervise
from tests.asyncio_suite.tally import Tally

THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
#: Other versions run where they are installed; the list is (this one first, then) these.
OTHER_PYTHONS = ("3.12", "3.13")
PYTHONS = tuple(dict.fromkeys((THIS_PYTHON, *OTHER_PYTHONS)))

#: Slowest first (measured on asyncio's loop and ours: ssl ~9 s, taskgroups ~6 s, sslproto
#: ~4 s, subprocess ~3 s, events ~2 s, the rest ~1 s or less), so the two background workers
#: finish together.
FAMILIES = ("ssl", "taskgroups", "sslproto", "subprocess", "events", "waitfor", "locks",
            "streams", "sock_lowlevel", "timeouts", "sendfile", "queues", "server",
            "buffered_proto")
assert sorted(FAMILIES) == sorted(FAMILY_NAMES), "every family, once"

#: Families running at once. Two keeps a 2-core machine (shared with other work) responsive.
BACKGROUND_JOBS = 2
#: One family's whole run, every restart included (a quiet run takes 0.1 to 10 s).
FAMILY_DEADLINE_SECONDS = 240.0
#: The pytest bound: the family's deadline, plus start-up and cleanup on a loaded machine.
TEST_TIMEOUT_SECONDS = int(FAMILY_DEADLINE_SECONDS) + 60
#: How long finding an interpreter may take (a pyenv shim prints an error and exits quickly).
PROBE_TIMEOUT_SECONDS = 20.0

PROBE = "import sys, test.test_asyncio; print(sys.version_info.major, sys.version_info.minor)"


@cache
def find_interpreter(version: str) -> tuple[str | None, str]:
    """(path, "") of a Python ``version`` with ``test.test_asyncio``, or (None, why not)."""
    if version == THIS_PYTHON:
        candidates = [sys.executable]
    else:
        on_path = shutil.which(f"python{version}")
        pyenv = os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python")
        candidates = ([on_path] if on_path else []) + sorted(glob.glob(pyenv))
    missing_tests: list[str] = []
    for candidate in candidates:
        try:
            probe = subprocess.run([candidate, "-c", PROBE], capture_output=True, text=True,
                                   timeout=PROBE_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and probe.stdout.split() == version.split("."):
            return candidate, ""
        if "No module named 'test" in probe.stderr:
            missing_tests.append(candidate)
    if missing_tests:
        return None, (f"{', '.join(missing_tests)} has no test.test_asyncio (Debian ships it "
                      "separately, as libpython3.X-testsuite)")
    # A pyenv shim for a version that is installed but not active exits 127: not found either.
    return None, f"no Python {version} here (python{version} on PATH or ~/.pyenv/versions)"


def interpreter(version: str) -> str:
    """The path of a Python ``version`` with ``test.test_asyncio``, or pytest.skip saying why."""
    path, why_not = find_interpreter(version)
    if path is None:
        pytest.skip(why_not)
    return path


class BackgroundRuns:
    """Every selected (Python, family) supervised on our loop, ``BACKGROUND_JOBS`` at a time, in
    the order pytest will ask for them: when a test waits for its family, the ones before it
    are done, so its wait is bounded by its own family's deadline."""

    def __init__(self, selected: list[tuple[str, str]]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=BACKGROUND_JOBS)
        self._selected = selected
        self._futures: dict[tuple[str, str], Future[FamilyRun]] = {}
        self.tallies: list[Tally] = []

    def result(self, version: str, family: str) -> FamilyRun:
        python = interpreter(version)  # skips this test if there is no such Python
        if not self._futures:
            for key in self._selected:
                path, _ = find_interpreter(key[0])
                if path is not None:  # else that test skips itself
                    self._futures[key] = self._pool.submit(_supervise, path, key[1])
        future = self._futures.get((version, family))
        if future is None:  # not in the selection pytest collected (run directly): run now
            future = self._futures[(version, family)] = self._pool.submit(
                _supervise, python, family)
        return future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _supervise(python: str, family: str) -> FamilyRun:
    return supervise(family, python=python, loop="reactor",
                     deadline_seconds=FAMILY_DEADLINE_SECONDS)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest) -> Iterator[BackgroundRuns]:
    selected = [(item.callspec.params["version"], item.callspec.params["family"])
                for item in request.session.items
                if getattr(item, "module", None) is sys.modules[__name__]
                and hasattr(item, "callspec")]
    background = BackgroundRuns(selected)
    try:
        yield background
    finally:
        background.close()
        _report(request.config, background.tallies)


def _report(config: pytest.Config, tallies: list[Tally]) -> None:
    """Print each family's line and each Python's total on the terminal, past pytest's output
    capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not tallies:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_sep("-", "CPython test.test_asyncio on reactor.aio")
        for tally in tallies:
            reporter.write_line(_line(tally))
        for version in dict.fromkeys(tally.run.python_version for tally in tallies):
            mine = [tally for tally in tallies if tally.run.python_version == version]
            passed = sum(len(tally.passed) for tally in mine)
            expected = sum(len(tally.expected) for tally in mine)
            reporter.write_line(f"Python {version}, {len(mine)} families: {passed} passed out "
                                f"of {sum(tally.ran for tally in mine)} ran "
                                f"({expected} expected failures)")


def _line(tally: Tally) -> str:
    run = tally.run
    return (f"Python {run.python_version} {tally.summary()}  "
            f"[{run.wall_seconds:.1f} s, {run.children} process(es)]")


@pytest.mark.timeout(TEST_TIMEOUT_SECONDS)
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("version", PYTHONS)
def test_family_passes_on_our_loop_except_the_expected_failures(
        runs: BackgroundRuns, version: str, family: str) -> None:
    run = runs.result(version, family)
    tally = Tally.of(run)
    runs.tallies.append(tally)
    assert run.python_version.startswith(f"{version}."), run.notes
    assert tally.ok, f"{_line(tally)}\n{tally.problems()}"

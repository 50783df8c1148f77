"""The harness around CPython's asyncio tests: a crash or hang never hides the tests after it,
the outer deadline ends a stuck child, and the tally keeps the expected-failure list true.

The supervisor's child here is a scripted stand-in for ``tests.asyncio_suite.run``: it speaks
the same JSON lines and does, per test, what the test's name says (pass, fail, crash by SIGKILL,
hang as faulthandler ends it, stall past the outer deadline, print a line that is not JSON).
"""

from __future__ import annotations

import sys
import time
import unittest.suite
from pathlib import Path

import pytest

from tests.asyncio_suite.run import result_name
from tests.asyncio_suite.supervise import FamilyRun, Outcome, supervise
from tests.asyncio_suite.tally import Tally
from tests.processes import REPO_ROOT

SCRIPTED_CHILD = r'''
import json, os, signal, sys, time

args = sys.argv[1:]
ids = [f"fake.Tests.test_{i}_{does}" for i, does in enumerate(args[0].split(","))]
if "--start-after" in args:
    ids = ids[ids.index(args[args.index("--start-after") + 1]) + 1:]

def emit(**fields):
    print(json.dumps(fields), flush=True)

emit(event="plan", family="fake", loop="fake", python="3.99.0", ids=ids)
for test in ids:
    does = test.rsplit("_", 1)[1]
    emit(event="start", id=test)
    if does == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if does == "hang":  # what faulthandler.dump_traceback_later(exit=True) leaves
        sys.stderr.write("Timeout (0:00:40)!\nThread 0x01 (most recent call first):\n")
        sys.stderr.flush()
        os._exit(1)
    if does == "stall":
        time.sleep(60)
    if does == "noise":
        print("a test printed this", flush=True)
    detail = ""
    if does == "litter":  # what a CPython test killed before its tearDown leaves behind
        with open(f"@test_{os.getpid()}_tmp", "wb") as scratch:
            scratch.write(b"x" * 1024)
        detail = os.getcwd()
    emit(event="end", id=test, outcome="failed" if does == "fail" else "passed",
         seconds=0.0, detail=detail)
emit(event="done", ran=len(ids))
'''


@pytest.fixture
def scripted_child(tmp_path: Path) -> tuple[str, ...]:
    script = tmp_path / "scripted_child.py"
    script.write_text(SCRIPTED_CHILD)
    return (str(script),)


def outcomes(run: FamilyRun) -> list[str]:
    return [run.outcomes[test].outcome for test in run.ids]


@pytest.mark.timeout(30)
def test_a_crash_and_a_hang_are_recorded_and_the_tests_after_them_still_run(
        scripted_child: tuple[str, ...]) -> None:
    run = supervise("pass,crash,noise,fail,hang,pass", python=sys.executable, loop="fake",
                    runner=scripted_child, deadline_seconds=20)
    assert outcomes(run) == ["passed", "crashed", "passed", "failed", "timeout", "passed"]
    assert run.children == 3  # the first, one after the crash, one after the hang
    assert "killed by SIGKILL" in run.outcomes["fake.Tests.test_1_crash"].detail
    assert "Timeout (0:00:40)!" in run.outcomes["fake.Tests.test_4_hang"].detail
    assert run.python_version == "3.99.0"


@pytest.mark.timeout(30)
def test_the_outer_deadline_ends_a_stalled_child_and_the_rest_is_not_run(
        scripted_child: tuple[str, ...]) -> None:
    started = time.monotonic()
    run = supervise("pass,stall,pass", python=sys.executable, loop="fake",
                    runner=scripted_child, deadline_seconds=2)
    assert time.monotonic() - started < 10
    assert outcomes(run) == ["passed", "timeout", "not run"]
    assert any("outer deadline" in note for note in run.notes)


@pytest.mark.timeout(30)
def test_the_children_run_in_a_scratch_directory_removed_with_what_they_left(
        scripted_child: tuple[str, ...]) -> None:
    run = supervise("litter,crash", python=sys.executable, loop="fake",
                    runner=scripted_child, deadline_seconds=20)
    assert outcomes(run) == ["passed", "crashed"]
    scratch = Path(run.outcomes["fake.Tests.test_0_litter"].detail)
    assert scratch.is_absolute() and scratch != REPO_ROOT
    assert not scratch.exists()
    assert not list(REPO_ROOT.glob("@test_*"))


def family_run(loop: str, **outcome_of: str) -> FamilyRun:
    run = FamilyRun("events", sys.executable, loop, python_version="3.11.7")
    for name, outcome in outcome_of.items():
        test = f"events.EventLoopTests.{name}"
        run.ids.append(test)
        run.outcomes[test] = Outcome(test, outcome, 0.0, "detail")
    return run


def test_an_expected_failure_that_passes_is_stale() -> None:
    tally = Tally.of(family_run("reactor", test_call_soon="passed",
                                test_timeout_rounding="passed"))
    assert tally.stale == {"events.EventLoopTests.test_timeout_rounding": "passed"}
    assert not tally.ok
    assert "listed in expected_failures.py" in tally.problems()


def test_an_unlisted_failure_is_unexpected_and_a_listed_one_is_not() -> None:
    tally = Tally.of(family_run("reactor", test_call_soon="timeout",
                                test_timeout_rounding="error", test_close="skipped"))
    assert [outcome.id for outcome in tally.unexpected] == ["events.EventLoopTests.test_call_soon"]
    assert tally.expected == ["events.EventLoopTests.test_timeout_rounding"]
    assert (tally.ran, len(tally.skipped)) == (2, 1)
    assert tally.summary() == "events: passed 0 of 2 ran (1 expected failures), 1 UNEXPECTED"


def test_on_another_loop_no_failure_is_expected() -> None:
    tally = Tally.of(family_run("asyncio", test_call_soon="passed", test_timeout_rounding="error"))
    assert [outcome.id for outcome in tally.unexpected] == [
        "events.EventLoopTests.test_timeout_rounding"]
    assert not tally.stale


def test_a_failed_class_fixture_is_named_after_its_class() -> None:
    holder = unittest.suite._ErrorHolder(  # type: ignore[attr-defined]  # unittest's, private
        "setUpClass (tests.asyncio_suite.families.EventLoopTests)")  # how it names one
    assert result_name("events", holder) == "events.EventLoopTests.setUpClass"

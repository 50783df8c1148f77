"""Run one family in this process, or every family (each in its own child) as a table.

    python -m tests.asyncio_suite.run FAMILY [--start-after ID] [--time-limit SECONDS]
    python -m tests.asyncio_suite.run --table [--python PATH] [--jobs N] [FAMILY ...]

The first form is what ``supervise`` starts: the family's tests on the loop ``REACTOR_AIO_LOOP``
names, one JSON object per line on stdout (``guard``'s ``start``/``end`` lines, framed by a
``plan`` line listing every test id to run and a ``done`` line once the run is over). The tests'
own output would corrupt those lines, so the JSON goes to a copy of the original stdout and
file descriptor 1 is pointed at stderr before any test runs.

The second form supervises every family (or those named) and prints, per family, passed /
expected failures / ran, then the total "N passed out of M ran"; it exits 1 if a test failed
that is not an expected failure, or an expected failure did not fail.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import unittest
from collections.abc import Iterator, Sequence
from typing import IO

from tests.asyncio_suite.families import FAMILY_NAMES, bind_family, test_id
from tests.asyncio_suite.guard import JsonLinesResult, TimeLimit, write_event
from tests.asyncio_suite.loops import chosen_loop_name, choose_loop

#: The default time limit of one test. The stdlib's own tests finish in well under 2 s each on
#: asyncio's loop; their slowest (TLS handshakes over a loaded machine) take a few seconds.
TEST_TIME_LIMIT_SECONDS = 30.0

#: How unittest names a setUpClass/tearDownClass failure (an ``_ErrorHolder``, not a test):
#: ``setUpClass (tests.asyncio_suite.families.EventLoopTests)``.
_CLASS_FIXTURE_DESCRIPTION = re.compile(r"(?P<method>\w+) \((?P<where>[\w.]+)\)")


def family_tests(family: str) -> list[unittest.TestCase]:
    """Every test of the family on the chosen loop, in a fixed order (class, then method)."""
    loader = unittest.TestLoader()
    choice = choose_loop(chosen_loop_name())
    return [test for cls in bind_family(family, choice)
            for test in _flatten(loader.loadTestsFromTestCase(cls))]


def _flatten(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestCase):
        yield suite
        return
    for item in suite:
        yield from _flatten(item)


def tests_after(tests: list[unittest.TestCase], family: str,
                start_after: str | None) -> list[unittest.TestCase]:
    """The tests that come after ``start_after`` (all of them when it is None)."""
    if start_after is None:
        return tests
    ids = [test_id(family, test) for test in tests]
    if start_after not in ids:
        raise SystemExit(f"--start-after {start_after!r}: no such test in family {family}")
    return tests[ids.index(start_after) + 1:]


def result_name(family: str, test: unittest.TestCase) -> str:
    """The test's id; for a class fixture's failure, ``family.Class.setUpClass``."""
    if hasattr(test, "_testMethodName"):
        return test_id(family, test)
    match = _CLASS_FIXTURE_DESCRIPTION.fullmatch(str(test))
    if match is None:
        return f"{family}.{test}"
    return f"{family}.{match['where'].rpartition('.')[2]}.{match['method']}"


def run_family(family: str, start_after: str | None, time_limit: float,
               results: IO[str]) -> bool:
    """Run the family's tests, reporting to ``results``; True if every test passed."""
    tests = tests_after(family_tests(family), family, start_after)
    write_event(results, event="plan", family=family, loop=chosen_loop_name(),
                python=platform.python_version(), ids=[test_id(family, t) for t in tests])
    result = JsonLinesResult(results, lambda test: result_name(family, test),
                             TimeLimit(time_limit))
    result.startTestRun()
    try:
        # One flat suite: unittest runs setUpClass when the class changes from one test to the
        # next, and tearDownClass of the last class when the suite ends.
        unittest.TestSuite(tests).run(result)
    finally:
        result.stopTestRun()
    write_event(results, event="done", ran=result.testsRun)
    return result.wasSuccessful()


def _results_stream() -> IO[str]:
    """A copy of stdout for the JSON lines; fd 1 then goes to stderr, so nothing a test prints
    (with ``print`` or straight to fd 1 from C code) lands between two JSON lines."""
    results = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return results


def _print_table(pythons: Sequence[str], families: Sequence[str], jobs: int) -> bool:
    # Imported here: a family's child process never needs the supervisor.
    from tests.asyncio_suite.supervise import supervise_families
    from tests.asyncio_suite.tally import Tally, format_table

    ok = True
    for python in pythons:
        runs = supervise_families(families, python=python, jobs=jobs)
        tallies = [Tally.of(run) for run in runs]
        print(format_table(tallies), flush=True)
        ok = ok and all(tally.ok for tally in tallies)
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.asyncio_suite.run",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("families", nargs="*", metavar="FAMILY",
                        help=f"one of {', '.join(FAMILY_NAMES)} (with --table: any, default all)")
    parser.add_argument("--start-after", metavar="ID", help="skip the tests up to this id")
    parser.add_argument("--time-limit", type=float, default=TEST_TIME_LIMIT_SECONDS,
                        metavar="SECONDS", help="per test (default %(default)g)")
    parser.add_argument("--table", action="store_true",
                        help="supervise each family in a child process and print the table")
    parser.add_argument("--python", action="append", metavar="PATH",
                        help="with --table: the interpreter to run (repeatable; default this one)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="with --table: families run at once (default %(default)s)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.families if name not in FAMILY_NAMES]
    if unknown:
        parser.error(f"unknown family {unknown[0]!r}; the families are {', '.join(FAMILY_NAMES)}")
    if args.table:
        ok = _print_table(args.python or [sys.executable], args.families or FAMILY_NAMES,
                          args.jobs)
        return 0 if ok else 1
    if len(args.families) != 1:
        parser.error("name exactly one FAMILY (or use --table)")
    results = _results_stream()
    return 0 if run_family(args.families[0], args.start_after, args.time_limit, results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Each test bounded in time, and its result written as one JSON line the parent can parse.

A hung asyncio test usually sits in ``select()`` (inside ``run_until_complete``) or in a thread
``join()``. SIGALRM interrupts both in the main thread: when the handler raises, the exception
comes out of the blocking call (PEP 475 retries only when the handler returns), and unittest
records it as the test's error. The alarm repeats, because code under test may swallow the first
exception (``asyncio.Handle._run`` turns any exception in a callback into a call to the loop's
exception handler). If the test still does not finish, ``faulthandler`` dumps every thread's
stack to stderr and ends the process: the supervisor then records the test as timed out and
starts a new process for the tests after it.
"""

from __future__ import annotations

import faulthandler
import json
import signal
import sys
import time
import traceback
import unittest
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import IO, Any

#: What unittest passes to addError/addFailure (``sys.exc_info()``'s type, as typeshed spells it).
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]

#: Between two alarms once a test is over its time, for code that swallowed the first one.
REPEAT_ALARM_SECONDS = 2.0
#: After the first alarm, how long a test may still take before the process is ended.
HARD_LIMIT_GRACE_SECONDS = 10.0
#: Lines of a traceback kept in a result line (the end says where it failed).
DETAIL_LINES = 30


class TestTimedOut(Exception):
    """The test ran past its time limit (raised by SIGALRM in the main thread)."""


class TimeLimit:
    """Arms SIGALRM and faulthandler for one test at a time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._armed = False
        signal.signal(signal.SIGALRM, self._alarm)

    def _alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._armed:
            raise TestTimedOut(f"the test ran longer than {self.seconds:g} s")

    def arm(self) -> None:
        self._armed = True
        signal.setitimer(signal.ITIMER_REAL, self.seconds, REPEAT_ALARM_SECONDS)
        faulthandler.dump_traceback_later(self.seconds + HARD_LIMIT_GRACE_SECONDS, exit=True,
                                          file=sys.stderr)

    def disarm(self) -> None:
        self._armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()


def write_event(stream: IO[str], **fields: Any) -> None:
    stream.write(json.dumps(fields) + "\n")
    stream.flush()


class JsonLinesResult(unittest.TestResult):
    """One ``start`` line before each test and one ``end`` line after it, with the outcome:
    passed, failed, error, timeout or skipped. Subtest failures make the test failed; a
    stdlib ``expectedFailure`` that fails is a pass, one that passes is a failure."""

    def __init__(self, stream: IO[str], name_of: Callable[[unittest.TestCase], str],
                 limit: TimeLimit) -> None:
        super().__init__()
        self.stream = stream
        self.name_of = name_of
        self.limit = limit
        self._current: unittest.TestCase | None = None
        self._outcome = "passed"
        self._detail = ""
        self._started = 0.0

    def startTest(self, test: unittest.TestCase) -> None:  # noqa: N802 (unittest's names)
        super().startTest(test)
        self._current, self._outcome, self._detail = test, "passed", ""
        write_event(self.stream, event="start", id=self.name_of(test))
        self._started = time.monotonic()
        self.limit.arm()

    def stopTest(self, test: unittest.TestCase) -> None:  # noqa: N802
        self.limit.disarm()
        write_event(self.stream, event="end", id=self.name_of(test), outcome=self._outcome,
                    seconds=round(time.monotonic() - self._started, 3), detail=self._detail)
        self._current = None
        super().stopTest(test)

    def _record(self, test: unittest.TestCase, outcome: str, detail: str) -> None:
        if test is not self._current:
            # setUpClass/tearDownClass failures come without startTest (an _ErrorHolder).
            write_event(self.stream, event="end", id=f"{self.name_of(test)}",
                        outcome=outcome, seconds=0.0, detail=detail)
            return
        if self._outcome in ("passed", "skipped"):
            self._outcome, self._detail = outcome, detail
        else:
            self._detail += "\n" + detail

    def addError(self, test: unittest.TestCase, err: ExcInfo) -> None:  # noqa: N802
        super().addError(test, err)
        timed_out = err[0] is not None and issubclass(err[0], TestTimedOut)
        outcome = "timeout" if timed_out else "error"
        self._record(test, outcome, _format(err))

    def addFailure(self, test: unittest.TestCase, err: ExcInfo) -> None:  # noqa: N802
        super().addFailure(test, err)
        self._record(test, "failed", _format(err))

    def addSubTest(self, test: unittest.TestCase, subtest: unittest.TestCase,  # noqa: N802
                   err: ExcInfo | None) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = err[0] is not None and issubclass(err[0], test.failureException)
            self._record(test, "failed" if failed else "error", f"{subtest}: {_format(err)}")

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:  # noqa: N802
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:  # noqa: N802
        super().addUnexpectedSuccess(test)
        self._record(test, "failed", "marked expectedFailure in the stdlib, but passed")


def _format(err: ExcInfo) -> str:
    exc_type, exc, tb = err
    if exc_type is None:
        return ""
    lines = "".join(traceback.format_exception(exc_type, exc, tb)).rstrip().splitlines()
    return "\n".join(lines[-DETAIL_LINES:])

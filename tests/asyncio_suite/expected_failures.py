"""The one list of CPython asyncio tests our loop is allowed to fail, each with its reason.

An entry is a test id (``family.Class.test_method``, as ``families.test_id`` makes it) and a
one-line reason: a private asyncio internal the test pokes, a deliberate difference of our loop,
or a feature our loop does not provide. ``pythons`` limits an entry to the Python
versions where it applies (the stdlib tests differ between versions); empty means all.

The list must stay true both ways: a listed test that passes (or no longer exists, or is skipped)
fails ``tests/test_cpython_asyncio.py`` just as an unlisted failure does. A reason starting with
"BUG:" is a defect of ``reactor.aio`` found by this suite, listed until it is fixed.

The list applies to our loop only: on asyncio's own loop (the control run) every test passes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Expected:
    reason: str
    pythons: tuple[str, ...] = ()  # "3.12", ...; empty: every version

    def applies_to(self, python_version: str) -> bool:
        return not self.pythons or ".".join(python_version.split(".")[:2]) in self.pythons


EXPECTED_FAILURES: dict[str, Expected] = {
    "events.EventLoopTests.test_timeout_rounding": Expected(
        "reads loop._selector (for its failure message, before asserting), a private attribute "
        "of asyncio's selector loop: ours has a reactor, not a selector"),
}


def expected_failures(family: str, python_version: str) -> dict[str, str]:
    """{test id: reason} of the entries for ``family`` that apply on ``python_version``."""
    prefix = f"{family}."
    return {test: entry.reason for test, entry in EXPECTED_FAILURES.items()
            if test.startswith(prefix) and entry.applies_to(python_version)}

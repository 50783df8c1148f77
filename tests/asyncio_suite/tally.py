"""A family's outcomes counted against the expected-failure list, and the table they make.

* passed: the test passed; skipped: the stdlib test skipped itself (a missing feature of this
  machine, such as IPv6); every other outcome is a failure.
* ran = passed + failures (skips are not counted as run).
* expected: failures the list names; unexpected: failures it does not; stale: entries of the
  list (for this family and Python) whose test did not fail. The run is ok when there are no
  unexpected failures and no stale entries.

The list is ``reactor.aio``'s: a run on any other loop is counted against an empty list, so the
control run on asyncio's loop must pass every test.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.asyncio_suite.expected_failures import expected_failures
from tests.asyncio_suite.supervise import FamilyRun, Outcome

#: Lines of a failure's detail shown in a report (its end says where and why).
DETAIL_TAIL_LINES = 6


@dataclass(frozen=True)
class Tally:
    run: FamilyRun
    passed: list[str]
    skipped: list[str]
    expected: list[str]
    unexpected: list[Outcome]
    stale: dict[str, str]  # id -> what happened instead of the expected failure

    @classmethod
    def of(cls, run: FamilyRun) -> Tally:
        allowed = (expected_failures(run.family, run.python_version)
                   if run.loop == "reactor" else {})
        outcomes = run.outcomes.values()
        failures = [outcome for outcome in outcomes if outcome.failed]
        stale = {test: (run.outcomes[test].outcome if test in run.outcomes
                        else "not in this Python's family")
                 for test in allowed if test not in run.outcomes or not run.outcomes[test].failed}
        return cls(run,
                   passed=[o.id for o in outcomes if o.outcome == "passed"],
                   skipped=[o.id for o in outcomes if o.outcome == "skipped"],
                   expected=[o.id for o in failures if o.id in allowed],
                   unexpected=[o for o in failures if o.id not in allowed],
                   stale=stale)

    @property
    def ran(self) -> int:
        return len(self.passed) + len(self.expected) + len(self.unexpected)

    @property
    def ok(self) -> bool:
        return not self.unexpected and not self.stale and self.ran > 0

    def summary(self) -> str:
        """``events: passed 57 of 59 ran (2 expected failures)``, plus what is wrong if any."""
        line = (f"{self.run.family}: passed {len(self.passed)} of {self.ran} ran "
                f"({len(self.expected)} expected failures)")
        if self.unexpected:
            line += f", {len(self.unexpected)} UNEXPECTED"
        if self.stale:
            line += f", {len(self.stale)} STALE"
        return line

    def problems(self) -> str:
        """Every unexpected failure with the end of its detail, every stale entry, any note."""
        lines: list[str] = []
        for outcome in self.unexpected:
            lines.append(f"{outcome.id}: {outcome.outcome}")
            tail = outcome.detail.rstrip().splitlines()[-DETAIL_TAIL_LINES:]
            lines.extend(f"    {text}" for text in tail)
        for test, instead in self.stale.items():
            lines.append(f"{test}: listed in expected_failures.py, but {instead}")
        if self.ran == 0:
            lines.append(f"{self.run.family}: no test ran")
        lines.extend(f"note: {note}" for note in self.run.notes)
        return "\n".join(lines)


def format_table(tallies: list[Tally]) -> str:
    """One row per family, then the total line "N passed out of M ran"."""
    if not tallies:
        return "no family ran"
    first = tallies[0].run
    header = (f"CPython {first.python_version or '?'} test.test_asyncio on the {first.loop} loop "
              f"({first.python})")
    rows = [f"{'family':<16}{'passed':>8}{'expected':>10}{'unexpected':>12}{'stale':>7}"
            f"{'skipped':>9}{'ran':>6}{'seconds':>9}"]
    for tally in tallies:
        rows.append(f"{tally.run.family:<16}{len(tally.passed):>8}{len(tally.expected):>10}"
                    f"{len(tally.unexpected):>12}{len(tally.stale):>7}{len(tally.skipped):>9}"
                    f"{tally.ran:>6}{tally.run.wall_seconds:>9.1f}")
    passed = sum(len(tally.passed) for tally in tallies)
    ran = sum(tally.ran for tally in tallies)
    expected = sum(len(tally.expected) for tally in tallies)
    total = f"{passed} passed out of {ran} ran ({expected} expected failures)"
    problems = [tally.problems() for tally in tallies if tally.problems()]
    return "\n".join([header, *rows, total, *problems]) + "\n"

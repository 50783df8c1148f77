"""Debug mode on our asyncio loop, next to asyncio's own as the control: a callback that holds
the loop too long is logged as asyncio logs it, and an exception report names the handle and
where it was scheduled. (CPython's loop-parameterised families do not cover these: they are in
test_base_events, which tests asyncio's BaseEventLoop internals.)"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

import reactor.aio

LOOPS = [pytest.param(reactor.aio.new_event_loop, id="our-loop"),
         pytest.param(asyncio.new_event_loop, id="asyncio-loop")]
#: Far above the slow-callback threshold below, far below any test timeout.
SLOW_CALLBACK_SECONDS = 0.05


@pytest.mark.timeout(10)
@pytest.mark.parametrize("new_loop", LOOPS)
def test_debug_mode_logs_a_slow_callback_and_reports_where_a_failing_one_was_scheduled(
        new_loop: Callable[[], asyncio.AbstractEventLoop],
        caplog: pytest.LogCaptureFixture) -> None:
    reports: list[dict[str, Any]] = []

    def slow_callback() -> None:
        time.sleep(SLOW_CALLBACK_SECONDS)

    def failing_callback() -> None:
        raise ValueError("boom")

    loop = new_loop()
    try:
        loop.set_debug(True)
        loop.slow_callback_duration = SLOW_CALLBACK_SECONDS / 5
        loop.set_exception_handler(lambda _loop, context: reports.append(context))
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            loop.call_soon(slow_callback)
            loop.call_soon(failing_callback)
            loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()

    slow = [record.getMessage() for record in caplog.records
            if "slow_callback" in record.getMessage()]
    assert len(slow) == 1, caplog.text
    assert slow[0].startswith("Executing <Handle ") and " took " in slow[0], slow[0]
    assert float(slow[0].rsplit(" took ", 1)[1].split()[0]) >= SLOW_CALLBACK_SECONDS * 0.9

    assert len(reports) == 1, reports
    report = reports[0]
    assert isinstance(report["exception"], ValueError)
    assert "failing_callback" in repr(report["handle"])
    # Debug mode records where each handle was scheduled: this very test function.
    assert any(frame.name == ("test_debug_mode_logs_a_slow_callback_and_reports_where_a_"
                              "failing_one_was_scheduled")
               for frame in report["source_traceback"]), report["source_traceback"]

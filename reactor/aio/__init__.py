"""reactor.aio: asyncio programs, unchanged, on our reactor.

    import asyncio, reactor.aio
    reactor.aio.run(main())                       # like asyncio.run(main())
    asyncio.set_event_loop_policy(reactor.aio.EventLoopPolicy())   # or for every asyncio.run

    python -m reactor.aio --trace script.py ARGS  # any asyncio program, traced pass by pass

The reactor itself never imports asyncio; this package goes the other way and presents a
``Reactor`` as an asyncio loop (``reactor/aio/loop.py``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from reactor.aio.loop import ReactorEventLoop
from reactor.trace import Tracer

T = TypeVar("T")

__all__ = ["EventLoopPolicy", "ReactorEventLoop", "install", "new_event_loop", "run"]

#: The tracer every new loop gets unless it is given one: set by ``install``, which
#: ``python -m reactor.aio --trace`` calls, so a script's own ``reactor.aio.run()`` or
#: ``new_event_loop()`` is traced as well as its ``asyncio.run()``.
_default_tracer: Tracer | None = None


def new_event_loop(*, tracer: Tracer | None = None) -> ReactorEventLoop:
    return ReactorEventLoop(tracer=tracer if tracer is not None else _default_tracer)


def install(*, tracer: Tracer | None = None) -> None:
    """Make our loop the one every ``asyncio.run()``, ``asyncio.new_event_loop()`` and
    ``reactor.aio.new_event_loop()`` in this process creates, traced by ``tracer``."""
    global _default_tracer
    _default_tracer = tracer
    asyncio.set_event_loop_policy(EventLoopPolicy())


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):  # type: ignore[misc,name-defined]
    """asyncio's default policy, making our loops: ``asyncio.run`` and friends then use them."""

    def __init__(self, *, tracer: Tracer | None = None) -> None:
        super().__init__()
        self._tracer = tracer

    def new_event_loop(self) -> ReactorEventLoop:
        return new_event_loop(tracer=self._tracer)  # None: the one install() set, if any


def run(main: Coroutine[Any, Any, T], *, debug: bool = False) -> T:
    """``asyncio.run(main)`` on a new ``ReactorEventLoop``."""
    if sys.version_info >= (3, 12):
        return asyncio.run(main, debug=debug, loop_factory=new_event_loop)
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)

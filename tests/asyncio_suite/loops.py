"""Which event loop the suite measures: ``REACTOR_AIO_LOOP`` names it.

* ``reactor`` (the default): ``reactor.aio``, the asyncio loop on our reactor. If it cannot be
  imported the suite fails, saying why: a missing loop must never look like a passing suite.
* ``asyncio``: the standard library's ``SelectorEventLoop``, the control run; every test passes.
* ``uvloop``: a third-party loop, as a yardstick (installed for benchmarks only).

The stdlib families obtain a loop three ways (a method on the test class, the module-level
``asyncio.new_event_loop()``, the policy), so a choice offers all three: a factory, a policy
class, and the loop class to check that the test really ran on it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass

ENVIRONMENT_VARIABLE = "REACTOR_AIO_LOOP"
DEFAULT_LOOP = "reactor"
LOOP_NAMES = ("reactor", "asyncio", "uvloop")


class LoopUnavailable(Exception):
    """The chosen loop cannot be imported or built; the message says which and why."""


@dataclass(frozen=True)
class LoopChoice:
    name: str
    new_event_loop: Callable[[], asyncio.AbstractEventLoop]
    policy_class: type[asyncio.AbstractEventLoopPolicy]
    loop_class: type[asyncio.AbstractEventLoop]

    def check(self, loop: object) -> None:
        """Fail the test when it is running on some other loop than the one being measured."""
        if not isinstance(loop, self.loop_class):
            raise AssertionError(f"the test runs on {type(loop).__module__}."
                                 f"{type(loop).__qualname__}, not on the {self.name} loop "
                                 f"({self.loop_class.__module__}.{self.loop_class.__qualname__})")


def chosen_loop_name() -> str:
    name = os.environ.get(ENVIRONMENT_VARIABLE, DEFAULT_LOOP) or DEFAULT_LOOP
    if name not in LOOP_NAMES:
        raise LoopUnavailable(f"{ENVIRONMENT_VARIABLE}={name!r}: expected one of "
                              f"{', '.join(LOOP_NAMES)}")
    return name


def _stdlib_selector_loop() -> asyncio.AbstractEventLoop:
    return asyncio.SelectorEventLoop()


def choose_loop(name: str) -> LoopChoice:
    """Import the loop called ``name`` and build one, to learn its class (then close it)."""
    if name == "asyncio":
        return _choice(name, _stdlib_selector_loop, asyncio.DefaultEventLoopPolicy)
    if name == "uvloop":
        try:
            import uvloop
        except ImportError as exc:
            raise LoopUnavailable(f"uvloop is not importable ({exc}); "
                                  "pip install uvloop in this Python to use it") from exc
        return _choice(name, uvloop.new_event_loop, uvloop.EventLoopPolicy)
    try:
        import reactor.aio as aio  # type: ignore[import-not-found,unused-ignore]

        factory, policy_class = aio.new_event_loop, aio.EventLoopPolicy
    except (ImportError, AttributeError) as exc:
        raise LoopUnavailable(f"reactor.aio is not importable ({type(exc).__name__}: {exc}); "
                              f"set {ENVIRONMENT_VARIABLE}=asyncio to run the suite on the "
                              "standard library's loop instead") from exc
    return _choice(name, factory, policy_class)


def _choice(name: str, factory: Callable[[], asyncio.AbstractEventLoop],
            policy_class: type[asyncio.AbstractEventLoopPolicy]) -> LoopChoice:
    try:
        probe = factory()
    except Exception as exc:
        raise LoopUnavailable(f"the {name} loop cannot be built: "
                              f"{type(exc).__name__}: {exc}") from exc
    probe.close()
    return LoopChoice(name, factory, policy_class, type(probe))

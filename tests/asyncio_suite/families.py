"""The loop-parameterised families of ``test.test_asyncio``, bound to the loop being measured.

CPython writes these tests once and lets a subclass pick the loop, in one of four ways; each
family here is bound the way its stdlib module expects:

* ``create_event_loop()`` on the test case: events (``EventLoopTestsMixin``), sock_lowlevel
  (``BaseSockTestsMixin``), sendfile (``SendfileTestsBase``).
* ``new_loop()`` on the test case: server, buffered_proto, sslproto (the ``Selector*`` classes,
  so that their selector-only tests come too).
* ``setUp`` calls ``asyncio.new_event_loop()`` itself: ssl (``TestSSL``) and streams
  (``StreamTests``); we override ``setUp`` and skip the stdlib one.
* ``unittest.IsolatedAsyncioTestCase``: timeouts, waitfor, taskgroups, locks, queues, every such
  class of the module. Its ``asyncio.Runner`` asks the event loop policy for a loop on 3.11 and
  3.12; from 3.13 it takes the class attribute ``loop_factory`` first.

Every bound class also installs the chosen loop's policy for the duration of the class (tests
that call ``asyncio.new_event_loop()`` in their body get the loop being measured too) and checks
in ``setUp`` that the test really runs on that loop, so a stdlib change in how a family picks its
loop fails loudly instead of measuring the wrong loop.

The stdlib modules are imported as modules, never their classes by name, so no stdlib test case
lands in this module's namespace (a unittest loader would run it on the stdlib loop).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import unittest
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

from tests.asyncio_suite.loops import LoopChoice

#: Family name -> module of ``test.test_asyncio`` it comes from (``test_<name>``).
FAMILY_NAMES = ("events", "sock_lowlevel", "sendfile", "server", "buffered_proto", "sslproto",
                "ssl", "streams", "subprocess", "timeouts", "waitfor", "taskgroups", "locks",
                "queues")


class StdlibTestsMissing(Exception):
    """This Python has no ``test.test_asyncio`` (Debian splits it into libpython3.X-testsuite)."""


def stdlib_test_module(family: str) -> ModuleType:
    try:
        importlib.import_module("test.test_asyncio")
    except ImportError as exc:
        raise StdlibTestsMissing(
            f"{sys.executable} has no test.test_asyncio ({exc}); Debian and slim images ship "
            "it separately (libpython3.X-testsuite) or use a python.org/pyenv build") from exc
    return importlib.import_module(f"test.test_asyncio.test_{family}")


def _install_policy(choice: LoopChoice | None) -> None:
    with warnings.catch_warnings():  # policies are deprecated from 3.14
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(choice.policy_class() if choice else None)


class BoundToLoop:
    """Mixin first in every bound class: the chosen loop's policy, and the check that it ran."""

    chosen: LoopChoice
    loop: asyncio.AbstractEventLoop

    @classmethod
    def setUpClass(cls) -> None:
        _install_policy(cls.chosen)
        super().setUpClass()  # type: ignore[misc]

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            super().tearDownClass()  # type: ignore[misc]
        finally:
            _install_policy(None)

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self.chosen.check(self.loop)

    def close_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """``test_utils.TestCase``'s cleanup, for a loop without ``BaseEventLoop``'s private
        ``_default_executor`` (uvloop's): the stdlib one reads it and would fail every test in
        its teardown. Such a loop's executor is shut down through the public coroutine; a loop
        that has the attribute gets the stdlib cleanup unchanged."""
        if hasattr(loop, "_default_executor"):
            super().close_loop(loop)  # type: ignore[misc]
            return
        if not loop.is_closed():
            loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


class BoundToLoopAsync(BoundToLoop):
    """For IsolatedAsyncioTestCase: the loop exists only inside the runner, so check there."""

    def setUp(self) -> None:
        super(BoundToLoop, self).setUp()  # type: ignore[misc]

    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()  # type: ignore[misc]
        self.chosen.check(asyncio.get_running_loop())


def _bind(name: str, bases: tuple[type, ...], choice: LoopChoice,
          namespace: dict[str, Any]) -> type[unittest.TestCase]:
    namespace.update(chosen=choice, __module__=__name__, __qualname__=name)
    cls = type(name, bases, namespace)
    assert issubclass(cls, unittest.TestCase)
    return cls


def _by_create_event_loop(choice: LoopChoice, name: str, mixin: type,
                          base: type) -> list[type[unittest.TestCase]]:
    def create_event_loop(self: object) -> asyncio.AbstractEventLoop:
        return choice.new_event_loop()
    return [_bind(name, (BoundToLoop, mixin, base), choice,
                  {"create_event_loop": create_event_loop})]


def _by_new_loop(choice: LoopChoice, name: str, stdlib_class: type) -> list[type[unittest.TestCase]]:
    def new_loop(self: object) -> asyncio.AbstractEventLoop:
        return choice.new_event_loop()
    return [_bind(name, (BoundToLoop, stdlib_class), choice, {"new_loop": new_loop})]


def _by_own_set_up(choice: LoopChoice, name: str, stdlib_class: type[unittest.TestCase],
                   close_in_cleanup: bool) -> list[type[unittest.TestCase]]:
    """``stdlib_class.setUp`` makes its loop with ``asyncio.new_event_loop()``: do its work
    (``test_utils.TestCase.setUp``, then the loop) with the chosen loop instead."""

    def setUp(self: Any) -> None:  # noqa: N802 (unittest's name)
        super(stdlib_class, self).setUp()
        self.loop = choice.new_event_loop()
        self.set_event_loop(self.loop)
        if close_in_cleanup:
            self.addCleanup(self.loop.close)
        choice.check(self.loop)

    def new_loop(self: object) -> asyncio.AbstractEventLoop:
        return choice.new_event_loop()
    # This setUp replaces BoundToLoop's (the class's own namespace comes first in the MRO);
    # BoundToLoop stays first for its setUpClass, which unittest.TestCase's would hide.
    return [_bind(name, (BoundToLoop, stdlib_class), choice,
                  {"setUp": setUp, "new_loop": new_loop})]


def _by_runner(choice: LoopChoice, module: ModuleType) -> list[type[unittest.TestCase]]:
    """Every IsolatedAsyncioTestCase defined in ``module``, on the chosen loop."""
    stdlib_classes = [cls for _, cls in inspect.getmembers(module, inspect.isclass)
                      if issubclass(cls, unittest.IsolatedAsyncioTestCase)
                      and cls.__module__ == module.__name__]
    # A plain function as a class attribute would become a method: staticmethod keeps it a
    # factory called with no argument, as asyncio.Runner(loop_factory=...) does (3.13+).
    factory = {"loop_factory": staticmethod(choice.new_event_loop)}
    return [_bind(cls.__name__, (BoundToLoopAsync, cls), choice, dict(factory))
            for cls in stdlib_classes]


def bind_family(family: str, choice: LoopChoice) -> list[type[unittest.TestCase]]:
    """The test classes of ``family``, each running on ``choice``'s loop."""
    module = stdlib_test_module(family)
    binders: dict[str, Callable[[], list[type[unittest.TestCase]]]] = {
        "events": lambda: _by_create_event_loop(
            choice, "EventLoopTests", module.EventLoopTestsMixin, _test_utils().TestCase),
        "sock_lowlevel": lambda: _by_create_event_loop(
            choice, "SockLowlevelTests", module.BaseSockTestsMixin, _test_utils().TestCase),
        "sendfile": lambda: _by_create_event_loop(
            choice, "SendfileTests", module.SendfileTestsBase, _test_utils().TestCase),
        "server": lambda: _by_new_loop(choice, "StartServerTests", module.SelectorStartServerTests),
        "buffered_proto": lambda: _by_new_loop(
            choice, "BufferedProtocolTests", module.BufferedProtocolSelectorTests),
        "sslproto": lambda: _by_new_loop(choice, "StartTLSTests", module.SelectorStartTLSTests),
        "ssl": lambda: _by_own_set_up(choice, "TestSSL", module.TestSSL, close_in_cleanup=True),
        "streams": lambda: _by_own_set_up(choice, "StreamTests", module.StreamTests,
                                          close_in_cleanup=False),
        # SubprocessMixin's loop comes from its Unix subclasses' setUp (with a child watcher
        # of asyncio's own): bind the mixin to a TestCase whose setUp makes the chosen loop.
        "subprocess": lambda: _by_own_set_up(
            choice, "SubprocessTests",
            type("SubprocessMixinTests", (module.SubprocessMixin, _test_utils().TestCase), {}),
            close_in_cleanup=False),
    }
    if family in binders:
        return binders[family]()
    if family in FAMILY_NAMES:
        return _by_runner(choice, module)
    raise KeyError(f"unknown family {family!r}; the families are {', '.join(FAMILY_NAMES)}")


def _test_utils() -> ModuleType:
    return importlib.import_module("test.test_asyncio.utils")


def test_id(family: str, test: unittest.TestCase) -> str:
    """``family.Class.test_method``: the id the expected-failure list uses, the same on every
    Python version (unittest's own id names this module)."""
    return f"{family}.{type(test).__name__}.{test._testMethodName}"

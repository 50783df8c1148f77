"""CheckedProtocol: the callback-order contract of ``reactor/protocol.py``, checked as it runs.

Owns nothing but the record of which callbacks one protocol has received. Wraps a protocol,
forwards every callback to it, and reports each breach of the contract:

* ``connection_made`` comes first, exactly once;
* nothing comes after ``connection_lost``, which comes exactly once;
* ``eof_received`` comes at most once, and before ``connection_lost``;
* ``pause_writing`` and ``resume_writing`` strictly alternate, pause first;
* no ``data_received``, ``pause_writing`` or ``resume_writing`` once the transport is closing
  (after ``close()``/``abort()``).

A reactor built with ``Reactor(debug=True)`` wraps every protocol its listeners and connectors
create and appends each breach to ``reactor.contract_violations``; the test suite runs with it and
fails a test that breaks the contract. ``CheckedProtocol(protocol, on_violation=...)`` can also
wrap a protocol by hand, with a fake transport (``reactor.testing``).

A breach is reported, not raised: raising inside the reactor would turn the reactor's own bug
into an abort of the connection, hiding it behind the very error handling under test.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import Any

#: How many of the latest callbacks a breach report quotes (and the checker remembers).
RECENT_CALLS = 16


class CheckedProtocol:
    """Forwards to ``protocol`` after checking that each callback is allowed now.

    Its memory is bounded whatever the connection's length: a count per callback name (the
    checks need nothing else) and the last ``RECENT_CALLS`` names, for the reports.
    ``__wrapped__`` names the protocol it wraps, as ``functools.wraps`` does for functions: the
    transports unwrap it through that name without importing this module.
    """

    def __init__(self, protocol: Any,
                 on_violation: Callable[[str], object] | None = None) -> None:
        self.protocol = self.__wrapped__ = protocol
        self.violations: list[str] = []
        #: How many times each callback has come.
        self.counts: Counter[str] = Counter()
        #: The latest callbacks, oldest first.
        self.recent: deque[str] = deque(maxlen=RECENT_CALLS)
        #: The first callback received, which must be connection_made.
        self.first: str | None = None
        self._last_flow_call = "resume_writing"  # as if resumed: pause must come first
        self._on_violation = on_violation
        self._transport: Any = None

    def __getattr__(self, name: str) -> Any:
        # Anything but the contract's callbacks (a chat member's name, say) is the protocol's.
        return getattr(self.protocol, name)

    def _check(self, hook: str) -> None:
        counts = self.counts
        problem = None
        if hook == "connection_made" and self.first is not None:
            problem = "connection_made after other callbacks"
        elif hook != "connection_made" and self.first is None:
            problem = f"{hook} before connection_made"
        elif counts["connection_lost"]:
            problem = f"{hook} after connection_lost"
        elif hook == "eof_received" and counts["eof_received"]:
            problem = "eof_received twice"
        if problem is None and hook in ("pause_writing", "resume_writing"):
            if self._last_flow_call == hook:
                problem = f"{hook} twice in a row"
        elif hook in ("data_received", "resume_writing", "pause_writing") \
                and self._transport is not None and self._transport.is_closing():
            problem = f"{hook} after close() or abort()"
        if hook in ("pause_writing", "resume_writing"):
            self._last_flow_call = hook
        if self.first is None:
            self.first = hook
        counts[hook] += 1
        self.recent.append(hook)
        if problem is not None:
            self._report(f"{type(self.protocol).__name__}: {problem} (calls: {list(self.recent)})")

    def _report(self, message: str) -> None:
        self.violations.append(message)
        if self._on_violation is not None:
            self._on_violation(message)

    def connection_made(self, transport: Any) -> None:
        self._check("connection_made")
        self._transport = transport
        self.protocol.connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._check("connection_lost")
        self.protocol.connection_lost(exc)

    def data_received(self, buffer: Any) -> None:
        self._check("data_received")
        self.protocol.data_received(buffer)

    def eof_received(self) -> bool:
        self._check("eof_received")
        return bool(self.protocol.eof_received())

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._check("datagram_received")
        self.protocol.datagram_received(data, addr)

    def error_received(self, exc: OSError) -> None:
        self._check("error_received")
        self.protocol.error_received(exc)

    def pause_writing(self) -> None:
        self._check("pause_writing")
        self.protocol.pause_writing()

    def resume_writing(self) -> None:
        self._check("resume_writing")
        self.protocol.resume_writing()

    def idle_timed_out(self, idle_seconds: float) -> None:
        self._check("idle_timed_out")
        self.protocol.idle_timed_out(idle_seconds)


def checked_factory(factory: Callable[[], Any],
                    on_violation: Callable[[str], object]) -> Callable[[], CheckedProtocol]:
    """A protocol factory whose protocols are wrapped in ``CheckedProtocol``."""
    return lambda: CheckedProtocol(factory(), on_violation)

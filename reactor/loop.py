"""Reactor: the event loop. One thread, one selector, a timer heap and a ready queue.

Owns the Poller, the TimerQueue, the ready queue of callbacks and the Waker. Knows file
descriptors, callbacks and timers, never TCP: listeners, connectors and connections own their
sockets and register them with the poller (``reactor.poller``), and the loop only dispatches
readiness to the callbacks they registered.

The whole idea fits in a few lines (read ``run_once`` first)::

    while not stopping:
        timeout = time until the next timer (0 if callbacks are ready, None if nothing is scheduled)
        for each ready fd: its on_readable() / on_writable()   # recv/accept/send into buffers
        run the callbacks that were ready when this pass began, then the timers that are due

The file reads in that order: the pass, the ready queue, timers, wakeups (another thread, a
signal), any file descriptor, and last the conveniences users expect (``listen_tcp``,
``connect_tcp``...), each a thin forward to the module that does the work. Only
``call_soon_threadsafe`` and ``stop`` may be called from another thread (or, for ``stop``, from a
signal handler).

Read next: ``reactor/listener.py`` (how a connection is born) and ``reactor/connection.py``.
"""

from __future__ import annotations

import functools
import logging
import math
import selectors
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, KeysView
from typing import TYPE_CHECKING, Any

from reactor import introspect
from reactor.checker import checked_factory
from reactor.connection import TLS_HANDSHAKE_TIMEOUT_SECONDS
from reactor.connector import Connector
from reactor.datagram import DatagramTransport
from reactor.errors import report_callback_error
from reactor.listener import Listener, ListenerOptions
from reactor.poller import Poller
from reactor.timers import Handle, Timer, TimerQueue
from reactor.tls import start_tls
from reactor.waker import Waker

if TYPE_CHECKING:
    import ssl

    from reactor.connection import Connection
    from reactor.trace import Tracer
    from reactor.transport import BaseTransport

log = logging.getLogger("reactor")

ProtocolFactory = Callable[[], Any]


class Reactor:
    """A single-threaded event loop over ``selectors``.

    ``selector`` is a ``selectors`` class or one of the names ``"select"``, ``"poll"``,
    ``"epoll"``, ``"default"``. ``clock`` returns monotonic seconds (tests pass a manual clock).
    ``tracer`` receives every reactor event (``reactor.trace``); ``None`` costs one
    attribute check per event. ``debug=True`` checks every protocol's callback order as it
    runs (``reactor.checker``) and collects breaches in ``contract_violations``.
    ``callbacks_before_io=True`` runs the callbacks already waiting before the pass polls
    (asyncio's order, which ``reactor.aio`` needs; see ``run_once``). ``max_events`` caps
    how many ready fds one pass takes from epoll (the others wait for the next pass, in turn);
    a loop whose input waits in buffers until a later callback consumes it keeps less of it
    in flight that way (``reactor.aio`` does this, for the reason given where it sets it).
    """

    def __init__(
        self,
        selector: str | type[selectors.BaseSelector] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        tracer: Tracer | None = None,
        debug: bool = False,
        callbacks_before_io: bool = False,
        max_events: int | None = None,
    ) -> None:
        self._poller = Poller.create(selector, on_error=self._io_callback_failed, clock=clock,
                                     max_events=max_events)
        self._timers = TimerQueue()
        self._ready: deque[Handle] = deque()
        self._clock = clock
        self.tracer = tracer
        self._stopping = False
        self._running = False
        self._closed = False
        self._waker = Waker()
        self._poller.set_reader(self._waker.fileno(), self._on_wakeup)
        self._signal_handlers: dict[int, Any] = {}
        self._previous_wakeup_fd: int | None = None
        # Every open transport (connections, datagram sockets), for snapshots and tracers: the
        # keys of a dict, whose compact entries cost 29 bytes each against a set's 52
        # (tracemalloc, 10,000 entries).
        self._transports: dict[BaseTransport, None] = {}
        #: Loop passes run so far, and the longest time one pass spent working (not waiting).
        self.passes = 0
        self.slowest_pass_seconds = 0.0
        self.debug = debug
        self._callbacks_before_io = callbacks_before_io
        self.contract_violations: list[str] = []

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._running else "idle")
        return (
            f"<Reactor {state} backend={self._poller.backend_name} fds={len(self._poller)} "
            f"timers={len(self._timers)} ready={len(self._ready)}>"
        )

    # -- the pass ------------------------------------------------------------------------------

    def run(self) -> None:
        """Run passes until ``stop()``. Returns normally; KeyboardInterrupt/SystemExit propagate."""
        if self._running:
            raise RuntimeError("the reactor is already running")
        # _stopping is not reset here: a stop() that came first (from a signal, another thread,
        # or a callback run by run_once) still counts, and run() returns after one pass.
        self._running = True
        try:
            while True:
                self.run_once()
                if self._stopping:
                    break
        finally:
            self._running = False
            self._stopping = False

    def run_once(self, timeout: float | None = None) -> None:
        """One pass of the loop, waiting at most ``timeout`` seconds (``None``: until an event).

        1. compute how long ``select()`` may sleep: 0 if callbacks are waiting (or we are
           stopping), until the earliest timer, else ``timeout`` (the poller caps any wait at
           one day: no backend can express a timer months away);
        2. poll, and dispatch each ready fd as it comes: read before write;
        3. take the timers that are now due;
        4. run the callbacks that were ready when this pass began, then the due timers.
           Callbacks scheduled meanwhile (by I/O, by these callbacks) wait for the next pass:
           a callback that re-schedules itself cannot starve I/O, and ``connection_lost``
           always comes on a later pass than the event that caused it.

        With ``callbacks_before_io`` the callbacks of step 4 run first instead, as asyncio's
        loop runs them: a coroutine woken by a callback (``create_connection`` returning its
        transport, say) then runs before the data that arrives next is delivered. And, as in
        asyncio, the due timers join the ready queue, behind the callbacks already waiting
        there, rather than run at the end of the pass: a task that schedules a step and a
        short timeout sees the step run first however late the pass is (CPython's
        ``test_wait_for_reraises_exception_during_cancellation`` times out a task 0.1 ms after
        creating it, and failed on a loaded machine when the timeout ran first).
        """
        ready = self._ready
        # ``len()`` only when something is queued (a pass of pure I/O usually has nothing): the
        # deque's truth test costs no call.
        ready_at_start = len(ready) if ready else 0
        if ready_at_start and self._callbacks_before_io:
            if self.tracer is not None:
                introspect.trace_pass_begins_with_callbacks(self, self.tracer)
            self._run_ready(ready_at_start)
            ready_at_start = 0
        timers = self._timers
        if ready or self._stopping:
            wait: float | None = 0.0
        else:
            wait = timeout
            next_due = timers.next_due() if timers.earliest != math.inf else None
            if next_due is not None:
                until_due = max(0.0, next_due - self.time())
                wait = until_due if wait is None else min(wait, until_due)
        tracer = self.tracer
        poller = self._poller
        if tracer is None:
            poller.poll(wait)
        else:
            introspect.trace_pass_start(self, tracer, wait, timeout)
            poller.poll(wait, observe=introspect.tracing_observer(self, tracer))
        # The timers due by the time the poll woke: its clock reading, not a new one (see
        # TimerQueue.earliest for what this test saves). The usual pass has none due and only
        # runs the callbacks that were ready when it began; the rest of step 4 is a method
        # of its own, so this pass does not test an empty ``due`` three times and iterate it
        # (callgrind, 1 KiB echo over 10 connections: 17.27k -> 16.74k instructions per round
        # trip one at a time, 11.55k -> 11.50k with 10 in flight).
        if timers.earliest > poller.woke_at:
            if ready_at_start:
                self._run_ready(ready_at_start)
        else:
            self._run_ready_then_due(ready_at_start, timers.pop_due(poller.woke_at))
        self.passes += 1
        work = self._clock() - poller.woke_at
        if work > self.slowest_pass_seconds:
            self.slowest_pass_seconds = work

    def _run_ready_then_due(self, ready_at_start: int, due: list[Timer]) -> None:
        """Step 4 of a pass in which timers came due: the callbacks ready when the pass began,
        then the due timers. With ``callbacks_before_io`` the ready callbacks have already run
        (``ready_at_start`` is 0 here) and the timers join the ready queue instead, to run (and
        be traced) at the start of the next pass, which will not wait."""
        if self._callbacks_before_io:
            self._ready.extend(due)
            return
        if self.tracer is not None and due:
            introspect.trace_callbacks(self, self.tracer, due)
        if ready_at_start:
            self._run_ready(ready_at_start)
        for timer in due:
            if not timer.cancelled:  # an earlier callback of this pass may have cancelled it
                self._run_callback(timer)

    def _run_ready(self, count: int) -> None:
        """Run the first ``count`` callbacks of the ready queue (those queued later wait)."""
        ready = self._ready
        if self.tracer is not None:
            # One C-level copy: a signal handler (or another thread) may append to the deque
            # between any two bytecodes, and a live iterator over it would then raise
            # "deque mutated during iteration".
            introspect.trace_callbacks(self, self.tracer, list(ready)[:count])
        for _ in range(count):
            handle = ready.popleft()
            if not handle.cancelled:
                self._run_callback(handle)

    def stop(self) -> None:
        """Make ``run()`` return after the current pass. Safe from callbacks, other threads and
        signal handlers: it only sets a flag and wakes ``select()``."""
        self._stopping = True
        self._waker.wake()

    def is_running(self) -> bool:
        return self._running

    def _run_callback(self, handle: Handle) -> None:
        """The one guard: run a scheduled callback; an exception is logged and the loop goes
        on (``reactor.errors.report_callback_error``)."""
        try:
            handle.callback(*handle.args)
        except Exception as exc:
            report_callback_error(exc, f"callback {handle!r}")

    def _io_callback_failed(self, exc: BaseException, fd: int) -> None:
        report_callback_error(exc, f"I/O callback for fd {fd}")

    # -- the ready queue -------------------------------------------------------------------------

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> Handle:
        """Run ``callback(*args)`` on the next pass, after I/O, in the order scheduled."""
        handle = Handle(callback, args)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> Handle:
        """``call_soon`` from another thread: ``deque.append`` is atomic, then wake ``select()``."""
        handle = self.call_soon(callback, *args)
        self._waker.wake()
        return handle

    # -- timers ----------------------------------------------------------------------------------

    def time(self) -> float:
        """Seconds on the loop's monotonic clock: the base of every ``when``."""
        return self._clock()

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` once, ``delay`` seconds from now."""
        return self._timers.schedule(self.time() + delay, callback, args)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` once, at ``when`` on the loop's clock (see ``time()``)."""
        return self._timers.schedule(when, callback, args)

    def call_every(
        self, interval: float, callback: Callable[..., Any], *args: Any,
        first_delay: float | None = None,
    ) -> Timer:
        """Run ``callback(*args)`` every ``interval`` seconds until the handle is cancelled."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        first = interval if first_delay is None else first_delay
        return self._timers.schedule(self.time() + first, callback, args, interval=interval)

    # -- wakeups: another thread, stop(), a signal -------------------------------------------------

    def _on_wakeup(self) -> None:
        """The waker's fd is readable: another thread, ``stop()`` or a signal woke us."""
        received = self._waker.drain()
        if self.tracer is not None:
            introspect.trace_wakeup(self, self.tracer, received)

    def add_signal_handler(self, signum: int, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` as an ordinary loop callback when ``signum`` arrives.

        The Python-level handler only queues the callback; ``set_wakeup_fd`` makes the C-level
        handler wake ``select()`` at once. Main thread only (a rule of the ``signal`` module).
        """

        def on_signal(received: int, frame: object) -> None:
            self.call_soon_threadsafe(callback, *args)

        try:
            if self._previous_wakeup_fd is None:
                self._previous_wakeup_fd = signal.set_wakeup_fd(
                    self._waker.write_fileno(), warn_on_full_buffer=False)
            previous = signal.signal(signum, on_signal)
        except ValueError as exc:  # both refuse, with ValueError, in any other thread
            if "main thread" in str(exc):
                raise RuntimeError("signal handlers can only be installed from the main "
                                   "thread") from exc
            raise
        self._signal_handlers.setdefault(signum, previous)

    def remove_signal_handler(self, signum: int) -> bool:
        previous = self._signal_handlers.pop(signum, None)
        if previous is None:
            return False
        signal.signal(signum, previous)
        if not self._signal_handlers and self._previous_wakeup_fd is not None:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            self._previous_wakeup_fd = None
        return True

    def stop_on_signals(self, signals: Iterable[int] = (signal.SIGINT, signal.SIGTERM)) -> None:
        """Make each of ``signals`` stop the loop cleanly (``run()`` returns)."""
        for signum in signals:
            self.add_signal_handler(signum, self.stop)

    # -- any file descriptor -----------------------------------------------------------------------

    @property
    def poller(self) -> Poller:
        """Where the modules that own sockets register their fds' callbacks."""
        return self._poller

    def add_reader(self, fd: int, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is readable (level-triggered)."""
        self._poller.set_reader(fd, functools.partial(callback, *args) if args else callback)

    def remove_reader(self, fd: int) -> bool:
        return self._poller.remove_reader(fd)

    def add_writer(self, fd: int, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is writable. Remove it when you have nothing
        to write: a level-triggered selector reports a writable socket on every pass."""
        self._poller.set_writer(fd, functools.partial(callback, *args) if args else callback)

    def remove_writer(self, fd: int) -> bool:
        return self._poller.remove_writer(fd)

    # -- looking inside ----------------------------------------------------------------------------

    @property
    def trace_label(self) -> str:
        return "reactor"

    @property
    def transports(self) -> KeysView[BaseTransport]:
        """Every open transport (connections, datagram sockets): a live, set-like view."""
        return self._transports.keys()

    def _add_transport(self, transport: BaseTransport) -> None:
        self._transports[transport] = None

    def _forget_transport(self, transport: BaseTransport) -> None:
        self._transports.pop(transport, None)

    def set_tracer(self, tracer: Tracer | None) -> None:
        """Install (or remove, with ``None``) the observer of every reactor event, including
        on transports already open (they cache it: one attribute check per event when off)."""
        self.tracer = tracer
        for transport in self.transports:
            transport._tracer = tracer

    def snapshot(self) -> dict[str, Any]:
        """Registered fds and their masks, timers in due order, the ready queue, and every open
        transport's state, buffers and counters: a picture of the loop between two passes."""
        return introspect.snapshot(self)

    def step(self, timeout: float = 0.0) -> list[dict[str, Any]]:
        """Run exactly one pass (waiting at most ``timeout``) and return its events, as a
        tracer would have seen them: why it woke, each syscall, each callback."""
        return introspect.step(self, timeout)

    # -- closing -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the selector, the waker and any signal handlers. The loop must not be running."""
        if self._running:
            raise RuntimeError("cannot close a running reactor")
        if self._closed:
            return
        self._closed = True
        for signum in list(self._signal_handlers):
            self.remove_signal_handler(signum)
        self._ready.clear()
        self._poller.close()
        self._waker.close()

    def close_in_child(self) -> None:
        """In a child process after ``fork()``: let go of this reactor, which the child copied
        from its parent, without touching the parent's (the selector and waker are shared open
        files; closing our descriptors leaves the parent's intact)."""
        self._running = False
        self.close()

    # -- conveniences: thin forwards to the modules that own sockets -------------------------------

    def listen_tcp(
        self, protocol_factory: ProtocolFactory, host: str | None = "127.0.0.1", port: int = 0,
        *, backlog: int = 128, reuse_port: bool = False, **options: Any,
    ) -> Listener:
        """Listen on ``host:port`` (``port=0``: any free port; read ``listener.address``).

        ``options``: ``max_connections``, ``reject_message``, ``idle_timeout``, ``ssl`` (serve
        TLS only) and ``handshake_timeout``, as ``reactor.listener.ListenerOptions`` declares.
        Raises ``OSError`` at once if the address cannot be bound (port in use, not ours).
        """
        return Listener.open_tcp(self, self._checked(protocol_factory), host, port,
                                 backlog=backlog, reuse_port=reuse_port,
                                 options=ListenerOptions(**options))

    def listen_unix(
        self, protocol_factory: ProtocolFactory, path: str, *, backlog: int = 128,
        **options: Any,
    ) -> Listener:
        """Listen on a Unix stream socket at ``path``: the same connections, protocols and
        ``options`` as TCP, for clients on this machine. A stale socket file is replaced; a live
        server's is not (``OSError`` EADDRINUSE). ``listener.close()`` removes the file."""
        return Listener.open_unix(self, self._checked(protocol_factory), path, backlog=backlog,
                                  options=ListenerOptions(**options))

    def connect_tcp(
        self, protocol_factory: ProtocolFactory, host: str, port: int, **options: Any,
    ) -> Connector:
        """Connect without blocking; ``on_error(exc)`` hears of refusal, timeout and the rest.

        On success the protocol gets ``connection_made``; on failure it is never created.
        ``options`` (``reactor.connector.Connector``): ``timeout`` (default 10 s),
        ``on_error``, ``ssl`` (a client context, e.g. ``ssl.create_default_context()``: the
        protocol's ``connection_made`` then comes after the TLS handshake, and a failed one
        reaches ``on_error`` instead),
        ``server_hostname`` (default ``host``: sent as SNI and checked against the certificate
        when the context's ``check_hostname`` is on, as it is by default), ``handshake_timeout``.
        """
        return Connector.start_tcp(self, self._checked(protocol_factory), host, port, **options)

    def connect_unix(
        self, protocol_factory: ProtocolFactory, path: str, **options: Any,
    ) -> Connector:
        """Connect to a Unix stream socket; the ``options`` and failures of ``connect_tcp``,
        except that ``server_hostname`` has no default."""
        return Connector.start_unix(self, self._checked(protocol_factory), path, **options)

    def start_tls(
        self, connection: Connection, context: ssl.SSLContext, *, server_side: bool,
        server_hostname: str | None = None,
        handshake_timeout: float | None = TLS_HANDSHAKE_TIMEOUT_SECONDS,
    ) -> None:
        """Upgrade an open connection to TLS in band (STARTTLS): ``reactor.tls.start_tls``;
        ``connection.start_tls(...)`` comes here."""
        start_tls(connection, context, server_side=server_side, server_hostname=server_hostname,
                  handshake_timeout=handshake_timeout)

    def listen_udp(
        self, protocol_factory: ProtocolFactory, host: str | None = "127.0.0.1", port: int = 0,
        *, reuse_port: bool = False,
    ) -> DatagramTransport:
        """Bind a UDP socket on ``host:port``; each datagram reaches ``datagram_received``.

        There is no connection: the transport's ``sendto(data, addr)`` names the destination
        of every datagram. Raises ``OSError`` at once if the address cannot be bound.
        """
        return DatagramTransport.listen(self, self._checked(protocol_factory), host, port,
                                        reuse_port=reuse_port)

    def connect_udp(
        self, protocol_factory: ProtocolFactory, host: str, port: int,
    ) -> DatagramTransport:
        """A UDP socket with a default destination (``connect()`` sends nothing: UDP has no
        handshake). Replies from other addresses are filtered by the kernel, and an ICMP
        "port unreachable" comes back as ``error_received(ConnectionRefusedError)``."""
        return DatagramTransport.connect(self, self._checked(protocol_factory), host, port)

    def _checked(self, protocol_factory: ProtocolFactory) -> ProtocolFactory:
        """In debug mode, wrap each new protocol in a contract checker (``reactor.checker``)."""
        if not self.debug:
            return protocol_factory
        return checked_factory(protocol_factory, self._contract_broken)

    def _contract_broken(self, message: str) -> None:
        self.contract_violations.append(message)
        log.error("protocol contract broken: %s", message)

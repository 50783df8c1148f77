"""ReactorEventLoop: asyncio's event loop interface, scheduled and served by our Reactor.

The shape is the one trio-asyncio and qasync chose: subclass ``asyncio.BaseEventLoop``, which
holds the loop-agnostic half of asyncio (``create_connection`` with happy eyeballs,
``create_server``'s binding of every address, ``create_datagram_endpoint``'s options,
executors, ``getaddrinfo`` in a thread, the exception handler, task factory, async generator
shutdown, ``start_tls`` and ``sendfile``'s fallback), and replace the half that *is* a loop:

* scheduling: ``call_soon`` and ``call_at`` put asyncio's ``Handle``/``TimerHandle`` on the
  reactor's ready queue and timer heap; ``call_soon_threadsafe`` wakes it through its waker;
  ``time()`` is the reactor's clock (the reactor reads ``loop.time``, so a test that patches it
  moves our timers too);
* waiting: each iteration of ``run_forever`` is one ``Reactor.run_once()`` pass, so ``--trace``
  shows an asyncio program pass by pass;
* I/O: ``add_reader``/``add_writer`` and the ``sock_*`` coroutines register on the reactor's
  poller; stream transports are reactor ``Connection`` objects and datagram transports reactor
  ``DatagramTransport`` objects (``reactor/aio/transports.py``); signals go through the
  reactor's wakeup fd.

Pipes (``connect_read_pipe``, ``connect_write_pipe``) are ``reactor/aio/pipes.py``;
subprocesses (``subprocess_exec``, ``subprocess_shell``) are ``reactor/aio/subprocesses.py``,
their exit watched through a pidfd on the poller (Linux; elsewhere ``NotImplementedError``).
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import signal
import socket
import stat
import time
from asyncio import base_events, coroutines, events, exceptions, sslproto
from asyncio.log import logger as asyncio_logger
from collections import deque
from collections.abc import Callable
from contextvars import Context, copy_context
from typing import TYPE_CHECKING, Any, TypeVarTuple, Unpack

from reactor.aio.pipes import ReadPipeTransport, WritePipeTransport
from reactor.aio.subprocesses import ChildWatcher, SubprocessTransport, can_watch_children
from reactor.aio.transports import DatagramSocketTransport, SocketTransport
from reactor.loop import Reactor
from reactor.timers import Timer
from reactor.trace import Tracer

#: Errors of accept() that mean "out of descriptors or memory", not "this client failed":
#: asyncio stops accepting for a second rather than spin on them.
ACCEPT_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
ACCEPT_RETRY_SECONDS = 1.0
#: Ready fds one pass takes from epoll. An asyncio program reads its input in a task that runs
#: a pass after the bytes arrived (a future's result is delivered by call_soon), so every
#: message a pass receives waits in a StreamReader, copied once, until the next; and since this
#: loop sends the replies before it polls, its polls find more requests ready than asyncio's
#: do (80 a poll against 48, 100 KiB echo over 100 connections). By the time the last of 80
#: is copied out, the first have left the CPU's caches: `bytearray.extend` took 11.4 µs a
#: message instead of 5.4 µs with 8 a pass. Measured on the streams echo, 100 KiB x 100
#: connections, five interleaved rounds (docs/design.md, "The asyncio layer's CPU"): user CPU
#: per round trip 1.12x asyncio's uncapped, 0.94x at 16, 0.96x at 32; p99 18.0 ms uncapped,
#: 13.5 at 16 (asyncio's 14.5); that sweep chose 16. The tree before this cap against the tree
#: with it, five more rounds: 1.02x -> 0.78x, p99 21.0 -> 12.9 ms (asyncio's 14.1). The Protocol
#: echo, which consumes in data_received, showed no difference (1 KiB: 0.79x and 0.80x;
#: 100 KiB: 0.84x and 0.78x).
MAX_EVENTS_PER_PASS = 16
#: Bytes asked of one os.sendfile() call: big enough to fill any socket buffer in one call.
SENDFILE_BLOCK = 2**30

Ts = TypeVarTuple("Ts")
#: asyncio's own check that a sock_* call was not given an ssl.SSLSocket (whose recv() would
#: return plaintext behind our back); private, so typeshed does not declare it.
check_ssl_socket: Callable[[socket.socket], None] = base_events._check_ssl_socket  # type: ignore[attr-defined]
#: How asyncio names a handle in its slow-callback warning (a task by its repr).
format_handle: Callable[[events.Handle], str] = base_events._format_handle  # type: ignore[attr-defined]


class CancelledFlag(int):
    """What ``ReadyHandle.cancelled`` holds: 0 or 1, which the reactor's ready queue tests as a
    flag (``if not handle.cancelled``, truth-tested in C, as an int is), and which asyncio's
    public ``Handle.cancelled()`` calls as a method."""

    __slots__ = ()

    def __call__(self) -> bool:
        return self != 0


NOT_CANCELLED = CancelledFlag(0)
CANCELLED = CancelledFlag(1)


class ReadyHandle(events.Handle):
    """The ``Handle`` of a ``call_soon`` (outside debug mode and tracing), queued as it is on the
    reactor's ready queue: it carries the reactor's own ``callback``, ``args`` and ``cancelled``
    names, ``callback`` being ``Handle._run`` (which reports the callback's exception to the
    loop's exception handler). No reactor ``Handle`` wraps it and no ``_run_handle`` runs between.
    Measured (server instructions per round trip under callgrind, docs/design.md, "The asyncio
    layer's CPU"): streams echo 1 KiB, 1 connection 62.3k -> 58.0k, 10 connections
    50.6k -> 46.2k."""

    __slots__ = ("cancelled",)

    callback = events.Handle._run
    args = ()

    def __init__(self, callback: Callable[..., object], args: tuple[Any, ...],
                 loop: ReactorEventLoop, context: Context | None) -> None:
        # Handle.__init__'s fields, without its loop.get_debug() call: this handle is made only
        # outside debug mode, so there is no traceback of where it was scheduled to keep.
        self._context = copy_context() if context is None else context
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = None
        self.cancelled = NOT_CANCELLED  # type: ignore[assignment]

    def cancel(self) -> None:
        super().cancel()
        self.cancelled = CANCELLED  # type: ignore[assignment]

    def _repr_info(self) -> list[str]:
        info: list[str] = super()._repr_info()  # type: ignore[misc]
        info[0] = "Handle"  # asyncio's name, which logs and tests expect in repr()
        return info


class TracedHandle:
    """An asyncio handle as the reactor's trace names it: ``TracedHandle.run of Handle
    Task.task_wakeup(...)`` instead of one anonymous ``_run_handle`` per callback. Used only
    while a tracer is installed, so untraced loops pay nothing for it."""

    __slots__ = ("handle",)

    def __init__(self, handle: events.Handle) -> None:
        self.handle = handle

    def run(self) -> None:
        ReactorEventLoop._run_handle(self.handle)

    @property
    def trace_label(self) -> str:
        text = repr(self.handle)[1:-1]
        return text if len(text) <= 120 else text[:117] + "..."


def fileno_of(fileobj: Any) -> int:
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


class ReactorEventLoop(base_events.BaseEventLoop):
    """An asyncio event loop whose scheduling, waiting and I/O are a ``reactor.Reactor``'s.

    ``reactor_close=True`` keeps the reactor's own close semantics on stream transports
    (lingering close, ``abort()`` = RST) instead of asyncio's.
    """

    if TYPE_CHECKING:
        # BaseEventLoop's private members this loop uses; typeshed declares only the public API.
        _debug: bool
        _stopping: bool
        _current_handle: events.Handle | None
        def _check_closed(self) -> None: ...
        def _check_thread(self) -> None: ...
        def _check_callback(self, callback: Callable[..., object], method: str) -> None: ...

    def __init__(self, *, selector: str | None = None, tracer: Tracer | None = None,
                 reactor_close: bool = False) -> None:
        super().__init__()
        self._reactor = Reactor(selector, clock=self._reactor_clock(), tracer=tracer,
                                callbacks_before_io=True, max_events=MAX_EVENTS_PER_PASS)
        self._reactor_close = reactor_close
        #: The reactor's ready queue, where call_soon puts its ReadyHandle directly.
        self._ready_queue: deque[Any] = self._reactor._ready
        #: Our timer for each asyncio TimerHandle still pending (keyed by id: TimerHandle's own
        #: equality compares when/callback/args, so two equal handles would collide).
        self._timers: dict[int, Timer] = {}
        self._children = ChildWatcher(self)

    @property
    def reactor(self) -> Reactor:
        return self._reactor

    # -- scheduling ------------------------------------------------------------------------------

    def time(self) -> float:
        return time.monotonic()

    def _reactor_clock(self) -> Callable[[], float]:
        """The clock the reactor reads (about three times a pass): ``time.monotonic`` itself
        while ``loop.time`` is ours, else whatever ``loop.time`` is now, so that a subclass's
        ``time()`` or a test's patched ``loop.time`` moves our timers too. (Before: always a
        lambda calling ``self.time()``, two Python calls a read. Measured under callgrind:
        Protocol echo 1 KiB, 1 connection, 26.4k -> 25.2k instructions per round trip.)"""
        if "time" in vars(self) or type(self).time is not ReactorEventLoop.time:
            return lambda: self.time()
        return time.monotonic

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "time":
            self._clock_changed()

    def __delattr__(self, name: str) -> None:
        super().__delattr__(name)
        if name == "time":
            self._clock_changed()

    def _clock_changed(self) -> None:
        """``loop.time`` was patched or restored: the reactor and its poller read the new one.
        (The Reactor takes its clock once, at construction; these are its private fields.)"""
        clock = self._reactor_clock()
        self._reactor._clock = clock
        self._reactor.poller._clock = clock

    def call_soon(self, callback: Callable[[Unpack[Ts]], object], *args: Unpack[Ts],
                  context: Context | None = None) -> events.Handle:
        # Debug mode and tracing take asyncio's path (a Handle that records where it was
        # scheduled, run by _run_handle, which times it; a TracedHandle that names it). A handle
        # queued before set_debug(True) runs untimed: asyncio would time it.
        if self._debug or self._reactor.tracer is not None:
            return super().call_soon(callback, *args, context=context)
        if self._closed:  # type: ignore[attr-defined]
            self._check_closed()  # raises asyncio's RuntimeError
        handle = ReadyHandle(callback, args, self, context)
        self._ready_queue.append(handle)
        return handle

    def _call_soon(self, callback: Callable[..., Any], args: Any, context: Any) -> events.Handle:
        # BaseEventLoop.call_soon (in debug mode or tracing) and call_soon_threadsafe come here
        # after their checks.
        if not self._debug and self._reactor.tracer is None:
            ready = ReadyHandle(callback, args, self, context)
            self._ready_queue.append(ready)  # deque.append: atomic, so thread-safe
            return ready
        handle = events.Handle(callback, args, self, context)
        if handle._source_traceback:  # type: ignore[attr-defined]
            del handle._source_traceback[-1]  # type: ignore[attr-defined]
        self._schedule(handle)
        return handle

    def _schedule(self, handle: events.Handle) -> None:
        if self._reactor.tracer is None:
            self._reactor.call_soon(self._run_handle, handle)
        else:
            self._reactor.call_soon(TracedHandle(handle).run)

    def _write_to_self(self) -> None:
        """call_soon_threadsafe's wakeup: one byte to the reactor's waker."""
        self._reactor._waker.wake()

    def call_at(self, when: float, callback: Callable[[Unpack[Ts]], object], *args: Unpack[Ts],
                context: Context | None = None) -> events.TimerHandle:
        self._check_closed()
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_at")
        timer = events.TimerHandle(when, callback, args, self, context)
        if timer._source_traceback:  # type: ignore[attr-defined]
            del timer._source_traceback[-1]  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        self._timers[id(timer)] = self._reactor.call_at(when, self._run_timer, timer)
        return timer

    def _timer_handle_cancelled(self, handle: events.TimerHandle) -> None:
        timer = self._timers.pop(id(handle), None)
        if timer is not None:
            timer.cancel()

    def _run_timer(self, handle: events.TimerHandle) -> None:
        # The reactor runs this from its ready queue, where a due timer waits behind the
        # callbacks queued before it came due, as in asyncio (Reactor(callbacks_before_io=True)).
        self._timers.pop(id(handle), None)
        handle._scheduled = False  # type: ignore[attr-defined]
        self._run_handle(handle)

    @staticmethod
    def _run_handle(handle: events.Handle) -> None:
        # Handle._run routes the callback's exception to call_exception_handler, but it does
        # not check for cancellation: the loop must.
        if handle._cancelled:
            return
        loop: ReactorEventLoop = handle._loop  # type: ignore[attr-defined]
        if not loop._debug:
            handle._run()
            return
        # Debug mode, as asyncio's: the handle being run is named in exception reports (with
        # where it was scheduled), and a callback that holds the loop too long is logged.
        loop._current_handle = handle
        started = loop.time()
        try:
            handle._run()
        finally:
            loop._current_handle = None
        took = loop.time() - started
        if took >= loop.slow_callback_duration:
            asyncio_logger.warning("Executing %s took %.3f seconds", format_handle(handle), took)

    def stop(self) -> None:
        super().stop()
        # The reactor runs waiting callbacks before it polls; a stop() among them comes after
        # the pass chose to wait for I/O (nothing else was ready), so wake that wait.
        self._write_to_self()

    def _run_once(self) -> None:
        """One iteration of run_forever: one reactor pass (without waiting when stopping)."""
        self._reactor.run_once(0.0 if self._stopping else None)

    def close(self) -> None:
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        for signum in list(self._reactor._signal_handlers):
            self.remove_signal_handler(signum)
        super().close()
        self._children.close()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._reactor.close()

    # -- any file descriptor -----------------------------------------------------------------------

    def add_reader(self, fd: Any, callback: Callable[[Unpack[Ts]], Any], *args: Unpack[Ts]) -> None:
        self._check_closed()
        handle = events.Handle(callback, args, self, None)
        self._reactor.add_reader(fileno_of(fd), self._run_handle, handle)

    def remove_reader(self, fd: Any) -> bool:
        if self.is_closed():
            return False
        return self._reactor.remove_reader(fileno_of(fd))

    def add_writer(self, fd: Any, callback: Callable[[Unpack[Ts]], Any], *args: Unpack[Ts]) -> None:
        self._check_closed()
        handle = events.Handle(callback, args, self, None)
        self._reactor.add_writer(fileno_of(fd), self._run_handle, handle)

    def remove_writer(self, fd: Any) -> bool:
        if self.is_closed():
            return False
        return self._reactor.remove_writer(fileno_of(fd))

    # -- sock_*: one syscall now, else once the poller says the socket is ready --------------------

    async def _sock_io(self, sock: socket.socket, writing: bool,
                       attempt: Callable[[], Any]) -> Any:
        """Try ``attempt`` at once (the kernel may have the data already); on EAGAIN wait for
        readiness and try again, as often as it takes."""
        check_ssl_socket(sock)
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        try:
            return attempt()
        except (BlockingIOError, InterruptedError):
            pass
        future = self.create_future()
        fd = sock.fileno()

        def ready() -> None:
            if future.done():
                return
            try:
                result = attempt()
            except (BlockingIOError, InterruptedError):
                return  # a spurious wakeup, or another reader was faster: wait again
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

        (self._reactor.add_writer if writing else self._reactor.add_reader)(fd, ready)
        try:
            return await future
        finally:
            self._unwatch(fd, writing, ready)

    def _unwatch(self, fd: int, writing: bool, callback: Callable[[], None]) -> None:
        """Stop watching ``fd`` for ``callback``, unless another sock_* call has taken the fd
        over meanwhile: a cancelled sock_recv's cleanup runs after the sock_recv that
        replaced it registered, and must not remove that one's reader."""
        if self.is_closed():
            return
        registered = self._reactor.poller.callbacks(fd)[1 if writing else 0]
        if registered is callback:
            (self._reactor.remove_writer if writing else self._reactor.remove_reader)(fd)

    async def sock_recv(self, sock: socket.socket, n: int) -> bytes:
        return await self._sock_io(sock, False, lambda: sock.recv(n))

    async def sock_recv_into(self, sock: socket.socket, buf: Any) -> int:
        return await self._sock_io(sock, False, lambda: sock.recv_into(buf))

    async def sock_recvfrom(self, sock: socket.socket, bufsize: int) -> tuple[bytes, Any]:
        return await self._sock_io(sock, False, lambda: sock.recvfrom(bufsize))

    async def sock_recvfrom_into(self, sock: socket.socket, buf: Any,
                                 nbytes: int = 0) -> tuple[int, Any]:
        return await self._sock_io(sock, False, lambda: sock.recvfrom_into(buf, nbytes))

    async def sock_sendto(self, sock: socket.socket, data: Any, address: Any) -> int:
        return await self._sock_io(sock, True, lambda: sock.sendto(data, address))

    async def sock_sendall(self, sock: socket.socket, data: Any) -> None:
        view = memoryview(data).cast("B")
        while view:  # a partial send() took what the kernel's buffer had room for
            sent = await self._sock_io(sock, True, lambda: sock.send(view))
            view = view[sent:]

    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        check_ssl_socket(sock)
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        if sock.family != socket.AF_UNIX:
            resolved = await self._ensure_resolved(  # type: ignore[attr-defined]
                address, family=sock.family, type=sock.type, proto=sock.proto, loop=self)
            address = resolved[0][4]
        try:
            sock.connect(address)
            return
        except (BlockingIOError, InterruptedError):
            pass  # EINPROGRESS: the handshake goes on; writable means it ended, one way or other
        def outcome() -> None:
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, f"Connect call failed {address}")
        future = self.create_future()

        def writable() -> None:
            if future.done():
                return
            try:
                outcome()
            except OSError as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)

        fd = sock.fileno()
        self._reactor.add_writer(fd, writable)
        try:
            await future
        finally:
            self._unwatch(fd, True, writable)

    async def sock_accept(self, sock: socket.socket) -> tuple[socket.socket, Any]:
        conn, address = await self._sock_io(sock, False, sock.accept)
        conn.setblocking(False)
        return conn, address

    # -- sendfile: os.sendfile() from the page cache to the socket, no copy through Python --------

    async def _sock_sendfile_native(self, sock: socket.socket, file: Any, offset: int,
                                    count: int | None) -> int:
        try:
            file_fd = file.fileno()
            size = os.fstat(file_fd).st_size
        except (AttributeError, io.UnsupportedOperation, OSError) as exc:
            raise exceptions.SendfileNotAvailableError("not a regular file") from exc
        total = 0
        try:
            while True:
                block = min(count - total, SENDFILE_BLOCK) if count else SENDFILE_BLOCK
                if block <= 0 or offset + total >= size and not count:
                    break
                position = offset + total
                sent = await self._sock_io(
                    sock, True, lambda: os.sendfile(sock.fileno(), file_fd, position, block))
                if sent == 0:
                    break  # end of the file
                total += sent
        except OSError as exc:
            if total == 0 and not isinstance(exc, ConnectionError):
                # The kernel cannot sendfile() between these two (a pipe, a TLS socket, a
                # filesystem without support): let sendfile() fall back to read() + send().
                raise exceptions.SendfileNotAvailableError(f"os.sendfile failed: {exc}") from exc
            raise
        finally:
            if total:
                file.seek(offset + total)  # as a read() + send() would have left it
        return total

    async def _sendfile_native(self, transport: Any, file: Any, offset: int,
                               count: int | None) -> int:
        """loop.sendfile() on one of our transports: wait until what was written before has
        gone, then os.sendfile() to the socket while the transport neither reads nor writes."""
        resume_reading = transport.is_reading()
        transport.pause_reading()
        await transport._make_empty_waiter()
        try:
            return await self.sock_sendfile(transport._sock, file, offset, count, fallback=False)
        finally:
            transport._reset_empty_waiter()
            if resume_reading:
                transport.resume_reading()

    # -- transports: ours underneath, asyncio's interface on top -------------------------------------

    def _make_socket_transport(self, sock: socket.socket, protocol: Any, waiter: Any = None, *,
                               extra: Any = None, server: Any = None) -> SocketTransport:
        return SocketTransport(self, sock, protocol, waiter, extra, server,
                               reactor_close=self._reactor_close)

    def _make_ssl_transport(self, rawsock: socket.socket, protocol: Any, sslcontext: Any,
                            waiter: Any = None, *, server_side: bool = False,
                            server_hostname: str | None = None, extra: Any = None,
                            server: Any = None, ssl_handshake_timeout: float | None = None,
                            ssl_shutdown_timeout: float | None = None,
                            call_connection_made: bool = True) -> Any:
        # asyncio's own TLS layer (ssl.MemoryBIO) as the protocol of one of our transports: the
        # stdlib's streams and start_tls() expect its exact behaviour.
        ssl_protocol = sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            call_connection_made=call_connection_made,
            # typeshed says int; asyncio takes any number of seconds.
            ssl_handshake_timeout=ssl_handshake_timeout,  # type: ignore[arg-type]
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        self._make_socket_transport(rawsock, ssl_protocol, extra=extra, server=server)
        return ssl_protocol._app_transport

    def _make_datagram_transport(self, sock: socket.socket, protocol: Any, address: Any = None,
                                 waiter: Any = None, extra: Any = None) -> Any:
        return DatagramSocketTransport(self, sock, protocol, address, waiter, extra)

    async def _make_subprocess_transport(self, protocol: Any, args: Any, shell: bool,
                                         stdin: Any, stdout: Any, stderr: Any, bufsize: int,
                                         extra: Any = None,
                                         **kwargs: Any) -> SubprocessTransport:
        if not can_watch_children():
            raise NotImplementedError("reactor.aio runs subprocesses only where the kernel "
                                      "has pidfds (os.pidfd_open: Linux 5.3+)")
        waiter = self.create_future()
        transport = SubprocessTransport(self, protocol, args, shell, stdin, stdout, stderr,
                                        bufsize, waiter=waiter, extra=extra, **kwargs)
        self._children.watch(transport)
        try:
            await waiter  # the pipes are connected and the protocol told
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transport.close()  # kills the child if it still runs
            await transport._wait()  # type: ignore[attr-defined]
            raise
        return transport

    def _make_read_pipe_transport(self, pipe: Any, protocol: Any, waiter: Any = None,
                                  extra: Any = None) -> ReadPipeTransport:
        return ReadPipeTransport(self, pipe, protocol, waiter, extra)

    def _make_write_pipe_transport(self, pipe: Any, protocol: Any, waiter: Any = None,
                                   extra: Any = None) -> WritePipeTransport:
        return WritePipeTransport(self, pipe, protocol, waiter, extra)

    # -- servers: accept on the reactor's poller ----------------------------------------------------

    def _start_serving(self, protocol_factory: Callable[[], Any], sock: socket.socket,
                       sslcontext: Any = None, server: Any = None, backlog: int = 100,
                       ssl_handshake_timeout: float | None = None,
                       ssl_shutdown_timeout: float | None = None) -> None:
        self._reactor.add_reader(sock.fileno(), self._accept, protocol_factory, sock,
                                 sslcontext, server, backlog, ssl_handshake_timeout,
                                 ssl_shutdown_timeout)

    def _accept(self, protocol_factory: Callable[[], Any], sock: socket.socket, sslcontext: Any,
                server: Any, backlog: int, ssl_handshake_timeout: float | None,
                ssl_shutdown_timeout: float | None) -> None:
        """The listening socket is readable: accept up to ``backlog`` clients, until EAGAIN."""
        for _ in range(backlog):
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # drained, or the client gave up before we got to it
            except OSError as exc:
                if exc.errno not in ACCEPT_RESOURCE_ERRORS:
                    raise
                self.call_exception_handler({
                    "message": "socket.accept() out of system resource", "exception": exc,
                    "socket": sock})
                self._reactor.remove_reader(sock.fileno())
                self.call_later(ACCEPT_RETRY_SECONDS, self._start_serving, protocol_factory,
                                sock, sslcontext, server, backlog, ssl_handshake_timeout,
                                ssl_shutdown_timeout)
                return
            conn.setblocking(False)
            self._serve_accepted(protocol_factory, conn, address, sslcontext, server,
                                 ssl_handshake_timeout, ssl_shutdown_timeout)

    def _serve_accepted(self, protocol_factory: Callable[[], Any], conn: socket.socket,
                        address: Any, sslcontext: Any, server: Any,
                        ssl_handshake_timeout: float | None,
                        ssl_shutdown_timeout: float | None) -> None:
        extra = {"peername": address}
        try:
            protocol = protocol_factory()
            waiter = self.create_future()
            if sslcontext:
                self._make_ssl_transport(conn, protocol, sslcontext, waiter, server_side=True,
                                         extra=extra, server=server,
                                         ssl_handshake_timeout=ssl_handshake_timeout,
                                         ssl_shutdown_timeout=ssl_shutdown_timeout)
            else:
                self._make_socket_transport(conn, protocol, waiter, extra=extra, server=server)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            conn.close()
            self.call_exception_handler({
                "message": "Error on transport creation for incoming connection",
                "exception": exc})
            return
        waiter.add_done_callback(self._accepted_outcome)

    def _accepted_outcome(self, waiter: asyncio.Future[Any]) -> None:
        """A failed handshake is the client's problem, reported in debug mode only (asyncio)."""
        if waiter.cancelled():
            return
        exc = waiter.exception()
        if exc is not None and self._debug:
            self.call_exception_handler({
                "message": "Error on transport creation for incoming connection",
                "exception": exc})

    def _stop_serving(self, sock: socket.socket) -> None:
        self._reactor.remove_reader(sock.fileno())
        sock.close()

    # -- Unix sockets (asyncio keeps these in unix_events, not BaseEventLoop) ---------------------

    async def create_unix_connection(
            self, protocol_factory: Callable[[], Any], path: Any = None, *, ssl: Any = None,
            sock: socket.socket | None = None, server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None) -> tuple[Any, Any]:
        if server_hostname is not None and not ssl:
            raise ValueError("server_hostname is only meaningful with ssl")
        if ssl and server_hostname is None:
            raise ValueError("you have to pass server_hostname when using ssl")
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, path)
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError("no path and sock were specified")
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
            sock.setblocking(False)
        return await self._create_connection_transport(  # type: ignore[attr-defined,no-any-return]
            sock, protocol_factory, ssl, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)

    async def create_unix_server(
            self, protocol_factory: Callable[[], Any], path: Any = None, *,
            sock: socket.socket | None = None, backlog: int = 100, ssl: Any = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None, start_serving: bool = True,
            cleanup_socket: bool = True) -> base_events.Server:
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if path[0] not in (0, "\x00"):  # not Linux's abstract namespace: a file
                try:
                    if stat.S_ISSOCK(os.stat(path).st_mode):
                        os.remove(path)  # asyncio's rule: a leftover socket file is replaced
                except FileNotFoundError:
                    pass
            try:
                sock.bind(path)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(errno.EADDRINUSE,
                                  f"Address {path!r} is already in use") from None
                raise
        else:
            if sock is None:
                raise ValueError("path was not specified, and no sock specified")
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
        sock.setblocking(False)
        server = base_events.Server(self, [sock], protocol_factory, ssl, backlog,
                                    ssl_handshake_timeout, ssl_shutdown_timeout)
        if start_serving:
            await server.start_serving()  # then a sleep(0), as asyncio does: the first accept
        return server

    # -- signals, over the reactor's wakeup fd ----------------------------------------------------------

    @staticmethod
    def _check_signal(sig: Any) -> None:
        if not isinstance(sig, int):
            raise TypeError(f"sig must be an int, not {sig!r}")
        if sig not in signal.valid_signals():
            raise ValueError(f"invalid signal number {sig}")

    def add_signal_handler(self, sig: int, callback: Callable[[Unpack[Ts]], Any],
                           *args: Unpack[Ts]) -> None:
        if coroutines.iscoroutine(callback) or coroutines.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        handle = events.Handle(callback, args, self, None)
        try:
            self._reactor.add_signal_handler(sig, self._run_handle, handle)
        except OSError as exc:  # SIGKILL, SIGSTOP: the kernel refuses with EINVAL
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught") from None
            raise

    def remove_signal_handler(self, sig: int) -> bool:
        self._check_signal(sig)
        return self._reactor.remove_signal_handler(sig)

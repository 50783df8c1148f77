"""Pipe transports (``connect_read_pipe``, ``connect_write_pipe``) on the reactor's poller.

A pipe is not a socket: no ``recv``/``send``, no half-close, no peer address, so the reactor's
``Connection`` does not fit and these two talk to the file descriptor with ``os.read`` and
``os.write``. What they share with a connection is the pattern: non-blocking fd, a callback when
the poller says it is ready, EAGAIN meaning "wait for the next readiness", a partial write
queueing the rest, and ``connection_lost`` on a later pass than the close that causes it.

The pipe ends that work this way are FIFOs, sockets and character devices (a pty, say):
``select()`` on a regular file always reports "ready", so a file is refused.

Two kernel facts the write side depends on: writing to a pipe whose reader has gone raises
``EPIPE`` (``BrokenPipeError``; Python ignores SIGPIPE), and the poller reports the write end
of a FIFO or socket *readable* when the reader closes (EPOLLERR/EPOLLHUP), which is how the
transport learns of it without writing.
"""

from __future__ import annotations

import asyncio
import os
import stat
import warnings
from asyncio import transports
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reactor.aio.loop import ReactorEventLoop

#: Bytes asked of one os.read(): a pipe holds 64 KiB by default on Linux, a pty less.
READ_SIZE = 256 * 1024


def _pipe_fd(pipe: Any, *, allow_char_device: bool = True) -> int:
    fd = int(pipe.fileno())
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
            or (allow_char_device and stat.S_ISCHR(mode))):
        raise ValueError("Pipe transport is only for pipes, sockets and character devices")
    return fd


class _PipeTransport:
    """What both ends share: the fd, its protocol, the close that tells the protocol later."""

    _loop: ReactorEventLoop
    _protocol: Any
    _extra: dict[str, Any]  # asyncio.BaseTransport's, private (typeshed leaves it out)

    def _init_pipe(self, loop: ReactorEventLoop, pipe: Any, protocol: Any) -> None:
        self._loop = loop
        self._pipe = pipe
        self._fileno = _pipe_fd(pipe)
        self._protocol = protocol
        self._closing = False
        self._lost = False
        os.set_blocking(self._fileno, False)

    def _announce(self, waiter: asyncio.Future[Any] | None) -> None:
        # asyncio's order: connection_made, then readiness watching, then the waiter, each on
        # its own callback, so that nothing reaches the protocol before connection_made.
        self._loop.call_soon(self._protocol.connection_made, self)
        self._loop.call_soon(self._watch)
        if waiter is not None:
            self._loop.call_soon(_set_result_unless_cancelled, waiter)

    def _watch(self) -> None:
        raise NotImplementedError

    def _unwatch(self) -> None:
        reactor = self._loop._reactor
        if not self._loop.is_closed():
            reactor.remove_reader(self._fileno)
            reactor.remove_writer(self._fileno)

    def __repr__(self) -> str:
        state = "closed" if self._pipe is None else "closing" if self._closing else "open"
        return f"<{type(self).__name__} fd={self._fileno} {state}>"

    def is_closing(self) -> bool:
        return self._closing

    def set_protocol(self, protocol: Any) -> None:
        self._protocol = protocol

    def get_protocol(self) -> Any:
        return self._protocol

    def _close(self, exc: BaseException | None) -> None:
        self._closing = True
        self._unwatch()
        self._loop.call_soon(self._call_connection_lost, exc)

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        if not isinstance(exc, OSError):
            self._loop.call_exception_handler({
                "message": message, "exception": exc, "transport": self,
                "protocol": self._protocol})
        self._close(exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        try:
            self._protocol.connection_lost(exc)
        finally:
            if self._pipe is not None:
                self._pipe.close()
            self._pipe = None
            self._protocol = None

    def __del__(self, warn: Any = warnings.warn) -> None:
        if getattr(self, "_pipe", None) is not None:
            warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._pipe.close()


def _set_result_unless_cancelled(waiter: asyncio.Future[Any]) -> None:
    if not waiter.cancelled():
        waiter.set_result(None)


class ReadPipeTransport(_PipeTransport, asyncio.ReadTransport):
    """The read end: ``data_received`` for each ``os.read``; ``b""`` (the writer closed) is EOF,
    then the transport closes, as a pipe has nothing after its end."""

    def __init__(self, loop: ReactorEventLoop, pipe: Any, protocol: Any,
                 waiter: asyncio.Future[Any] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        asyncio.ReadTransport.__init__(self, extra)
        self._extra["pipe"] = pipe
        self._init_pipe(loop, pipe, protocol)
        self._paused = False
        self._announce(waiter)

    def _watch(self) -> None:
        if not self._closing and not self._paused:
            self._loop._reactor.add_reader(self._fileno, self._read_ready)

    def _read_ready(self) -> None:
        try:
            data = os.read(self._fileno, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return  # EAGAIN: the readiness was spurious, or someone else read first
        except OSError as exc:
            self._fatal_error(exc, "Fatal read error on pipe transport")
            return
        if data:
            self._protocol.data_received(data)
            return
        self._closing = True
        self._unwatch()
        self._loop.call_soon(self._protocol.eof_received)
        self._loop.call_soon(self._call_connection_lost, None)

    def pause_reading(self) -> None:
        if self._closing or self._paused:
            return
        self._paused = True
        self._loop._reactor.remove_reader(self._fileno)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        self._loop._reactor.add_reader(self._fileno, self._read_ready)

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def close(self) -> None:
        if not self._closing:
            self._close(None)

    def abort(self) -> None:
        self._close(None)


class WritePipeTransport(_PipeTransport, transports._FlowControlMixin, asyncio.WriteTransport):
    """The write end: ``os.write`` at once when nothing is queued, the rest queued until the
    poller says the pipe has room; ``pause_writing``/``resume_writing`` at the watermarks."""

    if TYPE_CHECKING:  # _FlowControlMixin's, private (typeshed declares none of its methods)
        def _maybe_pause_protocol(self) -> None: ...
        def _maybe_resume_protocol(self) -> None: ...

    def __init__(self, loop: ReactorEventLoop, pipe: Any, protocol: Any,
                 waiter: asyncio.Future[Any] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        transports._FlowControlMixin.__init__(self, extra, loop)
        self._extra["pipe"] = pipe
        self._init_pipe(loop, pipe, protocol)
        mode = os.fstat(self._fileno).st_mode
        #: Only a FIFO or socket reports its reader's close as readability (a pty does not).
        self._watch_reader_close = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
        self._buffer = bytearray()
        self._announce(waiter)

    def _watch(self) -> None:
        if self._watch_reader_close and not self._closing:
            self._loop._reactor.add_reader(self._fileno, self._reader_closed)

    def _reader_closed(self) -> None:
        """Readable on a write end: the reader went away. Queued bytes can never arrive."""
        self._close(BrokenPipeError() if self._buffer else None)

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def write(self, data: Any) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        data = memoryview(data).cast("B")
        if not data or self._lost or self._closing and not self._buffer:
            return
        if not self._buffer:
            try:
                written = os.write(self._fileno, data)
            except (BlockingIOError, InterruptedError):
                written = 0
            except OSError as exc:  # EPIPE: the reader is gone
                self._fatal_error(exc, "Fatal write error on pipe transport")
                return
            if written == len(data):
                return
            data = data[written:]
            self._loop._reactor.add_writer(self._fileno, self._write_ready)
        self._buffer += data
        self._maybe_pause_protocol()

    def _write_ready(self) -> None:
        try:
            written = os.write(self._fileno, self._buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._buffer.clear()
            self._fatal_error(exc, "Fatal write error on pipe transport")
            return
        del self._buffer[:written]
        self._maybe_resume_protocol()  # may write more
        if self._buffer:
            return
        self._loop._reactor.remove_writer(self._fileno)
        if self._closing:
            self._close(None)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """A pipe's only EOF is closing the write end: after the queue is flushed."""
        if self._closing:
            return
        self._closing = True
        if not self._buffer:
            self._close(None)

    def close(self) -> None:
        if self._pipe is not None and not self._closing:
            self.write_eof()

    def abort(self) -> None:
        self._buffer.clear()
        self._close(None)

"""Error policy: named errno sets, the one ``classify()`` every syscall's ``OSError`` goes
through, and what happens to an exception that escapes user code.

Owns nothing but the policy, and sits below every other module (it imports none of them), so
the loop, the listeners, the connectors and the transports all report the same way.

A non-blocking socket reports three very different things with
exceptions, and each needs a different answer:

* *would block*: EAGAIN/EWOULDBLOCK mean "nothing to read" or "the kernel's send buffer is full";
  EINTR means a signal arrived mid-call. Nothing is wrong: wait for the next readiness event.
* *peer gone*: ECONNRESET (the peer sent RST), EPIPE (we wrote after the peer's RST or after our
  own shutdown), ENOTCONN, ECONNABORTED, ETIMEDOUT (keepalive or retransmissions gave up). An
  everyday event on the Internet: close that one connection and log at debug level.
* *resources exhausted*: EMFILE/ENFILE (descriptor limits), ENOBUFS/ENOMEM. On ``accept()`` these
  leave the pending connection in the backlog, so the listening socket stays readable: retrying at
  once would spin the CPU at 100 %. The listener stops accepting and retries on a timer.
* anything else is *unexpected*: close that connection and log with a traceback.

An exception raised by a protocol's callback, a timer's callback or a protocol factory is a bug in
that code, not in the loop: ``report_callback_error`` logs it with its traceback and the loop goes
on serving everyone else (``reactor/connection.py`` also aborts the one connection concerned).
"""

from __future__ import annotations

import enum
import errno
import logging

log = logging.getLogger("reactor")

WOULD_BLOCK_ERRNOS = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR})

PEER_GONE_ERRNOS = frozenset({
    errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ECONNABORTED,
    errno.ESHUTDOWN, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH,
})

RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class ErrorKind(enum.Enum):
    WOULD_BLOCK = "would block"
    PEER_GONE = "peer gone"
    RESOURCES_EXHAUSTED = "resources exhausted"
    UNEXPECTED = "unexpected"


def classify(exc: OSError) -> ErrorKind:
    """Say which of the four kinds ``exc`` is (see the module docstring)."""
    code = exc.errno
    if code in WOULD_BLOCK_ERRNOS:
        return ErrorKind.WOULD_BLOCK
    if code in PEER_GONE_ERRNOS:
        return ErrorKind.PEER_GONE
    if code in RESOURCE_ERRNOS:
        return ErrorKind.RESOURCES_EXHAUSTED
    return ErrorKind.UNEXPECTED


def describe(exc: BaseException) -> str:
    """One line for logs and users: ``ECONNREFUSED (Connection refused)`` style."""
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"{name} ({exc.strerror})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def report_callback_error(exc: BaseException, where: str) -> None:
    """The policy for an exception that escaped user code: log it with its traceback.

    KeyboardInterrupt and SystemExit are not ``Exception`` and so are never caught by the
    callers: they end ``run()`` as the user asked.
    """
    log.error("unhandled exception in %s", where, exc_info=exc)

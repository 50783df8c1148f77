"""Subprocesses (``subprocess_exec``, ``subprocess_shell``) with their exit watched by the poller.

``subprocess.Popen`` starts the child; asyncio's loop-agnostic ``BaseSubprocessTransport``
connects its stdin/stdout/stderr pipes through the loop's ``connect_write_pipe`` and
``connect_read_pipe`` (``reactor/aio/pipes.py``). What is left for a loop is learning that
the child exited, and Linux (5.3+) makes that one more file descriptor: ``os.pidfd_open(pid)``
becomes readable when the process ends. No SIGCHLD handler (which would catch every child of
the process, started by us or not) and no thread blocked in ``waitpid`` are needed: the reactor
watches the pidfd like a socket, then ``waitpid`` reaps the child, which stays a zombie until
then, so its pid cannot be reused before we have its status.
"""

from __future__ import annotations

import logging
import os
import subprocess
from asyncio import base_subprocess
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reactor.aio.loop import ReactorEventLoop

log = logging.getLogger(__name__)

#: What a child whose status someone else reaped reports (asyncio's choice too).
UNKNOWN_STATUS = 255


def can_watch_children() -> bool:
    """pidfds are Linux's (3.9+ in Python, 5.3+ in the kernel)."""
    return hasattr(os, "pidfd_open")


class SubprocessTransport(base_subprocess.BaseSubprocessTransport):
    """asyncio's subprocess transport; only the start of the child is a loop's to write."""

    def _start(self, args: Any, shell: bool, stdin: Any, stdout: Any, stderr: Any,
               bufsize: int, **kwargs: Any) -> None:
        self._proc = subprocess.Popen(args, shell=shell, stdin=stdin, stdout=stdout,
                                      stderr=stderr, universal_newlines=False, bufsize=bufsize,
                                      **kwargs)


class ChildWatcher:
    """One loop's children: a pidfd on the reactor's poller for each child still running."""

    def __init__(self, loop: ReactorEventLoop) -> None:
        self._loop = loop
        self._pidfds: dict[int, int] = {}  # pid -> pidfd

    def watch(self, transport: SubprocessTransport) -> None:
        pid = transport.get_pid()
        assert pid is not None  # None only before _start, which the constructor ran
        pidfd = os.pidfd_open(pid)  # a child that already exited is a zombie: this works
        self._pidfds[pid] = pidfd
        self._loop.reactor.add_reader(pidfd, self._exited, pid, transport)

    def _exited(self, pid: int, transport: SubprocessTransport) -> None:
        self._forget(pid)
        try:
            _, status = os.waitpid(pid, 0)  # readable pidfd: the child has ended, no blocking
        except ChildProcessError:
            log.warning("child process %d was reaped by someone else: its exit status is "
                        "unknown, reported as %d", pid, UNKNOWN_STATUS)
            returncode = UNKNOWN_STATUS
        else:
            returncode = os.waitstatus_to_exitcode(status)  # -N for a signal, as Popen says
        transport._process_exited(returncode)  # type: ignore[attr-defined]

    def _forget(self, pid: int) -> None:
        pidfd = self._pidfds.pop(pid)
        self._loop.reactor.remove_reader(pidfd)
        os.close(pidfd)

    def close(self) -> None:
        """The loop closes: stop watching (the children run on, as with asyncio's loop)."""
        for pid in list(self._pidfds):
            self._forget(pid)

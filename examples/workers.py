"""Several processes on one port: ``--workers N`` for the example servers.

Owns the worker processes, not what they serve. One Python process runs one reactor on one core;
to use more cores, run N copies. They can all listen on the same port because each sets
``SO_REUSEPORT`` (Linux 3.9+): the kernel then spreads incoming connections across the listening
sockets by a hash of the connection's addresses, so each worker accepts its own share and no
process has to hand sockets to another. (nginx's ``reuseport`` and the like work the same way.)

The parent:

* binds a placeholder socket with ``SO_REUSEPORT`` first, so ``--port 0`` picks one port for
  everybody and the port stays ours while workers come and go; it never listens on it, so the
  kernel gives it no connections;
* forks the workers, and prints the ``listening on`` line once every one of them is listening
  (each writes a byte to a pipe when it is): a client that connects the moment it reads the
  line must not find the port without a listener and be refused;
* runs a reactor of its own for signals only: SIGINT/SIGTERM are forwarded to every worker (each
  shuts down gracefully; a second signal makes them abort), SIGCHLD reaps workers, and a worker
  that dies while we are not stopping is logged and restarted after a short delay;
* exits 0 once every worker has exited after a stop signal.

Only servers whose state lives in their connections can be split this way as they are: a chat
room lives in one process, so the chat server takes ``--workers`` only with ``--redis``, where
every worker is one server of a room shared through Redis (``protocols/chat_redis.py``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable

from examples import early_signals
from examples.args import EXIT_OK, cannot_listen, usage_error
from examples.logsetup import TraceFileError, close_reactor, make_reactor
from reactor import Reactor
from reactor.address import bind_socket, format_address

log = logging.getLogger("examples.workers")

#: A crashed worker is replaced after this long, so a worker that dies at once cannot make the
#: parent fork in a tight loop.
RESTART_DELAY_SECONDS = 0.5


def run_workers(args: argparse.Namespace, program: str,
                serve: Callable[[int, Callable[[], object]], int], *,
                announce: Callable[[str], str]) -> int:
    """Serve with ``args.workers`` processes; ``serve(port, on_listening)`` runs one worker's
    server and calls ``on_listening()`` once it listens; ``announce(HOST:PORT)`` is the line
    printed once all of them do."""
    host = args.host
    try:
        placeholder = bind_socket(host, args.port, socket.SOCK_STREAM, reuse_address=True,
                                  reuse_port=True)
    except OSError as exc:
        return cannot_listen(program, format_address((host, args.port)), exc)
    port = placeholder.getsockname()[1]
    try:
        reactor = make_reactor(args)
    except TraceFileError as exc:
        placeholder.close()
        return usage_error(program, str(exc))
    ready_reader, ready_writer = os.pipe()
    pool = WorkerPool(reactor, args.workers,
                      lambda: serve(port, lambda: os.write(ready_writer, b"!")))
    announcement = announce(format_address(placeholder.getsockname()))

    def worker_listening() -> None:
        pool.listening += len(os.read(ready_reader, 4096))
        if pool.listening >= args.workers:
            print(announcement, flush=True)
            reactor.remove_reader(ready_reader)  # later restarts need no announcement

    reactor.add_reader(ready_reader, worker_listening)
    try:
        if pool.install():  # else a signal came while we were starting: nothing to stop
            pool.start()
            reactor.run()
    finally:
        close_reactor(reactor)
        placeholder.close()
        os.close(ready_reader)
        os.close(ready_writer)
    return EXIT_OK


class WorkerPool:
    """Forks ``count`` workers running ``serve``, restarts the ones that die, stops them all."""

    def __init__(self, reactor: Reactor, count: int, serve: Callable[[], int]) -> None:
        self._reactor = reactor
        self._count = count
        self._serve = serve
        self.workers: dict[int, int] = {}  # pid -> worker number
        self.listening = 0  # workers that have said they listen
        self._stopping = False

    def install(self) -> bool:
        """Take the signals over; false if a stop signal came during start-up."""
        for signum in early_signals.STOP_SIGNALS:
            self._reactor.add_signal_handler(signum, self._forward, signum)
        self._reactor.add_signal_handler(signal.SIGCHLD, self._reap)
        return not early_signals.handed_over()

    def start(self) -> None:
        for number in range(self._count):
            self._spawn(number)

    def _spawn(self, number: int) -> None:
        if self._stopping:
            return
        sys.stdout.flush()  # or the child would write the parent's buffered output again
        # Blocked across fork(): a stop signal for the new child must not run the handler it
        # copied from us, which would queue it on a reactor the child is about to drop. It
        # waits, pending, until the child's own early handler is in place.
        early_signals.block()
        pid = os.fork()
        if pid == 0:
            # The child: drop the parent's reactor (its signal handlers, selector and waker are
            # copies of the parent's) and serve. Never return into the parent's loop.
            status = 1
            try:
                self._reactor.close_in_child()
                early_signals.restart_in_child()
                status = self._serve()
            finally:
                sys.stdout.flush()
                os._exit(status)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, early_signals.STOP_SIGNALS)
        self.workers[pid] = number
        log.info("worker %d started (pid %d)", number, pid)

    def _forward(self, signum: int) -> None:
        self._stopping = True
        for pid in self.workers:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass  # already gone: SIGCHLD will reap it

    def _reap(self) -> None:
        """SIGCHLD: collect every exited worker (signals coalesce, so loop until none)."""
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            number = self.workers.pop(pid, None)
            if number is None:
                continue
            if not self._stopping:
                log.warning("worker %d (pid %d) exited with status %s; restarting it",
                            number, pid, describe_status(status))
                self._reactor.call_later(RESTART_DELAY_SECONDS, self._spawn, number)
        if self._stopping and not self.workers:
            self._reactor.stop()


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return str(os.waitstatus_to_exitcode(status))

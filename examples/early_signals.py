"""SIGINT and SIGTERM that arrive before the reactor can take them: remembered, then replayed.

A supervisor may signal a program at any instant. Until a program installs a handler,
SIGTERM has the kernel's default action (the process dies, exit status -15, no cleanup) and
SIGINT has Python's, which raises ``KeyboardInterrupt`` in whatever line is running: a
traceback from an import, from ``bind()``, from argument parsing. So each program calls
``catch()`` as its first statement, before its other imports, and every later stage of start-up
asks ``stop_requested()`` or takes the signals over with ``handed_over()``:

* the handler only records the signal number; the reactor is not there yet to be woken;
* a program whose parent blocked these signals (some supervisors do, and the mask survives
  ``exec``) unblocks them here: a pending signal is delivered now, to this handler;
* once the reactor's own handlers replace this one (``Reactor.add_signal_handler``, which arms
  ``set_wakeup_fd`` before it swaps the handler), ``handed_over()`` returns what was recorded,
  for the program to replay into the loop; a signal after the swap goes to the reactor.

What no program can catch is a signal during the interpreter's own start-up, before the first
line of the program runs: the default action applies there (for SIGINT, Python's handler is
installed early in that start-up, and then a ``KeyboardInterrupt`` can come from ``site``).

The record is process-wide, like the signal dispositions it stands in for.
"""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_received: list[int] = []


def _record(signum: int, frame: object) -> None:
    _received.append(signum)


def catch() -> None:
    """Record SIGINT/SIGTERM from now on, and unblock them if our parent blocked them."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _record)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def stop_requested() -> bool:
    return bool(_received)


def handed_over() -> list[int]:
    """The signals recorded so far, forgotten here: the reactor's handlers now take new ones."""
    received = list(_received)
    _received.clear()
    return received


def block() -> None:
    """Hold SIGINT/SIGTERM pending (around ``fork()``: see ``examples/workers.py``)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def restart_in_child() -> None:
    """In a forked child, with the signals blocked: forget the parent's record, record our own."""
    _received.clear()
    catch()

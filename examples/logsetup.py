"""Logging to stderr and the reactor's tracers, as ``--log-level``, ``--trace`` and
``--trace-json`` ask.

Owns the ``--trace-json`` file: opened before the reactor exists (a bad path is a usage error,
one line and exit 2, before anything listens), closed by ``close_reactor``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import IO

from reactor import Reactor
from reactor.trace import JsonTracer, PassTracer, TeeTracer, Tracer


class TraceFileError(Exception):
    """``--trace-json FILE`` cannot be opened for writing; ``str()`` says which and why."""


def make_reactor(args: argparse.Namespace) -> Reactor:
    """Logging to stderr as the flags say, and a reactor traced as ``--trace`` and
    ``--trace-json`` say. Raises ``TraceFileError``; call ``close_reactor`` when done."""
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tracers: list[Tracer] = []
    if args.trace:
        logging.getLogger("reactor.trace").setLevel(logging.INFO)
        tracers.append(PassTracer())
    if args.trace_json:
        tracers.append(TraceFile(args.trace_json))
    tracer = tracers[0] if len(tracers) == 1 else TeeTracer(*tracers) if tracers else None
    return Reactor(tracer=tracer)


class TraceFile(JsonTracer):
    """A ``JsonTracer`` that owns the file it writes, so the program can close it."""

    def __init__(self, path: str) -> None:
        try:
            stream: IO[str] = open(path, "w", encoding="utf-8")
        except OSError as exc:
            raise TraceFileError(f"cannot write --trace-json {path}: "
                                 f"{exc.strerror or exc}") from None
        super().__init__(stream)
        self.stream = stream

    def close(self) -> None:
        self.stream.close()


def close_reactor(reactor: Reactor) -> None:
    """Print the last pass's trace block, close the ``--trace-json`` file, release the reactor."""
    tracers = getattr(reactor.tracer, "tracers", (reactor.tracer,))
    for tracer in tracers:
        if isinstance(tracer, PassTracer):
            tracer.flush()
        elif isinstance(tracer, TraceFile):
            tracer.close()
    reactor.close()

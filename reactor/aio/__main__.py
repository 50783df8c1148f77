"""Run an asyncio program on our loop:  python -m reactor.aio [--trace] [--trace-json FILE] SCRIPT [ARGS...]

The script runs unchanged as ``__main__``: its ``asyncio.run(...)`` asks the event-loop policy
for a loop, and the policy installed here makes ours. ``--trace`` logs every reactor pass to
stderr (why it woke, each syscall, each callback, buffer sizes), ``--trace-json`` writes the
same events as JSON lines.
"""

from __future__ import annotations

import argparse
import logging
import runpy
import sys

from reactor.aio import install
from reactor.trace import JsonTracer, PassTracer, TeeTracer, Tracer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reactor.aio",
                                     description="Run an asyncio program on the reactor's loop.")
    parser.add_argument("--trace", action="store_true",
                        help="log every loop pass to stderr")
    parser.add_argument("--trace-json", metavar="FILE",
                        help="write the reactor's events to FILE as JSON lines")
    parser.add_argument("script", help="the asyncio program (a .py file)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    options = parser.parse_args(argv)
    tracers: list[Tracer] = []
    pass_tracer = None
    if options.trace:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        pass_tracer = PassTracer()
        tracers.append(pass_tracer)
    trace_file = None
    if options.trace_json:
        try:
            trace_file = open(options.trace_json, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            parser.exit(2, f"python -m reactor.aio: cannot write --trace-json "
                           f"{options.trace_json}: {exc.strerror}\n")
        tracers.append(JsonTracer(trace_file))
    tracer = tracers[0] if len(tracers) == 1 else TeeTracer(*tracers) if tracers else None
    install(tracer=tracer)
    sys.argv = [options.script, *options.args]
    try:
        runpy.run_path(options.script, run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except FileNotFoundError as exc:
        if exc.filename == options.script:
            parser.exit(2, f"python -m reactor.aio: no such script: {options.script}\n")
        raise
    finally:
        if pass_tracer is not None:
            pass_tracer.flush()
        if trace_file is not None:
            trace_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

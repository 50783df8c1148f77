"""Key-value server: SET, GET, DEL, EXPIRE and QUIT, one line each (docs/tutorial/kv_protocol.py).

    python -m docs.tutorial.kv_server --port 8890
    printf 'SET name Ada\nGET name\n' | nc -N 127.0.0.1 8890
"""

from __future__ import annotations

import argparse
import logging
import sys

from docs.tutorial.kv_protocol import Store
from reactor import Reactor
from reactor.trace import PassTracer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docs.tutorial.kv_server",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks any free port")
    parser.add_argument("--trace", action="store_true", help="log every loop pass to stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.trace else logging.WARNING)
    store = Store()
    tracer = PassTracer() if args.trace else None
    reactor = Reactor(tracer=tracer)
    try:
        listener = reactor.listen_tcp(store.protocol_factory, args.host, args.port)
    except OSError as exc:  # port in use, address not ours: one line, the usage status
        print(f"kv_server: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return 2
    reactor.stop_on_signals()  # SIGINT/SIGTERM make run() return instead of raising
    print(f"listening on {listener.name}", flush=True)
    try:
        reactor.run()
    finally:
        reactor.close()
        if tracer is not None:
            tracer.flush()  # it logs a pass when the next one begins: the last is still held
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run an asyncio (or uvloop) server the way our examples run: announce, serve until a signal.

Owns the loop of one peer process. Does not own the protocols: ``asyncio_echo`` and
``asyncio_upper`` pass their factories.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
from collections.abc import Callable
from typing import Any

from examples.bench.peers.common import PauseCounter, announce

#: Our listener's backlog, so a burst of connects meets the same queue.
BACKLOG = 128


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop  # optional: pip install -e '.[bench]'

        return uvloop.new_event_loop
    return asyncio.new_event_loop


async def _serve(factory: Callable[[], asyncio.Protocol], host: str, port: int,
                 tls: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host, port, backlog=BACKLOG, **tls)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    announce(host, server.sockets[0].getsockname()[1])
    await stop.wait()
    server.close()


def serve(factory: Callable[[], asyncio.Protocol], args: argparse.Namespace,
          counter: PauseCounter, tls_context: ssl.SSLContext | None = None) -> int:
    """Serve until SIGINT/SIGTERM; with ``tls_context``, TLS only, and the handshake timeout
    ``args.tls_handshake_timeout`` as our servers apply it (asyncio refuses the timeout
    without a context)."""
    tls: dict[str, Any] = {} if tls_context is None else {
        "ssl": tls_context, "ssl_handshake_timeout": args.tls_handshake_timeout}
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(_serve(factory, args.host, args.port, tls))
    counter.report()
    return 0

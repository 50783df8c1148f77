"""Run an asyncio server (on asyncio's loop, uvloop, or ours: ``--loop``) the way our examples
run: announce, serve until a signal.

Owns the loop of one peer process. Does not own the protocols: ``asyncio_echo`` and
``asyncio_upper`` pass their factories, ``asyncio_streams_echo`` its stream handler.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from examples.bench.peers.common import BACKLOG, PauseCounter, announce


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop  # optional: pip install -e '.[bench]'

        return uvloop.new_event_loop
    if name == "reactor":
        import reactor.aio  # the asyncio program unchanged, on our reactor

        return reactor.aio.new_event_loop
    return asyncio.new_event_loop


async def _serve(start: Callable[[], Awaitable[asyncio.Server]], host: str) -> None:
    loop = asyncio.get_running_loop()
    server = await start()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    announce(host, server.sockets[0].getsockname()[1])
    await stop.wait()
    server.close()


def serve(factory: Callable[[], asyncio.Protocol], args: argparse.Namespace,
          counter: PauseCounter, tls_context: ssl.SSLContext | None = None) -> int:
    """Serve with a Protocol factory (``loop.create_server``); with ``tls_context``, TLS only,
    and the handshake timeout ``args.tls_handshake_timeout`` as our servers apply it (asyncio
    refuses the timeout without a context)."""
    tls: dict[str, Any] = {} if tls_context is None else {
        "ssl": tls_context, "ssl_handshake_timeout": args.tls_handshake_timeout}

    async def start() -> asyncio.Server:
        return await asyncio.get_running_loop().create_server(factory, args.host, args.port,
                                                              backlog=BACKLOG, **tls)
    return _run(start, args, counter)


def serve_streams(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                    Awaitable[None]],
                  args: argparse.Namespace, counter: PauseCounter) -> int:
    """Serve with a stream handler (``asyncio.start_server``)."""

    async def start() -> asyncio.Server:
        return await asyncio.start_server(handler, args.host, args.port, backlog=BACKLOG)
    return _run(start, args, counter)


def _run(start: Callable[[], Awaitable[asyncio.Server]], args: argparse.Namespace,
         counter: PauseCounter) -> int:
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(_serve(start, args.host))
    counter.report()
    return 0

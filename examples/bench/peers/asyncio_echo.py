"""Echo server on asyncio's Protocol API (or uvloop's, with ``--loop uvloop``): the peer of
``examples.echo_server``.

    python -m examples.bench.peers.asyncio_echo --port 0 [--loop uvloop]
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast

from examples.bench.peers.asyncio_serve import serve
from examples.bench.peers.common import PauseCounter, parser


class EchoProtocol(asyncio.Protocol):
    """Writes back what arrives; stops reading while its send queue is over the high-water mark."""

    def __init__(self, counter: PauseCounter) -> None:
        self.counter = counter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def pause_writing(self) -> None:
        self.counter.pauses += 1
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0], loops=True).parse_args(argv)
    counter = PauseCounter()
    return serve(lambda: EchoProtocol(counter), args, counter)


if __name__ == "__main__":
    sys.exit(main())

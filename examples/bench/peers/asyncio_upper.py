"""Uppercase line server on asyncio's Protocol API (or uvloop's, with ``--loop uvloop``): the
peer of ``examples.uppercase_server``.

    python -m examples.bench.peers.asyncio_upper --port 0 [--loop uvloop]
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast

from examples.bench.peers.asyncio_serve import serve
from examples.bench.peers.common import (
    MAX_LINE_BYTES,
    PauseCounter,
    line_too_long_reply,
    parser,
    upper_reply,
)


class UpperProtocol(asyncio.Protocol):
    """One reply per ``\\n``-terminated line, written as soon as the line is complete.

    The unfinished line waits in a ``bytearray``; only the bytes that arrived since the last call
    are searched for the delimiter, so a line trickled in pieces is searched once, as ours is.
    """

    def __init__(self, counter: PauseCounter) -> None:
        self.counter = counter
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        buffer = self.buffer
        search_from = len(buffer)
        buffer += data
        start = 0
        while (end := buffer.find(b"\n", search_from)) >= 0:
            if end - start > MAX_LINE_BYTES + 1:  # + 1: a "\r" before the "\n" is not counted
                self._line_too_long(transport)
                return
            transport.write(upper_reply(buffer[start:end]))
            start = search_from = end + 1
        del buffer[:start]
        if len(buffer) > MAX_LINE_BYTES + 1:
            self._line_too_long(transport)

    def _line_too_long(self, transport: asyncio.Transport) -> None:
        self.buffer.clear()
        transport.write(line_too_long_reply())
        transport.close()

    def pause_writing(self) -> None:
        self.counter.pauses += 1
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0], loops=True).parse_args(argv)
    counter = PauseCounter()
    return serve(lambda: UpperProtocol(counter), args, counter)


if __name__ == "__main__":
    sys.exit(main())

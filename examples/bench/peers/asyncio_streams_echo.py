"""Echo server on asyncio's streams API (``asyncio.start_server``), on the loop ``--loop``
names: what most asyncio programs look like, and what a drop-in loop must make cheaper.

    python -m examples.bench.peers.asyncio_streams_echo --port 0 [--loop uvloop|reactor]
"""

from __future__ import annotations

import asyncio
import sys

from examples.bench.peers.asyncio_serve import serve_streams
from examples.bench.peers.common import PauseCounter, parser

#: Bytes asked of one read(): as much as a loopback socket usually holds at once.
READ_BYTES = 256 * 1024


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Write back what arrives; ``drain()`` waits while the transport is over its high-water
    mark, which is streams' back-pressure (the reader is not read meanwhile)."""
    try:
        while data := await reader.read(READ_BYTES):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass  # the load client's reset at the end of a run
    finally:
        writer.close()


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0], loops=True).parse_args(argv)
    # Streams hide pause_writing inside drain(): the count stays 0, as the harness expects.
    return serve_streams(echo, args, PauseCounter())


if __name__ == "__main__":
    sys.exit(main())

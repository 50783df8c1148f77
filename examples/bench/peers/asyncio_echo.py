"""Echo server on asyncio's Protocol API (or uvloop's, with ``--loop uvloop``): the peer of
``examples.echo_server``.

    python -m examples.bench.peers.asyncio_echo --port 0 [--loop uvloop]
        [--tls-cert FILE --tls-key FILE]

With ``--tls-cert``/``--tls-key`` it serves TLS with the same ``SSLContext`` our servers build
from those flags (``examples/tlsargs.py``), so a TLS row compares the event loops, not two
OpenSSL configurations.
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast

from examples.bench.peers.asyncio_serve import serve
from examples.bench.peers.common import PauseCounter, parser
from examples.tlsargs import (
    TLSSetupError,
    add_server_tls_arguments,
    check_server_tls_arguments,
    server_context,
)


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
    arguments = parser(__doc__.splitlines()[0], loops=True)
    add_server_tls_arguments(arguments)
    args = arguments.parse_args(argv)
    check_server_tls_arguments(arguments, args)
    try:
        context = server_context(args)
    except TLSSetupError as exc:
        print(f"asyncio_echo: {exc}", file=sys.stderr)
        return 2
    counter = PauseCounter()
    return serve(lambda: EchoProtocol(counter), args, counter, context)


if __name__ == "__main__":
    sys.exit(main())

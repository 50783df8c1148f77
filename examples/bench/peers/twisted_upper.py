"""Uppercase line server on Twisted's LineReceiver: the peer of ``examples.uppercase_server``.

    python -m examples.bench.peers.twisted_upper --port 0
"""

from __future__ import annotations

import sys
from typing import Any

# twisted_serve first: it installs the epoll reactor before anything imports the default one.
from examples.bench.peers.twisted_serve import ReadPauser, serve  # isort: skip
from twisted.protocols.basic import LineReceiver

from examples.bench.peers.common import (
    MAX_LINE_BYTES,
    PauseCounter,
    line_too_long_reply,
    parser,
    upper_reply,
)


class Upper(LineReceiver):
    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE_BYTES + 1  # + 1: a "\r" before the "\n" is not counted

    def __init__(self, counter: PauseCounter) -> None:
        self.counter = counter
        self.tcp: Any = None  # self.transport, untyped (see twisted_serve)

    def connectionMade(self) -> None:
        self.tcp = self.transport
        self.tcp.registerProducer(ReadPauser(self.tcp, self.counter), True)

    def lineReceived(self, line: bytes) -> None:
        self.tcp.write(upper_reply(line))

    def lineLengthExceeded(self, line: bytes) -> None:
        self.tcp.write(line_too_long_reply())
        self.tcp.loseConnection()


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0], loops=False).parse_args(argv)
    counter = PauseCounter()
    return serve(lambda: Upper(counter), args, counter)


if __name__ == "__main__":
    sys.exit(main())

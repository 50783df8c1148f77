"""Echo server on Twisted: the peer of ``examples.echo_server``.

    python -m examples.bench.peers.twisted_echo --port 0
"""

from __future__ import annotations

import sys
from typing import Any

# twisted_serve first: it installs the epoll reactor before anything imports the default one.
from examples.bench.peers.twisted_serve import ReadPauser, serve  # isort: skip
from twisted.internet.protocol import Protocol

from examples.bench.peers.common import PauseCounter, parser


class Echo(Protocol):
    def __init__(self, counter: PauseCounter) -> None:
        self.counter = counter
        self.tcp: Any = None  # self.transport, untyped (see twisted_serve)

    def connectionMade(self) -> None:
        self.tcp = self.transport
        self.tcp.registerProducer(ReadPauser(self.tcp, self.counter), True)

    def dataReceived(self, data: bytes) -> None:
        self.tcp.write(data)


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0], loops=False).parse_args(argv)
    counter = PauseCounter()
    return serve(lambda: Echo(counter), args, counter)


if __name__ == "__main__":
    sys.exit(main())

"""Run a Twisted server the way our examples run: announce, serve until a signal.

Owns the reactor of one peer process (epoll, installed before anything imports the default),
and the back-pressure rule: each connection registers a streaming producer that pauses reading
when Twisted's write buffer passes ``bufferSize`` (64 KiB, our high-water mark) and resumes it
once drained (Twisted's own idiom for "stop reading a peer that does not read"), counting pauses.

Twisted types its reactor and transports as zope interfaces, which mypy cannot follow without
a plugin; they are held as ``Any`` here rather than silenced line by line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from twisted.internet import epollreactor

epollreactor.install()  # type: ignore[no-untyped-call]

from twisted.internet import reactor as installed_reactor  # noqa: E402  (after install())
from twisted.internet.interfaces import IPushProducer  # noqa: E402
from twisted.internet.protocol import Factory, Protocol  # noqa: E402
from zope.interface import implementer  # type: ignore[import-untyped]  # noqa: E402

from examples.bench.peers.common import BACKLOG, PauseCounter, announce  # noqa: E402

reactor: Any = installed_reactor


@implementer(IPushProducer)
class ReadPauser:
    """A transport's reading, seen as the producer of what we write back to it."""

    def __init__(self, transport: Any, counter: PauseCounter) -> None:
        self.transport = transport
        self.counter = counter

    def pauseProducing(self) -> None:
        self.counter.pauses += 1
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self.transport.stopProducing()


class PeerFactory(Factory):
    """Builds each connection's protocol with ``make()``, as our servers' factories do."""

    def __init__(self, make: Callable[[], Protocol]) -> None:
        self.make = make

    def buildProtocol(self, addr: object) -> Protocol:
        return self.make()


def serve(make: Callable[[], Protocol], args: argparse.Namespace, counter: PauseCounter) -> int:
    port = reactor.listenTCP(args.port, PeerFactory(make), backlog=BACKLOG, interface=args.host)
    announce(args.host, port.getHost().port)
    reactor.run()  # installs SIGINT/SIGTERM handlers that stop it
    counter.report()
    return 0

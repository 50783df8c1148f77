"""EchoProtocol: every byte back to the peer, in order, as soon as it arrives.

Owns nothing. It is the protocol the benchmarks measure, so it shows the cheapest path through the
receive contract: ``buffer.take()`` of a buffer holding one whole chunk returns the very ``bytes``
object ``recv()`` produced, and ``write()`` hands it straight to ``send()``; no byte is copied.

Read next: ``protocols/line.py``, for protocols that need framing.
"""

from __future__ import annotations

from reactor.buffer import ByteBuffer
from reactor.protocol import Protocol


class EchoProtocol(Protocol):
    """Writes back whatever arrives; closes after echoing everything once the peer sends FIN."""

    # No attributes beyond the base class's ``transport`` slot: no ``__dict__`` per connection
    # (40 bytes, ``reactor/protocol.py``).
    __slots__ = ()

    def data_received(self, buffer: ByteBuffer) -> None:
        self.transport.write(buffer.take())

    def eof_received(self) -> bool:
        """Close once the echoes are sent: a client that sends, then shuts down its write side,
        gets every byte back and then our FIN."""
        return False

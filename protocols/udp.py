"""UDP example protocols: echo and upper-case, one reply datagram per request datagram.

Owns nothing: no per-peer state, because UDP has no connections. Each datagram carries its
source address, and the reply goes back to it with ``transport.sendto(reply, addr)``; one
transport answers every client. Message boundaries are UDP's own, so no framing is needed: a
datagram is one request.

Read next: ``examples/udp_echo_server.py`` and ``examples/udp_client.py``.
"""

from __future__ import annotations

from reactor.address import SocketAddress
from reactor.datagram import DatagramProtocol


class UdpEchoProtocol(DatagramProtocol):
    """Sends every datagram back to its sender, unchanged (an empty one too)."""

    def datagram_received(self, data: bytes, addr: SocketAddress) -> None:
        assert self.transport is not None  # set by connection_made; nothing arrives after close
        self.transport.sendto(data, addr)


class UdpUppercaseProtocol(DatagramProtocol):
    """Replies to each UTF-8 datagram with its text upper-cased ("straße" -> "STRASSE").

    A datagram is one line; a trailing newline stays where it was, so ``nc -u`` users see
    lines. Invalid UTF-8, or a reply too long for one datagram (upper-casing can lengthen text),
    gets a reply starting with ``error:`` instead.
    """

    def datagram_received(self, data: bytes, addr: SocketAddress) -> None:
        assert self.transport is not None  # set by connection_made; nothing arrives after close
        newline = b"\n" if data.endswith(b"\n") else b""
        try:
            reply = data.decode("utf-8").upper().encode("utf-8")
        except UnicodeDecodeError:
            reply = b"error: datagram is not valid UTF-8" + newline
        limit = self.transport.max_datagram_size
        if limit is not None and len(reply) > limit:
            reply = (f"error: the reply would be {len(reply)} bytes, more than one datagram "
                     f"carries ({limit})").encode("ascii") + newline
        self.transport.sendto(reply, addr)

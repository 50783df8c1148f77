"""RedisProtocol: one connection to a Redis server, its commands in flight and their replies.

Owns this connection's FIFO of pending commands and its RESP parser. Does not own connecting,
logging in, reconnecting or any policy: ``protocols/redis_client.py`` makes one of these per
connection and is told when it opens, closes, and receives a push.

Facts the code depends on:

* Redis answers the commands of one connection in the order it received them, one reply each
  (``SUBSCRIBE a b`` is the exception: one confirmation per channel). So a client can send many
  commands without waiting (pipelining) and match replies to commands with a FIFO: the next
  reply always belongs to the oldest command not yet answered.
* After ``SUBSCRIBE`` (RESP2), the connection also carries *pushes*, arrays the server sends
  unasked: ``["message", channel, payload]`` and ``["pmessage", pattern, channel, payload]``.
  They are told apart from replies by their first element, and never consume a FIFO entry. Such
  a connection accepts only (P)SUBSCRIBE, (P)UNSUBSCRIBE, PING and QUIT: the reason a program
  that publishes and subscribes needs two connections.
* A reply may be split across reads anywhere, and many replies may come in one read
  (``protocols/resp.py``).

Back-pressure is *not* ``Protocol``'s default here: pausing our reading when our send queue is
full could deadlock (Redis stops reading our commands while it cannot write us the replies we
stopped reading). The client bounds what it sends instead: at most ``max_pending_bytes`` of
commands not yet answered.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol as Interface

from protocols.resp import RespParser, RespProtocolError
from reactor.connection import MAX_UNCONSUMED_INPUT_BYTES
from reactor.errors import report_callback_error
from reactor.protocol import Protocol

if TYPE_CHECKING:
    from reactor.buffer import ByteBuffer
    from reactor.connection import Connection

log = logging.getLogger("protocols.redis")

#: The first element of a push on a subscribed connection (RESP2).
PUSH_KINDS = frozenset({b"message", b"pmessage"})

ReplyCallback = Callable[[Any], object]
ErrorCallback = Callable[[Exception], object]


class LinkOwner(Interface):
    """What a ``RedisProtocol`` tells the object that made it (``RedisClient``)."""

    def link_made(self, protocol: RedisProtocol) -> None: ...
    def link_lost(self, protocol: RedisProtocol, exc: BaseException | None) -> None: ...
    def push_received(self, push: list[Any]) -> None: ...
    def reply_received(self, pending: PendingCommand) -> None: ...


class PendingCommand:
    """A command sent and not yet (fully) answered, and where its reply goes."""

    __slots__ = ("on_reply", "on_error", "replies_left", "size", "sent_at")

    def __init__(self, on_reply: ReplyCallback | None, on_error: ErrorCallback | None,
                 size: int, sent_at: float, replies: int = 1) -> None:
        self.on_reply = on_reply
        self.on_error = on_error
        self.size = size
        self.sent_at = sent_at
        self.replies_left = replies


class RedisProtocol(Protocol):
    """One connection: ``send()`` writes a command and queues its callbacks; each reply, in
    order, goes to the oldest command's ``on_reply`` (an error reply to its ``on_error``)."""

    def __init__(self, owner: LinkOwner, max_reply_bytes: int) -> None:
        self._owner = owner
        self._parser = RespParser(max_reply_bytes)
        self.pending: deque[PendingCommand] = deque()
        #: Set once a SUBSCRIBE has been sent: from then on pushes may arrive.
        self.subscribed = False
        self._failure: BaseException | None = None

    def connection_made(self, transport: Connection) -> None:
        super().connection_made(transport)
        # The parser leaves at most one incomplete reply in the buffer; let that be as large
        # as the reply budget instead of the connection's 1 MiB default.
        transport.set_read_buffer_limit(max(MAX_UNCONSUMED_INPUT_BYTES,
                                            self._parser.max_reply_bytes + 64))
        self._owner.link_made(self)

    def send(self, data: bytes, pending: PendingCommand) -> None:
        """Write one encoded command; its reply will go to ``pending``."""
        self.pending.append(pending)
        self.transport.write(data)

    def data_received(self, buffer: ByteBuffer) -> None:
        try:
            self._parser.feed(buffer, self._reply_received)
        except RespProtocolError as exc:
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        """Drop the connection now, at once (RST): nothing more can be trusted on it.
        ``exc`` is what the pending commands and the owner are told."""
        if self._failure is None:
            self._failure = exc
        if self.transport is not None:
            self.transport.abort()

    def _reply_received(self, value: Any) -> None:
        if self._failure is not None:
            return  # failing: the rest of what was read is not delivered
        if self.subscribed and type(value) is list and len(value) >= 3 \
                and value[0] in PUSH_KINDS:
            self._owner.push_received(value)
            return
        if not self.pending:
            self.fail(RespProtocolError(f"a reply nobody asked for: {value!r:.80}"))
            return
        pending = self.pending[0]
        pending.replies_left -= 1
        if pending.replies_left:
            return
        self.pending.popleft()
        self._owner.reply_received(pending)
        call_back(pending, value)

    def pause_writing(self) -> None:
        """Keep reading (see the module docstring): the client bounds what it sends."""

    def resume_writing(self) -> None:
        """Nothing was paused."""

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self._owner.link_lost(self, self._failure or exc)


def call_back(pending: PendingCommand, value: Any) -> None:
    """Hand ``value`` to the command's callback: an exception (an error reply, a lost link) to
    ``on_error``, anything else to ``on_reply``. An exception raised by the callback is logged
    (``reactor.errors``) and does not touch the connection, whose replies are still in step."""
    try:
        if isinstance(value, Exception):
            if pending.on_error is not None:
                pending.on_error(value)
            else:
                log.log(logging.WARNING if not isinstance(value, ConnectionError)
                        else logging.DEBUG, "redis command failed, and nobody asked to hear "
                        "of it: %s", value)
        elif pending.on_reply is not None:
            pending.on_reply(value)
    except Exception as exc:
        report_callback_error(exc, "a redis reply callback")

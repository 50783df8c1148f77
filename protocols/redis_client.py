"""RedisClient and RedisSubscriber: a link to one Redis server that stays up by itself.

Owns the link's life: connecting (with a timeout), logging in (``AUTH``, ``SELECT`` from the
URL), reconnecting after any loss with capped exponential backoff and jitter
(``protocols/backoff.py``), and the bound on what is sent but not yet answered. Does not own the
wire (``protocols/redis.py``, ``protocols/resp.py``) nor any meaning of the commands.

    client = RedisClient(reactor, "redis://127.0.0.1:6379/0", on_ready=lambda: ...)
    client.start()
    client.execute("SET", "greeting", "hello", on_reply=print)         # prints OK
    client.execute("GET", "greeting", on_reply=print, on_error=print)  # prints b'hello'

Every command's reply goes to its own ``on_reply``, in the order sent; an error reply
(``ReplyError``) or a lost link (``RedisConnectionError``) goes to its ``on_error``. A callback
never runs inside the ``execute`` call that asked for it, always on a later step of the loop.

The states of the link, and what ``execute`` does in each::

    CONNECTING   the TCP connect is under way            refused: RedisConnectionError
    LOGGING_IN   AUTH / SELECT sent, replies awaited     refused
    READY        commands flow (on_ready was called)     sent at once, pipelined
    WAITING      lost; the next attempt is on a timer    refused
    CLOSED       close() was called                      refused

Commands are refused rather than queued while the link is down: a command queued for minutes
and sent when the link returns is rarely what its caller still wants. When the link drops,
every pending command fails with ``RedisConnectionError``: it may or may not have run.

Bounds: at most ``max_pending_bytes`` of commands may be sent and not yet answered; past it,
``execute`` refuses with ``RedisQueueFull`` (one command is always accepted on an idle link, so a
large one is never refused for its size alone) until the backlog falls to half, when
``on_drained`` is called. This catches both a Redis that stops reading (our send queue grows) and
one that reads but stops answering (``CLIENT PAUSE``, ``DEBUG SLEEP``). A reply not come after
``reply_timeout`` seconds means the server is stuck or gone without a FIN: the link is dropped
and made again.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from protocols.backoff import Backoff
from protocols.redis import ErrorCallback, PendingCommand, RedisProtocol, ReplyCallback, call_back
from protocols.redis_url import RedisURL
from protocols.resp import DEFAULT_MAX_REPLY_BYTES, Argument, RedisError, encode_command
from reactor.errors import describe, report_callback_error

if TYPE_CHECKING:
    from reactor.connector import Connector
    from reactor.loop import Reactor
    from reactor.timers import Timer

log = logging.getLogger("protocols.redis")

CONNECT_TIMEOUT_SECONDS = 5.0
REPLY_TIMEOUT_SECONDS = 5.0
MAX_PENDING_BYTES = 1024 * 1024


class RedisConnectionError(RedisError, ConnectionError):
    """The link is down, or went down before the command's reply came."""


class RedisQueueFull(RedisError):
    """``max_pending_bytes`` of commands are already waiting for their replies."""


class LinkState(enum.Enum):
    CONNECTING = "connecting"
    LOGGING_IN = "logging in"
    READY = "ready"
    WAITING = "waiting to reconnect"
    CLOSED = "closed"


class RedisClient:
    """A self-healing link to one Redis server for ordinary commands (see the module docstring).

    ``on_ready()`` is called each time the link becomes READY (after every reconnection too),
    ``on_down(exc)`` each time an attempt fails or a READY link is lost, ``on_drained()`` when a
    backlog that made ``execute`` refuse has fallen to half. Failures are logged: the first of a
    run at WARNING, the rest at DEBUG, so an outage is one line however long it lasts;
    ``quiet=True`` leaves all of it to the owner.
    """

    def __init__(
        self, reactor: Reactor, url: str | RedisURL, *,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        reply_timeout: float | None = REPLY_TIMEOUT_SECONDS,
        ping_interval: float | None = None,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        backoff: Backoff | None = None,
        on_ready: Callable[[], object] | None = None,
        on_down: Callable[[BaseException], object] | None = None,
        on_drained: Callable[[], object] | None = None,
        quiet: bool = False,
    ) -> None:
        self._reactor = reactor
        self.url = url if isinstance(url, RedisURL) else RedisURL.parse(url)
        self.connect_timeout = connect_timeout
        self.reply_timeout = reply_timeout
        self.ping_interval = ping_interval
        self.max_pending_bytes = max_pending_bytes
        self.max_reply_bytes = max_reply_bytes
        self.backoff = backoff or Backoff()
        self.on_ready = on_ready
        self.on_down = on_down
        self.on_drained = on_drained
        self.quiet = quiet
        self.state = LinkState.WAITING
        self._protocol: RedisProtocol | None = None
        self._connector: Connector | None = None
        self._timers: list[Timer] = []
        self._retry: Timer | None = None
        self._refusing = False
        self._failing_since_ready = False
        #: Bytes of commands sent and not yet answered on the current link.
        self.pending_bytes = 0
        #: Counters, for stats(): links made, losses, commands refused because of the bound.
        self.connects = self.losses = self.refused = self.commands = 0
        self.last_error = ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} {self.state.value}>"

    def is_ready(self) -> bool:
        return self.state is LinkState.READY

    def stats(self) -> dict[str, Any]:
        return {"state": self.state.value, "connects": self.connects, "losses": self.losses,
                "commands": self.commands, "refused": self.refused,
                "pending_bytes": self.pending_bytes,
                "pending": len(self._protocol.pending) if self._protocol is not None else 0}

    # -- the commands ----------------------------------------------------------------------------

    def start(self) -> None:
        """Begin connecting (and keep the link up until ``close()``)."""
        if self.state is LinkState.WAITING and self._retry is None:
            self._connect()

    def execute(self, *args: Argument, on_reply: ReplyCallback | None = None,
                on_error: ErrorCallback | None = None) -> None:
        """Send one command now; its reply goes to ``on_reply`` (see the module docstring)."""
        data = encode_command(args)
        protocol = self._protocol
        if self.state is not LinkState.READY or protocol is None:
            self._refuse(on_error, RedisConnectionError(
                f"not connected to {self.url} ({self.state.value})"))
            return
        if self.pending_bytes and self.pending_bytes + len(data) > self.max_pending_bytes:
            self.refused += 1
            self._refusing = True
            self._refuse(on_error, RedisQueueFull(
                f"{self.pending_bytes} bytes of commands to {self.url} await their replies "
                f"(limit {self.max_pending_bytes})"))
            return
        self._send(protocol, data, on_reply, on_error)

    def close(self) -> None:
        """Drop the link for good; pending commands fail with ``RedisConnectionError``."""
        self.state = LinkState.CLOSED
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._connector is not None:
            self._connector.cancel()
            self._connector = None
        self._stop_timers()
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.abort()

    def _send(self, protocol: RedisProtocol, data: bytes, on_reply: ReplyCallback | None,
              on_error: ErrorCallback | None, replies: int = 1) -> None:
        self.commands += 1
        self.pending_bytes += len(data)
        protocol.send(data, PendingCommand(on_reply, on_error, len(data), self._reactor.time(),
                                           replies))

    def _refuse(self, on_error: ErrorCallback | None, exc: RedisError) -> None:
        pending = PendingCommand(None, on_error, 0, 0.0)
        self._reactor.call_soon(call_back, pending, exc)

    # -- connecting and logging in -----------------------------------------------------------------

    def _connect(self) -> None:
        self._retry = None
        self.state = LinkState.CONNECTING
        self._connector = self._reactor.connect_tcp(
            lambda: RedisProtocol(self, self.max_reply_bytes), self.url.host, self.url.port,
            timeout=self.connect_timeout, on_error=self._connect_failed)

    def _connect_failed(self, exc: BaseException) -> None:
        self._connector = None
        if self.state is not LinkState.CLOSED:
            self._went_down(exc, f"cannot connect to {self.url}: {describe(exc)}")

    def link_made(self, protocol: RedisProtocol) -> None:
        """The TCP connection is open: log in, then select the database, pipelined."""
        self._connector = None
        self._protocol = protocol
        self.pending_bytes = 0
        self.state = LinkState.LOGGING_IN
        self._start_timers()
        steps: list[list[Argument]] = []
        if self.url.password is not None:
            steps.append(["AUTH", *([self.url.username] if self.url.username else []),
                          self.url.password])
        if self.url.db:
            steps.append(["SELECT", self.url.db])
        if not steps:
            self._logged_in()
            return
        for number, step in enumerate(steps, 1):
            last = number == len(steps)
            self._send(protocol, encode_command(step),
                       (lambda reply: self._logged_in()) if last else None,
                       functools.partial(self._login_failed, str(step[0])))

    def _login_failed(self, command: str, exc: Exception) -> None:
        if self._protocol is not None and not isinstance(exc, ConnectionError):
            self._protocol.fail(RedisConnectionError(f"{command} refused by {self.url}: {exc}"))

    def _logged_in(self) -> None:
        self._after_login(self._became_ready)

    def _after_login(self, ready: Callable[[], None]) -> None:
        """What must happen before the link is READY; a subscriber re-subscribes here."""
        ready()

    def _became_ready(self) -> None:
        if self.state is not LinkState.LOGGING_IN:
            return
        self.state = LinkState.READY
        self.connects += 1
        self.backoff.reset()
        log.info("redis link to %s is up%s", self.url,
                 " again" if self._failing_since_ready else "")
        self._failing_since_ready = False
        self._notify(self.on_ready)

    # -- losing the link ---------------------------------------------------------------------------

    def link_lost(self, protocol: RedisProtocol, exc: BaseException | None) -> None:
        if protocol is not self._protocol:
            return
        self._protocol = None
        self._stop_timers()
        error = RedisConnectionError(f"the link to {self.url} was lost: "
                                     f"{describe(exc) if exc is not None else 'closed'}")
        pending, protocol.pending = protocol.pending, type(protocol.pending)()
        self.pending_bytes = 0
        self._refusing = False
        for command in pending:
            call_back(command, error)
        if self.state is not LinkState.CLOSED:
            self.losses += 1
            self._went_down(error, str(error))

    def _went_down(self, exc: BaseException, message: str) -> None:
        self.last_error = message
        delay = self.backoff.next_delay()
        first = not self._failing_since_ready
        self._failing_since_ready = True
        level = logging.WARNING if first and not self.quiet else logging.DEBUG
        log.log(level, "%s; retrying with backoff (next in %.2fs)", message, delay)
        self.state = LinkState.WAITING
        self._retry = self._reactor.call_later(delay, self._connect)
        self._notify(self.on_down, exc)

    # -- watching the link -------------------------------------------------------------------------

    def reply_received(self, pending: PendingCommand) -> None:
        self.pending_bytes -= pending.size
        if self._refusing and self.pending_bytes <= self.max_pending_bytes // 2:
            self._refusing = False
            self._notify(self.on_drained)

    def push_received(self, push: list[Any]) -> None:
        raise NotImplementedError("a plain client never subscribes")  # RedisSubscriber does

    def _start_timers(self) -> None:
        if self.reply_timeout is not None:
            self._timers.append(self._reactor.call_every(
                max(self.reply_timeout / 4, 0.02), self._check_replies))
        if self.ping_interval is not None:
            self._timers.append(self._reactor.call_every(self.ping_interval, self._ping))

    def _stop_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _check_replies(self) -> None:
        """The oldest command has waited past ``reply_timeout``: the server is stuck, or gone
        without a FIN (a cable pulled, a machine frozen). Drop the link and make it again."""
        protocol = self._protocol
        assert self.reply_timeout is not None
        if protocol is not None and protocol.pending and \
                self._reactor.time() - protocol.pending[0].sent_at > self.reply_timeout:
            protocol.fail(TimeoutError(f"no reply within {self.reply_timeout:g}s"))

    def _ping(self) -> None:
        """Traffic on a quiet link, so ``reply_timeout`` can notice a dead server."""
        if self.state is LinkState.READY and self._protocol is not None \
                and not self._protocol.pending:
            self._send(self._protocol, encode_command(["PING"]), None, None)

    def _notify(self, callback: Callable[..., object] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception as exc:
            report_callback_error(exc, f"a callback of {self!r}")


class RedisSubscriber(RedisClient):
    """A link in subscriber mode: ``on_message(channel, payload)`` for every message published
    to a subscribed channel, ``on_pmessage(pattern, channel, payload)`` for a pattern's.

    It remembers its channels and patterns and subscribes to them again after every
    reconnection; it becomes READY (``on_ready``) only once the server has confirmed them all,
    so nothing published after ``on_ready`` can be missed. What is published while the link is
    down is lost: Redis pub/sub keeps no history. A ``ping_interval`` is worth setting: a quiet
    subscribed link sends nothing, and a dead server would go unnoticed.
    """

    def __init__(self, reactor: Reactor, url: str | RedisURL, *,
                 on_message: Callable[[bytes, bytes], object],
                 on_pmessage: Callable[[bytes, bytes, bytes], object] | None = None,
                 **options: Any) -> None:
        super().__init__(reactor, url, **options)
        self.on_message = on_message
        self.on_pmessage = on_pmessage
        self.channels: set[str] = set()
        self.patterns: set[str] = set()
        self.messages = 0

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "messages": self.messages}

    def subscribe(self, *channels: str) -> None:
        self._change("SUBSCRIBE", self.channels, channels, add=True)

    def psubscribe(self, *patterns: str) -> None:
        self._change("PSUBSCRIBE", self.patterns, patterns, add=True)

    def unsubscribe(self, *channels: str) -> None:
        self._change("UNSUBSCRIBE", self.channels, channels, add=False)

    def punsubscribe(self, *patterns: str) -> None:
        self._change("PUNSUBSCRIBE", self.patterns, patterns, add=False)

    def _change(self, command: str, names: set[str], given: Iterable[str], *, add: bool) -> None:
        given = [name for name in given if (name not in names) == add]
        if not given:
            return
        if add:
            names.update(given)
        else:
            names.difference_update(given)
        if self.state is LinkState.READY and self._protocol is not None:
            self._send(self._protocol, encode_command([command, *given]), None, None,
                       replies=len(given))

    def _after_login(self, ready: Callable[[], None]) -> None:
        protocol = self._protocol
        assert protocol is not None
        protocol.subscribed = True
        batches = [(command, sorted(names)) for command, names in
                   (("SUBSCRIBE", self.channels), ("PSUBSCRIBE", self.patterns)) if names]
        if not batches:
            ready()
            return
        for number, (command, names) in enumerate(batches, 1):
            last = number == len(batches)
            self._send(protocol, encode_command([command, *names]),
                       (lambda reply: ready()) if last else None, None, replies=len(names))

    def push_received(self, push: list[Any]) -> None:
        self.messages += 1
        try:
            if push[0] == b"message":
                self.on_message(push[1], push[2])
            elif self.on_pmessage is not None and len(push) >= 4:
                self.on_pmessage(push[1], push[2], push[3])
        except Exception as exc:
            report_callback_error(exc, f"a message callback of {self!r}")

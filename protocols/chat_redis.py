"""RedisBus: one chat room across processes and machines, through one Redis server.

Owns two links to Redis (``protocols/redis_client.py``): one for commands, one subscribed (a
subscribed RESP2 connection cannot send anything else), the server's identity in the room, its
heartbeat, and the counters ``/stats`` shows. Does not own the room's members or its wording
(``protocols/chat.py``); it implements ``protocols/chat_bus.py``'s ``RoomBus``.

What lives where, for a room called R (every key starts with ``chat:R:``)::

    events          channel   every room line, notice, join, rename and leave, as "SERVER TEXT"
    to:SERVER       channel   private lines for the members of SERVER, as "NAME TEXT"
    owner           hash      name -> the server holding it
    order           zset      name -> a room-wide sequence: /who lists joins and renames in order
    names:SERVER    set       the names a server holds (what is released if it dies)
    servers         set       every server that has registered
    alive:SERVER    string    expires after --redis-expiry unless the server's heartbeat renews it

Every change of ownership is one Lua script (``EVAL``), so it is atomic: two servers asking for
one name at once get one yes and one no. A name whose holder's ``alive`` key has expired is free;
each server's heartbeat (every third of the expiry) also *reaps*: it removes the names of dead
servers and tells the room they were disconnected, once, whichever server does it. (The scripts
name keys they compute, which a Redis Cluster would refuse; one Redis server is the design.)

Servers hear of each other's events through Redis, so the room has one order per channel, not
one order overall: two members joining two servers at the same instant may each be told that
the other joined, and a line may cross a rename in flight. Each server's own members see its
events in the order they happened.

When the link is down, the room goes on with this server's members alone: lines, /me, joins and
leaves reach the members here and are not sent anywhere, and Redis pub/sub keeps no history, so
what was said on either side while cut off is never seen on the other. A /nick is checked
against this server only; /who lists this server only and says so; /msg to a name not here says
the room is cut off. On reconnection the server claims again every name its members have (one
script, ``SYNC``) and gives back those it no longer has. A name another server took meanwhile
stays with that server, and our member goes back to its address as a name (and is told why).

When Redis is slow or stops answering, at most ``max_pending_bytes`` of commands wait for
replies; past that, lines for the other servers are dropped and counted, the members here are
told once, and told again (with the count) when lines flow again. Members here never wait for
Redis, except the one whose own /nick, /who or /msg is being answered.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
from typing import TYPE_CHECKING, Any, Callable

from protocols.chat_bus import RoomBus
from protocols.redis_client import (
    MAX_PENDING_BYTES,
    REPLY_TIMEOUT_SECONDS,
    RedisClient,
    RedisQueueFull,
    RedisSubscriber,
)
from protocols.redis_url import RedisURL

if TYPE_CHECKING:
    from reactor.loop import Reactor
    from reactor.timers import Timer

log = logging.getLogger("protocols.chat_redis")

#: A server whose heartbeat has not renewed its ``alive`` key for this long is taken as dead.
EXPIRY_SECONDS = 10.0
ROOM_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEFAULT_ROOM = "lobby"

CUT_OFF = "* the room is cut off from the other servers; reconnecting"
RECONNECTED = "* the room is connected to the other servers again"
CONNECTED = "* the room is connected to the other servers"
CONGESTED = "* the link to the other servers is congested: lines for them are being dropped"
DISCONNECTED_AS_SERVER_DIED = " was disconnected: their server stopped answering"

#: Shared by every script. ARGV[1] is the key prefix, ARGV[2] this server's id.
PREAMBLE = """
local P, sid = ARGV[1], ARGV[2]
local function alive(server) return redis.call('EXISTS', P .. 'alive:' .. server) == 1 end
local function take(name)
  local owner = redis.call('HGET', P .. 'owner', name)
  if owner and owner ~= sid then redis.call('SREM', P .. 'names:' .. owner, name) end
  redis.call('HSET', P .. 'owner', name, sid)
  redis.call('SADD', P .. 'names:' .. sid, name)
  redis.call('ZADD', P .. 'order', redis.call('INCR', P .. 'seq'), name)
end
local function drop(name)
  redis.call('SREM', P .. 'names:' .. sid, name)
  if redis.call('HGET', P .. 'owner', name) ~= sid then return false end
  redis.call('HDEL', P .. 'owner', name)
  redis.call('ZREM', P .. 'order', name)
  return true
end
"""
#: /nick: ARGV[3] the name wanted, ARGV[4] the old one, ARGV[5] the notice. 1 yes, 0 taken.
CLAIM = PREAMBLE + """
local owner = redis.call('HGET', P .. 'owner', ARGV[3])
if owner and owner ~= sid and alive(owner) then return 0 end
take(ARGV[3])
if ARGV[4] ~= '' then drop(ARGV[4]) end
redis.call('PUBLISH', P .. 'events', ARGV[5])
return 1
"""
#: A newcomer: ARGV[3] its name here; the first of NAME, NAME#2... free room-wide is taken and
#: returned, and ARGV[4] .. name .. ARGV[5] published. A name we hold counts as taken: it is
#: another member's here.
JOIN = PREAMBLE + """
local name, n = ARGV[3], 1
while true do
  local owner = redis.call('HGET', P .. 'owner', name)
  if not owner or (owner ~= sid and not alive(owner)) then break end
  n = n + 1
  name = ARGV[3] .. '#' .. n
end
take(name)
redis.call('PUBLISH', P .. 'events', ARGV[4] .. name .. ARGV[5])
return name
"""
#: A member left: ARGV[3] its name, ARGV[4] the notice ('' for none). Published only if ours.
RELEASE = PREAMBLE + """
if drop(ARGV[3]) and ARGV[4] ~= '' then redis.call('PUBLISH', P .. 'events', ARGV[4]) end
return 1
"""
#: (Re)connection: ARGV[3] the expiry in ms, ARGV[4..] every name held here. Registers, gives
#: back what we hold and no longer have, takes what is free; returns the names taken elsewhere.
SYNC = PREAMBLE + """
redis.call('SET', P .. 'alive:' .. sid, '1', 'PX', ARGV[3])
redis.call('SADD', P .. 'servers', sid)
local wanted = {}
for i = 4, #ARGV do wanted[ARGV[i]] = true end
for _, name in ipairs(redis.call('SMEMBERS', P .. 'names:' .. sid)) do
  if not wanted[name] then drop(name) end
end
local lost = {}
for i = 4, #ARGV do
  local owner = redis.call('HGET', P .. 'owner', ARGV[i])
  if owner ~= sid then
    if owner and alive(owner) then table.insert(lost, ARGV[i]) else take(ARGV[i]) end
  end
end
return lost
"""
#: /who: every name whose holder is alive, in room order.
WHO = PREAMBLE + """
local out, known = {}, {}
for _, name in ipairs(redis.call('ZRANGE', P .. 'order', 0, -1)) do
  local owner = redis.call('HGET', P .. 'owner', name)
  if owner then
    if known[owner] == nil then known[owner] = alive(owner) end
    if known[owner] then table.insert(out, name) end
  end
end
return out
"""
#: /msg: ARGV[3] the name, ARGV[4] the payload for its server. Returns how many got it (0: none).
MSG = PREAMBLE + """
local owner = redis.call('HGET', P .. 'owner', ARGV[3])
if not owner or not alive(owner) then return 0 end
return redis.call('PUBLISH', P .. 'to:' .. owner, ARGV[4])
"""
#: Heartbeat's second half: the names of dead servers are freed and announced, once.
#: ARGV[3] .. name .. ARGV[4] is the notice.
REAP = PREAMBLE + """
local reaped = {}
for _, server in ipairs(redis.call('SMEMBERS', P .. 'servers')) do
  if not alive(server) then
    for _, name in ipairs(redis.call('SMEMBERS', P .. 'names:' .. server)) do
      if redis.call('HGET', P .. 'owner', name) == server then
        redis.call('HDEL', P .. 'owner', name)
        redis.call('ZREM', P .. 'order', name)
        table.insert(reaped, name)
        redis.call('PUBLISH', P .. 'events', ARGV[3] .. name .. ARGV[4])
      end
    end
    redis.call('DEL', P .. 'names:' .. server)
    redis.call('SREM', P .. 'servers', server)
  end
end
return reaped
"""


def default_server_id() -> str:
    """Unique per process, and readable in ``redis-cli``: host, pid, and a random tag (a pid
    can be reused after a restart, and two machines can share one)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def why(exc: Exception) -> str:
    """What a member is told when the bus could not ask Redis."""
    if isinstance(exc, RedisQueueFull):
        return "the link to the other servers is congested; try again"
    if isinstance(exc, ConnectionError):
        return "the room is cut off from the other servers; try again"
    return f"the room's Redis refused: {exc}"


class RedisBus(RoomBus):
    """The room shared through Redis (see the module docstring). ``start()`` connects."""

    def __init__(self, reactor: Reactor, url: str | RedisURL, room: str = DEFAULT_ROOM, *,
                 expiry: float = EXPIRY_SECONDS, max_pending_bytes: int = MAX_PENDING_BYTES,
                 reply_timeout: float = REPLY_TIMEOUT_SECONDS,
                 server_id: str | None = None) -> None:
        if not ROOM_NAME.fullmatch(room):
            raise ValueError(f"a room name is 1 to 64 letters, digits, '_', '.' or '-', "
                             f"not {room!r}")
        self._reactor = reactor
        self.room_name = room
        self.expiry = expiry
        self.server_id = server_id or default_server_id()
        self._sid = self.server_id.encode()
        self.prefix = f"chat:{room}:"
        self.events_channel = self.prefix + "events"
        self.own_channel = f"{self.prefix}to:{self.server_id}"
        self.commands = RedisClient(
            reactor, url, quiet=True, reply_timeout=reply_timeout,
            max_pending_bytes=max_pending_bytes, on_ready=self._commands_ready,
            on_down=self._down, on_drained=self._drained)
        self.subscriber = RedisSubscriber(
            reactor, self.commands.url, quiet=True, reply_timeout=reply_timeout,
            ping_interval=expiry / 3, on_message=self._message, on_ready=self._update_link,
            on_down=self._down)
        self.subscriber.subscribe(self.events_channel, self.own_channel)
        self._heartbeat: Timer | None = None
        self._synced = False
        self._syncing = False
        self._sync_wanted = False
        self._claims_in_flight = 0
        self._outage_logged = False
        self._ever_linked = False
        self._congested = False
        self._dropped_while_congested = 0
        self.published = self.received = self.dropped = self.cut_offs = 0

    def start(self) -> None:
        self.commands.start()
        self.subscriber.start()
        self._heartbeat = self._reactor.call_every(self.expiry / 3, self._beat)

    def settled(self) -> bool:
        """The first attempt is over: the room is linked, or Redis could not be reached."""
        return self.linked or self._outage_logged

    def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self.commands.close()
        self.subscriber.close()

    def stats(self) -> dict[str, object]:
        state = "up" if self.linked else ("cut-off" if self._ever_linked or self._outage_logged
                                          else "connecting")
        return {"redis": state, "redis_room": self.room_name,
                "redis_published": self.published, "redis_received": self.received,
                "redis_dropped": self.dropped, "redis_cut_offs": self.cut_offs,
                "redis_pending_bytes": self.commands.pending_bytes}

    # -- the link ----------------------------------------------------------------------------------

    def _eval(self, script: str, *args: str | int, on_reply: Callable[[Any], object] | None = None,
              on_error: Callable[[Exception], object] | None = None) -> None:
        self.commands.execute("EVAL", script, 0, self.prefix, self.server_id, *args,
                              on_reply=on_reply, on_error=on_error or self._script_failed)

    def _script_failed(self, exc: Exception) -> None:
        log.debug("a room script failed: %s", exc)

    def _commands_ready(self) -> None:
        self._synced = False
        self._sync()

    def _sync(self) -> None:
        """Register, and make Redis hold exactly the names our members have."""
        if self._claims_in_flight or self._syncing:
            self._sync_wanted = True  # a claim's answer would change what we hold: after it
            return
        self._sync_wanted = False
        self._syncing = True
        names = self.room.names() if self.room is not None else []
        self._eval(SYNC, int(self.expiry * 1000), *names, on_reply=self._synced_names,
                   on_error=self._sync_failed)

    def _synced_names(self, lost: list[bytes]) -> None:
        self._syncing = False
        self._synced = True
        for name in lost:
            if self.room is not None:
                self.room.name_lost(name.decode())
        self._update_link()

    def _can_ask(self) -> bool:
        """The room is linked: claims and questions go to Redis. While members here have been
        told it is cut off, the server acts cut off, whichever link dropped first: names are
        checked among its own members and SYNC settles them once the link is back. (Asking
        while only the subscribed link was known down raced with the commands link's own
        close: a member told "cut off" could get "cut off; try again" for its /nick.)"""
        return self.linked

    def _sync_failed(self, exc: Exception) -> None:
        self._syncing = False
        self._sync_wanted = True  # retried by the next heartbeat

    def _down(self, exc: BaseException) -> None:
        if not self._outage_logged:
            self._outage_logged = True
            link = self.commands if not self.commands.is_ready() else self.subscriber
            log.warning("chat room %r: %s; serving this server's members only, reconnecting "
                        "with backoff", self.room_name, link.last_error or exc)
        if not self.commands.is_ready():
            self._synced = False
        self._update_link()

    def _update_link(self) -> None:
        linked = self._synced and self.commands.is_ready() and self.subscriber.is_ready()
        if linked == self.linked:
            return
        self.linked = linked
        if linked:
            if self.room is not None and (self._ever_linked or self._outage_logged):
                # Members here were told the room was cut off, or joined while it was.
                self.room.bus_notice(RECONNECTED if self._ever_linked else CONNECTED)
            if self._outage_logged:
                log.info("chat room %r: redis at %s is back; the room is whole again",
                         self.room_name, self.commands.url)
            self._outage_logged = False
            self._ever_linked = True
        else:
            self.cut_offs += 1
            self._congested = False
            if self.room is not None:
                self.room.bus_notice(CUT_OFF)

    def _beat(self) -> None:
        """Renew our ``alive`` key, and free the names of servers whose key has expired."""
        if not self.commands.is_ready():
            return
        if (self._sync_wanted or not self._synced) and not self._syncing:
            self._sync()
        self.commands.execute("SET", f"{self.prefix}alive:{self.server_id}", "1", "PX",
                              int(self.expiry * 1000), "GET", on_reply=self._renewed,
                              on_error=self._script_failed)
        self._eval(REAP, f"{self.server_id} * ", DISCONNECTED_AS_SERVER_DIED,
                   on_reply=self._reaped)

    def _renewed(self, previous: bytes | None) -> None:
        if previous is None and self._synced:
            # Our key had expired (Redis was paused, or we were): another server may have
            # reaped our names. Claim them again.
            log.warning("chat room %r: this server's heartbeat had expired; claiming its "
                        "names again", self.room_name)
            self._sync()

    def _reaped(self, names: list[bytes]) -> None:
        for name in names:
            if self.room is not None:
                self.room.bus_notice(f"* {name.decode()}{DISCONNECTED_AS_SERVER_DIED}")

    # -- what the room asks ------------------------------------------------------------------------

    def publish(self, text: str) -> None:
        if not self._can_ask():
            self.dropped += 1
            return
        self.published += 1
        self.commands.execute("PUBLISH", self.events_channel, f"{self.server_id} {text}",
                              on_error=self._publish_failed)

    def _publish_failed(self, exc: Exception) -> None:
        self.dropped += 1
        if not isinstance(exc, RedisQueueFull):
            return
        self._dropped_while_congested += 1
        if not self._congested:
            self._congested = True
            log.warning("chat room %r: redis is not keeping up (%s); dropping lines for the "
                        "other servers", self.room_name, exc)
            if self.room is not None:
                self.room.bus_notice(CONGESTED)

    def _drained(self) -> None:
        if self._congested:
            self._congested = False
            count, self._dropped_while_congested = self._dropped_while_congested, 0
            if self.room is not None:
                self.room.bus_notice(f"* lines reach the other servers again ({count} "
                                     f"dropped)")

    def join(self, name: str, on_joined: Callable[[str], object]) -> None:
        if not self._can_ask():
            on_joined(name)  # claimed by the next SYNC
            return
        self._claims_in_flight += 1

        def answered(final: bytes) -> None:
            self._claim_settled()
            on_joined(final.decode())

        def failed(exc: Exception) -> None:
            self._claim_settled()
            self._sync_wanted = True
            on_joined(name)

        self._eval(JOIN, name, f"{self.server_id} * ", " joined", on_reply=answered,
                   on_error=failed)

    def claim(self, name: str, old: str, on_claimed: Callable[[], object],
              on_taken: Callable[[], object], on_failed: Callable[[str], object]) -> None:
        if not self._can_ask():
            on_claimed()  # this server's members are all we can ask; SYNC settles it later
            return
        self._claims_in_flight += 1

        def answered(claimed: int) -> None:
            self._claim_settled()
            (on_claimed if claimed else on_taken)()

        def failed(exc: Exception) -> None:
            self._claim_settled()
            self._sync_wanted = True  # it may have run before the link dropped
            on_failed(why(exc))

        self._eval(CLAIM, name, old, f"{self.server_id} * {old} is now known as {name}",
                   on_reply=answered, on_error=failed)

    def _claim_settled(self) -> None:
        self._claims_in_flight -= 1
        if not self._claims_in_flight and self._sync_wanted and self.commands.is_ready():
            self._sync()

    def left(self, name: str, notice: str) -> None:
        if not self._can_ask():
            return  # SYNC gives it back
        self._eval(RELEASE, name, f"{self.server_id} {notice}" if notice else "")

    def who(self, on_names: Callable[[list[str]], object],
            on_failed: Callable[[str], object]) -> None:
        if not self._can_ask():
            on_failed("cut off from the other servers")
            return
        self._eval(WHO, on_reply=lambda names: on_names([name.decode() for name in names]),
                   on_error=lambda exc: on_failed(why(exc)))

    def send_private(self, name: str, text: str, on_sent: Callable[[], object],
                     on_unknown: Callable[[], object], on_failed: Callable[[str], object]
                     ) -> None:
        if not self._can_ask():
            on_failed("the room is cut off from the other servers")
            return
        self._eval(MSG, name, f"{name} {text}",
                   on_reply=lambda count: (on_sent if count else on_unknown)(),
                   on_error=lambda exc: on_failed(why(exc)))

    # -- what the other servers say ----------------------------------------------------------------

    def _message(self, channel: bytes, payload: bytes) -> None:
        if self.room is None:
            return
        head, _, text = payload.partition(b" ")
        if channel == self.own_channel.encode():
            self.room.remote_private(head.decode("utf-8", "replace"),
                                     text.decode("utf-8", "replace"))
        elif head != self._sid:  # our own lines come back too: already delivered here
            self.received += 1
            self.room.remote_line(text.decode("utf-8", "replace"))

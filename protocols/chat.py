"""ChatRoom and ChatProtocol: a line-based chat server, where one peer's input goes to many peers.

``ChatRoom`` owns the members and their names, and every write to a member; ``ChatProtocol`` owns
one connection's side: it parses lines into commands and asks the room to act. Start a server with
``room.protocol_factory`` as the protocol factory (a bound method: each call returns a new
``ChatProtocol`` in that room).

Wire contract (UTF-8 lines ending in ``"\\n"``; ``"\\r\\n"`` accepted)::

    server -> you      * welcome, you are 127.0.0.1:5555; /help lists commands
    you    -> server   hello                   others see "127.0.0.1:5555: hello"; you get no copy
    you    -> server   /nick NAME              others see "* OLD is now known as NAME"
    you    -> server   /who                    "* online: NAME, NAME, ..."
    you    -> server   /me TEXT                others see "* NAME TEXT"
    you    -> server   /msg NAME TEXT          only NAME sees "[private] YOU: TEXT"
    you    -> server   /quit                   "* goodbye", then the server closes
    you    -> server   /help                   the list of commands
    you    -> server   /stats                  "* stats: members=3 lines_in=... passes=..."
    server -> you      * NAME joined | * NAME left | * NAME was disconnected: too slow to read
    server -> you      error: ...              a rejected command (the connection stays open)

A room shared through Redis (``protocols/chat_redis.py``) adds its own notices::

    server -> you      * the room is cut off from the other servers; reconnecting
    server -> you      * the room is connected to the other servers again
    server -> you      * NAME was disconnected: their server stopped answering
    server -> you      * the link to the other servers is congested: lines for them are ...
    server -> you      * lines reach the other servers again (N dropped)

Names default to the peer's ``HOST:PORT``. A chosen name is unique, at most ``MAX_NAME_CHARS``
printable characters (any script: "张三"), without whitespace or ``":"``; ``":"`` is reserved so a
chosen name can never be a newcomer's address, and so ``"NAME: text"`` always splits at the first
colon.

Three things one client must not be able to do to the others:

* Drive their terminals. Invalid UTF-8 is replaced with U+FFFD, and every character in Unicode
  category C (C0 and C1 controls, DEL, ESC and so ANSI escape sequences, bidi overrides,
  unassigned code points) is dropped from text before it is sent on; a tab becomes a space.
* Make the room buffer without bound. Lines are at most ``MAX_LINE_BYTES``; a longer one gets an
  error and the client is closed.
* Stall the room by not reading. Before each write the room checks the member's send queue
  (with the lines the room holds for it, see below): a non-empty one that the line would take
  past ``max_pending_bytes`` is disconnected with ``abort()`` and a notice to the room.
  Back-pressure keeps ``Protocol``'s default: a member whose own queue passes the high-water mark
  stops being read until it drains. That throttles only the slow member's own input; the cap is
  what protects everyone else, since the room never waits for anyone.

One write per member per loop pass: given the loop's ``call_soon`` (``batch_writes``, as
``examples/chat_server.py`` does), the room holds each member's lines until the loop has handled
this pass's input, then writes them with one ``transport.write`` (sooner once they reach
``MAX_HELD_BYTES``). Every line a member sends reaches everyone, so one pass that reads k lines
would otherwise cost each member k ``send()`` calls; the kernel's work per ``send()`` is most
of a fan-out's cost (see ``batch_writes``). Order is kept, since every write to a member goes
through the room; whatever writes around the room or closes a member flushes that member first.

One room across several servers: the room talks to the world beyond its own members through a
``RoomBus`` (``protocols/chat_bus.py``). The default bus is the room of one server, where every
answer is immediate; ``protocols/chat_redis.py`` is one that shares the room through Redis, where
a ``/nick``, ``/who`` or ``/msg`` to someone elsewhere waits for an answer. While a member waits,
its later lines wait too (and its socket is not read), so its commands still take effect in the
order it typed them; everyone else is served as usual meanwhile.

Read next: ``reactor/testing.py``, which ``tests/test_chat_room.py`` uses to run a room without
sockets, then ``protocols/chat_bus.py``.
"""

from __future__ import annotations

import unicodedata
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from protocols.chat_bus import RoomBus
from protocols.line import LineProtocol

if TYPE_CHECKING:
    from reactor.connection import Connection

#: A member whose non-empty send queue a line would take past this is disconnected as too slow.
MAX_PENDING_BYTES = 1024 * 1024
#: Chat lines are short; a line this long is a misbehaving client, so the limit is far below
#: LineProtocol's 64 KiB default.
MAX_LINE_BYTES = 4096
MAX_NAME_CHARS = 32
#: A member's held lines are written as soon as they reach this (``ChatRoom.batch_writes``), so
#: holding changes what the cap sees by less than this, and one busy pass holds little memory.
MAX_HELD_BYTES = 64 * 1024

HELP_TEXT = "* commands: /nick NAME, /who, /me TEXT, /msg NAME TEXT, /stats, /quit, /help"
NAME_RULES = f"1 to {MAX_NAME_CHARS} printable characters, no whitespace or ':'"


class NameRejected(ValueError):
    """A ``/nick`` the room refused; the message is what the client is told."""


def sanitize(text: str) -> str:
    """``text`` without characters that could act on a terminal (Unicode category C).

    Total by construction: everything in category C is dropped, rather than a list of known
    escape sequences being recognised. ``str.isprintable()`` is false for every such character,
    so ordinary text takes the fast path and is returned unchanged.
    """
    if text.isprintable():
        return text
    text = text.replace("\t", " ")
    return "".join(char for char in text if not unicodedata.category(char).startswith("C"))


def is_valid_name(name: str) -> bool:
    """True for a chosen name the room accepts (see the module docstring).

    ``isprintable()`` rejects every whitespace character except the ASCII space, checked apart.
    """
    return (
        0 < len(name) <= MAX_NAME_CHARS
        and name.isprintable()
        and " " not in name
        and ":" not in name
    )


class ChatRoom:
    """The members of one chat, by name, and every write to them.

    Every line the room sends goes through ``send`` or ``broadcast``, which enforce
    ``max_pending_bytes``, so no member can make the room buffer without bound. (The one write
    that bypasses them is LineProtocol's error line for an overlong line, just before a close.)
    """

    def __init__(self, max_pending_bytes: int = MAX_PENDING_BYTES,
                 bus: RoomBus | None = None) -> None:
        self.max_pending_bytes = max_pending_bytes
        self._members: dict[str, ChatProtocol] = {}
        #: Names asked for by a /nick whose claim the bus has not answered yet.
        self._claiming: set[str] = set()
        self.bus = RoomBus()
        self.attach_bus(bus or self.bus)
        #: Traffic the room has seen, for ``/stats`` (Redis's INFO is the model).
        self.lines_in = self.bytes_in = self.lines_out = self.bytes_out = 0
        #: The server's own figures (connections, loop passes...), added to ``/stats`` when
        #: the server provides them (``examples/chat_server.py`` does).
        self.server_stats: Callable[[], dict[str, object]] | None = None
        #: Set by ``batch_writes``: schedules ``flush`` after the current pass's input.
        self._call_soon: Callable[[Callable[[], None]], object] | None = None
        #: Members with lines held for them, in the order they were first given one.
        self._holding: list[ChatProtocol] = []

    def stats(self) -> dict[str, object]:
        """The room's counters, then the server's: what ``/stats`` prints."""
        figures: dict[str, object] = {
            "members": len(self._members), "lines_in": self.lines_in,
            "bytes_in": self.bytes_in, "lines_out": self.lines_out, "bytes_out": self.bytes_out,
        }
        if self.server_stats is not None:
            figures.update(self.server_stats())
        figures.update(self.bus.stats())
        return figures

    def batch_writes(self, call_soon: Callable[[Callable[[], None]], object]) -> None:
        """Hold each member's lines until ``call_soon`` runs ``flush``: one write per member per
        loop pass instead of one per line (see the module docstring).

        Measured A/B, interleaved (``chat_server`` of the same commit with and without this
        call, pinned to one core, driven by ``examples/bench/chat_load.c``: 100 members, one
        128-byte line each in flight, 6 rounds of 3 s on a shared 2-core machine): 41-124k
        deliveries/s without, 324-616k with, median same-round ratio 6.2x and 8.7x in two
        runs; server CPU per delivery 5.8-8.9 us without, 0.6-1.0 us with (profiled without
        it, 85 % of the server's time was the ``send()`` in ``Connection.write``, one per
        delivery); p50 delivery latency 70-230 ms without, 14-26 ms with.
        """
        self._call_soon = call_soon

    def flush(self, member: ChatProtocol | None = None) -> None:
        """Write the lines held for ``member`` (for every member: ``None``) now."""
        if member is not None:
            member.write_outgoing()
            return
        holding, self._holding = self._holding, []
        for held in holding:
            held.write_outgoing()

    def attach_bus(self, bus: RoomBus) -> None:
        """Share this room through ``bus`` from now on (before the first member joins)."""
        self.bus = bus
        bus.attach(self)

    def protocol_factory(self) -> ChatProtocol:
        """A new protocol in this room: pass this bound method as the server's factory."""
        return ChatProtocol(self)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member: object) -> bool:
        return isinstance(member, ChatProtocol) and self._members.get(member.name) is member

    def names(self) -> list[str]:
        """Members' names, in the order they joined or last renamed."""
        return list(self._members)

    def find(self, name: str) -> ChatProtocol | None:
        """The member called ``name``, or ``None``."""
        return self._members.get(unicodedata.normalize("NFC", name))

    def join(self, member: ChatProtocol) -> None:
        """Add a connected member under its peer's ``HOST:PORT``, tell the others, welcome it.

        A suffix keeps the name unique should two transports report the same peer name (or,
        with a bus, two servers see the same address: ``127.0.0.1:5555#2``). The member is
        welcome once the bus has claimed its name; its lines wait until then.
        """
        assert member.transport is not None
        name = self._free_name(member.transport.peer_name)
        self._claiming.add(name)
        member.wait_for_room()

        def claimed(final: str) -> None:
            self._claiming.discard(name)
            if member.transport is None or member.transport.is_closing():
                self.bus.left(final, "")  # gone before its welcome: it never joined
                return
            if final in self._members or final in self._claiming:
                final = self._free_name(final)  # taken here meanwhile: next SYNC settles it
            member.name = final
            self._members[final] = member
            self.broadcast(f"* {final} joined", exclude=member)
            self.send(member, f"* welcome, you are {final}; /help lists commands")
            member.room_answered()

        self.bus.join(name, claimed)

    def _free_name(self, base: str) -> str:
        name = base
        suffix = 2
        while name in self._members or name in self._claiming:
            name = f"{base}#{suffix}"
            suffix += 1
        return name

    def leave(self, member: ChatProtocol) -> None:
        """Remove ``member`` and tell the others; does nothing if it is not in the room."""
        if member not in self:
            return
        del self._members[member.name]
        notice = f"* {member.name} left"
        self.broadcast(notice)
        self.bus.left(member.name, notice)

    def rename(self, member: ChatProtocol, name: str) -> None:
        """Give ``member`` a new name, or raise ``NameRejected`` and leave the name unchanged.

        Names are compared in Unicode NFC form, so two spellings of "é" are one name. Once the
        room's own members allow it, the bus must agree (another server may have the name);
        until it answers, the member waits (see the module docstring).
        """
        name = unicodedata.normalize("NFC", name)
        if not is_valid_name(name):
            raise NameRejected(f"invalid name ({NAME_RULES})")
        if name in self._members or name in self._claiming:
            raise NameRejected(f"name {name} is taken")
        self._claiming.add(name)
        member.wait_for_room()

        def claimed() -> None:
            self._claiming.discard(name)
            if member in self:
                self._apply_rename(member, name)
            else:
                self.bus.left(name, "")  # it left while we asked: give the name back
            member.room_answered()

        def refused(reason: str) -> None:
            self._claiming.discard(name)
            self.send(member, reason)
            member.room_answered()

        self.bus.claim(name, member.name, claimed, lambda: refused(f"error: name {name} is taken"),
                       lambda why: refused(f"error: cannot take the name {name}: {why}"))

    def _apply_rename(self, member: ChatProtocol, name: str, told: str = "") -> None:
        old_name = member.name
        del self._members[old_name]
        member.name = name
        self._members[name] = member
        self.broadcast(f"* {old_name} is now known as {name}", exclude=member)
        self.send(member, told or f"* you are now known as {name}")

    def who(self, member: ChatProtocol) -> None:
        """Answer ``/who``: every member of the room, on every server the bus reaches."""
        member.wait_for_room()

        def answer(remote: list[str], note: str = "") -> None:
            shown = set(remote)
            names = [*remote, *(name for name in self._members if name not in shown)]
            self.send(member, "* online: " + ", ".join(names) + note)
            member.room_answered()

        self.bus.who(answer, lambda why: answer([], f" (only this server: {why})"))

    def send_private(self, sender: ChatProtocol, name: str, text: str) -> None:
        """Answer ``/msg``: a member here at once, one elsewhere through the bus."""
        line = f"[private] {sender.name}: {text}"
        target = self.find(name)
        if target is not None:
            self.send(target, line)
            return
        sender.wait_for_room()

        def answered(reply: str = "") -> None:
            if reply:
                self.send(sender, reply)
            sender.room_answered()

        unknown = f"error: no such name: {sanitize(name)}"
        self.bus.send_private(unicodedata.normalize("NFC", name), line, answered,
                              lambda: answered(unknown),
                              lambda why: answered(f"{unknown} here ({why})"))

    def announce(self, text: str, exclude: ChatProtocol | None = None) -> None:
        """A member's line: to every other member here, and through the bus to the rest."""
        self.broadcast(text, exclude=exclude)
        self.bus.publish(text)

    # -- what the bus tells the room (protocols/chat_bus.py, BusListener) ------------------------

    def remote_line(self, text: str) -> None:
        """A line from a member on another server."""
        self.broadcast(text)

    def remote_private(self, name: str, text: str) -> None:
        target = self.find(name)
        if target is not None:
            self.send(target, text)

    def bus_notice(self, text: str) -> None:
        """Something every member here should know about the room (cut off, back...)."""
        self.broadcast(text)

    def name_lost(self, name: str) -> None:
        """Another server holds ``name`` now (taken while this one was cut off): its member here
        goes back to its address as a name, claimed like a newcomer's."""
        member = self._members.get(name)
        if member is None or member.transport is None:
            return
        base = self._free_name(member.transport.peer_name)
        self._claiming.add(base)
        member.wait_for_room()  # its next lines are its new name's

        def claimed(new: str) -> None:
            self._claiming.discard(base)
            if self._members.get(name) is not member:
                self.bus.left(new, "")  # it left meanwhile
                return
            if new in self._members or new in self._claiming:
                new = self._free_name(new)
            self._apply_rename(member, new, f"* the name {name} was taken elsewhere in the "
                                            f"room while this server was cut off; you are now "
                                            f"known as {new}")
            member.room_answered()

        self.bus.join(base, claimed)

    def send(self, member: ChatProtocol, text: str) -> None:
        """Write one line to ``member``, or disconnect it if its queue would pass the cap."""
        self._write([member], (text + "\n").encode("utf-8"))

    def broadcast(self, text: str, exclude: ChatProtocol | None = None) -> None:
        """Write one line to every member but ``exclude``; disconnect the ones too slow."""
        data = (text + "\n").encode("utf-8")
        self._write([member for member in self._members.values() if member is not exclude], data)

    def _write(self, members: list[ChatProtocol], data: bytes) -> None:
        """Write ``data`` to each member that can take it; then disconnect the rest.

        A member is too slow when ``data`` would take its send queue past the cap. An empty queue
        always takes it: that member is keeping up, however long the line. So a queue holds at
        most ``max(max_pending_bytes, one line)``. Disconnecting after the loop, not inside it,
        means everyone still in the room gets ``data`` before the notice about who was dropped.
        """
        too_slow = []
        call_soon = self._call_soon
        for member in members:
            transport = member.transport
            if transport is None or transport.is_closing():
                continue
            pending = transport.get_write_buffer_size() + member.outgoing_bytes
            if pending and pending + len(data) > self.max_pending_bytes:
                too_slow.append(member)
                continue
            if call_soon is None:
                transport.write(data)
            else:
                if not member.outgoing:
                    if not self._holding:
                        call_soon(self.flush)
                    self._holding.append(member)
                member.outgoing.append(data)
                member.outgoing_bytes += len(data)
                if member.outgoing_bytes >= MAX_HELD_BYTES:
                    member.write_outgoing()
            self.lines_out += 1
            self.bytes_out += len(data)
        for member in too_slow:
            self._disconnect(member, "too slow to read")

    def _disconnect(self, member: ChatProtocol, reason: str) -> None:
        """Drop ``member`` at once (its queue is discarded) and tell the room why."""
        if member not in self:
            return
        del self._members[member.name]
        if member.transport is not None:
            member.transport.abort()
        notice = f"* {member.name} was disconnected: {reason}"
        self.broadcast(notice)
        self.bus.left(member.name, notice)


class ChatProtocol(LineProtocol):
    """One member's connection: joins on ``connection_made``, leaves on ``connection_lost``."""

    max_line_length = MAX_LINE_BYTES

    def __init__(self, room: ChatRoom) -> None:
        self.room = room
        self.name = ""
        # Lines that arrived while the room was answering an earlier command of ours.
        self._held: deque[bytes] = deque()
        self._waiting = False
        self._releasing = False
        self._write_paused = False
        self._reading_stopped = False
        #: Lines the room holds for us until its next flush (``ChatRoom.batch_writes``).
        self.outgoing: list[bytes] = []
        self.outgoing_bytes = 0

    def write_outgoing(self) -> None:
        """Write the lines the room holds for us, in one ``write``."""
        outgoing = self.outgoing
        if not outgoing:
            return
        data = outgoing[0] if len(outgoing) == 1 else b"".join(outgoing)
        outgoing.clear()
        self.outgoing_bytes = 0
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def connection_made(self, transport: Connection) -> None:
        super().connection_made(transport)
        self.room.join(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.room.leave(self)
        super().connection_lost(exc)

    def line_too_long(self) -> None:
        """Leave the room first, so the others hear of it now rather than when the socket closes;
        our held lines go out before the error line, which is written around the room."""
        self.room.leave(self)
        self.room.flush(self)
        super().line_too_long()

    def eof_received(self) -> bool:
        """As LineProtocol's (the last line is handled, then the connection closes once what
        is queued is sent), with our held lines queued first: the close would drop them."""
        keep_open = super().eof_received()
        self.room.flush(self)
        return keep_open

    def idle_timed_out(self, idle_seconds: float) -> None:
        """As LineProtocol's, after our held lines (its error line is written around the room)."""
        self.room.flush(self)
        super().idle_timed_out(idle_seconds)

    def wait_for_room(self) -> None:
        """The room is asking the bus something for us: hold our next lines until it answers."""
        self._waiting = True

    def room_answered(self) -> None:
        """Handle the lines held meanwhile, in order, until one makes us wait again."""
        self._waiting = False
        if self._releasing:
            return  # an answer given at once, inside the loop below: it goes on by itself
        self._releasing = True
        try:
            while self._held and not self._waiting and not self._is_closing():
                self._handle(self._held.popleft())
        finally:
            self._releasing = False
        self._update_reading()

    def pause_writing(self) -> None:
        """Back-pressure, as ``Protocol``'s default: stop reading us while our queue drains."""
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    def _update_reading(self) -> None:
        """Read our socket unless our send queue is over its mark or lines are held: what is
        held is then bounded by what one read brought."""
        stop = self._write_paused or bool(self._held)
        if self.transport is None or stop == self._reading_stopped:
            return
        self._reading_stopped = stop
        if stop:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def line_received(self, line: bytes) -> None:
        if self._waiting or self._held:
            self._held.append(line)
            self._update_reading()
            return
        self._handle(line)

    def _handle(self, line: bytes) -> None:
        self.room.lines_in += 1
        self.room.bytes_in += len(line)
        text = line.decode("utf-8", errors="replace")
        if text.startswith("/"):
            self._run_command(text)
            return
        message = sanitize(text).strip()
        if message:
            self.room.announce(f"{self.name}: {message}", exclude=self)

    def _run_command(self, text: str) -> None:
        command, _, argument = text.partition(" ")
        argument = argument.strip()
        match command.lower():
            case "/nick":
                self._nick(argument)
            case "/who":
                self.room.who(self)
            case "/me":
                self._me(argument)
            case "/msg":
                self._msg(argument)
            case "/quit":
                self._quit()
            case "/help":
                self._reply(HELP_TEXT)
            case "/stats":
                figures = self.room.stats()
                self._reply("* stats: " + " ".join(f"{key}={value}"
                                                   for key, value in figures.items()))
            case _:
                self._reply(f"error: unknown command {sanitize(command)}; /help lists commands")

    def _nick(self, name: str) -> None:
        if not name:
            self._reply("error: usage: /nick NAME")
            return
        try:
            self.room.rename(self, name)
        except NameRejected as exc:
            self._reply(f"error: {exc}")

    def _me(self, argument: str) -> None:
        action = sanitize(argument).strip()
        if not action:
            self._reply("error: usage: /me TEXT")
            return
        self.room.announce(f"* {self.name} {action}", exclude=self)

    def _msg(self, argument: str) -> None:
        name, _, text = argument.partition(" ")
        text = sanitize(text).strip()
        if not text:
            self._reply("error: usage: /msg NAME TEXT")
            return
        self.room.send_private(self, name, text)

    def _quit(self) -> None:
        """Say goodbye, leave at once (so no later broadcast reaches us), then close."""
        self._reply("* goodbye")
        self.room.leave(self)
        self.room.flush(self)  # before close(), which drops later writes
        if self.transport is not None:
            self.transport.close()

    def _reply(self, text: str) -> None:
        self.room.send(self, text)

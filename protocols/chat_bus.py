"""RoomBus: what a ChatRoom asks of the rest of its room, beyond the members of its own server.

Owns nothing in this base class, which *is* the room of one server: there is no one else to
tell, every name free here is free, and every request is answered at once. ``ChatRoom`` uses it
unless given another, and then behaves exactly as a room in one process. A bus that reaches
other servers (``protocols/chat_redis.py``) implements the same methods and answers later; the
room never knows which it has, so ``protocols/chat.py`` never imports a network client.

The calls, from the room to the bus::

    publish(text)                   a line for every member on the other servers
    join(name, on_joined)           a newcomer: the first of name, name#2... free room-wide
    claim(name, old, ...)           /nick: may this member take ``name`` room-wide?
    left(name, notice)              a member left; ``notice`` is what the others are told
    who(on_names, on_failed)        the names on the other servers too, in room order
    send_private(name, text, ...)   /msg to a member who is not on this server
    stats()                         figures for /stats

and from the bus to the room (``BusListener``): a line from another server, a private line for a
member here, a notice, a member who must change name (see ``chat_redis.py``).
Every callback a method takes is called exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol as Interface


class BusListener(Interface):
    """What a bus calls on its room (``ChatRoom`` implements it)."""

    def names(self) -> list[str]: ...
    def remote_line(self, text: str) -> None: ...
    def remote_private(self, name: str, text: str) -> None: ...
    def bus_notice(self, text: str) -> None: ...
    def name_lost(self, name: str) -> None: ...


class RoomBus:
    """The room of one server (see the module docstring): every answer is immediate."""

    #: True while the room is whole: every other server can be reached.
    linked = False
    room: BusListener | None = None

    def attach(self, room: BusListener) -> None:
        self.room = room

    def publish(self, text: str) -> None:
        """Nobody else to tell."""

    def join(self, name: str, on_joined: Callable[[str], object]) -> None:
        """A locally unique name is unique: nothing to claim."""
        on_joined(name)

    def claim(self, name: str, old: str, on_claimed: Callable[[], object],
              on_taken: Callable[[], object], on_failed: Callable[[str], object]) -> None:
        """The room has checked its own members: ``name`` is free."""
        on_claimed()

    def left(self, name: str, notice: str) -> None:
        """Nobody else to tell."""

    def who(self, on_names: Callable[[list[str]], object],
            on_failed: Callable[[str], object]) -> None:
        """No other server: the room's own names are all there is."""
        on_names([])

    def send_private(self, name: str, text: str, on_sent: Callable[[], object],
                     on_unknown: Callable[[], object], on_failed: Callable[[str], object]
                     ) -> None:
        """Nobody here by that name means nobody anywhere."""
        on_unknown()

    def stats(self) -> dict[str, object]:
        return {}

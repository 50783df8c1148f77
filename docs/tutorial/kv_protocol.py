"""A small key-value server protocol, built on LineProtocol (docs/write-your-own-protocol.md).

    SET key value...    ->  OK             the value is the rest of the line, spaces included
    GET key             ->  VALUE value    or  NOT_FOUND
    DEL key             ->  DELETED        or  NOT_FOUND
    EXPIRE key seconds  ->  OK             or  NOT_FOUND; the key goes away that much later
    QUIT                ->  BYE, then the server closes the connection
    anything else       ->  error: ...     and the connection stays open

``Store`` owns the data and is shared by every connection; each connection gets its own
``KeyValueProtocol``, which owns nothing but its parsing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from protocols.line import LineProtocol

#: A store never holds more keys than this: one more SET gets an error instead.
MAX_KEYS = 100_000


class Store:
    """Keys to values, with optional expiry times on a monotonic clock.

    Expiry is lazy, as in Redis: an expired key is dropped when someone asks for it. Keys
    nobody asks for again stay until the next SET of that key, and ``MAX_KEYS`` bounds them.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._values: dict[bytes, bytes] = {}
        self._expires_at: dict[bytes, float] = {}

    def protocol_factory(self) -> KeyValueProtocol:
        """What the reactor calls for each new connection: a protocol sharing this store."""
        return KeyValueProtocol(self)

    def set(self, key: bytes, value: bytes) -> bool:
        """Store ``value`` with no expiry; false if the store is full."""
        self._drop_if_expired(key)
        if key not in self._values and len(self._values) >= self._max_keys:
            return False
        self._values[key] = value
        self._expires_at.pop(key, None)
        return True

    def get(self, key: bytes) -> bytes | None:
        self._drop_if_expired(key)
        return self._values.get(key)

    def delete(self, key: bytes) -> bool:
        self._drop_if_expired(key)
        self._expires_at.pop(key, None)
        return self._values.pop(key, None) is not None

    def expire(self, key: bytes, seconds: float) -> bool:
        if self.get(key) is None:
            return False
        self._expires_at[key] = self._clock() + seconds
        return True

    def _drop_if_expired(self, key: bytes) -> None:
        when = self._expires_at.get(key)
        if when is not None and when <= self._clock():
            del self._expires_at[key]
            del self._values[key]


class KeyValueProtocol(LineProtocol):
    """One connection's side: parse a line, ask the store, reply with one line."""

    max_line_length = 16 * 1024

    def __init__(self, store: Store) -> None:
        self.store = store

    def line_received(self, line: bytes) -> None:
        command, _, rest = line.partition(b" ")
        command = command.upper()
        if command == b"SET":
            key, _, value = rest.partition(b" ")
            if not key:
                self.send_line("error: usage: SET key value")
            elif self.store.set(key, value):
                self.send_line("OK")
            else:
                self.send_line("error: the store is full")
        elif command == b"GET" and rest:
            found = self.store.get(rest)
            self.send_line(b"NOT_FOUND" if found is None else b"VALUE " + found)
        elif command == b"DEL" and rest:
            self.send_line("DELETED" if self.store.delete(rest) else "NOT_FOUND")
        elif command == b"EXPIRE":
            self._expire(rest)
        elif command == b"QUIT":
            self.send_line("BYE")
            assert self.transport is not None
            self.transport.close()  # BYE is flushed first; lines after QUIT are not read
        else:
            self.send_line("error: commands are SET, GET, DEL, EXPIRE and QUIT")

    def _expire(self, rest: bytes) -> None:
        key, _, seconds = rest.partition(b" ")
        try:
            delay = float(seconds)
        except ValueError:
            delay = math.nan
        if not math.isfinite(delay):
            self.send_line("error: usage: EXPIRE key seconds")
            return
        self.send_line("OK" if self.store.expire(key, delay) else "NOT_FOUND")

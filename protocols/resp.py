"""RESP, the Redis serialization protocol (version 2): commands out, replies in, incrementally.

Owns the parser's state between two reads: the arrays still being filled, the length of a bulk
string still arriving, how much of a partial line has been searched, and how many bytes the reply
being parsed has taken so far. Does not own a connection or a buffer: ``RespParser.feed`` is
given the connection's receive buffer and takes only what it has parsed. ``protocols/redis.py``
is the protocol that uses it; read it next.

The wire format (every line ends in ``\\r\\n``; the first byte says what follows)::

    +OK\\r\\n                    simple string   -> str
    -ERR unknown command\\r\\n   error           -> ReplyError (an exception object)
    :42\\r\\n                    integer         -> int
    $5\\r\\nhello\\r\\n           bulk string     -> bytes; $-1\\r\\n is nil -> None
    *2\\r\\n:1\\r\\n$1\\r\\nx\\r\\n    array of 2 replies -> list; *-1\\r\\n is nil -> None

A bulk string is length-prefixed, so it may hold ``\\r\\n`` and any byte; only the lines around
it are searched for ``\\r\\n``. Commands go out as an array of bulk strings (``encode_command``).

Two costs are bounded on purpose, as in ``protocols/line.py``:

* Time. A reply may arrive a byte at a time, or a 10 MB bulk string in 40 chunks. The parser never
  re-parses from the start: a bulk string whose length is known waits until the buffer holds it
  (a length check, no copy), a partial line is searched only past what was searched before, and
  what has been parsed is removed from the buffer at once. Each byte is copied a bounded number
  of times, whatever the chunk size.
* Memory. One reply may not take more than ``max_reply_bytes`` on the wire: a bulk string or an
  array that announces more is refused as soon as its header arrives, before its body is
  buffered, and a line that grows past the budget without ending is refused too. Arrays nest at
  most ``MAX_DEPTH`` deep. What the parsed reply holds in memory is then at most a small constant
  times the budget (a 4-byte ``:1\\r\\n`` becomes an ``int`` and a list slot).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reactor.buffer import ByteBuffer

#: The default budget for one reply, in bytes on the wire (Redis's own default limit for one
#: bulk string, proto-max-bulk-len, is 512 MB; a chat room needs far less).
DEFAULT_MAX_REPLY_BYTES = 8 * 1024 * 1024
#: Arrays nested deeper than this are a protocol error (real replies nest two or three deep).
MAX_DEPTH = 32
#: The smallest encoding of one reply (``+\\r\\n``): an array of N replies is at least 3N bytes,
#: so one that could not fit in the budget is refused from its header alone.
SMALLEST_REPLY_BYTES = 3

CRLF = b"\r\n"
SIMPLE, ERROR, INTEGER, BULK, ARRAY = b"+-:$*"


class RedisError(Exception):
    """Base of every error the RESP client reports."""


class ReplyError(RedisError):
    """An error reply (``-ERR ...``, ``-WRONGTYPE ...``): the server refused one command.

    ``code`` is its first word, by Redis's convention the kind of error. The connection is fine:
    the next command's reply follows as usual. Inside an array (``EXEC``'s results) it is a value.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = message.split(" ", 1)[0]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReplyError) and other.message == self.message

    def __hash__(self) -> int:
        return hash(self.message)


class RespProtocolError(RedisError):
    """The byte stream is not RESP, or a reply is over budget: the connection cannot go on
    (there is no way to find where the next reply starts), so its owner closes it."""


Argument = bytes | bytearray | memoryview | str | int | float


def encode_command(args: Iterable[Argument]) -> bytes:
    """One command as RESP: an array of bulk strings. ``str`` is sent as UTF-8, numbers in
    decimal, bytes as they are (any byte, ``\\r\\n`` included: the length says where it ends)."""
    parts: list[bytes] = []
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode("utf-8")
        elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
            data = repr(arg).encode("ascii")
        elif isinstance(arg, (bytes, bytearray, memoryview)):
            data = bytes(arg)
        else:
            raise TypeError(f"a Redis command argument is bytes, str or a number, not "
                            f"{type(arg).__name__}")
        parts += (b"$%d\r\n" % len(data), data, CRLF)
    return b"*%d\r\n" % (len(parts) // 3) + b"".join(parts)


def _integer(line: bytes, what: str) -> int:
    """A RESP integer: an optional ``-`` then ASCII digits (``int()`` alone would also take
    spaces, ``+`` and ``_``)."""
    digits = line[1:] if line[:1] == b"-" else line
    if not digits.isdigit():
        raise RespProtocolError(f"{what} is not an integer: {line[:40]!r}")
    return int(line)


class _Array:
    """An array whose elements are still arriving."""

    __slots__ = ("expected", "items")

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.items: list[Any] = []


class RespParser:
    """Turns the bytes of a receive buffer into replies, one call to ``deliver`` each, in order.

    Feed it from ``data_received``: ``parser.feed(buffer, on_reply)``. It takes every complete
    reply out of the buffer and leaves the incomplete tail there, so the buffer never holds more
    than one reply's worth (which is why a client raises its connection's read limit to the
    reply budget: ``Connection.set_read_buffer_limit``). Raises ``RespProtocolError`` on bytes
    that are not RESP or a reply over budget; replies before the bad one were delivered.
    """

    def __init__(self, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES) -> None:
        if max_reply_bytes < SMALLEST_REPLY_BYTES:
            raise ValueError(f"max_reply_bytes must be at least {SMALLEST_REPLY_BYTES}")
        self.max_reply_bytes = max_reply_bytes
        self._arrays: list[_Array] = []
        self._bulk_length: int | None = None  # a bulk string's body is awaited
        self._searched = 0  # bytes of a partial line already searched for CRLF
        self._reply_bytes = 0  # wire bytes taken so far by the reply being parsed

    def feed(self, buffer: ByteBuffer, deliver: Callable[[Any], object]) -> None:
        """Parse and ``deliver`` every complete reply in ``buffer``; leave the rest in it."""
        if not buffer:
            return
        if self._bulk_length is not None:
            if len(buffer) < self._bulk_length + 2:
                return  # the body is not all here: a length check, nothing copied
        elif buffer.find(CRLF, self._searched) == -1:
            self._partial_line(len(buffer))
            return
        data = buffer.take()
        parsed = self._parse(data, deliver)
        if parsed < len(data):
            # A view of the unparsed tail, not a copy: it may be most of a large bulk string.
            buffer.append_unsent(data, parsed)

    def _partial_line(self, size: int) -> None:
        """``size`` bytes of a line without its CRLF: remember they were searched (all but the
        last, which may be the CR of a CRLF split across reads), and judge them."""
        self._searched = max(0, size - 1)
        if self._reply_bytes + size > self.max_reply_bytes:
            raise RespProtocolError(f"a reply line passed {self.max_reply_bytes} bytes "
                                    "without ending")

    def _take_budget(self, size: int, what: str) -> None:
        self._reply_bytes += size
        if self._reply_bytes > self.max_reply_bytes:
            raise RespProtocolError(f"{what} would take the reply past {self.max_reply_bytes} "
                                    "bytes")

    def _parse(self, data: bytes, deliver: Callable[[Any], object]) -> int:
        """Parse ``data`` from its start as far as it goes; return how many bytes were parsed."""
        end = len(data)
        position = 0
        value: Any
        while position < end:
            bulk_length = self._bulk_length
            if bulk_length is not None:
                stop = position + bulk_length
                if stop + 2 > end:
                    break
                if data[stop:stop + 2] != CRLF:
                    raise RespProtocolError("a bulk string is not followed by CRLF")
                value = data[position:stop]
                position = stop + 2
                self._bulk_length = None
            else:
                line_end = data.find(CRLF, position)
                if line_end == -1:
                    self._partial_line(end - position)
                    break
                kind = data[position]
                line = data[position + 1:line_end]
                self._take_budget(line_end + 2 - position, "a line")
                position = line_end + 2
                if kind == BULK:
                    length = _integer(line, "a bulk string length")
                    if length >= 0:
                        self._take_budget(length + 2, f"a bulk string of {length} bytes")
                        self._bulk_length = length
                        continue
                    if length != -1:
                        raise RespProtocolError(f"negative bulk string length {length}")
                    value = None
                elif kind == ARRAY:
                    count = _integer(line, "an array length")
                    if count > 0:
                        self._open_array(count)
                        continue
                    if count < -1:
                        raise RespProtocolError(f"negative array length {count}")
                    value = [] if count == 0 else None
                elif kind == SIMPLE:
                    value = line.decode("utf-8", "replace")
                elif kind == INTEGER:
                    value = _integer(line, "an integer reply")
                elif kind == ERROR:
                    value = ReplyError(line.decode("utf-8", "replace"))
                else:
                    raise RespProtocolError(f"unknown reply type {bytes([kind])!r} "
                                            "(RESP2: one of + - : $ *)")
            self._place(value, deliver)
        return position

    def _open_array(self, count: int) -> None:
        if len(self._arrays) >= MAX_DEPTH:
            raise RespProtocolError(f"arrays nested more than {MAX_DEPTH} deep")
        room = self.max_reply_bytes - self._reply_bytes
        if count * SMALLEST_REPLY_BYTES > room:
            raise RespProtocolError(f"an array of {count} replies cannot fit in "
                                    f"{self.max_reply_bytes} bytes")
        self._arrays.append(_Array(count))

    def _place(self, value: Any, deliver: Callable[[Any], object]) -> None:
        """A value is complete: it fills a slot of the innermost open array (closing every
        array it completes), or, outside any array, it is a whole reply."""
        arrays = self._arrays
        while arrays:
            innermost = arrays[-1]
            innermost.items.append(value)
            if len(innermost.items) < innermost.expected:
                return
            arrays.pop()
            value = innermost.items
        self._reply_bytes = 0
        self._searched = 0
        deliver(value)

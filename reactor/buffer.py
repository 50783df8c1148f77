"""ByteBuffer: the FIFO of bytes used for both directions of a connection.

Owns: a list of chunks and their total length. Does not own a socket, and knows nothing of
framing: protocols decide where a message ends (see ``protocols/line.py``).

Why chunks instead of one ``bytearray``: ``recv()`` hands us a fresh ``bytes`` object anyway.
Appending it to a ``bytearray`` copies it once, and taking it out again copies it a second time;
at 100 KiB messages that doubles the CPU per round trip (measured: docs/design.md, "Performance
notes"). So the buffer keeps the objects as they arrived and copies only when an operation spans
chunk boundaries::

    head                                                            tail
    +------------------+----------------------------+-------------+
    | chunk 0 (a view  |  chunk 1                   |  chunk 2    |   <- append() adds here
    |  after consume)  |                            |             |
    +------------------+----------------------------+-------------+
    ^ take()/consume() remove from here

Invariant: ``_length == sum(len(chunk) for chunk in _chunks)``, no chunk is empty, and an empty
buffer holds the shared ``NO_CHUNKS`` tuple. (One step further, a connection that has neither
received nor queued anything holds no buffer of its own at all but ``EMPTY_BUFFER``, at the
end of this module.) One place outside this class fills ``_chunks`` and
``_length`` directly and keeps the invariant by hand: ``Connection._on_readable``, where a
``recv()`` into an empty receive buffer becomes its one chunk, saving an ``append()`` call on
every read, the hottest line of the reactor. ``reactor/connection.py`` also *reads* ``_length``
on its per-event paths, for the same reason (a Python-level ``__len__`` is a function call).

``take()`` of exactly one whole ``bytes`` chunk returns that very object (no copy). A partial
``consume()`` of the head chunk replaces it with a ``memoryview`` of the rest, again without
copying; the send path hands those views straight to ``sendmsg()``.

Why a list and not a ``deque``: an empty deque is 760 bytes, and every connection has two
buffers, almost always empty: two deques alone would be twice what a whole idle connection costs
today (760 B measured with 10,000 open, docs/design.md). An empty buffer holds no container at
all, only a shared empty tuple; the first append makes a list. Taking the
head chunk off a list moves the other pointers (``del chunks[0]``), which costs nothing at the
handful of chunks a buffer holds; merging (below) keeps that number small.

Many tiny appends (a peer trickling one byte per segment) would make a long list of tiny chunks
that every ``find()`` walks. So a small append is merged into a small tail chunk: the copy is
bounded by ``MERGE_LIMIT_BYTES`` per append, and a 64 KiB line arriving a byte at a time ends up in
about 64 chunks instead of 65,536.
"""

from __future__ import annotations

from collections.abc import Iterator

Chunk = bytes | memoryview

#: What every empty buffer holds instead of a list of its own.
NO_CHUNKS: tuple[Chunk, ...] = ()

#: Appends this small are merged into an equally small tail chunk (see the module docstring).
MERGE_LIMIT_BYTES = 1024


class ByteBuffer:
    """A FIFO of bytes: append at the tail; peek, find, take or consume at the head."""

    __slots__ = ("_chunks", "_length")

    def __init__(self, data: bytes = b"") -> None:
        self._chunks: list[Chunk] | tuple[Chunk, ...] = NO_CHUNKS
        self._length = 0
        if data:
            self.append(data)

    def __len__(self) -> int:
        return self._length

    def __bool__(self) -> bool:
        return self._length != 0

    # -- what bytes would do, refused with the way out -------------------------------------------
    # ``data_received`` has asyncio's name but gets this buffer, not ``bytes``: ``bytes(data)``,
    # ``data[:4]``, ``data == b"QUIT"`` or ``for b in data`` would otherwise fail obscurely or,
    # worse for ``==``, quietly be false. A copy that leaves the bytes in place (what a working
    # ``bytes(buffer)`` would be) is the subtler trap: the next call would deliver them again.

    _NOT_BYTES = ("a ByteBuffer is the connection's receive buffer, not bytes: buffer.take() "
                  "removes and returns its bytes (take_line() one line, peek() a copy that "
                  "leaves them in place)")

    def __bytes__(self) -> bytes:
        raise TypeError(self._NOT_BYTES)

    def __getitem__(self, index: object) -> bytes:
        raise TypeError(self._NOT_BYTES)

    def __iter__(self) -> Iterator[int]:
        raise TypeError(self._NOT_BYTES)

    def __contains__(self, item: object) -> bool:
        raise TypeError(self._NOT_BYTES)  # find() searches without taking

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (bytes, bytearray, memoryview)):
            raise TypeError(self._NOT_BYTES)
        return NotImplemented

    __hash__ = object.__hash__  # defining __eq__ would otherwise make buffers unhashable

    def chunk_count(self) -> int:
        """How many chunks the bytes are in (1 means ``take()`` copies nothing)."""
        return len(self._chunks)

    def __repr__(self) -> str:
        return f"<ByteBuffer {self._length} bytes in {len(self._chunks)} chunks>"

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Add ``data`` at the tail.

        ``bytes`` is kept as the very object. Mutable input (``bytearray``, ``memoryview``) is
        copied, because the caller may change it after we return. Anything that is not bytes-like
        (a ``str``, or a ``ByteBuffer`` passed by mistake) raises ``TypeError`` here, at once.
        """
        if type(data) is not bytes:
            data = bytes(memoryview(data))
        size = len(data)
        if not size:
            return
        chunks = self._chunks
        if not chunks:
            self._chunks = [data]
        elif size < MERGE_LIMIT_BYTES and len(chunks[-1]) < MERGE_LIMIT_BYTES:
            chunks[-1] = bytes(chunks[-1]) + data  # type: ignore[index]  # non-empty: a list
        else:
            chunks.append(data)  # type: ignore[union-attr]  # non-empty: a list
        self._length += size

    def append_unsent(self, data: bytes | bytearray | memoryview, sent: int) -> None:
        """Queue ``data[sent:]``, what a partial ``send()`` left over.

        Immutable ``bytes`` is kept as a view of the caller's object (no copy of a 100 KiB
        tail); anything mutable is copied, as in ``append``.
        """
        if type(data) is bytes:
            if sent < len(data):
                tail = memoryview(data)[sent:] if sent else data
                if self._chunks:
                    self._chunks.append(tail)  # type: ignore[union-attr]
                else:
                    self._chunks = [tail]
                self._length += len(data) - sent
        else:
            self.append(memoryview(data)[sent:])

    def peek(self, size: int | None = None) -> bytes:
        """Return up to ``size`` bytes from the head (all when ``None``) without removing them."""
        if size is None or size > self._length:
            size = self._length
        if size <= 0:
            return b""
        first = self._chunks[0]
        if len(first) >= size:
            return first if (type(first) is bytes and len(first) == size) else bytes(first[:size])
        return self._join(size)

    def take(self, size: int | None = None) -> bytes:
        """Remove and return up to ``size`` bytes from the head (all when ``None``)."""
        chunks = self._chunks
        if size is None and len(chunks) == 1:
            # What an echo takes after every read, tested first: one chunk in, that chunk out
            # (callgrind, 1 KiB echo over 10 connections: 11.63k -> 11.32k instructions per
            # round trip).
            first = chunks[0]
            self._chunks = NO_CHUNKS
            self._length = 0
            return first if type(first) is bytes else bytes(first)
        if size is None or size > self._length:
            size = self._length
        if size <= 0:
            return b""
        first = chunks[0]
        if len(first) == size:
            if size == self._length:  # asked for exactly the one chunk held
                self._chunks = NO_CHUNKS
                self._length = 0
            else:
                del self._chunks[0]  # type: ignore[union-attr]
                self._length -= size
            return first if type(first) is bytes else bytes(first)
        data = self.peek(size)
        self.consume(size)
        return data

    def consume(self, size: int) -> None:
        """Drop ``size`` bytes from the head (what ``send()`` accepted, or input to discard)."""
        if size >= self._length:
            self.clear()
            return
        chunks = self._chunks  # non-empty, so a list
        self._length -= size
        while size:
            first = chunks[0]
            if len(first) <= size:
                del chunks[0]  # type: ignore[union-attr]
                size -= len(first)
            else:
                # A view of the rest: the partial-send case, where copying the unsent tail of
                # a 100 KiB chunk on every short send() would be quadratic.
                chunks[0] = memoryview(first)[size:]  # type: ignore[index]
                size = 0

    def clear(self) -> None:
        """Drop everything (``abort()`` discards the send queue this way)."""
        self._chunks = NO_CHUNKS
        self._length = 0

    def find(self, needle: bytes, start: int = 0) -> int:
        """Return the offset of the first ``needle`` at or after ``start``, or -1.

        Walks the chunks without joining them. A needle that straddles a chunk boundary is
        found by also searching the few bytes around each boundary. Callers that wait for a
        delimiter pass ``start`` to skip bytes they have already searched (see LineProtocol).
        """
        if not needle:
            raise ValueError("cannot search for an empty delimiter")
        if start >= self._length:
            return -1
        overlap = len(needle) - 1
        offset = 0
        previous_tail = b""
        for chunk in self._chunks:
            chunk_length = len(chunk)
            chunk_end = offset + chunk_length
            if chunk_end <= start:
                offset = chunk_end
                if overlap:
                    previous_tail = (previous_tail + bytes(chunk[-overlap:]))[-overlap:]
                continue
            if overlap and previous_tail:
                seam = previous_tail + bytes(chunk[:overlap])
                seam_start = offset - len(previous_tail)
                at = seam.find(needle, max(0, start - seam_start))
                if at != -1:
                    return seam_start + at
            # bytes.find and memoryview don't mix, so search a view's bytes (rare: only a send
            # queue holds views, and only its head).
            haystack = chunk if type(chunk) is bytes else bytes(chunk)
            at = haystack.find(needle, max(0, start - offset))
            if at != -1:
                return offset + at
            if overlap:
                previous_tail = (previous_tail + haystack[-overlap:])[-overlap:]
            offset = chunk_end
        return -1

    def take_line(self, delimiter: bytes = b"\n", start: int = 0) -> bytes | None:
        """Remove and return the bytes before the next ``delimiter``, or ``None`` if there is no
        complete line yet. The delimiter itself is removed and not returned."""
        end = self.find(delimiter, start)
        if end == -1:
            return None
        line = self.take(end)
        self.consume(len(delimiter))
        return line

    def head_chunks(self, limit: int) -> list[Chunk]:
        """The first ``limit`` chunks as a list: the iovec a vectored ``sendmsg()`` takes."""
        return list(self._chunks[:limit])

    def _join(self, size: int) -> bytes:
        """Copy the first ``size`` bytes into one object: the only place chunks are joined."""
        parts: list[Chunk] = []
        remaining = size
        for chunk in self._chunks:
            if len(chunk) >= remaining:
                parts.append(chunk[:remaining])
                break
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)


class SharedEmptyBuffer(ByteBuffer):
    """The one empty buffer every connection holds in each direction until bytes first arrive
    or queue there (``Connection.recv_buffer``): two empty buffers of its own cost an idle
    connection 96 bytes (tracemalloc, 10,000 open). Everything that only reads a buffer works on
    it; adding bytes to it would hand them to every connection, so that raises."""

    __slots__ = ()

    def append(self, data: bytes | bytearray | memoryview) -> None:
        raise RuntimeError("the shared empty buffer holds no bytes: the connection makes its "
                           "own buffer first")

    def append_unsent(self, data: bytes | bytearray | memoryview, sent: int) -> None:
        self.append(data)


#: The shared empty buffer (see ``SharedEmptyBuffer``).
EMPTY_BUFFER = SharedEmptyBuffer()

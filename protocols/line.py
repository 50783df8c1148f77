"""LineProtocol: delimiter framing over the connection's receive buffer.

Owns two small pieces of framing state: how far the buffered partial line has already been
searched, and whether framing was given up after an overlong line. Does not own the buffer (the
connection does, see docs/design.md, "The receive contract") and knows nothing of what a line means:
subclasses implement ``line_received``.

Two costs are bounded on purpose:

* Time. A peer may trickle a long line one byte per segment. Searching the whole buffered line on
  every ``data_received`` would cost 1 + 2 + ... + n byte comparisons, quadratic in the line
  length. So the protocol remembers how many bytes it has already searched and passes that as
  ``start``: every byte is searched about once, however it is split into segments.
* Memory. A line may not pass ``max_line_length`` bytes. The partial line is judged as it grows,
  so a peer that never sends the delimiter cannot make us buffer without bound.

Read next: ``protocols/uppercase.py`` (the smallest subclass), then ``protocols/chat.py``.
"""

from __future__ import annotations

from reactor.buffer import ByteBuffer
from reactor.protocol import Protocol


class LineProtocol(Protocol):
    """Splits input into lines and calls ``line_received`` for each, in order.

    A trailing ``b"\\r"`` is stripped from each line, so ``b"\\r\\n"`` clients work with the
    default ``b"\\n"`` delimiter. Lines stop being delivered as soon as the transport is closing:
    a handler that closes the connection never sees the lines that were pipelined behind it.
    """

    delimiter: bytes = b"\n"
    #: The longest line accepted, in bytes, excluding the delimiter and a stripped ``b"\r"``.
    max_line_length: int = 64 * 1024

    # Bytes of the buffered partial line already searched for the delimiter.
    _scan_offset: int = 0
    # Set once ``line_too_long`` was called: we no longer know where the next line starts.
    _framing_lost: bool = False

    def data_received(self, buffer: ByteBuffer) -> None:
        """Deliver every complete line in ``buffer``; leave a partial line for the next call.

        The scan offset assumes this method is the only code taking bytes out of ``buffer``.
        """
        if self._framing_lost:
            buffer.clear()
            return
        if self._scan_offset == 0 and buffer.chunk_count() == 1:
            self._split_one_chunk(buffer)
            return
        delimiter = self.delimiter
        while not self._is_closing():
            line = buffer.take_line(delimiter, self._scan_offset)
            if line is None:
                self._check_partial_line(buffer)
                return
            self._scan_offset = 0
            self._deliver(line, buffer)

    def _split_one_chunk(self, buffer: ByteBuffer) -> None:
        """The usual case, made cheap: no partial line was pending, so the buffer holds just
        what one ``recv()`` returned. Slice the lines out of that one ``bytes`` object instead of
        taking them from the buffer one call at a time; put back only a trailing partial line.
        Every byte is still searched once. Measured with examples.bench (uppercase server, 1 KiB
        lines, user CPU per line against asyncio's line server): 1.43-1.90x before, 0.95-1.08x
        with it."""
        data = buffer.take()
        delimiter = self.delimiter
        width = len(delimiter)
        limit = self.max_line_length
        transport = self.transport
        start = 0
        end = data.find(delimiter)
        while end != -1:
            if transport is None or transport.is_closing():
                return  # the rest is not delivered: the connection is going away
            line = data[start:end]
            start = end + width
            if line[-1:] == b"\r":
                line = line[:-1]
            if len(line) > limit:
                self._give_up(buffer)
                return
            self.line_received(line)
            end = data.find(delimiter, start)
        if start < len(data):
            buffer.append(data[start:] if start else data)
            self._check_partial_line(buffer)

    def eof_received(self) -> bool:
        """Deliver an unterminated final line (the peer sent ``b"abc"`` then FIN), then close.

        Returns false: the connection closes once our queued replies have been sent.
        """
        transport = self.transport
        if transport is not None and not self._framing_lost and not self._is_closing():
            buffer = transport.recv_buffer
            if buffer:
                self._scan_offset = 0
                self._deliver(buffer.take(), buffer)
        return False

    def line_received(self, line: bytes) -> None:
        """One complete line arrived, without its delimiter. Override this."""

    def line_too_long(self) -> None:
        """A line passed ``max_line_length``: called once, after which no line is delivered.

        Default: tell the peer why with one error line, then close the connection.
        """
        self.send_line(f"error: line too long (max {self.max_line_length} bytes); "
                       "closing the connection")
        if self.transport is not None:
            self.transport.close()

    def idle_timed_out(self, idle_seconds: float) -> None:
        """Say why in one error line, then close (the base class just closes)."""
        self.send_line(f"error: idle for {idle_seconds:g}s, closing")
        super().idle_timed_out(idle_seconds)

    def send_line(self, line: bytes | str) -> None:
        """Write ``line`` and the delimiter in one ``write`` call (``str`` is sent as UTF-8).

        One call, not two, so the line and its delimiter are one send queue entry and, while
        nothing is queued, one ``send()``. Dropped silently once the connection is gone, like
        ``write`` after ``close()``.
        """
        if isinstance(line, str):
            line = line.encode("utf-8")
        if self.transport is not None:
            self.transport.write(line + self.delimiter)

    def _deliver(self, line: bytes, buffer: ByteBuffer) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.max_line_length:
            self._give_up(buffer)
        else:
            self.line_received(line)

    def _check_partial_line(self, buffer: ByteBuffer) -> None:
        """Judge the partial line, then remember how much of it has been searched.

        A partial line may still end with a ``b"\\r"`` and a split delimiter, so it is too long
        only past ``max_line_length + len(delimiter)`` bytes; a complete line is judged exactly
        in ``_deliver``. The last ``len(delimiter) - 1`` bytes are searched again next time,
        because a delimiter may straddle the end of what has arrived so far.
        """
        buffered = len(buffer)
        if buffered > self.max_line_length + len(self.delimiter):
            self._give_up(buffer)
        else:
            self._scan_offset = max(0, buffered - len(self.delimiter) + 1)

    def _give_up(self, buffer: ByteBuffer) -> None:
        self._framing_lost = True
        buffer.clear()
        self.line_too_long()

    def _is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

"""UppercaseProtocol: one reply line per request line, the request in upper case.

Owns nothing beyond LineProtocol's framing. It shows the request/response shape: a reply written
from ``line_received``, with back-pressure left on (a client that sends but never reads is paused,
not buffered for). Upper-casing is Unicode-aware, so a reply may be longer than its request
("straße" becomes "STRASSE").

Read next: ``protocols/chat.py``, where one peer's line goes to many peers.
"""

from __future__ import annotations

from protocols.line import LineProtocol


class UppercaseProtocol(LineProtocol):
    """Replies to each UTF-8 line with ``line.upper()``.

    A line that is not valid UTF-8 gets one ``error:`` line and the connection stays open: the
    framing is intact, so the next line can be answered. An overlong line closes the connection
    (LineProtocol's default), because there the framing is lost.
    """

    def line_received(self, line: bytes) -> None:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self.send_line("error: line is not valid UTF-8")
            return
        self.send_line(text.upper())

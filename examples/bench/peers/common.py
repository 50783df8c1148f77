"""What every peer shares: its command line, its announcement, and the uppercase reply.

Owns the pause counter of one server process, the listen backlog, and the wording of the two
lines the harness parses (``listening on HOST:PORT`` on stdout, ``pause_writing events: N`` on stderr).
"""

from __future__ import annotations

import argparse
import sys

#: The longest line the line peers accept, as our LineProtocol's default ``max_line_length``.
MAX_LINE_BYTES = 64 * 1024
#: Our listener's backlog (``reactor.listener``'s default), so a burst of connects meets the same
#: queue in every peer (Twisted's own default would be 50).
BACKLOG = 128


def parser(description: str, *, loops: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    if loops:
        parser.add_argument("--loop", choices=["asyncio", "uvloop", "reactor"], default="asyncio",
                            help="the event loop implementation (default: %(default)s)")
    return parser


def announce(host: str, port: int) -> None:
    """The same first line as our servers print, flushed, so the harness starts them alike."""
    shown = f"[{host}]" if ":" in host else host
    print(f"listening on {shown}:{port}", flush=True)


class PauseCounter:
    """Counts ``pause_writing`` calls across every connection of this process."""

    def __init__(self) -> None:
        self.pauses = 0

    def report(self) -> None:
        print(f"pause_writing events: {self.pauses}", file=sys.stderr, flush=True)


def upper_reply(line: bytes | bytearray) -> bytes:
    """Our UppercaseProtocol's answer to one line (without its delimiter): the line upper-cased,
    or an error line for invalid UTF-8. A trailing ``\\r`` is dropped, as LineProtocol does."""
    if line.endswith(b"\r"):
        line = line[:-1]
    try:
        return line.decode("utf-8").upper().encode("utf-8") + b"\n"
    except UnicodeDecodeError:
        return b"error: line is not valid UTF-8\n"


def line_too_long_reply() -> bytes:
    return f"error: line too long (max {MAX_LINE_BYTES} bytes); closing the connection\n".encode()

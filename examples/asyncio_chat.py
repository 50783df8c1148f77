"""Chat server written as an ordinary asyncio program: the chat room's contract on asyncio streams.

    python examples/asyncio_chat.py --port 8890                          (asyncio's own loop)
    python -m reactor.aio --trace examples/asyncio_chat.py --port 8890   (the same file, our loop)
    nc 127.0.0.1 8890          (in two terminals; /help lists the commands)

It imports nothing from this repository: the point is that asyncio code runs unchanged on the
reactor (``reactor/aio``), and that ``--trace`` then shows every pass the loop makes for it. The
wire contract is ``protocols/chat.py``'s, and each of its safeguards has an asyncio spelling:

* a line is at most ``MAX_LINE_BYTES``: the ``StreamReader`` limit makes ``readuntil()`` raise
  ``LimitOverrunError`` instead of buffering an endless line;
* a member who does not read is disconnected once its unsent output would pass
  ``MAX_PENDING_BYTES`` (``transport.get_write_buffer_size()``): the room never waits for anyone;
* a member's own input is read only while its own output drains (``await writer.drain()`` after
  each line): back-pressure on the sender alone;
* a close after an error line is a lingering one (``write_eof()``, then read to the peer's EOF):
  closing a socket with unread input makes the kernel send RST, which can destroy the error line
  before the peer reads it.

(``/stats`` is the reactor server's alone: its figures are the reactor's own counters.)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import unicodedata
from contextlib import suppress
from dataclasses import dataclass

MAX_LINE_BYTES = 4096
MAX_NAME_CHARS = 32
#: A member whose non-empty send buffer a line would take past this is disconnected as too slow.
MAX_PENDING_BYTES = 1024 * 1024
#: How long a closing connection waits for the peer's FIN (its unread input is discarded).
LINGER_SECONDS = 2.0
#: How long output may take to drain at shutdown before the last connections are aborted.
SHUTDOWN_GRACE_SECONDS = 2.0
READ_BYTES = 65536

PROGRAM = "asyncio_chat"
HELP_TEXT = "* commands: /nick NAME, /who, /me TEXT, /msg NAME TEXT, /quit, /help"
NAME_RULES = f"1 to {MAX_NAME_CHARS} printable characters, no whitespace or ':'"
SHUTDOWN_NOTICE = "* the server is shutting down; goodbye"

log = logging.getLogger(PROGRAM)


def sanitize(text: str) -> str:
    """``text`` without characters that could act on a terminal (Unicode category C)."""
    if text.isprintable():
        return text
    text = text.replace("\t", " ")
    return "".join(char for char in text if not unicodedata.category(char).startswith("C"))


def is_valid_name(name: str) -> bool:
    return (0 < len(name) <= MAX_NAME_CHARS and name.isprintable()
            and " " not in name and ":" not in name)


def format_address(address: tuple[str, int]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(eq=False)
class Member:
    name: str
    writer: asyncio.StreamWriter


class Room:
    """The members by name, and every write to them (each goes through ``_write``)."""

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}

    def join(self, writer: asyncio.StreamWriter) -> Member:
        base = format_address(writer.get_extra_info("peername"))
        name, suffix = base, 2
        while name in self.members:
            name, suffix = f"{base}#{suffix}", suffix + 1
        member = self.members[name] = Member(name, writer)
        self.broadcast(f"* {name} joined", exclude=member)
        self.send(member, f"* welcome, you are {name}; /help lists commands")
        log.info("%s joined", name)
        return member

    def __contains__(self, member: Member) -> bool:
        return self.members.get(member.name) is member

    def leave(self, member: Member) -> None:
        if member in self:
            del self.members[member.name]
            self.broadcast(f"* {member.name} left")
            log.info("%s left", member.name)

    def rename(self, member: Member, name: str) -> str:
        """Rename ``member``; the reply for it (an error leaves the name unchanged)."""
        name = unicodedata.normalize("NFC", name)
        if not is_valid_name(name):
            return f"error: invalid name ({NAME_RULES})"
        if name in self.members:
            return f"error: name {name} is taken"
        old, member.name = member.name, name
        del self.members[old]
        self.members[name] = member
        self.broadcast(f"* {old} is now known as {name}", exclude=member)
        return f"* you are now known as {name}"

    def find(self, name: str) -> Member | None:
        return self.members.get(unicodedata.normalize("NFC", name))

    def send(self, member: Member, text: str) -> None:
        self._write([member], text)

    def broadcast(self, text: str, exclude: Member | None = None) -> None:
        self._write([member for member in self.members.values() if member is not exclude], text)

    def _write(self, members: list[Member], text: str) -> None:
        """Write to each member that can take the line; then drop the ones too slow to read.

        An empty buffer always takes the line (that member keeps up, however long the line), so
        a buffer holds at most ``max(MAX_PENDING_BYTES, one line)``.
        """
        data = (text + "\n").encode("utf-8")
        too_slow = []
        for member in members:
            if member.writer.is_closing():
                continue
            pending = member.writer.transport.get_write_buffer_size()
            if pending and pending + len(data) > MAX_PENDING_BYTES:
                too_slow.append(member)
            else:
                member.writer.write(data)
        for member in too_slow:
            if member in self:
                del self.members[member.name]
                member.writer.transport.abort()  # its unsent output is discarded
                self.broadcast(f"* {member.name} was disconnected: too slow to read")


def handle_line(room: Room, member: Member, line: bytes) -> bool:
    """Act on one line from ``member``; False once it asked to ``/quit``."""
    text = line.decode("utf-8", errors="replace")
    if not text.startswith("/"):
        message = sanitize(text).strip()
        if message:
            room.broadcast(f"{member.name}: {message}", exclude=member)
        return True
    command, _, argument = text.partition(" ")
    argument = argument.strip()
    match command.lower():
        case "/nick":
            room.send(member, room.rename(member, argument) if argument
                      else "error: usage: /nick NAME")
        case "/who":
            room.send(member, "* online: " + ", ".join(room.members))
        case "/me":
            action = sanitize(argument).strip()
            if action:
                room.broadcast(f"* {member.name} {action}", exclude=member)
            else:
                room.send(member, "error: usage: /me TEXT")
        case "/msg":
            name, _, private = argument.partition(" ")
            private = sanitize(private).strip()
            target = room.find(name)
            if not private:
                room.send(member, "error: usage: /msg NAME TEXT")
            elif target is None:
                room.send(member, f"error: no such name: {sanitize(name)}")
            else:
                room.send(target, f"[private] {member.name}: {private}")
        case "/quit":
            room.send(member, "* goodbye")
            room.leave(member)
            return False
        case "/help":
            room.send(member, HELP_TEXT)
        case _:
            room.send(member, f"error: unknown command {sanitize(command)}; /help lists commands")
    return True


async def read_line(reader: asyncio.StreamReader) -> bytes | None:
    """The next line without ``\\n`` or ``\\r\\n``; an unterminated last line at EOF; ``None``
    at EOF. ``ValueError`` if the line is longer than ``MAX_LINE_BYTES``."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as eof:  # FIN: what came after the last newline, if any
        line = eof.partial
        if not line:
            return None
    except asyncio.LimitOverrunError:  # no newline within the reader's limit
        raise ValueError("line too long") from None
    line = line.removesuffix(b"\n").removesuffix(b"\r")
    if len(line) > MAX_LINE_BYTES:  # the limit allows one byte more, for a "\r"
        raise ValueError("line too long")
    return line


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close once our output is sent: FIN first, then discard the peer's input until its FIN
    (or ``LINGER_SECONDS``), so that no unread input turns our close into an RST. A peer that
    reset meanwhile makes ``write_eof()``'s ``shutdown()`` fail with ENOTCONN: nothing to do."""
    with suppress(OSError):  # ENOTCONN, ECONNRESET, and TimeoutError (also an OSError)
        if not writer.is_closing():
            writer.write_eof()  # sent after whatever is still buffered
            async with asyncio.timeout(LINGER_SECONDS):
                while await reader.read(READ_BYTES):
                    pass
    writer.close()
    with suppress(OSError):  # wait_closed() raises what ended the connection, if anything did
        await writer.wait_closed()


async def serve_member(room: Room, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
    """One connection, from its welcome to its close."""
    member = room.join(writer)
    try:
        while member in room:
            try:
                line = await read_line(reader)
            except ValueError:
                room.leave(member)  # the others hear it now, not at the close
                writer.write(f"error: line too long (max {MAX_LINE_BYTES} bytes); "
                             "closing the connection\n".encode())
                break
            if line is None or member not in room or not handle_line(room, member, line):
                break
            await writer.drain()  # our own output is past its high-water mark: stop reading us
    except OSError as exc:  # a reset, a timeout: the peer is gone, the room goes on
        log.info("%s: %s", member.name, exc)
    finally:
        room.leave(member)
        await hang_up(reader, writer)


async def serve(host: str, port: int) -> int:
    room = Room()
    handlers: set[asyncio.Task[None]] = set()
    writers: set[asyncio.StreamWriter] = set()  # every open connection, in the room or leaving

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        writers.add(writer)
        try:
            await serve_member(room, reader, writer)
        finally:
            writers.discard(writer)
            handlers.discard(task)

    try:
        # One byte over the line limit, so that a longest line may still end in "\r\n".
        server = await asyncio.start_server(connected, host, port, limit=MAX_LINE_BYTES + 1)
    except OSError as exc:  # port in use, address not ours, unknown host
        # start_server rewords a bind error's strerror; its errno says it plainly ("Address
        # already in use"). A resolver error (socket.gaierror) has a negative EAI_* code.
        reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror
        print(f"{PROGRAM}: cannot listen on {format_address((host, port))}: {reason or exc}",
              file=sys.stderr, flush=True)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"listening on {format_address(server.sockets[0].getsockname())}", flush=True)
    await stop.wait()

    log.warning("shutting down; closing %d connection(s)", len(writers))
    server.close()
    room.broadcast(SHUTDOWN_NOTICE)
    for writer in writers:
        writer.close()  # after its buffered output; its handler then sees EOF and ends
    if handlers:
        await asyncio.wait(handlers, timeout=SHUTDOWN_GRACE_SECONDS)
    for writer in writers:  # too slow to take their last lines: give up on them
        writer.transport.abort()
    if handlers:  # each sees its connection lost on the next pass
        await asyncio.wait(handlers)
    return 0


def port_number(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0 to 65535): {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", type=lambda text: text.strip("[]"),
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=port_number, default=0,
                        help="TCP port; 0 picks any free port (default: %(default)s)")
    parser.add_argument("--log-level", default="warning", type=str.lower,
                        choices=["debug", "info", "warning", "error"],
                        help="logging threshold on stderr (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were in place
        return 0


if __name__ == "__main__":
    sys.exit(main())

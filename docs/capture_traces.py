"""Reproduce every trace shown in docs/walkthrough.md, from real servers and real clients.

    python docs/capture_traces.py                 # every scenario, in order
    python docs/capture_traces.py echo reset      # only these (names: --list)

Each scenario starts a fresh server the way a user does (``python -m examples.NAME --trace
--port 0``), drives it with a real client (Python sockets, ``nc`` when it is installed, or
``python -m examples.uppercase_client``), stops the server with SIGINT and prints what
``--trace`` wrote to its stderr. Two things are changed, nothing else: timestamps are shortened
to ``HH:MM:SS.mmm``, and the passes after the SIGINT (the server's own shutdown) are left out.
Ports, descriptors and byte counts are whatever this run produced.

The server also runs with ``--trace-json``: that file is flushed event by event, so the script
can wait for the server's ``connection_lost`` before it sends SIGINT. (The ``--trace`` text is
printed a whole pass at a time, when the next pass begins, so it cannot be waited on.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: How long any one step (a server starting, a reply, a close) may take before we give up.
STEP_TIMEOUT_SECONDS = 10.0
#: The partial-send scenario: the most the client sends in all (it usually stops far sooner).
BULK_CAP_BYTES = 64 * 1024 * 1024
#: ... and how small a receive buffer it asks for, so that the server's send() fills up sooner.
SLOW_CLIENT_RCVBUF_BYTES = 32 * 1024
#: The EAGAIN scenario: how many 100-byte lines the client sends (their replies must overflow
#: the server's kernel send buffer and then its 64 KiB high-water mark). 2000 lines (200 KB)
#: sometimes fit in the ~208 KiB a Unix socket buffers when the server batches its replies into
#: few large sends, and the trace then showed no EAGAIN; 600 KB cannot fit, however it batches.
UNIX_LINES = 6000
#: The overlong-line scenario: more than the uppercase server's 64 KiB line limit, no newline.
OVERLONG_BYTES = 200_000

LOG_RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d (?P<time>\d\d:\d\d:\d\d),(?P<ms>\d{3}) (?P<level>[A-Z]+) (?P<name>[\w.]+): ")
LISTENING = re.compile(r"listening on (?:unix:\S+|(?:\[[^\]]+\]|[^:\s]+):(?P<port>\d+))")


class ScenarioFailed(RuntimeError):
    pass


class Server:
    """One example server, started with ``--trace`` (stderr) and ``--trace-json`` (a file)."""

    def __init__(self, program: str, *, unix: bool = False) -> None:
        self.program = program
        self._workdir = tempfile.TemporaryDirectory(prefix="capture-traces-")
        self._json_path = Path(self._workdir.name) / "trace.jsonl"
        self._stderr = open(Path(self._workdir.name) / "stderr.txt", "w+b")
        self.unix_path = str(Path(self._workdir.name) / "server.sock") if unix else None
        where = ["--unix", self.unix_path] if unix else ["--port", "0"]
        self.command = [sys.executable, "-m", f"examples.{program}", "--trace", *where]
        self.process = subprocess.Popen(
            [*self.command, "--trace-json", str(self._json_path)], cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr)
        assert self.process.stdout is not None
        self._stdout = self.process.stdout
        announcement = read_line(self._stdout.fileno(), f"{program} stdout")
        match = LISTENING.search(announcement)
        if match is None:
            raise ScenarioFailed(f"{program} did not announce where it listens: {announcement!r}")
        self.port = int(match["port"]) if match["port"] else 0

    @property
    def shown_command(self) -> str:
        """The command as a reader would type it (without the --trace-json this script adds)."""
        words = ["python", *self.command[1:]]
        if self.unix_path is not None:
            words[-1] = "/tmp/server.sock"
        return " ".join(words)

    def events(self, name: str) -> list[dict[str, object]]:
        """The ``--trace-json`` events called ``name`` so far."""
        try:
            text = self._json_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        # The server may be in the middle of writing a line as we read: only the lines that
        # end in a newline are whole (a half-written one failed json.loads, once in a run).
        complete = text[:text.rfind("\n") + 1]
        return [record for line in complete.splitlines() if line.strip()
                for record in [json.loads(line)] if record["event"] == name]

    def wait_for(self, name: str, count: int = 1) -> None:
        """Wait until the server has reported ``count`` events called ``name``."""
        deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
        while len(self.events(name)) < count:
            if time.monotonic() > deadline:
                raise ScenarioFailed(f"{self.program}: no {name!r} event within "
                                     f"{STEP_TIMEOUT_SECONDS}s")
            time.sleep(0.02)

    def stop(self) -> str:
        """SIGINT, wait for the exit, and return the trace without the shutdown passes."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(STEP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise ScenarioFailed(f"{self.program} did not exit after SIGINT") from None
        finally:
            self._stdout.close()
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        self._stderr.close()
        self._workdir.cleanup()
        return shorten(text, cut_at="wakeup: signal SIGINT")

    def kill(self) -> None:
        """For a scenario that failed half-way: leave nothing running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if not self._stdout.closed:
            self._stdout.close()
        if not self._stderr.closed:
            self._stderr.close()
        self._workdir.cleanup()


def read_line(fd: int, what: str) -> str:
    """One line from a pipe, waiting with ``select()`` and a deadline."""
    data = b""
    deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise ScenarioFailed(f"{what}: no complete line within {STEP_TIMEOUT_SECONDS}s")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise ScenarioFailed(f"{what}: EOF before a line; got {data!r}")
        data += chunk
    return data.decode("utf-8")


def shorten(text: str, cut_at: str | None = None) -> str:
    """Shorten each log record's prefix to ``HH:MM:SS.mmm``; drop records from ``cut_at`` on.

    A trace record is one loop pass over several lines; only its first line has the prefix.
    Records of other loggers keep their level and logger name.
    """
    records: list[list[str]] = []
    for line in text.splitlines():
        match = LOG_RECORD.match(line)
        if match is None:
            if records:
                records[-1].append(line)
            else:
                records.append([line])
            continue
        stamp = f"{match['time']}.{match['ms']}"
        rest = line[match.end():]
        if match["name"] != "reactor.trace":
            rest = f"{match['level']} {match['name']}: {rest}"
        records.append([f"{stamp} {rest}"])
    kept: list[str] = []
    for record in records:
        if cut_at is not None and any(cut_at in line for line in record):
            break
        kept.extend(record)
    return "\n".join(kept)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT_SECONDS)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ScenarioFailed(f"EOF after {len(data)} of {size} bytes")
        data += chunk
    return data


def recv_until_eof(sock: socket.socket) -> bytes:
    parts: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


# -- the scenarios: each drives one server and returns what its client saw ----------------------


def echo_session(server: Server) -> list[str]:
    """A short echo session: two messages, each echoed, then the client closes (its FIN)."""
    notes = []
    with connect(server.port) as sock:
        for message in (b"hello\n", b"world\n"):
            sock.sendall(message)
            notes.append(f"client sent {message!r}, read back {recv_exactly(sock, len(message))!r}")
            time.sleep(0.05)  # two separate passes on the server, as a person typing would make
    notes.append("client closed its socket: FIN")
    server.wait_for("connection_lost")
    return notes


def half_close(server: Server) -> list[str]:
    """``printf 'hello\\nworld\\n' | nc -N``: send, shut down the write side, read until EOF."""
    request = b"hello\nworld\n"
    nc = shutil.which("nc")
    if nc is not None:
        result = subprocess.run([nc, "-N", "127.0.0.1", str(server.port)], input=request,
                                capture_output=True, timeout=STEP_TIMEOUT_SECONDS)
        notes = [f"$ printf 'hello\\nworld\\n' | nc -N 127.0.0.1 {server.port}",
                 f"nc printed {result.stdout!r} and exited with status {result.returncode}"]
    else:
        with connect(server.port) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            reply = recv_until_eof(sock)
        notes = ["(nc is not installed: a Python client did the same)",
                 "client sent b'hello\\nworld\\n', then shutdown(SHUT_WR): FIN",
                 f"client read {reply!r}, then EOF"]
    server.wait_for("connection_lost")
    return notes


def uppercase_client(server: Server) -> list[str]:
    """``printf 'hello\\nstraße' | python -m examples.uppercase_client --trace``: write_eof."""
    command = [sys.executable, "-m", "examples.uppercase_client", "--port", str(server.port),
               "--trace"]
    result = subprocess.run(command, cwd=REPO_ROOT, input="hello\nstraße".encode("utf-8"),
                            capture_output=True, timeout=STEP_TIMEOUT_SECONDS)
    server.wait_for("connection_lost")
    return [f"$ printf 'hello\\nstraße' | python -m examples.uppercase_client "
            f"--port {server.port} --trace",
            "client stdout:", *result.stdout.decode("utf-8", "replace").splitlines(),
            f"client exit status: {result.returncode}",
            "--- client trace (its stderr) ---",
            shorten(result.stderr.decode("utf-8", "replace"))]


def partial_send(server: Server) -> list[str]:
    """A client with a small receive buffer sends without reading until its own send() stalls,
    then reads everything back. (If the server showed no partial send by then, which we have
    not seen happen, the client keeps sending while it reads until one shows.)"""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_CLIENT_RCVBUF_BYTES)
    sock.settimeout(STEP_TIMEOUT_SECONDS)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    payload = memoryview(b"x" * BULK_CAP_BYTES)
    with sock:
        # Phase 1: send, never read, until our send() has been stuck for half a second: the
        # server's queue passed its high-water mark, so it stopped reading us.
        sent = send_until_stalled(sock, payload)
        stalled_at = sent
        # Phase 2: read everything back.
        received = 0
        pumping = not partial_send_seen(server)
        checked_at = sent
        deadline = time.monotonic() + 4 * STEP_TIMEOUT_SECONDS
        while received < sent or pumping:
            if time.monotonic() > deadline:
                raise ScenarioFailed(f"partial: only {received} of {sent} bytes came back")
            readable, writable, _ = select.select([sock], [sock] if pumping else [], [], 1.0)
            if readable:
                chunk = sock.recv(262144)
                if not chunk:
                    raise ScenarioFailed(f"partial: EOF after {received} bytes")
                received += len(chunk)
            if writable:
                sent += send_some(sock, payload[sent:sent + 65536])
            if pumping and (sent - checked_at >= 1024 * 1024 or sent >= BULK_CAP_BYTES):
                checked_at = sent
                pumping = sent < BULK_CAP_BYTES and not partial_send_seen(server)
        sock.setblocking(True)
        sock.shutdown(socket.SHUT_WR)
        rest = recv_until_eof(sock)
    server.wait_for("connection_lost")
    return [f"client asked for SO_RCVBUF={SLOW_CLIENT_RCVBUF_BYTES} and sent without reading",
            f"client's send() stalled after {stalled_at} bytes: the server had stopped "
            "reading it",
            f"client then read back all {received + len(rest)} bytes it had sent, sent FIN, "
            "read EOF"]


def eagain_over_unix(server: Server) -> list[str]:
    """Short lines to the uppercase server over a Unix socket, without reading the replies."""
    assert server.unix_path is not None
    request = b"".join(b"line %04d " % number + b"x" * 90 + b"\n"
                       for number in range(UNIX_LINES))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(STEP_TIMEOUT_SECONDS)
        sock.connect(server.unix_path)
        sock.setblocking(False)
        sent = send_until_stalled(sock, memoryview(request))
        stalled_at = sent
        replies = 0
        deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
        while replies < len(request):
            if time.monotonic() > deadline:
                raise ScenarioFailed(f"eagain: only {replies} of {len(request)} bytes came back")
            want_write = [sock] if sent < len(request) else []
            readable, writable, _ = select.select([sock], want_write, [], 1.0)
            if readable:
                chunk = sock.recv(262144)
                if not chunk:
                    raise ScenarioFailed(f"eagain: EOF after {replies} bytes")
                replies += len(chunk)
            if writable:
                sent += send_some(sock, memoryview(request)[sent:])
        sock.setblocking(True)
        sock.shutdown(socket.SHUT_WR)
        rest = recv_until_eof(sock)
    server.wait_for("connection_lost")
    return [f"client sent {UNIX_LINES} lines of 100 bytes each (with their newline), "
            "without reading",
            f"client's send() stalled after {stalled_at} of {len(request)} bytes",
            f"client then read all {replies + len(rest)} bytes of replies while sending the "
            "rest, sent FIN, read EOF"]


def send_until_stalled(sock: socket.socket, data: memoryview) -> int:
    """Send without reading until all is sent or send() has been stuck for half a second."""
    sent = 0
    while sent < len(data) and select.select([], [sock], [], 0.5)[1]:
        sent += send_some(sock, data[sent:sent + 65536])
    return sent


def send_some(sock: socket.socket, data: memoryview) -> int:
    try:
        return sock.send(data)
    except BlockingIOError:
        return 0


def partial_send_seen(server: Server) -> bool:
    return any("of" in event and "error" not in event for event in server.events("send"))


def reset(server: Server) -> list[str]:
    """The client aborts: SO_LINGER 0 then close() makes its kernel send RST, not FIN."""
    with connect(server.port) as sock:
        sock.sendall(b"hello\n")
        echoed = recv_exactly(sock, 6)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    server.wait_for("connection_lost")
    return [f"client sent b'hello\\n', read back {echoed!r}",
            "client set SO_LINGER to (on, 0 s) and closed: its kernel sent RST"]


def overlong_line(server: Server) -> list[str]:
    """A line longer than the uppercase server's limit: an error line, then a lingering close."""
    with connect(server.port) as sock:
        sock.sendall(b"x" * OVERLONG_BYTES)  # no newline, ever
        reply = recv_until_eof(sock)
        notes = [f"client sent {OVERLONG_BYTES} bytes without a newline",
                 f"client read {reply!r}, then EOF (the server's FIN)",
                 "client closed its socket: FIN, which ends the server's lingering close"]
    server.wait_for("connection_lost")
    return notes


def unread_input_demo() -> list[str]:
    """No reactor: what a plain close() with unread input does to a reply still in flight."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        client.connect(listener.getsockname())
        server_side, _ = listener.accept()
    with client:
        client.sendall(b"first request\nsecond request\n")
        time.sleep(0.05)
        request = server_side.recv(len(b"first request\n"))
        server_side.setblocking(False)
        reply = b"r" * 1_000_000
        taken = 0
        try:
            while taken < len(reply):
                taken += server_side.send(reply[taken:])
        except BlockingIOError:
            pass
        server_side.close()  # b"second request\n" is still unread: the kernel sends RST
        time.sleep(0.05)
        client.settimeout(STEP_TIMEOUT_SECONDS)
        got = 0
        outcome = "EOF"
        while True:
            try:
                chunk = client.recv(65536)
            except OSError as exc:
                outcome = f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}"
                break
            if not chunk:
                break
            got += len(chunk)
    return [f"server read {request!r}, left b'second request\\n' unread",
            f"server's send() calls took {taken} bytes of a {len(reply)}-byte reply "
            "into its kernel, then it called close()",
            f"client read {got} bytes of the reply, then: {outcome}"]


Scenario = Callable[[Server], list[str]]
SCENARIOS: dict[str, tuple[str, str | None, Callable[..., list[str]]]] = {
    "echo": ("A short echo session", "echo_server", echo_session),
    "half-close": ("Half-close: the client sends, then shuts down its write side",
                   "echo_server", half_close),
    "write-eof": ("write_eof from our own client", "uppercase_server", uppercase_client),
    "partial": ("Partial sends, the send queue and back-pressure", "echo_server", partial_send),
    "eagain": ("EAGAIN: the same write path over a Unix socket", "uppercase_server unix",
               eagain_over_unix),
    "reset": ("The peer aborts: RST", "echo_server", reset),
    "overlong": ("An overlong line: error, then a lingering close", "uppercase_server",
                 overlong_line),
    "unread-input": ("Without a lingering close: close() with unread input sends RST", None,
                     unread_input_demo),
}


def run_scenario(name: str) -> str:
    title, program, drive = SCENARIOS[name]
    lines = [f"=== {name}: {title} ==="]
    if program is None:
        lines += drive()
        return "\n".join(lines)
    name_of_program, _, transport = program.partition(" ")
    server = Server(name_of_program, unix=transport == "unix")
    try:
        notes = drive(server)
        trace = server.stop()
    except BaseException:
        server.kill()
        raise
    lines += notes
    lines.append(f"--- server trace ($ {server.shown_command}) ---")
    lines.append(trace)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", metavar="NAME",
                        help="scenarios to run (default: all, in order)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (title, _, _) in SCENARIOS.items():
            print(f"{name:14} {title}")
        return 0
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}; see --list")
    for name in args.scenarios or list(SCENARIOS):
        print(run_scenario(name), end="\n\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

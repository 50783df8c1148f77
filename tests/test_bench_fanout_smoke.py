"""The fan-out benchmark in miniature: its load clients check every delivery, and the command
runs its rooms interleaved and writes the rows it printed.

Not a measurement: a room of four for a third of a second is enough to show that each load
(``chat_load.c`` and ``chatload.py``) completes lines against a real room, catches one altered
byte in a room that relays lines wrongly, and that ``python -m examples.bench fanout`` gives one
row per room with figures from every round.
"""

from __future__ import annotations

import json
import selectors
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from examples.bench.load import CHAT_SOURCE, build_load
from tests.processes import REPO_ROOT, Launcher, built_or_skip
from tests.redis_process import require_redis_server

MEMBERS = 4
#: Bounds every wait of the altering room below (no sleeps: each wait is for an event).
ROOM_TIMEOUT_SECONDS = 10.0


def load_command(kind: str) -> list[str]:
    if kind == "python":
        return [sys.executable, "-m", "examples.bench.chatload"]
    return [str(built_or_skip(build_load(CHAT_SOURCE)))]


def run_load(kind: str, port: int) -> tuple[int, dict[str, object], str]:
    result = subprocess.run(
        [*load_command(kind), "--port", str(port), "--conns", str(MEMBERS), "--size", "64",
         "--seconds", "0.3", "--warmup", "0.1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


class AlteringRoom(threading.Thread):
    """A chat room that keeps the wire contract (welcome, join notices, ``NAME: line`` to every
    other member) except that it alters one byte of the ``alter_at``-th line it relays."""

    def __init__(self, members: int, alter_at: int) -> None:
        super().__init__(daemon=True)
        self.members = members
        self.alter_at = alter_at
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(ROOM_TIMEOUT_SECONDS)
        self.port = self.listener.getsockname()[1]
        self.altered = False

    def run(self) -> None:
        conns: list[socket.socket] = []
        with self.listener, selectors.DefaultSelector() as selector:
            for number in range(self.members):
                conn, _ = self.listener.accept()
                conn.settimeout(ROOM_TIMEOUT_SECONDS)
                for other in conns:
                    other.sendall(f"* member{number} joined\n".encode())
                conn.sendall(f"* welcome, you are member{number}; /help lists commands\n"
                             .encode())
                conns.append(conn)
                selector.register(conn, selectors.EVENT_READ, number)
            partial = [b""] * self.members
            relayed = 0
            while selector.get_map():
                events = selector.select(ROOM_TIMEOUT_SECONDS)
                if not events:
                    return  # the load went quiet without closing: the test's assert fails
                for key, _ in events:
                    sender = key.data
                    try:
                        data = conns[sender].recv(65536)
                    except ConnectionResetError:  # the load closed with our lines unread
                        data = b""
                    if not data:
                        selector.unregister(conns[sender])
                        conns[sender].close()
                        continue
                    *lines, partial[sender] = (partial[sender] + data).split(b"\n")
                    for line in lines:
                        relayed += 1
                        out = b"member%d: %s\n" % (sender, line)
                        if relayed == self.alter_at:
                            out = out[:-2] + bytes([out[-2] ^ 0x20]) + b"\n"  # a -> A
                            self.altered = True
                        for number, conn in enumerate(conns):
                            if number != sender and conn.fileno() != -1:
                                try:
                                    conn.sendall(out)
                                except OSError:
                                    pass  # that member's load is gone; its EOF comes next


@pytest.mark.parametrize("kind", ["c", "python"])
def test_chat_load_completes_lines_in_our_room(kind: str, launch: Launcher) -> None:
    server = launch.server("chat_server")
    status, report, stderr = run_load(kind, server.port)
    assert status == 0, stderr
    assert report["errors"] == 0 and report["mismatches"] == 0
    deliveries = report["rtts"]
    assert isinstance(deliveries, int) and deliveries > 0
    # Each line completed in the window reached every other member: the counts agree.
    lines_sent = report["lines_sent_per_s"]
    assert isinstance(lines_sent, float) and lines_sent > 0
    assert report["delivery_p50_ms"] is not None and report["remote_p50_ms"] is None
    server.stop_cleanly()


@pytest.mark.parametrize("kind", ["c", "python"])
def test_chat_load_catches_one_altered_byte(kind: str) -> None:
    room = AlteringRoom(MEMBERS, alter_at=2 * MEMBERS + 1)
    room.start()
    status, report, stderr = run_load(kind, room.port)
    room.join(ROOM_TIMEOUT_SECONDS)
    assert room.altered and not room.is_alive()
    assert status == 1
    mismatches = report["mismatches"]
    assert isinstance(mismatches, int) and mismatches >= 1, stderr


def run_fanout(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str],
                                                     dict[str, object]]:
    results = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "examples.bench", "fanout", "--members", str(MEMBERS),
         "--seconds", "0.3", "--warmup", "0.1", "--json", str(results), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    section = json.loads(results.read_text())["fanout"]
    assert isinstance(section, dict)
    return result, section


def test_fanout_interleaves_our_room_and_the_asyncio_rooms(tmp_path: Path) -> None:
    names = ["chat", "asyncio-chat", "aio-chat"]
    result, section = run_fanout(tmp_path, "--rounds", "2", "--servers", ",".join(names))
    rows = section["rows"]
    assert isinstance(rows, dict) and list(rows) == names
    runs = section["runs"]
    assert isinstance(runs, list)
    assert [(run["round"], run["server"]) for run in runs] == [
        (round_number, name) for round_number in (1, 2) for name in names]
    for run in runs:
        assert run["ok"], run["error"]
        assert run["members"] == MEMBERS and run["rps"] > 0 and run["cpu_us_per_delivery"] > 0
        assert run["load_json"]["mismatches"] == 0 and run["load_json"]["conns"] == MEMBERS
    assert rows["asyncio-chat"]["rps_ratio"] == 1.0
    assert rows["chat"]["rps_ratio"] > 0 and rows["chat"]["rounds_ok"] == 2
    lines = result.stdout.split("chat fan-out, ")[1].splitlines()
    assert "vs asyncio-chat" in lines[1]
    assert [line.split()[0] for line in lines[3:3 + len(names)]] == names


def test_fanout_redis_shape_crosses_servers(tmp_path: Path) -> None:
    require_redis_server()
    _, section = run_fanout(tmp_path, "--rounds", "1", "--shapes", "redis")
    rows = section["rows"]
    assert isinstance(rows, dict) and list(rows) == ["chat-redis"]
    assert rows["chat-redis"]["remote_p50_ms"] > 0  # deliveries went through Redis
    assert section["shapes"] == ["redis"]


def test_fanout_refuses_an_unknown_shape() -> None:
    result = subprocess.run([sys.executable, "-m", "examples.bench", "fanout", "--shapes",
                             "triple"], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=20)
    assert result.returncode == 2 and "shapes are single, redis" in result.stderr

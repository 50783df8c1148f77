"""``python -m reactor.aio [--trace] [--trace-json FILE] SCRIPT [ARGS...]``: a small asyncio
program, written to a temporary directory, run on our loop and watched.

The program is an ordinary one: a streams server and a client in one ``asyncio.run``, one line
each way. What it prints proves it ran on our loop with its own arguments; what ``--trace``
prints on stderr and ``--trace-json`` writes proves the reactor's passes served it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.processes import REPO_ROOT, TIMEOUT

PROGRAM = '''\
import asyncio
import sys


async def main() -> None:
    async def shout(reader, writer):
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(shout, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
    writer.write(b"ping\\n")
    reply = await reader.readline()
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    loop = type(asyncio.get_running_loop()).__name__
    print(f"reply={reply!r} loop={loop} argv={sys.argv}", flush=True)
    sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)


asyncio.run(main())
'''


def run_aio(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reactor.aio", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=2 * TIMEOUT, check=False)


def write_program(tmp_path: Path) -> str:
    script = tmp_path / "shout.py"
    script.write_text(PROGRAM)
    return str(script)


def test_the_script_runs_on_our_loop_with_its_own_argv_and_exit_status(tmp_path: Path) -> None:
    script = write_program(tmp_path)
    result = run_aio(script, "3")
    assert result.stdout == f"reply=b'PING\\n' loop=ReactorEventLoop argv={[script, '3']}\n"
    assert result.returncode == 3
    assert result.stderr == ""  # no trace asked for, nothing went wrong


def test_trace_prints_the_programs_output_and_each_pass_on_stderr(tmp_path: Path) -> None:
    script = write_program(tmp_path)
    result = run_aio("--trace", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"reply=b'PING\\n' loop=ReactorEventLoop argv={[script]}\n"
    trace = result.stderr
    assert "Traceback" not in trace
    # A pass with callbacks waiting runs them first (asyncio's order), then says how long its
    # select() may wait; a pass without goes straight to select().
    headers = re.findall(r"reactor\.trace: pass (\d+): (?:select\(\) with |the ready callbacks "
                         r"first, then select\(\) \(asyncio's order\))", trace)
    assert len(headers) > 3, trace
    assert re.search(r"^  select\(\) with (no time limit|at most [\d.]+s): ", trace, re.M), trace
    assert [int(number) for number in headers] == sorted(int(number) for number in headers)
    # Both ends of the one connection: the client sends 5 bytes, the server receives them and
    # sends back 5; each event names its connection and shows both buffers after it.
    assert len(re.findall(r"^  fd=\d+ 127\.0\.0\.1:\d+  recv  bytes=5  \[recv buffer 5 B, "
                          r"send buffer 0 B\]$", trace, re.M)) == 2, trace
    assert len(re.findall(r"^  fd=\d+ 127\.0\.0\.1:\d+  send  bytes=5  \[recv buffer \d+ B, "
                          r"send buffer 0 B\]$", trace, re.M)) == 2, trace
    assert re.search(r"^  callbacks: .*Task", trace, re.M), trace


def test_trace_json_writes_one_json_object_per_event(tmp_path: Path) -> None:
    script = write_program(tmp_path)
    trace_file = tmp_path / "trace.jsonl"
    result = run_aio("--trace-json", str(trace_file), script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("reply=b'PING\\n' loop=ReactorEventLoop")
    assert result.stderr == ""  # JSON goes to the file only
    events = [json.loads(line) for line in trace_file.read_text().splitlines()]
    passes = [event for event in events if event["event"] == "pass"]
    assert passes and all(isinstance(event["number"], int) for event in passes)
    assert [event["number"] for event in passes] == sorted(event["number"] for event in passes)
    received = [event for event in events if event["event"] == "recv"]
    assert [event["bytes"] for event in received].count(5) == 2, received
    assert all(re.fullmatch(r"fd=\d+ 127\.0\.0\.1:\d+", event["source"]) for event in received)
    assert all({"t", "pass", "source", "event"} <= event.keys() for event in events)


def test_a_missing_script_is_one_stderr_line_and_exit_status_2(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.py"
    result = run_aio("--trace", str(missing))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert str(missing) in lines[0]


def test_an_unwritable_trace_file_is_one_stderr_line_and_exit_status_2(tmp_path: Path) -> None:
    script = write_program(tmp_path)
    result = run_aio("--trace-json", str(tmp_path / "no-such-dir" / "t.jsonl"), script)
    assert result.returncode == 2
    assert result.stdout == ""  # the program never ran
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "no-such-dir" in lines[0], lines

"""The documentation is checked like code: docs/*.md must not drift from what the code does.

* The tutorial's code (``docs/tutorial/``) is imported and its tests run here, and every
  ``python`` block of ``docs/write-your-own-protocol.md`` must be a file of ``docs/tutorial/``,
  character for character.
* ``docs/capture_traces.py`` regenerates every trace shown in ``docs/walkthrough.md`` from real
  servers and clients; we run it and check that each scenario still shows its events, and that
  every event line pasted in the walkthrough is still one the code prints (numbers aside).
* Every relative link in ``docs/*.md`` and ``README.md`` points to a file that exists.
"""

from __future__ import annotations

import ast
import re
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from docs.tutorial import test_kv_protocol as tutorial_tests

# The tutorial's own tests, collected here too so that ``python -m pytest`` runs them.
from docs.tutorial.test_kv_protocol import (  # noqa: F401
    test_a_full_store_refuses_new_keys_but_updates_old_ones,
    test_a_key_expires_on_the_store_clock,
    test_a_last_line_without_newline_is_answered_before_the_close,
    test_a_peer_that_does_not_read_stops_being_read,
    test_an_overlong_line_gets_an_error_and_a_close,
    test_connections_share_one_store,
    test_errors_keep_the_connection_open,
    test_every_chunk_size_gets_the_same_replies,
    test_over_a_real_socket,
    test_quit_says_bye_closes_and_reads_no_further,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS = REPO_ROOT / "docs"
TUTORIAL = DOCS / "write-your-own-protocol.md"
WALKTHROUGH = DOCS / "walkthrough.md"
CAPTURE_TIMEOUT_SECONDS = 60

FENCED_BLOCK = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
#: The first line of a tutorial block that shows a file: ``# docs/tutorial/NAME.py``, or
#: ``# docs/tutorial/NAME.py, continued`` for a later part of the same file.
FILE_MARKER = re.compile(r"^# (?P<path>docs/tutorial/[\w/]+\.py)(?P<continued>, continued)?\n")
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def fenced_blocks(path: Path, lang: str) -> list[str]:
    return [match["body"] for match in FENCED_BLOCK.finditer(path.read_text(encoding="utf-8"))
            if match["lang"] == lang]


# -- (a) the tutorial's code --------------------------------------------------------------------


def test_every_tutorial_test_is_collected_here_too() -> None:
    tutorial = {name for name in vars(tutorial_tests) if name.startswith("test_")}
    assert tutorial <= set(globals()), f"import these here too: {sorted(tutorial - set(globals()))}"


def test_the_tutorial_server_runs_as_users_start_it() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "docs.tutorial.kv_server", "--port", "0"], cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    try:
        assert select.select([process.stdout], [], [], 10)[0], "no announcement within 10 s"
        announcement = process.stdout.readline().decode()
        match = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", announcement)
        assert match, announcement
        with socket.create_connection(("127.0.0.1", int(match[1])), timeout=5) as client:
            client.sendall(b"SET name Ada\nGET name\nQUIT\n")
            replies = b""
            while chunk := client.recv(4096):
                replies += chunk
        assert replies == b"OK\nVALUE Ada\nBYE\n"
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
        assert b"Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def test_the_tutorial_imports_only_what_pip_install_installs() -> None:
    """An author copies the tutorial into a project of their own, with this package installed:
    ``examples/`` is not installed (it is the repository's directory of programs), so nothing
    the tutorial's code imports may come from it."""
    installed = set(sys.stdlib_module_names) | {"reactor", "protocols", "pytest", "__future__"}
    for path in sorted((REPO_ROOT / "docs" / "tutorial").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                # its own modules are the author's: docs.tutorial.X stands for their package
                assert top in installed or module.startswith("docs.tutorial"), (
                    f"{path.name}:{node.lineno} imports {module}, which is not installed")


# -- (b) the tutorial shows its files verbatim ------------------------------------------------


def tutorial_parts() -> dict[str, list[str]]:
    """Each file shown in the tutorial, with the parts shown, in order (markers removed)."""
    parts: dict[str, list[str]] = {}
    for body in fenced_blocks(TUTORIAL, "python"):
        marker = FILE_MARKER.match(body)
        assert marker, f"a python block of {TUTORIAL.name} names no file:\n{body[:200]}"
        path = marker["path"]
        assert (path in parts) == bool(marker["continued"]), \
            f"{path}: the first part has no ', continued'; every later part has it"
        parts.setdefault(path, []).append(body[marker.end():])
    return parts


def test_every_python_block_of_the_tutorial_is_its_file_verbatim() -> None:
    for path, parts in tutorial_parts().items():
        # A file shown in parts is cut only between top-level definitions, which PEP 8
        # separates by two blank lines: the parts joined by them are the file.
        shown = "\n\n".join(parts)
        assert shown == (REPO_ROOT / path).read_text(encoding="utf-8"), \
            f"{TUTORIAL.name} does not show {path} as it is: copy the file into it again"


def test_the_tutorial_shows_every_file_of_its_code() -> None:
    files = {f"docs/tutorial/{path.name}" for path in (DOCS / "tutorial").glob("*.py")
             if path.name != "__init__.py"}
    assert set(tutorial_parts()) == files


# -- (c) the traces are reproducible ------------------------------------------------------------


@pytest.fixture(scope="module")
def captured() -> dict[str, str]:
    """Run docs/capture_traces.py once; its output by scenario name."""
    result = subprocess.run([sys.executable, str(DOCS / "capture_traces.py")], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=CAPTURE_TIMEOUT_SECONDS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stdout, result.stdout[-3000:]
    sections = re.split(r"^=== ([\w-]+): .*===$", result.stdout, flags=re.MULTILINE)
    return dict(zip(sections[1::2], sections[2::2]))


#: What each scenario's output must show: regular expressions, in no particular order.
EXPECTED_EVENTS = {
    "echo": [r"pass 1: select\(\) with no time limit", r"woke: fd \d+ R \(Listener\._on_readable",
             r"accept\s+fd=\d+ peer=127\.0\.0\.1:\d+", r"connection_made",
             r"recv\s+bytes=6\s", r"calling data_received", r"send\s+bytes=6\s",
             r"eof — recv returned 0", r"OPEN -> CLOSING", r"connection_lost\s+exc=None"],
    "half-close": [r"recv\s+bytes=12\s", r"send\s+bytes=12\s", r"eof_received returned",
                   r"CLOSING -> CLOSED"],
    "write-eof": [r"HELLO", r"STRASSE", r"client exit status: 0", r"OPEN -> WRITE_SHUT",
                  r"shutdown — SHUT_WR", r"WRITE_SHUT -> CLOSING", r"connect\s+address="],
    "partial": [r"send\s+bytes=\d+ of=\d+ — partial", r"pause_writing\s+high_water=65536",
                r"woke: fd \d+ W \(Connection\._on_writable", r"resume_writing\s+low_water=16384"],
    "eagain": [r"send\s+bytes=0 of=\d+ error=EAGAIN", r"pause_writing", r"resume_writing"],
    "reset": [r"recv failed\s+error=ECONNRESET", r"abort — the peer is already gone",
              r"OPEN -> CLOSED", r"connection_lost\s+exc=ECONNRESET"],
    "overlong": [r"error: line too long", r"send\s+bytes=63\s",
                 r"shutdown — SHUT_WR: our FIN is on its way; waiting for theirs",
                 r"next timer: Connection\._teardown", r"Connection\._discard_input",
                 r"CLOSING -> CLOSED"],
    "unread-input": [r"then: ConnectionResetError"],
}


@pytest.mark.parametrize("scenario", sorted(EXPECTED_EVENTS))
def test_capture_traces_shows_each_scenario_s_events(captured: dict[str, str],
                                                     scenario: str) -> None:
    if scenario == "eagain" and not sys.platform.startswith("linux"):
        pytest.skip("a small write to a full Unix socket meets EAGAIN, not a partial send, "
                    "on Linux; other kernels may differ")
    assert scenario in captured, f"capture_traces.py printed no {scenario!r} scenario"
    missing = [pattern for pattern in EXPECTED_EVENTS[scenario]
               if not re.search(pattern, captured[scenario])]
    assert not missing, f"{scenario}: not in the output: {missing}"


def normalized(line: str) -> str:
    """A trace line without what changes from run to run: numbers, temporary paths."""
    line = re.sub(r"capture-traces-[^/\s]+", "capture-traces-X", line)
    return re.sub(r"\d+", "N", line.strip())


def is_event_line(line: str) -> bool:
    """A transport's or listener's event line (not a pass header, wakeup list or note)."""
    return re.match(r"  (fd=\d|listener |connect )", line) is not None


def test_walkthrough_trace_lines_are_still_what_the_code_prints(
        captured: dict[str, str]) -> None:
    printed = {normalized(line) for text in captured.values() for line in text.splitlines()
               if is_event_line(line)}
    stale = [line for body in fenced_blocks(WALKTHROUGH, "text")
             for line in body.splitlines()
             if is_event_line(line) and normalized(line) not in printed]
    assert not stale, ("walkthrough.md shows trace lines the code no longer prints; regenerate "
                       "them with docs/capture_traces.py:\n" + "\n".join(stale))


# -- (d) links ----------------------------------------------------------------------------------


@pytest.mark.parametrize("document", ["README.md", *sorted(
    f"docs/{path.name}" for path in DOCS.glob("*.md"))])
def test_every_relative_link_points_to_a_file(document: str) -> None:
    path = REPO_ROOT / document
    broken = []
    for match in MARKDOWN_LINK.finditer(path.read_text(encoding="utf-8")):
        target = match["target"]
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same page
        if not (path.parent / target.split("#", 1)[0]).exists():
            broken.append(target)
    assert not broken, f"{document}: links to missing files: {broken}"


def test_the_docs_exist_and_the_readme_links_them() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for page in ("walkthrough.md", "write-your-own-protocol.md", "comparison.md"):
        assert (DOCS / page).is_file(), page
        assert f"(docs/{page})" in readme, f"README.md does not link docs/{page}"

"""A client whose stdout reader goes away (``| head -2``) ends quietly, as Unix tools do.

Python ignores SIGPIPE, so a write to a closed pipe raises ``BrokenPipeError`` instead of killing
the process. The clients turn it into what a shell expects of a program killed by SIGPIPE:
exit status 141 (128 + 13), nothing on stderr, no "no reply" lines for requests nobody will read.
The pipeline runs in a real shell, with the client's status taken from ``PIPESTATUS``.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import REPO_ROOT, Launcher

EXIT_STDOUT_CLOSED = 141


def pipeline(count: int, client: str, port: int, scratch: Path) -> tuple[str, int, str]:
    """``seq COUNT | python -m examples.CLIENT --port PORT | head -2``: head's output, the
    client's exit status and the client's stderr."""
    errors = scratch / "client.err"
    command = (f"seq {count} | {shlex.quote(sys.executable)} -m examples.{client} "
               f"--port {port} 2>{shlex.quote(str(errors))} | head -2; "
               'echo "status ${PIPESTATUS[1]}"')
    result = subprocess.run(["bash", "-c", command], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=30)
    *lines, status = result.stdout.splitlines()
    return "\n".join(lines), int(status.split()[1]), errors.read_text()


# Enough input that the replies cannot all fit in the pipe to ``head`` (64 KiB on Linux): with
# 1,000 lines a client on a loaded machine sometimes printed every reply before ``head`` exited,
# and ended with status 0, having never met the closed pipe.
@pytest.mark.parametrize("server, client, count", [
    ("udp_echo_server", "udp_client", 100000),
    ("uppercase_server", "uppercase_client", 100000),
])
def test_client_into_head_ends_quietly_with_sigpipe_status(
        launch: Launcher, tmp_path: Path, server: str, client: str, count: int) -> None:
    running = launch.server(server)
    output, status, stderr = pipeline(count, client, running.port, tmp_path)
    assert output == "1\n2"
    assert status == EXIT_STDOUT_CLOSED, stderr
    assert stderr == "", "no traceback, no 'no reply' lines"
    running.stop_cleanly()

"""``tcp_proxy --chaos-reset 1`` resets every connection, the short ones too.

A reset strikes once a random 0 to 16 KiB has been forwarded; a tunnel that ends sooner is
reset at its first FIN instead, so that fraction 1 means what a user reads: every connection.
"""

from __future__ import annotations

import signal
import socket
import subprocess

import pytest

from tests.processes import LISTENING, REPO_ROOT, TIMEOUT, Launcher, command


def start_proxy(upstream_port: int, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    proxy = subprocess.Popen(
        command("tcp_proxy", "--listen", "127.0.0.1:0", "--to", f"127.0.0.1:{upstream_port}",
                *args), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL)
    assert proxy.stdout is not None
    match = LISTENING.search(proxy.stdout.readline().decode())
    assert match, "the proxy did not announce itself"
    return proxy, int(match["port"])


@pytest.mark.parametrize("payload", [b"", b"hi\n"], ids=["no bytes", "three bytes"])
def test_chaos_reset_1_resets_a_connection_that_ends_before_any_budget(
        launch: Launcher, payload: bytes) -> None:
    echo = launch.server("echo_server")
    proxy, port = start_proxy(echo.port, "--chaos-reset", "1", "--seed", "7")
    try:
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
                client.sendall(payload)
                client.shutdown(socket.SHUT_WR)
                with pytest.raises(ConnectionResetError):
                    while client.recv(65536):
                        pass
    finally:
        proxy.send_signal(signal.SIGTERM)
        assert proxy.wait(TIMEOUT) == 0
        assert proxy.stdout is not None
        proxy.stdout.close()
    echo.stop_cleanly()

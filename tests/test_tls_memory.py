"""A TLS client that floods a TLS echo server and never reads the echoes: the server's memory
stays bounded (its resident set, measured in /proc), because the ciphertext it holds is bounded
and counted by the watermarks, which pause its reading, which stalls the client."""

from __future__ import annotations

import select
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import recv_exactly
from tests.tls_certs import Certificates

SERVER = """
import ssl, sys
from protocols.echo import EchoProtocol
from reactor import Reactor
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
reactor = Reactor()
listener = reactor.listen_tcp(EchoProtocol, "127.0.0.1", 0, ssl=context)
print(listener.address[1], flush=True)
reactor.stop_on_signals()
reactor.run()
"""

#: What the flood may add to the server's resident set. The server holds at most one read, the
#: send queue up to its high-water mark and 64 KiB of ciphertext: well under this; an unbounded
#: queue would hold everything sent (tens of MiB).
RSS_GROWTH_LIMIT_BYTES = 8 * 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
def test_flood_from_a_non_reading_tls_client_leaves_server_rss_bounded(
        certs: Certificates) -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(certs.cert), str(certs.key)],
                              stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock = certs.client_context().wrap_socket(raw, server_hostname="localhost")
        sock.sendall(b"warm up")
        # The server has served one request (the socket's 5 s timeout bounds the wait): now
        # a baseline.
        assert recv_exactly(sock, len(b"warm up")) == b"warm up"
        baseline = rss_bytes(server.pid)
        sock.setblocking(False)
        chunk = b"z" * 65536
        sent = 0
        stalled_since = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sent < 200 * 1024 * 1024:
            select.select([], [sock], [], 0.1)
            try:
                sent += sock.send(chunk)
                stalled_since = None
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 1.0:
                    break
        assert stalled_since is not None, f"sent {sent} bytes without the server pushing back"
        growth = rss_bytes(server.pid) - baseline
        assert growth < RSS_GROWTH_LIMIT_BYTES, f"RSS grew {growth} bytes after {sent} sent"
        assert server.poll() is None
        sock.close()
    finally:
        server.terminate()
        server.wait(10)

"""TLS through the example programs, started as a user starts them (``python -m examples.X
--tls-cert ... --tls-key ...``), against peers nobody here wrote (``openssl s_client``, Python's
``ssl``) and against hostile ones. The TLS layer itself is tested in tests/test_tls.py; this file
checks what the programs add: flags, one-line errors, the announcement, the proxy's termination,
and that a broken peer costs one log line and nothing else.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.processes import (
    REPO_ROOT,
    SHUTDOWN_TIMEOUT,
    TIMEOUT,
    LineReader,
    Launcher,
    ProxyProcess,
    ServerProcess,
    command,
)
from tests.soak_clients import poll_until
from tests.tls_certs import Certificates
from tests.tls_clients import RecordClient, round_trip_in_random_chunks

MiB = 1024 * 1024
TCP_SERVERS = ("echo_server", "uppercase_server", "chat_server")
#: Short enough for a test to wait for, long enough for a loaded machine to finish a handshake.
HANDSHAKE_TIMEOUT = "0.5"


def tls_flags(certs: Certificates, cert: Path | None = None) -> list[str]:
    return ["--tls-cert", str(cert or certs.cert), "--tls-key", str(certs.key)]


def tls_server(launch: Launcher, program: str, certs: Certificates, *args: str,
               cert: Path | None = None) -> ServerProcess:
    server = launch.server(program, *tls_flags(certs, cert), *args)
    assert server.first_line == f"listening on 127.0.0.1:{server.port} (TLS)"
    return server


def tls_proxy(launch: Launcher, upstream_port: int, certs: Certificates,
              *args: str) -> ProxyProcess:
    proxy = launch.proxy(upstream_port, *tls_flags(certs), *args)
    assert proxy.first_line.endswith(" (TLS)"), proxy.first_line
    return proxy


def tls_connect(port: int, certs: Certificates,
                context: ssl.SSLContext | None = None) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return (context or certs.client_context()).wrap_socket(raw, server_hostname="localhost")


def echo_once(port: int, certs: Certificates, data: bytes = b"still served") -> bytes:
    with tls_connect(port, certs) as sock:
        sock.sendall(data)
        received = b""
        while len(received) < len(data) and (chunk := sock.recv(65536)):
            received += chunk
        return received


def log_lines(server: ServerProcess, count: int) -> list[str]:
    """Wait until the server has logged ``count`` lines on stderr (a deadline, not a sleep);
    fails if it logs more or prints a traceback."""
    lines = poll_until(lambda: server.stderr().splitlines(), lambda seen: len(seen) >= count,
                       TIMEOUT, f"{server.program} stderr lines")
    server.assert_no_traceback()
    assert len(lines) == count, lines
    return lines


def read_raw_until_closed(sock: socket.socket) -> str:
    """``"fin"`` or ``"reset"``: how the server ended a connection, read from the raw socket."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return "reset"
    return "fin"


# -- sessions with peers nobody here wrote -----------------------------------------------------


SESSIONS = {
    # program: (what the server says first, if anything; the line we send; what comes back)
    "echo_server": (None, "hello from s_client", "hello from s_client"),
    "uppercase_server": (None, "straße", "STRASSE"),
    "chat_server": ("* welcome, you are ", "/who", "* online: "),
}


@pytest.mark.parametrize("program", TCP_SERVERS)
def test_openssl_s_client_session_with_each_server(launch: Launcher, certs: Certificates,
                                                   program: str) -> None:
    server = tls_server(launch, program, certs)
    greeting, line, reply = SESSIONS[program]
    # -no_ign_eof: at stdin's EOF s_client closes (-quiet alone would wait for the server).
    s_client = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-CAfile", str(certs.ca),
         "-verify_return_error", "-verify_hostname", "localhost", "-quiet", "-no_ign_eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert s_client.stdin is not None and s_client.stdout is not None
        fd = s_client.stdout.fileno()
        output = LineReader(fd, lambda size: os.read(fd, size), "s_client stdout")
        if greeting is not None:
            assert output.line().startswith(greeting)
        s_client.stdin.write(line.encode() + b"\n")
        s_client.stdin.flush()
        assert output.line().startswith(reply)
        s_client.stdin.close()
        assert s_client.wait(TIMEOUT) == 0
    finally:
        if s_client.poll() is None:
            s_client.kill()
            s_client.wait()
        assert s_client.stdout is not None and s_client.stderr is not None
        s_client.stdout.close()
        s_client.stderr.close()
    assert server.stderr() == ""  # a clean session logs nothing
    server.stop_cleanly()


def test_python_ssl_clients_chat_over_tls(launch: Launcher, certs: Certificates) -> None:
    server = tls_server(launch, "chat_server", certs)
    with tls_connect(server.port, certs) as alice, tls_connect(server.port, certs) as bob:
        alice_lines, bob_lines = alice.makefile("rb"), bob.makefile("rb")
        alice_name = welcomed_as(alice_lines.readline())
        bob_name = welcomed_as(bob_lines.readline())
        assert alice_lines.readline().decode() == f"* {bob_name} joined\n"
        alice.sendall("grüße über TLS\n".encode())
        assert bob_lines.readline().decode() == f"{alice_name}: grüße über TLS\n"
        alice_lines.close()
        bob_lines.close()
    server.stop_cleanly()


def welcomed_as(line: bytes) -> str:
    """The name in ``* welcome, you are NAME; /help lists commands``."""
    text = line.decode()
    assert text.startswith("* welcome, you are "), text
    return text.removeprefix("* welcome, you are ").split(";")[0]


# -- byte-exact transfers ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [MiB, 16 * MiB], ids=["1MiB", "16MiB"])
@pytest.mark.parametrize("route", ["echo", "proxy"])
def test_megabytes_come_back_byte_exact_in_random_chunks(
        launch: Launcher, certs: Certificates, size: int, route: str) -> None:
    """Through the TLS echo server, or through the TLS-terminating proxy to the plain one."""
    if route == "echo":
        server: ServerProcess = tls_server(launch, "echo_server", certs)
    else:
        upstream = launch.server("echo_server")
        server = tls_proxy(launch, upstream.port, certs)
    payload = random.Random(size).randbytes(size)
    with tls_connect(server.port, certs) as sock:
        echoed = round_trip_in_random_chunks(sock, payload, random.Random(route), timeout=60)
    assert len(echoed) == len(payload)
    assert echoed == payload
    server.stop_cleanly()


# -- close_notify, FIN, half-close, reset --------------------------------------------------------


def test_echo_answers_everything_before_its_close_notify_then_fin(
        launch: Launcher, certs: Certificates) -> None:
    server = tls_server(launch, "echo_server", certs)
    payload = random.Random(3).randbytes(200_000)
    client = RecordClient.connect(server.port, certs.client_context())
    try:
        client.send(payload)
        client.send_close_notify()  # TLS 1.3 half-close: the echo still comes back
        assert client.read_until_close_notify() == payload
        assert client.read_after_close_notify() == b""  # FIN right after close_notify
    finally:
        client.close()
    server.stop_cleanly()


def test_uppercase_client_half_closes_over_tls_and_gets_every_answer(
        launch: Launcher, certs: Certificates) -> None:
    server = tls_server(launch, "uppercase_server", certs)
    lines = [f"line {number} straße" for number in range(3000)]
    result = launch.run("uppercase_client", "--port", str(server.port), "--tls",
                        "--cafile", str(certs.ca), "--server-name", "localhost",
                        input="\n".join(lines).encode())  # the last line without a newline
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [line.upper() for line in lines]
    assert result.stderr == b""
    server.stop_cleanly()


def test_uppercase_client_over_tls12_closes_once_every_line_is_answered(
        certs: Certificates) -> None:
    """TLS 1.2 has no half-close: against ``openssl s_server -tls1_2 -rev`` (each line comes
    back reversed, and the server never closes first) the client counts the replies."""
    s_server = subprocess.Popen(
        ["openssl", "s_server", "-accept", "0", "-naccept", "1", "-tls1_2", "-rev",
         "-cert", str(certs.cert), "-key", str(certs.key)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert s_server.stdout is not None
        fd = s_server.stdout.fileno()
        output = LineReader(fd, lambda size: os.read(fd, size), "s_server stdout")
        port = 0
        while not port:
            line = output.line()
            if line.startswith("ACCEPT"):
                port = int(line.rsplit(":", 1)[1])
        client = subprocess.run(
            [*command("uppercase_client"), "--port", str(port), "--tls", "--cafile",
             str(certs.ca), "--server-name", "localhost"],
            cwd=REPO_ROOT, input=b"hello\nworld", capture_output=True, timeout=TIMEOUT)
        assert client.returncode == 0, client.stderr
        assert client.stdout == b"olleh\ndlrow\n"
        assert s_server.wait(TIMEOUT) == 0  # -naccept 1: it exits once we closed
    finally:
        if s_server.poll() is None:
            s_server.kill()
            s_server.wait()
        assert s_server.stdout is not None
        s_server.stdout.close()


def test_proxy_turns_close_notify_into_fin_and_fin_into_close_notify(
        launch: Launcher, certs: Certificates) -> None:
    upstream = launch.upstream_socket()
    proxy = tls_proxy(launch, upstream.getsockname()[1], certs)
    client = RecordClient.connect(proxy.port, certs.client_context())
    try:
        client.send(b"request")
        client.send_close_notify()
        conn, _ = upstream.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            received = b""
            while chunk := conn.recv(100):  # up to upstream's EOF: our close_notify, as FIN
                received += chunk
            assert received == b"request"
            conn.sendall(b"reply after the request's end")
            conn.shutdown(socket.SHUT_WR)
            assert client.read_until_close_notify() == b"reply after the request's end"
            assert client.read_after_close_notify() == b""
    finally:
        client.close()
    proxy.stop_cleanly()


def test_proxy_over_tls12_ends_the_tunnel_at_upstreams_fin(
        launch: Launcher, certs: Certificates) -> None:
    """TLS 1.2 has no half-close: upstream's FIN closes both sides, after the reply."""
    upstream = launch.upstream_socket()
    proxy = tls_proxy(launch, upstream.getsockname()[1], certs)
    context = certs.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    client = RecordClient.connect(proxy.port, context)
    try:
        assert client.tls.version() == "TLSv1.2"
        client.send(b"request")
        conn, _ = upstream.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            assert conn.recv(100) == b"request"
            conn.sendall(b"reply")
            conn.shutdown(socket.SHUT_WR)
            assert client.read_until_close_notify() == b"reply"
            assert conn.recv(100) == b""  # the proxy closed upstream's side too
    finally:
        client.close()
    proxy.stop_cleanly()


def test_proxy_passes_resets_both_ways(launch: Launcher, certs: Certificates) -> None:
    upstream = launch.upstream_socket()
    proxy = tls_proxy(launch, upstream.getsockname()[1], certs)
    linger_zero = (socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    # The TLS client resets: upstream gets a reset, not a clean EOF.
    client = RecordClient.connect(proxy.port, certs.client_context())
    client.send(b"first")
    conn, _ = upstream.accept()
    with conn:
        conn.settimeout(TIMEOUT)
        assert conn.recv(100) == b"first"
        client.sock.setsockopt(*linger_zero)
        client.close()
        with pytest.raises(ConnectionResetError):
            conn.recv(100)

    # Upstream resets: the proxy aborts the TLS client (RST, no close_notify).
    client = RecordClient.connect(proxy.port, certs.client_context())
    try:
        client.send(b"second")
        conn, _ = upstream.accept()
        conn.settimeout(TIMEOUT)
        assert conn.recv(100) == b"second"
        conn.setsockopt(*linger_zero)
        conn.close()
        with pytest.raises(ConnectionResetError):
            client.read_until_close_notify()
    finally:
        client.close()
    proxy.stop_cleanly()


# -- hostile and broken clients ------------------------------------------------------------------


def half_a_client_hello(certs: Certificates) -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = certs.client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    return hello[:len(hello) // 2]


HOSTILE = {
    # case: (the reason the server logs, as a fragment)
    "plain text": "not TLS",
    "plain HTTP": "http request (a plain-text HTTP client on a TLS port)",
    "silent": f"not finished within {HANDSHAKE_TIMEOUT}s",
    "garbage record": "failed: unexpected message",
    "vanishes mid-handshake": "closed the connection during the handshake",
    "garbage after the handshake": "TLS error, closing: decryption failed or bad record mac",
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_client_gets_a_clean_close_and_one_log_line_while_others_are_served(
        launch: Launcher, certs: Certificates, case: str) -> None:
    server = tls_server(launch, "echo_server", certs,
                        "--tls-handshake-timeout", HANDSHAKE_TIMEOUT)
    started = time.monotonic()
    if case == "garbage after the handshake":
        hostile: socket.socket = tls_connect(server.port, certs)
    else:
        hostile = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    try:
        if case == "plain text":
            hostile.sendall(b"hello, plain text\n")
        elif case == "plain HTTP":
            hostile.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        elif case == "garbage record":
            hostile.sendall(b"\x16\x03\x01\x00\x40" + random.Random(5).randbytes(64))
        elif case == "vanishes mid-handshake":
            hostile.sendall(half_a_client_hello(certs))
        elif case == "garbage after the handshake":
            hostile.sendall(b"ok")
            assert hostile.recv(2) == b"ok"
            # A record header and 32 bytes no key encrypted, under the TLS layer.
            os.write(hostile.fileno(), b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
        # Meanwhile a well-behaved client is served in full.
        assert echo_once(server.port, certs) == b"still served"
        if case == "vanishes mid-handshake":
            hostile.close()
        elif case == "garbage after the handshake":
            with pytest.raises(ssl.SSLError, match="BAD_RECORD_MAC"):
                hostile.recv(100)  # the server's alert, then its FIN
            assert read_raw_until_closed(hostile) == "fin"
        else:
            assert read_raw_until_closed(hostile) == "fin"
        waited = time.monotonic() - started
    finally:
        hostile.close()
    if case == "silent":
        assert waited >= float(HANDSHAKE_TIMEOUT) - 0.05, waited
    [line] = log_lines(server, 1)
    assert HOSTILE[case] in line, line
    assert echo_once(server.port, certs) == b"still served"  # and after it, too
    server.stop_cleanly()


@pytest.mark.parametrize("program", ["echo_server", "uppercase_server"])
def test_shutdown_does_not_wait_for_a_connection_whose_handshake_failed(
        launch: Launcher, certs: Certificates, program: str) -> None:
    """The shutdown ends when the last counted connection is lost; one whose handshake failed
    must never have been counted. A grace period far beyond the deadline makes a wait for it
    show as a missed deadline."""
    server = tls_server(launch, program, certs, "--shutdown-grace", "60")
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as plain:
        plain.sendall(b"not tls\n")
        assert read_raw_until_closed(plain) == "fin"
    log_lines(server, 1)
    with tls_connect(server.port, certs) as member:  # open when the signal comes
        member.sendall(b"x\n")
        assert member.recv(10).upper() == b"X\n"
        server.send_signal(signal.SIGTERM)
        assert member.recv(10) == b""  # the server's close_notify
    assert server.wait(SHUTDOWN_TIMEOUT) == 0
    assert "closing 1 connection " in server.stderr()
    server.assert_no_traceback()


def test_proxy_dials_upstream_only_after_the_handshake_and_forgets_failed_ones(
        launch: Launcher, certs: Certificates) -> None:
    upstream = launch.upstream_socket()
    proxy = tls_proxy(launch, upstream.getsockname()[1], certs)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert read_raw_until_closed(plain) == "fin"
    poll_until(proxy.stderr, lambda text: "TLS handshake with" in text, TIMEOUT,
               "the handshake failure's log line")
    upstream.setblocking(False)
    with pytest.raises(BlockingIOError):
        upstream.accept()  # no upstream connection was opened for it
    assert proxy.stop(signal.SIGTERM, SHUTDOWN_TIMEOUT) == 0
    assert "closing 0 connections" in proxy.stderr()  # no tunnel was left behind
    proxy.assert_no_traceback()


# -- the clients: certificates that must fail ----------------------------------------------------


CLIENT_SERVERS = {"uppercase_client": "uppercase_server", "chat_client": "chat_server"}
BAD_CERTIFICATES = {
    # case: (the server's certificate, the client's --cafile, --server-name, what it says)
    "wrong CA": ("cert", "other_ca", "localhost", "unable to get local issuer certificate"),
    "wrong host name": ("cert", "ca", "other.example", "Hostname mismatch"),
    "expired": ("expired_cert", "ca", "localhost", "certificate has expired"),
}


@pytest.mark.parametrize("case", BAD_CERTIFICATES)
@pytest.mark.parametrize("client", CLIENT_SERVERS)
def test_client_refuses_a_bad_certificate_in_one_line_with_status_1(
        launch: Launcher, certs: Certificates, client: str, case: str) -> None:
    cert, cafile, server_name, reason = BAD_CERTIFICATES[case]
    server = tls_server(launch, CLIENT_SERVERS[client], certs, cert=getattr(certs, cert))
    result = launch.run(client, "--port", str(server.port), "--tls",
                        "--cafile", str(getattr(certs, cafile)), "--server-name", server_name,
                        input=b"hello\n")
    assert result.returncode == 1, result
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{client}: cannot connect to 127.0.0.1:{server.port}: TLS "
                               "handshake failed: certificate verify failed: "), lines[0]
    assert reason in lines[0]
    assert result.stdout == b""
    server.stop_cleanly()


def test_chat_client_over_tls_is_welcomed_and_leaves_cleanly(
        launch: Launcher, certs: Certificates) -> None:
    server = tls_server(launch, "chat_server", certs)
    result = launch.run("chat_client", "--port", str(server.port), "--tls", "--cafile",
                        str(certs.ca), "--server-name", "localhost", input=b"/who\n")
    assert result.returncode == 0, result.stderr
    output = result.stdout.decode().splitlines()
    assert output[0].startswith("* welcome, you are 127.0.0.1:")
    assert output[1].startswith("* online: 127.0.0.1:")
    server.stop_cleanly()


def test_client_tls_flags_need_tls_and_a_readable_cafile(launch: Launcher,
                                                         tmp_path: Path) -> None:
    result = launch.run("uppercase_client", "--port", "1", "--cafile", "ca.pem")
    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[-1].endswith("--cafile needs --tls")
    missing = tmp_path / "missing.pem"
    result = launch.run("chat_client", "--port", "1", "--tls", "--cafile", str(missing))
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        f"chat_client: cannot read --cafile {missing}: No such file or directory"]


# -- the servers: certificates and keys that cannot be used --------------------------------------


def server_command(program: str) -> list[str]:
    if program == "tcp_proxy":
        return [program, "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9"]
    return [program, "--port", "0"]


def unreadable(path: Path) -> tuple[Path, str]:
    """A file this process cannot read, and the reason it will be given. As root, permission
    bits stop nothing, so a directory stands in for the file."""
    if os.geteuid() == 0:
        path.mkdir()
        return path, "Is a directory"
    path.write_text("secret\n")
    path.chmod(0)
    return path, "Permission denied"


def bad_files(certs: Certificates, tmp_path: Path, case: str) -> tuple[list[str], str]:
    """The flags for ``case`` and the line the server must print (without its program name)."""
    cert, key = str(certs.cert), str(certs.key)
    if case == "missing cert":
        missing = tmp_path / "missing.pem"
        return (["--tls-cert", str(missing), "--tls-key", key],
                f"cannot read --tls-cert {missing}: No such file or directory")
    if case == "missing key":
        missing = tmp_path / "missing.key"
        return (["--tls-cert", cert, "--tls-key", str(missing)],
                f"cannot read --tls-key {missing}: No such file or directory")
    if case == "unreadable key":
        path, reason = unreadable(tmp_path / "unreadable.key")
        return ["--tls-cert", cert, "--tls-key", str(path)], f"cannot read --tls-key {path}: {reason}"
    if case == "not a certificate":
        junk = tmp_path / "junk.pem"
        junk.write_text("this is not PEM\n")
        return (["--tls-cert", str(junk), "--tls-key", key],
                f"--tls-cert {junk}: no PEM certificate in it")
    if case == "key of another certificate":
        other_key = certs.directory / "other_ca.key"
        return (["--tls-cert", cert, "--tls-key", str(other_key)],
                f"--tls-key {other_key} does not match the certificate in --tls-cert {cert}")
    assert case == "encrypted key"
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(["openssl", "pkey", "-in", key, "-aes256", "-passout", "pass:secret",
                    "-out", str(encrypted)], check=True, capture_output=True, timeout=30)
    return (["--tls-cert", cert, "--tls-key", str(encrypted)],
            f"--tls-key {encrypted}: the key is encrypted; give an unencrypted one "
            "(openssl pkey -in KEY -out PLAIN_KEY)")


FILE_CASES = ["missing cert", "missing key", "unreadable key", "not a certificate",
              "key of another certificate", "encrypted key"]
PROGRAM_CASES = [("echo_server", case) for case in FILE_CASES] + [
    (program, case) for program in ("uppercase_server", "chat_server", "tcp_proxy")
    for case in ("missing key", "key of another certificate")]


@pytest.mark.parametrize("program, case", PROGRAM_CASES)
def test_server_refuses_a_bad_cert_or_key_in_one_line_with_status_2(
        launch: Launcher, certs: Certificates, tmp_path: Path, program: str,
        case: str) -> None:
    flags, message = bad_files(certs, tmp_path, case)
    name, *args = server_command(program)
    result = launch.run(name, *args, *flags)
    assert result.returncode == 2, result
    assert result.stderr.decode().splitlines() == [f"{program}: {message}"]
    assert result.stdout == b""  # never announced


@pytest.mark.parametrize("program", [*TCP_SERVERS, "tcp_proxy"])
def test_cert_without_key_is_a_usage_error(launch: Launcher, certs: Certificates,
                                           program: str) -> None:
    name, *args = server_command(program)
    result = launch.run(name, *args, "--tls-cert", str(certs.cert))
    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[-1].endswith("--tls-cert needs --tls-key too")
    help_text = launch.run(name, "--help").stdout.decode()
    assert "--tls-handshake-timeout" in help_text and "(default: 10)" in help_text


# -- the trace -----------------------------------------------------------------------------------


def test_trace_shows_the_handshake_steps_version_cipher_and_subject(
        launch: Launcher, certs: Certificates) -> None:
    server = tls_server(launch, "echo_server", certs, "--trace")
    assert echo_once(server.port, certs, b"traced") == b"traced"
    trace = poll_until(server.stderr, lambda text: "tls read" in text and "tls write" in text,
                       TIMEOUT, "the trace of one TLS echo")
    assert "tls handshake begins  side=server" in trace
    assert "result=want-read" in trace and "result=done" in trace
    assert "tls established  version=TLSv1.3" in trace
    assert "cipher=TLS_" in trace
    server.stop_cleanly()

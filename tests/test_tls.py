"""TLS over the reactor (reactor/tls.py): our server and client against each other, against
Python's blocking ``ssl`` sockets and against ``openssl s_client``/``s_server``, with the
certificates of ``tests/tls_certs.py``."""

from __future__ import annotations

import logging
import os
import random
import select
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from protocols.echo import EchoProtocol
from protocols.line import LineProtocol
from reactor import ByteBuffer, Connection, ConnectionState, Protocol, Reactor
from reactor.tls import MAX_PENDING_CIPHERTEXT_BYTES, TLSConnection
from reactor.trace import RecordingTracer
from tests.helpers import Recorder, run_until
from tests.processes import recv_exactly
from tests.tls_certs import Certificates
from tests.tls_clients import round_trip_in_random_chunks

TLS_VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


class Background:
    """Runs ``work()`` in a thread (a blocking client) while the test runs the reactor."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()

        def run() -> None:
            try:
                self.result = work()
            except BaseException as exc:  # handed to the test in value()
                self.error = exc
            finally:
                self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def value(self, reactor: Reactor, timeout: float = 10.0) -> Any:
        run_until(reactor, self.done.is_set, timeout)
        self.thread.join(1)
        if self.error is not None:
            raise self.error
        return self.result


def tls_client(certs: Certificates, address: Any, hostname: str = "localhost",
               context: ssl.SSLContext | None = None) -> ssl.SSLSocket:
    raw = socket.create_connection(address, timeout=10)
    return (context or certs.client_context()).wrap_socket(raw, server_hostname=hostname)


def connect_with_tls(reactor: Reactor, listener: Any, certs: Certificates,
                     client: Recorder) -> None:
    """Our client to ``listener`` over TLS (verifying "localhost"), until its handshake is done:
    ``connection_made`` comes only then, so ``client.transport`` is set when this returns."""
    reactor.connect_tcp(lambda: client, "127.0.0.1", listener.address[1],
                        ssl=certs.client_context(), server_hostname="localhost")
    run_until(reactor, lambda: client.transport is not None)


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=["tls1.2", "tls1.3"])
def test_our_client_and_server_round_trip_megabytes_byte_exact(
        reactor: Reactor, certs: Certificates, version: ssl.TLSVersion) -> None:
    listener = reactor.listen_tcp(EchoProtocol, ssl=certs.server_context(maximum_version=version))
    client = Recorder(keep_open=True)
    errors: list[BaseException] = []
    reactor.connect_tcp(lambda: client, "127.0.0.1", listener.address[1],
                        ssl=certs.client_context(), server_hostname="localhost",
                        on_error=errors.append)
    run_until(reactor, lambda: client.transport is not None or errors)
    assert not errors
    transport = client.transport
    assert isinstance(transport, TLSConnection)
    assert transport.tls_version == ("TLSv1.2" if version is ssl.TLSVersion.TLSv1_2
                                     else "TLSv1.3")
    payload = random.Random(7).randbytes(3 * 1024 * 1024 + 17)
    chunking = random.Random(8)
    offset = 0
    while offset < len(payload):
        size = chunking.choice([1, 100, 1500, 16 * 1024, 16 * 1024 + 1, 200_000])
        transport.write(payload[offset:offset + size])
        offset += size
    run_until(reactor, lambda: len(client.received) >= len(payload), 20)
    assert bytes(client.received) == payload
    server_side = next(iter(listener.connections))
    assert server_side.stats()["tls"]["ciphertext_received"] > len(payload)
    transport.close()
    run_until(reactor, lambda: "lost" in client.events and not listener.connections)
    assert client.lost_with == [None]
    listener.close()


@pytest.mark.parametrize("size", [1 << 20, 16 << 20], ids=["1MiB", "16MiB"])
def test_python_ssl_client_round_trip_in_random_chunks(reactor: Reactor, certs: Certificates,
                                                       size: int) -> None:
    servers: list[EchoProtocol] = []

    def factory() -> EchoProtocol:
        servers.append(EchoProtocol())
        return servers[-1]

    listener = reactor.listen_tcp(factory, ssl=certs.server_context())
    payload = random.Random(1).randbytes(size)

    def client() -> bytes:
        with tls_client(certs, listener.address) as sock:
            return round_trip_in_random_chunks(sock, payload, random.Random(size))

    assert Background(client).value(reactor) == payload
    run_until(reactor, lambda: not listener.connections)
    assert servers[0].transport is None  # connection_lost came
    listener.close()


def test_extra_info_names_version_cipher_and_peer_certificate(reactor: Reactor,
                                                              certs: Certificates) -> None:
    listener = reactor.listen_tcp(EchoProtocol, ssl=certs.server_context())
    client = Recorder(keep_open=True)
    reactor.connect_tcp(lambda: client, "127.0.0.1", listener.address[1],
                        ssl=certs.client_context())  # server_hostname defaults to the host
    run_until(reactor, lambda: client.transport is not None)
    transport = client.transport
    assert isinstance(transport, TLSConnection)
    assert transport.get_extra_info("version") == "TLSv1.3"
    assert transport.get_extra_info("cipher")[1] == "TLSv1.3"
    cert = transport.get_extra_info("peercert")
    assert ((("commonName", "localhost"),) in cert["subject"])
    assert transport.get_extra_info("peername") == listener.address
    assert isinstance(transport.get_extra_info("ssl_object"), ssl.SSLObject)
    transport.abort()
    listener.close()
    run_until(reactor, lambda: "lost" in client.events)


def test_listen_unix_serves_tls(reactor: Reactor, certs: Certificates, tmp_path: Any) -> None:
    path = str(tmp_path / "tls.sock")
    listener = reactor.listen_unix(EchoProtocol, path, ssl=certs.server_context())
    client = Recorder(keep_open=True)
    reactor.connect_unix(lambda: client, path, ssl=certs.client_context(),
                         server_hostname="localhost")
    run_until(reactor, lambda: client.transport is not None)
    assert client.transport is not None
    client.transport.write(b"over a unix socket")
    run_until(reactor, lambda: client.received == b"over a unix socket")
    client.transport.close()
    run_until(reactor, lambda: "lost" in client.events)
    listener.close()


# -- peers nobody here wrote ---------------------------------------------------------------------


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_openssl_s_client_against_our_server(reactor: Reactor, certs: Certificates,
                                             version: str) -> None:
    listener = reactor.listen_tcp(EchoProtocol, ssl=certs.server_context())
    command = ["openssl", "s_client", version, "-connect", f"127.0.0.1:{listener.address[1]}",
               "-CAfile", str(certs.ca), "-verify_return_error", "-verify_hostname",
               "localhost", "-quiet", "-no_ign_eof"]

    def session() -> bytes:
        # stdin stays open until the echo is back: at stdin's EOF s_client closes at once.
        with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(b"hello from s_client\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            proc.stdin.close()
            proc.wait(10)
            return line

    assert Background(session).value(reactor) == b"hello from s_client\n"
    run_until(reactor, lambda: not listener.connections)
    listener.close()


def test_our_client_against_openssl_s_server(reactor: Reactor, certs: Certificates) -> None:
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", "0", "-naccept", "1", "-rev",
         "-cert", str(certs.cert), "-key", str(certs.key)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert server.stdout is not None
        port = 0
        deadline = time.monotonic() + 10
        while not port and time.monotonic() < deadline:
            line = server.stdout.readline().decode()
            if line.startswith("ACCEPT"):
                port = int(line.rsplit(":", 1)[1])
        assert port, "openssl s_server printed no ACCEPT line"
        client = Recorder(keep_open=True)
        errors: list[BaseException] = []
        reactor.connect_tcp(lambda: client, "127.0.0.1", port, ssl=certs.client_context(),
                            server_hostname="localhost", on_error=errors.append)
        run_until(reactor, lambda: client.transport is not None or errors)
        assert not errors
        assert client.transport is not None
        client.transport.write(b"reverse me\n")
        run_until(reactor, lambda: b"em esrever" in client.received)
        client.transport.close()
        run_until(reactor, lambda: "lost" in client.events)
    finally:
        server.kill()
        server.wait(5)


# -- certificates that must fail ---------------------------------------------------------------


@pytest.mark.parametrize("case, expected", [
    ("wrong CA", "unable to get local issuer certificate"),
    ("wrong host", "Hostname mismatch"),
    ("expired", "certificate has expired"),
])
def test_client_reports_a_bad_certificate_through_on_error(
        reactor: Reactor, certs: Certificates, caplog: pytest.LogCaptureFixture,
        case: str, expected: str) -> None:
    cert = {"wrong CA": certs.cert, "wrong host": certs.wrong_host_cert,
            "expired": certs.expired_cert}[case]
    cafile = certs.other_ca if case == "wrong CA" else certs.ca
    listener = reactor.listen_tcp(EchoProtocol, ssl=certs.server_context(cert))
    made: list[Protocol] = []
    errors: list[BaseException] = []

    def factory() -> Recorder:
        made.append(Recorder(keep_open=True))
        return made[-1]  # type: ignore[return-value]

    with caplog.at_level(logging.WARNING, logger="reactor"):
        reactor.connect_tcp(factory, "127.0.0.1", listener.address[1],
                            ssl=certs.client_context(cafile), server_hostname="localhost",
                            on_error=errors.append)
        run_until(reactor, lambda: errors and not listener.connections)
    assert isinstance(errors[0], ssl.SSLCertVerificationError)
    assert expected in str(errors[0])
    assert all(not protocol.events for protocol in made)  # type: ignore[attr-defined]
    server_lines = [r.getMessage() for r in caplog.records if r.name == "reactor.tls"]
    assert len(server_lines) == 1 and "TLS handshake with 127.0.0.1:" in server_lines[0]
    listener.close()


# -- hostile and broken peers ------------------------------------------------------------------


def test_plain_text_on_the_tls_port_is_one_log_line_and_others_are_served(
        reactor: Reactor, certs: Certificates, caplog: pytest.LogCaptureFixture) -> None:
    listener = reactor.listen_tcp(EchoProtocol, ssl=certs.server_context())
    good = Background(lambda: _echo_once(certs, listener.address, b"still served"))
    with caplog.at_level(logging.WARNING, logger="reactor"):
        with socket.create_connection(listener.address, timeout=5) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answer = Background(lambda: _read_until_closed(plain))
            answer.value(reactor)
    assert good.value(reactor) == b"still served"
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("reactor")]
    assert len(lines) == 1, lines
    assert "127.0.0.1:" in lines[0] and "http request" in lines[0]
    listener.close()


def _echo_once(certs: Certificates, address: Any, data: bytes) -> bytes:
    with tls_client(certs, address) as sock:
        sock.sendall(data)
        return recv_exactly(sock, len(data))


def _read_until_closed(sock: socket.socket) -> bytes:
    parts = bytearray()
    try:
        while chunk := sock.recv(65536):
            parts += chunk
    except ConnectionResetError:
        pass
    return bytes(parts)


def test_silent_peer_is_cut_off_at_the_handshake_timeout(
        reactor: Reactor, certs: Certificates, caplog: pytest.LogCaptureFixture) -> None:
    listener = reactor.listen_tcp(EchoProtocol, ssl=certs.server_context(),
                                  handshake_timeout=0.3)
    with caplog.at_level(logging.WARNING, logger="reactor"):
        with socket.create_connection(listener.address, timeout=5) as silent:
            started = time.monotonic()
            closed = Background(lambda: silent.recv(100))  # a reset would raise here
            assert _echo_one_in_loop(reactor, certs, listener) == b"meanwhile"
            assert closed.value(reactor) == b"", "the timeout closes with FIN"
            waited = time.monotonic() - started
    assert 0.25 <= waited < 3, waited
    lines = [r.getMessage() for r in caplog.records if r.name == "reactor.tls"]
    assert len(lines) == 1 and "not finished within 0.3s" in lines[0]
    listener.close()


def _echo_one_in_loop(reactor: Reactor, certs: Certificates, listener: Any) -> bytes:
    return Background(lambda: _echo_once(certs, listener.address, b"meanwhile")).value(reactor)  # type: ignore[no-any-return]


def test_peer_vanishing_mid_handshake_is_one_line(
        reactor: Reactor, certs: Certificates, caplog: pytest.LogCaptureFixture) -> None:
    listener = reactor.listen_tcp(EchoProtocol, ssl=certs.server_context())
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    half = certs.client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        half.do_handshake()
    hello = outgoing.read()
    with caplog.at_level(logging.WARNING, logger="reactor"):
        with socket.create_connection(listener.address, timeout=5) as sock:
            sock.sendall(hello[:len(hello) // 2])
            run_until(reactor, lambda: listener.connections)
        run_until(reactor, lambda: not listener.connections)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("reactor")]
    assert len(lines) == 1 and "during the handshake" in lines[0], lines
    assert _echo_one_in_loop(reactor, certs, listener) == b"meanwhile"
    listener.close()


def test_garbage_record_after_the_handshake_is_an_alert_one_line_and_a_close(
        reactor: Reactor, certs: Certificates, caplog: pytest.LogCaptureFixture) -> None:
    listener = reactor.listen_tcp(EchoProtocol, ssl=certs.server_context())

    def client() -> str:
        with tls_client(certs, listener.address) as sock:
            sock.sendall(b"ok")
            assert recv_exactly(sock, 2) == b"ok"
            # An application-data record header and 32 bytes that no key encrypted.
            os.write(sock.fileno(), b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
            try:
                data = sock.recv(100)
            except ssl.SSLError as exc:  # the server's alert, decrypted by our session
                return str(exc.reason)
            return f"no alert: {data!r}"

    with caplog.at_level(logging.WARNING, logger="reactor"):
        assert Background(client).value(reactor).endswith("_ALERT_BAD_RECORD_MAC")
        run_until(reactor, lambda: not listener.connections)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("reactor")]
    assert len(lines) == 1 and "TLS error" in lines[0], lines
    assert not any(r.exc_info for r in caplog.records)
    listener.close()


# -- back-pressure -------------------------------------------------------------------------------


def test_non_reading_tls_peer_cannot_grow_server_memory(reactor: Reactor,
                                                       certs: Certificates) -> None:
    listener = reactor.listen_tcp(EchoProtocol, ssl=certs.server_context())
    raw = socket.create_connection(listener.address, timeout=5)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock = certs.client_context().wrap_socket(raw, server_hostname="localhost",
                                              do_handshake_on_connect=False)
    Background(sock.do_handshake).value(reactor)
    sock.setblocking(False)
    chunk = b"y" * 65536
    sent = 0
    stalled_since: float | None = None
    peak = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            sent += sock.send(chunk)
            stalled_since = None
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 0.5:
                break  # the server stopped reading us: back-pressure reached the sender
        reactor.run_once(0)
        for connection in listener.connections:
            peak = max(peak, connection.get_write_buffer_size())
    connection = next(iter(listener.connections))
    assert stalled_since is not None, f"sent {sent} bytes and never stalled"
    assert connection.pauses >= 1
    high, _ = connection.get_write_buffer_limits()
    # Plaintext queue over the high-water mark by at most one read; ciphertext by its own bound.
    assert peak <= high + 256 * 1024 + MAX_PENDING_CIPHERTEXT_BYTES + 16 * 1024, peak
    assert connection.stats()["tls"]["pending_ciphertext"] <= MAX_PENDING_CIPHERTEXT_BYTES + 1024
    sock.close()
    listener.close()


# -- close_notify, EOF, write_eof, abort -------------------------------------------------------


def test_client_close_notify_is_the_servers_eof_then_ours_reaches_the_client(
        reactor: Reactor, certs: Certificates) -> None:
    servers: list[Recorder] = []

    def factory() -> Recorder:
        servers.append(Recorder())  # closes at the client's EOF
        return servers[-1]

    listener = reactor.listen_tcp(factory, ssl=certs.server_context())

    def client() -> bytes:
        sock = tls_client(certs, listener.address)
        sock.sendall(b"last words")
        plain = sock.unwrap()  # sends close_notify, waits for the server's
        rest = plain.recv(100)  # then the TCP FIN
        plain.close()
        return rest

    assert Background(client).value(reactor) == b""
    run_until(reactor, lambda: "lost" in servers[0].events)
    assert servers[0].received == b"last words"
    assert servers[0].events_but_data() == ["made", "eof", "lost"]
    assert servers[0].lost_with == [None]
    listener.close()


def test_server_close_sends_close_notify_then_fin(reactor: Reactor, certs: Certificates) -> None:
    class Goodbye(Protocol):
        def connection_made(self, transport: Connection) -> None:
            transport.write(b"goodbye")
            transport.close()

    listener = reactor.listen_tcp(Goodbye, ssl=certs.server_context())
    events: list[str] = []

    def client() -> bytes:
        sock = tls_client(certs, listener.address)
        data = recv_exactly(sock, 7)
        events.append("eof" if sock.recv(100) == b"" else "more")  # close_notify: clean EOF
        sock.close()
        return data

    assert Background(client).value(reactor) == b"goodbye"
    assert events == ["eof"]
    run_until(reactor, lambda: not listener.connections)
    listener.close()


def test_write_eof_over_tls13_is_close_notify_and_we_keep_reading(
        reactor: Reactor, certs: Certificates) -> None:
    class ReplyAtEof(Recorder):
        def eof_received(self) -> bool:
            self.events.append("eof")
            assert self.transport is not None
            self.transport.write(b"reply to " + bytes(self.received))
            return False  # close once the reply is sent

    servers: list[Recorder] = []

    def factory() -> Recorder:
        servers.append(ReplyAtEof())
        return servers[-1]

    listener = reactor.listen_tcp(factory, ssl=certs.server_context())
    client = Recorder(keep_open=True)
    connect_with_tls(reactor, listener, certs, client)
    assert client.transport is not None
    assert client.transport.can_write_eof()
    client.transport.write(b"request")
    client.transport.write_eof()
    assert client.transport.state is ConnectionState.WRITE_SHUT
    run_until(reactor, lambda: "lost" in client.events)
    assert servers[0].events_but_data()[:2] == ["made", "eof"]
    assert client.received == b"reply to request"  # we kept reading after our close_notify
    assert client.events_but_data() == ["made", "eof", "lost"]
    listener.close()


def test_write_eof_over_tls12_raises_a_clear_error(reactor: Reactor, certs: Certificates) -> None:
    listener = reactor.listen_tcp(
        EchoProtocol, ssl=certs.server_context(maximum_version=ssl.TLSVersion.TLSv1_2))
    client = Recorder(keep_open=True)
    connect_with_tls(reactor, listener, certs, client)
    assert client.transport is not None
    assert not client.transport.can_write_eof()
    with pytest.raises(RuntimeError, match="needs TLS 1.3"):
        client.transport.write_eof()
    client.transport.close()
    run_until(reactor, lambda: "lost" in client.events)
    listener.close()


def test_abort_gives_the_tls_peer_a_reset(reactor: Reactor, certs: Certificates) -> None:
    class Abort(Protocol):
        def data_received(self, buffer: ByteBuffer) -> None:
            buffer.clear()
            assert self.transport is not None
            self.transport.abort()

    listener = reactor.listen_tcp(Abort, ssl=certs.server_context())

    def client() -> str:
        with tls_client(certs, listener.address) as sock:
            sock.sendall(b"x")
            data = b""
            try:  # the raw socket: Python's SSLSocket reports a reset as a ragged EOF
                while select.select([sock], [], [], 5)[0]:  # session tickets, then...
                    chunk = os.read(sock.fileno(), 65536)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                return "reset"
            return f"EOF after {data!r}"

    assert Background(client).value(reactor) == "reset"
    listener.close()


# -- STARTTLS --------------------------------------------------------------------------------


class StartTLSServer(LineProtocol):
    """``STARTTLS`` -> ``OK`` in the clear, then TLS; every later line comes back uppercased."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self.context = context

    def line_received(self, line: bytes) -> None:
        assert self.transport is not None
        if line == b"STARTTLS":
            self.send_line(b"OK")
            self.transport.start_tls(self.context, server_side=True)
        else:
            self.send_line(line.upper())


class StartTLSClient(LineProtocol):
    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self.context = context
        self.lines: list[bytes] = []
        self.versions: list[str | None] = []

    def connection_made(self, transport: Connection) -> None:
        super().connection_made(transport)
        self.send_line(b"STARTTLS")

    def line_received(self, line: bytes) -> None:
        assert self.transport is not None
        self.lines.append(line)
        if line == b"OK":
            self.transport.start_tls(self.context, server_side=False,
                                     server_hostname="localhost")
            self.send_line(b"secret")  # queued until the handshake completes

    def handshake_completed(self) -> None:
        assert isinstance(self.transport, TLSConnection)
        self.versions.append(self.transport.tls_version)


def test_start_tls_upgrades_a_line_protocol_in_band(reactor: Reactor,
                                                    certs: Certificates) -> None:
    server_context = certs.server_context()
    listener = reactor.listen_tcp(lambda: StartTLSServer(server_context))
    tracer = RecordingTracer()
    reactor.set_tracer(tracer)
    client = StartTLSClient(certs.client_context())
    reactor.connect_tcp(lambda: client, "127.0.0.1", listener.address[1])
    run_until(reactor, lambda: b"SECRET" in client.lines)
    assert client.lines == [b"OK", b"SECRET"]
    assert client.versions == ["TLSv1.3"]
    server = next(iter(listener.connections))
    assert isinstance(server, TLSConnection)
    # "secret" never crossed the wire in the clear: it went out as a TLS record.
    writes = [e for e in tracer.events if e["event"] == "tls write"]
    assert any(e["plaintext"] == len(b"secret\n") for e in writes)
    reactor.set_tracer(None)
    assert client.transport is not None
    client.transport.close()
    run_until(reactor, lambda: client.transport is None and not listener.connections)
    listener.close()


# -- the trace ---------------------------------------------------------------------------------


def test_trace_shows_handshake_steps_then_version_cipher_subject_then_records(
        reactor: Reactor, certs: Certificates) -> None:
    tracer = RecordingTracer()
    reactor.set_tracer(tracer)
    listener = reactor.listen_tcp(EchoProtocol, ssl=certs.server_context())
    client = Recorder(keep_open=True)
    connect_with_tls(reactor, listener, certs, client)
    assert client.transport is not None
    client.transport.write(b"hello")
    run_until(reactor, lambda: client.received == b"hello")
    names = [e["event"] for e in tracer.events]
    steps = [e for e in tracer.events if e["event"] == "tls handshake"]
    assert {"want-read", "done"} <= {e["result"] for e in steps}
    assert all("bytes_in" in e and "bytes_out" in e for e in steps)
    established = [e for e in tracer.events if e["event"] == "tls established"]
    assert {e["version"] for e in established} == {"TLSv1.3"}
    assert any(e["peer_certificate"] == "commonName=localhost" for e in established)
    assert names.index("tls established") < names.index("connection_made")
    reads = [e for e in tracer.events if e["event"] == "tls read" and e["plaintext"] == 5]
    off_the_socket = [e for e in reads if e["ciphertext"]]  # 0: came with the last flight
    assert off_the_socket and all(e["ciphertext"] > 5 for e in off_the_socket)
    client.transport.close()
    run_until(reactor, lambda: "lost" in client.events)
    assert "tls close_notify" in [e["event"] for e in tracer.events]
    listener.close()


def test_data_in_the_segment_of_the_last_handshake_flight_is_delivered_and_traced(
        reactor: Reactor, certs: Certificates) -> None:
    """TLS 1.3: the client's Finished and its first record in one send. Both sit in the incoming
    BIO once the handshake completes, and no readiness event will announce the record."""
    tracer = RecordingTracer()
    reactor.set_tracer(tracer)
    listener = reactor.listen_tcp(EchoProtocol, ssl=certs.server_context())

    def client() -> bytes:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = certs.client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
        with socket.create_connection(listener.address, timeout=5) as sock:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if outgoing.pending:
                        sock.sendall(outgoing.read())
                    incoming.write(sock.recv(65536))
            tls.write(b"early")
            sock.sendall(outgoing.read())  # Finished and the record: one segment on loopback
            while True:
                try:
                    return tls.read(100)
                except ssl.SSLWantReadError:  # session tickets first, then the echo
                    incoming.write(sock.recv(65536))

    assert Background(client).value(reactor) == b"early"
    reads = [e for e in tracer.events if e["event"] == "tls read" and e["plaintext"] == 5]
    assert [e["ciphertext"] for e in reads] == [0], reads
    listener.close()

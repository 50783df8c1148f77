"""TLS clients for the tests, on Python's ``ssl``: a round trip in random chunks, and a client
whose every record is visible.

``round_trip_in_random_chunks`` drives a non-blocking ``SSLSocket`` from one thread (an SSL object
must not be used by two threads at once): it sends while it reads, as a server with
back-pressure requires, and remembers that a record may be decrypted and waiting inside the SSL
object (``pending()``) where ``select()`` cannot see it.

``RecordClient`` speaks TLS over a plain blocking socket through ``ssl.MemoryBIO``, so a test can
tell apart what TLS hides: the peer's close_notify (its TLS EOF) and the TCP FIN after it, or a
reset instead of either.
"""

from __future__ import annotations

import random
import select
import socket
import ssl
import time

from tests.processes import TIMEOUT

RECV_BYTES = 1 << 20


def round_trip_in_random_chunks(sock: ssl.SSLSocket, payload: bytes, chunking: random.Random,
                                timeout: float = 30.0, max_chunk: int = 300_000) -> bytes:
    """Send ``payload`` in writes of 1 to ``max_chunk`` bytes while reading the echo; return
    what came back once it is as long as ``payload`` (or what came by the deadline)."""
    sock.setblocking(False)
    echoed = bytearray()
    sent = 0
    step = 0
    deadline = time.monotonic() + timeout
    while len(echoed) < len(payload) and time.monotonic() < deadline:
        want_write = [sock] if sent < len(payload) else []
        readable, writable, _ = select.select([sock], want_write, [], 1)
        if readable or sock.pending():
            try:
                while chunk := sock.recv(RECV_BYTES):
                    echoed += chunk
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
        if writable:
            # The same bytes again after a want-write: OpenSSL's retry rule for SSL_write.
            step = step or chunking.randint(1, max_chunk)
            try:
                taken = sock.send(payload[sent:sent + step])
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
            sent += taken
            step -= taken
    return bytes(echoed)


class PeerClosedWithoutCloseNotify(AssertionError):
    """The TCP FIN came before the peer's close_notify: a truncation TLS would have caught."""


class RecordClient:
    """A TLS client over a blocking socket via memory BIOs (see the module docstring)."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext,
                 server_hostname: str = "localhost") -> None:
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing,
                                    server_hostname=server_hostname)
        self.close_notify_received = False

    @classmethod
    def connect(cls, port: int, context: ssl.SSLContext) -> RecordClient:
        client = cls(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT), context)
        client.handshake()
        return client

    def _flush(self) -> None:
        if self.outgoing.pending:
            self.sock.sendall(self.outgoing.read())

    def _receive(self) -> bool:
        """One ``recv()`` into the incoming BIO; False at the peer's FIN."""
        data = self.sock.recv(65536)
        if not data:
            return False
        self.incoming.write(data)
        return True

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if not self._receive():
                    raise ConnectionError("FIN during the TLS handshake") from None

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()

    def send_close_notify(self) -> None:
        """Our TLS EOF, a half-close in TLS 1.3: we go on reading."""
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass  # sent; the peer's close_notify has not come yet
        self._flush()

    def read_until_close_notify(self) -> bytes:
        """Every plaintext byte before the peer's close_notify. Raises
        ``PeerClosedWithoutCloseNotify`` if the FIN comes first, ``ConnectionResetError`` at a
        reset, ``ssl.SSLError`` at an alert."""
        received = bytearray()
        while True:
            try:
                while piece := self.tls.read(RECV_BYTES):
                    received += piece
                self.close_notify_received = True  # read() returns b"" at close_notify
                return bytes(received)
            except ssl.SSLZeroReturnError:  # close_notify, after we sent ours
                self.close_notify_received = True
                return bytes(received)
            except ssl.SSLWantReadError:
                if not self._receive():
                    raise PeerClosedWithoutCloseNotify(
                        f"FIN without close_notify after {len(received)} bytes") from None

    def read_after_close_notify(self) -> bytes:
        """What the socket carries after the peer's close_notify, up to its FIN: ``b""`` if the
        FIN follows at once."""
        rest = bytearray()
        while chunk := self.sock.recv(65536):
            rest += chunk
        return bytes(rest)

    def close(self) -> None:
        self.sock.close()

"""DatagramTransport and the UDP protocols over real sockets, on every selector class.

UDP on loopback is reliable in practice, so these tests can expect every datagram; each wait is
bounded by ``run_until``'s deadline all the same. Send-queue behaviour needs a send that says
EAGAIN, which Linux's UDP to loopback never does (the datagram goes straight to the receiver and
is dropped there when its buffer is full). Those tests use a real Unix datagram ``socketpair``,
which does say EAGAIN while its peer does not read, through ``DatagramTransport.from_socket``;
only the exact error sequences (ENOBUFS then success) use a scripted socket.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from protocols.udp import UdpEchoProtocol, UdpUppercaseProtocol
from reactor import Reactor
from reactor.datagram import (
    MAX_DATAGRAMS_PER_EVENT,
    MAX_QUEUED_DATAGRAM_BYTES,
    DatagramState,
    DatagramTransport,
)
from reactor.poller import EVENT_READ, EVENT_WRITE
from tests.helpers import DatagramRecorder, datagram_recorder_of, run_until
from tests.processes import ipv6_loopback_available


needs_ipv6 = pytest.mark.skipif(not ipv6_loopback_available(),
                                reason="this machine cannot bind ::1 (no IPv6)")


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on: bind one, note it, close it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@pytest.fixture
def unix_pair(reactor: Reactor) -> Iterator[tuple[DatagramTransport, socket.socket]]:
    """A transport over one end of a Unix datagram socketpair, and the other end (not read until
    the test drains it): the sender's ``send()`` then really says EAGAIN."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    theirs.setblocking(False)
    transport = DatagramTransport.from_socket(reactor, DatagramRecorder, ours)
    yield transport, theirs
    transport.abort()
    theirs.close()


def receive_all(sock: socket.socket, into: list[bytes]) -> None:
    """Append every datagram ``sock`` holds right now (it is non-blocking)."""
    while True:
        try:
            into.append(sock.recv(70000))
        except BlockingIOError:
            return


def numbered(n: int, size: int) -> bytes:
    """Datagram ``n`` of ``size`` bytes: its number first, so order and wholeness can be checked."""
    return f"{n:08d}".encode() + b"." * (size - 8)


def fill_until_queued(transport: DatagramTransport, sent: list[bytes], size: int,
                      queued_bytes: int) -> None:
    """Send numbered datagrams until at least ``queued_bytes`` wait in the transport's queue."""
    for _ in range(10_000):
        if transport.get_write_buffer_size() >= queued_bytes:
            return
        data = numbered(len(sent), size)
        transport.sendto(data)
        sent.append(data)
    raise AssertionError("the socket never said EAGAIN")


# -- many clients, big datagrams ---------------------------------------------------------------


def test_twenty_clients_each_get_only_their_own_replies(reactor: Reactor) -> None:
    server = reactor.listen_udp(UdpEchoProtocol, "127.0.0.1", 0)
    port = server.local_address[1]
    clients = [reactor.connect_udp(DatagramRecorder, "127.0.0.1", port) for _ in range(20)]
    for i, client in enumerate(clients):
        for j in range(3):
            client.sendto(f"client {i} message {j}".encode())
    run_until(reactor, lambda: all(len(datagram_recorder_of(c).datagrams) == 3 for c in clients))
    reactor.run_once(0.05)  # anything stray would arrive now
    for i, client in enumerate(clients):
        assert sorted(datagram_recorder_of(client).datagrams) == [
            f"client {i} message {j}".encode() for j in range(3)]
        assert set(datagram_recorder_of(client).senders) == {
            server.local_address}


def test_60000_byte_datagram_round_trips_intact(reactor: Reactor) -> None:
    server = reactor.listen_udp(UdpEchoProtocol, "127.0.0.1", 0)
    client = reactor.connect_udp(DatagramRecorder, "127.0.0.1", server.local_address[1])
    payload = bytes(range(256)) * 234 + bytes(96)
    assert len(payload) == 60_000
    client.sendto(payload)
    run_until(reactor, lambda: datagram_recorder_of(client).datagrams)
    assert datagram_recorder_of(client).datagrams == [payload]


def test_zero_length_datagram_is_a_datagram_not_an_end_of_stream(reactor: Reactor) -> None:
    server = reactor.listen_udp(UdpEchoProtocol, "127.0.0.1", 0)
    client = reactor.connect_udp(DatagramRecorder, "127.0.0.1", server.local_address[1])
    client.sendto(b"")
    client.sendto(b"after")
    run_until(reactor, lambda: len(datagram_recorder_of(client).datagrams) == 2)
    assert datagram_recorder_of(client).datagrams == [b"", b"after"]
    assert not server.is_closing()


@pytest.mark.parametrize("host, limit", [
    ("127.0.0.1", 65507),
    pytest.param("::1", 65527, marks=needs_ipv6),
])
def test_oversize_datagram_is_refused_naming_size_and_limit_and_nothing_is_sent(
    reactor: Reactor, host: str, limit: int,
) -> None:
    server = reactor.listen_udp(DatagramRecorder, host, 0)
    client = reactor.connect_udp(DatagramRecorder, host, server.local_address[1])
    assert client.max_datagram_size == limit
    with pytest.raises(ValueError, match=rf"datagram of 70000 bytes refused.* at most {limit} "):
        client.sendto(b"x" * 70_000)
    with pytest.raises(ValueError, match=rf"datagram of {limit + 1} bytes refused"):
        server.sendto(b"x" * (limit + 1), client.local_address)
    assert client.get_write_buffer_size() == 0
    client.sendto(b"y" * limit)  # the largest datagram goes through, whole
    client.sendto(b"after")
    run_until(reactor, lambda: len(datagram_recorder_of(server).datagrams) == 2)
    assert datagram_recorder_of(server).datagrams == [b"y" * limit, b"after"]
    assert datagram_recorder_of(client).errors == []


# -- errors --------------------------------------------------------------------------------------


def test_unreachable_peer_reports_connection_refused_and_the_transport_keeps_working(
    reactor: Reactor,
) -> None:
    port = free_udp_port()
    client = reactor.connect_udp(DatagramRecorder, "127.0.0.1", port)
    assert client.peer_address == ("127.0.0.1", port)
    client.sendto(b"anyone there?")  # the ICMP port unreachable comes back to this socket
    run_until(reactor, lambda: datagram_recorder_of(client).errors)
    assert isinstance(datagram_recorder_of(client).errors[0], ConnectionRefusedError)
    assert not client.is_closing()
    assert client.state is DatagramState.OPEN

    reactor.listen_udp(UdpEchoProtocol, "127.0.0.1", port)  # now someone listens there
    client.sendto(b"and now?")
    run_until(reactor, lambda: datagram_recorder_of(client).datagrams)
    assert datagram_recorder_of(client).datagrams == [b"and now?"]
    assert datagram_recorder_of(client).lost_with == []


def test_kernel_emsgsize_goes_to_error_received_on_the_next_pass(
    reactor: Reactor, unix_pair: tuple[DatagramTransport, socket.socket],
) -> None:
    transport, peer = unix_pair
    # A Unix datagram larger than the send buffer (the peer's has the same default size).
    transport.sendto(b"z" * (peer.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) + 1))
    assert datagram_recorder_of(transport).errors == []  # never from inside sendto()
    run_until(reactor, lambda: datagram_recorder_of(transport).errors)
    assert datagram_recorder_of(transport).errors[0].errno == errno.EMSGSIZE
    transport.sendto(b"still open")
    assert peer.recv(100) == b"still open"


def test_exception_in_datagram_received_is_logged_and_the_server_keeps_answering(
    reactor: Reactor, caplog: pytest.LogCaptureFixture,
) -> None:
    class Fragile(UdpEchoProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            if data == b"boom":
                raise RuntimeError("bad datagram")
            super().datagram_received(data, addr)

    server = reactor.listen_udp(Fragile, "127.0.0.1", 0)
    client = reactor.connect_udp(DatagramRecorder, "127.0.0.1", server.local_address[1])
    with caplog.at_level(logging.ERROR, logger="reactor"):
        client.sendto(b"boom")
        client.sendto(b"ping")  # read in the same batch as the failing one
        run_until(reactor, lambda: datagram_recorder_of(client).datagrams)
    assert datagram_recorder_of(client).datagrams == [b"ping"]
    [record] = [r for r in caplog.records if "datagram_received" in r.getMessage()]
    assert record.exc_info is not None and "bad datagram" in str(record.exc_info[1])
    client.sendto(b"again")
    run_until(reactor, lambda: len(datagram_recorder_of(client).datagrams) == 2)
    assert not server.is_closing()


def test_sendto_without_address_needs_a_connected_transport(reactor: Reactor) -> None:
    server = reactor.listen_udp(DatagramRecorder, "127.0.0.1", 0)
    assert server.peer_address is None
    with pytest.raises(ValueError, match="not connected: sendto\\(\\) needs an address"):
        server.sendto(b"where to?")


def test_bind_failure_raises_at_once(reactor: Reactor) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(OSError) as info:
            reactor.listen_udp(DatagramRecorder, "127.0.0.1", taken.getsockname()[1])
    assert info.value.errno == errno.EADDRINUSE
    assert len(reactor.poller) == 1  # only the waker: no socket was left registered


# -- the read batch --------------------------------------------------------------------------


def test_one_readiness_event_reads_a_bounded_batch(
    reactor: Reactor, unix_pair: tuple[DatagramTransport, socket.socket],
) -> None:
    transport, peer = unix_pair
    count = MAX_DATAGRAMS_PER_EVENT + 8
    for n in range(count):
        peer.send(numbered(n, 16))  # a Unix socketpair queues each at the receiver at once
    reactor.run_once(1.0)
    assert len(datagram_recorder_of(transport).datagrams) == MAX_DATAGRAMS_PER_EVENT
    run_until(reactor, lambda: len(datagram_recorder_of(transport).datagrams) == count)
    assert datagram_recorder_of(transport).datagrams == [numbered(n, 16) for n in range(count)]


# -- the send queue under EAGAIN ---------------------------------------------------------------


def test_send_queue_keeps_whole_datagrams_and_delivers_them_in_order_when_writable(
    reactor: Reactor, unix_pair: tuple[DatagramTransport, socket.socket],
) -> None:
    transport, peer = unix_pair
    transport.set_write_buffer_limits(high=20_000, low=5_000)
    fd = transport.fileno()
    sent: list[bytes] = []
    received: list[bytes] = []
    for _ in range(2):
        fill_until_queued(transport, sent, 1000, 20_001)
        assert "pause" in datagram_recorder_of(transport).events
        assert transport.get_write_buffer_size() % 1000 == 0  # whole datagrams only
        assert reactor.poller.masks()[fd] == EVENT_READ | EVENT_WRITE

        def drained() -> bool:
            receive_all(peer, received)
            return len(received) == len(sent)

        run_until(reactor, drained)
        assert transport.get_write_buffer_size() == 0
        assert reactor.poller.masks()[fd] == EVENT_READ  # no writer once the queue is empty
    assert received == sent
    events = datagram_recorder_of(transport).events
    flow = [event for event in events if event in ("pause", "resume")]
    assert flow == ["pause", "resume", "pause", "resume"]
    assert datagram_recorder_of(transport).errors == []


def test_datagram_past_the_queue_bound_is_dropped_and_reported(
    reactor: Reactor, unix_pair: tuple[DatagramTransport, socket.socket],
) -> None:
    transport, peer = unix_pair
    size = 10_000
    sent = [numbered(n, size) for n in range(MAX_QUEUED_DATAGRAM_BYTES // size + 60)]
    for data in sent:
        transport.sendto(data)
    assert MAX_QUEUED_DATAGRAM_BYTES - size < transport.get_write_buffer_size() <= (
        MAX_QUEUED_DATAGRAM_BYTES)
    assert datagram_recorder_of(transport).errors == []  # never from inside sendto()
    reactor.run_once(0)
    errors = datagram_recorder_of(transport).errors
    assert errors and all(exc.errno == errno.ENOBUFS for exc in errors)
    assert f"datagram of {size} bytes dropped" in str(errors[0])
    assert f"limit {MAX_QUEUED_DATAGRAM_BYTES}" in str(errors[0])
    received: list[bytes] = []

    def drained() -> bool:
        receive_all(peer, received)
        return transport.get_write_buffer_size() == 0

    run_until(reactor, drained)
    receive_all(peer, received)
    assert received == sent[:len(received)]  # the oldest went out, in order; the rest dropped
    assert len(received) + len(errors) == len(sent)


class ScriptedSocket(socket.socket):
    """A real UDP socket whose ``sendto()`` raises the scripted errors before it works again."""

    def __init__(self, errors: list[OSError]) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_DGRAM)
        self.script = errors
        self.calls = 0

    def sendto(self, *args: Any) -> int:  # type: ignore[override]
        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        return super().sendto(*args)


@pytest.mark.parametrize("code, waits_for_writability", [
    (errno.EAGAIN, True),    # the send buffer is full: the writer is registered
    (errno.ENOBUFS, False),  # the socket may still poll writable: a timer retries instead
])
def test_scripted_send_failure_queues_then_sends_in_order(
    reactor: Reactor, code: int, waits_for_writability: bool,
) -> None:
    # Linux's UDP to loopback never says EAGAIN or ENOBUFS, so a scripted socket produces them.
    server = reactor.listen_udp(DatagramRecorder, "127.0.0.1", 0)
    sock = ScriptedSocket([OSError(code, "scripted")])
    sock.bind(("127.0.0.1", 0))
    transport = DatagramTransport.from_socket(reactor, DatagramRecorder, sock)
    transport.sendto(b"one", server.local_address)
    transport.sendto(b"two", server.local_address)
    assert transport.get_write_buffer_size() == 6
    expected_mask = EVENT_READ | (EVENT_WRITE if waits_for_writability else 0)
    assert reactor.poller.masks()[transport.fileno()] == expected_mask
    run_until(reactor, lambda: len(datagram_recorder_of(server).datagrams) == 2)
    assert datagram_recorder_of(server).datagrams == [b"one", b"two"]
    assert sock.calls == 3
    assert datagram_recorder_of(transport).errors == []
    assert reactor.poller.masks()[transport.fileno()] == EVENT_READ


def test_error_on_a_queued_datagram_drops_only_that_one_and_reports_it(
    reactor: Reactor,
) -> None:
    server = reactor.listen_udp(DatagramRecorder, "127.0.0.1", 0)
    sock = ScriptedSocket([OSError(errno.EAGAIN, "scripted"),
                           OSError(errno.EHOSTUNREACH, "scripted")])
    sock.bind(("127.0.0.1", 0))
    transport = DatagramTransport.from_socket(reactor, DatagramRecorder, sock)
    for data in (b"one", b"two", b"three"):
        transport.sendto(data, server.local_address)
    run_until(reactor, lambda: len(datagram_recorder_of(server).datagrams) == 2)
    assert datagram_recorder_of(server).datagrams == [b"two", b"three"]
    [error] = datagram_recorder_of(transport).errors
    assert error.errno == errno.EHOSTUNREACH
    assert not transport.is_closing()


def test_error_meaning_the_socket_is_unusable_closes_the_transport(
    reactor: Reactor, caplog: pytest.LogCaptureFixture,
) -> None:
    sock = ScriptedSocket([OSError(errno.EBADF, "scripted")])
    sock.bind(("127.0.0.1", 0))
    transport = DatagramTransport.from_socket(reactor, DatagramRecorder, sock)
    with caplog.at_level(logging.ERROR, logger="reactor.datagram"):
        transport.sendto(b"lost", ("127.0.0.1", 9))
    assert transport.state is DatagramState.CLOSED
    assert any(record.exc_info for record in caplog.records)
    run_until(reactor, lambda: datagram_recorder_of(transport).lost_with)
    [exc] = datagram_recorder_of(transport).lost_with
    assert isinstance(exc, OSError) and exc.errno == errno.EBADF
    assert datagram_recorder_of(transport).errors == []


# -- close and abort ---------------------------------------------------------------------------


def test_close_sends_the_queue_first_then_connection_lost_comes_on_a_later_pass(
    reactor: Reactor, unix_pair: tuple[DatagramTransport, socket.socket],
) -> None:
    transport, peer = unix_pair
    sent: list[bytes] = []
    fill_until_queued(transport, sent, 1000, 5000)
    transport.close()
    assert transport.is_closing() and transport.state is DatagramState.CLOSING
    transport.sendto(b"after close")  # dropped: the transport is going away
    peer.send(b"not delivered after close")
    received: list[bytes] = []

    def lost() -> bool:
        receive_all(peer, received)
        return bool(datagram_recorder_of(transport).lost_with)

    run_until(reactor, lost)
    assert received == sent
    assert transport.state is DatagramState.CLOSED
    events = datagram_recorder_of(transport).events
    assert events[0] == "made" and events[-1] == "lost"
    assert datagram_recorder_of(transport).lost_with == [None]
    assert datagram_recorder_of(transport).datagrams == []


def test_close_with_nothing_queued_reports_connection_lost_later_and_only_once(
    reactor: Reactor,
) -> None:
    transport = reactor.listen_udp(DatagramRecorder, "127.0.0.1", 0)
    transport.close()
    transport.close()
    assert datagram_recorder_of(transport).lost_with == []  # not from inside close()
    run_until(reactor, lambda: datagram_recorder_of(transport).lost_with)
    reactor.run_once(0)
    assert datagram_recorder_of(transport).events == ["made", "lost"]
    assert datagram_recorder_of(transport).lost_with == [None]


def test_abort_drops_the_queue_and_nothing_is_delivered_after_it(
    reactor: Reactor, unix_pair: tuple[DatagramTransport, socket.socket],
) -> None:
    transport, peer = unix_pair
    sent: list[bytes] = []
    fill_until_queued(transport, sent, 1000, 5000)
    in_kernel = len(sent) - transport.get_write_buffer_size() // 1000
    peer.send(b"unread")
    transport.abort()
    assert transport.state is DatagramState.CLOSED and transport.get_write_buffer_size() == 0
    run_until(reactor, lambda: datagram_recorder_of(transport).lost_with)
    received: list[bytes] = []
    receive_all(peer, received)
    assert received == sent[:in_kernel]
    assert datagram_recorder_of(transport).events[-1] == "lost"
    assert datagram_recorder_of(transport).lost_with == [None]
    assert datagram_recorder_of(transport).datagrams == []


def test_repr_shows_fd_addresses_state_and_queue(reactor: Reactor) -> None:
    server = reactor.listen_udp(DatagramRecorder, "127.0.0.1", 0)
    client = reactor.connect_udp(DatagramRecorder, "127.0.0.1", server.local_address[1])
    text = repr(client)
    assert f"fd={client.fileno()}" in text
    assert f"local=127.0.0.1:{client.local_address[1]}" in text
    assert f"peer=127.0.0.1:{server.local_address[1]}" in text
    assert "OPEN" in text and "queue=0 datagrams/0 bytes" in text
    assert "peer=None" in repr(server)


# -- IPv6 ------------------------------------------------------------------------------------


@needs_ipv6
def test_ipv6_loopback_round_trip(reactor: Reactor) -> None:
    server = reactor.listen_udp(UdpEchoProtocol, "[::1]", 0)
    assert server.local_address[0] == "::1"
    client = reactor.connect_udp(DatagramRecorder, "::1", server.local_address[1])
    client.sendto(b"over IPv6")
    run_until(reactor, lambda: datagram_recorder_of(client).datagrams)
    assert datagram_recorder_of(client).datagrams == [b"over IPv6"]
    assert f"local=[::1]:{client.local_address[1]}" in repr(client)


@needs_ipv6
def test_dual_stack_server_on_any_ipv6_address_answers_an_ipv4_client(reactor: Reactor) -> None:
    server = reactor.listen_udp(UdpEchoProtocol, "::", 0)
    client = reactor.connect_udp(DatagramRecorder, "127.0.0.1", server.local_address[1])
    client.sendto(b"from IPv4")
    run_until(reactor, lambda: datagram_recorder_of(client).datagrams)
    assert datagram_recorder_of(client).datagrams == [b"from IPv4"]


# -- the example protocols -----------------------------------------------------------------------


@pytest.mark.parametrize("request_, reply", [
    ("straße".encode(), "STRASSE".encode()),
    (b"hello\n", b"HELLO\n"),
    (b"\xff\xfe", b"error: datagram is not valid UTF-8"),
    (b"\xff\n", b"error: datagram is not valid UTF-8\n"),
])
def test_uppercase_protocol_replies_to_the_sender(
    reactor: Reactor, request_: bytes, reply: bytes,
) -> None:
    server = reactor.listen_udp(UdpUppercaseProtocol, "127.0.0.1", 0)
    client = reactor.connect_udp(DatagramRecorder, "127.0.0.1", server.local_address[1])
    client.sendto(request_)
    run_until(reactor, lambda: datagram_recorder_of(client).datagrams)
    assert datagram_recorder_of(client).datagrams == [reply]


def test_uppercase_reply_too_long_for_one_datagram_becomes_an_error_reply(
    reactor: Reactor,
) -> None:
    server = reactor.listen_udp(UdpUppercaseProtocol, "127.0.0.1", 0)
    client = reactor.connect_udp(DatagramRecorder, "127.0.0.1", server.local_address[1])
    client.sendto("ŉ".encode() * 30_000)  # 2 bytes each, upper-cased to "ʼN": 3 bytes each
    run_until(reactor, lambda: datagram_recorder_of(client).datagrams)
    [reply] = datagram_recorder_of(client).datagrams
    assert reply.startswith(b"error: the reply would be 90000 bytes")


# -- tracing -----------------------------------------------------------------------------------


class RecordingTracer:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def event(self, source: object, name: str, **fields: Any) -> None:
        self.events.append((getattr(source, "trace_label", ""), name, fields))


def test_tracer_sees_every_datagram_event_with_the_queue_size() -> None:
    tracer = RecordingTracer()
    reactor = Reactor(tracer=tracer)
    try:
        server = reactor.listen_udp(UdpEchoProtocol, "127.0.0.1", 0)
        client = reactor.connect_udp(DatagramRecorder, "127.0.0.1", server.local_address[1])
        client.sendto(b"traced")
        run_until(reactor, lambda: datagram_recorder_of(client).datagrams)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        with theirs:
            pair = DatagramTransport.from_socket(reactor, DatagramRecorder, ours)
            pair.set_write_buffer_limits(high=2000)
            fill_until_queued(pair, [], 1000, 3000)
            pair.sendto(b"z" * MAX_QUEUED_DATAGRAM_BYTES)  # cannot fit: dropped
            pair.abort()
            run_until(reactor, lambda: datagram_recorder_of(pair).lost_with)
    finally:
        reactor.close()
    names = {name for _, name, _ in tracer.events}
    assert {"open", "sendto", "recvfrom", "queued", "drop", "pause_writing", "state"} <= names
    label, _, fields = next(e for e in tracer.events if e[1] == "recvfrom" and "fd=" in e[0])
    assert fields["bytes"] == 6 and fields["sender"].startswith("127.0.0.1:")
    transport_events = [fields for label, _, fields in tracer.events if label != "reactor"]
    assert transport_events and all("queued" in fields for fields in transport_events)
    assert any(label.startswith("udp fd=") and " -> 127.0.0.1:" in label
               for label, _, _ in tracer.events)

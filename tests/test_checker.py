"""The callback-order checker (``reactor.checker``): what it reports, and that every protocol in
``protocols/`` runs under it without a breach.

The unit tests drive a ``CheckedProtocol`` by hand over a ``FakeTransport``. The rest run the real
protocols under ``Reactor(debug=True)`` (the ``reactor`` fixture: every selector, and it fails a
test that leaves a breach) over loopback sockets, through each way a connection can end; a last
test breaks the reactor on purpose to show that the check is not hollow.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from protocols.chat import ChatRoom
from protocols.echo import EchoProtocol
from protocols.line import LineProtocol
from protocols.udp import UdpEchoProtocol, UdpUppercaseProtocol
from protocols.uppercase import UppercaseProtocol
from reactor import ByteBuffer, Protocol, Reactor
from reactor.checker import RECENT_CALLS, CheckedProtocol, checked_factory
from reactor.connection import Connection, ConnectionState
from reactor.datagram import DatagramProtocol
from reactor.testing import FakeTransport
from tests.helpers import Peer, Recorder, Server, run_until

Checked = tuple[CheckedProtocol, FakeTransport, list[str]]


def keeping(cls: Callable[[], Any], made: list[Any]) -> Callable[[], Any]:
    """A factory of ``cls()`` that also appends each new protocol to ``made``."""

    def factory() -> Any:
        made.append(cls())
        return made[-1]

    return factory


def checked(inner: Any = None, *, made: bool = True) -> Checked:
    """A CheckedProtocol over ``inner`` on a fake transport; breaches go to the returned list."""
    seen: list[str] = []
    wrapper = CheckedProtocol(inner if inner is not None else Recorder(), on_violation=seen.append)
    transport = FakeTransport(wrapper)  # type: ignore[arg-type]
    if made:
        wrapper.connection_made(transport)
    return wrapper, transport, seen


# -- CheckedProtocol by hand -----------------------------------------------------------------------


def test_a_correct_sequence_reports_nothing_and_reaches_the_protocol() -> None:
    wrapper, transport, seen = checked()
    buffer = ByteBuffer(b"data")
    wrapper.data_received(buffer)
    wrapper.pause_writing()
    wrapper.resume_writing()
    wrapper.pause_writing()
    wrapper.resume_writing()
    wrapper.idle_timed_out(5.0)
    wrapper.data_received(buffer)
    assert wrapper.eof_received() is False
    wrapper.connection_lost(None)
    expected = ["connection_made", "data_received", "pause_writing", "resume_writing",
                "pause_writing", "resume_writing", "idle_timed_out", "data_received",
                "eof_received", "connection_lost"]
    assert seen == wrapper.violations == []
    assert list(wrapper.recent) == expected and wrapper.first == "connection_made"
    assert wrapper.protocol.events == ["made", "data", "pause", "resume", "pause", "resume",
                                       "idle", "data", "eof", "lost"]


def test_the_checker_remembers_a_bounded_amount_however_long_the_connection() -> None:
    wrapper, _, seen = checked()
    for _ in range(10_000):
        wrapper.data_received(ByteBuffer())
    wrapper.connection_lost(None)
    assert seen == []
    assert wrapper.counts == {"connection_made": 1, "data_received": 10_000, "connection_lost": 1}
    assert len(wrapper.recent) == RECENT_CALLS and wrapper.recent[-1] == "connection_lost"
    assert wrapper.first == "connection_made"


def test_connection_made_twice_is_reported() -> None:
    wrapper, transport, seen = checked()
    wrapper.connection_made(transport)
    assert len(seen) == 1
    assert seen[0].startswith("Recorder: connection_made after other callbacks")
    assert "['connection_made', 'connection_made']" in seen[0]


@pytest.mark.parametrize("hook", ["data_received", "eof_received", "pause_writing",
                                  "connection_lost"])
def test_a_callback_before_connection_made_is_reported(hook: str) -> None:
    wrapper, transport, seen = checked(made=False)
    call(wrapper, hook)
    assert seen == [f"Recorder: {hook} before connection_made (calls: ['{hook}'])"]
    wrapper.connection_made(transport)  # and connection_made can no longer come first
    assert seen[1].startswith("Recorder: connection_made after other callbacks")


def call(wrapper: CheckedProtocol, hook: str) -> None:
    """Call one contract callback with plausible arguments."""
    arguments: dict[str, tuple[Any, ...]] = {
        "data_received": (ByteBuffer(b"x"),), "connection_lost": (None,),
        "idle_timed_out": (1.0,), "datagram_received": (b"x", ("127.0.0.1", 9)),
        "error_received": (OSError(),), "connection_made": (FakeTransport(),),
    }
    getattr(wrapper, hook)(*arguments.get(hook, ()))


@pytest.mark.parametrize("hook", ["data_received", "eof_received", "pause_writing",
                                  "resume_writing", "idle_timed_out", "datagram_received",
                                  "error_received"])
def test_any_callback_after_connection_lost_is_reported(hook: str) -> None:
    inner = Recorder() if hook not in ("datagram_received", "error_received") else \
        DatagramProtocol()
    wrapper, transport, seen = checked(inner)
    wrapper.connection_lost(None)
    call(wrapper, hook)
    assert len(seen) == 1
    assert f": {hook} after connection_lost (calls: " in seen[0]


def test_connection_lost_twice_is_reported() -> None:
    wrapper, transport, seen = checked()
    wrapper.connection_lost(None)
    wrapper.connection_lost(ConnectionResetError())
    assert seen == ["Recorder: connection_lost after connection_lost (calls: "
                    "['connection_made', 'connection_lost', 'connection_lost'])"]


def test_eof_received_twice_is_reported() -> None:
    wrapper, transport, seen = checked(Recorder(keep_open=True))
    assert wrapper.eof_received() is True
    wrapper.eof_received()
    assert len(seen) == 1
    assert seen[0].startswith("Recorder: eof_received twice")


def test_pause_writing_twice_in_a_row_is_reported() -> None:
    wrapper, transport, seen = checked()
    wrapper.pause_writing()
    wrapper.pause_writing()
    assert len(seen) == 1
    assert seen[0].startswith("Recorder: pause_writing twice in a row")


def test_resume_writing_before_any_pause_is_reported() -> None:
    wrapper, transport, seen = checked()
    wrapper.resume_writing()
    assert len(seen) == 1
    assert seen[0].startswith("Recorder: resume_writing twice in a row")


def test_resume_writing_twice_in_a_row_is_reported() -> None:
    wrapper, transport, seen = checked()
    wrapper.pause_writing()
    wrapper.resume_writing()
    wrapper.data_received(ByteBuffer(b"between"))  # other callbacks do not break the pairing
    wrapper.resume_writing()
    assert len(seen) == 1
    assert seen[0].startswith("Recorder: resume_writing twice in a row")


@pytest.mark.parametrize("command", ["close", "abort"])
def test_data_received_after_the_transport_is_closing_is_reported(command: str) -> None:
    wrapper, transport, seen = checked()
    wrapper.data_received(ByteBuffer(b"fine"))
    getattr(transport, command)()
    wrapper.data_received(ByteBuffer(b"too late"))
    assert len(seen) == 1
    assert seen[0].startswith("Recorder: data_received after close() or abort()")
    wrapper.connection_lost(None)  # the final connection_lost is still allowed
    assert len(seen) == 1


def test_a_breach_is_reported_not_raised_and_the_call_still_reaches_the_protocol() -> None:
    wrapper, transport, seen = checked()
    wrapper.connection_lost(None)
    wrapper.data_received(ByteBuffer(b"x"))  # no exception
    assert wrapper.protocol.events[-1] == "data"
    assert wrapper.violations == seen and len(seen) == 1


def test_without_on_violation_breaches_are_only_kept() -> None:
    wrapper = CheckedProtocol(Recorder())
    wrapper.pause_writing()
    assert wrapper.violations == ["Recorder: pause_writing before connection_made "
                                  "(calls: ['pause_writing'])"]


@pytest.mark.parametrize("answer, expected", [(True, True), (False, False), (None, False),
                                              (1, True)])
def test_eof_received_answer_is_forwarded_as_a_bool(answer: Any, expected: bool) -> None:
    wrapper, transport, seen = checked(Recorder(keep_open=answer))
    assert wrapper.eof_received() is expected


def test_other_attributes_are_the_protocols_own() -> None:
    room = ChatRoom()
    member = room.protocol_factory()
    wrapper, transport, seen = checked(member)
    assert wrapper.name == "127.0.0.1:5555"  # given by the room when the member joined
    assert wrapper.room is room
    assert wrapper.transport is transport
    assert transport.written == b"* welcome, you are 127.0.0.1:5555; /help lists commands\n"
    with pytest.raises(AttributeError):
        wrapper.no_such_attribute  # noqa: B018


def test_checked_factory_wraps_each_new_protocol_and_reports_to_the_callback() -> None:
    seen: list[str] = []
    factory = checked_factory(Recorder, seen.append)
    first, second = factory(), factory()
    assert isinstance(first, CheckedProtocol) and isinstance(first.protocol, Recorder)
    assert first.protocol is not second.protocol
    first.eof_received()
    assert len(seen) == 1


# -- the real protocols under Reactor(debug=True) --------------------------------------------------


class Counted(LineProtocol):
    """A LineProtocol subclass: answers each line with its length and the line."""

    max_line_length = 64 * 1024

    def line_received(self, line: bytes) -> None:
        self.send_line(b"%d:%s" % (len(line), line))


STREAM_PROTOCOLS: dict[str, Callable[[], Callable[[], Any]]] = {
    "echo": lambda: EchoProtocol,
    "uppercase": lambda: UppercaseProtocol,
    "line-subclass": lambda: Counted,
    "chat": lambda: ChatRoom().protocol_factory,
}


def checker(transport: Any) -> CheckedProtocol:
    """The CheckedProtocol debug mode wrapped around ``transport``'s protocol."""
    wrapper = transport._protocol
    assert type(wrapper) is CheckedProtocol
    assert transport.protocol is wrapper.protocol
    return wrapper


def lost(transport: Any) -> Callable[[], bool]:
    return lambda: checker(transport).counts["connection_lost"] == 1


def assert_clean(reactor: Reactor, *transports: Any) -> None:
    assert reactor.contract_violations == []
    for transport in transports:
        wrapper = checker(transport)
        assert wrapper.violations == []
        assert wrapper.first == "connection_made"
        assert wrapper.counts["connection_made"] == 1
        assert wrapper.counts["connection_lost"] == 1
        assert wrapper.recent[-1] == "connection_lost"


def send_and_wait(peer: Peer, conn: Connection, data: bytes) -> None:
    target = conn.bytes_received + len(data)
    peer.send(data)
    peer.pump_until(lambda: conn.bytes_received >= target)


def end_by_half_close(reactor: Reactor, peer: Peer, conn: Connection) -> None:
    send_and_wait(peer, conn, b"hello\n")
    peer.finish()
    peer.until_closed()
    assert peer.eof and peer.error is None
    run_until(reactor, lost(conn))
    assert checker(conn).counts["eof_received"] == 1


def end_by_lingering_server_close(reactor: Reactor, peer: Peer, conn: Connection) -> None:
    send_and_wait(peer, conn, b"hello\n")
    delivered = checker(conn).counts["data_received"]
    conn.close()
    peer.send(b"sent after the server's close\n")  # read and discarded while lingering
    peer.until_closed()
    assert peer.eof and peer.error is None
    assert checker(conn).counts["connection_lost"] == 0  # still waiting for our FIN
    peer.sock.close()
    run_until(reactor, lost(conn))
    assert checker(conn).counts["data_received"] == delivered
    assert checker(conn).counts["eof_received"] == 0


def end_by_abort(reactor: Reactor, peer: Peer, conn: Connection) -> None:
    send_and_wait(peer, conn, b"hello\n")
    conn.abort()
    peer.until_closed()
    assert isinstance(peer.error, ConnectionResetError)
    run_until(reactor, lost(conn))


def end_by_peer_reset(reactor: Reactor, peer: Peer, conn: Connection) -> None:
    send_and_wait(peer, conn, b"hello\n")
    peer.reset()
    run_until(reactor, lost(conn))
    assert conn.state is ConnectionState.CLOSED


ENDINGS: dict[str, Callable[[Reactor, Peer, Connection], None]] = {
    "half-close": end_by_half_close,
    "lingering-server-close": end_by_lingering_server_close,
    "abort": end_by_abort,
    "peer-reset": end_by_peer_reset,
}


@pytest.mark.parametrize("ending", list(ENDINGS))
@pytest.mark.parametrize("protocol", list(STREAM_PROTOCOLS))
def test_stream_protocol_keeps_the_contract_through_each_ending(
        reactor: Reactor, serve: Callable[..., Server], protocol: str, ending: str) -> None:
    server = serve(STREAM_PROTOCOLS[protocol]())
    peer, conn = server.peer()
    ENDINGS[ending](reactor, peer, conn)
    assert checker(conn).counts["data_received"]
    assert_clean(reactor, conn)


REQUEST = b"a" * 60000 + b"\n"


@pytest.mark.parametrize("protocol", ["echo", "uppercase", "line-subclass"])
def test_stream_protocol_keeps_the_contract_across_a_watermark_pause_and_resume(
        reactor: Reactor, serve: Callable[..., Server], protocol: str) -> None:
    server = serve(STREAM_PROTOCOLS[protocol]())
    peer, conn = server.peer()
    requests = 0
    peer.reading = False  # the client reads nothing until the server pauses

    def send_until_paused() -> bool:
        nonlocal requests
        if checker(conn).counts["pause_writing"]:
            return True
        if not peer.outgoing:
            peer.send(REQUEST)  # at most one request per pass
            requests += 1
        peer.pump()
        return False

    run_until(reactor, send_until_paused, timeout=10)
    peer.reading = True
    # pump_until also sends the rest of a request the kernel took only part of.
    peer.pump_until(lambda: not peer.outgoing and checker(conn).counts["resume_writing"])
    peer.finish()
    peer.until_closed()
    run_until(reactor, lost(conn))
    reply = {"echo": REQUEST, "uppercase": REQUEST.upper(),
             "line-subclass": b"%d:" % (len(REQUEST) - 1) + REQUEST}[protocol]
    assert len(peer.received) == len(reply) * requests
    assert peer.received == reply * requests
    # Paused and resumed at least once; the checker itself saw them alternate, pause first.
    assert checker(conn).counts["pause_writing"] >= 1
    assert checker(conn).counts["resume_writing"] >= 1
    assert_clean(reactor, conn)


def test_chat_members_talking_quitting_and_asking_for_stats_keep_the_contract(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(ChatRoom().protocol_factory)
    alice, alice_conn = server.peer()
    assert alice.line().startswith(b"* welcome, you are ")
    bob, bob_conn = server.peer()
    assert bob.line().startswith(b"* welcome, you are ")
    assert alice.line().endswith(b" joined\n")
    assert checker(bob_conn).name == bob_conn.peer_name  # the member's own attribute
    alice.send(b"hi bob\n")
    assert bob.line() == f"{alice_conn.peer_name}: hi bob\n".encode()
    bob.send(b"/stats\n")
    assert bob.line().startswith(b"* stats: members=2 lines_in=2 ")
    bob.send(b"/quit\n")
    assert bob.line() == b"* goodbye\n"
    bob.until_closed()
    assert alice.line() == f"* {bob_conn.peer_name} left\n".encode()
    bob.sock.close()
    run_until(reactor, lost(bob_conn))
    alice.finish()
    alice.until_closed()
    run_until(reactor, lost(alice_conn))
    assert_clean(reactor, alice_conn, bob_conn)


def test_chat_member_that_stops_reading_is_paused_then_resumed_within_the_contract(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(ChatRoom().protocol_factory)
    alice, alice_conn = server.peer()
    bob, bob_conn = server.peer()
    alice.line()
    alice.line()  # welcome, then bob joined
    message = b"m" * 4000 + b"\n"

    def alice_talks_bob_does_not_read() -> bool:
        if checker(bob_conn).counts["pause_writing"]:
            return True
        alice.pump()
        alice.send(message)  # one line per pass: bob's queue grows by one line at a time
        return False

    run_until(reactor, alice_talks_bob_does_not_read, timeout=10)
    assert bob_conn.get_write_buffer_size() < 1024 * 1024  # paused, not cut off as too slow
    bob.pump_until(lambda: checker(bob_conn).counts["resume_writing"])
    for peer in (alice, bob):
        peer.finish()
    for peer in (alice, bob):
        peer.until_closed()
    run_until(reactor, lambda: lost(alice_conn)() and lost(bob_conn)())
    assert_clean(reactor, alice_conn, bob_conn)


@pytest.mark.parametrize("factory, request_, reply", [
    (UdpEchoProtocol, b"ping", b"ping"),
    (UdpUppercaseProtocol, b"stra\xc3\x9fe\n", b"STRASSE\n"),
])
def test_udp_protocol_keeps_the_contract_from_open_to_close(
        reactor: Reactor, factory: Any, request_: bytes, reply: bytes) -> None:
    transport = reactor.listen_udp(factory, "127.0.0.1", 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.setblocking(False)
        replies: list[bytes] = []

        def replied() -> bool:
            try:
                replies.append(client.recv(65536))
            except BlockingIOError:
                pass
            return len(replies) == 2

        client.sendto(request_, transport.local_address)
        client.sendto(request_, transport.local_address)
        run_until(reactor, replied)
    assert replies == [reply, reply]
    transport.close()
    run_until(reactor, lost(transport))
    assert list(checker(transport).recent) == ["connection_made", "datagram_received",
                                              "datagram_received", "connection_lost"]
    assert_clean(reactor, transport)


@pytest.mark.parametrize("factory", [UdpEchoProtocol, UdpUppercaseProtocol])
def test_udp_protocol_keeps_the_contract_when_the_peer_is_unreachable(
        reactor: Reactor, factory: Any) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as vacant:
        vacant.bind(("127.0.0.1", 0))
        port = vacant.getsockname()[1]
    transport = reactor.connect_udp(factory, "127.0.0.1", port)
    transport.sendto(b"anyone?")
    run_until(reactor, lambda: checker(transport).counts["error_received"])
    transport.abort()
    run_until(reactor, lost(transport))
    assert list(checker(transport).recent) == ["connection_made", "error_received", "connection_lost"]
    assert_clean(reactor, transport)


def test_transport_protocol_is_the_users_protocol_in_debug_mode(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    made: list[EchoProtocol] = []
    server = serve(keeping(EchoProtocol, made))
    peer, conn = server.peer()
    assert conn.protocol is made[0]
    assert made[0].transport is conn
    udp = reactor.listen_udp(UdpEchoProtocol, "127.0.0.1", 0)
    assert type(udp.protocol) is UdpEchoProtocol
    udp.close()
    reactor.run_once(0)


def test_without_debug_mode_protocols_are_not_wrapped() -> None:
    reactor = Reactor()
    try:
        made: list[EchoProtocol] = []
        listener = reactor.listen_tcp(keeping(EchoProtocol, made))
        with socket.create_connection(listener.address, timeout=5):
            run_until(reactor, lambda: made)
            [conn] = listener.connections
            assert conn._protocol is made[0] is conn.protocol
            conn.abort()
        listener.close()
        reactor.run_once(0)
    finally:
        reactor.close()


# -- the check is not hollow ---------------------------------------------------------------------


class Flood(Protocol):
    """Queues more than the kernel takes, so that a close() has to wait for the queue."""

    def connection_made(self, transport: Connection) -> None:  # type: ignore[override]
        super().connection_made(transport)
        transport.write(b"x" * (8 * 1024 * 1024))

    def pause_writing(self) -> None:
        pass  # keep reading: the input must keep coming for this test


def test_debug_mode_reports_data_delivered_after_close_by_a_broken_connection(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # Break the reactor: close() no longer stops reading, so bytes that arrive while the queue
    # is still being flushed reach data_received, which the contract forbids.
    monkeypatch.setattr(Connection, "_stop_reading", lambda self: None)
    reactor = Reactor(debug=True)
    try:
        server = Server(reactor, Flood)
        peer, conn = server.peer()
        assert conn.get_write_buffer_size() > 0
        conn.close()
        assert conn.state is ConnectionState.CLOSING
        peer.send(b"late")
        run_until(reactor, lambda: reactor.contract_violations)
        [breach] = reactor.contract_violations
        assert breach.startswith("Flood: data_received after close() or abort()")
        assert "protocol contract broken: Flood: data_received after close()" in caplog.text
        server.close()
    finally:
        reactor.close()


class Producer(Flood):
    """Flood with the calls it receives, and whether the transport was closing at each."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def pause_writing(self) -> None:
        assert self.transport is not None
        self.calls.append(("pause_writing", self.transport.is_closing()))

    def resume_writing(self) -> None:
        assert self.transport is not None
        self.calls.append(("resume_writing", self.transport.is_closing()))


def test_no_resume_writing_is_delivered_after_close(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    made: list[Producer] = []
    server = serve(keeping(Producer, made))
    peer, conn = server.peer()
    assert made[0].calls == [("pause_writing", False)]
    conn.close()
    peer.until_closed()  # reads everything: the queue drains below the low-water mark
    peer.sock.close()
    run_until(reactor, lost(conn))
    assert made[0].calls == [("pause_writing", False)]

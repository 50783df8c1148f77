"""ChatRoom and ChatProtocol over in-memory transports: the wire contract in chat.py's docstring."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from protocols.chat import MAX_HELD_BYTES, MAX_LINE_BYTES, ChatProtocol, ChatRoom, sanitize
from protocols.chat_bus import RoomBus
from reactor.testing import FakeTransport, connect, feed, feed_eof


class Client:
    """One connected chat member and what it has been sent."""

    def __init__(self, room: ChatRoom, port: int, host: str = "127.0.0.1") -> None:
        self.protocol = room.protocol_factory()
        self.transport: FakeTransport = connect(self.protocol, peer=(host, port))

    def say(self, text: str | bytes) -> None:
        data = text if isinstance(text, bytes) else (text + "\n").encode("utf-8")
        feed(self.protocol, self.transport, data)

    def received(self) -> list[str]:
        """Lines sent to this client since the last call."""
        text = self.transport.written.decode("utf-8")
        self.transport.clear()
        return text.splitlines()

    def disconnect(self) -> None:
        self.transport.lose()


@pytest.fixture
def room() -> ChatRoom:
    return ChatRoom()


def join(room: ChatRoom, *ports: int) -> list[Client]:
    """Clients in ``room``, with the join traffic already read."""
    clients = [Client(room, port) for port in ports]
    for client in clients:
        client.received()
    return clients


def test_factory_returns_a_new_protocol_in_the_room(room: ChatRoom) -> None:
    first, second = room.protocol_factory(), room.protocol_factory()
    assert isinstance(first, ChatProtocol) and first is not second
    assert first.room is room


def test_welcome_names_the_client_by_peer_address(room: ChatRoom) -> None:
    client = Client(room, 5555)
    assert client.received() == ["* welcome, you are 127.0.0.1:5555; /help lists commands"]


def test_ipv6_peer_default_name_uses_brackets(room: ChatRoom) -> None:
    client = Client(room, 5555, host="::1")
    assert client.protocol.name == "[::1]:5555"


def test_join_is_announced_to_the_others(room: ChatRoom) -> None:
    (alice,) = join(room, 1001)
    Client(room, 1002)
    assert alice.received() == ["* 127.0.0.1:1002 joined"]


def test_plain_line_reaches_everyone_but_the_sender(room: ChatRoom) -> None:
    alice, bob, carol = join(room, 1001, 1002, 1003)
    alice.say("hello")
    assert alice.received() == []
    assert bob.received() == ["127.0.0.1:1001: hello"]
    assert carol.received() == ["127.0.0.1:1001: hello"]


def test_crlf_lines_are_accepted(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say(b"hi\r\n")
    assert bob.received() == ["127.0.0.1:1001: hi"]


def test_empty_and_blank_lines_are_ignored(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say(b"\n   \n\r\n")
    assert bob.received() == []
    assert alice.received() == []


def test_nick_renames_and_tells_everyone(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say("/nick alice")
    assert alice.received() == ["* you are now known as alice"]
    assert bob.received() == ["* 127.0.0.1:1001 is now known as alice"]
    alice.say("hi")
    assert bob.received() == ["alice: hi"]


def test_nick_accepts_han_characters(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say("/nick 张三")
    assert bob.received() == ["* 127.0.0.1:1001 is now known as 张三"]
    assert room.find("张三") is alice.protocol


def test_taken_nick_is_refused_and_name_unchanged(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say("/nick alice")
    alice.received()
    bob.received()
    bob.say("/nick alice")
    (reply,) = bob.received()
    assert reply.startswith("error: ") and "taken" in reply
    assert bob.protocol.name == "127.0.0.1:1002"
    assert alice.received() == []


@pytest.mark.parametrize(
    "name",
    [
        "two words", "bell\x07", "esc\x1b[31m", "del\x7f", "tab\tname", "x" * 33, "with:colon",
        "nbsp\u00a0x",
    ],
)
def test_invalid_nick_is_refused_and_name_unchanged(room: ChatRoom, name: str) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say(f"/nick {name}")
    (reply,) = alice.received()
    assert reply.startswith("error: ")
    assert alice.protocol.name == "127.0.0.1:1001"
    assert bob.received() == []


def test_nick_of_32_characters_is_accepted(room: ChatRoom) -> None:
    (alice,) = join(room, 1001)
    alice.say("/nick " + "x" * 32)
    assert alice.protocol.name == "x" * 32


def test_nick_without_a_name_gets_usage_error(room: ChatRoom) -> None:
    (alice,) = join(room, 1001)
    alice.say("/nick")
    assert alice.received() == ["error: usage: /nick NAME"]


def test_who_lists_everyone_on_one_line(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say("/nick alice")
    alice.received()
    bob.say("/who")
    assert bob.received() == [
        "* 127.0.0.1:1001 is now known as alice",
        "* online: 127.0.0.1:1002, alice",
    ]


def test_me_sends_an_action_to_the_others(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say("/me waves")
    assert bob.received() == ["* 127.0.0.1:1001 waves"]
    assert alice.received() == []


def test_msg_reaches_only_the_named_member(room: ChatRoom) -> None:
    alice, bob, carol = join(room, 1001, 1002, 1003)
    bob.say("/nick bob")
    for client in (alice, bob, carol):
        client.received()
    alice.say("/msg bob psst, a secret")
    assert bob.received() == ["[private] 127.0.0.1:1001: psst, a secret"]
    assert carol.received() == []
    assert alice.received() == []


def test_msg_to_unknown_name_gets_an_error(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say("/msg nobody hello")
    (reply,) = alice.received()
    assert reply.startswith("error: ") and "nobody" in reply
    assert bob.received() == []


def test_msg_without_text_gets_usage_error(room: ChatRoom) -> None:
    (alice,) = join(room, 1001)
    alice.say("/msg 127.0.0.1:1001")
    assert alice.received() == ["error: usage: /msg NAME TEXT"]


def test_help_lists_the_commands(room: ChatRoom) -> None:
    (alice,) = join(room, 1001)
    alice.say("/help")
    (reply,) = alice.received()
    for command in ("/nick", "/who", "/me", "/msg", "/quit", "/help"):
        assert command in reply


def test_unknown_command_gets_an_error(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say("/dance now")
    (reply,) = alice.received()
    assert reply.startswith("error: ") and "/dance" in reply
    assert bob.received() == []


def test_quit_says_goodbye_closes_and_tells_the_others_once(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say("/quit")
    assert alice.received() == ["* goodbye"]
    assert alice.transport.closed
    assert bob.received() == ["* 127.0.0.1:1001 left"]
    alice.disconnect()
    assert bob.received() == []
    assert len(room) == 1


def test_lines_after_quit_are_neither_delivered_nor_sent_on(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say(b"/quit\nstill talking\n")
    bob.received()
    bob.say("anyone?")
    assert alice.received() == ["* goodbye"]
    assert bob.received() == []


def test_connection_lost_tells_the_others_once(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.transport.lose(ConnectionResetError())
    assert bob.received() == ["* 127.0.0.1:1001 left"]
    alice.transport.lose()
    assert bob.received() == []
    assert room.names() == ["127.0.0.1:1002"]


def test_leave_of_a_member_that_never_joined_is_silent(room: ChatRoom) -> None:
    (alice,) = join(room, 1001)
    room.leave(room.protocol_factory())
    assert alice.received() == []


def test_final_unterminated_line_at_eof_is_sent_on(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say(b"bye all")
    assert feed_eof(alice.protocol, alice.transport) is False
    assert bob.received() == ["127.0.0.1:1001: bye all"]


def test_ansi_escape_never_reaches_another_client(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say("\x1b[31mred\x1b[0m \x9b2J\x07\x7f\u202eevil\ttab")
    (line,) = bob.received()
    assert line == "127.0.0.1:1001: [31mred[0m 2Jevil tab"
    assert all(char.isprintable() for char in line)


def test_control_characters_are_stripped_from_me_and_msg(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say("/me \x1b]0;pwned\x07waves")
    alice.say("/msg 127.0.0.1:1002 \x1b[2Jhi")
    assert bob.received() == ["* 127.0.0.1:1001 ]0;pwnedwaves", "[private] 127.0.0.1:1001: [2Jhi"]


def test_invalid_utf8_is_replaced_before_broadcast(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say(b"caf\xe9 \xff\n")
    assert bob.received() == ["127.0.0.1:1001: caf\ufffd \ufffd"]


def test_sanitize_keeps_printable_text_unchanged() -> None:
    text = "plain 张三 straße ☃"
    assert sanitize(text) is text


def test_overlong_line_gets_error_and_closes_that_client(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    alice.say(b"x" * (MAX_LINE_BYTES + 1) + b"\n")
    assert alice.received() == [f"error: line too long (max {MAX_LINE_BYTES} bytes); closing the connection"]
    assert alice.transport.closed
    assert bob.received() == ["* 127.0.0.1:1001 left"]
    bob.say("still there?")
    assert alice.received() == []


def test_partial_overlong_line_closes_that_client(room: ChatRoom) -> None:
    alice, bob = join(room, 1001, 1002)
    feed(alice.protocol, alice.transport, b"x" * (MAX_LINE_BYTES * 2), chunk_size=512)
    assert alice.transport.closed
    assert bob.received() == ["* 127.0.0.1:1001 left"]


def test_slow_consumer_past_the_cap_is_aborted_and_the_room_told() -> None:
    room = ChatRoom(max_pending_bytes=100)
    alice, bob, slow = join(room, 1001, 1002, 1003)
    slow.transport.peer_reading = False
    message = "m" * 30  # 47 bytes as a line: two fit under the cap, a third does not
    for _ in range(2):
        alice.say(message)
    assert not slow.transport.aborted
    alice.say(message)
    assert slow.transport.aborted
    assert slow.transport.get_write_buffer_size() == 0
    assert bob.received() == [f"127.0.0.1:1001: {message}"] * 3 + [
        "* 127.0.0.1:1003 was disconnected: too slow to read"
    ]
    assert alice.received() == ["* 127.0.0.1:1003 was disconnected: too slow to read"]
    alice.say("after")
    assert bob.received() == ["127.0.0.1:1001: after"]
    slow.transport.clear()
    slow.disconnect()
    assert slow.transport.written == b""
    assert bob.received() == []
    assert room.names() == ["127.0.0.1:1001", "127.0.0.1:1002"]


def test_two_slow_consumers_are_both_dropped_without_stalling_the_room() -> None:
    room = ChatRoom(max_pending_bytes=100)
    alice, bob, slow1, slow2 = join(room, 1001, 1002, 1003, 1004)
    slow1.transport.peer_reading = False
    slow2.transport.peer_reading = False
    for _ in range(2):
        alice.say("m" * 40)  # 57 bytes as a line: the second one passes the cap
    assert slow1.transport.aborted and slow2.transport.aborted
    assert bob.received()[-2:] == [
        "* 127.0.0.1:1003 was disconnected: too slow to read",
        "* 127.0.0.1:1004 was disconnected: too slow to read",
    ]
    assert len(room) == 2


def test_member_that_never_reads_is_paused_by_back_pressure_then_dropped_at_the_cap() -> None:
    room = ChatRoom(max_pending_bytes=4096)
    alice, bob = join(room, 1001, 1002)
    alice.transport.peer_reading = False
    alice.transport.set_write_buffer_limits(high=1024)
    for _ in range(100):
        feed(alice.protocol, alice.transport, b"/help\n")
    assert not alice.transport.is_reading()
    assert not alice.transport.aborted
    for _ in range(100):
        bob.say("x" * 100)
    assert alice.transport.aborted
    assert bob.received() == ["* 127.0.0.1:1001 was disconnected: too slow to read"]


def test_member_with_an_empty_queue_takes_a_line_longer_than_the_cap() -> None:
    room = ChatRoom(max_pending_bytes=10)
    alice, bob = join(room, 1001, 1002)
    alice.say("a line much longer than ten bytes")
    assert bob.received() == ["127.0.0.1:1001: a line much longer than ten bytes"]
    assert not bob.transport.aborted


def test_same_peer_name_twice_gets_a_unique_name(room: ChatRoom) -> None:
    first, second = Client(room, 1001), Client(room, 1001)
    assert first.protocol.name == "127.0.0.1:1001"
    assert second.protocol.name == "127.0.0.1:1001#2"


class DeferredBus(RoomBus):
    """A bus that answers only when the test says: the room as a slow Redis would see it."""

    def __init__(self) -> None:
        self.waiting: list[Callable[[], object]] = []

    def claim(self, name: str, old: str, on_claimed: Callable[[], object],
              on_taken: Callable[[], object], on_failed: Callable[[str], object]) -> None:
        self.waiting.append(on_claimed if name != "taken" else on_taken)

    def who(self, on_names: Callable[[list[str]], object],
            on_failed: Callable[[str], object]) -> None:
        self.waiting.append(lambda: on_names(["far:1", "127.0.0.1:1001"]))

    def answer(self) -> None:
        self.waiting.pop(0)()


def test_a_member_s_lines_wait_in_order_while_the_bus_answers_its_command() -> None:
    bus = DeferredBus()
    room = ChatRoom(bus=bus)
    alice, bob = join(room, 1001, 1002)
    alice.say("/nick alice\nsaid after the nick\n/who\nlast\n")
    assert bob.received() == []  # all held behind the claim
    assert not alice.transport.is_reading()  # and no more is read meanwhile
    bob.say("bob is not held")
    assert alice.received() == ["127.0.0.1:1002: bob is not held"]
    bus.answer()  # the claim: the rename, the held line, then the /who waits in turn
    assert alice.received() == ["* you are now known as alice"]
    assert bob.received() == ["* 127.0.0.1:1001 is now known as alice",
                              "alice: said after the nick"]
    bus.answer()  # the /who: the bus's names in room order, then this server's not among them
    assert alice.received() == ["* online: far:1, 127.0.0.1:1001, 127.0.0.1:1002, alice"]
    assert bob.received() == ["alice: last"]
    assert alice.transport.is_reading()


def test_a_name_the_bus_refuses_is_an_error_and_the_name_stays() -> None:
    bus = DeferredBus()
    room = ChatRoom(bus=bus)
    alice, bob = join(room, 1001, 1002)
    alice.say("/nick taken\n")
    bus.answer()
    assert alice.received() == ["error: name taken is taken"]
    assert bob.received() == []
    assert room.names() == ["127.0.0.1:1001", "127.0.0.1:1002"]


# -- a room that batches its writes (ChatRoom.batch_writes, as examples/chat_server.py runs it) --


class LoopPass:
    """The loop's ``call_soon`` for a batching room: what it schedules runs at ``end()``."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)

    def end(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()


def batching_room() -> tuple[ChatRoom, LoopPass]:
    room, loop = ChatRoom(), LoopPass()
    room.batch_writes(loop.call_soon)
    return room, loop


def test_a_batching_room_writes_each_member_once_per_pass() -> None:
    room, loop = batching_room()
    alice, bob, carol = (Client(room, port) for port in (1001, 1002, 1003))
    loop.end()
    assert [len(client.received()) for client in (alice, bob, carol)] == [3, 2, 1]
    alice.say("one")
    bob.say("two")
    assert carol.transport.writes == []  # held until the pass ends
    loop.end()
    assert carol.transport.writes == [b"127.0.0.1:1001: one\n127.0.0.1:1002: two\n"]
    assert alice.received() == ["127.0.0.1:1002: two"]
    assert loop.callbacks == []  # nothing held, nothing scheduled


def test_a_batching_room_writes_held_lines_before_goodbye_and_close() -> None:
    room, loop = batching_room()
    alice, bob = (Client(room, port) for port in (1001, 1002))
    loop.end()
    alice.received()
    bob.say("still there?")
    alice.say("/quit")
    assert alice.transport.closed
    assert alice.received() == ["127.0.0.1:1002: still there?", "* goodbye"]


def test_a_batching_room_writes_early_once_a_member_s_held_lines_reach_the_limit() -> None:
    room, loop = batching_room()
    alice, bob = (Client(room, port) for port in (1001, 1002))
    loop.end()
    bob.received()
    line = "x" * (MAX_LINE_BYTES - 20)
    for _ in range(MAX_HELD_BYTES // MAX_LINE_BYTES + 1):
        alice.say(line)
    assert len(bob.transport.writes) == 1 and len(bob.transport.written) >= MAX_HELD_BYTES
    alice.say("last")
    loop.end()
    assert bob.received()[-1] == "127.0.0.1:1001: last"
    assert not bob.transport.aborted


def test_a_batching_room_writes_held_lines_before_an_eof_closes() -> None:
    room, loop = batching_room()
    alice, bob = (Client(room, port) for port in (1001, 1002))
    loop.end()
    alice.received()
    bob.say("bye then")
    alice.say(b"/who")  # an unterminated last line, then the peer's FIN
    feed_eof(alice.protocol, alice.transport)
    assert alice.received() == ["127.0.0.1:1002: bye then",
                                "* online: 127.0.0.1:1001, 127.0.0.1:1002"]

"""The chat server, end to end: ``python -m examples.chat_server`` and raw socket clients.

The wire contract is the one in ``protocols/chat.py``'s docstring. Absence is never checked by
waiting: to show that a client was *not* sent a line, the test sends that client a command and
checks that the reply is the very next line it reads (the server writes to one connection in
order, so anything sent to it earlier would have arrived first).
"""

from __future__ import annotations

import select
import socket
import time

import pytest

from tests.processes import Client, Launcher, ServerProcess, TIMEOUT

WELCOME = "* welcome, you are {}; /help lists commands"




@pytest.fixture
def server(launch: Launcher) -> ServerProcess:
    return launch.server("chat_server")


def join(server: ServerProcess, *present: Client) -> Client:
    """Connect a new member; check its welcome and the join notice every present member gets."""
    client = server.connect()
    assert client.line() == WELCOME.format(client.name)
    for member in present:
        assert member.line() == f"* {client.name} joined"
    return client


def room_of_three(server: ServerProcess) -> tuple[Client, Client, Client]:
    alice = join(server)
    bob = join(server, alice)
    carol = join(server, alice, bob)
    return alice, bob, carol


def nothing_pending(*clients: Client) -> None:
    """Each client's next line is the reply to its own ``/help``: nothing was queued before it."""
    for client in clients:
        client.send_line("/help")
        assert client.line().startswith("* commands:")


def rename(client: Client, name: str, *others: Client) -> None:
    old = client.name
    client.send_line(f"/nick {name}")
    assert client.line() == f"* you are now known as {name}"
    for other in others:
        assert other.line() == f"* {old} is now known as {name}"
    client.name = name


def test_newcomer_is_welcomed_by_its_own_address_and_the_others_hear_it_joined(
        server: ServerProcess) -> None:
    alice = join(server)
    bob = join(server, alice)
    assert alice.name == f"127.0.0.1:{alice.sock.getsockname()[1]}"
    assert bob.name == f"127.0.0.1:{bob.sock.getsockname()[1]}"
    nothing_pending(bob)  # a newcomer is not told that it joined, only welcomed
    server.stop_cleanly()


def test_plain_line_reaches_every_other_member_as_name_colon_text_and_not_the_sender(
        server: ServerProcess) -> None:
    alice, bob, carol = room_of_three(server)
    alice.send_line("hello, room")
    assert bob.line() == f"{alice.name}: hello, room"
    assert carol.line() == f"{alice.name}: hello, room"
    bob.send(b"crlf works\r\n")
    assert alice.line() == f"{bob.name}: crlf works"
    assert carol.line() == f"{bob.name}: crlf works"
    nothing_pending(alice, bob, carol)  # no copy to the senders
    server.stop_cleanly()


def test_utf8_text_and_names_pass_through(server: ServerProcess) -> None:
    alice, bob, carol = room_of_three(server)
    rename(alice, "张三", bob, carol)
    alice.send_line("你好 straße")
    assert bob.line() == "张三: 你好 straße"
    assert carol.line() == "张三: 你好 straße"
    server.stop_cleanly()


def test_nick_renames_and_tells_everyone_else(server: ServerProcess) -> None:
    alice, bob, carol = room_of_three(server)
    rename(alice, "alice", bob, carol)
    alice.send_line("I have a name")
    assert bob.line() == "alice: I have a name"
    assert carol.line() == "alice: I have a name"
    server.stop_cleanly()


def test_nick_that_is_taken_is_refused_and_the_name_stays(server: ServerProcess) -> None:
    alice, bob, carol = room_of_three(server)
    rename(alice, "alice", bob, carol)
    bob.send_line("/nick alice")
    assert bob.line() == "error: name alice is taken"
    bob.send_line("still me")
    assert alice.line() == f"{bob.name}: still me"
    assert carol.line() == f"{bob.name}: still me"
    nothing_pending(alice, carol)  # no rename notice went out
    server.stop_cleanly()


@pytest.mark.parametrize("bad_name", [
    "two words", "tab\there", "bell\x07", "esc\x1b[31m", "del\x7f", "colon:name", "x" * 33,
], ids=["space", "tab", "bell", "escape", "delete", "colon", "too-long"])
def test_invalid_nick_is_refused_with_an_error_and_the_connection_stays(
        server: ServerProcess, bad_name: str) -> None:
    alice, bob, carol = room_of_three(server)
    alice.send_line(f"/nick {bad_name}")
    error = alice.line()
    assert error.startswith("error: invalid name"), error
    alice.send_line("/who")
    assert alice.line() == f"* online: {alice.name}, {bob.name}, {carol.name}"
    nothing_pending(bob, carol)
    server.stop_cleanly()


def test_who_lists_every_member(server: ServerProcess) -> None:
    alice, bob, carol = room_of_three(server)
    bob.send_line("/who")
    assert bob.line() == f"* online: {alice.name}, {bob.name}, {carol.name}"
    server.stop_cleanly()


def test_me_is_an_action_line_for_the_others(server: ServerProcess) -> None:
    alice, bob, carol = room_of_three(server)
    rename(alice, "alice", bob, carol)
    alice.send_line("/me waves")
    assert bob.line() == "* alice waves"
    assert carol.line() == "* alice waves"
    nothing_pending(alice)
    server.stop_cleanly()


def test_msg_to_a_known_name_reaches_only_that_member(server: ServerProcess) -> None:
    alice, bob, carol = room_of_three(server)
    rename(bob, "bob", alice, carol)
    alice.send_line("/msg bob just between us")
    assert bob.line() == f"[private] {alice.name}: just between us"
    nothing_pending(carol, alice)  # carol got nothing; alice got no copy
    server.stop_cleanly()


def test_msg_to_an_unknown_name_is_an_error(server: ServerProcess) -> None:
    alice, bob, carol = room_of_three(server)
    alice.send_line("/msg nobody hello?")
    assert alice.line() == "error: no such name: nobody"
    nothing_pending(bob, carol)
    server.stop_cleanly()


def test_help_lists_the_commands(server: ServerProcess) -> None:
    alice = join(server)
    alice.send_line("/help")
    text = alice.line()
    assert text.startswith("* commands:")
    for command in ("/nick", "/who", "/me", "/msg", "/quit", "/help"):
        assert command in text
    server.stop_cleanly()


def test_unknown_command_is_an_error_and_the_connection_stays(server: ServerProcess) -> None:
    alice, bob, _ = room_of_three(server)
    alice.send_line("/dance")
    assert alice.line().startswith("error: unknown command /dance")
    alice.send_line("ok")
    assert bob.line() == f"{alice.name}: ok"
    server.stop_cleanly()


def test_quit_says_goodbye_then_closes_and_the_others_hear_it_left(
        server: ServerProcess) -> None:
    alice, bob, carol = room_of_three(server)
    alice.send_line("/quit")
    assert alice.line() == "* goodbye"
    alice.expect_eof()
    assert bob.line() == f"* {alice.name} left"
    assert carol.line() == f"* {alice.name} left"
    bob.send_line("/who")
    assert bob.line() == f"* online: {bob.name}, {carol.name}"
    server.stop_cleanly()


def test_member_that_disconnects_is_announced_as_left(server: ServerProcess) -> None:
    alice, bob, carol = room_of_three(server)
    alice.close()
    assert bob.line() == f"* {alice.name} left"
    assert carol.line() == f"* {alice.name} left"
    server.stop_cleanly()


def test_ansi_escape_from_one_member_reaches_the_others_without_the_escape_byte(
        server: ServerProcess) -> None:
    alice, bob, carol = room_of_three(server)
    alice.send(b"\x1b[31mred\x1b[0m\n")
    line = bob.read_line()
    assert b"\x1b" not in line
    assert line == f"{alice.name}: [31mred[0m\n".encode()
    assert carol.read_line() == line
    alice.send_line("/me \x1b]0;pwned\x07 blinks")
    assert bob.read_line() == f"* {alice.name} ]0;pwned blinks\n".encode()
    # C1 controls (U+009B is a one-character CSI) and bidi overrides are dropped too.
    alice.send_line("\u009b2Jcleared \u202eesrever\u202c")
    assert bob.read_line() == f"{alice.name}: 2Jcleared esrever\n".encode()
    server.stop_cleanly()


def test_invalid_utf8_reaches_the_others_with_replacement_characters(
        server: ServerProcess) -> None:
    alice, bob, carol = room_of_three(server)
    alice.send(b"caf\xe9 \xff\n")
    assert bob.line() == f"{alice.name}: caf\ufffd \ufffd"
    assert carol.line() == f"{alice.name}: caf\ufffd \ufffd"
    server.stop_cleanly()


def test_overlong_line_gets_an_error_and_closes_only_that_member(server: ServerProcess) -> None:
    alice, bob, carol = room_of_three(server)
    alice.send(b"z" * 10_000 + b"\n")
    error = alice.line()
    assert error.startswith("error: line too long"), error
    alice.expect_eof()
    assert bob.line() == f"* {alice.name} left"
    assert carol.line() == f"* {alice.name} left"
    bob.send_line("still here")
    assert carol.line() == f"{bob.name}: still here"
    server.stop_cleanly()


def test_member_that_never_reads_is_disconnected_as_too_slow_and_the_room_goes_on(
        server: ServerProcess) -> None:
    talker = join(server)
    # A small receive buffer, set before connecting, so fewer bytes sit in the kernel.
    slow_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow_sock.settimeout(TIMEOUT)
    slow_sock.connect(("127.0.0.1", server.port))
    slow = Client(slow_sock)
    server.clients.append(slow)
    assert slow.line() == WELCOME.format(slow.name)
    assert talker.line() == f"* {slow.name} joined"
    observer = join(server, talker, slow)  # slow reads nothing from here on
    rename(talker, "talker", observer)

    notice = f"* {slow.name} was disconnected: too slow to read"
    filler = "x" * 1000
    burst = 64  # lines in flight at most: the observer, which keeps reading, stays far below 1 MiB
    sent = received = 0
    seen_notice = False
    deadline = time.monotonic() + 20
    while not seen_notice:
        assert time.monotonic() < deadline, (
            f"no disconnect notice after {sent} lines of ~1 KiB ({sent // 1024} MiB)")
        talker.send("".join(f"{sent + i:08d} {filler}\n" for i in range(burst)).encode())
        sent += burst
        while received < sent:
            line = observer.line()
            if line == notice:
                seen_notice = True
                continue
            assert line == f"talker: {received:08d} {filler}", line[:40]
            received += 1
    assert sent * 1000 > 1024 * 1024, "the slow member was dropped before its queue passed 1 MiB"

    # The room goes on without it.
    talker.send_line("anyone still here?")
    assert observer.line() == "talker: anyone still here?"
    observer.send_line("/who")
    assert observer.line() == f"* online: {observer.name}, talker"
    # The slow member's connection is gone: what it finally reads ends in EOF or a reset.
    slow_sock.setblocking(False)
    deadline = time.monotonic() + TIMEOUT
    while True:
        assert time.monotonic() < deadline, "the slow member's connection is still open"
        select.select([slow_sock], [], [], max(0.0, deadline - time.monotonic()))
        try:
            if not slow_sock.recv(65536):
                break
        except BlockingIOError:
            continue
        except ConnectionResetError:
            break
    server.stop_cleanly()

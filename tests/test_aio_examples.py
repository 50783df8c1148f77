"""``examples/asyncio_chat.py``, an ordinary asyncio program, on our loop: end to end.

It runs as a user runs it, ``python -m reactor.aio examples/asyncio_chat.py --port 0``, and the
chat room's whole contract (``tests/test_examples_chat.py``, imported below) is checked against
it there, and again under plain ``python examples/asyncio_chat.py`` (asyncio's own loop) as the
control: the same file must behave the same on both (the control caught an ``ENOTCONN`` that
only asyncio's ``write_eof()`` raises). Then our own ``chat_client`` talks to it, ``--trace``
shows the reactor's passes for it, and SIGINT/SIGTERM and a port in use end it as every example
server ends.
"""

from __future__ import annotations

import re
import signal
import socket
import sys

import pytest

from tests.processes import Client, Launcher, ServerProcess, ipv6_loopback_available
from tests.test_examples_chat import join, nothing_pending, rename, room_of_three
# The chat room's contract, run here against this module's ``server`` fixture: the asyncio
# program on our loop.
from tests.test_examples_chat import (  # noqa: F401
    test_ansi_escape_from_one_member_reaches_the_others_without_the_escape_byte,
    test_help_lists_the_commands,
    test_invalid_nick_is_refused_with_an_error_and_the_connection_stays,
    test_invalid_utf8_reaches_the_others_with_replacement_characters,
    test_me_is_an_action_line_for_the_others,
    test_member_that_disconnects_is_announced_as_left,
    test_member_that_never_reads_is_disconnected_as_too_slow_and_the_room_goes_on,
    test_msg_to_a_known_name_reaches_only_that_member,
    test_msg_to_an_unknown_name_is_an_error,
    test_newcomer_is_welcomed_by_its_own_address_and_the_others_hear_it_joined,
    test_nick_renames_and_tells_everyone_else,
    test_nick_that_is_taken_is_refused_and_the_name_stays,
    test_overlong_line_gets_an_error_and_closes_only_that_member,
    test_plain_line_reaches_every_other_member_as_name_colon_text_and_not_the_sender,
    test_quit_says_goodbye_then_closes_and_the_others_hear_it_left,
    test_unknown_command_is_an_error_and_the_connection_stays,
    test_utf8_text_and_names_pass_through,
    test_who_lists_every_member,
)
from tests.test_examples_clients import start_chat_client

PROGRAM = "asyncio_chat"
SCRIPT = "examples/asyncio_chat.py"
SHUTDOWN_NOTICE = "* the server is shutting down; goodbye"
RUNNERS = {
    "our-loop": [sys.executable, "-m", "reactor.aio", SCRIPT],
    "asyncio-loop": [sys.executable, SCRIPT],
}


@pytest.fixture(params=list(RUNNERS))
def server(launch: Launcher, request: pytest.FixtureRequest) -> ServerProcess:
    """The asyncio chat, on our loop and on asyncio's."""
    return launch.server(PROGRAM, runner=RUNNERS[request.param])


def test_two_members_chat_ask_who_send_private_and_leave(server: ServerProcess) -> None:
    alice = join(server)
    bob = join(server, alice)
    rename(alice, "alice", bob)
    alice.send_line("hello bob")
    assert bob.line() == "alice: hello bob"
    bob.send_line("/who")
    assert bob.line() == f"* online: {bob.name}, alice"
    bob.send_line("/msg alice psst")
    assert alice.line() == f"[private] {bob.name}: psst"
    bob.send_line("/me waves")
    assert alice.line() == f"* {bob.name} waves"
    bob.send_line("/quit")
    assert bob.line() == "* goodbye"
    bob.expect_eof()
    assert alice.line() == f"* {bob.name} left"
    alice.send_line("/who")
    assert alice.line() == "* online: alice"
    server.stop_cleanly()


def test_our_chat_client_talks_to_it_and_hears_the_shutdown(
        launch: Launcher, server: ServerProcess) -> None:
    member = join(server)
    typist, name = start_chat_client(launch, server)
    assert member.line() == f"* {name} joined"
    typist.type("hello from chat_client, 你好\n")
    assert member.line() == f"{name}: hello from chat_client, 你好"
    member.send_line("hi back")
    assert typist.stdout.line() == f"{member.name}: hi back"

    status = server.stop(signal.SIGTERM)
    assert status == 0, server.stderr()
    assert member.line() == SHUTDOWN_NOTICE
    member.expect_eof()
    assert typist.stdout.line() == SHUTDOWN_NOTICE
    assert typist.wait() == 0  # the server closed the connection: the client's normal end
    typist.assert_no_traceback()
    server.assert_no_traceback()


def test_trace_shows_the_reactor_passes_and_syscalls_for_the_asyncio_program(
        launch: Launcher) -> None:
    server = launch.server(PROGRAM, runner=[sys.executable, "-m", "reactor.aio", "--trace",
                                            SCRIPT])
    member = join(server)
    member.send_line("/who")  # 5 bytes in, one reply out
    reply = f"* online: {member.name}\n"
    assert member.read_line() == reply.encode()
    server.stop_cleanly()

    trace = server.stderr()
    # PassTracer's block header, and the events of our connection under its own label.
    # The header of a pass that runs its waiting callbacks first (asyncio's order), and the
    # line that then says how long its select() may wait.
    assert re.search(r"reactor\.trace: pass \d+: the ready callbacks first, then select\(\) "
                     r"\(asyncio's order\)", trace), trace[-3000:]
    assert re.search(r"^  select\(\) with (no time limit|at most [\d.]+s): ", trace,
                     re.M), trace[-3000:]
    connection = rf"fd=\d+ {re.escape(member.name)}"
    for event in (r"connection_made", r"recv  bytes=5  \[recv buffer 5 B, send buffer \d+ B\]",
                  rf"send  bytes={len(reply)}  \[recv buffer", r"connection_lost"):
        assert re.search(rf"^  {connection}  {event}", trace, re.M), (event, trace[-3000:])
    assert re.search(r"^  wakeup: signal SIGTERM$", trace, re.M), trace[-3000:]


def test_sigint_tells_every_member_then_exits_0(server: ServerProcess) -> None:
    alice = join(server)
    bob = join(server, alice)
    nothing_pending(alice, bob)
    status = server.stop(signal.SIGINT)
    assert status == 0, server.stderr()
    for member in (alice, bob):
        assert member.line() == SHUTDOWN_NOTICE
        member.expect_eof()
    server.assert_no_traceback()


@pytest.mark.parametrize("loop", list(RUNNERS))
def test_port_in_use_is_one_stderr_line_and_exit_status_2(launch: Launcher, loop: str) -> None:
    taken = launch.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    server = launch.start_server(PROGRAM, "--port", str(port), runner=RUNNERS[loop])
    assert server.wait() == 2
    assert server.stdout.read_until_eof() == b""
    lines = server.stderr().splitlines()
    assert lines == [f"{PROGRAM}: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_a_member_that_resets_is_announced_as_left_and_the_room_goes_on(
        server: ServerProcess) -> None:
    alice, bob, carol = room_of_three(server)
    alice.send(b"half a li")  # then RST, mid-line
    alice.reset()
    assert bob.line() == f"* {alice.name} left"
    assert carol.line() == f"* {alice.name} left"
    bob.send_line("still here")
    assert carol.line() == f"{bob.name}: still here"
    server.stop_cleanly()


def test_a_last_line_without_newline_is_delivered_at_the_members_eof(
        server: ServerProcess) -> None:
    alice = join(server)
    bob = join(server, alice)
    alice.send(b"no newline")
    alice.shutdown_write()
    assert bob.line() == f"{alice.name}: no newline"
    assert bob.line() == f"* {alice.name} left"
    alice.expect_eof()
    server.stop_cleanly()


def test_ipv6_members_are_named_with_brackets(launch: Launcher) -> None:
    if not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback here")
    server = launch.server(PROGRAM, "--host", "::1", runner=RUNNERS["our-loop"])
    assert server.address.startswith("[::1]:")
    client = Client(socket.create_connection(("::1", server.port), timeout=5))
    server.clients.append(client)
    assert client.line() == f"* welcome, you are {client.name}; /help lists commands"
    assert client.name.startswith("[::1]:")
    server.stop_cleanly()

"""One chat room across servers through Redis: real ``redis-server``, real ``chat_server``
processes started as a user starts them (``--redis URL``), raw socket clients on each.

As in ``tests/test_examples_chat.py``, absence is never checked by waiting: a client's reply to
its own ``/help`` being its very next line shows that nothing else was sent to it before.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.processes import Client, Launcher, ServerProcess
from tests.redis_process import RedisServer, free_port
from tests.test_examples_chat import nothing_pending, rename
from tests.test_workers import MAX_PROBES, owner_of, server_side_inode, wait_for_workers

WELCOME = "* welcome, you are {}; /help lists commands"
CUT_OFF = "* the room is cut off from the other servers; reconnecting"
RECONNECTED = "* the room is connected to the other servers again"
CONNECTED = "* the room is connected to the other servers"
#: Short enough that a killed server's names come free within a couple of seconds.
QUICK_EXPIRY = "1"
#: A Redis restart is noticed at once (the links are reset); coming back takes a backoff delay.
RECOVERY_TIMEOUT = 10.0


def start(launch: Launcher, redis_server: RedisServer, *extra: str) -> ServerProcess:
    return launch.server("chat_server", "--redis", redis_server.url,
                         "--redis-expiry", QUICK_EXPIRY, *extra)


def join(server: ServerProcess, *present: Client) -> Client:
    """Connect a member; check its welcome and the join notice each present member gets (from
    its own server at once, from another through Redis)."""
    client = server.connect()
    assert client.line() == WELCOME.format(client.name)
    for member in present:
        assert member.line() == f"* {client.name} joined"
    return client


@pytest.fixture
def pair(launch: Launcher, redis_server: RedisServer) -> tuple[ServerProcess, ServerProcess]:
    return start(launch, redis_server), start(launch, redis_server)


def test_lines_actions_joins_renames_and_leaves_reach_every_server_formatted_as_today(
        pair: tuple[ServerProcess, ServerProcess]) -> None:
    one, two = pair
    alice = join(one)
    bob = join(two, alice)
    carol = join(one, alice, bob)
    alice.send_line("hello, room")
    assert bob.line() == f"{alice.name}: hello, room"
    assert carol.line() == f"{alice.name}: hello, room"
    rename(bob, "bob", alice, carol)
    bob.send_line("/me waves")
    assert alice.line() == "* bob waves"
    assert carol.line() == "* bob waves"
    bob.send(b"\x1b[31mno escapes\r\n")
    assert alice.line() == "bob: [31mno escapes"
    assert carol.line() == "bob: [31mno escapes"
    nothing_pending(alice, bob, carol)  # no copies to the senders, nothing doubled
    carol.send_line("/quit")
    assert carol.line() == "* goodbye"
    carol.expect_eof()
    assert alice.line() == f"* {carol.name} left"
    assert bob.line() == f"* {carol.name} left"
    bob.close()
    assert alice.line() == "* bob left"
    one.stop_cleanly()
    two.stop_cleanly()


def test_who_lists_every_member_on_every_server_and_msg_reaches_a_name_anywhere(
        pair: tuple[ServerProcess, ServerProcess]) -> None:
    one, two = pair
    alice = join(one)
    bob = join(two, alice)
    carol = join(one, alice, bob)
    rename(bob, "bob", alice, carol)
    for client in (alice, bob, carol):
        client.send_line("/who")
        assert client.line() == f"* online: {alice.name}, {carol.name}, bob"
    alice.send_line("/msg bob only for you")
    assert bob.line() == f"[private] {alice.name}: only for you"
    bob.send_line(f"/msg {carol.name} and back")
    assert carol.line() == "[private] bob: and back"
    alice.send_line("/msg nobody hello?")
    assert alice.line() == "error: no such name: nobody"
    nothing_pending(alice, bob, carol)
    one.stop_cleanly()
    two.stop_cleanly()


def test_a_name_is_unique_across_servers_even_when_two_ask_for_it_at_once(
        pair: tuple[ServerProcess, ServerProcess]) -> None:
    one, two = pair
    alice = join(one)
    bob = join(two, alice)
    rename(alice, "alice", bob)
    bob.send_line("/nick alice")
    assert bob.line() == "error: name alice is taken"
    for attempt in range(5):  # both at once, several times: Redis says yes to exactly one
        name = f"zed{attempt}"
        alice.send_line(f"/nick {name}")
        bob.send_line(f"/nick {name}")
        success = f"* you are now known as {name}"
        first = {alice: alice.line(), bob: bob.line()}
        winners = [client for client, line in first.items() if line == success]
        assert len(winners) == 1, first
        winner = winners[0]
        loser = bob if winner is alice else alice
        # The loser is refused, and hears of the winner's rename (in either order).
        assert {first[loser], loser.line()} == {
            f"error: name {name} is taken", f"* {winner.name} is now known as {name}"}
        winner.name = name
        nothing_pending(alice, bob)
        loser.send_line("/who")
        assert loser.line() == f"* online: {loser.name}, {name}"  # room order: renamed last
    one.stop_cleanly()
    two.stop_cleanly()


def test_a_server_killed_with_sigkill_has_its_names_freed_within_the_expiry(
        pair: tuple[ServerProcess, ServerProcess]) -> None:
    one, two = pair
    alice = join(one)
    bob = join(two, alice)
    rename(bob, "bob", alice)
    two.send_signal(signal.SIGKILL)
    assert two.wait() == -signal.SIGKILL
    killed_at = time.monotonic()
    assert alice.line(timeout=10) == "* bob was disconnected: their server stopped answering"
    assert time.monotonic() - killed_at < 5  # expiry 1 s, reaped by the next heartbeat
    alice.send_line("/who")
    assert alice.line() == f"* online: {alice.name}"
    rename(alice, "bob")  # the name is free again
    nothing_pending(alice)
    one.stop_cleanly()


def test_redis_killed_and_restarted_mid_conversation_is_one_notice_each_way_and_claims_return(
        pair: tuple[ServerProcess, ServerProcess], redis_server: RedisServer) -> None:
    one, two = pair
    alice = join(one)
    bob = join(two, alice)
    carol = join(one, alice, bob)
    rename(bob, "bob", alice, carol)
    redis_server.kill()
    for client in (alice, bob, carol):
        assert client.line() == CUT_OFF
    # Local delivery goes on while the room is cut off; nothing crosses.
    alice.send_line("only server one hears this")
    assert carol.line() == f"{alice.name}: only server one hears this"
    bob.send_line("/who")
    assert bob.line() == "* online: bob (only this server: cut off from the other servers)"
    bob.send_line(f"/msg {alice.name} hi")
    assert bob.line() == (f"error: no such name: {alice.name} here (the room is cut off from "
                          "the other servers)")
    redis_server.start()  # empty: no persistence. Every server claims its names again.
    for client in (alice, bob, carol):
        assert client.line(RECOVERY_TIMEOUT) == RECONNECTED
    nothing_pending(alice, bob, carol)  # exactly one notice each way
    alice.send_line("/nick bob")
    assert alice.line() == "error: name bob is taken"
    alice.send_line("back together")
    assert bob.line() == f"{alice.name}: back together"
    assert carol.line() == f"{alice.name}: back together"
    bob.send_line("/who")
    online = bob.line()
    assert sorted(online.removeprefix("* online: ").split(", ")) == sorted(
        [alice.name, "bob", carol.name])
    for server in (one, two):
        server.stop_cleanly()
        stderr = server.stderr()
        warnings = [line for line in stderr.splitlines() if " WARNING protocols." in line]
        assert len(warnings) == 1 and "was lost" in warnings[0], stderr


def test_a_name_taken_elsewhere_while_cut_off_goes_back_to_the_member_s_address(
        pair: tuple[ServerProcess, ServerProcess], redis_server: RedisServer) -> None:
    one, two = pair
    alice = join(one)
    bob = join(two, alice)
    redis_server.kill()
    assert alice.line() == CUT_OFF and bob.line() == CUT_OFF
    rename(alice, "zed")  # each server can only check its own members now
    rename(bob, "zed")
    redis_server.start()
    lines: dict[str, list[str]] = {"alice": [], "bob": []}
    for key, client in (("alice", alice), ("bob", bob)):
        while RECONNECTED not in lines[key]:
            lines[key].append(client.line(RECOVERY_TIMEOUT))
        # The loser's rename began before the notice: its /help is answered after it.
        client.send_line("/help")
        while not lines[key][-1].startswith("* commands:"):
            lines[key].append(client.line())
    seen = lines["alice"] + lines["bob"]
    lost = [line for line in seen if "was taken elsewhere in the room" in line]
    assert len(lost) == 1, seen  # whoever claimed first keeps it; the other is told
    loser = alice if lost[0] in lines["alice"] else bob
    address = loser.sock.getsockname()
    assert lost[0] == ("* the name zed was taken elsewhere in the room while this server was "
                       f"cut off; you are now known as {address[0]}:{address[1]}")
    loser.send_line("/who")
    assert sorted(loser.line().removeprefix("* online: ").split(", ")) == sorted(
        ["zed", f"{address[0]}:{address[1]}"])
    one.stop_cleanly()
    two.stop_cleanly()


def test_a_paused_redis_never_stalls_the_room_and_lines_past_the_cap_are_dropped_and_counted(
        launch: Launcher, redis_server: RedisServer) -> None:
    one = start(launch, redis_server, "--redis-max-pending", "16384")
    two = start(launch, redis_server)
    talker = join(one)
    listener = join(one, talker)
    remote = join(two, talker, listener)
    control = redis_server.control()
    pause_ms = 3000
    assert control.command("CLIENT", "PAUSE", pause_ms, "ALL") == "OK"
    paused_at = time.monotonic()
    lines = 200
    talker.send(b"".join(b"line %03d %s\n" % (number, b"x" * 200) for number in range(lines)))
    congested = "* the link to the other servers is congested: lines for them are being dropped"
    got = [listener.line() for _ in range(lines + 1)]  # every line, and the notice among them
    # All of it while Redis was still paused: local delivery never waited for Redis.
    assert time.monotonic() - paused_at < pause_ms / 1000
    assert got.count(congested) == 1
    got.remove(congested)
    assert got == [f"{talker.name}: line {number:03d} {'x' * 200}" for number in range(lines)]
    resumed = listener.line(timeout=10)
    assert resumed.startswith("* lines reach the other servers again (") and \
        resumed.endswith(" dropped)"), resumed
    dropped = int(resumed.split("(")[1].split()[0])
    assert 0 < dropped < lines
    for number in range(lines - dropped):  # the other server got the ones that fit, in order
        assert remote.line() == f"{talker.name}: line {number:03d} {'x' * 200}"
    nothing_pending(remote)
    talker.send_line("/stats")
    stats = talker.line()
    while not stats.startswith("* stats:"):
        stats = talker.line()
    assert f"redis_dropped={dropped}" in stats and "redis=up" in stats
    control.close()
    one.stop_cleanly()
    two.stop_cleanly()


def test_redis_unreachable_at_start_the_server_serves_locally_with_one_warning_then_joins(
        launch: Launcher) -> None:
    later = RedisServer()
    later.port = free_port()
    try:
        alone = launch.server("chat_server", "--redis", later.url, "--redis-expiry", "1")
        alice = join(alone)
        bob = join(alone, alice)
        alice.send_line("anyone?")
        assert bob.line() == f"{alice.name}: anyone?"
        alice.send_line("/stats")
        assert "redis=cut-off" in alice.line()
        later.start()
        for member in (alice, bob):  # after a backoff delay
            assert member.line(RECOVERY_TIMEOUT) == CONNECTED
        other = start(launch, later)
        carol = join(other, alice, bob)
        carol.send_line("across")
        assert alice.line() == f"{carol.name}: across"
        assert bob.line() == f"{carol.name}: across"
        alone.stop_cleanly()
        other.stop_cleanly()
        warnings = [line for line in alone.stderr().splitlines() if " WARNING protocols." in line]
        assert len(warnings) == 1 and "cannot connect" in warnings[0], alone.stderr()
    finally:
        later.close()


def test_workers_share_one_room_through_redis(launch: Launcher,
                                              redis_server: RedisServer) -> None:
    server = start(launch, redis_server, "--workers", "2")
    pids = wait_for_workers(server, 2)
    members: list[Client] = []
    owners: set[int] = set()
    for _ in range(MAX_PROBES):
        member = join(server, *members)
        members.append(member)
        inode = server_side_inode(server.port, member.sock.getsockname()[1])
        assert inode is not None
        owner = owner_of(inode, pids)
        assert owner in pids
        owners.add(owner)
        if len(owners) == 2 and len(members) >= 3:
            break
    assert owners == pids  # members on both workers
    members[0].send_line("one room")
    for member in members[1:]:
        assert member.line() == f"{members[0].name}: one room"
    members[-1].send_line("/who")
    assert members[-1].line() == "* online: " + ", ".join(member.name for member in members)
    server.stop_cleanly()
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids)

"""The RESP client on the reactor against a real redis-server: pipelining, pushes, logging in,
reconnection, and the bounds (pending bytes, reply size, reply and connect timeouts).

The reactor runs in the test's own process; the server is a real ``redis-server`` on loopback
(``tests/redis_process.py``), disturbed from a separate blocking connection or killed outright.
"""

from __future__ import annotations

import logging
import random
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from protocols.backoff import Backoff
from protocols.redis_client import (
    LinkState,
    RedisClient,
    RedisConnectionError,
    RedisQueueFull,
    RedisSubscriber,
)
from protocols.redis_url import RedisURL, RedisURLError
from protocols.resp import ReplyError
from reactor import Reactor
from tests.helpers import run_until
from tests.processes import REPO_ROOT
from tests.redis_process import RedisServer

#: Reconnect fast in tests; the jitter still applies.
QUICK = Backoff(base=0.02, cap=0.1)


@pytest.fixture
def loop() -> Iterator[Reactor]:
    reactor = Reactor(debug=True)
    yield reactor
    reactor.close()
    assert not reactor.contract_violations, reactor.contract_violations


class Recorder:
    """Collects replies and errors, with the order they came in."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def reply(self, tag: object = None) -> Any:
        return lambda value: self.events.append(("reply", value if tag is None else (tag, value)))

    def error(self, tag: object = None) -> Any:
        return lambda exc: self.events.append(("error", exc if tag is None else (tag, exc)))


def ready_client(loop: Reactor, url: str, **options: Any) -> RedisClient:
    client = RedisClient(loop, url, backoff=Backoff(base=0.02, cap=0.1), **options)
    client.start()
    run_until(loop, client.is_ready)
    return client


def test_a_thousand_pipelined_commands_each_get_their_own_reply_in_order(
        loop: Reactor, redis_server: RedisServer) -> None:
    client = ready_client(loop, redis_server.url)
    seen = Recorder()
    for number in range(1000):
        client.execute("SET", f"key{number}", number, on_reply=seen.reply(("set", number)))
        client.execute("GET", f"key{number}", on_reply=seen.reply(("get", number)))
    # All 2,000 are on the wire before the first reply is read: pipelined, not one by one.
    assert client.stats()["pending"] == 2000
    run_until(loop, lambda: len(seen.events) == 2000)
    expected: list[tuple[str, Any]] = []
    for number in range(1000):
        expected += [("reply", (("set", number), "OK")),
                     ("reply", (("get", number), str(number).encode()))]
    assert seen.events == expected
    assert client.pending_bytes == 0
    client.close()


def test_an_error_reply_goes_to_that_command_only_and_the_link_goes_on(
        loop: Reactor, redis_server: RedisServer) -> None:
    client = ready_client(loop, redis_server.url)
    seen = Recorder()
    client.execute("SET", "text", "abc", on_reply=seen.reply())
    client.execute("INCR", "text", on_reply=seen.reply(), on_error=seen.error())
    client.execute("GET", "text", on_reply=seen.reply())
    run_until(loop, lambda: len(seen.events) == 3)
    assert seen.events[0] == ("reply", "OK")
    kind, error = seen.events[1]
    assert kind == "error" and isinstance(error, ReplyError) and error.code == "ERR"
    assert seen.events[2] == ("reply", b"abc")
    assert client.is_ready()
    client.close()


def test_a_command_on_a_link_that_is_not_ready_fails_on_a_later_pass(loop: Reactor) -> None:
    client = RedisClient(loop, "redis://127.0.0.1:1")
    seen = Recorder()
    client.execute("PING", on_error=seen.error())
    assert seen.events == []  # never inside execute()
    loop.run_once(0)
    ((kind, error),) = seen.events
    assert kind == "error" and isinstance(error, RedisConnectionError)
    assert "not connected" in str(error)


def test_subscriber_gets_messages_and_pattern_messages_in_order(
        loop: Reactor, redis_server: RedisServer) -> None:
    messages: list[tuple[bytes, ...]] = []
    subscriber = RedisSubscriber(loop, redis_server.url,
                                 on_message=lambda *push: messages.append(push),
                                 on_pmessage=lambda *push: messages.append(push))
    subscriber.subscribe("news", "weather")
    subscriber.psubscribe("sport.*")
    subscriber.start()
    run_until(loop, subscriber.is_ready)
    publisher = ready_client(loop, redis_server.url)
    counts = Recorder()
    for channel, payload in [("news", b"one"), ("sport.tennis", b"ace"), ("weather", b"rain\r\n"),
                             ("elsewhere", b"unseen"), ("news", b"two")]:
        publisher.execute("PUBLISH", channel, payload, on_reply=counts.reply())
    run_until(loop, lambda: len(messages) == 4 and len(counts.events) == 5)
    assert messages == [(b"news", b"one"), (b"sport.*", b"sport.tennis", b"ace"),
                        (b"weather", b"rain\r\n"), (b"news", b"two")]
    assert [value for _, value in counts.events] == [1, 1, 1, 0, 1]
    subscriber.unsubscribe("news")
    # Two connections are not ordered with each other: wait for the confirmation first.
    run_until(loop, lambda: subscriber.stats()["pending"] == 0)
    publisher.execute("PUBLISH", "news", "three", on_reply=counts.reply())
    publisher.execute("PUBLISH", "weather", "sun", on_reply=counts.reply())
    run_until(loop, lambda: len(messages) == 5)
    assert messages[-1] == (b"weather", b"sun")
    assert counts.events[-2:] == [("reply", 0), ("reply", 1)]
    subscriber.close()
    publisher.close()


def test_after_redis_is_killed_and_restarted_pending_commands_fail_and_both_links_come_back(
        loop: Reactor, redis_server: RedisServer) -> None:
    downs: list[BaseException] = []
    readies: list[str] = []
    client = RedisClient(loop, redis_server.url, backoff=QUICK, on_down=downs.append,
                         on_ready=lambda: readies.append("client"))
    messages: list[tuple[bytes, bytes]] = []
    subscriber = RedisSubscriber(loop, redis_server.url, backoff=Backoff(0.02, 0.1),
                                 on_message=lambda *push: messages.append(push),
                                 on_ready=lambda: readies.append("subscriber"))
    subscriber.subscribe("room")
    client.start()
    subscriber.start()
    run_until(loop, lambda: client.is_ready() and subscriber.is_ready())
    seen = Recorder()
    control = redis_server.control()
    control.command("CLIENT", "PAUSE", 5000)  # so this command is surely pending at the kill
    client.execute("SET", "k", "v", on_reply=seen.reply(), on_error=seen.error())
    control.close()
    redis_server.kill()
    run_until(loop, lambda: seen.events and not client.is_ready() and not subscriber.is_ready())
    ((kind, error),) = seen.events
    assert kind == "error" and isinstance(error, RedisConnectionError)
    assert "lost" in str(error)
    assert downs and isinstance(downs[0], RedisConnectionError)
    run_until(loop, lambda: len(downs) >= 3)  # it keeps trying while nothing listens
    assert client.state in (LinkState.WAITING, LinkState.CONNECTING)
    redis_server.start()  # the same port
    run_until(loop, lambda: client.is_ready() and subscriber.is_ready())
    assert readies.count("client") == 2 and readies.count("subscriber") == 2
    client.execute("PUBLISH", "room", "after the restart", on_reply=seen.reply())
    run_until(loop, lambda: messages)
    assert messages == [(b"room", b"after the restart")]  # subscribed again by itself
    assert seen.events[-1] == ("reply", 1)
    client.close()
    subscriber.close()


def test_auth_with_requirepass_and_select_from_the_url() -> None:
    server = RedisServer("--requirepass", "s3cret@x").start()
    loop = Reactor(debug=True)
    try:
        client = ready_client(loop, f"redis://:s3cret%40x@127.0.0.1:{server.port}/3")
        seen = Recorder()
        client.execute("SET", "where", "db3", on_reply=seen.reply())
        run_until(loop, lambda: seen.events)
        control = server.control()
        assert control.command("AUTH", "s3cret@x") == "OK"
        assert control.command("SELECT", 3) == "OK"
        assert control.command("GET", "where") == b"db3"
        # An ACL user (Redis 6+): AUTH USER PASSWORD.
        assert control.command("ACL", "SETUSER", "ada", "on", ">pw", "~*", "&*", "+@all") == "OK"
        control.close()
        ada = ready_client(loop, f"redis://ada:pw@127.0.0.1:{server.port}")
        ada.execute("ACL", "WHOAMI", on_reply=seen.reply())
        run_until(loop, lambda: len(seen.events) == 2)
        assert seen.events[1] == ("reply", b"ada")
        client.close()
        ada.close()
    finally:
        loop.close()
        server.close()


def test_a_wrong_password_keeps_the_link_down_and_says_why(caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    server = RedisServer("--requirepass", "right").start()
    loop = Reactor(debug=True)
    downs: list[BaseException] = []
    try:
        client = RedisClient(loop, f"redis://:wrong@127.0.0.1:{server.port}", backoff=QUICK,
                             on_down=downs.append)
        with caplog.at_level(logging.DEBUG, logger="protocols.redis"):
            client.start()
            run_until(loop, lambda: len(downs) >= 3)
        assert not client.is_ready()
        assert "AUTH refused" in str(downs[0]) and "WRONGPASS" in str(downs[0])
        warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
        assert len(warnings) == 1, [record.getMessage() for record in warnings]
        client.close()
    finally:
        loop.close()
        server.close()


def test_unreachable_at_start_is_one_warning_then_it_connects_when_redis_appears(
        loop: Reactor, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        server.port = probe.getsockname()[1]
    client = RedisClient(loop, server.url, backoff=QUICK)
    try:
        with caplog.at_level(logging.INFO, logger="protocols.redis"):
            client.start()
            run_until(loop, lambda: client.connects == 0 and client.backoff.failures >= 4)
            server.start()
            run_until(loop, client.is_ready, timeout=10)
        warnings = [record.getMessage() for record in caplog.records
                    if record.levelno == logging.WARNING]
        assert len(warnings) == 1 and "cannot connect" in warnings[0], warnings
        assert any("is up again" in record.getMessage() for record in caplog.records)
    finally:
        client.close()
        server.close()


def test_past_max_pending_bytes_commands_are_refused_until_the_backlog_drains(
        loop: Reactor, redis_server: RedisServer) -> None:
    drained: list[bool] = []
    client = ready_client(loop, redis_server.url, max_pending_bytes=4096,
                          on_drained=lambda: drained.append(True))
    control = redis_server.control()
    assert control.command("CLIENT", "PAUSE", 300, "ALL") == "OK"
    seen = Recorder()
    for number in range(100):
        client.execute("PUBLISH", "channel", "x" * 100, on_reply=seen.reply(number),
                       on_error=seen.error(number))
    loop.run_once(0)
    refused = [tag for kind, (tag, value) in seen.events
               if kind == "error" and isinstance(value, RedisQueueFull)]
    accepted = 100 - len(refused)
    assert refused == list(range(accepted, 100)) and 20 < accepted < 40
    assert client.pending_bytes <= 4096 and client.refused == len(refused)
    run_until(loop, lambda: drained)  # Redis resumes, the replies come, the backlog drains
    run_until(loop, lambda: len(seen.events) == 100)
    assert [tag for kind, (tag, _) in seen.events if kind == "reply"] == list(range(accepted))
    control.close()
    client.close()


def test_a_reply_that_does_not_come_in_time_drops_the_link_and_it_is_made_again(
        loop: Reactor, redis_server: RedisServer) -> None:
    client = ready_client(loop, redis_server.url, reply_timeout=0.3)
    control = redis_server.control()
    assert control.command("CLIENT", "PAUSE", 1000, "ALL") == "OK"
    seen = Recorder()
    client.execute("GET", "k", on_error=seen.error())
    run_until(loop, lambda: seen.events)
    (_, error), = seen.events
    assert isinstance(error, RedisConnectionError) and "no reply within 0.3s" in str(error)
    run_until(loop, client.is_ready, timeout=5)
    assert client.connects == 2
    control.close()
    client.close()


def test_a_reply_over_the_budget_closes_the_link_and_fails_the_command(
        loop: Reactor, redis_server: RedisServer) -> None:
    control = redis_server.control()
    control.command("SET", "big", "z" * 5000)
    control.close()
    client = ready_client(loop, redis_server.url, max_reply_bytes=1000)
    seen = Recorder()
    client.execute("GET", "big", on_reply=seen.reply(), on_error=seen.error())
    run_until(loop, lambda: seen.events)
    (kind, error), = seen.events
    assert kind == "error" and isinstance(error, RedisConnectionError)
    assert "would take the reply past 1000 bytes" in str(error)
    run_until(loop, client.is_ready)  # a fresh link, and a small reply is fine
    client.execute("STRLEN", "big", on_reply=seen.reply())
    run_until(loop, lambda: len(seen.events) == 2)
    assert seen.events[1] == ("reply", 5000)
    client.close()


def test_a_connect_that_gets_no_answer_times_out(loop: Reactor) -> None:
    """A listener whose backlog is full: Linux drops further SYNs, so connect() hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    # listen(0) queues one connection on Linux; a second, connecting without waiting, stays
    # unanswered with it, and so does every SYN after them.
    fillers = [socket.create_connection(listener.getsockname(), timeout=1), socket.socket()]
    fillers[1].setblocking(False)
    fillers[1].connect_ex(listener.getsockname())
    downs: list[BaseException] = []
    port = listener.getsockname()[1]
    client = RedisClient(loop, f"redis://127.0.0.1:{port}", connect_timeout=0.2,
                         backoff=Backoff(5, 5), on_down=downs.append)
    try:
        client.start()
        run_until(loop, lambda: downs)
        assert isinstance(downs[0], TimeoutError) and "timed out after 0.2s" in str(downs[0])
    finally:
        client.close()
        for filler in fillers:
            filler.close()
        listener.close()


def test_backoff_doubles_up_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(base=0.1, cap=1.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    for attempt, delay in enumerate(delays):
        ceiling = min(1.0, 0.1 * 2 ** attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == 8  # jittered: no two alike
    backoff.reset()
    assert backoff.next_delay() <= 0.1


@pytest.mark.parametrize(("text", "expected"), [
    ("redis://localhost", RedisURL("localhost", 6379, 0)),
    ("redis://10.0.0.1:6380/2", RedisURL("10.0.0.1", 6380, 2)),
    ("redis://:p%40ss@h:1", RedisURL("h", 1, 0, None, "p@ss")),
    ("redis://ada:pw@[::1]:7000/15", RedisURL("::1", 7000, 15, "ada", "pw")),
])
def test_redis_urls_parse(text: str, expected: RedisURL) -> None:
    assert RedisURL.parse(text) == expected


def test_a_url_prints_without_its_password() -> None:
    assert str(RedisURL.parse("redis://ada:secret@[::1]:7000/1")) == "redis://ada:***@[::1]:7000/1"


@pytest.mark.parametrize(("text", "message"), [
    ("http://h", "expected redis://"), ("rediss://h", "TLS"), ("redis://h:99999", "port"),
    ("redis://h/x", "database is a number"), ("redis:///0", "no host"),
])
def test_bad_redis_urls_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(RedisURLError, match=message):
        RedisURL.parse(text)


def test_the_readme_example_runs_and_prints_what_the_readme_says(
        redis_server: RedisServer) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```\n\nprints\n\n((?:    [^\n]*\n)+)", readme,
                        re.DOTALL)
    (code, printed), = [block for block in blocks if "RedisClient" in block[0]]
    code = code.replace("redis://127.0.0.1:6379/0", f"{redis_server.url}/0")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(line[4:] + "\n" for line in printed.splitlines())

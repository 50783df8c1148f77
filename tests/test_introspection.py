"""Looking inside the loop between passes: ``snapshot()`` and ``step()``.

A snapshot is checked against what the test built (fds and their owners, timers, the ready queue,
every open transport's figures); ``step()`` against the events of the one pass it runs. Real
loopback sockets, the ``reactor`` fixture (every selector, debug mode), and a manual clock where
exact due times matter.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from protocols.echo import EchoProtocol
from protocols.udp import UdpEchoProtocol
from reactor import Protocol, Reactor
from reactor.connection import Connection
from reactor.poller import SELECTOR_CLASSES
from reactor.testing import ManualClock
from reactor.trace import RecordingTracer
from tests.helpers import SELECTOR_NAMES, Server, run_until

#: More than the kernel's send plus the peer's receive buffer on loopback.
BULK = b"x" * (8 * 1024 * 1024)

CONNECTION_STATS_KEYS = {
    "fd", "peer", "state", "reading", "writing", "recv_buffer", "send_buffer", "bytes_received",
    "bytes_sent", "reads", "writes", "partial_sends", "would_blocks", "watermark_pauses",
    "paused_seconds", "peak_recv_buffer", "peak_send_buffer", "history",
}
DATAGRAM_STATS_KEYS = {
    "fd", "local", "peer", "state", "writing", "send_queue_datagrams", "send_buffer",
    "watermark_pauses", "paused_seconds",
}


def early() -> None:
    """Named callbacks, so the snapshot can be checked by name."""


def later() -> None:
    pass


def tick() -> None:
    pass


class Flood(Protocol):
    """Writes ``BULK`` when connected and keeps reading however full its queue is."""

    def connection_made(self, transport: Connection) -> None:  # type: ignore[override]
        super().connection_made(transport)
        transport.write(BULK)

    def pause_writing(self) -> None:
        pass  # no back-pressure: the connection stays registered for reading too


class BackPressured(Flood):
    """The same, with the default back-pressure: reading stops while the queue is full."""

    pause_writing = Protocol.pause_writing


@pytest.fixture(params=SELECTOR_NAMES)
def manual(request: pytest.FixtureRequest) -> Iterator[tuple[Reactor, ManualClock]]:
    """A debug-mode reactor on a clock that moves only when the test says so."""
    clock = ManualClock(100.0)
    loop = Reactor(request.param, clock=clock, debug=True)
    yield loop, clock
    loop.close()
    assert loop.contract_violations == []


def waker_fd(snapshot: dict[str, Any]) -> int:
    return next(fd for fd, entry in snapshot["fds"].items()
                if entry["owner"] == "Reactor._on_wakeup of reactor")


# -- snapshot() ------------------------------------------------------------------------------------


def test_snapshot_of_an_idle_reactor_shows_only_the_waker(reactor: Reactor) -> None:
    snap = reactor.snapshot()
    assert snap["fds"] == {waker_fd(snap): {"mask": "R", "owner": "Reactor._on_wakeup of reactor"}}
    assert snap["timers"] == []
    assert snap["ready"] == []
    assert snap["transports"] == []
    assert snap["passes"] == 0
    assert snap["slowest_pass_seconds"] == 0.0
    # "epoll" is reactor.poller.EpollPoller, which uses select.epoll without selectors.
    assert snap["backend"] in {"epoll"} | {cls.__name__ for cls in SELECTOR_CLASSES.values()}


def test_snapshot_names_the_owner_of_each_fd(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol)
    client, conn = server.connect()
    snap = reactor.snapshot()
    owners = {fd: entry["owner"] for fd, entry in snap["fds"].items()}
    assert owners[conn.fileno()] == f"Connection._on_readable of {conn.trace_label}"
    assert f"Listener._on_readable of {server.listener.trace_label}" in owners.values()
    assert len(owners) == 3  # waker, listener, connection
    assert {entry["mask"] for entry in snap["fds"].values()} == {"R"}
    assert list(snap["fds"]) == sorted(snap["fds"])


def test_snapshot_lists_timers_in_due_order_with_due_in_and_interval(
        manual: tuple[Reactor, ManualClock]) -> None:
    reactor, clock = manual
    reactor.call_later(5.0, later)
    reactor.call_later(1.0, early)
    reactor.call_every(2.0, tick)
    reactor.call_later(0.5, later).cancel()
    clock.advance(0.25)
    assert reactor.snapshot()["timers"] == [
        {"due_in": 0.75, "callback": "early", "every": None},
        {"due_in": 1.75, "callback": "tick", "every": 2.0},
        {"due_in": 4.75, "callback": "later", "every": None},
    ]


def test_snapshot_shows_a_repeating_timer_rescheduled_after_it_ran(
        manual: tuple[Reactor, ManualClock]) -> None:
    reactor, clock = manual
    reactor.call_every(2.0, tick, first_delay=0.5)
    clock.advance(0.5)
    reactor.run_once(0)
    assert reactor.snapshot()["timers"] == [{"due_in": 2.0, "callback": "tick", "every": 2.0}]


def test_snapshot_names_the_owner_of_a_bound_method_timer(
        manual: tuple[Reactor, ManualClock]) -> None:
    reactor, clock = manual
    reactor.call_later(1.0, reactor.stop)
    assert reactor.snapshot()["timers"][0]["callback"] == "Reactor.stop of reactor"


def test_snapshot_lists_the_ready_queue_in_order_without_cancelled_callbacks(
        reactor: Reactor) -> None:
    reactor.call_soon(tick)
    reactor.call_soon(early).cancel()
    reactor.call_soon(later)
    assert reactor.snapshot()["ready"] == ["tick", "later"]
    reactor.run_once(0)
    assert reactor.snapshot()["ready"] == []


def test_snapshot_shows_queued_output_and_a_read_write_mask(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(Flood)
    client, conn = server.connect()
    snap = reactor.snapshot()
    assert snap["fds"][conn.fileno()] == {
        "mask": "RW", "owner": f"Connection._on_readable of {conn.trace_label}"}
    [stats] = snap["transports"]
    assert stats["fd"] == conn.fileno()
    assert stats["send_buffer"] == conn.get_write_buffer_size() > 0
    assert stats["writing"] is True and stats["reading"] is True
    assert stats["watermark_pauses"] == 1


def test_snapshot_shows_a_write_only_mask_while_back_pressure_stops_reading(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(BackPressured)
    client, conn = server.connect()
    snap = reactor.snapshot()
    assert snap["fds"][conn.fileno()] == {
        "mask": "W", "owner": f"Connection._on_writable of {conn.trace_label}"}
    assert snap["transports"][0]["reading"] is False


def test_snapshot_lists_transports_sorted_by_fd_with_their_stats(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol)
    conns = [server.connect()[1] for _ in range(3)]
    transports = reactor.snapshot()["transports"]
    assert [stats["fd"] for stats in transports] == sorted(conn.fileno() for conn in conns)
    for stats in transports:
        assert stats.keys() == CONNECTION_STATS_KEYS
        assert stats["state"] == "OPEN"
        assert stats["history"][-1][1] == "OPEN"
    client = server.clients[0]
    client.sendall(b"12345")
    run_until(reactor, lambda: conns[0].bytes_sent == 5)
    first = next(stats for stats in reactor.snapshot()["transports"]
                 if stats["fd"] == conns[0].fileno())
    assert (first["bytes_received"], first["bytes_sent"], first["reads"], first["writes"]) == (
        5, 5, 1, 1)


def test_snapshot_drops_a_connection_once_it_is_closed(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol)
    client, conn = server.connect()
    conn.abort()
    snap = reactor.snapshot()
    assert snap["transports"] == []
    assert conn.fileno() not in snap["fds"]
    assert snap["ready"] == [f"Connection._call_connection_lost of {conn.trace_label}"]


def test_snapshot_shows_a_datagram_transport_and_its_stats(reactor: Reactor) -> None:
    udp = reactor.listen_udp(UdpEchoProtocol, "127.0.0.1", 0)
    try:
        snap = reactor.snapshot()
        [stats] = snap["transports"]
        assert stats.keys() == DATAGRAM_STATS_KEYS
        assert stats == {
            "fd": udp.fileno(), "local": f"127.0.0.1:{udp.local_address[1]}", "peer": None,
            "state": "OPEN", "writing": False, "send_queue_datagrams": 0, "send_buffer": 0,
            "watermark_pauses": 0, "paused_seconds": 0.0,
        }
        assert snap["fds"][udp.fileno()] == {
            "mask": "R", "owner": f"DatagramTransport._on_readable of {udp.trace_label}"}
    finally:
        udp.close()
        reactor.run_once(0)
    assert reactor.snapshot()["transports"] == []


def test_snapshot_counts_passes_and_is_plain_json(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol)
    server.connect()
    reactor.call_later(30, tick)
    snap = reactor.snapshot()
    assert snap["passes"] == reactor.passes > 0
    assert snap["time"] == pytest.approx(reactor.time(), abs=1.0)
    decoded = json.loads(json.dumps(snap))
    assert decoded["timers"][0]["callback"] == "tick"
    assert decoded["transports"][0]["state"] == "OPEN"


def test_taking_a_snapshot_changes_nothing(reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol)
    server.connect()
    reactor.call_soon(tick)
    reactor.call_later(10, later)
    first = reactor.snapshot()
    second = reactor.snapshot()
    first.pop("time")
    second.pop("time")
    for snap in (first, second):
        for timer in snap["timers"]:
            timer.pop("due_in")
    assert first == second
    assert reactor.passes == first["passes"]


# -- step() ----------------------------------------------------------------------------------------


def test_step_with_nothing_to_do_returns_a_pass_that_woke_by_timeout(reactor: Reactor) -> None:
    assert reactor.step() == [
        {"source": "reactor", "event": "pass", "number": 1, "timeout": 0.0,
         "why": "the caller's timeout"},
        {"source": "reactor", "event": "woke", "by": "timeout: no fd was ready"},
    ]
    assert reactor.passes == 1


def test_step_returns_the_events_of_exactly_one_pass(reactor: Reactor) -> None:
    def chain() -> None:
        reactor.call_soon(tick)  # runs on the next pass, so in the next step

    reactor.call_soon(chain)
    first = reactor.step()
    assert [event["event"] for event in first] == ["pass", "woke", "callbacks"]
    assert first[0]["number"] == 1
    assert first[2]["run"] == ["test_step_returns_the_events_of_exactly_one_pass.<locals>.chain"]
    assert reactor.snapshot()["ready"] == ["tick"]
    second = reactor.step()
    assert [event["event"] for event in second] == ["pass", "woke", "callbacks"]
    assert second[0]["number"] == 2
    assert second[2]["run"] == ["tick"]
    assert reactor.passes == 2


def test_step_reports_the_io_of_its_pass(reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol)
    client, conn = server.connect()
    client.sendall(b"hello")
    events = reactor.step(5.0)  # the readable connection ends the wait
    mine = [(event["event"], event.get("bytes")) for event in events
            if event["source"] == conn.trace_label]
    assert mine == [("recv", 5), ("calling data_received", None), ("send", 5),
                    ("data_received returned", None)]
    assert events[1] == {"source": "reactor", "event": "woke",
                         "by": f"fd {conn.fileno()} R (Connection._on_readable of "
                               f"{conn.trace_label})"}


def test_step_leaves_the_installed_tracer_in_place_and_forwards_to_it(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol)
    client, conn = server.connect()
    tracer = RecordingTracer()
    reactor.set_tracer(tracer)
    client.sendall(b"abc")
    events = reactor.step(5.0)
    assert reactor.tracer is tracer
    assert tracer.events == events
    # the live connection was handed back to the installed tracer, not left on step's recorder
    stepped = len(events)
    client.sendall(b"def")
    run_until(reactor, lambda: conn.bytes_sent == 6)
    assert len(events) == stepped
    assert {"source": conn.trace_label, "event": "recv", "bytes": 3, "recv_buffer": 3,
            "send_buffer": 0} in tracer.events[stepped:]


def test_step_without_a_tracer_leaves_none_installed(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol)
    client = socket.create_connection(server.listener.address, timeout=5)
    server.clients.append(client)
    events = reactor.step(5.0)  # accepts: the new connection is born while step() traces
    assert reactor.tracer is None
    assert ("accept", "connection_made") == tuple(
        event["event"] for event in events if event["event"] in ("accept", "connection_made"))
    seen = len(events)
    conn = server.protocols[0].transport
    client.sendall(b"after")
    run_until(reactor, lambda: conn.bytes_sent == 5)
    assert len(events) == seen  # the list step() returned is not written to afterwards

"""Trace events: what a tracer sees of each loop pass, each syscall and each protocol callback.

Most tests install a ``RecordingTracer`` on the ``reactor`` fixture (every selector, debug mode)
and drive real loopback sockets from this thread between passes. The formatting tracers
(``PassTracer``, ``JsonTracer``, ``LoggingTracer``, ``TeeTracer``) are checked on the same events,
and the example servers' ``--trace`` and ``--trace-json`` flags as subprocesses.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import signal
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from protocols.echo import EchoProtocol
from reactor import Protocol, Reactor
from reactor.connection import Connection, ConnectionState
from reactor.trace import (JsonTracer, LoggingTracer, PassTracer, RecordingTracer, TeeTracer,
                           format_event)
from tests.helpers import Server, fill_socket, run_until
from tests.processes import Launcher

#: More than the kernel's send buffer plus the peer's receive buffer on loopback.
BULK = b"x" * (8 * 1024 * 1024)
LINGER_RESET = struct.pack("ii", 1, 0)

Event = dict[str, Any]


def tick() -> None:
    """A named callback, so traces can be checked by name."""


def tock() -> None:
    """Another one."""


class Flood(Protocol):
    """Writes ``BULK`` as soon as it is connected; the client in these tests never reads."""

    def connection_made(self, transport: Connection) -> None:  # type: ignore[override]
        super().connection_made(transport)
        transport.write(BULK)


@pytest.fixture
def recorder(reactor: Reactor) -> RecordingTracer:
    tracer = RecordingTracer()
    reactor.set_tracer(tracer)
    return tracer




def named(events: list[Event], name: str) -> list[Event]:
    return [event for event in events if event["event"] == name]


def of(events: list[Event], transport: Connection) -> list[Event]:
    """The events whose source is ``transport``."""
    return [event for event in events if event["source"] == transport.trace_label]


def reset(sock: socket.socket) -> None:
    """Close with ``SO_LINGER`` 0: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    sock.close()


# -- the pass: why select() may sleep, and what woke it --------------------------------------------


def test_pass_says_nothing_is_scheduled_when_it_may_wait_for_io_forever(
        reactor: Reactor, recorder: RecordingTracer, serve: Callable[..., Server]) -> None:
    server = serve(Protocol)
    client = socket.create_connection(server.listener.address, timeout=5)
    server.clients.append(client)
    reactor.run_once(None)  # the pending connection makes the listener readable: no hang
    assert named(recorder.events, "pass") == [
        {"source": "reactor", "event": "pass", "number": 1, "timeout": "none",
         "why": "no timers and no callbacks: wait for I/O, however long"}]


def test_pass_names_the_next_timer_when_a_timer_limits_the_wait(
        reactor: Reactor, recorder: RecordingTracer) -> None:
    reactor.call_later(0.01, tick)
    reactor.run_once(None)
    first = recorder.events[0]
    assert first["event"] == "pass"
    assert first["why"] == "next timer: tick"
    assert 0 <= first["timeout"] <= 0.01


def test_pass_counts_ready_callbacks_and_does_not_wait(
        reactor: Reactor, recorder: RecordingTracer) -> None:
    reactor.call_soon(tick)
    reactor.call_soon(tock)
    reactor.run_once(5.0)
    assert recorder.events[0] == {"source": "reactor", "event": "pass", "number": 1,
                                  "timeout": 0.0,
                                  "why": "2 callbacks are ready: poll without waiting"}


def test_pass_blames_the_callers_timeout_when_it_is_sooner_than_every_timer(
        reactor: Reactor, recorder: RecordingTracer) -> None:
    reactor.call_later(60, tick)
    reactor.run_once(0.0)
    assert recorder.events == [
        {"source": "reactor", "event": "pass", "number": 1, "timeout": 0.0,
         "why": "the caller's timeout"},
        {"source": "reactor", "event": "woke", "by": "timeout: no fd was ready"},
    ]


def test_pass_numbers_follow_the_passes_run(reactor: Reactor, recorder: RecordingTracer) -> None:
    for _ in range(3):
        reactor.run_once(0)
    assert [event["number"] for event in named(recorder.events, "pass")] == [1, 2, 3]
    assert reactor.passes == 3


def test_woke_lists_each_ready_fd_with_its_events_and_owner(
        reactor: Reactor, recorder: RecordingTracer, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol)
    client, conn = server.connect()
    accepted = named(recorder.events, "woke")[0]["by"]
    assert re.fullmatch(rf"fd \d+ R \(Listener\._on_readable of "
                        rf"{re.escape(server.listener.trace_label)}\)", accepted)
    del recorder.events[:]
    client.sendall(b"ping")
    run_until(reactor, lambda: named(recorder.events, "recv"))
    assert named(recorder.events, "woke")[-1]["by"] == (
        f"fd {conn.fileno()} R (Connection._on_readable of {conn.trace_label})")


def test_woke_shows_a_writable_connection_as_w(
        reactor: Reactor, recorder: RecordingTracer, serve: Callable[..., Server]) -> None:
    server = serve(Flood)  # default back-pressure: reading stops, only the writer is registered
    client, conn = server.connect()
    assert conn.get_write_buffer_size() > 0
    client.setblocking(False)
    del recorder.events[:]

    def client_reads() -> bool:
        try:
            client.recv(1 << 20)
        except BlockingIOError:
            pass
        return any(f"fd {conn.fileno()} W (" in event["by"]
                   for event in named(recorder.events, "woke"))

    run_until(reactor, client_reads)
    woke = next(event["by"] for event in named(recorder.events, "woke")
                if f"fd {conn.fileno()} W (" in event["by"])
    assert f"Connection._on_writable of {conn.trace_label}" in woke


def test_callbacks_event_lists_the_callbacks_about_to_run_in_order(
        reactor: Reactor, recorder: RecordingTracer) -> None:
    ran: list[str] = []
    reactor.call_soon(tick)
    reactor.call_soon(tock).cancel()
    reactor.call_soon(ran.append, "third")
    reactor.run_once(0)
    assert named(recorder.events, "callbacks") == [
        {"source": "reactor", "event": "callbacks", "run": ["tick", "list.append"]}]
    assert ran == ["third"]


def test_a_due_timer_is_listed_with_the_callbacks(
        reactor: Reactor, recorder: RecordingTracer) -> None:
    fired: list[int] = []
    reactor.call_later(0.001, fired.append, 1)
    run_until(reactor, lambda: fired)
    assert named(recorder.events, "callbacks")[-1]["run"] == ["list.append"]


def test_no_callbacks_event_when_nothing_runs(reactor: Reactor, recorder: RecordingTracer) -> None:
    reactor.run_once(0)
    assert named(recorder.events, "callbacks") == []


# -- wakeups ---------------------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_signal_wakeup_is_reported_by_the_signal_name(
        reactor: Reactor, recorder: RecordingTracer) -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    got: list[str] = []
    reactor.add_signal_handler(signal.SIGUSR1, got.append, "usr1")
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        run_until(reactor, lambda: got)
    finally:
        reactor.remove_signal_handler(signal.SIGUSR1)
    assert signal.getsignal(signal.SIGUSR1) is previous
    wakeups = named(recorder.events, "wakeup")
    assert wakeups and wakeups[0] == {"source": "reactor", "event": "wakeup",
                                      "by": "signal SIGUSR1"}
    assert "(Reactor._on_wakeup of reactor)" in named(recorder.events, "woke")[0]["by"]


def test_call_soon_threadsafe_from_a_thread_is_reported_as_another_thread(
        reactor: Reactor, recorder: RecordingTracer) -> None:
    ran: list[str] = []
    thread = threading.Thread(target=reactor.call_soon_threadsafe, args=(ran.append, "x"))
    thread.start()
    thread.join(5)
    reactor.run_once(0)
    names = [event["event"] for event in recorder.events]
    assert names == ["pass", "woke", "wakeup", "callbacks"]
    assert recorder.events[2] == {"source": "reactor", "event": "wakeup",
                                  "by": "another thread or stop()"}
    assert ran == ["x"]


def test_stop_is_reported_as_a_wakeup_and_the_pass_does_not_wait(
        reactor: Reactor, recorder: RecordingTracer) -> None:
    reactor.stop()
    reactor.run_once(5.0)
    assert [event["event"] for event in recorder.events] == ["pass", "woke", "wakeup"]
    assert recorder.events[0]["why"] == "stopping: poll without waiting"
    assert recorder.events[0]["timeout"] == 0.0
    assert recorder.events[2]["by"] == "another thread or stop()"


# -- one connection's life ---------------------------------------------------------------------


def test_echo_connection_lifecycle_is_traced_in_order(
        reactor: Reactor, recorder: RecordingTracer, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol)
    client, conn = server.connect()
    client.sendall(b"hello")
    run_until(reactor, lambda: named(of(recorder.events, conn), "send"))
    client.shutdown(socket.SHUT_WR)
    run_until(reactor, lambda: named(of(recorder.events, conn), "connection_lost"))
    events = of(recorder.events, conn)
    assert [(event["event"], event.get("change")) for event in events] == [
        ("state", "CONNECTING -> OPEN"),
        ("connection_made", None),
        ("recv", None),
        ("calling data_received", None),
        ("send", None),
        ("data_received returned", None),
        ("eof", None),
        ("eof_received returned", None),
        ("state", "OPEN -> CLOSING"),
        ("state", "CLOSING -> CLOSED"),
        ("close", None),
        ("connection_lost", None),
    ]
    assert named(events, "recv")[0]["bytes"] == 5
    assert named(events, "send")[0]["bytes"] == 5
    assert named(events, "eof")[0]["meaning"] == "recv returned 0: the peer sent FIN"
    assert named(events, "eof_received returned")[0]["value"] is False
    assert named(events, "connection_lost")[0]["exc"] is None
    client.settimeout(5)
    assert client.recv(100) == b"hello"
    assert client.recv(100) == b""


def test_accept_comes_before_the_connections_first_event(
        reactor: Reactor, recorder: RecordingTracer, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol)
    client, conn = server.connect()
    names = [(event["source"], event["event"]) for event in recorder.events]
    accept = names.index((server.listener.trace_label, "accept"))
    assert names[accept + 1] == (conn.trace_label, "state")
    accepted = recorder.events[accept]
    assert accepted["fd"] == conn.fileno()
    assert accepted["peer"] == "127.0.0.1:%d" % client.getsockname()[1]


def test_every_connection_event_carries_both_buffer_sizes(
        reactor: Reactor, recorder: RecordingTracer, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol)
    client, conn = server.connect()
    client.sendall(b"abc")
    run_until(reactor, lambda: named(of(recorder.events, conn), "send"))
    client.shutdown(socket.SHUT_WR)
    run_until(reactor, lambda: named(of(recorder.events, conn), "connection_lost"))
    events = of(recorder.events, conn)
    assert len(events) > 5
    for event in events:
        assert isinstance(event["recv_buffer"], int), event
        assert isinstance(event["send_buffer"], int), event
    # the sizes are taken when the event happens: recv shows the bytes just appended
    assert named(events, "recv")[0]["recv_buffer"] == 3
    assert named(events, "data_received returned")[0]["recv_buffer"] == 0


def test_partial_send_reports_how_much_of_how_much_the_kernel_took(
        reactor: Reactor, recorder: RecordingTracer, serve: Callable[..., Server]) -> None:
    server = serve(Flood)
    client, conn = server.connect()
    first = named(of(recorder.events, conn), "send")[0]
    assert first["of"] == len(BULK)
    assert 0 < first["bytes"] < len(BULK)
    assert first["meaning"].startswith(f"partial: the kernel took {first['bytes']} of {len(BULK)}")
    assert "error" not in first


def test_send_into_a_full_kernel_buffer_reports_eagain_and_zero_bytes(
        reactor: Reactor, recorder: RecordingTracer, serve: Callable[..., Server]) -> None:
    server = serve(Protocol)
    client, conn = server.connect()
    # Fill the kernel's send buffer behind the transport's back, through a second descriptor.
    with socket.socket(fileno=os.dup(conn.fileno())) as twin:
        assert fill_socket(twin) > 0
    conn.write(b"abc")
    send = named(of(recorder.events, conn), "send")
    assert len(send) == 1
    assert send[0]["bytes"] == 0
    assert send[0]["of"] == 3
    assert send[0]["error"] == "EAGAIN"
    assert "send buffer is full" in send[0]["meaning"]


def test_partial_send_event_shows_the_queued_tail_in_send_buffer(
        reactor: Reactor, recorder: RecordingTracer, serve: Callable[..., Server]) -> None:
    server = serve(Flood)
    client, conn = server.connect()
    first = named(of(recorder.events, conn), "send")[0]
    assert first["send_buffer"] == first["of"] - first["bytes"]


def test_abort_is_traced_as_a_reset(
        reactor: Reactor, recorder: RecordingTracer, serve: Callable[..., Server]) -> None:
    server = serve(Protocol)
    client, conn = server.connect()
    conn.abort()
    run_until(reactor, lambda: named(of(recorder.events, conn), "connection_lost"))
    events = of(recorder.events, conn)
    names = [event["event"] for event in events]
    assert names[names.index("abort"):] == ["abort", "state", "close", "connection_lost"]
    assert named(events, "abort")[0]["meaning"] == "SO_LINGER 0 then close: the peer gets RST"
    assert named(events, "state")[-1]["change"] == "OPEN -> CLOSED"


def test_peer_reset_while_reading_is_traced_as_recv_failed_with_econnreset(
        reactor: Reactor, recorder: RecordingTracer, serve: Callable[..., Server]) -> None:
    server = serve(Protocol)
    client, conn = server.connect()
    server.clients.remove(client)
    reset(client)
    run_until(reactor, lambda: named(of(recorder.events, conn), "connection_lost"))
    failed = named(of(recorder.events, conn), "recv failed")
    assert len(failed) == 1
    assert failed[0]["error"] == f"ECONNRESET ({os.strerror(errno.ECONNRESET)})"
    lost = named(of(recorder.events, conn), "connection_lost")[0]
    assert lost["exc"].startswith("ECONNRESET")


def test_peer_reset_while_writing_is_traced_as_send_failed_with_econnreset(
        reactor: Reactor, recorder: RecordingTracer, serve: Callable[..., Server]) -> None:
    server = serve(Flood)  # over the high-water mark: reading paused, only writing
    client, conn = server.connect()
    assert not conn.is_reading()
    server.clients.remove(client)
    reset(client)
    run_until(reactor, lambda: named(of(recorder.events, conn), "connection_lost"))
    failed = named(of(recorder.events, conn), "send failed")
    assert len(failed) == 1
    assert failed[0]["error"] == f"ECONNRESET ({os.strerror(errno.ECONNRESET)})"
    assert failed[0]["send_buffer"] > 0  # what was lost


# -- installing and removing tracers -----------------------------------------------------------


def test_tracer_given_to_the_constructor_sees_listening_and_every_pass() -> None:
    recorder = RecordingTracer()
    reactor = Reactor(tracer=recorder, debug=True)
    try:
        server = Server(reactor, EchoProtocol)
        client, conn = server.connect()
        client.sendall(b"hi")
        run_until(reactor, lambda: named(of(recorder.events, conn), "send"))
        assert recorder.events[0] == {"source": server.listener.trace_label,
                                      "event": "listening", "address": server.listener.name}
        assert len(named(recorder.events, "pass")) == reactor.passes
        server.close()
    finally:
        reactor.close()
    assert reactor.contract_violations == []


def test_set_tracer_none_stops_the_events_of_a_live_connection(
        reactor: Reactor, recorder: RecordingTracer, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol)
    client, conn = server.connect()
    client.sendall(b"one")
    run_until(reactor, lambda: conn.bytes_sent == 3)
    assert named(of(recorder.events, conn), "send")
    reactor.set_tracer(None)
    seen = len(recorder.events)
    client.sendall(b"two")
    run_until(reactor, lambda: conn.bytes_sent == 6)
    client.shutdown(socket.SHUT_WR)
    run_until(reactor, lambda: conn.state is ConnectionState.CLOSED)
    reactor.run_once(0)  # connection_lost
    assert len(recorder.events) == seen


def test_set_tracer_on_a_live_connection_starts_its_events(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol)
    client, conn = server.connect()
    recorder = RecordingTracer()
    reactor.set_tracer(recorder)
    client.sendall(b"late")
    run_until(reactor, lambda: named(of(recorder.events, conn), "send"))
    assert named(of(recorder.events, conn), "recv")[0]["bytes"] == 4


def test_set_tracer_none_also_silences_a_connection_lost_still_to_come(
        reactor: Reactor, recorder: RecordingTracer, serve: Callable[..., Server]) -> None:
    server = serve(Protocol)
    client, conn = server.connect()
    conn.abort()  # connection_lost is queued for the next pass
    reactor.set_tracer(None)
    seen = len(recorder.events)
    reactor.run_once(0)
    assert recorder.events[seen:] == []


# -- the tracers -----------------------------------------------------------------------------------


def test_pass_tracer_logs_one_block_per_pass_when_the_next_pass_begins(
        reactor: Reactor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="reactor.trace")
    tracer = PassTracer()
    reactor.set_tracer(tracer)
    reactor.call_soon(tick)
    reactor.run_once(0.0)
    assert [r for r in caplog.records if r.name == "reactor.trace"] == []
    reactor.run_once(0.0)
    blocks = [r.getMessage() for r in caplog.records if r.name == "reactor.trace"]
    assert blocks == ["pass 1: select() with at most 0.0s: 1 callbacks are ready: poll without "
                      "waiting\n  woke: timeout: no fd was ready\n  callbacks: tick"]
    tracer.flush()
    blocks = [r.getMessage() for r in caplog.records if r.name == "reactor.trace"]
    assert blocks[1:] == ["pass 2: select() with at most 0.0s: the caller's timeout\n"
                          "  woke: timeout: no fd was ready"]
    tracer.flush()  # nothing new: no empty block
    assert len([r for r in caplog.records if r.name == "reactor.trace"]) == 2


def test_pass_tracer_block_holds_the_connection_events_of_its_pass(
        reactor: Reactor, serve: Callable[..., Server],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="reactor.trace")
    server = serve(EchoProtocol)
    client, conn = server.connect()
    tracer = PassTracer()
    reactor.set_tracer(tracer)
    client.sendall(b"hello!")
    run_until(reactor, lambda: conn.bytes_sent == 6)
    tracer.flush()
    blocks = [r.getMessage() for r in caplog.records if r.name == "reactor.trace"]
    label = conn.trace_label
    echo = next(block for block in blocks if f"{label}  recv" in block).splitlines()
    assert re.fullmatch(r"pass \d+: select\(\) with at most [\d.]+s: the caller's timeout",
                        echo[0])
    assert echo[1:] == [
        f"  woke: fd {conn.fileno()} R (Connection._on_readable of {label})",
        f"  {label}  recv  bytes=6  [recv buffer 6 B, send buffer 0 B]",
        f"  {label}  calling data_received  [recv buffer 6 B, send buffer 0 B]",
        f"  {label}  send  bytes=6  [recv buffer 0 B, send buffer 0 B]",
        f"  {label}  data_received returned  [recv buffer 0 B, send buffer 0 B]",
    ]


def test_pass_tracer_header_says_no_time_limit_when_select_may_block(
        reactor: Reactor, serve: Callable[..., Server],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="reactor.trace")
    server = serve(Protocol)
    tracer = PassTracer()
    reactor.set_tracer(tracer)
    server.clients.append(socket.create_connection(server.listener.address, timeout=5))
    reactor.run_once(None)
    tracer.flush()
    block = [r.getMessage() for r in caplog.records if r.name == "reactor.trace"][0]
    assert block.splitlines()[0] == ("pass 1: select() with no time limit: no timers and no "
                                     "callbacks: wait for I/O, however long")


def test_json_tracer_writes_one_json_object_per_line_with_time_pass_source_and_event(
        reactor: Reactor, serve: Callable[..., Server]) -> None:
    server = serve(EchoProtocol)
    client, conn = server.connect()
    stream = io.StringIO()
    reactor.set_tracer(JsonTracer(stream, clock=lambda: 12.5))
    client.sendall(b"json")
    run_until(reactor, lambda: conn.bytes_sent == 4)
    lines = stream.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == len(lines) > 4
    current = None
    for record in records:
        assert {"t", "pass", "source", "event"} <= record.keys()
        assert record["t"] == 12.5
        if record["event"] == "pass":
            current = record["number"]
        assert record["pass"] == current
    send = next(record for record in records if record["event"] == "send")
    assert send["source"] == conn.trace_label
    assert send["bytes"] == 4
    assert send["recv_buffer"] == 0 and send["send_buffer"] == 0


def test_json_tracer_writes_values_json_cannot_hold_as_text() -> None:
    stream = io.StringIO()
    JsonTracer(stream, clock=lambda: 1.0).event(object(), "odd", value=b"raw")
    record = json.loads(stream.getvalue())
    assert record == {"t": 1.0, "pass": 0, "source": "object", "event": "odd", "value": "b'raw'"}


def test_tee_tracer_sends_every_event_to_each_tracer(reactor: Reactor) -> None:
    first, second = RecordingTracer(), RecordingTracer()
    reactor.set_tracer(TeeTracer(first, second))
    reactor.call_soon(tick)
    reactor.run_once(0)
    assert first.events == second.events
    assert [event["event"] for event in first.events] == ["pass", "woke", "callbacks"]


def test_recording_tracer_forwards_each_event_after_keeping_it(reactor: Reactor) -> None:
    downstream = RecordingTracer()
    recorder = RecordingTracer(forward_to=downstream)
    reactor.set_tracer(recorder)
    reactor.run_once(0)
    assert recorder.events == downstream.events != []


def test_logging_tracer_logs_one_line_per_event(
        reactor: Reactor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="reactor.trace")
    reactor.set_tracer(LoggingTracer())
    reactor.call_soon(tick)
    reactor.run_once(0)
    lines = [r.getMessage() for r in caplog.records if r.name == "reactor.trace"]
    assert lines == [
        "reactor  pass  number=1 timeout=0.0 why=1 callbacks are ready: poll without waiting",
        "reactor  woke  by=timeout: no fd was ready",
        "reactor  callbacks  run=['tick']",
    ]


def test_format_event_puts_the_meaning_after_the_fields_and_the_buffers_last() -> None:
    class Source:
        trace_label = "fd=7 127.0.0.1:5000"

    fields = {"bytes": 6, "of": 10, "meaning": "partial", "recv_buffer": 0, "send_buffer": 4}
    assert format_event(Source(), "send", fields) == (
        "fd=7 127.0.0.1:5000  send  bytes=6 of=10 — partial  [recv buffer 0 B, send buffer 4 B]")
    assert fields["meaning"] == "partial"  # the caller's dict is left alone
    assert format_event(object(), "bare", {}) == "object  bare"


def test_without_a_tracer_the_reactor_still_counts_passes() -> None:
    reactor = Reactor()
    try:
        assert reactor.tracer is None
        reactor.call_soon(tick)
        reactor.run_once(0)
        reactor.run_once(0)
        assert reactor.passes == 2
    finally:
        reactor.close()


# -- the example servers' flags -------------------------------------------------------------------


def round_trip_and_stop(launch: Launcher, *flags: str) -> Any:
    server = launch.server("echo_server", *flags)
    client = server.connect()
    client.send(b"ping\n")
    assert client.read_exactly(5) == b"ping\n"
    client.shutdown_write()
    client.expect_eof()
    server.stop_cleanly()
    return server


def test_echo_server_trace_json_writes_every_kind_of_event_as_json_lines(
        launch: Launcher, tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    round_trip_and_stop(launch, "--trace-json", str(path))
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert all({"t", "pass", "source", "event"} <= record.keys() for record in records)
    names = {record["event"] for record in records}
    assert {"pass", "woke", "accept", "recv", "send", "eof", "connection_lost"} <= names
    recv = next(record for record in records if record["event"] == "recv")
    assert recv["bytes"] == 5
    times = [record["t"] for record in records]
    assert times == sorted(times)


def test_echo_server_trace_prints_pass_blocks_to_stderr(launch: Launcher) -> None:
    server = round_trip_and_stop(launch, "--trace")
    text = server.stderr()
    headers = re.findall(r"reactor\.trace: pass (\d+): select\(\) with ", text)
    assert len(headers) >= 3
    numbers = [int(number) for number in headers]
    assert numbers == sorted(numbers)
    assert "  woke: fd " in text
    assert re.search(r"  listener 127\.0\.0\.1:\d+  accept  fd=\d+ peer=127\.0\.0\.1:\d+", text)
    assert re.search(r"  fd=\d+ 127\.0\.0\.1:\d+  recv  bytes=5  \[recv buffer 5 B, send buffer 0 B\]", text)
    assert "  eof — recv returned 0: the peer sent FIN  [recv buffer 0 B, send buffer 0 B]" in text
    assert "  wakeup: signal SIGTERM" in text

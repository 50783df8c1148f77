"""Listener and connector options: declared once, passed through the conveniences unchanged."""

from __future__ import annotations

import dataclasses
import logging
import socket
from pathlib import Path

import pytest

from reactor import Protocol, Reactor
from reactor.listener import ListenerOptions
from tests.helpers import run_until


def test_a_misspelt_listener_option_is_a_type_error_naming_it(reactor: Reactor) -> None:
    with pytest.raises(TypeError, match="max_conections"):
        reactor.listen_tcp(Protocol, "127.0.0.1", 0, max_conections=5)
    assert len(reactor.poller) == 1  # nothing was bound or registered: the waker alone


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_every_listener_option_reaches_the_listener(
    reactor: Reactor, kind: str, tmp_path: Path
) -> None:
    options = {"max_connections": 3, "reject_message": b"full\n", "idle_timeout": 30.0,
               "handshake_timeout": 5.0}
    assert set(options) | {"ssl"} == {field.name for field in dataclasses.fields(ListenerOptions)}
    if kind == "tcp":
        listener = reactor.listen_tcp(Protocol, "127.0.0.1", 0, **options)
    else:
        listener = reactor.listen_unix(Protocol, str(tmp_path / "s"), **options)
    try:
        assert listener.max_connections == 3 and listener.reject_message == b"full\n"
        assert listener._idle_sweeper is not None
        assert listener._handshake_timeout == 5.0
    finally:
        listener.close()


def test_the_connector_makes_its_socket_with_the_factory_it_is_given(reactor: Reactor) -> None:
    made: list[tuple[int, int, int]] = []
    errors: list[BaseException] = []

    def factory(family: int, type_: int, proto: int) -> socket.socket:
        made.append((family, type_, proto))
        raise OSError(24, "Too many open files (scripted)")

    reactor.connect_tcp(Protocol, "127.0.0.1", 9, on_error=errors.append, socket_factory=factory)
    run_until(reactor, lambda: errors)
    assert made == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)]
    assert isinstance(errors[0], OSError) and errors[0].errno == 24


@pytest.mark.parametrize(("limit", "words"), [(1, "1 connection already"),
                                              (2, "2 connections already")])
def test_the_rejection_log_line_counts_in_words_that_agree(
    reactor: Reactor, caplog: pytest.LogCaptureFixture, limit: int, words: str
) -> None:
    listener = reactor.listen_tcp(Protocol, "127.0.0.1", 0, max_connections=limit)
    clients = [socket.create_connection(listener.address) for _ in range(limit + 1)]
    try:
        with caplog.at_level(logging.INFO, logger="reactor.listener"):
            run_until(reactor, lambda: "rejecting" in caplog.text)
        [line] = [record.getMessage() for record in caplog.records
                  if "rejecting" in record.getMessage()]
        assert words in line
    finally:
        for client in clients:
            client.close()
        for connection in [*listener.connections, *listener.rejected]:
            connection.abort()
        listener.close()
        reactor.run_once(0)

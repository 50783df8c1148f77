"""errors.classify: every errno in every named set, and describe() for logs."""

from __future__ import annotations

import errno
import socket

import pytest

from reactor.errors import (
    PEER_GONE_ERRNOS,
    RESOURCE_ERRNOS,
    WOULD_BLOCK_ERRNOS,
    ErrorKind,
    classify,
    describe,
)

SETS = [
    (WOULD_BLOCK_ERRNOS, ErrorKind.WOULD_BLOCK),
    (PEER_GONE_ERRNOS, ErrorKind.PEER_GONE),
    (RESOURCE_ERRNOS, ErrorKind.RESOURCES_EXHAUSTED),
]
CASES = [(code, kind) for codes, kind in SETS for code in sorted(codes)]


@pytest.mark.parametrize(("code", "kind"), CASES,
                         ids=[errno.errorcode[code] for code, _ in CASES])
def test_classify_maps_each_errno_to_its_kind(code: int, kind: ErrorKind) -> None:
    # OSError(errno, text) builds the subclass the kernel's error would raise.
    assert classify(OSError(code, "text")) is kind


def test_the_named_sets_do_not_overlap() -> None:
    assert not WOULD_BLOCK_ERRNOS & PEER_GONE_ERRNOS
    assert not WOULD_BLOCK_ERRNOS & RESOURCE_ERRNOS
    assert not PEER_GONE_ERRNOS & RESOURCE_ERRNOS


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (BlockingIOError(errno.EAGAIN, "again"), ErrorKind.WOULD_BLOCK),
        (InterruptedError(errno.EINTR, "signal"), ErrorKind.WOULD_BLOCK),
        (ConnectionResetError(errno.ECONNRESET, "reset"), ErrorKind.PEER_GONE),
        (BrokenPipeError(errno.EPIPE, "pipe"), ErrorKind.PEER_GONE),
        (ConnectionAbortedError(errno.ECONNABORTED, "aborted"), ErrorKind.PEER_GONE),
        (TimeoutError(errno.ETIMEDOUT, "timed out"), ErrorKind.PEER_GONE),
    ],
)
def test_classify_the_builtin_subclasses(exc: OSError, kind: ErrorKind) -> None:
    assert classify(exc) is kind


@pytest.mark.parametrize("code", [errno.EBADF, errno.EINVAL, errno.ECONNREFUSED, errno.EACCES])
def test_other_errnos_are_unexpected(code: int) -> None:
    assert classify(OSError(code, "text")) is ErrorKind.UNEXPECTED


def test_an_oserror_without_errno_is_unexpected() -> None:
    assert classify(OSError("no errno")) is ErrorKind.UNEXPECTED


def test_a_real_recv_on_an_empty_socket_is_would_block() -> None:
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        with pytest.raises(OSError) as info:
            a.recv(10)
        assert classify(info.value) is ErrorKind.WOULD_BLOCK
    finally:
        a.close()
        b.close()


def test_describe_names_the_errno_and_its_text() -> None:
    exc = OSError(errno.ECONNREFUSED, "Connection refused")
    assert describe(exc) == "ECONNREFUSED (Connection refused)"


def test_describe_an_unknown_errno_uses_the_number() -> None:
    assert describe(OSError(99999, "strange")) == "99999 (strange)"


def test_describe_a_resolver_error() -> None:
    exc = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert "Name or service not known" in describe(exc)


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (ValueError("bad value"), "ValueError: bad value"),
        (TimeoutError("connect timed out"), "TimeoutError: connect timed out"),
        (RuntimeError(), "RuntimeError"),
        (OSError("no errno"), "OSError: no errno"),
    ],
)
def test_describe_other_exceptions_by_type_and_message(exc: BaseException, text: str) -> None:
    assert describe(exc) == text

"""Fault injection: every ``except`` clause and errno branch of ``reactor/``, made to happen.

Each test makes one condition happen to the real Connection, Listener, Connector or
DatagramTransport and asserts what they did: the state and the buffers, each protocol callback
exactly once (and, in debug mode, the whole callback contract), the logs, and the loop going on
(a timer still fires, or another connection is still served). Conditions are made for real where
the kernel can be made to say them: a full socketpair for EAGAIN, a peer closing with our bytes
unread for ECONNRESET, a full Unix backlog, a stale socket file, two sockets racing to listen.
The rest is scripted with ``reactor.testing`` (``ScriptedSocket``, ``ScriptedSelector``). Every
reactor-level test runs over every selector class, on a manual clock.

The branch table: where (line numbers as of commit 3159255 and the working tree beside it; the
function names stay right when lines move), what it handles, and the tests that make it happen.
Tests without a file name are in this file; "real" means the kernel produced the errno.

    address.py:64 bind_socket: socket()/bind() failed: close the socket, re-raise
        - test_a_failed_bind_closes_its_socket_and_raises[tcp, udp]
        - test_listener.py::test_binding_a_port_in_use_raises_at_once
        - test_udp.py::test_bind_failure_raises_at_once
    connection.py:217 _start: connection_made raised: log with traceback, abort that connection
        - test_connection.py::test_exception_in_connection_made_aborts_only_that_connection
    connection.py:228 _on_readable: recv() raised: _io_failed decides (below)
        - EAGAIN, real: test_spurious_readability_meets_a_real_eagain_and_changes_nothing
        - EINTR: test_eintr_on_recv_waits_for_the_next_event_and_then_reads_the_data
        - ECONNRESET: test_econnreset_on_recv_aborts_once_and_logs_only_at_debug
        - ECONNRESET, real:
          test_a_peer_closing_with_our_bytes_unread_makes_a_real_econnreset_on_recv
        - EINVAL, ENOMEM:
          test_an_unexpected_recv_error_aborts_and_is_logged_as_an_error_with_its_traceback
    connection.py:245 _on_readable: data_received raised: log, abort that connection
        - test_connection.py::test_exception_in_data_received_aborts_only_that_connection
    connection.py:272 _on_eof: eof_received raised: log, abort; nothing else delivered
        - test_an_exception_in_eof_received_aborts_and_nothing_else_is_delivered
    connection.py:299 _idle_timed_out: idle_timed_out raised: log, abort that connection
        - test_an_exception_in_idle_timed_out_aborts_that_connection_only
    connection.py:353 write: send() raised: EAGAIN/EINTR queue it all; anything else goes to
        _io_failed
        - EINTR: test_eintr_on_send_queues_the_data_like_eagain
        - EAGAIN: test_an_exception_in_pause_writing_aborts_the_connection
        - EAGAIN, real:
          test_connection.py::test_write_queues_tail_when_send_is_partial_and_registers_the_writer
        - EPIPE, ECONNRESET: test_peer_gone_on_write_aborts_without_raising_into_the_protocol
        - EINVAL, ENOBUFS: test_an_unexpected_send_error_aborts_and_is_logged_as_an_error[write-*]
    connection.py:394 _on_writable: send()/sendmsg() raised: EAGAIN/EINTR keep the queue (a spurious
        wakeup); else _io_failed
        - EAGAIN after a partial send:
          test_partial_send_then_eagain_keeps_the_tail_queued_until_the_socket_is_writable
        - EAGAIN, real: test_spurious_writability_meets_a_real_eagain_and_keeps_the_queue
        - EAGAIN while closing:
          test_eof_while_output_is_queued_sends_it_all_then_closes_without_lingering
        - EPIPE, ECONNRESET via send and sendmsg:
          test_peer_gone_mid_write_drops_the_queue_and_reports_it_once
        - ECONNRESET/EPIPE, real:
          test_connection.py::test_peer_reset_while_data_is_queued_reports_the_error_once
        - EINVAL, ENOBUFS: test_an_unexpected_send_error_aborts_and_is_logged_as_an_error[flush-*]
    connection.py:444 _shutdown_write: shutdown(SHUT_WR) for write_eof raised: _io_failed
        - ENOTCONN (debug), EINVAL (error):
          test_write_eof_whose_shutdown_fails_aborts_with_the_error
        - after the queue drained:
          test_write_eof_failing_once_the_queue_drained_aborts_after_the_data_went_out
    connection.py:473 _finish_closing: shutdown(SHUT_WR) for close raised: close now,
        connection_lost(None), no linger
        - ENOTCONN, EINVAL: test_close_whose_shutdown_fails_tears_down_at_once_without_lingering
    connection.py:485 _discard_input: recv() while lingering raised: EAGAIN keeps lingering;
        anything else is a clean close
        - EAGAIN, real:
          test_lingering_close_survives_a_spurious_wakeup_discards_input_and_ends_at_the_fin
        - ECONNRESET, real: test_a_reset_while_lingering_still_ends_as_a_clean_close
    connection.py:501 _abort: setsockopt(SO_LINGER) raised: ignored, the close goes on
        - test_abort_when_so_linger_cannot_be_set_still_closes_once_and_quietly
    connection.py:532 _call_connection_lost: connection_lost raised: logged
        - test_connection.py::test_exception_in_connection_lost_is_logged
    connection.py:542 _io_failed: would block: nothing (reached from recv only: shutdown never says
        EAGAIN)
        - the recv EAGAIN/EINTR tests above
    connection.py:546 _io_failed: peer gone: debug log, abort(exc); else (unexpected, and resources
        exhausted too): error log with traceback, abort(exc)
        - the ECONNRESET/EPIPE/ENOTCONN tests above (debug); the EINVAL/ENOMEM/ENOBUFS ones (error)
    transport.py:108 _pause_protocol_writing: pause_writing raised: the transport's policy (TCP
        aborts, UDP logs and goes on)
        - test_an_exception_in_pause_writing_aborts_the_connection
        - test_exceptions_in_datagram_pause_and_resume_writing_are_logged_and_it_keeps_serving
    transport.py:122 _resume_protocol_writing: resume_writing raised: the same
        - test_an_exception_in_resume_writing_aborts_the_connection_after_the_queue_drained
        - test_exceptions_in_datagram_pause_and_resume_writing_are_logged_and_it_keeps_serving
    connector.py:73 start_tcp: the name does not resolve: on_error on a later pass
        - gaierror: test_connector.py::test_unresolvable_name_reports_gaierror_on_a_later_pass
        - UnicodeError: test_a_name_the_idna_codec_rejects_reports_unicode_error_on_a_later_pass
    connector.py:113 _try_next: socket() raised: remember it, try the next address
        - EMFILE: test_socket_creation_failing_is_reported_to_on_error_on_a_later_pass
        - EAFNOSUPPORT, real: test_an_address_family_this_host_lacks_is_skipped_for_the_next_address
    connector.py:118 _try_next: connected at once (Unix): made on a later pass
        - test_connect_unix_that_connects_at_once_is_still_made_on_a_later_pass
    connector.py:122 _try_next: EINPROGRESS: wait for writability
        - every SO_ERROR test below;
          test_connector.py::test_successful_connect_makes_a_connection_to_the_listener
    connector.py:130 _try_next: connect_ex() returned another errno: close, try the next address
        - ENETUNREACH: test_a_connect_failing_at_once_closes_its_socket_and_reports_on_a_later_pass
        - ENOENT, ECONNREFUSED, real:
          test_connect_unix_failing_at_once_reports_the_errno_on_a_later_pass
        - EAGAIN (full backlog), real:
          test_connect_unix_to_a_full_backlog_reports_eagain_as_an_error
        - connect_ex() *raising* is not handled: BUG,
          test_connect_unix_to_a_path_too_long_reports_to_on_error_instead_of_raising
    connector.py:133 _try_next: no address at all: EADDRNOTAVAIL. Unreachable for real: getaddrinfo
        raises rather than return []
        - test_a_name_that_resolves_to_no_address_reports_eaddrnotavail (resolve_stream patched)
    connector.py:142 _on_writable: SO_ERROR: 0 is a connection; any errno fails this address and
        tries the next
        - 0: test_a_successful_handshake_makes_a_connection_with_tcp_nodelay
        - ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH:
          test_so_error_after_the_handshake_is_reported_once_on_a_later_pass
        - ECONNREFUSED, real:
          test_connector.py::test_refused_connect_reports_connection_refused_on_a_later_pass
    connector.py:158 _connected: getpeername() raised: close, on_error
        - test_a_reset_between_the_handshake_and_getpeername_reaches_on_error
        - test_connector.py::test_reset_between_handshake_and_getpeername_reaches_on_error
        - setsockopt(TCP_NODELAY) just after is unguarded: BUG,
          test_tcp_nodelay_failing_after_the_handshake_is_reported_not_lost
    connector.py:169 _connected: the protocol factory raised: close, log (on_error is not called)
        - test_connector.py::test_failing_protocol_factory_closes_the_socket_and_is_logged
    connector.py:182 _timed_out: our own timeout: close, on_error(TimeoutError ETIMEDOUT)
        - test_a_connect_that_never_completes_times_out_once_and_closes_its_socket
        - test_connector.py::test_connect_timeout_reports_timeout_error
    connector.py:196 _fail: on_error raised: logged
        - test_connector.py::test_an_exception_from_on_error_is_logged_and_the_loop_goes_on
    datagram.py:230 connect: UDP connect() raised: close, try the next address, raise the last error
        - EACCES, real:
          test_udp_connect_failing_for_every_address_raises_the_last_error_and_leaks_nothing
    datagram.py:234 connect: anything else (KeyboardInterrupt): close, re-raise
        - test_an_interrupt_during_udp_connect_closes_the_socket_and_propagates
    datagram.py:253 from_socket: getpeername() ENOTCONN: an unconnected socket
        - every listen_udp test, e.g.
          test_udp.py::test_sendto_without_address_needs_a_connected_transport
    datagram.py:256 from_socket: the factory raised: close the socket, re-raise
        - test_a_failing_datagram_protocol_factory_closes_the_socket_and_propagates
    datagram.py:270 _start: connection_made raised: logged, the transport still reads
        - test_an_exception_in_datagram_connection_made_is_logged_and_the_transport_still_reads
    datagram.py:340 _on_readable: recvfrom() raised: would block ends the batch; else _io_failed
        (below)
        - EINTR: test_eintr_on_recvfrom_ends_the_batch_quietly_and_the_datagram_is_read_next_time
        - EBADF: test_a_broken_socket_on_recvfrom_closes_the_transport_with_the_error
        - ECONNREFUSED:
          test_a_peer_error_on_recvfrom_goes_to_error_received_and_the_transport_stays_open
        - ECONNREFUSED, real ICMP:
          test_udp.py::test_unreachable_peer_reports_connection_refused_and_the_transport_keeps_working
    datagram.py:350 _on_readable: datagram_received raised: logged, the transport goes on
        - test_udp.py::test_exception_in_datagram_received_is_logged_and_the_server_keeps_answering
    datagram.py:386 sendto: sendto() raised: EAGAIN/ENOBUFS queue it (dropped if past the bound);
        else error_received next pass
        - EAGAIN, ENOBUFS: test_udp.py::test_scripted_send_failure_queues_then_sends_in_order
        - dropped while queueing:
          test_eagain_on_a_datagram_larger_than_the_queue_bound_drops_it_and_reports_enobufs
        - EMSGSIZE, real: test_udp.py::test_kernel_emsgsize_goes_to_error_received_on_the_next_pass
        - EBADF: test_udp.py::test_error_meaning_the_socket_is_unusable_closes_the_transport
    datagram.py:409 _enqueue: the queue bound: drop, error_received(ENOBUFS) next pass
        - test_udp.py::test_datagram_past_the_queue_bound_is_dropped_and_reported
    datagram.py:428 _wait_to_send: EAGAIN waits for writability; ENOBUFS/ENOMEM for a timer (the
        socket may poll writable)
        - test_resource_shortage_while_flushing_retries_on_a_timer_not_on_writability
        - test_udp.py::test_scripted_send_failure_queues_then_sends_in_order
    datagram.py:448 _on_writable: a queued sendto() raised: wait (as above); else drop that one and
        go on, or stop if the socket broke (that 'return' only skips the lines after the loop:
        _teardown has emptied the queue)
        - ENOBUFS: test_resource_shortage_while_flushing_retries_on_a_timer_not_on_writability
        - EHOSTUNREACH:
          test_udp.py::test_error_on_a_queued_datagram_drops_only_that_one_and_reports_it
        - EBADF: test_a_broken_socket_while_flushing_closes_the_transport_and_drops_the_rest
    datagram.py:509 _call_connection_lost: connection_lost raised: logged
        - test_an_exception_in_datagram_connection_lost_is_logged
    datagram.py:522 _io_failed: EBADF/ENOTSOCK/EFAULT close the transport; anything else is
        error_received
        - the EBADF and ECONNREFUSED/EHOSTUNREACH/EMSGSIZE tests above
    datagram.py:537 _call_error_received: error_received raised: logged, the transport goes on
        - test_an_exception_in_error_received_is_logged_and_the_transport_keeps_serving
    errors.py:39 classify: the four kinds
        - test_errors.py (every test); every test above goes through it
    listener.py:110 open_tcp: listen() raised: close, re-raise
        - EADDRINUSE, real: test_listen_failing_after_bind_closes_the_socket_and_raises
    listener.py:132 open_unix: bind() raised: EADDRINUSE checks for a stale file; anything else is
        raised
        - stale, real: test_listen_unix_replaces_a_stale_socket_file_and_serves
        - ENOENT, too long:
          test_listen_unix_failing_to_bind_for_another_reason_raises_that_and_leaks_nothing
    listener.py:138 open_unix: any failure: close the socket, re-raise
        - the two above, and
          test_listen_unix_refuses_a_live_servers_path_and_leaves_it_alone (no descriptor left)
    listener.py:162 _on_readable: accept() raised: would block ends the batch; peer gone skips one;
        else pause
        - EAGAIN, EINTR:
          test_would_block_from_accept_ends_the_batch_and_the_client_is_accepted_next_time
        - ECONNABORTED:
          test_a_connection_aborted_in_the_backlog_is_skipped_and_the_same_batch_goes_on
        - test_listener.py::test_connection_aborted_in_the_backlog_is_skipped_quietly
        - setsockopt(TCP_NODELAY) after accept is unguarded: BUG,
          test_tcp_nodelay_failing_on_an_accepted_socket_neither_leaks_it_nor_escapes
    listener.py:186 _accepted: the protocol factory raised: log, close that socket, keep accepting
        - test_listener.py::test_failing_protocol_factory_is_logged_and_the_listener_keeps_accepting
    listener.py:207 _pause_accepting: stop accepting, retry on a timer; resources: warning, else
        error with traceback; once per episode
        - EMFILE, ENFILE, ENOBUFS, ENOMEM:
          test_resource_exhaustion_on_the_third_accept_pauses_accepting_then_resumes
        - test_accept_failing_again_on_the_retry_is_logged_once_per_episode
        - EPERM: test_an_unexpected_accept_error_is_logged_with_its_traceback_and_retried
        - test_listener.py::test_resource_errors_pause_accepting_and_close_cancels_the_retry
        - EMFILE, real:
          test_listener.py::test_emfile_on_accept_does_not_spin_and_pending_clients_are_served_later
    listener.py:238 close: the socket file is already gone: nothing to unlink
        - test_closing_a_unix_listener_whose_file_was_removed_is_quiet
    listener.py:245 remove_stale_unix_socket: not a socket: EADDRINUSE, the file is kept
        - test_listen_unix_never_removes_a_file_that_is_not_a_socket
    listener.py:249 remove_stale_unix_socket: nobody listens: unlink the stale file
        - test_listen_unix_replaces_a_stale_socket_file_and_serves
    listener.py:253 remove_stale_unix_socket: other probe errors are raised; EAGAIN was meant to be
        a live server with a full backlog, but the probe blocks and never sees it
        - EPROTOTYPE, real: test_a_probe_error_other_than_refused_is_raised_and_the_file_kept
        - EAGAIN unreachable: BUG,
          test_a_live_unix_server_with_a_full_backlog_is_detected_without_blocking
    listener.py:257 remove_stale_unix_socket: the probe connected: a live server, EADDRINUSE
        - test_listen_unix_refuses_a_live_servers_path_and_leaves_it_alone
    loop.py:399 _run_callback: a callback or timer raised: logged, the loop goes on
        - test_loop.py::test_exception_in_a_callback_is_logged_with_traceback_and_the_loop_keeps_running
        - test_loop.py::test_exception_in_a_timer_callback_is_logged
    poller.py:57 selector_class: unknown selector name: ValueError naming the choices
        - test_poller.py::test_unknown_selector_name_raises_value_error_listing_choices
    poller.py:169 poll: an I/O callback raised: on_error (the loop logs it) or re-raise
        - test_poller.py::test_on_error_gets_the_exception_and_the_fd
        - test_poller.py::test_without_on_error_an_io_callback_exception_propagates
        - test_poller.py::test_exception_in_an_io_callback_is_logged_and_the_loop_continues
    waker.py:45 wake: the wakeup socket is full: a wakeup is pending (InterruptedError: unreachable,
        PEP 475; the clause does what the next one does)
        - EAGAIN, real: test_waking_a_loop_whose_wakeup_socket_is_full_is_harmless
    waker.py:47 wake: the waker is closed: ignored
        - EBADF, real: test_waking_a_closed_reactor_is_silently_ignored
    waker.py:56 drain: drained (InterruptedError: unreachable, PEP 475; 'if not data' too: both ends
        close together)
        - every wakeup, e.g. test_waking_a_loop_whose_wakeup_socket_is_full_is_harmless

Bugs these tests found (fixed since; the tests stay):

* listener.py, ``remove_stale_unix_socket``: the probe socket is blocking, so a live server with
  a full backlog blocks ``listen_unix`` (the whole loop) until it accepts or exits; the EAGAIN
  branch is unreachable.
* connector.py, ``_try_next``: ``connect_ex`` raising (an AF_UNIX path over 107 bytes) escapes
  ``connect_unix``, leaks the socket, and leaves the timeout armed to report a TimeoutError later.
* listener.py ``_accepted`` and connector.py ``_connected``: ``setsockopt(TCP_NODELAY)`` is
  unguarded; on macOS and the BSDs it fails with EINVAL once the peer has reset the connection.

Unreachable on purpose (defensive), each noted in the table: InterruptedError in waker.py (PEP 475
retries EINTR inside ``send``/``recv``), the waker's first ``except`` (the next one does the same),
``_io_failed``'s would-block branch when called from ``shutdown``, the connector's EADDRNOTAVAIL
(``getaddrinfo`` raises rather than return nothing), and the ``if self._closed: return`` after a
broken datagram socket (``_teardown`` has emptied the queue the loop walks).
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import reactor.connector as connector_module
import reactor.datagram as datagram_module
import reactor.listener as listener_module
from reactor import Protocol, Reactor
from reactor.address import bind_socket
from reactor.checker import CheckedProtocol, checked_factory
from reactor.connection import LINGER_RESET, Connection, ConnectionState
from reactor.datagram import (
    MAX_QUEUED_DATAGRAM_BYTES,
    SEND_RETRY_DELAY_SECONDS,
    DatagramProtocol,
    DatagramState,
    DatagramTransport,
)
from reactor.listener import ACCEPT_RETRY_DELAY_SECONDS, Listener, remove_stale_unix_socket
from reactor.poller import EVENT_READ, EVENT_WRITE, SELECTOR_CLASSES
from reactor.testing import (
    ManualClock,
    ScriptedSelector,
    ScriptedSocket,
    Step,
    scripted_listening_socket,
    scripted_socketpair,
)
from tests.helpers import (
    SELECTOR_NAMES,
    DatagramRecorder,
    Echo,
    ProtocolBug,
    Recorder,
    fill_socket,
    run_until,
)

S = ConnectionState
#: A family number no kernel knows: ``socket()`` fails with a real EAFNOSUPPORT.
UNKNOWN_FAMILY = 9999
#: More than a socketpair's kernel buffers hold, so the rest must queue.
MORE_THAN_THE_KERNEL_HOLDS = b"x" * (4 << 20)

needs_proc_fds = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"),
                                    reason="counts open descriptors in /proc/self/fd")


# -- the harness -------------------------------------------------------------------------------


class Harness:
    """A reactor on a ``ScriptedSelector`` over one real selector class, on a manual clock, in
    debug mode (every protocol's callback order is checked, as in ``conftest.py``), and
    everything a test opens through it, closed at the end in reverse order."""

    def __init__(self, selector_name: str) -> None:
        self.selector_class = ScriptedSelector.over(SELECTOR_CLASSES[selector_name])
        self.clock = ManualClock()
        self.reactor = Reactor(self.selector_class, clock=self.clock, debug=True)
        [self.selector] = self.selector_class.instances
        self._cleanups: list[Callable[[], object]] = []

    def later(self, cleanup: Callable[[], object]) -> None:
        self._cleanups.append(cleanup)

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            cleanup()
        self.reactor.run_once(0)
        self.reactor.close()
        assert not self.reactor.contract_violations, self.reactor.contract_violations

    def checked(self, protocol: Any) -> Any:
        """``protocol`` wrapped as debug mode wraps those of ``listen_*``/``connect_*`` (a
        ``CheckedProtocol`` forwards every callback, so it stands in for any protocol)."""
        return CheckedProtocol(protocol, self.reactor.contract_violations.append)

    # -- things to test -----------------------------------------------------------------------

    def connection(
        self, protocol: Protocol, **scripts: list[Step]
    ) -> tuple[Connection, ScriptedSocket, socket.socket]:
        """A real Connection over a scripted socketpair end, started as the listener starts one."""
        sock, peer = scripted_socketpair(**scripts)
        self.later(peer.close)
        conn = Connection(self.reactor, sock, self.checked(protocol), "peer")
        self.later(conn.abort)
        conn._start()
        return conn, sock, peer

    def listener(self, factory: Callable[[], Protocol], **scripts: list[Step],
                 ) -> tuple[Listener, ScriptedSocket]:
        sock = scripted_listening_socket(**scripts)
        listener = Listener(self.reactor, sock,
                            checked_factory(factory, self.reactor.contract_violations.append))
        self.later(lambda: close_listener(listener))
        return listener, sock

    def client(self, address: Any, family: int = socket.AF_INET) -> socket.socket:
        client = socket.socket(family, socket.SOCK_STREAM)
        self.later(client.close)
        client.settimeout(2)
        client.connect(address)
        client.setblocking(False)
        return client

    def datagram(self, factory: Callable[[], DatagramProtocol], **scripts: list[Step],
                 ) -> tuple[DatagramTransport, ScriptedSocket, socket.socket]:
        """A real DatagramTransport over a scripted Unix datagram socket, and its peer."""
        sock, peer = scripted_socketpair(socket.AF_UNIX, socket.SOCK_DGRAM, **scripts)
        self.later(peer.close)
        transport = DatagramTransport.from_socket(
            self.reactor, lambda: self.checked(factory()), sock)
        self.later(transport.abort)
        return transport, sock, peer

    def connecting_socket(self, **scripts: list[Step]) -> ScriptedSocket:
        """A socket for the connector: its ``connect_ex`` says EINPROGRESS, and the real TCP
        connection under it is writable at once, as a socket whose handshake just ended."""
        sock, peer = scripted_socketpair(
            socket.AF_INET, connect_ex=[Step.returns(errno.EINPROGRESS)], **scripts)
        self.later(peer.close)
        self.later(sock.close)
        return sock

    # -- running ------------------------------------------------------------------------------

    def run_until(self, condition: Callable[[], object], timeout: float = 2.0) -> None:
        run_until(self.reactor, condition, timeout)

    def passes(self, count: int = 3) -> None:
        for _ in range(count):
            self.reactor.run_once(0)

    def advance(self, seconds: float) -> None:
        """Move the manual clock, then run one pass: the timers now due run."""
        self.clock.advance(seconds)
        self.reactor.run_once(0)

    def mask(self, fd: int) -> int:
        return self.reactor.poller.masks().get(fd, 0)

    def assert_a_timer_still_fires(self) -> None:
        fired: list[bool] = []
        self.reactor.call_later(0.0, fired.append, True)
        self.run_until(lambda: fired)

    def assert_another_connection_is_served(self) -> None:
        ours, theirs = socket.socketpair()
        self.later(theirs.close)
        conn = Connection(self.reactor, ours, self.checked(Echo()), "another")
        self.later(conn.abort)
        conn._start()
        theirs.setblocking(False)
        theirs.send(b"ping")
        echoed = bytearray()
        self.run_until(lambda: read_into(theirs, echoed) == b"ping")


@pytest.fixture(params=SELECTOR_NAMES)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    h = Harness(request.param)
    yield h
    h.close()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="reactor")
    return caplog


def reactor_records(caplog: pytest.LogCaptureFixture, at_least: int = logging.DEBUG,
                    ) -> list[logging.LogRecord]:
    return [record for record in caplog.records
            if record.name.startswith("reactor") and record.levelno >= at_least]


def hook_failures(caplog: pytest.LogCaptureFixture, *hooks: str) -> list[logging.LogRecord]:
    """The error records of exceptions raised on purpose by the protocol hooks ``hooks``, one
    each, in order: logged with their tracebacks by the transport's policy for protocol code
    (which names the hook), not by the loop's last-resort guard. Nothing else was logged."""
    records = reactor_records(caplog, logging.WARNING)
    assert len(records) == len(hooks), [record.getMessage() for record in records]
    for record, hook in zip(records, hooks):
        message = record.getMessage()
        assert record.levelno == logging.ERROR and f".{hook}" in message, message
        assert "callback <Handle" not in message and "I/O callback" not in message, message
        assert record.exc_info is not None and isinstance(record.exc_info[1], ProtocolBug)
    return records


def unhandled(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What reached the loop's last-resort guard for I/O callbacks."""
    return [r for r in caplog.records if r.getMessage().startswith("unhandled exception in I/O")]


def close_listener(listener: Listener) -> None:
    for connection in list(listener.connections):
        connection.abort()
    listener.close()


def read_into(sock: socket.socket, into: bytearray) -> bytes:
    """Append what non-blocking ``sock`` holds now to ``into``; return all of ``into``."""
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            break
        if not data:
            break
        into += data
    return bytes(into)


def drain(sock: socket.socket) -> tuple[bytes, str]:
    """Everything non-blocking ``sock`` holds now, and how it ends: "eof", "reset" or "open"."""
    received = bytearray()
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return bytes(received), "open"
        except ConnectionResetError:
            return bytes(received), "reset"
        if not data:
            return bytes(received), "eof"
        received += data


def echo(harness: Harness, client: socket.socket, message: bytes) -> None:
    client.send(message)
    received = bytearray()
    harness.run_until(lambda: read_into(client, received) == message)


def wait_readable(sock: socket.socket) -> None:
    """Block (bounded) until the kernel says ``sock`` is readable: a client is in the backlog."""
    readable, _, _ = select.select([sock], [], [], 2.0)
    assert readable, "no client reached the backlog"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class SocketModule(ModuleType):
    """Stands in for ``socket`` inside one reactor module: its ``socket()`` hands out the given
    sockets, or raises the given exceptions, in order; every other name is the real module's."""

    def __init__(self, *made: socket.socket | BaseException) -> None:
        super().__init__("socket")
        self._made = deque(made)
        self.requests: list[tuple[int, int, int]] = []

    def socket(self, family: int = -1, type: int = -1, proto: int = -1) -> socket.socket:
        self.requests.append((family, type, proto))
        made = self._made.popleft()
        if isinstance(made, BaseException):
            raise made
        return made

    def __getattr__(self, name: str) -> Any:
        return getattr(socket, name)


# == Connection: the read path =================================================================


def test_spurious_readability_meets_a_real_eagain_and_changes_nothing(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(protocol)
    harness.selector.report(conn.fileno(), EVENT_READ)
    harness.reactor.run_once(0)
    [recv] = sock.called("recv")
    assert recv.step is None and isinstance(recv.error, BlockingIOError)  # the kernel's answer
    assert conn.state is S.OPEN and protocol.events == ["made"]
    assert harness.mask(conn.fileno()) == EVENT_READ
    assert reactor_records(logs) == []
    peer.send(b"after")
    harness.run_until(lambda: protocol.received == b"after")
    assert protocol.events == ["made", "data"]


def test_eintr_on_recv_waits_for_the_next_event_and_then_reads_the_data(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(protocol, recv=[Step.raises(errno.EINTR)])
    peer.send(b"data")
    harness.run_until(lambda: protocol.received == b"data")
    first, second = sock.called("recv")
    assert isinstance(first.error, InterruptedError) and second.result == b"data"
    assert protocol.events == ["made", "data"] and conn.state is S.OPEN
    assert reactor_records(logs) == []


def test_econnreset_on_recv_aborts_once_and_logs_only_at_debug(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(protocol, recv=[Step.raises(errno.ECONNRESET)])
    fd = conn.fileno()
    peer.send(b"x")
    harness.run_until(lambda: protocol.lost_with)
    harness.passes()
    [exc] = protocol.lost_with
    assert isinstance(exc, ConnectionResetError) and exc is sock.called("recv")[0].error
    assert protocol.events == ["made", "lost"]
    assert conn.state is S.CLOSED and len(conn.recv_buffer) == len(conn.send_buffer) == 0
    assert fd not in harness.reactor.poller.masks()
    assert [call.name for call in sock.calls] == ["recv", "setsockopt", "close"]
    assert sock.called("setsockopt")[0].args == (socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    [record] = reactor_records(logs)
    assert record.levelno == logging.DEBUG
    assert "recv failed, peer gone: ECONNRESET" in record.getMessage()
    harness.assert_a_timer_still_fires()


def test_a_peer_closing_with_our_bytes_unread_makes_a_real_econnreset_on_recv(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(protocol)
    conn.write(b"never read")
    peer.close()  # with unread input: the kernel resets the connection
    harness.run_until(lambda: protocol.lost_with)
    [exc] = protocol.lost_with
    [recv] = sock.called("recv")
    assert recv.step is None and recv.error is exc and isinstance(exc, ConnectionResetError)
    assert protocol.events == ["made", "lost"] and conn.state is S.CLOSED
    assert [r.levelno for r in reactor_records(logs)] == [logging.DEBUG]


def test_a_real_reset_is_reported_readable_and_writable_and_handled_once_read_first(
    harness: Harness,
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(protocol)
    fd = conn.fileno()
    conn.write(MORE_THAN_THE_KERNEL_HOLDS)
    assert conn.get_write_buffer_size() > 0
    assert harness.mask(fd) == EVENT_READ | EVENT_WRITE
    sends = len(sock.calls)
    peer.close()
    harness.run_until(lambda: protocol.lost_with)
    harness.passes()
    assert any(seen.get(fd) == EVENT_READ | EVENT_WRITE for seen in harness.selector.history)
    assert [call.name for call in sock.calls[sends:]] == ["recv", "setsockopt", "close"]
    assert isinstance(protocol.lost_with[0], ConnectionResetError)
    assert protocol.events == ["made", "pause", "lost"]  # paused: the queue passed high water
    assert conn.get_write_buffer_size() == 0


def test_hang_up_reported_readable_and_writable_reads_first_and_never_writes_after_the_abort(
    harness: Harness,
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(
        protocol, send=[Step.accepts(2)], recv=[Step.raises(errno.ECONNRESET)])
    fd = conn.fileno()
    conn.write(b"hello")
    assert conn.get_write_buffer_size() == 3 and harness.mask(fd) == EVENT_READ | EVENT_WRITE
    harness.selector.report(fd, EVENT_READ | EVENT_WRITE)
    harness.reactor.run_once(0)
    assert harness.selector.history[-1][fd] == EVENT_READ | EVENT_WRITE
    assert [call.name for call in sock.calls] == ["send", "recv", "setsockopt", "close"]
    assert conn.state is S.CLOSED and conn.get_write_buffer_size() == 0
    harness.passes()
    assert protocol.events == ["made", "lost"]
    assert drain(peer) == (b"he", "eof")
    assert sock.unused() == {}


@pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOMEM])
def test_an_unexpected_recv_error_aborts_and_is_logged_as_an_error_with_its_traceback(
    harness: Harness, logs: pytest.LogCaptureFixture, code: int
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(protocol, recv=[Step.raises(code)])
    peer.send(b"x")
    harness.run_until(lambda: protocol.lost_with)
    [exc] = protocol.lost_with
    assert isinstance(exc, OSError) and exc.errno == code
    [record] = reactor_records(logs, logging.WARNING)
    assert record.levelno == logging.ERROR and "recv failed" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[1] is exc
    assert conn.state is S.CLOSED and protocol.events == ["made", "lost"]
    harness.assert_another_connection_is_served()


def test_an_exception_in_eof_received_aborts_and_nothing_else_is_delivered(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    protocol = Recorder(fail_in=frozenset({"eof"}))
    conn, sock, peer = harness.connection(protocol)
    peer.shutdown(socket.SHUT_WR)
    harness.run_until(lambda: protocol.lost_with)
    harness.passes()
    assert protocol.events == ["made", "eof", "lost"]
    [exc] = protocol.lost_with
    assert isinstance(exc, ProtocolBug)
    [record] = hook_failures(logs, "eof_received")
    assert record.exc_info is not None and record.exc_info[1] is exc
    assert conn.state is S.CLOSED
    assert sock.called("setsockopt") and not sock.called("shutdown")  # aborted, not closed
    harness.assert_another_connection_is_served()


def test_eof_while_output_is_queued_sends_it_all_then_closes_without_lingering(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(
        protocol, send=[Step.accepts(4), Step.raises(errno.EAGAIN)])
    conn.write(b"reply-bytes")
    assert conn.get_write_buffer_size() == 7
    peer.shutdown(socket.SHUT_WR)
    harness.run_until(lambda: conn.state is S.CLOSING)  # one pass: EOF read, then EAGAIN
    assert protocol.events == ["made", "eof"] and conn.get_write_buffer_size() == 7
    harness.run_until(lambda: protocol.lost_with)
    assert protocol.lost_with == [None] and protocol.events == ["made", "eof", "lost"]
    assert [call.step is None for call in sock.called("send")] == [False, False, True]
    assert not sock.called("shutdown") and len(harness.reactor._timers) == 0  # no lingering
    assert drain(peer) == (b"reply-bytes", "eof")
    assert reactor_records(logs) == []


def test_eof_while_output_is_queued_can_leave_the_connection_half_closed(
    harness: Harness,
) -> None:
    protocol = Recorder(keep_open=True)
    conn, sock, peer = harness.connection(protocol, send=[Step.accepts(4)])
    conn.write(b"reply-bytes")
    peer.shutdown(socket.SHUT_WR)
    harness.run_until(lambda: conn.get_write_buffer_size() == 0)
    assert conn.state is S.HALF_CLOSED and protocol.events == ["made", "eof"]
    assert drain(peer) == (b"reply-bytes", "open")
    conn.write(b"!")
    assert drain(peer) == (b"!", "open")


# == Connection: the write path ================================================================


def test_partial_send_then_eagain_keeps_the_tail_queued_until_the_socket_is_writable(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(
        protocol, send=[Step.accepts(3), Step.raises(errno.EAGAIN)])
    fd = conn.fileno()
    conn.write(b"hello world")
    assert drain(peer) == (b"hel", "open")
    assert conn.send_buffer.peek() == b"lo world"
    assert harness.mask(fd) == EVENT_READ | EVENT_WRITE
    harness.reactor.run_once(0)  # writable, yet send() says EAGAIN: nothing changes
    assert conn.get_write_buffer_size() == 8 and harness.mask(fd) == EVENT_READ | EVENT_WRITE
    harness.run_until(lambda: conn.get_write_buffer_size() == 0)
    assert drain(peer) == (b"lo world", "open")
    assert harness.mask(fd) == EVENT_READ  # the writer is gone with the queue
    assert [(call.step is None, call.result) for call in sock.called("send")] == [
        (False, 3), (False, None), (True, 8)]
    assert protocol.events == ["made"] and conn.state is S.OPEN
    assert reactor_records(logs) == []


def test_eintr_on_send_queues_the_data_like_eagain(harness: Harness) -> None:
    conn, sock, peer = harness.connection(Recorder(), send=[Step.raises(errno.EINTR)])
    conn.write(b"data")
    assert conn.get_write_buffer_size() == 4
    assert harness.mask(conn.fileno()) == EVENT_READ | EVENT_WRITE
    harness.run_until(lambda: conn.get_write_buffer_size() == 0)
    assert drain(peer) == (b"data", "open") and conn.state is S.OPEN


def test_spurious_writability_meets_a_real_eagain_and_keeps_the_queue(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    conn, sock, peer = harness.connection(Recorder())
    fd = conn.fileno()
    conn.write(MORE_THAN_THE_KERNEL_HOLDS)
    queued = conn.get_write_buffer_size()
    assert queued > 0
    before = len(sock.calls)
    harness.selector.report(fd, EVENT_WRITE)  # the kernel's buffer is still full
    harness.reactor.run_once(0)
    [call] = sock.calls[before:]
    assert call.step is None and isinstance(call.error, BlockingIOError)
    assert conn.get_write_buffer_size() == queued and conn.state is S.OPEN
    assert harness.mask(fd) == EVENT_READ | EVENT_WRITE
    assert reactor_records(logs) == []


@pytest.mark.parametrize(("code", "kind"), [(errno.EPIPE, BrokenPipeError),
                                            (errno.ECONNRESET, ConnectionResetError)])
def test_peer_gone_on_write_aborts_without_raising_into_the_protocol(
    harness: Harness, logs: pytest.LogCaptureFixture, code: int, kind: type[OSError]
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(protocol, send=[Step.raises(code)])
    conn.write(b"lost")
    assert conn.state is S.CLOSED and protocol.events == ["made"]  # connection_lost comes later
    conn.write(b"dropped")
    assert len(sock.called("send")) == 1
    harness.passes()
    assert protocol.events == ["made", "lost"]
    [exc] = protocol.lost_with
    assert type(exc) is kind
    [record] = reactor_records(logs)
    assert record.levelno == logging.DEBUG and "send failed, peer gone" in record.getMessage()
    harness.assert_a_timer_still_fires()


@pytest.mark.parametrize("code", [errno.EPIPE, errno.ECONNRESET])
@pytest.mark.parametrize("path", ["send", "sendmsg"])
def test_peer_gone_mid_write_drops_the_queue_and_reports_it_once(
    harness: Harness, logs: pytest.LogCaptureFixture, code: int, path: str
) -> None:
    protocol = Recorder()
    if path == "send":  # one queued chunk goes out with send()
        conn, sock, peer = harness.connection(
            protocol, send=[Step.accepts(3), Step.raises(code)])
        conn.write(b"hello")
    else:  # several queued chunks go out with one vectored sendmsg()
        conn, sock, peer = harness.connection(
            protocol, send=[Step.accepts(3)], sendmsg=[Step.raises(code)])
        conn.write(b"hello")
        conn.write(b"w" * 2048)
    harness.run_until(lambda: protocol.lost_with)
    harness.passes()
    assert protocol.events == ["made", "lost"]
    assert protocol.lost_with == [sock.called(path)[-1].error]
    assert conn.state is S.CLOSED and conn.get_write_buffer_size() == 0
    assert drain(peer) == (b"hel", "eof")
    [record] = reactor_records(logs)
    assert record.levelno == logging.DEBUG and "send failed, peer gone" in record.getMessage()
    assert sock.unused() == {}
    harness.assert_another_connection_is_served()


@pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOBUFS])
@pytest.mark.parametrize("when", ["write", "flush"])
def test_an_unexpected_send_error_aborts_and_is_logged_as_an_error(
    harness: Harness, logs: pytest.LogCaptureFixture, code: int, when: str
) -> None:
    protocol = Recorder()
    script = [Step.raises(code)] if when == "write" else [Step.raises(errno.EAGAIN),
                                                          Step.raises(code)]
    conn, sock, peer = harness.connection(protocol, send=script)
    conn.write(b"data")
    harness.run_until(lambda: protocol.lost_with)
    [exc] = protocol.lost_with
    assert isinstance(exc, OSError) and exc.errno == code
    [record] = reactor_records(logs, logging.WARNING)
    assert record.levelno == logging.ERROR and "send failed" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[1] is exc
    assert conn.state is S.CLOSED and protocol.events == ["made", "lost"]


def test_an_exception_in_pause_writing_aborts_the_connection(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    protocol = Recorder(fail_in=frozenset({"pause"}))
    conn, sock, peer = harness.connection(protocol, send=[Step.raises(errno.EAGAIN)])
    conn.set_write_buffer_limits(high=4)
    conn.write(b"0123456789")
    assert conn.state is S.CLOSED and conn.get_write_buffer_size() == 0
    harness.passes()
    assert protocol.events == ["made", "pause", "lost"]
    [exc] = protocol.lost_with
    assert isinstance(exc, ProtocolBug)
    hook_failures(logs, "pause_writing")
    assert drain(peer) == (b"", "eof")
    harness.assert_another_connection_is_served()


def test_an_exception_in_resume_writing_aborts_the_connection_after_the_queue_drained(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    protocol = Recorder(fail_in=frozenset({"resume"}))
    conn, sock, peer = harness.connection(protocol, send=[Step.raises(errno.EAGAIN)])
    conn.set_write_buffer_limits(high=4, low=0)
    conn.write(b"0123456789")
    assert protocol.events == ["made", "pause"]
    harness.run_until(lambda: protocol.lost_with)
    harness.passes()
    assert protocol.events == ["made", "pause", "resume", "lost"]
    assert isinstance(protocol.lost_with[0], ProtocolBug)
    hook_failures(logs, "resume_writing")
    assert drain(peer) == (b"0123456789", "eof")


# == Connection: half-close, close, abort =====================================================


@pytest.mark.parametrize(("code", "level"), [(errno.ENOTCONN, logging.DEBUG),
                                             (errno.EINVAL, logging.ERROR)])
def test_write_eof_whose_shutdown_fails_aborts_with_the_error(
    harness: Harness, logs: pytest.LogCaptureFixture, code: int, level: int
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(protocol, shutdown=[Step.raises(code)])
    conn.write_eof()
    assert conn.state is S.CLOSED
    harness.passes()
    assert protocol.events == ["made", "lost"]
    [exc] = protocol.lost_with
    assert isinstance(exc, OSError) and exc.errno == code
    [record] = reactor_records(logs)
    assert record.levelno == level and "shutdown failed" in record.getMessage()


def test_write_eof_failing_once_the_queue_drained_aborts_after_the_data_went_out(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(
        protocol, send=[Step.accepts(2)], shutdown=[Step.raises(errno.ENOTCONN)])
    conn.write(b"abcd")
    conn.write_eof()
    assert conn.state is S.WRITE_SHUT and conn.get_write_buffer_size() == 2
    harness.run_until(lambda: protocol.lost_with)
    assert [call.name for call in sock.calls] == [
        "send", "send", "shutdown", "setsockopt", "close"]
    assert drain(peer) == (b"abcd", "eof")
    [exc] = protocol.lost_with
    assert isinstance(exc, OSError) and exc.errno == errno.ENOTCONN


@pytest.mark.parametrize("code", [errno.ENOTCONN, errno.EINVAL])
def test_close_whose_shutdown_fails_tears_down_at_once_without_lingering(
    harness: Harness, logs: pytest.LogCaptureFixture, code: int
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(protocol, shutdown=[Step.raises(code)])
    conn.close()
    assert conn.state is S.CLOSED and len(harness.reactor._timers) == 0
    harness.passes()
    assert protocol.lost_with == [None] and protocol.events == ["made", "lost"]
    assert [call.name for call in sock.calls] == ["shutdown", "close"]  # closed, not aborted
    assert reactor_records(logs) == []


def test_lingering_close_survives_a_spurious_wakeup_discards_input_and_ends_at_the_fin(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(protocol)
    fd = conn.fileno()
    conn.close()
    assert conn.state is S.CLOSING and harness.mask(fd) == EVENT_READ  # waiting for the FIN
    harness.selector.report(fd, EVENT_READ)
    harness.reactor.run_once(0)
    assert isinstance(sock.called("recv")[-1].error, BlockingIOError)
    assert conn.state is S.CLOSING
    peer.send(b"ignored")
    harness.run_until(lambda: sock.called("recv")[-1].result == b"ignored")
    assert conn.state is S.CLOSING and protocol.events == ["made"]  # discarded, not delivered
    peer.shutdown(socket.SHUT_WR)
    harness.run_until(lambda: protocol.lost_with)
    assert protocol.lost_with == [None] and len(harness.reactor._timers) == 0
    assert reactor_records(logs) == []


def test_a_reset_while_lingering_still_ends_as_a_clean_close(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(protocol)
    conn.write(b"bye")
    conn.close()
    assert conn.state is S.CLOSING
    peer.close()  # "bye" unread: our recv() gets a real ECONNRESET
    harness.run_until(lambda: protocol.lost_with)
    assert isinstance(sock.called("recv")[-1].error, ConnectionResetError)
    assert protocol.lost_with == [None] and protocol.events == ["made", "lost"]
    assert len(harness.reactor._timers) == 0 and reactor_records(logs) == []


def test_abort_when_so_linger_cannot_be_set_still_closes_once_and_quietly(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    protocol = Recorder()
    conn, sock, peer = harness.connection(protocol, setsockopt=[Step.raises(errno.EINVAL)])
    conn.abort()
    assert conn.state is S.CLOSED and sock.fileno() == -1
    assert [call.name for call in sock.calls] == ["setsockopt", "close"]
    conn.abort()
    harness.passes()
    assert protocol.lost_with == [None] and protocol.events == ["made", "lost"]
    assert reactor_records(logs) == []


def test_an_exception_in_idle_timed_out_aborts_that_connection_only(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    made: list[Recorder] = []

    def factory() -> Recorder:
        made.append(Recorder(fail_in=frozenset({"idle"})))
        return made[-1]

    listener = harness.reactor.listen_tcp(factory, "127.0.0.1", 0, idle_timeout=1.0)
    harness.later(lambda: close_listener(listener))
    harness.client(listener.address)
    harness.run_until(lambda: made)
    for _ in range(8):  # two timeouts, a quarter at a time: the sweeper's period
        harness.advance(0.25)
    harness.run_until(lambda: made[0].lost_with)
    assert made[0].events == ["made", "idle", "lost"]
    assert isinstance(made[0].lost_with[0], ProtocolBug)
    hook_failures(logs, "idle_timed_out")
    harness.assert_another_connection_is_served()


# == Listener =================================================================================


@pytest.mark.parametrize(("code", "kind"), [(errno.EAGAIN, BlockingIOError),
                                            (errno.EINTR, InterruptedError)])
def test_would_block_from_accept_ends_the_batch_and_the_client_is_accepted_next_time(
    harness: Harness, logs: pytest.LogCaptureFixture, code: int, kind: type[OSError]
) -> None:
    made: list[Echo] = []
    listener, lsock = harness.listener(lambda: Echo(made), accept=[Step.raises(code)])
    client = harness.client(listener.address)
    wait_readable(lsock)
    harness.reactor.run_once(0)
    assert made == [] and harness.mask(lsock.fileno()) == EVENT_READ
    harness.run_until(lambda: made)
    assert [(call.step is None, type(call.error)) for call in lsock.called("accept")] == [
        (False, kind), (True, type(None)), (True, BlockingIOError)]
    echo(harness, client, b"ping")
    assert reactor_records(logs) == []


def test_a_connection_aborted_in_the_backlog_is_skipped_and_the_same_batch_goes_on(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    made: list[Echo] = []
    listener, lsock = harness.listener(
        lambda: Echo(made), accept=[Step.raises(errno.ECONNABORTED)])
    client = harness.client(listener.address)
    wait_readable(lsock)
    harness.reactor.run_once(0)  # one readiness event: skip, accept, EAGAIN
    assert len(made) == 1
    assert [(call.step is None, type(call.error)) for call in lsock.called("accept")] == [
        (False, ConnectionAbortedError), (True, type(None)), (True, BlockingIOError)]
    echo(harness, client, b"ping")
    assert reactor_records(logs) == []


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM])
def test_resource_exhaustion_on_the_third_accept_pauses_accepting_then_resumes(
    harness: Harness, logs: pytest.LogCaptureFixture, code: int
) -> None:
    made: list[Echo] = []
    listener, lsock = harness.listener(
        lambda: Echo(made), accept=[Step.real(), Step.real(), Step.raises(code)])
    clients = [harness.client(listener.address) for _ in range(3)]
    wait_readable(lsock)
    harness.reactor.run_once(0)
    assert len(made) == 2 and len(lsock.called("accept")) == 3
    assert lsock.fileno() not in harness.reactor.poller.masks()  # not even polled: no spin
    harness.passes(5)
    assert len(lsock.called("accept")) == 3 and len(made) == 2
    [paused] = reactor_records(logs, logging.WARNING)
    assert f"accept failed with {errno.errorcode[code]}" in paused.getMessage()
    harness.advance(ACCEPT_RETRY_DELAY_SECONDS)
    harness.run_until(lambda: len(made) == 3)
    assert harness.mask(lsock.fileno()) == EVENT_READ
    paused_again, resumed = reactor_records(logs, logging.WARNING)
    assert paused_again is paused and resumed.getMessage().endswith("accepting again")
    for number, client in enumerate(clients):
        echo(harness, client, b"client %d" % number)


def test_accept_failing_again_on_the_retry_is_logged_once_per_episode(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    made: list[Echo] = []
    listener, lsock = harness.listener(
        lambda: Echo(made), accept=[Step.raises(errno.EMFILE), Step.raises(errno.EMFILE)])
    client = harness.client(listener.address)
    wait_readable(lsock)
    harness.reactor.run_once(0)
    harness.advance(ACCEPT_RETRY_DELAY_SECONDS)
    harness.run_until(lambda: len(lsock.called("accept")) == 2)
    assert lsock.fileno() not in harness.reactor.poller.masks()
    harness.advance(ACCEPT_RETRY_DELAY_SECONDS)
    harness.run_until(lambda: made)
    messages = [record.getMessage() for record in reactor_records(logs, logging.WARNING)]
    assert len(messages) == 2
    assert "accept failed with EMFILE" in messages[0] and messages[1].endswith("accepting again")
    echo(harness, client, b"ping")


def test_an_unexpected_accept_error_is_logged_with_its_traceback_and_retried(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    made: list[Echo] = []
    listener, lsock = harness.listener(lambda: Echo(made), accept=[Step.raises(errno.EPERM)])
    client = harness.client(listener.address)
    wait_readable(lsock)
    harness.reactor.run_once(0)
    assert lsock.fileno() not in harness.reactor.poller.masks()
    [record] = reactor_records(logs, logging.WARNING)
    assert record.levelno == logging.ERROR and "accept failed; retrying" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], PermissionError)
    harness.advance(ACCEPT_RETRY_DELAY_SECONDS)
    harness.run_until(lambda: made)
    echo(harness, client, b"ping")


def test_tcp_nodelay_failing_on_an_accepted_socket_neither_leaks_it_nor_escapes(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    dead, dead_peer = scripted_socketpair(socket.AF_INET, setsockopt=[Step.raises(errno.EINVAL)])
    harness.later(dead_peer.close)
    harness.later(dead.close)
    listener, lsock = harness.listener(
        Echo, accept=[Step.returns((dead, dead_peer.getsockname()))])
    client = harness.client(listener.address)  # readiness, and a client to serve afterwards
    echo(harness, client, b"still served")
    assert unhandled(logs) == []
    assert dead.fileno() == -1 or any(c.fileno() == dead.fileno() for c in listener.connections)


def test_listen_failing_after_bind_closes_the_socket_and_raises(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    competitor = socket.socket()
    harness.later(competitor.close)
    competitor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    competitor.bind(("127.0.0.1", 0))
    port = competitor.getsockname()[1]
    bound: list[socket.socket] = []

    def bind_then_the_competitor_listens(*args: Any, **kwargs: Any) -> socket.socket:
        sock = bind_socket(*args, **kwargs)  # both bound with SO_REUSEADDR: Linux allows it...
        bound.append(sock)
        competitor.listen()  # ...until one listens: our listen() then fails for real
        return sock

    monkeypatch.setattr(listener_module, "bind_socket", bind_then_the_competitor_listens)
    with pytest.raises(OSError) as caught:
        harness.reactor.listen_tcp(Echo, "127.0.0.1", port)
    assert caught.value.errno == errno.EADDRINUSE
    assert bound[0].fileno() == -1
    assert len(harness.reactor.poller) == 1  # the waker alone


# -- Unix listening sockets: stale files, live servers, other files ---------------------------


def test_listen_unix_replaces_a_stale_socket_file_and_serves(
    harness: Harness, tmp_path: Path
) -> None:
    path = str(tmp_path / "s")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # a server that died without unlinking: the file stays
    listener = harness.reactor.listen_unix(Echo, path)
    harness.later(lambda: close_listener(listener))
    client = harness.client(path, socket.AF_UNIX)
    echo(harness, client, b"ping")


@needs_proc_fds
def test_listen_unix_refuses_a_live_servers_path_and_leaves_it_alone(
    harness: Harness, tmp_path: Path
) -> None:
    path = str(tmp_path / "s")
    live = socket.socket(socket.AF_UNIX)
    harness.later(live.close)
    live.bind(path)
    live.listen(8)
    fds = open_fds()
    with pytest.raises(OSError) as caught:
        harness.reactor.listen_unix(Echo, path)
    assert caught.value.errno == errno.EADDRINUSE
    assert "in use by a running server" in str(caught.value)
    assert os.path.exists(path) and open_fds() == fds
    assert len(harness.reactor.poller) == 1


def test_listen_unix_never_removes_a_file_that_is_not_a_socket(
    harness: Harness, tmp_path: Path
) -> None:
    path = tmp_path / "s"
    path.write_text("precious")
    with pytest.raises(OSError) as caught:
        harness.reactor.listen_unix(Echo, str(path))
    assert caught.value.errno == errno.EADDRINUSE and "not a socket" in str(caught.value)
    assert path.read_text() == "precious"


@needs_proc_fds
@pytest.mark.parametrize("where", ["missing directory", "path too long"])
def test_listen_unix_failing_to_bind_for_another_reason_raises_that_and_leaks_nothing(
    harness: Harness, tmp_path: Path, where: str
) -> None:
    path = str(tmp_path / "missing" / "s") if where == "missing directory" else "/" + "x" * 200
    fds = open_fds()
    with pytest.raises(OSError) as caught:
        harness.reactor.listen_unix(Echo, path)
    if where == "missing directory":  # bind()'s own ENOENT, not a stale-file check's
        assert type(caught.value) is FileNotFoundError and caught.value.filename is None
    else:
        assert caught.value.errno is None and "too long" in str(caught.value)
    assert open_fds() == fds and len(harness.reactor.poller) == 1


def test_a_probe_error_other_than_refused_is_raised_and_the_file_kept(
    harness: Harness, tmp_path: Path
) -> None:
    path = str(tmp_path / "s")
    datagram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    harness.later(datagram.close)
    datagram.bind(path)  # a stream probe connecting to it: EPROTOTYPE
    with pytest.raises(OSError) as caught:
        harness.reactor.listen_unix(Echo, path)
    assert caught.value.errno == errno.EPROTOTYPE and os.path.exists(path)


def test_a_live_unix_server_with_a_full_backlog_is_detected_without_blocking(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "s")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(0)
    fillers: list[socket.socket] = []
    while True:  # connect until the kernel says the backlog is full
        filler = socket.socket(socket.AF_UNIX)
        filler.setblocking(False)
        fillers.append(filler)
        try:
            filler.connect(path)
        except BlockingIOError:
            break
    outcome: list[OSError] = []

    def probe() -> None:
        try:
            remove_stale_unix_socket(path)
        except OSError as exc:
            outcome.append(exc)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    prober.join(1.0)
    blocked = prober.is_alive()
    server.close()  # a blocked probe now fails with ECONNREFUSED and returns
    prober.join(2.0)
    for filler in fillers:
        filler.close()
    assert not blocked, "the probe blocked on the full backlog"
    [exc] = outcome
    assert exc.errno == errno.EADDRINUSE and "in use by a running server" in str(exc)


def test_closing_a_unix_listener_whose_file_was_removed_is_quiet(
    harness: Harness, tmp_path: Path
) -> None:
    path = str(tmp_path / "s")
    listener = harness.reactor.listen_unix(Echo, path)
    os.unlink(path)
    listener.close()
    assert len(harness.reactor.poller) == 1


# == Connector =================================================================================


class Attempt:
    """One connect with everything it reports recorded."""

    def __init__(self) -> None:
        self.made: list[Recorder] = []
        self.errors: list[BaseException] = []

    def factory(self) -> Recorder:
        self.made.append(Recorder())
        return self.made[-1]


@pytest.mark.parametrize(("code", "kind"), [(errno.ECONNREFUSED, ConnectionRefusedError),
                                            (errno.ETIMEDOUT, TimeoutError),
                                            (errno.EHOSTUNREACH, OSError)])
def test_so_error_after_the_handshake_is_reported_once_on_a_later_pass(
    harness: Harness, code: int, kind: type[OSError]
) -> None:
    sock = harness.connecting_socket(getsockopt=[Step.returns(code)])
    fd = sock.fileno()
    sockets = SocketModule(sock)
    attempt = Attempt()
    connector = harness.reactor.connect_tcp(attempt.factory, "127.0.0.1", 9,
                                            socket_factory=sockets.socket, timeout=5.0,
                                            on_error=attempt.errors.append)
    assert sockets.requests == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)]
    assert attempt.errors == [] and harness.mask(fd) == EVENT_WRITE
    harness.run_until(lambda: attempt.errors)
    harness.passes()
    [exc] = attempt.errors
    assert type(exc) is kind and exc.errno == code
    assert attempt.made == [] and connector.connection is None
    assert [call.name for call in sock.calls] == ["setblocking", "connect_ex", "getsockopt",
                                                  "close"]
    assert sock.called("getsockopt")[0].args == (socket.SOL_SOCKET, socket.SO_ERROR)
    assert fd not in harness.reactor.poller.masks() and len(harness.reactor._timers) == 0
    harness.assert_a_timer_still_fires()


def test_a_connect_failing_at_once_closes_its_socket_and_reports_on_a_later_pass(
    harness: Harness
) -> None:
    sock, peer = scripted_socketpair(socket.AF_INET,
                                     connect_ex=[Step.returns(errno.ENETUNREACH)])
    harness.later(peer.close)
    sockets = SocketModule(sock)
    attempt = Attempt()
    harness.reactor.connect_tcp(attempt.factory, "127.0.0.1", 9,
                                socket_factory=sockets.socket, on_error=attempt.errors.append)
    assert attempt.errors == [] and sock.fileno() == -1
    assert [call.name for call in sock.calls] == ["setblocking", "connect_ex", "close"]
    harness.run_until(lambda: attempt.errors)
    [exc] = attempt.errors
    assert isinstance(exc, OSError) and exc.errno == errno.ENETUNREACH and attempt.made == []
    assert len(harness.reactor._timers) == 0 and len(harness.reactor.poller) == 1


def test_a_successful_handshake_makes_a_connection_with_tcp_nodelay(
    harness: Harness
) -> None:
    sock = harness.connecting_socket(getsockopt=[Step.returns(0)])
    sockets = SocketModule(sock)
    attempt = Attempt()
    connector = harness.reactor.connect_tcp(attempt.factory, "127.0.0.1", 9,
                                            socket_factory=sockets.socket,
                                            on_error=attempt.errors.append)
    harness.run_until(lambda: attempt.made)
    conn = connector.connection
    assert conn is not None and conn.state is S.OPEN and attempt.errors == []
    assert sock.called("setsockopt")[0].args == (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert conn.peer_address == sock.called("getpeername")[0].result
    harness.later(conn.abort)
    assert len(harness.reactor._timers) == 0


def test_a_reset_between_the_handshake_and_getpeername_reaches_on_error(
    harness: Harness
) -> None:
    sock = harness.connecting_socket(getsockopt=[Step.returns(0)],
                                     getpeername=[Step.raises(errno.ENOTCONN)])
    sockets = SocketModule(sock)
    attempt = Attempt()
    harness.reactor.connect_tcp(attempt.factory, "127.0.0.1", 9,
                                socket_factory=sockets.socket, on_error=attempt.errors.append)
    harness.run_until(lambda: attempt.errors)
    harness.passes()
    [exc] = attempt.errors
    assert isinstance(exc, OSError) and exc.errno == errno.ENOTCONN
    assert attempt.made == [] and sock.fileno() == -1 and len(harness.reactor._timers) == 0


def test_tcp_nodelay_failing_after_the_handshake_is_reported_not_lost(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    sock = harness.connecting_socket(getsockopt=[Step.returns(0)],
                                     setsockopt=[Step.raises(errno.EINVAL)])
    sockets = SocketModule(sock)
    attempt = Attempt()
    harness.reactor.connect_tcp(attempt.factory, "127.0.0.1", 9,
                                socket_factory=sockets.socket, on_error=attempt.errors.append)
    harness.passes(5)
    for protocol in attempt.made:  # once fixed, a connection may own the socket: abort it first
        assert protocol.conn is not None
        harness.later(protocol.conn.abort)
    assert unhandled(logs) == []
    assert len(attempt.errors) + len(attempt.made) == 1  # the attempt ended one way or the other


def test_socket_creation_failing_is_reported_to_on_error_on_a_later_pass(
    harness: Harness
) -> None:
    sockets = SocketModule(OSError(errno.EMFILE, os.strerror(errno.EMFILE)))
    attempt = Attempt()
    harness.reactor.connect_tcp(attempt.factory, "127.0.0.1", 9,
                                socket_factory=sockets.socket, on_error=attempt.errors.append)
    assert attempt.errors == []
    harness.run_until(lambda: attempt.errors)
    harness.passes()
    [exc] = attempt.errors
    assert isinstance(exc, OSError) and exc.errno == errno.EMFILE
    assert attempt.made == [] and len(harness.reactor._timers) == 0


def test_an_address_family_this_host_lacks_is_skipped_for_the_next_address(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = harness.reactor.listen_tcp(Echo, "127.0.0.1", 0)
    harness.later(lambda: close_listener(server))
    unknown = (UNKNOWN_FAMILY, socket.SOCK_STREAM, 0, "", ("nowhere", 0))
    known = socket.getaddrinfo("127.0.0.1", server.address[1], type=socket.SOCK_STREAM)[0]
    monkeypatch.setattr(connector_module, "resolve_stream",
                        lambda *args, **kwargs: [unknown, known])
    attempt = Attempt()
    connector = harness.reactor.connect_tcp(attempt.factory, "two.example", 1,
                                            on_error=attempt.errors.append)
    harness.run_until(lambda: attempt.made)
    assert attempt.errors == []
    assert connector.connection is not None
    harness.later(connector.connection.abort)


def test_a_name_that_resolves_to_no_address_reports_eaddrnotavail(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connector_module, "resolve_stream", lambda *args, **kwargs: [])
    attempt = Attempt()
    harness.reactor.connect_tcp(attempt.factory, "none.example", 1, on_error=attempt.errors.append)
    harness.run_until(lambda: attempt.errors)
    [exc] = attempt.errors
    assert isinstance(exc, OSError) and exc.errno == errno.EADDRNOTAVAIL
    assert len(harness.reactor._timers) == 0


def test_a_name_the_idna_codec_rejects_reports_unicode_error_on_a_later_pass(
    harness: Harness,
) -> None:
    attempt = Attempt()
    harness.reactor.connect_tcp(attempt.factory, "x" * 64 + ".example", 80,
                                on_error=attempt.errors.append)
    assert attempt.errors == []
    harness.run_until(lambda: attempt.errors)
    [exc] = attempt.errors
    assert isinstance(exc, UnicodeError) and attempt.made == []
    assert len(harness.reactor._timers) == 0


def test_a_connect_that_never_completes_times_out_once_and_closes_its_socket(
    harness: Harness
) -> None:
    sock, peer = scripted_socketpair(connect_ex=[Step.returns(errno.EINPROGRESS)])
    harness.later(peer.close)
    fill_socket(sock)  # never writable: the handshake "never ends"
    sock.calls.clear()
    fd = sock.fileno()
    sockets = SocketModule(sock)
    attempt = Attempt()
    harness.reactor.connect_tcp(attempt.factory, "127.0.0.1", 9,
                                socket_factory=sockets.socket, timeout=3.0,
                                on_error=attempt.errors.append)
    harness.passes()
    assert attempt.errors == [] and harness.mask(fd) == EVENT_WRITE
    harness.advance(3.0)
    harness.run_until(lambda: attempt.errors)
    [exc] = attempt.errors
    assert isinstance(exc, TimeoutError) and exc.errno == errno.ETIMEDOUT
    assert "timed out after 3s" in str(exc)
    assert fd not in harness.reactor.poller.masks() and sock.fileno() == -1
    assert not sock.called("getsockopt") and attempt.made == []


# -- Unix connects: done at once, or failed at once -------------------------------------------


def test_connect_unix_that_connects_at_once_is_still_made_on_a_later_pass(
    harness: Harness, tmp_path: Path
) -> None:
    path = str(tmp_path / "s")
    server = harness.reactor.listen_unix(Echo, path)
    harness.later(lambda: close_listener(server))
    attempt = Attempt()
    connector = harness.reactor.connect_unix(attempt.factory, path,
                                             on_error=attempt.errors.append)
    assert attempt.made == []  # never inside connect_unix()
    harness.run_until(lambda: attempt.made)
    assert connector.connection is not None and connector.connection.peer_address == path
    harness.later(connector.connection.abort)
    assert attempt.errors == [] and len(harness.reactor._timers) == 0


@pytest.mark.parametrize("where", ["missing", "stale"])
def test_connect_unix_failing_at_once_reports_the_errno_on_a_later_pass(
    harness: Harness, tmp_path: Path, where: str
) -> None:
    path = str(tmp_path / "s")
    if where == "stale":
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)
        stale.close()
    attempt = Attempt()
    harness.reactor.connect_unix(attempt.factory, path, on_error=attempt.errors.append)
    assert attempt.errors == []
    harness.run_until(lambda: attempt.errors)
    [exc] = attempt.errors
    expected = FileNotFoundError if where == "missing" else ConnectionRefusedError
    assert type(exc) is expected and attempt.made == [] and len(harness.reactor._timers) == 0
    assert len(harness.reactor.poller) == 1


def test_connect_unix_to_a_full_backlog_reports_eagain_as_an_error(
    harness: Harness, tmp_path: Path
) -> None:
    path = str(tmp_path / "s")
    server = socket.socket(socket.AF_UNIX)
    harness.later(server.close)
    server.bind(path)
    server.listen(0)
    while True:
        filler = socket.socket(socket.AF_UNIX)
        harness.later(filler.close)
        filler.setblocking(False)
        try:
            filler.connect(path)
        except BlockingIOError:
            break
    attempt = Attempt()
    harness.reactor.connect_unix(attempt.factory, path, on_error=attempt.errors.append)
    harness.run_until(lambda: attempt.errors)
    [exc] = attempt.errors
    assert type(exc) is BlockingIOError and exc.errno == errno.EAGAIN and attempt.made == []


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the leaked socket, when collected
def test_connect_unix_to_a_path_too_long_reports_to_on_error_instead_of_raising(
    harness: Harness,
) -> None:
    attempt = Attempt()
    harness.reactor.connect_unix(attempt.factory, "/tmp/" + "x" * 200, timeout=1.0,
                                 on_error=attempt.errors.append)
    harness.run_until(lambda: attempt.errors)
    harness.advance(1.0)
    harness.passes()
    [exc] = attempt.errors
    assert isinstance(exc, OSError) and not isinstance(exc, TimeoutError)
    assert len(harness.reactor._timers) == 0


# == DatagramTransport =========================================================================


@needs_proc_fds
def test_udp_connect_failing_for_every_address_raises_the_last_error_and_leaks_nothing(
    harness: Harness,
) -> None:
    fds = open_fds()
    with pytest.raises(OSError) as caught:  # broadcast without SO_BROADCAST
        harness.reactor.connect_udp(DatagramRecorder, "255.255.255.255", 9)
    assert caught.value.errno in (errno.EACCES, errno.ENETUNREACH)
    assert open_fds() == fds and len(harness.reactor.poller) == 1


def test_an_interrupt_during_udp_connect_closes_the_socket_and_propagates(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, peer = scripted_socketpair(socket.AF_UNIX, socket.SOCK_DGRAM,
                                     connect=[Step.raises(KeyboardInterrupt())])
    harness.later(peer.close)
    monkeypatch.setattr(datagram_module, "socket", SocketModule(sock))
    with pytest.raises(KeyboardInterrupt):
        harness.reactor.connect_udp(DatagramRecorder, "127.0.0.1", 9)
    assert [call.name for call in sock.calls] == ["connect", "close"] and sock.fileno() == -1


def test_a_failing_datagram_protocol_factory_closes_the_socket_and_propagates(
    harness: Harness,
) -> None:
    sock, peer = scripted_socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    harness.later(peer.close)

    def factory() -> DatagramProtocol:
        raise ProtocolBug("no protocol")

    with pytest.raises(ProtocolBug):
        DatagramTransport.from_socket(harness.reactor, factory, sock)
    assert [call.name for call in sock.calls] == ["setblocking", "getpeername", "close"]
    assert sock.fileno() == -1 and len(harness.reactor.poller) == 1


def test_an_exception_in_datagram_connection_made_is_logged_and_the_transport_still_reads(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    transport, sock, peer = harness.datagram(
        lambda: DatagramRecorder(fail_in=frozenset({"made"})))
    protocol = transport.protocol
    hook_failures(logs, "connection_made")
    assert transport.state is DatagramState.OPEN
    assert harness.mask(transport.fileno()) == EVENT_READ
    peer.send(b"one")
    harness.run_until(lambda: protocol.datagrams == [b"one"])


def test_eintr_on_recvfrom_ends_the_batch_quietly_and_the_datagram_is_read_next_time(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    transport, sock, peer = harness.datagram(DatagramRecorder,
                                             recvfrom=[Step.raises(errno.EINTR)])
    protocol = transport.protocol
    peer.send(b"one")
    harness.run_until(lambda: protocol.datagrams == [b"one"])
    assert [(call.step is None, type(call.error)) for call in sock.called("recvfrom")] == [
        (False, InterruptedError), (True, type(None)), (True, BlockingIOError)]
    assert protocol.errors == [] and reactor_records(logs) == []


def test_a_broken_socket_on_recvfrom_closes_the_transport_with_the_error(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    transport, sock, peer = harness.datagram(DatagramRecorder,
                                             recvfrom=[Step.raises(errno.EBADF)])
    protocol = transport.protocol
    peer.send(b"one")
    harness.run_until(lambda: protocol.lost_with)
    harness.passes()
    assert protocol.events == ["made", "lost"]  # no error_received: the socket itself is gone
    assert protocol.lost_with == [sock.called("recvfrom")[0].error]
    assert transport.state is DatagramState.CLOSED and sock.fileno() == -1
    [record] = reactor_records(logs, logging.WARNING)
    assert record.levelno == logging.ERROR and "recvfrom failed; closing" in record.getMessage()
    harness.assert_a_timer_still_fires()


def test_a_peer_error_on_recvfrom_goes_to_error_received_and_the_transport_stays_open(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    transport, sock, peer = harness.datagram(DatagramRecorder,
                                             recvfrom=[Step.raises(errno.ECONNREFUSED)])
    protocol = transport.protocol
    peer.send(b"after")
    harness.run_until(lambda: protocol.datagrams == [b"after"])
    assert protocol.events == ["made", "error", "datagram"]
    assert isinstance(protocol.errors[0], ConnectionRefusedError)
    assert [r.levelno for r in reactor_records(logs)] == [logging.DEBUG]
    assert transport.state is DatagramState.OPEN


def test_resource_shortage_while_flushing_retries_on_a_timer_not_on_writability(
    harness: Harness,
) -> None:
    transport, sock, peer = harness.datagram(
        DatagramRecorder, send=[Step.raises(errno.EAGAIN), Step.raises(errno.ENOBUFS)])
    fd = transport.fileno()
    transport.sendto(b"one")
    assert transport.get_write_buffer_size() == 3 and harness.mask(fd) == EVENT_READ | EVENT_WRITE
    harness.reactor.run_once(0)  # writable: ENOBUFS, and the socket may stay writable
    assert harness.mask(fd) == EVENT_READ and len(harness.reactor._timers) == 1
    harness.passes(5)
    assert len(sock.called("send")) == 2  # no spin while waiting
    harness.advance(SEND_RETRY_DELAY_SECONDS)
    harness.run_until(lambda: transport.get_write_buffer_size() == 0)
    assert peer.recv(100) == b"one" and transport.protocol.errors == []


def test_a_broken_socket_while_flushing_closes_the_transport_and_drops_the_rest(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    transport, sock, peer = harness.datagram(
        DatagramRecorder, send=[Step.raises(errno.EAGAIN), Step.raises(errno.EBADF)])
    protocol = transport.protocol
    transport.sendto(b"one")
    transport.sendto(b"two")
    harness.run_until(lambda: protocol.lost_with)
    [exc] = protocol.lost_with
    assert isinstance(exc, OSError) and exc.errno == errno.EBADF
    assert len(sock.called("send")) == 2 and transport.get_write_buffer_size() == 0
    assert transport.state is DatagramState.CLOSED and protocol.errors == []
    [record] = reactor_records(logs, logging.WARNING)
    assert "sendto failed; closing" in record.getMessage()


def test_eagain_on_a_datagram_larger_than_the_queue_bound_drops_it_and_reports_enobufs(
    harness: Harness,
) -> None:
    transport, sock, peer = harness.datagram(DatagramRecorder, send=[Step.raises(errno.EAGAIN)])
    transport.sendto(b"x" * (MAX_QUEUED_DATAGRAM_BYTES + 1))
    assert transport.get_write_buffer_size() == 0
    assert harness.mask(transport.fileno()) == EVENT_READ  # nothing queued, nothing to wait for
    assert transport.protocol.errors == []  # told on the next pass, not inside sendto()
    harness.passes(1)
    [exc] = transport.protocol.errors
    assert exc.errno == errno.ENOBUFS


def test_an_exception_in_error_received_is_logged_and_the_transport_keeps_serving(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    transport, sock, peer = harness.datagram(
        lambda: DatagramRecorder(fail_in=frozenset({"error"})),
        recvfrom=[Step.raises(errno.ECONNREFUSED)])
    peer.send(b"after")
    harness.run_until(lambda: transport.protocol.datagrams == [b"after"])
    hook_failures(logs, "error_received")
    assert transport.state is DatagramState.OPEN


def test_an_exception_in_datagram_connection_lost_is_logged(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    transport, sock, peer = harness.datagram(
        lambda: DatagramRecorder(fail_in=frozenset({"lost"})))
    transport.close()
    harness.run_until(lambda: reactor_records(logs, logging.WARNING))
    hook_failures(logs, "connection_lost")
    harness.assert_a_timer_still_fires()


def test_exceptions_in_datagram_pause_and_resume_writing_are_logged_and_it_keeps_serving(
    harness: Harness, logs: pytest.LogCaptureFixture
) -> None:
    transport, sock, peer = harness.datagram(
        lambda: DatagramRecorder(fail_in=frozenset({"pause", "resume"})),
        send=[Step.raises(errno.EAGAIN)])
    protocol = transport.protocol
    transport.set_write_buffer_limits(high=4, low=0)
    transport.sendto(b"0123456789")
    assert transport.state is DatagramState.OPEN and transport.get_write_buffer_size() == 10
    harness.run_until(lambda: transport.get_write_buffer_size() == 0)
    assert protocol.events == ["made", "pause", "resume"]
    hook_failures(logs, "pause_writing", "resume_writing")
    assert peer.recv(100) == b"0123456789" and transport.state is DatagramState.OPEN


# == Waker, binding ===========================================================================


def test_waking_a_loop_whose_wakeup_socket_is_full_is_harmless(harness: Harness) -> None:
    wakeup_fd = harness.reactor._waker.write_fileno()
    with pytest.raises(BlockingIOError):
        while True:  # fill the waker for real: its next send() says EAGAIN
            os.write(wakeup_fd, b"\0" * 4096)
    ran: list[int] = []
    harness.reactor.call_soon_threadsafe(ran.append, 1)
    harness.run_until(lambda: ran == [1])
    harness.reactor.call_soon_threadsafe(ran.append, 2)  # drained: waking works again
    harness.run_until(lambda: ran == [1, 2])


@pytest.mark.parametrize("name", SELECTOR_NAMES)
def test_waking_a_closed_reactor_is_silently_ignored(
        name: str, caplog: pytest.LogCaptureFixture) -> None:
    reactor = Reactor(name)
    reactor.close()
    with caplog.at_level(logging.DEBUG):
        reactor.stop()  # the waker's socket is closed: its send() raises EBADF, caught
        reactor.call_soon_threadsafe(print)
    assert caplog.records == []  # no exception and nothing logged: "silently"


@needs_proc_fds
@pytest.mark.parametrize("kind", ["tcp", "udp"])
def test_a_failed_bind_closes_its_socket_and_raises(harness: Harness, kind: str) -> None:
    taken = socket.socket(socket.AF_INET,
                          socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    harness.later(taken.close)
    taken.bind(("127.0.0.1", 0))
    if kind == "tcp":
        taken.listen()
    port = taken.getsockname()[1]
    fds = open_fds()
    with pytest.raises(OSError) as caught:
        if kind == "tcp":
            harness.reactor.listen_tcp(Echo, "127.0.0.1", port)
        else:
            harness.reactor.listen_udp(DatagramRecorder, "127.0.0.1", port)
    assert caught.value.errno == errno.EADDRINUSE and open_fds() == fds

"""What a client socket meets once the other end has reset the connection, and the two calls
every test helper uses around it: ``shutdown_write`` and ``close_with_reset``.

Owns no socket. Used by the helpers that drive client sockets (``tests/helpers.py``,
``tests/processes.py``, ``tests/soak_clients.py``) and tested by ``tests/test_resets.py``.

Facts (Linux TCP). An RST that arrives moves the socket to CLOSED and leaves ECONNRESET pending:

* the next ``send()`` or ``recv()`` raises ECONNRESET, and that clears the pending error;
* after that ``send()`` raises EPIPE and ``recv()`` returns ``b""``, just as at a clean EOF;
* ``shutdown()`` raises ENOTCONN (no connection is left to shut down) and leaves ECONNRESET
  pending for the next ``send()`` or ``recv()``.

Which call meets the reset depends only on when the RST arrived between our calls, which a
test cannot choose when another process resets (a proxy's chaos reset, a server aborting). So a
helper that sends, shuts down and reads must take any of the three as "the peer reset", and must
remember it: the ``b""`` that follows is not a clean close.
"""

from __future__ import annotations

import errno
import socket

from reactor.connection import LINGER_RESET

#: What a send or a read raises once the other end reset the connection (after
#: ``shutdown_write``, ENOTCONN included).
PEER_RESET_ERRORS = (ConnectionResetError, BrokenPipeError)


def shutdown_write(sock: socket.socket) -> None:
    """``shutdown(SHUT_WR)``: send our FIN. Raises ``ConnectionResetError`` if the peer already
    reset the connection: ``shutdown`` says ENOTCONN then, which on a connected socket we have
    not shut down before means only that."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError as exc:
        if exc.errno != errno.ENOTCONN:
            raise
        raise ConnectionResetError(
            errno.ECONNRESET, "shutdown(SHUT_WR): ENOTCONN, the peer reset the connection first"
        ) from exc


def close_with_reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN (``SO_LINGER`` on with a zero timeout), dropping what was
    still queued: how a crashed or impatient peer ends a connection."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    sock.close()

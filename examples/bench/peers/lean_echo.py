"""The leanest hand-written ``selectors`` echo loop: the floor of what pure Python can do.

    python -m examples.bench.peers.lean_echo --port 0

One ``selectors.DefaultSelector``, a dict from descriptor to socket, and per readable socket one
``recv(262144)`` and a blocking ``sendall`` of what came. No transports, no protocols, no
buffers, no timers (only a wake-up socket, so SIGTERM is never slept through): every layer our
reactor or asyncio adds is missing, so the gap between this row and theirs is what those layers
cost.

What it gives up for that, on purpose: **back-pressure and fairness**. The accepted sockets stay
blocking (``select`` says when ``recv`` will not block; ``sendall`` blocks until the kernel
took everything), so a client that does not read its replies stalls this whole server while its
socket buffer is full; nothing is ever queued in user space and ``pause_writing`` does not
exist. It is a benchmark floor, not a server to copy.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import sys
from types import FrameType

from examples.bench.peers.common import BACKLOG, announce, parser

RECV_BYTES = 256 * 1024


class Stop(Exception):
    """Raised by the SIGINT/SIGTERM handler: it unwinds out of ``select`` or a blocked
    ``sendall`` alike, which a flag checked once per pass could not."""


def wake_on_signal(selector: selectors.BaseSelector) -> tuple[socket.socket, socket.socket]:
    """Close the race between Python's signal check and ``epoll_wait``.

    CPython's C-level handler only marks the signal; the Python handler runs at the next check
    in the interpreter. A signal that lands after the last check and before the thread enters
    ``epoll_wait`` is marked but wakes nobody, and an idle server then sleeps through SIGTERM.
    ``set_wakeup_fd`` makes the C handler also write a byte to a socket the selector watches, so
    ``select`` returns and the Python handler runs. The window is a few instructions wide
    natively but wide open under Valgrind, which delivers signals only at its own points.
    Returns the pair, for the caller to close once the selector has stopped."""
    readable, writable = socket.socketpair()
    readable.setblocking(False)
    writable.setblocking(False)  # set_wakeup_fd requires it: a full buffer must not block
    signal.set_wakeup_fd(writable.fileno())
    selector.register(readable, selectors.EVENT_READ)
    return readable, writable


def stop(signum: int, frame: FrameType | None) -> None:
    """Raise ``Stop`` once: a second signal during the clean-up is ignored, not raised into
    it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stop


def serve(listener: socket.socket, selector: selectors.BaseSelector,
          clients: dict[int, socket.socket]) -> None:
    """Accept and echo until ``Stop``. The listener is non-blocking, so ``accept`` never waits
    even when the readiness has gone stale (a client that reset while it sat in the backlog)."""
    listening = listener.fileno()
    while True:
        for key, _ in selector.select():
            fd = key.fd
            if fd == listening:
                try:
                    client, _ = listener.accept()
                except (BlockingIOError, ConnectionAbortedError):
                    continue
                client.setblocking(True)  # already so on Linux; said for other systems
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                clients[client.fileno()] = client
                selector.register(client, selectors.EVENT_READ)
                continue
            try:
                sock = clients[fd]
                data = sock.recv(RECV_BYTES)
                if data:
                    sock.sendall(data)
                    continue
            except KeyError:
                # Neither listener nor client: the wake-up socket, a signal's byte. Its Python
                # handler raises Stop at the interpreter's next check, before select() runs
                # again. Found by the lookup's failure rather than a test above: a handler in
                # an existing try costs a client's event nothing (this loop is the floor).
                os.read(fd, 512)
                continue
            except OSError:
                pass  # reset or broken pipe: the client is gone, as at EOF
            selector.unregister(sock)
            del clients[fd]
            sock.close()


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0], loops=False).parse_args(argv)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    listener = socket.create_server((args.host, args.port), family=family, backlog=BACKLOG)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    clients: dict[int, socket.socket] = {}
    waker = wake_on_signal(selector)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        announce(args.host, listener.getsockname()[1])
        serve(listener, selector, clients)
    except Stop:
        pass
    finally:
        signal.set_wakeup_fd(-1)  # before its socket closes: no write to a reused descriptor
        for sock in (*clients.values(), *waker):
            sock.close()
        selector.close()
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

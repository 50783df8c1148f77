"""Socket helpers: parsing what users type, printing what sockets return, binding, and the
options every accepted or connected socket gets (Redis's ``anet.c`` has the same job).

Owns nothing. IPv6 literals contain colons, so a printed address puts them in brackets
(``[::1]:8080``) exactly as URLs do (RFC 3986), and a host given as ``[::1]`` is accepted too.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from typing import Any, overload

SocketAddress = Any  # (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6


def format_address(address: SocketAddress) -> str:
    """``127.0.0.1:8080`` or ``[::1]:8080``; any other address (a Unix path) as ``str``."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(address)


@overload
def strip_brackets(host: str) -> str: ...
@overload
def strip_brackets(host: str | None) -> str | None: ...


def strip_brackets(host: str | None) -> str | None:
    """``[::1]`` -> ``::1``; anything else unchanged."""
    if host and host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def resolve_stream(host: str | None, port: int, *, passive: bool) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` for TCP: every (family, type, proto, canonname, sockaddr) to try, in order.

    Numeric addresses never touch the network. A *name* may: ``getaddrinfo`` blocks, and this
    single-threaded loop blocks with it. Names in ``/etc/hosts`` (``localhost``) answer at once;
    a program that must resolve DNS names while serving others should resolve them before it
    starts, or in a thread that hands the result back with ``call_soon_threadsafe``.
    """
    flags = socket.AI_PASSIVE if passive else 0
    return socket.getaddrinfo(strip_brackets(host), port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                              0, flags)


def bind_socket(host: str | None, port: int, socktype: int, *, reuse_address: bool,
                reuse_port: bool = False) -> socket.socket:
    """``socket()`` and ``bind()`` on the first address ``host`` resolves to.

    ``::`` means every IPv6 and, where the OS allows (IPV6_V6ONLY off), every IPv4 address too
    (clients from 127.0.0.1 appear as ``::ffff:127.0.0.1``). ``reuse_address`` sets SO_REUSEADDR
    (see listener.py for why TCP wants it and datagram.py for why UDP must not have it).
    ``reuse_port`` sets SO_REUSEPORT: several sockets on one port, the kernel spreading the load.
    Raises ``OSError`` at once if the address is in use or not ours to bind.
    """
    family, type_, proto, _, address = socket.getaddrinfo(
        strip_brackets(host), port, socket.AF_UNSPEC, socktype, 0, socket.AI_PASSIVE)[0]
    sock = socket.socket(family, type_, proto)
    try:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and address[0] == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def set_nodelay(sock: socket.socket) -> None:
    """Turn Nagle's algorithm off on a TCP socket: it holds small writes back until the previous
    one is ACKed, and with the peer's delayed ACK that stalls request/response traffic for up to
    40 ms. Only an optimisation: on some systems it fails once the peer has reset, and then the
    next recv or send reports the reset properly."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def remove_stale_unix_socket(path: str) -> None:
    """Unlink ``path`` if it is a socket nobody listens on; raise ``OSError`` otherwise.

    A server that dies without cleaning up leaves its socket file behind, and ``bind()`` then
    fails with EADDRINUSE although nobody listens. Connecting is the only reliable test:
    ECONNREFUSED means no listener (the file is stale), a successful connect a live server whose
    path we must not steal. A file that is not a socket is never removed.
    """
    if not stat.S_ISSOCK(os.stat(path).st_mode):
        raise OSError(errno.EADDRINUSE, f"{path} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)  # a live server with a full backlog must not block our loop
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # stale: left behind by a server that is gone
        return
    except OSError as exc:
        if exc.errno != errno.EAGAIN:  # EAGAIN: a live server with a full backlog
            raise
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"{path} is in use by a running server")

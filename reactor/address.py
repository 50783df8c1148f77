"""Socket addresses: parsing what users type and printing what sockets return.

Owns nothing. IPv6 literals contain colons, so a printed address puts them in brackets
(``[::1]:8080``) exactly as URLs do (RFC 3986), and a host given as ``[::1]`` is accepted too.
"""

from __future__ import annotations

import socket
from typing import Any

SocketAddress = Any  # (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6


def format_address(address: SocketAddress) -> str:
    """``127.0.0.1:8080`` or ``[::1]:8080``; any other address (a Unix path) as ``str``."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(address)


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

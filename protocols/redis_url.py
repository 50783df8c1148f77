"""``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]``: where a Redis server is and how to log in.

Owns parsing and printing the URL, nothing else: ``protocols/redis_client.py`` connects to what
it names, sends ``AUTH`` when a password is given (``AUTH USER PASSWORD`` with a user, Redis 6
ACLs) and ``SELECT DB`` when the database is not 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_PORT = 6379


class RedisURLError(ValueError):
    """A URL this client cannot use; the message says which part and why."""


@dataclass(frozen=True)
class RedisURL:
    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, text: str) -> RedisURL:
        """Percent-escapes in the user and password are decoded (``p%40ss`` is ``p@ss``);
        an IPv6 host goes in brackets (``redis://[::1]:6379``)."""
        parts = urlsplit(text)
        if parts.scheme == "rediss":
            raise RedisURLError(f"{text!r}: TLS (rediss://) is not supported; use redis://")
        if parts.scheme != "redis":
            raise RedisURLError(f"{text!r}: expected redis://HOST[:PORT][/DB]")
        try:
            port = parts.port
        except ValueError:
            raise RedisURLError(f"{text!r}: not a port number") from None
        if not parts.hostname:
            raise RedisURLError(f"{text!r}: no host")
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise RedisURLError(f"{text!r}: the database is a number, not {path!r}")
        if parts.query or parts.fragment:
            raise RedisURLError(f"{text!r}: query strings and fragments are not understood")
        return cls(host=parts.hostname, port=DEFAULT_PORT if port is None else port,
                   db=int(path) if path else 0,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password is not None else None)

    def __str__(self) -> str:
        """The URL without its password (for logs and ``/stats``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        login = ""
        if self.password is not None:
            login = f"{self.username or ''}:***@"
        elif self.username:
            login = f"{self.username}@"
        return f"redis://{login}{host}:{self.port}/{self.db}"

"""Protocols built on the reactor: one framing helper and three small example servers.

* ``line.py``: ``LineProtocol``, delimiter framing with a bounded line length. Read it first.
* ``echo.py``: ``EchoProtocol``, every byte back as it arrives (the benchmark protocol).
* ``uppercase.py``: ``UppercaseProtocol``, one reply line per request line.
* ``chat.py``: ``ChatRoom`` and ``ChatProtocol``, where one peer's input goes to many peers;
  ``chat_bus.py``, the seam to the rest of a room spread over servers, and ``chat_redis.py``,
  the room shared through Redis.
* A Redis client on the reactor: ``resp.py`` (the wire format, an incremental bounded parser),
  ``redis.py`` (one connection: pipelining, pushes), ``redis_client.py`` (the self-healing
  link: login, timeouts, reconnection with ``backoff.py``), ``redis_url.py``.

Each is tested without sockets through ``reactor.testing``; ``examples/`` runs them as servers.
"""

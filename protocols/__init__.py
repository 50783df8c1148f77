"""Protocols built on the reactor: one framing helper and three small example servers.

* ``line.py``: ``LineProtocol``, delimiter framing with a bounded line length. Read it first.
* ``echo.py``: ``EchoProtocol``, every byte back as it arrives (the benchmark protocol).
* ``uppercase.py``: ``UppercaseProtocol``, one reply line per request line.
* ``chat.py``: ``ChatRoom`` and ``ChatProtocol``, where one peer's input goes to many peers.

Each is tested without sockets through ``reactor.testing``; ``examples/`` runs them as servers.
"""

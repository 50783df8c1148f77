"""Servers of other event loops with the behaviour of ours, for comparison only.

Each is started like our examples (``python -m examples.bench.peers.NAME --port 0``), prints the
same ``listening on HOST:PORT`` line, stops on SIGINT/SIGTERM, and on the way out prints to stderr
how many times ``pause_writing`` was called (the slow-reader benchmark reads it). Each keeps our
servers' back-pressure rule (a connection whose send queue passes the high-water mark stops being
read), since asyncio's default ``Protocol`` ignores ``pause_writing`` and would buffer without
bound for a peer that does not read.

``asyncio_echo`` and ``asyncio_upper`` run on asyncio's own loop or, with ``--loop uvloop``, on
uvloop; ``twisted_echo`` and ``twisted_upper`` on Twisted's epoll reactor. ``asyncio_chat_peer``
is ``examples/asyncio_chat.py`` (the chat room's contract on asyncio streams) on the loop
``--loop`` names.

The exception is ``lean_echo``, the floor of pure Python: one selector, ``recv`` and a blocking
``sendall``. It has no send queue, so neither back-pressure nor a ``pause_writing`` count to
report; the harness knows that from its ``ServerSpec`` (``back_pressure=False``).
"""

"""The benchmark suite: our servers against asyncio, uvloop and Twisted, measured the same way.

    python -m examples.bench --quick              # about a minute: echo, 1 and 100 KiB
    python -m examples.bench                      # the whole matrix (about 25 minutes)
    python -m examples.bench memory               # bytes per idle connection, 10,000 open
    python -m examples.bench passes               # one loop pass: select vs poll vs epoll
    python -m examples.bench slow-reader          # back-pressure under clients that read slowly
    python -m examples.bench fanout               # one chat room of 100: ours vs asyncio's
    python -m examples.bench tls                  # TLS echo: ours vs asyncio, 1 and 100 KiB
    python -m examples.bench many                 # 10,000 clients, a 1 KiB request a second each
    python -m examples.bench instructions         # instructions per round trip, under callgrind

Not part of the tests. Needs only Python; a C compiler builds the faithful load generators
(``echo_load.c``, ``chat_load.c``), and uvloop and Twisted (``pip install -e '.[bench]'``) and
redis-benchmark (``apt-get install redis-tools``) add columns when present; ``instructions``
needs valgrind. The headline number is the server's *user CPU per round trip*: ``measure.py``
says why, ``report.py`` why rounds are interleaved and compared within a round.

Read in this order: ``__main__`` (the commands), ``matrix`` (the order of runs), ``load`` (one
run), ``measure`` (what is read from /proc), ``report``; then ``servers``, ``cpus``, ``launch``;
the load clients ``echo_load.c``, ``pyload``, ``chatload``, ``chat_load.c``, ``slowload``; the
other measurements ``memory``, ``passes``, ``slow_reader``, ``fanout``, ``tls``, ``many``,
``instructions``; and ``peers/``.
"""

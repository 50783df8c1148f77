"""Chat server on asyncio streams, on the loop ``--loop`` names: the peer of
``examples.chat_server``.

    python -m examples.bench.peers.asyncio_chat_peer --port 0 [--loop uvloop|reactor]

It is ``examples/asyncio_chat.py`` itself (the room, the wire contract and its safeguards, the
shutdown on SIGINT/SIGTERM), run under ``asyncio.Runner`` with the chosen loop factory rather
than under ``python -m reactor.aio``: that file imports nothing from this repository on purpose,
so the loop choice lives here, as for the other peers. Why not a chat of its own: the fan-out
comparison is fair only if both rooms keep the same contract, and that one is already tested
against ours (``tests/test_aio_examples.py``).
"""

from __future__ import annotations

import asyncio
import sys

from examples.asyncio_chat import serve
from examples.bench.peers.asyncio_serve import loop_factory
from examples.bench.peers.common import PauseCounter, parser


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0], loops=True).parse_args(argv)
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        status = runner.run(serve(args.host, args.port))
    # Streams hide pause_writing inside drain(): the count stays 0, as the harness expects.
    PauseCounter().report()
    return status


if __name__ == "__main__":
    sys.exit(main())

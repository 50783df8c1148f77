"""Chat server: every line a member sends reaches every other member.

    python -m examples.chat_server --port 8890
    nc 127.0.0.1 8890          (in two terminals; /help lists the commands)
"""

from __future__ import annotations

import sys

from examples.cli import run_server, server_parser
from protocols.chat import ChatRoom
from reactor import Reactor

#: A member who sends and receives nothing for this long is disconnected (--idle-timeout).
IDLE_TIMEOUT_SECONDS = 600.0


def main(argv: list[str] | None = None) -> int:
    args = server_parser(__doc__.splitlines()[0], idle_timeout=IDLE_TIMEOUT_SECONDS
                         ).parse_args(argv)
    room = ChatRoom()

    def show_reactor_figures(reactor: Reactor) -> None:
        room.server_stats = lambda: {
            "connections": len(reactor.transports), "loop_passes": reactor.passes,
            "slowest_pass_ms": round(reactor.slowest_pass_seconds * 1000, 3)}

    return run_server(room.protocol_factory, args, "chat_server",
                      reject_message=b"error: the room is full; try again later\n",
                      on_start=show_reactor_figures)


if __name__ == "__main__":
    sys.exit(main())

"""Chat server: every line a member sends reaches every other member.

    python -m examples.chat_server --port 8890
    nc 127.0.0.1 8890          (in two terminals; /help lists the commands)
    python -m examples.chat_server --tls-cert cert.pem --tls-key key.pem   (TLS only)
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports: a signal may come during them
    from examples import early_signals
    early_signals.catch()

import sys

from examples.args import parse_server_args, server_parser
from examples.serving import run_server, with_line_limit
from examples.tlsargs import add_server_tls_arguments, check_server_tls_arguments
from protocols.chat import MAX_LINE_BYTES, ChatRoom
from reactor import Reactor

#: A member who sends and receives nothing for this long is disconnected (--idle-timeout).
IDLE_TIMEOUT_SECONDS = 600.0
#: What every member reads when the server is stopped (SIGINT/SIGTERM), before the close.
SHUTDOWN_NOTICE = "* the server is shutting down; goodbye"


def main(argv: list[str] | None = None) -> int:
    parser = server_parser(__doc__.splitlines()[0], __spec__.name,
                           idle_timeout=IDLE_TIMEOUT_SECONDS,
                           over_limit='told "error: the room is full" and closed',
                           max_line_bytes=MAX_LINE_BYTES)
    add_server_tls_arguments(parser)
    args = parse_server_args(parser, argv)
    check_server_tls_arguments(parser, args)
    room = ChatRoom()

    def show_reactor_figures(reactor: Reactor) -> None:
        room.server_stats = lambda: {
            "connections": len(reactor.transports), "loop_passes": reactor.passes,
            "slowest_pass_ms": round(reactor.slowest_pass_seconds * 1000, 3)}

    factory = with_line_limit(room.protocol_factory, args.max_line_bytes)
    return run_server(factory, args, "chat_server",
                      reject_message=b"error: the room is full; try again later\n",
                      on_start=show_reactor_figures,
                      on_shutdown=lambda: room.broadcast(SHUTDOWN_NOTICE))


if __name__ == "__main__":
    sys.exit(main())

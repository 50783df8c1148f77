"""Chat server: every line a member sends reaches every other member.

    python -m examples.chat_server --port 8890
    nc 127.0.0.1 8890          (in two terminals; /help lists the commands)
    python -m examples.chat_server --tls-cert cert.pem --tls-key key.pem   (TLS only)

With ``--redis redis://HOST:PORT[/DB]`` every server given the same Redis and ``--room`` serves
one room (``protocols/chat_redis.py``), and ``--workers N`` may share it among N processes.
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports: a signal may come during them
    from examples import early_signals
    early_signals.catch()

import argparse
import sys

from examples import early_signals
from examples.args import parse_server_args, positive_count, positive_seconds, server_parser
from examples.serving import run_server, with_line_limit
from examples.tlsargs import add_server_tls_arguments, check_server_tls_arguments
from protocols.chat import MAX_LINE_BYTES, MAX_NAME_CHARS, MAX_PENDING_BYTES, ChatRoom
from protocols.chat_redis import DEFAULT_ROOM, EXPIRY_SECONDS, ROOM_NAME, RedisBus
from protocols.redis_client import CONNECT_TIMEOUT_SECONDS
from protocols.redis_client import MAX_PENDING_BYTES as REDIS_MAX_PENDING_BYTES
from protocols.redis_url import RedisURL, RedisURLError
from reactor import Reactor

#: A member who sends and receives nothing for this long is disconnected (--idle-timeout).
IDLE_TIMEOUT_SECONDS = 600.0
#: What every member reads when the server is stopped (SIGINT/SIGTERM), before the close.
SHUTDOWN_NOTICE = "* the server is shutting down; goodbye"
#: How long a server with --redis waits for its first link before it listens anyway.
FIRST_LINK_TIMEOUT_SECONDS = CONNECT_TIMEOUT_SECONDS + 1.0
#: How often that wait looks at whether a stop signal came (Python retries select() after one).
SIGNAL_CHECK_SECONDS = 0.1


def redis_url(text: str) -> RedisURL:
    try:
        return RedisURL.parse(text)
    except RedisURLError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def room_name(text: str) -> str:
    if not ROOM_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"1 to 64 letters, digits, '_', '.' or '-', "
                                         f"not {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = server_parser(__doc__.splitlines()[0], __spec__.name if __spec__ else None,
                           idle_timeout=IDLE_TIMEOUT_SECONDS, workers=True,
                           over_limit='told "error: the room is full" and closed',
                           max_line_bytes=MAX_LINE_BYTES)
    parser.add_argument("--max-pending-bytes", type=positive_count, default=MAX_PENDING_BYTES,
                        metavar="N",
                        help="most output queued for one member who does not read; past it "
                             "the member is disconnected and the room told (default: "
                             "%(default)s)")
    parser.epilog = (f"{parser.epilog or ''} A member whose unread output would pass --max-pending-bytes is "
                      f"disconnected. Names are 1 to {MAX_NAME_CHARS} characters.")
    shared = parser.add_argument_group(
        "one room across servers",
        "Every server given the same Redis and room serves one room. While Redis cannot be "
        "reached the server serves its own members and keeps reconnecting; what is said "
        "meanwhile is not seen on the other servers (pub/sub keeps no history).")
    shared.add_argument("--redis", type=redis_url, metavar="URL",
                        help="redis://[USER:PASSWORD@]HOST[:PORT][/DB]: share the room "
                             "through this Redis (needed for --workers)")
    shared.add_argument("--room", type=room_name, default=DEFAULT_ROOM,
                        help="the room's name in Redis (default: %(default)s)")
    shared.add_argument("--redis-expiry", type=positive_seconds, default=EXPIRY_SECONDS,
                        metavar="SECONDS",
                        help="a server silent this long is taken as dead and its names are "
                             "freed; it renews its own every third of it (default: "
                             "%(default)g)")
    shared.add_argument("--redis-max-pending", type=positive_count, default=REDIS_MAX_PENDING_BYTES,
                        metavar="BYTES",
                        help="commands awaiting Redis's replies at most; past it lines for "
                             "the other servers are dropped (default: %(default)s)")
    add_server_tls_arguments(parser)
    return parser


def link_first(reactor: Reactor, bus: RedisBus) -> None:
    """Give Redis its first chance before listening, so the first members are in the whole room
    rather than in this server's alone: run the loop until the link is up or the first attempt
    failed (a refused connect fails at once), at most ``FIRST_LINK_TIMEOUT_SECONDS``."""
    deadline = reactor.time() + FIRST_LINK_TIMEOUT_SECONDS
    while not bus.settled() and not early_signals.stop_requested():
        remaining = deadline - reactor.time()
        if remaining <= 0:
            return
        reactor.run_once(min(remaining, SIGNAL_CHECK_SECONDS))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_server_args(parser, argv)
    check_server_tls_arguments(parser, args)
    if args.workers > 1 and args.redis is None:
        parser.error("--workers needs --redis: without it the room lives in one process")
    room = ChatRoom(max_pending_bytes=args.max_pending_bytes)

    def start_room(reactor: Reactor) -> None:
        """Runs in each serving process (each worker), so each is its own server in the room."""
        room.server_stats = lambda: {
            "connections": len(reactor.transports), "loop_passes": reactor.passes,
            "slowest_pass_ms": round(reactor.slowest_pass_seconds * 1000, 3)}
        room.batch_writes(reactor.call_soon)
        if args.redis is not None:
            bus = RedisBus(reactor, args.redis, args.room, expiry=args.redis_expiry,
                           max_pending_bytes=args.redis_max_pending)
            room.attach_bus(bus)
            bus.start()
            link_first(reactor, bus)

    def say_goodbye() -> None:
        """The notice, written now: the connections close before another pass could."""
        room.broadcast(SHUTDOWN_NOTICE)
        room.flush()

    factory = with_line_limit(room.protocol_factory, args.max_line_bytes)
    return run_server(factory, args, "chat_server",
                      reject_message=b"error: the room is full; try again later\n",
                      on_start=start_room,
                      on_shutdown=say_goodbye)


if __name__ == "__main__":
    sys.exit(main())

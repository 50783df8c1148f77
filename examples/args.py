"""The command-line flags every example shares, and their one-line errors.

Owns parsing and validating arguments: ports, durations, counts, ``HOST:PORT``, and the server
and client parsers built from them. Does not own logging (``examples/logsetup.py``) nor serving
(``examples/serving.py``). Errors name the flag and the value the user typed
(``--port: not a port number: 'abc'``), never a Python function.

Exit statuses, the same in every program: 0 success, 1 a failure at run time (a refused connect),
2 a usage error (a bad flag, an address that cannot be bound, a file that cannot be written).
"""

from __future__ import annotations

import argparse
import math
import sys

#: How long shutdown waits for queued output to reach slow clients before aborting them.
SHUTDOWN_GRACE_SECONDS = 2.0

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

#: The longest timeout taken as given; a longer one is this long. Ten days is beyond any idle
#: client an operator means to keep, and within what one epoll_wait() may sleep (2**31 ms).
MAX_TIMEOUT_SECONDS = 10 * 24 * 3600.0
#: Words that turn a timeout off, as well as ``0``.
OFF_WORDS = ("off", "none", "0")


def port_number(text: str) -> int:
    """0 to 65535. (getaddrinfo would quietly take a larger port modulo 65536, and a server
    asked for port 70000 would listen on 4464.)"""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {port}")
    return port


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    return value


def _positive(text: str, what: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
    return value


def positive_seconds(text: str) -> float:
    return _positive(text, "a positive number of seconds")


def positive_number(text: str) -> float:
    return _positive(text, "a positive number")


def seconds_or_zero(text: str) -> float:
    """0 or more seconds (``--shutdown-grace 0``: abort at once)."""
    seconds = _number(text)
    if seconds < 0 or math.isinf(seconds):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text!r}")
    return seconds


def timeout_or_off(text: str) -> float | None:
    """Seconds, or ``0``/``off``/``inf`` for no timeout at all (``None``). Any large finite
    value is accepted and taken as at most ``MAX_TIMEOUT_SECONDS``."""
    if text.strip().lower() in OFF_WORDS:
        return None
    seconds = _number(text)
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"must be seconds, 0 or off, not {text!r}")
    if seconds == 0 or math.isinf(seconds):
        return None
    return min(seconds, MAX_TIMEOUT_SECONDS)


def positive_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {count}")
    return count


def host_name(text: str) -> str:
    """A host as typed: ``[::1]`` loses its brackets; a lone bracket is an error, not a name."""
    if text.startswith("[") and text.endswith("]") and len(text) > 2:
        return text[1:-1]
    if "[" in text or "]" in text:
        raise argparse.ArgumentTypeError(f"not a host: {text!r} (brackets go around an IPv6 "
                                         "address, as in [::1])")
    if not text:
        raise argparse.ArgumentTypeError("empty host name")
    return text


def unix_path(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("empty path")
    return text


def host_and_port(text: str) -> tuple[str, int]:
    """``HOST:PORT``: ``127.0.0.1:8080``, ``localhost:8080``, ``[::1]:8080``.

    The port follows the *last* colon, and an IPv6 literal must be in brackets, as in URLs
    (RFC 3986): in ``::1:8080`` nobody can tell where the address ends.
    """
    host, colon, port = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    if not colon or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {text!r}")
    if ":" in host and not bracketed:
        raise argparse.ArgumentTypeError(f"put an IPv6 address in brackets: [{host}]:{port}")
    return host_name(host), port_number(port)


class Parser(argparse.ArgumentParser):
    """``argparse`` with the program named as a user starts it, ``python -m examples.NAME``,
    and an error for a bad value that names the flag, not the checking function."""

    def __init__(self, description: str, module: str | None = None) -> None:
        super().__init__(prog=None if module is None else f"python -m {module}",
                         description=description)

    def _get_value(self, action: argparse.Action, arg_string: str) -> object:
        try:
            return super()._get_value(action, arg_string)
        except argparse.ArgumentError as exc:
            if exc.message.startswith("invalid "):  # argparse's own words for a ValueError
                raise argparse.ArgumentError(action, f"not valid: {arg_string!r}") from None
            raise

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags ``logsetup.make_reactor`` reads: ``--log-level``, ``--trace``, ``--trace-json``."""
    parser.add_argument("--log-level", default="warning", type=str.lower,
                        choices=["debug", "info", "warning", "error"],
                        help="logging threshold on stderr, any case (default: %(default)s)")
    parser.add_argument("--trace", action="store_true",
                        help="log every loop pass to stderr: why it woke, each accept, recv, "
                             "send, shutdown and close, each protocol callback, buffer sizes")
    parser.add_argument("--trace-json", metavar="FILE",
                        help="write the same events to FILE as JSON lines, for tools")


def base_parser(description: str, module: str | None = None) -> Parser:
    """``module``: the program's module (``__spec__.name``), named in usage and errors."""
    parser = Parser(description, module)
    parser.add_argument("--host", default="127.0.0.1", type=host_name,
                        help="address to use: an IPv4/IPv6 literal ([::1] accepted; :: is "
                             "every IPv6 and IPv4 address) or a name (default: %(default)s)")
    add_logging_arguments(parser)
    return parser


def server_parser(description: str, module: str | None = None, *, udp: bool = False,
                  idle_timeout: float | None = None, workers: bool = False,
                  over_limit: str = "closed at once, without a word",
                  max_line_bytes: int | None = None) -> Parser:
    """The server flags; ``idle_timeout`` is this server's default (``None``: off);
    ``workers``: the server can run as several processes (its state is per connection);
    ``over_limit``: what a client past ``--max-connections`` gets, for the help text;
    ``max_line_bytes``: the default of ``--max-line-bytes``, for a line server."""
    parser = base_parser(description, module)
    if not udp:
        parser.epilog = (
            "Limits: a connection whose unconsumed input passes 1 MiB (1048576 bytes) is "
            "closed, with a log line" + (
                "; a line longer than --max-line-bytes gets one error line and the "
                "connection is closed." if max_line_bytes is not None else "."))
        if max_line_bytes is not None:
            parser.add_argument("--max-line-bytes", type=positive_count,
                                default=max_line_bytes, metavar="N",
                                help="longest line accepted (default: %(default)s)")
    parser.add_argument("--port", type=port_number, default=0,
                        help=f"{'UDP' if udp else 'TCP'} port; 0 picks any free port "
                             "(default: %(default)s)")
    parser.add_argument("--shutdown-grace", type=seconds_or_zero,
                        default=SHUTDOWN_GRACE_SECONDS, metavar="SECONDS",
                        help="on SIGINT/SIGTERM, how long queued output may take to drain "
                             "before connections are aborted; 0 aborts at once "
                             "(default: %(default)s)")
    if not udp:
        parser.add_argument("--unix", metavar="PATH", type=unix_path,
                            help="listen on a Unix domain socket at PATH instead of "
                                 "--host/--port (which it excludes)")
        parser.add_argument("--idle-timeout", type=timeout_or_off, default=idle_timeout,
                            metavar="SECONDS",
                            help="close connections idle this long (at most 10 days); 0, off "
                                 "or inf: never (default: "
                                 f"{'off' if idle_timeout is None else f'{idle_timeout:g}'})")
        parser.add_argument("--max-connections", type=positive_count, metavar="N",
                            help=f"serve at most N connections at once; more are {over_limit} "
                                 "(default: no limit"
                                 + ("; per worker with --workers)" if workers else ")"))
    if workers:
        parser.add_argument("--workers", type=positive_count, default=1, metavar="N",
                            help="run N processes, each with its own reactor, sharing the "
                                 "port with SO_REUSEPORT (default: %(default)s)")
    return parser


def parse_server_args(parser: argparse.ArgumentParser, argv: list[str] | None
                      ) -> argparse.Namespace:
    """Parse, then refuse combinations no single flag can judge."""
    args = parser.parse_args(argv)
    if getattr(args, "unix", None) is not None:
        given = [flag for flag in ("--port", "--host", "--workers")
                 if argv_has(argv, flag)]
        if given:
            parser.error(f"--unix cannot be combined with {', '.join(given)}")
    return args


def argv_has(argv: list[str] | None, flag: str) -> bool:
    words = sys.argv[1:] if argv is None else argv
    return any(word == flag or word.startswith(flag + "=") for word in words)


def client_parser(description: str, module: str | None = None, *, udp: bool = False,
                  timeout: float = 10.0) -> Parser:
    parser = base_parser(description, module)
    parser.add_argument("--port", type=port_number, required=udp,
                        help=f"the server's {'UDP' if udp else 'TCP'} port")
    if not udp:
        parser.add_argument("--unix", metavar="PATH", type=unix_path,
                            help="connect to a Unix domain socket at PATH instead")
    parser.add_argument("--timeout", type=positive_seconds, default=timeout, metavar="SECONDS",
                        help=f"how long to wait for {'each reply' if udp else 'the connection'} "
                             "(default: %(default)s)")
    return parser


def usage_error(program: str, message: str) -> int:
    """The convention for what argparse cannot check (an address, a file): one line, 2."""
    print(f"{program}: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def cannot_listen(program: str, where: str, exc: OSError) -> int:
    """The bind-failure convention: one stderr line naming the address and the reason, 2."""
    return usage_error(program, f"cannot listen on {where}: {exc.strerror or exc}")

"""Uppercase server: each UTF-8 line comes back upper-cased ("straße" -> "STRASSE").

    python -m examples.uppercase_server --port 8889
    printf 'hello\nstraße\n' | nc -N 127.0.0.1 8889
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports: a signal may come during them
    from examples import early_signals
    early_signals.catch()

import sys

from examples.args import parse_server_args, server_parser
from examples.serving import run_server
from protocols.uppercase import UppercaseProtocol


OVER_LIMIT = 'told "error: too many connections" and closed'


def main(argv: list[str] | None = None) -> int:
    args = parse_server_args(server_parser(__doc__.splitlines()[0], __spec__.name, workers=True,
                                           over_limit=OVER_LIMIT), argv)
    return run_server(UppercaseProtocol, args, "uppercase_server",
                      reject_message=b"error: too many connections; try again later\n")


if __name__ == "__main__":
    sys.exit(main())

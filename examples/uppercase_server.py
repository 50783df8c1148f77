"""Uppercase server: each UTF-8 line comes back upper-cased ("straße" -> "STRASSE").

    python -m examples.uppercase_server --port 8889
    printf 'hello\nstraße\n' | nc -N 127.0.0.1 8889
"""

from __future__ import annotations

import sys

from examples.cli import run_server, server_parser
from protocols.uppercase import UppercaseProtocol


def main(argv: list[str] | None = None) -> int:
    args = server_parser(__doc__.splitlines()[0], workers=True).parse_args(argv)
    return run_server(UppercaseProtocol, args, "uppercase_server",
                      reject_message=b"error: too many connections; try again later\n")


if __name__ == "__main__":
    sys.exit(main())

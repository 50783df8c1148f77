"""Echo server: every byte comes back, in order, as soon as it arrives.

    python -m examples.echo_server --port 8888
    nc 127.0.0.1 8888
"""

from __future__ import annotations

import sys

from examples.cli import run_server, server_parser
from protocols.echo import EchoProtocol


def main(argv: list[str] | None = None) -> int:
    args = server_parser(__doc__.splitlines()[0], workers=True).parse_args(argv)
    return run_server(EchoProtocol, args, "echo_server")


if __name__ == "__main__":
    sys.exit(main())

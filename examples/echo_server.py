"""Echo server: every byte comes back, in order, as soon as it arrives.

    python -m examples.echo_server --port 8888
    nc 127.0.0.1 8888
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports: a signal may come during them
    from examples import early_signals
    early_signals.catch()

import sys

from examples.args import parse_server_args, server_parser
from examples.serving import run_server
from protocols.echo import EchoProtocol


def main(argv: list[str] | None = None) -> int:
    parser = server_parser(__doc__.splitlines()[0], __spec__.name, workers=True)
    args = parse_server_args(parser, argv)
    return run_server(EchoProtocol, args, "echo_server")


if __name__ == "__main__":
    sys.exit(main())

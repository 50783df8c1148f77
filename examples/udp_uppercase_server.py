"""UDP uppercase server: each UTF-8 datagram comes back upper-cased ("straße" -> "STRASSE").

    python -m examples.udp_uppercase_server --port 9998
    printf 'hello\nstraße\n' | python -m examples.udp_client --port 9998
"""

from __future__ import annotations

import sys

from examples.cli import run_server, server_parser
from protocols.udp import UdpUppercaseProtocol


def main(argv: list[str] | None = None) -> int:
    args = server_parser(__doc__.splitlines()[0], udp=True).parse_args(argv)
    return run_server(UdpUppercaseProtocol, args, "udp_uppercase_server", udp=True)


if __name__ == "__main__":
    sys.exit(main())

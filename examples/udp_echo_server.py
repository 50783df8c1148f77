"""UDP echo server: every datagram goes back to its sender, unchanged.

    python -m examples.udp_echo_server --port 9999
    python -m examples.udp_client --port 9999        (or: nc -u 127.0.0.1 9999)
"""

from __future__ import annotations

import sys

from examples.cli import run_server, server_parser
from protocols.udp import UdpEchoProtocol


def main(argv: list[str] | None = None) -> int:
    args = server_parser(__doc__.splitlines()[0], udp=True).parse_args(argv)
    return run_server(UdpEchoProtocol, args, "udp_echo_server", udp=True)


if __name__ == "__main__":
    sys.exit(main())

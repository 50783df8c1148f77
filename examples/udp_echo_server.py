"""UDP echo server: every datagram goes back to its sender, unchanged.

    python -m examples.udp_echo_server --port 9999
    python -m examples.udp_client --port 9999        (or: nc -u 127.0.0.1 9999)
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports: a signal may come during them
    from examples import early_signals
    early_signals.catch()

import sys

from examples.args import parse_server_args, server_parser
from examples.serving import run_server
from protocols.udp import UdpEchoProtocol


def main(argv: list[str] | None = None) -> int:
    args = parse_server_args(server_parser(__doc__.splitlines()[0], __spec__.name, udp=True), argv)
    return run_server(UdpEchoProtocol, args, "udp_echo_server", udp=True)


if __name__ == "__main__":
    sys.exit(main())

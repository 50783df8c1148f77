"""UDP uppercase server: each UTF-8 datagram comes back upper-cased ("straße" -> "STRASSE").

    python -m examples.udp_uppercase_server --port 9998
    printf 'hello\nstraße\n' | python -m examples.udp_client --port 9998
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports: a signal may come during them
    from examples import early_signals
    early_signals.catch()

import sys

from examples.args import parse_server_args, server_parser
from examples.serving import run_server
from protocols.udp import UdpUppercaseProtocol


def main(argv: list[str] | None = None) -> int:
    args = parse_server_args(server_parser(__doc__.splitlines()[0], __spec__.name, udp=True), argv)
    return run_server(UdpUppercaseProtocol, args, "udp_uppercase_server", udp=True)


if __name__ == "__main__":
    sys.exit(main())

"""Uppercase server: each UTF-8 line comes back upper-cased ("straße" -> "STRASSE").

    python -m examples.uppercase_server --port 8889
    printf 'hello\nstraße\n' | nc -N 127.0.0.1 8889
    python -m examples.uppercase_server --port 8889 --tls-cert cert.pem --tls-key key.pem
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports: a signal may come during them
    from examples import early_signals
    early_signals.catch()

import sys

from examples.args import parse_server_args, server_parser
from examples.serving import run_server, with_line_limit
from examples.tlsargs import add_server_tls_arguments, check_server_tls_arguments
from protocols.uppercase import UppercaseProtocol


def main(argv: list[str] | None = None) -> int:
    parser = server_parser(__doc__.splitlines()[0], __spec__.name, workers=True,
                           over_limit='told "error: too many connections" and closed',
                           max_line_bytes=UppercaseProtocol.max_line_length)
    add_server_tls_arguments(parser)
    args = parse_server_args(parser, argv)
    check_server_tls_arguments(parser, args)
    return run_server(with_line_limit(UppercaseProtocol, args.max_line_bytes), args,
                      "uppercase_server",
                      reject_message=b"error: too many connections; try again later\n")


if __name__ == "__main__":
    sys.exit(main())

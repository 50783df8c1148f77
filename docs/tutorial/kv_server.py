"""Key-value server: SET, GET, DEL, EXPIRE and QUIT, one line each (docs/tutorial/kv_protocol.py).

    python -m docs.tutorial.kv_server --port 8890
    printf 'SET name Ada\nGET name\n' | nc -N 127.0.0.1 8890
"""

from __future__ import annotations

import sys

from docs.tutorial.kv_protocol import Store
from examples.cli import run_server, server_parser


def main(argv: list[str] | None = None) -> int:
    args = server_parser(__doc__.splitlines()[0]).parse_args(argv)
    store = Store()
    return run_server(store.protocol_factory, args, "kv_server")


if __name__ == "__main__":
    sys.exit(main())

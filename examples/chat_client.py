"""Chat client: what you type goes to the room; what the room says is printed.

    python -m examples.chat_client --port 8890
    python -m examples.chat_client --port 8890 --tls --cafile cert.pem

stdin and the socket are served by one reactor, in one thread. Exits on /quit (after the
server's goodbye), at stdin's EOF, or when the server closes the connection.
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports: a signal may come during them
    from examples import early_signals
    early_signals.catch()

import sys

from examples.args import client_parser
from examples.terminal import TerminalClient, run_line_client
from examples.tlsargs import add_client_tls_arguments, check_client_tls_arguments
from reactor.errors import describe


class ChatClient(TerminalClient):
    sent_eof = False  # true once stdin ended: then the close is the answer to our FIN

    def stdin_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        if data:
            self.transport.write(data)
        else:
            self.sent_eof = True
            if self.transport.can_write_eof():
                self.transport.write_eof()  # the server sees our FIN, and closes its side too
            else:
                self.transport.close()  # TLS 1.2 has no half-close: leave at once

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if exc is None:
            self.run.finish(0, None if self.sent_eof else "connection closed by the server")
        else:
            self.run.finish(1, f"connection lost: {describe(exc)}")


def main(argv: list[str] | None = None) -> int:
    parser = client_parser(__doc__.splitlines()[0], __spec__.name)
    add_client_tls_arguments(parser)
    args = parser.parse_args(argv)
    check_client_tls_arguments(parser, args)
    return run_line_client(args, "chat_client", ChatClient)


if __name__ == "__main__":
    sys.exit(main())

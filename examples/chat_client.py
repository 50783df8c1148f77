"""Chat client: what you type goes to the room; what the room says is printed.

    python -m examples.chat_client --port 8890

stdin and the socket are served by one reactor, in one thread. Exits on /quit (after the
server's goodbye), at stdin's EOF, or when the server closes the connection.
"""

from __future__ import annotations

import sys

from examples.cli import ClientRun, TerminalClient, client_parser, make_reactor
from reactor.errors import describe


class ChatClient(TerminalClient):
    def stdin_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        if data:
            self.transport.write(data)
        else:
            self.transport.write_eof()  # the server sees our FIN, and closes its side too

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if exc is None:
            self.run.finish(0)
        else:
            self.run.finish(1, f"connection lost: {describe(exc)}")


def main(argv: list[str] | None = None) -> int:
    args = client_parser(__doc__.splitlines()[0]).parse_args(argv)
    run = ClientRun(make_reactor(args), "chat_client")
    run.connect(lambda: ChatClient(run), args)
    return run.run()


if __name__ == "__main__":
    sys.exit(main())

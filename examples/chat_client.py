"""Chat client: what you type goes to the room; what the room says is printed.

    python -m examples.chat_client --port 8890

stdin and the socket are served by one reactor, in one thread. Exits on /quit (after the
server's goodbye), at stdin's EOF, or when the server closes the connection.
"""

from __future__ import annotations

import sys

from examples.cli import ClientRun, StdinReader, client_parser, make_reactor
from protocols.line import LineProtocol
from reactor import Connection
from reactor.address import strip_brackets
from reactor.errors import describe


class ChatClient(LineProtocol):
    def __init__(self, run: ClientRun) -> None:
        self.run = run
        self.stdin = StdinReader(run.reactor, self.stdin_received)

    def connection_made(self, transport: Connection) -> None:
        super().connection_made(transport)
        self.stdin.start()

    def stdin_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        if data:
            self.transport.write(data)
        else:
            self.transport.write_eof()  # the server sees our FIN, says goodbye and closes

    def line_received(self, line: bytes) -> None:
        sys.stdout.write(line.decode("utf-8", "replace") + "\n")
        sys.stdout.flush()

    def pause_writing(self) -> None:
        self.stdin.pause()  # as in uppercase_client: never stop reading the room

    def resume_writing(self) -> None:
        self.stdin.resume()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.stdin.pause()
        if exc is None:
            self.run.finish(0)
        else:
            self.run.finish(1, f"connection lost: {describe(exc)}")


def main(argv: list[str] | None = None) -> int:
    args = client_parser(__doc__.splitlines()[0]).parse_args(argv)
    run = ClientRun(make_reactor(args), "chat_client")
    host = strip_brackets(args.host)
    run.reactor.connect_tcp(lambda: ChatClient(run), host, args.port, timeout=args.timeout,
                            on_error=run.connect_failed(host, args.port))
    return run.run()


if __name__ == "__main__":
    sys.exit(main())

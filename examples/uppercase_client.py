"""Uppercase client: sends stdin's lines, prints each reply, half-closes at stdin's EOF.

    printf 'hello\nworld' | python -m examples.uppercase_client --port 8889

A last line without a newline still counts. After stdin ends the client sends FIN
(``write_eof``) and keeps reading until the server has answered everything and closed: that
is what a half-close is for. Exit status 0 then; 1 if the connect fails or the server
closes before our FIN.
"""

from __future__ import annotations

import sys

from examples.cli import ClientRun, StdinReader, client_parser, make_reactor
from protocols.line import LineProtocol
from reactor import Connection
from reactor.address import strip_brackets
from reactor.errors import describe


class UppercaseClient(LineProtocol):
    """Prints each reply line; sends what stdin gives; stdin pauses while our queue is full."""

    def __init__(self, run: ClientRun) -> None:
        self.run = run
        self.stdin = StdinReader(run.reactor, self.stdin_received)
        self.last_byte = b"\n"
        self.sent_eof = False

    def connection_made(self, transport: Connection) -> None:
        super().connection_made(transport)
        self.stdin.start()

    def stdin_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        if data:
            self.transport.write(data)
            self.last_byte = data[-1:]
            return
        if self.last_byte != b"\n":
            self.transport.write(b"\n")  # the last line had no newline: it still counts
        self.sent_eof = True
        self.transport.write_eof()

    def line_received(self, line: bytes) -> None:
        sys.stdout.write(line.decode("utf-8", "replace") + "\n")
        sys.stdout.flush()

    def eof_received(self) -> bool:
        super().eof_received()
        return False

    def pause_writing(self) -> None:
        # The server reads slower than stdin produces: stop reading stdin, never the socket,
        # or both sides would wait for each other with full buffers.
        self.stdin.pause()

    def resume_writing(self) -> None:
        self.stdin.resume()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.stdin.pause()
        if exc is not None:
            self.run.finish(1, f"connection lost: {describe(exc)}")
        elif not self.sent_eof:
            self.run.finish(1, "the server closed the connection")
        else:
            self.run.finish(0)


def main(argv: list[str] | None = None) -> int:
    args = client_parser(__doc__.splitlines()[0]).parse_args(argv)
    run = ClientRun(make_reactor(args), "uppercase_client")
    host = strip_brackets(args.host)
    run.reactor.connect_tcp(lambda: UppercaseClient(run), host, args.port, timeout=args.timeout,
                            on_error=run.connect_failed(host, args.port))
    return run.run()


if __name__ == "__main__":
    sys.exit(main())

"""Uppercase client: sends stdin's lines, prints each reply, half-closes at stdin's EOF.

    printf 'hello\nworld' | python -m examples.uppercase_client --port 8889

A last line without a newline still counts. After stdin ends the client sends FIN
(``write_eof``) and keeps reading until the server has answered everything and closed: that
is what a half-close is for. Exit status 0 then; 1 if the connect fails or the server
closes before our FIN.
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports: a signal may come during them
    from examples import early_signals
    early_signals.catch()

import sys

from examples.args import client_parser
from examples.terminal import ClientRun, TerminalClient, run_line_client
from reactor.errors import describe


class UppercaseClient(TerminalClient):
    def __init__(self, run: ClientRun) -> None:
        super().__init__(run)
        self.last_byte = b"\n"
        self.sent_eof = False

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

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if exc is not None:
            self.run.finish(1, f"connection lost: {describe(exc)}")
        elif not self.sent_eof:
            self.run.finish(1, "the server closed the connection")
        else:
            self.run.finish(0)


def main(argv: list[str] | None = None) -> int:
    args = client_parser(__doc__.splitlines()[0], __spec__.name).parse_args(argv)
    return run_line_client(args, "uppercase_client", UppercaseClient)


if __name__ == "__main__":
    sys.exit(main())

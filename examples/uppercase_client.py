"""Uppercase client: sends stdin's lines, prints each reply, half-closes at stdin's EOF.

    printf 'hello\nworld' | python -m examples.uppercase_client --port 8889
    printf 'hello\n' | python -m examples.uppercase_client --port 8889 --tls --cafile cert.pem

A last line without a newline still counts. After stdin ends the client sends FIN
(``write_eof``) and keeps reading until the server has answered everything and closed: that
is what a half-close is for. Over TLS 1.3 the FIN follows a close_notify; TLS 1.2 has no
half-close, so there the client counts the replies and closes once every line is answered.
Exit status 0 then; 1 if the connect or the TLS handshake fails (a certificate that does not
verify) or the server closes before our FIN.
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports: a signal may come during them
    from examples import early_signals
    early_signals.catch()

import sys

from examples.args import client_parser
from examples.terminal import ClientRun, TerminalClient, run_line_client
from examples.tlsargs import add_client_tls_arguments, check_client_tls_arguments
from reactor.errors import describe


class UppercaseClient(TerminalClient):
    def __init__(self, run: ClientRun) -> None:
        super().__init__(run)
        self.last_byte = b"\n"
        self.sent_eof = False
        self.lines_sent = self.lines_answered = 0

    def stdin_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        if data:
            self.transport.write(data)
            self.lines_sent += data.count(b"\n")
            self.last_byte = data[-1:]
            return
        if self.last_byte != b"\n":
            self.transport.write(b"\n")  # the last line had no newline: it still counts
            self.lines_sent += 1
        self.sent_eof = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        else:
            self.close_when_answered()  # TLS 1.2: no half-close

    def line_received(self, line: bytes) -> None:
        super().line_received(line)
        self.lines_answered += 1
        if self.sent_eof:
            self.close_when_answered()

    def close_when_answered(self) -> None:
        """Without a half-close, the end is ours to decide: one reply per line sent."""
        if self.transport is not None and self.lines_answered >= self.lines_sent \
                and not self.transport.can_write_eof():
            self.transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if exc is not None:
            self.run.finish(1, f"connection lost: {describe(exc)}")
        elif not self.sent_eof:
            self.run.finish(1, "the server closed the connection")
        else:
            self.run.finish(0)


def main(argv: list[str] | None = None) -> int:
    parser = client_parser(__doc__.splitlines()[0], __spec__.name)
    add_client_tls_arguments(parser)
    args = parser.parse_args(argv)
    check_client_tls_arguments(parser, args)
    return run_line_client(args, "uppercase_client", UppercaseClient)


if __name__ == "__main__":
    sys.exit(main())

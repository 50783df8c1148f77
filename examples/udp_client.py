"""UDP client: sends each stdin line as one datagram and prints each reply datagram.

    printf 'hello\nstraße\n' | python -m examples.udp_client --port 9998

UDP promises nothing: a request or its reply may be lost and nothing says so. So the client
waits at most ``--timeout`` seconds for the reply to each line and says so on stderr when none
came. Replies carry no request id; they are matched to requests by count, oldest first. The
socket is connected (``connect_udp``), so when nothing listens at the server's port the ICMP
"port unreachable" comes back as an error: one stderr line, and the oldest request fails at once.

Lines are sent without their newline (a datagram is its own frame); a last line without a newline
still counts. Exit status, at stdin's EOF once every request was answered or timed out: 0 if any
reply came (or nothing was sent), 1 if every request failed; 1 also when the address cannot be
used at all (an unknown host name, no route).
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports: a signal may come during them
    from examples import early_signals
    early_signals.catch()

import sys
from collections import deque

from examples.args import EXIT_FAILURE, EXIT_OK, client_parser, usage_error
from examples.logsetup import TraceFileError, make_reactor
from examples.terminal import ClientRun, StdinReader
from reactor.address import SocketAddress, format_address, strip_brackets
from reactor.buffer import ByteBuffer
from reactor.datagram import DatagramProtocol, DatagramTransport
from reactor.errors import describe
from reactor.timers import Timer


class UdpClient(DatagramProtocol):
    """Sends stdin's lines, prints replies, times each request out after ``timeout`` seconds."""

    def __init__(self, run: ClientRun, timeout: float) -> None:
        self.run = run
        self.timeout = timeout
        self.stdin = StdinReader(run.reactor, self.stdin_received)
        self.pending_input = ByteBuffer()  # the partial line read from stdin so far
        self.skipping_long_line = False    # dropping the rest of a line too long to send
        self.waiting: deque[Timer] = deque()  # one timeout per unanswered request, oldest first
        self.requests = 0
        self.answered = 0
        self.stdin_done = False

    def connection_made(self, transport: DatagramTransport) -> None:
        super().connection_made(transport)
        self.stdin.start()

    # -- requests ------------------------------------------------------------------------------

    def stdin_received(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if not data:
            if self.pending_input and not self.skipping_long_line:
                self.send_line(self.pending_input.take())  # a last line without a newline
            self.stdin_done = True
            self.finish_if_done()
            return
        self.pending_input.append(data)
        while (line := self.pending_input.take_line()) is not None:
            if self.skipping_long_line:
                self.skipping_long_line = False
            else:
                self.send_line(line)
        limit = self.transport.max_datagram_size
        if limit is not None and len(self.pending_input) > limit:
            # No newline yet and already too long for one datagram: refuse it now, drop the
            # rest of it as it arrives, so the partial line stays bounded.
            if not self.skipping_long_line:
                self.send_line(self.pending_input.take())
                self.skipping_long_line = True
            self.pending_input.clear()

    def send_line(self, line: bytes) -> None:
        assert self.transport is not None
        self.requests += 1
        try:
            self.transport.sendto(line)
        except ValueError as exc:  # longer than one datagram carries
            self.report(f"line not sent: {exc}")
            return
        self.waiting.append(self.run.reactor.call_later(self.timeout, self.reply_timed_out))

    # -- replies and their absence -------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: SocketAddress) -> None:
        self.run.print_line(data.decode("utf-8", "replace").removesuffix("\n"))
        if self.waiting:  # else a late reply to a request that already timed out
            self.waiting.popleft().cancel()
            self.answered += 1
        self.finish_if_done()

    def reply_timed_out(self) -> None:
        self.waiting.popleft()  # every request waits as long: the oldest one times out first
        self.report(f"no reply within {self.timeout}s (UDP may drop datagrams)")
        self.finish_if_done()

    def error_received(self, exc: OSError) -> None:
        assert self.transport is not None
        if isinstance(exc, ConnectionRefusedError):
            if self.waiting:
                self.waiting.popleft().cancel()
            self.report(f"nothing is listening at {self.transport.peer_name} "
                        f"(ICMP port unreachable: connection refused)")
        else:
            self.report(f"error: {describe(exc)}")
        self.finish_if_done()

    def report(self, message: str) -> None:
        self.run.report(message)  # silent once stdout is closed: the run is over

    # -- the end ---------------------------------------------------------------------------------

    def finish_if_done(self) -> None:
        if (self.stdin_done and not self.waiting and self.transport is not None
                and not self.transport.is_closing()):
            self.transport.close()

    def pause_writing(self) -> None:
        self.stdin.pause()  # our send queue is full: stop reading stdin until it drains

    def resume_writing(self) -> None:
        self.stdin.resume()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.stdin.pause()
        for timer in self.waiting:
            timer.cancel()
        if exc is not None:
            self.run.finish(EXIT_FAILURE, f"socket failed: {describe(exc)}")
        elif self.requests and not self.answered:
            self.run.finish(EXIT_FAILURE)
        else:
            self.run.finish(EXIT_OK)


def main(argv: list[str] | None = None) -> int:
    parser = client_parser(__doc__.splitlines()[0], __spec__.name, udp=True, timeout=2.0)
    args = parser.parse_args(argv)
    try:
        reactor = make_reactor(args)
    except TraceFileError as exc:
        return usage_error("udp_client", str(exc))
    run = ClientRun(reactor, "udp_client")
    host = strip_brackets(args.host)
    try:
        run.reactor.connect_udp(lambda: UdpClient(run, args.timeout), host, args.port)
    except OSError as exc:
        run.reactor.close()
        print(f"udp_client: cannot use {format_address((host, args.port))}: "
              f"{exc.strerror or describe(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    return run.run()


if __name__ == "__main__":
    sys.exit(main())

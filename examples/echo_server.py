"""Echo server: every byte comes back, in order, as soon as it arrives.

    python -m examples.echo_server --port 8888
    nc 127.0.0.1 8888
    python -m examples.echo_server --port 8888 --tls-cert cert.pem --tls-key key.pem
    openssl s_client -connect 127.0.0.1:8888 -CAfile cert.pem -quiet

The server in one screen, as you would write it: make a ``Reactor``, ``listen_tcp`` with the
protocol (``protocols/echo.py``) and, for TLS, the ``SSLContext`` the flags describe
(``examples/tlsargs.py``), announce, ``run()``. What the other servers share
(``examples/serving.py``) is the same steps; ``--workers`` and ``--unix`` use it here too.
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before the imports: a signal may come during them
    from examples import early_signals
    early_signals.catch()

import sys

from examples import early_signals
from examples.args import EXIT_OK, cannot_listen, parse_server_args, server_parser, usage_error
from examples.logsetup import TraceFileError, close_reactor, make_reactor
from examples.serving import GracefulShutdown, announcement, run_server
from examples.tlsargs import (
    TLSSetupError, add_server_tls_arguments, check_server_tls_arguments, server_context,
)
from protocols.echo import EchoProtocol
from reactor.address import format_address

PROGRAM = "echo_server"


def main(argv: list[str] | None = None) -> int:
    parser = server_parser(__doc__.splitlines()[0], __spec__.name, workers=True)
    add_server_tls_arguments(parser)
    args = parse_server_args(parser, argv)
    check_server_tls_arguments(parser, args)
    if args.workers > 1 or args.unix:
        return run_server(EchoProtocol, args, PROGRAM)
    if early_signals.stop_requested():  # stopped while starting: nothing to announce
        return EXIT_OK
    try:
        tls = server_context(args)  # None without --tls-cert/--tls-key: plain TCP
    except TLSSetupError as exc:  # a missing, unreadable or mismatched file: one line, 2
        return usage_error(PROGRAM, str(exc))
    try:
        reactor = make_reactor(args)  # a Reactor, traced if --trace or --trace-json asks
    except TraceFileError as exc:
        return usage_error(PROGRAM, str(exc))
    try:
        # Each accepted connection gets a new EchoProtocol.
        listener = reactor.listen_tcp(EchoProtocol, args.host, args.port,
                                      max_connections=args.max_connections,
                                      idle_timeout=args.idle_timeout, ssl=tls,
                                      handshake_timeout=args.tls_handshake_timeout)
    except OSError as exc:  # port in use, address not ours: before anything is announced
        close_reactor(reactor)
        return cannot_listen(PROGRAM, format_address((args.host, args.port)), exc)
    shutdown = GracefulShutdown(reactor, listener.close, lambda: [*listener.connections],
                                args.shutdown_grace)
    # The listener counts its connections: the shutdown ends when the last of them is gone.
    listener.when_empty = shutdown.connection_closed
    if shutdown.install():  # SIGINT/SIGTERM now reach the loop; False if one came already
        print(announcement(listener.name, tls), flush=True)
    try:
        reactor.run()  # until the shutdown stops it
    finally:
        close_reactor(reactor)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

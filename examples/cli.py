"""The example programs' toolkit in one import, for a server or client of your own.

    from examples.cli import run_server, server_parser

Each name lives in a module with one job: ``examples/args.py`` (flags and their errors),
``examples/logsetup.py`` (logging and tracing), ``examples/serving.py`` (listen, announce, run
until a signal, shut down), ``examples/terminal.py`` (clients: stdin, stdout, outcome),
``examples/early_signals.py`` (signals during start-up).
"""

from __future__ import annotations

from examples.args import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    cannot_listen,
    client_parser,
    host_and_port,
    parse_server_args,
    server_parser,
)
from examples.logsetup import close_reactor, make_reactor
from examples.serving import GracefulShutdown, run_server
from examples.terminal import ClientRun, StdinReader, TerminalClient

__all__ = [
    "EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "ClientRun", "GracefulShutdown", "StdinReader",
    "TerminalClient", "cannot_listen", "client_parser", "close_reactor", "host_and_port",
    "make_reactor", "parse_server_args", "run_server", "server_parser",
]

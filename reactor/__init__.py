"""A hand-written, single-threaded event-loop reactor on ``selectors``.

Start reading at ``reactor/loop.py`` (the loop), then ``listener.py`` (how a connection is
born), ``connection.py`` (the read and write paths, half-close, close and abort) and
``protocol.py`` (the callbacks your code receives).
"""

from reactor.address import format_address
from reactor.buffer import ByteBuffer
from reactor.connection import Connection, ConnectionState
from reactor.connector import Connector
from reactor.datagram import DatagramProtocol, DatagramTransport
from reactor.listener import Listener
from reactor.loop import Reactor
from reactor.protocol import Protocol
from reactor.timers import Handle, Timer
from reactor.trace import LoggingTracer, Tracer

__all__ = [
    "ByteBuffer", "Connection", "ConnectionState", "Connector", "DatagramProtocol",
    "DatagramTransport", "Handle", "Listener",
    "LoggingTracer", "Protocol", "Reactor", "Timer", "Tracer", "format_address",
]

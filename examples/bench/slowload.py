"""Slow readers: clients that send far faster than they read, against an echo server.

    python -m examples.bench.slowload --port P [--conns 10] [--burst 1048576]
        [--read-rate 1048576] [--seconds 5]

Each connection sends its byte stream in bursts of ``--burst`` bytes, the next burst as soon as
the kernel took the last, and reads the echo back at no more than ``--read-rate`` bytes per
second. So the server receives faster than it can send: its send queue reaches the high-water
mark, and what happens next is the thing measured. A server with back-pressure stops reading
that client (the kernel buffers fill, the client's ``send()`` blocks) and its memory stays flat;
one without buffers everything the client manages to send. Every echoed byte is checked.

Prints one JSON line: echoed MB/s (the read rate caps it), MB sent and echoed, the most any one
connection had outstanding (sent, not yet echoed: what the kernels and the server held).
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import sys
import time

from examples.bench.clientkit import PATTERN_PERIOD, connect_all, pattern

SEND_BYTES = 256 * 1024
RECV_BYTES = 64 * 1024
TICK_SECONDS = 0.005


class Stream:
    """One connection's position in the stream it sends and the echo it reads back."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sent = 0
        self.burst_left = 0
        self.received = 0
        self.reading = False
        self.most_outstanding = 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--conns", type=int, default=10)
    parser.add_argument("--burst", type=int, default=1024 * 1024, help="bytes per burst")
    parser.add_argument("--read-rate", type=int, default=1024 * 1024,
                        help="bytes per second each connection reads, at most")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)

    period = pattern(PATTERN_PERIOD, letters=False)
    stream_bytes = period + period[:SEND_BYTES]  # byte i of the stream is stream_bytes[i % PERIOD]
    view = memoryview(stream_bytes)
    streams = [Stream(sock) for sock in connect_all(args.host, args.port, args.conns)]
    selector = selectors.DefaultSelector()
    for stream in streams:
        selector.register(stream.sock, selectors.EVENT_WRITE, stream)
    mismatches = errors = 0
    started = time.monotonic()
    elapsed = 0.0
    while elapsed < args.seconds and not mismatches and not errors:
        allowance = args.read_rate * elapsed
        for stream in streams:  # read only while under the rate
            want = stream.received < allowance
            if want != stream.reading:
                stream.reading = want
                selector.modify(stream.sock, selectors.EVENT_WRITE
                                | (selectors.EVENT_READ if want else 0), stream)
        for key, events in selector.select(TICK_SECONDS):
            stream = key.data
            if events & selectors.EVENT_WRITE:
                if not stream.burst_left:
                    stream.burst_left = args.burst
                offset = stream.sent % PATTERN_PERIOD
                try:
                    size = min(stream.burst_left, SEND_BYTES)
                    sent = stream.sock.send(view[offset:offset + size])
                except BlockingIOError:
                    sent = 0
                except OSError:
                    errors += 1
                    break
                stream.sent += sent
                stream.burst_left -= sent
                outstanding = stream.sent - stream.received
                stream.most_outstanding = max(stream.most_outstanding, outstanding)
            if events & selectors.EVENT_READ:
                wanted = min(RECV_BYTES, int(allowance - stream.received) + 1)
                try:
                    data = stream.sock.recv(wanted)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    errors += 1
                    break
                offset = stream.received % PATTERN_PERIOD
                if data != stream_bytes[offset:offset + len(data)]:
                    mismatches += 1
                    break
                stream.received += len(data)
        elapsed = time.monotonic() - started
    received = sum(stream.received for stream in streams)
    print(json.dumps({
        "echoed_mbps": round(received / elapsed / 1e6, 3),
        "read_rate_mbps": round(args.read_rate * args.conns / 1e6, 3),
        "sent_mb": round(sum(stream.sent for stream in streams) / 1e6, 3),
        "echoed_mb": round(received / 1e6, 3),
        "most_outstanding_mb": round(max(stream.most_outstanding for stream in streams) / 1e6, 3),
        "conns": args.conns, "seconds": round(elapsed, 3),
        "errors": errors, "mismatches": mismatches,
    }), flush=True)
    for stream in streams:
        stream.sock.close()
    return 1 if errors or mismatches else 0


if __name__ == "__main__":
    sys.exit(main())

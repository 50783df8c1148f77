"""Tracing: what the reactor did, pass by pass and syscall by syscall, for people reading along.

Owns nothing but formatting. The reactor and its transports call ``tracer.event(source, name,
**fields)`` only when a tracer is installed (``Reactor(tracer=...)`` or ``set_tracer``); with
none, the cost is one ``is not None`` check per pass and per I/O event.

Tracers here:

* ``PassTracer`` (the examples' ``--trace``): one readable block per loop pass, logged to the
  ``reactor.trace`` logger, e.g.::

      pass 2: select() with no time limit: no timers and no callbacks: wait for I/O, however long
        woke: fd 7 R (Connection._on_readable of fd=7 127.0.0.1:33518)
        fd=7 127.0.0.1:33518  recv  bytes=6  [recv buffer 6 B, send buffer 0 B]
        fd=7 127.0.0.1:33518  calling data_received  [recv buffer 6 B, send buffer 0 B]
        fd=7 127.0.0.1:33518  send  bytes=6  [recv buffer 0 B, send buffer 0 B]
        fd=7 127.0.0.1:33518  data_received returned  [recv buffer 0 B, send buffer 0 B]

* ``JsonTracer`` (``--trace-json FILE``): the same events as JSON lines, for tools.
* ``LoggingTracer``: one log line per event, no grouping.
* ``RecordingTracer``: keeps the events in a list (``reactor.step()`` and tests use it).
"""

from __future__ import annotations

import json
import logging
import time
from typing import IO, Any, Protocol


class Tracer(Protocol):
    def event(self, source: object, name: str, **fields: Any) -> None: ...


def source_label(source: object) -> str:
    return getattr(source, "trace_label", None) or type(source).__name__


def format_event(source: object, name: str, fields: dict[str, Any]) -> str:
    """One event, one line: ``fd=7 127.0.0.1:5 send bytes=6 — meaning  [recv buffer 0 B, send buffer 0 B]``.

    The bracket is the state of the connection's two buffers after the event, labelled as
    buffers so that ``recv bytes=6`` (the syscall) and ``recv buffer 6 B`` (what waits for the
    protocol) cannot be mistaken for each other.
    """
    fields = dict(fields)
    meaning = fields.pop("meaning", None)
    recv_size = fields.pop("recv_buffer", None)
    send_size = fields.pop("send_buffer", None)
    text = f"{source_label(source)}  {name}"
    if fields:
        text += "  " + " ".join(f"{key}={value}" for key, value in fields.items())
    if meaning:
        text += f" — {meaning}"
    if recv_size is not None:
        text += f"  [recv buffer {recv_size} B, send buffer {send_size} B]"
    return text


class LoggingTracer:
    """Formats each event as one line on a logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("reactor.trace")

    def event(self, source: object, name: str, **fields: Any) -> None:
        self.log.info("%s", format_event(source, name, fields))


class PassTracer:
    """Groups the events of each loop pass into one block, logged when the next pass begins
    (or at ``flush()``), so a reader sees a pass as a unit: why it woke, then what it did."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("reactor.trace")
        self._lines: list[str] = []
        #: The pass announced by "pass_begins", whose "pass" (its select()) is still to come.
        self._begun: int | None = None

    def event(self, source: object, name: str, **fields: Any) -> None:
        if name == "pass_begins":
            self.flush()
            self._begun = fields["number"]
            self._lines.append(f"pass {fields['number']}: {fields['why']}")
        elif name == "pass":
            limit = fields["timeout"]
            wait = "no time limit" if limit == "none" else f"at most {limit}s"
            if fields["number"] == self._begun:
                self._lines.append(f"  select() with {wait}: {fields['why']}")
            else:
                self.flush()
                self._lines.append(f"pass {fields['number']}: select() with {wait}: "
                                   f"{fields['why']}")
            self._begun = None
        elif name in ("woke", "wakeup"):
            self._lines.append(f"  {name}: {fields['by']}")
        elif name == "callbacks":
            self._lines.append("  callbacks: " + ", ".join(fields["run"]))
        else:
            self._lines.append("  " + format_event(source, name, fields))

    def flush(self) -> None:
        if self._lines:
            self.log.info("%s", "\n".join(self._lines))
            self._lines = []


class JsonTracer:
    """One JSON object per event, one per line: ``{"t", "pass", "source", "event", ...}``."""

    def __init__(self, stream: IO[str], clock: Any = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._pass = 0

    def event(self, source: object, name: str, **fields: Any) -> None:
        if name == "pass":
            self._pass = fields["number"]
        record = {"t": round(self._clock(), 6), "pass": self._pass,
                  "source": source_label(source), "event": name, **fields}
        self._stream.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
        self._stream.flush()


class RecordingTracer:
    """Keeps every event as a dict (``source``, ``event`` and the fields); may pass them on."""

    def __init__(self, forward_to: Tracer | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self._forward_to = forward_to

    def event(self, source: object, name: str, **fields: Any) -> None:
        self.events.append({"source": source_label(source), "event": name, **fields})
        if self._forward_to is not None:
            self._forward_to.event(source, name, **fields)


class TeeTracer:
    """Sends every event to each of several tracers (``--trace`` with ``--trace-json``)."""

    def __init__(self, *tracers: Tracer) -> None:
        self.tracers = tracers

    def event(self, source: object, name: str, **fields: Any) -> None:
        for tracer in self.tracers:
            tracer.event(source, name, **fields)

"""Tracing: what the reactor did, event by event, for people reading along.

Owns nothing but formatting. The reactor and its connections call ``tracer.event(source, name,
**fields)`` only when a tracer is installed (``Reactor(tracer=...)``): with none, each event costs
one ``is not None`` check on an attribute cached by the connection.

``LoggingTracer`` writes one line per event to the ``reactor.trace`` logger (stderr in the
examples, with ``--trace``)::

    fd=7 127.0.0.1:50122 recv 5 bytes (recv buffer 5, send buffer 0)
"""

from __future__ import annotations

import logging
from typing import Any, Protocol


class Tracer(Protocol):
    def event(self, source: object, name: str, **fields: Any) -> None: ...


class LoggingTracer:
    """Formats each event as one readable line on a logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("reactor.trace")

    def event(self, source: object, name: str, **fields: Any) -> None:
        label = getattr(source, "trace_label", None) or type(source).__name__
        details = " ".join(f"{key}={value}" for key, value in fields.items())
        self.log.info("%s %s%s", label, name, f" {details}" if details else "")

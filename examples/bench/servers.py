"""The servers under test: which exist, which can run here, and starting and stopping one.

Owns the catalogue (our three example servers, the peers, and ``NAME-Nw`` multi-worker variants
of ours) and each running server process. A server is started exactly as a user starts it,
``python -m MODULE --port 0``, through ``examples.bench.launch`` (CPU pinning, descriptor limit),
and is ready when it prints ``listening on HOST:PORT``. Its stderr goes to a temporary file, so a
server that logs a lot never blocks on a full pipe and everything it said can be read afterwards.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from examples.bench.cpus import CpuPlan, format_cpus
from examples.bench.launch import SPARE_DESCRIPTORS

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on (?P<host>\[[^\]]+\]|[^:\s]+):(?P<port>\d+)")
VARIANT = re.compile(r"(?P<base>echo|upper|chat)-(?P<workers>\d+)w")
PAUSES = re.compile(r"pause_writing events: (\d+)")
STARTUP_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 5.0
INSTALL_HINT = "pip install -e '.[bench]'"


@dataclass(frozen=True)
class ServerSpec:
    name: str
    kind: str  # "echo", "line" or "chat": what it does, and so which load drives it
    module: str
    args: tuple[str, ...] = ()
    requires: str | None = None  # an optional package it imports
    ours: bool = False
    workers: int = 1
    back_pressure: bool = True  # False: no send queue to watch (lean-echo blocks in sendall)


OURS = {
    "echo": ServerSpec("echo", "echo", "examples.echo_server", ours=True),
    "upper": ServerSpec("upper", "line", "examples.uppercase_server", ours=True),
    "chat": ServerSpec("chat", "chat", "examples.chat_server", ours=True),
}
PEERS = {
    spec.name: spec for spec in (
        ServerSpec("asyncio-echo", "echo", "examples.bench.peers.asyncio_echo"),
        ServerSpec("asyncio-upper", "line", "examples.bench.peers.asyncio_upper"),
        ServerSpec("uvloop-echo", "echo", "examples.bench.peers.asyncio_echo",
                   ("--loop", "uvloop"), requires="uvloop"),
        ServerSpec("uvloop-upper", "line", "examples.bench.peers.asyncio_upper",
                   ("--loop", "uvloop"), requires="uvloop"),
        # The same asyncio programs on our loop (reactor.aio), and streams beside Protocol.
        ServerSpec("aio-echo", "echo", "examples.bench.peers.asyncio_echo", ("--loop", "reactor")),
        ServerSpec("asyncio-streams", "echo", "examples.bench.peers.asyncio_streams_echo"),
        ServerSpec("aio-streams", "echo", "examples.bench.peers.asyncio_streams_echo",
                   ("--loop", "reactor")),
        ServerSpec("uvloop-streams", "echo", "examples.bench.peers.asyncio_streams_echo",
                   ("--loop", "uvloop"), requires="uvloop"),
        ServerSpec("twisted-echo", "echo", "examples.bench.peers.twisted_echo", requires="twisted"),
        ServerSpec("twisted-upper", "line", "examples.bench.peers.twisted_upper",
                   requires="twisted"),
        # The floor: one selector, recv and a blocking sendall, nothing else.
        ServerSpec("lean-echo", "echo", "examples.bench.peers.lean_echo", back_pressure=False),
        # examples/asyncio_chat.py, our chat's contract on asyncio streams, on three loops.
        ServerSpec("asyncio-chat", "chat", "examples.bench.peers.asyncio_chat_peer"),
        ServerSpec("uvloop-chat", "chat", "examples.bench.peers.asyncio_chat_peer",
                   ("--loop", "uvloop"), requires="uvloop"),
        ServerSpec("aio-chat", "chat", "examples.bench.peers.asyncio_chat_peer",
                   ("--loop", "reactor")),
    )
}
#: The server each kind is compared with, round by round.
BASELINES = {"echo": "asyncio-echo", "line": "asyncio-upper", "chat": "asyncio-chat"}


def spec_for(name: str) -> ServerSpec:
    """A catalogue entry, or a variant such as ``echo-2w`` (ours with ``--workers 2``)."""
    if name in OURS:
        return OURS[name]
    if name in PEERS:
        return PEERS[name]
    match = VARIANT.fullmatch(name)
    if match:
        base = OURS[match["base"]]
        workers = int(match["workers"])
        return ServerSpec(name, base.kind, base.module, ("--workers", str(workers)),
                          ours=True, workers=workers)
    known = ", ".join([*OURS, *PEERS, "echo-2w (any NAME-Nw of ours)"])
    raise ValueError(f"unknown server {name!r}; known: {known}")


@functools.cache
def accepts_workers(module: str) -> bool:
    """True if ``python -m module --help`` mentions ``--workers`` (added by another change)."""
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=30)
    return "--workers" in result.stdout


def unavailable(spec: ServerSpec) -> str | None:
    """Why ``spec`` cannot run here, or ``None`` if it can."""
    if spec.requires and importlib.util.find_spec(spec.requires) is None:
        return f"{spec.requires} is not installed ({INSTALL_HINT})"
    if spec.workers > 1 and not accepts_workers(spec.module):
        return f"python -m {spec.module} does not accept --workers yet"
    return None


def with_tunables(inherited: str, added: str) -> str:
    """A ``GLIBC_TUNABLES`` value with ``added`` in front of what the environment already set:
    glibc reads the colon-separated list left to right and the last setting of a name counts,
    so a tunable the user set by hand still wins."""
    return f"{added}:{inherited}" if inherited else added


def workers_in(args: tuple[str, ...]) -> int:
    """The ``--workers N`` among extra server arguments (1 without one)."""
    for index, arg in enumerate(args):
        if arg == "--workers" and index + 1 < len(args):
            return int(args[index + 1])
        if arg.startswith("--workers="):
            return int(arg.split("=", 1)[1])
    return 1


@dataclass(frozen=True)
class LaunchOptions:
    """How every server of a run is started."""

    cpus: CpuPlan
    extra_args: tuple[str, ...] = ()  # appended to our servers' command lines only
    malloc_top_pad: int = 0  # MALLOC_TOP_PAD_ for every server; 0 leaves glibc's default
    glibc_tunables: str = ""  # added to every server's GLIBC_TUNABLES; "" adds nothing
    nofile: int = 0  # soft RLIMIT_NOFILE to ask for; 0 leaves it
    #: A command the server's Python runs under (``valgrind ...`` for ``instructions``), and
    #: how many times longer it may then take to start and stop.
    wrapper: tuple[str, ...] = ()
    slowdown: float = 1.0

    def environment(self, inherited: Mapping[str, str]) -> dict[str, str]:
        """What a server's environment is: ``inherited`` with these options' glibc settings."""
        env = dict(inherited)
        if self.malloc_top_pad:
            env["MALLOC_TOP_PAD_"] = str(self.malloc_top_pad)
        if self.glibc_tunables:
            env["GLIBC_TUNABLES"] = with_tunables(env.get("GLIBC_TUNABLES", ""),
                                                  self.glibc_tunables)
        return env

    def for_connections(self, connections: int) -> LaunchOptions:
        """These options with a descriptor limit that holds ``connections`` clients."""
        return replace(self, nofile=connections + SPARE_DESCRIPTORS)


@dataclass
class ServerProcess:
    """One running server. Use as a context manager: ``stop()`` runs on the way out."""

    spec: ServerSpec
    options: LaunchOptions
    process: subprocess.Popen[bytes] = field(init=False)
    host: str = field(init=False, default="")
    port: int = field(init=False, default=0)
    stderr_text: str = field(init=False, default="")

    def __post_init__(self) -> None:
        args = (*self.spec.args, *(self.options.extra_args if self.spec.ours else ()))
        multi_process = max(self.spec.workers, workers_in(args)) > 1
        cpus = self.options.cpus.every if multi_process else self.options.cpus.server
        launch = [sys.executable, "-m", "examples.bench.launch", "--cpus", format_cpus(cpus)]
        if self.options.nofile:
            launch += ["--nofile", str(self.options.nofile)]
        command = [*launch, "--", *self.options.wrapper, sys.executable, "-m", self.spec.module,
                   "--port", "0", *args]
        env = self.options.environment(os.environ)
        self._stderr = tempfile.TemporaryFile()
        # Its own process group, so stop() reaches every worker of a multi-process server.
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=self._stderr,
                                        bufsize=0, start_new_session=True)
        try:
            self._wait_for_announcement()
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def _wait_for_announcement(self) -> None:
        """Read the first line byte by byte from the unbuffered pipe: a buffered read could take
        more than the line and leave ``select()`` waiting for bytes already read."""
        assert self.process.stdout is not None
        patience = STARTUP_TIMEOUT_SECONDS * self.options.slowdown
        deadline = time.monotonic() + patience
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.process.stdout], [], [], remaining)[0]:
                raise RuntimeError(f"{self.spec.name} did not announce itself within "
                                   f"{patience:.0f} s: {self._stderr_tail()}")
            byte = self.process.stdout.read(1)
            if not byte:
                raise RuntimeError(f"{self.spec.name} exited before listening: "
                                   f"{self._stderr_tail()}")
            line += byte
        match = LISTENING.search(line.decode("utf-8", "replace"))
        if not match:
            raise RuntimeError(f"{self.spec.name}: unexpected first line {line!r}")
        self.host = match["host"].strip("[]")
        self.port = int(match["port"])

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-2000:].strip() or "(no stderr)"

    def stop(self) -> str:
        """SIGTERM to its process group (our servers and the peers shut down cleanly on it),
        SIGKILL if that does not end it in time; returns everything the server wrote to stderr."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS * self.options.slowdown)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        if not self._stderr.closed:
            self._stderr.seek(0)
            self.stderr_text = self._stderr.read().decode("utf-8", "replace")
            self._stderr.close()
        return self.stderr_text

    def pause_writing_events(self) -> int | None:
        """What a peer reported on the way out; ``None`` for ours (the reactor does not count
        them where another process could see). Call after ``stop()``."""
        match = PAUSES.search(self.stderr_text)
        return int(match[1]) if match else None

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

"""TLS echo: our ``echo_server --tls-cert --tls-key`` next to asyncio's (and uvloop's) TLS echo.

    python -m examples.bench tls [--sizes 1024,102400] [--conns 10] [--rounds 3] [--seconds 3]

The method is the throughput matrix's (``matrix.py``): every server of a cell started afresh,
interleaved rounds, the server's user CPU per round trip read from ``/proc``, same-round ratios
to asyncio. What TLS changes:

* Certificates: a throwaway self-signed pair for ``localhost`` and ``127.0.0.1``, made for the run
  by ``openssl req`` in a temporary directory and removed after it (Python's ``ssl`` module can
  load certificates but not make them).
* Servers: our ``echo_server`` and the ``asyncio_echo`` peer (``--loop uvloop`` too, when
  installed), given the same two files, from which both build the same ``SSLContext``
  (``examples/tlsargs.py``): the row compares event loops, not OpenSSL settings.
* Load: ``pyload --tls`` (Python: ``echo_load.c`` speaks plain TCP only), which verifies the
  certificate and checks every byte that comes back. Its handshakes are done before the clock
  starts, so the figures are the cost of records (encrypting, decrypting, moving ciphertext
  between the socket and OpenSSL), not of key exchange. No ``redis-benchmark`` check: it speaks
  plain TCP.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from examples.bench import matrix
from examples.bench.clientkit import int_list
from examples.bench.load import Cell, LoadGenerators
from examples.bench.servers import LaunchOptions, ServerSpec

KIB = 1024
SERVERS = ("echo", "asyncio-echo", "uvloop-echo")
#: The programs that take ``--tls-cert``/``--tls-key``.
TLS_MODULES = ("examples.echo_server", "examples.bench.peers.asyncio_echo")
#: The README's command, with an expiry of one day: the pair lives as long as one run.
CERTIFICATE_COMMAND = ("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                       "-keyout", "key.pem", "-out", "cert.pem", "-subj", "/CN=localhost",
                       "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")
OPENSSL_TIMEOUT_SECONDS = 60.0


class CertificateError(RuntimeError):
    """``openssl`` is missing or could not make the pair; ``str()`` says which."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int_list, default=[KIB, 100 * KIB],
                        help="message bytes (default: 1024,102400)")
    parser.add_argument("--conns", type=int, default=10, help="connections (default: 10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: 3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured window per run (default: 3)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up per run (default: 1)")


def capable(specs: Sequence[ServerSpec]) -> tuple[list[ServerSpec], list[str]]:
    """The servers that can serve TLS, and a note for each that cannot."""
    kept = [spec for spec in specs if spec.module in TLS_MODULES]
    notes = [f"{spec.name} skipped: it has no TLS flags" for spec in specs if spec not in kept]
    return kept, notes


@contextmanager
def certificate() -> Iterator[tuple[Path, Path]]:
    """``(cert.pem, key.pem)`` made by ``CERTIFICATE_COMMAND`` in a temporary directory, which
    is removed on the way out. Raises ``CertificateError``."""
    if shutil.which("openssl") is None:
        raise CertificateError("openssl not found (apt-get install openssl): it makes the "
                           "certificate")
    with tempfile.TemporaryDirectory(prefix="handreactor-tls-") as directory:
        made = subprocess.run(CERTIFICATE_COMMAND, cwd=directory, capture_output=True,
                              text=True, timeout=OPENSSL_TIMEOUT_SECONDS)
        if made.returncode != 0:
            raise CertificateError(f"openssl req failed: {made.stderr.strip()[-500:]}")
        yield Path(directory, "cert.pem"), Path(directory, "key.pem")


def measure(specs: Sequence[ServerSpec], options: LaunchOptions, args: argparse.Namespace,
            cert: Path, key: Path) -> list[matrix.CellResult]:
    """Every cell's interleaved rounds, each server given ``--tls-cert cert --tls-key key``."""
    flags = ("--tls-cert", str(cert), "--tls-key", str(key))
    specs = [dataclasses.replace(spec, args=(*spec.args, *flags)) for spec in specs]
    load = LoadGenerators((sys.executable, "-m", "examples.bench.pyload", "--tls",
                           "--cafile", str(cert)), "pyload --tls (Python)")
    cells = [Cell("echo", size, args.conns, 1) for size in args.sizes]
    total = len(cells) * len(specs) * args.rounds
    done = 0
    results = []
    for cell in cells:
        result = matrix.CellResult(cell, [spec.name for spec in specs])
        results.append(result)
        with ExitStack() as stack:
            servers = [matrix.start(stack, spec, options) for spec in specs]
            for round_number in range(1, args.rounds + 1):
                for spec, server in zip(specs, servers):
                    run = matrix.run_one(spec, server, cell, load, options, args.warmup,
                                         args.seconds, round_number)
                    result.runs.append(run)
                    done += 1
                    matrix.progress(done, total, cell, run)
    return results


def render(result: matrix.CellResult, rounds: int) -> str:
    return "TLS " + result.render(rounds)

"""TLS for the example programs: the flags, and the ``ssl.SSLContext`` they describe.

Owns the TLS flags of every TCP server (``--tls-cert``, ``--tls-key``,
``--tls-handshake-timeout``) and of the line clients (``--tls``, ``--cafile``,
``--server-name``), and loading the certificates they name. Does not own the TLS itself
(``reactor/tls.py``: a listener or connector given ``ssl=context`` speaks TLS only).

Every failure to load is one line naming the flag, the file and the reason (``TLSSetupError``);
the programs print it and exit with status 2, before anything listens or connects. Python's
``load_cert_chain`` says only ``PEM lib`` and never which file, so the files are first read here
(a missing or unreadable one is named with its ``strerror``), and a file that is not PEM is
recognised by the header it lacks.
"""

from __future__ import annotations

import argparse
import ssl
from typing import Any

from examples.args import positive_seconds
from reactor.connection import TLS_HANDSHAKE_TIMEOUT_SECONDS

#: The PEM headers each file must have (``BEGIN PRIVATE KEY``, ``BEGIN RSA PRIVATE KEY``...).
CERTIFICATE_HEADER = "-----BEGIN CERTIFICATE-----"
PRIVATE_KEY_HEADER_END = "PRIVATE KEY-----"


class TLSSetupError(Exception):
    """A certificate, key or CA file that cannot be used; ``str()`` is the line to print."""


def add_server_tls_arguments(parser: argparse.ArgumentParser) -> None:
    tls = parser.add_argument_group("TLS (both files, or neither: then plain TCP)")
    tls.add_argument("--tls-cert", metavar="FILE",
                     help="serve TLS only, with this PEM certificate (chain); needs --tls-key")
    tls.add_argument("--tls-key", metavar="FILE",
                     help="the certificate's private key, PEM, unencrypted")
    tls.add_argument("--tls-handshake-timeout", type=positive_seconds, metavar="SECONDS",
                     default=TLS_HANDSHAKE_TIMEOUT_SECONDS,
                     help="close a connection whose TLS handshake is not done by then "
                          "(default: %(default)g)")


def check_server_tls_arguments(parser: argparse.ArgumentParser,
                               args: argparse.Namespace) -> None:
    """One of the two files without the other is a usage error (exit status 2)."""
    if (args.tls_cert is None) != (args.tls_key is None):
        given, missing = (("--tls-cert", "--tls-key") if args.tls_key is None
                          else ("--tls-key", "--tls-cert"))
        parser.error(f"{given} needs {missing} too")


def server_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The context ``--tls-cert`` and ``--tls-key`` describe, ``None`` without them.
    Raises ``TLSSetupError``."""
    if args.tls_cert is None:
        return None
    cert_text = read_pem("--tls-cert", args.tls_cert)
    key_text = read_pem("--tls-key", args.tls_key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A password callback, even one that refuses: without it OpenSSL would prompt for an
        # encrypted key's passphrase on the terminal, and the server would sit there.
        context.load_cert_chain(args.tls_cert, args.tls_key, password=refuse_passphrase)
    except EncryptedKey:
        raise TLSSetupError(f"--tls-key {args.tls_key}: the key is encrypted; give an "
                            "unencrypted one (openssl pkey -in KEY -out PLAIN_KEY)") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TLSSetupError(f"--tls-key {args.tls_key} does not match the certificate "
                                f"in --tls-cert {args.tls_cert}") from None
        if CERTIFICATE_HEADER not in cert_text:
            raise TLSSetupError(f"--tls-cert {args.tls_cert}: no PEM certificate in it") from None
        if PRIVATE_KEY_HEADER_END not in key_text:
            raise TLSSetupError(f"--tls-key {args.tls_key}: no PEM private key in it") from None
        raise TLSSetupError(f"cannot load --tls-cert {args.tls_cert} with --tls-key "
                            f"{args.tls_key}: {exc.reason or exc}") from None
    return context


class EncryptedKey(Exception):
    """Raised by ``refuse_passphrase``: OpenSSL asked for a passphrase we do not have."""


def refuse_passphrase() -> str:
    raise EncryptedKey


def read_pem(flag: str, path: str) -> str:
    """The file's text; ``TLSSetupError`` naming the flag, the path and the reason."""
    try:
        with open(path, encoding="ascii", errors="replace") as pem:
            return pem.read()
    except OSError as exc:
        raise TLSSetupError(f"cannot read {flag} {path}: {exc.strerror or exc}") from None


def add_client_tls_arguments(parser: argparse.ArgumentParser) -> None:
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls", action="store_true",
                     help="speak TLS, verifying the server's certificate and name")
    tls.add_argument("--cafile", metavar="FILE",
                     help="trust the CA (or self-signed certificate) in this PEM file "
                          "(default: the system's trust store); needs --tls")
    tls.add_argument("--server-name", metavar="NAME",
                     help="the name the certificate must match, also sent as SNI "
                          "(default: --host); needs --tls")


def check_client_tls_arguments(parser: argparse.ArgumentParser,
                               args: argparse.Namespace) -> None:
    if not args.tls:
        given = [flag for flag, value in (("--cafile", args.cafile),
                                          ("--server-name", args.server_name)) if value]
        if given:
            parser.error(f"{', '.join(given)} needs --tls")


def client_tls_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords ``connect_tcp``/``connect_unix`` take for what the flags ask: ``ssl``,
    ``server_hostname``, ``handshake_timeout`` (``--timeout``); empty without ``--tls``.
    Raises ``TLSSetupError`` for a ``--cafile`` that cannot be used."""
    if not args.tls:
        return {}
    if args.cafile is not None:
        read_pem("--cafile", args.cafile)
    try:
        context = ssl.create_default_context(cafile=args.cafile)
    except ssl.SSLError as exc:
        raise TLSSetupError(f"--cafile {args.cafile}: no PEM certificate in it "
                            f"({exc.reason or exc})") from None
    return {"ssl": context, "server_hostname": args.server_name or args.host,
            "handshake_timeout": args.timeout}

"""Throwaway certificates for the TLS tests, made with the ``openssl`` command.

A test CA signs three server certificates for one key: a good one (``localhost`` and
``127.0.0.1``), an expired one, and one for another host name. A second CA nobody trusts stands
in for "the wrong CA". ``openssl ca`` is used rather than ``openssl x509 -req`` because only it
can back-date a certificate (``-startdate``/``-enddate``), which the expired one needs.
"""

from __future__ import annotations

import dataclasses
import ssl
import subprocess
from pathlib import Path

from tests.real_commands import require_command

CA_CONFIG = """\
[ca]
default_ca = test_ca
[test_ca]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any_name
unique_subject = no
[any_name]
commonName = supplied
"""

# Python 3.13 verifies with VERIFY_X509_STRICT, which wants key identifiers and key usage.
SERVER_EXTENSIONS = """\
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = {names}
"""


@dataclasses.dataclass(frozen=True)
class Certificates:
    directory: Path
    ca: Path
    other_ca: Path
    key: Path
    cert: Path
    expired_cert: Path
    wrong_host_cert: Path

    def server_context(self, cert: Path | None = None,
                       maximum_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert or self.cert, self.key)
        if maximum_version is not None:
            context.maximum_version = maximum_version
        return context

    def client_context(self, cafile: Path | None = None) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=cafile or self.ca)


def openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True,
                   timeout=60)


def make_ca(directory: Path, name: str) -> None:
    openssl(directory, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=Reactor {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def sign(directory: Path, out: str, names: str, start: str, end: str) -> None:
    (directory / f"{out}.ext").write_text(SERVER_EXTENSIONS.format(names=names))
    openssl(directory, "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile",
            "ca.key", "-in", "server.csr", "-out", f"{out}.pem", "-notext",
            "-startdate", start, "-enddate", end, "-extfile", f"{out}.ext")


def make_certificates(directory: Path) -> Certificates:
    (directory / "ca.cnf").write_text(CA_CONFIG)
    (directory / "index.txt").write_text("")
    (directory / "serial").write_text("01\n")
    make_ca(directory, "ca")
    make_ca(directory, "other_ca")
    openssl(directory, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=localhost")
    sign(directory, "server", "DNS:localhost,IP:127.0.0.1", "20240101000000Z",
         "20400101000000Z")
    sign(directory, "expired", "DNS:localhost,IP:127.0.0.1", "20200101000000Z",
         "20200201000000Z")
    sign(directory, "wrong_host", "DNS:other.example", "20240101000000Z", "20400101000000Z")
    return Certificates(directory, directory / "ca.pem", directory / "other_ca.pem",
                        directory / "server.key", directory / "server.pem",
                        directory / "expired.pem", directory / "wrong_host.pem")


def require_openssl() -> None:
    require_command("openssl", "the TLS tests", "apt-get install openssl")

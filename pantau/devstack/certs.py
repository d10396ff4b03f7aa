"""Certificates for MQTT over TLS, made at run time with the `openssl` command (never committed).

`make_certs(directory, hosts=...)` writes a private CA and what a TLS broker and its clients
need, all signed by it (EC P-256, SHA-256):

- ``ca.crt`` / ``ca.key``: the CA (the key is what lets anyone mint more; keep it private);
- ``server.crt`` / ``server.key``: the broker, valid for ``hosts`` (DNS names and IP addresses,
  by default ``127.0.0.1``, ``::1`` and ``localhost``) and for server authentication only;
- ``client.crt`` / ``client.key``: a client certificate (for client authentication only) for
  ``client_name``, what the services listener of a broker that requires one asks of Pantau.

Keys are written with mode 0600 from their creation (`devices.provision.write_atomic`),
certificates 0644.
Calling it again on a directory that has them leaves them alone (`CertFiles.exist`), so a
work directory keeps its CA and clients keep trusting it.
"""

from __future__ import annotations

import ipaddress
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devices.provision import write_atomic
from pantau.devstack._process import DevstackError
from pantau.devstack.packages import binary

DEFAULT_HOSTS = ("127.0.0.1", "::1", "localhost")
DAYS = 825  # the longest validity clients accept for a server certificate


@dataclass(frozen=True, slots=True)
class CertFiles:
    """Where `make_certs` put each file."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"

    def private_keys(self) -> tuple[Path, ...]:
        return (self.ca_key, self.server_key, self.client_key)

    def exist(self) -> bool:
        return all(p.is_file() for p in (self.ca, self.server_cert, self.client_cert,
                                          *self.private_keys()))


def _openssl(*args: str, stdin: bytes = b"") -> bytes:
    """Run ``openssl args``; its stdout, or `DevstackError` with its stderr."""
    done = subprocess.run([binary("openssl"), *args], input=stdin, capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise DevstackError(f"openssl {args[0]} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


def _new_key(path: Path) -> None:
    # The key goes through our pipe, never through a file openssl creates with its own mode.
    write_atomic(path, _openssl("genpkey", "-algorithm", "EC",
                                "-pkeyopt", "ec_paramgen_curve:P-256").decode(), 0o600)


def _subject_alt_names(hosts: Sequence[str]) -> str:
    names = []
    for host in hosts:
        try:
            names.append(f"IP:{ipaddress.ip_address(host)}")
        except ValueError:
            names.append(f"DNS:{host}")
    return ",".join(names)


def _sign(files: CertFiles, key: Path, out: Path, subject: str, extensions: list[str]) -> None:
    """A certificate for ``key`` signed by the CA in ``files``."""
    csr = _openssl("req", "-new", "-key", str(key), "-subj", subject)
    with tempfile.NamedTemporaryFile("w", suffix=".ext", dir=files.directory) as ext:
        ext.write("\n".join(["basicConstraints=critical,CA:FALSE",
                             "subjectKeyIdentifier=hash",
                             "authorityKeyIdentifier=keyid,issuer", *extensions, ""]))
        ext.flush()
        cert = _openssl("x509", "-req", "-CA", str(files.ca), "-CAkey", str(files.ca_key),
                        "-set_serial", str(int.from_bytes(_openssl("rand", "16"), "big")),
                        "-days", str(DAYS), "-sha256", "-extfile", ext.name, stdin=csr)
    write_atomic(out, cert.decode(), 0o644)


def make_certs(directory: str | Path, *, hosts: Sequence[str] = DEFAULT_HOSTS,
               client_name: str = "pantau", ca_name: str = "Pantau MQTT CA") -> CertFiles:
    """Create (once) a CA, a server certificate for ``hosts`` and a client certificate for
    ``client_name`` in ``directory``; return where they are."""
    if not hosts:
        raise DevstackError("a server certificate needs at least one host name or address")
    files = CertFiles(Path(directory))
    if files.exist():
        return files
    files.directory.mkdir(parents=True, exist_ok=True)
    _new_key(files.ca_key)
    write_atomic(files.ca, _openssl(
        "req", "-x509", "-new", "-key", str(files.ca_key), "-subj", f"/CN={ca_name}",
        "-days", str(DAYS * 4), "-sha256",
        "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash").decode(), 0o644)
    _new_key(files.server_key)
    _sign(files, files.server_key, files.server_cert, f"/CN={hosts[0]}",
          ["keyUsage=critical,digitalSignature,keyEncipherment", "extendedKeyUsage=serverAuth",
           f"subjectAltName={_subject_alt_names(hosts)}"])
    _new_key(files.client_key)
    _sign(files, files.client_key, files.client_cert, f"/CN={client_name}",
          ["keyUsage=critical,digitalSignature", "extendedKeyUsage=clientAuth"])
    return files

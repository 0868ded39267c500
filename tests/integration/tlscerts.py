"""Throwaway PEM certificates for TLS tests, made with the ``openssl`` command line.

(The venv has no ``cryptography`` package; ``openssl`` is on every CI image.)
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CertSet:
    ca: Path  # the CA certificate (what clients trust)
    chain: Path  # broker certificate followed by the CA certificate
    key: Path  # the broker's unencrypted PKCS#8 key


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl is not None, "the TLS tests need the openssl command line"
    subprocess.run([openssl, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
        "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        cwd=directory,
    )
    return cert, key


def make_broker_certs(directory: Path, usage: str = "serverAuth") -> CertSet:
    """A CA and a broker certificate for 127.0.0.1 / localhost signed by it
    (``usage``: its extended key usage; ``clientAuth`` for a client certificate)."""
    ca, ca_key = make_ca(directory, "test-ca")
    key, csr, cert = directory / "broker.key", directory / "broker.csr", directory / "broker.pem"
    ext = directory / "broker.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage={usage}\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-sha256", "-keyout", str(key),
             "-out", str(csr), "-subj", "/CN=127.0.0.1", cwd=directory)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-sha256", "-days", "2", "-out", str(cert),
             "-extfile", str(ext), cwd=directory)
    chain = directory / "broker-chain.pem"
    chain.write_text(cert.read_text() + ca.read_text())
    return CertSet(ca=ca, chain=chain, key=key)

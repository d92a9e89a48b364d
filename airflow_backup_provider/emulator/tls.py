"""Throwaway PKI for the emulator: a private CA and a server certificate for 127.0.0.1 / localhost.

Clients keep TLS verification on and trust the CA through ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE`` (or an explicit
``verify=`` / ``ssl=`` argument). The private keys never touch the disk: the server key is handed to ``ssl`` through a
private temporary file that is deleted right after loading, because ``SSLContext.load_cert_chain`` only reads files.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class ServerCredentials:
    """PEM material of one emulator run: the CA certificate (public) and the server chain with its key."""

    ca_cert_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes


def generate_credentials(hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 30) -> ServerCredentials:
    """Create a fresh CA and a server certificate for ``hosts`` (IP addresses become IP SANs, names DNS SANs).

    Both certificates carry the extensions strict verifiers (Python 3.13's ``VERIFY_X509_STRICT``, Go, OpenSSL 3)
    insist on: key identifiers, critical basic constraints / key usage, and serverAuth EKU on the leaf.
    """
    now = datetime.now(timezone.utc)
    not_before = now - timedelta(hours=1)  # tolerate small clock skew between processes
    not_after = now + timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Azure Backup Emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Azure Backup Emulator throwaway CA"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    return ServerCredentials(
        ca_cert_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        server_cert_pem=server_cert.public_bytes(serialization.Encoding.PEM),
        server_key_pem=server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def write_ca_file(credentials: ServerCredentials, path: str | os.PathLike[str]) -> str:
    """Write the CA certificate (public material only) to ``path``; return the absolute path."""
    target = os.path.abspath(os.fspath(path))  # absolute: it ends up in env vars of other processes
    parent = os.path.dirname(target)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(target, "wb") as handle:
        handle.write(credentials.ca_cert_pem)
    return target


def server_ssl_context(credentials: ServerCredentials) -> ssl.SSLContext:
    """Server-side TLS context (TLS 1.2+, HTTP/1.1 ALPN) holding the emulator's certificate and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    # load_cert_chain needs files; keep the key in a 0600 temp file for the blink of an eye.
    fd, key_path = tempfile.mkstemp(prefix="azure-backup-emulator-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(credentials.server_cert_pem + credentials.server_key_pem)
        context.load_cert_chain(key_path)
    finally:
        os.unlink(key_path)
    return context


def client_ssl_context(ca_file: str | os.PathLike[str]) -> ssl.SSLContext:
    """Client-side context that verifies the emulator's certificate against the throwaway CA only."""
    return ssl.create_default_context(cafile=os.fspath(ca_file))

"""Throw-away certificate chains for the benchmark: a P-256 root and a leaf of a chosen key.

Only the leaf's key type changes what a full handshake costs the server (it signs with
that key); the root stays ECDSA so that every chain has the same length and shape.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DOMAIN = "app.example.test"
KEY_TYPES = ("ecdsa-p256", "rsa-2048", "rsa-3072")


@dataclass(frozen=True)
class Chain:
    key_type: str
    chain_pem: str  # leaf first, then the root
    key_pem: str
    ca_file: Path
    chain_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _leaf_key(key_type: str):
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type in ("rsa-2048", "rsa-3072"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise ValueError(f"key_type must be one of {', '.join(KEY_TYPES)}")


def make_chain(directory: Path, key_type: str = "ecdsa-p256") -> Chain:
    """Write ca.pem, chain.pem and key.pem for `key_type` under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    before, after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("ecs-tls benchmark root"))
        .issuer_name(_name("ecs-tls benchmark root"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(before)
        .not_valid_after(after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = _leaf_key(key_type)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(DOMAIN))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(before)
        .not_valid_after(after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    chain_pem = leaf.public_bytes(serialization.Encoding.PEM).decode() + ca_pem
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    files = {name: directory / f"{name}.pem" for name in ("ca", "chain", "key")}
    files["ca"].write_text(ca_pem)
    files["chain"].write_text(chain_pem)
    files["key"].write_text(key_pem)
    files["key"].chmod(0o600)
    return Chain(key_type, chain_pem, key_pem, files["ca"], files["chain"], files["key"])

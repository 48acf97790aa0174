"""Real certificates for tests: a root CA, intermediates and a leaf, made with cryptography.

    pki = make_pki("app.example.com")                   # ECDSA P-256, one intermediate
    pki = make_pki("app.example.com", key_type="rsa")   # RSA-2048 leaf key
    config = {"certificate": pki.certificate_config()}  # certificatePem, privateKeyPem, chainPem

Results are cached per arguments (RSA keys take a while), so tests must not change them.
The CA keys are always P-256: only the leaf's key type matters to what is tested.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Dates relative to the run keep the certificates valid whatever day the suite runs.
NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Pki:
    leaf_pem: str
    key_pem: str = field(repr=False)
    chain_pem: str  # the leaf's issuer first, then each one's issuer; no root
    root_pem: str
    key: object = field(repr=False)

    def certificate_config(self, chain: bool = True) -> dict[str, str]:
        """The `certificate` object of a stack configuration."""
        config = {"certificatePem": self.leaf_pem, "privateKeyPem": self.key_pem}
        if chain:
            config["chainPem"] = self.chain_pem
        return config

    def encrypted_key_pem(self, password: bytes = b"secret") -> str:
        return key_pem(self.key, serialization.BestAvailableEncryption(password))


def key_pem(key, encryption=None) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        encryption or serialization.NoEncryption(),
    ).decode()


def cert_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def new_key(key_type: str = "ec", size: int = 2048):
    """ec (P-256), p384, k256 (secp256k1), rsa (`size` bits) or ed25519."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    curve = {"ec": ec.SECP256R1(), "p384": ec.SECP384R1(), "k256": ec.SECP256K1()}[key_type]
    return ec.generate_private_key(curve)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ecs-tls tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _issue(subject, key, issuer, issuer_key, *, ca, names, not_before, not_after):
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@functools.cache
def make_pki(
    *names: str,
    key_type: str = "ec",
    key_size: int = 2048,
    intermediates: int = 1,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    common_name: str | None = None,
    san: bool = True,
    label: str = "",
) -> Pki:
    """A chain root -> intermediates -> leaf for `names` (subjectAltName DNS names).

    `not_before`/`not_after` set the leaf's validity (default: from yesterday for a year);
    `san=False` leaves the names out (only the common name); `label` only makes a
    distinct, otherwise identical PKI (another key, another leaf).
    """
    names = names or ("app.example.com",)
    ca_dates = {"not_before": NOW - 30 * DAY, "not_after": NOW + 3650 * DAY}
    root_key = new_key()
    root_name = _name(f"Test Root CA {label}".strip())
    root = _issue(root_name, root_key, root_name, root_key, ca=True, names=(), **ca_dates)
    issuer, issuer_key, chain = root, root_key, []
    for i in range(intermediates):
        key = new_key()
        name = _name(f"Test Intermediate CA {i + 1} {label}".strip())
        cert = _issue(name, key, issuer.subject, issuer_key, ca=True, names=(), **ca_dates)
        chain.insert(0, cert)
        issuer, issuer_key = cert, key
    leaf_key = new_key(key_type, key_size)
    leaf = _issue(
        _name(common_name or names[0]),
        leaf_key,
        issuer.subject,
        issuer_key,
        ca=False,
        names=names if san else (),
        not_before=not_before or NOW - DAY,
        not_after=not_after or NOW + 365 * DAY,
    )
    return Pki(
        leaf_pem=cert_pem(leaf),
        key_pem=key_pem(leaf_key),
        chain_pem="".join(cert_pem(c) for c in chain),
        root_pem=cert_pem(root),
        key=leaf_key,
    )

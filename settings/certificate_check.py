"""Checks of a bring-your-own certificate, before anything is registered.

ACM refuses to import a certificate whose key does not match, that is expired or not yet
valid, or whose key it does not support; a browser refuses one that does not name the
domain; a client that gets the chain out of order may fail to build a path. Each of these
would otherwise surface halfway through `pulumi up`, or only when a client connects. The
messages name the key and describe the certificate (its names, dates, subjects, which
every TLS client sees) but never show the private key or the PEM text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from settings.errors import ConfigError
from settings.redaction import holds_key_material

CERTIFICATE = "certificate.certificatePem"
CHAIN = "certificate.chainPem"
PRIVATE_KEY = "certificate.privateKeyPem"

# What ACM imports (ImportCertificate): RSA 1024 to 4096 bits and ECDSA P-256, P-384 and
# P-521, as an unencrypted PEM of at most 5,120 bytes.
ACM_RSA_BITS = (1024, 2048, 3072, 4096)
ACM_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
ACM_MAX_KEY_BYTES = 5120


@dataclass(frozen=True)
class CheckedCertificate:
    """What later steps need to know of a certificate that passed every check."""

    names: tuple[str, ...]
    not_valid_after: datetime


def check_certificate(
    certificate_pem: str,
    private_key_pem: str,
    chain_pem: str | None,
    domain: str,
    now: datetime | None = None,
) -> CheckedCertificate:
    """Raise `ConfigError` for the first problem of the certificate, its key or its chain."""
    now = now or datetime.now(UTC)
    leaf = _leaf(certificate_pem)
    key = _private_key(private_key_pem)
    chain = _chain(chain_pem) if chain_pem else []
    if _public_der(leaf.public_key()) != _public_der(key.public_key()):
        raise ConfigError(
            PRIVATE_KEY, f"is not the key of {CERTIFICATE} (their public keys differ)"
        )
    names = _dns_names(leaf)
    _check_covers(names, domain)
    _check_dates(leaf, now)
    _check_order(leaf, chain)
    return CheckedCertificate(names=names, not_valid_after=leaf.not_valid_after_utc)


def _leaf(text: str) -> x509.Certificate:
    if holds_key_material(text):
        raise ConfigError(
            CERTIFICATE, f"holds a private key; it takes the certificate (the key: {PRIVATE_KEY})"
        )
    certificates = _certificates(text, CERTIFICATE)
    if len(certificates) > 1:
        raise ConfigError(
            CERTIFICATE,
            f"holds {len(certificates)} certificates; it takes the leaf only, the "
            f"certificates that sign it go in {CHAIN}",
        )
    return certificates[0]


def _chain(text: str) -> list[x509.Certificate]:
    if holds_key_material(text):
        raise ConfigError(
            CHAIN, f"holds a private key; it takes certificates (the key: {PRIVATE_KEY})"
        )
    return _certificates(text, CHAIN)


def _certificates(text: str, key: str) -> list[x509.Certificate]:
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(key, "is not PEM text with a -----BEGIN CERTIFICATE----- block")
    try:
        return x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise ConfigError(
            key, "holds a CERTIFICATE block that is not a valid X.509 certificate"
        ) from None


def _private_key(text: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if len(text.strip().encode()) > ACM_MAX_KEY_BYTES:
        raise ConfigError(PRIVATE_KEY, f"is longer than the {ACM_MAX_KEY_BYTES} bytes ACM accepts")
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except TypeError:
        # cryptography raises TypeError for an encrypted key read without a password.
        raise ConfigError(
            PRIVATE_KEY,
            "is encrypted; ACM imports unencrypted keys only (openssl pkey -in key.pem "
            "-out key-plain.pem)",
        ) from None
    except ValueError:
        raise ConfigError(PRIVATE_KEY, "is not a PEM private key") from None
    except Exception:  # e.g. UnsupportedAlgorithm; its text is not shown either
        raise ConfigError(PRIVATE_KEY, "is not a private key that can be read") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size not in ACM_RSA_BITS:
            raise ConfigError(
                PRIVATE_KEY,
                f"is a {key.key_size}-bit RSA key; ACM imports RSA keys of "
                f"{', '.join(map(str, ACM_RSA_BITS))} bits",
            )
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in ACM_CURVES:
            raise ConfigError(
                PRIVATE_KEY,
                f"is an ECDSA key on curve {key.curve.name}; ACM imports "
                f"{', '.join(ACM_CURVES.values())}",
            )
        return key
    kind = type(key).__name__.removeprefix("_").removesuffix("PrivateKey") or "unknown"
    raise ConfigError(PRIVATE_KEY, f"holds a key of type {kind}; ACM imports RSA and ECDSA keys")


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _dns_names(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(extension.value.get_values_for_type(x509.DNSName))


def covers(name: str, domain: str) -> bool:
    """True when the certificate name `name` matches `domain` (RFC 6125, section 6.4).

    A wildcard stands for exactly one whole label, and only as the left-most one:
    `*.example.com` covers `app.example.com`, not `example.com` or `a.b.example.com`.
    """
    name, domain = name.lower().rstrip("."), domain.lower().rstrip(".")
    if not name.startswith("*."):
        return "*" not in name and name == domain
    label, _, parent = domain.partition(".")
    return bool(label) and "*" not in name[2:] and parent == name[2:]


def _check_covers(names: tuple[str, ...], domain: str) -> None:
    if not names:
        raise ConfigError(
            CERTIFICATE,
            "names no DNS name (no subjectAltName); clients ignore the subject's common "
            f"name, so it cannot serve {domain!r} (ecs-tls:domain)",
        )
    if not any(covers(name, domain) for name in names):
        listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise ConfigError(CERTIFICATE, f"covers {listed}, not {domain!r} (ecs-tls:domain)")


def _check_dates(certificate: x509.Certificate, now: datetime) -> None:
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if now >= not_after:
        raise ConfigError(
            CERTIFICATE,
            f"expired on {not_after:%Y-%m-%d %H:%M} UTC; ACM imports only a certificate that "
            "is valid now",
        )
    if now < not_before:
        raise ConfigError(
            CERTIFICATE,
            f"is not valid before {not_before:%Y-%m-%d %H:%M} UTC; ACM imports only a "
            "certificate that is valid now, so run `pulumi up` after that time",
        )


def _check_order(leaf: x509.Certificate, chain: list[x509.Certificate]) -> None:
    """Each certificate must be signed by the next one: the leaf by chain[0], and so on."""
    for position, issuer in enumerate(chain, start=1):
        child = leaf if position == 1 else chain[position - 2]
        try:
            # Checks that the issuer's subject is the child's issuer and the signature.
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            what = CERTIFICATE if position == 1 else f"certificate {position - 1}"
            raise ConfigError(
                CHAIN,
                f"certificate {position} ({_subject(issuer)}) did not sign {what} "
                f"({_subject(child)}); list the chain from the leaf's issuer upwards, each "
                "certificate followed by the one that signed it",
            ) from None


def _subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "empty subject"

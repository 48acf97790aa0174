"""Commands of the ``certbot`` and ``copier`` containers of the ``nlb-certbot`` topology.

The task runs three containers chained with ``dependsOn``::

    certbot (essential=false) --SUCCESS--> copier (essential=false) --SUCCESS--> app

``certbot`` obtains (or keeps) a Let's Encrypt certificate under ``/etc/letsencrypt``, which
lives on EFS so the certificate and the ACME account survive task replacements and are not
re-issued on every start. ``copier`` then lays the certificate out the way the application
(Neo4j 5) expects it on a task scratch volume (``/ssl``), see ``copy_certificates.sh``.

This module is pure (no Pulumi, no I/O besides reading the script that ships next to it):
the task definition is built from these functions, and the integration tests run the very
same argv and script against a real ACME server (Pebble), so what is tested is what is
deployed.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from settings import CertificateLayout

# The domain becomes certbot's certificate name and a directory name: the same lowercase,
# no-wildcard, no-trailing-dot DNS name the settings accept.
from settings.readers import DOMAIN_RE

__all__ = [
    "CERTBOT_VERSION",
    "CHALLENGES",
    "COPIER_IMAGE",
    "KEY_TYPES",
    "CertbotSpec",
    "CertificateLayout",
    "certbot_args",
    "certbot_image",
    "copier_command",
    "copier_environment",
    "copy_script",
    "live_dir",
]

# Assumption: the certbot project publishes Docker Hub images tagged ``v<version>`` for every
# release (certbot/certbot and one image per DNS plugin, e.g. certbot/dns-route53), so the
# containers run the same certbot as the one pinned in requirements-dev.txt and exercised
# by tests/integration/test_acme_pebble.py. Bump both together.
CERTBOT_VERSION = "5.8.0"
_IMAGES = {
    "http-01": f"certbot/certbot:v{CERTBOT_VERSION}",
    "dns-01": f"certbot/dns-route53:v{CERTBOT_VERSION}",
}
CHALLENGES = tuple(_IMAGES)

# The copier only needs a POSIX shell with cp/mv/mkdir/mktemp/chmod/chown. Alpine's are
# busybox applets; the integration tests run the script under busybox as well.
COPIER_IMAGE = "public.ecr.aws/docker/library/alpine:3.20"

KEY_TYPES = ("ecdsa", "rsa")

_SCRIPT_PATH = Path(__file__).with_name("copy_certificates.sh")

# Deliberately loose (the ACME server has the final word), but rejects anything that could
# be taken for another option or split into several arguments.
_EMAIL_RE = re.compile(r"^[^@\s-][^@\s]*@[^@\s]+\.[^@\s]+$")
_PROFILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_URL_RE = re.compile(r"^https://[^\s/?#]+(/\S*)?$")
_SCOPE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_OWNER_RE = re.compile(r"^[0-9]+(:[0-9]+)?$")


@dataclass(frozen=True)
class CertbotSpec:
    """What the ``certbot`` container asks the ACME server for.

    ``http_address`` is the address certbot's standalone HTTP-01 server binds to; ``None``
    binds every interface (what the container needs behind the NLB), tests bind loopback.
    Certbot's work and log directories live under ``config_dir`` (``.work`` and ``.logs``),
    so one volume holds all of certbot's state and a test only needs one temporary
    directory.
    """

    email: str
    domain: str
    directory_url: str
    challenge: str = "dns-01"  # "dns-01" | "http-01"
    http_port: int = 80  # http-01 standalone port
    config_dir: str = "/etc/letsencrypt"
    preferred_profile: str | None = None  # e.g. "tlsserver"; omitted when None
    key_type: str = "ecdsa"
    http_address: str | None = None


def _check(condition: bool, field: str, value: object, expected: str) -> None:
    if not condition:
        raise ValueError(f"{field}: {value!r} is not {expected}")


def _check_domain(domain: object) -> None:
    _check(
        isinstance(domain, str) and len(domain) <= 253 and bool(DOMAIN_RE.match(domain)),
        "domain",
        domain,
        "a lowercase DNS name such as db.example.com (no wildcard, no trailing dot)",
    )


def _check_config_dir(config_dir: object) -> None:
    _check(
        isinstance(config_dir, str)
        and config_dir.startswith("/")
        and posixpath.normpath(config_dir) == config_dir.rstrip("/")
        and not any(c.isspace() for c in config_dir),
        "config_dir",
        config_dir,
        "a normalised absolute path without whitespace",
    )


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _validate(spec: CertbotSpec) -> None:
    _check(
        isinstance(spec.email, str) and bool(_EMAIL_RE.match(spec.email)),
        "email",
        spec.email,
        "an e-mail address such as ops@example.com",
    )
    _check_domain(spec.domain)
    _check(
        isinstance(spec.directory_url, str) and bool(_URL_RE.match(spec.directory_url)),
        "directory_url",
        spec.directory_url,
        "an https:// ACME directory URL",
    )
    _check(
        spec.challenge in CHALLENGES, "challenge", spec.challenge, f"one of {', '.join(CHALLENGES)}"
    )
    _check(
        isinstance(spec.http_port, int)
        and not isinstance(spec.http_port, bool)
        and 1 <= spec.http_port <= 65535,
        "http_port",
        spec.http_port,
        "a TCP port (1-65535)",
    )
    _check_config_dir(spec.config_dir)
    _check(
        spec.preferred_profile is None
        or (
            isinstance(spec.preferred_profile, str)
            and bool(_PROFILE_RE.match(spec.preferred_profile))
        ),
        "preferred_profile",
        spec.preferred_profile,
        "None or an ACME profile name such as tlsserver",
    )
    _check(spec.key_type in KEY_TYPES, "key_type", spec.key_type, f"one of {', '.join(KEY_TYPES)}")
    _check(
        spec.http_address is None
        or (isinstance(spec.http_address, str) and _is_ip(spec.http_address)),
        "http_address",
        spec.http_address,
        "None or an IP address",
    )


def certbot_args(spec: CertbotSpec) -> list[str]:
    """Argv after the ``certbot`` executable (the image's entrypoint): ``["certonly", ...]``.

    ``--keep-until-expiring`` makes a task restart a no-op while the certificate stored on
    EFS is not due for renewal, so restarts neither hit Let's Encrypt rate limits nor need
    the CA to be reachable. ``--cert-name`` pins the lineage name, so the files always are
    in ``<config_dir>/live/<domain>/`` (see ``live_dir``).
    """
    _validate(spec)
    config_dir = spec.config_dir.rstrip("/") or "/"
    args = [
        "certonly",
        "--non-interactive",
        "--agree-tos",
        "--no-eff-email",
        "-m",
        spec.email,
        "-d",
        spec.domain,
        "--cert-name",
        spec.domain,
        "--server",
        spec.directory_url,
        "--keep-until-expiring",
        "--key-type",
        spec.key_type,
        "--config-dir",
        config_dir,
        "--work-dir",
        posixpath.join(config_dir, ".work"),
        "--logs-dir",
        posixpath.join(config_dir, ".logs"),
        # The log also goes to the container's stderr (CloudWatch); keep EFS tidy.
        "--max-log-backups",
        "10",
    ]
    if spec.key_type == "ecdsa":
        args += ["--elliptic-curve", "secp256r1"]
    if spec.preferred_profile is not None:
        # Falls back to the CA's default profile if the CA does not offer this one, so a
        # renamed or retired profile never blocks a renewal.
        args += ["--preferred-profile", spec.preferred_profile]
    if spec.challenge == "dns-01":
        # Needs route53:ListHostedZones, route53:GetChange, route53:ChangeResourceRecordSets.
        args += ["--preferred-challenges", "dns-01", "--dns-route53"]
    else:
        args += [
            "--preferred-challenges",
            "http-01",
            "--standalone",
            "--http-01-port",
            str(spec.http_port),
        ]
        if spec.http_address is not None:
            args += ["--http-01-address", spec.http_address]
    return args


def certbot_image(challenge: str) -> str:
    """The pinned certbot image for a challenge type (DNS-01 needs the Route53 plugin)."""
    try:
        return _IMAGES[challenge]
    except KeyError:
        raise ValueError(
            f"challenge: {challenge!r} is not one of {', '.join(CHALLENGES)}"
        ) from None


def live_dir(domain: str, config_dir: str = "/etc/letsencrypt") -> str:
    """Directory where certbot keeps the current certificate of ``domain``."""
    _check_domain(domain)
    _check_config_dir(config_dir)
    return posixpath.join(config_dir.rstrip("/") or "/", "live", domain)


@cache
def copy_script() -> str:
    """Text of ``copy_certificates.sh``, delivered inline in the copier's command."""
    return _SCRIPT_PATH.read_text(encoding="utf-8")


def copier_command() -> list[str]:
    """Command of the copier container: the script runs inline, no image build needed."""
    return ["sh", "-c", copy_script()]


def copier_environment(
    layout: CertificateLayout, domain: str, config_dir: str = "/etc/letsencrypt"
) -> dict[str, str]:
    """Environment of the copier container (the variables ``copy_certificates.sh`` reads)."""
    _check(
        isinstance(layout.scopes, tuple)
        and len(layout.scopes) > 0
        and all(isinstance(s, str) and _SCOPE_RE.match(s) for s in layout.scopes)
        and len(set(layout.scopes)) == len(layout.scopes),
        "scopes",
        layout.scopes,
        "a non-empty tuple of distinct directory names",
    )
    for field in ("cert_file", "key_file"):
        value = getattr(layout, field)
        _check(
            isinstance(value, str) and bool(_SCOPE_RE.match(value)) and value not in (".", ".."),
            field,
            value,
            "a plain file name",
        )
    _check(
        layout.cert_file != layout.key_file, "key_file", layout.key_file, "distinct from cert_file"
    )
    _check(
        isinstance(layout.target_dir, str)
        and layout.target_dir.startswith("/")
        and layout.target_dir.rstrip("/") != ""
        and not any(c.isspace() for c in layout.target_dir),
        "target_dir",
        layout.target_dir,
        "an absolute path other than / without whitespace",
    )
    _check(
        layout.owner is None
        or (isinstance(layout.owner, str) and bool(_OWNER_RE.match(layout.owner))),
        "owner",
        layout.owner,
        "None or a numeric uid[:gid]",
    )
    env = {
        "SOURCE_DIR": live_dir(domain, config_dir),
        "TARGET_DIR": layout.target_dir.rstrip("/"),
        "SCOPES": " ".join(layout.scopes),
        "CERT_FILE": layout.cert_file,
        "KEY_FILE": layout.key_file,
    }
    if layout.owner is not None:
        env["OWNER"] = layout.owner
    return env

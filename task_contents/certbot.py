"""Commands of certbot and the copier in the ``nlb-certbot`` topology, and of its renewal task.

certbot runs in tasks of its own, whose role may answer the ACME challenge and write the
ACME state under ``/etc/letsencrypt`` (EFS, so the certificate and the ACME account outlive
tasks); the app's task only reads it. Its two containers are chained with ``dependsOn``::

    copier (essential=false) --SUCCESS--> app

``copier`` lays the certificate out the way the application (Neo4j 5) expects (``/ssl``),
see ``copy_certificates.sh``. It succeeds with an unexpired certificate on EFS, so an ACME
outage at start-up does not keep the database down, and waits (``COPIER_WAIT_SECONDS``) for
one when there is none yet.

The issuer task runs ``certbot_command`` whenever a task of the app starts (the first
deploy included): it obtains the certificate or keeps the one there. The renewal task runs
on a schedule with the very same certbot argv (``certbot_args``) on the same state, plus a
``--deploy-hook`` that restarts the app's ECS service only when certbot actually issued a
certificate (``renewal_command``, ``renewal_hook.py``).

certbot runs as a non-root user, ``CERTBOT_USER`` (also the EFS access point's user); on an
ECS instance the copier too, as the owner of the files it lays out.

Each ACME server has its own lineage (``lineage_name``): switching ``acme.server`` obtains a
certificate from the new server on the next run, and switching back finds the old lineage.

Every certbot run holds an exclusive lock on a file next to the state (``lock_file``), so two
runs on one state (a task start and the schedule, two tasks) wait for each other instead of
failing on certbot's own lock.

This module is pure (no Pulumi, no I/O besides reading the scripts that ship next to it):
the task definitions are built from these functions, and the integration tests run the very
same argv and scripts against a real ACME server (Pebble), so what is tested is what is
deployed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import posixpath
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# The domain becomes certbot's certificate name and a directory name: the same lowercase,
# no-wildcard, no-trailing-dot DNS name the settings accept.
from constants.config import ACME_DIRECTORIES, DOMAIN_RE
from constants.images import CERTBOT_DNS_ROUTE53_IMAGE, CERTBOT_IMAGE, COPIER_IMAGE
from task_contents.certificate_layout import CertificateLayout

__all__ = [
    "CERTBOT_GID",
    "CERTBOT_UID",
    "CERTBOT_USER",
    "CERTBOT_VERSION",
    "CHALLENGES",
    "COPIER_IMAGE",
    "COPIER_WAIT_SECONDS",
    "DEPLOY_HOOK",
    "KEY_TYPES",
    "LOCK_FILE_NAME",
    "RENEWAL_IMAGE",
    "RESTART_PENDING_NAME",
    "SHELL_ENTRY_POINT",
    "CertbotSpec",
    "CertificateLayout",
    "certbot_args",
    "certbot_command",
    "certbot_image",
    "copier_command",
    "copier_environment",
    "copy_script",
    "hook_program",
    "lineage_name",
    "live_dir",
    "lock_file",
    "renewal_command",
    "renewal_environment",
    "restart_pending_file",
    "s3_state_environment",
    "s3_state_renewal_command",
    "state_program",
]

# Assumption: the certbot project publishes Docker Hub images tagged ``v<version>`` for every
# release (certbot/certbot and one image per DNS plugin, e.g. certbot/dns-route53), so the
# containers run the same certbot as the one pinned in requirements-dev.txt and exercised
# by tests/integration/test_acme_pebble.py. Bump both together.
CERTBOT_VERSION = "5.8.0"
# Pinned by digest in constants/images.py, with the other images the program chooses.
_IMAGES = {"http-01": CERTBOT_IMAGE, "dns-01": CERTBOT_DNS_ROUTE53_IMAGE}
CHALLENGES = tuple(_IMAGES)

# The renewal task restarts the app from a deploy hook written in Python with boto3: the
# Route53 plugin's image ships boto3, and certbot's standalone plugin (HTTP-01) is in every
# certbot image, so this one image renews with either challenge.
RENEWAL_IMAGE = _IMAGES["dns-01"]

# Both certbot images set ENTRYPOINT ["certbot"] (certbot/certbot tools/docker/Dockerfile);
# the lock wrapper needs a shell first, so the containers replace the entry point.
SHELL_ENTRY_POINT = ("sh", "-c")

# Not certbot's own ".certbot.lock": over NFS, flock() is emulated with fcntl() locks and the
# two kinds interact (flock(2), "NFS details"), so sharing certbot's file would block certbot
# on its own wrapper.
LOCK_FILE_NAME = ".certbot-run.lock"
RESTART_PENDING_NAME = ".restart-pending"

# certbot runs a deploy hook through /bin/sh with the task's environment, to which the renewal
# wrapper adds the program's source: the hook stays one short line, which is also what certbot
# writes into renewal/<name>.conf as ``renew_hook``.
DEPLOY_HOOK = 'python3 -c "$ECS_RESTART_PROGRAM"'

# The copier (COPIER_IMAGE) only needs a POSIX shell with cp/mv/mkdir/mktemp/chmod/chown.
# Alpine's are busybox applets; the integration tests run the script under busybox as well.

KEY_TYPES = ("ecdsa", "rsa")

# certbot needs no root: its state is on EFS, owned by this user through the access point,
# and on an ECS instance only root may reach the instance metadata service
# (task_contents/imds_guard.py). A fixed number outside the images' own users.
CERTBOT_UID = 10001
CERTBOT_GID = 10001
CERTBOT_USER = f"{CERTBOT_UID}:{CERTBOT_GID}"

# How long the copier waits for the issuer task on a first start: the event that starts
# the issuer, its image pull and a DNS-01 order with Route53 propagation fit with room.
COPIER_WAIT_SECONDS = 900

_SCRIPT_PATH = Path(__file__).with_name("copy_certificates.sh")
_HOOK_PATH = Path(__file__).with_name("renewal_hook.py")
_STATE_PROGRAM_PATH = Path(__file__).with_name("acme_state.py")

# A lineage name is a file name (renewal/<name>.conf): at most 255 bytes with ".conf".
_MAX_LINEAGE_NAME = 250
_SERVER_NAMES = {url: name for name, url in ACME_DIRECTORIES.items()}

# Lock on fd 9, opened for appending: an exclusive lock over NFS (EFS) needs a file opened for
# writing (flock(2), "NFS details"), and busybox's "flock FILE PROG" opens FILE read-only.
# The descriptor survives the exec, so the lock lasts as long as certbot runs and is released
# by the kernel however certbot ends. "flock FD" is common to busybox and util-linux. The
# directory is created first, as certbot itself would create its config directory.
_LOCKED_CERTBOT = """\
mkdir -p "${1%/*}" || exit 1
exec 9>>"$1" || exit 1
flock 9 || exit 1
shift
exec "$@"
"""

# As above, then the hook program once more after certbot: it restarts the service if a deploy
# hook recorded a restart it could not do (certbot ignores a hook's exit status).
_LOCKED_RENEWAL = """\
ECS_RESTART_PENDING=$2 ECS_RESTART_PROGRAM=$3
export ECS_RESTART_PENDING ECS_RESTART_PROGRAM
mkdir -p "${1%/*}" || exit 1
exec 9>>"$1" || exit 1
flock 9 || exit 1
shift 3
"$@"
status=$?
python3 -c "$ECS_RESTART_PROGRAM" || status=1
exit "$status"
"""

# Deliberately loose (the ACME server has the final word), but rejects anything that could
# be taken for another option or split into several arguments.
# Anchored with \A and \Z: `$` would also match before a final newline.
_EMAIL_RE = re.compile(r"\A[^@\s-][^@\s]*@[^@\s]+\.[^@\s]+\Z")
_PROFILE_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_URL_RE = re.compile(r"\Ahttps://[^\s/?#]+(/\S*)?\Z")
_SCOPE_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_OWNER_RE = re.compile(r"\A[0-9]+(:[0-9]+)?\Z")
_CLUSTER_ARN_RE = re.compile(r"\Aarn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/[A-Za-z0-9_-]+\Z")
_ECS_NAME_RE = re.compile(r"\A[A-Za-z0-9_-]{1,255}\Z")


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
    # Ask for ``*.<domain>`` instead of ``<domain>`` (direct-task); DNS-01 only.
    wildcard: bool = False


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


def _check_directory_url(directory_url: object) -> None:
    _check(
        isinstance(directory_url, str) and bool(_URL_RE.match(directory_url)),
        "directory_url",
        directory_url,
        "an https:// ACME directory URL",
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
    _check_directory_url(spec.directory_url)
    lineage_name(spec.domain, spec.directory_url)  # fits in a file name
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
    _check(isinstance(spec.wildcard, bool), "wildcard", spec.wildcard, "True or False")
    # RFC 8555 section 7.1.3: a wildcard identifier can only be validated with dns-01.
    _check(
        not spec.wildcard or spec.challenge == "dns-01",
        "challenge",
        spec.challenge,
        "dns-01, which a wildcard certificate needs",
    )


def lineage_name(domain: str, directory_url: str) -> str:
    """certbot's ``--cert-name`` for ``domain`` from ``directory_url``: one lineage per server.

    certbot's ``--keep-until-expiring`` never looks at which server issued the lineage's
    certificate, so with one lineage per domain a switch from staging to production kept the
    staging certificate until it was due, and switching back needed ``--break-my-certs``.
    With the server in the name, each server's certificate is kept, renewed and found on its
    own: ``db.example.com-staging``, ``db.example.com-production`` for Let's Encrypt, and
    ``db.example.com-<12 hex digits of the URL's SHA-256>`` for any other directory.
    """
    _check_domain(domain)
    _check_directory_url(directory_url)
    server = _SERVER_NAMES.get(directory_url)
    if server is None:
        server = hashlib.sha256(directory_url.encode()).hexdigest()[:12]
    name = f"{domain}-{server}"
    _check(
        len(name) <= _MAX_LINEAGE_NAME,
        "domain",
        domain,
        f"short enough for a certificate name ({_MAX_LINEAGE_NAME} characters with the server)",
    )
    return name


def certbot_args(spec: CertbotSpec, *, deploy_hook: str | None = None) -> list[str]:
    """certbot's arguments (after the ``certbot`` executable): ``["certonly", ...]``.

    The one request of the stack: the app's init container and the renewal task both run it,
    the renewal task with ``deploy_hook``, which certbot runs only after it issued a
    certificate (``--deploy-hook``: "once for each successfully issued certificate";
    ``certbot certonly --help``).

    ``--keep-until-expiring`` makes a run a no-op while the certificate on EFS is not due for
    renewal, so task starts neither hit Let's Encrypt rate limits nor need the CA.
    ``--cert-name`` pins the lineage, ``<config_dir>/live/<lineage_name>/`` (see ``live_dir``).
    """
    _validate(spec)
    _check(
        deploy_hook is None
        or (
            isinstance(deploy_hook, str) and deploy_hook.strip() != "" and deploy_hook.isprintable()
        ),
        "deploy_hook",
        deploy_hook,
        "None or a one-line shell command",
    )
    config_dir = spec.config_dir.rstrip("/") or "/"
    args = [
        "certonly",
        "--non-interactive",
        "--agree-tos",
        "--no-eff-email",
        "-m",
        spec.email,
        "-d",
        f"*.{spec.domain}" if spec.wildcard else spec.domain,
        "--cert-name",
        lineage_name(spec.domain, spec.directory_url),
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
    if deploy_hook is not None:
        args += ["--deploy-hook", deploy_hook]
    return args


def lock_file(config_dir: str = "/etc/letsencrypt") -> str:
    """The file every certbot run of the stack locks: next to the state it protects."""
    _check_config_dir(config_dir)
    return posixpath.join(config_dir.rstrip("/") or "/", LOCK_FILE_NAME)


def restart_pending_file(config_dir: str = "/etc/letsencrypt") -> str:
    """Where the renewal task records a service restart that is still due (on EFS)."""
    _check_config_dir(config_dir)
    return posixpath.join(config_dir.rstrip("/") or "/", RESTART_PENDING_NAME)


def certbot_command(spec: CertbotSpec) -> list[str]:
    """Command of the issuer task's ``certbot`` container, after ``SHELL_ENTRY_POINT``.

    ``sh -c <lock wrapper> certbot-init <lock file> certbot <certbot_args>``: certbot runs
    once the lock is free, so a task start waits for a renewal in progress (and the other
    way round) instead of failing with certbot's "Another instance of Certbot is already
    running". No deploy hook: the app's task that started the issuer is waiting for the
    certificate, and lays out the newest one.
    """
    return [
        _LOCKED_CERTBOT,
        "certbot-init",
        lock_file(spec.config_dir),
        "certbot",
        *certbot_args(spec),
    ]


@cache
def hook_program() -> str:
    """Source of ``renewal_hook.py``, which the renewal task runs with the image's python3."""
    return _HOOK_PATH.read_text(encoding="utf-8")


def renewal_command(spec: CertbotSpec) -> list[str]:
    """Command of the renewal task's only container (image ``RENEWAL_IMAGE``), after
    ``SHELL_ENTRY_POINT``.

    The same certbot arguments as the app's init container plus ``--deploy-hook
    DEPLOY_HOOK``, under the same lock; the hook program restarts the app's service (see
    ``renewal_hook.py``). The container's environment comes from ``renewal_environment``.
    Exit status: certbot's, or 1 if a due restart failed.
    """
    return [
        _LOCKED_RENEWAL,
        "certbot-renewal",
        lock_file(spec.config_dir),
        restart_pending_file(spec.config_dir),
        hook_program(),
        "certbot",
        *certbot_args(spec, deploy_hook=DEPLOY_HOOK),
    ]


def renewal_environment(cluster_arn: str, service_name: str) -> dict[str, str]:
    """Environment of the renewal container: which ECS service the deploy hook restarts.

    The cluster is an ARN so that the hook knows the API's region without more settings.
    """
    _check(
        isinstance(cluster_arn, str) and bool(_CLUSTER_ARN_RE.match(cluster_arn)),
        "cluster_arn",
        cluster_arn,
        "an ECS cluster ARN (arn:aws:ecs:<region>:<account>:cluster/<name>)",
    )
    _check(
        isinstance(service_name, str) and bool(_ECS_NAME_RE.match(service_name)),
        "service_name",
        service_name,
        "an ECS service name",
    )
    return {"ECS_CLUSTER": cluster_arn, "ECS_SERVICE": service_name}


def certbot_image(challenge: str) -> str:
    """The pinned certbot image for a challenge type (DNS-01 needs the Route53 plugin)."""
    try:
        return _IMAGES[challenge]
    except KeyError:
        raise ValueError(
            f"challenge: {challenge!r} is not one of {', '.join(CHALLENGES)}"
        ) from None


def live_dir(spec: CertbotSpec) -> str:
    """Directory where certbot keeps the current certificate of ``spec``'s lineage."""
    _validate(spec)
    config_dir = spec.config_dir.rstrip("/") or "/"
    return posixpath.join(config_dir, "live", lineage_name(spec.domain, spec.directory_url))


@cache
def copy_script() -> str:
    """Text of ``copy_certificates.sh``, delivered inline in the copier's command."""
    return _SCRIPT_PATH.read_text(encoding="utf-8")


def copier_command() -> list[str]:
    """Command of the copier container: the script runs inline, no image build needed."""
    return ["sh", "-c", copy_script()]


def copier_environment(
    layout: CertificateLayout, spec: CertbotSpec, wait_seconds: int = 0
) -> dict[str, str]:
    """Environment of the copier container (the variables ``copy_certificates.sh`` reads).

    Takes the certbot request itself, so the copier reads the lineage of the configured
    ACME server, the one certbot writes. ``wait_seconds``: how long to wait for a missing
    or expired certificate to be replaced (0: fail at once).
    """
    _check(
        isinstance(wait_seconds, int)
        and not isinstance(wait_seconds, bool)
        and 0 <= wait_seconds <= 3600,
        "wait_seconds",
        wait_seconds,
        "0 to 3600 seconds",
    )
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
        "DOMAIN": spec.domain,
        "SOURCE_DIR": live_dir(spec),
        "TARGET_DIR": layout.target_dir.rstrip("/"),
        "SCOPES": " ".join(layout.scopes),
        "CERT_FILE": layout.cert_file,
        "KEY_FILE": layout.key_file,
    }
    if layout.owner is not None:
        env["OWNER"] = layout.owner
    if wait_seconds:
        env["WAIT_SECONDS"] = str(wait_seconds)
    return env


# --------------------------------------------------------------------------- S3 state (direct-task)

# The deploy hook of the S3-state renewal: the program's source comes from the environment the
# wrapper exports, so the hook stays one short line (also what certbot writes into
# renewal/<name>.conf as ``renew_hook``).
STATE_DEPLOY_HOOK = 'python3 -c "$ACME_STATE_PROGRAM" publish'

# restore -> certbot (its deploy hook publishes) -> publish again (catches up a hook that
# failed: certbot ignores its exit status; it also reports the days left) -> save. Saved even
# when an earlier step failed, so a new lineage is never lost; the exit status is the first
# failure's.
_S3_STATE_RENEWAL = """\
ACME_STATE_PROGRAM=$1
export ACME_STATE_PROGRAM
shift
python3 -c "$ACME_STATE_PROGRAM" restore || exit 1
"$@"
status=$?
python3 -c "$ACME_STATE_PROGRAM" publish || status=1
python3 -c "$ACME_STATE_PROGRAM" save || status=1
exit "$status"
"""


@cache
def state_program() -> str:
    """Source of ``acme_state.py``, which the renewal task runs with the image's python3."""
    return _STATE_PROGRAM_PATH.read_text(encoding="utf-8")


def s3_state_renewal_command(spec: CertbotSpec) -> list[str]:
    """Command of a renewal task without a persistent volume (image ``RENEWAL_IMAGE``), after
    ``SHELL_ENTRY_POINT``: certbot's state comes from and goes back to S3 around the same
    ``certbot_args`` as every other run, with ``STATE_DEPLOY_HOOK`` as the deploy hook.

    No lock file: the state is not shared with another container; concurrent runs are caught
    by the conditional write of ``save`` instead. Environment: ``s3_state_environment``.
    """
    return [
        _S3_STATE_RENEWAL,
        "certbot-s3-state",
        state_program(),
        "certbot",
        *certbot_args(spec, deploy_hook=STATE_DEPLOY_HOOK),
    ]


def s3_state_environment(
    spec: CertbotSpec,
    *,
    bucket: str,
    key: str,
    secret_arn: str,
    topic_arn: str | None = None,
) -> dict[str, str]:
    """Environment of the S3-state renewal container (the variables ``acme_state.py`` reads).

    No cluster or service: the tasks load a new certificate from the secret while they run
    (``secret_refresh.py``), so the renewal restarts nothing."""
    env: dict[str, str] = {}
    _check(
        isinstance(bucket, str) and bool(re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket)),
        "bucket",
        bucket,
        "an S3 bucket name",
    )
    _check(
        isinstance(key, str) and key != "" and not key.startswith("/") and key.isprintable(),
        "key",
        key,
        "an S3 object key",
    )
    _check(
        isinstance(secret_arn, str) and secret_arn.startswith("arn:") and ":secret:" in secret_arn,
        "secret_arn",
        secret_arn,
        "a Secrets Manager secret ARN",
    )
    env.update(
        {
            "STATE_BUCKET": bucket,
            "STATE_KEY": key,
            "CERTBOT_CONFIG_DIR": spec.config_dir.rstrip("/") or "/",
            "LIVE_DIR": live_dir(spec),
            "CERT_SECRET_ARN": secret_arn,
            "CERT_NAMES": f"*.{spec.domain}" if spec.wildcard else spec.domain,
        }
    )
    if topic_arn is not None:
        env["ALERTS_TOPIC_ARN"] = topic_arn
    return env

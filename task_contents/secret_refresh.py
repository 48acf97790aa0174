"""Keeps a task's Envoy certificate in step with its Secrets Manager secret (`direct-task`).

A standalone program, not a module of the project: the refresher container of the task
(``components/sidecar_task.py``) runs this source with the image's ``python3 -c``. It imports
only the standard library and boto3 (the ``certbot/dns-route53`` image ships boto3 for its
Route53 plugin).

Every few minutes (jittered, so the tasks of a service do not call at the same second) it
reads the secret's AWSCURRENT version with the task role. When chain or key differ from what
it last wrote, it writes them and an SDS file naming them into a new directory, then points
the ``current`` symlink at that directory with one rename. Envoy watches the directory for
moves (``path_config_source.watched_directory``) and loads the new certificate: new
connections get it, open ones keep theirs, and no task is replaced.

Layout of TLS_DIR (a volume shared with Envoy, read-only there)::

    sds.json -> current/sds.json     what Envoy's listener reads (created once)
    current  -> .v-<digest>          swapped in one rename
    .v-<digest>/{chain.pem, key.pem, sds.json}

The last two versions are kept: Envoy may still be reading the previous one while the swap
happens. A failed read keeps the files that are there; until the first write the container
is not healthy, and Envoy (which waits for that) does not start.

Environment: CERT_SECRET_ARN; TLS_DIR; optional REFRESH_SECONDS (default 300), FILE_OWNER
(``uid:gid`` that must read the files: Envoy's user), SDS_SECRET_NAME.
Usage: ``secret_refresh.py run`` (the loop) or ``secret_refresh.py once``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sys
import time
from typing import Any

CHAIN_KEY = "certificateChain"  # components/certificates.py CHAIN_KEY
PRIVATE_KEY_KEY = "privateKey"  # components/certificates.py PRIVATE_KEY_KEY
SDS_FILE = "sds.json"
CURRENT = "current"
VERSION_PREFIX = ".v-"
DEFAULT_SECRET_NAME = "listener_certificate"  # task_contents/envoy/tls.py SdsFiles
DEFAULT_REFRESH_SECONDS = 300
FIRST_RETRY_SECONDS = 5
JITTER = 0.2  # each wait is the period +/- 20 %
_SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def log(message: str, *, error: bool = False) -> None:
    print(f"secret-refresh: {message}", file=sys.stderr if error else sys.stdout, flush=True)


def env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"secret-refresh: error: {name} is not set")
    return value


def client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 6}, read_timeout=30)
    return boto3.client(service, config=config)


def _owner() -> tuple[int, int] | None:
    raw = os.environ.get("FILE_OWNER", "")
    if not raw:
        return None
    uid, _, gid = raw.partition(":")
    return int(uid), int(gid or uid)


def read_secret(secrets: Any, secret_arn: str) -> tuple[str, str]:
    """Chain and key of the secret's current version; ValueError if they are not PEM."""
    value = secrets.get_secret_value(SecretId=secret_arn, VersionStage="AWSCURRENT")
    document = json.loads(value["SecretString"])
    chain, key = document.get(CHAIN_KEY), document.get(PRIVATE_KEY_KEY)
    # Envoy refuses an SDS update it cannot load and keeps the old certificate; checking
    # here keeps a bad value off the disk and says why in this container's log.
    if not isinstance(chain, str) or "-----BEGIN CERTIFICATE-----" not in chain:
        raise ValueError(f"{CHAIN_KEY} of the secret is not a PEM certificate chain")
    if not isinstance(key, str) or "PRIVATE KEY-----" not in key:
        raise ValueError(f"{PRIVATE_KEY_KEY} of the secret is not a PEM private key")
    return chain, key


def sds_document(secret_name: str, chain_path: str, key_path: str) -> dict[str, Any]:
    """The SDS file: a DiscoveryResponse with one tls Secret whose files are `chain_path`
    and `key_path` (absolute, so the file does not depend on Envoy's working directory)."""
    return {
        "resources": [
            {
                "@type": _SECRET_TYPE,
                "name": secret_name,
                "tls_certificate": {
                    "certificate_chain": {"filename": chain_path},
                    "private_key": {"filename": key_path},
                },
            }
        ]
    }


def _write(path: str, text: str, mode: int, owner: tuple[int, int] | None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    if owner is not None:
        os.chown(path, *owner)


def current_version(tls_dir: str) -> str | None:
    try:
        return os.readlink(os.path.join(tls_dir, CURRENT))
    except OSError:
        return None


def install(tls_dir: str, chain: str, key: str, secret_name: str) -> bool:
    """Make `chain` and `key` current; False when they already are."""
    digest = hashlib.sha256(f"{chain}\0{key}".encode()).hexdigest()[:16]
    version = VERSION_PREFIX + digest
    if current_version(tls_dir) == version:
        return False
    owner = _owner()
    final = os.path.join(tls_dir, version)
    staging = os.path.join(tls_dir, f".tmp-{digest}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.mkdir(staging, 0o700)
    if owner is not None:
        os.chown(staging, *owner)
    # The SDS file names the version's own directory: its content changes with every
    # version, so Envoy sees a new resource even if it compares what it read.
    document = sds_document(
        secret_name, os.path.join(final, "chain.pem"), os.path.join(final, "key.pem")
    )
    _write(os.path.join(staging, "chain.pem"), chain, 0o644, owner)
    _write(os.path.join(staging, "key.pem"), key, 0o600, owner)
    _write(os.path.join(staging, SDS_FILE), json.dumps(document, sort_keys=True), 0o644, owner)
    shutil.rmtree(final, ignore_errors=True)  # left by a run that stopped before the swap
    os.rename(staging, final)
    top = os.path.join(tls_dir, SDS_FILE)
    if not os.path.islink(top):
        os.symlink(os.path.join(CURRENT, SDS_FILE), top)
    link = os.path.join(tls_dir, f".{CURRENT}-{os.getpid()}")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(version, link)
    previous = current_version(tls_dir)
    os.replace(link, os.path.join(tls_dir, CURRENT))  # the one step Envoy reacts to
    for entry in os.listdir(tls_dir):
        if entry.startswith(VERSION_PREFIX) and entry not in (version, previous):
            shutil.rmtree(os.path.join(tls_dir, entry), ignore_errors=True)
    return True


def refresh(secrets: Any, secret_arn: str, tls_dir: str, secret_name: str) -> bool:
    """One poll: True if the files now hold the secret's value, False on a failure."""
    try:
        chain, key = read_secret(secrets, secret_arn)
        changed = install(tls_dir, chain, key, secret_name)
    except Exception as exc:  # keep serving what is on disk; the next poll retries
        log(f"error: cannot refresh from {secret_arn}: {' '.join(str(exc).split())}", error=True)
        return False
    if changed:
        log(f"installed the certificate now in {secret_arn} ({current_version(tls_dir)})")
    return True


def wait_seconds(period: float, rng: random.Random) -> float:
    return period * rng.uniform(1 - JITTER, 1 + JITTER)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ("run", "once"):
        log("usage: secret_refresh.py {run|once}", error=True)
        return 2
    secret_arn, tls_dir = env("CERT_SECRET_ARN"), env("TLS_DIR")
    secret_name = os.environ.get("SDS_SECRET_NAME") or DEFAULT_SECRET_NAME
    period = float(os.environ.get("REFRESH_SECONDS") or DEFAULT_REFRESH_SECONDS)
    os.makedirs(tls_dir, exist_ok=True)
    secrets = client("secretsmanager")
    if argv[1] == "once":
        return 0 if refresh(secrets, secret_arn, tls_dir, secret_name) else 1
    # ECS stops the task with SIGTERM: end between polls with status 0, not a traceback.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    rng = random.Random()
    while True:
        ok = refresh(secrets, secret_arn, tls_dir, secret_name)
        first = current_version(tls_dir) is None
        # Until the first files exist Envoy waits for them: retry soon, not in minutes.
        time.sleep(FIRST_RETRY_SECONDS if first and not ok else wait_seconds(period, rng))


if __name__ == "__main__":
    sys.exit(main(sys.argv))

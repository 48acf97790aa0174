"""certbot's state in S3 and its certificate in Secrets Manager (renewal task of `direct-task`).

A standalone program, not a module of the project: ``s3_state_renewal_command`` in
``task_contents/certbot.py`` passes this source to the ``certbot/dns-route53`` image's ``python3
-c``. It imports only the standard library and boto3 (which that image ships for its Route53
plugin; the image has no aws CLI).

The renewal task has no persistent volume: its ``/etc/letsencrypt`` lives and dies with the
task. Around certbot the wrapper runs:

``restore``  Download the state archive (account key, lineage, renewal config) and unpack it.
             No archive yet is the first run; any other failure stops the task before certbot
             could register a new account or order a certificate it already has.
``publish``  (certbot's ``--deploy-hook``, and once more after certbot) If the secret does not
             hold the lineage's certificate, write certificate chain and key to it as one JSON
             document (the keys the tasks' refresher reads) and tell the alerts topic. No task
             is replaced: each task's refresher (``secret_refresh.py``) polls the secret and
             Envoy loads the new files while it serves. certbot ignores a deploy hook's exit
             status, so the second call catches up whatever the hook could not do. The
             second call (no RENEWED_LINEAGE) also reports the days left on the certificate
             the secret holds (``report``), whether certbot succeeded or not.
``save``     Upload the state if it changed (a digest of names, links, modes and contents), with
             an S3 conditional write on the version it restored: a concurrent run fails loudly
             instead of overwriting the other's account or lineage. The upload names SSE-KMS
             and the state's customer managed key: without the key ID S3 would use the AWS
             managed aws/s3 key, and the bucket policy refuses any upload that does not name
             its key.

``report``   Put the metric of components/alerts.py (namespace ECS-TLS, DaysToExpiry,
             dimension Certificate = CERT_NAMES's first name) from the certificate the secret
             holds now. The placeholder of the first deploy, or anything that is not a
             certificate, counts as 0 days: a first issuance that keeps failing alarms.

Environment: STATE_BUCKET, STATE_KEY, STATE_KMS_KEY_ARN, CERTBOT_CONFIG_DIR, LIVE_DIR (the
lineage's live directory), CERT_SECRET_ARN, CERT_NAMES (the metric's dimension, and the
message), optional ALERTS_TOPIC_ARN and PLACEHOLDER_ISSUER (the organization of the
placeholder's issuer); RENEWED_LINEAGE from certbot in the hook.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import time
from typing import Any

CHAIN_KEY = "certificateChain"  # components/certificates.py CHAIN_KEY
PRIVATE_KEY_KEY = "privateKey"  # components/certificates.py PRIVATE_KEY_KEY
STATE_KMS_KEY_ENV = "STATE_KMS_KEY_ARN"  # the state bucket's customer managed key
# Left in saved states by the versions that restarted the service: nothing reads it now.
RESTART_PENDING = ".restart-pending"
# components/alerts.py: the metric every renewal run reports.
METRIC_NAMESPACE = "ECS-TLS"  # CERTIFICATE_METRIC_NAMESPACE
METRIC_NAME = "DaysToExpiry"  # CERTIFICATE_METRIC
METRIC_DIMENSION = "Certificate"  # CERTIFICATE_DIMENSION
PLACEHOLDER_ISSUER_ENV = "PLACEHOLDER_ISSUER"
RESTORED = ".state-restored.json"  # what restore found: the version save must build on
# Not state: logs (also in CloudWatch), the run lock, and this program's own bookkeeping.
EXCLUDED_TOP = {".logs", ".work", RESTORED, ".certbot-run.lock"}


def log(message: str, *, error: bool = False) -> None:
    print(f"acme-state: {message}", file=sys.stderr if error else sys.stdout, flush=True)


def env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"acme-state: error: {name} is not set")
    return value


def client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 6}, read_timeout=30)
    return boto3.client(service, config=config)


def _error_code(exc: Exception) -> str:
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))


def _members(config_dir: str) -> list[str]:
    out = []
    for root, dirs, files in os.walk(config_dir):
        rel_root = os.path.relpath(root, config_dir)
        if rel_root == ".":
            dirs[:] = [d for d in dirs if d not in EXCLUDED_TOP]
            files = [f for f in files if f not in EXCLUDED_TOP]
        dirs.sort()
        for name in sorted(dirs + files):
            out.append(os.path.normpath(os.path.join(rel_root, name)))
    return sorted(out)


def digest(config_dir: str) -> str:
    """What the state is, independent of times: names, types, modes, link targets, contents."""
    h = hashlib.sha256()
    for rel in _members(config_dir):
        path = os.path.join(config_dir, rel)
        info = os.lstat(path)
        h.update(f"{rel}\0{stat.S_IFMT(info.st_mode)}\0{stat.S_IMODE(info.st_mode)}\0".encode())
        if stat.S_ISLNK(info.st_mode):
            h.update(os.readlink(path).encode())
        elif stat.S_ISREG(info.st_mode):
            with open(path, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        h.update(b"\n")
    return h.hexdigest()


def _archive(config_dir: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for rel in _members(config_dir):
            tar.add(os.path.join(config_dir, rel), arcname=rel, recursive=False)
    return buffer.getvalue()


def _extract(data: bytes, config_dir: str) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            # Refuses absolute paths, '..' and links out of the directory (PEP 706). The
            # filter also normalises modes (directories 0755, files u+rw): put certbot's back
            # (0700 directories, 0400 keys) so the state is what was saved.
            tar.extractall(config_dir, filter="data")
            for member in tar.getmembers():
                if not member.issym():
                    os.chmod(os.path.join(config_dir, member.name), member.mode & 0o777)
        else:  # pragma: no cover - Pythons before the tarfile filters
            for member in tar.getmembers():
                target = os.path.realpath(os.path.join(config_dir, member.name))
                if not target.startswith(os.path.realpath(config_dir) + os.sep):
                    raise SystemExit(f"acme-state: error: unsafe path in archive: {member.name}")
            tar.extractall(config_dir)


def restore() -> int:
    bucket, key, config_dir = env("STATE_BUCKET"), env("STATE_KEY"), env("CERTBOT_CONFIG_DIR")
    os.makedirs(config_dir, mode=0o700, exist_ok=True)
    try:
        found = client("s3").get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _error_code(exc) in ("NoSuchKey", "404"):
            log(f"no state in s3://{bucket}/{key} yet: first run")
            _write_restored(config_dir, None, None)
            return 0
        # Without the state certbot would register a new account and order again.
        log(f"error: cannot read s3://{bucket}/{key}: {' '.join(str(exc).split())}", error=True)
        return 1
    _extract(found["Body"].read(), config_dir)
    _write_restored(config_dir, found.get("ETag"), digest(config_dir))
    log(f"restored state from s3://{bucket}/{key} (version {found.get('VersionId', '?')})")
    return 0


def _write_restored(config_dir: str, etag: str | None, state_digest: str | None) -> None:
    with open(os.path.join(config_dir, RESTORED), "w", encoding="utf-8") as out:
        json.dump({"etag": etag, "digest": state_digest}, out)


def save() -> int:
    bucket, key, config_dir = env("STATE_BUCKET"), env("STATE_KEY"), env("CERTBOT_CONFIG_DIR")
    kms_key = env(STATE_KMS_KEY_ENV)
    try:
        with open(os.path.join(config_dir, RESTORED), encoding="utf-8") as f:
            restored = json.load(f)
    except OSError:
        log("error: no record of a restore: refusing to overwrite the stored state", error=True)
        return 1
    current = digest(config_dir)
    if current == restored.get("digest"):
        log("state unchanged: nothing to save")
        return 0
    condition = {"IfMatch": restored["etag"]} if restored.get("etag") else {"IfNoneMatch": "*"}
    try:
        client("s3").put_object(
            Bucket=bucket,
            Key=key,
            Body=_archive(config_dir),
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=kms_key,
            # The key policy expects the bucket's ARN as encryption context, which S3 uses
            # with a Bucket Key only.
            BucketKeyEnabled=True,
            ContentType="application/gzip",
            Metadata={"state-sha256": current},
            **condition,
        )
    except Exception as exc:
        reason = " ".join(str(exc).split())
        log(f"error: cannot save the state to s3://{bucket}/{key}: {reason}", error=True)
        return 1
    log(f"saved state to s3://{bucket}/{key}")
    return 0


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _leaf(chain_pem: str) -> Any:
    from cryptography import x509  # certbot depends on cryptography, so the image has it

    return x509.load_pem_x509_certificates(chain_pem.encode())[0]


def _not_after(chain_pem: str) -> str:
    try:
        return _leaf(chain_pem).not_valid_after_utc.isoformat()
    except Exception:  # the date only decorates the message
        return "?"


def days_left(chain_pem: str, now: float | None = None) -> float:
    """Days until the chain's leaf expires; 0 for the placeholder or what is not a chain
    (nothing a client would trust is being served)."""
    from cryptography.x509.oid import NameOID

    try:
        leaf = _leaf(chain_pem)
    except Exception:
        return 0.0
    placeholder = os.environ.get(PLACEHOLDER_ISSUER_ENV)
    issuers = [a.value for a in leaf.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if placeholder and placeholder in issuers:
        return 0.0
    seconds = leaf.not_valid_after_utc.timestamp() - (time.time() if now is None else now)
    return max(0.0, round(seconds / 86400, 2))


def report(secrets: Any | None = None) -> int:
    """Put DaysToExpiry of the certificate the secret holds now."""
    secret_arn, names = env("CERT_SECRET_ARN"), env("CERT_NAMES")
    certificate = names.split(",")[0].strip()
    try:
        secrets = secrets or client("secretsmanager")
        stored = json.loads(secrets.get_secret_value(SecretId=secret_arn)["SecretString"])
        days = days_left(str(stored.get(CHAIN_KEY, "")))
        client("cloudwatch").put_metric_data(
            Namespace=METRIC_NAMESPACE,
            MetricData=[
                {
                    "MetricName": METRIC_NAME,
                    "Dimensions": [{"Name": METRIC_DIMENSION, "Value": certificate}],
                    "Value": days,
                    "Unit": "None",
                }
            ],
        )
    except Exception as exc:
        # The alarm is blind without it: the run fails, and the failed-task alert says so.
        log(f"error: cannot report the days left: {' '.join(str(exc).split())}", error=True)
        return 1
    log(f"reported {METRIC_NAME}={days} for {certificate}")
    return 0


def publish() -> int:
    in_hook = bool(os.environ.get("RENEWED_LINEAGE"))
    lineage = os.environ.get("RENEWED_LINEAGE") or env("LIVE_DIR")
    config_dir = env("CERTBOT_CONFIG_DIR")
    secret_arn = env("CERT_SECRET_ARN")
    with contextlib.suppress(OSError):
        os.remove(os.path.join(config_dir, RESTART_PENDING))
    secrets = client("secretsmanager")
    status = _publish(secrets, lineage, secret_arn)
    if not in_hook:  # once per run, after certbot, whatever it did
        status = report(secrets) or status
    return status


def _publish(secrets: Any, lineage: str, secret_arn: str) -> int:
    try:
        chain, key = (_read(os.path.join(lineage, n)) for n in ("fullchain.pem", "privkey.pem"))
    except OSError:
        log(f"error: no certificate in {lineage}: certbot has not obtained one", error=True)
        return 1
    try:
        stored = json.loads(secrets.get_secret_value(SecretId=secret_arn)["SecretString"])
    except Exception as exc:
        log(f"error: cannot read the certificate secret: {' '.join(str(exc).split())}", error=True)
        return 1
    if stored.get(CHAIN_KEY) == chain and stored.get(PRIVATE_KEY_KEY) == key:
        log("the secret already holds this certificate: nothing to publish")
        return 0
    document = json.dumps({CHAIN_KEY: chain, PRIVATE_KEY_KEY: key}, sort_keys=True)
    try:
        secrets.put_secret_value(SecretId=secret_arn, SecretString=document)
    except Exception as exc:
        reason = " ".join(str(exc).split())
        log(f"error: cannot write the certificate secret: {reason}", error=True)
        return 1
    log(
        f"wrote the certificate of {lineage} to the secret: "
        "running tasks load it on their next poll"
    )
    topic = os.environ.get("ALERTS_TOPIC_ARN")
    if topic:
        names = os.environ.get("CERT_NAMES", "the certificate")
        try:
            client("sns").publish(
                TopicArn=topic,
                Subject="Certificate renewed",
                Message=(
                    f"A new certificate for {names} (valid until {_not_after(chain)}) is in "
                    f"{secret_arn}; running tasks load it within minutes, without a restart."
                ),
            )
        except Exception as exc:  # the certificate is out; a lost notice is only logged
            log(f"warning: cannot notify {topic}: {' '.join(str(exc).split())}", error=True)
    return 0


COMMANDS = {"restore": restore, "save": save, "publish": publish, "report": report}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        log(f"usage: acme_state.py {{{'|'.join(COMMANDS)}}}", error=True)
        return 2
    return COMMANDS[argv[1]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Restart the app's ECS service once certbot has issued a certificate (renewal task only).

Neo4j Community cannot reload its TLS certificate in place: ``dbms.security.reloadTLS()`` (with
``dbms.security.tls_reload_enabled``) is Enterprise-only and new in 2025.03 (Neo4j Operations
Manual, "SSL framework > Certificates rotation"; neo4j/docs-operations#2165). So the new
certificate reaches the app through a new deployment of its service:
``UpdateService(forceNewDeployment=True)``. The app's tasks then start with certbot -> copier
-> app and lay the new certificate out.

This file is a standalone program, not a module of the project: ``renewal_command`` in
``task_contents/certbot.py`` passes its source to the image's ``python3 -c``. It may import only
the standard library and boto3, which the ``certbot/dns-route53`` image ships for its Route53
plugin.

It runs twice per renewal task, with the same code:

1. As certbot's ``--deploy-hook``, which certbot runs only after it issued a certificate, with
   ``RENEWED_LINEAGE`` (the live directory) and ``RENEWED_DOMAINS`` set. It first records a
   pending restart in ``ECS_RESTART_PENDING`` (a file on EFS), then restarts the service and
   clears the record.
2. After certbot exited, without ``RENEWED_LINEAGE``: it restarts the service only if a
   restart is still pending. certbot ignores a deploy hook's exit status (it only logs it), so
   without this second run a failed ``UpdateService`` (throttling, a missing permission) would
   leave the app on the old certificate until it expires. With it the task fails visibly, and
   every later run retries until the restart succeeded.

The second run also reports how many days the live certificate has left, whether certbot
renewed it or not, as the metric of the contract in components/alerts.py (namespace
ECS-TLS, DaysToExpiry, dimension Certificate = the domain), so an alarm fires when renewals
keep failing quietly: a task that never starts, an ACME server that refuses, a hook that
cannot restart. Only the program's constants are repeated here (a test keeps them equal).

Environment:
    ECS_CLUSTER          cluster ARN (its region is the API's) or name (region from
                         AWS_REGION / AWS_DEFAULT_REGION)
    ECS_SERVICE          service name or ARN
    ECS_RESTART_PENDING  optional path of the pending-restart record
    CERTIFICATE_FILE     optional: the live certificate (PEM) whose expiry is reported
    CERTIFICATE_NAME     the metric's Certificate dimension (the domain); with CERTIFICATE_FILE
    RENEWED_LINEAGE, RENEWED_DOMAINS  set by certbot for a deploy hook

Exit status: 0 when nothing was due or the restart was accepted and the expiry (if asked
for) was reported, 1 otherwise (one line on stderr says why).
"""

from __future__ import annotations

import base64
import os
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

CLUSTER_ENV = "ECS_CLUSTER"
SERVICE_ENV = "ECS_SERVICE"
PENDING_ENV = "ECS_RESTART_PENDING"
CERTIFICATE_FILE_ENV = "CERTIFICATE_FILE"
CERTIFICATE_NAME_ENV = "CERTIFICATE_NAME"

# components/alerts.py: CERTIFICATE_METRIC_NAMESPACE, CERTIFICATE_METRIC, CERTIFICATE_DIMENSION.
METRIC_NAMESPACE = "ECS-TLS"
METRIC_NAME = "DaysToExpiry"
METRIC_DIMENSION = "Certificate"

# arn:<partition>:ecs:<region>:<account>:cluster/<name>
_CLUSTER_ARN_RE = re.compile(r"^arn:aws[a-z-]*:ecs:([a-z0-9-]+):[0-9]{12}:cluster/[A-Za-z0-9_-]+$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_SERVICE_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:service/([A-Za-z0-9_-]+/)?[A-Za-z0-9_-]+$"
)


def log(message: str, *, error: bool = False) -> None:
    # certbot reports a hook's stdout as output and its stderr as a warning.
    print(f"renewal-hook: {message}", file=sys.stderr if error else sys.stdout, flush=True)


def region_of(cluster: str) -> str | None:
    """The region in a cluster ARN; ``None`` for a bare name."""
    match = _CLUSTER_ARN_RE.match(cluster)
    return match.group(1) if match else None


def check_target(cluster: str, service: str) -> str | None:
    """Why the cluster or service value cannot be right, or ``None``."""
    if not cluster:
        return f"{CLUSTER_ENV} is not set"
    if not (_CLUSTER_ARN_RE.match(cluster) or _NAME_RE.match(cluster)):
        return f"{CLUSTER_ENV} is neither a cluster ARN nor a cluster name: {cluster!r}"
    if not service:
        return f"{SERVICE_ENV} is not set"
    if not (_SERVICE_ARN_RE.match(service) or _NAME_RE.match(service)):
        return f"{SERVICE_ENV} is neither a service ARN nor a service name: {service!r}"
    return None


def ecs_client(region: str | None) -> Any:
    import boto3  # the image's; imported late so the rest stays testable without it
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=10,
        read_timeout=30,
    )
    return boto3.client("ecs", region_name=region, config=config)


def expiry_environment(certificate_file: str, certificate_name: str) -> dict[str, str]:
    """The container environment that makes the second run report `certificate_file`."""
    if not certificate_file.startswith("/") or not _NAME_RE.match(
        certificate_name.replace(".", "-")
    ):
        raise ValueError(
            f"need an absolute file and a DNS name: {certificate_file!r} {certificate_name!r}"
        )
    return {CERTIFICATE_FILE_ENV: certificate_file, CERTIFICATE_NAME_ENV: certificate_name}


def cloudwatch_client(region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 5}, read_timeout=30)
    return boto3.client("cloudwatch", region_name=region, config=config)


def _der_items(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(tag, content start, content end) of each DER element in data[start:end]."""
    items = []
    while start < end:
        tag, length, at = data[start], data[start + 1], start + 2
        if length & 0x80:  # long form: the next (length & 0x7f) bytes hold the length
            count = length & 0x7F
            length, at = int.from_bytes(data[at : at + count], "big"), at + count
        if at + length > end:
            raise ValueError("truncated DER")
        items.append((tag, at, at + length))
        start = at + length
    return items


def not_after(pem: bytes) -> datetime:
    """The certificate's notAfter, read from its DER with the standard library only (the
    hook is standalone: RFC 5280, Certificate > tbsCertificate > validity)."""
    body = b"".join(
        line
        for line in pem.split(b"-----END CERTIFICATE-----")[0].splitlines()
        if line and not line.startswith(b"-----")
    )
    der = base64.b64decode(body, validate=True)
    _, start, end = _der_items(der, 0, len(der))[0]
    _, tbs_start, tbs_end = _der_items(der, start, end)[0]
    fields = _der_items(der, tbs_start, tbs_end)
    if fields[0][0] == 0xA0:  # explicit [0] version
        fields = fields[1:]
    _, validity_start, validity_end = fields[3]  # serialNumber, signature, issuer, validity
    tag, at, until = _der_items(der, validity_start, validity_end)[1]
    text = der[at:until].decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ: 50-99 are 19xx (RFC 5280 4.1.2.5.1)
        year = int(text[:2])
        text = f"{19 if year >= 50 else 20}{text}"
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError(f"notAfter has ASN.1 tag {tag:#x}")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)


def days_to_expiry(pem: bytes, now: datetime) -> int:
    """Whole days from `now` until the certificate's notAfter (negative once expired)."""
    return int((not_after(pem) - now).total_seconds() // 86400)


def report_expiry(
    environ: Mapping[str, str],
    region: str | None,
    make_client: Callable[[str | None], Any] = cloudwatch_client,
    now: datetime | None = None,
) -> int:
    """Put the live certificate's days to expiry; 0 on success or when not asked for."""
    path = environ.get(CERTIFICATE_FILE_ENV, "")
    name = environ.get(CERTIFICATE_NAME_ENV, "")
    if not path:
        return 0
    if not name:
        log(f"error: {CERTIFICATE_FILE_ENV} is set without {CERTIFICATE_NAME_ENV}", error=True)
        return 1
    try:
        with open(path, "rb") as source:
            days = days_to_expiry(source.read(), now or datetime.now(UTC))
    except (OSError, ValueError, IndexError) as exc:
        log(f"error: cannot read the certificate {path}: {exc!r}", error=True)
        return 1
    try:
        make_client(region).put_metric_data(
            Namespace=METRIC_NAMESPACE,
            MetricData=[
                {
                    "MetricName": METRIC_NAME,
                    "Dimensions": [{"Name": METRIC_DIMENSION, "Value": name}],
                    "Value": float(days),
                    "Unit": "Count",
                }
            ],
        )
    except Exception as exc:  # any failure: the alarm would act on stale data
        reason = " ".join(str(exc).split())
        log(f"error: PutMetricData {METRIC_NAMESPACE}/{METRIC_NAME} failed: {reason}", error=True)
        return 1
    log(f"the certificate of {name} expires in {days} days")
    return 0


def record_pending(path: str, lineage: str) -> None:
    """Write the record before calling ECS, so a crash in between still leaves it."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} {lineage}\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def main(
    environ: Mapping[str, str] = os.environ,
    make_client: Callable[[str | None], Any] = ecs_client,
    make_metrics_client: Callable[[str | None], Any] = cloudwatch_client,
) -> int:
    lineage = environ.get("RENEWED_LINEAGE", "")
    status = restart(environ, make_client)
    if lineage:
        return status
    # After certbot, on every run: the certificate the app holds now, renewed or not.
    region = region_of(environ.get(CLUSTER_ENV, ""))
    return max(status, report_expiry(environ, region, make_metrics_client))


def restart(environ: Mapping[str, str], make_client: Callable[[str | None], Any]) -> int:
    cluster = environ.get(CLUSTER_ENV, "")
    service = environ.get(SERVICE_ENV, "")
    pending = environ.get(PENDING_ENV, "")
    lineage = environ.get("RENEWED_LINEAGE", "")

    # Checked on every run, not only when a restart is due: a wrong value then fails the first
    # scheduled run instead of the first renewal, weeks later.
    problem = check_target(cluster, service)
    if problem:
        log(f"error: {problem}", error=True)
        return 1

    if lineage:
        domains = environ.get("RENEWED_DOMAINS", "")
        log(f"certbot issued a certificate for {domains or '?'} in {lineage}")
        if pending:
            try:
                record_pending(pending, lineage)
            except OSError as exc:
                log(f"warning: cannot record the pending restart in {pending}: {exc}", error=True)
    elif not (pending and os.path.exists(pending)):
        return 0  # no new certificate, no restart left over

    try:
        response = make_client(region_of(cluster)).update_service(
            cluster=cluster, service=service, forceNewDeployment=True
        )
    except Exception as exc:  # every failure means the same: the restart is still due
        where = f"; retried on the next run ({pending})" if pending else ""
        reason = " ".join(str(exc).split())
        log(f"error: UpdateService({cluster}, {service}) failed: {reason}{where}", error=True)
        return 1

    deployments = response.get("service", {}).get("deployments", [])
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), {})
    log(
        f"restarted service {service} in {cluster} to load the new certificate"
        f" (deployment {primary.get('id', '?')})"
    )
    if pending:
        try:
            os.remove(pending)
        except FileNotFoundError:
            pass
        except OSError as exc:
            # The next run would restart the app again: say so rather than pass quietly.
            log(f"error: cannot clear {pending}, the next run restarts again: {exc}", error=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Restart the app's ECS service once certbot has issued a certificate (renewal task only).

Neo4j Community cannot reload its TLS certificate in place: ``dbms.security.reloadTLS()`` (with
``dbms.security.tls_reload_enabled``) is Enterprise-only and new in 2025.03 (Neo4j Operations
Manual, "SSL framework > Certificates rotation"; neo4j/docs-operations#2165). So the new
certificate reaches the app through a new deployment of its service:
``UpdateService(forceNewDeployment=True)``. The app's tasks then start with certbot -> copier
-> app and lay the new certificate out.

This file is a standalone program, not a module of the project: ``renewal_command`` in
``components/certbot.py`` passes its source to the image's ``python3 -c``. It may import only
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

Environment:
    ECS_CLUSTER          cluster ARN (its region is the API's) or name (region from
                         AWS_REGION / AWS_DEFAULT_REGION)
    ECS_SERVICE          service name or ARN
    ECS_RESTART_PENDING  optional path of the pending-restart record
    RENEWED_LINEAGE, RENEWED_DOMAINS  set by certbot for a deploy hook

Exit status: 0 when nothing was due or the restart was accepted, 1 otherwise (one line on
stderr says why).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

CLUSTER_ENV = "ECS_CLUSTER"
SERVICE_ENV = "ECS_SERVICE"
PENDING_ENV = "ECS_RESTART_PENDING"

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
) -> int:
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

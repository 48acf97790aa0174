"""Per-task DNS names for the `direct-task` topology: `A <taskId>.<domain>` -> the task's public IP.

Two entry points in one module (one Lambda function, no packaging: the standard library and the
boto3 of Lambda's Python runtime only):

- an EventBridge "ECS Task State Change" event for this cluster and task family: RUNNING (and
  desired RUNNING) upserts the task's records; desired or last status STOPPED deletes them.
- `{"reconcile": true}` from a schedule: every running task of the family gets its records,
  and records this function owns whose task is gone are deleted. Events can be lost or arrive
  late (EventBridge delivers at least once, in no guaranteed order); the reconciler bounds how
  long a name can be missing or orphaned. It lists the zone once and sends its changes in
  batches, so its Route53 requests grow with the zone's pages, not with the tasks.
- `{"purge": true}` from the deploy-time invocation: when that invocation is deleted (the
  topology is destroyed or switched away, after the service and the event rules are gone)
  every name this cluster owns is deleted.

Ownership: beside each A record the function writes a TXT record at the same name whose value
is a digest of this cluster's ARN and the task ID. Only names with that TXT are ever changed or
deleted, so a record someone else created under the domain is left alone, whatever its name.
The value is opaque (the public zone shows no account, region or cluster name) and of one
length whatever the names' lengths: Route53 refuses a TXT string over 255 characters
(CharacterStringTooLong), which a value holding both ARNs passed for long stack names.

Replays: an event is only a hint. Before a RUNNING event creates a record the task's current
state is read with DescribeTasks, so a RUNNING event delivered after the task stopped creates
nothing. Deleting is idempotent (a missing record is success) and upserts rewrite the same
values.

The ECS event carries the task's network interface ID but not its public IP, which is read with
ec2:DescribeNetworkInterfaces ("Amazon ECS task state change events", ECS developer guide).

Environment: HOSTED_ZONE_ID, DOMAIN (the parent of the names), CLUSTER_ARN, and optionally
TASK_FAMILY (only tasks of this task definition family get names).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

LOG = logging.getLogger("task_dns")
LOG.setLevel(logging.INFO)

TTL = 60
OWNER_PREFIX = "ecs-tls-task-dns"
# Route53 answers a burst of changes with Throttling, and a change to a zone that is still
# applying the previous one with PriorRequestNotComplete; both succeed when retried later
# (Route53 API reference, "Errors" of ChangeResourceRecordSets; Route53 quotas: five
# requests per second per account).
RETRYABLE = {"Throttling", "ThrottlingException", "PriorRequestNotComplete", "RequestLimitExceeded"}
MAX_ATTEMPTS = 8
BASE_DELAY_S = 0.2
MAX_DELAY_S = 5.0
# A DELETE must carry the record's current values; if the record changed between the read and
# the write, Route53 refuses the batch with InvalidChangeBatch: read again and retry.
CONFLICT_ATTEMPTS = 3

# Route53's limits per ChangeResourceRecordSets request (Route53 developer guide, "Quotas",
# "Quotas on API requests"): 1,000 ResourceRecord elements and 32,000 characters of values,
# an UPSERT counting twice for both; 1,000 changes is the API reference's bound on Changes.
MAX_BATCH_CHANGES = 1000
MAX_BATCH_RECORDS = 1000
MAX_BATCH_CHARS = 32000
# Interfaces per DescribeNetworkInterfaces request (a filter's values).
ENI_CHUNK = 100
STARTING = ("PROVISIONING", "PENDING", "ACTIVATING")

# ECS task IDs (long ARN format): 32 hex digits. The role's IAM condition allows nothing else.
_TASK_ID_RE = re.compile(r"[0-9a-f]{32}")

# Injected by the tests, so retries do not sleep.
sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class Config:
    zone_id: str
    domain: str
    cluster_arn: str
    family: str | None

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        missing = [k for k in ("HOSTED_ZONE_ID", "DOMAIN", "CLUSTER_ARN") if not env.get(k)]
        if missing:
            raise RuntimeError(f"task_dns: environment variables not set: {', '.join(missing)}")
        return cls(
            zone_id=env["HOSTED_ZONE_ID"].rsplit("/", 1)[-1],
            domain=env["DOMAIN"].strip().rstrip(".").lower(),
            cluster_arn=env["CLUSTER_ARN"],
            family=env.get("TASK_FAMILY") or None,
        )


@dataclass(frozen=True)
class Clients:
    route53: Any
    ec2: Any
    ecs: Any


def default_clients(region: str | None = None) -> Clients:
    import boto3
    from botocore.config import Config as BotoConfig

    # botocore's standard mode already retries throttling; the explicit loop below also covers
    # what reaches the function after botocore gave up (and is what the tests exercise).
    config = BotoConfig(retries={"mode": "standard", "max_attempts": 5})
    return Clients(
        route53=boto3.client("route53", config=config),
        ec2=boto3.client("ec2", region_name=region, config=config),
        ecs=boto3.client("ecs", region_name=region, config=config),
    )


# --------------------------------------------------------------------------- names


def task_id(task_arn: str) -> str:
    """The last part of a task ARN (`.../task/<cluster>/<id>` or the old `.../task/<id>`)."""
    return task_arn.rsplit("/", 1)[-1]


def record_name(task: str, domain: str) -> str:
    if not _TASK_ID_RE.fullmatch(task):
        raise ValueError(f"task ID {task!r} is not a DNS label")
    return f"{task}.{domain}."


def owner_value(cfg: Config, task: str) -> str:
    """The TXT value (quoted, as Route53 stores it) that marks `<task>.<domain>` as this
    function's for this cluster: 89 characters whatever the cluster and task."""
    digest = hashlib.sha256(f"{cfg.cluster_arn}/{task_id(task)}".encode()).hexdigest()
    return f'"{OWNER_PREFIX} owner={digest}"'


def is_owned(cfg: Config, name: str, txt_values: Iterable[str]) -> bool:
    """True when the TXT at `name` (`<taskId>.<domain>.`) is this function's mark."""
    return owner_value(cfg, name.split(".", 1)[0]) in set(txt_values)


def _family_of(task_definition_arn: str) -> str:
    # arn:aws:ecs:<region>:<account>:task-definition/<family>:<revision>
    return task_definition_arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]


def eni_of(task: dict) -> str | None:
    for attachment in task.get("attachments") or []:
        if attachment.get("type") not in ("eni", "ElasticNetworkInterface"):
            continue
        for detail in attachment.get("details") or []:
            if detail.get("name") == "networkInterfaceId":
                return detail.get("value")
    return None


# --------------------------------------------------------------------------- AWS calls


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def with_retries(call: Callable[[], Any], what: str) -> Any:
    """Run `call`, retrying throttling with capped exponential backoff and full jitter."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return call()
        except Exception as exc:
            if _error_code(exc) not in RETRYABLE or attempt == MAX_ATTEMPTS:
                raise
            delay = random.uniform(0, min(MAX_DELAY_S, BASE_DELAY_S * 2**attempt))
            LOG.warning(
                "%s throttled (%s), retry %d in %.2fs", what, _error_code(exc), attempt, delay
            )
            sleep(delay)
    raise AssertionError("unreachable")


def public_ip(clients: Clients, eni_id: str) -> str | None:
    try:
        found = with_retries(
            lambda: clients.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id]),
            "DescribeNetworkInterfaces",
        )
    except Exception as exc:
        if _error_code(exc) == "InvalidNetworkInterfaceID.NotFound":
            return None  # the task stopped and its interface is gone
        raise
    for interface in found.get("NetworkInterfaces", []):
        association = interface.get("Association") or {}
        if association.get("PublicIp"):
            return association["PublicIp"]
    return None


def _rrsets_at(clients: Clients, cfg: Config, name: str) -> dict[str, dict]:
    """The record sets at exactly `name`, by type."""
    found = with_retries(
        lambda: clients.route53.list_resource_record_sets(
            HostedZoneId=cfg.zone_id, StartRecordName=name, MaxItems="10"
        ),
        "ListResourceRecordSets",
    )
    return {
        rrset["Type"]: rrset
        for rrset in found.get("ResourceRecordSets", [])
        if rrset["Name"].lower() == name.lower()
    }


def _txt_values(rrset: dict | None) -> list[str]:
    return [r["Value"] for r in (rrset or {}).get("ResourceRecords", [])]


def _change(clients: Clients, cfg: Config, changes: list[dict], comment: str) -> None:
    with_retries(
        lambda: clients.route53.change_resource_record_sets(
            HostedZoneId=cfg.zone_id, ChangeBatch={"Comment": comment, "Changes": changes}
        ),
        "ChangeResourceRecordSets",
    )


def upsert(clients: Clients, cfg: Config, task_arn: str, ip: str) -> str:
    """Point `<taskId>.<domain>` at `ip` with its ownership TXT (the task by ARN or ID).
    Returns what happened."""
    name = record_name(task_id(task_arn), cfg.domain)
    existing = _rrsets_at(clients, cfg, name)
    owned = is_owned(cfg, name, _txt_values(existing.get("TXT")))
    if existing and not owned:
        LOG.warning("%s exists without this function's ownership record: left alone", name)
        return "foreign"
    current = [r["Value"] for r in existing.get("A", {}).get("ResourceRecords", [])]
    if owned and current == [ip]:
        return "unchanged"
    _change(
        clients,
        cfg,
        [
            {
                "Action": "UPSERT",
                "ResourceRecordSet": {
                    "Name": name,
                    "Type": "TXT",
                    "TTL": TTL,
                    "ResourceRecords": [{"Value": owner_value(cfg, task_arn)}],
                },
            },
            {
                "Action": "UPSERT",
                "ResourceRecordSet": {
                    "Name": name,
                    "Type": "A",
                    "TTL": TTL,
                    "ResourceRecords": [{"Value": ip}],
                },
            },
        ],
        f"task {task_id(task_arn)} running",
    )
    LOG.info("%s -> %s", name, ip)
    return "upserted"


def delete_owned(clients: Clients, cfg: Config, name: str) -> str:
    """Delete the A and TXT records at `name` if, and only if, the TXT says they are ours."""
    for _ in range(CONFLICT_ATTEMPTS):
        existing = _rrsets_at(clients, cfg, name)
        if not existing:
            return "absent"
        if not is_owned(cfg, name, _txt_values(existing.get("TXT"))):
            LOG.warning("%s is not owned by this function: left alone", name)
            return "foreign"
        changes = [
            {"Action": "DELETE", "ResourceRecordSet": existing[kind]}
            for kind in ("A", "TXT")
            if kind in existing
        ]
        try:
            _change(clients, cfg, changes, f"task of {name} stopped")
        except Exception as exc:
            if _error_code(exc) == "InvalidChangeBatch":
                continue  # changed or deleted meanwhile: read again
            raise
        LOG.info("deleted %s", name)
        return "deleted"
    raise RuntimeError(f"{name} kept changing while it was being deleted")


def describe(clients: Clients, cfg: Config, task_arns: list[str]) -> dict[str, dict]:
    """The tasks (given by ARN or ID), by task ID."""
    out: dict[str, dict] = {}
    for i in range(0, len(task_arns), 100):  # DescribeTasks takes at most 100 tasks
        found = with_retries(
            lambda chunk=task_arns[i : i + 100]: clients.ecs.describe_tasks(
                cluster=cfg.cluster_arn, tasks=chunk
            ),
            "DescribeTasks",
        )
        out.update({task_id(t["taskArn"]): t for t in found.get("tasks", [])})
    return out


def is_running(task: dict | None) -> bool:
    return bool(
        task and task.get("lastStatus") == "RUNNING" and task.get("desiredStatus") == "RUNNING"
    )


# --------------------------------------------------------------------------- entry points


def on_task_state_change(clients: Clients, cfg: Config, detail: dict) -> str:
    task_arn = detail.get("taskArn") or ""
    if detail.get("clusterArn") != cfg.cluster_arn:
        return "other-cluster"
    if cfg.family and _family_of(detail.get("taskDefinitionArn", "")) != cfg.family:
        return "other-family"
    name = record_name(task_id(task_arn), cfg.domain)
    last, desired = detail.get("lastStatus"), detail.get("desiredStatus")
    if desired == "STOPPED" or last in ("DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"):
        return delete_owned(clients, cfg, name)
    if last != "RUNNING" or desired != "RUNNING":
        return "pending"  # PROVISIONING, PENDING, ACTIVATING: no address yet
    # The event may be a late replay: act on the task's state now, not the event's.
    current = describe(clients, cfg, [task_arn]).get(task_id(task_arn))
    if not is_running(current):
        return delete_owned(clients, cfg, name)
    eni = eni_of(current) or eni_of(detail)
    ip = public_ip(clients, eni) if eni else None
    if ip is None:
        LOG.warning("task %s has no public IP (assignPublicIp disabled?)", task_arn)
        return "no-public-ip"
    return upsert(clients, cfg, task_arn, ip)


def _running_tasks(clients: Clients, cfg: Config) -> dict[str, dict]:
    """The running tasks of the cluster (and family), by task ID."""
    arns: list[str] = []
    kwargs: dict[str, Any] = {"cluster": cfg.cluster_arn, "desiredStatus": "RUNNING"}
    if cfg.family:
        kwargs["family"] = cfg.family
    while True:
        page = with_retries(lambda kw=kwargs: clients.ecs.list_tasks(**kw), "ListTasks")
        arns.extend(page.get("taskArns", []))
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    return {tid: t for tid, t in describe(clients, cfg, arns).items() if is_running(t)}


def public_ips(clients: Clients, eni_ids: Iterable[str]) -> dict[str, str]:
    """Interface ID -> public IP, ENI_CHUNK interfaces per request. A filter, not
    NetworkInterfaceIds: one interface gone since ListTasks would fail the whole request."""
    wanted = sorted(set(eni_ids))
    out: dict[str, str] = {}
    for i in range(0, len(wanted), ENI_CHUNK):
        kwargs: dict[str, Any] = {
            "Filters": [{"Name": "network-interface-id", "Values": wanted[i : i + ENI_CHUNK]}]
        }
        while True:
            page = with_retries(
                lambda kw=kwargs: clients.ec2.describe_network_interfaces(**kw),
                "DescribeNetworkInterfaces",
            )
            for interface in page.get("NetworkInterfaces", []):
                address = (interface.get("Association") or {}).get("PublicIp")
                if address:
                    out[interface["NetworkInterfaceId"]] = address
            if not page.get("NextToken"):
                break
            kwargs = {**kwargs, "NextToken": page["NextToken"]}
    return out


def zone_names(clients: Clients, cfg: Config) -> dict[str, dict[str, dict]]:
    """One listing of the zone: every direct child of the domain (where task names live),
    name -> type -> record set. Reconcile and purge decide from this alone."""
    suffix = f".{cfg.domain}."
    out: dict[str, dict[str, dict]] = {}
    kwargs: dict[str, Any] = {"HostedZoneId": cfg.zone_id}
    while True:
        page = with_retries(
            lambda kw=kwargs: clients.route53.list_resource_record_sets(**kw),
            "ListResourceRecordSets",
        )
        for rrset in page.get("ResourceRecordSets", []):
            name = rrset["Name"].lower()
            if not name.endswith(suffix) or name.count(".") != suffix.count("."):
                continue  # only direct children of the domain are task names
            out.setdefault(name, {})[rrset["Type"]] = rrset
        if not page.get("IsTruncated"):
            break
        kwargs = {
            "HostedZoneId": cfg.zone_id,
            "StartRecordName": page["NextRecordName"],
            "StartRecordType": page["NextRecordType"],
        }
        if page.get("NextRecordIdentifier"):
            kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]
    return out


def _owned(cfg: Config, zone: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    return {
        name: sets
        for name, sets in zone.items()
        if is_owned(cfg, name, _txt_values(sets.get("TXT")))
    }


def _upserts(cfg: Config, task: str, ip: str) -> list[dict]:
    name = record_name(task, cfg.domain)
    return [
        {
            "Action": "UPSERT",
            "ResourceRecordSet": {
                "Name": name,
                "Type": kind,
                "TTL": TTL,
                "ResourceRecords": [{"Value": value}],
            },
        }
        for kind, value in (("TXT", owner_value(cfg, task)), ("A", ip))
    ]


def _deletes(sets: dict[str, dict]) -> list[dict]:
    """DELETEs of a name's A and TXT, with the values just listed (Route53 requires them)."""
    return [{"Action": "DELETE", "ResourceRecordSet": sets[k]} for k in ("A", "TXT") if k in sets]


def _weight(change: dict) -> tuple[int, int]:
    """(ResourceRecord elements, characters of values) as Route53 counts them: twice for an
    UPSERT (Route53 developer guide, "Quotas", ChangeResourceRecordSets elements)."""
    records = change["ResourceRecordSet"].get("ResourceRecords", [])
    factor = 2 if change["Action"] == "UPSERT" else 1
    return factor * len(records), factor * sum(len(r["Value"]) for r in records)


def change_batches(groups: Iterable[list[dict]]) -> list[list[list[dict]]]:
    """Pack groups of changes (one name's A and TXT go together) into requests within
    Route53's limits on changes, ResourceRecord elements and value characters per request."""
    batches: list[list[list[dict]]] = []
    current: list[list[dict]] = []
    changes = records = chars = 0
    for group in groups:
        g_records = sum(_weight(c)[0] for c in group)
        g_chars = sum(_weight(c)[1] for c in group)
        if current and (
            changes + len(group) > MAX_BATCH_CHANGES
            or records + g_records > MAX_BATCH_RECORDS
            or chars + g_chars > MAX_BATCH_CHARS
        ):
            batches.append(current)
            current, changes, records, chars = [], 0, 0, 0
        current.append(group)
        changes, records, chars = changes + len(group), records + g_records, chars + g_chars
    if current:
        batches.append(current)
    return batches


def apply_batches(
    clients: Clients,
    cfg: Config,
    groups: dict[str, list[dict]],
    comment: str,
    one_by_one: Callable[[str], object],
) -> None:
    """Send `groups` (name -> changes) in as few requests as the limits allow. A batch is all
    or nothing: if a record changed since the listing (InvalidChangeBatch), that batch's
    names are redone one by one with `one_by_one(name)`, which reads them again."""
    names_of = {id(changes): name for name, changes in groups.items()}
    for batch in change_batches(groups.values()):
        try:
            _change(clients, cfg, [c for group in batch for c in group], comment)
        except Exception as exc:
            if _error_code(exc) != "InvalidChangeBatch":
                raise
            LOG.warning("batch of %d names refused (%s): one by one", len(batch), exc)
            for group in batch:
                one_by_one(names_of[id(group)])


def reconcile(clients: Clients, cfg: Config) -> dict[str, list[str]]:
    """Add missing or stale records of running tasks; delete owned records of gone tasks.

    Route53 calls depend on the zone's pages and the change batches, not on the number of
    tasks: one listing, then batched changes (Route53 allows a few requests per second per
    account, shared with everything else in it)."""
    running = _running_tasks(clients, cfg)
    ips = public_ips(clients, [e for e in map(eni_of, running.values()) if e])
    zone = zone_names(clients, cfg)
    owned = _owned(cfg, zone)
    report: dict[str, list[str]] = {"upserted": [], "deleted": [], "unchanged": []}
    upserts: dict[str, list[dict]] = {}
    for task, described in sorted(running.items()):
        ip = ips.get(eni_of(described) or "")
        if ip is None:
            continue
        name = record_name(task, cfg.domain)
        existing = zone.get(name, {})
        if existing and name not in owned:
            LOG.warning("%s exists without this function's ownership record: left alone", name)
            report.setdefault("foreign", []).append(name)
        elif [r["Value"] for r in existing.get("A", {}).get("ResourceRecords", [])] == [ip]:
            report["unchanged"].append(name)
        else:
            upserts[name] = _upserts(cfg, task, ip)
            report["upserted"].append(name)
    running_names = {record_name(task, cfg.domain) for task in running}
    candidates = {n: n.split(".", 1)[0] for n in owned if n not in running_names}
    # A task may have started since ListTasks: only delete names whose task is really gone.
    now = describe(clients, cfg, sorted(set(candidates.values()))) if candidates else {}
    deletes: dict[str, list[dict]] = {}
    for name, task in sorted(candidates.items()):
        state = now.get(task)
        if is_running(state) or (state or {}).get("lastStatus") in STARTING:
            continue
        deletes[name] = _deletes(owned[name])
        report["deleted"].append(name)

    def redo(name: str) -> None:
        if name in deletes:
            delete_owned(clients, cfg, name)
        else:
            task = name.split(".", 1)[0]
            upsert(clients, cfg, task, ips[eni_of(running[task]) or ""])

    apply_batches(clients, cfg, {**upserts, **deletes}, "ecs-tls reconcile", redo)
    # Counts, and names only of deletions (a record of what left the zone), one line.
    LOG.info(
        "reconciled: %s; deleted %s",
        json.dumps({k: len(v) for k, v in report.items()}, sort_keys=True),
        " ".join(report["deleted"]) or "nothing",
    )
    return report


def purge(clients: Clients, cfg: Config) -> dict[str, list[str]]:
    """Delete every name this cluster owns, running task or not: the topology is going
    away, and a name left behind would point at an address AWS gives to someone else."""
    owned = _owned(cfg, zone_names(clients, cfg))
    deletes = {name: _deletes(sets) for name, sets in sorted(owned.items())}
    apply_batches(
        clients, cfg, deletes, "ecs-tls purge", lambda name: delete_owned(clients, cfg, name)
    )
    report = {"deleted": sorted(deletes)}
    LOG.info("purged: %s", json.dumps(report, sort_keys=True))
    return report


def on_lifecycle(clients: Clients, cfg: Config, event: dict) -> Any:
    """The deploy-time invocation (`aws.lambda_.Invocation`, lifecycle scope CRUD), which
    adds `tf.action`: only its delete, when the topology is destroyed or switched, purges.
    Create and update do nothing: a first deploy must not depend on IAM having propagated,
    and the scheduled reconciler adds names."""
    action = (event.get("tf") or {}).get("action")
    if action == "delete":
        return purge(clients, cfg)
    return {"action": action, "purged": False}


def handler(event: dict, context: Any, clients: Clients | None = None) -> Any:
    cfg = Config.from_environ()
    clients = clients or default_clients(cfg.cluster_arn.split(":")[3])
    if event.get("reconcile") is True:
        return reconcile(clients, cfg)
    if event.get("purge") is True:
        return on_lifecycle(clients, cfg, event)
    if event.get("source") == "aws.ecs" and event.get("detail-type") == "ECS Task State Change":
        return on_task_state_change(clients, cfg, event.get("detail") or {})
    LOG.warning("ignored event: %s", json.dumps(event)[:500])
    return "ignored"

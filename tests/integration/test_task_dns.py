"""`functions/task_dns.py` against moto's ECS, EC2 and Route53 (in process), with events in the
shape AWS documents for "ECS Task State Change" (ECS developer guide, "Amazon ECS task state
change events").

moto runs a real awsvpc Fargate task (with its network interface) when the VPC has DNS
hostnames on; the test gives the interface a public IP the way Fargate does with
`assignPublicIp` (an address association), so the handler reads it with
DescribeNetworkInterfaces exactly as in AWS.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

pytest.importorskip("moto")
from moto import mock_aws
from moto.moto_api import state_manager

from functions import task_dns
from scripts.emulator import moto_fixes

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
DOMAIN = "tasks.example.com"
FAMILY = "ecs-tls-dev-direct-task"


@dataclass
class World:
    clients: task_dns.Clients
    cfg: task_dns.Config
    ecs: Any
    ec2: Any
    route53: Any
    zone_id: str
    subnet: str
    cluster_arn: str

    def run_task(self, family: str = FAMILY) -> tuple[dict, str]:
        """A running awsvpc task with a public IP; returns (task, public IP)."""
        task = self.ecs.run_task(
            cluster=self.cluster_arn,
            taskDefinition=family,
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": [self.subnet],
                    "securityGroups": [],
                    "assignPublicIp": "ENABLED",
                }
            },
        )["tasks"][0]
        eni = task_dns.eni_of(task)
        address = self.ec2.allocate_address(Domain="vpc")
        self.ec2.associate_address(AllocationId=address["AllocationId"], NetworkInterfaceId=eni)
        return task, address["PublicIp"]

    def event(self, task: dict, last: str, desired: str) -> dict:
        """An EventBridge event as ECS sends it (fields the handler reads, and more)."""
        detail = copy.deepcopy(task)
        detail.update(
            {
                "lastStatus": last,
                "desiredStatus": desired,
                "clusterArn": self.cluster_arn,
                "version": 3,
                "launchType": "FARGATE",
            }
        )
        for attachment in detail.get("attachments", []):
            attachment["type"] = "eni"  # the event's spelling; DescribeTasks says the long name
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "ECS Task State Change",
            "source": "aws.ecs",
            "account": "123456789012",
            "time": "2026-11-23T12:00:00Z",
            "region": REGION,
            "resources": [task["taskArn"]],
            "detail": detail,
        }

    def records(self) -> dict[tuple[str, str], list[str]]:
        pages = self.route53.get_paginator("list_resource_record_sets").paginate(
            HostedZoneId=self.zone_id
        )
        return {
            (r["Name"], r["Type"]): [v["Value"] for v in r.get("ResourceRecords", [])]
            for page in pages
            for r in page["ResourceRecordSets"]
            if r["Type"] in ("A", "TXT")
        }

    def name(self, task: dict) -> str:
        return f"{task_dns.task_id(task['taskArn'])}.{DOMAIN}."


# The program names the cluster after the project and stack (components/naming.py).
CLUSTER = "ecs-tls-dev"
LONG_STACK = "payments-platform-production-eu-west-1-blue-green-canary-001"
assert len(LONG_STACK) == 60


@pytest.fixture
def world(request, monkeypatch) -> Iterator[World]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(task_dns, "sleep", lambda _s: None)
    moto_fixes.apply()  # among others: task IDs of 32 hex digits, as ECS makes them
    # moto advances a task's status on every DescribeTasks; real tasks stay RUNNING.
    state_manager.set_transition(
        model_name="ecs::task", transition={"progression": "manual", "times": 10_000}
    )
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
        ecs = boto3.client("ecs", region_name=REGION)
        cluster = getattr(request, "param", CLUSTER)
        cluster_arn = ecs.create_cluster(clusterName=cluster)["cluster"]["clusterArn"]
        for family in (FAMILY, "something-else"):
            ecs.register_task_definition(
                family=family,
                networkMode="awsvpc",
                requiresCompatibilities=["FARGATE"],
                cpu="256",
                memory="512",
                containerDefinitions=[{"name": "app", "image": "app", "memory": 64}],
            )
        route53 = boto3.client("route53", region_name=REGION)
        zone_id = route53.create_hosted_zone(Name="example.com", CallerReference="t")["HostedZone"][
            "Id"
        ].rsplit("/", 1)[-1]
        monkeypatch.setenv("HOSTED_ZONE_ID", zone_id)
        monkeypatch.setenv("DOMAIN", DOMAIN)
        monkeypatch.setenv("CLUSTER_ARN", cluster_arn)
        monkeypatch.setenv("TASK_FAMILY", FAMILY)
        clients = task_dns.Clients(route53=route53, ec2=ec2, ecs=ecs)
        yield World(
            clients,
            task_dns.Config.from_environ(),
            ecs,
            ec2,
            route53,
            zone_id,
            subnet,
            cluster_arn,
        )
    state_manager.unset_transition("ecs::task")


def handle(world: World, event: dict) -> Any:
    return task_dns.handler(event, None, clients=world.clients)


def test_running_task_gets_an_a_record_and_an_ownership_txt(world: World) -> None:
    task, ip = world.run_task()
    assert handle(world, world.event(task, "RUNNING", "RUNNING")) == "upserted"
    records = world.records()
    name = world.name(task)
    assert records[(name, "A")] == [ip]
    (owner,) = records[(name, "TXT")]
    assert owner == task_dns.owner_value(world.cfg, task["taskArn"])
    # Opaque: the public zone shows neither the account, the region nor the cluster.
    for part in ("123456789012", REGION, "ecs-tls-dev", task_dns.task_id(task["taskArn"])):
        assert part not in owner
    ttl = {
        r["Type"]: r["TTL"]
        for r in world.route53.list_resource_record_sets(HostedZoneId=world.zone_id)[
            "ResourceRecordSets"
        ]
        if r["Name"] == name
    }
    assert ttl == {"A": 60, "TXT": 60}


@pytest.mark.parametrize("world", [f"ecs-tls-{LONG_STACK}"], indirect=True)
def test_a_sixty_character_stack_name_still_gets_names(world: World) -> None:
    # The TXT used to hold both ARNs: past ~45 characters of stack name Route53 refused it
    # (CharacterStringTooLong), and no task got a name. moto does not check that limit;
    # the rule that does (scripts/emulator/aws_rules.py) is applied to what was written.
    from scripts.emulator.aws_rules import RULES

    (txt_rule,) = [r for r in RULES if r.id == "route53-txt-string"]
    task, ip = world.run_task()
    assert len(world.cluster_arn) > 100
    assert handle(world, world.event(task, "RUNNING", "RUNNING")) == "upserted"
    records = world.records()
    assert records[(world.name(task), "A")] == [ip]
    (owner,) = records[(world.name(task), "TXT")]
    assert txt_rule.violation(owner) is None and len(owner) == 89
    # The mark is still told apart from another cluster's: a second stack with the same
    # domain never touches this name.
    other = task_dns.Config(world.cfg.zone_id, world.cfg.domain, world.cluster_arn + "x", None)
    assert not task_dns.is_owned(other, world.name(task), [owner])
    world.ecs.stop_task(cluster=world.cluster_arn, task=task["taskArn"])
    assert handle(world, world.event(task, "STOPPED", "STOPPED")) == "deleted"
    assert (world.name(task), "TXT") not in world.records()


def test_replaying_events_is_idempotent(world: World) -> None:
    task, _ = world.run_task()
    running = world.event(task, "RUNNING", "RUNNING")
    assert handle(world, running) == "upserted"
    before = world.records()
    assert handle(world, running) == "unchanged"
    assert world.records() == before
    stopped = world.event(task, "STOPPED", "STOPPED")
    world.ecs.stop_task(cluster=world.cluster_arn, task=task["taskArn"])
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "immediate"})
    world.ecs.describe_tasks(cluster=world.cluster_arn, tasks=[task["taskArn"]])  # -> STOPPED
    assert handle(world, stopped) == "deleted"
    assert handle(world, stopped) == "absent"
    # A RUNNING event delivered late, after the task stopped, must not bring the name back.
    assert handle(world, running) == "absent"
    assert (world.name(task), "A") not in world.records()


def test_pending_and_other_families_and_clusters_are_ignored(world: World) -> None:
    task, _ = world.run_task()
    assert handle(world, world.event(task, "PROVISIONING", "RUNNING")) == "pending"
    other, _ = world.run_task("something-else")
    assert handle(world, world.event(other, "RUNNING", "RUNNING")) == "other-family"
    foreign = world.event(task, "RUNNING", "RUNNING")
    foreign["detail"]["clusterArn"] = world.cluster_arn.replace("ecs-tls-dev", "another")
    assert handle(world, foreign) == "other-cluster"
    assert not any(t in ("A", "TXT") for (_, t) in world.records())


def test_stop_deletes_only_records_it_owns(world: World) -> None:
    task, _ = world.run_task()
    name = world.name(task)
    # Someone else's record at the very name a task would get: no ownership TXT.
    world.route53.change_resource_record_sets(
        HostedZoneId=world.zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": name,
                        "Type": "A",
                        "TTL": 300,
                        "ResourceRecords": [{"Value": "198.51.100.7"}],
                    },
                }
            ]
        },
    )
    assert handle(world, world.event(task, "STOPPED", "STOPPED")) == "foreign"
    assert handle(world, world.event(task, "RUNNING", "RUNNING")) == "foreign"
    assert world.records()[(name, "A")] == ["198.51.100.7"]


def test_desired_stopped_deletes_before_the_task_has_stopped(world: World) -> None:
    task, _ = world.run_task()
    handle(world, world.event(task, "RUNNING", "RUNNING"))
    assert handle(world, world.event(task, "RUNNING", "STOPPED")) == "deleted"
    assert (world.name(task), "A") not in world.records()


class Throttled:
    """Route53 answering the first `times` changes with Throttling, as under a burst."""

    def __init__(self, client: Any, times: int) -> None:
        self._client, self.left, self.throttled = client, times, 0

    def change_resource_record_sets(self, **kwargs: Any) -> Any:
        if self.left:
            self.left -= 1
            self.throttled += 1
            raise ClientError(
                {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}},
                "ChangeResourceRecordSets",
            )
        return self._client.change_resource_record_sets(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_route53_throttling_is_retried(world: World) -> None:
    task, ip = world.run_task()
    throttled = Throttled(world.route53, times=3)
    clients = task_dns.Clients(route53=throttled, ec2=world.ec2, ecs=world.ecs)
    assert task_dns.handler(world.event(task, "RUNNING", "RUNNING"), None, clients) == "upserted"
    assert throttled.throttled == 3
    assert world.records()[(world.name(task), "A")] == [ip]


def test_throttling_that_never_ends_fails_the_invocation(world: World) -> None:
    task, _ = world.run_task()
    throttled = Throttled(world.route53, times=task_dns.MAX_ATTEMPTS)
    clients = task_dns.Clients(route53=throttled, ec2=world.ec2, ecs=world.ecs)
    # Lambda then retries the asynchronous invocation, and the reconciler catches up.
    with pytest.raises(ClientError, match="Throttling"):
        task_dns.handler(world.event(task, "RUNNING", "RUNNING"), None, clients)


def test_reconciler_restores_missing_and_removes_orphans(world: World) -> None:
    kept, kept_ip = world.run_task()
    missing, missing_ip = world.run_task()
    gone, _ = world.run_task()
    for task in (kept, gone):
        handle(world, world.event(task, "RUNNING", "RUNNING"))
    # `gone` stops and its STOPPED event is lost; `missing`'s RUNNING event was lost.
    world.ecs.stop_task(cluster=world.cluster_arn, task=gone["taskArn"])
    # A name under the domain that this function does not own stays whatever happens.
    world.route53.change_resource_record_sets(
        HostedZoneId=world.zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": f"www.{DOMAIN}.",
                        "Type": "A",
                        "TTL": 300,
                        "ResourceRecords": [{"Value": "198.51.100.8"}],
                    },
                }
            ]
        },
    )
    report = handle(world, {"reconcile": True})
    assert report["upserted"] == [world.name(missing)]
    assert report["unchanged"] == [world.name(kept)]
    assert report["deleted"] == [world.name(gone)]
    records = world.records()
    assert records[(world.name(kept), "A")] == [kept_ip]
    assert records[(world.name(missing), "A")] == [missing_ip]
    assert (world.name(gone), "A") not in records and (world.name(gone), "TXT") not in records
    assert records[(f"www.{DOMAIN}.", "A")] == ["198.51.100.8"]
    # A second pass has nothing left to do.
    again = handle(world, {"reconcile": True})
    assert again["upserted"] == again["deleted"] == []


def test_unknown_events_are_ignored(world: World) -> None:
    assert handle(world, {"source": "aws.s3"}) == "ignored"


def test_missing_environment_names_the_variables(monkeypatch) -> None:
    monkeypatch.delenv("HOSTED_ZONE_ID", raising=False)
    monkeypatch.delenv("CLUSTER_ARN", raising=False)
    monkeypatch.setenv("DOMAIN", DOMAIN)
    with pytest.raises(RuntimeError, match="HOSTED_ZONE_ID, CLUSTER_ARN"):
        task_dns.Config.from_environ()


# --------------------------------------------------------------------------- purge


def lifecycle(action: str) -> dict:
    """What `aws.lambda_.Invocation` with lifecycle scope CRUD sends: the input plus `tf`."""
    return {"purge": True, "tf": {"action": action, "prev_input": {"purge": True}}}


def test_purge_on_delete_removes_every_owned_name_and_nothing_else(world: World) -> None:
    running, _ = world.run_task()
    stopped, _ = world.run_task()
    for task in (running, stopped):
        handle(world, world.event(task, "RUNNING", "RUNNING"))
    world.ecs.stop_task(cluster=world.cluster_arn, task=stopped["taskArn"])
    foreign = f"{'f' * 32}.{DOMAIN}."
    # Another stack's name under the same domain (its own cluster ARN in the mark) stays.
    other = task_dns.Config(world.zone_id, DOMAIN, world.cluster_arn + "-other", None)
    world.route53.change_resource_record_sets(
        HostedZoneId=world.zone_id,
        ChangeBatch={"Changes": task_dns._upserts(other, "f" * 32, "198.51.100.9")},
    )
    # Create and update (deploys) change nothing: names come from events and the reconciler.
    before = world.records()
    for action in ("create", "update"):
        assert handle(world, lifecycle(action)) == {"action": action, "purged": False}
    assert world.records() == before

    report = handle(world, lifecycle("delete"))
    # A task still running (one started with RunTask outlives the service) loses its name
    # too: nothing will be left to delete it when it stops.
    assert report == {"deleted": sorted([world.name(running), world.name(stopped)])}
    records = world.records()
    assert not [k for k in records if k[0] in (world.name(running), world.name(stopped))]
    assert records[(foreign, "A")] == ["198.51.100.9"]
    assert handle(world, lifecycle("delete")) == {"deleted": []}  # a retried destroy


class StrictDeletes:
    """Route53's rule that moto does not apply: a DELETE must carry the record set's current
    TTL and values, or the whole batch is refused (InvalidChangeBatch; Route53 API reference,
    ChangeResourceRecordSets, "To delete a resource record set, you must specify all the same
    values that you specified when you created it")."""

    def __init__(self, client: Any) -> None:
        self._client, self.sent, self.refused = client, 0, 0

    def change_resource_record_sets(self, **kwargs: Any) -> Any:
        self.sent += 1
        for change in kwargs["ChangeBatch"]["Changes"]:
            if change["Action"] != "DELETE":
                continue
            wanted = change["ResourceRecordSet"]
            found = self._client.list_resource_record_sets(
                HostedZoneId=kwargs["HostedZoneId"],
                StartRecordName=wanted["Name"],
                StartRecordType=wanted["Type"],
                MaxItems="1",
            )["ResourceRecordSets"]
            current = found[0] if found else {}
            if (current.get("Name"), current.get("Type"), current.get("TTL")) != (
                wanted["Name"],
                wanted["Type"],
                wanted.get("TTL"),
            ) or current.get("ResourceRecords") != wanted.get("ResourceRecords"):
                self.refused += 1
                raise ClientError(
                    {"Error": {"Code": "InvalidChangeBatch", "Message": "values do not match"}},
                    "ChangeResourceRecordSets",
                )
        return self._client.change_resource_record_sets(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_purge_redoes_a_refused_batch_name_by_name(world: World) -> None:
    tasks = [world.run_task()[0] for _ in range(3)]
    for task in tasks:
        handle(world, world.event(task, "RUNNING", "RUNNING"))
    # Between the listing and the batch, one record changes (a late event): Route53 refuses
    # the whole batch, whose DELETE carries the old value.
    real = world.route53.list_resource_record_sets
    changed = world.name(tasks[1])

    def list_then_change(**kwargs: Any) -> Any:
        page = real(**kwargs)
        world.route53.list_resource_record_sets = real
        world.route53.change_resource_record_sets(
            HostedZoneId=world.zone_id,
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": changed,
                            "Type": "A",
                            "TTL": 60,
                            "ResourceRecords": [{"Value": "192.0.2.99"}],
                        },
                    }
                ]
            },
        )
        return page

    world.route53.list_resource_record_sets = list_then_change
    strict = StrictDeletes(world.route53)
    clients = task_dns.Clients(route53=strict, ec2=world.ec2, ecs=world.ecs)
    report = task_dns.handler(lifecycle("delete"), None, clients)
    assert report["deleted"] == sorted(world.name(t) for t in tasks)
    # The refused batch, then each name read again and deleted on its own.
    assert strict.refused == 1 and strict.sent == 1 + len(tasks)
    assert not [k for k in world.records() if k[0].endswith(f".{DOMAIN}.")]


# --------------------------------------------------------------------------- request quota


class Calls:
    """Counts the requests a client sends (botocore's before-call event), by operation."""

    def __init__(self, *clients: Any) -> None:
        self.by_operation: dict[str, int] = {}
        for client in clients:
            client.meta.events.register("before-call", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        key = f"{model.service_model.service_name}:{model.name}"
        self.by_operation[key] = self.by_operation.get(key, 0) + 1

    def service(self, name: str) -> int:
        return sum(n for k, n in self.by_operation.items() if k.startswith(f"{name}:"))

    def reset(self) -> None:
        self.by_operation.clear()


def start_tasks(world: World, count: int) -> list[dict]:
    """`count` running awsvpc tasks with public IPs (RunTask starts at most 10 at a time)."""
    started: list[dict] = []
    while len(started) < count:
        started.extend(
            world.ecs.run_task(
                cluster=world.cluster_arn,
                taskDefinition=FAMILY,
                launchType="FARGATE",
                count=min(10, count - len(started)),
                networkConfiguration={
                    "awsvpcConfiguration": {
                        "subnets": [world.subnet],
                        "securityGroups": [],
                        "assignPublicIp": "ENABLED",
                    }
                },
            )["tasks"]
        )
    for task in started:
        address = world.ec2.allocate_address(Domain="vpc")
        world.ec2.associate_address(
            AllocationId=address["AllocationId"], NetworkInterfaceId=task_dns.eni_of(task)
        )
    return started


def expected_batches(world: World, tasks: list[dict], action: str) -> int:
    """How many requests the changes of `tasks` need under Route53's per-request limits."""
    groups = []
    for task in tasks:
        tid = task_dns.task_id(task["taskArn"])
        changes = task_dns._upserts(world.cfg, tid, "203.0.113.255")
        if action == "DELETE":
            changes = [{**c, "Action": "DELETE"} for c in changes]
        groups.append(changes)
    return len(task_dns.change_batches(groups))


@pytest.mark.parametrize("world", ["ecs-tls-dev"], indirect=True)
def test_reconciling_a_thousand_tasks_costs_pages_and_batches_not_tasks(world: World) -> None:
    import math
    import time

    tasks = start_tasks(world, 1000)
    calls = Calls(world.route53, world.ec2, world.ecs)

    started = time.monotonic()
    report = handle(world, {"reconcile": True})
    first_s = time.monotonic() - started
    assert len(report["upserted"]) == 1000
    batches = expected_batches(world, tasks, "UPSERT")
    # Bound by the characters of the values (an UPSERT counts twice): 7 requests, not 1,000.
    assert batches == math.ceil(1000 / (32000 // (2 * (89 + len("203.0.113.255")))))
    assert calls.by_operation["route53:ChangeResourceRecordSets"] == batches
    assert calls.by_operation["route53:ListResourceRecordSets"] == 1  # NS and SOA only
    # ECS and EC2 by hundreds: ListTasks pages (moto answers in one), DescribeTasks and
    # interface chunks.
    assert calls.by_operation["ecs:ListTasks"] <= 10
    assert calls.by_operation["ecs:DescribeTasks"] == 10
    assert calls.by_operation["ec2:DescribeNetworkInterfaces"] == 10
    records = world.records()
    assert sum(1 for (_, kind) in records if kind == "A") == 1000

    # Nothing to do: the zone's pages (300 record sets each) and no change at all.
    calls.reset()
    again = handle(world, {"reconcile": True})
    assert len(again["unchanged"]) == 1000 and again["upserted"] == again["deleted"] == []
    pages = math.ceil((2 * 1000 + 2) / 300)
    assert calls.by_operation.pop("ecs:ListTasks") <= 10
    assert calls.by_operation == {
        "route53:ListResourceRecordSets": pages,
        "ecs:DescribeTasks": 10,
        "ec2:DescribeNetworkInterfaces": 10,
    }

    # Every task stopped, every STOPPED event lost: deletes in batches too.
    for task in tasks:
        world.ecs.stop_task(cluster=world.cluster_arn, task=task["taskArn"])
    calls.reset()
    started = time.monotonic()
    gone = handle(world, {"reconcile": True})
    last_s = time.monotonic() - started
    assert len(gone["deleted"]) == 1000
    assert calls.by_operation["route53:ListResourceRecordSets"] == pages
    assert calls.by_operation["route53:ChangeResourceRecordSets"] == expected_batches(
        world, tasks, "DELETE"
    )
    assert calls.service("route53") < 20
    assert not [k for k in world.records() if k[0].endswith(f".{DOMAIN}.")]
    # Far within the function's 120 s timeout even against in-process moto; a generous bound.
    print(f"reconcile of 1000 tasks: {first_s:.1f}s to add, {last_s:.1f}s to delete")
    assert first_s < 60 and last_s < 60

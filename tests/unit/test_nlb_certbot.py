"""Topology nlb-certbot under mocks: persistent data, certbot out of the app's task (issuer
and renewal), non-root containers on the instance, both challenges."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest

from components.ec2_capacity import ECS_AMI, instance_user_data
from components.renewal import renewal_interval_days
from scripts.mock_runtime import config_error, is_secret, run_program, unwrap
from task_contents.certbot import CERTBOT_USER, COPIER_WAIT_SECONDS, lineage_name
from task_contents.imds_guard import UNIT_NAME, imds_guard_script
from tests.conftest import MINIMAL_CONFIG
from tests.tools import require_binary

DNS01 = MINIMAL_CONFIG["nlb-certbot"]
HTTP01 = {
    "topology": "nlb-certbot",
    "domain": "db.example.com",
    "acme": {"email": "ops@example.com", "challenge": "http-01"},
    "allowedCidrs": ["203.0.113.0/24"],
}
ZONE = DNS01["hostedZoneId"]
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
FARGATE_APP = {"image": "ghcr.io/acme/tls-app:1", "ports": [8443], "capacity": "fargate"}
MODES = {
    "dns-01": DNS01,
    "http-01": HTTP01,
    "fargate": {**DNS01, "app": FARGATE_APP},
}


@pytest.fixture(scope="module", params=list(MODES))
def mode(request):
    return request.param, run_program(MODES[request.param])


def definitions(graph, name: str = "nlb-certbot") -> dict[str, dict]:
    td = graph.one("aws:ecs/taskDefinition:TaskDefinition", name)
    return {c["name"]: c for c in json.loads(unwrap(td.inputs["containerDefinitions"]))}


def env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("environment", [])}


def policy(graph, name: str) -> dict[str, dict]:
    document = json.loads(graph.one("aws:iam/rolePolicy:RolePolicy", name).inputs["policy"])
    return {s["Sid"]: s for s in document["Statement"]}


# ----------------------------------------------------------------- the app task


def test_the_app_waits_for_a_certificate_not_for_the_ca(mode):
    """copier -> SUCCESS -> app, no certbot: a CA outage does not stop a task whose
    certificate on EFS is still valid (the copier decides), and a first start waits a
    bounded time for the issuer task."""
    _, graph = mode
    c = definitions(graph)
    assert sorted(c) == ["app", "copier"], "the app's task never talks to the CA"
    assert c["copier"]["essential"] is False and "dependsOn" not in c["copier"]
    assert env(c["copier"])["WAIT_SECONDS"] == str(COPIER_WAIT_SECONDS)
    assert c["app"]["dependsOn"] == [{"containerName": "copier", "condition": "SUCCESS"}]
    assert c["app"]["essential"] is True
    assert c["app"]["stopTimeout"] == 120, "time for Neo4j to checkpoint"
    mounts = {m["sourceVolume"]: m for m in c["copier"]["mountPoints"]}
    assert mounts["letsencrypt"]["readOnly"] is True


def test_the_issuer_task_runs_certbot_without_the_restart_hook(mode):
    kind, graph = mode
    (certbot,) = definitions(graph, "nlb-certbot-issuer").values()
    assert certbot["essential"] is True
    assert certbot["user"] == CERTBOT_USER
    assert certbot["entryPoint"] == ["sh", "-c"]
    argv = certbot["command"]
    assert "certonly" in argv and "--keep-until-expiring" in argv
    assert argv[argv.index("--server") + 1] == STAGING
    assert argv[argv.index("--cert-name") + 1] == lineage_name("db.example.com", STAGING)
    assert "--deploy-hook" not in argv
    if kind == "http-01":
        assert "--standalone" in argv and argv[argv.index("--http-01-port") + 1] == "80"
        # Host networking: a mapping of port 80 would keep the renewal task off the
        # instance for as long as the app task runs.
        for name in ("nlb-certbot", "nlb-certbot-issuer", "nlb-certbot-renewal"):
            assert all(
                "portMappings" not in c
                for c in definitions(graph, name).values()
                if c["name"] != "app"
            )
    else:
        assert "--dns-route53" in argv and "--standalone" not in argv


def test_the_copier_reads_the_lineage_of_the_configured_server(mode):
    _, graph = mode
    copier = env(definitions(graph)["copier"])
    lineage = lineage_name("db.example.com", STAGING)
    assert copier["SOURCE_DIR"] == f"/etc/letsencrypt/live/{lineage}"
    assert copier["DOMAIN"] == "db.example.com"


def test_switching_the_acme_server_switches_the_lineage():
    production = {**DNS01, "acme": {"email": "ops@example.com", "server": "production"}}
    argv = definitions(run_program(production), "nlb-certbot-issuer")["certbot"]["command"]
    assert argv[argv.index("--cert-name") + 1] == "db.example.com-production"
    assert env(definitions(run_program(production))["copier"])["SOURCE_DIR"].endswith(
        "db.example.com-production"
    )


def test_neo4j_requires_tls_and_gets_its_password_from_secrets(mode):
    kind, graph = mode
    app = definitions(graph)["app"]
    variables = env(app)
    if kind != "fargate":
        assert variables["NEO4J_server_bolt_tls__level"] == "REQUIRED"
        assert variables["NEO4J_server_http_enabled"] == "false"
    assert "NEO4J_AUTH" not in variables
    secret = graph.one("aws:secretsmanager/secret:Secret")
    assert app["secrets"] == [{"name": "NEO4J_AUTH", "valueFrom": secret.outputs["arn"]}]
    version = graph.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert is_secret(version.inputs["secretString"])
    assert "mock-password" not in unwrap(
        graph.one("aws:ecs/taskDefinition:TaskDefinition", "nlb-certbot").inputs[
            "containerDefinitions"
        ]
    )


# ----------------------------------------------------------------- least privilege


def _user_data(graph) -> str:
    template = graph.one("aws:ec2/launchTemplate:LaunchTemplate")
    return base64.b64decode(template.inputs["userData"]).decode()


def _host_mode_containers(graph) -> list[tuple[str, dict]]:
    return [
        (td.name, c)
        for td in graph.of_type("aws:ecs/taskDefinition:TaskDefinition")
        if td.inputs.get("networkMode") == "host"
        for c in json.loads(unwrap(td.inputs["containerDefinitions"]))
    ]


@pytest.mark.parametrize(
    "config",
    [DNS01, HTTP01, {**DNS01, "app": {"certificateLayout": {"owner": None}}}],
    ids=["dns-01", "http-01", "no-layout-owner"],
)
def test_every_container_of_a_host_mode_task_runs_as_a_non_root_user(config):
    """Host networking shares the instance's network namespace: the instance lets only
    root reach the metadata service, so no container may run as root."""
    graph = run_program(config)
    containers = _host_mode_containers(graph)
    families = {name for name, _ in containers}
    assert families == {"nlb-certbot", "nlb-certbot-issuer", "nlb-certbot-renewal"}
    for family, c in containers:
        user = c.get("user")
        assert user, f"{family}/{c['name']} has no user: it would run as the image's (root)"
        uid, _, gid = user.partition(":")
        assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, (
            f"{family}/{c['name']} runs as {user!r}"
        )


def test_the_app_and_its_files_belong_to_the_layout_owner_on_ec2():
    graph = run_program(DNS01)
    c = definitions(graph)
    assert c["app"]["user"] == c["copier"]["user"] == "7474:7474"
    assert env(c["copier"])["OWNER"] == "7474:7474"
    td = graph.one("aws:ecs/taskDefinition:TaskDefinition", "nlb-certbot")
    volumes = {v["name"]: v for v in unwrap(td.inputs["volumes"])}
    # A host directory the copier (non-root) may write, prepared before the agent starts.
    assert volumes["certificates"] == {
        "name": "certificates",
        "hostPath": "/var/lib/ecs-tls/certificates",
    }
    user_data = _user_data(graph)
    prepare = "install -d -m 0700 -o 7474 -g 7474 /var/lib/ecs-tls/certificates"
    assert user_data.index(prepare) < user_data.index("ECS_CLUSTER=")
    assert "chown 7474:7474" not in user_data and "OWNER=7474:7474" in user_data


def test_on_fargate_the_app_keeps_its_image_user():
    """No instance metadata to protect there, and the scratch volume belongs to root."""
    c = definitions(run_program(MODES["fargate"]))
    assert "user" not in c["app"] and "user" not in c["copier"]
    assert (
        definitions(run_program(MODES["fargate"]), "nlb-certbot-issuer")["certbot"]["user"]
        == CERTBOT_USER
    )


def test_the_app_task_role_holds_no_rights(mode):
    """A task role applies to every container of the task: the app's holds nothing but
    the read-only EFS mount the file system policy grants it."""
    _, graph = mode
    role = graph.one("aws:iam/role:Role", "nlb-certbot-app-task")
    td = graph.one("aws:ecs/taskDefinition:TaskDefinition", "nlb-certbot")
    assert td.inputs["taskRoleArn"] == role.outputs["arn"]
    for kind in (
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    ):
        assert not [p for p in graph.of_type(kind) if p.inputs["role"] in (role.id, role.name)]


def test_the_issuer_runs_whenever_a_task_of_the_app_starts(mode):
    kind, graph = mode
    cluster = graph.one("aws:ecs/cluster:Cluster")
    issuer = graph.one("aws:ecs/taskDefinition:TaskDefinition", "nlb-certbot-issuer")
    certbot_role = graph.one("aws:iam/role:Role", "nlb-certbot-renewal-task")
    assert issuer.inputs["taskRoleArn"] == certbot_role.outputs["arn"]
    app = graph.one("aws:ecs/taskDefinition:TaskDefinition", "nlb-certbot")
    rule = graph.one("aws:cloudwatch/eventRule:EventRule", "nlb-certbot-issuer")
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern["source"] == ["aws.ecs"]
    assert pattern["detail-type"] == ["ECS Task State Change"]
    detail = pattern["detail"]
    assert detail["clusterArn"] == [cluster.outputs["arn"]]
    assert (detail["lastStatus"], detail["desiredStatus"]) == (["PENDING"], ["RUNNING"])
    (prefix,) = detail["taskDefinitionArn"]
    family = app.inputs["family"]
    assert prefix == {"prefix": f"arn:aws:ecs:eu-west-1:123456789012:task-definition/{family}:"}, (
        "the colon keeps the issuer's and the renewal's families out"
    )
    target = graph.one("aws:cloudwatch/eventTarget:EventTarget", "nlb-certbot-issuer")
    assert target.inputs["arn"] == cluster.outputs["arn"]
    assert target.inputs["rule"] == rule.outputs["name"]
    ecs = target.inputs["ecsTarget"]
    assert ecs["taskDefinitionArn"] == issuer.outputs["arn"]
    assert ecs["launchType"] == ("FARGATE" if kind == "fargate" else "EC2")
    assert ecs["taskCount"] == 1
    if kind == "fargate":
        assert ecs["networkConfiguration"]["assignPublicIp"] is False
    assert target.inputs["retryPolicy"]["maximumEventAgeInSeconds"] == COPIER_WAIT_SECONDS
    # The role EventBridge uses: trusted by events.amazonaws.com for this account only.
    events_role = graph.one("aws:iam/role:Role", "nlb-certbot-issuer-events")
    assert target.inputs["roleArn"] == events_role.outputs["arn"]
    (trust,) = json.loads(events_role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    run = policy(graph, "nlb-certbot-issuer-events")
    assert run["RunIssuerTask"]["Action"] == ["ecs:RunTask"]
    assert run["RunIssuerTask"]["Resource"] == [issuer.outputs["arn"]]
    assert run["RunIssuerTask"]["Condition"] == {
        "ArnEquals": {"ecs:cluster": cluster.outputs["arn"]}
    }
    execution = graph.one("aws:iam/role:Role", "cluster-execution")
    assert run["PassIssuerRoles"]["Resource"] == sorted(
        [certbot_role.outputs["arn"], execution.outputs["arn"]]
    )
    assert run["PassIssuerRoles"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    # The first task of the service must find the rule able to start the issuer.
    service = graph.one("aws:ecs/service:Service")
    assert graph.depends_on(service, target)
    assert graph.depends_on(
        service, graph.one("aws:iam/rolePolicy:RolePolicy", "nlb-certbot-issuer-events")
    )
    # Same certbot request as every renewal, without the restart hook.
    (certbot,) = definitions(graph, "nlb-certbot-issuer").values()
    (renewal,) = definitions(graph, "nlb-certbot-renewal").values()
    issuer_args = certbot["command"][certbot["command"].index("certbot") + 1 :]
    renewal_args = renewal["command"][renewal["command"].index("certbot") + 1 :]
    assert renewal_args == [*issuer_args, "--deploy-hook", renewal_args[-1]]
    assert "--deploy-hook" not in issuer_args


def test_a_failed_issue_is_reported_to_the_alerts_topic():
    graph = run_program(DNS01)
    rule = graph.one("aws:cloudwatch/eventRule:EventRule", "nlb-certbot-issuer-failed")
    issuer = graph.one("aws:ecs/taskDefinition:TaskDefinition", "nlb-certbot-issuer")
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern["detail"]["group"] == [f"family:{issuer.inputs['family']}"]


@pytest.mark.parametrize("kind", ["dns-01", "http-01"])
def test_the_instance_lets_only_root_reach_the_metadata_service(kind):
    """The guard (task_contents/imds_guard.py, run for real in
    tests/integration/test_imds_firewall.py) is installed before anything else, and no
    privileged container can lift it."""
    user_data = _user_data(run_program(MODES[kind]))
    port_start = 80 if kind == "http-01" else None
    assert imds_guard_script(port_start) in user_data
    enable = f"systemctl enable --now {UNIT_NAME}"
    assert user_data.index(enable) < user_data.index("ecs-tls-data-volume")
    assert user_data.index(enable) < user_data.index("ECS_CLUSTER=")
    assert "ECS_DISABLE_PRIVILEGED=true" in user_data
    # Only HTTP-01 needs certbot, a non-root user, on port 80.
    assert ("ip_unprivileged_port_start=80" in user_data) == (kind == "http-01")


# ----------------------------------------------------------------- data that survives


@pytest.mark.parametrize("kind", ["dns-01", "http-01"])
def test_the_database_lives_on_a_retained_encrypted_volume_in_the_instances_zone(kind):
    graph = run_program(MODES[kind])
    volume = graph.one("aws:ebs/volume:Volume")
    assert (volume.inputs["type"], volume.inputs["encrypted"], volume.inputs["size"]) == (
        "gp3",
        True,
        20,
    )
    assert volume.retain_on_delete, "destroy or a switch must leave the data"
    group = graph.one("aws:autoscaling/group:Group")
    (subnet_id,) = group.inputs["vpcZoneIdentifiers"]
    subnet = next(s for s in graph.of_type("aws:ec2/subnet:Subnet") if s.id == subnet_id)
    assert volume.inputs["availabilityZone"] == subnet.inputs["availabilityZone"]
    td = graph.one("aws:ecs/taskDefinition:TaskDefinition", "nlb-certbot")
    volumes = {v["name"]: v for v in unwrap(td.inputs["volumes"])}
    assert volumes["data"] == {"name": "data", "hostPath": "/mnt/ecs-tls-data/app"}
    mounts = {m["sourceVolume"]: m for m in definitions(graph)["app"]["mountPoints"]}
    assert mounts["data"] == {"sourceVolume": "data", "containerPath": "/data", "readOnly": False}
    # The password that opens the retained data is retained with it.
    assert graph.one("aws:secretsmanager/secret:Secret").retain_on_delete
    assert graph.stack_outputs["dataVolumeId"] == volume.id


def test_the_instance_attaches_and_mounts_the_volume_before_it_joins_the_cluster():
    graph = run_program(DNS01)
    volume = graph.one("aws:ebs/volume:Volume")
    template = graph.one("aws:ec2/launchTemplate:LaunchTemplate")
    user_data = base64.b64decode(template.inputs["userData"]).decode()
    assert f"VOLUME_ID={volume.id}" in user_data
    assert user_data.index("ecs-tls-data-volume") < user_data.index("ECS_CLUSTER=ecs-tls-dev")
    statements = policy(graph, "nlb-certbot-instances")
    assert statements["AttachTheDataVolume"]["Resource"] == [
        f"arn:aws:ec2:eu-west-1:123456789012:volume/{volume.id}"
    ]
    tag = statements["AttachToTaggedInstances"]["Condition"]["StringEquals"]
    tags = template.inputs["tagSpecifications"][0]["tags"]
    ((key, value),) = tag.items()
    assert tags[key.removeprefix("ec2:ResourceTag/")] == value


def test_the_instance_is_locked_down_and_follows_new_amis_without_a_diff():
    template = run_program(DNS01).one("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs["imageId"] == ECS_AMI
    assert ECS_AMI.startswith("resolve:ssm:")
    metadata = template.inputs["metadataOptions"]
    assert metadata["httpTokens"] == "required"
    assert metadata["httpPutResponseHopLimit"] == 1
    assert template.inputs["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"
    attachments = run_program(DNS01).of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert any(a.inputs["policyArn"].endswith("/AmazonSSMManagedInstanceCore") for a in attachments)


def test_daily_snapshots_keep_the_configured_count():
    graph = run_program(DNS01)
    volume = graph.one("aws:ebs/volume:Volume")
    lifecycle = graph.one("aws:dlm/lifecyclePolicy:LifecyclePolicy")
    details = lifecycle.inputs["policyDetails"]
    assert details["targetTags"].items() <= volume.inputs["tags"].items()
    (schedule,) = details["schedules"]
    assert schedule["retainRule"] == {"count": 7}
    assert schedule["createRule"]["interval"] == 24
    off = run_program({**DNS01, "app": {"snapshotRetentionDays": 0}})
    assert not off.of_type("aws:dlm/lifecyclePolicy:LifecyclePolicy")


def test_growing_the_data_volume_changes_its_size_and_nothing_else():
    # Size is modified in place (EC2 ModifyVolume); any other input would make a new volume.
    before = run_program(DNS01).one("aws:ebs/volume:Volume")
    after = run_program({**DNS01, "app": {"dataVolumeGiB": 50}}).one("aws:ebs/volume:Volume")
    assert after.urn == before.urn
    assert after.inputs["size"] == 50
    assert {k: v for k, v in after.inputs.items() if k != "size"} == {
        k: v for k, v in before.inputs.items() if k != "size"
    }
    assert not after.delete_before_replace and after.retain_on_delete


def test_a_volume_is_restored_from_a_snapshot_and_its_zone_is_an_output():
    graph = run_program(DNS01)
    volume = graph.one("aws:ebs/volume:Volume")
    assert "snapshotId" not in volume.inputs
    assert graph.stack_outputs["dataVolumeZone"] == volume.inputs["availabilityZone"]
    snapshot = "snap-0123456789abcdef0"
    restored = run_program({**DNS01, "app": {"dataVolumeSnapshotId": snapshot}})
    assert restored.one("aws:ebs/volume:Volume").inputs["snapshotId"] == snapshot
    fargate = {**DNS01, "app": {"capacity": "fargate", "dataVolumeSnapshotId": snapshot}}
    assert config_error(fargate) == (
        "ecs-tls:app.dataVolumeSnapshotId: applies to app.capacity 'ec2' only"
    )


def test_an_instance_may_mark_only_its_own_group_unhealthy():
    graph = run_program(DNS01)
    group = graph.one("aws:autoscaling/group:Group")
    role = graph.one("aws:iam/role:Role", "nlb-certbot-instances")
    grant = graph.one("aws:iam/rolePolicy:RolePolicy", "nlb-certbot-instances-group")
    assert grant.inputs["role"] == role.id
    statements = policy(graph, "nlb-certbot-instances-group")
    assert statements == {
        "MarkOwnGroupInstanceUnhealthy": {
            "Sid": "MarkOwnGroupInstanceUnhealthy",
            "Effect": "Allow",
            "Action": ["autoscaling:SetInstanceHealth"],
            "Resource": [
                "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:*:"
                f"autoScalingGroupName/{group.outputs['name']}"
            ],
        }
    }
    assert group.urn in grant.dependencies


@pytest.mark.parametrize(
    ("app", "heap", "page_cache"),
    [({}, "819m", "716m"), ({"cpu": 2048, "memory": 8192}, "3276m", "2867m")],
)
def test_neo4j_memory_is_sized_to_its_task(app, heap, page_cache):
    graph = run_program({**DNS01, "app": app})
    app_env = env(definitions(graph)["app"])
    assert app_env["NEO4J_server_memory_heap_initial__size"] == heap
    assert app_env["NEO4J_server_memory_heap_max__size"] == heap
    assert app_env["NEO4J_server_memory_pagecache_size"] == page_cache


def test_memory_settings_are_for_neo4j_only_and_too_little_is_refused():
    graph = run_program({**DNS01, "app": FARGATE_APP})
    assert not any(k.startswith("NEO4J_") for k in env(definitions(graph)["app"]) if "memory" in k)
    assert config_error({**DNS01, "app": {"cpu": 512, "memory": 1024}}).startswith(
        "ecs-tls:app.memory: 1024 is not at least 2048 MiB for Neo4j"
    )


def test_fargate_keeps_nothing_and_runs_in_private_subnets():
    graph = run_program(MODES["fargate"])
    assert not graph.of_type("aws:ebs/volume:Volume")
    assert not graph.of_type("aws:autoscaling/group:Group")
    service = graph.one("aws:ecs/service:Service")
    assert service.inputs["launchType"] == "FARGATE"
    assert service.inputs["networkConfiguration"]["assignPublicIp"] is False
    assert [lb["containerPort"] for lb in service.inputs["loadBalancers"]] == [8443]
    assert not graph.one("aws:secretsmanager/secret:Secret").retain_on_delete


# ----------------------------------------------------------------- renewal out of band


def test_renewal_is_a_scheduled_task_that_restarts_the_app_only_after_an_issue(mode):
    kind, graph = mode
    schedule = graph.one("aws:scheduler/schedule:Schedule")
    assert schedule.inputs["scheduleExpression"] == "rate(7 days)"
    target = schedule.inputs["target"]
    cluster = graph.one("aws:ecs/cluster:Cluster")
    renewal = graph.one("aws:ecs/taskDefinition:TaskDefinition", "nlb-certbot-renewal")
    assert target["arn"] == cluster.outputs["arn"]
    assert target["ecsParameters"]["taskDefinitionArn"] == renewal.outputs["arn"]
    assert target["ecsParameters"]["launchType"] == ("FARGATE" if kind == "fargate" else "EC2")
    (certbot,) = definitions(graph, "nlb-certbot-renewal").values()
    argv = certbot["command"]
    assert "--deploy-hook" in argv
    assert argv[argv.index("--cert-name") + 1] == lineage_name("db.example.com", STAGING)
    service = graph.one("aws:ecs/service:Service")
    assert env(certbot) == {
        "ECS_CLUSTER": cluster.outputs["arn"],
        "ECS_SERVICE": service.outputs["name"],
        # The hook's second run reports the live certificate's expiry.
        "CERTIFICATE_FILE": f"/etc/letsencrypt/live/{lineage_name('db.example.com', STAGING)}"
        "/cert.pem",
        "CERTIFICATE_NAME": "db.example.com",
    }
    restart = policy(graph, "nlb-certbot-renewal-restart")["RestartAppService"]
    cluster_name = cluster.outputs["name"]
    long_arn = (
        f"arn:aws:ecs:eu-west-1:123456789012:service/{cluster_name}/{service.outputs['name']}"
    )
    assert (restart["Action"], restart["Resource"]) == (["ecs:UpdateService"], [long_arn])
    run = policy(graph, "nlb-certbot-renewal")
    assert run["RunRenewalTask"]["Resource"] == [renewal.outputs["arn"]]
    assert run["RunRenewalTask"]["Condition"] == {
        "ArnEquals": {"ecs:cluster": cluster.outputs["arn"]}
    }
    task_role = graph.one("aws:iam/role:Role", "nlb-certbot-renewal-task")
    assert task_role.outputs["arn"] in run["PassTaskRoles"]["Resource"]


def test_the_app_is_never_restarted_on_a_clock(mode):
    _, graph = mode
    for schedule in graph.of_type("aws:scheduler/schedule:Schedule"):
        assert "updateService" not in schedule.inputs["target"]["arn"]


@pytest.mark.parametrize(("lifetime", "days"), [(90, 15), (64, 10), (45, 7), (6, 1)])
def test_renewal_interval_follows_the_lifetime(lifetime, days):
    assert renewal_interval_days(lifetime) == days
    assert days * 2 <= lifetime // 3 + 1, "two chances inside certbot's renewal window"


def test_profile_and_interval_reach_the_task_and_schedule():
    graph = run_program({**DNS01, "acme": {"email": "ops@example.com", "profile": "shortlived"}})
    schedule = graph.one("aws:scheduler/schedule:Schedule")
    assert schedule.inputs["scheduleExpression"] == "rate(1 days)"
    argv = definitions(graph, "nlb-certbot-issuer")["certbot"]["command"]
    assert argv[argv.index("--preferred-profile") + 1] == "shortlived"


# ----------------------------------------------------------------- ACME state, DNS-01


def test_acme_state_is_on_encrypted_efs_for_every_task(mode):
    _, graph = mode
    access_point = graph.one("aws:efs/accessPoint:AccessPoint")
    for name in ("nlb-certbot", "nlb-certbot-issuer", "nlb-certbot-renewal"):
        td = graph.one("aws:ecs/taskDefinition:TaskDefinition", name)
        volumes = {v["name"]: v for v in unwrap(td.inputs["volumes"])}
        efs = volumes["letsencrypt"]["efsVolumeConfiguration"]
        assert efs["transitEncryption"] == "ENABLED"
        assert efs["authorizationConfig"] == {"accessPointId": access_point.id, "iam": "ENABLED"}
    assert graph.one("aws:efs/fileSystem:FileSystem").inputs["encrypted"] is True
    document = json.loads(graph.one("aws:efs/fileSystemPolicy:FileSystemPolicy").inputs["policy"])
    allow = {s["Sid"]: s for s in document["Statement"] if s["Effect"] == "Allow"}
    app, certbot = (
        graph.one("aws:iam/role:Role", f"nlb-certbot-{p}-task") for p in ("app", "renewal")
    )
    # Only the certbot tasks write; the app's task mounts read-only (no ClientWrite); nobody
    # acts as root on the file system.
    writers = allow["ClientThroughAccessPoint"]
    assert writers["Principal"] == {"AWS": [certbot.outputs["arn"]]}
    assert writers["Action"] == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    readers = allow["ReadOnlyThroughAccessPoint"]
    assert readers["Principal"] == {"AWS": [app.outputs["arn"]]}
    assert readers["Action"] == "elasticfilesystem:ClientMount"
    uid, gid = (int(x) for x in CERTBOT_USER.split(":"))
    assert access_point.inputs["posixUser"] == {"uid": uid, "gid": gid}
    creation = access_point.inputs["rootDirectory"]["creationInfo"]
    assert (creation["ownerUid"], creation["ownerGid"]) == (uid, gid)
    # One mount target per availability zone.
    zones = [
        next(s for s in graph.of_type("aws:ec2/subnet:Subnet") if s.id == t.inputs["subnetId"])
        for t in graph.of_type("aws:efs/mountTarget:MountTarget")
    ]
    assert len({z.inputs["availabilityZone"] for z in zones}) == len(zones) == 2


def test_one_mount_target_per_zone_in_an_existing_vpc():
    network = {
        "vpcId": "vpc-0123456789abcdef0",
        "publicSubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        # The harness puts subnets ending in an even digit in one zone, odd in the other.
        "privateSubnetIds": [
            "subnet-0123456789abcdef2",
            "subnet-0123456789abcdef4",
            "subnet-0123456789abcdef3",
        ],
    }
    graph = run_program({**DNS01, "network": network})
    # The first subnet of each zone; mocked registration order follows input resolution, so sort.
    targets = sorted(t.inputs["subnetId"] for t in graph.of_type("aws:efs/mountTarget:MountTarget"))
    assert targets == ["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"]


def test_route53_changes_are_limited_to_the_challenge_record():
    graph = run_program(DNS01)
    for purpose in ("renewal",):
        statements = policy(graph, f"nlb-certbot-{purpose}-route53")
        change = statements["ChangeChallengeRecord"]
        assert change["Resource"] == [f"arn:aws:route53:::hostedzone/{ZONE}"]
        assert change["Condition"]["ForAllValues:StringEquals"] == {
            "route53:ChangeResourceRecordSetsNormalizedRecordNames": [
                "_acme-challenge.db.example.com"
            ],
            "route53:ChangeResourceRecordSetsRecordTypes": ["TXT"],
            "route53:ChangeResourceRecordSetsActions": ["UPSERT", "DELETE"],
        }
        role = graph.one("aws:iam/role:Role", f"nlb-certbot-{purpose}-task")
        assert (
            graph.one("aws:iam/rolePolicy:RolePolicy", f"nlb-certbot-{purpose}-route53").inputs[
                "role"
            ]
            == role.id
        )
    service = graph.one("aws:ecs/service:Service")
    for needed in [
        graph.one("aws:iam/rolePolicy:RolePolicy", "nlb-certbot-renewal-route53"),
        graph.one("aws:efs/fileSystemPolicy:FileSystemPolicy"),
        *graph.of_type("aws:efs/mountTarget:MountTarget"),
    ]:
        assert graph.depends_on(service, needed), needed


# ----------------------------------------------------------------- HTTP-01


def test_http01_port_80_is_open_to_the_internet_and_health_checked_on_the_responder():
    graph = run_program({**HTTP01, "allowedCidrs": ["203.0.113.0/24"]})
    assert not graph.of_type("aws:iam/rolePolicy:RolePolicy", "nlb-certbot-app-route53")
    lb_sg = graph.one("aws:ec2/securityGroup:SecurityGroup", "nlb-certbot")
    ingress = {
        (r.inputs["fromPort"], r.inputs["cidrIpv4"])
        for r in graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs["securityGroupId"] == lb_sg.id
    }
    assert (80, "0.0.0.0/0") in ingress, "Let's Encrypt publishes no address list"
    assert (7687, "203.0.113.0/24") in ingress and (7687, "0.0.0.0/0") not in ingress
    groups = {g.inputs["port"]: g for g in graph.of_type("aws:lb/targetGroup:TargetGroup")}
    assert groups[80].inputs["healthCheck"]["port"] == "8081"
    asg = graph.one("aws:autoscaling/group:Group")
    assert sorted(asg.inputs["targetGroupArns"]) == sorted(
        g.outputs["arn"] for g in groups.values()
    )
    user_data = base64.b64decode(
        graph.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["userData"]
    ).decode()
    assert "http.server 8081" in user_data


def test_http01_without_a_zone_starts_no_task_and_says_what_to_do():
    graph = run_program(HTTP01)
    service = graph.one("aws:ecs/service:Service")
    assert service.inputs["desiredCount"] == 0
    assert service.inputs["waitForSteadyState"] is False
    steps = graph.stack_outputs["nextSteps"]
    assert "db.example.com" in steps and graph.stack_outputs["nlbDnsName"] in steps
    assert "ecs-tls:app.desiredCount 1" in steps


def test_http01_with_a_zone_waits_for_the_domain_record():
    graph = run_program({**HTTP01, "hostedZoneId": ZONE})
    service = graph.one("aws:ecs/service:Service")
    record = graph.one("aws:route53/record:Record", "domain")
    assert service.inputs["desiredCount"] == 1
    assert graph.depends_on(service, record)
    assert "nextSteps" not in graph.stack_outputs


def test_ec2_service_replaces_its_one_task_in_place(mode):
    kind, graph = mode
    if kind == "fargate":
        return
    service = graph.one("aws:ecs/service:Service")
    assert service.inputs["launchType"] == "EC2"
    assert service.inputs["deploymentMinimumHealthyPercent"] == 0
    assert service.inputs["deploymentMaximumPercent"] == 100
    assert graph.depends_on(service, graph.one("aws:autoscaling/group:Group"))
    td = graph.one("aws:ecs/taskDefinition:TaskDefinition", "nlb-certbot")
    assert td.inputs["networkMode"] == "host"


def test_nlb_passes_tcp_through(mode):
    kind, graph = mode
    listeners = graph.of_type("aws:lb/listener:Listener")
    assert all(lst.inputs["protocol"] == "TCP" for lst in listeners), "no TLS termination"
    for group in graph.of_type("aws:lb/targetGroup:TargetGroup"):
        assert group.inputs["healthCheck"]["protocol"] == "TCP"
        assert group.inputs["targetType"] == ("ip" if kind == "fargate" else "instance")


def test_user_data_is_valid_bash():
    bash = require_binary("bash", "apt-get install bash")
    script = instance_user_data("ecs-tls-dev", 8081, "echo mounted")
    result = subprocess.run([bash, "-n"], input=script, text=True, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr


def test_outputs(mode):
    kind, graph = mode
    out = graph.stack_outputs
    if kind != "fargate":
        assert out["endpoint"] == "https://db.example.com:7473 bolt+s://db.example.com:7687"
    assert out["nlbDnsName"] == graph.one("aws:lb/loadBalancer:LoadBalancer").outputs["dnsName"]
    assert out["efsFileSystemId"] == graph.one("aws:efs/fileSystem:FileSystem").id
    assert out["acmeDirectory"] == STAGING
    aliases = [r for r in graph.of_type("aws:route53/record:Record") if r.inputs["type"] == "A"]
    assert len(aliases) == (0 if kind == "http-01" else 1)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {**DNS01, "acme": {"email": "ops@example.com", "renewEveryDays": 20}},
            "ecs-tls:acme.renewEveryDays: 20 is not short enough: certbot renews in the last 15 "
            "days of a 45-day certificate",
        ),
        (
            {**DNS01, "app": {"ports": [80, 7687]}},
            "ecs-tls:app.ports: [80, 7687] is not distinct ports other than 80 (ACME HTTP-01)",
        ),
        (
            {**HTTP01, "app": {"ports": [8081, 7687]}},
            "ecs-tls:app.ports: [8081, 7687] is not free of 8081, where the HTTP-01 health "
            "responder listens",
        ),
        (
            {**DNS01, "app": {"desiredCount": 2}},
            "ecs-tls:app.desiredCount: 2 is not 0 or 1 (its data volume attaches to one instance)",
        ),
        (
            {**DNS01, "app": {"capacity": "fargate", "desiredCount": 2}},
            "ecs-tls:app.desiredCount: 2 is not 0 or 1 (Neo4j Community runs as one instance)",
        ),
        (
            {**HTTP01, "app": {"capacity": "fargate"}},
            "ecs-tls:app.capacity: 'fargate' is not usable with acme.challenge 'http-01': on "
            "Fargate the issuer task is not behind the load balancer, so the ACME server's "
            "HTTP request never reaches certbot; use 'ec2' or acme.challenge 'dns-01'",
        ),
        (
            {**DNS01, "app": {"capacity": "fargate", "dataVolumeGiB": 50}},
            "ecs-tls:app.dataVolumeGiB: applies to app.capacity 'ec2' only",
        ),
        (
            {**DNS01, "app": {"capacity": "lambda"}},
            "ecs-tls:app.capacity: 'lambda' is not one of: ec2, fargate",
        ),
        (
            {**DNS01, "network": {"natGateways": 0}},
            "ecs-tls:network.natGateways: 0 is not enough for topology 'nlb-certbot': its "
            "tasks run in private subnets and need NAT to pull images and reach Secrets "
            "Manager, CloudWatch Logs and ECS; use 1",
        ),
    ],
)
def test_bad_nlb_certbot_config(config, message):
    assert config_error(config) == message


def test_a_stateless_app_on_fargate_may_run_several_tasks():
    graph = run_program({**DNS01, "app": {**FARGATE_APP, "desiredCount": 2}})
    assert graph.one("aws:ecs/service:Service").inputs["desiredCount"] == 2


def test_a_failed_renewal_is_reported_to_the_alerts_topic(mode):
    _, graph = mode
    rule = graph.one("aws:cloudwatch/eventRule:EventRule", "nlb-certbot-renewal-failed")
    pattern = json.loads(rule.inputs["eventPattern"])
    renewal = graph.one("aws:ecs/taskDefinition:TaskDefinition", "nlb-certbot-renewal")
    cluster = graph.one("aws:ecs/cluster:Cluster")
    assert pattern["detail"]["group"] == [f"family:{renewal.inputs['family']}"]
    assert pattern["detail"]["clusterArn"] == [cluster.outputs["arn"]]
    assert pattern["detail"]["lastStatus"] == ["STOPPED"]
    assert {"containers": {"exitCode": [{"anything-but": 0}]}} in pattern["detail"]["$or"]
    target = graph.one("aws:cloudwatch/eventTarget:EventTarget", "nlb-certbot-renewal-failed")
    topic = graph.one("aws:sns/topic:Topic")
    assert target.inputs["arn"] == topic.outputs["arn"]
    document = json.loads(graph.one("aws:sns/topicPolicy:TopicPolicy").inputs["policy"])
    publish = next(s for s in document["Statement"] if s["Sid"] == "AlarmsAndRulesPublish")
    assert "events.amazonaws.com" in publish["Principal"]["Service"]
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


@pytest.mark.parametrize("kind", ["dns-01", "http-01"])
def test_user_data_fits_ec2s_limit(kind):
    """EC2 refuses user data over 16 KB before base64 (EC2 user guide, instance user data)."""
    template = run_program(MODES[kind]).one("aws:ec2/launchTemplate:LaunchTemplate")
    assert len(base64.b64decode(template.inputs["userData"])) <= 16 * 1024


def test_neo4j_on_fargate_warns_that_its_data_does_not_persist(monkeypatch):
    import pulumi

    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warnings.append(message))
    # A configuration of its own, so the program runs now rather than from the cache.
    config = {**DNS01, "app": {"capacity": "fargate", "environment": {"WARN_CHECK": "1"}}}
    run_program(config)
    assert any("/data" in w and "app.capacity 'ec2'" in w for w in warnings), warnings
    warnings.clear()
    run_program({**DNS01, "app": {**FARGATE_APP, "environment": {"WARN_CHECK": "1"}}})
    assert not [w for w in warnings if "/data" in w], "a stateless image on Fargate is fine"

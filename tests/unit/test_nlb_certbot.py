"""Topology nlb-certbot under mocks, in both challenge modes."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest

from components.ec2_capacity import instance_user_data
from components.renewal import renewal_interval_days
from tests.conftest import MINIMAL_CONFIG
from tests.harness import config_error, is_secret, run_program, unwrap
from tests.tools import require_binary

DNS01 = MINIMAL_CONFIG["nlb-certbot"]
HTTP01 = {
    "topology": "nlb-certbot",
    "domain": "db.example.com",
    "acme": {"email": "ops@example.com", "challenge": "http-01"},
}
ZONE = DNS01["hostedZoneId"]


@pytest.fixture(scope="module", params=["dns-01", "http-01"])
def mode(request):
    config = DNS01 if request.param == "dns-01" else HTTP01
    return request.param, run_program(config)


def containers(graph) -> dict[str, dict]:
    td = graph.one("aws:ecs/taskDefinition:TaskDefinition")
    return {c["name"]: c for c in json.loads(unwrap(td.inputs["containerDefinitions"]))}


def test_init_containers_chain_to_the_app(mode):
    _, graph = mode
    c = containers(graph)
    assert c["certbot"]["essential"] is False
    assert c["copier"]["essential"] is False
    assert c["app"]["essential"] is True
    assert c["copier"]["dependsOn"] == [{"containerName": "certbot", "condition": "SUCCESS"}]
    assert c["app"]["dependsOn"] == [{"containerName": "copier", "condition": "SUCCESS"}]
    assert c["copier"]["command"][:2] == ["sh", "-c"]
    assert "set -eu" in c["copier"]["command"][2]


def test_certbot_argv_asks_the_configured_directory(mode):
    kind, graph = mode
    argv = containers(graph)["certbot"]["command"]
    assert argv[0] == "certonly"
    for flag in ("--non-interactive", "--agree-tos", "--keep-until-expiring"):
        assert flag in argv
    assert argv[argv.index("-d") + 1] == "db.example.com"
    assert argv[argv.index("-m") + 1] == "ops@example.com"
    assert argv[argv.index("--server") + 1] == (
        "https://acme-staging-v02.api.letsencrypt.org/directory"
    )
    if kind == "dns-01":
        assert "--dns-route53" in argv and "--standalone" not in argv
        assert containers(graph)["certbot"]["image"].startswith("certbot/dns-route53:")
    else:
        assert "--standalone" in argv and argv[argv.index("--http-01-port") + 1] == "80"


def test_acme_state_is_on_encrypted_efs_with_transit_encryption(mode):
    _, graph = mode
    td = graph.one("aws:ecs/taskDefinition:TaskDefinition")
    volumes = {v["name"]: v for v in unwrap(td.inputs["volumes"])}
    efs = volumes["letsencrypt"]["efsVolumeConfiguration"]
    assert efs["transitEncryption"] == "ENABLED"
    assert efs["authorizationConfig"]["iam"] == "ENABLED"
    assert "rootDirectory" not in efs
    access_point = graph.one("aws:efs/accessPoint:AccessPoint")
    assert efs["authorizationConfig"]["accessPointId"] == access_point.id
    assert volumes["certificates"] == {"name": "certificates"}, "a task scratch volume"
    file_system = graph.one("aws:efs/fileSystem:FileSystem")
    assert file_system.inputs["encrypted"] is True
    policy = json.loads(graph.one("aws:efs/fileSystemPolicy:FileSystemPolicy").inputs["policy"])
    deny = next(s for s in policy["Statement"] if s["Effect"] == "Deny")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    allow = next(s for s in policy["Statement"] if s["Effect"] == "Allow")
    assert allow["Principal"] == {
        "AWS": graph.one("aws:iam/role:Role", "nlb-certbot-task").outputs["arn"]
    }
    assert allow["Condition"]["StringEquals"] == {
        "elasticfilesystem:AccessPointArn": access_point.outputs["arn"]
    }
    assert "elasticfilesystem:ClientRootAccess" in allow["Action"]
    private = {
        s.id
        for s in graph.of_type("aws:ec2/subnet:Subnet")
        if s.inputs["tags"]["tier"] == "private"
    }
    targets = graph.of_type("aws:efs/mountTarget:MountTarget")
    assert {t.inputs["subnetId"] for t in targets} == private
    c = containers(graph)
    assert {m["sourceVolume"] for m in c["certbot"]["mountPoints"]} == {"letsencrypt"}
    copier_mounts = {m["sourceVolume"]: m["readOnly"] for m in c["copier"]["mountPoints"]}
    assert copier_mounts == {"letsencrypt": True, "certificates": False}
    assert c["app"]["mountPoints"] == [
        {"sourceVolume": "certificates", "containerPath": "/ssl", "readOnly": True}
    ]


def test_efs_accepts_nfs_from_the_tasks_only(mode):
    _, graph = mode
    efs_sg = graph.one("aws:ec2/securityGroup:SecurityGroup", "nlb-certbot-letsencrypt")
    tasks_sg = graph.one("aws:ec2/securityGroup:SecurityGroup", "nlb-certbot-tasks")
    rules = [
        r
        for r in graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs["securityGroupId"] == efs_sg.id
    ]
    assert [(r.inputs["fromPort"], r.inputs["referencedSecurityGroupId"]) for r in rules] == [
        (2049, tasks_sg.id)
    ]


def test_nlb_passes_tcp_through_with_tcp_health_checks(mode):
    kind, graph = mode
    lb = graph.one("aws:lb/loadBalancer:LoadBalancer")
    assert lb.inputs["loadBalancerType"] == "network"
    assert lb.inputs["enableCrossZoneLoadBalancing"] is True
    assert lb.inputs["securityGroups"]
    listeners = graph.of_type("aws:lb/listener:Listener")
    assert all(lst.inputs["protocol"] == "TCP" for lst in listeners), "no TLS termination"
    assert not any("certificateArn" in lst.inputs for lst in listeners)
    ports = sorted(lst.inputs["port"] for lst in listeners)
    assert ports == ([7473, 7687] if kind == "dns-01" else [80, 7473, 7687])
    for group in graph.of_type("aws:lb/targetGroup:TargetGroup"):
        assert group.inputs["protocol"] == "TCP"
        assert group.inputs["healthCheck"]["protocol"] == "TCP"
        assert group.inputs["targetType"] == ("ip" if kind == "dns-01" else "instance")


def test_route53_permissions_are_scoped_to_the_zone():
    graph = run_program(DNS01)
    policy = graph.one("aws:iam/rolePolicy:RolePolicy", "nlb-certbot-route53")
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    assert statements["ChangeTxtRecords"]["Resource"] == [f"arn:aws:route53:::hostedzone/{ZONE}"]
    assert statements["ChangeTxtRecords"]["Action"] == ["route53:ChangeResourceRecordSets"]
    assert statements["WaitForChange"]["Action"] == ["route53:GetChange"]
    assert statements["FindZone"]["Resource"] == ["*"]
    role = graph.one("aws:iam/role:Role", "nlb-certbot-task")
    assert policy.inputs["role"] == role.id
    td = graph.one("aws:ecs/taskDefinition:TaskDefinition")
    assert td.inputs["taskRoleArn"] == role.outputs["arn"]


def test_http01_has_no_route53_permission():
    graph = run_program(HTTP01)
    assert not graph.of_type("aws:iam/rolePolicy:RolePolicy", "nlb-certbot-route53")


def test_http01_port_80_is_health_checked_on_the_responder_and_registered_by_the_asg():
    graph = run_program(HTTP01)
    groups = {g.inputs["port"]: g for g in graph.of_type("aws:lb/targetGroup:TargetGroup")}
    assert groups[80].inputs["healthCheck"]["port"] == "8081"
    assert groups[7687].inputs["healthCheck"]["port"] == "traffic-port"
    asg = graph.one("aws:autoscaling/group:Group")
    assert sorted(asg.inputs["targetGroupArns"]) == sorted(
        g.outputs["arn"] for g in groups.values()
    )
    template = graph.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs["metadataOptions"]["httpTokens"] == "required"
    assert template.inputs["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"
    user_data = base64.b64decode(template.inputs["userData"]).decode()
    assert "ECS_CLUSTER=ecs-tls-dev" in user_data
    assert "http.server 8081" in user_data
    td = graph.one("aws:ecs/taskDefinition:TaskDefinition")
    assert td.inputs["networkMode"] == "host"
    assert td.inputs["requiresCompatibilities"] == ["EC2"]
    service = graph.one("aws:ecs/service:Service")
    assert service.inputs["launchType"] == "EC2"
    assert service.inputs["deploymentMinimumHealthyPercent"] == 0
    assert graph.depends_on(service, asg)
    assert containers(graph)["certbot"]["portMappings"][0]["containerPort"] == 80


def test_user_data_is_valid_bash():
    bash = require_binary("bash", "apt-get install bash")
    script = instance_user_data("ecs-tls-dev", 8081)
    result = subprocess.run([bash, "-n"], input=script, text=True, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr


def test_dns01_runs_on_fargate_in_private_subnets():
    graph = run_program(DNS01)
    service = graph.one("aws:ecs/service:Service")
    assert service.inputs["launchType"] == "FARGATE"
    assert service.inputs["networkConfiguration"]["assignPublicIp"] is False
    ports = sorted(lb["containerPort"] for lb in service.inputs["loadBalancers"])
    assert ports == [7473, 7687]
    assert service.inputs["healthCheckGracePeriodSeconds"] >= 300
    for needed in graph.of_type("aws:efs/mountTarget:MountTarget"):
        assert graph.depends_on(service, needed)
    for listener in graph.of_type("aws:lb/listener:Listener"):
        assert graph.depends_on(service, listener)


def test_neo4j_requires_tls_and_gets_its_password_from_secrets(mode):
    _, graph = mode
    app = containers(graph)["app"]
    env = {e["name"]: e["value"] for e in app["environment"]}
    assert env["NEO4J_server_bolt_tls__level"] == "REQUIRED"
    assert env["NEO4J_server_https_enabled"] == "true"
    assert env["NEO4J_server_http_enabled"] == "false"
    for scope in ("bolt", "https"):
        assert env[f"NEO4J_dbms_ssl_policy_{scope}_enabled"] == "true"
        assert env[f"NEO4J_dbms_ssl_policy_{scope}_base__directory"] == f"/ssl/{scope}"
        assert env[f"NEO4J_dbms_ssl_policy_{scope}_private__key"] == "private.key"
        assert env[f"NEO4J_dbms_ssl_policy_{scope}_public__certificate"] == "public.crt"
    assert "NEO4J_AUTH" not in env
    secret = graph.one("aws:secretsmanager/secret:Secret")
    assert app["secrets"] == [{"name": "NEO4J_AUTH", "valueFrom": secret.outputs["arn"]}]
    version = graph.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert is_secret(version.inputs["secretString"])
    assert unwrap(version.inputs["secretString"]).startswith("neo4j/")
    text = unwrap(graph.one("aws:ecs/taskDefinition:TaskDefinition").inputs["containerDefinitions"])
    assert "mock-password" not in text


def test_copier_writes_the_configured_layout():
    graph = run_program(
        {
            **DNS01,
            "app": {
                "image": "ghcr.io/acme/tls-app:1",
                "ports": [8443],
                "certificateLayout": {
                    "directory": "/certs",
                    "scopes": ["main"],
                    "certificateFile": "tls.crt",
                    "privateKeyFile": "tls.key",
                    "owner": "1000:1000",
                },
            },
        }
    )
    copier = containers(graph)["copier"]
    env = {e["name"]: e["value"] for e in copier["environment"]}
    assert env == {
        "SOURCE_DIR": "/etc/letsencrypt/live/db.example.com",
        "TARGET_DIR": "/certs",
        "SCOPES": "main",
        "CERT_FILE": "tls.crt",
        "KEY_FILE": "tls.key",
        "OWNER": "1000:1000",
    }
    assert [lst.inputs["port"] for lst in graph.of_type("aws:lb/listener:Listener")] == [8443]


def test_renewal_schedule_restarts_the_service(mode):
    _, graph = mode
    schedule = graph.one("aws:scheduler/schedule:Schedule")
    assert schedule.inputs["scheduleExpression"] == "rate(7 days)"
    target = schedule.inputs["target"]
    assert target["arn"] == "arn:aws:scheduler:::aws-sdk:ecs:updateService"
    service = graph.one("aws:ecs/service:Service")
    body = json.loads(target["input"])
    assert body["ForceNewDeployment"] is True
    assert body["Service"] == service.outputs["name"]
    policy = graph.one("aws:iam/rolePolicy:RolePolicy", "nlb-certbot-renewal")
    (statement,) = json.loads(policy.inputs["policy"])["Statement"]
    assert statement["Action"] == ["ecs:UpdateService"]
    assert statement["Resource"] == [service.id]


@pytest.mark.parametrize(("lifetime", "days"), [(90, 15), (64, 10), (45, 7), (6, 1)])
def test_renewal_interval_follows_the_lifetime(lifetime, days):
    assert renewal_interval_days(lifetime) == days
    assert days * 2 <= lifetime // 3 + 1, "two chances inside certbot's renewal window"


def test_profile_and_interval_reach_the_task_and_schedule(program):
    graph = program({**DNS01, "acme": {"email": "ops@example.com", "profile": "shortlived"}})
    assert graph.one("aws:scheduler/schedule:Schedule").inputs["scheduleExpression"] == (
        "rate(1 days)"
    )
    argv = containers(graph)["certbot"]["command"]
    assert argv[argv.index("--preferred-profile") + 1] == "shortlived"


def test_outputs(mode):
    kind, graph = mode
    out = graph.stack_outputs
    assert out["endpoint"] == "https://db.example.com:7473 bolt+s://db.example.com:7687"
    assert out["nlbDnsName"] == graph.one("aws:lb/loadBalancer:LoadBalancer").outputs["dnsName"]
    assert out["efsFileSystemId"] == graph.one("aws:efs/fileSystem:FileSystem").id
    assert out["acmeDirectory"].startswith("https://acme-staging-v02")
    assert out["verifyCommand"].startswith("openssl s_client -connect db.example.com:7687")
    record = graph.of_type("aws:route53/record:Record")
    assert len(record) == (1 if kind == "dns-01" else 0)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {**DNS01, "acme": {"email": "ops@example.com", "renewEveryDays": 20}},
            "ecs-tls:acme.renewEveryDays: 20 is not short enough: certbot renews in the last 15 "
            "days of a 45-day certificate",
        ),
        (
            {**DNS01, "acme": {"email": "ops@example.com", "profile": "forever"}},
            "ecs-tls:acme.profile: 'forever' is not one of: classic, tlsserver, shortlived",
        ),
        (
            {**DNS01, "app": {"ports": [80, 7687]}},
            "ecs-tls:app.ports: [80, 7687] is not distinct ports other than 80 (ACME HTTP-01)",
        ),
        (
            {**DNS01, "app": {"certificateLayout": {"keyFile": "k"}}},
            "ecs-tls:app.certificateLayout.keyFile: is not a known key; did you mean "
            "'privateKeyFile'?",
        ),
        (
            {**MINIMAL_CONFIG["alb-envoy"], "app": {"ports": [8443]}},
            "ecs-tls:app.ports: applies only to topology 'nlb-certbot', not 'alb-envoy'",
        ),
    ],
)
def test_bad_nlb_certbot_config(config, message):
    assert config_error(config) == message

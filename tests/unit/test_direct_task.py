"""Topology `direct-task` under mocks: every config branch and bad-config error."""

from __future__ import annotations

import json

import pytest

from components.certificates import CHAIN_KEY, PRIVATE_KEY_KEY
from components.sidecar_task import (
    ENVOY_UID,
    REFRESHER,
    TLS_DIR,
    TLS_VOLUME,
    refresh_program,
    sds_files,
)
from scripts.mock_runtime import config_error, is_secret, unwrap
from settings import ACME_DIRECTORIES
from task_contents.certbot import CertbotSpec, certbot_args, s3_state_renewal_command
from task_contents.envoy import EnvoyProxySpec, envoy_args
from tests.conftest import MINIMAL_CONFIG
from tests.iam_conditions import allowed
from topologies.direct_task import STATE_KEY, TASK_METADATA_PATH

BASE = MINIMAL_CONFIG["direct-task"]
DOMAIN = BASE["domain"]
ZONE = BASE["hostedZoneId"]
FAMILY = "ecs-tls-dev-direct-task"
RENEWAL_FAMILY = "ecs-tls-dev-direct-task-renewal"


@pytest.fixture
def graph(program):
    return program(BASE)


def containers(graph, name: str) -> dict[str, dict]:
    task = graph.one("aws:ecs/taskDefinition:TaskDefinition", name)
    return {c["name"]: c for c in json.loads(unwrap(task.inputs["containerDefinitions"]))}


def policy(graph, name: str) -> dict:
    return json.loads(graph.one("aws:iam/rolePolicy:RolePolicy", name).inputs["policy"])


def statement(document: dict, sid: str) -> dict:
    (found,) = [s for s in document["Statement"] if s["Sid"] == sid]
    return found


def test_every_resource_sits_under_the_component(graph):
    (component,) = graph.of_type("ecs-tls:direct_task:DirectTask")
    mine = graph.descendants(component)
    assert len(mine) > 40
    for r in mine:
        if not r.custom:
            assert r.type.startswith("ecs-tls:"), r
    foundation = {
        "ecs-tls:network:Network",
        "ecs-tls:cluster:Cluster",
        "ecs-tls:alerts:Alerts",
        "ecs-tls:dns:DomainCaa",  # the domain's CAA record, one whatever the topology
    }
    for r in graph:
        if r in mine or r is component:
            continue
        assert graph.ancestors(r) == [] or graph.ancestors(r)[-1].type in foundation, r
    assert graph.of_type("aws:lb/loadBalancer:LoadBalancer") == []


def test_service_runs_public_tasks_without_a_load_balancer(graph):
    service = graph.one("aws:ecs/service:Service")
    network = service.inputs["networkConfiguration"]
    assert network["assignPublicIp"] is True
    public = {
        s.outputs.get("id") or s.id
        for s in graph.of_type("aws:ec2/subnet:Subnet")
        if s.inputs["tags"]["tier"] == "public"
    }
    assert set(network["subnets"]) == public
    assert not service.inputs.get("loadBalancers")
    assert service.inputs["desiredCount"] == 1
    assert graph.depends_on(service, graph.one("aws:secretsmanager/secretVersion:SecretVersion"))


def test_only_envoys_port_is_open_and_only_to_allowed_cidrs(program):
    cidrs = ["203.0.113.0/24", "198.51.100.0/24"]
    graph = program({**BASE, "allowedCidrs": cidrs, "envoy": {"port": 9443}})
    rules = graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert sorted(r.inputs["cidrIpv4"] for r in rules) == sorted(cidrs)
    assert {(r.inputs["fromPort"], r.inputs["toPort"]) for r in rules} == {(9443, 9443)}
    envoy = containers(graph, "direct-task")["envoy"]
    assert envoy["portMappings"] == [
        {"containerPort": 9443, "hostPort": 9443, "name": "https", "protocol": "tcp"}
    ]
    assert graph.stack_outputs["endpoint"] == f"https://<taskId>.{DOMAIN}:9443"


def test_the_task_runs_the_alb_envoy_sidecar_with_its_certificate_from_sds_files(graph):
    task = containers(graph, "direct-task")
    envoy, app, refresher = task["envoy"], task["app"], task[REFRESHER]
    # The alb-envoy sidecar, except that no X-Forwarded-For hop is trusted (no proxy in front)
    # and the certificate comes from the refresher's SDS files, not from variables.
    expected = EnvoyProxySpec(
        app_port=80, listener_port=8443, trusted_proxy_hops=0, sds=sds_files()
    )
    assert envoy["command"] == envoy_args(expected)
    assert "secrets" not in envoy, "ECS injects nothing: a renewal replaces no task"
    assert "portMappings" not in app, "the app is reached on the loopback only"
    # Envoy starts once the refresher has written the first files, and reads them only.
    assert {"containerName": REFRESHER, "condition": "HEALTHY"} in envoy["dependsOn"]
    assert envoy["mountPoints"] == [
        {"sourceVolume": TLS_VOLUME, "containerPath": TLS_DIR, "readOnly": True}
    ]
    assert refresher["mountPoints"] == [
        {"sourceVolume": TLS_VOLUME, "containerPath": TLS_DIR, "readOnly": False}
    ]
    definition = graph.one("aws:ecs/taskDefinition:TaskDefinition", "direct-task")
    assert definition.inputs["volumes"] == [{"name": TLS_VOLUME}], "task storage, no host path"
    # The key file goes to the uid Envoy's image runs as.
    env = {e["name"]: e["value"] for e in envoy["environment"]}
    assert env["ENVOY_UID"] == str(ENVOY_UID)
    refresh_env = {e["name"]: e["value"] for e in refresher["environment"]}
    assert refresh_env["FILE_OWNER"] == f"{ENVOY_UID}:{ENVOY_UID}"
    assert refresher["entryPoint"] == ["python3", "-c"]
    assert refresher["command"] == [refresh_program(), "run"]
    assert refresher["image"].startswith("certbot/dns-route53:")
    assert refresher["essential"] is True


def test_only_the_task_role_reads_the_secret_and_only_that_secret(graph):
    secret = graph.one("aws:secretsmanager/secret:Secret").outputs["arn"]
    definition = graph.one("aws:ecs/taskDefinition:TaskDefinition", "direct-task")
    role = graph.one("aws:iam/role:Role", "direct-task-task")
    assert definition.inputs["taskRoleArn"] == role.outputs["arn"]
    read = policy(graph, "direct-task-read-certificate")
    assert read["Statement"] == [
        {
            "Sid": "ReadCertificate",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": [secret],
        }
    ]
    refresher = containers(graph, "direct-task")[REFRESHER]
    env = {e["name"]: e["value"] for e in refresher["environment"]}
    assert env["CERT_SECRET_ARN"] == secret
    # The execution role no longer reads it: nothing is injected at start.
    execution = graph.one("aws:iam/role:Role", "cluster-execution")
    for r in graph.of_type("aws:iam/rolePolicy:RolePolicy"):
        if r.inputs["role"] == execution.id:
            assert secret not in r.inputs["policy"], r


def test_the_secret_starts_with_a_placeholder_marked_secret(graph):
    version = graph.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert is_secret(version.inputs["secretString"])
    document = json.loads(unwrap(version.inputs["secretString"]))
    assert set(document) == {CHAIN_KEY, PRIVATE_KEY_KEY}
    request = graph.one("tls:index/certRequest:CertRequest")
    assert request.inputs["dnsNames"] == [f"*.{DOMAIN}"]


def test_task_dns_function_event_rule_and_reconciler(graph):
    function = graph.one("aws:lambda/function:Function")
    assert function.inputs["handler"] == "task_dns.handler"
    cluster_arn = graph.one("aws:ecs/cluster:Cluster").outputs["arn"]
    assert function.inputs["environment"]["variables"] == {
        "HOSTED_ZONE_ID": ZONE,
        "DOMAIN": DOMAIN,
        "CLUSTER_ARN": cluster_arn,
        "TASK_FAMILY": FAMILY,
    }
    pattern = json.loads(
        graph.one("aws:cloudwatch/eventRule:EventRule", "direct-task-task-state").inputs[
            "eventPattern"
        ]
    )
    assert pattern["detail-type"] == ["ECS Task State Change"]
    assert pattern["detail"]["clusterArn"] == [cluster_arn]
    # Matched on the task definition, so RunTask tasks (group family:...) are named too.
    assert pattern["detail"]["taskDefinitionArn"] == [
        {"prefix": f"arn:aws:ecs:eu-west-1:123456789012:task-definition/{FAMILY}:"}
    ]
    reconcile = graph.one("aws:cloudwatch/eventRule:EventRule", "direct-task-reconcile")
    assert reconcile.inputs["scheduleExpression"] == "rate(5 minutes)"
    target = graph.one("aws:cloudwatch/eventTarget:EventTarget", "direct-task-reconcile")
    assert json.loads(target.inputs["input"]) == {"reconcile": True}
    for name in ("direct-task-task-state", "direct-task-reconcile"):
        permission = graph.one("aws:lambda/permission:Permission", name)
        rule = graph.one("aws:cloudwatch/eventRule:EventRule", name)
        assert permission.inputs["principal"] == "events.amazonaws.com"
        assert permission.inputs["sourceArn"] == rule.outputs["arn"]


TASK_ID = "0123456789abcdef0123456789abcdef"


def change_allowed(document: dict, names: list[str], types=("A",), actions=("UPSERT",)) -> bool:
    """Would Route53 let this role change these names? (normalized: lower case, no final dot)"""
    return allowed(
        document,
        "route53:ChangeResourceRecordSets",
        f"arn:aws:route53:::hostedzone/{ZONE}",
        {
            "route53:ChangeResourceRecordSetsNormalizedRecordNames": names,
            "route53:ChangeResourceRecordSetsRecordTypes": list(types),
            "route53:ChangeResourceRecordSetsActions": list(actions),
        },
    )


def test_task_dns_role_may_change_only_task_names(graph):
    document = policy(graph, "direct-task-dns")
    task_name = f"{TASK_ID}.{DOMAIN}"
    assert change_allowed(document, [task_name], types=("A", "TXT"))
    assert change_allowed(document, [task_name], types=("TXT",), actions=("DELETE",))
    refused = [
        f"_acme-challenge.{DOMAIN}",  # a certificate for the parent name
        f"\\052.{DOMAIN}",  # the wildcard, as Route53 normalizes it
        f"www.{DOMAIN}",
        DOMAIN,
        f"_acme-challenge.{TASK_ID[:16]}.{DOMAIN}",  # 32 characters, two labels
        f"_acme-challenge-{TASK_ID[:16]}.{DOMAIN}",  # 32 characters with an underscore
        f"{TASK_ID}.{TASK_ID}.{DOMAIN}",
        f"{TASK_ID}.other.example",
    ]
    for name in refused:
        assert not change_allowed(document, [name]), name
        assert not change_allowed(document, [task_name, name]), name
    assert not change_allowed(document, [task_name], types=("CNAME",))
    assert not change_allowed(document, [task_name], types=("A", "CAA"))
    assert not change_allowed(document, [task_name], actions=("CREATE",))


def test_task_dns_role_is_scoped_to_the_zone_names_and_cluster(graph):
    document = policy(graph, "direct-task-dns")
    change = statement(document, "ChangeTaskRecords")
    assert change["Resource"] == [f"arn:aws:route53:::hostedzone/{ZONE}"]
    assert change["Condition"]["ForAllValues:StringEquals"][
        "route53:ChangeResourceRecordSetsRecordTypes"
    ] == ["A", "TXT"]
    cluster_arn = graph.one("aws:ecs/cluster:Cluster").outputs["arn"]
    for sid in ("ListClusterTasks", "DescribeClusterTasks"):
        assert statement(document, sid)["Condition"] == {"ArnEquals": {"ecs:cluster": cluster_arn}}
    assert statement(document, "DescribeClusterTasks")["Resource"] == [
        "arn:aws:ecs:eu-west-1:123456789012:task/ecs-tls-dev/*"
    ]


def test_state_bucket_is_versioned_encrypted_private_and_tls_only(graph):
    assert (
        graph.one("aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"][
            "status"
        ]
        == "Enabled"
    )
    block = graph.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[k]
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    document = json.loads(graph.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    assert statement(document, "DenyWithoutTls")["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }


def test_state_is_encrypted_with_its_own_key_used_only_by_the_renewal_role(graph):
    key = graph.one("aws:kms/key:Key", "direct-task-acme-state-key")
    role_arn = graph.one("aws:iam/role:Role", "direct-task-renewal-task").outputs["arn"]
    bucket_arn = graph.one("aws:s3/bucket:Bucket").outputs["arn"]
    assert key.inputs["enableKeyRotation"] is True
    assert key.inputs["deletionWindowInDays"] == 30
    alias = graph.one("aws:kms/alias:Alias", "direct-task-acme-state-key")
    assert alias.inputs["name"] == "alias/ecs-tls-dev-direct-task-acme-state"
    assert alias.inputs["targetKeyId"] == key.outputs["arn"]

    (rule,) = graph.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": key.outputs["arn"],
    }
    assert rule["bucketKeyEnabled"] is True

    policy = json.loads(key.inputs["policy"])
    use = statement(policy, "StateRolesUseKeyThroughS3")
    assert use["Principal"] == {"AWS": [role_arn]}
    assert use["Condition"]["StringEquals"] == {
        "kms:ViaService": "s3.eu-west-1.amazonaws.com",
        "kms:EncryptionContext:aws:s3:arn": bucket_arn,
    }
    admin = statement(policy, "AccountAdministersKey")
    assert admin["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert not any(a in admin["Action"] for a in ("kms:*", "kms:Decrypt", "kms:CreateGrant"))

    bucket_policy = json.loads(graph.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    reads = statement(bucket_policy, "DenyReadsByOthers")
    assert reads["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": [role_arn]}}
    other_key = statement(bucket_policy, "DenyUploadsWithAnotherKey")["Condition"]
    assert other_key["StringNotEquals"] == {
        "s3:x-amz-server-side-encryption-aws-kms-key-id": key.outputs["arn"]
    }

    # The renewal task names the key in its uploads; the schedule waits for key and policy.
    (certbot,) = containers(graph, "direct-task-renewal").values()
    env = {e["name"]: e["value"] for e in certbot["environment"]}
    assert env["STATE_KMS_KEY_ARN"] == key.outputs["arn"]
    schedule = hourly(graph)
    assert graph.depends_on(schedule, key)
    assert graph.depends_on(schedule, graph.one("aws:s3/bucketPolicy:BucketPolicy"))


def test_renewal_task_runs_the_projects_certbot_command_on_s3_state(graph):
    (certbot,) = containers(graph, "direct-task-renewal").values()
    spec = CertbotSpec(
        email="ops@example.com",
        domain=DOMAIN,
        directory_url=ACME_DIRECTORIES["staging"],
        wildcard=True,
    )
    assert certbot["image"].startswith("certbot/dns-route53:")
    assert certbot["entryPoint"] == ["sh", "-c"]
    assert certbot["command"] == s3_state_renewal_command(spec)
    assert f"*.{DOMAIN}" in certbot["command"]
    env = {e["name"]: e["value"] for e in certbot["environment"]}
    bucket = graph.one("aws:s3/bucket:Bucket").outputs["bucket"]
    assert env["STATE_BUCKET"] == bucket and env["STATE_KEY"] == STATE_KEY
    assert env["CERT_SECRET_ARN"] == graph.one("aws:secretsmanager/secret:Secret").outputs["arn"]
    assert "ECS_SERVICE" not in env and "ECS_CLUSTER" not in env, "the renewal restarts nothing"
    assert env["CERT_NAMES"] == f"*.{DOMAIN}"
    assert env["PLACEHOLDER_ISSUER"] == "ecs-tls placeholder"
    assert env["ALERTS_TOPIC_ARN"] == graph.one("aws:sns/topic:Topic").outputs["arn"]
    publish = policy(graph, "direct-task-renewal-publish")
    assert statement(publish, "ReadWriteState")["Resource"] == [
        f"arn:aws:s3:::{bucket}/{STATE_KEY}"
    ]
    dns01 = policy(graph, "direct-task-renewal-route53")
    names = statement(dns01, "ChangeChallengeRecord")["Condition"]["ForAllValues:StringEquals"]
    assert names["route53:ChangeResourceRecordSetsNormalizedRecordNames"] == [
        f"_acme-challenge.{DOMAIN}"
    ]


def test_one_renewal_schedule_runs_at_once_then_hourly(program):
    for config in (BASE, {**BASE, "acme": {"email": "ops@example.com", "profile": "shortlived"}}):
        graph = program(config)
        (schedule,) = graph.of_type("aws:scheduler/schedule:Schedule")
        assert schedule is hourly(graph)
        assert schedule.inputs["scheduleExpression"] == "rate(1 hour)"
        assert "startDate" not in schedule.inputs, "no start date: the first run is at creation"
        network = schedule.inputs["target"]["ecsParameters"]["networkConfiguration"]
        assert network["assignPublicIp"] is True
        # Nothing to redeploy: the first run needs no service.
        assert not graph.depends_on(schedule, graph.one("aws:ecs/service:Service"))


def test_renew_every_days_is_refused_where_runs_are_hourly(program):
    with pytest.raises(Exception, match=r"acme\.renewEveryDays: applies only to topology"):
        program({**BASE, "acme": {**BASE["acme"], "renewEveryDays": 3}})


def hourly(graph):
    (found,) = [
        r
        for r in graph.of_type("aws:scheduler/schedule:Schedule")
        if r.name.startswith("direct-task-renewal-hourly-")
    ]
    return found


def test_an_hourly_run_retries_a_failed_issuance_within_the_hour(graph):
    schedule = hourly(graph)
    renewal = graph.one("aws:ecs/taskDefinition:TaskDefinition", "direct-task-renewal")
    assert schedule.inputs["scheduleExpression"] == "rate(1 hour)"
    assert "startDate" not in schedule.inputs
    assert schedule.inputs["flexibleTimeWindow"] == {"mode": "OFF"}
    ecs = schedule.inputs["target"]["ecsParameters"]
    assert ecs["taskDefinitionArn"] == renewal.outputs["arn"]
    assert ecs["networkConfiguration"]["assignPublicIp"] is True
    role = graph.one("aws:iam/role:Role", schedule.name)
    assert schedule.inputs["target"]["roleArn"] == role.outputs["arn"]
    document = policy(graph, schedule.name)
    assert statement(document, "RunRenewalTask")["Resource"] == [renewal.outputs["arn"]]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert [t["Principal"] for t in trust["Statement"]] == [{"Service": "scheduler.amazonaws.com"}]


def test_a_new_acme_server_makes_a_new_hourly_schedule_that_runs_at_once(program):
    staging = hourly(program(BASE))
    production = hourly(program({**BASE, "acme": {**BASE["acme"], "server": "production"}}))
    again = hourly(program(BASE))
    # Another URN: Pulumi creates the schedule anew, and Scheduler runs a new rate schedule
    # without a start date right away.
    assert staging.name != production.name
    assert staging.name == again.name, "stable while the server is"


def test_every_run_reports_days_to_expiry_and_an_alarm_watches_it(graph):
    publish = policy(graph, "direct-task-renewal-publish")
    report = statement(publish, "ReportExpiry")
    assert report["Action"] == ["cloudwatch:PutMetricData"]
    assert report["Condition"] == {"StringEquals": {"cloudwatch:namespace": "ECS-TLS"}}
    assert not [s for s in publish["Statement"] if "ecs:UpdateService" in s["Action"]]
    alarm = graph.one("aws:cloudwatch/metricAlarm:MetricAlarm", "direct-task-certificate-expiry")
    assert alarm.inputs["namespace"] == "ECS-TLS"
    assert alarm.inputs["metricName"] == "DaysToExpiry"
    assert alarm.inputs["dimensions"] == {"Certificate": f"*.{DOMAIN}"}
    # 45-day certificates renew with 15 days left; hourly runs, so 13 means two failed days.
    assert alarm.inputs["threshold"] == 13
    assert alarm.inputs["alarmActions"] == [graph.one("aws:sns/topic:Topic").outputs["arn"]]


def test_renewal_failures_reach_the_alerts_topic(program):
    # The e-mail subscription is the foundation's now: tests/unit/test_alerts.py.
    graph = program(BASE)
    failed = graph.one("aws:cloudwatch/eventRule:EventRule", "direct-task-renewal-failed")
    assert f"family:{RENEWAL_FAMILY}" in failed.inputs["eventPattern"]


def test_branches_scale_to_zero_production_and_no_nat(program):
    graph = program(
        {
            **BASE,
            "app": {"desiredCount": 0},
            "acme": {"email": "ops@example.com", "server": "production"},
            "network": {"natGateways": 0},
        }
    )
    assert graph.one("aws:ecs/service:Service").inputs["desiredCount"] == 0
    assert graph.of_type("aws:ec2/natGateway:NatGateway") == []
    (certbot,) = containers(graph, "direct-task-renewal").values()
    assert ACME_DIRECTORIES["production"] in certbot["command"]


def test_outputs_tell_how_to_find_and_verify_a_task(graph):
    out = graph.stack_outputs
    assert out["topology"] == "direct-task"
    assert out["endpoint"] == f"https://<taskId>.{DOMAIN}:8443"
    assert TASK_METADATA_PATH in out["taskMetadataPath"]
    assert f"--family {FAMILY}" in out["listTaskHostnames"]
    assert (
        "openssl s_client" in out["verifyCommand"]
        and "-servername $TASK." in (out["verifyCommand"])
    )
    for key in ("certificateSecretArn", "acmeStateBucket", "alertsTopicArn", "renewalSchedule"):
        assert out[key], key


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {k: v for k, v in BASE.items() if k != "acme"},
            "ecs-tls:acme.email: missing; required by topology 'direct-task'",
        ),
        (
            {**BASE, "alertsEmail": "not-an-address"},
            "ecs-tls:alertsEmail: 'not-an-address' is not an e-mail address",
        ),
        ({**BASE, "envoy": {"port": 443}}, "ecs-tls:envoy.port: 443"),
        (
            {**BASE, "app": {"port": 8443}},
            "ecs-tls:envoy.port: 8443 is not free: app.port is also 8443",
        ),
        ({**BASE, "sslPolicy": "x"}, "ecs-tls:sslPolicy: applies to alb-envoy"),
        ({**BASE, "ingress": "nlb"}, "ecs-tls:ingress: applies only to topology"),
    ],
    ids=["no-email", "bad-alerts-email", "privileged-envoy-port", "port-clash", "ssl", "ingress"],
)
def test_bad_configuration_fails_before_any_resource(config, message):
    assert config_error(config).startswith(message)


def test_the_wildcard_certbot_request():
    spec = CertbotSpec(
        email="ops@example.com", domain=DOMAIN, directory_url=ACME_DIRECTORIES["staging"]
    )
    plain = certbot_args(spec)
    from dataclasses import replace

    wildcard = certbot_args(replace(spec, wildcard=True))
    assert plain[plain.index("-d") + 1] == DOMAIN  # nlb-certbot's request is unchanged
    assert wildcard[wildcard.index("-d") + 1] == f"*.{DOMAIN}"
    assert wildcard[wildcard.index("--cert-name") + 1] == plain[plain.index("--cert-name") + 1]
    with pytest.raises(ValueError, match="challenge: 'http-01' is not dns-01"):
        certbot_args(replace(spec, wildcard=True, challenge="http-01"))


def test_envoy_trusts_no_forwarded_for_hop_without_a_proxy_in_front():
    """alb-envoy trusts the ALB's X-Forwarded-For entry; a task reached directly trusts none,
    so a client cannot choose the address the app sees."""
    import json

    from scripts.mock_runtime import run_program, unwrap

    def hops(topology):
        graph = run_program(MINIMAL_CONFIG[topology])
        td = next(
            t
            for t in graph.of_type("aws:ecs/taskDefinition:TaskDefinition")
            if "envoy" in unwrap(t.inputs["containerDefinitions"])
        )
        envoy = next(
            c for c in json.loads(unwrap(td.inputs["containerDefinitions"])) if c["name"] == "envoy"
        )
        bootstrap = json.loads(envoy["command"][envoy["command"].index("--config-yaml") + 1])
        (chain,) = bootstrap["static_resources"]["listeners"][0]["filter_chains"]
        return chain["filters"][0]["typed_config"]["xff_num_trusted_hops"]

    assert hops("alb-envoy") == 1
    assert hops("direct-task") == 0


# --------------------------------------------------------------------------- day 2


def test_destroy_deletes_the_service_then_purges_then_the_function(graph):
    """Pulumi deletes a resource before what it depends on: the service goes first (ECS
    stops its tasks, whose STOPPED events still reach the function), then the rules'
    targets, then the purge invocation, and the function last."""
    service = graph.one("aws:ecs/service:Service")
    function = graph.one("aws:lambda/function:Function")
    purge = graph.one("aws:lambda/invocation:Invocation")
    machinery = [
        function,
        purge,
        *graph.of_type("aws:cloudwatch/eventRule:EventRule", "direct-task-task-state"),
        *graph.of_type("aws:cloudwatch/eventRule:EventRule", "direct-task-reconcile"),
        *graph.of_type("aws:cloudwatch/eventTarget:EventTarget", "direct-task-task-state"),
        *graph.of_type("aws:cloudwatch/eventTarget:EventTarget", "direct-task-reconcile"),
        *graph.of_type("aws:lambda/permission:Permission", "direct-task-task-state"),
        *graph.of_type("aws:lambda/permission:Permission", "direct-task-reconcile"),
    ]
    assert len(machinery) == 8
    for r in machinery:
        assert graph.depends_on(service, r), r
    for target in graph.of_type("aws:cloudwatch/eventTarget:EventTarget"):
        if target.name.startswith("direct-task-") and "renewal" not in target.name:
            assert graph.depends_on(target, purge), target
    # The purge runs with the function's rights in place, and before the function goes.
    assert purge.inputs["functionName"] == function.outputs["name"]
    assert graph.depends_on(purge, graph.one("aws:iam/rolePolicy:RolePolicy", "direct-task-dns"))
    assert purge.inputs["lifecycleScope"] == "CRUD"
    assert json.loads(purge.inputs["input"]) == {"purge": True}


def test_the_purge_input_reaches_the_purge_only_on_delete(graph, monkeypatch):
    from functions import task_dns

    purge = graph.one("aws:lambda/invocation:Invocation")
    called: list[str] = []
    monkeypatch.setattr(task_dns, "purge", lambda clients, cfg: called.append("purge") or {})
    monkeypatch.setenv("HOSTED_ZONE_ID", ZONE)
    monkeypatch.setenv("DOMAIN", DOMAIN)
    monkeypatch.setenv("CLUSTER_ARN", "arn:aws:ecs:eu-west-1:123456789012:cluster/ecs-tls-dev")
    for action in ("create", "update", "delete"):
        # What the provider sends with lifecycle scope CRUD: the input plus `tf`.
        event = {**json.loads(purge.inputs["input"]), "tf": {"action": action}}
        task_dns.handler(event, None, clients=object())
    assert called == ["purge"]


def ecs_event(last: str, desired: str, cluster_arn: str) -> dict:
    return {
        "source": "aws.ecs",
        "detail-type": "ECS Task State Change",
        "detail": {
            "clusterArn": cluster_arn,
            "taskDefinitionArn": f"arn:aws:ecs:eu-west-1:123456789012:task-definition/{FAMILY}:3",
            "lastStatus": last,
            "desiredStatus": desired,
        },
    }


def test_the_state_rule_passes_only_changes_that_move_a_name(graph):
    EventPattern = pytest.importorskip("moto.events.models").EventPattern
    rule = graph.one("aws:cloudwatch/eventRule:EventRule", "direct-task-task-state")
    pattern = EventPattern.load(rule.inputs["eventPattern"])
    cluster_arn = graph.one("aws:ecs/cluster:Cluster").outputs["arn"]
    passed = {
        (last, desired)
        for last, desired in [
            ("PROVISIONING", "RUNNING"),
            ("PENDING", "RUNNING"),
            ("ACTIVATING", "RUNNING"),
            ("RUNNING", "RUNNING"),
            ("RUNNING", "STOPPED"),
            ("DEACTIVATING", "STOPPED"),
            ("STOPPING", "STOPPED"),
            ("DEPROVISIONING", "STOPPED"),
            ("STOPPED", "STOPPED"),
            ("PENDING", "STOPPED"),
        ]
        if pattern.matches_event(ecs_event(last, desired, cluster_arn))
    }
    assert ("RUNNING", "RUNNING") in passed
    assert not {p for p in passed if p[1] == "RUNNING" and p[0] != "RUNNING"}
    assert {p for p in passed if p[1] == "STOPPED"} == {
        ("RUNNING", "STOPPED"),
        ("DEACTIVATING", "STOPPED"),
        ("STOPPING", "STOPPED"),
        ("DEPROVISIONING", "STOPPED"),
        ("STOPPED", "STOPPED"),
        ("PENDING", "STOPPED"),
    }
    other = ecs_event("RUNNING", "RUNNING", cluster_arn)
    other["detail"]["taskDefinitionArn"] = other["detail"]["taskDefinitionArn"].replace(
        FAMILY, RENEWAL_FAMILY
    )
    assert not pattern.matches_event(other)


def test_dns_function_errors_and_throttles_reach_the_alerts_topic(graph):
    function_name = graph.one("aws:lambda/function:Function").outputs["name"]
    topic = graph.one("aws:sns/topic:Topic").outputs["arn"]
    alarms = {
        a.inputs["metricName"]: a.inputs
        for a in graph.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.inputs["namespace"] == "AWS/Lambda"
    }
    assert set(alarms) == {"Errors", "Throttles"}
    for alarm in alarms.values():
        assert alarm["dimensions"] == {"FunctionName": function_name}
        assert alarm["alarmActions"] == [topic] and alarm["okActions"] == [topic]
        assert alarm["statistic"] == "Sum" and alarm["threshold"] == 1
        assert alarm["treatMissingData"] == "notBreaching"
        assert alarm["datapointsToAlarm"] == alarm["evaluationPeriods"]
    assert alarms["Errors"]["evaluationPeriods"] * alarms["Errors"]["period"] == 600
    assert alarms["Throttles"]["evaluationPeriods"] * alarms["Throttles"]["period"] == 900


def test_outputs_give_what_run_task_needs(graph):
    out = graph.stack_outputs
    task = graph.one("aws:ecs/taskDefinition:TaskDefinition", "direct-task")
    sg = graph.one("aws:ec2/securityGroup:SecurityGroup", "direct-task-tasks")
    public = [
        s.outputs.get("id") or s.id
        for s in graph.of_type("aws:ec2/subnet:Subnet")
        if s.inputs["tags"]["tier"] == "public"
    ]
    service = graph.one("aws:ecs/service:Service")
    assert out["taskDefinitionArn"] == task.outputs["arn"]
    assert out["taskSubnetIds"] == service.inputs["networkConfiguration"]["subnets"]
    assert sorted(out["taskSubnetIds"]) == sorted(public)
    assert out["taskSecurityGroupId"] == sg.id
    assert service.inputs["networkConfiguration"]["securityGroups"] == [sg.id]
    command = out["runTaskCommand"]
    assert command.startswith("aws ecs run-task --cluster ")
    assert f"--task-definition {task.outputs['arn']} " in command
    assert f"subnets=[{','.join(out['taskSubnetIds'])}]" in command
    assert f"securityGroups=[{sg.id}],assignPublicIp=ENABLED" in command


def test_outputs_give_the_command_that_renews_now(graph):
    out = graph.stack_outputs
    renewal = graph.one("aws:ecs/taskDefinition:TaskDefinition", "direct-task-renewal")
    sg = graph.one("aws:ec2/securityGroup:SecurityGroup", "direct-task-renewal")
    cluster = graph.one("aws:ecs/cluster:Cluster").outputs["arn"]
    assert out["renewNowCommand"] == (
        f"aws ecs run-task --cluster {cluster} --launch-type FARGATE "
        f"--task-definition {renewal.outputs['arn']} --network-configuration "
        f"'awsvpcConfiguration={{subnets=[{','.join(out['taskSubnetIds'])}],"
        f"securityGroups=[{sg.id}],assignPublicIp=ENABLED}}'"
    )

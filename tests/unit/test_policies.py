"""Rules every topology keeps, checked on every stack the project ships an example of.

These are the design's principles as assertions: TLS on every listener (except an HTTP
redirect or the ACME HTTP-01 port), explicit TLS policies, no task port open to the
internet, least-privilege IAM with a reason for each wildcard, encrypted storage.
"""

from __future__ import annotations

import json

import pytest

import topologies
from components.iam import TRUSTED_SERVICES, assume_role_policy
from components.lambda_function import vpc_statements
from components.renewal import ecs_service_arn, run_task_statements, schedule_group_arn
from scripts.mock_runtime import unwrap
from tests.conftest import MINIMAL_CONFIG

CASES = {
    **{t: c for t, c in MINIMAL_CONFIG.items()},
    "service-connect-nlb": {**MINIMAL_CONFIG["service-connect"], "ingress": "nlb"},
    "nlb-certbot-http-01": {
        **MINIMAL_CONFIG["nlb-certbot"],
        "acme": {"email": "ops@example.com", "challenge": "http-01"},
    },
}
BUILT = sorted(k for k, v in CASES.items() if topologies.REGISTRY[v["topology"]] is not None)
# Actions AWS offers no resource-level permission for, or that must reach any repository.
WILDCARD_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "route53:ListHostedZones",
    "ec2:DescribeVolumes",  # the data volume script reads its attachment state
    "ec2:DescribeNetworkInterfaces",  # direct-task: a task's public IP, not in its event
    "ec2:DescribeSubnets",  # a Lambda function in a VPC (components/lambda_function.py)
    "ecs:ListTasks",  # direct-task: scoped to the cluster by the ecs:cluster condition
    "cloudwatch:PutMetricData",  # no resource type: held by the cloudwatch:namespace condition
}


@pytest.fixture(params=BUILT)
def stack(request, program):
    """(configuration, resource graph) of one shipped stack."""
    return CASES[request.param], program(CASES[request.param])


@pytest.fixture
def graph(stack):
    return stack[1]


def test_every_listener_is_tls_or_a_redirect_or_acme(stack):
    config, graph = stack
    for listener in graph.of_type("aws:lb/listener:Listener"):
        protocol = listener.inputs["protocol"]
        if protocol in ("HTTPS", "TLS"):
            assert listener.inputs["sslPolicy"].startswith("ELBSecurityPolicy-TLS13-"), listener
        elif protocol == "HTTP":
            (action,) = listener.inputs["defaultActions"]
            assert action["type"] == "redirect" and action["redirect"]["protocol"] == "HTTPS"
        else:
            # TCP passthrough: the app terminates TLS itself (nlb-certbot) or the mesh
            # gateway's Envoy does (appmesh-efs), or port 80 carries the ACME HTTP-01
            # challenge.
            assert protocol == "TCP", listener
            assert config["topology"] in ("nlb-certbot", "appmesh-efs"), listener


def test_load_balancers_reach_targets_over_tls_or_tcp(graph):
    for group in graph.of_type("aws:lb/targetGroup:TargetGroup"):
        assert group.inputs["protocol"] in ("HTTPS", "TLS", "TCP"), group


def test_no_task_port_is_open_to_the_internet(stack):
    config, graph = stack
    load_balancer_groups = {
        sg
        for lb in graph.of_type("aws:lb/loadBalancer:LoadBalancer")
        for sg in lb.inputs.get("securityGroups", [])
    }
    for rule in graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        if rule.inputs.get("cidrIpv4") == "0.0.0.0/0":
            if config["topology"] == "direct-task":
                # The documented exception: the task is the endpoint. Only Envoy's TLS port
                # is open (to allowedCidrs, the whole internet by default), nothing else.
                assert rule.inputs["fromPort"] == rule.inputs["toPort"] == 8443, rule
                continue
            assert rule.inputs["securityGroupId"] in load_balancer_groups, rule


def test_services_run_without_public_ips(stack):
    config, graph = stack
    for service in graph.of_type("aws:ecs/service:Service"):
        network = service.inputs.get("networkConfiguration")
        if config["topology"] == "direct-task":
            # By design: no load balancer, each task is reached at its own public IP.
            assert network["assignPublicIp"] is True, service
            continue
        assert network is None or network["assignPublicIp"] is False, service


def test_iam_policies_are_named_and_scoped(graph):
    for policy in graph.of_type("aws:iam/rolePolicy:RolePolicy"):
        assert policy.inputs.get("name"), f"{policy} has no explicit name"
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            if "*" in statement["Resource"]:
                assert set(statement["Action"]) <= WILDCARD_ACTIONS, statement
            assert not any(a.endswith(":*") or a == "*" for a in statement["Action"]), statement


def test_storage_and_logs_are_encrypted_or_bounded(graph):
    for fs in graph.of_type("aws:efs/fileSystem:FileSystem"):
        assert fs.inputs["encrypted"] is True
    for td in graph.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        for volume in unwrap(td.inputs.get("volumes", [])):
            efs = volume.get("efsVolumeConfiguration")
            if efs:
                assert efs["transitEncryption"] == "ENABLED"
    for log_group in graph.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert log_group.inputs["retentionInDays"] > 0


# --- the documents' builders


def test_a_trust_policy_carries_the_account_for_a_service_that_sets_it():
    for service, trusted in TRUSTED_SERVICES.items():
        if trusted.sets_source_account:
            with pytest.raises(ValueError, match="needs aws:SourceAccount"):
                assume_role_policy(service)
            (statement,) = json.loads(assume_role_policy(service, "123456789012"))["Statement"]
            assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
        else:
            # A condition on a key the service never sets would lock the role.
            with pytest.raises(ValueError, match="does not set"):
                assume_role_policy(service, "123456789012")
            assert "Condition" not in json.loads(assume_role_policy(service))["Statement"][0]
    with pytest.raises(ValueError, match="TRUSTED_SERVICES"):
        assume_role_policy("glue.amazonaws.com", "123456789012")


def test_the_scheduler_may_assume_its_role_for_the_default_group_only():
    group = schedule_group_arn("aws", "eu-west-1", "123456789012")
    assert group == "arn:aws:scheduler:eu-west-1:123456789012:schedule-group/default"
    (statement,) = json.loads(assume_role_policy("scheduler.amazonaws.com", "123456789012", group))[
        "Statement"
    ]
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"},
        "ArnEquals": {"aws:SourceArn": group},
    }


def test_the_scheduler_passes_the_task_roles_to_ecs_tasks_only():
    roles = ["arn:aws:iam::123456789012:role/b", "arn:aws:iam::123456789012:role/a"]
    statements = {s.sid: s.to_dict() for s in run_task_statements("td", "cluster", roles)}
    assert statements["PassTaskRoles"] == {
        "Sid": "PassTaskRoles",
        "Effect": "Allow",
        "Action": ["iam:PassRole"],
        "Resource": sorted(roles),
        "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
    }


def test_a_service_arn_is_the_long_form_in_its_cluster():
    cluster = "arn:aws-cn:ecs:cn-north-1:123456789012:cluster/ecs-tls-dev"
    assert (
        ecs_service_arn(cluster, "app")
        == "arn:aws-cn:ecs:cn-north-1:123456789012:service/ecs-tls-dev/app"
    )
    for bad in ("app-1234abcd", "arn:aws:ecs:eu-west-1:123456789012:service/app"):
        with pytest.raises(ValueError):
            ecs_service_arn(bad, "app")


def test_a_lambda_in_a_vpc_creates_interfaces_in_its_own_subnets_only():
    statements = {
        s.sid: s.to_dict()
        for s in vpc_statements(
            "aws", "eu-west-1", "123456789012", ["subnet-b", "subnet-a"], ["sg-1"]
        )
    }
    ec2 = "arn:aws:ec2:eu-west-1:123456789012"
    assert statements["CreateFunctionInterfaces"]["Resource"] == [
        f"{ec2}:network-interface/*",
        f"{ec2}:security-group/sg-1",
        f"{ec2}:subnet/subnet-a",
        f"{ec2}:subnet/subnet-b",
    ]
    assert statements["ManageFunctionInterfaces"]["Resource"] == [f"{ec2}:network-interface/*"]
    assert set(statements["FindInterfaces"]["Action"]) <= WILDCARD_ACTIONS
    actions = {a for s in statements.values() for a in s["Action"]}
    assert not any(a.startswith("logs:") for a in actions)

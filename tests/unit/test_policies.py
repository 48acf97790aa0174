"""Rules every topology keeps, checked on every stack the project ships an example of.

These are the design's principles as assertions: TLS on every listener (except an HTTP
redirect or the ACME HTTP-01 port), explicit TLS policies, no task port open to the
internet, least-privilege IAM with a reason for each wildcard, encrypted storage.
"""

from __future__ import annotations

import json

import pytest

import topologies
from tests.conftest import MINIMAL_CONFIG
from tests.harness import unwrap

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
    "ecs:ListTasks",  # direct-task: scoped to the cluster by the ecs:cluster condition
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

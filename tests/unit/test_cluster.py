"""Cluster: Container Insights, Fargate capacity, log retention, a scoped execution role."""

from __future__ import annotations

import json

BASE = {"topology": "alb-envoy", "domain": "app.example.com"}


def test_cluster_has_insights_and_fargate_providers(program, stand_in_topologies):
    graph = program(BASE)
    cluster = graph.one("aws:ecs/cluster:Cluster")
    assert {"name": "containerInsights", "value": "enabled"} in cluster.inputs["settings"]
    assert cluster.inputs["name"] == "ecs-tls-dev"
    providers = graph.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")
    assert set(providers.inputs["capacityProviders"]) == {"FARGATE", "FARGATE_SPOT"}
    strategy = providers.inputs["defaultCapacityProviderStrategies"]
    assert [s["capacityProvider"] for s in strategy] == ["FARGATE"]


def test_log_group_retention_follows_config(program, stand_in_topologies):
    assert program(BASE).one("aws:cloudwatch/logGroup:LogGroup").inputs["retentionInDays"] == 30
    graph = program({**BASE, "logRetentionDays": 365})
    log_group = graph.one("aws:cloudwatch/logGroup:LogGroup")
    assert log_group.inputs["retentionInDays"] == 365
    assert log_group.inputs["name"] == "/ecs/ecs-tls-dev"


def test_execution_role_trusts_ecs_tasks_of_this_account_only(program, stand_in_topologies):
    graph = program(BASE)
    role = graph.one("aws:iam/role:Role", "cluster-execution")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_execution_role_writes_only_to_the_cluster_log_group(program, stand_in_topologies):
    graph = program(BASE)
    log_group = graph.one("aws:cloudwatch/logGroup:LogGroup")
    policy = graph.one("aws:iam/rolePolicy:RolePolicy", "cluster-execution")
    document = json.loads(policy.inputs["policy"])
    statements = {s["Sid"]: s for s in document["Statement"]}
    assert statements["WriteTaskLogs"]["Resource"] == [f"{log_group.outputs['arn']}:log-stream:*"]
    assert not any(
        a.startswith("secretsmanager:") for s in statements.values() for a in s["Action"]
    )
    assert policy.inputs["name"] == "pull-images-write-logs"

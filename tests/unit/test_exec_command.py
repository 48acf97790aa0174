"""ECS Exec (`app.enableExecuteCommand`, `services[].enableExecuteCommand`) under mocks.

Off by default: no exec key, log group, role, policy or service argument appears, so an
existing stack sees no change. On: the service takes exec, its task role gets the channel,
key and session-log rights, and the cluster encrypts and logs sessions in place.
"""

from __future__ import annotations

import json

import pytest

from components.exec_command import (
    CHANNEL_ACTIONS,
    exec_command_line,
    exec_command_statements,
    exec_key_policy,
)
from components.iam import policy_document
from scripts.mock_runtime import config_error, run_program, unwrap
from tests.conftest import MINIMAL_CONFIG

ROLE = "aws:iam/role:Role"
POLICY = "aws:iam/rolePolicy:RolePolicy"
SERVICE = "aws:ecs/service:Service"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
CLUSTER = "aws:ecs/cluster:Cluster"
KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def with_app_exec(topology: str) -> dict:
    config = dict(MINIMAL_CONFIG[topology])
    config["app"] = {**config.get("app", {}), "enableExecuteCommand": True}
    return config


def with_service_exec(topology: str) -> dict:
    services = [
        {"name": "web", "image": "nginx", "port": 80, "enableExecuteCommand": True},
        {"name": "api", "image": "nginx", "port": 8080},
    ]
    return {**MINIMAL_CONFIG[topology], "services": services}


def exec_policies(graph):
    return [p for p in graph.of_type(POLICY) if p.inputs["name"] == "ecs-exec"]


# --- pure functions ------------------------------------------------------------------


def test_the_task_role_gets_exactly_the_channel_key_and_log_rights():
    key = "arn:aws:kms:eu-west-1:123456789012:key/0000"
    group = "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/x/exec"
    doc = json.loads(policy_document(exec_command_statements(key, group)))
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["ExecSessionChannels"]["Action"] == sorted(CHANNEL_ACTIONS)
    assert by_sid["ExecSessionChannels"]["Resource"] == ["*"]
    assert by_sid["ExecSessionKey"] == {
        "Sid": "ExecSessionKey",
        "Effect": "Allow",
        "Action": ["kms:Decrypt"],
        "Resource": [key],
    }
    assert by_sid["ExecWriteSessionLog"]["Resource"] == sorted([group, f"{group}:log-stream:*"])
    assert by_sid["ExecFindLogGroup"]["Action"] == ["logs:DescribeLogGroups"]
    wildcards = {s["Sid"] for s in doc["Statement"] if "*" in s["Resource"]}
    assert wildcards == {"ExecSessionChannels", "ExecFindLogGroup"}


def test_the_key_policy_lets_logs_use_it_for_the_session_log_only():
    group = "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/x/exec"
    doc = json.loads(exec_key_policy("aws", "123456789012", "eu-west-1", group))
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    logs = by_sid["LogsEncryptSessionLog"]
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert logs["Condition"] == {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": group}}
    use = by_sid["AccountPrincipalsUseThroughIam"]
    assert use["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert sorted(use["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert "kms:Decrypt" not in by_sid["AccountAdministersKey"]["Action"]


def test_the_command_line_names_cluster_task_and_container():
    assert exec_command_line("ecs-tls-dev", "app") == (
        "aws ecs execute-command --cluster ecs-tls-dev --task <id> --container app "
        "--interactive --command /bin/sh"
    )


# --- default: nothing changes ----------------------------------------------------------


@pytest.mark.parametrize("topology", sorted(MINIMAL_CONFIG))
def test_off_by_default_nothing_of_exec_is_registered(topology):
    graph = run_program(MINIMAL_CONFIG[topology])
    assert not exec_policies(graph)
    assert all("enableExecuteCommand" not in s.inputs for s in graph.of_type(SERVICE))
    assert "configuration" not in graph.one(CLUSTER).inputs
    assert not [g for g in graph.of_type(LOG_GROUP) if g.inputs["name"].endswith("/exec")]
    assert "execCommand" not in graph.stack_outputs
    assert "execCommandKmsKeyArn" not in graph.stack_outputs


# --- on --------------------------------------------------------------------------------


def check_cluster(graph):
    cluster = graph.one(CLUSTER)
    config = cluster.inputs["configuration"]["executeCommandConfiguration"]
    key = graph.one(KEY, "cluster-exec")
    group = graph.one(LOG_GROUP, "cluster-exec")
    assert config["kmsKeyId"] == key.outputs["arn"]
    assert config["logging"] == "OVERRIDE"
    assert config["logConfiguration"] == {
        "cloudWatchLogGroupName": group.outputs["name"],
        "cloudWatchEncryptionEnabled": True,
    }
    assert group.inputs["kmsKeyId"] == key.outputs["arn"]
    assert graph.stack_outputs["execCommandKmsKeyArn"] == key.outputs["arn"]
    return key, group


def check_role_policy(graph, policy, role, key, group):
    assert policy.inputs["role"] == role.id
    doc = json.loads(unwrap(policy.inputs["policy"]))
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["ExecSessionKey"]["Resource"] == [key.outputs["arn"]]
    assert group.outputs["arn"] in by_sid["ExecWriteSessionLog"]["Resource"]


APP_TOPOLOGIES = {
    # topology -> name of the app's task role (None: created for exec)
    "alb-envoy": "alb-envoy-app-task",
    "direct-task": "direct-task-task",
    "nlb-certbot": "nlb-certbot-app-task",
}


@pytest.mark.parametrize("topology", sorted(APP_TOPOLOGIES))
def test_app_exec_reaches_the_service_its_task_role_and_the_cluster(topology):
    graph = run_program(with_app_exec(topology))
    key, group = check_cluster(graph)
    (policy,) = exec_policies(graph)
    role = graph.one(ROLE, APP_TOPOLOGIES[topology])
    check_role_policy(graph, policy, role, key, group)
    (service,) = [s for s in graph.of_type(SERVICE) if s.inputs.get("enableExecuteCommand")]
    assert graph.depends_on(service, policy)
    task = next(
        t for t in graph.of_type(TASK) if t.outputs["arn"] == service.inputs["taskDefinition"]
    )
    assert task.inputs["taskRoleArn"] == role.outputs["arn"]
    command = graph.stack_outputs["execCommand"]
    cluster_name = graph.one(CLUSTER).outputs["name"]
    assert command == exec_command_line(cluster_name, "app")


def test_nlb_certbot_on_ec2_takes_exec_on_its_ec2_service():
    graph = run_program(with_app_exec("nlb-certbot"))
    (service,) = graph.of_type(SERVICE)
    assert service.inputs["launchType"] == "EC2" and service.inputs["enableExecuteCommand"]


@pytest.mark.parametrize("topology", ["service-connect", "appmesh-efs"])
def test_service_exec_is_per_service(topology):
    graph = run_program(with_service_exec(topology))
    key, group = check_cluster(graph)
    (policy,) = exec_policies(graph)
    services = {s.name.rsplit("-", 1)[-1]: s for s in graph.of_type(SERVICE)}
    assert services["web"].inputs.get("enableExecuteCommand") is True
    assert "enableExecuteCommand" not in services["api"].inputs
    assert graph.depends_on(services["web"], policy)
    role = next(r for r in graph.of_type(ROLE) if r.id == policy.inputs["role"])
    check_role_policy(graph, policy, role, key, group)
    cluster_name = graph.one(CLUSTER).outputs["name"]
    assert graph.stack_outputs["execCommand"] == {"web": exec_command_line(cluster_name, "web")}


def test_turning_exec_on_keeps_the_cluster_s_name_and_everything_else():
    before = run_program(MINIMAL_CONFIG["alb-envoy"]).one(CLUSTER).inputs
    after = dict(run_program(with_app_exec("alb-envoy")).one(CLUSTER).inputs)
    after.pop("configuration")
    assert after == before


@pytest.mark.parametrize("topology", ["service-connect", "appmesh-efs"])
def test_app_exec_is_refused_where_app_is_not_the_workload(topology):
    message = config_error(with_app_exec(topology))
    assert message.startswith("ecs-tls:app.enableExecuteCommand: applies to")


def test_exec_and_the_app_s_policies_share_one_task_role():
    policy = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
    config = with_app_exec("alb-envoy")
    config["app"]["taskRolePolicyArns"] = [policy]
    graph = run_program(config)
    (role,) = graph.of_type(ROLE, "alb-envoy-app-task")
    (task,) = graph.of_type(TASK)
    assert task.inputs["taskRoleArn"] == role.outputs["arn"]
    attachments = graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert [(a.inputs["role"], a.inputs["policyArn"]) for a in attachments] == [
        (role.outputs["name"], policy)
    ]
    exec_policy = graph.one(POLICY, "alb-envoy-app-task-exec")
    assert exec_policy.inputs["role"] == role.id


@pytest.mark.parametrize("topology", ["alb-envoy", "service-connect"])
def test_exec_with_a_task_role_of_yours_is_refused(topology):
    role = "arn:aws:iam::123456789012:role/mine"
    if topology == "alb-envoy":
        config = with_app_exec(topology)
        config["app"]["taskRoleArn"] = role
        key = "app"
    else:
        config = with_service_exec(topology)
        config["services"][0]["taskRoleArn"] = role
        key = "services[0]"
    message = config_error(config)
    assert message.startswith(f"ecs-tls:{key}.enableExecuteCommand: "), message
    assert f"{key}.taskRolePolicyArns" in message

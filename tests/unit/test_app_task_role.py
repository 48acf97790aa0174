"""The workload's task role: the user's managed policies on the program's role (which keeps
the sidecar's rights), or the user's own role where no sidecar needs the task role."""

from __future__ import annotations

import copy

import pytest

from scripts.mock_runtime import config_error, run_program
from tests.conftest import MINIMAL_CONFIG, with_app, with_service

ACCOUNT = "123456789012"
POLICIES = [
    f"arn:aws:iam::{ACCOUNT}:policy/app/read-orders",
    "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/orders-app"
WEB = {"name": "web", "image": "nginx", "port": 80}


def attachments(graph, role) -> list[str]:
    return sorted(
        a.inputs["policyArn"]
        for a in graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.inputs["role"] == role.outputs["name"]
    )


def task_role_arn(graph, name: str):
    return graph.one("aws:ecs/taskDefinition:TaskDefinition", name).inputs.get("taskRoleArn")


@pytest.mark.parametrize("topology", ["alb-envoy", "service-connect"])
def test_no_task_role_by_default_where_no_sidecar_needs_one(topology):
    graph = run_program(MINIMAL_CONFIG[topology])
    for td in graph.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        assert not td.inputs.get("taskRoleArn"), td.name


def test_alb_envoy_policies_go_to_a_role_of_the_apps_own():
    graph = run_program(with_app("alb-envoy", taskRolePolicyArns=POLICIES))
    role = graph.one("aws:iam/role:Role", "alb-envoy-app-task")
    assert attachments(graph, role) == sorted(POLICIES)
    assert task_role_arn(graph, "alb-envoy") == role.outputs["arn"]
    # No inline rights of the program's on it: the app's role carries the user's only.
    assert not [
        p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == role.id
    ]
    service = graph.one("aws:ecs/service:Service", "alb-envoy")
    for attachment in graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        assert graph.depends_on(service, attachment)


def test_alb_envoy_uses_the_users_role_and_creates_none():
    graph = run_program(with_app("alb-envoy", taskRoleArn=ROLE))
    assert task_role_arn(graph, "alb-envoy") == ROLE
    assert not graph.of_type("aws:iam/role:Role", "alb-envoy-app-task")
    assert not graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")


def test_service_connect_roles_are_per_service():
    config = copy.deepcopy(MINIMAL_CONFIG["service-connect"])
    config["services"] = [
        {**WEB, "taskRolePolicyArns": POLICIES[:1]},
        {"name": "api", "image": "nginx", "port": 8080, "taskRoleArn": ROLE},
        {"name": "worker", "image": "nginx", "port": 9090},
    ]
    graph = run_program(config)
    role = graph.one("aws:iam/role:Role", "service-connect-web-task")
    assert attachments(graph, role) == POLICIES[:1]
    assert task_role_arn(graph, "service-connect-web") == role.outputs["arn"]
    assert task_role_arn(graph, "service-connect-api") == ROLE
    assert not task_role_arn(graph, "service-connect-worker")


@pytest.mark.parametrize(
    ("config", "role_name", "task", "keeps"),
    [
        (
            with_app("direct-task", taskRolePolicyArns=POLICIES),
            "direct-task-task",
            "direct-task",
            "read-certificate",
        ),
        (
            with_app("nlb-certbot", taskRolePolicyArns=POLICIES),
            "nlb-certbot-app-task",
            "nlb-certbot",
            None,
        ),
        (
            with_service("appmesh-efs", taskRolePolicyArns=POLICIES),
            "appmesh-efs-web-envoy",
            "appmesh-efs-web",
            None,
        ),
    ],
)
def test_policies_join_the_role_the_sidecar_needs(config, role_name, task, keeps):
    graph = run_program(config)
    role = graph.one("aws:iam/role:Role", role_name)
    assert attachments(graph, role) == sorted(POLICIES)
    assert task_role_arn(graph, task) == role.outputs["arn"]
    if keeps:
        names = {
            p.inputs["name"]
            for p in graph.of_type("aws:iam/rolePolicy:RolePolicy")
            if p.inputs["role"] == role.id
        }
        assert keeps in names


def test_no_attachment_by_default():
    for topology in MINIMAL_CONFIG:
        graph = run_program(MINIMAL_CONFIG[topology])
        names = [
            a.name
            for a in graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
            if "-policy-" in a.name
        ]
        assert not names, topology


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (with_service("appmesh-efs", taskRoleArn=ROLE), "services[0].taskRoleArn"),
    ],
)
def test_a_role_of_yours_is_refused_where_the_sidecar_needs_the_task_role(config, key):
    message = config_error(config)
    assert message.startswith(f"ecs-tls:{key}: cannot replace the task role"), message
    assert "taskRolePolicyArns" in message


@pytest.mark.parametrize("topology", ["direct-task", "nlb-certbot"])
def test_a_role_of_yours_for_the_app_is_alb_envoys_only(topology):
    message = config_error(with_app(topology, taskRoleArn=ROLE))
    assert message.startswith("ecs-tls:app.taskRoleArn: applies only to topology 'alb-envoy'")


@pytest.mark.parametrize(
    ("fields", "key", "says"),
    [
        ({"taskRoleArn": ROLE, "taskRolePolicyArns": POLICIES}, "app.taskRoleArn", "exclude"),
        ({"taskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/*"}, "app.taskRoleArn", "wildcard"),
        ({"taskRoleArn": f"arn:aws:iam::{ACCOUNT}:user/bob"}, "app.taskRoleArn", "IAM role"),
        (
            {"taskRolePolicyArns": ["arn:aws:iam::aws:policy/*"]},
            "app.taskRolePolicyArns",
            "wildcard",
        ),
        ({"taskRolePolicyArns": [ROLE]}, "app.taskRolePolicyArns", "policy ARN"),
        ({"taskRolePolicyArns": POLICIES[:1] * 2}, "app.taskRolePolicyArns", "repeats"),
        (
            {"taskRolePolicyArns": [f"arn:aws:iam::{ACCOUNT}:policy/p{i}" for i in range(21)]},
            "app.taskRolePolicyArns",
            "at most 20",
        ),
        ({"taskRolePolicyArns": "arn:aws:iam::aws:policy/x"}, "app.taskRolePolicyArns", "list"),
        (
            {
                "taskRoleArn": ROLE,
                "secrets": {"X": "arn:aws-cn:ssm:cn-north-1:123456789012:parameter/x"},
            },
            "app",
            "partitions",
        ),
    ],
)
def test_bad_role_settings_are_refused_naming_the_key(fields, key, says):
    message = config_error(with_app("alb-envoy", **fields))
    assert message.startswith(f"ecs-tls:{key}:"), message
    assert says in message

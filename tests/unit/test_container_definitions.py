"""The container builder emits AWS's normal form and refuses graphs ECS would refuse."""

from __future__ import annotations

import json

import pytest

from task_contents.container_definitions import (
    Container,
    Dependency,
    HealthCheck,
    LogSettings,
    MountPoint,
    PortMapping,
    container_definition,
    container_definitions_json,
)

LOG = LogSettings(group="/ecs/ecs-tls-dev", region="eu-west-1", stream_prefix="app")


def test_normal_form_fills_what_aws_fills_and_drops_what_it_drops():
    out = container_definition(
        Container(
            name="app",
            image="nginx:1.27",
            environment={"B": "2", "A": "1"},
            secrets={"Z_KEY": "arn:z", "A_KEY": "arn:a"},
            port_mappings=[PortMapping(80, name="http", app_protocol="http")],
            health_check=HealthCheck(command=["CMD-SHELL", "true"]),
        )
    )
    assert out["essential"] is True
    assert out["portMappings"] == [
        {
            "containerPort": 80,
            "hostPort": 80,
            "protocol": "tcp",
            "name": "http",
            "appProtocol": "http",
        }
    ]
    assert [e["name"] for e in out["environment"]] == ["A", "B"]
    assert [s["name"] for s in out["secrets"]] == ["A_KEY", "Z_KEY"]
    assert out["healthCheck"] == {
        "command": ["CMD-SHELL", "true"],
        "interval": 30,
        "timeout": 5,
        "retries": 3,
    }
    for absent in ("command", "entryPoint", "mountPoints", "dependsOn", "logConfiguration"):
        assert absent not in out


def test_bridge_mode_leaves_host_port_to_docker():
    out = container_definition(Container("a", "img", port_mappings=[PortMapping(80)]), awsvpc=False)
    assert out["portMappings"] == [{"containerPort": 80, "protocol": "tcp"}]


def test_containers_are_sorted_by_name_and_output_is_stable():
    containers = [
        Container("zeta", "img", log=LOG),
        Container("alpha", "img", essential=False, mount_points=[MountPoint("certs", "/c")]),
    ]
    text = container_definitions_json(containers)
    assert [c["name"] for c in json.loads(text)] == ["alpha", "zeta"]
    assert text == container_definitions_json(list(reversed(containers)))


def test_init_container_chain_is_accepted():
    containers = [
        Container("certbot", "certbot", essential=False),
        Container(
            "copier", "busybox", essential=False, depends_on=[Dependency("certbot", "SUCCESS")]
        ),
        Container("app", "neo4j", depends_on=[Dependency("copier", "SUCCESS")]),
    ]
    defs = json.loads(container_definitions_json(containers))
    app = next(c for c in defs if c["name"] == "app")
    assert app["dependsOn"] == [{"containerName": "copier", "condition": "SUCCESS"}]


@pytest.mark.parametrize(
    ("containers", "error"),
    [
        (
            [
                Container("init", "i"),
                Container("app", "a", depends_on=[Dependency("init", "SUCCESS")]),
            ],
            "so that container must be essential=False",
        ),
        (
            [Container("app", "a", depends_on=[Dependency("ghost", "START")])],
            "depends on unknown container 'ghost'",
        ),
        (
            [Container("e", "e"), Container("app", "a", depends_on=[Dependency("e", "HEALTHY")])],
            "it has no health check",
        ),
        (
            [Container("app", "a", depends_on=[Dependency("app", "RUNNING")])],
            "condition 'RUNNING'",
        ),
        ([Container("app", "a", essential=False)], "at least one essential container"),
        ([Container("app", "a"), Container("app", "b")], "names must be unique"),
    ],
)
def test_graphs_ecs_would_refuse_are_rejected(containers, error):
    with pytest.raises(ValueError, match=error):
        container_definitions_json(containers)


def test_unknown_app_protocol_is_rejected():
    with pytest.raises(ValueError, match="appProtocol"):
        container_definition(
            Container("a", "i", port_mappings=[PortMapping(80, app_protocol="tcp")])
        )

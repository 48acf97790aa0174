"""Every container definition the program emits is valid input to ECS RegisterTaskDefinition.

Validated with botocore's own parameter validator against the ECS service model, so a
misspelt key or a wrong type fails here rather than at `pulumi up`.
"""

from __future__ import annotations

import json
from functools import cache

import botocore.session
import pytest
from botocore.validate import ParamValidator

import topologies
from scripts.mock_runtime import unwrap
from task_contents.container_definitions import (
    Container,
    Dependency,
    HealthCheck,
    LogSettings,
    MountPoint,
    PortMapping,
    container_definitions_json,
)
from tests.conftest import MINIMAL_CONFIG

# Task definition inputs that keep the API's name and shape in pulumi-aws.
TASK_KEYS = (
    "family",
    "cpu",
    "memory",
    "networkMode",
    "requiresCompatibilities",
    "executionRoleArn",
    "taskRoleArn",
    "volumes",
)


def api_volume(volume: dict) -> dict:
    """A pulumi-aws volume as the ECS API takes it: the provider flattens the API's
    `host: {sourcePath}` into `hostPath` (terraform-provider-aws, ecs task definition
    volumes); every other field keeps the API's name and shape."""
    volume = dict(volume)
    if "hostPath" in volume:
        volume["host"] = {"sourcePath": volume.pop("hostPath")}
    return volume


@cache
def _input_shape():
    model = botocore.session.get_session().get_service_model("ecs")
    return model.operation_model("RegisterTaskDefinition").input_shape


def assert_valid_task_definition(params: dict) -> None:
    report = ParamValidator().validate(params, _input_shape())
    assert not report.has_errors(), report.generate_report()


def test_validator_catches_a_wrong_definition():
    # The check must be able to fail: a misspelt key and a wrong type are both reported.
    report = ParamValidator().validate(
        {"family": "x", "containerDefinitions": [{"name": "a", "imag": "i", "essential": "yes"}]},
        _input_shape(),
    )
    text = report.generate_report()
    assert "imag" in text and "essential" in text


def test_every_builder_field_is_valid_ecs_input():
    containers = [
        Container(
            "init",
            "busybox:1.37",
            essential=False,
            command=["sh", "-c", "echo ok"],
            entry_point=["/bin/sh"],
            mount_points=[MountPoint("certs", "/certs", read_only=False)],
            user="1000:1000",
            working_directory="/work",
            readonly_root_filesystem=True,
            stop_timeout=10,
        ),
        Container(
            "app",
            "nginx:1.27",
            environment={"A": "1"},
            secrets={"KEY": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf"},
            port_mappings=[PortMapping(8443, name="https", app_protocol="http")],
            depends_on=[Dependency("init", "SUCCESS")],
            health_check=HealthCheck(["CMD-SHELL", "true"], start_period=10),
            log=LogSettings("/ecs/x", "eu-west-1", "app"),
        ),
    ]
    assert_valid_task_definition(
        {
            "family": "builder",
            "containerDefinitions": json.loads(container_definitions_json(containers)),
        }
    )


# Every built topology's minimal stack, plus the variants that change task definitions.
CONFIGS = {t: MINIMAL_CONFIG[t] for t in MINIMAL_CONFIG if topologies.REGISTRY[t] is not None}
VARIANTS = {
    "nlb-certbot-http-01": {
        "topology": "nlb-certbot",
        "domain": "db.example.com",
        "acme": {"email": "ops@example.com", "challenge": "http-01"},
        "allowedCidrs": ["203.0.113.0/24"],
    },
    "service-connect-client-mode": {
        **MINIMAL_CONFIG["service-connect"],
        "services": [
            {"name": "api", "image": "ghcr.io/acme/api:1", "port": 8080, "appProtocol": "http2"},
            {"name": "worker", "image": "ghcr.io/acme/worker:1", "port": 9000, "mode": "client"},
        ],
    },
}
CASES = {**CONFIGS, **{k: v for k, v in VARIANTS.items() if v["topology"] in CONFIGS}}


@pytest.mark.parametrize("case", sorted(CASES))
def test_task_definitions_of_each_topology_are_valid(program, case):
    graph = program(CASES[case])
    task_definitions = graph.of_type("aws:ecs/taskDefinition:TaskDefinition")
    assert task_definitions, f"{case} registered no task definition"
    for td in task_definitions:
        inputs = unwrap(td.inputs)
        params = {k: inputs[k] for k in TASK_KEYS if k in inputs}
        if "volumes" in params:
            params["volumes"] = [api_volume(v) for v in params["volumes"]]
        params["containerDefinitions"] = json.loads(inputs["containerDefinitions"])
        assert_valid_task_definition(params)

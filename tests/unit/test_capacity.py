"""Capacity of the Fargate topologies: the FARGATE launch type by default (unchanged for
existing stacks), Fargate Spot or weights of both as a capacity provider strategy, and
never Spot for nlb-certbot's database."""

from __future__ import annotations

import copy

import pytest

from components.autoscaling import capacity_provider_strategies
from scripts.mock_runtime import config_error, run_program
from settings import parse_settings
from settings.scaling import CapacityStrategy
from tests.conftest import MINIMAL_CONFIG

SERVICE = "aws:ecs/service:Service"
WEB = {"name": "web", "image": "nginx", "port": 80}


def config(topology: str, **patch) -> dict:
    out = copy.deepcopy(MINIMAL_CONFIG[topology])
    out.update(copy.deepcopy(patch))
    return out


# ------------------------------------------------------------------ pure builders


@pytest.mark.parametrize(
    ("strategy", "items"),
    [
        (CapacityStrategy(), [{"capacity_provider": "FARGATE_SPOT", "weight": 1}]),
        (
            CapacityStrategy(fargate=1, fargate_spot=3, base=2),
            [
                {"capacity_provider": "FARGATE", "weight": 1, "base": 2},
                {"capacity_provider": "FARGATE_SPOT", "weight": 3},
            ],
        ),
        # A base on Fargate with every other task on Spot.
        (
            CapacityStrategy(fargate=0, fargate_spot=1, base=1),
            [
                {"capacity_provider": "FARGATE", "weight": 0, "base": 1},
                {"capacity_provider": "FARGATE_SPOT", "weight": 1},
            ],
        ),
        (
            CapacityStrategy(fargate=1, fargate_spot=0),
            [{"capacity_provider": "FARGATE", "weight": 1, "base": 0}],
        ),
    ],
    ids=["spot", "weights-and-base", "base-then-spot", "fargate-only"],
)
def test_the_strategy_names_only_providers_that_take_tasks(strategy, items):
    assert capacity_provider_strategies(strategy) == items


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("fargate", None),
        ("fargate-spot", CapacityStrategy(fargate=0, fargate_spot=1, base=0)),
        ({"fargate": 1, "fargateSpot": 3, "base": 1}, CapacityStrategy(1, 3, 1)),
        ({"fargateSpot": 2}, CapacityStrategy(0, 2, 0)),
    ],
)
def test_app_capacity_values(value, expected):
    settings = parse_settings(config("alb-envoy", app={"capacity": value}))
    assert settings.app.capacity_strategy == expected
    assert settings.app.capacity == "fargate"


def test_nlb_certbot_keeps_ec2_and_fargate():
    for value in ("ec2", "fargate"):
        settings = parse_settings(config("nlb-certbot", app={"capacity": value}))
        assert settings.app.capacity == value
        assert settings.app.capacity_strategy is None


@pytest.mark.parametrize("value", ["fargate-spot", {"fargate": 1, "fargateSpot": 1}])
def test_nlb_certbot_refuses_spot_for_its_database(value):
    message = config_error(config("nlb-certbot", app={"capacity": value}))
    assert message.startswith("ecs-tls:app.capacity:"), message
    assert "Spot" in message and "database" in message, message


# ------------------------------------------------------------------ graphs


def test_default_keeps_the_fargate_launch_type_and_no_new_input():
    """What an existing stack sees: the service's inputs as before this option existed."""
    service = run_program(MINIMAL_CONFIG["alb-envoy"]).one(SERVICE)
    assert service.inputs["launchType"] == "FARGATE"
    assert "capacityProviderStrategies" not in service.inputs
    assert "forceNewDeployment" not in service.inputs


@pytest.fixture(scope="module")
def alb_weights():
    capacity = {"fargate": 1, "fargateSpot": 3, "base": 1}
    return run_program(config("alb-envoy", app={"capacity": capacity}))


def test_weights_become_a_strategy_instead_of_the_launch_type(alb_weights):
    service = alb_weights.one(SERVICE)
    assert "launchType" not in service.inputs
    assert service.inputs["capacityProviderStrategies"] == [
        {"capacityProvider": "FARGATE", "weight": 1, "base": 1},
        {"capacityProvider": "FARGATE_SPOT", "weight": 3},
    ]
    # The AWS provider changes a running service's strategy only with a new deployment.
    assert service.inputs["forceNewDeployment"] is True


def test_the_strategy_uses_only_providers_the_cluster_registers(alb_weights):
    registered = alb_weights.one(
        "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders"
    ).inputs["capacityProviders"]
    strategy = alb_weights.one(SERVICE).inputs["capacityProviderStrategies"]
    used = {item["capacityProvider"] for item in strategy}
    assert used <= set(registered)


def test_direct_task_runs_on_spot():
    service = run_program(config("direct-task", app={"capacity": "fargate-spot"})).one(SERVICE)
    assert service.inputs["capacityProviderStrategies"] == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 1}
    ]
    assert "launchType" not in service.inputs


@pytest.mark.parametrize("topology", ["service-connect", "appmesh-efs"])
def test_each_service_has_its_own_capacity(topology):
    services = [
        {**WEB, "capacity": "fargate-spot"},
        {**WEB, "name": "api"},
    ]
    graph = run_program(config(topology, services=services))
    by_name = {s.name: s for s in graph.of_type(SERVICE)}
    spot, plain = by_name[f"{topology}-web"], by_name[f"{topology}-api"]
    assert spot.inputs["capacityProviderStrategies"] == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 1}
    ]
    assert plain.inputs["launchType"] == "FARGATE"
    assert "capacityProviderStrategies" not in plain.inputs


@pytest.mark.parametrize(
    ("topology", "patch", "key"),
    [
        ("alb-envoy", {"app": {"capacity": "spot"}}, "app.capacity"),
        ("alb-envoy", {"app": {"capacity": {"fargate": 0, "fargateSpot": 0}}}, "app.capacity"),
        ("alb-envoy", {"app": {"capacity": {"fargateSpot": -1}}}, "app.capacity.fargateSpot"),
        ("alb-envoy", {"app": {"capacity": {"spot": 1}}}, "app.capacity.spot"),
        ("service-connect", {"services": [{**WEB, "capacity": "ec2"}]}, "services[0].capacity"),
    ],
    ids=["unknown-word", "all-zero", "negative", "typo", "service-ec2"],
)
def test_bad_capacity_is_refused_naming_the_key(topology, patch, key):
    message = config_error(config(topology, **patch))
    assert message.startswith(f"ecs-tls:{key}:"), message

"""Shared fixtures: `program` runs the real Pulumi program under mocks."""

from __future__ import annotations

import copy

import pytest

from scripts.mock_runtime import run_program

# The minimal configuration the design names for each topology.
MINIMAL_CONFIG = {
    "alb-envoy": {"topology": "alb-envoy", "domain": "app.example.com"},
    "service-connect": {"topology": "service-connect", "domain": "app.example.com"},
    "appmesh-efs": {"topology": "appmesh-efs", "domain": "app.example.com"},
    "nlb-certbot": {
        "topology": "nlb-certbot",
        "domain": "db.example.com",
        "acme": {"email": "ops@example.com"},
        "hostedZoneId": "Z0123456789ABCDEFGHIJ",
        # Required: the NLB passes TCP straight to the database (documentation range).
        "allowedCidrs": ["203.0.113.0/24"],
    },
    "direct-task": {
        "topology": "direct-task",
        "domain": "tasks.example.com",
        "acme": {"email": "ops@example.com"},
        "hostedZoneId": "Z0123456789ABCDEFGHIJ",
    },
}


WEB_SERVICE = {"name": "web", "image": "nginx", "port": 80}


def with_app(topology: str, **fields) -> dict:
    """`topology`'s minimal stack with `fields` set in `app`."""
    config = copy.deepcopy(MINIMAL_CONFIG[topology])
    config.setdefault("app", {}).update(copy.deepcopy(fields))
    return config


def with_service(topology: str, **fields) -> dict:
    """`topology`'s minimal stack with one service, `web`, that has `fields`."""
    config = copy.deepcopy(MINIMAL_CONFIG[topology])
    config["services"] = [{**WEB_SERVICE, **copy.deepcopy(fields)}]
    return config


@pytest.fixture
def program():
    """`program(config)` -> resource graph of the real `__main__.py` under mocks."""
    return run_program


def build_stand_in(settings, foundation):
    """A tiny topology: a component with one child whose name depends on the topology.

    Tests use it to tell topology resources from foundation resources for topologies that
    are not built yet. Defined once, so graphs built with it are shared between tests.
    """
    import pulumi
    import pulumi_aws as aws

    import topologies

    component = pulumi.ComponentResource("ecs-tls:test:StandIn", settings.topology)
    aws.ssm.Parameter(
        f"{settings.topology}-marker",
        type="String",
        value=settings.topology,
        opts=pulumi.ResourceOptions(parent=component),
    )
    component.register_outputs({})
    return topologies.TopologyResult(component=component, endpoint=f"https://{settings.domain}")


@pytest.fixture
def stand_in_topologies(monkeypatch):
    """Make every topology that is not built yet selectable, as `build_stand_in`."""
    import topologies

    for name, builder in list(topologies.REGISTRY.items()):
        if builder is None:
            monkeypatch.setitem(topologies.REGISTRY, name, build_stand_in)
    return topologies.REGISTRY

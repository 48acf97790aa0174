"""Shared fixtures: `program` runs the real Pulumi program under mocks."""

from __future__ import annotations

import pytest

from tests.harness import Graph, run_program

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
    },
    "direct-task": {
        "topology": "direct-task",
        "domain": "tasks.example.com",
        "acme": {"email": "ops@example.com"},
        "hostedZoneId": "Z0123456789ABCDEFGHIJ",
    },
}


_GRAPHS: dict[tuple, Graph] = {}


@pytest.fixture
def program():
    """`program(config)` -> resource graph of the real `__main__.py` under mocks.

    A run is deterministic for a configuration and a registry, so graphs are shared
    between tests (read-only by convention); failing runs are not cached.
    """
    import json

    import topologies

    def run(config: dict, stack: str = "dev") -> Graph:
        builders = tuple(id(b) for b in topologies.REGISTRY.values())
        key = (json.dumps(config, sort_keys=True), stack, builders)
        if key not in _GRAPHS:
            _GRAPHS[key] = run_program(config, stack=stack)
        return _GRAPHS[key]

    return run


@pytest.fixture
def stand_in_topologies(monkeypatch):
    """Make every topology that is not built yet selectable, as a tiny stand-in.

    Each stand-in is a component with one child whose name depends on the topology, so
    tests can tell topology resources from foundation resources. Built topologies are
    left as they are.
    """
    import pulumi
    import pulumi_aws as aws

    import topologies

    class StandIn(pulumi.ComponentResource):
        def __init__(self, topology: str) -> None:
            super().__init__("ecs-tls:test:StandIn", topology)
            aws.ssm.Parameter(
                f"{topology}-marker",
                type="String",
                value=topology,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.register_outputs({})

    def build(settings, foundation):
        return topologies.TopologyResult(
            component=StandIn(settings.topology), endpoint=f"https://{settings.domain}"
        )

    for name, builder in list(topologies.REGISTRY.items()):
        if builder is None:
            monkeypatch.setitem(topologies.REGISTRY, name, build)
    return topologies.REGISTRY

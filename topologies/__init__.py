"""The topology registry: one entry per `ecs-tls:topology` value.

A topology is a function `build(settings, foundation) -> TopologyResult` that creates one
ComponentResource. An entry of `None` means the topology is not built yet; selecting it
fails before any resource is registered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pulumi

from components.cluster import Cluster
from components.network import Network
from settings import TOPOLOGIES, ConfigError, Settings


@dataclass(frozen=True)
class Foundation:
    """What every topology builds on: created once, outside any topology component."""

    network: Network
    cluster: Cluster


@dataclass(frozen=True)
class TopologyResult:
    component: pulumi.ComponentResource
    endpoint: pulumi.Input[str]
    # Extra stack outputs that help the user verify the deployment.
    outputs: Mapping[str, pulumi.Input] = field(default_factory=dict)


TopologyBuilder = Callable[[Settings, Foundation], TopologyResult]

REGISTRY: dict[str, TopologyBuilder | None] = {
    "nlb-certbot": None,
    "alb-envoy": None,
    "service-connect": None,
    "appmesh-efs": None,
    "direct-task": None,
}
assert tuple(REGISTRY) == TOPOLOGIES, "registry and settings.TOPOLOGIES must list the same names"


def available() -> tuple[str, ...]:
    return tuple(name for name, builder in REGISTRY.items() if builder is not None)


def builder_for(topology: str) -> TopologyBuilder:
    builder = REGISTRY[topology]
    if builder is None:
        ready = ", ".join(available()) or "none yet"
        raise ConfigError(
            "topology", f"{topology!r} is not available yet in this version; available: {ready}"
        )
    return builder

"""The topology registry: one entry per `ecs-tls:topology` value.

A topology is a function `build(settings, foundation) -> TopologyResult` that creates one
ComponentResource. An entry of `None` means the topology is not built yet; selecting it
fails before any resource is registered.
"""

from __future__ import annotations

from settings import TOPOLOGIES, ConfigError
from topologies import alb_envoy, appmesh_efs, direct_task, nlb_certbot, service_connect
from topologies.base import Foundation, TopologyBuilder, TopologyResult

__all__ = ["REGISTRY", "Foundation", "TopologyResult", "available", "builder_for"]

REGISTRY: dict[str, TopologyBuilder | None] = {
    "nlb-certbot": nlb_certbot.build,
    "alb-envoy": alb_envoy.build,
    "service-connect": service_connect.build,
    "appmesh-efs": appmesh_efs.build,
    "direct-task": direct_task.build,
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

"""What a topology receives and returns; kept apart so topology modules can import it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pulumi

from components.alerts import Alerts
from components.cluster import Cluster
from components.dns import DomainName
from components.network import Network
from settings import Settings


@dataclass(frozen=True)
class Foundation:
    """What every topology builds on: created once, outside any topology component."""

    network: Network
    cluster: Cluster
    # Where alarms (certificate expiry, renewal failures) notify the operators.
    alerts: Alerts
    # The record of `domain`: the topology points it at its load balancer.
    domain_name: DomainName


@dataclass(frozen=True)
class TopologyResult:
    component: pulumi.ComponentResource
    endpoint: pulumi.Input[str]
    # Extra stack outputs that help the user verify the deployment.
    outputs: Mapping[str, pulumi.Input] = field(default_factory=dict)


TopologyBuilder = Callable[[Settings, Foundation], TopologyResult]


# The package that hosts the components (package/__main__.py), or None in a program. A
# hosted component carries the type token of the package's schema, `<package>:index:<Name>`,
# which is the token other languages register; in a program it keeps its module's token,
# so this program's URNs never change.
_HOSTING_PACKAGE: list[str] = []


def hosted_by_package(package: str) -> None:
    _HOSTING_PACKAGE[:] = [package]


def component_type(module: str, name: str) -> str:
    if _HOSTING_PACKAGE:
        return f"{_HOSTING_PACKAGE[0]}:index:{name}"
    return f"ecs-tls:{module}:{name}"

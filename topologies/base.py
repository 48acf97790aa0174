"""What a topology receives and returns; kept apart so topology modules can import it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pulumi

from components.alerts import Alerts
from components.cluster import Cluster
from components.dns import DomainName
from components.network import Network

# Type tokens live with the components (the foundation's are hosted too); topologies and
# the package's entry point import them from here as before.
from components.tokens import component_type as component_type
from components.tokens import hosted_by_package as hosted_by_package
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

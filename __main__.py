"""ecs-tls: encryption in transit to the container for ECS, in one of five topologies."""

import pulumi

import topologies
from components.alerts import Alerts
from components.cluster import Cluster, ClusterArgs
from components.dns import DomainName
from components.network import Network, NetworkArgs
from settings import load_settings

settings = load_settings()
build_topology = topologies.builder_for(settings.topology)

# The foundation's names never depend on the topology, so switching topology keeps it.
network = Network("network", NetworkArgs(settings.network))
cluster = Cluster(
    "cluster",
    ClusterArgs(
        log_retention_days=settings.log_retention_days,
        namespace_name=settings.service_connect.namespace,
    ),
)
alerts = Alerts("alerts")
# One record for the domain whatever the topology, so a switch updates it in place.
domain_name = DomainName(settings.domain, settings.hosted_zone_id)
result = build_topology(
    settings,
    topologies.Foundation(network=network, cluster=cluster, alerts=alerts, domain_name=domain_name),
)

pulumi.export("topology", settings.topology)
pulumi.export("endpoint", result.endpoint)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("clusterName", cluster.cluster.name)
pulumi.export("logGroupName", cluster.log_group.name)
pulumi.export("alertsTopicArn", alerts.topic.arn)
for key, value in result.outputs.items():
    pulumi.export(key, value)

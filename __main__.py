"""ecs-tls: encryption in transit to the container for ECS, in one of five topologies."""

import topologies
from components.alerts import Alerts
from components.cluster import Cluster, ClusterArgs, images_args
from components.dns import DomainName, domain_caa
from components.network import Network, NetworkArgs
from settings import load_settings
from settings.images import user_images, warmup_commands
from settings.secrecy import export  # pulumi.export, secret where a secret key's value is in it

settings = load_settings()
build_topology = topologies.builder_for(settings.topology)

# The foundation's names never depend on the topology, so switching topology keeps it.
# The network's configuration is parsed already: passed as settings (Python only), so a
# refusal that needs AWS's answers (the region's zones) names its configuration key.
network = Network("network", NetworkArgs(), settings=settings.network)
cluster = Cluster(
    "cluster",
    ClusterArgs(
        log_retention_days=settings.log_retention_days,
        namespace=settings.service_connect.namespace,  # type: ignore[typeddict-item]
        images=images_args(settings.images),
        task_images=user_images(settings),
        execute_command=settings.execute_command,
    ),
)
alerts = Alerts("alerts", email=settings.alerts_email)
# One record for the domain whatever the topology, so a switch updates it in place.
domain_name = DomainName(settings.domain, settings.hosted_zone_id)
# Which CAs may issue for the domain: also one record set whatever the topology.
domain_caa(settings)
result = build_topology(
    settings,
    topologies.Foundation(network=network, cluster=cluster, alerts=alerts, domain_name=domain_name),
)

export("topology", settings.topology)
export("endpoint", result.endpoint)
export("vpcId", network.vpc_id)
export("clusterName", cluster.cluster.name)
export("logGroupName", cluster.log_group.name)
export("alertsTopicArn", alerts.topic.arn)
if cluster.image_cache is not None:
    # ECR's cache fills on a pull by tag only; these pulls prepare it for the tasks' pulls by
    # digest (settings/images.py warmup_commands).
    export("imageCacheWarmup", cluster.image_map.apply(warmup_commands))
if cluster.exec_key is not None:
    # An operator's IAM policy needs kms:GenerateDataKey on it to start a session.
    export("execCommandKmsKeyArn", cluster.exec_key.arn)
for key, value in result.outputs.items():
    export(key, value)

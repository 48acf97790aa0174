"""alb-envoy in a VPC and an ECS cluster that this program does not own.

Another team's program (or the console) made the network and the cluster; this program
adds one topology to them through its typed arguments, and changes neither. The component
creates what its tasks need of the cluster (a log group, an execution role), its alerts
topic and, with a hosted zone, the record of the domain, all as its own children.

Set the IDs, then `pulumi up`:

    pulumi config set vpcId vpc-0123456789abcdef0
    pulumi config set --path 'publicSubnetIds[0]' subnet-...   # and [1]: two zones
    pulumi config set --path 'privateSubnetIds[0]' subnet-...  # and [1]
    pulumi config set clusterName my-cluster
    pulumi config set domain app.example.com

From another language, the same component comes from the package: README, "Use a
topology from your own program".
"""

import sys
from pathlib import Path

import pulumi

# The component's source is this repository's; a Python program elsewhere would import the
# SDK that `pulumi package add <repository>/package` generates instead.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from topologies.alb_envoy import AlbEnvoy
from topologies.args import AlbEnvoyArgs, AppArgs

config = pulumi.Config()

app = AlbEnvoy(
    "alb-envoy",
    AlbEnvoyArgs(
        domain=config.require("domain"),
        vpc_id=config.require("vpcId"),
        public_subnet_ids=config.require_object("publicSubnetIds"),
        private_subnet_ids=config.require_object("privateSubnetIds"),
        cluster=config.require("clusterName"),
        app=AppArgs(desired_count=2),
    ),
)

pulumi.export("endpoint", app.endpoint)
pulumi.export("loadBalancerDnsName", app.load_balancer_dns_name)
pulumi.export("certificateArn", app.certificate_arn)
pulumi.export("serviceName", app.service_name)

"""What a topology component builds of its foundation in someone else's VPC and cluster.

This program builds its foundation once, outside any topology (`__main__.py`), and hands
it to the topology. A component used from another program gets IDs instead: an existing
VPC, its subnets and an ECS cluster (name or ARN). It then creates, as its own children,
the cluster-level pieces its tasks rely on, and changes nothing of the user's cluster:

- a CloudWatch log group and an execution role for its tasks (`ClusterAttachment`);
- the alerts topic its alarms notify (`components.alerts.Alerts`);
- the alias record of `domain`, when a hosted zone is given.

What needs a change to the cluster itself is refused before any resource is registered
(`refuse_on_existing_cluster`): Fargate Spot (the cluster's FARGATE_SPOT capacity
provider) and ECS Exec (the cluster's execute-command configuration).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
from pulumi.provider.experimental.util import camel_case

from components.alerts import Alerts
from components.arguments import check_component_name
from components.cluster import TaskAccount, secret_read_policy, task_logs_and_execution_role
from components.dns import AliasTarget, DomainAlias, DomainAliasArgs, DomainName
from components.naming import physical_name
from components.network import ZonalSubnet, one_per_zone
from settings import ConfigError, Settings
from settings.images import user_images
from topologies.args import topology_settings
from topologies.base import Foundation

# Arguments that name the foundation: resources' IDs, not configuration.
FOUNDATION_FIELDS = ("vpc_id", "public_subnet_ids", "private_subnet_ids", "cluster")
# Configuration keys this program's foundation reads (__main__.py), not a topology.
FOUNDATION_KEYS = ("topology", "network", "images", "caaRecord", "serviceConnect")


def component_settings(
    topology: str,
    name: str,
    args: Mapping[str, Any],
    args_type: type,
    foundation: Foundation | None,
    required: Sequence[str] = FOUNDATION_FIELDS,
    reads_zones: bool = False,
) -> Settings:
    """A component's validated settings; without this program's `foundation`, its args
    must name the existing VPC, subnets and cluster (`required`), and ask nothing of the
    cluster that would change it. `reads_zones`: the private subnets' zones are read
    before any resource (one EFS mount target per zone), so their IDs must be plain.
    Raises ConfigError before any resource is registered."""
    check_component_name(name)
    s = topology_settings(topology, args, args_type, FOUNDATION_FIELDS)
    if foundation is None:
        for field in required:
            if args.get(field) is None:
                raise ConfigError(
                    camel_case(field),
                    f"missing; the {topology} component runs in an existing VPC and ECS "
                    f"cluster: set {', '.join(camel_case(f) for f in required)}",
                )
        refuse_on_existing_cluster(s)
        private = args.get("private_subnet_ids") or []
        if reads_zones and (
            isinstance(private, pulumi.Output) or any(isinstance(v, pulumi.Output) for v in private)
        ):
            raise ConfigError(
                "privateSubnetIds",
                "must be plain subnet IDs: their zones are read before any resource is "
                "registered (one EFS mount target per zone)",
            )
    return s


@dataclass(frozen=True)
class ExistingNetwork:
    """The IDs of a VPC the component does not own; the attributes of `Network`."""

    vpc_id: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]
    # One private subnet per zone (EFS mount targets, a zonal volume); read only for the
    # topologies that need it, from plain subnet IDs.
    private_zonal_subnets: list[ZonalSubnet] = field(default_factory=list)


def zonal_subnets(subnet_ids: Sequence[str], parent: pulumi.Resource) -> list[ZonalSubnet]:
    """The first private subnet of each zone, read now (a plain invoke) so that the number
    of per-zone resources is known when they are registered."""
    found = [
        (subnet, aws.ec2.get_subnet(id=subnet, opts=pulumi.InvokeOptions(parent=parent)))
        for subnet in subnet_ids
    ]
    return [
        ZonalSubnet(pulumi.Output.from_input(subnet), pulumi.Output.from_input(zone))
        for subnet, zone in one_per_zone([(sub, f.availability_zone) for sub, f in found])
    ]


@dataclass(frozen=True)
class ClusterReference:
    """An existing ECS cluster's name and ARN, whichever of the two was given."""

    name: pulumi.Output[str]
    arn: pulumi.Output[str]


def cluster_reference(
    name_or_arn: pulumi.Input[str], partition: pulumi.Input[str], region, account
) -> ClusterReference:
    given = pulumi.Output.from_input(name_or_arn)
    name = given.apply(lambda c: c.rsplit("/", 1)[-1] if c.startswith("arn:") else c)
    arn = pulumi.Output.all(given, partition, region, account).apply(
        lambda v: (
            v[0] if v[0].startswith("arn:") else f"arn:{v[1]}:ecs:{v[2]}:{v[3]}:cluster/{v[0]}"
        )
    )
    return ClusterReference(name=name, arn=arn)


def refuse_on_existing_cluster(s: Settings) -> None:
    """What a component cannot do in a cluster it did not create, named by argument."""
    if s.topology == "nlb-certbot" and s.app.capacity == "ec2":
        raise ConfigError(
            "app.capacity",
            "'ec2' (the default of nlb-certbot) needs an EC2 capacity provider on the "
            "cluster, which this component does not add to a cluster it did not create: "
            "set app.capacity to fargate (stateless TLS apps: nothing persists)",
        )
    workloads = [("app", s.app)] + [(f"services[{i}]", v) for i, v in enumerate(s.services)]
    for key, workload in workloads:
        if workload.capacity_strategy is not None:
            raise ConfigError(
                f"{key}.capacity",
                "only fargate in an existing cluster: Fargate Spot and weights need the "
                "cluster's FARGATE and FARGATE_SPOT capacity providers, which this component "
                "does not add to a cluster it did not create",
            )
        if workload.enable_execute_command:
            raise ConfigError(
                f"{key}.enableExecuteCommand",
                "not available in an existing cluster: ECS Exec sessions need the cluster's "
                "execute-command configuration (KMS key, session log), which this component "
                "does not change on a cluster it did not create",
            )


class ClusterAttachment(pulumi.ComponentResource):
    """A log group and an execution role for one component's tasks in an existing cluster.

    It has the attributes and methods of `components.cluster.Cluster` that topologies use,
    so a topology never knows which one it got.
    """

    def __init__(
        self,
        name: str,
        cluster: pulumi.Input[str],
        log_retention_days: int,
        images: Sequence[str],
        namespace_name: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("ecs-tls:cluster:ClusterAttachment", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self.region = aws.get_region_output(opts=invoke).region
        self.account_id = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke).partition
        self.cluster = cluster_reference(cluster, partition, self.region, self.account_id)
        self.image_cache = None
        self.exec_key = None
        self.exec_log_group = None
        # Service Connect's namespace: the component's own, referenced by each service (the
        # cluster's default namespace is the user's and stays as it is).
        self.namespace = (
            aws.servicediscovery.HttpNamespace(
                name,
                name=namespace_name,
                description=f"Service Connect namespace of {physical_name(name)}",
                opts=child,
            )
            if namespace_name
            else None
        )
        self.log_group, self.execution_role = task_logs_and_execution_role(
            name,
            physical_name(name),
            log_retention_days,
            "pull images, write logs",
            TaskAccount(partition, self.region, self.account_id),
            images,
            parent=self,
        )
        self.register_outputs(
            {
                "clusterArn": self.cluster.arn,
                "logGroupName": self.log_group.name,
                "executionRoleArn": self.execution_role.arn,
            }
        )

    def resolve_images(self, container_definitions: pulumi.Input[str]) -> pulumi.Input[str]:
        """No image cache here: the definitions pass through untouched."""
        return container_definitions

    def allow_secret_read(
        self, name: str, sid: str, secret_arn: pulumi.Input[str], parent: pulumi.Resource
    ) -> aws.iam.RolePolicy:
        """Let the execution role read one secret, which ECS injects at task start."""
        return secret_read_policy(self.execution_role, name, sid, secret_arn, parent)

    def allow_execute_command(self, name: str, role: Any, parent: pulumi.Resource) -> Any:
        raise ConfigError(
            "app.enableExecuteCommand", "not available in an existing cluster (see capacity)"
        )


class ChildDomainName(DomainName):
    """The record of `domain`, as a child of the component that points it."""

    def __init__(self, name: str, domain: str, hosted_zone_id: str | None, parent):
        super().__init__(domain, hosted_zone_id)
        self._record_name = name
        self._parent = parent

    def point_at(self, target: AliasTarget) -> DomainAlias | None:
        if self.alias is not None:
            raise RuntimeError(f"{self.domain} already points at another target")
        if self.hosted_zone_id:
            self.alias = DomainAlias(
                self._record_name,
                DomainAliasArgs(self.hosted_zone_id, self.domain, target),
                opts=pulumi.ResourceOptions(parent=self._parent),
            )
        return self.alias


def existing_foundation(
    name: str,
    component: pulumi.ComponentResource,
    s: Settings,
    args: Mapping[str, Any],
    *,
    with_namespace: bool = False,
    with_zones: bool = False,
) -> Foundation:
    """The foundation of `component` in the existing VPC and cluster its `args` name,
    built as its children."""
    child = pulumi.ResourceOptions(parent=component)
    private = args.get("private_subnet_ids") or []
    return Foundation(
        network=ExistingNetwork(  # type: ignore[arg-type]
            vpc_id=pulumi.Output.from_input(args["vpc_id"]),
            public_subnet_ids=pulumi.Output.from_input(args.get("public_subnet_ids") or []),
            private_subnet_ids=pulumi.Output.from_input(private),
            private_zonal_subnets=zonal_subnets(private, component) if with_zones else [],
        ),
        cluster=ClusterAttachment(  # type: ignore[arg-type]
            f"{name}-cluster",
            args["cluster"],
            s.log_retention_days,
            user_images(s),
            (s.service_connect.namespace or physical_name(name)) if with_namespace else None,
            opts=child,
        ),
        alerts=Alerts(f"{name}-alerts", s.alerts_email, opts=child),
        domain_name=ChildDomainName(f"{name}-domain", s.domain, s.hosted_zone_id, component),
    )

"""The VPC every topology runs in: created here, or adopted from existing IDs.

Both modes expose the same attributes, so a topology never knows which one it got.

A created VPC grows in place: each zone's subnets take fixed slots of the VPC's range
(settings/subnet_layout.py), and the subnets this stack already has are read back before
anything is registered, so that adding a zone adds subnets and changes none, and removing
one is refused instead of deleting what runs there.

The component is public (hosted by the component package, package/): its args are the
fields of the `network` configuration key, parsed by the same code (settings/parse.py).

No `from __future__ import annotations` here: Pulumi's schema analyzer reads the
annotations of NetworkArgs and Network as objects (topologies/args.py).
"""

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import pulumi
import pulumi_aws as aws

from components.arguments import as_arguments, config_from_args
from components.naming import physical_name
from components.tokens import component_type
from settings import ConfigError, NetworkSettings
from settings.errors import invalid
from settings.parse import parse_network
from settings.subnet_layout import TIERS, even_split_cidrs, slot_cidr, subnet_cidrs

__all__ = [
    "Network",
    "NetworkArgs",
    "ZonalSubnet",
    "network_settings",
    "one_per_zone",
    "subnet_cidrs",
]

# Set on every subnet the program creates: which zone slot it fills. Older versions set
# only `Name` and `tier`; their index is read from the name.
ZONE_INDEX_TAG = "ecs-tls:zone-index"


@dataclass(frozen=True)
class DeployedSubnet:
    subnet_id: str
    cidr_block: str
    availability_zone: str
    tier: str | None = None  # None: a subnet this program did not create
    index: int | None = None


@dataclass(frozen=True)
class DeployedNetwork:
    """The stack's VPC as AWS has it, before this run changes anything."""

    vpc_id: str
    cidr_block: str
    subnets: tuple[DeployedSubnet, ...] = ()

    def ours(self) -> dict[tuple[str, int], DeployedSubnet]:
        return {
            (s.tier, s.index): s for s in self.subnets if s.tier is not None and s.index is not None
        }

    def zone_count(self) -> int:
        return 1 + max((index for _, index in self.ours()), default=-1)


@dataclass(frozen=True)
class ZonePlan:
    """Zone `index`: its availability zone and the CIDRs of its public and private subnets."""

    index: int
    availability_zone: str
    public_cidr: str
    private_cidr: str


def plan_zones(
    s: NetworkSettings, region_zones: Sequence[str], deployed: DeployedNetwork | None
) -> list[ZonePlan]:
    """Each zone's place: what the stack's VPC already has is kept as it is, new zones take
    their slots and the region's next unused zones.

    Raises ConfigError for another range than the deployed VPC's, fewer zones than it has,
    more than the region has, or a new subnet that would overlap one in the VPC (a VPC cut
    by the even split of older versions has no free range left).
    """
    key = "network.availabilityZones"
    wanted = s.availability_zones
    if deployed is not None and deployed.cidr_block != s.cidr_block:
        # A VPC's primary range cannot change: the provider would replace the VPC, and a
        # load balancer cannot follow its target groups and security groups into another
        # VPC by an update, so `up` would stop half-way through. Refused instead.
        raise invalid(
            "network.cidrBlock",
            s.cidr_block,
            f"the range of this stack's VPC {deployed.vpc_id} ({deployed.cidr_block}); a "
            f"VPC keeps its range: keep {deployed.cidr_block}, or destroy the stack and "
            "create it again",
        )
    ours = deployed.ours() if deployed else {}
    have = deployed.zone_count() if deployed else 0
    if wanted < have:
        raise ConfigError(
            key,
            f"{wanted} is fewer than the {have} zones of this stack's VPC {deployed.vpc_id}; "
            "removing a zone would delete its subnets and what runs in them, which this "
            f"program does not do: keep {have}",
        )
    kept_zones = {i: sub.availability_zone for (_, i), sub in ours.items()}
    free = [z for z in region_zones if z not in kept_zones.values()]
    new_indexes = [i for i in range(wanted) if i not in kept_zones]
    if len(new_indexes) > len(free):
        available = len(set(region_zones) | set(kept_zones.values()))
        raise ConfigError(
            key,
            f"{wanted} is more than the {available} availability zones this region offers "
            f"({', '.join(sorted(set(region_zones) | set(kept_zones.values())))})",
        )
    zone_of = {**kept_zones, **dict(zip(new_indexes, free, strict=False))}

    plans = []
    for i in range(wanted):
        cidrs = {}
        for tier in TIERS:
            found = ours.get((tier, i))
            cidrs[tier] = found.cidr_block if found else slot_cidr(s.cidr_block, tier, i)
            if found is None and deployed is not None:
                _refuse_overlap(deployed, tier, i, cidrs[tier], have)
        plans.append(ZonePlan(i, zone_of[i], cidrs["public"], cidrs["private"]))
    return plans


def _refuse_overlap(deployed: DeployedNetwork, tier: str, index: int, cidr: str, have: int):
    new = ipaddress.ip_network(cidr)
    for other in deployed.subnets:
        if not new.overlaps(ipaddress.ip_network(other.cidr_block)):
            continue
        public, private = even_split_cidrs(deployed.cidr_block, have) if have else ([], [])
        found = {s.cidr_block for s in deployed.ours().values()}
        if have and found == set(public + private):
            why = (
                f"this stack's VPC {deployed.vpc_id} was cut by an earlier version into "
                f"{have} zones that fill {deployed.cidr_block}: keep {have}; it takes more "
                "zones only when the stack is destroyed and created again"
            )
        else:
            why = f"remove that subnet from VPC {deployed.vpc_id} or keep {have} zones"
        raise ConfigError(
            "network.availabilityZones",
            f"{index + 1} zones need the {tier} subnet {cidr} for zone {index}, which "
            f"overlaps subnet {other.subnet_id} ({other.cidr_block}); {why}",
        )


_NAME_INDEX = re.compile(r"-(public|private)-([0-9]+)\Z")


def read_deployed(prefix: str, opts: pulumi.InvokeOptions) -> DeployedNetwork | None:
    """The VPC this stack created (found by its `Name` tag) and its subnets, or None.

    Plain invokes, answered before any resource is registered, in `pulumi preview` as in
    `pulumi up`; the VPC's ID from the stack's state is not known to the program until its
    resource is registered, which is too late to refuse a change.
    """
    vpc_ids = aws.ec2.get_vpcs(filters=[{"name": "tag:Name", "values": [prefix]}], opts=opts).ids
    vpc_ids = sorted(vpc_ids or [])
    if not vpc_ids:
        return None
    if len(vpc_ids) > 1:
        pulumi.log.warn(
            f"network: several VPCs are named {prefix} ({', '.join(vpc_ids)}); the zones "
            "of the stack's VPC are not checked against network.availabilityZones"
        )
        return None
    vpc = aws.ec2.get_vpc(id=vpc_ids[0], opts=opts)
    subnet_ids = aws.ec2.get_subnets(
        filters=[{"name": "vpc-id", "values": [vpc_ids[0]]}], opts=opts
    ).ids
    subnets = []
    for subnet_id in sorted(subnet_ids or []):
        found = aws.ec2.get_subnet(id=subnet_id, opts=opts)
        tags = dict(found.tags or {})
        tier, index = _slot_of(prefix, tags)
        subnets.append(
            DeployedSubnet(
                subnet_id, found.cidr_block, found.availability_zone, tier=tier, index=index
            )
        )
    return DeployedNetwork(vpc_ids[0], vpc.cidr_block, tuple(subnets))


def _slot_of(prefix: str, tags: dict[str, str]) -> tuple[str | None, int | None]:
    tier = tags.get("tier")
    if tier not in TIERS:
        return None, None
    index = tags.get(ZONE_INDEX_TAG)
    if index is None:
        match = _NAME_INDEX.search(tags.get("Name", ""))
        if not match or tags["Name"] != f"{prefix}-{match[1]}-{match[2]}" or match[1] != tier:
            return None, None
        index = match[2]
    # ASCII digits only: str.isdigit() also accepts characters int() refuses, such as "²".
    return (tier, int(index)) if re.fullmatch(r"[0-9]{1,2}", index) else (None, None)


@dataclass(frozen=True)
class ZonalSubnet:
    """A private subnet and its availability zone."""

    subnet_id: pulumi.Output[str]
    availability_zone: pulumi.Output[str]


def one_per_zone(subnets: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The first (subnet, zone) of each zone, in the given order.

    EFS accepts one mount target per availability zone, and a zonal resource (an EBS
    volume) pairs with one subnet of its zone: an existing VPC may have several private
    subnets in one zone.
    """
    seen: set[str] = set()
    out = []
    for subnet, zone in subnets:
        if zone not in seen:
            seen.add(zone)
            out.append((subnet, zone))
    return out


class NetworkArgs(TypedDict, total=False):
    """The VPC: a new one (cidrBlock, availabilityZones, natGateways), or an existing one (vpcId and its subnets). Default: a new 10.0.0.0/16 VPC in two zones with one NAT gateway."""  # noqa: E501

    cidr_block: str
    """IPv4 range of a new VPC (/16 to /25), cut into fixed slots: zone i takes slot i of the first half (public) and of the second (private). Default: 10.0.0.0/16."""  # noqa: E501
    availability_zones: int
    """Availability zones of a new VPC (2 to 6, at most the region's); adding zones adds subnets and replaces none, fewer than the VPC has are refused. Default: 2."""  # noqa: E501
    nat_gateways: int
    """NAT gateways of a new VPC: 1 (shared), one per zone, or 0 when no task in the private subnets needs the internet. Default: 1."""  # noqa: E501
    vpc_id: str
    """ID of an existing VPC to use instead of creating one; needs publicSubnetIds and privateSubnetIds."""  # noqa: E501
    public_subnet_ids: Sequence[str]
    """With vpcId: its public subnets, for load balancers (at least two, in two zones)."""
    private_subnet_ids: Sequence[str]
    """With vpcId: its private subnets, for the tasks (their zones are read before any resource is registered)."""  # noqa: E501


def network_settings(args: Mapping[str, Any]) -> NetworkSettings:
    """`args` validated as the `network` configuration key is; a bad value raises a
    ConfigError naming the argument (`cidrBlock`), before any resource is registered."""
    with as_arguments("network."):
        return parse_network({"network": config_from_args(args, NetworkArgs)})


def _invoke_provider(opts: pulumi.ResourceOptions | None) -> pulumi.ProviderResource | None:
    """The AWS provider the component's resources will use, for invokes made before it
    registers (which cannot name it as their parent): `provider`, then `providers`, then
    the parent's."""
    if opts is None:
        return None
    if opts.provider is not None:
        return opts.provider
    providers = opts.providers
    if isinstance(providers, Mapping):
        found = providers.get("aws")
    else:
        found = next((p for p in providers or [] if p.package == "aws"), None)
    if found is not None:
        return found
    return opts.parent.get_provider("aws::") if opts.parent is not None else None


class Network(pulumi.ComponentResource):
    """A VPC with public and private subnets across availability zones (NAT for the private ones), or the IDs of an existing VPC, with the same outputs either way."""  # noqa: E501

    vpc_id: pulumi.Output[str]
    """ID of the VPC."""
    vpc_cidr_block: pulumi.Output[str]
    """IPv4 range of the VPC."""
    public_subnet_ids: pulumi.Output[list[str]]
    """Public subnets, one per zone (load balancers); known once each has its routes."""
    private_subnet_ids: pulumi.Output[list[str]]
    """Private subnets, one per zone (tasks); known once each has its routes, NAT included."""

    def __init__(
        self,
        name: str,
        args: NetworkArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        settings: NetworkSettings | None = None,
    ):
        """`settings`: this program's `network` configuration, already parsed (Python
        only), used instead of `args`; errors then name the configuration keys."""
        # Everything is checked before the component registers: a refusal leaves the
        # stack untouched.
        if settings is None:
            with as_arguments("network."):
                s = network_settings(args)
                zones = self._plan(s, opts)
        elif args:
            raise ValueError("Network takes args or settings, not both")
        else:
            s = settings
            zones = self._plan(s, opts)
        super().__init__(component_type("network", "Network"), name, None, opts)
        # One private subnet per availability zone; how many is known before deployment.
        self.private_zonal_subnets: list[ZonalSubnet]
        if zones is not None:
            self._create(name, s, zones)
        else:
            self._adopt(s)
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "vpcCidrBlock": self.vpc_cidr_block,
                "publicSubnetIds": self.public_subnet_ids,
                "privateSubnetIds": self.private_subnet_ids,
            }
        )

    @staticmethod
    def _plan(s: NetworkSettings, opts: pulumi.ResourceOptions | None) -> list[ZonePlan] | None:
        """The zones of a new VPC, read from the region and the stack's VPC; None: adopt."""
        if not s.creates_vpc:
            return None
        invoke = pulumi.InvokeOptions(provider=_invoke_provider(opts))
        region_zones = aws.get_availability_zones(state="available", opts=invoke).names
        return plan_zones(s, region_zones or [], read_deployed(physical_name(), invoke))

    def _adopt(self, s: NetworkSettings) -> None:
        vpc = aws.ec2.get_vpc_output(id=s.vpc_id, opts=pulumi.InvokeOutputOptions(parent=self))
        self.vpc_id = pulumi.Output.from_input(s.vpc_id)
        self.vpc_cidr_block = vpc.cidr_block
        self.public_subnet_ids = pulumi.Output.from_input(list(s.public_subnet_ids))
        self.private_subnet_ids = pulumi.Output.from_input(list(s.private_subnet_ids))
        # The zones of existing subnets are read now (a plain invoke), so the number of
        # per-zone resources is known when they are registered.
        zones = [
            (subnet, aws.ec2.get_subnet(id=subnet, opts=pulumi.InvokeOptions(parent=self)))
            for subnet in s.private_subnet_ids
        ]
        self.private_zonal_subnets = [
            ZonalSubnet(pulumi.Output.from_input(subnet), pulumi.Output.from_input(zone))
            for subnet, zone in one_per_zone(
                [(subnet, found.availability_zone) for subnet, found in zones]
            )
        ]

    def _create(self, name: str, s: NetworkSettings, zones: list[ZonePlan]) -> None:
        child = pulumi.ResourceOptions(parent=self)
        prefix = physical_name()
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=s.cidr_block,
            enable_dns_support=True,
            enable_dns_hostnames=True,  # needed for EFS and private DNS of VPC endpoints
            tags={"Name": prefix},
            opts=child,
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags={"Name": prefix}, opts=child
        )

        public_rt = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags={"Name": f"{prefix}-public"},
            opts=child,
        )
        public_subnets, private_subnets, nat_ids = [], [], []
        for zone in zones:
            i = zone.index
            public = aws.ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=vpc.id,
                cidr_block=zone.public_cidr,
                availability_zone=zone.availability_zone,
                # Tasks that need a public IP (direct-task) ask for one explicitly.
                map_public_ip_on_launch=False,
                tags={"Name": f"{prefix}-public-{i}", "tier": "public", ZONE_INDEX_TAG: str(i)},
                opts=child,
            )
            routed = aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}", subnet_id=public.id, route_table_id=public_rt.id, opts=child
            )
            public_subnets.append((public, routed))
            if i < s.nat_gateways:
                eip = aws.ec2.Eip(
                    f"{name}-nat-{i}",
                    domain="vpc",
                    tags={"Name": f"{prefix}-nat-{i}"},
                    opts=child,
                )
                nat = aws.ec2.NatGateway(
                    f"{name}-nat-{i}",
                    allocation_id=eip.id,
                    subnet_id=public.id,
                    tags={"Name": f"{prefix}-nat-{i}"},
                    # A NAT gateway needs the VPC to be attached to the internet first.
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
                nat_ids.append(nat.id)

        for zone in zones:
            i = zone.index
            private = aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                cidr_block=zone.private_cidr,
                availability_zone=zone.availability_zone,
                tags={"Name": f"{prefix}-private-{i}", "tier": "private", ZONE_INDEX_TAG: str(i)},
                opts=child,
            )
            # With one NAT per zone each private subnet keeps its egress in its zone;
            # with one NAT all share it; with none the subnets have no internet route.
            routes = []
            if nat_ids:
                routes = [{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat_ids[i % len(nat_ids)]}]
            rt = aws.ec2.RouteTable(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                routes=routes,
                tags={"Name": f"{prefix}-private-{i}"},
                opts=child,
            )
            routed = aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}", subnet_id=private.id, route_table_id=rt.id, opts=child
            )
            private_subnets.append((private, routed))

        self.vpc_id = vpc.id
        self.vpc_cidr_block = vpc.cidr_block
        self.public_subnet_ids = _routed_ids(public_subnets)
        self.private_subnet_ids = _routed_ids(private_subnets)
        self.private_zonal_subnets = [
            ZonalSubnet(_routed_ids([pair]).apply(lambda ids: ids[0]), pair[0].availability_zone)
            for pair in private_subnets
        ]


def _routed_ids(
    subnets: list[tuple[aws.ec2.Subnet, aws.ec2.RouteTableAssociation]],
) -> pulumi.Output[list[str]]:
    """The subnet IDs, available only once each subnet has its routes.

    A task started in a subnet whose route table is not associated yet (or whose NAT
    gateway is still being created) cannot pull its image, read its secrets or ship logs,
    and its service fails the first deployment. Resources that take these IDs therefore
    wait for the associations, and through them for the route tables and NAT gateways.
    """
    ids = [subnet.id for subnet, _ in subnets]
    routes = [association.id for _, association in subnets]
    return pulumi.Output.all(*ids, *routes).apply(lambda values: list(values[: len(ids)]))

"""The VPC every topology runs in: created here, or adopted from existing IDs.

Both modes expose the same attributes, so a topology never knows which one it got.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.naming import physical_name
from settings import NetworkSettings


def subnet_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """Split the VPC into equal public and private subnets, one of each per zone.

    Public subnets only hold load balancers and NAT gateways, but equal sizes keep the
    plan simple and leave room: a /16 with two zones gives four /18s.
    """
    network = ipaddress.ip_network(vpc_cidr)
    extra_bits = math.ceil(math.log2(2 * zones))
    blocks = [str(b) for b in network.subnets(prefixlen_diff=extra_bits)]
    return blocks[:zones], blocks[zones : 2 * zones]


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


@dataclass(frozen=True)
class NetworkArgs:
    settings: NetworkSettings


class Network(pulumi.ComponentResource):
    """Public and private subnets across zones, or the IDs of an existing VPC."""

    vpc_id: pulumi.Output[str]
    vpc_cidr_block: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]
    # One private subnet per availability zone; how many is known before deployment.
    private_zonal_subnets: list[ZonalSubnet]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ecs-tls:network:Network", name, None, opts)
        s = args.settings
        if s.creates_vpc:
            self._create(name, s)
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

    def _create(self, name: str, s: NetworkSettings) -> None:
        child = pulumi.ResourceOptions(parent=self)
        zones = aws.get_availability_zones_output(
            state="available", opts=pulumi.InvokeOutputOptions(parent=self)
        ).names
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
        public_cidrs, private_cidrs = subnet_cidrs(s.cidr_block, s.availability_zones)

        public_rt = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags={"Name": f"{prefix}-public"},
            opts=child,
        )
        public_subnets, private_subnets, nat_ids = [], [], []
        for i in range(s.availability_zones):
            zone = zones.apply(lambda names, i=i: names[i])
            public = aws.ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=vpc.id,
                cidr_block=public_cidrs[i],
                availability_zone=zone,
                # Tasks that need a public IP (direct-task) ask for one explicitly.
                map_public_ip_on_launch=False,
                tags={"Name": f"{prefix}-public-{i}", "tier": "public"},
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

        for i in range(s.availability_zones):
            private = aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                cidr_block=private_cidrs[i],
                availability_zone=zones.apply(lambda names, i=i: names[i]),
                tags={"Name": f"{prefix}-private-{i}", "tier": "private"},
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

"""Network: a new VPC in N zones, or an existing one adopted without creating anything."""

from __future__ import annotations

import ipaddress

import pytest

from components.network import subnet_cidrs
from constants.config import PRIVATE_SUBNET_TOPOLOGIES
from scripts.mock_runtime import AZ_NAMES, config_error
from tests.conftest import MINIMAL_CONFIG

BASE = {"topology": "alb-envoy", "domain": "app.example.com"}
EXISTING = {
    "vpcId": "vpc-0123456789abcdef0",
    "publicSubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "privateSubnetIds": ["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"],
}


def _subnets(graph, tier):
    return [r for r in graph.of_type("aws:ec2/subnet:Subnet") if r.inputs["tags"]["tier"] == tier]


@pytest.mark.parametrize(("zones", "nat"), [(2, 0), (2, 1), (3, 1), (3, 3)])
def test_new_vpc_spreads_subnets_and_nat(program, stand_in_topologies, zones, nat):
    # Without NAT only a topology whose tasks sit in public subnets is accepted.
    base = MINIMAL_CONFIG["direct-task"] if nat == 0 else BASE
    graph = program({**base, "network": {"availabilityZones": zones, "natGateways": nat}})
    vpc = graph.one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["cidrBlock"] == "10.0.0.0/16"
    assert vpc.inputs["enableDnsHostnames"] and vpc.inputs["enableDnsSupport"]

    public, private = _subnets(graph, "public"), _subnets(graph, "private")
    assert len(public) == len(private) == zones
    for tier in (public, private):
        assert sorted(s.inputs["availabilityZone"] for s in tier) == AZ_NAMES[:zones]
    assert not any(s.inputs.get("mapPublicIpOnLaunch", False) for s in public + private)

    cidrs = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in public + private]
    assert all(c.subnet_of(ipaddress.ip_network("10.0.0.0/16")) for c in cidrs)
    assert not any(a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1 :])

    assert len(graph.of_type("aws:ec2/natGateway:NatGateway")) == nat
    assert len(graph.of_type("aws:ec2/eip:Eip")) == nat
    igw = graph.one("aws:ec2/internetGateway:InternetGateway")
    for gateway in graph.of_type("aws:ec2/natGateway:NatGateway"):
        assert igw.urn in gateway.dependencies, "a NAT gateway must wait for the IGW"

    tables = {t.name: t for t in graph.of_type("aws:ec2/routeTable:RouteTable")}
    assert tables["network-public"].inputs["routes"][0]["cidrBlock"] == "0.0.0.0/0"
    private_routes = [tables[f"network-private-{i}"].inputs.get("routes", []) for i in range(zones)]
    if nat == 0:
        assert all(routes == [] for routes in private_routes)
    else:
        nat_ids = {r[0]["natGatewayId"] for r in private_routes}
        assert len(nat_ids) == nat, "one NAT shared, or one per zone"
    assert len(graph.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")) == 2 * zones


def test_existing_vpc_creates_no_network_resources(program, stand_in_topologies):
    graph = program({**BASE, "network": EXISTING})
    network = graph.one("ecs-tls:network:Network")
    assert graph.children(network) == []
    vpc_types = {
        "aws:ec2/vpc:Vpc",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/eip:Eip",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/routeTableAssociation:RouteTableAssociation",
    }
    assert not [r for r in graph if r.type in vpc_types]
    outputs = graph.stack_outputs
    assert outputs["vpcId"] == EXISTING["vpcId"]


def test_both_modes_expose_the_same_outputs(program, stand_in_topologies):
    import pulumi

    from components.network import Network

    created = program(BASE)
    adopted = program({**BASE, "network": EXISTING})
    assert set(created.stack_outputs) == set(adopted.stack_outputs)
    attributes = {k for k, v in Network.__annotations__.items() if "Output" in str(v)}
    assert attributes == {"vpc_id", "vpc_cidr_block", "public_subnet_ids", "private_subnet_ids"}
    assert pulumi  # the annotation check above reads the component's declared outputs


@pytest.mark.parametrize(
    ("cidr", "zones", "prefix"),
    [
        ("10.0.0.0/16", 2, 20),
        ("10.0.0.0/16", 6, 20),
        ("10.8.0.0/20", 3, 24),
        ("10.8.0.0/23", 6, 27),
        ("192.168.0.0/24", 4, 27),
        ("192.168.0.0/25", 2, 27),
    ],
)
def test_subnet_cidrs_are_equal_and_disjoint(cidr, zones, prefix):
    public, private = subnet_cidrs(cidr, zones)
    blocks = [ipaddress.ip_network(b) for b in public + private]
    assert len(public) == len(private) == zones
    assert {b.prefixlen for b in blocks} == {prefix}
    assert len(set(blocks)) == 2 * zones


@pytest.mark.parametrize("topology", PRIVATE_SUBNET_TOPOLOGIES)
def test_no_nat_is_refused_where_tasks_run_in_private_subnets(stand_in_topologies, topology):
    message = config_error({**MINIMAL_CONFIG[topology], "network": {"natGateways": 0}})
    assert message.startswith("ecs-tls:network.natGateways: 0 is not enough for topology")
    assert "pull images" in message and "use 1" in message


def test_tasks_wait_for_the_routes_of_their_subnets(program):
    """A task started before its subnet has a NAT route cannot pull its image."""
    graph = program({**BASE, "network": {"availabilityZones": 3, "natGateways": 3}})
    associations = [
        a
        for a in graph.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
        if a.name.startswith("network-private-")
    ]
    nat_gateways = graph.of_type("aws:ec2/natGateway:NatGateway")
    (service,) = graph.of_type("aws:ecs/service:Service")
    assert len(associations) == 3
    for association in associations:
        assert association.urn in service.dependencies
        table = next(
            t
            for t in graph.of_type("aws:ec2/routeTable:RouteTable")
            if t.urn in association.dependencies
        )
        # Each private table routes through a NAT gateway, so it waits for one.
        assert any(nat.urn in table.dependencies for nat in nat_gateways)
    lb = graph.one("aws:lb/loadBalancer:LoadBalancer")
    public = [
        a
        for a in graph.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
        if a.name.startswith("network-public-")
    ]
    assert all(a.urn in lb.dependencies for a in public)

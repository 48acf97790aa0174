"""A created VPC grows by zones without replacing a subnet, and never shrinks by accident.

The plan proves it: the program runs for 2 zones, the result is what the EC2 lookups find
afterwards (`deployed`), and the program runs again for 3 zones and for 2 from 3.
"""

from __future__ import annotations

import ipaddress

import pytest

from components.network import DeployedNetwork, DeployedSubnet, plan_zones
from scripts import mock_runtime
from scripts.mock_runtime import config_error, deployed, deployed_from, run_program
from settings import ConfigError, NetworkSettings
from settings.subnet_layout import even_split_cidrs, slot_cidr, zone_capacity

BASE = {"topology": "alb-envoy", "domain": "app.example.com"}
SUBNET = "aws:ec2/subnet:Subnet"


def zones(n: int, **network) -> dict:
    return {**BASE, "network": {"availabilityZones": n, **network}}


def subnets(graph) -> dict[str, dict]:
    return {s.name: s.inputs for s in graph.of_type(SUBNET)}


def test_a_third_zone_adds_subnets_and_changes_none():
    two = run_program(zones(2))
    with deployed(*deployed_from(two)):
        three = run_program(zones(3))
    before, after = subnets(two), subnets(three)
    assert set(before) < set(after)
    for name, inputs in before.items():
        # Same CIDR, zone and tags: the provider has nothing to replace, or even update.
        assert after[name] == inputs, name
    added = [ipaddress.ip_network(after[n]["cidrBlock"]) for n in set(after) - set(before)]
    assert len(added) == 2
    every = [ipaddress.ip_network(i["cidrBlock"]) for i in after.values()]
    assert all(a.overlaps(b) == (a == b) for a in added for b in every)
    vpc = ipaddress.ip_network("10.0.0.0/16")
    assert all(n.subnet_of(vpc) for n in every)
    new_zones = {after[n]["availabilityZone"] for n in set(after) - set(before)}
    assert new_zones == {mock_runtime.az_names(mock_runtime.REGION)[2]}


def test_the_layout_does_not_depend_on_the_zone_count():
    """What the offline plan shows for `--against network.availabilityZones=N`: a fresh run
    of N zones cuts the first zones exactly as a run of fewer zones did."""
    runs = {n: subnets(run_program(zones(n, natGateways=1))) for n in (2, 3, 6)}
    for n in (3, 6):
        for name, inputs in runs[2].items():
            assert runs[n][name]["cidrBlock"] == inputs["cidrBlock"]
    assert {i["cidrBlock"] for i in runs[2].values()} == {
        "10.0.0.0/20",
        "10.0.16.0/20",
        "10.0.128.0/20",
        "10.0.144.0/20",
    }


def test_fewer_zones_than_the_vpc_has_is_refused_before_any_resource():
    with deployed(*deployed_from(run_program(zones(3)))):
        message = config_error(zones(2))
    assert "\n" not in message
    assert message.startswith("ecs-tls:network.availabilityZones: 2 is fewer than the 3 zones")
    assert "keep 3" in message


def test_the_same_zone_count_on_a_deployed_vpc_changes_nothing():
    graph = run_program(zones(3))
    with deployed(*deployed_from(graph)):
        again = run_program(zones(3))
    assert subnets(again) == subnets(graph)


def test_more_zones_than_the_region_has_is_refused_before_any_resource(monkeypatch):
    monkeypatch.setattr(mock_runtime, "az_names", lambda region: [f"{region}{c}" for c in "abc"])
    message = config_error(zones(4))
    assert message.startswith(
        "ecs-tls:network.availabilityZones: 4 is more than the 3 availability zones"
    )
    assert "eu-west-1a, eu-west-1b, eu-west-1c" in message


def _legacy(cidr: str, count: int) -> tuple[dict, list[dict]]:
    """A VPC as versions before fixed slots left it: evenly cut, no zone-index tag."""
    vpc = {"id": "vpc-0aaaaaaaaaaaaaaaa", "cidrBlock": cidr, "tags": {"Name": "ecs-tls-dev"}}
    public, private = even_split_cidrs(cidr, count)
    found = []
    for tier, cidrs in (("public", public), ("private", private)):
        for i, block in enumerate(cidrs):
            found.append(
                {
                    "id": f"subnet-0{tier[:2]}{i:015d}",
                    "vpcId": vpc["id"],
                    "cidrBlock": block,
                    "availabilityZone": mock_runtime.az_names(mock_runtime.REGION)[i],
                    "tags": {"Name": f"ecs-tls-dev-{tier}-{i}", "tier": tier},
                }
            )
    return vpc, found


def test_a_vpc_cut_by_an_earlier_version_keeps_its_subnets():
    vpc, found = _legacy("10.0.0.0/16", 2)
    with deployed(vpc, found):
        graph = run_program(zones(2))
    assert {i["cidrBlock"] for i in subnets(graph).values()} == {
        "10.0.0.0/18",
        "10.0.64.0/18",
        "10.0.128.0/18",
        "10.0.192.0/18",
    }
    assert subnets(graph)["network-private-1"]["availabilityZone"] == found[3]["availabilityZone"]


def test_a_vpc_cut_by_an_earlier_version_cannot_grow_in_place():
    with deployed(*_legacy("10.0.0.0/16", 2)):
        message = config_error(zones(3))
    assert "\n" not in message
    assert message.startswith("ecs-tls:network.availabilityZones: 3 zones need the public")
    assert "cut by an earlier version" in message and "destroyed and created again" in message


def test_another_cidr_block_for_a_deployed_vpc_is_refused_before_any_resource():
    with deployed(*deployed_from(run_program(zones(2)))):
        message = config_error(zones(2, cidrBlock="10.1.0.0/16"))
    assert "\n" not in message
    assert message.startswith(
        "ecs-tls:network.cidrBlock: '10.1.0.0/16' is not the range of this stack's VPC vpc-"
    )
    assert "(10.0.0.0/16)" in message and "keep 10.0.0.0/16" in message


def test_a_new_stack_with_another_cidr_block_is_cut_in_slots():
    graph = run_program(zones(3, cidrBlock="10.1.0.0/16"))
    assert graph.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"] == "10.1.0.0/16"
    assert subnets(graph)["network-public-0"]["cidrBlock"] == "10.1.0.0/20"
    assert subnets(graph)["network-private-2"]["cidrBlock"] == "10.1.160.0/20"


# --- the allocation itself, from plain values


def _settings(n: int, cidr: str = "10.0.0.0/16") -> NetworkSettings:
    return NetworkSettings(cidr_block=cidr, availability_zones=n, nat_gateways=1)


def _ours(tier: str, i: int, zone: str, cidr: str | None = None) -> DeployedSubnet:
    block = cidr or slot_cidr("10.0.0.0/16", tier, i)
    return DeployedSubnet(f"subnet-{tier}{i}", block, zone, tier=tier, index=i)


def test_new_zones_skip_the_zones_already_used():
    # The region's list moved (a zone is unavailable today): the kept zones stay theirs.
    deployed_vpc = DeployedNetwork(
        "vpc-1",
        "10.0.0.0/16",
        tuple(_ours(t, i, z) for t in ("public", "private") for i, z in ((0, "x-1b"), (1, "x-1c"))),
    )
    plans = plan_zones(_settings(3), ["x-1a", "x-1c", "x-1d"], deployed_vpc)
    assert [p.availability_zone for p in plans] == ["x-1b", "x-1c", "x-1a"]


def test_a_foreign_subnet_in_a_new_slot_is_named():
    foreign = DeployedSubnet("subnet-mine", "10.0.32.0/24", "x-1a")
    deployed_vpc = DeployedNetwork(
        "vpc-1",
        "10.0.0.0/16",
        (*(_ours(t, i, f"x-1{'ab'[i]}") for t in ("public", "private") for i in (0, 1)), foreign),
    )
    with pytest.raises(ConfigError) as caught:
        plan_zones(_settings(3), ["x-1a", "x-1b", "x-1c"], deployed_vpc)
    assert "subnet-mine (10.0.32.0/24)" in str(caught.value)
    assert str(caught.value).startswith("ecs-tls:network.availabilityZones:")


@pytest.mark.parametrize(
    ("cidr", "capacity", "size"),
    [
        ("10.0.0.0/16", 6, 20),
        ("10.0.0.0/20", 6, 24),
        ("10.0.0.0/23", 6, 27),
        ("10.0.0.0/24", 4, 27),
        ("10.0.0.0/25", 2, 27),
        ("10.0.0.0/26", 1, 27),
        ("10.0.0.0/27", 0, 27),
    ],
)
def test_capacity_and_slot_size_per_prefix(cidr, capacity, size):
    assert zone_capacity(cidr) == capacity
    if capacity:
        last = ipaddress.ip_network(slot_cidr(cidr, "private", capacity - 1))
        assert last.prefixlen == size
        assert last.subnet_of(ipaddress.ip_network(cidr))


@pytest.mark.parametrize(("cidr", "n"), [("10.0.0.0/26", 2), ("10.0.0.0/24", 5)])
def test_a_range_too_small_for_the_zones_names_the_cidr_block(cidr, n):
    message = config_error(zones(n, cidrBlock=cidr))
    assert message.startswith(f"ecs-tls:network.cidrBlock: '{cidr}' is not large enough for")


@pytest.mark.parametrize(
    ("tags", "slot"),
    [
        ({"Name": "ecs-tls-dev-public-1", "tier": "public"}, ("public", 1)),
        ({"Name": "x", "tier": "private", "ecs-tls:zone-index": "2"}, ("private", 2)),
        ({"Name": "ecs-tls-dev-public-1", "tier": "private"}, (None, None)),
        ({"Name": "ecs-tls-other-public-1", "tier": "public"}, (None, None)),
        ({"Name": "mine", "tier": "public", "ecs-tls:zone-index": "²"}, (None, None)),
        ({"Name": "ecs-tls-dev-public-0"}, (None, None)),
    ],
)
def test_which_subnets_are_the_stacks(tags, slot):
    from components.network import _slot_of

    assert _slot_of("ecs-tls-dev", tags) == slot

"""Where each subnet of a new VPC sits: one fixed slot per tier and zone index.

The VPC's range is cut into equal slots once, whatever the number of zones: the public
subnet of zone i takes slot i, the private subnet of zone i takes slot i of the second
half. Adding a zone fills a free slot and moves nothing, so no existing subnet (nor what
runs in it) is replaced.

    VPC prefix   slot (subnet) size   zones that fit
    /16 - /23    prefix + 4           6 (the configuration's limit; 8 slots per tier)
    /24          /27                  4
    /25          /27                  2
    /26 - /28    -                    none: too small

A subnet that holds a load balancer needs at least a /27 with eight free addresses
(Elastic Load Balancing user guide, "Subnets for your load balancer"), so slots never go
below /27 and small VPCs get fewer of them.

Pure functions of plain values: the settings check the size before anything is
registered, and the network component reads the layout from here.
"""

from __future__ import annotations

import ipaddress

from constants.config import MAX_AZS

# 2**4 = 16 equal slots: 8 per tier, room for the 6 zones the largest regions have.
SLOT_BITS = 4
SMALLEST_SLOT_PREFIX = 27
# AWS accepts IPv4 VPC ranges from /16 to /28 (Amazon VPC user guide, "VPC CIDR blocks").
VPC_PREFIXES = range(16, 29)
TIERS = ("public", "private")


def slot_prefix(vpc_cidr: str) -> int:
    return min(ipaddress.ip_network(vpc_cidr).prefixlen + SLOT_BITS, SMALLEST_SLOT_PREFIX)


def slots_per_tier(vpc_cidr: str) -> int:
    network = ipaddress.ip_network(vpc_cidr)
    return max(2 ** (slot_prefix(vpc_cidr) - network.prefixlen) // 2, 0)


def zone_capacity(vpc_cidr: str) -> int:
    """How many zones a VPC of this range can hold (0 when it cannot hold one pair)."""
    return min(slots_per_tier(vpc_cidr), MAX_AZS)


def slot_cidr(vpc_cidr: str, tier: str, index: int) -> str:
    """The CIDR of `tier`'s subnet in zone `index`: the same for any number of zones."""
    per_tier = slots_per_tier(vpc_cidr)
    if not 0 <= index < per_tier:
        raise ValueError(f"{vpc_cidr} has no slot {index} for a {tier} subnet")
    network = ipaddress.ip_network(vpc_cidr)
    size = 2 ** (32 - slot_prefix(vpc_cidr))
    first = network.network_address + (TIERS.index(tier) * per_tier + index) * size
    return f"{first}/{slot_prefix(vpc_cidr)}"


def subnet_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """The public and the private subnets' CIDRs of zones 0 .. zones-1."""
    return (
        [slot_cidr(vpc_cidr, "public", i) for i in range(zones)],
        [slot_cidr(vpc_cidr, "private", i) for i in range(zones)],
    )


def even_split_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """The layout of versions before fixed slots: the VPC cut evenly for the zone count.

    It fills the whole range (a /16 with two zones gives four /18s), so a VPC cut this
    way can keep its subnets but cannot take another zone. Kept to recognise such a VPC.
    """
    network = ipaddress.ip_network(vpc_cidr)
    extra_bits = (2 * zones - 1).bit_length()
    blocks = [str(b) for b in network.subnets(prefixlen_diff=extra_bits)]
    return blocks[:zones], blocks[zones : 2 * zones]

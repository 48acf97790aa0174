"""Route53 records pointing the user's domain at what the topology exposes."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def alias_record(
    name: str,
    zone_id: str,
    domain: str,
    target_dns_name: pulumi.Input[str],
    target_zone_id: pulumi.Input[str],
    parent: pulumi.Resource,
) -> aws.route53.Record:
    """An alias A record for `domain` to a load balancer (IPv4: the VPC has no IPv6)."""
    return aws.route53.Record(
        name,
        zone_id=zone_id,
        name=domain,
        type="A",
        aliases=[
            {"name": target_dns_name, "zone_id": target_zone_id, "evaluate_target_health": True}
        ],
        opts=pulumi.ResourceOptions(parent=parent),
    )

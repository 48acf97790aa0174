"""Security group rules, one resource per rule (the separate-rule resources AWS recommends)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def allow_tcp(
    name: str,
    security_group_id: pulumi.Input[str],
    port: int,
    parent: pulumi.Resource,
    *,
    description: str,
    peer_group_id: pulumi.Input[str] | None = None,
    cidr: str | None = None,
    egress: bool = False,
) -> pulumi.CustomResource:
    """Allow one TCP port in from (or, with `egress`, out to) a security group or a CIDR."""
    if (peer_group_id is None) == (cidr is None):
        raise ValueError(f"{name}: give exactly one of peer_group_id and cidr")
    rule = aws.vpc.SecurityGroupEgressRule if egress else aws.vpc.SecurityGroupIngressRule
    return rule(
        name,
        security_group_id=security_group_id,
        description=description,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        referenced_security_group_id=peer_group_id,
        cidr_ipv4=cidr,
        opts=pulumi.ResourceOptions(parent=parent),
    )

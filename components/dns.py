"""The Route53 record that points the user's domain at whatever the topology exposes.

It belongs to the foundation, under one name whatever the topology: a switch of topology
then updates the record in place. If each topology owned its own record, Pulumi would
create the new one before deleting the old one, and Route53 refuses a second A record with
the same name ("InvalidChangeBatch ... already exists"); `allow_overwrite` would let the
create pass, and the later delete of the old record would then remove the live one.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class AliasTarget:
    """A load balancer's DNS name and its canonical hosted zone."""

    dns_name: pulumi.Input[str]
    zone_id: pulumi.Input[str]


@dataclass(frozen=True)
class DomainAliasArgs:
    hosted_zone_id: str
    domain: str
    target: AliasTarget


class DomainAlias(pulumi.ComponentResource):
    """An alias A record for `domain` (IPv4 only: the VPC has no IPv6)."""

    record: aws.route53.Record

    def __init__(
        self, name: str, args: DomainAliasArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:dns:DomainAlias", name, None, opts)
        self.record = aws.route53.Record(
            name,
            zone_id=args.hosted_zone_id,
            name=args.domain,
            type="A",
            aliases=[
                {
                    "name": args.target.dns_name,
                    "zone_id": args.target.zone_id,
                    "evaluate_target_health": True,
                }
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"fqdn": self.record.fqdn})


class DomainName:
    """Gives the topology in place the one record of `domain` (when a zone is configured).

    The record is created on the topology's request, not after it, so that a topology can
    wait for it (HTTP-01 validation needs the name to resolve to the load balancer), yet it
    keeps one name and no parent whatever the topology: its URN never changes.
    """

    def __init__(self, domain: str, hosted_zone_id: str | None):
        self.domain = domain
        self.hosted_zone_id = hosted_zone_id
        self.alias: DomainAlias | None = None

    def point_at(self, target: AliasTarget) -> DomainAlias | None:
        """Create the alias record to `target`; None when the program manages no DNS."""
        if self.alias is not None:
            raise RuntimeError(f"{self.domain} already points at another target")
        if self.hosted_zone_id:
            self.alias = DomainAlias(
                "domain", DomainAliasArgs(self.hosted_zone_id, self.domain, target)
            )
        return self.alias

"""The Route53 record that points the user's domain at whatever the topology exposes.

It belongs to the foundation, under one name whatever the topology: a switch of topology
then updates the record in place. If each topology owned its own record, Pulumi would
create the new one before deleting the old one, and Route53 refuses a second A record with
the same name ("InvalidChangeBatch ... already exists"); `allow_overwrite` would let the
create pass, and the later delete of the old record would then remove the live one.

The CAA record of `domain` follows the same rule: one record set, one name, whatever the
topology; a switch rewrites its values in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from settings import ACME_DIRECTORIES, Settings

# CAA issuer domain names. Let's Encrypt's staging and production CAs both check CAA for
# letsencrypt.org. ACM issues when any of Amazon's four is named (ACM User Guide,
# "Configure a CAA record"); AWS Private CA does not check CAA, so Service Connect's
# private certificates need no entry.
LETS_ENCRYPT = "letsencrypt.org"
AMAZON = ("amazon.com", "amazontrust.com", "awstrust.com", "amazonaws.com")
# No CA at all (RFC 8659 4.2: an issue or issuewild value with no issuer domain name).
NO_CA = ";"
CAA_TTL = 300  # a topology switch changes the issuers; CAs may cache for 8 hours anyway
_CAA_VALUE = re.compile(r"[\x21\x23-\x7e ]*")  # printable ASCII without the double quote


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


# --------------------------------------------------------------------------- CAA


@dataclass(frozen=True)
class CaaPolicy:
    """Which CAs may issue certificates for `domain` and the names below it."""

    issuers: tuple[str, ...]  # `issue` values: an issuer domain name and its parameters
    wildcard: bool  # may they issue wildcards? (False adds `issuewild ";"`)
    iodef_email: str | None = None  # where CAs report refused requests (RFC 8659 4.4)


def caa_records(policy: CaaPolicy) -> list[str]:
    """Route53's CAA values, `<flags> <tag> "<value>"` (Route 53 Developer Guide, "CAA
    record type"), flags 0: none of the properties is critical."""
    values = [("issue", v) for v in policy.issuers or (NO_CA,)]
    if not policy.wildcard:
        # RFC 8659 4.3: for a wildcard request issuewild takes precedence over issue.
        values.append(("issuewild", NO_CA))
    if policy.iodef_email:
        values.append(("iodef", f"mailto:{policy.iodef_email}"))
    for tag, value in values:
        if not _CAA_VALUE.fullmatch(value):
            raise ValueError(f"CAA {tag} value {value!r}: printable ASCII without quotes only")
    return [f'0 {tag} "{value}"' for tag, value in values]


def lets_encrypt_issuer(challenge: str | None) -> str:
    """Let's Encrypt, limited to one ACME challenge type when the stack uses only that one
    (RFC 8657 4: `validationmethods=` takes ACME challenge type names)."""
    if challenge is None:
        return LETS_ENCRYPT
    return f"{LETS_ENCRYPT}; validationmethods={challenge}"


def caa_policy(s: Settings) -> CaaPolicy | None:
    """The CAA policy of the stack's domain, or None when the program writes none.

    - No hostedZoneId: the program manages no DNS.
    - nlb-certbot, direct-task: Let's Encrypt through the configured challenge only. An
      ACME server given as a URL is another CA whose CAA name the program cannot know: a
      record would refuse it, so there is none.
    - ACM issues the load balancer's certificate (`certificate.source` acm, the default of
      service-connect with a zone): Amazon's CAs too.
    - A certificate of your own (PEMs, or `certificate.arn`): its CA is unknown and its
      renewal must not be refused: no record.
    - Otherwise (generated certificates): Let's Encrypt only, so a public certificate for
      the name can still be obtained from the project's CA and brought in.

    Only direct-task issues a wildcard (`*.<domain>`); every other stack forbids them. The
    iodef report address is the alerts e-mail, where one is configured.
    """
    if s.hosted_zone_id is None or not s.caa_record:
        return None
    if s.topology in ("nlb-certbot", "direct-task"):
        if s.acme.server not in ACME_DIRECTORIES:
            return None
        issuers: tuple[str, ...] = (lets_encrypt_issuer(s.acme.challenge),)
    elif s.certificate is not None or s.listener_certificate.source == "existing":
        return None
    else:
        issuers = (lets_encrypt_issuer(None),)
        has_listener = s.topology == "alb-envoy" or (
            s.topology == "service-connect" and s.ingress != "none"
        )
        if has_listener and s.listener_certificate.source == "acm":
            issuers += AMAZON
    return CaaPolicy(
        issuers=issuers, wildcard=s.topology == "direct-task", iodef_email=s.alerts_email
    )


@dataclass(frozen=True)
class DomainCaaArgs:
    hosted_zone_id: str
    domain: str
    policy: CaaPolicy


class DomainCaa(pulumi.ComponentResource):
    """The CAA record set of `domain`: which CAs may issue for it and the names below it.

    CAs look for CAA from the requested name up the tree (RFC 8659 3), so this record also
    governs `*.<domain>` and direct-task's `<taskId>.<domain>`, and overrides a CAA record
    of a parent zone that would refuse the stack's CA. Route53 refuses it where `domain` has
    a CNAME (RFC 1034 3.6.2; the program's own record of `domain` is an alias A record) and
    where a CAA record set for `domain` already exists outside the stack (the program does
    not overwrite records it does not own).
    """

    record: aws.route53.Record

    def __init__(self, name: str, args: DomainCaaArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ecs-tls:dns:DomainCaa", name, None, opts)
        self.record = aws.route53.Record(
            name,
            zone_id=args.hosted_zone_id,
            name=args.domain,
            type="CAA",
            ttl=CAA_TTL,
            records=caa_records(args.policy),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"fqdn": self.record.fqdn})


def domain_caa(s: Settings) -> DomainCaa | None:
    """The stack's one CAA record set (same name whatever the topology), if any."""
    policy = caa_policy(s)
    if policy is None or s.hosted_zone_id is None:
        return None
    return DomainCaa("domain-caa", DomainCaaArgs(s.hosted_zone_id, s.domain, policy))

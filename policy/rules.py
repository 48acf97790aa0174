"""The ecs-tls design's rules as CrossGuard policies that hold for any Pulumi AWS program.

Each rule is a small function of what pulumi-policy hands a policy (`ResourceValidationArgs`
or `StackValidationArgs`) and a `report_violation` callback; `POLICIES` wraps them with
their name, description and configuration schema for `__main__.py`. This module imports
only pulumi-policy and the standard library: the CLI runs the pack from this directory in
its own virtualenv, so nothing of the program that is checked is importable here.

What a policy sees:
- a resource policy gets the resource's *inputs* as the engine registered them (camelCase
  names, numbers as floats, secrets unwrapped);
- a stack policy gets every resource's *outputs*, parent, and which resources each
  property was computed from (`property_dependencies`), which is how a stack policy tells
  which security group a rule or a load balancer belongs to before any ID exists;
- in `pulumi preview` a value computed from another resource's output is unknown: reading
  it raises pulumi-policy's UnknownValueError, and the CLI reports "can't run policy ...
  during preview" as an advisory. The rules read unknown values only where they must; the
  same rules run again, with every value known, during `pulumi up`.

Defaults of the configuration are what the ecs-tls stacks need, and each one is written
down next to the rule with the reason; docs/policy.md lists them for a user who runs the
pack on a program of their own.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

# Raised by pulumi-policy's proxies for a value unknown during preview (not re-exported by
# the package, so imported from its module; requirements.txt pins the version).
from pulumi_policy.proxy import UnknownValueError

PACK_NAME = "ecs-tls"

# --- reading inputs -----------------------------------------------------------------------


def _get(mapping: Mapping[str, Any], key: str) -> Any:
    """`mapping[key]`, or None when absent or unknown during preview: a stack policy skips
    what it cannot know yet instead of giving up on every other resource of the stack."""
    try:
        return mapping.get(key)
    except UnknownValueError:
        return None


def _strings(mapping: Mapping[str, Any], *keys: str) -> list[str]:
    """The known strings at `keys`, each a string or a list of strings."""
    found = []
    for key in keys:
        value = _get(mapping, key)
        if isinstance(value, str):
            items: Sequence[Any] = [value]
        else:
            items = value if isinstance(value, Sequence) else []
        for index in range(len(items)):
            try:
                item = items[index]
            except UnknownValueError:
                continue
            if isinstance(item, str):
                found.append(item)
    return found


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, Mapping)):
        return [value]
    return list(value)


def _config(args: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The policy's configuration over its defaults, so a rule reads the same values
    whether or not the CLI sends the schema's defaults."""
    return {**defaults, **dict(args.get_config() or {})}


def _port(value: Any) -> int | None:
    """Ports arrive as floats (protobuf numbers) or strings; None when absent."""
    if value is None or value == "":
        return None
    return int(float(value))


# --- 1. every listener is TLS 1.3 ----------------------------------------------------------

LISTENER_TYPES = frozenset(
    {
        "aws:lb/listener:Listener",
        "aws:alb/listener:Listener",  # the same resource under its ALB alias
        "aws:elasticloadbalancingv2/listener:Listener",  # its older alias
    }
)
# TLS 1.3 policies that keep TLS 1.0 and 1.1 off: `ELBSecurityPolicy-TLS13-1-0-*` and `-1-1-*`
# carry TLS 1.3 too but re-enable the old versions (ELB describe-ssl-policies).
TLS13_POLICY_RE = re.compile(r"^ELBSecurityPolicy-TLS13-1-[23]-")
LISTENER_DEFAULTS: Mapping[str, Any] = {
    # TCP listeners that pass TLS through to a target that terminates it: 443 (appmesh-efs'
    # internal NLB to the gateway Envoy), 7473 and 7687 (nlb-certbot: Neo4j's HTTPS and
    # bolt+s ports, where the database holds its own Let's Encrypt certificate).
    "tcpPassthroughPorts": [443, 7473, 7687],
    # A TCP listener on port 80 that forwards to an ACME HTTP-01 responder (nlb-certbot with
    # acme.challenge http-01). HTTP-01 is always plain HTTP on port 80 (RFC 8555, 8.3), so
    # this port cannot be TLS; false refuses it.
    "acmeHttp01": True,
}
LISTENER_SCHEMA = PolicyConfigSchema(
    properties={
        "tcpPassthroughPorts": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1, "maximum": 65535},
            "default": list(LISTENER_DEFAULTS["tcpPassthroughPorts"]),
            "description": "Ports of TCP listeners whose targets terminate TLS themselves.",
        },
        "acmeHttp01": {
            "type": "boolean",
            "default": LISTENER_DEFAULTS["acmeHttp01"],
            "description": "Allow a TCP listener on port 80 for the ACME HTTP-01 challenge.",
        },
    }
)


def listener_uses_tls13(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """HTTPS and TLS listeners name a TLS 1.3 policy; an HTTP listener only redirects to
    HTTPS; a TCP listener only on a configured passthrough port or the ACME HTTP-01 port.

    Without `sslPolicy` AWS uses ELBSecurityPolicy-2016-08, which has no TLS 1.3 and offers
    TLS 1.0; the ALB also picks its TLS policy towards HTTPS targets from the listener's.
    """
    if args.resource_type not in LISTENER_TYPES:
        return
    config = _config(args, LISTENER_DEFAULTS)
    props = args.props
    # An ALB listener without a protocol is HTTP (the API's default).
    protocol = str(props.get("protocol") or "HTTP").upper()
    port = _port(props.get("port"))
    if protocol in ("HTTPS", "TLS"):
        policy = props.get("sslPolicy")
        if not policy or not TLS13_POLICY_RE.match(str(policy)):
            shown = policy or "(unset: AWS uses ELBSecurityPolicy-2016-08)"
            report_violation(
                f"{protocol} listener on port {port}: sslPolicy {shown} is not a TLS 1.3 policy "
                "without TLS 1.0/1.1; use e.g. ELBSecurityPolicy-TLS13-1-2-2021-06 or "
                "ELBSecurityPolicy-TLS13-1-3-2021-06.",
                None,
            )
        return
    if protocol == "HTTP":
        for action in _as_list(props.get("defaultActions")):
            redirect = action.get("redirect") or {}
            kind = action.get("type")
            if kind != "redirect" or str(redirect.get("protocol")).upper() != "HTTPS":
                what = (
                    f"a redirect to {redirect.get('protocol') or '#{protocol}'}"
                    if kind == "redirect"
                    else f"{kind!r}"
                )
                report_violation(
                    f"HTTP listener on port {port}: its default action must redirect to HTTPS "
                    f"(type redirect, redirect.protocol HTTPS), not {what}.",
                    None,
                )
        return
    if protocol == "TCP":
        if port in {int(p) for p in config["tcpPassthroughPorts"]}:
            return
        if port == 80 and config["acmeHttp01"]:
            return
        report_violation(
            f"TCP listener on port {port}: plain TCP is allowed only where the target terminates "
            "TLS (policy config tcpPassthroughPorts, now "
            f"{sorted(int(p) for p in config['tcpPassthroughPorts'])}) or for ACME HTTP-01 on "
            "port 80 (acmeHttp01); otherwise use a TLS listener.",
            None,
        )
        return
    report_violation(
        f"{protocol} listener on port {port}: not TLS; use HTTPS (ALB) or TLS (NLB).", None
    )


LISTENER_RULE_TYPES = frozenset(
    {
        "aws:lb/listenerRule:ListenerRule",
        "aws:alb/listenerRule:ListenerRule",
        "aws:elasticloadbalancingv2/listenerRule:ListenerRule",
    }
)
ACME_PATH = "/.well-known/acme-challenge/"
HTTP_RULE_DEFAULTS: Mapping[str, Any] = {"acmeHttp01": True}
HTTP_RULE_SCHEMA = PolicyConfigSchema(
    properties={
        "acmeHttp01": {
            "type": "boolean",
            "default": HTTP_RULE_DEFAULTS["acmeHttp01"],
            "description": f"Allow an HTTP listener's rule to forward {ACME_PATH}* only.",
        }
    }
)


def _is_acme_only(conditions: Any) -> bool:
    """True when the rule matches ACME HTTP-01 paths and nothing else."""
    paths = [
        str(v)
        for c in _as_list(conditions)
        for v in _as_list((c.get("pathPattern") or {}).get("values"))
    ]
    return bool(paths) and all(p.startswith(ACME_PATH) for p in paths)


def http_listener_rules(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The rules of an HTTP listener redirect to HTTPS or answer a fixed response; they
    forward only the ACME HTTP-01 challenge path (RFC 8555, 8.3), when `acmeHttp01` allows.

    `listener-tls13` sees a listener's default action only; a rule added to it later would
    otherwise serve the application in plain HTTP on the same port.
    """
    acme = bool(_config(args, HTTP_RULE_DEFAULTS)["acmeHttp01"])
    http_listeners: set[str] = set()
    for r in args.resources:
        if r.resource_type in LISTENER_TYPES:
            protocol = _get(r.props, "protocol")
            if str(protocol or "HTTP").upper() == "HTTP":
                http_listeners |= {r.urn, *_strings(r.props, "arn", "id")}
    for r in args.resources:
        if r.resource_type not in LISTENER_RULE_TYPES:
            continue
        if not _identities(r, "listenerArn") & http_listeners:
            continue
        try:
            actions = _as_list(r.props.get("actions"))
            acme_only = _is_acme_only(r.props.get("conditions"))
            kinds = [
                (a.get("type"), str((a.get("redirect") or {}).get("protocol")).upper())
                for a in actions
            ]
        except UnknownValueError:
            continue
        for kind, protocol in kinds:
            if kind == "fixed-response" or (kind == "redirect" and protocol == "HTTPS"):
                continue
            if kind == "forward" and acme and acme_only:
                continue
            report_violation(
                f"{r.name}: a rule of an HTTP listener with action {kind!r}; it may only "
                f"redirect to HTTPS, answer a fixed response, or forward {ACME_PATH}* "
                "(policy config acmeHttp01).",
                r.urn,
            )


# --- 2. no task port open to the internet --------------------------------------------------

LOAD_BALANCER_TYPES = frozenset(
    {
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:alb/loadBalancer:LoadBalancer",
        "aws:elasticloadbalancingv2/loadBalancer:LoadBalancer",
        "aws:elb/loadBalancer:LoadBalancer",  # Classic: also `securityGroups`
    }
)
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
PUBLIC_PORT_DEFAULTS: Mapping[str, Any] = {
    # direct-task has no load balancer: each task is reached on its public IP at Envoy's TLS
    # port (envoy.port, 8443 by default). Any other port of a group that is not a load
    # balancer's is an accident.
    "publicTaskPorts": [8443],
}
PUBLIC_PORT_SCHEMA = PolicyConfigSchema(
    properties={
        "publicTaskPorts": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0, "maximum": 65535},
            "default": list(PUBLIC_PORT_DEFAULTS["publicTaskPorts"]),
            "description": "TLS ports that tasks deliberately expose on public IPs.",
        },
    }
)
_ALL_PORTS = (0, 65535)


def _open_to_internet(cidrs: Iterable[Any]) -> list[str]:
    """The CIDRs of `cidrs` that cover the whole address space (0.0.0.0/0, ::/0, and any
    spelling of them)."""
    found = []
    for cidr in cidrs:
        try:
            if ipaddress.ip_network(str(cidr), strict=False).prefixlen == 0:
                found.append(str(cidr))
        except ValueError:
            continue
    return found


def _port_range(protocol: Any, from_port: Any, to_port: Any) -> tuple[int, int] | None:
    """The TCP/UDP ports a rule opens; None for ICMP, whose "ports" are a type and a code."""
    proto = str(protocol if protocol is not None else "-1").lower()
    if proto in ("icmp", "icmpv6", "1", "58"):
        return None
    if proto in ("-1", "all"):
        return _ALL_PORTS
    low, high = _port(from_port), _port(to_port)
    if low is None and high is None:
        return _ALL_PORTS
    low = low if low is not None else high
    high = high if high is not None else low
    if low is not None and low < 0:  # -1 with a real protocol: every port
        return _ALL_PORTS
    return (low or 0, high or 0)


def _rule_ports(rule: Mapping[str, Any], protocol_key: str) -> tuple[int, int] | None:
    """The ports of an ingress rule; None for ICMP or while a value is unknown."""
    try:
        return _port_range(rule.get(protocol_key), rule.get("fromPort"), rule.get("toPort"))
    except UnknownValueError:
        return None


def _identities(resource: Any, key: str) -> set[str]:
    """What the security group(s) in `resource.props[key]` are known as: the URNs of the
    resources they were computed from, and their IDs when known."""
    found = {dep.urn for dep in resource.property_dependencies.get(key, [])}
    return found | set(_strings(resource.props, key))


def no_public_task_port(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """No ingress rule opens a port to 0.0.0.0/0 or ::/0 on a security group that is not a
    load balancer's, except the configured `publicTaskPorts` on a group that no load balancer
    reaches.

    A load balancer's own group may face the internet: what it accepts is governed by its
    listeners (policy `listener-tls13`). Any other group protects tasks, instances or data
    stores, where an open port is an accident unless it is a TLS port that the design puts
    on public IPs on purpose (direct-task's Envoy, which has no load balancer). A group that
    admits a load balancer's group is behind that load balancer, and a public port there
    would bypass it, whatever the port.
    """
    config = _config(args, PUBLIC_PORT_DEFAULTS)
    allowed = {int(p) for p in config["publicTaskPorts"]}
    balancer_groups: set[str] = set()
    for r in args.resources:
        if r.resource_type in LOAD_BALANCER_TYPES:
            balancer_groups |= _identities(r, "securityGroups")
    # Groups that admit a load balancer's group sit behind it: a public port there bypasses
    # the load balancer, so publicTaskPorts does not apply to them.
    behind_balancer: set[str] = set()
    for r in args.resources:
        source = {INGRESS_RULE: "referencedSecurityGroupId", LEGACY_RULE: "sourceSecurityGroupId"}
        if r.resource_type in source and _identities(r, source[r.resource_type]) & balancer_groups:
            behind_balancer |= _identities(r, "securityGroupId")

    def check(resource: Any, group: set[str], cidrs: list[str], ports: tuple[int, int] | None):
        if ports is None or not cidrs or group & balancer_groups:
            return
        low, high = ports
        deliberate = high - low < 1024 and all(p in allowed for p in range(low, high + 1))
        if deliberate and not group & behind_balancer:
            return
        shown = f"port {low}" if low == high else f"ports {low}-{high}"
        where = (
            "a security group behind a load balancer"
            if group & behind_balancer
            else "a security group that is no load balancer's"
        )
        report_violation(
            f"{resource.name}: {shown} open to {', '.join(cidrs)} on {where}. Open it to the "
            "load balancer's group instead, or, for a task reached on its public IP, list the "
            f"TLS port in the policy config publicTaskPorts (now {sorted(allowed)}).",
            resource.urn,
        )

    for r in args.resources:
        props = r.props
        if r.resource_type == INGRESS_RULE:
            cidrs = _open_to_internet(_strings(props, "cidrIpv4", "cidrIpv6"))
            ports = _rule_ports(props, "ipProtocol")
            check(r, _identities(r, "securityGroupId"), cidrs, ports)
        elif r.resource_type == LEGACY_RULE and _get(props, "type") == "ingress":
            cidrs = _open_to_internet(_strings(props, "cidrBlocks", "ipv6CidrBlocks"))
            check(r, _identities(r, "securityGroupId"), cidrs, _rule_ports(props, "protocol"))
        elif r.resource_type == SECURITY_GROUP:
            group = {r.urn, *_strings(props, "id")}
            rules = _get(props, "ingress") or []
            for index in range(len(rules)):
                try:
                    rule = rules[index]
                except UnknownValueError:
                    continue
                cidrs = _open_to_internet(_strings(rule, "cidrBlocks", "ipv6CidrBlocks"))
                check(r, group, cidrs, _rule_ports(rule, "protocol"))


# --- 3. storage encrypted at rest ----------------------------------------------------------


def efs_encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """EFS file systems are created encrypted (it cannot be turned on later)."""
    if (
        args.resource_type == "aws:efs/fileSystem:FileSystem"
        and args.props.get("encrypted") is not True
    ):
        report_violation(
            "EFS file system without encrypted: true (it cannot be changed later).", None
        )


def _truthy(value: Any) -> bool:
    # Launch template block devices take "true"/"false" strings; volumes take booleans.
    return value is True or str(value).lower() == "true"


def ebs_encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """EBS volumes, and the EBS block devices of launch templates and instances, say
    `encrypted` themselves. The account's "encryption by default" setting is invisible to a
    policy and can be switched off, so it does not count."""
    props = args.props
    if args.resource_type == "aws:ebs/volume:Volume":
        if not _truthy(props.get("encrypted")):
            report_violation("EBS volume without encrypted: true.", None)
    elif args.resource_type == "aws:ec2/launchTemplate:LaunchTemplate":
        for mapping in _as_list(props.get("blockDeviceMappings")):
            ebs = mapping.get("ebs")
            if ebs is not None and not _truthy(ebs.get("encrypted")):
                report_violation(
                    f"launch template block device {mapping.get('deviceName')}: ebs.encrypted is "
                    'not "true".',
                    None,
                )
    elif args.resource_type == "aws:ec2/instance:Instance":
        devices = [props.get("rootBlockDevice"), *_as_list(props.get("ebsBlockDevices"))]
        for device in devices:
            if device is not None and not _truthy(device.get("encrypted")):
                name = device.get("deviceName") or "root"
                report_violation(f"instance block device {name}: encrypted is not true.", None)


BUCKET_TYPES = frozenset({"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"})
BUCKET_SSE_TYPES = frozenset(
    {
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
    }
)
SSE_ALGORITHMS = frozenset({"AES256", "aws:kms", "aws:kms:dsse"})


def _sse_rules_problem(rules: Any) -> str | None:
    rules = _as_list(rules)
    if not rules:
        return "no rule"
    for rule in rules:
        default = rule.get("applyServerSideEncryptionByDefault") or {}
        algorithm = default.get("sseAlgorithm")
        if algorithm not in SSE_ALGORITHMS:
            return f"sseAlgorithm {algorithm!r} is not one of {sorted(SSE_ALGORITHMS)}"
    return None


def s3_default_encryption(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every S3 bucket declares its default encryption (a BucketServerSideEncryptionConfiguration
    of that bucket, or the bucket's own legacy block) with SSE-S3, SSE-KMS or DSSE-KMS.

    S3 has applied SSE-S3 to every new object since January 2023 whatever the bucket says;
    declaring it keeps the key choice (S3's or a KMS key) in the program, where review sees
    it, like an explicit `sslPolicy`.
    """
    configured: set[str] = set()
    for r in args.resources:
        if r.resource_type in BUCKET_SSE_TYPES:
            try:
                problem = _sse_rules_problem(r.props.get("rules"))
            except UnknownValueError:
                problem = None
            if problem:
                report_violation(f"{r.name}: {problem}.", r.urn)
            configured |= _identities(r, "bucket")
    for r in args.resources:
        if r.resource_type not in BUCKET_TYPES:
            continue
        inline = _get(r.props, "serverSideEncryptionConfiguration")
        if inline:
            try:
                problem = _sse_rules_problem([x.get("rule") for x in _as_list(inline)])
            except UnknownValueError:
                problem = None
            if problem:
                report_violation(f"{r.name}: {problem}.", r.urn)
        elif not {r.urn, *_strings(r.props, "bucket", "id")} & configured:
            report_violation(
                f"{r.name}: no BucketServerSideEncryptionConfiguration for this bucket.", r.urn
            )


def sns_topic_encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """SNS topics name a KMS key (`kmsMasterKeyId`): without one, messages rest unencrypted."""
    if args.resource_type == "aws:sns/topic:Topic" and not args.props.get("kmsMasterKeyId"):
        report_violation(
            "SNS topic without kmsMasterKeyId: its messages are stored unencrypted.", None
        )


SECRETS_DEFAULTS: Mapping[str, Any] = {
    # The ecs-tls stacks read their secrets in their own account, which the AWS managed key
    # allows; a customer key is needed to share a secret with another account.
    "requireCustomerKey": False,
}
SECRETS_SCHEMA = PolicyConfigSchema(
    properties={
        "requireCustomerKey": {
            "type": "boolean",
            "default": SECRETS_DEFAULTS["requireCustomerKey"],
            "description": "Every secret names a customer managed KMS key (kmsKeyId).",
        }
    }
)
AWS_MANAGED_SECRETS_KEY = "alias/aws/secretsmanager"


def secret_encryption_key(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Secrets Manager always encrypts a secret: with the account's AWS managed key
    (alias/aws/secretsmanager) unless `kmsKeyId` names another. What a policy can require is
    which key, so with `requireCustomerKey` every secret names a customer managed key, the
    one kind whose key policy you control and that another account can be allowed to use.
    """
    if args.resource_type != "aws:secretsmanager/secret:Secret":
        return
    if not _config(args, SECRETS_DEFAULTS)["requireCustomerKey"]:
        return
    key = args.props.get("kmsKeyId")
    if not key or str(key).endswith(AWS_MANAGED_SECRETS_KEY):
        report_violation(
            "secret without a customer managed KMS key (kmsKeyId): requireCustomerKey is set.",
            None,
        )


# --- 4. IAM: no wildcard action, "*" resource only where AWS requires it -------------------

IDENTITY_POLICY_INPUTS: Mapping[str, str] = {
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/policy:Policy": "policy",
    "aws:iam/userPolicy:UserPolicy": "policy",
    "aws:iam/groupPolicy:GroupPolicy": "policy",
}
RESOURCE_POLICY_INPUTS: Mapping[str, str] = {
    "aws:s3/bucketPolicy:BucketPolicy": "policy",
    "aws:sns/topicPolicy:TopicPolicy": "policy",
    "aws:sns/topic:Topic": "policy",
    "aws:sqs/queuePolicy:QueuePolicy": "policy",
    "aws:sqs/queue:Queue": "policy",
    "aws:efs/fileSystemPolicy:FileSystemPolicy": "policy",
    "aws:kms/key:Key": "policy",
    "aws:kms/keyPolicy:KeyPolicy": "policy",
    "aws:secretsmanager/secretPolicy:SecretPolicy": "policy",
    "aws:ecr/repositoryPolicy:RepositoryPolicy": "policy",
}

# Actions that AWS offers no resource-level permission for: the Service Authorization
# Reference lists no resource type for them, so a statement must say "Resource": "*".
# action (lower case: IAM compares action names case-insensitively) -> (the service's page
# under SAR, the condition key that must then narrow the statement, if any).
SAR = "https://docs.aws.amazon.com/service-authorization/latest/reference"
WILDCARD_RESOURCE_ACTIONS: Mapping[str, tuple[str, str | None]] = {
    # A metric has no ARN; the namespace condition key is what names it.
    "cloudwatch:putmetricdata": (f"{SAR}/list_amazoncloudwatch.html", "cloudwatch:namespace"),
    # EC2's Describe actions take no resource type.
    "ec2:describenetworkinterfaces": (f"{SAR}/list_amazonec2.html", None),
    "ec2:describesubnets": (f"{SAR}/list_amazonec2.html", None),
    "ec2:describevolumes": (f"{SAR}/list_amazonec2.html", None),
    # The token is for the registry, not a repository.
    "ecr:getauthorizationtoken": (f"{SAR}/list_amazonelasticcontainerregistry.html", None),
    # ListTasks' one resource type is a container instance; a listing of a whole cluster
    # names none, so the ecs:cluster key scopes it.
    "ecs:listtasks": (f"{SAR}/list_amazonelasticcontainerservice.html", "ecs:cluster"),
    # Listed without a resource type; ECS Exec's SSM agent calls it before writing the
    # session log.
    "logs:describeloggroups": (f"{SAR}/list_amazoncloudwatchlogs.html", None),
    # No resource type (certbot's Route53 plugin finds the zone by name).
    "route53:listhostedzones": (f"{SAR}/list_amazonroute53.html", None),
    # ECS Exec's session channels have no resource type.
    **{
        f"ssmmessages:{action}": (
            f"{SAR}/list_amazonsessionmanagermessagegatewayservice.html",
            None,
        )
        for action in (
            "createcontrolchannel",
            "createdatachannel",
            "opencontrolchannel",
            "opendatachannel",
        )
    },
}
IAM_DEFAULTS: Mapping[str, Any] = {"extraWildcardResourceActions": []}
IAM_SCHEMA = PolicyConfigSchema(
    properties={
        "extraWildcardResourceActions": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[A-Za-z0-9-]+:[A-Za-z0-9]+$"},
            "default": [],
            "description": 'More actions allowed on "Resource": "*" (each without resource '
            "types in the Service Authorization Reference).",
        }
    }
)


# AWS managed policies that grant every action of one or more services ("<service>:*" or
# "*"): the same wildcard, attached by ARN instead of written out.
BROAD_MANAGED_POLICY_RE = re.compile(
    r"^arn:[a-z-]+:iam::aws:policy/(?:.*/)?(?:AdministratorAccess|PowerUserAccess|[A-Za-z0-9]*FullAccess[A-Za-z0-9]*)$"
)
ATTACHMENT_TYPES = frozenset(
    {
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:iam/userPolicyAttachment:UserPolicyAttachment",
        "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
        "aws:iam/policyAttachment:PolicyAttachment",
    }
)


def _attached_policy_arns(args: ResourceValidationArgs) -> list[str]:
    props = args.props
    if args.resource_type in ATTACHMENT_TYPES:
        return [str(props.get("policyArn") or "")]
    if args.resource_type == "aws:iam/role:Role":
        return [str(a) for a in _as_list(props.get("managedPolicyArns"))]
    return []


def _statements(document: Any) -> list[Mapping[str, Any]]:
    """The statements of a policy document given as JSON text or as an object."""
    if isinstance(document, str):
        document = json.loads(document)
    return [s for s in _as_list((document or {}).get("Statement")) if isinstance(s, Mapping)]


def _documents(args: ResourceValidationArgs) -> tuple[str, list[Any]]:
    """("identity" | "resource" | "", the resource's policy documents)."""
    props = args.props
    if args.resource_type == "aws:iam/role:Role":
        return "identity", [p.get("policy") for p in _as_list(props.get("inlinePolicies"))]
    if args.resource_type in IDENTITY_POLICY_INPUTS:
        return "identity", [props.get(IDENTITY_POLICY_INPUTS[args.resource_type])]
    if args.resource_type in RESOURCE_POLICY_INPUTS:
        return "resource", [props.get(RESOURCE_POLICY_INPUTS[args.resource_type])]
    return "", []


def _is_wildcard_action(action: str) -> bool:
    return action == "*" or action.endswith(":*")


def iam_least_privilege(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Allow statements name their actions: no "*" and no "<service>:*" (a prefix such as
    "s3:Get*" is allowed), and no NotAction, in identity and resource policies alike. In
    identity policies "Resource": "*" (or NotResource) only when every action of the
    statement is one AWS offers no resource-level permission for. No attachment of an AWS
    managed policy that grants whole services (AdministratorAccess, PowerUserAccess,
    *FullAccess).

    Deny statements are not checked: a Deny with "*" narrows. In a KMS key policy
    "Resource": "*" means the key itself, and other resource policies name their resource,
    so the resource rule applies to identity policies only.
    """
    for arn in _attached_policy_arns(args):
        if BROAD_MANAGED_POLICY_RE.match(arn):
            report_violation(
                f"attaches {arn}, an AWS managed policy that grants whole services; grant the "
                "actions the role uses instead.",
                None,
            )
    kind, documents = _documents(args)
    if not kind:
        return
    extra = {a.lower() for a in _config(args, IAM_DEFAULTS)["extraWildcardResourceActions"]}
    allowed_on_star = set(WILDCARD_RESOURCE_ACTIONS) | extra
    for document in documents:
        if not document:
            continue
        try:
            statements = _statements(document)
        except (ValueError, AttributeError):
            report_violation("a policy document that is not a JSON object.", None)
            continue
        for index, statement in enumerate(statements):
            if statement.get("Effect") != "Allow":
                continue
            label = f"statement {statement.get('Sid') or index}"
            if "NotAction" in statement:
                report_violation(f"{label}: Allow with NotAction grants every other action.", None)
            actions = [str(a) for a in _as_list(statement.get("Action"))]
            wild = [a for a in actions if _is_wildcard_action(a)]
            if wild:
                report_violation(
                    f"{label}: wildcard action {', '.join(wild)}; name the actions.", None
                )
            if kind != "identity":
                continue
            resources = [str(r) for r in _as_list(statement.get("Resource"))]
            if "*" in resources or "NotResource" in statement:
                scoped = sorted(a for a in actions if a.lower() not in allowed_on_star)
                if scoped:
                    report_violation(
                        f'{label}: "Resource": "*" for {", ".join(scoped)}, which AWS lets you '
                        "scope to resource ARNs (Service Authorization Reference).",
                        None,
                    )
                keys = _condition_keys(statement)
                for action in actions:
                    _, key = WILDCARD_RESOURCE_ACTIONS.get(action.lower(), ("", None))
                    if key and key not in keys:
                        report_violation(
                            f'{label}: {action} on "*" without the {key} condition that scopes it.',
                            None,
                        )


# --- 5. trust policies carry the source account --------------------------------------------

# Service principals that set neither aws:SourceAccount nor aws:SourceArn when they assume a
# role: a condition on those keys would never match and lock the role. Each with the AWS page
# that documents its trust policy without them.
SERVICES_WITHOUT_SOURCE_KEYS: Mapping[str, str] = {
    # Instance profiles: https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_switch-role-ec2.html
    "ec2.amazonaws.com": "EC2 instance profiles",
    # Execution roles: https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html
    "lambda.amazonaws.com": "Lambda execution roles",
    # https://docs.aws.amazon.com/ebs/latest/userguide/service-role.html
    "dlm.amazonaws.com": "Data Lifecycle Manager service role",
}
TRUST_DEFAULTS: Mapping[str, Any] = {
    "servicesWithoutSourceKeys": sorted(SERVICES_WITHOUT_SOURCE_KEYS)
}
TRUST_SCHEMA = PolicyConfigSchema(
    properties={
        "servicesWithoutSourceKeys": {
            "type": "array",
            "items": {"type": "string"},
            "default": sorted(SERVICES_WITHOUT_SOURCE_KEYS),
            "description": "Service principals that set no aws:SourceAccount/aws:SourceArn "
            "when assuming a role.",
        }
    }
)
SOURCE_KEYS = frozenset({"aws:sourceaccount", "aws:sourcearn", "aws:sourceorgid"})


def _condition_keys(statement: Mapping[str, Any]) -> set[str]:
    condition = statement.get("Condition") or {}
    return {
        key.lower() for block in condition.values() if isinstance(block, Mapping) for key in block
    }


def trust_has_source_condition(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    """A role that an AWS service may assume says for which account (aws:SourceAccount),
    resource (aws:SourceArn) or organization (aws:SourceOrgID) the service acts: without it,
    the service could assume the role on behalf of any other account (the confused deputy,
    https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html)."""
    if args.resource_type != "aws:iam/role:Role":
        return
    document = args.props.get("assumeRolePolicy")
    if not document:
        return
    exempt = {s.lower() for s in _config(args, TRUST_DEFAULTS)["servicesWithoutSourceKeys"]}
    for index, statement in enumerate(_statements(document)):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        services = _as_list(principal.get("Service")) if isinstance(principal, Mapping) else []
        needing = sorted(s for s in map(str, services) if s.lower() not in exempt)
        if needing and not _condition_keys(statement) & SOURCE_KEYS:
            report_violation(
                f"trust statement {statement.get('Sid') or index}: {', '.join(needing)} may "
                "assume this role with no aws:SourceAccount or aws:SourceArn condition.",
                None,
            )


# --- 6. images pinned by digest ------------------------------------------------------------

DIGEST_RE = re.compile(r"@sha256:[0-9a-f]{64}$")
IMAGE_DEFAULTS: Mapping[str, Any] = {"unpinnedImages": []}
IMAGE_SCHEMA = PolicyConfigSchema(
    properties={
        "unpinnedImages": {
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "Exact image references excused from pinning (a waiver, with "
            "its reason kept where the config is).",
        }
    }
)


def images_pinned_by_digest(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    """Every container of a task definition names its image by digest (`...@sha256:<64 hex>`):
    a tag can be pushed again, so the tasks ECS starts tomorrow could run other code than the
    ones reviewed today."""
    if args.resource_type != "aws:ecs/taskDefinition:TaskDefinition":
        return
    definitions = args.props.get("containerDefinitions")
    if isinstance(definitions, str):
        definitions = json.loads(definitions)
    waived = set(_config(args, IMAGE_DEFAULTS)["unpinnedImages"])
    for container in _as_list(definitions):
        image = str(container.get("image") or "")
        if not DIGEST_RE.search(image) and image not in waived:
            report_violation(
                f"container {container.get('name')}: image {image!r} is not pinned by digest "
                "(repository:tag@sha256:<digest>).",
                None,
            )


# --- the pack ------------------------------------------------------------------------------

MANDATORY = EnforcementLevel.MANDATORY

POLICIES = [
    ResourceValidationPolicy(
        name="listener-tls13",
        description="Every load balancer listener is TLS with a TLS 1.3 policy, an HTTP "
        "redirect to HTTPS, or a TCP passthrough / ACME HTTP-01 port named in the config.",
        validate=listener_uses_tls13,
        enforcement_level=MANDATORY,
        config_schema=LISTENER_SCHEMA,
    ),
    StackValidationPolicy(
        name="http-listener-rules",
        description="Rules of HTTP listeners redirect to HTTPS or answer a fixed response, and "
        "forward only the ACME HTTP-01 challenge path.",
        validate=http_listener_rules,
        enforcement_level=MANDATORY,
        config_schema=HTTP_RULE_SCHEMA,
    ),
    StackValidationPolicy(
        name="no-public-task-port",
        description="No security group other than a load balancer's opens a port to "
        "0.0.0.0/0 or ::/0, except the deliberate public TLS ports in the config.",
        validate=no_public_task_port,
        enforcement_level=MANDATORY,
        config_schema=PUBLIC_PORT_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="efs-encrypted",
        description="EFS file systems are encrypted at rest.",
        validate=efs_encrypted,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="ebs-encrypted",
        description="EBS volumes and the EBS block devices of launch templates and instances "
        "are encrypted.",
        validate=ebs_encrypted,
        enforcement_level=MANDATORY,
    ),
    StackValidationPolicy(
        name="s3-default-encryption",
        description="Every S3 bucket declares its default encryption (SSE-S3, SSE-KMS or "
        "DSSE-KMS).",
        validate=s3_default_encryption,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="sns-topic-encrypted",
        description="SNS topics encrypt messages with a KMS key.",
        validate=sns_topic_encrypted,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name="secrets-manager-key",
        description="Secrets Manager secrets use a customer managed KMS key when the config "
        "requires one (AWS always encrypts them, by default with its managed key).",
        validate=secret_encryption_key,
        enforcement_level=MANDATORY,
        config_schema=SECRETS_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="iam-least-privilege",
        description='IAM Allow statements name their actions (no "*" or "<service>:*"), and '
        'identity policies use "Resource": "*" only for actions without resource-level '
        "permissions.",
        validate=iam_least_privilege,
        enforcement_level=MANDATORY,
        config_schema=IAM_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="trust-source-condition",
        description="Roles that AWS services assume carry an aws:SourceAccount or "
        "aws:SourceArn condition, except for services that set neither.",
        validate=trust_has_source_condition,
        enforcement_level=MANDATORY,
        config_schema=TRUST_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="images-pinned-by-digest",
        description="Container images of ECS task definitions are pinned by digest.",
        validate=images_pinned_by_digest,
        enforcement_level=MANDATORY,
        config_schema=IMAGE_SCHEMA,
    ),
]

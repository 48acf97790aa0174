"""Parsers of the top-level keys and the whole configuration."""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pulumi

from constants.config import (
    ACME_CHALLENGES,
    ACME_DIRECTORIES,
    ACME_PROFILE_LIFETIMES,
    CA_SIGNING_ALGORITHMS,
    DEFAULT_SSL_POLICY,
    ENVOY_TLS_VERSIONS,
    INGRESS_KINDS,
    LOG_RETENTION_DAYS,
    MAX_AZS,
    MIN_AZS,
    PRIVATE_SUBNET_TOPOLOGIES,
    SSL_POLICIES,
    TOPOLOGIES,
)
from constants.images import ENVOY_IMAGE
from settings.app_secrets import check_reserved_secrets, check_task_role
from settings.certificate_check import check_certificate
from settings.errors import ConfigError, invalid, missing
from settings.images import parse_images, unpinned_image_warnings
from settings.load_balancer import parse_load_balancer
from settings.mesh import check_service_keys, url_variable, with_mesh
from settings.model import (
    AcmeSettings,
    CertificateSettings,
    EnvoySettings,
    ListenerCertificateSettings,
    NetworkSettings,
    PrivateCaSettings,
    ServiceConnectSettings,
    Settings,
)
from settings.readers import (
    ACCOUNT_RE,
    ACM_CERTIFICATE_ARN_RE,
    HOSTED_ZONE_RE,
    ORG_ARN_RE,
    OU_ARN_RE,
    PCA_ARN_RE,
    SUBNET_RE,
    VPC_RE,
    as_integer,
    raw_config,
    read_dns_name,
    read_email,
    read_image,
    read_integer,
    read_object,
    read_string_list,
    secret_config_keys,
    set_command,
    suggest,
)
from settings.redaction import is_secret, shown, top_level, treating_as_secret
from settings.reference import (
    APPLIES_TO,
    APPLIES_TO_HINTS,
    KNOWN_TOP_LEVEL,
    LOAD_BALANCER_KEYS,
    REFUSED_BECAUSE,
)
from settings.scaling import check_scaling
from settings.secrecy import keep_secret, secret_values
from settings.subnet_layout import VPC_PREFIXES, zone_capacity
from settings.workloads import parse_app, parse_services
from task_contents.envoy import (
    ACCESS_LOG_MODES,
    EnvoyProxySpec,
    envoy_bound_ports,
)
from task_contents.envoy.tuning import DEFAULT_UPSTREAM_IDLE_TIMEOUT_SECONDS


def parse_topology(values: Mapping[str, Any]) -> str:
    value = values.get("topology")
    if value is None:
        raise missing("topology", f"set it to one of: {', '.join(TOPOLOGIES)}")
    if value not in TOPOLOGIES:
        raise invalid("topology", value, f"one of: {', '.join(TOPOLOGIES)}")
    return value


# A certificate's subject common name holds at most 64 characters (RFC 5280 ub-common-name);
# ACM refuses a first domain name longer than that ("cannot exceed 64 octets, including
# periods", RequestCertificate DomainName). Every topology puts `domain` (direct-task:
# `*.<domain>`) in a certificate's subject. That also keeps direct-task's per-task names,
# `<32 hex digits of the task ID>.<domain>`, far inside DNS's 253 characters.
COMMON_NAME_MAX = 64


def parse_domain(values: Mapping[str, Any], topology: str) -> str:
    value = values.get("domain")
    if value is None:
        raise missing("domain", "set it to the DNS name clients use, e.g. app.example.com")
    # Upper case and a root dot are accepted and normalised, as DNS treats them the same.
    name = read_dns_name(value, "domain", "a DNS name such as app.example.com")
    subject = f"*.{name}" if topology == "direct-task" else name
    if len(subject) > COMMON_NAME_MAX:
        raise invalid(
            "domain",
            value,
            f"short enough for a certificate: {shown('domain', subject)} has {len(subject)} "
            f"characters, a certificate's common name (and ACM) at most {COMMON_NAME_MAX}",
        )
    return name


def parse_hosted_zone_id(values: Mapping[str, Any]) -> str | None:
    value = values.get("hostedZoneId")
    if value is None:
        return None
    if not isinstance(value, str) or not HOSTED_ZONE_RE.match(value):
        raise invalid("hostedZoneId", value, "a Route53 hosted zone ID such as Z0123456789ABC")
    return value


def parse_acme(values: Mapping[str, Any]) -> AcmeSettings:
    raw = read_object(values, "acme")
    email = raw.get("email")
    if email is not None:
        email = read_email(email, "acme.email")
    challenge = raw.get("challenge", "dns-01")
    if challenge not in ACME_CHALLENGES:
        raise invalid("acme.challenge", challenge, f"one of: {', '.join(ACME_CHALLENGES)}")
    server = raw.get("server", "staging")
    if not isinstance(server, str) or (
        server not in ACME_DIRECTORIES and not ACME_URL_RE.match(server)
    ):
        raise invalid("acme.server", server, "staging, production or an https:// directory URL")
    profile = raw.get("profile")
    # A string first: a list or an object is not hashable, so `in` a dict would raise.
    if profile is not None and (
        not isinstance(profile, str) or profile not in ACME_PROFILE_LIFETIMES
    ):
        raise invalid("acme.profile", profile, f"one of: {', '.join(ACME_PROFILE_LIFETIMES)}")
    # certbot renews when a third of the lifetime remains; restarting every sixth of it
    # gives two chances inside that window.
    lifetime = ACME_PROFILE_LIFETIMES.get(profile or "tlsserver", 45)
    renew = read_integer(
        raw.get("renewEveryDays", max(1, lifetime // 6)), "acme.renewEveryDays", 1, 30
    )
    if renew > lifetime // 3:
        raise invalid(
            "acme.renewEveryDays",
            renew,
            f"short enough: certbot renews in the last {lifetime // 3} days of a "
            f"{lifetime}-day certificate",
        )
    return AcmeSettings(
        email=email, challenge=challenge, server=server, profile=profile, renew_every_days=renew
    )


# An ACME directory: https, a host name or address and a path of URL characters. No user
# information (it would sit in the task definition in plaintext), query or shell characters:
# certbot receives it on its command line.
ACME_URL_RE = re.compile(
    r"\Ahttps://(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])"
    r"(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%/+=,-]*)?\Z"
)


def parse_network(values: Mapping[str, Any]) -> NetworkSettings:
    raw = read_object(values, "network")
    if "vpcId" in raw:
        return _existing_network(raw)
    for key in ("publicSubnetIds", "privateSubnetIds"):
        if key in raw:
            raise missing("network.vpcId", f"network.{key} is set, which needs the VPC's ID")
    cidr = raw.get("cidrBlock", "10.0.0.0/16")
    try:
        network = ipaddress.ip_network(cidr, strict=True) if isinstance(cidr, str) else None
    except ValueError:
        network = None
    if network is None or network.version != 4 or network.prefixlen not in VPC_PREFIXES:
        raise invalid(
            "network.cidrBlock", cidr, "an IPv4 network from /16 to /28, e.g. 10.0.0.0/16"
        )
    azs = read_integer(
        raw.get("availabilityZones", 2), "network.availabilityZones", MIN_AZS, MAX_AZS
    )
    fits = zone_capacity(str(network))
    if azs > fits:
        # Each zone takes a fixed slot per tier (settings/subnet_layout.py), at least a /27.
        holds = f"holds {fits} zones" if fits else "holds no pair of /27 subnets"
        raise invalid(
            "network.cidrBlock",
            cidr,
            f"large enough for {azs} availability zones: it {holds} "
            "(/16 to /23: 6, /24: 4, /25: 2)",
        )
    nat = as_integer(raw.get("natGateways", 1))
    if isinstance(nat, bool) or not isinstance(nat, int) or nat not in (0, 1, azs):
        raise invalid("network.natGateways", nat, f"0, 1 or {azs} (one per availability zone)")
    return NetworkSettings(cidr_block=str(network), availability_zones=azs, nat_gateways=nat)


def _existing_network(raw: Mapping[str, Any]) -> NetworkSettings:
    for key in ("cidrBlock", "availabilityZones", "natGateways"):
        if key in raw:
            raise ConfigError(f"network.{key}", "applies to a new VPC and cannot be set with vpcId")
    vpc_id = raw["vpcId"]
    if not isinstance(vpc_id, str) or not VPC_RE.match(vpc_id):
        raise invalid("network.vpcId", vpc_id, "a VPC ID such as vpc-0123456789abcdef0")
    subnets = {}
    for key in ("publicSubnetIds", "privateSubnetIds"):
        if key not in raw:
            raise missing(f"network.{key}", "an existing VPC (network.vpcId) needs its subnet IDs")
        subnets[key] = read_string_list(
            raw[key], f"network.{key}", SUBNET_RE, "subnet IDs such as subnet-0123456789abcdef0"
        )
    shared = set(subnets["publicSubnetIds"]) & set(subnets["privateSubnetIds"])
    if shared:
        raise invalid(
            "network.privateSubnetIds",
            sorted(shared)[0],
            "a private subnet: it is also in network.publicSubnetIds",
        )
    if len(subnets["publicSubnetIds"]) < MIN_AZS:
        raise invalid(
            "network.publicSubnetIds",
            list(subnets["publicSubnetIds"]),
            "at least two subnets (load balancers need two availability zones)",
        )
    return NetworkSettings(
        vpc_id=vpc_id,
        public_subnet_ids=subnets["publicSubnetIds"],
        private_subnet_ids=subnets["privateSubnetIds"],
    )


PEM_FIELDS = ("certificatePem", "privateKeyPem", "chainPem")
LISTENER_SOURCES = ("generated", "acm")


def parse_listener_certificate(
    values: Mapping[str, Any], topology: str, hosted_zone_id: str | None
) -> ListenerCertificateSettings:
    """Where the public listener's certificate comes from (`certificate.source`, `.arn`).

    The defaults are what each topology did before the keys existed, so no existing stack
    sees its certificate change: service-connect asks ACM when it has a zone, alb-envoy
    imports a generated chain unless told `acm`.
    """
    raw = read_object(values, "certificate")
    pems = [f for f in PEM_FIELDS if f in raw]
    source, arn = raw.get("source"), raw.get("arn")
    if arn is not None:
        if not isinstance(arn, str) or not ACM_CERTIFICATE_ARN_RE.match(arn):
            raise invalid(
                "certificate.arn",
                arn,
                "an ACM certificate ARN "
                "(arn:aws:acm:<region>:<account>:certificate/<id>, in the stack's region)",
            )
        if pems:
            raise ConfigError(
                "certificate.arn",
                f"names a certificate already in ACM; certificate.{pems[0]} gives another: "
                "set one of them",
            )
        if source is not None:
            raise ConfigError(
                "certificate.source", "cannot be set with certificate.arn, which is the source"
            )
        return ListenerCertificateSettings("existing", arn)
    if source is None:
        if pems:
            return ListenerCertificateSettings("imported")
        acm = topology == "service-connect" and hosted_zone_id is not None
        return ListenerCertificateSettings("acm" if acm else "generated")
    if source not in LISTENER_SOURCES:
        raise invalid("certificate.source", source, " or ".join(LISTENER_SOURCES))
    if pems:
        raise ConfigError(
            "certificate.source",
            f"makes the certificate, and certificate.{pems[0]} brings one: set one of them",
        )
    if source == "acm" and hosted_zone_id is None:
        raise ConfigError(
            "certificate.source",
            "ACM issues a certificate once a DNS record in hostedZoneId validates it, and "
            "hostedZoneId is not set: set it to the Route53 zone of domain, or use "
            "certificate.arn",
        )
    return ListenerCertificateSettings(source)


def parse_certificate(values: Mapping[str, Any], domain: str) -> CertificateSettings | None:
    """The user's certificate, checked (certificate_check.py) before anything is registered."""
    raw = read_object(values, "certificate")
    if not any(f in raw for f in PEM_FIELDS):
        return None
    # Before any other check: a key stored in plaintext is already in the stack file. The
    # engine marks the whole of `certificate` secret once any field of it is set with
    # `--path --secret`; it cannot tell which field was.
    if raw.get("privateKeyPem") is not None and not is_secret("certificate"):
        raise ConfigError(
            "certificate.privateKeyPem",
            "must be set as a secret: " + set_command("certificate.privateKeyPem"),
        )
    pems = {}
    for field_name in PEM_FIELDS:
        key = f"certificate.{field_name}"
        value = raw.get(field_name)
        if value is None:
            if field_name != "chainPem":
                raise missing(
                    key, f"a certificate needs both its PEM and its key: {set_command(key)}"
                )
            continue
        if not isinstance(value, str) or not value.strip():
            raise invalid(key, value, f"PEM text; set it from its file: {set_command(key)}")
        pems[field_name] = value
    checked = check_certificate(
        pems["certificatePem"], pems["privateKeyPem"], pems.get("chainPem"), domain
    )
    return CertificateSettings(
        certificate_pem=pems["certificatePem"],
        private_key_pem=pems["privateKeyPem"],
        chain_pem=pems.get("chainPem"),
        not_valid_after=checked.not_valid_after,
    )


def parse_private_ca(values: Mapping[str, Any]) -> PrivateCaSettings:
    raw = read_object(values, "privateCa")
    arn = raw.get("arn")
    if arn is not None and (not isinstance(arn, str) or not PCA_ARN_RE.match(arn)):
        raise invalid(
            "privateCa.arn",
            arn,
            "an ACM Private CA ARN (arn:aws:acm-pca:<region>:<account>:certificate-authority/<id>)",
        )
    share_with: tuple[str, ...] = ()
    if "shareWith" in raw:
        share_with = read_string_list(
            raw["shareWith"],
            "privateCa.shareWith",
            re.compile(f"{ACCOUNT_RE.pattern}|{ORG_ARN_RE.pattern}|{OU_ARN_RE.pattern}"),
            "12-digit account IDs, OU ARNs or an organization ARN",
        )
        if arn is not None:
            raise ConfigError(
                "privateCa.shareWith",
                "shares a CA this stack creates; it cannot share privateCa.arn",
            )
    if arn is not None:
        for creation_only in (
            "keyAlgorithm",
            "signingAlgorithm",
            "permanentDeletionDays",
            "allowExternalPrincipals",
        ):
            if creation_only in raw:
                raise ConfigError(
                    f"privateCa.{creation_only}",
                    "applies to a CA this stack creates, not privateCa.arn",
                )
    key = raw.get("keyAlgorithm", "EC_prime256v1")
    if not isinstance(key, str) or key not in CA_SIGNING_ALGORITHMS:
        raise invalid("privateCa.keyAlgorithm", key, f"one of: {', '.join(CA_SIGNING_ALGORITHMS)}")
    signing = raw.get("signingAlgorithm", CA_SIGNING_ALGORITHMS[key][0])
    if signing not in CA_SIGNING_ALGORITHMS[key]:
        raise invalid(
            "privateCa.signingAlgorithm",
            signing,
            f"valid with keyAlgorithm {key}; accepted: {', '.join(CA_SIGNING_ALGORITHMS[key])}",
        )
    days = read_integer(
        raw.get("permanentDeletionDays", 7), "privateCa.permanentDeletionDays", 7, 30
    )
    external = raw.get("allowExternalPrincipals", False)
    if not isinstance(external, bool):
        raise invalid("privateCa.allowExternalPrincipals", external, "true or false")
    return PrivateCaSettings(
        arn=arn,
        share_with=share_with,
        key_algorithm=key,
        signing_algorithm=signing,
        permanent_deletion_days=days,
        allow_external_principals=external,
    )


def parse_ingress(values: Mapping[str, Any], topology: str) -> str:
    value = values.get("ingress")
    if value is None:
        return "alb"
    if value not in INGRESS_KINDS:
        raise invalid("ingress", value, f"one of: {', '.join(INGRESS_KINDS)}")
    return value


def parse_service_connect(values: Mapping[str, Any]) -> ServiceConnectSettings:
    raw = read_object(values, "serviceConnect")
    namespace = raw.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str)
        or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,1023}", namespace)
    ):
        raise invalid("serviceConnect.namespace", namespace, "a namespace name such as ecs-tls-dev")
    kms = raw.get("customerKmsKey", False)
    if not isinstance(kms, bool):
        raise invalid("serviceConnect.customerKmsKey", kms, "true or false")
    return ServiceConnectSettings(namespace=namespace, customer_kms_key=kms)


def parse_log_retention(values: Mapping[str, Any]) -> int:
    value = as_integer(values.get("logRetentionDays", 30))
    if isinstance(value, bool) or not isinstance(value, int) or value not in LOG_RETENTION_DAYS:
        raise invalid(
            "logRetentionDays",
            value,
            f"a CloudWatch retention: {', '.join(map(str, LOG_RETENTION_DAYS))}",
        )
    return value


def parse_certificate_expiry_alarm_days(values: Mapping[str, Any], topology: str) -> int:
    key = "certificateExpiryAlarmDays"
    # At most 45: a generated certificate is re-issued by any `pulumi up` in its last 60
    # days (components/certificates.py), so the alarm only fires when no `up` ran since.
    return read_integer(values.get(key, 30), key, 1, 45)


def parse_allowed_cidrs(values: Mapping[str, Any], topology: str) -> tuple[str, ...]:
    raw = values.get("allowedCidrs")
    if raw is None:
        if topology == "nlb-certbot":
            raise missing(
                "allowedCidrs",
                "required by topology 'nlb-certbot': its NLB passes TCP straight to the "
                "database, so whoever it admits can try the database's login. Set the "
                'networks of your clients (e.g. ["203.0.113.0/24"]), or, to open it to '
                'everyone on purpose, allowedCidrs: ["0.0.0.0/0"]',
            )
        return ("0.0.0.0/0",)
    accepted = "a non-empty list of IPv4 CIDRs such as [203.0.113.0/24]"
    if isinstance(raw, str):
        raw = [v.strip() for v in raw.split(",") if v.strip()]
    if not isinstance(raw, list) or not raw:
        raise invalid("allowedCidrs", raw, accepted)
    cidrs: list[ipaddress.IPv4Network] = []
    for item in raw:
        # A string first: IPv4Network(0) and IPv4Network(True) are /32 networks.
        network = None
        if isinstance(item, str) and re.fullmatch(r"[0-9./]{1,31}", item):
            try:
                network = ipaddress.IPv4Network(item, strict=True)
            except ValueError:
                network = None
        if network is None:
            raise invalid(
                "allowedCidrs",
                item,
                "an IPv4 CIDR such as 203.0.113.0/24",
            )
        for other in cidrs:
            if network.subnet_of(other) or other.subnet_of(network):
                raise invalid(
                    "allowedCidrs", item, f"a network not already covered by {str(other)!r}"
                )
        cidrs.append(network)
    return tuple(str(c) for c in cidrs)


# Inbound rules of one security group, by default (Amazon VPC quotas, "Inbound or outbound
# rules per security group"; adjustable, counted for IPv4 and IPv6 separately).
SECURITY_GROUP_INBOUND_RULES = 60


def inbound_rules_per_cidr(s: Settings) -> tuple[int, int]:
    """(rules each allowed CIDR adds, rules not per CIDR) of the group that admits clients.

    One rule per CIDR and port: components/load_balancer.py `_allow_clients`, and
    topologies/direct_task.py for the tasks' own group.
    """
    if s.topology == "alb-envoy" or (s.topology == "service-connect" and s.ingress == "alb"):
        return 2, 0  # HTTPS 443 and the HTTP 80 redirect
    if s.topology == "nlb-certbot":
        return len(s.app.ports), (1 if s.acme.challenge == "http-01" else 0)
    return 1, 0  # one listener (service-connect nlb, appmesh-efs) or Envoy's port


def check_allowed_cidrs(s: Settings) -> None:
    per_cidr, fixed = inbound_rules_per_cidr(s)
    room = (SECURITY_GROUP_INBOUND_RULES - fixed) // per_cidr
    if len(s.allowed_cidrs) > room:
        raise ConfigError(
            "allowedCidrs",
            f"holds {len(s.allowed_cidrs)} CIDRs; topology {s.topology!r} takes at most "
            f"{room}: each CIDR takes {per_cidr} inbound rule(s) of one security group, which "
            f"holds {SECURITY_GROUP_INBOUND_RULES} by default",
        )


def parse_caa_record(values: Mapping[str, Any]) -> bool:
    value = values.get("caaRecord", True)
    if not isinstance(value, bool):
        raise invalid("caaRecord", value, "true or false")
    return value


def parse_alerts_email(values: Mapping[str, Any]) -> str | None:
    value = values.get("alertsEmail")
    return None if value is None else read_email(value, "alertsEmail")


# Predefined policies that also accept TLS 1.0 or 1.1: the TLS13 ones that start at 1.0 or
# 1.1, and the older generations (2011-08 to 2016-08, TLS-1-0/1-1, FS-2018-06, FS-1-1).
# [ELB security policies tables, describe-ssl-policies]
LEGACY_TLS_POLICY = re.compile(
    r"ELBSecurityPolicy-(?:TLS13-1-[01]-.*|TLS-1-[01]-.*|FS-2018-06|FS-1-1-.*|20[0-9]{2}-[0-9]{2})"
    r"|ELBSample-.*",
    re.IGNORECASE,
)


def parse_ssl_policy(values: Mapping[str, Any], topology: str, ingress: str) -> str:
    value = values.get("sslPolicy", DEFAULT_SSL_POLICY)
    kind = "nlb" if topology == "service-connect" and ingress == "nlb" else "alb"
    accepted = SSL_POLICIES[kind]
    if isinstance(value, str) and value in accepted:
        return value
    if isinstance(value, str) and LEGACY_TLS_POLICY.fullmatch(value):
        raise invalid(
            "sslPolicy",
            value,
            f"accepted: it lets clients use TLS 1.0 or 1.1; use {DEFAULT_SSL_POLICY} (TLS 1.3 "
            "and 1.2, forward-secret suites only) or another TLS13-1-2 or TLS13-1-3 policy",
        )
    # Only a near-identical name (a typo, another case) earns a suggestion.
    lowered = {p.lower(): p for p in accepted}
    # Not for a value set with --secret: the suggestion would spell it out.
    close = (
        difflib.get_close_matches(value.lower(), lowered, 1, 0.95)
        if isinstance(value, str) and not is_secret("sslPolicy")
        else []
    )
    raise invalid(
        "sslPolicy",
        value,
        f"a TLS 1.3 security policy of the {kind.upper()} that refuses TLS 1.0 and 1.1, such "
        f"as {DEFAULT_SSL_POLICY}" + (f"; did you mean {lowered[close[0]]!r}?" if close else ""),
    )


def parse_envoy(values: Mapping[str, Any], topology: str) -> EnvoySettings:
    raw = read_object(values, "envoy")
    image = read_image(raw.get("image", ENVOY_IMAGE), "envoy.image")
    port = read_integer(raw.get("port", 8443), "envoy.port", 1024, 65535)
    version = raw.get("minTlsVersion", "1.2")
    if isinstance(version, float):  # 1.3 written without quotes in YAML
        version = str(version)
    if not isinstance(version, str) or version not in ENVOY_TLS_VERSIONS:
        raise invalid("envoy.minTlsVersion", version, "one of: 1.2, 1.3")
    access_log = raw.get("accessLog", "all")
    if access_log not in ACCESS_LOG_MODES:
        raise invalid("envoy.accessLog", access_log, f"one of: {', '.join(ACCESS_LOG_MODES)}")
    idle = read_integer(
        raw.get("upstreamIdleTimeoutSeconds", DEFAULT_UPSTREAM_IDLE_TIMEOUT_SECONDS),
        "envoy.upstreamIdleTimeoutSeconds",
        1,
        3600,
    )
    return EnvoySettings(
        image=image,
        port=port,
        min_tls_version=version,
        access_log=access_log,
        upstream_idle_timeout_seconds=idle,
    )


def check_envoy_ports(envoy_port: int, app_port: int) -> None:
    """The sidecar and the app share the task's network: no port may be bound twice."""
    if envoy_port == app_port:
        shown_port = shown("app.port", app_port)  # `app` may be a secret key
        raise invalid("envoy.port", envoy_port, f"free: app.port is also {shown_port}")
    health = envoy_bound_ports(EnvoyProxySpec(app_port=app_port, listener_port=envoy_port))
    for key, port in (("envoy.port", envoy_port), ("app.port", app_port)):
        if port == health["health_port"]:
            raise invalid(key, port, "free: Envoy's health listener binds it on 127.0.0.1")


def check_topology_requirements(s: Settings) -> None:
    """Keys that one topology needs and the others do not."""
    check_allowed_cidrs(s)
    if s.topology in ("nlb-certbot", "direct-task") and s.acme.email is None:
        raise missing("acme.email", f"required by topology {s.topology!r} for the ACME account")
    if s.topology == "direct-task":
        if s.hosted_zone_id is None:
            raise missing("hostedZoneId", "required by topology 'direct-task' (per-task DNS names)")
        if s.acme.challenge != "dns-01":
            raise invalid(
                "acme.challenge",
                s.acme.challenge,
                "accepted by 'direct-task' (a wildcard needs dns-01)",
            )
    if (
        s.network.creates_vpc
        and s.network.nat_gateways == 0
        and s.topology in PRIVATE_SUBNET_TOPOLOGIES
    ):
        raise invalid(
            "network.natGateways",
            0,
            f"enough for topology {s.topology!r}: its tasks run in private subnets and need "
            "NAT to pull images and reach Secrets Manager, CloudWatch Logs and ECS; use 1",
        )
    if s.topology in ("alb-envoy", "direct-task"):
        check_envoy_ports(s.envoy.port, s.app.port)
    if s.topology == "nlb-certbot" and s.acme.challenge == "http-01" and s.app.capacity != "ec2":
        raise invalid(
            "app.capacity",
            s.app.capacity,
            "usable with acme.challenge 'http-01': on Fargate the issuer task is not behind "
            "the load balancer, so the ACME server's HTTP request never reaches certbot; "
            "use 'ec2' or acme.challenge 'dns-01'",
        )
    if s.topology == "nlb-certbot" and s.acme.challenge == "dns-01" and s.hosted_zone_id is None:
        raise missing(
            "hostedZoneId",
            "required by acme.challenge 'dns-01' (or set acme.challenge to http-01)",
        )


def check_key_names(values: Mapping[str, Any]) -> None:
    """Every top-level name is a key; `app.port` set without `--path` gets the command."""
    for name in values:
        if name in KNOWN_TOP_LEVEL:
            continue
        top = top_level(name)
        if top != name and top in KNOWN_TOP_LEVEL:
            # The CLI stores `pulumi config set ecs-tls:app.port 8080` as a key named
            # "app.port"; only --path makes it the field `port` of `app`.
            field_path = name[len(top) :].removeprefix(".")
            raise ConfigError(
                name,
                f"is not a key; to set field {field_path} of {top} use: "
                + set_command(name, values[name]),
            )
        raise ConfigError(name, "is not a known key" + suggest(top, KNOWN_TOP_LEVEL))


def _is_set(values: Mapping[str, Any], path: str) -> bool:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def check_applies(values: Mapping[str, Any], topology: str, ingress: str) -> None:
    """Refuse a key the selected topology does not read (settings/reference.py APPLIES_TO)."""
    for path, readers in APPLIES_TO.items():
        if topology in readers or not _is_set(values, path):
            continue
        if len(readers) == 1:
            where = f"only to topology {readers[0]!r}"
        else:
            where = "to " + ", ".join(readers[:-1]) + f" and {readers[-1]}"
        why = REFUSED_BECAUSE.get((path, topology), "")
        hint = APPLIES_TO_HINTS.get(path)
        raise ConfigError(
            path, f"applies {where}, not {topology!r}{why}" + (f"; {hint}" if hint else "")
        )
    if topology == "service-connect" and ingress == "none":
        for key in LOAD_BALANCER_KEYS:
            if key in values:
                raise ConfigError(
                    key, "applies to the public load balancer, which ingress 'none' does not create"
                )


def parse_settings(values: Mapping[str, Any], secret_keys: Iterable[str] = ()) -> Settings:
    """Build `Settings` from raw values; raise `ConfigError` on the first problem.

    `secret_keys`: the top-level keys the user set with `--secret`. Errors show their
    values as `<redacted>`, and a certificate's private key must be one of them.
    """
    with treating_as_secret(secret_keys):
        return _parse_settings(values)


def _parse_settings(values: Mapping[str, Any]) -> Settings:
    check_key_names(values)
    topology = parse_topology(values)
    # The value first, so a misspelt ingress is reported as such on any topology.
    ingress = parse_ingress(values, topology)
    check_applies(values, topology, ingress)
    domain = parse_domain(values, topology)
    check_service_keys(values, topology)
    hosted_zone_id = parse_hosted_zone_id(values)
    settings = Settings(
        topology=topology,
        domain=domain,
        hosted_zone_id=hosted_zone_id,
        acme=parse_acme(values),
        network=parse_network(values),
        certificate=parse_certificate(values, domain),
        private_ca=parse_private_ca(values),
        ingress=ingress,
        app=parse_app(values, topology),
        services=parse_services(values, topology),
        log_retention_days=parse_log_retention(values),
        certificate_expiry_alarm_days=parse_certificate_expiry_alarm_days(values, topology),
        allowed_cidrs=parse_allowed_cidrs(values, topology),
        alerts_email=parse_alerts_email(values),
        caa_record=parse_caa_record(values),
        ssl_policy=parse_ssl_policy(values, topology, ingress),
        envoy=parse_envoy(values, topology),
        service_connect=parse_service_connect(values),
        images=parse_images(values),
        listener_certificate=parse_listener_certificate(values, topology, hosted_zone_id),
        load_balancer=parse_load_balancer(values, topology, ingress),
    )
    check_topology_requirements(settings)
    settings = with_http01_start(with_mesh(settings, values), values)
    check_scaling(settings)
    check_reserved_environment(settings)
    return settings


# topologies/service_connect.py FINGERPRINT_VARIABLE (settings imports nothing above it;
# tests/unit/test_hostile_config.py checks the two agree).
SERVICE_CONNECT_FINGERPRINT_VARIABLE = "SERVICE_CONNECT_SERVERS"


def reserved_environment(s: Settings) -> dict[str, str]:
    """Variables a topology sets in the workload's container -> why; a user's value would
    replace the topology's (a Neo4j TLS setting) or clash with a secret (NEO4J_AUTH)."""
    if s.topology == "nlb-certbot":
        from task_contents.neo4j import neo4j_tls_environment

        names = dict.fromkeys(
            neo4j_tls_environment(s.app.certificate_layout, s.domain), "the TLS settings"
        )
        return {**names, "NEO4J_AUTH": "the password secret (ECS secrets)"}
    if s.topology == "service-connect":
        return {SERVICE_CONNECT_FINGERPRINT_VARIABLE: "the servers' fingerprint"}
    if s.topology == "appmesh-efs":
        return {url_variable(v.name): "the address of a service's Envoy" for v in s.services}
    return {}


def check_reserved_environment(s: Settings) -> None:
    reserved = reserved_environment(s)
    accesses = [("app", s.app.access)]
    accesses += [(f"services[{i}]", v.access) for i, v in enumerate(s.services)]
    check_reserved_secrets(reserved, s.topology, accesses)
    check_task_role(s.topology, accesses)
    workloads = [("app.environment", s.app.environment)] + [
        (f"services[{i}].environment", v.environment) for i, v in enumerate(s.services)
    ]
    for key, environment in workloads:
        for name, _ in environment:
            if name in reserved:
                raise ConfigError(
                    f"{key}.{name}",
                    f"is set by topology {s.topology!r} ({reserved[name]}); leave it out",
                )


# nlb-certbot, http-01: what answers the port-80 target group's health check on the instance.
HTTP01_RESPONDER_PORT = 8081


def with_http01_start(s: Settings, values: Mapping[str, Any]) -> Settings:
    """HTTP-01 without a zone: the service starts with no task until the user points DNS.

    Let's Encrypt can only validate once `domain` resolves to the load balancer. A task
    started earlier burns one of the five failed validations per hostname and hour, and
    its circuit breaker fails the deployment.
    """
    if s.topology != "nlb-certbot" or s.acme.challenge != "http-01":
        return s
    if HTTP01_RESPONDER_PORT in s.app.ports:
        raise invalid(
            "app.ports",
            list(s.app.ports),
            f"free of {HTTP01_RESPONDER_PORT}, where the HTTP-01 health responder listens",
        )
    if s.hosted_zone_id is None and "desiredCount" not in (values.get("app") or {}):
        return replace(s, app=replace(s.app, desired_count=0))
    return s


def certificate_expiry_warning(s: Settings, now: datetime | None = None) -> str | None:
    """A warning when the user's certificate expires within certificateExpiryAlarmDays.

    Not an error: the stack may be deployed to roll out a renewed certificate next. But the
    expiry alarm would fire at once, so the user hears it here first.
    """
    # A topology that takes no certificate does not look (tests/unit/test_applies_to.py).
    if s.topology not in APPLIES_TO["certificate"]:
        return None
    if s.certificate is None or s.certificate.not_valid_after is None:
        return None
    expires = s.certificate.not_valid_after
    days = (expires - (now or datetime.now(UTC))).days
    if days >= s.certificate_expiry_alarm_days:
        return None
    return (
        f"ecs-tls:certificate.certificatePem: expires on {expires:%Y-%m-%d} UTC, in {days} "
        f"days (certificateExpiryAlarmDays is {s.certificate_expiry_alarm_days}); ACM does "
        "not renew an imported certificate, so import a renewed one soon"
    )


def load_settings() -> Settings:
    """Read and validate the stack configuration of the running program, and keep the
    values set with `--secret` secret in every resource registered after it."""
    values, secret_keys = raw_config(), secret_config_keys()
    settings = parse_settings(values, secret_keys)
    # Before any resource: every input holding a value of a secret key is made secret.
    keep_secret(secret_values(values, secret_keys))
    warning = certificate_expiry_warning(settings)
    if warning:
        pulumi.log.warn(warning)
    for note in unpinned_image_warnings(settings):
        pulumi.log.warn(note)
    return settings

"""Typed, frozen settings parsed from the stack configuration (namespace `ecs-tls`).

`load_settings()` reads every key once, before any resource is registered, and raises
`ConfigError` with one message that names the key, the value given and what is accepted.
`CONFIG_REFERENCE` is the single description of every key: Pulumi.yaml's schema and the
README's configuration table are checked against it by the tests.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi

NAMESPACE = "ecs-tls"

TOPOLOGIES = ("nlb-certbot", "alb-envoy", "service-connect", "appmesh-efs", "direct-task")
ACME_CHALLENGES = ("dns-01", "http-01")
ACME_DIRECTORIES = {
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "production": "https://acme-v02.api.letsencrypt.org/directory",
}
INGRESS_KINDS = ("alb", "nlb", "none")
# Let's Encrypt profiles and their lifetimes in days (classic: 90, 64 from 2027-02-10; the
# default without a profile follows it down to 45 by 2028, which the schedule assumes).
ACME_PROFILE_LIFETIMES = {"classic": 64, "tlsserver": 45, "shortlived": 6}
# AWS Private CA key algorithms -> signing algorithms that fit them (first: the default).
CA_SIGNING_ALGORITHMS = {
    "EC_prime256v1": ("SHA256WITHECDSA",),
    "EC_secp384r1": ("SHA384WITHECDSA", "SHA512WITHECDSA"),
    "RSA_2048": ("SHA256WITHRSA",),
}
DEFAULT_SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
ENVOY_IMAGE = "docker.io/envoyproxy/envoy:v1.40.0"
ENVOY_TLS_VERSIONS = {"1.2": "TLSv1_2", "1.3": "TLSv1_3"}
# Fargate task sizes: cpu units -> allowed memory (MiB). [ECS task definition parameters]
FARGATE_MEMORY = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827)
MIN_AZS, MAX_AZS = 2, 6


@dataclass(frozen=True)
class ConfigKey:
    """One documented configuration key (dotted path inside the namespace)."""

    path: str
    type: str  # string | integer | boolean | array | object
    default: str  # human-readable default, "" when required or absent by default
    description: str


CONFIG_REFERENCE: tuple[ConfigKey, ...] = (
    ConfigKey(
        "topology",
        "string",
        "",
        "Required. One of: nlb-certbot, alb-envoy, service-connect, appmesh-efs, direct-task.",
    ),
    ConfigKey(
        "domain",
        "string",
        "",
        "Required. DNS name clients use; for direct-task the parent of the per-task names.",
    ),
    ConfigKey(
        "hostedZoneId",
        "string",
        "unset",
        "Route53 zone holding `domain`; when set the program creates the DNS records. "
        "Required by DNS-01 and direct-task.",
    ),
    ConfigKey(
        "ingress",
        "string",
        "alb",
        "service-connect only: how clients reach the public service: alb, nlb or none.",
    ),
    ConfigKey(
        "logRetentionDays",
        "integer",
        "30",
        "Retention of the cluster's CloudWatch log group, one of the values CloudWatch accepts.",
    ),
    ConfigKey(
        "allowedCidrs",
        "array",
        "[0.0.0.0/0]",
        "IPv4 CIDRs allowed to reach the public load balancer.",
    ),
    ConfigKey(
        "sslPolicy",
        "string",
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
        "TLS policy of HTTPS listeners; a TLS13 policy, which also makes the ALB speak "
        "TLS 1.3 to its targets.",
    ),
    ConfigKey("envoy", "object", "see below", "alb-envoy only: the TLS-terminating sidecar."),
    ConfigKey("envoy.image", "string", ENVOY_IMAGE, "Stock Envoy image (v3 API, >= 1.21)."),
    ConfigKey("envoy.port", "integer", "8443", "Port of Envoy's TLS listener in the task."),
    ConfigKey(
        "envoy.minTlsVersion",
        "string",
        "1.2",
        "Lowest TLS version Envoy accepts from the load balancer: 1.2 or 1.3.",
    ),
    ConfigKey("acme", "object", "see below", "Let's Encrypt (ACME) settings."),
    ConfigKey(
        "acme.email",
        "string",
        "unset",
        "ACME account e-mail; required by nlb-certbot and direct-task.",
    ),
    ConfigKey("acme.challenge", "string", "dns-01", "ACME challenge: dns-01 or http-01."),
    ConfigKey(
        "acme.server",
        "string",
        "staging",
        "ACME directory: staging, production, or an https:// directory URL.",
    ),
    ConfigKey(
        "acme.profile",
        "string",
        "unset",
        "ACME profile to ask for: classic, tlsserver (45 days) or shortlived (~6 days).",
    ),
    ConfigKey(
        "acme.renewEveryDays",
        "integer",
        "from the lifetime",
        "Days between scheduled task restarts that let certbot renew (1 to 30). Default: "
        "a sixth of the certificate lifetime, 7 days for 45-day certificates.",
    ),
    ConfigKey(
        "network",
        "object",
        "new VPC",
        "Absent: create a VPC. Set vpcId and subnet IDs to use an existing one instead.",
    ),
    ConfigKey("network.cidrBlock", "string", "10.0.0.0/16", "CIDR of a new VPC (/16 to /24)."),
    ConfigKey(
        "network.availabilityZones",
        "integer",
        "2",
        "Number of availability zones of a new VPC (2 to 6).",
    ),
    ConfigKey(
        "network.natGateways",
        "integer",
        "1",
        "NAT gateways of a new VPC: 0, 1, or one per availability zone.",
    ),
    ConfigKey("network.vpcId", "string", "unset", "ID of an existing VPC to use."),
    ConfigKey(
        "network.publicSubnetIds",
        "array",
        "unset",
        "Existing public subnet IDs (load balancers); required with vpcId.",
    ),
    ConfigKey(
        "network.privateSubnetIds",
        "array",
        "unset",
        "Existing private subnet IDs (tasks); required with vpcId.",
    ),
    ConfigKey(
        "certificate",
        "object",
        "generated",
        "Bring your own certificate. Absent: a private chain is generated with pulumi-tls.",
    ),
    ConfigKey("certificate.certificatePem", "string", "", "PEM of the leaf certificate."),
    ConfigKey(
        "certificate.privateKeyPem",
        "string",
        "",
        "PEM of the leaf's private key; set it with --secret.",
    ),
    ConfigKey("certificate.chainPem", "string", "unset", "PEM of the intermediate chain."),
    ConfigKey(
        "privateCa",
        "object",
        "created",
        "AWS Private CA for service-connect. Absent: a short-lived CA is created.",
    ),
    ConfigKey("privateCa.arn", "string", "unset", "ARN of an existing (e.g. RAM-shared) CA."),
    ConfigKey(
        "privateCa.shareWith",
        "array",
        "[]",
        "Account IDs, OU ARNs or an organization ARN to share the created CA with via RAM.",
    ),
    ConfigKey(
        "privateCa.keyAlgorithm",
        "string",
        "EC_prime256v1",
        "Key of a created CA: EC_prime256v1, EC_secp384r1 or RSA_2048.",
    ),
    ConfigKey(
        "privateCa.signingAlgorithm",
        "string",
        "SHA256WITHECDSA",
        "Signing algorithm of a created CA, matching its key (e.g. SHA512WITHECDSA for P-384).",
    ),
    ConfigKey(
        "privateCa.permanentDeletionDays",
        "integer",
        "7",
        "Days a deleted CA stays restorable (7 to 30).",
    ),
    ConfigKey(
        "privateCa.allowExternalPrincipals",
        "boolean",
        "false",
        "Let the RAM share reach accounts outside your AWS Organization.",
    ),
    ConfigKey(
        "serviceConnect",
        "object",
        "see below",
        "The cluster's Service Connect namespace and service-connect's TLS options.",
    ),
    ConfigKey(
        "serviceConnect.namespace",
        "string",
        "ecs-tls-<stack>",
        "Name of the Cloud Map HTTP namespace, the cluster's Service Connect default.",
    ),
    ConfigKey(
        "serviceConnect.customerKmsKey",
        "boolean",
        "false",
        "Encrypt the keys ECS stores for Service Connect TLS with a customer managed KMS key.",
    ),
    ConfigKey("app", "object", "per topology", "The workload; each field overrides a default."),
    ConfigKey("app.image", "string", "per topology", "Container image of the app."),
    ConfigKey("app.port", "integer", "per topology", "Port the app listens on."),
    ConfigKey("app.cpu", "integer", "256", "Fargate task CPU units."),
    ConfigKey("app.memory", "integer", "512", "Fargate task memory (MiB), valid for app.cpu."),
    ConfigKey("app.desiredCount", "integer", "2", "Number of tasks."),
    ConfigKey("app.healthCheckPath", "string", "per topology", "HTTP path used by health checks."),
    ConfigKey("app.environment", "object", "{}", "Plain environment variables (no secrets)."),
    ConfigKey(
        "app.ports",
        "array",
        "[7473, 7687]",
        "nlb-certbot: TLS ports the app serves and the NLB passes through (TCP).",
    ),
    ConfigKey(
        "app.certificateLayout",
        "object",
        "Neo4j",
        "nlb-certbot: where the copier writes the certificate for the app: directory (/ssl), "
        "scopes ([bolt, https]), certificateFile (public.crt), privateKeyFile (private.key), "
        "owner (7474:7474).",
    ),
    ConfigKey(
        "services",
        "array",
        "demo",
        "service-connect, appmesh-efs: the services; absent: a frontend that calls a backend.",
    ),
    ConfigKey("services[].name", "string", "", "Required. Lowercase DNS label, unique."),
    ConfigKey("services[].image", "string", "", "Required. Container image."),
    ConfigKey("services[].port", "integer", "", "Required. Port the container listens on."),
    ConfigKey(
        "services[].mode",
        "string",
        "server",
        "server (reachable, TLS by Service Connect) or client (calls others only, e.g. TCP).",
    ),
    ConfigKey(
        "services[].public",
        "boolean",
        "frontend",
        "The one server the ingress sends clients to (default: frontend, else the first).",
    ),
    ConfigKey(
        "services[].appProtocol",
        "string",
        "http",
        "http, http2 or grpc; fixed once the service exists.",
    ),
    ConfigKey("services[].discoveryName", "string", "name", "Cloud Map name of the service."),
    ConfigKey(
        "services[].clientAlias",
        "object",
        "{dnsName: name, port: port}",
        "Name and port clients use; when given, port is required.",
    ),
    ConfigKey("services[].healthCheckPath", "string", "/", "HTTP path the load balancer checks."),
    ConfigKey("services[].command", "array", "image default", "Container command."),
    ConfigKey("services[].environment", "object", "{}", "Plain environment variables."),
    ConfigKey("services[].cpu", "integer", "256", "Fargate task CPU units."),
    ConfigKey("services[].memory", "integer", "512", "Fargate task memory (MiB)."),
    ConfigKey("services[].desiredCount", "integer", "2", "Number of tasks."),
)

KNOWN_TOP_LEVEL = tuple(k.path for k in CONFIG_REFERENCE if "." not in k.path)


class ConfigError(pulumi.RunError):
    """A configuration problem, reported by Pulumi without a stack trace."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{NAMESPACE}:{key}: {message}")


def invalid(key: str, value: Any, accepted: str) -> ConfigError:
    return ConfigError(key, f"{value!r} is not {accepted}")


def missing(key: str, why: str) -> ConfigError:
    return ConfigError(key, f"missing; {why}")


# --------------------------------------------------------------------------------------
# Settings objects (each default is stated next to the field, with the reason when not obvious)


@dataclass(frozen=True)
class AcmeSettings:
    email: str | None = None
    challenge: str = "dns-01"  # no inbound traffic needed; works with awsvpc tasks
    server: str = "staging"  # staging by default: production limits are per week
    profile: str | None = None  # the CA's default profile
    renew_every_days: int = 7  # a sixth of 45 days, the lifetime Let's Encrypt is moving to

    @property
    def directory_url(self) -> str:
        return ACME_DIRECTORIES.get(self.server, self.server)


@dataclass(frozen=True)
class NetworkSettings:
    vpc_id: str | None = None  # None: create a VPC
    public_subnet_ids: tuple[str, ...] = ()
    private_subnet_ids: tuple[str, ...] = ()
    cidr_block: str = "10.0.0.0/16"
    availability_zones: int = 2  # load balancers need two zones
    nat_gateways: int = 1  # tasks in private subnets pull public images through NAT

    @property
    def creates_vpc(self) -> bool:
        return self.vpc_id is None


@dataclass(frozen=True)
class CertificateSettings:
    certificate_pem: str
    private_key_pem: str = field(repr=False)  # never printed; wrap in Output.secret to use
    chain_pem: str | None = None

    def secret_private_key(self) -> pulumi.Output[str]:
        return pulumi.Output.secret(self.private_key_pem)


@dataclass(frozen=True)
class PrivateCaSettings:
    arn: str | None = None  # None: create a CA
    share_with: tuple[str, ...] = ()
    # P-256/SHA256 is the pair known to work with Service Connect; P-384/SHA512 is allowed.
    key_algorithm: str = "EC_prime256v1"
    signing_algorithm: str = "SHA256WITHECDSA"
    permanent_deletion_days: int = 7  # the minimum: a demo CA should not linger
    allow_external_principals: bool = False


@dataclass(frozen=True)
class ServiceConnectSettings:
    namespace: str | None = None  # None: ecs-tls-<stack>
    customer_kms_key: bool = False  # AWS owned key unless asked


@dataclass(frozen=True)
class CertificateLayout:
    """Where the copier lays out the certificate for an app that serves TLS itself."""

    scopes: tuple[str, ...] = ("bolt", "https")  # Neo4j: one directory per TLS scope
    cert_file: str = "public.crt"
    key_file: str = "private.key"
    target_dir: str = "/ssl"
    owner: str | None = "7474:7474"  # uid:gid of the neo4j user in the official image


@dataclass(frozen=True)
class AppSettings:
    image: str
    port: int
    health_check_path: str
    cpu: int = 256
    memory: int = 512
    desired_count: int = 2  # two tasks, spread across zones
    environment: tuple[tuple[str, str], ...] = ()
    ports: tuple[int, ...] = ()  # nlb-certbot: the TLS ports passed through
    certificate_layout: CertificateLayout = CertificateLayout()


@dataclass(frozen=True)
class ServiceSettings:
    name: str
    image: str
    port: int
    mode: str = "server"  # server | client
    public: bool = False
    app_protocol: str | None = "http"  # None for client-only TCP services
    discovery_name: str = ""
    alias_dns_name: str = ""
    alias_port: int = 0
    health_check_path: str = "/"
    command: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    cpu: int = 256
    memory: int = 512
    desired_count: int = 2

    @property
    def is_server(self) -> bool:
        return self.mode == "server"


@dataclass(frozen=True)
class EnvoySettings:
    image: str = ENVOY_IMAGE  # pinned: a proxy upgrade should be a reviewed change
    port: int = 8443  # unprivileged: Envoy runs as a non-root user
    min_tls_version: str = "1.2"  # the ALB's backend side; 1.3 needs a TLS13 listener policy

    @property
    def envoy_tls_version(self) -> str:
        return ENVOY_TLS_VERSIONS[self.min_tls_version]


@dataclass(frozen=True)
class Settings:
    topology: str
    domain: str
    hosted_zone_id: str | None
    acme: AcmeSettings
    network: NetworkSettings
    certificate: CertificateSettings | None
    private_ca: PrivateCaSettings
    ingress: str
    app: AppSettings
    services: tuple[ServiceSettings, ...]
    log_retention_days: int = 30
    allowed_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    ssl_policy: str = DEFAULT_SSL_POLICY
    envoy: EnvoySettings = EnvoySettings()
    service_connect: ServiceConnectSettings = ServiceConnectSettings()


# Working workload defaults per topology; `app` overrides them field by field.
APP_DEFAULTS: dict[str, AppSettings] = {
    "alb-envoy": AppSettings(
        image="public.ecr.aws/docker/library/nginx:1.27-alpine", port=80, health_check_path="/"
    ),
    "service-connect": AppSettings(
        image="public.ecr.aws/docker/library/nginx:1.27-alpine", port=80, health_check_path="/"
    ),
    "appmesh-efs": AppSettings(
        image="public.ecr.aws/docker/library/nginx:1.27-alpine", port=80, health_check_path="/"
    ),
    "direct-task": AppSettings(
        image="public.ecr.aws/docker/library/nginx:1.27-alpine",
        port=443,
        health_check_path="/",
        desired_count=1,
    ),
    "nlb-certbot": AppSettings(
        image="public.ecr.aws/docker/library/neo4j:5",
        port=7687,
        ports=(7473, 7687),  # HTTPS and bolt; plain HTTP (7474) is not exposed
        health_check_path="/",
        cpu=1024,
        memory=2048,
        desired_count=1,  # one Neo4j server: community edition does not cluster
    ),
}


# --------------------------------------------------------------------------------------
# Reading raw configuration

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
DOMAIN_RE = re.compile(rf"^(?:{_LABEL}\.)+[a-z][a-z0-9-]{{0,62}}(?<!-)$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[a-zA-Z]{2,}$")
HOSTED_ZONE_RE = re.compile(r"^Z[A-Z0-9]{1,31}$")
VPC_RE = re.compile(r"^vpc-[0-9a-f]{8,17}$")
SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
PCA_ARN_RE = re.compile(
    r"^arn:aws(?:-[a-z]+)*:acm-pca:[a-z0-9-]+:\d{12}:certificate-authority/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
ACCOUNT_RE = re.compile(r"^\d{12}$")
ORG_ARN_RE = re.compile(
    r"^arn:aws(?:-[a-z]+)*:organizations::\d{12}:organization/o-[a-z0-9]{10,32}$"
)
OU_ARN_RE = re.compile(
    r"^arn:aws(?:-[a-z]+)*:organizations::\d{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$"
)
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SERVICE_NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def raw_config() -> dict[str, Any]:
    """Every `ecs-tls:*` value, JSON-decoded where it is JSON (objects, arrays, numbers)."""
    merged = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    prefix = f"{NAMESPACE}:"
    values: dict[str, Any] = {}
    for full_key, text in merged.items():
        if not full_key.startswith(prefix):
            continue
        try:
            values[full_key[len(prefix) :]] = json.loads(text)
        except (TypeError, ValueError):
            values[full_key[len(prefix) :]] = text
    return values


def _suggest(name: str, known: tuple[str, ...]) -> str:
    import difflib

    close = (
        difflib.get_close_matches(name, known, n=1)
        or [k for k in known if name.lower() in k.lower()][:1]
    )
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"


def _check_keys(obj: Mapping[str, Any], prefix: str) -> None:
    known = tuple(
        k.path[len(prefix) + 1 :]
        for k in CONFIG_REFERENCE
        if k.path.startswith(prefix + ".") and k.path.count(".") == 1
    )
    for name in obj:
        if name not in known:
            raise ConfigError(f"{prefix}.{name}", "is not a known key" + _suggest(name, known))


def _object(values: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = values.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(key, value, "an object (set its fields with `pulumi config set --path`)")
    _check_keys(value, key)
    return value


def _string(value: Any, key: str, accepted: str = "a non-empty string") -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid(key, value, accepted)
    return value.strip()


def _integer(value: Any, key: str, low: int, high: int) -> int:
    # Config set on the command line arrives as text; JSON numbers arrive as int.
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(key, value, f"an integer from {low} to {high}")
    return value


def _string_list(value: Any, key: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value:
        raise invalid(key, value, f"a non-empty list of {what}")
    for item in value:
        if not isinstance(item, str) or not pattern.match(item):
            raise invalid(key, item, what)
    return tuple(value)


# --------------------------------------------------------------------------------------
# Parsers, one per key


def parse_topology(values: Mapping[str, Any]) -> str:
    value = values.get("topology")
    if value is None:
        raise missing("topology", f"set it to one of: {', '.join(TOPOLOGIES)}")
    if value not in TOPOLOGIES:
        raise invalid("topology", value, f"one of: {', '.join(TOPOLOGIES)}")
    return value


def parse_domain(values: Mapping[str, Any]) -> str:
    value = values.get("domain")
    if value is None:
        raise missing("domain", "set it to the DNS name clients use, e.g. app.example.com")
    if not isinstance(value, str):
        raise invalid("domain", value, "a DNS name such as app.example.com")
    name = value.strip().rstrip(".").lower()
    if len(name) > 253 or not DOMAIN_RE.match(name):
        raise invalid("domain", value, "a DNS name such as app.example.com")
    return name


def parse_hosted_zone_id(values: Mapping[str, Any]) -> str | None:
    value = values.get("hostedZoneId")
    if value is None:
        return None
    if not isinstance(value, str) or not HOSTED_ZONE_RE.match(value.strip()):
        raise invalid("hostedZoneId", value, "a Route53 hosted zone ID such as Z0123456789ABC")
    return value.strip()


def parse_acme(values: Mapping[str, Any]) -> AcmeSettings:
    raw = _object(values, "acme")
    email = raw.get("email")
    if email is not None and (not isinstance(email, str) or not EMAIL_RE.match(email)):
        raise invalid("acme.email", email, "an e-mail address such as ops@example.com")
    challenge = raw.get("challenge", "dns-01")
    if challenge not in ACME_CHALLENGES:
        raise invalid("acme.challenge", challenge, f"one of: {', '.join(ACME_CHALLENGES)}")
    server = raw.get("server", "staging")
    if server not in ACME_DIRECTORIES and not (
        isinstance(server, str) and re.match(r"^https://[^\s/]+(/\S*)?$", server)
    ):
        raise invalid("acme.server", server, "staging, production or an https:// directory URL")
    profile = raw.get("profile")
    if profile is not None and profile not in ACME_PROFILE_LIFETIMES:
        raise invalid("acme.profile", profile, f"one of: {', '.join(ACME_PROFILE_LIFETIMES)}")
    # certbot renews when a third of the lifetime remains; restarting every sixth of it
    # gives two chances inside that window.
    lifetime = ACME_PROFILE_LIFETIMES.get(profile or "tlsserver", 45)
    renew = _integer(raw.get("renewEveryDays", max(1, lifetime // 6)), "acme.renewEveryDays", 1, 30)
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


def parse_network(values: Mapping[str, Any]) -> NetworkSettings:
    raw = _object(values, "network")
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
    if network is None or network.version != 4 or not 16 <= network.prefixlen <= 24:
        raise invalid(
            "network.cidrBlock", cidr, "an IPv4 network from /16 to /24, e.g. 10.0.0.0/16"
        )
    azs = _integer(raw.get("availabilityZones", 2), "network.availabilityZones", MIN_AZS, MAX_AZS)
    nat = raw.get("natGateways", 1)
    if isinstance(nat, str) and nat.isdigit():
        nat = int(nat)
    if isinstance(nat, bool) or nat not in (0, 1, azs):
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
        subnets[key] = _string_list(
            raw[key], f"network.{key}", SUBNET_RE, "subnet IDs such as subnet-0123456789abcdef0"
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


def parse_certificate(values: Mapping[str, Any]) -> CertificateSettings | None:
    raw = _object(values, "certificate")
    if not raw:
        return None
    pems = {}
    for key, marker, required in (
        ("certificatePem", "CERTIFICATE", True),
        ("privateKeyPem", "PRIVATE KEY", True),
        ("chainPem", "CERTIFICATE", False),
    ):
        value = raw.get(key)
        if value is None:
            if required:
                raise missing(f"certificate.{key}", "a certificate needs both its PEM and its key")
            continue
        if not isinstance(value, str) or f"-----BEGIN {marker}" not in value.replace(
            "-----BEGIN EC PRIVATE KEY", "-----BEGIN PRIVATE KEY"
        ).replace("-----BEGIN RSA PRIVATE KEY", "-----BEGIN PRIVATE KEY"):
            # Never echo a private key back: name the key, not the value.
            shown = "<redacted>" if key == "privateKeyPem" else _preview(value)
            raise ConfigError(f"certificate.{key}", f"{shown} is not a PEM block ({marker})")
        pems[key] = value
    return CertificateSettings(
        certificate_pem=pems["certificatePem"],
        private_key_pem=pems["privateKeyPem"],
        chain_pem=pems.get("chainPem"),
    )


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "...'"


def parse_private_ca(values: Mapping[str, Any]) -> PrivateCaSettings:
    raw = _object(values, "privateCa")
    arn = raw.get("arn")
    if arn is not None and (not isinstance(arn, str) or not PCA_ARN_RE.match(arn)):
        raise invalid(
            "privateCa.arn",
            arn,
            "an ACM Private CA ARN (arn:aws:acm-pca:<region>:<account>:certificate-authority/<id>)",
        )
    share_with: tuple[str, ...] = ()
    if "shareWith" in raw:
        share_with = _string_list(
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
    if key not in CA_SIGNING_ALGORITHMS:
        raise invalid("privateCa.keyAlgorithm", key, f"one of: {', '.join(CA_SIGNING_ALGORITHMS)}")
    signing = raw.get("signingAlgorithm", CA_SIGNING_ALGORITHMS[key][0])
    if signing not in CA_SIGNING_ALGORITHMS[key]:
        raise invalid(
            "privateCa.signingAlgorithm",
            signing,
            f"valid with keyAlgorithm {key}; accepted: {', '.join(CA_SIGNING_ALGORITHMS[key])}",
        )
    days = _integer(raw.get("permanentDeletionDays", 7), "privateCa.permanentDeletionDays", 7, 30)
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
    if topology != "service-connect":
        raise ConfigError(
            "ingress", f"applies only to topology 'service-connect', not {topology!r}"
        )
    return value


def parse_app(values: Mapping[str, Any], topology: str) -> AppSettings:
    raw = _object(values, "app")
    base = APP_DEFAULTS[topology]
    image = _string(raw.get("image", base.image), "app.image", "a container image reference")
    port = _integer(raw.get("port", base.port), "app.port", 1, 65535)
    cpu, memory = _fargate_size(raw.get("cpu", base.cpu), raw.get("memory", base.memory), "app")
    count = _integer(raw.get("desiredCount", base.desired_count), "app.desiredCount", 0, 100)
    path = raw.get("healthCheckPath", base.health_check_path)
    if not isinstance(path, str) or not path.startswith("/") or " " in path:
        raise invalid("app.healthCheckPath", path, "an absolute HTTP path such as /health")
    env = raw.get("environment", {})
    if not isinstance(env, dict):
        raise invalid("app.environment", env, "an object of NAME: value strings")
    for name, val in env.items():
        if not ENV_NAME_RE.match(name):
            raise invalid(f"app.environment.{name}", name, "an environment variable name")
        if not isinstance(val, (str, int, float, bool)):
            raise invalid(f"app.environment.{name}", val, "a string")
    ports, layout = base.ports, base.certificate_layout
    if "ports" in raw or "certificateLayout" in raw:
        if topology != "nlb-certbot":
            key = "app.ports" if "ports" in raw else "app.certificateLayout"
            raise ConfigError(key, f"applies only to topology 'nlb-certbot', not {topology!r}")
        ports = _ports(raw.get("ports", list(ports)))
        layout = _layout(raw.get("certificateLayout", {}), layout)
    return AppSettings(
        ports=ports,
        certificate_layout=layout,
        image=image,
        port=port,
        health_check_path=path,
        cpu=cpu,
        memory=memory,
        desired_count=count,
        environment=tuple(sorted((k, str(v)) for k, v in env.items())),
    )


SERVICE_MODES = ("server", "client")
APP_PROTOCOLS = ("http", "http2", "grpc")
SERVICE_KEYS = tuple(
    k.path.split(".", 1)[1] for k in CONFIG_REFERENCE if k.path.startswith("services[].")
)
NGINX_IMAGE = "public.ecr.aws/docker/library/nginx:1.27-alpine"
# The demo: a frontend (public) whose nginx proxies every request to the backend through
# its Service Connect alias, so one `curl` proves both hops.
DEMO_SERVICES = (
    ServiceSettings(
        name="frontend",
        image=NGINX_IMAGE,
        port=80,
        public=True,
        discovery_name="frontend",
        alias_dns_name="frontend",
        alias_port=80,
        command=(
            "/bin/sh",
            "-c",
            "printf 'server { listen 80; location / { proxy_pass http://backend:80; } }\\n' "
            "> /etc/nginx/conf.d/default.conf && exec nginx -g 'daemon off;'",
        ),
    ),
    ServiceSettings(
        name="backend",
        image=NGINX_IMAGE,
        port=80,
        discovery_name="backend",
        alias_dns_name="backend",
        alias_port=80,
    ),
)


def _service(item: Any, key: str) -> ServiceSettings:
    if not isinstance(item, dict):
        raise invalid(key, item, "an object with name, image and port")
    for field_name in item:
        if field_name not in SERVICE_KEYS:
            raise ConfigError(
                f"{key}.{field_name}", "is not a known key" + _suggest(field_name, SERVICE_KEYS)
            )
    name = item.get("name")
    if name is None:
        raise missing(f"{key}.name", "every service needs a name")
    if not isinstance(name, str) or not SERVICE_NAME_RE.match(name):
        raise invalid(f"{key}.name", name, "a lowercase DNS label such as 'backend'")
    image = _string(item.get("image"), f"{key}.image", "a container image reference")
    port = _integer(item.get("port"), f"{key}.port", 1, 65535)
    mode = item.get("mode", "server")
    if mode not in SERVICE_MODES:
        raise invalid(f"{key}.mode", mode, "one of: server, client")
    public = item.get("public", False)
    if not isinstance(public, bool):
        raise invalid(f"{key}.public", public, "true or false")
    server = mode == "server"
    if not server:
        for server_only in ("discoveryName", "clientAlias", "public"):
            if server_only in item:
                raise ConfigError(f"{key}.{server_only}", "applies to mode 'server' only")
    protocol = item.get("appProtocol", "http" if server else None)
    if protocol is not None and protocol not in APP_PROTOCOLS:
        raise invalid(f"{key}.appProtocol", protocol, "one of: http, http2, grpc")
    discovery = item.get("discoveryName", name)
    if not isinstance(discovery, str) or not SERVICE_NAME_RE.match(discovery):
        raise invalid(f"{key}.discoveryName", discovery, "a lowercase DNS label")
    alias = item.get("clientAlias", {"dnsName": name, "port": port})
    if not isinstance(alias, dict):
        raise invalid(f"{key}.clientAlias", alias, "an object with dnsName and port")
    if "port" not in alias:
        raise missing(f"{key}.clientAlias.port", "the port clients connect to is required")
    alias_port = _integer(alias["port"], f"{key}.clientAlias.port", 1, 65535)
    alias_name = alias.get("dnsName", name)
    if not isinstance(alias_name, str) or (
        not DOMAIN_RE.match(alias_name) and not SERVICE_NAME_RE.match(alias_name)
    ):
        raise invalid(f"{key}.clientAlias.dnsName", alias_name, "a DNS name such as 'backend'")
    path = item.get("healthCheckPath", "/")
    if not isinstance(path, str) or not path.startswith("/"):
        raise invalid(f"{key}.healthCheckPath", path, "an absolute HTTP path such as /health")
    command = item.get("command", [])
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise invalid(f"{key}.command", command, "a list of strings")
    env = item.get("environment", {})
    if not isinstance(env, dict) or not all(ENV_NAME_RE.match(k) for k in env):
        raise invalid(f"{key}.environment", env, "an object of NAME: value strings")
    cpu, memory = _fargate_size(item.get("cpu", 256), item.get("memory", 512), key)
    return ServiceSettings(
        name=name,
        image=image,
        port=port,
        mode=mode,
        public=public,
        app_protocol=protocol,
        discovery_name=discovery if server else "",
        alias_dns_name=alias_name if server else "",
        alias_port=alias_port if server else 0,
        health_check_path=path,
        command=tuple(command),
        environment=tuple(sorted((k, str(v)) for k, v in env.items())),
        cpu=cpu,
        memory=memory,
        desired_count=_integer(item.get("desiredCount", 2), f"{key}.desiredCount", 0, 100),
    )


def _unique(services: tuple[ServiceSettings, ...], attribute: str, key: str) -> None:
    seen: dict[Any, int] = {}
    for i, service in enumerate(services):
        value = getattr(service, attribute) if isinstance(attribute, str) else attribute(service)
        if not value:
            continue
        if value in seen:
            raise ConfigError(
                f"services[{i}].{key}", f"{value!r} is already used by services[{seen[value]}]"
            )
        seen[value] = i


LAYOUT_KEYS = ("directory", "scopes", "certificateFile", "privateKeyFile", "owner")
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _ports(raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list) or not raw:
        raise invalid("app.ports", raw, "a non-empty list of ports")
    ports = tuple(_integer(p, "app.ports", 1, 65535) for p in raw)
    if len(set(ports)) != len(ports) or 80 in ports:
        raise invalid("app.ports", list(ports), "distinct ports other than 80 (ACME HTTP-01)")
    return ports


def _layout(raw: Any, base: CertificateLayout) -> CertificateLayout:
    key = "app.certificateLayout"
    if not isinstance(raw, dict):
        raise invalid(key, raw, "an object")
    for name in raw:
        if name not in LAYOUT_KEYS:
            raise ConfigError(f"{key}.{name}", "is not a known key" + _suggest(name, LAYOUT_KEYS))
    directory = raw.get("directory", base.target_dir)
    if not isinstance(directory, str) or not re.fullmatch(r"/[A-Za-z0-9._/-]*", directory):
        raise invalid(f"{key}.directory", directory, "an absolute path such as /ssl")
    scopes = raw.get("scopes", list(base.scopes))
    if (
        not isinstance(scopes, list)
        or not scopes
        or not all(isinstance(x, str) and FILE_NAME_RE.match(x) for x in scopes)
    ):
        raise invalid(f"{key}.scopes", scopes, "a non-empty list of directory names")
    files = {}
    for field_name, default in (
        ("certificateFile", base.cert_file),
        ("privateKeyFile", base.key_file),
    ):
        value = raw.get(field_name, default)
        if not isinstance(value, str) or not FILE_NAME_RE.match(value):
            raise invalid(f"{key}.{field_name}", value, "a file name such as public.crt")
        files[field_name] = value
    owner = raw.get("owner", base.owner)
    if owner is not None and (not isinstance(owner, str) or not re.fullmatch(r"\d+:\d+", owner)):
        raise invalid(f"{key}.owner", owner, "uid:gid such as 7474:7474")
    return CertificateLayout(
        scopes=tuple(scopes),
        cert_file=files["certificateFile"],
        key_file=files["privateKeyFile"],
        target_dir=directory,
        owner=owner,
    )


def parse_services(values: Mapping[str, Any], topology: str) -> tuple[ServiceSettings, ...]:
    raw = values.get("services")
    uses_services = topology in ("service-connect", "appmesh-efs")
    if raw is None:
        return DEMO_SERVICES if uses_services else ()
    if not uses_services:
        raise ConfigError(
            "services", f"applies to service-connect and appmesh-efs, not {topology!r}"
        )
    if not isinstance(raw, list) or not raw:
        raise invalid("services", raw, "a non-empty list of {name, image, port} objects")
    services = tuple(_service(item, f"services[{i}]") for i, item in enumerate(raw))
    _unique(services, "name", "name")
    _unique(services, "discovery_name", "discoveryName")
    _unique(services, "alias_dns_name", "clientAlias.dnsName")
    if not any(s.is_server for s in services):
        raise invalid("services", [s.name for s in services], "a list with at least one server")
    public = [i for i, s in enumerate(services) if s.public]
    if len(public) > 1:
        raise ConfigError(f"services[{public[1]}].public", "only one service can be public")
    if not public:
        default = next((s for s in services if s.name == "frontend" and s.is_server), None)
        default = default or next(s for s in services if s.is_server)
        services = tuple(replace(s, public=s is default) for s in services)
    return services


def _fargate_size(cpu: Any, memory: Any, key: str) -> tuple[int, int]:
    if isinstance(cpu, str) and cpu.isdigit():
        cpu = int(cpu)
    if cpu not in FARGATE_MEMORY or isinstance(cpu, bool):
        raise invalid(
            f"{key}.cpu", cpu, f"a Fargate CPU size: {', '.join(map(str, FARGATE_MEMORY))}"
        )
    memory = _integer(memory, f"{key}.memory", 512, 30720)
    if memory not in FARGATE_MEMORY[cpu]:
        allowed = FARGATE_MEMORY[cpu]
        raise invalid(
            f"{key}.memory",
            memory,
            f"valid with {key}.cpu {cpu}; accepted: {allowed[0]} to {allowed[-1]} MiB"
            + (" in 1024 steps" if len(allowed) > 3 else f" ({', '.join(map(str, allowed))})"),
        )
    return cpu, memory


def parse_service_connect(values: Mapping[str, Any]) -> ServiceConnectSettings:
    raw = _object(values, "serviceConnect")
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
    value = values.get("logRetentionDays", 30)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if value not in LOG_RETENTION_DAYS or isinstance(value, bool):
        raise invalid(
            "logRetentionDays",
            value,
            f"a CloudWatch retention: {', '.join(map(str, LOG_RETENTION_DAYS))}",
        )
    return value


def parse_allowed_cidrs(values: Mapping[str, Any]) -> tuple[str, ...]:
    raw = values.get("allowedCidrs")
    if raw is None:
        return ("0.0.0.0/0",)
    if isinstance(raw, str):
        raw = [v.strip() for v in raw.split(",") if v.strip()]
    if not isinstance(raw, list) or not raw:
        raise invalid("allowedCidrs", raw, "a non-empty list of IPv4 CIDRs")
    cidrs = []
    for item in raw:
        try:
            cidrs.append(str(ipaddress.IPv4Network(item, strict=True)))
        except (ValueError, TypeError):
            raise invalid("allowedCidrs", item, "an IPv4 CIDR such as 203.0.113.0/24") from None
    return tuple(cidrs)


def parse_ssl_policy(values: Mapping[str, Any]) -> str:
    value = values.get("sslPolicy", DEFAULT_SSL_POLICY)
    # Only TLS13 policies: with any other the ALB also drops to TLS 1.2 towards its targets.
    if not isinstance(value, str) or not re.fullmatch(
        r"ELBSecurityPolicy-TLS13-[A-Za-z0-9-]+", value
    ):
        raise invalid(
            "sslPolicy", value, "an ELB TLS 1.3 policy such as ELBSecurityPolicy-TLS13-1-2-2021-06"
        )
    return value


def parse_envoy(values: Mapping[str, Any], topology: str) -> EnvoySettings:
    raw = _object(values, "envoy")
    if raw and topology != "alb-envoy":
        raise ConfigError("envoy", f"applies only to topology 'alb-envoy', not {topology!r}")
    image = _string(raw.get("image", ENVOY_IMAGE), "envoy.image", "a container image reference")
    port = _integer(raw.get("port", 8443), "envoy.port", 1024, 65535)
    version = str(raw.get("minTlsVersion", "1.2"))
    if version not in ENVOY_TLS_VERSIONS:
        raise invalid("envoy.minTlsVersion", version, "one of: 1.2, 1.3")
    return EnvoySettings(image=image, port=port, min_tls_version=version)


def check_topology_requirements(s: Settings) -> None:
    """Keys that one topology needs and the others do not."""
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
    if s.topology == "alb-envoy" and s.envoy.port == s.app.port:
        raise invalid("envoy.port", s.envoy.port, f"free: app.port is also {s.app.port}")
    if s.topology == "nlb-certbot" and s.acme.challenge == "dns-01" and s.hosted_zone_id is None:
        raise missing(
            "hostedZoneId",
            "required by acme.challenge 'dns-01' (or set acme.challenge to http-01)",
        )


def parse_settings(values: Mapping[str, Any]) -> Settings:
    """Build `Settings` from raw values; raise `ConfigError` on the first problem."""
    for name in values:
        if name not in KNOWN_TOP_LEVEL:
            raise ConfigError(name, "is not a known key" + _suggest(name, KNOWN_TOP_LEVEL))
    topology = parse_topology(values)
    settings = Settings(
        topology=topology,
        domain=parse_domain(values),
        hosted_zone_id=parse_hosted_zone_id(values),
        acme=parse_acme(values),
        network=parse_network(values),
        certificate=parse_certificate(values),
        private_ca=parse_private_ca(values),
        ingress=parse_ingress(values, topology),
        app=parse_app(values, topology),
        services=parse_services(values, topology),
        log_retention_days=parse_log_retention(values),
        allowed_cidrs=parse_allowed_cidrs(values),
        ssl_policy=parse_ssl_policy(values),
        envoy=parse_envoy(values, topology),
        service_connect=parse_service_connect(values),
    )
    check_topology_requirements(settings)
    return settings


def load_settings() -> Settings:
    """Read and validate the stack configuration of the running program."""
    return parse_settings(raw_config())

"""The settings objects: frozen, typed, each default stated next to its field."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pulumi

from constants.config import (
    ACME_DIRECTORIES,
    DEFAULT_SSL_POLICY,
    ENVOY_TLS_VERSIONS,
)
from constants.images import ENVOY_IMAGE, NEO4J_IMAGE, NGINX_IMAGE
from settings.app_secrets import AppAccess
from settings.images import ImageSettings
from settings.scaling import AutoscalingSettings, CapacityStrategy
from task_contents.certificate_layout import CertificateLayout


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
    not_valid_after: datetime | None = None  # read from certificate_pem by the checks

    def secret_private_key(self) -> pulumi.Output[str]:
        return pulumi.Output.secret(self.private_key_pem)


@dataclass(frozen=True)
class ListenerCertificateSettings:
    """What the public load balancer's TLS listener presents (alb-envoy, service-connect)."""

    # generated: a private chain imported into ACM; imported: `certificate`'s PEMs imported;
    # acm: issued and renewed by ACM, validated in hostedZoneId; existing: `arn`, in ACM.
    source: str = "generated"
    arn: str | None = None  # source "existing" only

    @property
    def publicly_trusted(self) -> bool:
        """ACM issues publicly trusted certificates; an existing one is the user's choice."""
        return self.source == "acm"


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
    # nlb-certbot: where the app runs. EC2 keeps `data_path` on an EBS volume that outlives
    # tasks and instances; Fargate has no persistent block storage (stateless apps only).
    capacity: str = "fargate"
    instance_type: str = "t3.large"  # 8 GiB: Neo4j's default heap and page cache fit
    data_path: str | None = None  # the container path kept on the data volume (EC2)
    data_volume_gib: int = 20
    snapshot_retention_days: int = 7  # daily snapshots kept; 0 turns them off
    # The snapshot the data volume is created from (restore); None: a blank volume.
    data_volume_snapshot_id: str | None = None
    # Where a new data volume is created; None: the zone of the first private subnet. An
    # existing volume never moves (components/persistent_volume.py).
    data_volume_zone: str | None = None
    # A customer managed KMS key for the data and root volumes; None: the account's default.
    data_volume_kms_key_arn: str | None = None
    # Fargate topologies: None keeps the FARGATE launch type; a strategy adds Fargate Spot.
    capacity_strategy: CapacityStrategy | None = None
    autoscaling: AutoscalingSettings | None = None  # None: desired_count, fixed
    # The app's secrets and task role (settings/app_secrets.py); nothing extra by default.
    access: AppAccess = field(default_factory=AppAccess)
    # ECS Exec into the app's tasks (components/exec_command.py); off: no shell at all.
    enable_execute_command: bool = False

    @property
    def is_neo4j(self) -> bool:
        return is_neo4j_image(self.image)


def is_neo4j_image(image: str) -> bool:
    """The default database's image (any registry or tag), which runs as one instance."""
    repository = image.split("@")[0].rsplit("/", 1)[-1]
    return repository.split(":")[0] == "neo4j"


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
    # Servers this service calls: they are created first (names resolve at task start).
    calls: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    cpu: int = 256
    memory: int = 512
    desired_count: int = 2
    capacity_strategy: CapacityStrategy | None = None  # as AppSettings
    autoscaling: AutoscalingSettings | None = None
    access: AppAccess = field(default_factory=AppAccess)  # as AppSettings.access
    enable_execute_command: bool = False  # ECS Exec, as app.enableExecuteCommand

    @property
    def is_server(self) -> bool:
        return self.mode == "server"

    @property
    def client_alias(self) -> str | None:
        """`name:port` clients call, for a server."""
        return f"{self.alias_dns_name}:{self.alias_port}" if self.is_server else None


@dataclass(frozen=True)
class EnvoySettings:
    image: str = ENVOY_IMAGE  # pinned: a proxy upgrade should be a reviewed change
    port: int = 8443  # unprivileged: Envoy runs as a non-root user
    min_tls_version: str = "1.2"  # the ALB's backend side; 1.3 needs a TLS13 listener policy
    access_log: str = "all"  # all | sampled | off (sampled: 10 % of requests)
    # Envoy closes idle connections to the app first: keep it below the app's keep-alive.
    upstream_idle_timeout_seconds: int = 50

    @property
    def envoy_tls_version(self) -> str:
        return ENVOY_TLS_VERSIONS[self.min_tls_version]


@dataclass(frozen=True)
class GatewayRoute:
    """appmesh-efs: requests whose path starts with `prefix` go to `service`."""

    prefix: str
    service: str
    prefix_rewrite: str | None = None  # None: the path is passed on unchanged


@dataclass(frozen=True)
class MeshSettings:
    """appmesh-efs: the Envoy gateway, the services' sidecars and their discovery."""

    namespace: str = ""  # Cloud Map private DNS namespace; "" until parsed (mesh.<domain>)
    mutual_tls: bool = True  # services accept only clients with a certificate from the CA
    client_certificate: CertificateSettings | None = None  # with a bring-your-own certificate
    gateway_routes: tuple[GatewayRoute, ...] = ()  # parsed default: / -> the first service
    gateway_desired_count: int = 2  # one gateway task per zone of the default VPC
    dns_refresh_seconds: int = 5  # how soon the gateway sees tasks that come and go
    # Root CAs every node trusts besides the mesh's own, during a CA rotation (PEM, public).
    additional_trusted_ca_pem: str | None = None


@dataclass(frozen=True)
class LoadBalancerSettings:
    """Optional extras of the public load balancer; the defaults change nothing."""

    access_logs: bool = False
    # An existing bucket whose policy already admits the load balancer's log delivery;
    # None with access_logs: the stack creates one (components/access_logs.py).
    access_logs_bucket: str | None = None
    access_logs_prefix: str = ""  # "": objects start at AWSLogs/
    access_logs_expiration_days: int = 90  # created bucket only
    deletion_protection: bool = False
    waf_web_acl_arn: str | None = None  # ALB only


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
    certificate_expiry_alarm_days: int = 30
    allowed_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    ssl_policy: str = DEFAULT_SSL_POLICY
    envoy: EnvoySettings = EnvoySettings()
    service_connect: ServiceConnectSettings = ServiceConnectSettings()
    mesh: MeshSettings = MeshSettings()
    alerts_email: str | None = None  # direct-task: no e-mail subscription unless asked
    # A CAA record for `domain` naming only the stack's CAs; off where CAA is managed elsewhere.
    caa_record: bool = True
    images: ImageSettings = field(default_factory=ImageSettings)  # no cache unless asked
    listener_certificate: ListenerCertificateSettings = ListenerCertificateSettings()
    load_balancer: LoadBalancerSettings = LoadBalancerSettings()

    @property
    def execute_command(self) -> bool:
        """Some workload of the topology takes ECS Exec: the cluster logs its sessions."""
        # Only the workload the topology runs: `app` or `services`, never both.
        if self.topology in ("service-connect", "appmesh-efs"):
            return any(v.enable_execute_command for v in self.services)
        return self.app.enable_execute_command


# Working workload defaults per topology; `app` overrides them field by field.
APP_DEFAULTS: dict[str, AppSettings] = {
    "alb-envoy": AppSettings(image=NGINX_IMAGE, port=80, health_check_path="/"),
    "service-connect": AppSettings(image=NGINX_IMAGE, port=80, health_check_path="/"),
    "appmesh-efs": AppSettings(image=NGINX_IMAGE, port=80, health_check_path="/"),
    "direct-task": AppSettings(
        # The app's plain port on the task's loopback; clients reach Envoy's TLS port.
        image=NGINX_IMAGE,
        port=80,
        health_check_path="/",
        desired_count=1,
    ),
    "nlb-certbot": AppSettings(
        image=NEO4J_IMAGE,
        port=7687,
        ports=(7473, 7687),  # HTTPS and bolt; plain HTTP (7474) is not exposed
        health_check_path="/",
        cpu=1024,
        memory=2048,
        desired_count=1,  # one Neo4j server: community edition does not cluster
        capacity="ec2",  # the seed's design, and the only one where /data persists
        data_path="/data",  # the image's VOLUME: the store, transaction logs and plugins
    ),
}

# The demo: a frontend (public) whose nginx proxies every request to the backend through
# its Service Connect alias, so one `curl` proves both hops. The load balancer checks
# /healthz, which the frontend answers itself: a health check that went through to the
# backend would mark every frontend unhealthy whenever the backend is slow.
DEMO_HEALTH_PATH = "/healthz"
DEMO_SERVICES = (
    ServiceSettings(
        name="frontend",
        image=NGINX_IMAGE,
        port=80,
        public=True,
        discovery_name="frontend",
        alias_dns_name="frontend",
        alias_port=80,
        health_check_path=DEMO_HEALTH_PATH,
        calls=("backend",),
        command=(
            "/bin/sh",
            "-c",
            "printf 'server { listen 80; "
            f"location = {DEMO_HEALTH_PATH} {{ return 200 ok; }} "
            "location / { proxy_pass http://backend:80; } }\\n' "
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

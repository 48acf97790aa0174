# ruff: noqa: E501  (one line per field description: the schema analyzer takes each string as written)
"""The typed arguments of the public topology components, shared by all of them.

Each field mirrors one key of the stack configuration (docs: README "Configuration
reference"): the schema name is the key (camelCase), the Python name its snake_case form.
A component turns its arguments back into that configuration and parses it with
`settings.parse_settings`, so a component and a stack validate and behave alike.

No `from __future__ import annotations` here, nor in a module that defines a public
component: Pulumi's schema analyzer (pulumi.provider.experimental.analyzer) reads the
annotations as objects, and each field's description from the string below it.
"""

from collections.abc import Mapping, Sequence
from typing import (
    Any,
    Required,
    TypedDict,
)

import pulumi

import settings.parse
from components.arguments import args_from_config, config_from_args
from settings import Settings

__all__ = [
    "AcmeArgs",
    "AlbEnvoyArgs",
    "AppArgs",
    "AppmeshEfsArgs",
    "AutoscalingArgs",
    "CertificateArgs",
    "CertificateLayoutArgs",
    "ClientAliasArgs",
    "ClientCertificateArgs",
    "DirectTaskArgs",
    "EnvoyArgs",
    "GatewayRouteArgs",
    "LoadBalancerArgs",
    "MeshArgs",
    "NlbCertbotArgs",
    "PrivateCaArgs",
    "ServiceArgs",
    "ServiceConnectArgs",
    "ServiceConnectTopologyArgs",
    "args_from_config",
    "config_from_args",
    "topology_settings",
]


class CertificateArgs(TypedDict, total=False):
    """The certificate the public load balancer presents; absent: a generated private chain."""

    source: str
    """`acm`: a publicly trusted certificate ACM issues and renews, validated by a DNS record in hostedZoneId; `generated`: a private chain imported into ACM (clients need the CA). Default: generated."""
    arn: str
    """An ACM certificate of the account and region for the load balancer, instead of source or PEMs; you renew it (imported) or ACM does (issued)."""
    certificate_pem: str
    """PEM of your leaf certificate (bring your own, with privateKeyPem)."""
    private_key_pem: str
    """PEM of the leaf's private key, a plain value: the component treats it as secret and stores it in Secrets Manager only."""
    chain_pem: str
    """PEM of the intermediate chain of certificatePem."""


class AcmeArgs(TypedDict, total=False):
    """Let's Encrypt (ACME): the account and how certificates are validated."""

    email: str
    """ACME account e-mail. Required."""
    challenge: str
    """ACME challenge: dns-01 (default, in hostedZoneId) or http-01."""
    server: str
    """ACME directory: staging (default), production, or an https:// directory URL."""
    profile: str
    """ACME profile to ask for: classic, tlsserver (45 days) or shortlived (about 6 days)."""
    renew_every_days: int
    """nlb-certbot: days between runs of the renewal task (1 to 30). Default: a sixth of the certificate lifetime."""


class CertificateLayoutArgs(TypedDict, total=False):
    """nlb-certbot: where the copier writes the certificate for an app that serves TLS itself. Default: Neo4j's layout."""

    directory: str
    """Base directory of the certificate files. Default: /ssl."""
    scopes: Sequence[str]
    """One subdirectory per TLS scope. Default: bolt, https."""
    certificate_file: str
    """File name of the certificate chain. Default: public.crt."""
    private_key_file: str
    """File name of the private key. Default: private.key."""
    owner: str
    """uid:gid owning the files. Default: 7474:7474 (the neo4j user)."""


class AutoscalingArgs(TypedDict, total=False):
    """Target tracking with Application Auto Scaling on the service's task count."""

    min: int
    """Fewest tasks (0 to 100); alarms count from it. Required with autoscaling."""
    max: int
    """Most tasks (1 to 100, at least min). Required with autoscaling."""
    cpu_percent: int
    """Average CPU utilisation of the service to hold (1 to 100)."""
    memory_percent: int
    """Average memory utilisation of the service to hold (1 to 100)."""
    requests_per_target: int
    """Requests per task per minute counted by the ALB target group to hold."""


class AppArgs(TypedDict, total=False):
    """The workload; each field overrides the topology's working default."""

    image: str
    """Container image of the app (pin it by digest). Default: per topology."""
    port: int
    """Port the app listens on. Default: per topology."""
    cpu: int
    """Fargate task CPU units. Default: 256."""
    memory: int
    """Fargate task memory (MiB), valid for cpu. Default: 512."""
    desired_count: int
    """Number of tasks. Default: 2."""
    health_check_path: str
    """HTTP path used by health checks. Default: per topology."""
    environment: Mapping[str, str]
    """Plain environment variables, stored in plaintext in the task definition: names that say secret and values that look like keys are refused."""
    capacity: Any
    """fargate (the FARGATE launch type, the default), fargate-spot, or weights {fargate, fargateSpot, base}. In an existing cluster only fargate: Spot needs the cluster's FARGATE_SPOT capacity provider, which the component does not add to a cluster it did not create."""
    autoscaling: AutoscalingArgs
    """Target tracking on the task count; desiredCount must lie from min to max. Default: none, the count stays desiredCount."""
    secrets: Mapping[str, Any]
    """Environment variables ECS fills from secrets at task start: NAME to the ARN of a Secrets Manager secret or SSM parameter, or to {arn, jsonKey, versionStage or versionId}. The execution role may read exactly these."""
    secrets_kms_key_arn: str
    """The customer managed KMS key that encrypts the app's secrets. Default: AWS managed keys."""
    task_role_policy_arns: Sequence[str]
    """IAM managed policy ARNs attached to the app's task role; at most 20."""
    task_role_arn: str
    """An existing IAM role used as the app's task role instead of the component's; excludes taskRolePolicyArns."""
    enable_execute_command: bool
    """ECS Exec into the app's tasks. Not in an existing cluster: sessions need the cluster's own ECS Exec configuration, which the component does not change."""
    ports: Sequence[int]
    """nlb-certbot: TLS ports the app serves and the NLB passes through (TCP). Default: 7473, 7687."""
    certificate_layout: CertificateLayoutArgs
    """nlb-certbot: where the copier writes the certificate for the app."""
    instance_type: str
    """nlb-certbot with capacity ec2: the instance type. Default: t3.large."""
    data_path: str
    """nlb-certbot with capacity ec2: the container path kept on the data volume. Default: /data."""
    data_volume_gib: int
    """nlb-certbot with capacity ec2: size of the encrypted gp3 data volume (configuration key app.dataVolumeGiB). Default: 20."""
    snapshot_retention_days: int
    """nlb-certbot with capacity ec2: daily snapshots of the data volume kept (0: none). Default: 7."""
    data_volume_snapshot_id: str
    """nlb-certbot with capacity ec2: create the data volume from this EBS snapshot, to restore."""
    data_volume_zone: str
    """nlb-certbot with capacity ec2: availability zone of a new data volume. Default: the first private subnet's."""
    data_volume_kms_key_arn: str
    """nlb-certbot with capacity ec2: customer managed KMS key of the data and root volumes. Default: the account's EBS key."""


class ClientAliasArgs(TypedDict, total=False):
    """The name and port clients of a Service Connect server use."""

    dns_name: str
    """DNS name clients call. Default: the service's name."""
    port: int
    """Port clients call; required when clientAlias is given."""


class ServiceArgs(TypedDict, total=False):
    """One service of service-connect."""

    name: Required[str]
    """Lowercase DNS label, unique among the services."""
    image: Required[str]
    """Container image (pin it by digest)."""
    port: Required[int]
    """Port the container listens on."""
    mode: str
    """server (reachable, TLS by Service Connect; the default) or client (calls others only)."""
    public: bool
    """The one server the ingress sends clients to. Default: frontend, else the first server."""
    app_protocol: str
    """http (default), http2 or grpc; fixed once the service exists."""
    discovery_name: str
    """Cloud Map name of the service. Default: name."""
    client_alias: ClientAliasArgs
    """Name and port clients use. Default: name and port."""
    calls: Sequence[str]
    """Names of the servers this service calls; ECS creates them first. Default: the public service and clients call every other server."""
    health_check_path: str
    """HTTP path the load balancer checks. Default: /."""
    command: Sequence[str]
    """Container command. Default: the image's."""
    environment: Mapping[str, str]
    """Plain environment variables; no secrets, as app.environment."""
    cpu: int
    """Fargate task CPU units. Default: 256."""
    memory: int
    """Fargate task memory (MiB). Default: 512."""
    secrets: Mapping[str, Any]
    """As app.secrets, for this service's container."""
    secrets_kms_key_arn: str
    """As app.secretsKmsKeyArn, for this service's secrets."""
    task_role_policy_arns: Sequence[str]
    """As app.taskRolePolicyArns, attached to this service's task role."""
    task_role_arn: str
    """As app.taskRoleArn, for this service."""
    desired_count: int
    """Number of tasks. Default: 2."""
    capacity: Any
    """As app.capacity: fargate only in an existing cluster."""
    autoscaling: AutoscalingArgs
    """As app.autoscaling, for this service."""
    enable_execute_command: bool
    """ECS Exec into this service's tasks; not in an existing cluster."""


class PrivateCaArgs(TypedDict, total=False):
    """The AWS Private CA that issues the Service Connect certificates. Default: a short-lived CA is created."""

    arn: str
    """ARN of an existing (e.g. RAM-shared) CA to use instead of creating one."""
    share_with: Sequence[str]
    """Account IDs, OU ARNs or an organization ARN to share the created CA with through RAM."""
    key_algorithm: str
    """Key of a created CA: EC_prime256v1 (default), EC_secp384r1 or RSA_2048."""
    signing_algorithm: str
    """Signing algorithm of a created CA, matching its key. Default: SHA256WITHECDSA."""
    permanent_deletion_days: int
    """Days a deleted CA stays restorable (7 to 30). Default: 7."""
    allow_external_principals: bool
    """Let the RAM share reach accounts outside your AWS Organization."""


class ServiceConnectArgs(TypedDict, total=False):
    """The Service Connect namespace and TLS options."""

    namespace: str
    """Name of the Cloud Map HTTP namespace. Default: <project>-<stack> (in an existing cluster: <project>-<stack>-<component name>, created by the component)."""
    customer_kms_key: bool
    """Encrypt the keys ECS stores for Service Connect TLS with a customer managed KMS key."""


class ClientCertificateArgs(TypedDict, total=False):
    """appmesh-efs with your certificate and mutual TLS: the client certificate nodes present."""

    certificate_pem: str
    """PEM of the client certificate, issued under certificate.chainPem's root."""
    private_key_pem: str
    """PEM of its private key, a plain value: the component treats it as secret."""


class GatewayRouteArgs(TypedDict, total=False):
    """One route of the mesh gateway."""

    prefix: Required[str]
    """Path prefix the route matches, e.g. /api/."""
    service: Required[str]
    """Name of the service requests go to."""
    prefix_rewrite: str
    """Replaces the matched prefix, e.g. /. Default: the path is passed on unchanged."""


class MeshArgs(TypedDict, total=False):
    """appmesh-efs: the Envoy gateway, the services' Envoy sidecars and their discovery."""

    namespace: str
    """Cloud Map private DNS namespace; service <name> is <name>.<namespace>. Default: mesh.<domain>."""
    mutual_tls: bool
    """Services accept only clients with a certificate from the mesh's CA. Default: true."""
    client_certificate: ClientCertificateArgs
    """With your own certificate and mutual TLS: the client certificate the gateway and services present."""
    gateway_routes: Sequence[GatewayRouteArgs]
    """The gateway's routes, longest prefix first. Default: / to the first service."""
    gateway_desired_count: int
    """Number of gateway Envoy tasks. Default: 2."""
    dns_refresh_seconds: int
    """How often the gateway's Envoy re-resolves the services' Cloud Map names (1 to 60). Default: 5."""
    additional_trusted_ca_pem: str
    """Root CA certificates (PEM) every Envoy trusts besides the mesh's own, for a CA rotation."""


class EnvoyArgs(TypedDict, total=False):
    """The TLS-terminating Envoy sidecar."""

    image: str
    """Stock Envoy image (v3 API, 1.21 or later), pinned by digest. Default: the pinned image the project tests."""
    port: int
    """Port of Envoy's TLS listener in the task. Default: 8443."""
    min_tls_version: str
    """Lowest TLS version Envoy accepts from the load balancer: 1.2 (default) or 1.3."""
    access_log: str
    """Envoy's JSON access log on stdout: all (default), sampled (10 %) or off."""
    upstream_idle_timeout_seconds: int
    """Envoy closes idle connections to the app after this many seconds (default 50); keep it below the app's keep-alive timeout."""


class LoadBalancerArgs(TypedDict, total=False):
    """Extras of the public load balancer; each off unless set."""

    access_logs: Any
    """true: access logs to an S3 bucket the component creates; or {bucket, prefix, expirationDays} to log to an existing bucket."""
    deletion_protection: bool
    """AWS refuses to delete the load balancer while true."""
    waf_web_acl_arn: str
    """ARN of a regional WAFv2 web ACL to associate with the ALB."""


class AlbEnvoyArgs(TypedDict, total=False):
    """The arguments of AlbEnvoy: where it runs, and the configuration keys of alb-envoy."""

    domain: Required[str]
    """The DNS name clients use; the certificate covers it."""
    vpc_id: pulumi.Input[str]
    """ID of the existing VPC to run in. Required, with the subnets and the cluster."""
    public_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Public subnets of the VPC, for the load balancer (one per availability zone, at least two)."""
    private_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Private subnets of the VPC, for the tasks; they need a NAT gateway or VPC endpoints to pull images and read secrets."""
    cluster: pulumi.Input[str]
    """Name or ARN of the existing ECS cluster the service runs in; the component creates its own log group and execution role and changes nothing of the cluster."""
    hosted_zone_id: str
    """Route53 zone holding domain; when set the component creates the alias record of domain (and validates an ACM-issued certificate in it)."""
    certificate: CertificateArgs
    """The certificate of the HTTPS listener. Default: a private chain generated with pulumi-tls and imported into ACM."""
    app: AppArgs
    """The workload behind Envoy. Default: a demo web server answering on port 8080."""
    envoy: EnvoyArgs
    """The Envoy sidecar that terminates TLS in each task."""
    ssl_policy: str
    """TLS policy of the HTTPS listener, a TLS13 one. Default: ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09."""
    allowed_cidrs: Sequence[str]
    """IPv4 CIDRs allowed to reach the load balancer (at most 30). Default: 0.0.0.0/0."""
    certificate_expiry_alarm_days: int
    """Days before the listener's certificate expires when the alerts topic is told (1 to 45). Default: 30."""
    log_retention_days: int
    """Retention of the tasks' CloudWatch log group, one of the values CloudWatch accepts. Default: 30."""
    alerts_email: str
    """E-mail address subscribed to the component's alerts topic (certificate expiry, fewer healthy targets than desired)."""
    load_balancer: LoadBalancerArgs
    """Extras of the ALB: access logs, deletion protection, a WAF web ACL."""


class DirectTaskArgs(TypedDict, total=False):
    """The arguments of DirectTask: where it runs, and the configuration keys of direct-task."""

    domain: Required[str]
    """The parent of the per-task names, e.g. tasks.example.com: each task is <taskId>.<domain>, covered by one wildcard certificate."""
    hosted_zone_id: Required[str]
    """Route53 zone holding domain: the per-task records and the DNS-01 validation go there."""
    acme: Required[AcmeArgs]
    """Let's Encrypt account (email required) and directory of the wildcard certificate."""
    vpc_id: pulumi.Input[str]
    """ID of the existing VPC to run in. Required, with the public subnets and the cluster."""
    public_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Public subnets of the VPC: the tasks run there with public IP addresses (no load balancer)."""
    cluster: pulumi.Input[str]
    """Name or ARN of the existing ECS cluster the service runs in; the component creates its own log group and execution role and changes nothing of the cluster."""
    app: AppArgs
    """The workload behind Envoy. Default: a demo web server."""
    envoy: EnvoyArgs
    """The Envoy sidecar that terminates TLS in each task."""
    allowed_cidrs: Sequence[str]
    """IPv4 CIDRs allowed to reach the tasks' TLS port. Default: 0.0.0.0/0."""
    log_retention_days: int
    """Retention of the tasks' CloudWatch log group, one of the values CloudWatch accepts. Default: 30."""
    alerts_email: str
    """E-mail address subscribed to the component's alerts topic (renewal failures, certificate expiry, fewer running tasks than desired)."""


class ServiceConnectTopologyArgs(TypedDict, total=False):
    """The arguments of ServiceConnect: where it runs, and the configuration keys of service-connect."""

    domain: Required[str]
    """The DNS name clients of the public service use."""
    vpc_id: pulumi.Input[str]
    """ID of the existing VPC to run in. Required, with the subnets and the cluster."""
    public_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Public subnets of the VPC, for the load balancer (ingress alb or nlb)."""
    private_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Private subnets of the VPC, for the tasks; they need a NAT gateway or VPC endpoints."""
    cluster: pulumi.Input[str]
    """Name or ARN of the existing ECS cluster the services run in; the component creates its own log group, execution role and Service Connect namespace, and changes nothing of the cluster."""
    hosted_zone_id: str
    """Route53 zone holding domain; when set the component creates the alias record of domain (and an ACM-issued certificate is the default)."""
    ingress: str
    """How clients reach the public service: alb (default), nlb or none."""
    services: Sequence[ServiceArgs]
    """The services. Default: a frontend that calls a backend."""
    private_ca: PrivateCaArgs
    """The Private CA of the Service Connect certificates."""
    service_connect: ServiceConnectArgs
    """The Service Connect namespace and TLS options."""
    certificate: CertificateArgs
    """The certificate of the load balancer's TLS listener."""
    ssl_policy: str
    """TLS policy of the load balancer's listener, a TLS13 one. Default: ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09."""
    allowed_cidrs: Sequence[str]
    """IPv4 CIDRs allowed to reach the load balancer. Default: 0.0.0.0/0."""
    certificate_expiry_alarm_days: int
    """Days before the listener's certificate expires when the alerts topic is told (1 to 45). Default: 30."""
    log_retention_days: int
    """Retention of the tasks' CloudWatch log group, one of the values CloudWatch accepts. Default: 30."""
    alerts_email: str
    """E-mail address subscribed to the component's alerts topic."""
    load_balancer: LoadBalancerArgs
    """Extras of the load balancer: access logs (ALB), deletion protection, a WAF web ACL (ALB)."""


class NlbCertbotArgs(TypedDict, total=False):
    """The arguments of NlbCertbot: where it runs, and the configuration keys of nlb-certbot."""

    domain: Required[str]
    """The DNS name clients use; the Let's Encrypt certificate covers it."""
    acme: Required[AcmeArgs]
    """Let's Encrypt account (email required), challenge and directory."""
    allowed_cidrs: Required[Sequence[str]]
    """IPv4 CIDRs allowed to reach the NLB, which passes TCP straight to the app: 0.0.0.0/0 opens it to everyone."""
    hosted_zone_id: str
    """Route53 zone holding domain: required by DNS-01 (the default challenge); the component creates the record of domain."""
    vpc_id: pulumi.Input[str]
    """ID of the existing VPC to run in. Required, with the subnets and the cluster."""
    public_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Public subnets of the VPC, for the NLB."""
    private_subnet_ids: Sequence[str]
    """Private subnets of the VPC (plain IDs: their zones are read before any resource, for the EFS mount targets), for the tasks."""
    cluster: pulumi.Input[str]
    """Name or ARN of the existing ECS cluster; the component creates its own log group and execution role and changes nothing of the cluster. There app.capacity must be fargate."""
    app: AppArgs
    """The app that terminates TLS itself. Default: Neo4j."""
    log_retention_days: int
    """Retention of the tasks' CloudWatch log group, one of the values CloudWatch accepts. Default: 30."""
    alerts_email: str
    """E-mail address subscribed to the component's alerts topic (renewal failures, certificate expiry)."""
    load_balancer: LoadBalancerArgs
    """Extras of the NLB: deletion protection only (it passes TCP)."""


class AppmeshEfsArgs(TypedDict, total=False):
    """The arguments of AppmeshEfs: where it runs, and the configuration keys of appmesh-efs."""

    domain: Required[str]
    """The DNS name clients use; the gateway's certificate covers it."""
    vpc_id: pulumi.Input[str]
    """ID of the existing VPC to run in. Required, with the private subnets and the cluster."""
    private_subnet_ids: Sequence[str]
    """Private subnets of the VPC (plain IDs: their zones are read before any resource, for the EFS mount targets), for the internal NLB and the tasks."""
    cluster: pulumi.Input[str]
    """Name or ARN of the existing ECS cluster; the component creates its own log group and execution role and changes nothing of the cluster."""
    hosted_zone_id: str
    """Route53 zone holding domain; when set the component creates the alias record of domain."""
    services: Sequence[ServiceArgs]
    """The mesh's services. Default: a frontend that calls a backend."""
    mesh: MeshArgs
    """The gateway, the sidecars and their discovery."""
    envoy: EnvoyArgs
    """The Envoy of the gateway and the sidecars."""
    certificate: CertificateArgs
    """Your certificate for every node (PEMs), instead of a generated mesh CA."""
    allowed_cidrs: Sequence[str]
    """IPv4 CIDRs allowed to reach the internal NLB. Default: 0.0.0.0/0 (inside the VPC only)."""
    certificate_expiry_alarm_days: int
    """Days before a certificate expires when the alerts topic is told (1 to 45). Default: 30."""
    log_retention_days: int
    """Retention of the tasks' CloudWatch log group, one of the values CloudWatch accepts. Default: 30."""
    alerts_email: str
    """E-mail address subscribed to the component's alerts topic."""
    load_balancer: LoadBalancerArgs
    """Extras of the NLB: deletion protection only (it passes TCP)."""


# --------------------------------------------------------------------------- conversion
# The conversion both ways lives with the foundation's (components/arguments.py).


def topology_settings(
    topology: str,
    args: Mapping[str, Any],
    args_type: type,
    foundation_fields: Sequence[str],
    secret_keys: Sequence[str] = (),
) -> Settings:
    """Validated settings of `topology` from a component's `args`, as a stack's would be.

    `foundation_fields`: arguments that name the foundation (VPC, subnets, cluster); they
    are resources' IDs, possibly unknown yet, not configuration, and are left out. A bad
    value raises `ConfigError` naming the argument's schema name, before any resource.
    """
    plain = {k: v for k, v in args.items() if k not in foundation_fields}
    values = {"topology": topology, **config_from_args(plain, args_type)}
    secret = list(secret_keys)
    # A key given to a component is secret by definition: errors never show it.
    certificate = values.get("certificate")
    if isinstance(certificate, Mapping) and "privateKeyPem" in certificate:
        secret.append("certificate")
    client = (values.get("mesh") or {}).get("clientCertificate")
    if isinstance(client, Mapping) and "privateKeyPem" in client:
        secret.append("mesh")
    # Looked up at call time: tests wrap settings.parse.parse_settings to see what is read.
    return settings.parse.parse_settings(values, secret)

"""Topology `appmesh-efs`: the App Mesh design of seed 003, on stock Envoy.

    client (in the VPC) --TLS--> internal NLB :443 (TCP) --> gateway Envoy (TLS, /certs)
        --mTLS, SAN = <service>.<namespace>--> service Envoy (TLS, /certs) --> app on 127.0.0.1
    app --> its Envoy on 127.0.0.1:<egress port> --mTLS--> the called service's Envoy

AWS shut App Mesh down on 2026-09-30, so nothing here is an `aws.appmesh` resource: App
Mesh was the control plane only, and what it sent its Envoys is generated here as static
bootstraps (task_contents/envoy/mesh.py, `render_mesh_bootstrap`).

Every node (the gateway and each service) has its own identity: with the generated chain,
its own key and certificate from the mesh CA, naming the node (`<service>.<namespace>`,
the gateway `gateway.<namespace>`). A service's Envoy accepts as callers only the names
its `calls` graph allows (and the gateway's when a gateway route leads to it); a caller
checks the callee's name. With your own certificate, the nodes share it and your client
certificate, so a service checks that a caller holds that client certificate (chain and
pinned public key) but cannot tell callers apart; a service nobody may call refuses
everyone.

The TLS files live on an encrypted EFS volume, as in the seed: a certificate publisher
(Lambda, functions/cert_publisher.py) writes each node's chain.pem, key.pem and ca.pem
(and your client certificate) as one set into the node's own directory, switched into
place at once (`current`), whenever one of them changes. Each node's task mounts only its
directory, read-only, through an access point rooted there that only the node's task role
may use. Envoy reads static files once, so tasks carry one fingerprint of every file of
their set: a new certificate, CA or client certificate changes the task definition and
ECS rolls the tasks after the files are written.

Changing the root CA. A node's ca.pem both checks its callers and its callees, and an
Envoy reads it once: while tasks roll from leaves of one root to leaves of another, old
and new tasks must trust both. `mesh.additionalTrustedCaPem` adds roots to every ca.pem
(`trust_bundle`: the mesh's root first); it is part of every set's fingerprint, so adding
or removing it rolls every task. A rotation is three deploys, each a complete rollout:
trust the new root besides the old one (old leaves), switch the leaves (the old root now
the additional one), drop the old root. The state lives in the stack's configuration, not
on the volume, so what the publisher writes and what the tasks' fingerprints say always
agree and a rerun changes nothing. The generated chain replaces its CA and every leaf in
one deploy, so it can only do the last two steps at once (docs/topologies/appmesh-efs.md
gives the steps).

Rollouts. Routes to other tasks retry a request that could not connect or was reset on
another task, and clusters eject tasks that keep failing (task_contents/envoy/clusters.py).
Every Envoy runs under an entry point that drains it on SIGTERM (`mesh_drain_command`) for
`drain_seconds`: longer than a caller may still hold the stopping task's address (its DNS
refresh, the record's TTL and the deregistration); the container's stopTimeout adds the
time Envoy needs to exit. The gateway's NLB deregisters a task before ECS stops it.

Client addresses. The NLB's target group sends a PROXY protocol v2 header; the gateway's
listener requires it and so sees the client's address, which it writes into
X-Forwarded-For (replacing whatever the client sent) for the services and their apps.
"""

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_tls as tls
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from components.alerts import healthy_targets_alarm_args
from components.app_access import allow_app_secrets, attach_policies
from components.app_secrets import container_secrets
from components.certificates import (
    CHAIN_KEY,
    LEAF_ALLOWED_USES,
    LEAF_EARLY_RENEWAL_HOURS,
    LEAF_VALIDITY_HOURS,
    ServerCertificate,
    ServerCertificateArgs,
    fingerprint,
    secret_document,
)
from components.dns import AliasTarget
from components.efs import EncryptedFileSystem, EncryptedFileSystemArgs, efs_volume
from components.exec_command import exec_command_line
from components.expiry_notice import (
    REISSUE,
    RENEW_CLIENT,
    WatchedCertificate,
    expiry_notices,
    generated_ca,
    pem_validity_end,
)
from components.firewall import allow_tcp
from components.iam import Statement, assume_role_policy, policy_document
from components.lambda_function import FUNCTIONS_DIR, PythonFunction, PythonFunctionArgs
from components.load_balancer import NetworkLoadBalancer, NetworkLoadBalancerArgs, NlbListener
from components.naming import physical_name
from components.service import (
    fargate_service,
    service_outputs,
    task_definition,
    tasks_security_group,
)
from components.verify import verify_outputs
from functions.cert_publisher import CURRENT_LINK
from settings import LoadBalancerSettings, ServiceSettings, Settings, creation_order
from settings.mesh import (
    GATEWAY_NODE,
    allowed_callers,
    egress_port,
    gateway_host,
    service_host,
    url_variable,
)
from settings.readers import raw_config
from task_contents.container_definitions import (
    Container,
    Dependency,
    HealthCheck,
    LogSettings,
    MountPoint,
    PortMapping,
    container_definitions_json,
)
from task_contents.envoy import (
    EgressListener,
    MeshProxySpec,
    PeerValidation,
    PrefixRoute,
    TlsFiles,
    UpstreamCluster,
    mesh_drain_command,
    mesh_stop_timeout,
    ready_check_command,
    tuning_for_task,
)
from task_contents.envoy.tuning import GATEWAY_MEMORY_SHARE
from topologies.args import AppmeshEfsArgs, args_from_config
from topologies.base import Foundation, TopologyResult, component_type
from topologies.foundation import FOUNDATION_KEYS, component_settings, existing_foundation

# Where every Envoy finds its node's TLS files (its directory of the EFS volume, read-only),
# and where the publisher mounts the directory of all nodes (Lambda requires a path under
# /mnt).
CERTIFICATE_DIR = "/certs"
PUBLISHER_MOUNT = "/mnt/certs"
VOLUME = "certificates"
# On the volume: one directory per node under this root (EFS access point paths: at most
# 100 characters and four levels, EFS API RootDirectory.Path; a node is a DNS label).
VOLUME_ROOT = "/mesh-certificates"
# IAM role names: at most 64 characters (IAM CreateRole RoleName); Pulumi appends 8 to the
# logical name, and a name_prefix takes at most 38 (the provider appends 26).
ROLE_NAME_LIMIT = 64
ROLE_NAME_PREFIX_LIMIT = 38
# The stock Envoy image's entrypoint switches to its `envoy` user and sets that user's uid
# from ENVOY_UID (envoyproxy.io, "Using the Envoy Docker Image"). Set explicitly so that
# the access point's POSIX user, which owns and reads the files, is Envoy's user by
# construction.
ENVOY_UID = 101
# The Cloud Map records' TTL (s): the VPC resolver caches no longer than this, so with
# Envoy's DNS refresh the gateway sees a task that comes or goes within ~10 s.
DNS_TTL_SECONDS = 5
# How long a stopping Envoy keeps serving while it closes its connections: ECS removes the
# task from Cloud Map when it starts stopping, but a caller's Envoy re-resolves only every
# mesh.dnsRefreshSeconds, and the VPC resolver may answer from its cache for the record's
# TTL: until both have passed, callers still send new connections here. DRAIN_MARGIN_SECONDS
# covers the deregistration itself. The container's stopTimeout adds the time Envoy needs
# to exit (task_contents/envoy/drain.py, mesh_stop_timeout); at most 70 + 10 s, within
# Fargate's 120.
DRAIN_MARGIN_SECONDS = 5
# The gateway task (Envoy alone): the smallest Fargate size.
GATEWAY_CPU = 256
GATEWAY_MEMORY = 512


# The node's visible set: a symlink the publisher switches in one rename, so the files
# read through it always belong together.
CURRENT_SET = f"{CERTIFICATE_DIR}/{CURRENT_LINK}"


@dataclass(frozen=True)
class MeshFiles:
    """One node's TLS files as its Envoy sees them: the node's own directory is mounted at
    CERTIFICATE_DIR. Tests relocate them to a node's directory elsewhere (`MeshFiles.under`)."""

    chain: str = f"{CURRENT_SET}/chain.pem"
    key: str = f"{CURRENT_SET}/key.pem"
    ca: str = f"{CURRENT_SET}/ca.pem"
    client_chain: str = f"{CURRENT_SET}/client.pem"
    client_key: str = f"{CURRENT_SET}/client-key.pem"

    @classmethod
    def under(cls, node_directory: str) -> "MeshFiles":
        """The files as published into `node_directory` (what CERTIFICATE_DIR mounts)."""
        names = ("chain", "key", "ca", "client", "client-key")
        return cls(*(f"{node_directory}/{CURRENT_LINK}/{name}.pem" for name in names))


def drain_seconds(s: Settings) -> int:
    return s.mesh.dns_refresh_seconds + DNS_TTL_SECONDS + DRAIN_MARGIN_SECONDS


_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.DOTALL)


def trust_bundle(ca_pem: str, additional_pem: str | None) -> str:
    """ca.pem: the mesh's root, then each additional root that is not it (one file is what
    Envoy's trusted_ca takes; it trusts every certificate in it). Roots are compared as PEM
    text: settings re-encode mesh.additionalTrustedCaPem as the mesh's roots are encoded."""
    if not additional_pem:
        return ca_pem
    own = set(_PEM_CERTIFICATE.findall(ca_pem))
    extra = [pem + "\n" for pem in _PEM_CERTIFICATE.findall(additional_pem) if pem not in own]
    if not extra:
        return ca_pem
    return (ca_pem if ca_pem.endswith("\n") else ca_pem + "\n") + "".join(extra)


def node_names(s: Settings) -> list[str]:
    """Every mesh node: its directory on the volume and part of its resources' names."""
    return [GATEWAY_NODE, *(v.name for v in s.services)]


def cluster_name(service: ServiceSettings) -> str:
    # Prefixed: a service called "app" must not clash with the sidecar's local cluster.
    return f"service_{service.name}"


def client_files(s: Settings, files: MeshFiles) -> TlsFiles | None:
    """What a caller presents for mutual TLS: your client certificate, else the node's own
    generated leaf (issued for server and client authentication, naming the node)."""
    if not s.mesh.mutual_tls:
        return None
    if s.mesh.client_certificate is not None:
        return TlsFiles(files.client_chain, files.client_key)
    return TlsFiles(files.chain, files.key)


def upstream(s: Settings, service: ServiceSettings, files: MeshFiles) -> UpstreamCluster:
    """A service's Envoy, found through Cloud Map, checked by chain and name."""
    return UpstreamCluster(
        name=cluster_name(service),
        host=service_host(service, s.mesh.namespace),
        port=s.envoy.port,
        trusted_ca=files.ca,
        client_certificate=client_files(s, files),
    )


def gateway_spec(s: Settings, files: MeshFiles = MeshFiles()) -> MeshProxySpec:
    """The virtual gateway: TLS for clients, prefix routes, re-encryption to services."""
    by_name = {v.name: v for v in s.services}
    routed = [by_name[name] for name in dict.fromkeys(r.service for r in s.mesh.gateway_routes)]
    return MeshProxySpec(
        listener_port=s.envoy.port,
        server_certificate=TlsFiles(files.chain, files.key),
        routes=tuple(
            PrefixRoute(r.prefix, cluster_name(by_name[r.service]), r.prefix_rewrite)
            for r in s.mesh.gateway_routes
        ),
        upstreams=tuple(upstream(s, v, files) for v in routed),
        min_tls_version=s.envoy.envoy_tls_version,
        dns_refresh_ms=s.mesh.dns_refresh_seconds * 1000,
        stat_prefix="gateway",
        # The NLB's target group sends a PROXY protocol v2 header: the client's address.
        proxy_protocol=True,
        # Envoy is the gateway task's only container: it may use most of the memory.
        tuning=tuning_for_task(
            GATEWAY_CPU,
            GATEWAY_MEMORY,
            memory_share=GATEWAY_MEMORY_SHARE,
            access_log=s.envoy.access_log,
            upstream_idle_timeout_seconds=s.envoy.upstream_idle_timeout_seconds,
        ),
    )


def service_spec(
    s: Settings, service: ServiceSettings, files: MeshFiles = MeshFiles()
) -> MeshProxySpec:
    """A virtual node: TLS (mutual by default) in front of the app, egress to its calls."""
    index = {v.name: i for i, v in enumerate(s.services)}
    called = [v for v in s.services if v.name in service.calls]
    mutual = s.mesh.mutual_tls
    return MeshProxySpec(
        listener_port=s.envoy.port,
        server_certificate=TlsFiles(files.chain, files.key),
        routes=(PrefixRoute("/", "app"),),
        app_port=service.port,
        require_client_certificate=mutual,
        client_validation=client_validation(s, service, files) if mutual else None,
        upstreams=tuple(upstream(s, v, files) for v in called),
        egress=tuple(EgressListener(egress_port(index[v.name]), cluster_name(v)) for v in called),
        min_tls_version=s.envoy.envoy_tls_version,
        dns_refresh_ms=s.mesh.dns_refresh_seconds * 1000,
        # The gateway (or a calling Envoy) appends the client's address.
        xff_num_trusted_hops=1,
        tuning=tuning_for_task(
            service.cpu,
            service.memory,
            access_log=s.envoy.access_log,
            upstream_idle_timeout_seconds=s.envoy.upstream_idle_timeout_seconds,
        ),
    )


def client_validation(s: Settings, service: ServiceSettings, files: MeshFiles) -> PeerValidation:
    """Who may call `service`: a certificate from the mesh's CA that names one of its
    allowed callers. With your own certificates every caller presents your one client
    certificate, which tells no caller from another: a service that someone may call
    accepts that certificate (chain and public key), one that nobody may call refuses
    everyone."""
    callers = allowed_callers(service, s.services, s.mesh.gateway_routes, s.mesh.namespace)
    client = s.mesh.client_certificate
    if client is not None and callers:
        # Pinned: your CA may have issued many other certificates that chain to its root.
        return PeerValidation(files.ca, spki_sha256=(spki_pin(client.certificate_pem),))
    return PeerValidation(files.ca, callers)


def spki_pin(certificate_pem: str) -> str:
    """Base64 SHA-256 of the certificate's SubjectPublicKeyInfo (DER), as Envoy compares it."""
    key = x509.load_pem_x509_certificate(certificate_pem.encode()).public_key()
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def egress_environment(s: Settings, service: ServiceSettings) -> dict[str, str]:
    """<NAME>_URL for each service this one calls: its Envoy's loopback listener."""
    index = {v.name: i for i, v in enumerate(s.services)}
    return {
        url_variable(name): f"http://127.0.0.1:{egress_port(index[name])}" for name in service.calls
    }


@dataclass(frozen=True)
class TaskValues:
    certificate_fingerprint: str
    log_group: str
    region: str


def envoy_container(s: Settings, spec: MeshProxySpec, v: TaskValues, prefix: str) -> Container:
    return Container(
        name="envoy",
        image=s.envoy.image,
        # Drains on SIGTERM (task_contents/envoy/drain.py, mesh_drain_command), within stopTimeout.
        command=mesh_drain_command(spec, drain_seconds(s)),
        stop_timeout=mesh_stop_timeout(drain_seconds(s)),
        environment={
            # A new published file changes the task definition: ECS starts new tasks, whose
            # Envoy reads the new files (it does not watch files on NFS).
            "CERTIFICATE_SHA256": v.certificate_fingerprint,
            "ENVOY_UID": str(ENVOY_UID),
            "ENVOY_GID": str(ENVOY_UID),
        },
        port_mappings=[PortMapping(s.envoy.port, name="https")],
        mount_points=[MountPoint(VOLUME, CERTIFICATE_DIR, read_only=True)],
        health_check=HealthCheck(command=ready_check_command(spec.health_port), start_period=10),
        log=LogSettings(v.log_group, v.region, prefix),
    )


def gateway_containers(s: Settings, v: TaskValues) -> list[Container]:
    return [envoy_container(s, gateway_spec(s), v, "mesh-gateway")]


def service_containers(s: Settings, service: ServiceSettings, v: TaskValues) -> list[Container]:
    """The app and its Envoy; only Envoy's TLS port is reachable from outside the task."""
    envoy = envoy_container(s, service_spec(s, service), v, f"mesh-{service.name}")
    app = Container(
        name=service.name,
        image=service.image,
        command=service.command,
        environment={**dict(service.environment), **egress_environment(s, service)},
        secrets=container_secrets(service.access),
        log=LogSettings(v.log_group, v.region, f"mesh-{service.name}"),
    )
    return [app, replace(envoy, depends_on=[Dependency(service.name, "START")])]


def root_ca_pem(chain_pem: str) -> str:
    """The last certificate of your chain: its root (settings checked it is self-issued)."""
    root = x509.load_pem_x509_certificates(chain_pem.encode())[-1]
    return root.public_bytes(Encoding.PEM).decode()


def publisher_statements(
    secret_arns: list[str], file_system_arn: str, access_point_arn: str, vpc_id: str
) -> list[Statement]:
    _, partition, _, region, account = file_system_arn.split(":")[:5]
    ec2 = f"arn:{partition}:ec2:{region}:{account}"
    return [
        Statement("ReadCertificateSecrets", ["secretsmanager:GetSecretValue"], secret_arns),
        # The only writer of the file system, through its access point only.
        Statement(
            "WriteCertificateFiles",
            ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
            [file_system_arn],
            condition={"StringEquals": {"elasticfilesystem:AccessPointArn": access_point_arn}},
        ),
        # Before the function is deleted, the provider moves it onto the VPC's default
        # group (components/lambda_function.py, VPC_TEARDOWN), whose ID the program does
        # not know; Lambda creates those interfaces with this role. Any group, but only of
        # this VPC (ec2:Vpc on the security-group resource).
        Statement(
            "CreateInterfacesInTheDefaultGroupOnDestroy",
            ["ec2:CreateNetworkInterface"],
            [f"{ec2}:security-group/*"],
            condition={"ArnEquals": {"ec2:Vpc": f"{ec2}:vpc/{vpc_id}"}},
        ),
    ]


def reader_statements(file_system_arn: str, access_point_arn: str) -> list[Statement]:
    # Without ClientWrite, EFS mounts the volume read-only for this role.
    return [
        Statement(
            "MountCertificatesReadOnly",
            ["elasticfilesystem:ClientMount"],
            [file_system_arn],
            condition={"StringEquals": {"elasticfilesystem:AccessPointArn": access_point_arn}},
        )
    ]


# What stands for a generated key in a set's fingerprint: pulumi-tls issues a new
# certificate whenever a key is replaced (its request changes), so the chain's entry
# already changes with the key.
GENERATED_KEY = "generated: changes with chain.pem"


def published_chain(leaf_pem: str, chain_pem: str | None) -> str:
    """chain.pem (or client.pem) exactly as the publisher writes it from the secret."""
    return json.loads(secret_document(leaf_pem, chain_pem, ""))[CHAIN_KEY]


def key_identity(private_key_pem: str) -> str:
    """What stands for a key file of yours in a set's fingerprint: the SHA-256 of its
    public half, which is public (unlike any digest of the key itself, which tasks and
    the publisher's input would show)."""
    key = load_pem_private_key(private_key_pem.encode(), password=None)
    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return "public key sha256:" + hashlib.sha256(der).hexdigest()


def set_fingerprint(files: Mapping[str, str]) -> str:
    """One digest over every file a node's set publishes ({name: content, or a key's
    identity}): what the node's tasks carry, so that any change rolls them."""
    return fingerprint(json.dumps(dict(files), sort_keys=True))


@dataclass(frozen=True)
class NodeIdentity:
    """Where a node's TLS material is kept (public ARNs) and the fingerprint of its set."""

    secret_arn: pulumi.Output[str]
    client_secret_arn: pulumi.Output[str] | None
    fingerprint: pulumi.Output[str]


def publication_nodes(identities: dict[str, NodeIdentity]) -> pulumi.Output[dict]:
    """{node: {"certificate": ARN[, "client": ARN], "fingerprint": ...}}."""

    def entry(identity: NodeIdentity) -> pulumi.Output[dict]:
        return pulumi.Output.all(
            identity.secret_arn, identity.client_secret_arn, identity.fingerprint
        ).apply(
            lambda v: {
                "certificate": v[0],
                **({"client": v[1]} if v[1] else {}),
                "fingerprint": v[2],
            }
        )

    return pulumi.Output.all(*(entry(i) for i in identities.values())).apply(
        lambda entries: dict(zip(identities, entries, strict=True))
    )


def publisher_code_digest() -> str:
    """The handler's source as deployed (the module is the whole package)."""
    return hashlib.sha256((FUNCTIONS_DIR / "cert_publisher.py").read_bytes()).hexdigest()


def publication_event(ca_pem: str, nodes: dict[str, dict], target: Mapping[str, str]) -> str:
    """The publisher's event: no key, only where the keys are; one fingerprint of every
    node's set, and `target` (the code, the file system and its access point), so that a
    new file, new code or a new volume invokes the publisher again."""
    every = {n: e["fingerprint"] for n, e in nodes.items()}
    event = {
        "caPem": ca_pem,
        "fingerprint": fingerprint(json.dumps(every, sort_keys=True)),
        "nodes": {n: {k: v for k, v in e.items() if k != "fingerprint"} for n, e in nodes.items()},
        **target,
    }
    return json.dumps(event, sort_keys=True)


def role_naming(logical_name: str) -> dict[str, str]:
    """Nothing (Pulumi's auto-name fits) or a name prefix for a long service name."""
    if len(logical_name) + 8 <= ROLE_NAME_LIMIT:
        return {}
    return {"name_prefix": logical_name[:ROLE_NAME_PREFIX_LIMIT]}


@dataclass(frozen=True)
class NodeCertificateArgs:
    host: str  # the node's Cloud Map name: its certificate's only DNS name
    ca_certificate_pem: pulumi.Input[str]
    ca_private_key_pem: pulumi.Input[str]
    client_auth: bool  # mutual TLS: the node presents it when it calls
    # The node's ca.pem: the CA, and any root trusted besides it (trust_bundle).
    trusted_ca_pem: pulumi.Input[str] | None = None


class NodeCertificate(pulumi.ComponentResource):
    """One service's ECDSA key and certificate from the mesh CA, kept in Secrets Manager
    (leaf + CA, and the key) for the publisher; nothing else ever holds the key."""

    certificate_pem: pulumi.Output[str]
    fingerprint: pulumi.Output[str]
    secret_arn: pulumi.Output[str]
    secret_version: aws.secretsmanager.SecretVersion

    def __init__(
        self, name: str, args: NodeCertificateArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:appmesh_efs:NodeCertificate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(name, algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            name,
            private_key_pem=key.private_key_pem,
            subject={"common_name": args.host, "organization": "ecs-tls"},
            dns_names=[args.host],
            opts=child,
        )
        leaf = tls.LocallySignedCert(
            name,
            cert_request_pem=request.cert_request_pem,
            ca_cert_pem=args.ca_certificate_pem,
            ca_private_key_pem=args.ca_private_key_pem,
            # Renewed like the gateway's (whose expiry the alarm watches): in the last 60
            # days of a year, by any `pulumi up`.
            validity_period_hours=LEAF_VALIDITY_HOURS,
            early_renewal_hours=LEAF_EARLY_RENEWAL_HOURS,
            allowed_uses=[*LEAF_ALLOWED_USES, *(["client_auth"] if args.client_auth else [])],
            opts=child,
        )
        secret = aws.secretsmanager.Secret(
            name,
            description=f"Mesh certificate and private key of {args.host} (ecs-tls)",
            opts=child,
        )
        self.secret_version = aws.secretsmanager.SecretVersion(
            name,
            secret_id=secret.id,
            secret_string=pulumi.Output.secret(
                pulumi.Output.all(
                    leaf.cert_pem, args.ca_certificate_pem, key.private_key_pem
                ).apply(lambda v: secret_document(v[0], v[1], v[2]))
            ),
            opts=child,
        )
        self.certificate_pem = leaf.cert_pem
        # For its expiry notice.
        self.host = args.host
        self.validity_end_time = leaf.validity_end_time
        # The node's set: what it trusts, its chain (with the mesh CA), its (generated) key.
        trusted = (
            args.trusted_ca_pem if args.trusted_ca_pem is not None else args.ca_certificate_pem
        )
        self.fingerprint = pulumi.Output.all(args.ca_certificate_pem, leaf.cert_pem, trusted).apply(
            lambda v: set_fingerprint(
                {"ca.pem": v[2], "chain.pem": published_chain(v[1], v[0]), "key.pem": GENERATED_KEY}
            )
        )
        self.secret_arn = secret.arn
        self.register_outputs({"certificatePem": leaf.cert_pem, "secretArn": secret.arn})


class AppmeshEfs(pulumi.ComponentResource):
    """appmesh-efs: internal NLB, Envoy gateway and mutual-TLS sidecars, certificates on EFS."""

    endpoint: pulumi.Output[str]
    """The URL clients inside the VPC use: https://<domain>."""
    load_balancer_dns_name: pulumi.Output[str]
    """DNS name of the internal NLB in front of the gateway."""
    service_arns: pulumi.Output[Mapping[str, str]]
    """ARNs of the ECS services, by service name."""

    def __init__(
        self,
        name: str,
        args: AppmeshEfsArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        foundation: Foundation | None = None,
    ):
        """`foundation`: this program's shared network, cluster, alerts and DNS record
        (Python only); without it, args must name an existing VPC, private subnets (plain
        IDs: their zones are read first) and cluster."""
        required = ("vpc_id", "private_subnet_ids", "cluster")
        s = component_settings(
            "appmesh-efs", name, args, AppmeshEfsArgs, foundation, required, reads_zones=True
        )
        super().__init__(component_type("appmesh_efs", "AppmeshEfs"), name, None, opts)
        if foundation is None:
            foundation = existing_foundation(name, self, s, args, with_zones=True)
        child = pulumi.ResourceOptions(parent=self)
        network, cluster, mesh = foundation.network, foundation.cluster, s.mesh
        # --- certificates: yours (e.g. from Venafi), which every node shares, or a generated
        # mesh CA that issues one key and certificate per node. The gateway's certificate
        # (in ACM, watched by the expiry alarm) also names the domain clients use.
        self.certificate = ServerCertificate(
            f"{name}-certificate",
            ServerCertificateArgs(
                domain=s.domain,
                provided=s.certificate,
                extra_dns_names=(gateway_host(mesh.namespace),),
                client_auth=mesh.mutual_tls,
            ),
            opts=child,
        )
        if s.certificate is None:
            ca_pem: pulumi.Input[str] = self.certificate.ca_certificate_pem
        else:
            ca_pem = root_ca_pem(s.certificate.chain_pem or "")
        # What every node's ca.pem holds: the mesh's root, and during a CA rotation the
        # other root too (see the module docstring).
        ca_pem = pulumi.Output.from_input(ca_pem).apply(
            lambda pem: trust_bundle(pem, mesh.additional_trusted_ca_pem)
        )
        client_arn, written_after = None, [self.certificate.secret_version]
        self.client_secret = None
        if mesh.client_certificate is not None:
            self.client_secret, version = self._client_secret(name, s)
            client_arn = self.client_secret.arn
            written_after.append(version)
        gateway = NodeIdentity(
            self.certificate.secret_arn, client_arn, self._shared_set_fingerprint(s, ca_pem)
        )
        self.identities: dict[str, NodeIdentity] = {GATEWAY_NODE: gateway}
        self.node_certificates: dict[str, NodeCertificate] = {}
        for service in s.services:
            if s.certificate is not None:
                self.identities[service.name] = gateway
                continue
            issued = NodeCertificate(
                f"{name}-{service.name}-certificate",
                NodeCertificateArgs(
                    host=service_host(service, mesh.namespace),
                    ca_certificate_pem=self.certificate.ca_certificate_pem,
                    ca_private_key_pem=self.certificate.ca_private_key_pem,
                    client_auth=mesh.mutual_tls,
                    trusted_ca_pem=ca_pem,
                ),
                opts=child,
            )
            self.node_certificates[service.name] = issued
            self.identities[service.name] = NodeIdentity(
                issued.secret_arn, None, issued.fingerprint
            )
            written_after.append(issued.secret_version)
        secret_arns = [
            arn
            for identity in self.identities.values()
            for arn in (identity.secret_arn, identity.client_secret_arn)
            if arn is not None
        ]
        foundation.alerts.certificate_expiry_alarm(
            f"{name}-certificate-expiry",
            self.certificate.acm_certificate_arn,
            s.domain,
            s.certificate_expiry_alarm_days,
            parent=self,
        )
        # The alarm watches the gateway's certificate in ACM; the mesh CA, the nodes'
        # leaves and your client certificate are in no AWS service.
        watched: list[tuple[str, WatchedCertificate]] = []
        if self.certificate.ca_validity_end_time is not None:
            watched.append(
                (f"{name}-ca", generated_ca(s.domain, self.certificate.ca_validity_end_time))
            )
        for service_name, node in self.node_certificates.items():
            label = f"the mesh certificate of {node.host}"
            end = node.validity_end_time
            watched.append((f"{name}-{service_name}", WatchedCertificate(label, end, REISSUE)))
        if mesh.client_certificate is not None:
            end = pem_validity_end(mesh.client_certificate.certificate_pem)
            label = "the mesh client certificate (ecs-tls:mesh.clientCertificate)"
            watched.append((f"{name}-client", WatchedCertificate(label, end, RENEW_CLIENT)))
        if watched:
            expiry_notices(name, foundation.alerts, s.certificate_expiry_alarm_days, self, watched)

        # --- security groups
        gateway_sg = tasks_security_group(
            f"{name}-gateway", network.vpc_id, "Mesh gateway: the Envoy TLS port from the NLB", self
        )
        members_sg = tasks_security_group(
            f"{name}-services",
            network.vpc_id,
            "Mesh services: the Envoy TLS port from the gateway and each other",
            self,
        )
        efs_clients = aws.ec2.SecurityGroup(
            f"{name}-efs-clients",
            description="Mesh: NFS to the certificate file system",
            vpc_id=network.vpc_id,
            opts=child,
        )
        port = s.envoy.port
        for peer, label in ((gateway_sg, "gateway"), (members_sg, "services")):
            allow_tcp(
                f"{name}-services-from-{label}",
                members_sg.id,
                port,
                self,
                description=f"Service Envoy TLS port, from the {label}",
                peer_group_id=peer.id,
            )
            allow_tcp(
                f"{name}-{label}-to-services",
                peer.id,
                port,
                self,
                description="To the service Envoy TLS port",
                peer_group_id=members_sg.id,
                egress=True,
            )
        # DNS needs no rule: security groups do not filter traffic to the VPC resolver.

        # --- the certificate volume: only the publisher writes (all nodes' directories);
        # each node's Envoy reads its own directory through its own access point, which
        # only its task role may use (IAM condition elasticfilesystem:AccessPointArn, EFS
        # user guide "Using access points in IAM policies").
        efs = EncryptedFileSystem(
            f"{name}-certificates",
            EncryptedFileSystemArgs(
                vpc_id=network.vpc_id,
                zonal_subnets=network.private_zonal_subnets,
                client_security_group_id=efs_clients.id,
                # Writer and readers hold their grants in their own identity policies: the
                # publisher's role is created later, and each reader is held to its own
                # access point, which the file system policy's one access point cannot say.
                client_role_arns=[],
                reader_role_arns=[],
                root_path=VOLUME_ROOT,
                uid=ENVOY_UID,
                gid=ENVOY_UID,
                client_root_access=False,
            ),
            opts=child,
        )
        self.file_system = efs
        allow_tcp(
            f"{name}-efs-clients-nfs-out",
            efs_clients.id,
            2049,
            self,
            description="NFS over TLS to the certificate volume",
            peer_group_id=efs.security_group.id,
            egress=True,
        )
        self.envoy_roles: dict[str, aws.iam.Role] = {}
        self.access_points: dict[str, aws.efs.AccessPoint] = {}
        volumes: dict[str, pulumi.Output] = {}
        read_only: dict[str, aws.iam.RolePolicy] = {}
        for node in node_names(s):
            point = aws.efs.AccessPoint(
                f"{name}-{node}-certificates",
                file_system_id=efs.file_system.id,
                posix_user={"uid": ENVOY_UID, "gid": ENVOY_UID},
                root_directory={
                    "path": f"{VOLUME_ROOT}/{node}",
                    # The publisher creates the directory first; this only applies if a
                    # task mounts before it did (and then finds no files).
                    "creation_info": {
                        "owner_uid": ENVOY_UID,
                        "owner_gid": ENVOY_UID,
                        "permissions": "0700",
                    },
                },
                tags={"Name": physical_name(f"mesh-{node}-certificates")},
                opts=child,
            )
            role_name = f"{name}-{node}-envoy"
            role = aws.iam.Role(
                role_name,
                description=f"appmesh-efs {node} Envoy: mount its certificate directory read-only",
                assume_role_policy=cluster.account_id.apply(
                    lambda a: assume_role_policy("ecs-tasks.amazonaws.com", a)
                ),
                **role_naming(role_name),
                opts=child,
            )
            read_only[node] = aws.iam.RolePolicy(
                f"{name}-{node}-envoy-efs",
                name="mount-certificates-read-only",
                role=role.id,
                policy=pulumi.Output.all(efs.file_system.arn, point.arn).apply(
                    lambda v: policy_document(reader_statements(v[0], v[1]))
                ),
                opts=child,
            )
            volumes[node] = pulumi.Output.all(efs.file_system.id, point.id).apply(
                lambda v: [efs_volume(VOLUME, v[0], v[1])]
            )
            self.envoy_roles[node], self.access_points[node] = role, point

        # --- the publisher, run at deploy time whenever a node's certificate changes
        publisher_sg = tasks_security_group(
            f"{name}-publisher",
            network.vpc_id,
            "Certificate publisher: HTTPS out to Secrets Manager",
            self,
        )
        publisher = PythonFunction(
            f"{name}-cert-publisher",
            PythonFunctionArgs(
                module="cert_publisher",
                description="appmesh-efs: write the mesh's TLS files to EFS",
                log_retention_days=s.log_retention_days,
                statements=pulumi.Output.all(
                    secret_arns, efs.file_system.arn, efs.access_point.arn, network.vpc_id
                ).apply(lambda v: publisher_statements(sorted(set(v[0])), v[1], v[2], v[3])),
                environment={"CERTIFICATE_DIR": PUBLISHER_MOUNT},
                subnet_ids=network.private_subnet_ids,
                security_group_ids=[publisher_sg.id, efs_clients.id],
                file_system_access_point_arn=efs.access_point.arn,
                mount_path=PUBLISHER_MOUNT,
            ),
            # Lambda mounts through a mount target in the function's zones.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(efs.mount_targets)),
        )
        self.publication = aws.lambda_.Invocation(
            f"{name}-publish-certificates",
            function_name=publisher.function.name,
            # Public values only (the CA, fingerprints, secret ARNs, what it runs and
            # writes to); any change of them changes the input, which invokes again.
            input=pulumi.Output.all(
                ca_pem,
                publication_nodes(self.identities),
                efs.file_system.id,
                efs.access_point.arn,
            ).apply(
                lambda v: publication_event(
                    v[0],
                    v[1],
                    {"code": publisher_code_digest(), "fileSystem": v[2], "accessPoint": v[3]},
                )
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*written_after, efs.policy, *efs.mount_targets, *publisher.ready],
            ),
        )

        # --- discovery: a private DNS namespace, apart from the cluster's HTTP namespace
        self.namespace = aws.servicediscovery.PrivateDnsNamespace(
            f"{name}-namespace",
            name=mesh.namespace,
            vpc=network.vpc_id,
            description="appmesh-efs services (ecs-tls)",
            opts=child,
        )
        values = {
            node: pulumi.Output.all(
                identity.fingerprint, cluster.log_group.name, cluster.region
            ).apply(lambda v: TaskValues(v[0], v[1], v[2]))
            for node, identity in self.identities.items()
        }

        # Envoy mounts its certificates with the task role, so each service's policies join
        # its role; services[].taskRoleArn is refused here (settings/app_secrets.py).
        app_ready: dict[str, list[pulumi.Resource]] = {GATEWAY_NODE: []}
        for service in s.services:
            app_ready[service.name] = list(
                attach_policies(
                    f"{name}-{service.name}-task",
                    self.envoy_roles[service.name],
                    service.access,
                    self,
                )
            )
        read_app_secrets = allow_app_secrets(
            name, cluster.execution_role, [v.access for v in s.services], self
        )
        if read_app_secrets is not None:
            for service in s.services:
                if service.access.secrets:
                    app_ready[service.name].append(read_app_secrets)

        def ready(node: str) -> list[pulumi.Resource]:
            return [
                self.publication,
                read_only[node],
                efs.policy,
                *efs.mount_targets,
                *app_ready[node],
            ]

        self.services: dict[str, aws.ecs.Service] = {}
        for service in creation_order(s.services):
            registry = aws.servicediscovery.Service(
                f"{name}-{service.name}",
                name=service.discovery_name,
                dns_config={
                    "namespace_id": self.namespace.id,
                    "dns_records": [{"type": "A", "ttl": DNS_TTL_SECONDS}],
                    "routing_policy": "MULTIVALUE",
                },
                # DeleteService fails while instances are registered, and ECS may still
                # be deregistering the tasks it stops when the service goes.
                force_destroy=True,
                opts=child,
            )
            task = task_definition(
                f"{name}-{service.name}",
                family=physical_name(f"mesh-{service.name}"),
                cpu=service.cpu,
                memory=service.memory,
                cluster=cluster,
                container_definitions=values[service.name].apply(
                    lambda v, service=service: container_definitions_json(
                        service_containers(s, service, v)
                    )
                ),
                parent=self,
                task_role_arn=self.envoy_roles[service.name].arn,
                volumes=volumes[service.name],
            )
            self.services[service.name] = fargate_service(
                f"{name}-{service.name}",
                cluster=cluster,
                task_definition=task,
                desired_count=service.desired_count,
                capacity=service.capacity_strategy,
                autoscaling=service.autoscaling,
                subnet_ids=network.private_subnet_ids,
                security_group_ids=[members_sg.id, efs_clients.id],
                parent=self,
                service_registries={"registry_arn": registry.arn},
                depends_on=[
                    *ready(service.name),
                    *(
                        [
                            cluster.allow_execute_command(
                                f"{name}-{service.name}-exec", self.envoy_roles[service.name], self
                            )
                        ]
                        if service.enable_execute_command
                        else []
                    ),
                ],
                enable_execute_command=service.enable_execute_command,
            )

        # --- the gateway and its internal NLB
        lb = NetworkLoadBalancer(
            name,
            NetworkLoadBalancerArgs(
                vpc_id=network.vpc_id,
                subnet_ids=network.private_subnet_ids,
                # TCP: the gateway's Envoy terminates TLS with the EFS certificate, as the
                # seed's virtual gateway did. Health checks are TCP on the traffic port.
                listeners=[NlbListener(443, port, "TCP", proxy_protocol_v2=True)],
                allowed_cidrs=s.allowed_cidrs,
                internal=True,
                # A TCP passthrough NLB: only deletion protection applies (settings refuse
                # access logs and WAF here), so only that is read.
                extras=LoadBalancerSettings(
                    deletion_protection=s.load_balancer.deletion_protection
                ),
                # Only to the gateway's Envoy port.
                target_security_group_id=gateway_sg.id,
            ),
            opts=child,
        )
        allow_tcp(
            f"{name}-gateway-from-nlb",
            gateway_sg.id,
            port,
            self,
            description="Gateway Envoy TLS port, from the load balancer",
            peer_group_id=lb.security_group.id,
        )
        gateway_task = task_definition(
            f"{name}-gateway",
            family=physical_name("mesh-gateway"),
            cpu=GATEWAY_CPU,
            memory=GATEWAY_MEMORY,
            cluster=cluster,
            container_definitions=values[GATEWAY_NODE].apply(
                lambda v: container_definitions_json(gateway_containers(s, v))
            ),
            parent=self,
            task_role_arn=self.envoy_roles[GATEWAY_NODE].arn,
            volumes=volumes[GATEWAY_NODE],
        )
        self.gateway = fargate_service(
            f"{name}-gateway",
            cluster=cluster,
            task_definition=gateway_task,
            desired_count=mesh.gateway_desired_count,
            subnet_ids=network.private_subnet_ids,
            security_group_ids=[gateway_sg.id, efs_clients.id],
            parent=self,
            load_balancers=[
                {
                    "target_group_arn": lb.target_groups[443].arn,
                    "container_name": "envoy",
                    "container_port": port,
                }
            ],
            depends_on=[*ready(GATEWAY_NODE), *lb.listeners],
        )
        self.load_balancer = lb.load_balancer
        self.cluster_name = cluster.cluster.name
        foundation.domain_name.point_at(
            AliasTarget(lb.load_balancer.dns_name, lb.load_balancer.zone_id)
        )
        if mesh.gateway_desired_count > 0:
            foundation.alerts.serving_alarm(
                f"{name}-healthy-gateways",
                healthy_targets_alarm_args(
                    "network",
                    lb.load_balancer.arn_suffix,
                    lb.target_groups[443].arn_suffix,
                    mesh.gateway_desired_count,
                    foundation.alerts.topic.arn,
                ),
                f"The mesh gateway of {s.domain}",
                self,
            )
        self.endpoint = pulumi.Output.from_input(f"https://{s.domain}")
        self.load_balancer_dns_name = lb.load_balancer.dns_name
        self.service_arns = pulumi.Output.all(**{n: svc.arn for n, svc in self.services.items()})
        self.register_outputs(
            {"gatewayAddress": lb.load_balancer.dns_name, "namespaceId": self.namespace.id}
        )

    def _shared_set_fingerprint(self, s: Settings, ca_pem: pulumi.Input[str]) -> pulumi.Output:
        """The gateway's set; with your certificate, every node's: the CA, the chain, the
        key, and your client certificate and key when mutual TLS uses them."""
        own, client = s.certificate, s.mesh.client_certificate
        if own is None:
            return pulumi.Output.all(
                ca_pem, self.certificate.certificate_pem, self.certificate.ca_certificate_pem
            ).apply(
                lambda v: set_fingerprint(
                    {
                        "ca.pem": v[0],
                        "chain.pem": published_chain(v[1], v[2]),
                        "key.pem": GENERATED_KEY,
                    }
                )
            )
        files = {
            "chain.pem": published_chain(own.certificate_pem, own.chain_pem),
            "key.pem": key_identity(own.private_key_pem),
        }
        if client is not None:
            files["client.pem"] = published_chain(client.certificate_pem, own.chain_pem)
            files["client-key.pem"] = key_identity(client.private_key_pem)
        return pulumi.Output.from_input(ca_pem).apply(
            lambda trusted: set_fingerprint({"ca.pem": trusted, **files})
        )

    def _client_secret(self, name: str, s: Settings):
        """Your client certificate (mutual TLS), stored like the server certificate."""
        client = s.mesh.client_certificate
        child = pulumi.ResourceOptions(parent=self)
        secret = aws.secretsmanager.Secret(
            f"{name}-client-certificate",
            description=f"Mesh client certificate and key of {s.domain} (ecs-tls)",
            opts=child,
        )
        version = aws.secretsmanager.SecretVersion(
            f"{name}-client-certificate",
            secret_id=secret.id,
            secret_string=pulumi.Output.secret(
                client.secret_private_key().apply(
                    lambda key: secret_document(
                        client.certificate_pem, s.certificate.chain_pem, key
                    )
                )
            ),
            opts=child,
        )
        return secret, version


def outputs(topology: AppmeshEfs, s: Settings) -> dict[str, pulumi.Input]:
    lb_dns = topology.load_balancer.dns_name
    certificate = topology.certificate
    generated = certificate.ca_certificate_pem is not None
    out: dict[str, pulumi.Input] = {
        "gatewayAddress": lb_dns,
        "certificateArn": certificate.acm_certificate_arn,
        "certificateSecretArn": certificate.secret_arn,
        "certificateFingerprint": certificate.fingerprint,
        "efsFileSystemId": topology.file_system.file_system.id,
        "meshNamespace": s.mesh.namespace,
        "mutualTls": s.mesh.mutual_tls,
        "serviceHosts": {v.name: service_host(v, s.mesh.namespace) for v in s.services},
        # The gateway is a service too: "gateway" is no service name (settings/mesh.py).
        **service_outputs({**topology.services, "gateway": topology.gateway}),
        "gatewayRoutes": {r.prefix: r.service for r in s.mesh.gateway_routes},
        # The load balancer is internal: run the commands on a host inside the VPC.
        "verifyFrom": "a host inside the VPC (or a peered network): the NLB is internal",
        **verify_outputs(s.domain, lb_dns, s.hosted_zone_id is not None, generated),
    }
    if generated:
        out["caCertificatePem"] = certificate.ca_certificate_pem
    exec_services = [v.name for v in s.services if v.enable_execute_command]
    if exec_services:
        out["execCommand"] = topology.cluster_name.apply(
            lambda c: {v: exec_command_line(c, v) for v in exec_services}
        )
    if generated and s.mesh.mutual_tls:
        # The certificate names each service accepts as callers; the gateway's own name.
        out["allowedCallers"] = {
            v.name: list(allowed_callers(v, s.services, s.mesh.gateway_routes, s.mesh.namespace))
            for v in s.services
        }
        out["gatewayIdentity"] = gateway_host(s.mesh.namespace)
    return out


def appmesh_efs_args(values: dict[str, Any]) -> AppmeshEfsArgs:
    """A stack's configuration of appmesh-efs as AppmeshEfsArgs, leaving out the
    foundation's keys (this program builds its foundation itself)."""
    return AppmeshEfsArgs(**args_from_config(values, AppmeshEfsArgs, skip=FOUNDATION_KEYS))


def build(settings: Settings, foundation: Foundation) -> TopologyResult:
    """This program's appmesh-efs: its configuration as AppmeshEfsArgs, on its own
    foundation (the component parses the arguments again, as alb-envoy)."""
    topology = AppmeshEfs("appmesh-efs", appmesh_efs_args(raw_config()), foundation=foundation)
    return TopologyResult(
        component=topology,
        endpoint=f"https://{settings.domain}",
        outputs=outputs(topology, settings),
    )

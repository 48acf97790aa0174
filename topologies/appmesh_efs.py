"""Topology `appmesh-efs`: the App Mesh design of seed 003, on stock Envoy.

    client (in the VPC) --TLS--> internal NLB :443 (TCP) --> gateway Envoy (TLS, /certs)
        --mTLS, SAN = <service>.<namespace>--> service Envoy (TLS, /certs) --> app on 127.0.0.1
    app --> its Envoy on 127.0.0.1:<egress port> --mTLS--> the called service's Envoy

AWS shut App Mesh down on 2026-09-30, so nothing here is an `aws.appmesh` resource: App
Mesh was the control plane only, and what it sent its Envoys is generated here as static
bootstraps (components/envoy.py, `render_mesh_bootstrap`).

The TLS files live on an encrypted EFS volume, as in the seed: a certificate publisher
(Lambda, functions/cert_publisher.py) writes chain.pem, key.pem and ca.pem through an
access point whenever the certificate changes; every Envoy mounts it read-only. Envoy reads
static files once, so tasks carry the certificate's fingerprint: a new certificate changes
the task definitions and ECS rolls the tasks after the files are written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pulumi
import pulumi_aws as aws
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from components.certificates import (
    ServerCertificate,
    ServerCertificateArgs,
    secret_document,
)
from components.container_definitions import (
    Container,
    Dependency,
    HealthCheck,
    LogSettings,
    MountPoint,
    PortMapping,
    container_definitions_json,
)
from components.dns import AliasTarget
from components.efs import EncryptedFileSystem, EncryptedFileSystemArgs, efs_volume
from components.envoy import (
    GATEWAY_MEMORY_SHARE,
    EgressListener,
    MeshProxySpec,
    PeerValidation,
    PrefixRoute,
    TlsFiles,
    UpstreamCluster,
    mesh_envoy_args,
    ready_check_command,
    tuning_for_task,
)
from components.firewall import allow_tcp
from components.iam import Statement, assume_role_policy, policy_document
from components.lambda_function import PythonFunction, PythonFunctionArgs
from components.load_balancer import NetworkLoadBalancer, NetworkLoadBalancerArgs, NlbListener
from components.naming import physical_name
from components.service import fargate_service, task_definition, tasks_security_group
from components.verify import verify_outputs
from settings import ServiceSettings, Settings, creation_order
from settings.mesh import egress_port, service_host, url_variable
from topologies.base import Foundation, TopologyResult

# Where every Envoy finds the TLS files (the EFS volume, read-only), and where the
# publisher mounts the same access point (Lambda requires a path under /mnt).
CERTIFICATE_DIR = "/certs"
PUBLISHER_MOUNT = "/mnt/certs"
VOLUME = "certificates"
# The stock Envoy image's entrypoint switches to its `envoy` user and sets that user's uid
# from ENVOY_UID (envoyproxy.io, "Using the Envoy Docker Image"). Set explicitly so that
# the access point's POSIX user, which owns and reads the files, is Envoy's user by
# construction.
ENVOY_UID = 101
# The Cloud Map records' TTL (s): the VPC resolver caches no longer than this, so with
# Envoy's DNS refresh the gateway sees a task that comes or goes within ~10 s.
DNS_TTL_SECONDS = 5
# The gateway task (Envoy alone): the smallest Fargate size.
GATEWAY_CPU = 256
GATEWAY_MEMORY = 512


@dataclass(frozen=True)
class MeshFiles:
    """The TLS files of the mesh as Envoy sees them; tests relocate them to a tmp dir."""

    chain: str = f"{CERTIFICATE_DIR}/chain.pem"
    key: str = f"{CERTIFICATE_DIR}/key.pem"
    ca: str = f"{CERTIFICATE_DIR}/ca.pem"
    client_chain: str = f"{CERTIFICATE_DIR}/client.pem"
    client_key: str = f"{CERTIFICATE_DIR}/client-key.pem"


def cluster_name(service: ServiceSettings) -> str:
    # Prefixed: a service called "app" must not clash with the sidecar's local cluster.
    return f"service_{service.name}"


def client_files(s: Settings, files: MeshFiles) -> TlsFiles | None:
    """What a caller presents for mutual TLS: your client certificate, else the generated
    leaf (issued for server and client authentication)."""
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
        # Any certificate from the mesh's CA: the gateway's and every calling service's.
        require_client_certificate=mutual,
        client_validation=PeerValidation(files.ca) if mutual else None,
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
        command=mesh_envoy_args(spec),
        environment={
            # A new certificate changes the task definition: ECS starts new tasks, whose
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
        log=LogSettings(v.log_group, v.region, f"mesh-{service.name}"),
    )
    return [app, replace(envoy, depends_on=[Dependency(service.name, "START")])]


def root_ca_pem(chain_pem: str) -> str:
    """The last certificate of your chain: its root (settings checked it is self-issued)."""
    root = x509.load_pem_x509_certificates(chain_pem.encode())[-1]
    return root.public_bytes(Encoding.PEM).decode()


def publisher_statements(
    secret_arns: list[str], file_system_arn: str, access_point_arn: str
) -> list[Statement]:
    return [
        Statement("ReadCertificateSecrets", ["secretsmanager:GetSecretValue"], secret_arns),
        # The only writer of the file system, through its access point only.
        Statement(
            "WriteCertificateFiles",
            ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
            [file_system_arn],
            condition={"StringEquals": {"elasticfilesystem:AccessPointArn": access_point_arn}},
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


class AppmeshEfs(pulumi.ComponentResource):
    """Certificate, EFS and its publisher, Cloud Map, services with Envoy, gateway, NLB."""

    def __init__(self, name: str, settings: Settings, foundation: Foundation):
        super().__init__("ecs-tls:appmesh_efs:AppmeshEfs", name, None)
        child = pulumi.ResourceOptions(parent=self)
        s, network, cluster, mesh = settings, foundation.network, foundation.cluster, settings.mesh
        hosts = tuple(service_host(v, mesh.namespace) for v in s.services)

        # --- certificates: yours (e.g. from Venafi) or a generated chain naming every service
        self.certificate = ServerCertificate(
            f"{name}-certificate",
            ServerCertificateArgs(
                domain=s.domain,
                provided=s.certificate,
                extra_dns_names=hosts,
                client_auth=mesh.mutual_tls,
            ),
            opts=child,
        )
        if s.certificate is None:
            ca_pem: pulumi.Input[str] = self.certificate.ca_certificate_pem
        else:
            ca_pem = root_ca_pem(s.certificate.chain_pem or "")
        secret_arns = [self.certificate.secret_arn]
        written_after = [self.certificate.secret_version]
        publisher_environment = {
            "CERTIFICATE_SECRET_ARN": self.certificate.secret_arn,
            "CERTIFICATE_DIR": PUBLISHER_MOUNT,
        }
        self.client_secret = None
        if mesh.client_certificate is not None:
            self.client_secret, version = self._client_secret(name, s)
            secret_arns.append(self.client_secret.arn)
            written_after.append(version)
            publisher_environment["CLIENT_CERTIFICATE_SECRET_ARN"] = self.client_secret.arn
        foundation.alerts.certificate_expiry_alarm(
            f"{name}-certificate-expiry",
            self.certificate.acm_certificate_arn,
            s.domain,
            s.certificate_expiry_alarm_days,
            parent=self,
        )

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

        # --- the certificate volume: only the publisher writes, Envoys read
        self.envoy_role = aws.iam.Role(
            f"{name}-envoy-task",
            description="appmesh-efs Envoy tasks: mount the certificate volume read-only",
            assume_role_policy=assume_role_policy("ecs-tasks.amazonaws.com"),
            opts=child,
        )
        efs = EncryptedFileSystem(
            f"{name}-certificates",
            EncryptedFileSystemArgs(
                vpc_id=network.vpc_id,
                zonal_subnets=network.private_zonal_subnets,
                client_security_group_id=efs_clients.id,
                # The publisher's grant is in its own policy (its role is created later).
                client_role_arns=[],
                reader_role_arns=[self.envoy_role.arn],
                root_path="/mesh-certificates",
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
        read_only = aws.iam.RolePolicy(
            f"{name}-envoy-task-efs",
            name="mount-certificates-read-only",
            role=self.envoy_role.id,
            policy=pulumi.Output.all(efs.file_system.arn, efs.access_point.arn).apply(
                lambda v: policy_document(reader_statements(v[0], v[1]))
            ),
            opts=child,
        )

        # --- the publisher, run at deploy time whenever the certificate changes
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
                    secret_arns, efs.file_system.arn, efs.access_point.arn
                ).apply(lambda v: publisher_statements(list(v[0]), v[1], v[2])),
                environment=publisher_environment,
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
            # Public values only; a new certificate changes the input, which invokes again.
            input=pulumi.Output.all(ca_pem, self.certificate.fingerprint).apply(
                lambda v: json.dumps({"caPem": v[0], "fingerprint": v[1]}, sort_keys=True)
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
        values = pulumi.Output.all(
            self.certificate.fingerprint, cluster.log_group.name, cluster.region
        ).apply(lambda v: TaskValues(v[0], v[1], v[2]))
        volumes = pulumi.Output.all(
            pulumi.Output.all(efs.file_system.id, efs.access_point.id).apply(
                lambda v: efs_volume(VOLUME, v[0], v[1])
            )
        )
        ready = [self.publication, read_only, efs.policy, *efs.mount_targets]
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
                opts=child,
            )
            task = task_definition(
                f"{name}-{service.name}",
                family=physical_name(f"mesh-{service.name}"),
                cpu=service.cpu,
                memory=service.memory,
                cluster=cluster,
                container_definitions=values.apply(
                    lambda v, service=service: container_definitions_json(
                        service_containers(s, service, v)
                    )
                ),
                parent=self,
                task_role_arn=self.envoy_role.arn,
                volumes=volumes,
            )
            self.services[service.name] = fargate_service(
                f"{name}-{service.name}",
                cluster=cluster,
                task_definition=task,
                desired_count=service.desired_count,
                subnet_ids=network.private_subnet_ids,
                security_group_ids=[members_sg.id, efs_clients.id],
                parent=self,
                service_registries={"registry_arn": registry.arn},
                depends_on=ready,
            )

        # --- the gateway and its internal NLB
        lb = NetworkLoadBalancer(
            name,
            NetworkLoadBalancerArgs(
                vpc_id=network.vpc_id,
                subnet_ids=network.private_subnet_ids,
                # TCP: the gateway's Envoy terminates TLS with the EFS certificate, as the
                # seed's virtual gateway did. Health checks are TCP on the traffic port.
                listeners=[NlbListener(443, port, "TCP")],
                allowed_cidrs=s.allowed_cidrs,
                internal=True,
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
        lb.allow_to_targets(gateway_sg.id, port)
        gateway_task = task_definition(
            f"{name}-gateway",
            family=physical_name("mesh-gateway"),
            cpu=GATEWAY_CPU,
            memory=GATEWAY_MEMORY,
            cluster=cluster,
            container_definitions=values.apply(
                lambda v: container_definitions_json(gateway_containers(s, v))
            ),
            parent=self,
            task_role_arn=self.envoy_role.arn,
            volumes=volumes,
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
            depends_on=[*ready, *lb.listeners],
        )
        self.load_balancer = lb.load_balancer
        foundation.domain_name.point_at(
            AliasTarget(lb.load_balancer.dns_name, lb.load_balancer.zone_id)
        )
        self.register_outputs(
            {"gatewayAddress": lb.load_balancer.dns_name, "namespaceId": self.namespace.id}
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
        "gatewayRoutes": {r.prefix: r.service for r in s.mesh.gateway_routes},
        # The load balancer is internal: run the commands on a host inside the VPC.
        "verifyFrom": "a host inside the VPC (or a peered network): the NLB is internal",
        **verify_outputs(s.domain, lb_dns, s.hosted_zone_id is not None, generated),
    }
    if generated:
        out["caCertificatePem"] = certificate.ca_certificate_pem
    return out


def build(settings: Settings, foundation: Foundation) -> TopologyResult:
    topology = AppmeshEfs("appmesh-efs", settings, foundation)
    return TopologyResult(
        component=topology,
        endpoint=f"https://{settings.domain}",
        outputs=outputs(topology, settings),
    )

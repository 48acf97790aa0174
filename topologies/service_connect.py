"""Topology `service-connect`: ECS Service Connect TLS from a short-lived AWS Private CA.

    client --TLS--> ALB/NLB :443 --TLS--> Service Connect proxy (public service) --> app
    app --> local proxy --TLS 1.3 (Private CA)--> proxy of the called service --> app

Service Connect encrypts every hop between services with certificates ECS issues from the
Private CA and rotates itself. The CA can be this stack's own (optionally shared through
AWS RAM) or one shared with this account (`privateCa.arn`).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alerts import healthy_targets_alarm_args
from components.app_access import WorkloadRole, allow_app_secrets
from components.app_secrets import container_secrets
from components.autoscaling import request_count_label, serving_floor
from components.certificates import load_balancer_certificate
from components.dns import AliasTarget
from components.exec_command import exec_command_line
from components.expiry_notice import expiry_notices, generated_ca
from components.firewall import allow_tcp
from components.load_balancer import (
    ALB_PROTOCOL_VERSIONS,
    NLB_ALPN_POLICIES,
    HttpsLoadBalancer,
    HttpsLoadBalancerArgs,
    NetworkLoadBalancer,
    NetworkLoadBalancerArgs,
    NlbListener,
)
from components.naming import physical_name
from components.private_ca import PrivateCertificateAuthority, PrivateCertificateAuthorityArgs
from components.service import (
    fargate_service,
    service_outputs,
    task_definition,
    tasks_security_group,
)
from components.service_connect import (
    ServiceConnectTls,
    ServiceConnectTlsArgs,
    server_set_fingerprint,
)
from components.verify import verify_outputs
from settings import ServiceSettings, Settings, creation_order
from settings.readers import raw_config
from task_contents.container_definitions import (
    Container,
    LogSettings,
    PortMapping,
    container_definitions_json,
)
from topologies.args import ServiceConnectTopologyArgs, args_from_config
from topologies.base import Foundation, TopologyResult, component_type
from topologies.foundation import FOUNDATION_KEYS, component_settings, existing_foundation

FINGERPRINT_VARIABLE = "SERVICE_CONNECT_SERVERS"


def port_name(service: ServiceSettings) -> str:
    """The port mapping's name, which Service Connect refers to."""
    return f"{service.name}-port"


@dataclass(frozen=True)
class ContainerValues:
    log_group: str
    region: str
    servers_fingerprint: str


def service_container(service: ServiceSettings, v: ContainerValues) -> Container:
    return Container(
        name=service.name,
        image=service.image,
        command=service.command,
        environment={**dict(service.environment), FINGERPRINT_VARIABLE: v.servers_fingerprint},
        secrets=container_secrets(service.access),
        port_mappings=[
            PortMapping(
                service.port,
                name=port_name(service),
                app_protocol=service.app_protocol,
            )
        ],
        log=LogSettings(v.log_group, v.region, service.name),
    )


def service_connect_configuration(
    service: ServiceSettings,
    namespace_arn: pulumi.Input[str],
    ca_arn: pulumi.Input[str],
    tls: ServiceConnectTls,
    log: dict,
) -> dict:
    """A server registers its port with TLS from the CA; a client only joins the namespace."""
    configuration: dict = {"enabled": True, "namespace": namespace_arn, "log_configuration": log}
    if service.is_server:
        server_tls: dict = {
            "issuer_cert_authority": {"aws_pca_authority_arn": ca_arn},
            "role_arn": tls.role_arn,
        }
        if tls.kms_key_arn is not None:
            server_tls["kms_key"] = tls.kms_key_arn
        configuration["services"] = [
            {
                "port_name": port_name(service),
                "discovery_name": service.discovery_name,
                "client_alias": [{"port": service.alias_port, "dns_name": service.alias_dns_name}],
                "tls": server_tls,
            }
        ]
    return configuration


class ServiceConnect(pulumi.ComponentResource):
    """service-connect: Service Connect TLS from a Private CA, an ALB or NLB in front."""

    endpoint: pulumi.Output[str]
    """What clients use: https://<domain>, or with ingress none the servers' name:port."""
    private_ca_arn: pulumi.Output[str]
    """ARN of the Private CA that issues the Service Connect certificates."""
    namespace_arn: pulumi.Output[str]
    """ARN of the Service Connect namespace the services are in."""
    service_arns: pulumi.Output[Mapping[str, str]]
    """ARNs of the ECS services, by service name."""

    def __init__(
        self,
        name: str,
        args: ServiceConnectTopologyArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        foundation: Foundation | None = None,
    ):
        """`foundation`: this program's shared network, cluster, alerts and DNS record
        (Python only); without it, args must name an existing VPC, subnets and cluster."""
        s = component_settings(
            "service-connect", name, args, ServiceConnectTopologyArgs, foundation
        )
        super().__init__(component_type("service_connect", "ServiceConnect"), name, None, opts)
        if foundation is None:
            foundation = existing_foundation(name, self, s, args, with_namespace=True)
        child = pulumi.ResourceOptions(parent=self)
        network, cluster = foundation.network, foundation.cluster

        # Services may issue certificates only once the CA's root is installed.
        ready: list[pulumi.Resource] = []
        if s.private_ca.arn is None:
            ca = PrivateCertificateAuthority(
                f"{name}-ca",
                PrivateCertificateAuthorityArgs(
                    common_name=f"{physical_name()} Service Connect",
                    key_algorithm=s.private_ca.key_algorithm,
                    signing_algorithm=s.private_ca.signing_algorithm,
                    permanent_deletion_days=s.private_ca.permanent_deletion_days,
                    share_with=s.private_ca.share_with,
                    allow_external_principals=s.private_ca.allow_external_principals,
                ),
                opts=child,
            )
            ca_arn: pulumi.Input[str] = ca.arn
            ready.append(ca.installed)
            # The root every service's certificate chains to: what a client outside the
            # mesh, or another account the CA is shared with, trusts.
            self.private_ca_certificate_pem: pulumi.Output[str] | None = ca.certificate_pem
        else:
            ca_arn = s.private_ca.arn
            self.private_ca_certificate_pem = None
        self.ca_arn = ca_arn
        tls = ServiceConnectTls(
            f"{name}-tls",
            ServiceConnectTlsArgs(customer_kms_key=s.service_connect.customer_kms_key),
            opts=child,
        )
        ready.extend(tls.ready)

        # One group for all services: members reach each other's server ports.
        members = tasks_security_group(
            f"{name}-services",
            network.vpc_id,
            "Service Connect services: server ports from each other",
            parent=self,
        )
        for port in sorted({svc.port for svc in s.services if svc.is_server}):
            for direction in ("in", "out"):
                allow_tcp(
                    f"{name}-services-{direction}-{port}",
                    members.id,
                    port,
                    self,
                    description="Service Connect traffic between services (TLS)",
                    peer_group_id=members.id,
                    egress=direction == "out",
                )

        public = next((svc for svc in s.services if svc.public), None)
        self.load_balancer: aws.lb.LoadBalancer | None = None
        self.public_certificate = None
        target_group, listeners = None, []
        if s.ingress != "none" and public is not None:
            target_group, listeners = self._ingress(name, s, foundation, public, members)

        fingerprint = server_set_fingerprint(
            [(v.discovery_name, v.alias_dns_name, v.alias_port) for v in s.services if v.is_server]
        )
        log = {
            "log_driver": "awslogs",
            "options": {
                "awslogs-group": cluster.log_group.name,
                "awslogs-region": cluster.region,
                "awslogs-stream-prefix": "service-connect",
            },
        }
        read_app_secrets = allow_app_secrets(
            name, cluster.execution_role, [v.access for v in s.services], self
        )
        self.services = {}
        for service in creation_order(s.services):
            # The Service Connect proxy uses no task role: the role is the service's own.
            role = WorkloadRole(
                f"{name}-{service.name}-task",
                service.access,
                cluster.account_id,
                f"service-connect {service.name}: services[].taskRolePolicyArns and ECS Exec",
                self,
                exec_cluster=cluster if service.enable_execute_command else None,
            )
            containers = pulumi.Output.all(cluster.log_group.name, cluster.region).apply(
                lambda v, service=service: container_definitions_json(
                    [service_container(service, ContainerValues(v[0], v[1], fingerprint))]
                )
            )
            task = task_definition(
                f"{name}-{service.name}",
                family=physical_name(service.name),
                cpu=service.cpu,
                memory=service.memory,
                cluster=cluster,
                container_definitions=containers,
                parent=self,
                task_role_arn=role.arn,
            )
            load_balancers, request_label = None, None
            if service.public and target_group is not None:
                if s.ingress == "alb":
                    request_label = pulumi.Output.all(
                        self.load_balancer.arn_suffix, target_group.arn_suffix
                    ).apply(lambda v: request_count_label(v[0], v[1]))
                load_balancers = [
                    {
                        "target_group_arn": target_group.arn,
                        "container_name": service.name,
                        "container_port": service.port,
                    }
                ]
            self.services[service.name] = fargate_service(
                f"{name}-{service.name}",
                cluster=cluster,
                task_definition=task,
                desired_count=service.desired_count,
                capacity=service.capacity_strategy,
                autoscaling=service.autoscaling,
                request_label=request_label,
                subnet_ids=network.private_subnet_ids,
                security_group_ids=[members.id],
                parent=self,
                load_balancers=load_balancers,
                service_connect=service_connect_configuration(
                    service, cluster.namespace.arn, ca_arn, tls, log
                ),
                # A target group is usable once its listener exists. A task resolves the
                # namespace's services once, at start: the servers it calls come first.
                depends_on=[
                    *ready,
                    *listeners,
                    *(self.services[c] for c in service.calls),
                    *role.ready,
                    *([read_app_secrets] if read_app_secrets else []),
                ],
                # ECS refuses a second service with the same discovery name, so a
                # replacement must delete the old service before creating the new one.
                delete_before_replace=True,
                enable_execute_command=service.enable_execute_command,
            )
        self.cluster_name = cluster.cluster.name
        servers = [svc for svc in s.services if svc.is_server]
        self.endpoint = pulumi.Output.from_input(
            ", ".join(svc.client_alias for svc in servers)
            if s.ingress == "none"
            else f"https://{s.domain}"
        )
        self.private_ca_arn = pulumi.Output.from_input(ca_arn)
        self.namespace_arn = cluster.namespace.arn
        self.service_arns = pulumi.Output.all(**{n: svc.arn for n, svc in self.services.items()})
        self.register_outputs({"privateCaArn": ca_arn})

    def _ingress(
        self,
        name: str,
        s: Settings,
        foundation: Foundation,
        public: ServiceSettings,
        members: aws.ec2.SecurityGroup,
    ) -> tuple[aws.lb.TargetGroup, list[aws.lb.Listener]]:
        """The load balancer in front of the public service, re-encrypting to its proxy."""
        network = foundation.network
        certificate = load_balancer_certificate(
            f"{name}-certificate",
            s.domain,
            s.hosted_zone_id,
            s.listener_certificate,
            s.certificate,
            parent=self,
        )
        self.public_certificate = certificate
        opts = pulumi.ResourceOptions(parent=self)
        if s.ingress == "alb":
            lb = HttpsLoadBalancer(
                name,
                HttpsLoadBalancerArgs(
                    vpc_id=network.vpc_id,
                    subnet_ids=network.public_subnet_ids,
                    certificate_arn=certificate.acm_certificate_arn,
                    target_port=public.port,
                    health_check_path=public.health_check_path,
                    ssl_policy=s.ssl_policy,
                    allowed_cidrs=s.allowed_cidrs,
                    extras=s.load_balancer,
                    # The Service Connect proxy terminates TLS on the container port.
                    health_check_port=str(public.port),
                    protocol_version=ALB_PROTOCOL_VERSIONS[public.app_protocol or "http"],
                    target_security_group_id=members.id,
                ),
                opts=opts,
            )
            listeners = [lb.https_listener]
            group = lb.target_group
        else:
            lb = NetworkLoadBalancer(
                name,
                NetworkLoadBalancerArgs(
                    vpc_id=network.vpc_id,
                    subnet_ids=network.public_subnet_ids,
                    listeners=[
                        NlbListener(
                            443,
                            public.port,
                            protocol="TLS",
                            alpn_policy=NLB_ALPN_POLICIES[public.app_protocol or "http"],
                        )
                    ],
                    allowed_cidrs=s.allowed_cidrs,
                    extras=s.load_balancer,
                    certificate_arn=certificate.acm_certificate_arn,
                    ssl_policy=s.ssl_policy,
                    target_security_group_id=members.id,
                ),
                opts=opts,
            )
            listeners = list(lb.listeners)
            group = lb.target_groups[443]
        allow_tcp(
            f"{name}-services-from-lb",
            members.id,
            public.port,
            self,
            description="Port of the public service, from the load balancer",
            peer_group_id=lb.security_group.id,
        )
        self.load_balancer = lb.load_balancer
        foundation.domain_name.point_at(
            AliasTarget(lb.load_balancer.dns_name, lb.load_balancer.zone_id)
        )
        foundation.alerts.certificate_expiry_alarm(
            f"{name}-certificate-expiry",
            certificate.acm_certificate_arn,
            s.domain,
            s.certificate_expiry_alarm_days,
            parent=self,
        )
        # The alarm watches the leaf in ACM; a generated CA behind it is in no AWS service.
        if certificate.ca_validity_end_time is not None:
            watched = [(f"{name}-ca", generated_ca(s.domain, certificate.ca_validity_end_time))]
            expiry_notices(name, foundation.alerts, s.certificate_expiry_alarm_days, self, watched)
        floor = serving_floor(public.desired_count, public.autoscaling)
        if floor > 0:
            foundation.alerts.serving_alarm(
                f"{name}-healthy-targets",
                healthy_targets_alarm_args(
                    "application" if s.ingress == "alb" else "network",
                    lb.load_balancer.arn_suffix,
                    group.arn_suffix,
                    floor,
                    foundation.alerts.topic.arn,
                ),
                f"The load balancer of {s.domain} (service {public.name})",
                self,
            )
        return group, listeners


def outputs(topology: ServiceConnect, s: Settings, cluster_namespace_arn) -> dict:
    servers = [svc for svc in s.services if svc.is_server]
    out: dict[str, pulumi.Input] = {
        "privateCaArn": topology.ca_arn,
        "namespaceArn": cluster_namespace_arn,
        "services": [
            {
                "name": svc.name,
                "mode": svc.mode,
                "public": svc.public,
                "clientAlias": svc.client_alias,
            }
            for svc in s.services
        ],
        "clientAliases": [svc.client_alias for svc in servers],
        **service_outputs(topology.services),
    }
    if topology.private_ca_certificate_pem is not None:
        out["privateCaCertificatePem"] = topology.private_ca_certificate_pem
    lb = topology.load_balancer
    if lb is not None:
        out["loadBalancerDnsName"] = lb.dns_name
        certificate = topology.public_certificate
        out["certificateArn"] = certificate.acm_certificate_arn
        ca_pem = certificate.ca_certificate_pem
        if ca_pem is not None:
            out["caCertificatePem"] = ca_pem
        out.update(
            verify_outputs(s.domain, lb.dns_name, s.hosted_zone_id is not None, ca_pem is not None)
        )
    exec_services = [v.name for v in s.services if v.enable_execute_command]
    if exec_services:
        out["execCommand"] = topology.cluster_name.apply(
            lambda c: {v: exec_command_line(c, v) for v in exec_services}
        )
    out["caVerifyCommand"] = pulumi.Output.from_input(topology.ca_arn).apply(
        lambda arn: (
            f"aws acm-pca describe-certificate-authority --certificate-authority-arn {arn} "
            "--query 'CertificateAuthority.[Status,UsageMode]'"
        )
    )
    return out


def service_connect_args(values: dict[str, Any]) -> ServiceConnectTopologyArgs:
    """A stack's configuration of service-connect as ServiceConnectTopologyArgs, leaving out
    the foundation's keys (serviceConnect is the topology's too: its TLS options)."""
    skip = [key for key in FOUNDATION_KEYS if key != "serviceConnect"]
    return ServiceConnectTopologyArgs(
        **args_from_config(values, ServiceConnectTopologyArgs, skip=skip)
    )


def build(settings: Settings, foundation: Foundation) -> TopologyResult:
    """This program's service-connect: its configuration as ServiceConnectTopologyArgs, on
    its own foundation (the component parses the arguments again, as alb-envoy)."""
    topology = ServiceConnect(
        "service-connect", service_connect_args(raw_config()), foundation=foundation
    )
    servers = [svc for svc in settings.services if svc.is_server]
    if settings.ingress == "none":
        endpoint: pulumi.Input[str] = ", ".join(svc.client_alias for svc in servers)
    else:
        endpoint = f"https://{settings.domain}"
    return TopologyResult(
        component=topology,
        endpoint=endpoint,
        outputs=outputs(topology, settings, foundation.cluster.namespace.arn),
    )

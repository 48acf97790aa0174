"""Topology `alb-envoy`: ALB HTTPS re-encrypting to an Envoy sidecar in each Fargate task.

    client --TLS--> ALB :443 --TLS--> Envoy :8443 (task) --HTTP on 127.0.0.1--> app

Departures from the seed article: the key is not baked into an Envoy image but injected
from Secrets Manager through ECS `secrets`; Envoy uses the v3 API from its stock image
(`--config-yaml`); its admin interface is a Unix socket inside Envoy's own container, out
of the app's reach (the app shares the task's loopback), and the container health check
asks a loopback listener that only answers health.
"""

from __future__ import annotations

import pulumi

from components.alerts import healthy_targets_alarm_args
from components.certificates import (
    CHAIN_KEY,
    PRIVATE_KEY_KEY,
    ServerCertificate,
    ServerCertificateArgs,
)
from components.container_definitions import (
    LogSettings,
    container_definitions_json,
)
from components.dns import AliasTarget
from components.envoy_sidecar import SidecarTask, sidecar_containers
from components.exec_command import exec_command_line
from components.expiry_notice import expiry_notices, generated_ca
from components.firewall import allow_tcp
from components.load_balancer import HttpsLoadBalancer, HttpsLoadBalancerArgs
from components.naming import physical_name
from components.service import fargate_service, task_definition, tasks_security_group
from components.verify import verify_outputs
from settings import Settings
from topologies.base import Foundation, TopologyResult


class AlbEnvoy(pulumi.ComponentResource):
    """Certificate, ALB, and a Fargate service whose tasks terminate TLS in Envoy."""

    def __init__(self, name: str, settings: Settings, foundation: Foundation):
        super().__init__("ecs-tls:alb_envoy:AlbEnvoy", name, None)
        child = pulumi.ResourceOptions(parent=self)
        s, network, cluster = settings, foundation.network, foundation.cluster

        self.certificate = ServerCertificate(
            f"{name}-certificate",
            ServerCertificateArgs(domain=s.domain, provided=s.certificate),
            opts=child,
        )
        # The shared execution role may read this topology's secret, and only this one.
        read_secret = cluster.allow_secret_read(
            f"{name}-read-certificate", "ReadCertificateSecret", self.certificate.secret_arn, self
        )

        self.load_balancer = HttpsLoadBalancer(
            name,
            HttpsLoadBalancerArgs(
                vpc_id=network.vpc_id,
                subnet_ids=network.public_subnet_ids,
                certificate_arn=self.certificate.acm_certificate_arn,
                target_port=s.envoy.port,
                health_check_path=s.app.health_check_path,
                ssl_policy=s.ssl_policy,
                allowed_cidrs=s.allowed_cidrs,
                extras=s.load_balancer,
            ),
            opts=child,
        )
        tasks_sg = tasks_security_group(
            f"{name}-tasks",
            network.vpc_id,
            "Tasks: the Envoy TLS port from the load balancer only",
            parent=self,
        )
        allow_tcp(
            f"{name}-tasks-from-alb",
            tasks_sg.id,
            s.envoy.port,
            self,
            description="Envoy TLS listener, from the load balancer",
            peer_group_id=self.load_balancer.security_group.id,
        )
        self.load_balancer.allow_to_targets(tasks_sg.id, s.envoy.port)

        containers = pulumi.Output.all(
            self.certificate.value_from(CHAIN_KEY),
            self.certificate.value_from(PRIVATE_KEY_KEY),
            self.certificate.fingerprint,
            cluster.log_group.name,
            cluster.region,
        ).apply(
            lambda v: container_definitions_json(
                sidecar_containers(
                    SidecarTask(
                        app=s.app,
                        envoy=s.envoy,
                        chain_value_from=v[0],
                        key_value_from=v[1],
                        # A new certificate changes the task definition, so tasks restart
                        # and read the new secret.
                        certificate_fingerprint=v[2],
                        log=LogSettings(v[3], v[4], "alb-envoy"),
                    )
                )
            )
        )
        # The tasks need no AWS rights of their own: a task role exists for ECS Exec only.
        exec_ready, task_role = [], None
        if s.app.enable_execute_command:
            task_role = cluster.exec_task_role(f"{name}-task", "alb-envoy tasks", self)
            exec_ready.append(cluster.allow_execute_command(f"{name}-exec", task_role, self))
        task = task_definition(
            name,
            family=physical_name("alb-envoy"),
            cpu=s.app.cpu,
            memory=s.app.memory,
            cluster=cluster,
            container_definitions=containers,
            parent=self,
            task_role_arn=task_role.arn if task_role else None,
        )
        self.service = fargate_service(
            name,
            cluster=cluster,
            task_definition=task,
            desired_count=s.app.desired_count,
            subnet_ids=network.private_subnet_ids,
            security_group_ids=[tasks_sg.id],
            parent=self,
            load_balancers=[
                {
                    "target_group_arn": self.load_balancer.target_group.arn,
                    "container_name": "envoy",
                    "container_port": s.envoy.port,
                }
            ],
            # A target group must belong to a load balancer (through its listener) before a
            # service can use it; tasks need the secret's value and the right to read it.
            depends_on=[
                self.load_balancer.https_listener,
                read_secret,
                self.certificate.secret_version,
                *exec_ready,
            ],
            enable_execute_command=s.app.enable_execute_command,
        )
        lb = self.load_balancer.load_balancer
        foundation.domain_name.point_at(AliasTarget(lb.dns_name, lb.zone_id))
        foundation.alerts.certificate_expiry_alarm(
            f"{name}-certificate-expiry",
            self.certificate.acm_certificate_arn,
            s.domain,
            s.certificate_expiry_alarm_days,
            parent=self,
        )
        # The alarm watches the leaf in ACM; the generated CA behind it is in no AWS service.
        if self.certificate.ca_validity_end_time is not None:
            expiry_notices(name, foundation.alerts, s.certificate_expiry_alarm_days, self).watch(
                f"{name}-ca", generated_ca(s.domain, self.certificate.ca_validity_end_time)
            )
        if s.app.desired_count > 0:
            foundation.alerts.serving_alarm(
                f"{name}-healthy-targets",
                healthy_targets_alarm_args(
                    "application",
                    lb.arn_suffix,
                    self.load_balancer.target_group.arn_suffix,
                    s.app.desired_count,
                    foundation.alerts.topic.arn,
                ),
                f"The load balancer of {s.domain}",
                self,
            )
        self.outputs = verification_outputs(s, lb.dns_name, self.certificate)
        if s.app.enable_execute_command:
            self.outputs["execCommand"] = cluster.cluster.name.apply(
                lambda c: exec_command_line(c, "app")
            )
        self.register_outputs({"albDnsName": lb.dns_name, "serviceName": self.service.name})


def verification_outputs(
    s: Settings, alb_dns: pulumi.Output[str], certificate: ServerCertificate
) -> dict[str, pulumi.Input]:
    private_ca = certificate.ca_certificate_pem is not None
    outputs: dict[str, pulumi.Input] = {
        "albDnsName": alb_dns,
        "certificateArn": certificate.acm_certificate_arn,
        "certificateSecretArn": certificate.secret_arn,
        **verify_outputs(s.domain, alb_dns, s.hosted_zone_id is not None, private_ca),
    }
    if certificate.ca_certificate_pem is not None:
        outputs["caCertificatePem"] = certificate.ca_certificate_pem
    return outputs


def build(settings: Settings, foundation: Foundation) -> TopologyResult:
    topology = AlbEnvoy("alb-envoy", settings, foundation)
    return TopologyResult(
        component=topology,
        endpoint=f"https://{settings.domain}",
        outputs=topology.outputs,
    )

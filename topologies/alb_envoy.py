"""Topology `alb-envoy`: ALB HTTPS re-encrypting to an Envoy sidecar in each Fargate task.

    client --TLS--> ALB :443 --TLS--> Envoy :8443 (task) --HTTP on 127.0.0.1--> app

Departures from the seed article: the key is not baked into an Envoy image but injected
from Secrets Manager through ECS `secrets`; Envoy uses the v3 API from its stock image
(`--config-yaml`); its admin interface is a Unix socket inside Envoy's own container, out
of the app's reach (the app shares the task's loopback), and the container health check
asks a loopback listener that only answers health.
"""

from typing import Any

import pulumi

from components.alerts import healthy_targets_alarm_args
from components.app_access import WorkloadRole, allow_app_secrets
from components.autoscaling import request_count_label, serving_floor
from components.certificates import (
    CHAIN_KEY,
    PRIVATE_KEY_KEY,
    AcmIssuedCertificate,
    ExistingCertificate,
    ServerCertificate,
    ServerCertificateArgs,
    load_balancer_certificate,
)
from components.dns import AliasTarget
from components.exec_command import exec_command_line
from components.expiry_notice import REISSUE, WatchedCertificate, expiry_notices, generated_ca
from components.firewall import allow_tcp
from components.load_balancer import HttpsLoadBalancer, HttpsLoadBalancerArgs
from components.naming import physical_name
from components.service import (
    fargate_service,
    service_outputs,
    task_definition,
    tasks_security_group,
)
from components.sidecar_task import SidecarTask, sidecar_containers
from components.verify import verify_outputs
from settings import Settings
from settings.readers import raw_config
from task_contents.container_definitions import (
    LogSettings,
    container_definitions_json,
)
from topologies.args import AlbEnvoyArgs, args_from_config
from topologies.base import Foundation, TopologyResult, component_type
from topologies.foundation import FOUNDATION_KEYS, component_settings, existing_foundation

# No `from __future__ import annotations` in this module: Pulumi's schema analyzer reads
# the annotations of AlbEnvoy as objects (topologies/args.py).


def alb_envoy_args(values: dict[str, Any]) -> AlbEnvoyArgs:
    """A stack's configuration of alb-envoy as AlbEnvoyArgs, leaving out the foundation's
    keys (this program builds its foundation itself)."""
    return AlbEnvoyArgs(**args_from_config(values, AlbEnvoyArgs, skip=FOUNDATION_KEYS))


class AlbEnvoy(pulumi.ComponentResource):
    """alb-envoy: ALB HTTPS (TLS 1.3 policy) re-encrypting to an Envoy sidecar in each task."""

    endpoint: pulumi.Output[str]
    """The URL clients use: https://<domain>."""
    load_balancer_dns_name: pulumi.Output[str]
    """DNS name of the ALB; point domain at it when no hostedZoneId is given."""
    certificate_arn: pulumi.Output[str]
    """ARN of the listener's certificate in ACM."""
    service_name: pulumi.Output[str]
    """Name of the ECS service."""
    service_arn: pulumi.Output[str]
    """ARN of the ECS service."""

    def __init__(
        self,
        name: str,
        args: AlbEnvoyArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        foundation: Foundation | None = None,
    ):
        """`foundation`: this program's shared network, cluster, alerts and DNS record
        (Python only); without it, args must name an existing VPC, subnets and cluster."""
        # Everything is checked before the component registers: bad arguments leave
        # nothing behind.
        s = component_settings("alb-envoy", name, args, AlbEnvoyArgs, foundation)
        super().__init__(component_type("alb_envoy", "AlbEnvoy"), name, None, opts)
        if foundation is None:
            foundation = existing_foundation(name, self, s, args)
        self.domain = s.domain
        child = pulumi.ResourceOptions(parent=self)
        network, cluster = foundation.network, foundation.cluster

        # The listener's certificate. Generated or yours: one certificate, which Envoy
        # serves too. From ACM (issued or `certificate.arn`): ACM never gives out its key, so
        # Envoy serves a generated chain of its own, which the ALB accepts without checking
        # (it does not verify targets' certificates), still encrypting the hop to the task.
        self.listener_certificate = load_balancer_certificate(
            f"{name}-certificate",
            s.domain,
            s.hosted_zone_id,
            s.listener_certificate,
            s.certificate,
            parent=self,
            store_in_secrets_manager=True,
        )
        if isinstance(self.listener_certificate, ServerCertificate):
            self.certificate = self.listener_certificate
        else:
            self.certificate = ServerCertificate(
                f"{name}-envoy-certificate",
                ServerCertificateArgs(domain=s.domain, import_to_acm=False),
                opts=child,
            )
        # The shared execution role may read this topology's secret, and only this one.
        read_secret = cluster.allow_secret_read(
            f"{name}-read-certificate", "ReadCertificateSecret", self.certificate.secret_arn, self
        )

        tasks_sg = tasks_security_group(
            f"{name}-tasks",
            network.vpc_id,
            "Tasks: the Envoy TLS port from the load balancer only",
            parent=self,
        )
        self.load_balancer = HttpsLoadBalancer(
            name,
            HttpsLoadBalancerArgs(
                vpc_id=network.vpc_id,
                subnet_ids=network.public_subnet_ids,
                certificate_arn=self.listener_certificate.acm_certificate_arn,
                target_port=s.envoy.port,
                health_check_path=s.app.health_check_path,
                ssl_policy=s.ssl_policy,
                allowed_cidrs=s.allowed_cidrs,
                extras=s.load_balancer,
                # Only to the tasks' Envoy port.
                target_security_group_id=tasks_sg.id,
            ),
            opts=child,
        )
        allow_tcp(
            f"{name}-tasks-from-alb",
            tasks_sg.id,
            s.envoy.port,
            self,
            description="Envoy TLS listener, from the load balancer",
            peer_group_id=self.load_balancer.security_group.id,
        )

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
        # The app's own rights: Envoy needs none from the task role, so the role is
        # wholly the app's (the user's, or one carrying the user's policies and ECS Exec).
        app_role = WorkloadRole(
            f"{name}-app-task",
            s.app.access,
            cluster.account_id,
            "alb-envoy app: app.taskRolePolicyArns and ECS Exec",
            self,
            exec_cluster=cluster if s.app.enable_execute_command else None,
        )
        read_app_secrets = allow_app_secrets(name, cluster.execution_role, [s.app.access], self)
        task = task_definition(
            name,
            family=physical_name("alb-envoy"),
            cpu=s.app.cpu,
            memory=s.app.memory,
            cluster=cluster,
            container_definitions=containers,
            parent=self,
            task_role_arn=app_role.arn,
        )
        lb = self.load_balancer.load_balancer
        self.service = fargate_service(
            name,
            cluster=cluster,
            task_definition=task,
            desired_count=s.app.desired_count,
            capacity=s.app.capacity_strategy,
            autoscaling=s.app.autoscaling,
            request_label=pulumi.Output.all(
                lb.arn_suffix, self.load_balancer.target_group.arn_suffix
            ).apply(lambda v: request_count_label(v[0], v[1])),
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
                *app_role.ready,
                *([read_app_secrets] if read_app_secrets else []),
            ],
            enable_execute_command=s.app.enable_execute_command,
        )
        foundation.domain_name.point_at(AliasTarget(lb.dns_name, lb.zone_id))
        foundation.alerts.certificate_expiry_alarm(
            f"{name}-certificate-expiry",
            self.listener_certificate.acm_certificate_arn,
            s.domain,
            s.certificate_expiry_alarm_days,
            parent=self,
        )
        # The alarm watches the listener's certificate in ACM; what no AWS service holds (a
        # generated CA, Envoy's own leaf beside an ACM certificate) gets a notice.
        watched = []
        if self.certificate.ca_validity_end_time is not None:
            watched.append(
                (f"{name}-ca", generated_ca(s.domain, self.certificate.ca_validity_end_time))
            )
        if self.certificate.unwatched_leaf_end_time is not None:
            label = f"the certificate Envoy presents to the load balancer for {s.domain}"
            end = self.certificate.unwatched_leaf_end_time
            watched.append((f"{name}-envoy", WatchedCertificate(label, end, REISSUE)))
        if watched:
            expiry_notices(name, foundation.alerts, s.certificate_expiry_alarm_days, self, watched)
        floor = serving_floor(s.app.desired_count, s.app.autoscaling)
        if floor > 0:
            foundation.alerts.serving_alarm(
                f"{name}-healthy-targets",
                healthy_targets_alarm_args(
                    "application",
                    lb.arn_suffix,
                    self.load_balancer.target_group.arn_suffix,
                    floor,
                    foundation.alerts.topic.arn,
                ),
                f"The load balancer of {s.domain}",
                self,
            )
        self.outputs = verification_outputs(
            s, lb.dns_name, self.listener_certificate, self.certificate
        )
        self.outputs.update(service_outputs({"app": self.service}))
        if s.app.enable_execute_command:
            self.outputs["execCommand"] = cluster.cluster.name.apply(
                lambda c: exec_command_line(c, "app")
            )
        self.endpoint = pulumi.Output.from_input(f"https://{s.domain}")
        self.load_balancer_dns_name = lb.dns_name
        self.certificate_arn = pulumi.Output.from_input(
            self.listener_certificate.acm_certificate_arn
        )
        self.service_name = self.service.name
        self.service_arn = self.service.arn
        self.register_outputs({"albDnsName": lb.dns_name, "serviceName": self.service.name})


def verification_outputs(
    s: Settings,
    alb_dns: pulumi.Output[str],
    listener: ServerCertificate | AcmIssuedCertificate | ExistingCertificate,
    envoy: ServerCertificate,
) -> dict[str, pulumi.Input]:
    """What clients check: the listener's certificate, and its CA when it is generated."""
    private_ca = listener.ca_certificate_pem is not None
    outputs: dict[str, pulumi.Input] = {
        "albDnsName": alb_dns,
        "certificateArn": listener.acm_certificate_arn,
        "certificateSecretArn": envoy.secret_arn,
        **verify_outputs(s.domain, alb_dns, s.hosted_zone_id is not None, private_ca),
    }
    if listener.ca_certificate_pem is not None:
        outputs["caCertificatePem"] = listener.ca_certificate_pem
    return outputs


def build(settings: Settings, foundation: Foundation) -> TopologyResult:
    """This program's alb-envoy: its configuration as AlbEnvoyArgs, on its own foundation.

    `settings` is the same configuration, already validated by `load_settings`; the
    component parses its arguments again, so stack and component share one validation.
    """
    del settings  # parsed again from the arguments, by the component
    values = raw_config()
    args = alb_envoy_args(values)
    topology = AlbEnvoy("alb-envoy", args, foundation=foundation)
    return TopologyResult(
        component=topology,
        endpoint=f"https://{topology.domain}",
        outputs=topology.outputs,
    )

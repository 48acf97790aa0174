"""Topology `nlb-certbot`: an app that serves TLS itself, behind an NLB that passes TCP through.

    client --TLS (Let's Encrypt certificate)--> NLB :7473/:7687 (TCP) --> Neo4j in the task

At task start `certbot` obtains or keeps the certificate in /etc/letsencrypt (EFS, so one
certificate serves every restart), `copier` lays it out as the app expects on a scratch
volume, then the app starts. A schedule restarts the task so certbot can renew.

Two challenge modes:
- dns-01 (default), Fargate: certbot proves control with a TXT record in `hostedZoneId`.
- http-01, EC2 as in the seed: an awsvpc task's init container never receives
  load-balanced traffic (the task is not RUNNING yet), so tasks use host networking on
  instances that the NLB reaches as instance targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.certbot import (
    COPIER_IMAGE,
    CertbotSpec,
    certbot_args,
    certbot_image,
    copier_command,
    copier_environment,
)
from components.container_definitions import (
    Container,
    Dependency,
    LogSettings,
    MountPoint,
    PortMapping,
    container_definitions_json,
)
from components.dns import AliasTarget
from components.ec2_capacity import ContainerInstances, ContainerInstancesArgs
from components.efs import EncryptedFileSystem, EncryptedFileSystemArgs, efs_volume
from components.firewall import allow_tcp
from components.iam import Statement, assume_role_policy, policy_document
from components.load_balancer import NetworkLoadBalancer, NetworkLoadBalancerArgs, NlbListener
from components.naming import physical_name
from components.neo4j import neo4j_tls_environment
from components.renewal import RenewalSchedule
from components.service import fargate_service, task_definition, tasks_security_group
from settings import Settings
from topologies.base import Foundation, TopologyResult

LETSENCRYPT = "/etc/letsencrypt"
HTTP01_PORT = 80
RESPONDER_PORT = 8081  # answers the port-80 target group's health check (http-01)
EC2_INSTANCE_TYPE = "t3.large"  # 8 GiB: Neo4j's default heap and page cache fit


def route53_statements(zone_id: str, partition: str = "aws") -> list[Statement]:
    """What certbot's Route53 plugin calls, with changes limited to one zone."""
    return [
        Statement(
            "FindZone",
            ["route53:ListHostedZones"],
            ["*"],
            why_wildcard="ListHostedZones has no resource-level permission",
        ),
        Statement("WaitForChange", ["route53:GetChange"], [f"arn:{partition}:route53:::change/*"]),
        Statement(
            "ChangeTxtRecords",
            ["route53:ChangeResourceRecordSets"],
            [f"arn:{partition}:route53:::hostedzone/{zone_id}"],
        ),
    ]


@dataclass(frozen=True)
class TaskValues:
    auth_secret_arn: str
    log_group: str
    region: str


def task_containers(s: Settings, v: TaskValues) -> list[Container]:
    """certbot -> SUCCESS -> copier -> SUCCESS -> app; the init containers are not essential."""
    http01 = s.acme.challenge == "http-01"
    spec = CertbotSpec(
        email=s.acme.email or "",
        domain=s.domain,
        directory_url=s.acme.directory_url,
        challenge=s.acme.challenge,
        http_port=HTTP01_PORT,
        config_dir=LETSENCRYPT,
        preferred_profile=s.acme.profile,
    )
    layout = s.app.certificate_layout

    def log(prefix: str) -> LogSettings:
        return LogSettings(v.log_group, v.region, f"nlb-certbot-{prefix}")

    certbot = Container(
        name="certbot",
        image=certbot_image(s.acme.challenge),
        essential=False,
        command=certbot_args(spec),
        mount_points=[MountPoint("letsencrypt", LETSENCRYPT)],
        port_mappings=[PortMapping(HTTP01_PORT)] if http01 else (),
        log=log("certbot"),
    )
    copier = Container(
        name="copier",
        image=COPIER_IMAGE,
        essential=False,
        command=copier_command(),
        environment=copier_environment(layout, s.domain, LETSENCRYPT),
        mount_points=[
            MountPoint("letsencrypt", LETSENCRYPT, read_only=True),
            MountPoint("certificates", layout.target_dir),
        ],
        depends_on=[Dependency("certbot", "SUCCESS")],
        log=log("copier"),
    )
    app = Container(
        name="app",
        image=s.app.image,
        environment={**neo4j_tls_environment(layout, s.domain), **dict(s.app.environment)},
        # NEO4J_AUTH is "neo4j/<password>", read from Secrets Manager at task start.
        secrets={"NEO4J_AUTH": v.auth_secret_arn},
        port_mappings=[PortMapping(p) for p in s.app.ports],
        mount_points=[MountPoint("certificates", layout.target_dir, read_only=True)],
        depends_on=[Dependency("copier", "SUCCESS")],
        log=log("app"),
    )
    return [certbot, copier, app]


class NlbCertbot(pulumi.ComponentResource):
    """NLB TCP passthrough, EFS for ACME state, and the certbot -> copier -> app task."""

    def __init__(self, name: str, settings: Settings, foundation: Foundation):
        super().__init__("ecs-tls:nlb_certbot:NlbCertbot", name, None)
        child = pulumi.ResourceOptions(parent=self)
        s, network, cluster = settings, foundation.network, foundation.cluster
        http01 = s.acme.challenge == "http-01"

        # The app's initial password: generated once, kept in Secrets Manager, never shown.
        auth = aws.secretsmanager.Secret(
            f"{name}-auth", description=f"NEO4J_AUTH of {s.domain} (ecs-tls)", opts=child
        )
        password = aws.secretsmanager.get_random_password_output(
            password_length=32,
            exclude_punctuation=True,
            opts=pulumi.InvokeOutputOptions(parent=self),
        ).random_password
        auth_version = aws.secretsmanager.SecretVersion(
            f"{name}-auth",
            secret_id=auth.id,
            secret_string=pulumi.Output.secret(password.apply(lambda p: f"neo4j/{p}")),
            # A new random value on every run must not rotate the password.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["secret_string"]),
        )
        read_auth = cluster.allow_secret_read(f"{name}-read-auth", "ReadNeo4jAuth", auth.arn, self)

        task_role = aws.iam.Role(
            f"{name}-task",
            description="nlb-certbot tasks: certbot's ACME challenge and state",
            assume_role_policy=assume_role_policy("ecs-tasks.amazonaws.com"),
            opts=child,
        )
        if not http01:
            aws.iam.RolePolicy(
                f"{name}-route53",
                name="certbot-dns-01",
                role=task_role.id,
                policy=policy_document(route53_statements(s.hosted_zone_id or "")),
                opts=child,
            )

        listeners = [NlbListener(p, p, "TCP") for p in s.app.ports]
        if http01:
            listeners.append(
                NlbListener(HTTP01_PORT, HTTP01_PORT, "TCP", health_check_port=str(RESPONDER_PORT))
            )
        lb = NetworkLoadBalancer(
            name,
            NetworkLoadBalancerArgs(
                vpc_id=network.vpc_id,
                subnet_ids=network.public_subnet_ids,
                listeners=listeners,
                allowed_cidrs=s.allowed_cidrs,
                target_type="instance" if http01 else "ip",
            ),
            opts=child,
        )
        tasks_sg = tasks_security_group(
            f"{name}-tasks",
            network.vpc_id,
            "nlb-certbot tasks: the app's TLS ports (and ACME HTTP-01) from the NLB",
            parent=self,
        )
        open_ports = [lst.target_port for lst in listeners]
        if http01:
            open_ports.append(RESPONDER_PORT)
        for port in open_ports:
            allow_tcp(
                f"{name}-tasks-in-{port}",
                tasks_sg.id,
                port,
                self,
                description="From the load balancer",
                peer_group_id=lb.security_group.id,
            )
            lb.allow_to_targets(tasks_sg.id, port)

        efs = EncryptedFileSystem(
            f"{name}-letsencrypt",
            EncryptedFileSystemArgs(
                vpc_id=network.vpc_id,
                subnet_ids=network.private_subnet_ids,
                subnet_count=len(s.network.private_subnet_ids) or s.network.availability_zones,
                client_security_group_id=tasks_sg.id,
                # EFS IAM authorization uses the task role, on Fargate and on EC2 alike.
                client_role_arn=task_role.arn,
                root_path="/letsencrypt",
            ),
            opts=child,
        )
        allow_tcp(
            f"{name}-tasks-nfs-out",
            tasks_sg.id,
            2049,
            self,
            description="NFS over TLS to the ACME state on EFS",
            peer_group_id=efs.security_group.id,
            egress=True,
        )
        containers = pulumi.Output.all(auth.arn, cluster.log_group.name, cluster.region).apply(
            lambda v: container_definitions_json(task_containers(s, TaskValues(v[0], v[1], v[2])))
        )
        volumes = pulumi.Output.all(efs.file_system.id, efs.access_point.id).apply(
            lambda v: [efs_volume("letsencrypt", v[0], v[1]), {"name": "certificates"}]
        )
        ready = [read_auth, auth_version, *efs.mount_targets, *lb.listeners]
        task = task_definition(
            name,
            family=physical_name("nlb-certbot"),
            cpu=s.app.cpu,
            memory=s.app.memory,
            cluster=cluster,
            container_definitions=containers,
            parent=self,
            task_role_arn=task_role.arn,
            volumes=volumes,
            launch_type="EC2" if http01 else "FARGATE",
        )
        if http01:
            service = self._ec2_service(name, foundation, lb, tasks_sg.id, task, ready)
        else:
            service = fargate_service(
                name,
                cluster=cluster,
                task_definition=task,
                desired_count=s.app.desired_count,
                subnet_ids=network.private_subnet_ids,
                security_group_ids=[tasks_sg.id],
                parent=self,
                load_balancers=[
                    {
                        "target_group_arn": lb.target_groups[p].arn,
                        "container_name": "app",
                        "container_port": p,
                    }
                    for p in s.app.ports
                ],
                # certbot and the copier run before the app: allow for an ACME order.
                health_check_grace_seconds=600,
                depends_on=ready,
            )
        RenewalSchedule(
            f"{name}-renewal",
            cluster.cluster.arn,
            service,
            s.acme.renew_every_days,
            opts=child,
        )
        foundation.domain_name.point_at(
            AliasTarget(lb.load_balancer.dns_name, lb.load_balancer.zone_id)
        )
        self.load_balancer = lb.load_balancer
        self.file_system_id = efs.file_system.id
        self.register_outputs({"nlbDnsName": lb.load_balancer.dns_name})

    def _ec2_service(
        self,
        name: str,
        foundation: Foundation,
        lb: NetworkLoadBalancer,
        tasks_sg_id: pulumi.Output[str],
        task: aws.ecs.TaskDefinition,
        ready: list[pulumi.Resource],
    ) -> aws.ecs.Service:
        """http-01: host networking on an instance the NLB targets, as in the seed."""
        cluster = foundation.cluster
        instances = ContainerInstances(
            f"{name}-instances",
            ContainerInstancesArgs(
                cluster_name=cluster.cluster.name,
                subnet_ids=foundation.network.private_subnet_ids,
                security_group_id=tasks_sg_id,
                # The group registers the instance with every target group, port 80 included,
                # so the NLB can forward the ACME request while certbot listens.
                target_group_arns=[g.arn for g in lb.target_groups.values()],
                instance_type=EC2_INSTANCE_TYPE,
                responder_port=RESPONDER_PORT,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return aws.ecs.Service(
            name,
            cluster=cluster.cluster.arn,
            task_definition=task.arn,
            desired_count=1,
            launch_type="EC2",
            # One instance, fixed host ports: the old task must stop before the new one starts.
            deployment_minimum_healthy_percent=0,
            deployment_maximum_percent=100,
            deployment_circuit_breaker={"enable": True, "rollback": True},
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            wait_for_steady_state=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*ready, instances.group]),
        )


def build(settings: Settings, foundation: Foundation) -> TopologyResult:
    topology = NlbCertbot("nlb-certbot", settings, foundation)
    s = settings
    endpoints = [
        f"bolt+s://{s.domain}:{p}" if p == 7687 else f"https://{s.domain}:{p}" for p in s.app.ports
    ]
    outputs: dict[str, pulumi.Input] = {
        "nlbDnsName": topology.load_balancer.dns_name,
        "efsFileSystemId": topology.file_system_id,
        "acmeDirectory": s.acme.directory_url,
        "acmeChallenge": s.acme.challenge,
        "renewalSchedule": f"rate({s.acme.renew_every_days} days)",
        "verifyCommand": (
            f"openssl s_client -connect {s.domain}:{s.app.ports[-1]} -servername {s.domain} "
            "-verify_return_error -brief </dev/null"
        ),
    }
    return TopologyResult(
        component=topology,
        endpoint=" ".join(endpoints),
        outputs=outputs,
    )

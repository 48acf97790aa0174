"""Topology `nlb-certbot`: an app that serves TLS itself, behind an NLB that passes TCP through.

    client --TLS (Let's Encrypt certificate)--> NLB :7473/:7687 (TCP) --> Neo4j

The default app is a database, so its data and its availability come first:
- EC2 capacity (default, the seed's design): one instance in the zone of an encrypted gp3
  volume that holds `app.dataPath` (Neo4j's /data) and outlives tasks, instances and the
  stack; daily snapshots. Fargate is offered for stateless TLS apps only.
- The app task's init chain runs on every start, but an ACME failure never stops a task
  that has a valid certificate: the copier lays out whatever unexpired certificate the
  ACME state on EFS holds, and only its absence stops the app.
- Renewal happens beside the app, in a scheduled standalone task running the same certbot
  command. Only when certbot issues a new certificate does its deploy hook restart the
  service once (Neo4j Community cannot reload TLS in place).

Challenges: dns-01 (default) writes a TXT record in `hostedZoneId`; http-01 needs host
networking (an awsvpc task's init container never receives load-balanced traffic: the
task is not RUNNING yet), hence EC2.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pulumi
import pulumi_aws as aws

from components.certbot import (
    COPIER_IMAGE,
    RENEWAL_IMAGE,
    SHELL_ENTRY_POINT,
    CertbotSpec,
    certbot_command,
    certbot_image,
    copier_command,
    copier_environment,
    renewal_command,
    renewal_environment,
)
from components.container_definitions import (
    Container,
    Dependency,
    LogSettings,
    MountPoint,
    PortMapping,
    container_definitions_json,
)
from components.data_volume import data_volume_policy_document, data_volume_user_data
from components.dns import AliasTarget
from components.ec2_capacity import INSTANCE_TAG, ContainerInstances, ContainerInstancesArgs
from components.efs import EncryptedFileSystem, EncryptedFileSystemArgs, efs_volume
from components.firewall import allow_tcp
from components.iam import Statement, assume_role_policy, policy_document
from components.load_balancer import NetworkLoadBalancer, NetworkLoadBalancerArgs, NlbListener
from components.naming import physical_name
from components.neo4j import neo4j_tls_environment
from components.persistent_volume import PersistentVolume, PersistentVolumeArgs
from components.renewal import ScheduledTask, ScheduledTaskArgs
from components.service import fargate_service, task_definition, tasks_security_group
from settings import Settings
from settings.parse import HTTP01_RESPONDER_PORT
from topologies.base import Foundation, TopologyResult

LETSENCRYPT = "/etc/letsencrypt"
HTTP01_PORT = 80
# Where the instance mounts the data volume, and the app's directory on it (host paths).
DATA_MOUNT_POINT = "/mnt/ecs-tls-data"
DATA_HOST_DIR = f"{DATA_MOUNT_POINT}/app"
# Neo4j checkpoints its store on shutdown; ECS kills the container after this many seconds.
APP_STOP_TIMEOUT = 120


def route53_statements(zone_id: str, domain: str, partition: str) -> list[Statement]:
    """What certbot's Route53 plugin calls: only the domain's challenge TXT may change.

    ListHostedZones and GetChange have no resource-level permissions. The plugin finds the
    zone by name, so the change is limited by condition keys to one name and type.
    [Route53 "Using IAM policy conditions for fine-grained access control"]
    """
    return [
        Statement(
            "FindZone",
            ["route53:ListHostedZones"],
            ["*"],
            why_wildcard="ListHostedZones has no resource-level permission",
        ),
        Statement(
            "WaitForChange",
            ["route53:GetChange"],
            [f"arn:{partition}:route53:::change/*"],
        ),
        Statement(
            "ChangeChallengeRecord",
            ["route53:ChangeResourceRecordSets"],
            [f"arn:{partition}:route53:::hostedzone/{zone_id}"],
            condition={
                "ForAllValues:StringEquals": {
                    "route53:ChangeResourceRecordSetsNormalizedRecordNames": [
                        f"_acme-challenge.{domain}"
                    ],
                    "route53:ChangeResourceRecordSetsRecordTypes": ["TXT"],
                    "route53:ChangeResourceRecordSetsActions": ["UPSERT", "DELETE"],
                }
            },
        ),
    ]


def certbot_spec(s: Settings) -> CertbotSpec:
    """The one certbot request of the stack: the app's first start and every renewal."""
    return CertbotSpec(
        email=s.acme.email or "",
        domain=s.domain,
        directory_url=s.acme.directory_url,
        challenge=s.acme.challenge,
        http_port=HTTP01_PORT,
        config_dir=LETSENCRYPT,
        preferred_profile=s.acme.profile,
    )


@dataclass(frozen=True)
class TaskValues:
    auth_secret_arn: str
    log_group: str
    region: str


def _log(v: TaskValues, prefix: str) -> LogSettings:
    return LogSettings(v.log_group, v.region, f"nlb-certbot-{prefix}")


def certbot_container(s: Settings, v: TaskValues) -> Container:
    """certbot on the shared ACME state. With HTTP-01 it listens on the instance's port 80
    (host networking) without a port mapping: a mapping would reserve port 80 for the app
    task's whole life, and ECS could then never place the renewal task on the instance.
    The lock in its command keeps two certbots from binding the port at once."""
    return Container(
        name="certbot",
        image=certbot_image(s.acme.challenge),
        essential=False,
        entry_point=list(SHELL_ENTRY_POINT),
        command=certbot_command(certbot_spec(s)),
        mount_points=[MountPoint("letsencrypt", LETSENCRYPT)],
        log=_log(v, "certbot"),
    )


def task_containers(s: Settings, v: TaskValues) -> list[Container]:
    """certbot -> COMPLETE -> copier -> SUCCESS -> app.

    The copier waits for certbot to exit, whatever its exit code: with an unexpired
    certificate on EFS it succeeds even if the CA was unreachable. Without one it fails and
    the app does not start without TLS.
    """
    layout = s.app.certificate_layout
    copier = Container(
        name="copier",
        image=COPIER_IMAGE,
        essential=False,
        command=copier_command(),
        environment=copier_environment(layout, certbot_spec(s)),
        mount_points=[
            MountPoint("letsencrypt", LETSENCRYPT, read_only=True),
            MountPoint("certificates", layout.target_dir),
        ],
        depends_on=[Dependency("certbot", "COMPLETE")],
        log=_log(v, "copier"),
    )
    app_mounts = [MountPoint("certificates", layout.target_dir, read_only=True)]
    if s.app.data_path is not None:
        app_mounts.append(MountPoint("data", s.app.data_path))
    app = Container(
        name="app",
        image=s.app.image,
        environment={**neo4j_tls_environment(layout, s.domain), **dict(s.app.environment)},
        # NEO4J_AUTH is "neo4j/<password>", read from Secrets Manager at task start.
        secrets={"NEO4J_AUTH": v.auth_secret_arn},
        port_mappings=[PortMapping(p) for p in s.app.ports],
        mount_points=app_mounts,
        depends_on=[Dependency("copier", "SUCCESS")],
        stop_timeout=APP_STOP_TIMEOUT,
        log=_log(v, "app"),
    )
    return [certbot_container(s, v), copier, app]


def renewal_containers(
    s: Settings, v: TaskValues, cluster_arn: str, service_name: str
) -> list[Container]:
    """The renewal task: certbot alone, on the same ACME state, the task's only container."""
    return [
        replace(
            certbot_container(s, v),
            image=RENEWAL_IMAGE,
            essential=True,
            command=renewal_command(certbot_spec(s)),
            environment=renewal_environment(cluster_arn, service_name),
            log=_log(v, "renewal"),
        )
    ]


class NlbCertbot(pulumi.ComponentResource):
    """NLB TCP passthrough, ACME state on EFS, the app (EC2 or Fargate) and its renewal."""

    def __init__(self, name: str, settings: Settings, foundation: Foundation):
        super().__init__("ecs-tls:nlb_certbot:NlbCertbot", name, None)
        child = pulumi.ResourceOptions(parent=self)
        s, network, cluster = settings, foundation.network, foundation.cluster
        self.settings = s
        self.on_ec2 = on_ec2 = s.app.capacity == "ec2"
        http01 = s.acme.challenge == "http-01"
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        if not on_ec2 and s.app.is_neo4j:
            pulumi.log.warn(
                "nlb-certbot: Neo4j on Fargate keeps /data in the task, which is lost on "
                "every restart, redeploy and certificate renewal. Use app.capacity 'ec2' to "
                "keep it.",
                self,
            )

        auth, read_auth, auth_version = self._auth_secret(name, s, cluster, on_ec2)
        roles = {
            purpose: aws.iam.Role(
                f"{name}-{purpose}-task",
                description=f"nlb-certbot {purpose} task: ACME challenge and state",
                assume_role_policy=assume_role_policy("ecs-tasks.amazonaws.com"),
                opts=child,
            )
            for purpose in ("app", "renewal")
        }
        ready: list[pulumi.Resource] = [read_auth, auth_version]
        if not http01:
            for purpose, role in roles.items():
                ready.append(
                    aws.iam.RolePolicy(
                        f"{name}-{purpose}-route53",
                        name="certbot-dns-01",
                        role=role.id,
                        policy=partition.partition.apply(
                            lambda p: policy_document(
                                route53_statements(s.hosted_zone_id or "", s.domain, p)
                            )
                        ),
                        opts=child,
                    )
                )

        listeners = [NlbListener(p, p, "TCP") for p in s.app.ports]
        if http01:
            listeners.append(
                NlbListener(
                    HTTP01_PORT,
                    HTTP01_PORT,
                    "TCP",
                    health_check_port=str(HTTP01_RESPONDER_PORT),
                    open_to_internet=True,
                )
            )
        lb = NetworkLoadBalancer(
            name,
            NetworkLoadBalancerArgs(
                vpc_id=network.vpc_id,
                subnet_ids=network.public_subnet_ids,
                listeners=listeners,
                allowed_cidrs=s.allowed_cidrs,
                target_type="instance" if on_ec2 else "ip",
            ),
            opts=child,
        )
        self.load_balancer = lb.load_balancer
        tasks_sg = tasks_security_group(
            f"{name}-tasks",
            network.vpc_id,
            "nlb-certbot: the app TLS ports (and ACME HTTP-01) from the NLB",
            parent=self,
        )
        open_ports = [lst.target_port for lst in listeners]
        if http01:
            open_ports.append(HTTP01_RESPONDER_PORT)
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
                zonal_subnets=network.private_zonal_subnets,
                client_security_group_id=tasks_sg.id,
                # EFS IAM authorization uses the task role, on Fargate and on EC2 alike.
                client_role_arns=[role.arn for role in roles.values()],
                root_path="/letsencrypt",
            ),
            opts=child,
        )
        self.file_system_id = efs.file_system.id
        allow_tcp(
            f"{name}-tasks-nfs-out",
            tasks_sg.id,
            2049,
            self,
            description="NFS over TLS to the ACME state on EFS",
            peer_group_id=efs.security_group.id,
            egress=True,
        )
        ready.extend([efs.policy, *efs.mount_targets])

        alias = foundation.domain_name.point_at(
            AliasTarget(lb.load_balancer.dns_name, lb.load_balancer.zone_id)
        )
        if http01 and alias is not None:
            # Let's Encrypt validates against the name: the first task waits for it.
            ready.append(alias.record)

        values = pulumi.Output.all(auth.arn, cluster.log_group.name, cluster.region).apply(
            lambda v: TaskValues(v[0], v[1], v[2])
        )
        volumes = [efs_volume_input(efs), {"name": "certificates"}]
        self.data_volume = None
        if on_ec2:
            self.data_volume = PersistentVolume(
                f"{name}-data",
                PersistentVolumeArgs(
                    availability_zone=network.private_zonal_subnets[0].availability_zone,
                    size_gib=s.app.data_volume_gib,
                    snapshot_retention_days=s.app.snapshot_retention_days,
                    description=f"the data of {s.domain}",
                ),
                opts=child,
            )
            volumes.append({"name": "data", "host_path": DATA_HOST_DIR})
        launch_type = "EC2" if on_ec2 else "FARGATE"
        task = task_definition(
            name,
            family=physical_name("nlb-certbot"),
            cpu=s.app.cpu,
            memory=s.app.memory,
            cluster=cluster,
            container_definitions=values.apply(
                lambda v: container_definitions_json(task_containers(s, v))
            ),
            parent=self,
            task_role_arn=roles["app"].arn,
            volumes=pulumi.Output.all(*volumes),
            launch_type=launch_type,
        )
        if on_ec2:
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
                depends_on=[*ready, *lb.listeners],
            )
        self.service = service
        self._renewal(name, foundation, roles["renewal"], values, efs, tasks_sg, service)
        self.register_outputs({"nlbDnsName": lb.load_balancer.dns_name})

    def _auth_secret(self, name, s: Settings, cluster, keep: bool):
        """The app's initial password: generated once, kept in Secrets Manager, never shown.

        Kept when the stack is destroyed if the data is kept: the retained data volume is
        useless without it.
        """
        auth = aws.secretsmanager.Secret(
            f"{name}-auth",
            description=f"NEO4J_AUTH of {s.domain} (ecs-tls)",
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=keep),
        )
        password = aws.secretsmanager.get_random_password_output(
            password_length=32,
            exclude_punctuation=True,
            opts=pulumi.InvokeOutputOptions(parent=self),
        ).random_password
        version = aws.secretsmanager.SecretVersion(
            f"{name}-auth",
            secret_id=auth.id,
            secret_string=pulumi.Output.secret(password.apply(lambda p: f"neo4j/{p}")),
            # A new random value on every run must not rotate the password.
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["secret_string"], retain_on_delete=keep
            ),
        )
        read = cluster.allow_secret_read(f"{name}-read-auth", "ReadNeo4jAuth", auth.arn, self)
        return auth, read, version

    def _ec2_service(
        self,
        name: str,
        foundation: Foundation,
        lb: NetworkLoadBalancer,
        tasks_sg_id: pulumi.Output[str],
        task: aws.ecs.TaskDefinition,
        ready: list[pulumi.Resource],
    ) -> aws.ecs.Service:
        """One instance in the data volume's zone; host networking, instance targets."""
        s, cluster = self.settings, foundation.cluster
        subnet = foundation.network.private_zonal_subnets[0]
        instances_name = f"{name}-instances"
        volume = self.data_volume.volume
        # The data directory belongs to the app's user (Neo4j's image runs as 7474:7474).
        owner = s.app.certificate_layout.owner or "0:0"
        before_agent = pulumi.Output.all(volume.id, cluster.region).apply(
            lambda v: data_volume_user_data(v[0], v[1], DATA_MOUNT_POINT, DATA_HOST_DIR, owner)
        )
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        instance_policy = pulumi.Output.all(
            partition.partition, cluster.region, cluster.account_id, volume.id
        ).apply(
            lambda v: data_volume_policy_document(
                partition=v[0],
                region=v[1],
                account_id=v[2],
                volume_id=v[3],
                instance_tag=(INSTANCE_TAG, physical_name(instances_name)),
            )
        )
        instances = ContainerInstances(
            instances_name,
            ContainerInstancesArgs(
                cluster_name=cluster.cluster.name,
                subnet_id=subnet.subnet_id,
                security_group_id=tasks_sg_id,
                # The group registers the instance with every target group (port 80 too,
                # so the NLB can forward the ACME request while certbot listens).
                target_group_arns=[g.arn for g in lb.target_groups.values()],
                instance_type=s.app.instance_type,
                responder_port=HTTP01_RESPONDER_PORT if s.acme.challenge == "http-01" else None,
                before_agent=before_agent,
                instance_policy=instance_policy,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return aws.ecs.Service(
            name,
            cluster=cluster.cluster.arn,
            task_definition=task.arn,
            desired_count=s.app.desired_count,
            launch_type="EC2",
            # One instance, fixed host ports, one data volume: the old task stops before the
            # new one starts. This happens on `pulumi up` with a change and after a renewal
            # that issued a new certificate, never on a schedule.
            deployment_minimum_healthy_percent=0,
            deployment_maximum_percent=100,
            deployment_circuit_breaker={"enable": True, "rollback": True},
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            wait_for_steady_state=s.app.desired_count > 0,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*ready, *lb.listeners, instances.group]
            ),
        )

    def _renewal(self, name, foundation, role, values, efs, tasks_sg, service) -> None:
        """certbot every `acme.renewEveryDays`, beside the app, on the same ACME state."""
        s, cluster = self.settings, foundation.cluster
        family = physical_name("nlb-certbot-renewal")
        task = task_definition(
            f"{name}-renewal",
            family=family,
            cpu=256,
            memory=512,
            cluster=cluster,
            container_definitions=pulumi.Output.all(
                values, cluster.cluster.arn, service.name
            ).apply(lambda v: container_definitions_json(renewal_containers(s, v[0], v[1], v[2]))),
            parent=self,
            task_role_arn=role.arn,
            volumes=pulumi.Output.all(efs_volume_input(efs)),
            launch_type="EC2" if self.on_ec2 else "FARGATE",
        )
        # The deploy hook restarts the app once certbot issued (components/renewal_hook.py).
        aws.iam.RolePolicy(
            f"{name}-renewal-restart",
            name="restart-app-service",
            role=role.id,
            policy=service.id.apply(
                lambda arn: policy_document(
                    [Statement("RestartAppService", ["ecs:UpdateService"], [arn])]
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # A failed renewal changes nothing for the app; the operators still need to know
        # before the certificate runs out.
        foundation.alerts.failed_task_rule(
            f"{name}-renewal-failed",
            cluster.cluster.arn,
            family,
            "certificate renewal",
            parent=self,
        )
        ScheduledTask(
            f"{name}-renewal",
            ScheduledTaskArgs(
                cluster_arn=cluster.cluster.arn,
                task_definition=task,
                interval_days=s.acme.renew_every_days,
                launch_type="EC2" if self.on_ec2 else "FARGATE",
                pass_role_arns=[role.arn, cluster.execution_role.arn],
                subnet_ids=None if self.on_ec2 else foundation.network.private_subnet_ids,
                security_group_ids=[] if self.on_ec2 else [tasks_sg.id],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[service]),
        )


def efs_volume_input(efs: EncryptedFileSystem) -> pulumi.Output[dict]:
    return pulumi.Output.all(efs.file_system.id, efs.access_point.id).apply(
        lambda v: efs_volume("letsencrypt", v[0], v[1])
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
    if topology.data_volume is not None:
        outputs["dataVolumeId"] = topology.data_volume.volume.id
    if s.acme.challenge == "http-01" and s.hosted_zone_id is None and s.app.desired_count == 0:
        outputs["nextSteps"] = topology.load_balancer.dns_name.apply(
            lambda dns: (
                f"Point {s.domain} at {dns} (CNAME, or an alias A record), wait until "
                f"`dig +short {s.domain}` answers, then start the app: "
                "pulumi config set --path ecs-tls:app.desiredCount 1 && pulumi up"
            )
        )
    return TopologyResult(component=topology, endpoint=" ".join(endpoints), outputs=outputs)

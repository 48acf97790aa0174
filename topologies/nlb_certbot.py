"""Topology `nlb-certbot`: an app that serves TLS itself, behind an NLB that passes TCP through.

    client --TLS (Let's Encrypt certificate)--> NLB :7473/:7687 (TCP) --> Neo4j

The default app is a database, so its data and its availability come first:
- EC2 capacity (default, the seed's design): one instance in the zone of an encrypted gp3
  volume that holds `app.dataPath` (Neo4j's /data) and outlives tasks, instances and the
  stack; daily snapshots. Fargate is offered for stateless TLS apps only.
- The app's task holds read-only rights: a task role applies to every container, so the
  container that talks to the CA does not run in it. Its copier reads the ACME state on
  EFS through a mount without write rights, lays out whatever unexpired certificate it
  holds, and only its absence (after a bounded wait) stops the app.
- certbot runs in tasks of its own, under the one role that may answer the challenge and
  write the ACME state:
  - the issuer, started by an EventBridge rule whenever a task of the app is PENDING (its
    first deploy included): certbot obtains the certificate, or keeps the valid one, while
    the app's copier waits for it;
  - the renewal, on a schedule, running the same certbot command. Only when certbot issues
    a new certificate does its deploy hook restart the service once (Neo4j Community
    cannot reload TLS in place); the new task starts the issuer, which has nothing to do.

On EC2 every task uses host networking, so its containers share the instance's network
namespace and could reach the instance metadata service and the instance role. Every
container therefore runs as a non-root user (certbot as CERTBOT_USER, the copier and the
app as the certificate layout's owner), and the instance lets only root reach the metadata
service (task_contents/imds_guard.py).

Challenges: dns-01 (default) writes a TXT record in `hostedZoneId`; http-01 needs host
networking (an awsvpc task's init container never receives load-balanced traffic: the
task is not RUNNING yet), hence EC2: certbot, not root, listens on the instance's port
80, which the instance opens to non-root processes at boot.
"""

import json
from dataclasses import dataclass, replace
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.alerts import CERTIFICATE_METRIC_NAMESPACE, healthy_targets_alarm_args
from components.app_access import allow_app_secrets, attach_policies
from components.app_secrets import container_secrets
from components.data_volume_access import (
    data_volume_policy_document,
    mark_unhealthy_policy_document,
)
from components.dns import AliasTarget
from components.ec2_capacity import (
    INSTANCE_TAG,
    ContainerInstances,
    ContainerInstancesArgs,
    instance_architecture,
)
from components.efs import EncryptedFileSystem, EncryptedFileSystemArgs, efs_volume
from components.exec_command import exec_command_line
from components.firewall import allow_tcp
from components.iam import Statement, assume_role_policy, policy_document
from components.load_balancer import NetworkLoadBalancer, NetworkLoadBalancerArgs, NlbListener
from components.naming import physical_name
from components.persistent_volume import (
    PersistentVolume,
    PersistentVolumeArgs,
    kept_volume_problem,
    subnet_in_zone,
)
from components.renewal import ScheduledTask, ScheduledTaskArgs, service_arn
from components.service import (
    fargate_service,
    service_outputs,
    task_definition,
    tasks_security_group,
)
from components.write_once_secret import write_once_secret_version
from constants.config import ACME_PROFILE_LIFETIMES
from constants.images import DEFAULT_IMAGES
from settings import ConfigError, LoadBalancerSettings, Settings
from settings.parse import HTTP01_RESPONDER_PORT
from settings.readers import raw_config
from task_contents.certbot import (
    CERTBOT_GID,
    CERTBOT_UID,
    CERTBOT_USER,
    COPIER_IMAGE,
    COPIER_WAIT_SECONDS,
    RENEWAL_IMAGE,
    SHELL_ENTRY_POINT,
    CertbotSpec,
    certbot_command,
    certbot_image,
    copier_command,
    copier_environment,
    live_dir,
    renewal_command,
    renewal_environment,
)
from task_contents.container_definitions import (
    Container,
    Dependency,
    LogSettings,
    MountPoint,
    PortMapping,
    container_definitions_json,
)
from task_contents.data_volume import data_volume_user_data
from task_contents.neo4j import neo4j_memory_environment, neo4j_tls_environment
from task_contents.renewal_hook import expiry_environment
from topologies.args import NlbCertbotArgs, args_from_config
from topologies.base import Foundation, TopologyResult, component_type
from topologies.foundation import FOUNDATION_KEYS, component_settings, existing_foundation

LETSENCRYPT = "/etc/letsencrypt"
HTTP01_PORT = 80
# Where the instance mounts the data volume, and the app's directory on it (host paths).
DATA_MOUNT_POINT = "/mnt/ecs-tls-data"
DATA_HOST_DIR = f"{DATA_MOUNT_POINT}/app"
# The copier's output on EC2 (host path, on the instance's encrypted, disposable root
# disk): prepared at boot for the app's user, who could not write into the root-owned
# directory ECS creates for a task scratch volume.
CERTIFICATES_HOST_DIR = "/var/lib/ecs-tls/certificates"
# The app's user on EC2 when the certificate layout names no owner: any non-root user.
FALLBACK_APP_USER = "65534:65534"
# The ACME state's directory on EFS, owned by certbot's user through the access point. Not
# the earlier root-owned /letsencrypt, which a non-root access point cannot enter.
EFS_ROOT = "/certbot"
ROLE_DESCRIPTIONS = {
    "app": "nlb-certbot app task: reads the certificate, changes nothing",
    "renewal": "nlb-certbot issuer and renewal tasks: ACME challenge and state",
}
# The generated Neo4j password (Neo4j asks for 8 characters at least).
NEO4J_PASSWORD_LENGTH = 32
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
    """certbot on the shared ACME state, as a non-root user. With HTTP-01 it listens on the
    instance's port 80 (host networking) without a port mapping: a mapping would keep a
    second certbot task (issuer and renewal) off the instance. The lock in its command
    keeps two certbots from binding the port at once."""
    return Container(
        name="certbot",
        image=certbot_image(s.acme.challenge),
        essential=True,
        entry_point=list(SHELL_ENTRY_POINT),
        command=certbot_command(certbot_spec(s)),
        mount_points=[MountPoint("letsencrypt", LETSENCRYPT)],
        user=CERTBOT_USER,
        log=_log(v, "certbot"),
    )


def app_user(s: Settings) -> str:
    """The non-root uid:gid of the copier and the app on EC2, who owns what they share."""
    return s.app.certificate_layout.owner or FALLBACK_APP_USER


def task_containers(s: Settings, v: TaskValues, on_ec2: bool = True) -> list[Container]:
    """copier -> SUCCESS -> app, with no right to change the ACME state.

    The copier succeeds with an unexpired certificate on EFS even if the CA is down, waits
    up to COPIER_WAIT_SECONDS for the issuer task when there is none yet, and otherwise
    fails: the app does not start without TLS. On EC2 (host networking) both run as the
    app's non-root user, and the copier writes files that user owns; on Fargate the copier
    keeps root (the task scratch volume belongs to root) and hands the files to the owner.
    """
    layout = s.app.certificate_layout
    user = app_user(s) if on_ec2 else None
    if on_ec2:
        layout = replace(layout, owner=user)
    copier = Container(
        name="copier",
        image=COPIER_IMAGE,
        essential=False,
        command=copier_command(),
        environment=copier_environment(layout, certbot_spec(s), COPIER_WAIT_SECONDS),
        mount_points=[
            MountPoint("letsencrypt", LETSENCRYPT, read_only=True),
            MountPoint("certificates", layout.target_dir),
        ],
        user=user,
        log=_log(v, "copier"),
    )
    app_mounts = [MountPoint("certificates", layout.target_dir, read_only=True)]
    if s.app.data_path is not None:
        app_mounts.append(MountPoint("data", s.app.data_path))
    app = Container(
        name="app",
        image=s.app.image,
        environment={
            **neo4j_tls_environment(layout, s.domain),
            # Heap and page cache sized to the task's memory, not guessed by Neo4j.
            **(neo4j_memory_environment(s.app.memory) if s.app.is_neo4j else {}),
            **dict(s.app.environment),
        },
        # NEO4J_AUTH is "neo4j/<password>", read from Secrets Manager at task start.
        secrets={"NEO4J_AUTH": v.auth_secret_arn, **container_secrets(s.app.access)},
        port_mappings=[PortMapping(p) for p in s.app.ports],
        mount_points=app_mounts,
        depends_on=[Dependency("copier", "SUCCESS")],
        stop_timeout=APP_STOP_TIMEOUT,
        # Neo4j's image runs as any non-root user who may write /data and /logs (Neo4j
        # knowledge base, "Running Docker as Non-Root User"); 7474 is its own neo4j user.
        user=user,
        log=_log(v, "app"),
    )
    return [copier, app]


def issuer_containers(s: Settings, v: TaskValues) -> list[Container]:
    """The issuer task: certbot alone, without the restart hook (the app's task that
    started it is waiting for the certificate, not for a restart)."""
    return [replace(certbot_container(s, v), log=_log(v, "issuer"))]


def issuer_trigger_pattern(cluster_arn: str, task_definition_prefix: str) -> str:
    """EventBridge pattern: a task of the app's family is PENDING, i.e. about to need a
    certificate (its copier runs while the task is PENDING).

    By task definition family rather than by service name: the service is created after
    the rule, which must already exist when its first task starts.
    """
    return json.dumps(
        {
            "source": ["aws.ecs"],
            "detail-type": ["ECS Task State Change"],
            "detail": {
                "clusterArn": [cluster_arn],
                "taskDefinitionArn": [{"prefix": task_definition_prefix}],
                "lastStatus": ["PENDING"],
                "desiredStatus": ["RUNNING"],
            },
        },
        sort_keys=True,
    )


def issuer_trigger_statements(
    task_definition_arn: str, cluster_arn: str, pass_role_arns: list[str]
) -> list[Statement]:
    """What EventBridge needs to start the issuer task, and nothing else."""
    return [
        Statement(
            "RunIssuerTask",
            ["ecs:RunTask"],
            [task_definition_arn],
            condition={"ArnEquals": {"ecs:cluster": cluster_arn}},
        ),
        Statement(
            "PassIssuerRoles",
            ["iam:PassRole"],
            sorted(set(pass_role_arns)),
            condition={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        ),
    ]


def renewal_containers(
    s: Settings, v: TaskValues, cluster_arn: str, service_name: str
) -> list[Container]:
    """The renewal task: certbot alone, on the same ACME state, the task's only container.

    Its hook reports the live certificate's days to expiry after every run; RENEWAL_IMAGE
    (the Route53 plugin's image, also for HTTP-01) ships the boto3 it needs.
    """
    spec = certbot_spec(s)
    return [
        replace(
            certbot_container(s, v),
            image=RENEWAL_IMAGE,
            essential=True,
            command=renewal_command(spec),
            environment={
                **renewal_environment(cluster_arn, service_name),
                **expiry_environment(f"{live_dir(spec)}/cert.pem", s.domain),
            },
            log=_log(v, "renewal"),
        )
    ]


def expiry_threshold_days(s: Settings) -> int:
    """Alarm below this many days left: certbot renews once a third of the lifetime is left,
    so a value under that after a run means the run did not renew; two days of margin for
    the exact point certbot (or the CA's renewal window) picks."""
    lifetime = ACME_PROFILE_LIFETIMES.get(s.acme.profile or "tlsserver", 45)
    return max(1, lifetime // 3 - 2)


def report_expiry_statement() -> Statement:
    """The renewal role's right to report the certificate's expiry (components/alerts.py).

    PutMetricData has no resource type (Service Authorization Reference, Amazon
    CloudWatch); the cloudwatch:namespace condition key holds it to the project's namespace.
    """
    return Statement(
        "ReportCertificateExpiry",
        ["cloudwatch:PutMetricData"],
        ["*"],
        why_wildcard="PutMetricData has no resource type; scoped by cloudwatch:namespace",
        condition={"StringEquals": {"cloudwatch:namespace": CERTIFICATE_METRIC_NAMESPACE}},
    )


class NlbCertbot(pulumi.ComponentResource):
    """nlb-certbot: NLB TCP passthrough to an app that terminates TLS itself, Let's Encrypt."""

    endpoint: pulumi.Output[str]
    """What clients use: the app's TLS URLs (bolt+s://<domain>:7687 for Neo4j)."""
    nlb_dns_name: pulumi.Output[str]
    """DNS name of the NLB; point domain at it when no hostedZoneId is given."""
    service_name: pulumi.Output[str]
    """Name of the ECS service."""
    service_arn: pulumi.Output[str]
    """ARN of the ECS service."""
    auth_secret_arn: pulumi.Output[str]
    """ARN of the secret holding the app's initial credentials (Neo4j: NEO4J_AUTH)."""

    def __init__(
        self,
        name: str,
        args: NlbCertbotArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        foundation: Foundation | None = None,
    ):
        """`foundation`: this program's shared network, cluster, alerts and DNS record
        (Python only); without it, args must name an existing VPC, subnets and cluster,
        the private subnets as plain IDs (their zones are read first)."""
        s = component_settings(
            "nlb-certbot", name, args, NlbCertbotArgs, foundation, reads_zones=True
        )
        super().__init__(component_type("nlb_certbot", "NlbCertbot"), name, None, opts)
        if foundation is None:
            foundation = existing_foundation(name, self, s, args, with_zones=True)
        child = pulumi.ResourceOptions(parent=self)
        network, cluster = foundation.network, foundation.cluster
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

        # The program's images are multi-architecture indexes (constants/images.py); a
        # custom image is the user's, and ECS fails its pull on a Graviton instance
        # without an arm64 variant.
        graviton = on_ec2 and instance_architecture(s.app.instance_type) == "arm64"
        if graviton and s.app.image not in DEFAULT_IMAGES.values():
            pulumi.log.warn(
                f"nlb-certbot: app.instanceType {s.app.instance_type} is Graviton (arm64): "
                f"app.image {s.app.image} must have a linux/arm64 variant",
                self,
            )
        auth, read_auth, auth_version = self._auth_secret(name, s, cluster, on_ec2)
        self.auth_secret_arn = auth.arn
        roles = {
            purpose: aws.iam.Role(
                f"{name}-{purpose}-task",
                description=ROLE_DESCRIPTIONS[purpose],
                assume_role_policy=cluster.account_id.apply(
                    lambda a: assume_role_policy("ecs-tasks.amazonaws.com", a)
                ),
                opts=child,
            )
            for purpose in ("app", "renewal")
        }
        ready: list[pulumi.Resource] = [read_auth, auth_version]
        # The app's task role also mounts the ACME state read-only, so the user's policies
        # join it; app.taskRoleArn is refused here (settings/app_secrets.py).
        ready += attach_policies(f"{name}-app-task", roles["app"], s.app.access, self)
        read_app_secrets = allow_app_secrets(name, cluster.execution_role, [s.app.access], self)
        if read_app_secrets is not None:
            ready.append(read_app_secrets)
        if not http01:
            # Only the certbot tasks' role: the app's task never talks to the CA.
            ready.append(
                aws.iam.RolePolicy(
                    f"{name}-renewal-route53",
                    name="certbot-dns-01",
                    role=roles["renewal"].id,
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
        tasks_sg = tasks_security_group(
            f"{name}-tasks",
            network.vpc_id,
            "nlb-certbot: the app TLS ports (and ACME HTTP-01) from the NLB",
            parent=self,
        )
        lb = NetworkLoadBalancer(
            name,
            NetworkLoadBalancerArgs(
                vpc_id=network.vpc_id,
                subnet_ids=network.public_subnet_ids,
                listeners=listeners,
                allowed_cidrs=s.allowed_cidrs,
                target_type="instance" if on_ec2 else "ip",
                # A TCP passthrough NLB: only deletion protection applies (settings refuse
                # access logs and WAF here), so only that is read.
                extras=LoadBalancerSettings(
                    deletion_protection=s.load_balancer.deletion_protection
                ),
                # The app's ports and the HTTP-01 responder's health check, only.
                target_security_group_id=tasks_sg.id,
            ),
            opts=child,
        )
        self.load_balancer = lb.load_balancer
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

        efs = EncryptedFileSystem(
            f"{name}-letsencrypt",
            EncryptedFileSystemArgs(
                vpc_id=network.vpc_id,
                zonal_subnets=network.private_zonal_subnets,
                client_security_group_id=tasks_sg.id,
                # EFS IAM authorization uses the task role, on Fargate and on EC2 alike:
                # the certbot tasks write, the app's task mounts read-only.
                client_role_arns=[roles["renewal"].arn],
                reader_role_arns=[roles["app"].arn],
                root_path=EFS_ROOT,
                # Every client acts as certbot's user, never as root.
                uid=CERTBOT_UID,
                gid=CERTBOT_GID,
                client_root_access=False,
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
        volumes = [
            efs_volume_input(efs),
            {"name": "certificates", "host_path": CERTIFICATES_HOST_DIR}
            if on_ec2
            else {"name": "certificates"},
        ]
        self.data_volume = None
        if on_ec2:
            self.data_volume = PersistentVolume(
                f"{name}-data",
                PersistentVolumeArgs(
                    # Only where a new volume is created: an existing one stays in its zone,
                    # and the instance follows it (_instance_subnet).
                    availability_zone=s.app.data_volume_zone
                    or network.private_zonal_subnets[0].availability_zone,
                    size_gib=s.app.data_volume_gib,
                    snapshot_retention_days=s.app.snapshot_retention_days,
                    snapshot_id=s.app.data_volume_snapshot_id,
                    description=f"the data of {s.domain}",
                    kms_key_arn=s.app.data_volume_kms_key_arn,
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
                lambda v: container_definitions_json(task_containers(s, v, on_ec2))
            ),
            parent=self,
            task_role_arn=roles["app"].arn,
            volumes=pulumi.Output.all(*volumes),
            launch_type=launch_type,
        )
        ready.extend(self._issuer(name, foundation, roles["renewal"], values, efs, tasks_sg))
        if s.app.enable_execute_command:
            # The app's task only: the certbot tasks run to completion and need no shell.
            ready.append(cluster.allow_execute_command(f"{name}-exec", roles["app"], self))
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
                # The copier may wait for the issuer's ACME order before the app starts.
                health_check_grace_seconds=600,
                depends_on=[*ready, *lb.listeners],
                enable_execute_command=s.app.enable_execute_command,
            )
        self.service = service
        self.cluster_name = cluster.cluster.name
        if s.app.desired_count > 0:
            for port, group in lb.target_groups.items():
                foundation.alerts.serving_alarm(
                    f"{name}-healthy-{port}",
                    healthy_targets_alarm_args(
                        "network",
                        lb.load_balancer.arn_suffix,
                        group.arn_suffix,
                        s.app.desired_count,
                        foundation.alerts.topic.arn,
                    ),
                    f"Port {port} of {s.domain}",
                    self,
                )
        self._renewal(name, foundation, roles["renewal"], values, efs, tasks_sg, service)
        self.endpoint = pulumi.Output.from_input(" ".join(app_endpoints(s)))
        self.nlb_dns_name = lb.load_balancer.dns_name
        self.service_name = service.name
        self.service_arn = service.arn
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
        # Generated once, at create, by pulumi-random and kept in the stack's state: no AWS
        # call on every preview (secretsmanager:GetRandomPassword, which a read-only role
        # may lack). The rules of that call as the program made it before (32 characters,
        # no punctuation, one of each kind at least): Neo4j's image takes what follows the
        # first "/" of NEO4J_AUTH and hands it to neo4j-admin on a command line, where
        # letters and digits need no quoting. A stack deployed with the call keeps the
        # password it wrote then (see write_once_secret_version).
        password = random.RandomPassword(
            f"{name}-auth",
            length=NEO4J_PASSWORD_LENGTH,
            special=False,
            min_lower=1,
            min_upper=1,
            min_numeric=1,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The database keeps its first password: no later `up` writes the secret again.
        version = write_once_secret_version(
            f"{name}-auth",
            auth.id,
            password.result.apply(lambda p: f"neo4j/{p}"),
            pulumi.ResourceOptions(parent=self, retain_on_delete=keep),
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
        instances_name = f"{name}-instances"
        volume = self.data_volume.volume
        subnet_id = self._instance_subnet(foundation)
        # The data directory and the copier's output belong to the app's non-root user
        # (Neo4j's image: 7474:7474), as which both the copier and the app run.
        owner = app_user(s)
        before_agent = pulumi.Output.all(volume.id, cluster.region).apply(
            lambda v: (
                data_volume_user_data(v[0], v[1], DATA_MOUNT_POINT, DATA_HOST_DIR, owner)
                + host_directory_user_data(CERTIFICATES_HOST_DIR, owner)
            )
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
                kms_key_arn=s.app.data_volume_kms_key_arn,
            )
        )
        instances = ContainerInstances(
            instances_name,
            ContainerInstancesArgs(
                cluster_name=cluster.cluster.name,
                subnet_id=subnet_id,
                # The root volume too: an account may allow only its own key.
                kms_key_arn=s.app.data_volume_kms_key_arn,
                security_group_id=tasks_sg_id,
                # The group registers the instance with every target group (port 80 too,
                # so the NLB can forward the ACME request while certbot listens).
                target_group_arns=[g.arn for g in lb.target_groups.values()],
                instance_type=s.app.instance_type,
                responder_port=HTTP01_RESPONDER_PORT if s.acme.challenge == "http-01" else None,
                before_agent=before_agent,
                instance_policy=instance_policy,
                # certbot (non-root) answers HTTP-01 on the instance's port 80 itself.
                unprivileged_port_start=HTTP01_PORT if s.acme.challenge == "http-01" else None,
                # An instance that cannot attach the volume marks itself Unhealthy.
                group_policy=lambda group_name: pulumi.Output.all(
                    partition.partition, cluster.region, cluster.account_id, group_name
                ).apply(
                    lambda v: mark_unhealthy_policy_document(
                        partition=v[0], region=v[1], account_id=v[2], group_name=v[3]
                    )
                ),
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
            # The ECS-optimized AMI's agent (1.50.2 or later) carries the SSM agent's
            # binaries ECS Exec runs in the container (components/exec_command.py).
            **({"enable_execute_command": True} if s.app.enable_execute_command else {}),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*ready, *lb.listeners, instances.group]
            ),
        )

    def _instance_subnet(self, foundation: Foundation) -> pulumi.Output[str]:
        """The private subnet in the data volume's zone, as the volume really is.

        Stops the program (preview included) when the configuration asks for another
        volume than the one that exists, or when no private subnet is left in its zone:
        replacing the volume would start the database on a blank disk.
        """
        s, volume = self.settings, self.data_volume.volume
        zonal = foundation.network.private_zonal_subnets

        def pick(v: list) -> str:
            volume_id, zone, kms_key_id, *flat = v
            problem = kept_volume_problem(
                volume_id=volume_id,
                zone=zone,
                kms_key_id=kms_key_id or None,
                wanted_zone=s.app.data_volume_zone,
                wanted_kms_key_arn=s.app.data_volume_kms_key_arn,
            )
            if problem:
                raise ConfigError(*problem)
            pairs = list(zip(flat[0::2], flat[1::2], strict=True))
            subnet = subnet_in_zone(zone, pairs)
            if subnet is None:
                raise ConfigError(
                    "app.dataVolumeZone" if s.app.data_volume_zone else "network.privateSubnetIds",
                    f"no private subnet is in {zone}, the zone of the data volume "
                    f"{volume_id}: keep one there, or move the data "
                    "(docs/topologies/nlb-certbot.md, Restore or move the data)",
                )
            return subnet

        return pulumi.Output.all(
            volume.id,
            volume.availability_zone,
            volume.kms_key_id,
            *[x for z in zonal for x in (z.subnet_id, z.availability_zone)],
        ).apply(pick)

    def _issuer(self, name, foundation, role, values, efs, tasks_sg) -> list[pulumi.Resource]:
        """certbot whenever a task of the app starts: an EventBridge rule runs the issuer
        task. Returns what the service waits for, so that its first task finds the rule in
        place."""
        s, cluster = self.settings, foundation.cluster
        child = pulumi.ResourceOptions(parent=self)
        family = physical_name("nlb-certbot-issuer")
        launch_type = "EC2" if self.on_ec2 else "FARGATE"
        task = task_definition(
            f"{name}-issuer",
            family=family,
            cpu=256,
            memory=512,
            cluster=cluster,
            container_definitions=values.apply(
                lambda v: container_definitions_json(issuer_containers(s, v))
            ),
            parent=self,
            task_role_arn=role.arn,
            volumes=pulumi.Output.all(efs_volume_input(efs)),
            launch_type=launch_type,
        )
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        app_family = physical_name("nlb-certbot")
        rule = aws.cloudwatch.EventRule(
            f"{name}-issuer",
            description="A task of the app starts: run certbot in the issuer task",
            event_pattern=pulumi.Output.all(
                cluster.cluster.arn, partition.partition, cluster.region, cluster.account_id
            ).apply(
                lambda v: issuer_trigger_pattern(
                    v[0], f"arn:{v[1]}:ecs:{v[2]}:{v[3]}:task-definition/{app_family}:"
                )
            ),
            opts=child,
        )
        events_role = aws.iam.Role(
            f"{name}-issuer-events",
            description="EventBridge: start the certificate issuer task",
            assume_role_policy=cluster.account_id.apply(
                lambda a: assume_role_policy("events.amazonaws.com", a)
            ),
            opts=child,
        )
        run = aws.iam.RolePolicy(
            f"{name}-issuer-events",
            name="run-issuer-task",
            role=events_role.id,
            policy=pulumi.Output.all(
                task.arn, cluster.cluster.arn, role.arn, cluster.execution_role.arn
            ).apply(lambda v: policy_document(issuer_trigger_statements(v[0], v[1], [v[2], v[3]]))),
            opts=child,
        )
        ecs_target: dict = {
            "task_definition_arn": task.arn,
            "task_count": 1,
            "launch_type": launch_type,
        }
        if not self.on_ec2:
            ecs_target["network_configuration"] = {
                "subnets": foundation.network.private_subnet_ids,
                "security_groups": [tasks_sg.id],
                "assign_public_ip": False,
            }
        target = aws.cloudwatch.EventTarget(
            f"{name}-issuer",
            rule=rule.name,
            arn=cluster.cluster.arn,
            role_arn=events_role.arn,
            ecs_target=ecs_target,
            # A run that starts after the copier stopped waiting helps nobody.
            retry_policy={
                "maximum_event_age_in_seconds": COPIER_WAIT_SECONDS,
                "maximum_retry_attempts": 10,
            },
            # A task ECS cannot place starts nothing and sends no event: this is its trace.
            dead_letter_config={"arn": foundation.alerts.dead_letter_arn},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[run]),
        )
        # A failed issue keeps a new task of the app waiting, then failing: say why.
        foundation.alerts.failed_task_rule(
            f"{name}-issuer-failed",
            cluster.cluster.arn,
            family,
            "certificate issuer",
            parent=self,
        )
        return [task, rule, run, target]

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
        # The deploy hook restarts the app once certbot issued (task_contents/renewal_hook.py).
        aws.iam.RolePolicy(
            f"{name}-renewal-restart",
            name="restart-app-service",
            role=role.id,
            policy=service_arn(cluster.cluster.arn, service.name).apply(
                lambda arn: policy_document(
                    [Statement("RestartAppService", ["ecs:UpdateService"], [arn])]
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            f"{name}-renewal-expiry",
            name="report-certificate-expiry",
            role=role.id,
            policy=policy_document([report_expiry_statement()]),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Every run reports the days left; fewer than a renewal leaves means runs fail.
        foundation.alerts.certificate_metric_alarm(
            f"{name}-certificate-expiry",
            s.domain,
            expiry_threshold_days(s),
            "the nlb-certbot renewal task",
            self,
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
                dead_letter_arn=foundation.alerts.dead_letter_arn,
                subnet_ids=None if self.on_ec2 else foundation.network.private_subnet_ids,
                security_group_ids=[] if self.on_ec2 else [tasks_sg.id],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[service]),
        )


def host_directory_user_data(path: str, owner: str) -> str:
    """A user data line creating a host directory only `owner` (uid:gid) may use."""
    uid, _, gid = owner.partition(":")
    if not (uid.isdigit() and gid.isdigit()) or not path.startswith("/") or " " in path:
        raise ValueError(f"need an absolute path and a numeric uid:gid, got {path!r} {owner!r}")
    return f"install -d -m 0700 -o {uid} -g {gid} {path}\n"


def efs_volume_input(efs: EncryptedFileSystem) -> pulumi.Output[dict]:
    return pulumi.Output.all(efs.file_system.id, efs.access_point.id).apply(
        lambda v: efs_volume("letsencrypt", v[0], v[1])
    )


def app_endpoints(s: Settings) -> list[str]:
    return [
        f"bolt+s://{s.domain}:{p}" if p == 7687 else f"https://{s.domain}:{p}" for p in s.app.ports
    ]


def nlb_certbot_args(values: dict[str, Any]) -> NlbCertbotArgs:
    """A stack's configuration of nlb-certbot as NlbCertbotArgs, leaving out the
    foundation's keys (this program builds its foundation itself)."""
    return NlbCertbotArgs(**args_from_config(values, NlbCertbotArgs, skip=FOUNDATION_KEYS))


def build(settings: Settings, foundation: Foundation) -> TopologyResult:
    """This program's nlb-certbot: its configuration as NlbCertbotArgs, on its own
    foundation (the component parses the arguments again, as alb-envoy)."""
    topology = NlbCertbot("nlb-certbot", nlb_certbot_args(raw_config()), foundation=foundation)
    s = settings
    endpoints = app_endpoints(s)
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
    outputs.update(service_outputs({"app": topology.service}))
    # Where the app's initial credentials are (NEO4J_AUTH, neo4j/<password>): read it with
    # `aws secretsmanager get-secret-value`; the value is never a stack output.
    outputs["authSecretArn"] = topology.auth_secret_arn
    if s.app.enable_execute_command:
        outputs["execCommand"] = topology.cluster_name.apply(lambda c: exec_command_line(c, "app"))
    if topology.data_volume is not None:
        outputs["dataVolumeId"] = topology.data_volume.volume.id
        # Changing it (subnets, VPC) replaces the volume: see app.dataVolumeSnapshotId.
        outputs["dataVolumeZone"] = topology.data_volume.volume.availability_zone
    if s.acme.challenge == "http-01" and s.hosted_zone_id is None and s.app.desired_count == 0:
        outputs["nextSteps"] = topology.load_balancer.dns_name.apply(
            lambda dns: (
                f"Point {s.domain} at {dns} (CNAME, or an alias A record), wait until "
                f"`dig +short {s.domain}` answers, then start the app: "
                "pulumi config set --path ecs-tls:app.desiredCount 1 && pulumi up"
            )
        )
    return TopologyResult(component=topology, endpoint=" ".join(endpoints), outputs=outputs)

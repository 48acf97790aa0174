"""Topology `direct-task`: Fargate tasks with public IPs, each at `https://<taskId>.<domain>`.

    client --TLS (*.<domain>, Let's Encrypt)--> task public IP :8443 Envoy --HTTP 127.0.0.1--> app

No load balancer and no NAT gateway: tasks run in the public subnets with a public IP, and
only Envoy's TLS port is open, to `allowedCidrs`.

- Names: an EventBridge rule on "ECS Task State Change" (this cluster, this task family,
  service tasks and RunTask tasks alike) invokes `functions/task_dns.py`, which keeps
  `A <taskId>.<domain>` and an ownership TXT; a reconciler runs every few minutes.
- Certificate: one wildcard `*.<domain>` for every task, obtained over DNS-01 by a scheduled
  standalone certbot task (the project's one certbot command, stock `certbot/dns-route53`
  image). Its state lives in S3 between runs; its deploy hook writes chain and key to one
  Secrets Manager secret. No task is replaced: a refresher container in each task polls the
  secret (task role, that secret only) and swaps the files Envoy serves through SDS, so open
  connections stay up and RunTask tasks get the new certificate too.
- Runs: every hour (`RETRY_EVERY`): certbot orders only when the
  certificate is missing or due, so a failed first issuance or renewal is retried within the
  hour at the cost of one short task. The hourly schedule's name carries the ACME server, so
  a new server makes a new schedule, which Scheduler runs at once.
- First deploy: the secret starts with a placeholder from pulumi-tls (kept out of later `up`s
  by `ignore_changes`); the schedule has no start date, so Scheduler runs it right after
  it is created, and that run replaces the placeholder; tasks load it within minutes.
- Told: every run reports the days left on the secret's certificate (0 for the placeholder)
  to the ECS-TLS metric, and an alarm watches it; a failed run has the failed-task alert.

Departures from the seed: certbot instead of a hand-written ACME Lambda; the ACME account key
in S3 (encrypted, TLS-only), not an SSM String; renewal every sixth of the lifetime, not
monthly; records carry an ownership TXT and a reconciler removes orphans.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alerts import CERTIFICATE_METRIC_NAMESPACE, running_tasks_alarm_args
from components.app_access import allow_app_secrets, attach_policies
from components.autoscaling import serving_floor
from components.certificates import (
    PrivateChain,
    PrivateChainArgs,
    secret_document,
)
from components.exec_command import exec_command_line
from components.firewall import allow_tcp
from components.iam import Statement, assume_role_policy, policy_document
from components.lambda_function import PythonFunction, PythonFunctionArgs
from components.naming import physical_name
from components.renewal import (
    ScheduledTask,
    ScheduledTaskArgs,
)
from components.service import (
    fargate_service,
    service_outputs,
    task_definition,
    tasks_security_group,
)
from components.sidecar_task import (
    TLS_VOLUME,
    RefreshedCertificate,
    SidecarTask,
    sidecar_containers,
)
from components.state_bucket import StateBucket, StateBucketArgs
from components.write_once_secret import write_once_secret_version
from constants.config import ACME_PROFILE_LIFETIMES
from settings import Settings
from settings.readers import raw_config
from task_contents.acme_state import PLACEHOLDER_ISSUER_ENV, STATE_KMS_KEY_ENV
from task_contents.certbot import (
    RENEWAL_IMAGE,
    SHELL_ENTRY_POINT,
    CertbotSpec,
    s3_state_environment,
    s3_state_renewal_command,
)
from task_contents.container_definitions import (
    Container,
    LogSettings,
    container_definitions_json,
)
from topologies.args import DirectTaskArgs, args_from_config
from topologies.base import Foundation, TopologyResult, component_type
from topologies.foundation import FOUNDATION_KEYS, component_settings, existing_foundation
from topologies.nlb_certbot import route53_statements

LETSENCRYPT = "/etc/letsencrypt"
STATE_KEY = "letsencrypt/state.tar.gz"
RECONCILE_EVERY = "rate(5 minutes)"
# Hourly renewal runs: certbot contacts the CA for an order only when the lineage is missing
# or due (otherwise it checks the CA's renewal information, which Let's Encrypt exempts from
# its rate limits), so a run that is not due costs one short Fargate task. A failing order is
# retried once an hour, below Let's Encrypt's 5 failed validations per hostname per hour.
RETRY_EVERY = "rate(1 hour)"
# The placeholder's CA organization: the renewal reports 0 days while the secret holds it.
PLACEHOLDER_ORGANIZATION = "ecs-tls placeholder"
# What a task asks to learn its own ID (and so its name): the task metadata endpoint v4, whose
# base URL ECS puts in every container's environment (ECS developer guide, "Task metadata
# endpoint version 4"); `TaskARN` in its answer ends with the task ID.
TASK_METADATA_PATH = "${ECS_CONTAINER_METADATA_URI_V4}/task"


def family() -> str:
    return physical_name("direct-task")


def renewal_family() -> str:
    return physical_name("direct-task-renewal")


def certificate_name(s: Settings) -> str:
    """The wildcard's first (only) name: the metric's Certificate dimension."""
    return f"*.{s.domain}"


def expiry_threshold_days(s: Settings) -> int:
    """Alarm below this many days: certbot renews once a third of the lifetime is left and
    runs hourly, so two days under that mean a day or more of failed runs."""
    lifetime = ACME_PROFILE_LIFETIMES.get(s.acme.profile or "tlsserver", 45)
    return max(1, lifetime // 3 - 2)


def server_digest(directory_url: str) -> str:
    """A short stable digest of the ACME server, for the hourly schedule's name."""
    return hashlib.sha256(directory_url.encode()).hexdigest()[:8]


def certbot_spec(s: Settings) -> CertbotSpec:
    return CertbotSpec(
        email=s.acme.email or "",
        domain=s.domain,
        directory_url=s.acme.directory_url,
        challenge="dns-01",
        config_dir=LETSENCRYPT,
        preferred_profile=s.acme.profile,
        wildcard=True,
    )


# --------------------------------------------------------------------------- containers


@dataclass(frozen=True)
class RenewalValues:
    bucket: str
    secret_arn: str
    topic_arn: str
    log_group: str
    region: str
    state_key_arn: str


def renewal_containers(s: Settings, v: RenewalValues) -> list[Container]:
    spec = certbot_spec(s)
    return [
        Container(
            name="certbot",
            image=RENEWAL_IMAGE,
            entry_point=list(SHELL_ENTRY_POINT),
            command=s3_state_renewal_command(spec),
            environment={
                **s3_state_environment(
                    spec,
                    bucket=v.bucket,
                    key=STATE_KEY,
                    secret_arn=v.secret_arn,
                    topic_arn=v.topic_arn,
                ),
                STATE_KMS_KEY_ENV: v.state_key_arn,
                PLACEHOLDER_ISSUER_ENV: PLACEHOLDER_ORGANIZATION,
            },
            log=LogSettings(v.log_group, v.region, "direct-task-renewal"),
        )
    ]


# --------------------------------------------------------------------------- IAM and events


def task_record_pattern(domain: str) -> str:
    """The IAM StringLike pattern of a per-task name: one 32-character label under `domain`
    (ECS task IDs in the long ARN format are 32 hex characters)."""
    return "?" * 32 + f".{domain}"


def task_dns_statements(
    partition: str, region: str, account: str, zone_id: str, domain: str, cluster_arn: str
) -> list[Statement]:
    """What `functions/task_dns.py` calls, each on the narrowest resource AWS allows."""
    cluster_name = cluster_arn.rsplit("/", 1)[-1]
    return [
        Statement(
            "ReadZone",
            ["route53:ListResourceRecordSets"],
            [f"arn:{partition}:route53:::hostedzone/{zone_id}"],
        ),
        # Only `<task ID>.<domain>`, only A and TXT (Route53 developer guide, "Using IAM
        # policy conditions for fine-grained access control"; names are compared lower-case
        # without the final dot). IAM has no character classes: 32 `?` allow one 32-character
        # name, and the Deny refuses a second label or an underscore inside it. So neither an
        # `_acme-challenge` name nor the wildcard is in reach: this role cannot obtain a
        # certificate. The function itself writes 32-hex task IDs only.
        Statement(
            "ChangeTaskRecords",
            ["route53:ChangeResourceRecordSets"],
            [f"arn:{partition}:route53:::hostedzone/{zone_id}"],
            condition={
                "ForAllValues:StringLike": {
                    "route53:ChangeResourceRecordSetsNormalizedRecordNames": [
                        task_record_pattern(domain)
                    ],
                },
                "ForAllValues:StringEquals": {
                    "route53:ChangeResourceRecordSetsRecordTypes": ["A", "TXT"],
                    "route53:ChangeResourceRecordSetsActions": ["UPSERT", "DELETE"],
                },
            },
        ),
        Statement(
            "OnlyOneTaskLabel",
            ["route53:ChangeResourceRecordSets"],
            [f"arn:{partition}:route53:::hostedzone/{zone_id}"],
            effect="Deny",
            condition={
                "ForAnyValue:StringLike": {
                    "route53:ChangeResourceRecordSetsNormalizedRecordNames": [
                        f"*.*.{domain}",
                        f"*_*.{domain}",
                    ],
                },
            },
        ),
        Statement(
            "ReadTaskAddress",
            ["ec2:DescribeNetworkInterfaces"],
            ["*"],
            why_wildcard="DescribeNetworkInterfaces has no resource-level permission",
        ),
        Statement(
            "ListClusterTasks",
            ["ecs:ListTasks"],
            ["*"],
            why_wildcard="ListTasks is scoped by the ecs:cluster condition, not a resource",
            condition={"ArnEquals": {"ecs:cluster": cluster_arn}},
        ),
        Statement(
            "DescribeClusterTasks",
            ["ecs:DescribeTasks"],
            [f"arn:{partition}:ecs:{region}:{account}:task/{cluster_name}/*"],
            condition={"ArnEquals": {"ecs:cluster": cluster_arn}},
        ),
    ]


def task_state_pattern(cluster_arn: str, region: str, account: str, partition: str) -> str:
    """The state changes of a task of this family in this cluster that change its name,
    started by the service or by RunTask (matched on the task definition ARN, not the
    `group`, which differs): running (both statuses RUNNING), or on its way out (desired
    STOPPED, whatever the last status, so a task whose container exited is caught too).

    The provisioning and pending changes of every start would each invoke the function for
    nothing; every invocation competes for Route53's per-account request rate."""
    prefix = f"arn:{partition}:ecs:{region}:{account}:task-definition/{family()}:"
    return json.dumps(
        {
            "source": ["aws.ecs"],
            "detail-type": ["ECS Task State Change"],
            "detail": {
                "clusterArn": [cluster_arn],
                "taskDefinitionArn": [{"prefix": prefix}],
                "$or": [
                    {"lastStatus": ["RUNNING"], "desiredStatus": ["RUNNING"]},
                    {"desiredStatus": ["STOPPED"]},
                ],
            },
        },
        sort_keys=True,
    )


def task_statements(secret_arn: str) -> list[Statement]:
    """The service's task role: the refresher reads the certificate secret, nothing else."""
    return [Statement("ReadCertificate", ["secretsmanager:GetSecretValue"], [secret_arn])]


def renewal_statements(bucket_arn: str, secret_arn: str, topic_arn: str) -> list[Statement]:
    return [
        # ListBucket makes a missing state a 404 (first run) instead of a 403.
        Statement("FindState", ["s3:ListBucket"], [bucket_arn]),
        Statement(
            "ReadWriteState", ["s3:GetObject", "s3:PutObject"], [f"{bucket_arn}/{STATE_KEY}"]
        ),
        # Read to compare (publish only what changed), write the new certificate.
        Statement(
            "PublishCertificate",
            ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
            [secret_arn],
        ),
        Statement("NotifyRenewal", ["sns:Publish"], [topic_arn]),
        # PutMetricData has no resource type (Service Authorization Reference, CloudWatch):
        # the cloudwatch:namespace condition holds it to the project's namespace.
        Statement(
            "ReportExpiry",
            ["cloudwatch:PutMetricData"],
            ["*"],
            why_wildcard="PutMetricData has no resource type; scoped by cloudwatch:namespace",
            condition={"StringEquals": {"cloudwatch:namespace": CERTIFICATE_METRIC_NAMESPACE}},
        ),
    ]


# --------------------------------------------------------------------------- component


class DirectTask(pulumi.ComponentResource):
    """direct-task: public Fargate tasks with per-task names, Envoy TLS and a renewed wildcard."""

    endpoint: pulumi.Output[str]
    """The URL of one task: https://<taskId>.<domain>:<envoy port>."""
    service_name: pulumi.Output[str]
    """Name of the ECS service."""
    service_arn: pulumi.Output[str]
    """ARN of the ECS service."""
    certificate_secret_arn: pulumi.Output[str]
    """ARN of the Secrets Manager secret holding the wildcard certificate and key."""

    def __init__(
        self,
        name: str,
        args: DirectTaskArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        foundation: Foundation | None = None,
    ):
        """`foundation`: this program's shared network, cluster and alerts (Python only);
        without it, args must name an existing VPC, public subnets and cluster."""
        s = component_settings(
            "direct-task",
            name,
            args,
            DirectTaskArgs,
            foundation,
            ("vpc_id", "public_subnet_ids", "cluster"),
        )
        super().__init__(component_type("direct_task", "DirectTask"), name, None, opts)
        if foundation is None:
            foundation = existing_foundation(name, self, s, args)
        child = pulumi.ResourceOptions(parent=self)
        network, cluster, alerts = (
            foundation.network,
            foundation.cluster,
            foundation.alerts,
        )
        zone_id = s.hosted_zone_id or ""
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition

        # ------------------------------------------------------------ certificate secret
        placeholder = PrivateChain(
            f"{name}-placeholder",
            PrivateChainArgs(domain=f"*.{s.domain}", organization=PLACEHOLDER_ORGANIZATION),
            opts=child,
        )
        # No expiry notice for the placeholder: every renewal run reports 0 days for it to
        # the certificate metric, whose alarm (below) fires while it is still served.
        self.secret = aws.secretsmanager.Secret(
            f"{name}-certificate",
            description=f"Wildcard certificate *.{s.domain} for direct-task's Envoy (ecs-tls)",
            opts=child,
        )
        initial = pulumi.Output.secret(
            pulumi.Output.all(
                placeholder.certificate_pem,
                placeholder.ca_certificate_pem,
                placeholder.private_key_pem,
            ).apply(lambda v: secret_document(v[0], v[1], v[2]))
        )
        # The renewal task owns the value after the first deploy: a later `up` must never
        # put the placeholder back over the real certificate, nor move its stages.
        version = write_once_secret_version(
            f"{name}-certificate",
            self.secret.id,
            initial,
            child,
            also_ignore=["version_stages"],
        )
        # The refresher in each task reads the secret while the task runs: the task role,
        # not the execution role (ECS injects nothing at start).
        task_role = aws.iam.Role(
            f"{name}-task",
            description="direct-task tasks: read the certificate secret (the refresher)",
            assume_role_policy=cluster.account_id.apply(
                lambda a: assume_role_policy("ecs-tasks.amazonaws.com", a)
            ),
            opts=child,
        )
        read_secret = aws.iam.RolePolicy(
            f"{name}-read-certificate",
            name="read-certificate",
            role=task_role.id,
            policy=self.secret.arn.apply(lambda arn: policy_document(task_statements(arn))),
            opts=child,
        )
        exec_ready = (
            [cluster.allow_execute_command(f"{name}-exec", task_role, self)]
            if s.app.enable_execute_command
            else []
        )

        # The refresher needs this role, so the app's policies join it (one task role
        # per task); app.taskRoleArn is refused here (settings/app_secrets.py).
        app_ready: list[pulumi.Resource] = attach_policies(
            f"{name}-task", task_role, s.app.access, self
        )
        read_app_secrets = allow_app_secrets(name, cluster.execution_role, [s.app.access], self)
        if read_app_secrets is not None:
            app_ready.append(read_app_secrets)

        # ------------------------------------------------------------ tasks
        self.tasks_security_group = tasks_sg = tasks_security_group(
            f"{name}-tasks",
            network.vpc_id,
            "direct-task: the Envoy TLS port from allowedCidrs",
            parent=self,
        )
        for i, cidr in enumerate(s.allowed_cidrs):
            allow_tcp(
                f"{name}-tls-in-{i}",
                tasks_sg.id,
                s.envoy.port,
                self,
                description=f"Envoy TLS listener from {cidr}",
                cidr=cidr,
            )
        containers = pulumi.Output.all(
            self.secret.arn, cluster.log_group.name, cluster.region
        ).apply(
            lambda v: container_definitions_json(
                sidecar_containers(
                    SidecarTask(
                        app=s.app,
                        envoy=s.envoy,
                        chain_value_from=None,
                        key_value_from=None,
                        # No fingerprint: a new certificate reaches running tasks.
                        refreshed=RefreshedCertificate(secret_arn=v[0]),
                        log=LogSettings(v[1], v[2], "direct-task"),
                        # Clients connect to the task itself: X-Forwarded-For is theirs.
                        trusted_proxy_hops=0,
                    )
                )
            )
        )
        self.task_definition = task = task_definition(
            name,
            family=family(),
            cpu=s.app.cpu,
            memory=s.app.memory,
            cluster=cluster,
            container_definitions=containers,
            parent=self,
            task_role_arn=task_role.arn,
            # Task storage shared by the refresher and Envoy (a Fargate bind mount).
            volumes=[{"name": TLS_VOLUME}],
        )
        # ------------------------------------------------------------ per-task DNS
        self.dns = PythonFunction(
            f"{name}-dns",
            PythonFunctionArgs(
                module="task_dns",
                description=f"direct-task: <taskId>.{s.domain} for each running task",
                log_retention_days=s.log_retention_days,
                statements=pulumi.Output.all(
                    partition, cluster.region, cluster.account_id, cluster.cluster.arn
                ).apply(lambda v: task_dns_statements(v[0], v[1], v[2], zone_id, s.domain, v[3])),
                environment={
                    "HOSTED_ZONE_ID": zone_id,
                    "DOMAIN": s.domain,
                    "CLUSTER_ARN": cluster.cluster.arn,
                    "TASK_FAMILY": family(),
                },
                timeout=120,
                memory_size=128,
            ),
            opts=child,
        )
        function = self.dns.function
        state_rule = aws.cloudwatch.EventRule(
            f"{name}-task-state",
            description=f"Task state changes of {family()}: keep their DNS names",
            event_pattern=pulumi.Output.all(
                cluster.cluster.arn, cluster.region, cluster.account_id, partition
            ).apply(lambda v: task_state_pattern(*v)),
            opts=child,
        )
        reconcile_rule = aws.cloudwatch.EventRule(
            f"{name}-reconcile",
            description="Add missing task DNS names and remove orphans",
            schedule_expression=RECONCILE_EVERY,
            opts=child,
        )
        # Destroy and switch: the purge runs when this invocation is deleted. Pulumi deletes
        # dependents first, so the service (which ECS drains: its tasks stop) and the rules'
        # targets go before it, and the function after it; then no event can bring a name
        # back. `lifecycle_scope = "CRUD"` invokes on delete too, adding `tf.action`
        # (pulumi-aws, aws.lambda_.Invocation, "CRUD Lifecycle Management").
        purge = aws.lambda_.Invocation(
            f"{name}-dns-purge",
            function_name=function.name,
            input=json.dumps({"purge": True}),
            lifecycle_scope="CRUD",
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.dns.ready)),
        )
        dns_machinery: list[pulumi.Resource] = [function, state_rule, reconcile_rule, purge]
        for rule_name, rule, target_input in (
            (f"{name}-task-state", state_rule, None),
            (f"{name}-reconcile", reconcile_rule, '{"reconcile": true}'),
        ):
            permission = aws.lambda_.Permission(
                rule_name,
                action="lambda:InvokeFunction",
                function=function.name,
                principal="events.amazonaws.com",
                source_arn=rule.arn,
                opts=child,
            )
            target = aws.cloudwatch.EventTarget(
                rule_name,
                rule=rule.name,
                arn=function.arn,
                input=target_input,
                # Events outlive a short Lambda outage; the reconciler covers the rest.
                retry_policy={"maximum_event_age_in_seconds": 3600, "maximum_retry_attempts": 20},
                # What still fails (the function gone, its permission missing) is told.
                dead_letter_config={"arn": alerts.dead_letter_arn},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[permission, purge]),
            )
            dns_machinery += [permission, target]
        # Failures are told. Errors: a broken reconciler fails every 5 minutes, so two
        # periods running is a fault, not one event that failed all its retries. Throttles:
        # Lambda retries throttled asynchronous events for hours, so only throttling that
        # lasts 15 minutes means names are falling behind.
        for metric, periods, what in (
            ("Errors", 2, "failed in two 5-minute periods running"),
            ("Throttles", 3, "was throttled for 15 minutes"),
        ):
            alerts.function_alarm(
                f"{name}-dns-{metric.lower()}",
                function.name,
                metric,
                periods,
                (
                    f"The direct-task DNS function {what}: task names under {s.domain} may "
                    "be missing or left behind. Its log group says why."
                ),
                self,
            )

        self.public_subnet_ids = network.public_subnet_ids
        self.service = fargate_service(
            name,
            cluster=cluster,
            task_definition=task,
            desired_count=s.app.desired_count,
            capacity=s.app.capacity_strategy,
            autoscaling=s.app.autoscaling,
            # Public subnets and a public IP: the task is the endpoint (and pulls its images
            # and reads its secret without NAT).
            subnet_ids=network.public_subnet_ids,
            security_group_ids=[tasks_sg.id],
            assign_public_ip=True,
            parent=self,
            # Deleted before the DNS machinery: the last tasks' STOPPED events still find
            # a function to delete their names, and the purge comes after them.
            depends_on=[read_secret, version, *dns_machinery, *app_ready, *exec_ready],
            enable_execute_command=s.app.enable_execute_command,
        )
        floor = serving_floor(s.app.desired_count, s.app.autoscaling)
        if floor > 0:
            # No load balancer counts healthy targets: Container Insights counts the tasks.
            alerts.serving_alarm(
                f"{name}-running-tasks",
                running_tasks_alarm_args(
                    cluster.cluster.name, self.service.name, floor, alerts.topic.arn
                ),
                f"The direct-task service of {s.domain}",
                self,
            )

        # ------------------------------------------------------------ wildcard renewal
        role = aws.iam.Role(
            f"{name}-renewal-task",
            description="direct-task renewal task: DNS-01, ACME state, certificate secret",
            assume_role_policy=cluster.account_id.apply(
                lambda a: assume_role_policy("ecs-tasks.amazonaws.com", a)
            ),
            opts=child,
        )
        # The renewal task is the only reader and writer of the ACME state (the service's
        # tasks read the certificate from the secret): only its role may use the state's key.
        self.state = StateBucket(
            f"{name}-acme-state",
            StateBucketArgs(
                description=f"certbot state of *.{s.domain} (ecs-tls direct-task)",
                reader_arns=[role.arn],
            ),
            opts=child,
        )
        bucket = self.state.bucket
        dns01 = aws.iam.RolePolicy(
            f"{name}-renewal-route53",
            name="certbot-dns-01",
            role=role.id,
            # A wildcard's challenge is at _acme-challenge.<domain> too (RFC 8555 8.4).
            policy=partition.apply(
                lambda p: policy_document(route53_statements(zone_id, s.domain, p))
            ),
            opts=child,
        )
        publish = aws.iam.RolePolicy(
            f"{name}-renewal-publish",
            name="acme-state-and-certificate",
            role=role.id,
            policy=pulumi.Output.all(bucket.arn, self.secret.arn, alerts.topic.arn).apply(
                lambda v: policy_document(renewal_statements(*v))
            ),
            opts=child,
        )
        renewal_values = pulumi.Output.all(
            bucket.bucket,
            self.secret.arn,
            alerts.topic.arn,
            cluster.log_group.name,
            cluster.region,
            self.state.key.arn,
        ).apply(lambda v: RenewalValues(*v))
        self.renewal_task = renewal_task = task_definition(
            f"{name}-renewal",
            family=renewal_family(),
            cpu=256,
            memory=512,
            cluster=cluster,
            container_definitions=renewal_values.apply(
                lambda v: container_definitions_json(renewal_containers(s, v))
            ),
            parent=self,
            task_role_arn=role.arn,
        )
        self.renewal_security_group = renewal_sg = tasks_security_group(
            f"{name}-renewal",
            network.vpc_id,
            "direct-task renewal: HTTPS out to the ACME server and AWS APIs, nothing in",
            parent=self,
        )
        # Failure: any renewal task that stops with a non-zero exit code, or never starts.
        alerts.failed_task_rule(
            f"{name}-renewal-failed",
            cluster.cluster.arn,
            renewal_family(),
            "certificate renewal",
            self,
        )
        # One schedule, hourly: certbot asks the CA only when renewal is due, so a failed
        # first issuance or renewal is retried within the hour at the cost of one short
        # task. Its name carries the ACME server: a new server makes a new schedule, and a
        # rate schedule without a start date runs right after it is created (EventBridge
        # Scheduler User Guide, "Schedule types"), so the first deploy and a change of
        # acme.server are served at once.
        self.schedule = ScheduledTask(
            f"{name}-renewal-hourly-{server_digest(s.acme.directory_url)}",
            ScheduledTaskArgs(
                cluster_arn=cluster.cluster.arn,
                task_definition=renewal_task,
                interval_days=1,
                schedule_expression=RETRY_EVERY,
                launch_type="FARGATE",
                pass_role_arns=[role.arn, cluster.execution_role.arn],
                dead_letter_arn=alerts.dead_letter_arn,
                subnet_ids=network.public_subnet_ids,
                security_group_ids=[renewal_sg.id],
                assign_public_ip=True,
                flexible_window_minutes=None,
            ),
            # The first run needs its rights and the bucket ready.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[dns01, publish, *self.state.ready]
            ),
        )
        alerts.certificate_metric_alarm(
            f"{name}-certificate-expiry",
            certificate_name(s),
            expiry_threshold_days(s),
            "the direct-task renewal task",
            self,
        )
        self.endpoint = pulumi.Output.from_input(f"https://<taskId>.{s.domain}:{s.envoy.port}")
        self.service_name = self.service.name
        self.service_arn = self.service.arn
        self.certificate_secret_arn = self.secret.arn
        self.outputs = outputs(s, self)
        self.outputs.update(service_outputs({"app": self.service}))
        if s.app.enable_execute_command:
            self.outputs["execCommand"] = cluster.cluster.name.apply(
                lambda c: exec_command_line(c, "app")
            )
        self.register_outputs(
            {
                "serviceName": self.service.name,
                "certificateSecretArn": self.secret.arn,
                "acmeStateBucket": bucket.bucket,
            }
        )


def outputs(s: Settings, t: DirectTask) -> dict[str, pulumi.Input]:
    port = s.envoy.port
    list_tasks = pulumi.Output.concat(
        "aws ecs list-tasks --cluster ",
        t.service.cluster,
        f" --family {family()} --desired-status RUNNING --query 'taskArns[]' --output text"
        " | tr '\\t' '\\n' | sed 's#.*/##'",
    )
    return {
        "taskHostnamePattern": f"<taskId>.{s.domain}:{port}",
        "listTaskHostnames": pulumi.Output.concat(list_tasks, f" | sed 's#$#.{s.domain}#'"),
        "taskMetadataPath": (
            f"{TASK_METADATA_PATH} (TaskARN ends with the task ID; the name is <taskId>.{s.domain})"
        ),
        "certificateSecretArn": t.secret.arn,
        "acmeStateBucket": t.state.bucket.bucket,
        "acmeDirectory": s.acme.directory_url,
        "renewalSchedule": (
            f"{RETRY_EVERY} (certbot orders only when due), first run at deploy and after a "
            "change of acme.server"
        ),
        # A renewal now (after fixing what made one fail): the renewal task definition, the
        # public subnets with a public IP (no NAT), and the renewal's own security group.
        "renewNowCommand": pulumi.Output.concat(
            "aws ecs run-task --cluster ",
            t.service.cluster,
            " --launch-type FARGATE --task-definition ",
            t.renewal_task.arn,
            " --network-configuration 'awsvpcConfiguration={subnets=[",
            t.public_subnet_ids.apply(",".join),
            "],securityGroups=[",
            t.renewal_security_group.id,
            "],assignPublicIp=ENABLED}'",
        ),
        "dnsFunctionName": t.dns.function.name,
        # What RunTask needs to start an on-demand task that gets a name and a certificate
        # like the service's: the family's task definition, public subnets, public IP, and
        # the group that opens Envoy's port.
        "taskDefinitionArn": t.task_definition.arn,
        "taskSubnetIds": t.public_subnet_ids,
        "taskSecurityGroupId": t.tasks_security_group.id,
        "runTaskCommand": pulumi.Output.concat(
            "aws ecs run-task --cluster ",
            t.service.cluster,
            " --launch-type FARGATE --task-definition ",
            t.task_definition.arn,
            " --network-configuration 'awsvpcConfiguration={subnets=[",
            t.public_subnet_ids.apply(",".join),
            "],securityGroups=[",
            t.tasks_security_group.id,
            "],assignPublicIp=ENABLED}'",
        ),
        "verifyCommand": pulumi.Output.concat(
            "TASK=$(",
            list_tasks,
            f" | head -n 1) && openssl s_client -connect $TASK.{s.domain}:{port} "
            f"-servername $TASK.{s.domain} -verify_return_error -brief </dev/null",
        ),
    }


def direct_task_args(values: dict[str, Any]) -> DirectTaskArgs:
    """A stack's configuration of direct-task as DirectTaskArgs, leaving out the
    foundation's keys (this program builds its foundation itself)."""
    return DirectTaskArgs(**args_from_config(values, DirectTaskArgs, skip=FOUNDATION_KEYS))


def build(settings: Settings, foundation: Foundation) -> TopologyResult:
    """This program's direct-task: its configuration as DirectTaskArgs, on its own
    foundation (the component parses the arguments again, as alb-envoy)."""
    topology = DirectTask("direct-task", direct_task_args(raw_config()), foundation=foundation)
    return TopologyResult(
        component=topology,
        endpoint=f"https://<taskId>.{settings.domain}:{settings.envoy.port}",
        outputs=topology.outputs,
    )

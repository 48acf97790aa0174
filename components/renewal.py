"""Certificate renewal out of band: a scheduled standalone task, sized to the lifetime."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.alerts import dead_letter_send_statement
from components.iam import Statement, assume_role_policy, policy_document


def renewal_interval_days(lifetime_days: int, checks_per_window: int = 2) -> int:
    """How often to run certbot so it sees the certificate at least `checks_per_window`
    times inside its renewal window.

    certbot renews once a third of the lifetime remains (lifetime / 3 days), so running it
    every lifetime / (3 * checks) days gives that many chances before expiry:
    90-day certificates -> every 15 days, 64 -> 10, 45 -> 7, 6 (shortlived) -> 1.
    """
    if lifetime_days < 3:
        raise ValueError("certificates shorter than 3 days cannot be renewed on a schedule")
    return max(1, math.floor(lifetime_days / (3 * checks_per_window)))


def run_task_statements(
    task_definition_arn: str, cluster_arn: str, pass_role_arns: list[str]
) -> list[Statement]:
    """What EventBridge Scheduler needs to start one task definition in one cluster."""
    return [
        Statement(
            "RunRenewalTask",
            ["ecs:RunTask"],
            [task_definition_arn],
            condition={"ArnEquals": {"ecs:cluster": cluster_arn}},
        ),
        # RunTask hands the task its roles; the scheduler may pass those and no other, and
        # only to ECS tasks (the condition AWS's own policy for rules that run tasks carries:
        # https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonEC2ContainerServiceEventsRole.html).
        Statement(
            "PassTaskRoles",
            ["iam:PassRole"],
            sorted(set(pass_role_arns)),
            condition={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        ),
    ]


def ecs_service_arn(cluster_arn: str, service_name: str) -> str:
    """The long service ARN IAM matches for ecs:UpdateService,
    arn:<partition>:ecs:<region>:<account>:service/<cluster>/<service> (Service Authorization
    Reference, Amazon ECS, resource type "service"), derived from the cluster's ARN."""
    prefix, sep, cluster_name = cluster_arn.partition(":cluster/")
    if not sep or not cluster_name or "/" in cluster_name or not service_name:
        raise ValueError(f"not a cluster ARN and service name: {cluster_arn!r}, {service_name!r}")
    return f"{prefix}:service/{cluster_name}/{service_name}"


def service_arn(
    cluster_arn: pulumi.Input[str], service_name: pulumi.Input[str]
) -> pulumi.Output[str]:
    """`ecs_service_arn` of outputs: a policy names the service it may restart, not `id`."""
    return pulumi.Output.all(cluster_arn, service_name).apply(lambda v: ecs_service_arn(v[0], v[1]))


def schedule_group_arn(partition: str, region: str, account: str, group: str = "default") -> str:
    """What Scheduler puts in aws:SourceArn when it assumes a schedule's role: the ARN of
    the schedule's group, not of the schedule (EventBridge Scheduler guide, "Confused
    deputy prevention"). Schedules here are in the default group."""
    return f"arn:{partition}:scheduler:{region}:{account}:schedule-group/{group}"


@dataclass(frozen=True)
class ScheduledTaskArgs:
    cluster_arn: pulumi.Input[str]
    task_definition: aws.ecs.TaskDefinition
    interval_days: int
    launch_type: str  # EC2 | FARGATE
    # Roles the task definition names (task role, execution role).
    pass_role_arns: Sequence[pulumi.Input[str]]
    # Where Scheduler puts a run it could not start, e.g. a task ECS could not place, which
    # starts nothing and so sends no task event (Alerts.dead_letter_arn).
    dead_letter_arn: pulumi.Input[str]
    # awsvpc tasks (Fargate) only.
    subnet_ids: pulumi.Input[Sequence[str]] | None = None
    security_group_ids: Sequence[pulumi.Input[str]] = ()
    # Tasks in public subnets without NAT (direct-task) reach the CA and AWS through a public IP.
    assign_public_ip: bool = False
    # How late Scheduler may start a run; None: on time. A rate schedule without a start date
    # runs once right after it is created (EventBridge Scheduler guide, "Schedule types"),
    # which is how direct-task gets its first certificate right after the first deploy.
    flexible_window_minutes: int | None = 60
    # A Scheduler rate or cron expression instead of `rate(<interval_days> days)`, e.g. the
    # hourly runs of direct-task, whose certbot asks the CA only when renewal is due.
    schedule_expression: str | None = None


class ScheduledTask(pulumi.ComponentResource):
    """EventBridge Scheduler runs a standalone task every N days (certbot's renewal).

    The renewal runs beside the app, not in it: the app keeps serving while certbot talks
    to the CA, and a failed renewal (CA outage, registry limit) changes nothing.
    """

    def __init__(
        self, name: str, args: ScheduledTaskArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:renewal:ScheduledTask", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke).partition
        region = aws.get_region_output(opts=invoke).region
        role = aws.iam.Role(
            name,
            description="EventBridge Scheduler: start the certificate renewal task",
            assume_role_policy=pulumi.Output.all(partition, region, account).apply(
                lambda v: assume_role_policy(
                    "scheduler.amazonaws.com", v[2], schedule_group_arn(v[0], v[1], v[2])
                )
            ),
            opts=child,
        )
        task_arn = args.task_definition.arn
        policy = aws.iam.RolePolicy(
            name,
            name="run-renewal-task",
            role=role.id,
            policy=pulumi.Output.all(
                task_arn, args.cluster_arn, args.dead_letter_arn, *args.pass_role_arns
            ).apply(
                lambda v: policy_document(
                    [
                        *run_task_statements(v[0], v[1], list(v[3:])),
                        dead_letter_send_statement(v[2]),
                    ]
                )
            ),
            opts=child,
        )
        ecs_parameters: dict = {
            "task_definition_arn": task_arn,
            "launch_type": args.launch_type,
            "task_count": 1,
        }
        if args.subnet_ids is not None:
            ecs_parameters["network_configuration"] = {
                "subnets": args.subnet_ids,
                "security_groups": list(args.security_group_ids),
                "assign_public_ip": args.assign_public_ip,
            }
        expression = args.schedule_expression or f"rate({args.interval_days} days)"
        every = expression.removeprefix("rate(").removesuffix(")")
        every = f"every {every}" if expression.startswith("rate(") else expression
        self.schedule = aws.scheduler.Schedule(
            name,
            description=f"Renew the certificate if due, {every} (certbot)",
            schedule_expression=expression,
            flexible_time_window=(
                {"mode": "OFF"}
                if args.flexible_window_minutes is None
                else {"mode": "FLEXIBLE", "maximum_window_in_minutes": args.flexible_window_minutes}
            ),
            target={
                "arn": args.cluster_arn,
                "role_arn": role.arn,
                "ecs_parameters": ecs_parameters,
                "retry_policy": {"maximum_retry_attempts": 3},
                "dead_letter_config": {"arn": args.dead_letter_arn},
            },
            # The first run must find the role able to start the task.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        self.register_outputs({"scheduleExpression": self.schedule.schedule_expression})

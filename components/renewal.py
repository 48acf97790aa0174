"""A schedule that restarts a service's tasks so their init container can renew a certificate."""

from __future__ import annotations

import json
import math

import pulumi
import pulumi_aws as aws

from components.iam import Statement, assume_role_policy, policy_document


def renewal_interval_days(lifetime_days: int, checks_per_window: int = 2) -> int:
    """How often to restart so certbot sees the certificate at least `checks_per_window`
    times inside its renewal window.

    certbot renews once a third of the lifetime remains (lifetime / 3 days), so restarting
    every lifetime / (3 * checks) days gives that many chances before expiry:
    90-day certificates -> every 15 days, 64 -> 10, 45 -> 7, 6 (shortlived) -> 1.
    """
    if lifetime_days < 3:
        raise ValueError("certificates shorter than 3 days cannot be renewed by restarts")
    return max(1, math.floor(lifetime_days / (3 * checks_per_window)))


def update_service_input(cluster_arn: str, service_name: str) -> str:
    return json.dumps(
        {"Cluster": cluster_arn, "Service": service_name, "ForceNewDeployment": True},
        sort_keys=True,
    )


class RenewalSchedule(pulumi.ComponentResource):
    """EventBridge Scheduler calls ECS UpdateService(forceNewDeployment) every N days."""

    def __init__(
        self,
        name: str,
        cluster_arn: pulumi.Input[str],
        service: aws.ecs.Service,
        interval_days: int,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("ecs-tls:renewal:RenewalSchedule", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        role = aws.iam.Role(
            name,
            description="EventBridge Scheduler: restart the certificate-renewing service",
            assume_role_policy=account.apply(
                lambda a: assume_role_policy("scheduler.amazonaws.com", a)
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            name,
            name="update-one-service",
            role=role.id,
            policy=service.id.apply(
                lambda arn: policy_document(
                    [Statement("ForceNewDeployment", ["ecs:UpdateService"], [arn])]
                )
            ),
            opts=child,
        )
        self.schedule = aws.scheduler.Schedule(
            name,
            description=f"Restart tasks every {interval_days} days so certbot renews in time",
            schedule_expression=f"rate({interval_days} days)",
            flexible_time_window={"mode": "FLEXIBLE", "maximum_window_in_minutes": 60},
            target={
                "arn": "arn:aws:scheduler:::aws-sdk:ecs:updateService",
                "role_arn": role.arn,
                "input": pulumi.Output.all(cluster_arn, service.name).apply(
                    lambda v: update_service_input(v[0], v[1])
                ),
                "retry_policy": {"maximum_retry_attempts": 3},
            },
            opts=child,
        )
        self.register_outputs({"scheduleExpression": self.schedule.schedule_expression})

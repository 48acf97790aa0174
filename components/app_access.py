"""The workload's secrets and task role as resources, registered the same way by every
topology (documents from components/app_secrets.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from components.app_secrets import secret_read_statements
from components.iam import assume_role_policy, policy_document
from settings.app_secrets import AppAccess


def allow_app_secrets(
    name: str,
    execution_role: aws.iam.Role,
    accesses: Sequence[AppAccess],
    parent: pulumi.Resource,
) -> aws.iam.RolePolicy | None:
    """One inline policy on the shared execution role for this topology's workload secrets;
    None (no resource) when no workload names a secret."""
    if not any(a.secrets for a in accesses):
        return None
    dns_suffix = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=parent)).dns_suffix
    return aws.iam.RolePolicy(
        f"{name}-app-secrets",
        name=f"{name}-app-secrets",
        role=execution_role.id,
        policy=dns_suffix.apply(
            lambda suffix: policy_document(secret_read_statements(accesses, suffix))
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _attachment_name(name: str, policy_arn: str) -> str:
    # By ARN, not position: reordering the list replaces no attachment.
    return f"{name}-policy-{hashlib.sha256(policy_arn.encode()).hexdigest()[:10]}"


def attach_policies(
    name: str, role: aws.iam.Role, access: AppAccess, parent: pulumi.Resource
) -> list[aws.iam.RolePolicyAttachment]:
    """The user's managed policies on a task role the program owns."""
    return [
        aws.iam.RolePolicyAttachment(
            _attachment_name(name, arn),
            role=role.name,
            policy_arn=arn,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for arn in access.task_role_policy_arns
    ]


class WorkloadRole:
    """The task role of a workload whose topology needs no task role of its own.

    The user's role when `taskRoleArn` is set; a role the program creates when
    `taskRolePolicyArns` is, or when `exec_cluster` is given (ECS Exec: the cluster lets
    the role open sessions under its key, components/cluster.py); otherwise none, as
    before these keys existed. Settings refuse ECS Exec with a role of the user's, to
    which the program cannot add those rights.
    """

    def __init__(
        self,
        name: str,
        access: AppAccess,
        account_id: pulumi.Input[str],
        description: str,
        parent: pulumi.Resource,
        exec_cluster: Any = None,
    ):
        self.arn: pulumi.Input[str] | None = access.task_role_arn
        self.ready: list[pulumi.Resource] = []
        if access.task_role_policy_arns or exec_cluster is not None:
            role = aws.iam.Role(
                name,
                description=description,
                assume_role_policy=pulumi.Output.from_input(account_id).apply(
                    lambda a: assume_role_policy("ecs-tasks.amazonaws.com", a)
                ),
                opts=pulumi.ResourceOptions(parent=parent),
            )
            self.arn = role.arn
            self.ready = list(attach_policies(name, role, access, parent))
            if exec_cluster is not None:
                self.ready.append(exec_cluster.allow_execute_command(f"{name}-exec", role, parent))

"""IAM policy documents as plain functions of plain values.

Every document is a dict ready for `json.dumps`; components call these inside one `apply`
so the documents stay testable without Pulumi.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Statement:
    sid: str
    actions: Sequence[str]
    resources: Sequence[str]
    # A reason is required where a statement grants on "*", so a reviewer sees why.
    why_wildcard: str = ""
    # IAM condition block, e.g. {"StringEquals": {"aws:ResourceTag/x": "y"}}.
    condition: Mapping[str, Mapping[str, Any]] | None = None
    # "Deny" only to carve an exception out of an Allow that IAM's wildcards cannot narrow.
    effect: str = "Allow"

    def to_dict(self) -> dict:
        if "*" in self.resources and not self.why_wildcard:
            raise ValueError(f"statement {self.sid!r} grants on '*' without saying why")
        out = {
            "Sid": self.sid,
            "Effect": self.effect,
            "Action": sorted(self.actions),
            "Resource": sorted(self.resources),
        }
        if self.condition:
            out["Condition"] = {k: dict(v) for k, v in self.condition.items()}
        return out


def policy_document(statements: Sequence[Statement]) -> str:
    """A least-privilege policy: one Allow statement per purpose."""
    if not statements:
        raise ValueError("a policy needs at least one statement")
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [s.to_dict() for s in statements]}, sort_keys=True
    )


@dataclass(frozen=True)
class TrustedService:
    """What one service principal puts in the request context when it assumes a role."""

    # The service sets aws:SourceAccount, so the trust policy can demand this account.
    sets_source_account: bool
    # Where AWS says so (or, for an exception, where AWS documents the trust policy).
    source: str
    why: str = ""


# Confused-deputy protection per service. A condition on a key the service does not set
# never matches, so the role could not be assumed at all: only documented keys go here.
TRUSTED_SERVICES: Mapping[str, TrustedService] = {
    "ecs-tasks.amazonaws.com": TrustedService(
        True,
        "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html",
        "task and execution roles; ECS also sets aws:SourceArn (a task ARN, unknown before "
        "the task exists), so the account is the narrowest fixed value",
    ),
    "ecs.amazonaws.com": TrustedService(
        True,
        "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/infrastructure_IAM_role.html",
        "ECS infrastructure role (Service Connect TLS)",
    ),
    "scheduler.amazonaws.com": TrustedService(
        True,
        "https://docs.aws.amazon.com/scheduler/latest/UserGuide/cross-service-confused-deputy-prevention.html",
        "aws:SourceArn is the schedule group's ARN (not the schedule's)",
    ),
    "events.amazonaws.com": TrustedService(
        True,
        "https://docs.aws.amazon.com/eventbridge/latest/userguide/cross-service-confused-deputy-prevention.html",
        "roles of rule targets; aws:SourceArn is then the rule's ARN",
    ),
    "lambda.amazonaws.com": TrustedService(
        False,
        "https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html",
        "Lambda documents no source keys on assuming an execution role",
    ),
    "ec2.amazonaws.com": TrustedService(
        False,
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_switch-role-ec2.html",
        "instance profiles: EC2 sets no source keys",
    ),
    "dlm.amazonaws.com": TrustedService(
        False,
        "https://docs.aws.amazon.com/ebs/latest/userguide/service-role.html",
        "Data Lifecycle Manager documents no source keys for its service role",
    ),
}


def assume_role_policy(
    service: str, source_account: str | None = None, source_arn: str | None = None
) -> str:
    """Trust policy letting one AWS service principal assume the role.

    The account is required for a service that sets aws:SourceAccount (the service may then
    act for this account only) and refused for one that does not (see TRUSTED_SERVICES).
    `source_arn` narrows further to one resource of that service (ArnEquals).
    """
    trusted = TRUSTED_SERVICES.get(service)
    if trusted is None:
        raise ValueError(f"{service}: add it to TRUSTED_SERVICES with the source keys it sets")
    if trusted.sets_source_account != bool(source_account):
        need = "needs" if trusted.sets_source_account else "does not set"
        raise ValueError(f"{service} {need} aws:SourceAccount ({trusted.source})")
    if source_arn and not trusted.sets_source_account:
        raise ValueError(f"{service} does not set aws:SourceArn ({trusted.source})")
    statement: dict = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if source_account:
        condition: dict = {"StringEquals": {"aws:SourceAccount": source_account}}
        if source_arn:
            condition["ArnEquals"] = {"aws:SourceArn": source_arn}
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, sort_keys=True)


ECR_PULL_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
)
# The first pull through a cache rule imports the image, into a repository it may create:
# https://docs.aws.amazon.com/AmazonECR/latest/userguide/pull-through-cache-iam.html
ECR_CACHE_IMPORT_ACTIONS = ("ecr:BatchImportUpstreamImage", "ecr:CreateRepository")


def execution_role_statements(
    log_group_arn: str,
    ecr_repository_arns: Sequence[str] = (),
    cache_repository_arns: Sequence[str] = (),
) -> list[Statement]:
    """What the ECS agent needs to start any task of the cluster: pull images, write logs.

    ECR rights only where a task's image is in private ECR: `ecr_repository_arns` are the
    repositories the user's images name, `cache_repository_arns` the pull-through cache's
    (`<prefix>/*`). Images on ECR Public or Docker Hub need no IAM permission at all.
    Secrets are not here: each topology grants read on its own secret ARNs.
    """
    statements = []
    pull = sorted({*ecr_repository_arns, *cache_repository_arns})
    if pull:
        statements += [
            Statement("PullFromEcr", ECR_PULL_ACTIONS, pull),
            Statement(
                "EcrToken",
                ["ecr:GetAuthorizationToken"],
                ["*"],
                why_wildcard="GetAuthorizationToken has no resource-level permission",
            ),
        ]
    if cache_repository_arns:
        statements.append(
            Statement("ImportThroughCache", ECR_CACHE_IMPORT_ACTIONS, sorted(cache_repository_arns))
        )
    statements.append(
        Statement(
            "WriteTaskLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [f"{log_group_arn}:log-stream:*"],
        )
    )
    return statements


SERVICE_CONNECT_TLS_POLICY = (
    "service-role/AmazonECSInfrastructureRolePolicyForServiceConnectTransportLayerSecurity"
)


def managed_policy_arn(partition: str, name: str) -> str:
    return f"arn:{partition}:iam::aws:policy/{name}"


def kms_key_policy(partition: str, account_id: str, user_role_arns: Sequence[str]) -> str:
    """Key policy: the account administers the key; the given roles may use it.

    In a key policy "Resource": "*" means this key itself, not every key.
    """
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministers",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "ServiceConnectTlsUsesKey",
                    "Effect": "Allow",
                    "Principal": {"AWS": sorted(user_role_arns)},
                    "Action": sorted(
                        [
                            "kms:Encrypt",
                            "kms:Decrypt",
                            "kms:GenerateDataKey",
                            "kms:GenerateDataKeyPair",
                        ]
                    ),
                    "Resource": "*",
                },
            ],
        },
        sort_keys=True,
    )

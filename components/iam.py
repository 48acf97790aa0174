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


def assume_role_policy(service: str, source_account: str | None = None) -> str:
    """Trust policy letting one AWS service principal assume the role.

    With `source_account`, the service may assume it only on behalf of this account
    (confused-deputy protection).
    """
    statement: dict = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if source_account:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": source_account}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, sort_keys=True)


def execution_role_statements(log_group_arn: str) -> list[Statement]:
    """What the ECS agent needs to start any task of the cluster: pull images, write logs.

    Secrets are not here: each topology grants read on its own secret ARNs.
    """
    return [
        Statement(
            "PullFromEcr",
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            ["*"],
            why_wildcard="workload images may come from any ECR repository the user names",
        ),
        Statement(
            "EcrToken",
            ["ecr:GetAuthorizationToken"],
            ["*"],
            why_wildcard="GetAuthorizationToken has no resource-level permission",
        ),
        Statement(
            "WriteTaskLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [f"{log_group_arn}:log-stream:*"],
        ),
    ]


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

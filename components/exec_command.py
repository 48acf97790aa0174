"""ECS Exec: what a task role needs, the cluster's session key, and the command to run.

ECS Exec runs the SSM agent's binaries, which the ECS agent (EC2) or Fargate mounts into
every container of a task whose service has `enable_execute_command`. Requirements from the
ECS Developer Guide ("Monitor Amazon ECS containers with ECS Exec", ecs-exec.html):

- the task role, not the execution role, opens the session channels: the four
  `ssmmessages:*Channel` actions, which have no resource-level permissions, so `*`;
- with a KMS key in the cluster's exec configuration, the task role may `kms:Decrypt`
  with it, and the operator who runs `execute-command` needs `kms:GenerateDataKey`;
- with logging to CloudWatch Logs, the task role writes the session log:
  `logs:DescribeLogGroups` (no resource-level permission either), and
  `logs:CreateLogStream`, `logs:DescribeLogStreams`, `logs:PutLogEvents` on the group;
- Fargate platform 1.4.0 or later (LATEST is); on EC2 an ECS agent of 1.50.2 or later,
  which every current ECS-optimized AMI carries (nlb-certbot's instances use it);
- the task reaches the ssmmessages endpoint over HTTPS: the tasks' security groups allow
  443 out, through NAT (or a public IP for direct-task).
"""

from __future__ import annotations

import json

from components.iam import Statement
from components.kms import administer_statement

CHANNEL_ACTIONS = (
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)


def exec_command_statements(kms_key_arn: str, log_group_arn: str) -> list[Statement]:
    """The task role's rights for ECS Exec with encrypted, logged sessions."""
    return [
        Statement(
            "ExecSessionChannels",
            CHANNEL_ACTIONS,
            ["*"],
            why_wildcard="ssmmessages channel actions have no resource-level permissions "
            "(ECS Developer Guide, ecs-exec.html)",
        ),
        Statement("ExecSessionKey", ["kms:Decrypt"], [kms_key_arn]),
        Statement(
            "ExecFindLogGroup",
            ["logs:DescribeLogGroups"],
            ["*"],
            why_wildcard="logs:DescribeLogGroups has no resource-level permission; the SSM "
            "agent calls it before writing the session log",
        ),
        Statement(
            "ExecWriteSessionLog",
            ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            [log_group_arn, f"{log_group_arn}:log-stream:*"],
        ),
    ]


def exec_key_policy(partition: str, account_id: str, region: str, log_group_arn: str) -> str:
    """The session key: the account administers it; its principals use it through IAM.

    Who may use the key is IAM's call, not the key policy's: the task roles are created by
    each topology after the cluster (and its key) exist, so they cannot be named here.
    Each gets `kms:Decrypt` on this key in its own policy (exec_command_statements); an
    operator needs `kms:GenerateDataKey` on it in theirs. CloudWatch Logs encrypts the
    session log group with it, for that log group only (CloudWatch Logs User Guide,
    "Encrypt log data in CloudWatch Logs using AWS KMS": encryption context
    aws:logs:arn).
    """
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                administer_statement(partition, account_id),
                {
                    "Sid": "AccountPrincipalsUseThroughIam",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": "*",
                },
                {
                    "Sid": "LogsEncryptSessionLog",
                    "Effect": "Allow",
                    "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                    "Action": [
                        "kms:Decrypt*",
                        "kms:Describe*",
                        "kms:Encrypt*",
                        "kms:GenerateDataKey*",
                        "kms:ReEncrypt*",
                    ],
                    "Resource": "*",
                    "Condition": {
                        "ArnEquals": {"kms:EncryptionContext:aws:logs:arn": log_group_arn}
                    },
                },
            ],
        },
        sort_keys=True,
    )


def exec_command_line(cluster_name: str, container: str) -> str:
    """What an operator runs once they picked a task ID (`aws ecs list-tasks`)."""
    return (
        f"aws ecs execute-command --cluster {cluster_name} --task <id> "
        f"--container {container} --interactive --command /bin/sh"
    )

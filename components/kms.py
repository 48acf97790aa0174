"""Customer managed KMS keys: who administers them and who may use them.

The key policies are plain functions of plain values (tested without Pulumi); `CustomerKey`
creates a key with one of them, yearly rotation, a deletion window and an alias.

Administration is not use. AWS's default key policy gives the account root `kms:*`, which
hands every cryptographic operation to whoever IAM allows, e.g. anyone with
AdministratorAccess. Here the account root gets the administrative actions only (the ones
AWS's console lists for key administrators, without `kms:CreateGrant`, which would let an
administrator grant themselves Decrypt): IAM principals of the account can still manage,
re-policy and delete the key, so it never becomes unmanageable (KMS Developer Guide,
"Default key policy": the statement that allows the account keeps the key manageable; the
policy lockout safety check requires that the caller can still call PutKeyPolicy), while
Decrypt and GenerateDataKey are granted only to the principals that need them, in the key
policy itself. Changing that takes `kms:PutKeyPolicy`, which CloudTrail records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

# Everything a key administrator (and the Pulumi provider managing the key) calls; no
# Encrypt, Decrypt, GenerateDataKey*, ReEncrypt* or CreateGrant.
ADMIN_ACTIONS = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)
# Longest window: a key scheduled for deletion by mistake can be recovered for 30 days.
DELETION_WINDOW_DAYS = 30
# KMS CreateAlias AliasName: 1 to 256 of a-zA-Z0-9:/_- beginning with alias/, and not
# alias/aws/ (reserved for AWS managed keys).
ALIAS_MAX = 256


def alias_name(*parts: str) -> str:
    """`alias/<parts joined by ->` in KMS's alphabet (stack names may contain dots). No
    slash survives, so the name can never fall under the reserved alias/aws/."""
    body = re.sub(r"[^a-zA-Z0-9_-]+", "-", "-".join(parts)).strip("-")
    if not body:
        raise ValueError(f"no usable KMS alias name from {parts!r}")
    return f"alias/{body}"[:ALIAS_MAX]


def administer_statement(partition: str, account_id: str) -> dict:
    """The account administers the key through IAM, without using it."""
    return {
        "Sid": "AccountAdministersKey",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
        "Action": sorted(ADMIN_ACTIONS),
        # In a key policy "*" is this key.
        "Resource": "*",
    }


def _document(statements: list[dict]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def s3_state_key_policy(
    partition: str, account_id: str, region: str, bucket_arn: str, user_arns: Sequence[str]
) -> str:
    """Only `user_arns` use the key, only through S3, only for objects of `bucket_arn`.

    S3 asks for a data key (GenerateDataKey) on PutObject and for Decrypt on GetObject, as
    the caller; Encrypt is never used by SSE-KMS. With an S3 Bucket Key the encryption
    context is the bucket's ARN (S3 User Guide, "Reducing the cost of SSE-KMS with Amazon
    S3 Bucket Keys"), so the key serves this bucket and no other even for these roles.
    """
    if not user_arns:
        raise ValueError("an S3 state key needs at least one role that uses it")
    return _document(
        [
            administer_statement(partition, account_id),
            {
                "Sid": "StateRolesUseKeyThroughS3",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(set(user_arns))},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        "kms:ViaService": f"s3.{region}.amazonaws.com",
                        "kms:EncryptionContext:aws:s3:arn": bucket_arn,
                    }
                },
            },
        ]
    )


SNS_PUBLISH_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey*"]


def sns_topic_key_policy(partition: str, account_id: str, region: str) -> str:
    """A key for an SNS topic that CloudWatch alarms, EventBridge rules and the account's
    own principals publish to (SNS Developer Guide, "Enable compatibility between event
    sources from AWS services and encrypted topics"; the AWS managed aws/sns key admits no
    service principal, so alarms cannot publish to a topic under it).

    - CloudWatch: only on behalf of this account (aws:SourceAccount).
    - EventBridge: no aws:SourceAccount here. Which condition keys a service principal's
      KMS request carries is up to the service; AWS's Modern Data Architecture Accelerator
      (grantCloudWatchAlarmsTopicAccess) records that EventBridge's deliveries to an
      encrypted topic carry no aws:SourceAccount, so the condition would drop every
      renewal-failure notice without an error. The topic policy holds the confused-deputy
      condition (events.amazonaws.com may publish only for this account), and the key
      gives EventBridge nothing beyond data keys for messages.
    - The account's principals (the renewal task role publishes a notice; a Scheduler
      universal target would publish as its role): through SNS only (kms:ViaService), as
      the aws/sns key allows; who may publish at all is the topic policy's and IAM's call.
    """
    via_sns = {
        "kms:CallerAccount": account_id,
        "kms:ViaService": f"sns.{region}.amazonaws.com",
    }
    return _document(
        [
            administer_statement(partition, account_id),
            {
                "Sid": "AlarmsPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": SNS_PUBLISH_ACTIONS,
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            },
            {
                "Sid": "RulesPublish",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": SNS_PUBLISH_ACTIONS,
                "Resource": "*",
            },
            {
                "Sid": "AccountPublishesThroughSns",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": SNS_PUBLISH_ACTIONS,
                "Resource": "*",
                "Condition": {"StringEquals": via_sns},
            },
        ]
    )


@dataclass(frozen=True)
class CustomerKeyArgs:
    description: str
    alias: str  # from alias_name()
    policy: pulumi.Input[str]
    deletion_window_days: int = DELETION_WINDOW_DAYS


class CustomerKey(pulumi.ComponentResource):
    """A symmetric customer managed key, rotated yearly, with an alias and its own policy."""

    key: aws.kms.Key
    arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: CustomerKeyArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:kms:CustomerKey", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.key = aws.kms.Key(
            name,
            description=args.description,
            key_usage="ENCRYPT_DECRYPT",
            customer_master_key_spec="SYMMETRIC_DEFAULT",
            enable_key_rotation=True,
            deletion_window_in_days=args.deletion_window_days,
            policy=args.policy,
            opts=child,
        )
        # The provider takes a key ID or ARN; the ARN is known wherever the key is referenced.
        aws.kms.Alias(name, name=args.alias, target_key_id=self.key.arn, opts=child)
        self.arn = self.key.arn
        self.register_outputs({"keyArn": self.key.arn, "alias": args.alias})

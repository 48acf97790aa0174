"""The instance role's rights for the data volume's boot script (task_contents/data_volume.py):
attach this one volume, read its state, and mark an instance of its own group Unhealthy.

Pure functions of plain values (call them inside an ``apply``).
"""

from __future__ import annotations

import json
import re

from components.iam import Statement
from task_contents.data_volume import _check_region, _check_volume_id, data_volume_instance_tags

__all__ = [
    "data_volume_policy_document",
    "data_volume_policy_statements",
    "mark_unhealthy_policy_document",
]

_PARTITION_RE = re.compile(r"aws(-[a-z]+)*")
_ACCOUNT_RE = re.compile(r"[0-9]{12}")
_TAG_KEY_RE = re.compile(r"[A-Za-z0-9 _.:/=+@-]{1,128}")
# Any name Pulumi or a user gives a group; no "*", "?" or ":" that would widen or break
# the ARN the grant names.
_GROUP_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,255}")


def data_volume_policy_statements(
    *,
    partition: str,
    region: str,
    account_id: str,
    volume_id: str,
    instance_tag: tuple[str, str] | None = None,
    kms_key_arn: str | None = None,
) -> list[dict]:
    """Instance-role statements for the script: attach this one volume, read its state.

    AttachVolume is authorized against both the volume and the instance, so each gets its
    own statement: the volume by its exact ARN, instances by ``instance_tag`` (key, value),
    by default ``data_volume_instance_tags(volume_id)``. DescribeVolumes has no
    resource-level permissions. ``kms_key_arn``: only for a customer managed key (the
    default aws/ebs key needs nothing), EC2 creates a grant on the caller's behalf.
    """
    if not isinstance(partition, str) or not _PARTITION_RE.fullmatch(partition):
        raise ValueError(f"partition must look like aws or aws-cn, got {partition!r}")
    _check_region(region)
    if not isinstance(account_id, str) or not _ACCOUNT_RE.fullmatch(account_id):
        raise ValueError(f"account_id must be 12 digits, got {account_id!r}")
    _check_volume_id(volume_id)
    tag_key, tag_value = instance_tag or next(iter(data_volume_instance_tags(volume_id).items()))
    if not _TAG_KEY_RE.fullmatch(tag_key) or tag_key.startswith("aws:"):
        raise ValueError(f"instance tag key {tag_key!r} is not a usable tag key")
    if not isinstance(tag_value, str) or not tag_value or len(tag_value) > 256:
        raise ValueError(f"instance tag value must be 1 to 256 characters, got {tag_value!r}")
    prefix = f"arn:{partition}:ec2:{region}:{account_id}"

    statements = [
        Statement("AttachTheDataVolume", ["ec2:AttachVolume"], [f"{prefix}:volume/{volume_id}"]),
        Statement(
            "AttachToTaggedInstances",
            ["ec2:AttachVolume"],
            [f"{prefix}:instance/*"],
            condition={"StringEquals": {f"ec2:ResourceTag/{tag_key}": tag_value}},
        ),
        Statement(
            "ReadVolumeAttachment",
            ["ec2:DescribeVolumes"],
            ["*"],
            why_wildcard="ec2:DescribeVolumes supports no resource-level permissions",
        ),
    ]
    if kms_key_arn is not None:
        # Any account: the key may be shared with this one; its policy is its owner's.
        if not isinstance(kms_key_arn, str) or not re.fullmatch(
            rf"arn:{re.escape(partition)}:kms:{region}:[0-9]{{12}}:key/[A-Za-z0-9-]+", kms_key_arn
        ):
            raise ValueError(f"kms_key_arn must be a key ARN in {region}, got {kms_key_arn!r}")
        statements.append(
            Statement(
                "GrantForEncryptedVolume",
                ["kms:CreateGrant"],
                [kms_key_arn],
                condition={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
    return [statement.to_dict() for statement in statements]


def data_volume_policy_document(
    *,
    partition: str,
    region: str,
    account_id: str,
    volume_id: str,
    instance_tag: tuple[str, str] | None = None,
    kms_key_arn: str | None = None,
) -> str:
    """``data_volume_policy_statements`` as a policy document (JSON text), e.g. for an
    ``aws.iam.RolePolicy`` of the instance role."""
    statements = data_volume_policy_statements(
        partition=partition,
        region=region,
        account_id=account_id,
        volume_id=volume_id,
        instance_tag=instance_tag,
        kms_key_arn=kms_key_arn,
    )
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def mark_unhealthy_policy_document(
    *, partition: str, region: str, account_id: str, group_name: str
) -> str:
    """The instance role's right to mark an instance of its own group Unhealthy, which the
    script uses when the volume cannot be attached (a zombie instance otherwise passes EC2
    health checks forever).

    autoscaling:SetInstanceHealth takes the autoScalingGroup resource type (Service
    Authorization Reference, "Actions, resources, and condition keys for Amazon EC2 Auto
    Scaling"), whose ARN holds a group ID that AWS generates and the group's name, unique
    in the account and region: the grant names the group, with a wildcard for the ID only.
    """
    if not isinstance(partition, str) or not _PARTITION_RE.fullmatch(partition):
        raise ValueError(f"partition must look like aws or aws-cn, got {partition!r}")
    _check_region(region)
    if not isinstance(account_id, str) or not _ACCOUNT_RE.fullmatch(account_id):
        raise ValueError(f"account_id must be 12 digits, got {account_id!r}")
    if not isinstance(group_name, str) or not _GROUP_NAME_RE.fullmatch(group_name):
        raise ValueError(f"group_name must be an Auto Scaling group name, got {group_name!r}")
    group_arn = (
        f"arn:{partition}:autoscaling:{region}:{account_id}:autoScalingGroup:*:"
        f"autoScalingGroupName/{group_name}"
    )
    statement = Statement(
        "MarkOwnGroupInstanceUnhealthy", ["autoscaling:SetInstanceHealth"], [group_arn]
    )
    return json.dumps({"Version": "2012-10-17", "Statement": [statement.to_dict()]}, sort_keys=True)

"""An EBS volume that outlives tasks, instances and the stack, with daily snapshots.

A database's store must not live in a container's scratch space: the Neo4j image declares
`VOLUME /data`, which dies with the task, and Neo4j does not support NFS (EFS) for its
store. The volume is created apart from any instance, in one availability zone; the
instance of that zone attaches and mounts it at boot (task_contents/data_volume.sh).

What a configuration change does to it (Terraform AWS provider, aws_ebs_volume): a new
size, type, IOPS or throughput modifies the volume in place (EC2 ModifyVolume; the file
system is grown by the boot script). A new zone or KMS key would create another, blank
volume, so no configuration change may do that:
- the zone and the key are ignored once the volume exists (ignore_changes): the volume's
  outputs then carry what it really has, and `kept_volume_problem` compares them with
  what the configuration asks for; the caller stops `pulumi up` (and preview) with the
  steps to take when they differ. Subnet order or a new subnet list without a pinned zone
  asks for nothing: the instance follows the volume's zone (`subnet_in_zone`);
- a restore is a new volume by design: its logical name carries the snapshot ID
  (`volume_resource_name`), so it is created from the snapshot in the configured zone with
  the configured key, and the old volume is kept (never deleted, see retain_on_delete)
  with its data and its snapshots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import assume_role_policy, managed_policy_arn
from components.naming import physical_name

# The tag Data Lifecycle Manager selects volumes by; its value names the stack's volume.
SNAPSHOT_TAG = "ecs-tls:snapshots"
DLM_POLICY = "service-role/AWSDataLifecycleManagerServiceRole"


def dlm_text(text: str, limit: int = 500) -> str:
    """`text` in the only characters DLM takes in a policy description and a schedule
    name, `[0-9A-Za-z _-]` (DLM API reference, CreateLifecyclePolicy `Description` and
    `Schedule.Name`): a domain's dots become hyphens."""
    return re.sub(r"[^0-9A-Za-z _-]", "-", text)[:limit]


def daily_snapshot_policy(tag_value: str, retain: int) -> dict:
    """DLM policy details: one snapshot a day at 03:00 UTC, the last `retain` kept."""
    if not 1 <= retain <= 1000:
        raise ValueError(f"DLM keeps 1 to 1000 snapshots, not {retain}")
    return {
        "resource_types": ["VOLUME"],
        "target_tags": {SNAPSHOT_TAG: tag_value},
        "schedules": [
            {
                "name": f"daily {retain} kept",
                "create_rule": {"interval": 24, "interval_unit": "HOURS", "times": "03:00"},
                "retain_rule": {"count": retain},
                "copy_tags": True,
            }
        ],
    }


@dataclass(frozen=True)
class PersistentVolumeArgs:
    availability_zone: pulumi.Input[str]
    size_gib: int
    snapshot_retention_days: int  # 0: no snapshots
    description: str
    # Restore: the volume is created from this snapshot (and in any zone); None: blank.
    snapshot_id: str | None = None
    # A customer managed KMS key ARN; None: the account's default EBS key.
    kms_key_arn: str | None = None


def volume_resource_name(name: str, snapshot_id: str | None) -> str:
    """The volume's logical name: a restored volume is another resource than the blank one
    it replaces, so its zone and key come from the configuration, not from the old state."""
    return name if snapshot_id is None else f"{name}-{snapshot_id}"


def kept_volume_problem(
    *,
    volume_id: str,
    zone: str,
    kms_key_id: str | None,
    wanted_zone: str | None,
    wanted_kms_key_arn: str | None,
) -> tuple[str, str] | None:
    """The configuration key that asks for another volume than the one that exists, and
    what to do; None when it does not. `wanted_zone` is None unless the zone is configured."""
    restore = (
        f"To move the data: take a snapshot (aws ec2 create-snapshot --volume-id {volume_id}),"
        " wait until it is completed, set app.dataVolumeSnapshotId to its ID"
    )
    if wanted_zone is not None and wanted_zone != zone:
        return "app.dataVolumeZone", (
            f"the data volume {volume_id} is in {zone}, not in {wanted_zone}; a volume "
            f"never changes zone. To keep it where it is: set app.dataVolumeZone to {zone}. "
            f"{restore} and app.dataVolumeZone to {wanted_zone}, then run pulumi up "
            "(docs/topologies/nlb-certbot.md, Restore or move the data)."
        )
    if wanted_kms_key_arn is not None and wanted_kms_key_arn != kms_key_id:
        return "app.dataVolumeKmsKeyArn", (
            f"the data volume {volume_id} is encrypted with {kms_key_id or 'another key'}, "
            f"not with {wanted_kms_key_arn}; a volume never changes its key. To keep it: "
            f"remove app.dataVolumeKmsKeyArn. {restore} (the restored volume is encrypted "
            "with app.dataVolumeKmsKeyArn), then run pulumi up "
            "(docs/topologies/nlb-certbot.md, Restore or move the data)."
        )
    return None


def subnet_in_zone(zone: str, subnets: list[tuple[str, str]]) -> str | None:
    """The first (subnet ID, zone) pair's subnet in `zone`: the instance's subnet."""
    return next((subnet for subnet, subnet_zone in subnets if subnet_zone == zone), None)


class PersistentVolume(pulumi.ComponentResource):
    """Encrypted gp3 volume, kept when the stack (or a topology switch) deletes it."""

    volume: aws.ebs.Volume

    def __init__(
        self, name: str, args: PersistentVolumeArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:persistent_volume:PersistentVolume", name, None, opts)
        tag_value = physical_name(name)
        self.volume = aws.ebs.Volume(
            volume_resource_name(name, args.snapshot_id),
            availability_zone=args.availability_zone,
            size=args.size_gib,
            snapshot_id=args.snapshot_id,
            type="gp3",
            encrypted=True,
            kms_key_id=args.kms_key_arn,
            tags={"Name": tag_value, SNAPSHOT_TAG: tag_value},
            opts=pulumi.ResourceOptions(
                parent=self,
                # The user's data: `pulumi destroy` or a switch of topology leaves the
                # volume (and its snapshots) in the account; docs/destroy.md says how to reuse or
                # delete it.
                retain_on_delete=True,
                # Both would replace the volume with a blank one: an existing volume keeps
                # its own, which its outputs then report (see kept_volume_problem).
                ignore_changes=["availability_zone", "kms_key_id"],
            ),
        )
        if args.snapshot_retention_days:
            self._snapshots(name, tag_value, args.snapshot_retention_days, args.description)
        self.register_outputs(
            {"volumeId": self.volume.id, "availabilityZone": self.volume.availability_zone}
        )

    def _snapshots(self, name: str, tag_value: str, retain: int, description: str) -> None:
        child = pulumi.ResourceOptions(parent=self)
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        role = aws.iam.Role(
            f"{name}-snapshots",
            description="Data Lifecycle Manager: daily snapshots of the data volume",
            assume_role_policy=assume_role_policy("dlm.amazonaws.com"),
            opts=child,
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-snapshots",
            role=role.name,
            policy_arn=partition.partition.apply(lambda p: managed_policy_arn(p, DLM_POLICY)),
            opts=child,
        )
        aws.dlm.LifecyclePolicy(
            name,
            description=dlm_text(f"Daily snapshots of {description}"),
            execution_role_arn=role.arn,
            state="ENABLED",
            policy_details=daily_snapshot_policy(tag_value, retain),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[attachment]),
        )

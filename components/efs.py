"""An encrypted EFS file system reachable only over TLS, through one access point."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.firewall import allow_tcp
from components.naming import physical_name
from components.network import ZonalSubnet


def file_system_policy(
    file_system_arn: str,
    access_point_arn: str,
    client_role_arns: Sequence[str],
    reader_role_arns: Sequence[str] = (),
    client_root_access: bool = True,
) -> str:
    """Refuse unencrypted mounts; let the client roles mount and write, through the access
    point only; reader roles may only mount (without ClientWrite, EFS mounts read-only)."""
    write = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    if client_root_access:
        write.append("elasticfilesystem:ClientRootAccess")
    through_access_point = {"StringEquals": {"elasticfilesystem:AccessPointArn": access_point_arn}}
    # No writer roles: writers hold the grant in their own identity policy only (a role
    # created after the file system cannot be named here without a cycle).
    writers = []
    if client_role_arns:
        writers.append(
            {
                "Sid": "ClientThroughAccessPoint",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(client_role_arns)},
                # ClientRootAccess: for an access point acting as uid 0;
                # without it, IAM-authorized clients have root squashed.
                "Action": sorted(write),
                "Resource": file_system_arn,
                "Condition": through_access_point,
            }
        )
    readers = []
    if reader_role_arns:
        readers.append(
            {
                "Sid": "ReadOnlyThroughAccessPoint",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(reader_role_arns)},
                "Action": "elasticfilesystem:ClientMount",
                "Resource": file_system_arn,
                "Condition": through_access_point,
            }
        )
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyUnencryptedTransport",
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": "*",
                    "Resource": file_system_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
                *writers,
                *readers,
            ],
        },
        sort_keys=True,
    )


def efs_volume(name: str, file_system_id: str, access_point_id: str) -> dict:
    """A task definition volume: TLS in transit, IAM authorization, the access point's root."""
    return {
        "name": name,
        "efs_volume_configuration": {
            "file_system_id": file_system_id,
            # Mandatory with an access point and IAM authorization; root_directory must then
            # be omitted (the access point sets it).
            "transit_encryption": "ENABLED",
            "authorization_config": {"access_point_id": access_point_id, "iam": "ENABLED"},
        },
    }


@dataclass(frozen=True)
class EncryptedFileSystemArgs:
    vpc_id: pulumi.Input[str]
    # One mount target per availability zone (EFS allows no more).
    zonal_subnets: Sequence[ZonalSubnet]
    client_security_group_id: pulumi.Input[str]
    client_role_arns: Sequence[pulumi.Input[str]]
    root_path: str = "/data"
    # Owner of the access point's root; every client acts as this user.
    uid: int = 0
    gid: int = 0
    # Roles that may only mount, read-only (e.g. Envoys reading certificates).
    reader_role_arns: Sequence[pulumi.Input[str]] = ()
    # False: the writers act as `uid` only, never as root.
    client_root_access: bool = True


class EncryptedFileSystem(pulumi.ComponentResource):
    """EFS encrypted at rest, mount targets in the given subnets, NFS from clients only."""

    file_system: aws.efs.FileSystem
    access_point: aws.efs.AccessPoint
    mount_targets: list[aws.efs.MountTarget]
    security_group: aws.ec2.SecurityGroup

    def __init__(
        self, name: str, args: EncryptedFileSystemArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:efs:EncryptedFileSystem", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.file_system = aws.efs.FileSystem(
            name,
            encrypted=True,
            tags={"Name": physical_name(name)},
            opts=child,
        )
        self.access_point = aws.efs.AccessPoint(
            name,
            file_system_id=self.file_system.id,
            posix_user={"uid": args.uid, "gid": args.gid},
            root_directory={
                "path": args.root_path,
                "creation_info": {
                    "owner_uid": args.uid,
                    "owner_gid": args.gid,
                    "permissions": "0700",
                },
            },
            opts=child,
        )
        self.policy = aws.efs.FileSystemPolicy(
            name,
            file_system_id=self.file_system.id,
            policy=pulumi.Output.all(
                self.file_system.arn,
                self.access_point.arn,
                list(args.client_role_arns),
                list(args.reader_role_arns),
            ).apply(lambda v: file_system_policy(v[0], v[1], v[2], v[3], args.client_root_access)),
            opts=child,
        )
        self.security_group = security_group = aws.ec2.SecurityGroup(
            name, description="EFS: NFS from its clients only", vpc_id=args.vpc_id, opts=child
        )
        allow_tcp(
            f"{name}-nfs",
            security_group.id,
            2049,
            self,
            description="NFS over TLS from the clients",
            peer_group_id=args.client_security_group_id,
        )
        self.mount_targets = [
            aws.efs.MountTarget(
                f"{name}-{i}",
                file_system_id=self.file_system.id,
                subnet_id=subnet.subnet_id,
                security_groups=[security_group.id],
                opts=child,
            )
            for i, subnet in enumerate(args.zonal_subnets)
        ]
        self.register_outputs(
            {"fileSystemId": self.file_system.id, "accessPointId": self.access_point.id}
        )

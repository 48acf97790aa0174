"""One ECS container instance for host-networked tasks, kept in one availability zone.

The instance sits in the zone of the app's data volume, which it attaches at boot; the
Auto Scaling group replaces it there if it fails, and registers it with the NLB's target
groups as an instance target. Its tasks share the instance's network namespace, so only
root reaches the instance metadata service there (components/imds_guard.py).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import assume_role_policy, managed_policy_arn
from components.imds_guard import imds_guard_user_data
from components.naming import physical_name

# Resolved by EC2 when it launches an instance, not by `pulumi up`: a new ECS-optimised AMI
# changes nothing in the stack, and the next instance (a replacement, or an instance
# refresh: README) starts from it. [EC2 Auto Scaling user guide, "Use AWS Systems Manager
# parameters instead of AMI IDs in launch templates"]
ECS_AMI = "resolve:ssm:/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"

# The tag every instance of the group carries; the instance role may attach the data
# volume only to instances that carry it.
INSTANCE_TAG = "ecs-tls:instance-of"


def health_responder_unit(port: int) -> str:
    """A systemd unit answering the port-80 target group's health checks from boot.

    An NLB sends no traffic to an unhealthy target, so an ACME HTTP-01 request could not
    reach certbot (which listens only while it runs) without it: the seed's trick.
    """
    return f"""[Unit]
Description=Answers NLB health checks for the ACME HTTP-01 target group
After=network-online.target
[Service]
ExecStart=/usr/bin/python3 -m http.server {port} --directory /var/empty
DynamicUser=yes
Restart=always
[Install]
WantedBy=multi-user.target
"""


def instance_user_data(
    cluster_name: str,
    responder_port: int | None = None,
    before_agent: str = "",
    unprivileged_port_start: int | None = None,
) -> str:
    """Guard the metadata service, run `before_agent` (e.g. mounting the data volume),
    then join the cluster.

    The ECS agent's unit is only ordered after cloud-init; it starts even when user data
    fails (and then joins the `default` cluster). So what must hold before a task runs
    makes ecs.service itself depend on it: the metadata guard is required by it
    (components/imds_guard.py), the data volume script installs a drop-in that requires
    the mount (components/data_volume.sh).

    `unprivileged_port_start`: the lowest port non-root processes of the host namespace
    may bind (80 for certbot's HTTP-01 server); None keeps the kernel's 1024.
    """
    parts = [
        "#!/bin/bash",
        "set -euo pipefail",
        imds_guard_user_data(unprivileged_port_start).rstrip("\n"),
    ]
    if before_agent:
        parts.append(before_agent.rstrip("\n"))
    parts.append(
        "cat >>/etc/ecs/ecs.config <<'CONFIG'\n"
        f"ECS_CLUSTER={cluster_name}\n"
        "ECS_ENABLE_CONTAINER_METADATA=true\n"
        # A privileged container could lift the metadata guard (and anything else).
        "ECS_DISABLE_PRIVILEGED=true\n"
        "CONFIG"
    )
    if responder_port is not None:
        parts.append(
            "cat >/etc/systemd/system/health-responder.service <<'UNIT'\n"
            f"{health_responder_unit(responder_port)}UNIT\n"
            "systemctl daemon-reload\n"
            "systemctl enable --now health-responder.service"
        )
    return "\n".join(parts) + "\n"


@dataclass(frozen=True)
class ContainerInstancesArgs:
    cluster_name: pulumi.Input[str]
    subnet_id: pulumi.Input[str]  # one subnet: the zone of the data volume
    security_group_id: pulumi.Input[str]
    target_group_arns: Sequence[pulumi.Input[str]]
    instance_type: str
    responder_port: int | None = None  # http-01 only
    # Shell run before the instance joins the cluster, from plain values (an Output).
    before_agent: pulumi.Input[str] = ""
    # Extra permissions of the instance role (a policy document), e.g. attaching the volume.
    instance_policy: pulumi.Input[str] | None = None
    # Lowest port non-root processes of the host namespace may bind; None: the kernel's.
    unprivileged_port_start: int | None = None
    # A policy document of the instance role built from the group's name (known only once
    # the group exists), e.g. marking the instance Unhealthy in its own group.
    group_policy: Callable[[pulumi.Output[str]], pulumi.Input[str]] | None = None


class ContainerInstances(pulumi.ComponentResource):
    """One ECS-optimised instance (IMDSv2, hop limit 1, metadata for root only, no
    privileged containers, encrypted root disk, Session Manager for debugging instead of
    SSH) kept by an Auto Scaling group."""

    group: aws.autoscaling.Group
    role: aws.iam.Role

    def __init__(
        self, name: str, args: ContainerInstancesArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:ec2_capacity:ContainerInstances", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        self.role = role = aws.iam.Role(
            name,
            description="ECS container instance: join the cluster, attach the data volume",
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
            opts=child,
        )
        for suffix, policy in (
            ("ecs", "service-role/AmazonEC2ContainerServiceforEC2Role"),
            # Session Manager: a shell for debugging without SSH keys or an open port.
            ("ssm", "AmazonSSMManagedInstanceCore"),
        ):
            aws.iam.RolePolicyAttachment(
                f"{name}-{suffix}",
                role=role.name,
                policy_arn=partition.partition.apply(
                    lambda p, policy=policy: managed_policy_arn(p, policy)
                ),
                opts=child,
            )
        if args.instance_policy is not None:
            aws.iam.RolePolicy(
                name,
                name="attach-data-volume",
                role=role.id,
                policy=args.instance_policy,
                opts=child,
            )
        profile = aws.iam.InstanceProfile(name, role=role.name, opts=child)
        user_data = pulumi.Output.all(args.cluster_name, args.before_agent).apply(
            lambda v: base64.b64encode(
                instance_user_data(
                    v[0], args.responder_port, v[1], args.unprivileged_port_start
                ).encode()
            ).decode()
        )
        template = aws.ec2.LaunchTemplate(
            name,
            image_id=ECS_AMI,
            instance_type=args.instance_type,
            iam_instance_profile={"arn": profile.arn},
            vpc_security_group_ids=[args.security_group_id],
            # IMDSv2 only, one hop: nothing behind a further hop reaches it. Host-networked
            # containers share the instance's network namespace and would: the metadata
            # guard in the user data refuses them (components/imds_guard.py). IPv4 only,
            # the address the guard covers.
            metadata_options={
                "http_tokens": "required",
                "http_endpoint": "enabled",
                "http_put_response_hop_limit": 1,
                "http_protocol_ipv6": "disabled",
            },
            # The root volume is disposable (the data is on its own retained volume): said
            # explicitly, so no replaced or scaled-in instance leaves one behind whatever the
            # AMI's own mapping says (the emulator found them left after destroy).
            block_device_mappings=[
                {
                    "device_name": "/dev/xvda",
                    "ebs": {
                        "encrypted": "true",
                        "volume_type": "gp3",
                        "volume_size": 30,
                        "delete_on_termination": "true",
                    },
                }
            ],
            tag_specifications=[
                {
                    "resource_type": "instance",
                    "tags": {INSTANCE_TAG: physical_name(name), "Name": physical_name(name)},
                }
            ],
            user_data=user_data,
            opts=child,
        )
        self.group = aws.autoscaling.Group(
            name,
            min_size=1,
            max_size=1,
            desired_capacity=1,
            vpc_zone_identifiers=[args.subnet_id],
            target_group_arns=list(args.target_group_arns),
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            health_check_type="EC2",
            opts=child,
        )
        if args.group_policy is not None:
            # Granted once the group exists; the instance only uses it after its attach
            # timeout (components/data_volume.sh), long after.
            aws.iam.RolePolicy(
                f"{name}-group",
                name="own-auto-scaling-group",
                role=role.id,
                policy=args.group_policy(self.group.name),
                opts=child,
            )
        self.register_outputs({"autoScalingGroupName": self.group.name})

"""One ECS container instance for host-networked tasks, kept in one availability zone.

The instance sits in the zone of the app's data volume, which it attaches at boot; the
Auto Scaling group replaces it there if it fails, and registers it with the NLB's target
groups as an instance target. Its tasks share the instance's network namespace, so only
root reaches the instance metadata service there (task_contents/imds_guard.py).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.iam import assume_role_policy, managed_policy_arn
from components.naming import physical_name
from task_contents.imds_guard import imds_guard_user_data

# Resolved by EC2 when it launches an instance, not by `pulumi up`: a new ECS-optimised AMI
# changes nothing in the stack, and the next instance (a replacement, or an instance
# refresh: docs/day-2.md) starts from it. [EC2 Auto Scaling user guide, "Use AWS Systems Manager
# parameters instead of AMI IDs in launch templates"]
ECS_AMI = "resolve:ssm:/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
# The same for Graviton (arm64) instance types (Amazon ECS developer guide, "Retrieving
# Amazon ECS-optimized Linux AMI metadata").
ECS_AMI_ARM64 = (
    "resolve:ssm:/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id"
)
# Graviton families carry a "g" right after their generation (t4g, m7g, c7gn, r8gd, x2gd,
# im4gn, is4gen, g5g); a1 (Graviton 1) is arm64 too, but Amazon Linux 2023 does not run on
# it. x86 families never do (g5, g4dn, g6e: the "g" there is the GPU family).
_GRAVITON_FAMILY = re.compile(r"[a-z]+[0-9]+g[a-z-]*")


def instance_architecture(instance_type: str) -> str:
    """ "arm64" or "x86_64" for an EC2 instance type; ValueError for a1 (no AL2023 AMI)."""
    family = instance_type.partition(".")[0]
    if family == "a1":
        raise ValueError(
            f"{instance_type!r} is a Graviton 1 (a1) type, which the Amazon Linux 2023 "
            "ECS-optimized AMI does not support: use t4g, m7g, c7g, r7g or newer"
        )
    return "arm64" if _GRAVITON_FAMILY.fullmatch(family) else "x86_64"


def ecs_ami(instance_type: str) -> str:
    """The ECS-optimized AMI (an SSM parameter EC2 resolves) for the instance's CPU."""
    return ECS_AMI_ARM64 if instance_architecture(instance_type) == "arm64" else ECS_AMI


# The tag every instance of the group carries; the instance role may attach the data
# volume only to instances that carry it.
INSTANCE_TAG = "ecs-tls:instance-of"


# How long the group's termination lifecycle hook holds an instance for draining: the
# app's stop timeout (120 s) and the agent's reports fit, and it stays below the time a
# replacement waits for the data volume (task_contents/data_volume.py, 600 s).
DRAIN_HOOK_SECONDS = 300
DRAIN_SCRIPT_PATH = "/usr/local/sbin/ecs-tls-drain"
_DRAIN_SCRIPT = Path(__file__).resolve().parent.parent / "task_contents" / "drain_on_terminate.sh"
_CLUSTER_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")


def drain_script(cluster_name: str) -> str:
    """drain_on_terminate.sh with CLUSTER set after its first line, without comment-only
    and blank lines and indentation (user data holds 16 KiB; the script has no
    here-document or multi-line string they could belong to)."""
    if not _CLUSTER_NAME_RE.fullmatch(cluster_name):
        raise ValueError(f"not an ECS cluster name: {cluster_name!r}")
    first, _, rest = _DRAIN_SCRIPT.read_text().partition("\n")
    kept = [line.strip() for line in rest.splitlines()]
    body = "\n".join(line for line in kept if line and not line.startswith("#"))
    return f"{first}\nCLUSTER={cluster_name}\n{body}\n"


def drain_user_data(cluster_name: str) -> str:
    """Install the drain script and a unit that runs it from boot until termination."""
    return (
        f"cat >{DRAIN_SCRIPT_PATH} <<'DRAIN'\n{drain_script(cluster_name)}DRAIN\n"
        f"chmod 0700 {DRAIN_SCRIPT_PATH}\n"
        "cat >/etc/systemd/system/ecs-tls-drain.service <<'UNIT'\n"
        "[Unit]\n"
        "Description=Drain this ECS container instance when Auto Scaling terminates it\n"
        "After=ecs.service\n"
        "[Service]\n"
        f"ExecStart={DRAIN_SCRIPT_PATH}\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
        "UNIT\n"
        "systemctl daemon-reload\n"
        "systemctl enable --now --no-block ecs-tls-drain.service"
    )


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
    (task_contents/imds_guard.py), the data volume script installs a drop-in that requires
    the mount (task_contents/data_volume.sh).

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
    parts.append(drain_user_data(cluster_name))
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
    # A customer managed KMS key for the root volume; None: the account's default EBS key.
    kms_key_arn: str | None = None


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
            image_id=ecs_ami(args.instance_type),
            instance_type=args.instance_type,
            iam_instance_profile={"arn": profile.arn},
            vpc_security_group_ids=[args.security_group_id],
            # IMDSv2 only, one hop: nothing behind a further hop reaches it. Host-networked
            # containers share the instance's network namespace and would: the metadata
            # guard in the user data refuses them (task_contents/imds_guard.py). IPv4 only,
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
                        **({"kms_key_id": args.kms_key_arn} if args.kms_key_arn else {}),
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
        # Terminating instances wait here while they drain their tasks (drain_user_data);
        # they do not complete the action, the hook times out with CONTINUE.
        self.drain_hook = aws.autoscaling.LifecycleHook(
            name,
            name="drain-ecs-tasks",
            autoscaling_group_name=self.group.name,
            lifecycle_transition="autoscaling:EC2_INSTANCE_TERMINATING",
            heartbeat_timeout=DRAIN_HOOK_SECONDS,
            default_result="CONTINUE",
            opts=child,
        )
        if args.group_policy is not None:
            # Granted once the group exists; the instance only uses it after its attach
            # timeout (task_contents/data_volume.sh), long after.
            aws.iam.RolePolicy(
                f"{name}-group",
                name="own-auto-scaling-group",
                role=role.id,
                policy=args.group_policy(self.group.name),
                opts=child,
            )
        self.register_outputs({"autoScalingGroupName": self.group.name})

"""ECS container instances for host-networked tasks: an Auto Scaling group of ECS-optimised
instances registered with NLB target groups as instance targets."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import assume_role_policy, managed_policy_arn

ECS_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"


def instance_user_data(cluster_name: str, responder_port: int) -> str:
    """Join the cluster and answer health checks on `responder_port` from boot.

    The responder keeps the port-80 target group healthy before certbot listens there:
    an NLB sends no traffic to an unhealthy target, so an ACME HTTP-01 request could not
    reach certbot otherwise (the seed's health-check trick).
    """
    return f"""#!/bin/bash
set -euo pipefail
cat >>/etc/ecs/ecs.config <<'CONFIG'
ECS_CLUSTER={cluster_name}
ECS_ENABLE_CONTAINER_METADATA=true
CONFIG
cat >/etc/systemd/system/health-responder.service <<'UNIT'
[Unit]
Description=Answers NLB health checks for the ACME HTTP-01 target group
After=network-online.target
[Service]
ExecStart=/usr/bin/python3 -m http.server {responder_port} --directory /var/empty
DynamicUser=yes
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now health-responder.service
"""


@dataclass(frozen=True)
class ContainerInstancesArgs:
    cluster_name: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    security_group_id: pulumi.Input[str]
    target_group_arns: Sequence[pulumi.Input[str]]
    instance_type: str
    responder_port: int


class ContainerInstances(pulumi.ComponentResource):
    """One ECS-optimised instance (IMDSv2 only, encrypted disk) kept by an Auto Scaling group."""

    def __init__(
        self, name: str, args: ContainerInstancesArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:ec2_capacity:ContainerInstances", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        ami = aws.ssm.get_parameter_output(name=ECS_AMI_PARAMETER, opts=invoke).value
        role = aws.iam.Role(
            name,
            description="ECS container instance: register with the cluster",
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            name,
            role=role.name,
            policy_arn=partition.apply(
                lambda p: managed_policy_arn(p, "service-role/AmazonEC2ContainerServiceforEC2Role")
            ),
            opts=child,
        )
        profile = aws.iam.InstanceProfile(name, role=role.name, opts=child)
        template = aws.ec2.LaunchTemplate(
            name,
            image_id=ami,
            instance_type=args.instance_type,
            iam_instance_profile={"arn": profile.arn},
            vpc_security_group_ids=[args.security_group_id],
            metadata_options={"http_tokens": "required", "http_endpoint": "enabled"},
            block_device_mappings=[
                {
                    "device_name": "/dev/xvda",
                    "ebs": {"encrypted": "true", "volume_type": "gp3", "volume_size": 30},
                }
            ],
            user_data=pulumi.Output.from_input(args.cluster_name).apply(
                lambda cluster: base64.b64encode(
                    instance_user_data(cluster, args.responder_port).encode()
                ).decode()
            ),
            opts=child,
        )
        self.group = aws.autoscaling.Group(
            name,
            min_size=1,
            max_size=1,
            desired_capacity=1,
            vpc_zone_identifiers=args.subnet_ids,
            target_group_arns=list(args.target_group_arns),
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            health_check_type="EC2",
            opts=child,
        )
        self.register_outputs({"autoScalingGroupName": self.group.name})

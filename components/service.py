"""The Fargate task definition and service settings every topology shares."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from components.cluster import Cluster
from components.firewall import allow_tcp


def task_definition(
    name: str,
    family: str,
    cpu: int,
    memory: int,
    cluster: Cluster,
    container_definitions: pulumi.Input[str],
    parent: pulumi.Resource,
    task_role_arn: pulumi.Input[str] | None = None,
    volumes: pulumi.Input[Sequence[dict]] | None = None,
    launch_type: str = "FARGATE",
) -> aws.ecs.TaskDefinition:
    """A task run by the cluster's shared execution role: awsvpc on Fargate, host on EC2."""
    return aws.ecs.TaskDefinition(
        name,
        family=family,
        cpu=str(cpu),
        memory=str(memory),
        network_mode="awsvpc" if launch_type == "FARGATE" else "host",
        requires_compatibilities=[launch_type],
        execution_role_arn=cluster.execution_role.arn,
        task_role_arn=task_role_arn,
        volumes=volumes,
        # The one place every task's images pass: the cluster reads the program's from the
        # pull-through cache when it is on.
        container_definitions=cluster.resolve_images(container_definitions),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def fargate_service(
    name: str,
    cluster: Cluster,
    task_definition: aws.ecs.TaskDefinition,
    desired_count: int,
    subnet_ids: pulumi.Input[Sequence[str]],
    security_group_ids: Sequence[pulumi.Input[str]],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
    load_balancers: Sequence[dict] | None = None,
    service_connect: dict | None = None,
    assign_public_ip: bool = False,
    health_check_grace_seconds: int = 60,
    delete_before_replace: bool = False,
    service_registries: dict | None = None,
    enable_execute_command: bool = False,
) -> aws.ecs.Service:
    """A Fargate service that rolls back a failed deployment and makes `pulumi up` wait.

    `depends_on` lists what AWS needs in place before the first task starts (a listener,
    a secret and the right to read it, an installed CA certificate).
    """
    return aws.ecs.Service(
        name,
        cluster=cluster.cluster.arn,
        task_definition=task_definition.arn,
        desired_count=desired_count,
        launch_type="FARGATE",
        network_configuration={
            "subnets": subnet_ids,
            "security_groups": list(security_group_ids),
            "assign_public_ip": assign_public_ip,
        },
        load_balancers=load_balancers,
        # Only with a load balancer: ECS rejects a grace period without one.
        health_check_grace_period_seconds=health_check_grace_seconds if load_balancers else None,
        service_connect_configuration=service_connect,
        service_registries=service_registries,
        deployment_circuit_breaker={"enable": True, "rollback": True},
        propagate_tags="SERVICE",
        enable_ecs_managed_tags=True,
        # `pulumi up` reports a service that never becomes healthy instead of moving on.
        wait_for_steady_state=True,
        # Only when asked: other services keep their registered inputs.
        **({"enable_execute_command": True} if enable_execute_command else {}),
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=list(depends_on),
            delete_before_replace=delete_before_replace,
        ),
    )


def tasks_security_group(
    name: str, vpc_id: pulumi.Input[str], description: str, parent: pulumi.Resource
) -> aws.ec2.SecurityGroup:
    """A security group for tasks: no ingress yet, HTTPS out only.

    Fargate pulls images, reads secrets and ships logs through the task's own network
    interface, all over HTTPS. Callers add the ingress their topology needs.
    """
    group = aws.ec2.SecurityGroup(
        name, description=description, vpc_id=vpc_id, opts=pulumi.ResourceOptions(parent=parent)
    )
    allow_tcp(
        f"{name}-https-out",
        group.id,
        443,
        parent,
        description="HTTPS out: image registries, Secrets Manager, CloudWatch Logs",
        cidr="0.0.0.0/0",
        egress=True,
    )
    return group

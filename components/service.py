"""The Fargate task definition and service settings every topology shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from components.autoscaling import autoscale_service, capacity_provider_strategies
from components.cluster import Cluster
from components.firewall import allow_tcp
from settings.scaling import AutoscalingSettings, CapacityStrategy


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
    capacity: CapacityStrategy | None = None,
    autoscaling: AutoscalingSettings | None = None,
    request_label: pulumi.Input[str] | None = None,
    enable_execute_command: bool = False,
) -> aws.ecs.Service:
    """A Fargate service that rolls back a failed deployment and makes `pulumi up` wait.

    `depends_on` lists what AWS needs in place before the first task starts (a listener,
    a secret and the right to read it, an installed CA certificate). `capacity`: None keeps
    the FARGATE launch type; a strategy spreads tasks over FARGATE and FARGATE_SPOT.
    `autoscaling`: a scaler owns the task count once the service exists; `request_label`
    (components/autoscaling.py request_count_label) where an ALB target group fronts it.
    """
    service = aws.ecs.Service(
        name,
        cluster=cluster.cluster.arn,
        task_definition=task_definition.arn,
        desired_count=desired_count,
        launch_type="FARGATE" if capacity is None else None,
        capacity_provider_strategies=(
            capacity_provider_strategies(capacity) if capacity is not None else None
        ),
        # The AWS provider (6.x) refuses to change the strategy of a running service unless
        # the change starts a new deployment ("force_new_deployment should be true when
        # capacity_provider_strategy is being updated", aws_ecs_service): tasks move by a
        # rolling deployment. Only with a strategy, so a launch-type service sees no diff.
        force_new_deployment=True if capacity is not None else None,
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
            # With a scaler the count it sets stands: `up` sets desiredCount at creation only.
            ignore_changes=["desiredCount"] if autoscaling is not None else None,
        ),
    )
    if autoscaling is not None:
        autoscale_service(
            name, cluster.cluster.name, service, autoscaling, parent, request_label=request_label
        )
    return service


def service_outputs(services: Mapping[str, aws.ecs.Service]) -> dict[str, pulumi.Input]:
    """What an operator or another stack (StackReference) needs to find the services:
    `serviceName` and `serviceArn` for a topology of one, `serviceArns` by name otherwise."""
    if len(services) == 1:
        (service,) = services.values()
        return {"serviceName": service.name, "serviceArn": service.arn}
    return {"serviceArns": pulumi.Output.all(**{n: s.arn for n, s in services.items()})}


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

"""How a Fargate service scales (Application Auto Scaling) and where its tasks run
(Fargate or Fargate Spot): pure builders, and the resources built from them."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from settings.scaling import AutoscalingSettings, CapacityStrategy

# Application Auto Scaling defaults both cooldowns of an ECS target to 300 s (Application
# Auto Scaling user guide, "Target tracking scaling policies": cooldown period). Scale-out
# is shortened so that a burst gets tasks within a minute or two; scale-in keeps the default
# so that a short lull does not drop tasks the next burst needs.
SCALE_OUT_COOLDOWN_S = 60
SCALE_IN_COOLDOWN_S = 300

SCALABLE_DIMENSION = "ecs:service:DesiredCount"
METRICS = (
    ("cpu", "cpu_percent", "ECSServiceAverageCPUUtilization"),
    ("memory", "memory_percent", "ECSServiceAverageMemoryUtilization"),
    ("requests", "requests_per_target", "ALBRequestCountPerTarget"),
)


def capacity_provider_strategies(strategy: CapacityStrategy) -> list[dict]:
    """The service's strategy: only providers that take tasks (a weight or a base)."""
    items = []
    if strategy.fargate or strategy.base:
        items.append(
            {"capacity_provider": "FARGATE", "weight": strategy.fargate, "base": strategy.base}
        )
    if strategy.fargate_spot:
        items.append({"capacity_provider": "FARGATE_SPOT", "weight": strategy.fargate_spot})
    return items


def resource_id(cluster_name: str, service_name: str) -> str:
    """An ECS service as Application Auto Scaling names it."""
    return f"service/{cluster_name}/{service_name}"


def request_count_label(load_balancer_arn_suffix: str, target_group_arn_suffix: str) -> str:
    """ALBRequestCountPerTarget's resource label: app/<lb>/<id>/targetgroup/<tg>/<id>
    (Application Auto Scaling API reference, PredefinedMetricSpecification ResourceLabel)."""
    return f"{load_balancer_arn_suffix}/{target_group_arn_suffix}"


def tracked_metrics(scaling: AutoscalingSettings) -> list[tuple[str, str, int]]:
    """(short name, predefined metric, target value) of each metric the user set."""
    return [
        (short, metric, getattr(scaling, attribute))
        for short, attribute, metric in METRICS
        if getattr(scaling, attribute) is not None
    ]


def target_tracking_configuration(metric: str, target: int, label: str | None = None) -> dict:
    """A target tracking configuration; ALBRequestCountPerTarget needs the target group's
    `label` (request_count_label)."""
    specification = {"predefined_metric_type": metric}
    if metric == "ALBRequestCountPerTarget":
        if not label:
            raise ValueError("requests per target need the load balancer's target group")
        specification["resource_label"] = label
    return {
        "target_value": float(target),
        "predefined_metric_specification": specification,
        "scale_out_cooldown": SCALE_OUT_COOLDOWN_S,
        "scale_in_cooldown": SCALE_IN_COOLDOWN_S,
        # The policy removes tasks when load falls, not only adds them.
        "disable_scale_in": False,
    }


def serving_floor(desired_count: int, scaling: AutoscalingSettings | None) -> int:
    """The fewest healthy tasks a service should have: with a scaler, its minimum (a
    service scaled in to min is healthy; one scaled out and failing still drops below)."""
    return scaling.min if scaling is not None else desired_count


def autoscale_service(
    name: str,
    cluster_name: pulumi.Input[str],
    service: aws.ecs.Service,
    scaling: AutoscalingSettings,
    parent: pulumi.Resource,
    request_label: pulumi.Input[str] | None = None,
) -> tuple[aws.appautoscaling.Target, list[aws.appautoscaling.Policy]]:
    """The scalable target and its policies.

    No role is passed: Application Auto Scaling uses its service-linked role for ECS
    (AWSServiceRoleForApplicationAutoScaling_ECSService), which it creates on the first
    RegisterScalableTarget of the account.
    """
    opts = pulumi.ResourceOptions(parent=parent)
    target = aws.appautoscaling.Target(
        f"{name}-scaling",
        service_namespace="ecs",
        scalable_dimension=SCALABLE_DIMENSION,
        resource_id=pulumi.Output.all(cluster_name, service.name).apply(
            lambda v: resource_id(v[0], v[1])
        ),
        min_capacity=scaling.min,
        max_capacity=scaling.max,
        opts=opts,
    )

    made = []
    for short, metric, value in tracked_metrics(scaling):
        configuration = (
            pulumi.Output.from_input(request_label).apply(
                lambda label, m=metric, v=value: target_tracking_configuration(m, v, label)
            )
            if request_label is not None
            else target_tracking_configuration(metric, value)
        )
        made.append(
            aws.appautoscaling.Policy(
                f"{name}-scale-{short}",
                name=f"track-{short}",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                target_tracking_scaling_policy_configuration=configuration,
                opts=opts,
            )
        )
    return target, made

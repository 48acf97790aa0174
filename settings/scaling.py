"""Settings of how a Fargate service scales and where its tasks run: `autoscaling` and
`capacity`, of `app` and of each of `services`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from settings.errors import ConfigError, invalid
from settings.readers import read_integer, reject_unknown_keys

AUTOSCALING_KEYS = ("min", "max", "cpuPercent", "memoryPercent", "requestsPerTarget")
METRIC_KEYS = AUTOSCALING_KEYS[2:]
CAPACITY_WEIGHT_KEYS = ("fargate", "fargateSpot", "base")
# Most tasks a service may run: app.desiredCount and services[].desiredCount share it.
MAX_TASKS = 100


@dataclass(frozen=True)
class AutoscalingSettings:
    """Application Auto Scaling target tracking on the service's desired count."""

    min: int
    max: int
    cpu_percent: int | None = None  # ECSServiceAverageCPUUtilization
    memory_percent: int | None = None  # ECSServiceAverageMemoryUtilization
    requests_per_target: int | None = None  # ALBRequestCountPerTarget


@dataclass(frozen=True)
class CapacityStrategy:
    """A capacity provider strategy on the cluster's FARGATE and FARGATE_SPOT providers.

    Absent (None), the service keeps the FARGATE launch type it has always had.
    """

    fargate: int = 0  # relative weight of on-demand Fargate
    fargate_spot: int = 1  # relative weight of Fargate Spot
    base: int = 0  # tasks always on on-demand Fargate before the weights apply


def read_autoscaling(raw: Any, key: str, max_tasks: int = MAX_TASKS) -> AutoscalingSettings | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise invalid(
            key, raw, "an object {min, max, cpuPercent, memoryPercent, requestsPerTarget}"
        )
    reject_unknown_keys(raw, key, AUTOSCALING_KEYS)
    # Each value given is checked before what is missing, so the message names the value.
    limits = {"min": (0, max_tasks), "max": (1, max_tasks), "requestsPerTarget": (1, 1_000_000)}
    read = {
        name: read_integer(value, f"{key}.{name}", *limits.get(name, (1, 100)))
        for name, value in raw.items()
    }
    for bound in ("min", "max"):
        if bound not in read:
            raise ConfigError(f"{key}.{bound}", "is required with autoscaling")
    if read["max"] < read["min"]:
        raise invalid(f"{key}.max", read["max"], f"at least {key}.min ({read['min']})")
    if not any(m in read for m in METRIC_KEYS):
        raise ConfigError(
            key,
            "needs at least one metric to track: cpuPercent, memoryPercent or requestsPerTarget",
        )
    return AutoscalingSettings(
        min=read["min"],
        max=read["max"],
        cpu_percent=read.get("cpuPercent"),
        memory_percent=read.get("memoryPercent"),
        requests_per_target=read.get("requestsPerTarget"),
    )


def read_capacity(raw: Any, key: str) -> CapacityStrategy | None:
    """`fargate` (None: the launch type), `fargate-spot`, or weights of both."""
    if raw == "fargate":
        return None
    if raw == "fargate-spot":
        return CapacityStrategy()
    if not isinstance(raw, dict):
        raise invalid(key, raw, "fargate, fargate-spot or an object {fargate, fargateSpot, base}")
    reject_unknown_keys(raw, key, CAPACITY_WEIGHT_KEYS)
    # CapacityProviderStrategyItem: weight 0 to 1000, base 0 to 100000 (ECS API reference).
    fargate = read_integer(raw.get("fargate", 0), f"{key}.fargate", 0, 1000)
    spot = read_integer(raw.get("fargateSpot", 0), f"{key}.fargateSpot", 0, 1000)
    base = read_integer(raw.get("base", 0), f"{key}.base", 0, MAX_TASKS)
    if fargate == 0 and spot == 0:
        raise invalid(key, raw, "weights of which at least one is above 0")
    return CapacityStrategy(fargate=fargate, fargate_spot=spot, base=base)


def check_count(count: int, autoscaling: AutoscalingSettings | None, key: str) -> None:
    """The count a service starts with lies within the scaler's range, which it enforces at
    once: a count outside would be changed behind the user's back on the first `up`."""
    if autoscaling is None:
        return
    if not autoscaling.min <= count <= autoscaling.max:
        raise invalid(
            f"{key}.desiredCount",
            count,
            f"from {key}.autoscaling.min ({autoscaling.min}) to {key}.autoscaling.max "
            f"({autoscaling.max}): the count the service starts with, within the scaler's range",
        )


def refuse_requests(autoscaling: AutoscalingSettings | None, key: str, why: str) -> None:
    if autoscaling is not None and autoscaling.requests_per_target is not None:
        raise ConfigError(
            f"{key}.autoscaling.requestsPerTarget",
            f"needs an Application Load Balancer target group in front of the service; {why}",
        )


def check_scaling(s: Any) -> None:
    """What depends on the topology: where a load balancer counts requests, the counts."""
    if s.topology in ("alb-envoy", "direct-task"):
        check_count(s.app.desired_count, s.app.autoscaling, "app")
        if s.topology == "direct-task":
            refuse_requests(s.app.autoscaling, "app", "direct-task has no load balancer")
    if s.topology not in ("service-connect", "appmesh-efs"):
        return
    for i, service in enumerate(s.services):
        key = f"services[{i}]"
        check_count(service.desired_count, service.autoscaling, key)
        if s.topology == "appmesh-efs":
            refuse_requests(
                service.autoscaling,
                key,
                "in appmesh-efs the services sit behind the gateway, not a load balancer",
            )
        elif not (service.public and s.ingress == "alb"):
            refuse_requests(
                service.autoscaling,
                key,
                "only the public service with ingress 'alb' has one",
            )

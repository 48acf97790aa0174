"""Autoscaling of the app (alb-envoy, direct-task) and of each service (service-connect,
appmesh-efs): Application Auto Scaling target tracking, the count left to the scaler, and
alarms that count from the scaler's minimum."""

from __future__ import annotations

import copy

import pytest

from components.autoscaling import (
    SCALE_IN_COOLDOWN_S,
    SCALE_OUT_COOLDOWN_S,
    request_count_label,
    resource_id,
    serving_floor,
    target_tracking_configuration,
    tracked_metrics,
)
from scripts.mock_runtime import config_error, run_program
from settings.scaling import AutoscalingSettings
from tests.conftest import MINIMAL_CONFIG

TARGET = "aws:appautoscaling/target:Target"
POLICY = "aws:appautoscaling/policy:Policy"
SERVICE = "aws:ecs/service:Service"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
WEB = {"name": "web", "image": "nginx", "port": 80}


def config(topology: str, **patch) -> dict:
    out = copy.deepcopy(MINIMAL_CONFIG[topology])
    out.update(copy.deepcopy(patch))
    return out


def alarm_on(graph, metric: str):
    (alarm,) = [a for a in graph.of_type(ALARM) if a.inputs.get("metricName") == metric]
    return alarm


# ------------------------------------------------------------------ pure builders


def test_each_metric_set_gets_one_policy_and_only_those():
    scaling = AutoscalingSettings(min=1, max=4, cpu_percent=60, requests_per_target=500)
    assert tracked_metrics(scaling) == [
        ("cpu", "ECSServiceAverageCPUUtilization", 60),
        ("requests", "ALBRequestCountPerTarget", 500),
    ]


def test_a_policy_scales_in_as_well_as_out_with_the_documented_cooldowns():
    configuration = target_tracking_configuration("ECSServiceAverageMemoryUtilization", 70)
    assert configuration == {
        "target_value": 70.0,
        "predefined_metric_specification": {
            "predefined_metric_type": "ECSServiceAverageMemoryUtilization"
        },
        "scale_out_cooldown": SCALE_OUT_COOLDOWN_S,
        "scale_in_cooldown": SCALE_IN_COOLDOWN_S,
        "disable_scale_in": False,
    }
    # Application Auto Scaling's own default for ECS is 300 s both ways: scale-in keeps it.
    assert (SCALE_OUT_COOLDOWN_S, SCALE_IN_COOLDOWN_S) == (60, 300)


def test_requests_per_target_name_the_target_group_and_need_one():
    label = request_count_label("app/web/0123456789abcdef", "targetgroup/web/fedcba9876543210")
    assert label == "app/web/0123456789abcdef/targetgroup/web/fedcba9876543210"
    spec = target_tracking_configuration("ALBRequestCountPerTarget", 500, label)[
        "predefined_metric_specification"
    ]
    assert spec == {"predefined_metric_type": "ALBRequestCountPerTarget", "resource_label": label}
    with pytest.raises(ValueError):
        target_tracking_configuration("ALBRequestCountPerTarget", 500)


def test_the_scalable_resource_is_the_service_in_its_cluster():
    assert resource_id("ecs-tls-dev", "web-1a2b3c") == "service/ecs-tls-dev/web-1a2b3c"


def test_alarms_count_from_the_scaler_s_minimum_else_the_desired_count():
    assert serving_floor(3, None) == 3
    assert serving_floor(3, AutoscalingSettings(min=1, max=6, cpu_percent=50)) == 1


# ------------------------------------------------------------------ graphs


@pytest.fixture(scope="module")
def alb_envoy():
    scaling = {"min": 1, "max": 4, "cpuPercent": 60, "requestsPerTarget": 500}
    return run_program(config("alb-envoy", app={"desiredCount": 2, "autoscaling": scaling}))


def test_alb_envoy_service_is_a_scalable_target_of_its_cluster(alb_envoy):
    service = alb_envoy.one(SERVICE)
    cluster = alb_envoy.one("aws:ecs/cluster:Cluster")
    target = alb_envoy.one(TARGET)
    assert target.inputs["resourceId"] == (
        f"service/{cluster.outputs['name']}/{service.outputs['name']}"
    )
    assert target.inputs["scalableDimension"] == "ecs:service:DesiredCount"
    assert target.inputs["serviceNamespace"] == "ecs"
    assert (target.inputs["minCapacity"], target.inputs["maxCapacity"]) == (1, 4)
    # No role: AWS's service-linked role for ECS scaling is used (and created on first use).
    assert "roleArn" not in target.inputs


def test_alb_envoy_tracks_cpu_and_requests_on_its_own_target_group(alb_envoy):
    policies = {p.inputs["name"]: p for p in alb_envoy.of_type(POLICY)}
    assert set(policies) == {"track-cpu", "track-requests"}
    target = alb_envoy.one(TARGET)
    for policy in policies.values():
        assert policy.inputs["policyType"] == "TargetTrackingScaling"
        assert policy.inputs["resourceId"] == target.inputs["resourceId"]
        assert policy.inputs["targetTrackingScalingPolicyConfiguration"]["disableScaleIn"] is False
    spec = policies["track-requests"].inputs["targetTrackingScalingPolicyConfiguration"][
        "predefinedMetricSpecification"
    ]
    lb = alb_envoy.one("aws:lb/loadBalancer:LoadBalancer")
    group = alb_envoy.one("aws:lb/targetGroup:TargetGroup")
    assert spec["resourceLabel"] == f"{lb.outputs['arnSuffix']}/{group.outputs['arnSuffix']}"


def test_alb_envoy_leaves_the_count_to_the_scaler(alb_envoy):
    service = alb_envoy.one(SERVICE)
    assert service.inputs["desiredCount"] == 2  # the count it starts with
    assert service.ignore_changes == ["desiredCount"]


def test_alb_envoy_alarm_counts_from_the_minimum(alb_envoy):
    # desiredCount 2, min 1: a service the scaler took down to one task is healthy.
    assert alarm_on(alb_envoy, "HealthyHostCount").inputs["threshold"] == 1


def test_without_autoscaling_nothing_changes_for_an_existing_stack():
    graph = run_program(MINIMAL_CONFIG["alb-envoy"])
    assert not graph.of_type(TARGET) and not graph.of_type(POLICY)
    service = graph.one(SERVICE)
    assert service.ignore_changes == []
    assert alarm_on(graph, "HealthyHostCount").inputs["threshold"] == 2


def test_direct_task_scales_on_cpu_and_its_task_alarm_counts_from_the_minimum():
    scaling = {"min": 1, "max": 3, "cpuPercent": 70}
    graph = run_program(config("direct-task", app={"desiredCount": 2, "autoscaling": scaling}))
    (policy,) = graph.of_type(POLICY)
    spec = policy.inputs["targetTrackingScalingPolicyConfiguration"]
    assert spec["predefinedMetricSpecification"] == {
        "predefinedMetricType": "ECSServiceAverageCPUUtilization"
    }
    assert graph.one(SERVICE).ignore_changes == ["desiredCount"]
    assert alarm_on(graph, "RunningTaskCount").inputs["threshold"] == 1


def test_service_connect_scales_each_service_and_counts_requests_on_the_public_one():
    services = [
        {
            **WEB,
            "public": True,
            "desiredCount": 3,
            "autoscaling": {"min": 2, "max": 6, "requestsPerTarget": 800},
        },
        {**WEB, "name": "api", "autoscaling": {"min": 2, "max": 5, "memoryPercent": 75}},
        {**WEB, "name": "worker"},
    ]
    graph = run_program(config("service-connect", services=services))
    targets = {t.name: t for t in graph.of_type(TARGET)}
    assert set(targets) == {"service-connect-web-scaling", "service-connect-api-scaling"}
    by_service = {s.name: s for s in graph.of_type(SERVICE)}
    assert by_service["service-connect-worker"].ignore_changes == []
    for name in ("web", "api"):
        service = by_service[f"service-connect-{name}"]
        assert service.ignore_changes == ["desiredCount"]
        assert (
            targets[f"service-connect-{name}-scaling"]
            .inputs["resourceId"]
            .endswith("/" + service.outputs["name"])
        )
    policies = {p.name: p for p in graph.of_type(POLICY)}
    assert set(policies) == {
        "service-connect-web-scale-requests",
        "service-connect-api-scale-memory",
    }
    lb = graph.one("aws:lb/loadBalancer:LoadBalancer")
    group = graph.one("aws:lb/targetGroup:TargetGroup")
    spec = policies["service-connect-web-scale-requests"].inputs[
        "targetTrackingScalingPolicyConfiguration"
    ]["predefinedMetricSpecification"]
    assert spec["resourceLabel"] == f"{lb.outputs['arnSuffix']}/{group.outputs['arnSuffix']}"
    assert alarm_on(graph, "HealthyHostCount").inputs["threshold"] == 2


def test_appmesh_services_scale_each_within_what_cloud_map_answers():
    services = [{**WEB, "autoscaling": {"min": 2, "max": 8, "cpuPercent": 50}}]
    graph = run_program(config("appmesh-efs", services=services))
    target = graph.one(TARGET)
    assert target.inputs["maxCapacity"] == 8
    (service,) = [s for s in graph.of_type(SERVICE) if s.name == "appmesh-efs-web"]
    assert service.ignore_changes == ["desiredCount"]
    # The gateway is not scaled: its count stays under `up`.
    (gateway,) = [s for s in graph.of_type(SERVICE) if s.name == "appmesh-efs-gateway"]
    assert gateway.ignore_changes == []


# ------------------------------------------------------------------ refused


@pytest.mark.parametrize(
    ("topology", "patch", "key", "words"),
    [
        (
            "nlb-certbot",
            {"app": {"autoscaling": {"min": 1, "max": 2, "cpuPercent": 50}}},
            "app.autoscaling",
            "one database instance",
        ),
        (
            "direct-task",
            {"app": {"autoscaling": {"min": 1, "max": 2, "requestsPerTarget": 50}}},
            "app.autoscaling.requestsPerTarget",
            "no load balancer",
        ),
        (
            "appmesh-efs",
            {"services": [{**WEB, "autoscaling": {"min": 1, "max": 2, "requestsPerTarget": 9}}]},
            "services[0].autoscaling.requestsPerTarget",
            "gateway",
        ),
        (
            "service-connect",
            {
                "services": [
                    {**WEB, "public": True},
                    {
                        **WEB,
                        "name": "api",
                        "autoscaling": {"min": 1, "max": 2, "requestsPerTarget": 9},
                    },
                ]
            },
            "services[1].autoscaling.requestsPerTarget",
            "public service",
        ),
        (
            "service-connect",
            {
                "ingress": "nlb",
                "services": [{**WEB, "autoscaling": {"min": 1, "max": 2, "requestsPerTarget": 9}}],
            },
            "services[0].autoscaling.requestsPerTarget",
            "ingress 'alb'",
        ),
        (
            "alb-envoy",
            {"app": {"desiredCount": 5, "autoscaling": {"min": 1, "max": 4, "cpuPercent": 50}}},
            "app.desiredCount",
            "app.autoscaling.max (4)",
        ),
        (
            "alb-envoy",
            {"app": {"autoscaling": {"min": 3, "max": 4, "cpuPercent": 50}}},
            "app.desiredCount",
            "app.autoscaling.min (3)",
        ),
        (
            "alb-envoy",
            {"app": {"autoscaling": {"min": 1, "max": 4}}},
            "app.autoscaling",
            "at least one metric",
        ),
        (
            "appmesh-efs",
            {"services": [{**WEB, "autoscaling": {"min": 1, "max": 9, "cpuPercent": 50}}]},
            "services[0].autoscaling.max",
            "Cloud Map",
        ),
    ],
    ids=[
        "nlb-certbot",
        "direct-task-requests",
        "appmesh-requests",
        "service-connect-private-requests",
        "service-connect-nlb-requests",
        "count-above-max",
        "count-below-min",
        "no-metric",
        "appmesh-over-cloud-map",
    ],
)
def test_autoscaling_refused_where_it_cannot_work(topology, patch, key, words):
    message = config_error(config(topology, **patch))
    assert message.startswith(f"ecs-tls:{key}:"), message
    assert words in message, message

"""Alerts reach a person: the e-mail subscription in every topology, a dead-letter queue
with an alarm behind every schedule and event target, and an alarm when a topology stops
serving. Pure builders first, then every shipped stack under mocks."""

from __future__ import annotations

import json

import pytest

from components.alerts import (
    DEAD_LETTER_RETENTION_S,
    DIRECT_TASK_SUBSCRIPTION,
    dead_letter_alarm_args,
    dead_letter_queue_name,
    dead_letter_queue_policy,
    dead_letter_send_statement,
    healthy_targets_alarm_args,
    running_tasks_alarm_args,
    serving_alarm_args,
)
from scripts import mock_runtime
from scripts.emulator.aws_rules import RULES
from scripts.mock_runtime import ACCOUNT, REGION, Graph, unwrap
from scripts.plan import load_stack
from scripts.plan import shipped as shipped_stacks
from tests.conftest import MINIMAL_CONFIG
from tests.iam_conditions import allowed

TOPIC = "arn:aws:sns:eu-west-1:123456789012:alerts"
STACK_FILES = shipped_stacks()
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:ecs-tls-dev-undelivered-events"


# --------------------------------------------------------------------------- pure builders


def test_the_dead_letter_queue_name_fits_sqs_and_says_what_it_holds():
    (rule,) = [r for r in RULES if r.id == "sqs-queue-name"]
    assert dead_letter_queue_name("ecs-tls-dev") == "ecs-tls-dev-undelivered-events"
    for stack in ("ecs-tls-prod.eu", "ecs-tls-" + "x" * 120, "a.b.c"):
        name = dead_letter_queue_name(stack)
        assert rule.violation(name) is None, name
        assert name.endswith("-undelivered-events")


def test_only_rules_of_this_account_and_region_may_send_dead_letters():
    policy = json.loads(dead_letter_queue_policy(QUEUE_ARN, "aws", REGION, ACCOUNT))
    (statement,) = policy["Statement"]
    send = ("sqs:SendMessage", QUEUE_ARN)
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage" and statement["Resource"] == QUEUE_ARN
    rule = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/ecs-tls-dev-renewal-failed"
    context = {"aws:SourceArn": rule, "aws:SourceAccount": ACCOUNT}
    assert allowed(policy, *send, context)
    for other in (
        {**context, "aws:SourceArn": f"arn:aws:events:{REGION}:210987654321:rule/x"},
        {**context, "aws:SourceAccount": "210987654321"},
        # A schedule's dead letters come with its role, never through this policy.
        {**context, "aws:SourceArn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/x"},
    ):
        assert not allowed(policy, *send, other), other


def test_a_schedule_role_may_send_to_the_queue_only():
    assert dead_letter_send_statement(QUEUE_ARN).to_dict() == {
        "Sid": "SendDeadLetters",
        "Effect": "Allow",
        "Action": ["sqs:SendMessage"],
        "Resource": [QUEUE_ARN],
    }


def test_one_waiting_dead_letter_alarms_and_an_idle_queue_does_not():
    args = dead_letter_alarm_args("q", TOPIC)
    assert (args["namespace"], args["metric_name"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
    )
    assert args["dimensions"] == {"QueueName": "q"}
    assert (args["statistic"], args["period"], args["evaluation_periods"]) == ("Maximum", 300, 1)
    assert (args["comparison_operator"], args["threshold"]) == (
        "GreaterThanOrEqualToThreshold",
        1,
    )
    assert args["treat_missing_data"] == "notBreaching"
    assert args["alarm_actions"] == args["ok_actions"] == [TOPIC]


@pytest.mark.parametrize(
    ("kind", "namespace"), [("application", "AWS/ApplicationELB"), ("network", "AWS/NetworkELB")]
)
def test_healthy_targets_below_the_desired_count_alarm(kind, namespace):
    args = healthy_targets_alarm_args(kind, "app/lb/1", "targetgroup/tg/2", 3, TOPIC)
    assert (args["namespace"], args["metric_name"]) == (namespace, "HealthyHostCount")
    assert args["dimensions"] == {"TargetGroup": "targetgroup/tg/2", "LoadBalancer": "app/lb/1"}
    assert (args["comparison_operator"], args["threshold"]) == ("LessThanThreshold", 3)
    assert (args["statistic"], args["period"]) == ("Minimum", 60)
    assert args["evaluation_periods"] == args["datapoints_to_alarm"] == 3
    # No datapoint is the worst case, not a quiet one.
    assert args["treat_missing_data"] == "breaching"
    assert args["alarm_actions"] == args["ok_actions"] == [TOPIC]


def test_running_tasks_below_the_desired_count_alarm():
    args = running_tasks_alarm_args("cluster", "service", 2, TOPIC)
    assert (args["namespace"], args["metric_name"]) == (
        "ECS/ContainerInsights",
        "RunningTaskCount",
    )
    assert args["dimensions"] == {"ClusterName": "cluster", "ServiceName": "service"}
    assert (args["threshold"], args["treat_missing_data"]) == (2, "breaching")


def test_a_service_scaled_to_zero_gets_no_serving_alarm():
    with pytest.raises(ValueError, match="zero"):
        serving_alarm_args("AWS/ApplicationELB", "HealthyHostCount", {}, 0, TOPIC)


# --------------------------------------------------------------------------- every stack


def _outputs_with_target_group_suffix(args):
    """The mocks' outputs, plus the `arnSuffix` AWS returns for a target group."""
    resource_id, state = ORIGINAL_OUTPUTS(args)
    if args.typ == "aws:lb/targetGroup:TargetGroup":
        state["arnSuffix"] = "targetgroup/" + state["arn"].rsplit(":", 1)[1]
    return resource_id, state


ORIGINAL_OUTPUTS = mock_runtime._resource_outputs


def build(config: dict, stack: str = "dev", secret_keys: tuple[str, ...] = ()) -> Graph:
    # Not the shared cache: these graphs carry target group suffixes the others lack.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mock_runtime, "_resource_outputs", _outputs_with_target_group_suffix)
        return mock_runtime._run(config, stack, secret_keys)


@pytest.fixture(scope="module", params=sorted(STACK_FILES))
def shipped(request) -> Graph:
    stack, source = load_stack(str(STACK_FILES[request.param]))
    secrets = tuple(sorted(mock_runtime._namespaced(k) for k in source.secret_keys))
    return build(source.config, stack, secrets)


def schedules_and_targets(graph: Graph):
    yield from graph.of_type("aws:scheduler/schedule:Schedule")
    yield from graph.of_type("aws:cloudwatch/eventTarget:EventTarget")


def test_every_schedule_and_event_target_has_the_dead_letter_queue(shipped):
    (queue,) = shipped.of_type("aws:sqs/queue:Queue")
    assert shipped.ancestors(queue)[-1].type == "ecs-tls:alerts:Alerts"
    senders = list(schedules_and_targets(shipped))
    inputs = unwrap(queue.inputs)
    assert inputs["messageRetentionSeconds"] == DEAD_LETTER_RETENTION_S == 14 * 86400
    assert inputs["sqsManagedSseEnabled"] is True
    assert inputs["name"].endswith("-undelivered-events")
    arn = queue.outputs["arn"]
    for sender in senders:
        config = unwrap(sender.inputs)
        target = config.get("target", config)
        assert target.get("deadLetterConfig") == {"arn": arn}, sender.name
    policy = json.loads(unwrap(shipped.one("aws:sqs/queuePolicy:QueuePolicy").inputs["policy"]))
    assert policy == json.loads(dead_letter_queue_policy(arn, "aws", REGION, ACCOUNT))
    (alarm,) = [a for a in shipped.of_type(ALARM) if a.inputs["namespace"] == "AWS/SQS"]
    assert alarm.inputs["dimensions"] == {"QueueName": inputs["name"]}
    assert alarm.inputs["alarmActions"] == [shipped.one("aws:sns/topic:Topic").outputs["arn"]]
    assert inputs["name"] in alarm.inputs["alarmDescription"]


def test_every_schedule_role_may_send_its_dead_letters(shipped):
    arn = None
    roles = {r.outputs["arn"]: r for r in shipped.of_type("aws:iam/role:Role")}
    for schedule in shipped.of_type("aws:scheduler/schedule:Schedule"):
        arn = arn or shipped.one("aws:sqs/queue:Queue").outputs["arn"]
        role = roles[unwrap(schedule.inputs["target"])["roleArn"]]
        statements = [
            s
            for p in shipped.of_type("aws:iam/rolePolicy:RolePolicy")
            if p.inputs["role"] == role.id
            for s in json.loads(unwrap(p.inputs["policy"]))["Statement"]
        ]
        send = [s for s in statements if s["Sid"] == "SendDeadLetters"]
        assert send == [dead_letter_send_statement(arn).to_dict()], schedule.name


def test_every_target_group_has_a_healthy_targets_alarm(shipped):
    topic = shipped.one("aws:sns/topic:Topic").outputs["arn"]
    balancers = {
        lb.outputs["arnSuffix"]: lb for lb in shipped.of_type("aws:lb/loadBalancer:LoadBalancer")
    }
    alarms = [a for a in shipped.of_type(ALARM) if a.inputs["metricName"] == "HealthyHostCount"]
    groups = shipped.of_type("aws:lb/targetGroup:TargetGroup")
    watched = {unwrap(a.inputs["dimensions"])["TargetGroup"]: a for a in alarms}
    assert set(watched) == {g.outputs["arnSuffix"] for g in groups}
    for alarm in alarms:
        inputs = unwrap(alarm.inputs)
        lb = balancers[inputs["dimensions"]["LoadBalancer"]]
        kind = unwrap(lb.inputs["loadBalancerType"])
        assert inputs["namespace"] == {"application": "AWS/ApplicationELB"}.get(
            kind, "AWS/NetworkELB"
        )
        assert inputs["threshold"] >= 1 and inputs["treatMissingData"] == "breaching"
        assert inputs["alarmActions"] == [topic]


def test_direct_task_counts_running_tasks_with_container_insights(shipped):
    services = {s.outputs["name"] for s in shipped.of_type("aws:ecs/service:Service")}
    counted = [a for a in shipped.of_type(ALARM) if a.inputs["metricName"] == "RunningTaskCount"]
    if not shipped.of_type("ecs-tls:direct_task:DirectTask"):
        assert counted == []
        return
    (alarm,) = counted
    dimensions = unwrap(alarm.inputs["dimensions"])
    cluster = shipped.one("aws:ecs/cluster:Cluster")
    assert dimensions["ClusterName"] == unwrap(cluster.inputs["name"])
    assert dimensions["ServiceName"] in services
    # The metric exists only with Container Insights on.
    assert {"name": "containerInsights", "value": "enabled"} in unwrap(cluster.inputs["settings"])


def test_alarm_names_and_descriptions_obey_cloudwatch(shipped):
    rules = {r.id: r for r in RULES}
    for alarm in shipped.of_type(ALARM):
        name = alarm.outputs["name"]
        assert rules["cloudwatch-alarm"].violation(name) is None
        description = unwrap(alarm.inputs["alarmDescription"])
        assert rules["cloudwatch-alarm-description"].violation(description) is None


# --------------------------------------------------------------------------- e-mail


@pytest.mark.parametrize("topology", sorted(MINIMAL_CONFIG))
def test_alerts_email_subscribes_the_address_in_every_topology(topology):
    config = {**MINIMAL_CONFIG[topology], "alertsEmail": "on-call@example.com"}
    graph = build(config)
    (subscription,) = graph.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert subscription.name == "alerts-email"
    assert graph.ancestors(subscription)[-1].type == "ecs-tls:alerts:Alerts"
    inputs = unwrap(subscription.inputs)
    assert (inputs["protocol"], inputs["endpoint"]) == ("email", "on-call@example.com")
    assert inputs["topic"] == graph.one("aws:sns/topic:Topic").outputs["arn"]


def test_no_subscription_without_an_address():
    graph = build(MINIMAL_CONFIG["alb-envoy"])
    assert graph.of_type("aws:sns/topicSubscription:TopicSubscription") == []


def test_a_direct_task_subscription_made_before_keeps_its_confirmation():
    # Its name and parent before the subscription moved to the foundation.
    assert DIRECT_TASK_SUBSCRIPTION.name == "direct-task-alerts-email"

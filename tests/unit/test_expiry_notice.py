"""Every certificate generated at deploy time has an expiry notice, or an ACM alarm.

The pure builders (the `at()` expression, the message, names, the role's rights) are tested
as functions; then every shipped stack, and the config branches that change which
certificates exist, is built under mocks and every pulumi-tls certificate in its graph,
found by type, must be watched: by a one-time schedule computed from its own
`validity_end_time`, or by a DaysToExpiry alarm on the ACM certificate made from it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from components.alerts import CERTIFICATE_METRIC_NAMESPACE
from components.expiry_notice import (
    LATE_NOTICE_DELAY,
    LOGICAL_NAME_MAX,
    at_expression,
    notice_message,
    notice_time,
    pem_validity_end,
    publish_statements,
    schedule_logical_name,
)
from components.iam import policy_document
from scripts.emulator.aws_rules import full_match, model_constraints
from scripts.mock_runtime import ACCOUNT, REGION, Graph, Resource, run_program, unwrap
from scripts.pki import make_pki
from scripts.plan import load_stack
from scripts.plan import shipped as shipped_stacks
from settings.errors import ConfigError
from settings.parse import parse_certificate_expiry_alarm_days
from tests.conftest import MINIMAL_CONFIG

EARLY = datetime(2026, 1, 1, tzinfo=UTC)  # a `now` long before any notice below
SCHEDULE = "aws:scheduler/schedule:Schedule"
STACK_FILES = shipped_stacks()
DEFAULT_THRESHOLD = 30  # certificateExpiryAlarmDays when unset


# --------------------------------------------------------------------------- at()


def test_notice_is_threshold_days_before_the_end():
    assert at_expression("2027-03-01T12:34:56Z", 30, EARLY) == "at(2027-01-30T12:34:56)"


def test_a_leap_day_is_a_day():
    assert at_expression("2028-03-30T08:15:00Z", 30, EARLY) == "at(2028-02-29T08:15:00)"
    assert at_expression("2028-03-01T00:00:00Z", 1, EARLY) == "at(2028-02-29T00:00:00)"


@pytest.mark.parametrize(
    "end",
    [
        "2027-06-01T00:00:00Z",
        "2027-06-01T00:00:00z",
        "2027-06-01T00:00:00+00:00",
        "2027-06-01T02:00:00+02:00",  # an offset is converted, not dropped
        "2027-05-31T19:00:00-05:00",
        "2027-06-01T00:00:00.999999Z",  # at() takes whole seconds
    ],
)
def test_time_zones_become_utc(end):
    assert at_expression(end, 10, EARLY) == "at(2027-05-22T00:00:00)"


def test_a_time_without_zone_is_refused():
    with pytest.raises(ValueError, match="no time zone"):
        at_expression("2027-06-01T00:00:00", 10, EARLY)


@pytest.mark.parametrize("days", [0, -1])
def test_threshold_must_be_positive(days):
    with pytest.raises(ValueError, match="at least 1"):
        at_expression("2027-06-01T00:00:00Z", days, EARLY)


def test_a_notice_already_due_fires_minutes_after_the_deploy():
    now = datetime(2027, 5, 25, 10, 0, 30, 123456, tzinfo=UTC)
    assert notice_time("2027-06-01T00:00:00Z", 10, now) == datetime(
        2027, 5, 25, 10, 5, 30, tzinfo=UTC
    )
    # Also when the certificate has already expired.
    assert at_expression("2027-01-01T00:00:00Z", 10, now) == "at(2027-05-25T10:05:30)"


def test_a_notice_due_within_the_delay_is_moved_to_the_delay():
    due = datetime(2027, 5, 22, tzinfo=UTC)
    now = due - LATE_NOTICE_DELAY + timedelta(seconds=1)
    assert notice_time("2027-06-01T00:00:00Z", 10, now) == now + LATE_NOTICE_DELAY - timedelta(
        microseconds=now.microsecond
    )
    assert notice_time("2027-06-01T00:00:00Z", 10, due - LATE_NOTICE_DELAY * 2) == due


def test_a_future_notice_does_not_depend_on_the_clock():
    """A later `up` computes the same expression: the schedule shows no diff."""
    end = "2027-06-01T00:00:00Z"
    assert {at_expression(end, 30, EARLY + timedelta(days=d)) for d in (0, 1, 100, 400)} == {
        "at(2027-05-02T00:00:00)"
    }


def test_the_expression_fits_schedulers_model():
    expression = at_expression("2027-06-01T00:00:00Z", 30, EARLY)
    limits = model_constraints("scheduler:CreateSchedule:ScheduleExpression")
    assert limits["min"] <= len(expression) <= limits["max"]


def test_the_end_of_a_real_certificate():
    not_after = datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC)
    pem = make_pki("app.example.com", not_after=not_after, label="leap").leaf_pem
    assert pem_validity_end(pem) == "2028-02-29T23:59:59Z"
    assert at_expression(pem_validity_end(pem), 45, EARLY) == "at(2028-01-15T23:59:59)"


# --------------------------------------------------------------------------- message


def test_message_names_the_certificate_its_expiry_and_what_to_do():
    text = notice_message(
        "the private root CA of app.example.com", "2036-02-29T10:00:00Z", 30, "Run `pulumi up`."
    )
    message = json.loads(text)
    assert list(message) == ["notice", "certificate", "expires"]  # the sentence first
    assert message["notice"] == (
        "The private root CA of app.example.com expires on 2036-02-29 10:00 UTC, "
        "in 30 days or less. Run `pulumi up`."
    )
    assert message["certificate"] == "the private root CA of app.example.com"
    assert message["expires"] == "2036-02-29T10:00:00Z"


def test_message_expiry_is_in_utc():
    message = json.loads(notice_message("x", "2027-06-01T02:00:00+02:00", 5, "."))
    assert message["expires"] == "2027-06-01T00:00:00Z"


# --------------------------------------------------------------------------- names


def test_long_names_are_shortened_distinctly_within_schedulers_alphabet():
    name_rule = model_constraints("scheduler:CreateSchedule:Name")
    a = "appmesh-efs-" + "a" * 62 + "b"
    b = "appmesh-efs-" + "a" * 62 + "c"
    short = {schedule_logical_name(a), schedule_logical_name(b)}
    assert len(short) == 2
    for name in short:
        assert len(name) <= LOGICAL_NAME_MAX
        # Auto-naming adds "-" and 7 characters.
        assert full_match(name_rule["pattern"], name + "-abcdefg")
        assert len(name + "-abcdefg") <= name_rule["max"]
    assert schedule_logical_name("alb-envoy-ca") == "alb-envoy-ca"


# --------------------------------------------------------------------------- rights


def test_the_role_publishes_to_the_topic_only_and_uses_its_key_only_through_sns():
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234"
    document = json.loads(policy_document(publish_statements(topic, key, REGION)))
    assert document["Statement"] == [
        {
            "Sid": "PublishExpiryNotice",
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": [topic],
        },
        {
            "Sid": "EncryptNoticeThroughSns",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": [key],
            "Condition": {"StringEquals": {"kms:ViaService": f"sns.{REGION}.amazonaws.com"}},
        },
    ]


# --------------------------------------------------------------------------- graphs


def max_threshold_days() -> int:
    """The largest certificateExpiryAlarmDays the settings accept."""
    accepted = []
    for days in range(1, 400):
        try:
            parse_certificate_expiry_alarm_days({"certificateExpiryAlarmDays": days}, "alb-envoy")
        except ConfigError:
            continue
        accepted.append(days)
    return max(accepted)


def generated_certificates(graph: Graph) -> list[Resource]:
    """Every certificate pulumi-tls makes (its certificate types end in "Cert")."""
    return [r for r in graph if r.type.startswith("tls:") and r.type.endswith("Cert")]


def made_from(r: Resource, source: Resource, prop: str) -> bool:
    return source.urn in r.property_dependencies.get(prop, [])


def has_acm_alarm(graph: Graph, acm: Resource) -> bool:
    """ACM's DaysToExpiry for this certificate's ARN raises an alarm to the alerts topic."""
    topic = graph.one("aws:sns/topic:Topic").outputs["arn"]
    return any(
        alarm.inputs.get("namespace") == "AWS/CertificateManager"
        and alarm.inputs.get("metricName") == "DaysToExpiry"
        and unwrap(alarm.inputs["dimensions"]) == {"CertificateArn": acm.outputs["arn"]}
        and topic in unwrap(alarm.inputs["alarmActions"])
        for alarm in graph.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    )


def acm_alarmed(graph: Graph, certificate: Resource) -> bool:
    """Imported into ACM, and that ACM certificate has a DaysToExpiry alarm."""
    return any(
        made_from(acm, certificate, "certificateBody") and has_acm_alarm(graph, acm)
        for acm in graph.of_type("aws:acm/certificate:Certificate")
    )


def metric_alarmed(graph: Graph, certificate: Resource) -> bool:
    """A placeholder served until a renewal run replaces it (direct-task): the run reports
    0 days for it to the project's certificate metric, whose alarm fires."""
    stored = any(
        made_from(v, certificate, "secretString")
        for v in graph.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    )
    return stored and any(
        a.inputs.get("namespace") == CERTIFICATE_METRIC_NAMESPACE
        for a in graph.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    )


def notices(graph: Graph, certificate: Resource) -> list[Resource]:
    return [s for s in graph.of_type(SCHEDULE) if made_from(s, certificate, "scheduleExpression")]


def shipped(stack: str) -> Graph:
    stack, source = load_stack(str(STACK_FILES[stack]))
    return run_program(source.config, stack=stack, secret_keys=source.secret_keys)


PKI = make_pki("app.example.com")
VARIANTS = {
    "service-connect-nlb": {**MINIMAL_CONFIG["service-connect"], "ingress": "nlb"},
    "service-connect-none": {**MINIMAL_CONFIG["service-connect"], "ingress": "none"},
    "service-connect-acm": {
        **MINIMAL_CONFIG["service-connect"],
        "hostedZoneId": "Z0123456789ABCDEFGHIJ",
    },
    "alb-envoy-own": {
        **MINIMAL_CONFIG["alb-envoy"],
        "certificate": {
            "certificatePem": PKI.leaf_pem,
            "privateKeyPem": PKI.key_pem,
            "chainPem": PKI.chain_pem,
        },
    },
    "appmesh-efs-threshold": {**MINIMAL_CONFIG["appmesh-efs"], "certificateExpiryAlarmDays": 45},
}


@pytest.fixture(scope="module", params=[*sorted(STACK_FILES), *VARIANTS])
def case(request) -> tuple[str, Graph, int]:
    if request.param in VARIANTS:
        config = VARIANTS[request.param]
        secret = ("certificate",) if "certificate" in config else ()
        graph = run_program(config, secret_keys=secret)
        return request.param, graph, config.get("certificateExpiryAlarmDays", DEFAULT_THRESHOLD)
    return request.param, shipped(request.param), DEFAULT_THRESHOLD


def test_every_generated_certificate_is_watched(case):
    name, graph, _ = case
    unwatched = [
        r.name
        for r in generated_certificates(graph)
        if not notices(graph, r) and not acm_alarmed(graph, r) and not metric_alarmed(graph, r)
    ]
    assert not unwatched, f"{name}: no expiry notice or ACM alarm for {unwatched}"


def test_every_acm_certificate_has_an_alarm(case):
    """Imported (generated or yours) or issued by ACM: whatever a listener presents."""
    name, graph, _ = case
    missing = [
        r.name
        for r in graph.of_type("aws:acm/certificate:Certificate")
        if not has_acm_alarm(graph, r)
    ]
    assert not missing, f"{name}: no DaysToExpiry alarm for {missing}"


def test_no_certificate_is_told_twice(case):
    name, graph, _ = case
    for r in generated_certificates(graph):
        assert len(notices(graph, r)) + acm_alarmed(graph, r) <= 1, f"{name}: {r.name}"


def test_each_notice_fires_threshold_days_before_its_certificate_ends(case):
    name, graph, threshold = case
    for certificate in generated_certificates(graph):
        for schedule in notices(graph, certificate):
            inputs = unwrap(schedule.inputs)
            end = certificate.outputs["validityEndTime"]
            assert inputs["scheduleExpression"] == at_expression(end, threshold), name
            assert inputs["scheduleExpressionTimezone"] == "UTC"
            assert inputs["flexibleTimeWindow"] == {"mode": "OFF"}
            # Kept after it ran (Scheduler's default), so the next `up` finds it as it left it.
            assert "actionAfterCompletion" not in inputs
            message = json.loads(inputs["target"]["input"])
            assert message["expires"] == end
            assert f"in {threshold} days or less" in message["notice"]
            assert "pulumi up" in message["notice"]
            assert len(schedule.name) <= LOGICAL_NAME_MAX


def test_notices_go_to_the_alerts_topic_as_a_role_that_can_do_nothing_else(case):
    name, graph, _ = case
    schedules = [
        s
        for s in graph.of_type(SCHEDULE)
        if s.inputs.get("scheduleExpression", "").startswith("at(")
    ]
    if not schedules:
        return
    topic = graph.one("aws:sns/topic:Topic")
    key = next(
        k
        for k in graph.of_type("aws:kms/key:Key")
        if k.inputs["policy"] and "sns." in k.inputs["policy"]
    )
    for schedule in schedules:
        target = unwrap(schedule.inputs["target"])
        assert target["arn"] == topic.outputs["arn"], name
        role = next(
            r for r in graph.of_type("aws:iam/role:Role") if r.outputs["arn"] == target["roleArn"]
        )
        trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert trust == [
            {
                "Effect": "Allow",
                "Principal": {"Service": "scheduler.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": ACCOUNT},
                    "ArnEquals": {
                        "aws:SourceArn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:"
                        "schedule-group/default"
                    },
                },
            }
        ]
        policies = [
            p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == role.id
        ]
        assert len(policies) == 1
        assert graph.depends_on(schedule, policies[0])
        assert json.loads(policies[0].inputs["policy"]) == json.loads(
            policy_document(
                publish_statements(
                    topic.outputs["arn"],
                    key.outputs["arn"],
                    REGION,
                    graph.one("aws:sqs/queue:Queue").outputs["arn"],
                )
            )
        )
        # The topic's key admits the role: SNS asks for data keys as the publisher.
        admitted = [
            s
            for s in json.loads(key.inputs["policy"])["Statement"]
            if s["Principal"] == {"AWS": "*"}
            and "kms:GenerateDataKey*" in s["Action"]
            and s["Condition"]["StringEquals"]
            == {"kms:CallerAccount": ACCOUNT, "kms:ViaService": f"sns.{REGION}.amazonaws.com"}
        ]
        assert admitted, f"{name}: the alerts key does not admit the notice role"


def test_every_certificate_is_reissued_by_an_up_before_its_notice(case):
    """`pulumi up` re-issues a pulumi-tls certificate only in its early-renewal window
    (or once expired): the window must be open by the time the notice says "run up"."""
    name, graph, _ = case
    least = max_threshold_days() * 24
    for r in generated_certificates(graph):
        assert r.inputs.get("earlyRenewalHours", 0) >= least, f"{name}: {r.name}"


def test_expected_certificates_per_topology():
    """What is watched how, per shipped stack (the table in the docs)."""

    def kinds(graph: Graph) -> dict[str, str]:
        return {
            r.name: "notice"
            if notices(graph, r)
            else "acm-alarm"
            if acm_alarmed(graph, r)
            else "metric-alarm"
            for r in generated_certificates(graph)
        }

    assert kinds(shipped("alb-envoy")) == {
        "alb-envoy-certificate-chain-ca": "notice",
        "alb-envoy-certificate-chain-leaf": "acm-alarm",
    }
    assert kinds(shipped("appmesh-efs")) == {
        "appmesh-efs-certificate-chain-ca": "notice",
        "appmesh-efs-certificate-chain-leaf": "acm-alarm",
        "appmesh-efs-frontend-certificate": "notice",
        "appmesh-efs-backend-certificate": "notice",
    }
    assert kinds(shipped("service-connect")) == {
        "service-connect-certificate-chain-ca": "notice",
        "service-connect-certificate-chain-leaf": "acm-alarm",
    }
    assert kinds(shipped("direct-task")) == {
        "direct-task-placeholder-ca": "metric-alarm",
        "direct-task-placeholder-leaf": "metric-alarm",
    }
    assert kinds(shipped("nlb-certbot")) == {}


def test_your_mesh_client_certificate_is_watched():
    """appmesh-efs with your own certificates: the gateway's server certificate is in ACM
    (alarm); its client certificate is only in Secrets Manager, so it gets a notice."""
    from tests.unit.test_appmesh_efs import own_pki

    certificate, client = own_pki(label="expiry")
    graph = run_program(
        {
            **MINIMAL_CONFIG["appmesh-efs"],
            "certificate": certificate,
            "mesh": {"clientCertificate": client},
        },
        secret_keys=("certificate", "mesh"),
    )
    assert generated_certificates(graph) == []
    (schedule,) = graph.of_type(SCHEDULE)
    end = pem_validity_end(client["certificatePem"])
    inputs = unwrap(schedule.inputs)
    assert inputs["scheduleExpression"] == at_expression(end, DEFAULT_THRESHOLD)
    message = json.loads(inputs["target"]["input"])
    assert message["expires"] == end
    assert "ecs-tls:mesh.clientCertificate" in message["notice"]

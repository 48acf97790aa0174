"""Certificates that nothing renews: the expiry alarm, early re-issue, and the leaf's uses."""

from __future__ import annotations

import pytest

from components.certificates import (
    LEAF_ALLOWED_USES,
    LEAF_EARLY_RENEWAL_HOURS,
    LEAF_VALIDITY_HOURS,
)
from scripts.mock_runtime import config_error, run_program
from tests.conftest import MINIMAL_CONFIG

ZONE = "Z0123456789ABCDEFGHIJ"
LISTENER_CASES = {
    "alb-envoy": (MINIMAL_CONFIG["alb-envoy"], "alb-envoy-https"),
    "service-connect alb": (MINIMAL_CONFIG["service-connect"], "service-connect-https"),
    "service-connect alb, ACM-issued": (
        {**MINIMAL_CONFIG["service-connect"], "hostedZoneId": ZONE},
        "service-connect-https",
    ),
    "service-connect nlb": (
        {**MINIMAL_CONFIG["service-connect"], "ingress": "nlb"},
        "service-connect-443",
    ),
}


def acm_expiry_alarms(graph) -> list:
    """The stack's alarms on an ACM certificate's expiry (other alarms watch other things)."""
    return [
        a
        for a in graph.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.inputs.get("namespace") == "AWS/CertificateManager"
    ]


@pytest.mark.parametrize("case", LISTENER_CASES)
def test_the_certificate_a_listener_presents_has_an_expiry_alarm(case):
    config, listener_name = LISTENER_CASES[case]
    graph = run_program(config)
    listener = graph.one("aws:lb/listener:Listener", listener_name)
    (alarm,) = acm_expiry_alarms(graph)
    topic = graph.one("aws:sns/topic:Topic")
    assert alarm.inputs["dimensions"] == {"CertificateArn": listener.inputs["certificateArn"]}
    assert (alarm.inputs["namespace"], alarm.inputs["metricName"]) == (
        "AWS/CertificateManager",
        "DaysToExpiry",
    )
    assert (alarm.inputs["statistic"], alarm.inputs["period"]) == ("Minimum", 86400)
    assert alarm.inputs["comparisonOperator"] == "LessThanThreshold"
    assert alarm.inputs["threshold"] == 30
    # A new certificate has no datapoint for up to a day: that must not alarm.
    assert alarm.inputs["treatMissingData"] == "missing"
    assert alarm.inputs["alarmActions"] == alarm.inputs["okActions"] == [topic.outputs["arn"]]
    assert graph.stack_outputs["alertsTopicArn"] == topic.outputs["arn"]


def test_the_threshold_comes_from_the_configuration():
    graph = run_program({**MINIMAL_CONFIG["alb-envoy"], "certificateExpiryAlarmDays": 14})
    (alarm,) = acm_expiry_alarms(graph)
    assert alarm.inputs["threshold"] == 14


def test_no_alarm_without_a_load_balancer_certificate():
    graph = run_program({**MINIMAL_CONFIG["service-connect"], "ingress": "none"})
    assert not acm_expiry_alarms(graph)
    assert graph.one("aws:sns/topic:Topic")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {**MINIMAL_CONFIG["alb-envoy"], "certificateExpiryAlarmDays": 60},
            "ecs-tls:certificateExpiryAlarmDays: 60 is not an integer from 1 to 45",
        ),
        (
            {**MINIMAL_CONFIG["nlb-certbot"], "certificateExpiryAlarmDays": 20},
            "ecs-tls:certificateExpiryAlarmDays: applies to alb-envoy, service-connect and "
            "appmesh-efs, not 'nlb-certbot'",
        ),
    ],
)
def test_bad_alarm_threshold(config, message):
    assert config_error(config) == message


def test_any_up_inside_the_alarm_window_re_issues_a_generated_certificate():
    """The alarm (at most 45 days) must fire inside the window where `up` rotates the leaf."""
    assert LEAF_EARLY_RENEWAL_HOURS >= 45 * 24 + 14 * 24
    assert LEAF_EARLY_RENEWAL_HOURS < LEAF_VALIDITY_HOURS // 2
    leaf = run_program(MINIMAL_CONFIG["alb-envoy"]).one(
        "tls:index/locallySignedCert:LocallySignedCert"
    )
    assert leaf.inputs["earlyRenewalHours"] == LEAF_EARLY_RENEWAL_HOURS
    assert leaf.inputs["validityPeriodHours"] == LEAF_VALIDITY_HOURS


def test_ecdsa_leaf_does_not_claim_key_encipherment():
    """RFC 5480 section 3: an ECDSA key signs; keyEncipherment does not apply to it."""
    graph = run_program(MINIMAL_CONFIG["alb-envoy"])
    key = graph.one("tls:index/privateKey:PrivateKey", "alb-envoy-certificate-chain-leaf")
    assert key.inputs["algorithm"] == "ECDSA"
    leaf = graph.one("tls:index/locallySignedCert:LocallySignedCert")
    assert sorted(leaf.inputs["allowedUses"]) == sorted(LEAF_ALLOWED_USES)
    assert "key_encipherment" not in leaf.inputs["allowedUses"]

"""The public listener's certificate: `certificate.source` (acm, generated) and
`certificate.arn`, in alb-envoy and service-connect, and what each means for Envoy's own
certificate, the expiry watches, the CAA record and the outputs clients use."""

from __future__ import annotations

import json

import pytest

from scripts.mock_runtime import config_error, run_program
from settings import parse_settings
from tests.conftest import MINIMAL_CONFIG

ZONE = "Z0123456789ABCDEFGHIJ"
EXISTING = "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
ALB = {**MINIMAL_CONFIG["alb-envoy"], "hostedZoneId": ZONE}
SC = {**MINIMAL_CONFIG["service-connect"], "hostedZoneId": ZONE}


def acm_certificates(graph):
    return {r.name: r for r in graph.of_type("aws:acm/certificate:Certificate")}


def caa_values(graph) -> list[str]:
    found = [r for r in graph.of_type("aws:route53/record:Record") if r.name == "domain-caa"]
    return found[0].inputs["records"] if found else []


def schedules(graph) -> list[str]:
    return [r.inputs["description"] for r in graph.of_type("aws:scheduler/schedule:Schedule")]


@pytest.mark.parametrize(
    ("config", "source"),
    [
        (MINIMAL_CONFIG["alb-envoy"], "generated"),
        (ALB, "generated"),  # alb-envoy keeps its generated chain unless told acm
        (MINIMAL_CONFIG["service-connect"], "generated"),
        (SC, "acm"),  # service-connect asked ACM with a zone before the key existed
        ({**SC, "certificate": {"source": "generated"}}, "generated"),
        ({**ALB, "certificate": {"source": "acm"}}, "acm"),
        ({**ALB, "certificate": {"arn": EXISTING}}, "existing"),
    ],
)
def test_the_default_source_is_what_each_topology_did_before(config, source):
    assert parse_settings(config).listener_certificate.source == source


def test_alb_envoy_with_acm_presents_an_issued_certificate_and_envoy_its_own_chain():
    graph = run_program({**ALB, "certificate": {"source": "acm"}})
    (issued,) = acm_certificates(graph).values()  # nothing imported into ACM
    assert (issued.name, issued.inputs["validationMethod"]) == ("alb-envoy-certificate", "DNS")
    validation = graph.one("aws:acm/certificateValidation:CertificateValidation")
    record = graph.one("aws:route53/record:Record", "alb-envoy-certificate-validation")
    assert record.inputs["zoneId"] == ZONE
    # The listener gets the ARN only from the validation: it waits for the issuance.
    https = graph.one("aws:lb/listener:Listener", "alb-envoy-https")
    assert https.inputs["certificateArn"] == validation.outputs["certificateArn"]
    assert validation.urn in https.property_dependencies["certificateArn"]
    # Envoy serves a generated chain from Secrets Manager, as with a generated listener.
    secret = graph.one("aws:secretsmanager/secret:Secret", "alb-envoy-envoy-certificate")
    (task,) = graph.of_type("aws:ecs/taskDefinition:TaskDefinition")
    envoy = next(c for c in json.loads(task.inputs["containerDefinitions"]) if c["name"] == "envoy")
    assert all(s["valueFrom"].startswith(secret.outputs["arn"]) for s in envoy["secrets"])
    # ACM's alarm watches the listener's certificate; notices watch the CA and Envoy's leaf.
    alarm = graph.one("aws:cloudwatch/metricAlarm:MetricAlarm", "alb-envoy-certificate-expiry")
    assert alarm.inputs["dimensions"] == {"CertificateArn": validation.outputs["certificateArn"]}
    watched = schedules(graph)
    assert any("private root CA" in d for d in watched), watched
    assert any("Envoy presents to the load balancer" in d for d in watched), watched
    # Publicly trusted: clients need no CA file, and Amazon may issue for the name.
    assert "caCertificatePem" not in graph.stack_outputs
    assert "--cacert" not in graph.stack_outputs["verifyCommand"]
    assert any("amazon.com" in v for v in caa_values(graph)), caa_values(graph)


def test_alb_envoy_with_an_existing_arn_imports_nothing_and_watches_that_certificate():
    graph = run_program({**ALB, "certificate": {"arn": EXISTING}})
    assert acm_certificates(graph) == {}
    assert not graph.of_type("aws:acm/certificateValidation:CertificateValidation")
    https = graph.one("aws:lb/listener:Listener", "alb-envoy-https")
    assert https.inputs["certificateArn"] == EXISTING
    alarm = graph.one("aws:cloudwatch/metricAlarm:MetricAlarm", "alb-envoy-certificate-expiry")
    assert alarm.inputs["dimensions"] == {"CertificateArn": EXISTING}
    assert graph.stack_outputs["certificateArn"] == EXISTING
    # Its CA is unknown: a CAA record could refuse its renewal.
    assert caa_values(graph) == []


def test_alb_envoy_generated_by_default_is_one_certificate_for_the_listener_and_envoy():
    graph = run_program(ALB)
    (imported,) = acm_certificates(graph).values()
    assert imported.name == "alb-envoy-certificate" and "certificateBody" in imported.inputs
    assert not graph.of_type("aws:acm/certificateValidation:CertificateValidation")
    graph.one("aws:secretsmanager/secret:Secret", "alb-envoy-certificate")
    assert "BEGIN CERTIFICATE" in graph.stack_outputs["caCertificatePem"]
    assert not any("amazon.com" in v for v in caa_values(graph))
    assert not any("Envoy presents" in d for d in schedules(graph))


def test_service_connect_generated_with_a_zone_imports_its_chain():
    graph = run_program({**SC, "certificate": {"source": "generated"}})
    (imported,) = acm_certificates(graph).values()
    assert "certificateBody" in imported.inputs
    assert not any("amazon.com" in v for v in caa_values(graph))
    assert "BEGIN CERTIFICATE" in graph.stack_outputs["caCertificatePem"]


def test_service_connect_with_an_existing_arn_serves_it_on_the_listener():
    graph = run_program({**SC, "certificate": {"arn": EXISTING}})
    assert acm_certificates(graph) == {}
    https = graph.one("aws:lb/listener:Listener", "service-connect-https")
    assert https.inputs["certificateArn"] == EXISTING


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {**MINIMAL_CONFIG["alb-envoy"], "certificate": {"source": "acm"}},
            "ecs-tls:certificate.source: ACM issues a certificate once a DNS record in "
            "hostedZoneId validates it",
        ),
        (
            {**ALB, "certificate": {"source": "acm", "arn": EXISTING}},
            "ecs-tls:certificate.source: cannot be set with certificate.arn",
        ),
        (
            {**MINIMAL_CONFIG["appmesh-efs"], "certificate": {"arn": EXISTING}},
            "ecs-tls:certificate.arn: applies to alb-envoy and service-connect, not 'appmesh-efs'",
        ),
        (
            {**MINIMAL_CONFIG["appmesh-efs"], "certificate": {"source": "acm"}},
            "ecs-tls:certificate.source: applies to alb-envoy and service-connect, "
            "not 'appmesh-efs'",
        ),
        (
            {**SC, "ingress": "none", "certificate": {"source": "acm"}},
            "ecs-tls:certificate: applies to the public load balancer",
        ),
    ],
    ids=["acm-without-zone", "source-and-arn", "arn-on-mesh", "source-on-mesh", "no-ingress"],
)
def test_what_cannot_be_served_is_refused_before_any_resource(config, message):
    assert config_error(config).startswith(message), config_error(config)

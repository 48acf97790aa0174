"""Outputs an operator (or another stack, through a StackReference) needs to find what a
stack runs: its ECS services, the app's initial credentials' secret, the Private CA's root."""

from __future__ import annotations

import pytest

from scripts.mock_runtime import run_program
from tests.conftest import MINIMAL_CONFIG

SERVICE = "aws:ecs/service:Service"
SHARED_CA = (
    "arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/"
    "12345678-1234-1234-1234-123456789012"
)


@pytest.mark.parametrize("topology", ["alb-envoy", "direct-task", "nlb-certbot"])
def test_a_topology_of_one_service_names_it(topology):
    graph = run_program(MINIMAL_CONFIG[topology])
    (service,) = graph.of_type(SERVICE)
    assert graph.stack_outputs["serviceName"] == service.outputs["name"]
    assert graph.stack_outputs["serviceArn"] == service.outputs["arn"]
    assert "serviceArns" not in graph.stack_outputs


@pytest.mark.parametrize("topology", ["service-connect", "appmesh-efs"])
def test_a_topology_of_several_services_maps_each_name_to_its_arn(topology):
    graph = run_program(MINIMAL_CONFIG[topology])
    arns = graph.stack_outputs["serviceArns"]
    assert sorted(arns.values()) == sorted(s.outputs["arn"] for s in graph.of_type(SERVICE))
    expected = {"frontend", "backend"} | ({"gateway"} if topology == "appmesh-efs" else set())
    assert set(arns) == expected


def test_nlb_certbot_says_where_the_initial_credentials_are_not_what_they_are():
    graph = run_program(MINIMAL_CONFIG["nlb-certbot"])
    secret = graph.one("aws:secretsmanager/secret:Secret", "nlb-certbot-auth")
    assert graph.stack_outputs["authSecretArn"] == secret.outputs["arn"]
    assert not any("neo4j/" in str(v) for v in graph.stack_outputs.values())


def test_service_connect_gives_the_root_of_the_ca_it_creates_and_none_for_a_shared_one():
    graph = run_program(MINIMAL_CONFIG["service-connect"])
    root = graph.one("aws:acmpca/certificateAuthorityCertificate:CertificateAuthorityCertificate")
    assert graph.stack_outputs["privateCaCertificatePem"] == root.inputs["certificate"]
    shared = run_program({**MINIMAL_CONFIG["service-connect"], "privateCa": {"arn": SHARED_CA}})
    assert "privateCaCertificatePem" not in shared.stack_outputs

"""What AWS refuses server-side, checked over every string the program sends.

The rules and their sources are in `scripts/emulator/aws_rules.py`; the emulator applies
them to every request the real provider sends (./scripts/emulate). Here they run over the
inputs of every resource of every shipped stack and of each topology's configuration
variants, so a description with an apostrophe fails in seconds, not at `pulumi up`.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

import topologies
from scripts.emulator.aws_rules import (
    RULES,
    model_shape,
    policy_length,
    pulumi_violations,
    txt_strings,
)
from scripts.mock_runtime import Graph, run_program, unwrap
from scripts.plan import load_stack, shipped
from tests.conftest import MINIMAL_CONFIG

LONG_STACK = "a-sixty-character-production-stack-name-for-the-payment-team"
assert len(LONG_STACK) == 60

STACK_FILES = shipped()
ZONE = "Z0123456789ABCDEFGHIJ"


def violations(graph: Graph) -> list[str]:
    found = []
    for r in graph:
        if r.custom:
            # Outputs: the inputs as sent, plus the auto-name the provider would add.
            values = unwrap({**r.outputs, **r.inputs})
            if "name" not in r.inputs and "name" in r.outputs:
                values["name"] = r.outputs["name"]
            found += [f"{r.type} {r.name}: {v}" for v in pulumi_violations(r.type, values)]
    roles: dict[str, int] = defaultdict(int)
    for r in graph.of_type("aws:iam/rolePolicy:RolePolicy"):
        roles[str(unwrap(r.inputs["role"]))] += policy_length(unwrap(r.inputs["policy"]))
    found += [
        f"role {role}: inline policies of {n} characters, more than 10240 (iam-inline-policy-size)"
        for role, n in roles.items()
        if n > 10240
    ]
    return found


@pytest.mark.parametrize("stack_file", sorted(STACK_FILES))
def test_every_string_of_a_shipped_stack_obeys_aws(stack_file):
    stack, source = load_stack(str(STACK_FILES[stack_file]))
    graph = run_program(source.config, stack=stack, secret_keys=source.secret_keys)
    assert violations(graph) == []


VARIANTS = [
    (topology, stack, zone)
    for topology in topologies.available()
    for stack in ("dev", LONG_STACK)
    for zone in (None, ZONE)
    if zone or topology != "direct-task"  # direct-task requires a zone
]


@pytest.mark.parametrize(("topology", "stack", "zone"), VARIANTS)
def test_every_string_of_each_topology_obeys_aws(topology, stack, zone):
    config = dict(MINIMAL_CONFIG[topology])
    if zone:
        config["hostedZoneId"] = zone
    elif topology == "nlb-certbot":
        config["acme"] = {**config["acme"], "challenge": "http-01"}
        config.pop("hostedZoneId")
    assert violations(run_program(config, stack=stack)) == []


# --- each rule refuses what AWS refuses, and names itself and its source ------------------


def rule(rule_id: str):
    (found,) = [r for r in RULES if r.id == rule_id]
    return found


def test_an_apostrophe_in_a_security_group_rule_description_is_refused():
    message = pulumi_violations(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        {"description": "To the targets' port", "fromPort": 443},
    )
    assert len(message) == 1
    assert "ec2-description" in message[0]
    assert "EC2 API reference" in message[0]
    assert '"\'"' in message[0]  # names the refused character
    for good in ("To the target port", "TLS (443) from 10.0.0.0/8: [ok] & {x}!$*"):
        assert rule("ec2-description").violation(good) is None
    assert rule("ec2-description").violation("x" * 256) is not None
    assert rule("ec2-description").violation("caf\u00e9") is not None


def test_a_dot_in_a_snapshot_policy_description_is_refused():
    inputs = {
        "description": "Daily snapshots of db.example.com",
        "policyDetails": {"schedules": [{"name": "daily, 7 kept"}]},
    }
    found = pulumi_violations("aws:dlm/lifecyclePolicy:LifecyclePolicy", inputs)
    assert [f.split(" = ")[0] for f in found] == ["description", "policyDetails.schedules[0].name"]
    assert "botocore model dlm CreateLifecyclePolicy" in found[0]


def test_a_txt_string_of_256_characters_is_refused():
    check = rule("route53-txt-string")
    assert check.violation('"' + "a" * 255 + '"') is None
    assert "more than 255" in check.violation('"' + "a" * 256 + '"')
    assert check.violation('"' + "a" * 255 + '" "' + "b" * 255 + '"') is None
    # pulumi-aws takes one value with "" between the strings and quotes each part itself.
    assert check.violation("a" * 255 + '""' + "b" * 10) is None
    assert "Route53 API reference" in check.violation("a" * 256)
    assert txt_strings('"a\\"b" "c"') == ['a"b', "c"]


def test_load_balancer_names():
    check = rule("elb-name")
    assert check.violation("web-1234567") is None
    for bad in ("-web", "web-", "internal-web", "web_lb", "x" * 33):
        assert check.violation(bad) is not None, bad


def test_secret_names_avoid_what_partial_arns_confuse():
    check = rule("secretsmanager-name")
    assert check.violation("app-tls-1a2b3c4") is None  # auto-name: a hyphen and seven
    assert check.violation("app-tls-1a2b3c") is not None
    assert check.violation("app tls") is not None


def test_container_names_inside_the_task_definition_json():
    found = pulumi_violations(
        "aws:ecs/taskDefinition:TaskDefinition",
        {"family": "web", "containerDefinitions": '[{"name": "envoy.proxy"}, {"name": "app"}]'},
    )
    assert len(found) == 1 and found[0].startswith("containerDefinitions[0].name")


def test_policy_sizes_count_characters_without_white_space():
    assert policy_length('{ "a" :\n "b" }') == len('{"a":"b"}')
    assert rule("iam-trust-policy-size").violation("x" * 2048 + " " * 100) is None
    assert rule("iam-trust-policy-size").violation("x" * 2049) is not None


@pytest.mark.parametrize("r", RULES, ids=lambda r: r.id)
def test_every_rule_names_a_source_and_applies_somewhere(r):
    assert r.source and r.summary
    assert r.api or r.pulumi or r.model
    for spec in (*r.api, *((r.model,) if r.model else ())):
        assert model_shape(spec).type_name == "string", spec

"""The offline plan's replacements, decided by the real AWS provider (`terraform plan` of the
program's translation on a synthetic state, scripts/emulator/replace.py): what forces a new
resource is named, what follows from it is a cascade, and nothing else is replaced."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import plan
from scripts.emulator.run import INSTALL_HINT
from tests.tools import in_ci

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def terraform():
    if shutil.which("terraform") is None:
        if in_ci():
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)


def against(stack: str, *overrides: str) -> plan.Diff:
    name, source = plan.load_stack(stack)
    after = plan.against_source(source, list(overrides)) if overrides else source
    return plan.diff(name, source, after, replacements=True)


def by_name(d: plan.Diff) -> dict[tuple[str, str], object]:
    return {(x.resource.type.rsplit(":", 1)[-1], x.resource.name): x for x in d.replaced}


@pytest.mark.parametrize("stack", sorted(plan.shipped()))
def test_the_same_configuration_replaces_nothing(stack):
    # The synthetic state must be what the provider itself would plan: a default it fills
    # in, or a value only AWS computes, read as a change would replace half the stack.
    d = against(str(plan.shipped()[stack]))
    assert d.replacements_note is None
    assert [x.reason() for x in d.replaced] == []


def test_a_target_group_port_forces_a_new_target_group():
    d = against("dev", "envoy.port=9443")
    found = by_name(d)
    assert found[("TargetGroup", "alb-envoy")].forced_by == ["port"]
    # A task definition is immutable: any change is a new revision.
    assert found[("TaskDefinition", "alb-envoy")].forced_by == ["containerDefinitions"]
    # The listener follows the new target group's ARN in place.
    assert not any(t == "Listener" for t, _ in found)
    text = plan.diff_text(d)
    assert "  +- targetGroup  alb-envoy: replace (forced by: port)" in text
    assert f"{len(d.replaced)} to replace" in text


def test_a_new_vpc_cidr_replaces_the_network_and_everything_in_it():
    d = against("dev", "network.cidrBlock=10.1.0.0/16")
    found = by_name(d)
    assert found[("Vpc", "network-vpc")].reason() == "replace (forced by: cidrBlock)"
    subnets = [x for (t, _), x in found.items() if t == "Subnet"]
    assert len(subnets) == 4
    for subnet in subnets:
        assert subnet.forced_by == ["cidrBlock"]
        assert subnet.cascade == [("network-vpc", "vpcId")]
    assert found[("SecurityGroup", "alb-envoy")].cascade == [("network-vpc", "vpcId")]
    assert found[("RouteTableAssociation", "network-public-0")].cascade == [
        ("network-public-0", "subnetId")
    ]
    text = plan.diff_text(d)
    assert (
        "  +- subnet  network-public-0: replace (forced by: cidrBlock; cascade: network-vpc vpcId)"
    ) in text
    # The cluster and its log group do not live in the VPC.
    assert not any(t in ("Cluster", "LogGroup") for t, _ in found)


def test_adding_a_zone_replaces_no_subnet():
    d = against("dev", "network.availabilityZones=3")
    assert d.replacements_note is None
    assert [x.resource.name for x in d.replaced] == []
    assert sum(r.type == "aws:ec2/subnet:Subnet" for r in d.created) == 2


def test_a_new_ca_key_algorithm_replaces_the_private_ca_as_stateful():
    stack = str(plan.shipped()["service-connect"])
    d = against(stack, "privateCa.keyAlgorithm=RSA_2048")
    found = by_name(d)
    ca = found[("CertificateAuthority", "service-connect-ca")]
    assert ca.forced_by == ["certificateAuthorityConfiguration"]
    assert ("service-connect-ca", "certificateAuthorityArn") in found[
        ("CertificateAuthorityCertificate", "service-connect-ca")
    ].cascade
    assert ca.resource in [r for r, _ in d.stateful]
    text = plan.diff_text(d)
    assert "STATEFUL RESOURCES DELETED" in text
    assert "service-connect-ca (replaced): AWS Private CA" in text


def test_the_command_line_shows_replacements_in_json():
    command = [sys.executable, "-m", "scripts.plan", "dev"]
    done = subprocess.run(
        [*command, "--against", "envoy.port=9443", "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["replacementsNote"] is None
    ports = [x for x in doc["replace"] if x["urn"].endswith("TargetGroup::alb-envoy")]
    assert ports and ports[0]["forcedBy"] == ["port"] and ports[0]["cascade"] == []
    replaced = {x["urn"] for x in doc["replace"]}
    assert not replaced & {u["urn"] for u in doc["update"]} and not replaced & set(doc["keep"])

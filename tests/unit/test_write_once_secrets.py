"""Secrets the program only seeds: Neo4j's generated password and direct-task's placeholder
certificate. Generated without an AWS call, written through the write-only argument, and
never written again by a later `up`, a stack deployed before either change included."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scripts.mock_runtime import is_secret, run_program, unwrap
from tests.conftest import MINIMAL_CONFIG

VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
PASSWORD = "random:index/randomPassword:RandomPassword"
SEEDED = {"nlb-certbot": "nlb-certbot-auth", "direct-task": "direct-task-certificate"}


def engine_inputs(new: dict[str, Any], old: dict[str, Any], ignored: list[str]) -> dict:
    """The inputs the engine diffs on an update: for each ignored top-level input, the old
    value where the old inputs had one, else none (pulumi's processIgnoreChanges, which
    resets each path from the old inputs and deletes it where they lack it)."""
    out = dict(new)
    for key in ignored:
        if key in old:
            out[key] = old[key]
        else:
            out.pop(key, None)
    return out


def test_the_neo4j_password_is_generated_once_with_the_rules_of_the_aws_call_it_replaces():
    graph = run_program(MINIMAL_CONFIG["nlb-certbot"])
    password = graph.one(PASSWORD)
    # GetRandomPassword(PasswordLength=32, ExcludePunctuation=True) with its default
    # RequireEachIncludedType: letters and digits, one of each kind at least.
    assert unwrap(password.inputs) == {
        "length": 32,
        "special": False,
        "minLower": 1,
        "minUpper": 1,
        "minNumeric": 1,
    }
    # No keepers: nothing the program passes can make it generate a new value.
    assert "keepers" not in password.inputs
    topology = graph.one("ecs-tls:nlb_certbot:NlbCertbot")
    assert password.parent == topology.urn


def test_no_topology_asks_aws_for_a_password():
    # The mocks no longer answer secretsmanager:getRandomPassword: a run that invoked it
    # would fail. Every topology's minimal stack runs.
    for config in MINIMAL_CONFIG.values():
        assert len(run_program(config)) > 0


@pytest.mark.parametrize("topology", sorted(SEEDED))
def test_a_seeded_secret_is_written_only_through_the_write_only_argument(topology):
    version = run_program(MINIMAL_CONFIG[topology]).one(VERSION, SEEDED[topology])
    assert "secretString" not in version.inputs
    assert is_secret(version.inputs["secretStringWo"])
    assert version.inputs["secretStringWoVersion"] == 1
    assert set(version.ignore_changes) >= {
        "secretString",
        "secretStringWo",
        "secretStringWoVersion",
    }


@pytest.mark.parametrize("topology", sorted(SEEDED))
def test_a_stack_deployed_with_secret_string_keeps_its_value(topology):
    """Deployed before: `secret_string` held the value. The engine's view of this program's
    inputs, after ignore_changes, is the deployed inputs exactly: no diff, no new version."""
    version = run_program(MINIMAL_CONFIG[topology]).one(VERSION, SEEDED[topology])
    new = unwrap(version.inputs)
    deployed = {"secretId": new["secretId"], "secretString": "neo4j/the-first-password"}
    assert engine_inputs(new, deployed, version.ignore_changes) == deployed


@pytest.mark.parametrize("topology", sorted(SEEDED))
def test_a_stack_created_with_the_write_only_argument_keeps_its_value(topology):
    version = run_program(MINIMAL_CONFIG[topology]).one(VERSION, SEEDED[topology])
    deployed = unwrap(version.inputs)
    # A later run whose generated value differs (a replaced pulumi-random or pulumi-tls
    # resource) and whose version was bumped: still nothing to write.
    later = copy.deepcopy(deployed)
    later["secretStringWo"] = "another value"
    later["secretStringWoVersion"] = 2
    assert engine_inputs(later, deployed, version.ignore_changes) == deployed


def test_the_model_of_ignore_changes_sees_a_forgotten_key():
    # Without `secretStringWo` in the list, a deployed stack would get a value to write.
    deployed = {"secretId": "s", "secretString": "neo4j/first"}
    new = {"secretId": "s", "secretStringWo": "neo4j/second", "secretStringWoVersion": 1}
    assert engine_inputs(new, deployed, ["secretString", "secretStringWoVersion"]) != deployed

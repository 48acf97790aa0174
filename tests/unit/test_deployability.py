"""What the Pulumi engine and AWS enforce on a real `pulumi up`, which mocks do not.

Rules reproduced here, with their sources:

- Switching topology is an update of one stack: Pulumi creates every new resource before it
  deletes the old ones (create-before-delete is the default replacement order; see the
  `deleteBeforeReplace` resource option in Pulumi's docs). Two resources that share a
  physical identity in AWS collide in between: Route53 refuses a second record with one
  name and type in a zone (`InvalidChangeBatch ... already exists`), and names that AWS
  keeps unique (an ECS cluster, a log group, an inline policy of a role) fail the same way.
- Auto-naming appends `-` and seven random characters to the logical name
  (pulumi-aws auto-naming); AWS limits load balancer and target group names to 32
  characters and IAM role names to 64 [ELB CreateLoadBalancer / CreateTargetGroup `Name`;
  IAM CreateRole `RoleName`], so those logical names must leave room for the suffix.
"""

from __future__ import annotations

import itertools

import pytest

import topologies
from scripts.mock_runtime import Graph, Resource, run_program

# The identity and collision rules live with the offline plan, which reports collisions
# of any configuration change (./scripts/plan STACK --against OTHER).
from scripts.plan import collisions
from tests.conftest import MINIMAL_CONFIG

ZONE = "Z0123456789ABCDEFGHIJ"
DOMAIN = "app.example.com"


def one_stack_config(topology: str) -> dict:
    """The topology's minimal configuration on a stack whose domain and zone never change."""
    return {**MINIMAL_CONFIG[topology], "domain": DOMAIN, "hostedZoneId": ZONE}


PAIRS = list(itertools.permutations(topologies.available(), 2))


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_switching_topology_creates_nothing_that_the_switch_deletes(first, second):
    before = run_program(one_stack_config(first))
    after = run_program(one_stack_config(second))
    assert collisions(before, after) == []


def test_every_topology_with_a_load_balancer_points_the_one_domain_record_at_it():
    for topology in topologies.available():
        graph = run_program(one_stack_config(topology))
        if not graph.of_type("aws:lb/loadBalancer:LoadBalancer"):
            # direct-task: no load balancer, the domain is only the parent of task names.
            assert graph.of_type("aws:route53/record:Record", "domain") == [], topology
            continue
        (record,) = graph.of_type("aws:route53/record:Record", "domain")
        assert graph.ancestors(record)[0].type == "ecs-tls:dns:DomainAlias", topology
        (lb,) = graph.of_type("aws:lb/loadBalancer:LoadBalancer")
        assert record.inputs["aliases"][0]["name"] == lb.outputs["dnsName"], topology


def test_the_collision_check_finds_two_records_for_one_name():
    """The old layout, one alias per topology, is what the check must catch."""

    def record(name: str) -> Resource:
        inputs = {"zoneId": ZONE, "name": DOMAIN, "type": "A"}
        urn = f"urn:pulumi:dev::ecs-tls::aws:route53/record:Record::{name}"
        return Resource("aws:route53/record:Record", name, urn, "", None, inputs, {}, [], True)

    old, new = record("alb-envoy-alias"), record("service-connect-alias")
    ((created, deleted),) = collisions(Graph([old]), Graph([new]))
    assert (created.name, deleted.name) == ("service-connect-alias", "alb-envoy-alias")
    assert collisions(Graph([old]), Graph([old])) == []


# AWS name limits for names Pulumi generates from the logical name (+ "-" + 7 characters).
AUTO_NAME_LIMITS = {
    "aws:lb/loadBalancer:LoadBalancer": 32,
    "aws:lb/targetGroup:TargetGroup": 32,
    "aws:iam/role:Role": 64,
}
AUTO_NAME_SUFFIX = 8


@pytest.mark.parametrize("topology", topologies.available())
def test_generated_names_fit_aws_limits(topology):
    for stack in ("dev", "a-rather-long-production-stack-name"):
        graph = run_program(one_stack_config(topology), stack=stack)
        for r in graph:
            limit = AUTO_NAME_LIMITS.get(r.type)
            if limit and "name" not in r.inputs:
                assert len(r.name) + AUTO_NAME_SUFFIX <= limit, (r, limit)

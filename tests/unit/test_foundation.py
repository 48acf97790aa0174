"""The foundation is shared and stable: its URNs do not depend on the topology."""

from __future__ import annotations

import re

import pytest

from settings import TOPOLOGIES
from tests.conftest import MINIMAL_CONFIG

FOUNDATION_TYPES = ("ecs-tls:network:Network", "ecs-tls:cluster:Cluster")


def _foundation_urns(graph):
    roots = [r for r in graph if r.type in FOUNDATION_TYPES]
    return {r.urn for root in roots for r in [root, *graph.descendants(root)]}


def test_foundation_urns_are_identical_for_every_topology(program, stand_in_topologies):
    graphs = {t: program(MINIMAL_CONFIG[t]) for t in TOPOLOGIES}
    reference = _foundation_urns(graphs["alb-envoy"])
    assert len(reference) > 10
    for topology, graph in graphs.items():
        assert _foundation_urns(graph) == reference, topology
        topology_urns = graph.urns() - reference
        assert topology_urns, f"{topology} registered nothing of its own"
        assert all(not urn.startswith(tuple(reference)) for urn in topology_urns)


def test_switching_topology_changes_only_topology_resources(program, stand_in_topologies):
    first = program(MINIMAL_CONFIG["alb-envoy"])
    second = program(MINIMAL_CONFIG["service-connect"])
    back = program(MINIMAL_CONFIG["alb-envoy"])
    assert _foundation_urns(first) == _foundation_urns(second) == _foundation_urns(back)
    assert first.urns() == back.urns()


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_resource_has_a_component_parent(program, stand_in_topologies, topology):
    graph = program(MINIMAL_CONFIG[topology])
    for r in graph:
        if r.custom:
            assert r.parent and "::ecs-tls:" in r.parent, f"{r} is not inside a component"
        else:
            assert re.fullmatch(r"ecs-tls:[a-z][a-z0-9_]*:[A-Z][A-Za-z0-9]+", r.type), r.type


def test_stack_outputs_name_topology_and_endpoint(program, stand_in_topologies):
    outputs = program(MINIMAL_CONFIG["alb-envoy"]).stack_outputs
    assert outputs["topology"] == "alb-envoy"
    assert outputs["endpoint"]
    assert {"vpcId", "clusterName", "logGroupName"} <= set(outputs)


def test_alerts_key_and_domain_caa_keep_their_urns_across_topologies(program):
    """The alerts topic's key and the domain's CAA record set are the foundation's: a
    switch keeps the key (and the topic encrypted with it) and rewrites the CAA values of
    the one record set in place."""

    def stable(graph) -> set[str]:
        roots = [r for r in graph if r.type in ("ecs-tls:alerts:Alerts", "ecs-tls:dns:DomainCaa")]
        return {r.urn for root in roots for r in [root, *graph.descendants(root)]}

    zone = {"hostedZoneId": "Z0123456789ABCDEFGHIJ"}
    urns = [stable(program({**MINIMAL_CONFIG[t], **zone})) for t in TOPOLOGIES]
    assert any(u.endswith("aws:kms/key:Key::alerts-key") for u in urns[0])
    assert any(u.endswith("aws:route53/record:Record::domain-caa") for u in urns[0])
    assert all(u == urns[0] for u in urns)

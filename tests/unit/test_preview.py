"""Every shipped stack as `pulumi preview` sees it on a new stack: what AWS and the other
providers compute (IDs, ARNs, DNS names, generated passwords) is unknown, and an `apply`
on it does not run. The preview must register the same resources as the deployment, or
`pulumi preview` shows a plan that `pulumi up` does not carry out."""

from __future__ import annotations

from collections import Counter

import pulumi
import pulumi_aws as aws
import pytest
from pulumi.output import Unknown

import topologies
from scripts import plan
from scripts.mock_runtime import Graph, run_program, unwrap
from tests.conftest import MINIMAL_CONFIG

STACKS = sorted(plan.shipped())


def shape(graph: Graph) -> Counter:
    """What a resource is to the engine, URN and all: type, name, parent."""
    return Counter((r.type, r.name, r.parent) for r in graph)


def both_runs(config: dict, stack: str = "dev", secret_keys=()) -> tuple[Graph, Graph]:
    up = run_program(config, stack=stack, secret_keys=secret_keys)
    preview = run_program(config, stack=stack, secret_keys=secret_keys, preview=True)
    return up, preview


@pytest.mark.parametrize("stack", STACKS)
def test_a_preview_registers_what_an_up_registers(stack):
    _, source = plan.load_stack(str(plan.shipped()[stack]))
    up, preview = both_runs(source.config, stack, source.secret_keys)
    assert shape(preview) == shape(up), (
        f"only in the deployment: {sorted(shape(up) - shape(preview))}; "
        f"only in the preview: {sorted(shape(preview) - shape(up))}"
    )
    assert set(preview.stack_outputs) == set(up.stack_outputs)


def test_in_a_preview_what_providers_compute_is_unknown():
    up, preview = both_runs(MINIMAL_CONFIG["nlb-certbot"])
    vpc = preview.one("aws:ec2/vpc:Vpc")
    assert vpc.id == "" and up.one("aws:ec2/vpc:Vpc").id != ""
    for subnet in preview.of_type("aws:ec2/subnet:Subnet"):
        assert isinstance(subnet.inputs["vpcId"], Unknown)
    # The generated password exists only once the engine creates it.
    version = preview.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert isinstance(unwrap(version.inputs["secretStringWo"]), Unknown)
    # What the program knows itself stays known.
    assert preview.stack_outputs["topology"] == "nlb-certbot"


def _registers_inside_an_apply(settings, foundation):
    """A topology that registers a child only once a VPC's ID is known."""
    component = pulumi.ComponentResource("ecs-tls:test:LateChild", settings.topology)
    child = pulumi.ResourceOptions(parent=component)
    foundation.network.vpc_id.apply(
        lambda vpc_id: aws.ssm.Parameter(
            f"{settings.topology}-vpc", type="String", value=vpc_id, opts=child
        )
    )
    component.register_outputs({})
    return topologies.TopologyResult(component=component, endpoint=f"https://{settings.domain}")


def test_the_comparison_finds_a_resource_only_an_up_registers(monkeypatch):
    monkeypatch.setitem(topologies.REGISTRY, "alb-envoy", _registers_inside_an_apply)
    up, preview = both_runs(MINIMAL_CONFIG["alb-envoy"])
    missing = shape(up) - shape(preview)
    assert [(t, n) for t, n, _ in missing] == [("aws:ssm/parameter:Parameter", "alb-envoy-vpc")]

"""The foundation as public components: Network and Cluster from their typed args, through
the package's construct path, with opts passed through, and refusals named by argument."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
import pytest

from scripts.mock_runtime import Graph
from tests.unit.test_typed_components import OrderMonitor, run_mocked

VPC = "vpc-0123456789abcdef0"
PUBLIC = ["subnet-0a000000000000001", "subnet-0a000000000000002"]
PRIVATE = ["subnet-0b000000000000001", "subnet-0b000000000000002"]
ECR_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/web:1.4"


def network(args: Mapping[str, Any], opts: pulumi.ResourceOptions | None = None, **kw: Any):
    from components.network import Network

    return lambda: Network("network", dict(args), opts, **kw)  # type: ignore[arg-type]


def cluster(args: Mapping[str, Any], opts: pulumi.ResourceOptions | None = None):
    from components.cluster import Cluster

    return lambda: Cluster("cluster", dict(args), opts)  # type: ignore[arg-type]


def aws_resources(graph: Graph) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r.type, r.name): r.inputs for r in graph if r.type.startswith("aws:")}


def construct(monkeypatch, token: str, inputs: dict[str, Any]) -> tuple[Graph, dict[str, Any]]:
    """`inputs` (schema names, numbers as floats) through the package provider's construct."""
    import components.tokens
    from package.hosted import provider

    monkeypatch.setattr(components.tokens, "_HOSTING_PACKAGE", ["ecs-tls"])
    hosted = provider()
    state: dict[str, Any] = {}

    def body():
        result = hosted.construct(token.rsplit(":", 1)[-1].lower(), token, inputs, None)
        for key, value in result.state.items():
            pulumi.Output.from_input(value).apply(lambda v, k=key: state.__setitem__(k, v))

    return run_mocked(body).graph, state


# --------------------------------------------------------------------------- schema
def test_schema_shape_of_the_foundation():
    """Every field of the args in camelCase, all optional (each has a default), plain (they
    decide which resources exist); the outputs a topology component takes as its inputs."""
    from package.hosted import schema

    resources = schema()["resources"]
    network_schema, cluster_schema = (
        resources["ecs-tls:index:Network"],
        resources["ecs-tls:index:Cluster"],
    )
    assert set(network_schema["inputProperties"]) == {
        "cidrBlock",
        "availabilityZones",
        "natGateways",
        "vpcId",
        "publicSubnetIds",
        "privateSubnetIds",
    }
    assert set(cluster_schema["inputProperties"]) == {
        "logRetentionDays",
        "namespace",
        "images",
        "taskImages",
        "executeCommand",
    }
    for resource in (network_schema, cluster_schema):
        assert resource["isComponent"] is True and resource["requiredInputs"] == []
        assert all(spec["plain"] is True for spec in resource["inputProperties"].values())
    images = cluster_schema["inputProperties"]["images"]["$ref"]
    assert images == "#/types/ecs-tls:index:ImagesArgs"
    assert {"vpcId", "publicSubnetIds", "privateSubnetIds"} <= set(network_schema["properties"])
    assert {"clusterArn", "executionRoleArn"} <= set(cluster_schema["properties"])


# --------------------------------------------------------------------------- construct
def test_network_through_the_package_provider(monkeypatch):
    graph, state = construct(
        monkeypatch,
        "ecs-tls:index:Network",
        {"cidrBlock": "10.1.0.0/16", "availabilityZones": 3.0, "natGateways": 3.0},
    )
    component = graph.one("ecs-tls:index:Network")
    assert graph.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"] == "10.1.0.0/16"
    subnets = graph.of_type("aws:ec2/subnet:Subnet")
    assert len(subnets) == 6 and all(r.inputs["cidrBlock"].startswith("10.1.") for r in subnets)
    assert len(graph.of_type("aws:ec2/natGateway:NatGateway")) == 3
    assert all(graph.ancestors(r)[-1] == component for r in subnets)
    assert set(state) == {"vpcId", "vpcCidrBlock", "publicSubnetIds", "privateSubnetIds"}
    private = {r.id for r in subnets if r.inputs["tags"]["tier"] == "private"}
    assert set(state["privateSubnetIds"]) == private and len(private) == 3


def test_network_in_an_existing_vpc_through_the_package_provider(monkeypatch):
    graph, state = construct(
        monkeypatch,
        "ecs-tls:index:Network",
        {"vpcId": VPC, "publicSubnetIds": PUBLIC, "privateSubnetIds": PRIVATE},
    )
    assert [r.type for r in graph] == ["ecs-tls:index:Network"]
    assert state["vpcId"] == VPC
    assert state["publicSubnetIds"] == PUBLIC and state["privateSubnetIds"] == PRIVATE


def test_cluster_through_the_package_provider(monkeypatch):
    graph, state = construct(
        monkeypatch,
        "ecs-tls:index:Cluster",
        {
            "logRetentionDays": 90.0,
            "namespace": "platform",
            "images": {"pullThroughCache": True, "repositoryPrefix": "team/tls"},
            "taskImages": [ECR_IMAGE, "public.ecr.aws/nginx/nginx:1.27"],
            "executeCommand": True,
        },
    )
    component = graph.one("ecs-tls:index:Cluster")
    ecs = graph.one("aws:ecs/cluster:Cluster")
    assert graph.ancestors(ecs)[-1] == component
    assert "executeCommandConfiguration" in ecs.inputs["configuration"]
    log = graph.one("aws:cloudwatch/logGroup:LogGroup", "cluster")
    assert log.inputs["retentionInDays"] == 90
    assert graph.one("aws:servicediscovery/httpNamespace:HttpNamespace").inputs["name"] == (
        "platform"
    )
    rule = graph.one("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")
    assert rule.inputs["ecrRepositoryPrefix"] == "team/tls/ecr-public"
    policy = json.loads(graph.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    resources = [r for s in policy["Statement"] for r in s["Resource"]]
    assert "arn:aws:ecr:eu-west-1:123456789012:repository/team/web" in resources
    assert {
        "clusterArn",
        "clusterName",
        "namespaceArn",
        "logGroupName",
        "executionRoleArn",
        "imageCacheWarmup",
    } == set(state)
    assert state["clusterArn"] == ecs.outputs["arn"]
    assert state["imageCacheWarmup"] and all(
        c.startswith("docker pull 123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/tls/")
        for c in state["imageCacheWarmup"]
    )


def test_cluster_defaults_through_the_package_provider(monkeypatch):
    graph, state = construct(monkeypatch, "ecs-tls:index:Cluster", {})
    assert graph.one("aws:cloudwatch/logGroup:LogGroup").inputs["retentionInDays"] == 30
    assert "configuration" not in graph.one("aws:ecs/cluster:Cluster").inputs
    assert graph.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule") == []
    assert state["clusterName"] == "ecs-tls-dev" and state["imageCacheWarmup"] == []


# --------------------------------------------------------------------------- the program's path
@pytest.mark.parametrize(
    "args",
    [
        {},
        {"cidr_block": "10.2.0.0/20", "availability_zones": 3, "nat_gateways": 3},
        {"cidr_block": "10.3.0.0/24", "availability_zones": 4, "nat_gateways": 0},
        {"vpc_id": VPC, "public_subnet_ids": PUBLIC, "private_subnet_ids": PRIVATE},
    ],
)
def test_network_args_build_what_the_parsed_configuration_builds(args):
    """The program passes its parsed `network` configuration; the same values as args
    build the same resources with the same inputs."""
    from pulumi.provider.experimental.util import camel_case

    from components.network import network_settings
    from settings.parse import parse_network

    parsed = parse_network({"network": {camel_case(k): v for k, v in args.items()}})
    assert network_settings(args) == parsed
    from_args = run_mocked(network(args)).graph
    from_settings = run_mocked(network({}, settings=parsed)).graph
    assert aws_resources(from_args) == aws_resources(from_settings)
    assert sorted(r.type for r in from_args) == sorted(r.type for r in from_settings)


# --------------------------------------------------------------------------- refusals
NETWORK_REFUSALS = [
    ({"cidr_block": "10.0.0.0/33"}, "cidrBlock", "'10.0.0.0/33' is not an IPv4 network"),
    ({"availability_zones": 9}, "availabilityZones", "9"),
    ({"nat_gateways": 2, "availability_zones": 3}, "natGateways", "2 is not 0, 1 or 3"),
    ({"public_subnet_ids": PUBLIC}, "vpcId", "missing; publicSubnetIds is set"),
    ({"vpc_id": VPC, "cidr_block": "10.0.0.0/16"}, "cidrBlock", "cannot be set with vpcId"),
    ({"vpc_id": VPC, "public_subnet_ids": PUBLIC}, "privateSubnetIds", "missing; an existing"),
    ({"vpc_id": "vpc-1", "public_subnet_ids": PUBLIC, "private_subnet_ids": PRIVATE}, "vpcId", ""),
    ({"cidr": "10.0.0.0/16"}, "cidr", "is not an argument of NetworkArgs"),
    ({"vpc_id": pulumi.Output.from_input(VPC)}, "vpcId", "must be a plain value"),
]
CLUSTER_REFUSALS = [
    ({"log_retention_days": 31}, "logRetentionDays", "31 is not a CloudWatch retention"),
    ({"namespace": "no spaces"}, "namespace", "'no spaces' is not a namespace name"),
    ({"images": {"repository_prefix": "x/y"}}, "images.repositoryPrefix", "applies only with"),
    ({"images": {"pull_through_cache": "yes"}}, "images.pullThroughCache", "true or false"),
    ({"images": {"cache": True}}, "images.cache", "is not an argument of ImagesArgs"),
    ({"task_images": ["Bad Image"]}, "taskImages[0]", "container image reference"),
    ({"task_images": "nginx"}, "taskImages", "a list of container image references"),
    ({"execute_command": "yes"}, "executeCommand", "true or false"),
    ({"log_retention_days": pulumi.Output.from_input(30)}, "logRetentionDays", "plain value"),
]


def refusal(body: Callable[[], Any]) -> tuple[str, Graph]:
    from settings import ConfigError

    with pytest.raises(ConfigError) as raised:
        run_mocked(body)
    return str(raised.value), raised.value.graph  # type: ignore[attr-defined]


@pytest.mark.parametrize(("args", "key", "says"), NETWORK_REFUSALS)
def test_bad_network_args_are_refused_by_argument_before_any_resource(args, key, says):
    message, graph = refusal(network(args))
    assert message.startswith(f"ecs-tls:{key}: ") and says in message
    assert "network." not in message
    assert len(graph) == 0


@pytest.mark.parametrize(("args", "key", "says"), CLUSTER_REFUSALS)
def test_bad_cluster_args_are_refused_by_argument_before_any_resource(args, key, says):
    message, graph = refusal(cluster(args))
    assert message.startswith(f"ecs-tls:{key}: ") and says in message
    assert "serviceConnect" not in message
    assert len(graph) == 0


def test_the_program_s_network_refusals_still_name_the_configuration_key():
    """A refusal made once AWS answered (another range than the stack's VPC has) names
    `network.…` for the program, the argument for a caller of the component."""
    from scripts.mock_runtime import deployed
    from settings.parse import parse_network

    vpc = {
        "id": "vpc-0aaaaaaaaaaaaaaaa",
        "cidrBlock": "10.9.0.0/16",
        "tags": {"Name": "ecs-tls-dev"},
    }
    with deployed(vpc, []):
        parsed = parse_network({"network": {"cidrBlock": "10.0.0.0/16"}})
        message, _ = refusal(network({}, settings=parsed))
        assert message.startswith("ecs-tls:network.cidrBlock: ")
        message, graph = refusal(network({"cidr_block": "10.0.0.0/16"}))
        assert message.startswith("ecs-tls:cidrBlock: ") and "network." not in message
        assert len(graph) == 0


def test_the_program_s_settings_do_not_mix_with_args():
    from settings.parse import parse_network

    parsed = parse_network({})
    with pytest.raises(ValueError, match="args or settings, not both"):
        run_mocked(network({"availability_zones": 3}, settings=parsed))


# --------------------------------------------------------------------------- opts
class InvokeRecorder:
    """The provider reference of each invoke the mocks answer."""

    def __init__(self, monkeypatch) -> None:
        from scripts.mock_runtime import AwsMocks

        self.providers: dict[str, set[str]] = {}
        call = AwsMocks.call

        def recording(mocks, args):
            self.providers.setdefault(args.token, set()).add(args.provider.rsplit("::", 1)[0])
            return call(mocks, args)

        monkeypatch.setattr(AwsMocks, "call", recording)


@pytest.mark.parametrize(
    ("token", "build"),
    [
        ("ecs-tls:network:Network", lambda opts: network({"availability_zones": 3}, opts)),
        ("ecs-tls:cluster:Cluster", lambda opts: cluster({"execute_command": True}, opts)),
    ],
)
@pytest.mark.parametrize("given", ["providers", "provider", "parent"])
def test_opts_reach_the_component_its_children_and_its_invokes(monkeypatch, token, build, given):
    """providers (or provider, or the parent's), protect, aliases and parent, as any Pulumi
    component takes them; the invokes made before the component registers (the region's
    zones, the stack's VPC) ask the same provider as its resources."""
    import pulumi_aws as aws

    invokes = InvokeRecorder(monkeypatch)

    def body():
        provider = aws.Provider("eu", region="eu-west-1")
        owner = pulumi.ComponentResource(
            "test:index:Owner",
            "owner",
            opts=pulumi.ResourceOptions(providers=[provider]) if given == "parent" else None,
        )
        opts = pulumi.ResourceOptions(
            parent=owner, protect=True, aliases=[pulumi.Alias(name="old-foundation")]
        )
        if given == "providers":
            opts.providers = {"aws": provider}
        elif given == "provider":
            opts.provider = provider
        build(opts)()
        owner.register_outputs({})

    monitor: OrderMonitor = run_mocked(body)
    graph = monitor.graph
    component = graph.one(token)
    provider = graph.one("pulumi:providers:aws")
    assert component.parent == graph.one("test:index:Owner").urn and component.protect
    assert [a.spec.name for a in monitor.requests[component.urn].aliases] == ["old-foundation"]
    children = [r for r in graph.descendants(component) if r.type.startswith("aws:")]
    assert children and all(r.protect for r in children)
    assert {monitor.requests[r.urn].provider.rsplit("::", 1)[0] for r in children} == {provider.urn}
    assert invokes.providers and all(p == {provider.urn} for p in invokes.providers.values())


def test_a_cluster_name_aws_would_refuse_in_its_resources_names_is_refused_first():
    from components.cluster import Cluster

    # Its execution role is named `<name>-execution-<7 hex>` by the provider (IAM: 64
    # characters of [\w+=,.@-]).
    for name in ("my app", "a" * 16):
        message, graph = refusal(lambda n=name: Cluster(n, {}))  # type: ignore[misc]
        assert message.startswith("ecs-tls:name: ") and "1 to 15" in message
        assert list(graph) == []


def test_every_string_of_a_cluster_with_the_longest_name_obeys_aws():
    from components.cluster import Cluster
    from tests.unit.test_aws_rules import violations

    graph = run_mocked(lambda: Cluster("team-a-frontend", {"execute_command": True})).graph
    assert violations(graph) == []

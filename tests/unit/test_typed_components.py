"""The public topology components: typed args, opts, the package's schema and construct
path, and the example program that runs alb-envoy in an existing VPC and cluster."""

from __future__ import annotations

import ast
import json
import runpy
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

from scripts.mock_runtime import ROOT, AwsMocks, Graph, RecordingMonitor, run_program
from tests.conftest import MINIMAL_CONFIG

EXAMPLE = ROOT / "examples" / "alb-envoy-existing-cluster"
EXAMPLE_PROJECT = "alb-envoy-existing-cluster"
VPC = "vpc-0123456789abcdef0"
PUBLIC = ["subnet-0a000000000000001", "subnet-0a000000000000002"]
PRIVATE = ["subnet-0b000000000000001", "subnet-0b000000000000002"]
CLUSTER = "platform"
FOUNDATION_ARGS = {
    "vpc_id": VPC,
    "public_subnet_ids": PUBLIC,
    "private_subnet_ids": PRIVATE,
    "cluster": CLUSTER,
}


class OrderMonitor(RecordingMonitor):
    """Also keeps the order of registrations and output registrations, and each
    registration's provider reference and aliases."""

    def __init__(self, mocks) -> None:
        super().__init__(mocks)
        self.events: list[tuple[str, str]] = []
        self.requests: dict[str, Any] = {}

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        self.events.append(("register", response.urn))
        self.requests[response.urn] = request
        return response

    def RegisterResourceOutputs(self, request):
        self.events.append(("outputs", request.urn))
        return super().RegisterResourceOutputs(request)


def run_mocked(
    body: Callable[[], Any],
    config: Mapping[str, str] | None = None,
    project: str = "ecs-tls",
) -> OrderMonitor:
    """Run `body` as a Pulumi program under the test mocks; the monitor holds the graph."""
    mocks = AwsMocks()
    monitor = OrderMonitor(mocks)
    pulumi_settings.reset_options()
    pulumi.runtime.set_mocks(mocks, project=project, stack="dev", preview=False, monitor=monitor)
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_all_config({"aws:region": "eu-west-1", **(config or {})}, [])
    try:
        _sync_await(run_in_stack(body))
    except Exception as exc:
        exc.graph = monitor.graph  # type: ignore[attr-defined]
        raise
    return monitor


def alb_envoy(args: Mapping[str, Any], opts: pulumi.ResourceOptions | None = None):
    from topologies.alb_envoy import AlbEnvoy

    return lambda: AlbEnvoy("alb-envoy", dict(args), opts)  # type: ignore[arg-type]


def existing(**more: Any) -> dict[str, Any]:
    return {"domain": "app.example.com", **FOUNDATION_ARGS, **more}


@pytest.fixture(scope="module")
def component_run() -> OrderMonitor:
    return run_mocked(alb_envoy(existing()))


# --------------------------------------------------------------------------- typed args
def test_args_mirror_every_configuration_key_of_alb_envoy():
    """A stack's configuration goes to args and back unchanged; a key without a field
    (here one alb-envoy refuses anyway) is refused, so args cannot drop configuration."""
    from settings import ConfigError
    from topologies.alb_envoy import alb_envoy_args
    from topologies.args import AlbEnvoyArgs, config_from_args

    config = {
        "domain": "app.example.com",
        "hostedZoneId": "Z0123456789ABCDEFGHIJ",
        "logRetentionDays": 90,
        "allowedCidrs": ["203.0.113.0/24"],
        "sslPolicy": "ELBSecurityPolicy-TLS13-1-3-2021-06",
        "certificateExpiryAlarmDays": 20,
        "alertsEmail": "ops@example.com",
        "loadBalancer": {"accessLogs": True, "deletionProtection": True, "wafWebAclArn": "x"},
        "envoy": {"port": 9443, "minTlsVersion": "1.3", "upstreamIdleTimeoutSeconds": 30},
        "certificate": {"source": "acm"},
        "app": {
            "image": "nginx",
            "port": 80,
            "environment": {"LOG_LEVEL": "debug", "snake_case_NAME": "kept"},
            "secrets": {"API": {"arn": "a", "jsonKey": "k"}},
            "autoscaling": {"min": 1, "max": 4, "cpuPercent": 60},
            "taskRolePolicyArns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
            "capacity": {"fargate": 1, "fargateSpot": 3, "base": 1},
        },
    }
    args = alb_envoy_args({**config, "topology": "alb-envoy", "network": {"vpcId": VPC}})
    assert args["app"]["environment"] == {"LOG_LEVEL": "debug", "snake_case_NAME": "kept"}
    assert args["envoy"]["min_tls_version"] == "1.3"
    assert config_from_args(args, AlbEnvoyArgs) == config
    with pytest.raises(ConfigError, match="acme"):
        alb_envoy_args({**config, "acme": {"email": "ops@example.com"}})


def test_a_bad_argument_fails_before_any_resource_naming_it():
    from settings import ConfigError

    for args, key in [
        (existing(envoy={"min_tls_version": "1.0"}), "envoy.minTlsVersion"),
        (existing(envoy={"minTlsVersion": "1.3"}), "envoy.minTlsVersion"),
        (existing(ssl_policy="ELBSecurityPolicy-2016-08"), "sslPolicy"),
        ({k: v for k, v in existing().items() if k != "cluster"}, "cluster"),
        (existing(app={"capacity": "fargate-spot"}), "app.capacity"),
        (existing(app={"enable_execute_command": True}), "app.enableExecuteCommand"),
        (existing(allowed_cidrs=pulumi.Output.from_input(["10.0.0.0/8"])), "allowedCidrs"),
        (existing(app={"image": pulumi.Output.secret("nginx")}), "app"),
    ]:
        with pytest.raises(ConfigError, match=f"ecs-tls:{key}") as raised:
            run_mocked(alb_envoy(args))
        assert len(raised.value.graph) == 0, key  # type: ignore[attr-defined]


def test_existing_cluster_gets_the_component_s_own_log_group_and_execution_role(
    component_run,
):
    graph = component_run.graph
    assert not graph.of_type("aws:ecs/cluster:Cluster"), "the user's cluster is not created"
    assert not graph.of_type("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")
    assert not graph.of_type("aws:ec2/vpc:Vpc") and not graph.of_type("aws:ec2/subnet:Subnet")
    service = graph.one("aws:ecs/service:Service")
    assert service.inputs["cluster"] == f"arn:aws:ecs:eu-west-1:123456789012:cluster/{CLUSTER}"
    assert service.inputs["launchType"] == "FARGATE"
    assert service.inputs["networkConfiguration"]["subnets"] == PRIVATE
    task = graph.one("aws:ecs/taskDefinition:TaskDefinition")
    role = graph.one("aws:iam/role:Role", "alb-envoy-cluster-execution")
    assert task.inputs["executionRoleArn"] == role.outputs["arn"]
    log_group = graph.one("aws:cloudwatch/logGroup:LogGroup", "alb-envoy-cluster")
    containers = json.loads(task.inputs["containerDefinitions"])
    assert {c["logConfiguration"]["options"]["awslogs-group"] for c in containers} == {
        log_group.inputs["name"]
    }
    lb = graph.one("aws:lb/loadBalancer:LoadBalancer")
    assert lb.inputs["subnets"] == PUBLIC
    # Every resource is the component's, at any depth: nothing lands at the stack's root.
    component = graph.one("ecs-tls:alb_envoy:AlbEnvoy")
    assert {r.urn for r in graph.descendants(component)} == graph.urns() - {component.urn}


def test_direct_task_in_an_existing_vpc_and_cluster():
    from topologies.direct_task import DirectTask

    args = {
        "domain": "tasks.example.com",
        "hosted_zone_id": "Z0123456789ABCDEFGHIJ",
        "acme": {"email": "ops@example.com"},
        "vpc_id": VPC,
        "public_subnet_ids": PUBLIC,
        "cluster": f"arn:aws:ecs:eu-west-1:123456789012:cluster/{CLUSTER}",
    }
    graph = run_mocked(lambda: DirectTask("direct-task", args)).graph  # type: ignore[arg-type]
    assert not graph.of_type("aws:ecs/cluster:Cluster")
    component = graph.one("ecs-tls:direct_task:DirectTask")
    assert {r.urn for r in graph.descendants(component)} == graph.urns() - {component.urn}
    service = graph.one("aws:ecs/service:Service", "direct-task")
    assert service.inputs["cluster"] == args["cluster"]
    assert service.inputs["networkConfiguration"]["subnets"] == PUBLIC
    from settings import ConfigError

    with pytest.raises(ConfigError, match="ecs-tls:publicSubnetIds: missing"):
        DirectTask("direct-task", {k: v for k, v in args.items() if k != "public_subnet_ids"})  # type: ignore[arg-type]


SERVICES = [
    {"name": "web", "image": "nginx", "port": 8080, "environment": {"UPSTREAM_url": "x"}},
    {
        "name": "api",
        "image": "nginx",
        "port": 9090,
        "client_alias": {"dns_name": "api", "port": 90},
    },
]


def test_service_connect_in_an_existing_vpc_and_cluster(monkeypatch):
    from topologies.service_connect import ServiceConnect

    args = {**existing(), "services": SERVICES, "ingress": "nlb"}
    runs: list[Graph] = []

    def run() -> None:
        runs.append(run_mocked(lambda: ServiceConnect("service-connect", args)).graph)

    late = closed_components_registering(monkeypatch, run)
    assert late == [], "\n".join(late)
    (graph,) = runs
    assert not graph.of_type("aws:ecs/cluster:Cluster")
    component = graph.one("ecs-tls:service_connect:ServiceConnect")
    assert {r.urn for r in graph.descendants(component)} == graph.urns() - {component.urn}
    namespace = graph.one("aws:servicediscovery/httpNamespace:HttpNamespace")
    assert namespace.inputs["name"] == "ecs-tls-dev-service-connect"
    services = graph.of_type("aws:ecs/service:Service")
    assert {s.name for s in services} == {"service-connect-web", "service-connect-api"}
    for service in services:
        sc = service.inputs["serviceConnectConfiguration"]
        assert sc["namespace"] == namespace.outputs["arn"]
        assert service.inputs["cluster"].endswith(f":cluster/{CLUSTER}")
    web = graph.one("aws:ecs/taskDefinition:TaskDefinition", "service-connect-web")
    (container,) = json.loads(web.inputs["containerDefinitions"])
    assert {"name": "UPSTREAM_url", "value": "x"} in container["environment"]


def test_service_connect_args_mirror_the_configuration():
    from topologies.args import ServiceConnectTopologyArgs, config_from_args
    from topologies.service_connect import service_connect_args

    config = {
        "domain": "app.example.com",
        "ingress": "none",
        "serviceConnect": {"namespace": "apps", "customerKmsKey": True},
        "privateCa": {"shareWith": ["111122223333"], "permanentDeletionDays": 30},
        "services": [
            {"name": "web", "image": "nginx", "port": 80, "environment": {"A_b": "c"}},
            {
                "name": "api",
                "image": "nginx",
                "port": 81,
                "clientAlias": {"dnsName": "x", "port": 1},
            },
        ],
    }
    args = service_connect_args({**config, "topology": "service-connect", "caaRecord": False})
    assert args["services"][1]["client_alias"] == {"dns_name": "x", "port": 1}
    assert args["service_connect"] == {"namespace": "apps", "customer_kms_key": True}
    assert config_from_args(args, ServiceConnectTopologyArgs) == config


NLB_CERTBOT = {
    "domain": "db.example.com",
    "hosted_zone_id": "Z0123456789ABCDEFGHIJ",
    "acme": {"email": "ops@example.com"},
    "allowed_cidrs": ["203.0.113.0/24"],
    **FOUNDATION_ARGS,
}


def test_nlb_certbot_in_an_existing_vpc_and_cluster(monkeypatch):
    from settings import ConfigError
    from topologies.nlb_certbot import NlbCertbot

    # Its default, an EC2 instance, needs a capacity provider on the cluster: refused.
    with pytest.raises(ConfigError, match=r"ecs-tls:app\.capacity: 'ec2'"):
        NlbCertbot("nlb-certbot", NLB_CERTBOT)  # type: ignore[arg-type]
    outputs = {**NLB_CERTBOT, "private_subnet_ids": pulumi.Output.from_input(PRIVATE)}
    with pytest.raises(ConfigError, match="ecs-tls:privateSubnetIds: must be plain"):
        NlbCertbot("nlb-certbot", {**outputs, "app": {"capacity": "fargate"}})  # type: ignore[arg-type]

    args = {**NLB_CERTBOT, "app": {"capacity": "fargate", "ports": [7473.0, 7687.0]}}
    runs: list[Graph] = []
    late = closed_components_registering(
        monkeypatch,
        lambda: runs.append(run_mocked(lambda: NlbCertbot("nlb-certbot", args)).graph),  # type: ignore[arg-type]
    )
    assert late == [], "\n".join(late)
    (graph,) = runs
    assert not graph.of_type("aws:ecs/cluster:Cluster")
    assert not graph.of_type("aws:autoscaling/group:Group")
    component = graph.one("ecs-tls:nlb_certbot:NlbCertbot")
    assert {r.urn for r in graph.descendants(component)} == graph.urns() - {component.urn}
    # One mount target per zone of the private subnets (the mocks put them in two zones).
    targets = graph.of_type("aws:efs/mountTarget:MountTarget")
    assert sorted(t.inputs["subnetId"] for t in targets) == PRIVATE
    lb_rules = [
        r
        for r in graph.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        if r.name.startswith("nlb-certbot-out-")
    ]
    assert sorted(r.inputs["fromPort"] for r in lb_rules) == [7473, 7687]


def test_appmesh_efs_in_an_existing_vpc_and_cluster(monkeypatch):
    from settings import ConfigError
    from topologies.appmesh_efs import AppmeshEfs

    args = {
        "domain": "app.example.com",
        "vpc_id": VPC,
        "private_subnet_ids": PRIVATE,
        "cluster": CLUSTER,
        "mesh": {"gateway_routes": [{"prefix": "/", "service": "frontend"}]},
    }
    runs: list[Graph] = []
    late = closed_components_registering(
        monkeypatch,
        lambda: runs.append(run_mocked(lambda: AppmeshEfs("appmesh-efs", args)).graph),  # type: ignore[arg-type]
    )
    assert late == [], "\n".join(late)
    (graph,) = runs
    assert not graph.of_type("aws:ecs/cluster:Cluster")
    component = graph.one("ecs-tls:appmesh_efs:AppmeshEfs")
    assert {r.urn for r in graph.descendants(component)} == graph.urns() - {component.urn}
    targets = graph.of_type("aws:efs/mountTarget:MountTarget")
    assert sorted(t.inputs["subnetId"] for t in targets) == PRIVATE
    lb = graph.one("aws:lb/loadBalancer:LoadBalancer")
    assert lb.inputs["internal"] is True and lb.inputs["subnets"] == PRIVATE
    with pytest.raises(ConfigError, match="ecs-tls:privateSubnetIds: missing"):
        AppmeshEfs("appmesh-efs", {k: v for k, v in args.items() if k != "private_subnet_ids"})  # type: ignore[arg-type]


def test_opts_reach_the_component_and_its_children():
    """providers, protect, aliases and parent, as any Pulumi component takes them."""
    import pulumi_aws as aws

    def body():
        provider = aws.Provider("eu", region="eu-west-1")
        owner = pulumi.ComponentResource("test:index:Owner", "owner")
        opts = pulumi.ResourceOptions(
            parent=owner,
            providers={"aws": provider},
            protect=True,
            aliases=[pulumi.Alias(name="old-alb-envoy")],
        )
        alb_envoy(existing(), opts)()
        owner.register_outputs({})

    monitor = run_mocked(body)
    graph = monitor.graph
    component = graph.one("ecs-tls:alb_envoy:AlbEnvoy")
    owner = graph.one("test:index:Owner")
    provider = graph.one("pulumi:providers:aws")
    assert component.parent == owner.urn and component.protect
    request = monitor.requests[component.urn]
    assert [a.spec.name for a in request.aliases] == ["old-alb-envoy"]
    aws_resources = [r for r in graph.descendants(component) if r.type.startswith("aws:")]
    assert aws_resources and all(r.protect for r in aws_resources)
    assert {monitor.requests[r.urn].provider.rsplit("::", 1)[0] for r in aws_resources} == {
        provider.urn
    }
    # The invokes (region, account) ask the same provider: the ARN of the cluster, built
    # from them, is in the given provider's region.
    service = graph.one("aws:ecs/service:Service")
    assert service.inputs["cluster"].startswith("arn:aws:ecs:eu-west-1:")


def closed_components_registering(monkeypatch, body: Callable[[], Any]) -> list[str]:
    """Run `body`, return the children created under a component after its
    `register_outputs` (the engine would see a component that was finished grow)."""
    closed: set[int] = set()
    late: list[str] = []
    register_outputs = pulumi.ComponentResource.register_outputs
    resource_init = pulumi.Resource.__init__

    def mark(self, outputs):
        closed.add(id(self))
        return register_outputs(self, outputs)

    def check(self, t, name, custom=False, props=None, opts=None, *rest, **kw):
        parent = opts.parent if opts is not None else None
        if parent is not None and id(parent) in closed:
            late.append(f"{t} {name} under {parent._name}")
        return resource_init(self, t, name, custom, props, opts, *rest, **kw)

    monkeypatch.setattr(pulumi.ComponentResource, "register_outputs", mark)
    monkeypatch.setattr(pulumi.Resource, "__init__", check)
    body()
    return late


def test_no_child_is_registered_after_register_outputs(monkeypatch):
    late = closed_components_registering(
        monkeypatch, lambda: run_mocked(alb_envoy(existing(hosted_zone_id="Z0123456789ABCDEFGHIJ")))
    )
    assert late == [], "\n".join(late)


@pytest.mark.parametrize("topology", list(MINIMAL_CONFIG))
def test_no_child_is_registered_after_register_outputs_in_the_program(monkeypatch, topology):
    """This program's stack of each topology, foundation included (a configuration no other
    test runs, so the program runs here rather than coming from the shared graphs)."""
    config = {**MINIMAL_CONFIG[topology], "logRetentionDays": 14, "alertsEmail": "o@x.org"}
    late = closed_components_registering(monkeypatch, lambda: run_program(config))
    assert late == [], "\n".join(late)


def test_the_late_child_check_can_fail(monkeypatch):
    import pulumi_aws as aws

    def body():
        c = pulumi.ComponentResource("test:index:Closed", "closed")
        c.register_outputs({})
        aws.sns.Topic("late", opts=pulumi.ResourceOptions(parent=c))

    assert closed_components_registering(monkeypatch, lambda: run_mocked(body)) == [
        "aws:sns/topic:Topic late under closed"
    ]


def test_topologies_use_no_private_attribute_of_another_object():
    """`x._name` only on `self` (or `cls`) in topologies/: components talk to each other
    through what they make public."""
    offenders = []
    for path in sorted((ROOT / "topologies").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert offenders == []


# --------------------------------------------------------------------------- the package
def test_package_schema_is_the_snapshot():
    """package/schema.json is what the SDK infers today; regenerate it with
    `.venv/bin/python -m package.hosted --write` after changing an args type."""
    from package.hosted import SCHEMA_FILE, schema_text

    assert SCHEMA_FILE.read_text() == schema_text(), "python -m package.hosted --write"


def test_every_input_of_the_package_is_described():
    from package.hosted import schema

    s = schema()
    missing = []
    for token, resource in s["resources"].items():
        if not resource.get("description"):
            missing.append(token)
        for prop, spec in resource["inputProperties"].items():
            if not spec.get("description"):
                missing.append(f"{token}.{prop}")
        for prop, spec in resource.get("properties", {}).items():
            if not spec.get("description"):
                missing.append(f"{token} output {prop}")
    for token, t in s["types"].items():
        if not t.get("description"):
            missing.append(token)
        for prop, spec in t.get("properties", {}).items():
            if not spec.get("description"):
                missing.append(f"{token}.{prop}")
    assert s["resources"], "no component in the schema"
    assert missing == []


def test_schema_shape_of_alb_envoy():
    from package.hosted import schema

    resource = schema()["resources"]["ecs-tls:index:AlbEnvoy"]
    assert resource["isComponent"] is True
    assert resource["requiredInputs"] == ["domain"]
    inputs = resource["inputProperties"]
    # IDs of the foundation may be other resources' outputs; configuration is plain.
    assert "plain" not in inputs["vpcId"] and "plain" not in inputs["cluster"]
    assert inputs["domain"]["plain"] is True
    assert inputs["app"]["$ref"] == "#/types/ecs-tls:index:AppArgs"
    assert {"endpoint", "loadBalancerDnsName", "serviceArn"} <= set(resource["properties"])
    service_connect = schema()["resources"]["ecs-tls:index:ServiceConnect"]
    services = service_connect["inputProperties"]["services"]
    assert services["items"]["$ref"] == "#/types/ecs-tls:index:ServiceArgs"
    direct = schema()["resources"]["ecs-tls:index:DirectTask"]
    assert direct["requiredInputs"] == ["acme", "domain", "hostedZoneId"]


def test_construct_through_the_package_provider(monkeypatch):
    """The provider's construct path: schema names in, the component with the package's
    type token out, its outputs as the engine would read them."""
    import components.tokens
    from package.hosted import provider

    monkeypatch.setattr(components.tokens, "_HOSTING_PACKAGE", ["ecs-tls"])
    hosted = provider()
    results = {}

    def body():
        result = hosted.construct(
            "alb-envoy",
            "ecs-tls:index:AlbEnvoy",
            {
                "domain": "app.example.com",
                "vpcId": VPC,
                "publicSubnetIds": PUBLIC,
                "privateSubnetIds": PRIVATE,
                "cluster": CLUSTER,
                "envoy": {"port": 9443.0},  # numbers arrive as floats
                "app": {"desiredCount": 3.0, "environment": {"MODE": "demo"}},
            },
            pulumi.ResourceOptions(),
        )
        results.update(result.state)

    graph = run_mocked(body).graph
    component = graph.one("ecs-tls:index:AlbEnvoy")
    assert graph.one("aws:ecs/service:Service").inputs["desiredCount"] == 3
    tg = graph.one("aws:lb/targetGroup:TargetGroup")
    assert tg.inputs["port"] == 9443
    assert graph.ancestors(graph.one("aws:ecs/service:Service"))[-1] == component
    assert {"endpoint", "loadBalancerDnsName", "serviceName", "serviceArn"} <= set(results)


# --------------------------------------------------------------------------- the example
def run_example() -> Graph:
    config = {
        f"{EXAMPLE_PROJECT}:vpcId": VPC,
        f"{EXAMPLE_PROJECT}:publicSubnetIds": json.dumps(PUBLIC),
        f"{EXAMPLE_PROJECT}:privateSubnetIds": json.dumps(PRIVATE),
        f"{EXAMPLE_PROJECT}:clusterName": CLUSTER,
        f"{EXAMPLE_PROJECT}:domain": "app.example.com",
    }
    main = str(EXAMPLE / "__main__.py")
    return run_mocked(
        lambda: runpy.run_path(main, run_name="__main__"), config, EXAMPLE_PROJECT
    ).graph


def foundation_values(graph: Graph, cluster, log_group, role, topic) -> dict[str, str]:
    """Values that name the foundation, by placeholder."""
    log = graph.one("aws:cloudwatch/logGroup:LogGroup", log_group)
    execution = graph.one("aws:iam/role:Role", role)
    sns = graph.one("aws:sns/topic:Topic", topic)
    key = graph.one("aws:kms/key:Key", f"{topic}-key")
    queue = graph.one("aws:sqs/queue:Queue", f"{topic}-undelivered")
    return {
        key.outputs["arn"]: "<alerts-key>",
        queue.outputs["arn"]: "<alerts-dead-letters>",
        cluster[0]: "<cluster-arn>",
        log.inputs["name"]: "<log-group>",
        execution.outputs["arn"]: "<execution-role-arn>",
        execution.id: "<execution-role>",
        sns.outputs["arn"]: "<alerts-topic>",
        cluster[1]: "<cluster-name>",
    }


def normalized(value: Any, foundation: dict[str, str], project: str) -> Any:
    """`value` with foundation values replaced by placeholders (in text, except the
    cluster's name, which is replaced only as a whole value), then the project's name."""
    if isinstance(value, dict):
        return {k: normalized(v, foundation, project) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v, foundation, project) for v in value]
    if not isinstance(value, str):
        return value
    for found, placeholder in sorted(foundation.items(), key=lambda kv: -len(kv[0])):
        if placeholder == "<cluster-name>":
            value = placeholder if value == found else value
        else:
            value = value.replace(found, placeholder)
    return value.replace(f"{project}-dev", "ecs-tls-dev")


def subtree(graph: Graph, root_type: str, foundation: dict[str, str], project: str):
    """The topology's resources by (type, name), inputs with foundation values replaced;
    the foundation the component built for itself is left out."""
    root = graph.one(root_type)
    skip = set()
    for r in graph.descendants(root):
        if r.type in ("ecs-tls:cluster:ClusterAttachment", "ecs-tls:alerts:Alerts") or (
            r.type == "ecs-tls:dns:DomainAlias"
        ):
            skip |= {r.urn} | {d.urn for d in graph.descendants(r)}
    out = {}
    for r in graph.descendants(root):
        if r.urn in skip:
            continue
        out[(r.type, r.name)] = normalized(r.inputs, foundation, project)
    return out


def test_example_matches_the_equivalent_stack():
    """examples/alb-envoy-existing-cluster through typed args, and this program's stack with
    network.vpcId...: the same topology resources with the same inputs."""
    example = run_example()
    stack = run_program(
        {
            **MINIMAL_CONFIG["alb-envoy"],
            "network": {"vpcId": VPC, "publicSubnetIds": PUBLIC, "privateSubnetIds": PRIVATE},
        }
    )
    stack_cluster = stack.one("aws:ecs/cluster:Cluster")
    ours = subtree(
        stack,
        "ecs-tls:alb_envoy:AlbEnvoy",
        foundation_values(
            stack,
            (stack_cluster.outputs["arn"], stack_cluster.inputs["name"]),
            "cluster",
            "cluster-execution",
            "alerts",
        ),
        "ecs-tls",
    )
    theirs = subtree(
        example,
        "ecs-tls:alb_envoy:AlbEnvoy",
        foundation_values(
            example,
            (f"arn:aws:ecs:eu-west-1:123456789012:cluster/{CLUSTER}", CLUSTER),
            "alb-envoy-cluster",
            "alb-envoy-cluster-execution",
            "alb-envoy-alerts",
        ),
        EXAMPLE_PROJECT,
    )
    assert set(theirs) == set(ours)
    differing = [(key, ours[key], theirs[key]) for key in ours if ours[key] != theirs[key]]
    assert differing == [], json.dumps(differing, indent=1)
    assert len(ours) > 20


def test_the_plugin_entry_point_serves_the_snapshot_schema(tmp_path):
    """package/__main__.py as the language host starts it: it prints its port, and its
    GetSchema answers package/schema.json (the engine address is never dialled for that)."""
    import subprocess
    import sys

    import grpc
    from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

    from package.hosted import SCHEMA_FILE

    host = subprocess.Popen(
        [sys.executable, str(ROOT / "package"), "127.0.0.1:1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(host.stdout.readline().strip())  # type: ignore[union-attr]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            response = stub.GetSchema(provider_pb2.GetSchemaRequest(version=0), timeout=30)
    finally:
        host.terminate()
        host.wait(timeout=10)
    served = json.loads(response.schema)
    assert served == json.loads(SCHEMA_FILE.read_text())
    assert set(served["resources"]) == {
        "ecs-tls:index:Network",
        "ecs-tls:index:Cluster",
        "ecs-tls:index:AlbEnvoy",
        "ecs-tls:index:NlbCertbot",
        "ecs-tls:index:ServiceConnect",
        "ecs-tls:index:AppmeshEfs",
        "ecs-tls:index:DirectTask",
    }


def test_a_private_key_given_as_an_argument_never_reaches_an_input_in_plain_text():
    """Outside this program no stack transform marks --secret values: the component keeps
    the key it is given secret by itself."""
    from scripts.mock_runtime import plaintext, unwrap
    from scripts.pki import make_pki

    pki = make_pki("app.example.com")
    key_body = pki.key_pem.strip().splitlines()[1]
    args = existing(
        certificate={
            "certificate_pem": pki.leaf_pem,
            "private_key_pem": pki.key_pem,
            "chain_pem": pki.chain_pem,
        }
    )
    graph = run_mocked(alb_envoy(args)).graph
    leaks = [
        (r.type, r.name, path)
        for r in graph
        for path, text in plaintext(r.inputs)
        if key_body in text
    ]
    assert leaks == []
    # The key does reach the resources that hold it, inside a secret.
    assert any(key_body in json.dumps(unwrap(r.inputs)) for r in graph)


# ------------------------------------------------------------------- AWS's own rules
def _component(topology: str, name: str) -> Callable[[], Any]:
    """Each topology as another program creates it, in an existing VPC and cluster."""
    from topologies.alb_envoy import AlbEnvoy
    from topologies.appmesh_efs import AppmeshEfs
    from topologies.direct_task import DirectTask
    from topologies.nlb_certbot import NlbCertbot
    from topologies.service_connect import ServiceConnect

    built: dict[str, Callable[[], Any]] = {
        "alb-envoy": lambda: AlbEnvoy(name, existing()),  # type: ignore[arg-type]
        "direct-task": lambda: DirectTask(
            name,
            {  # type: ignore[arg-type]
                "domain": "tasks.example.com",
                "hosted_zone_id": "Z0123456789ABCDEFGHIJ",
                "acme": {"email": "ops@example.com"},
                "vpc_id": VPC,
                "public_subnet_ids": PUBLIC,
                "cluster": CLUSTER,
            },
        ),
        "nlb-certbot": lambda: NlbCertbot(
            name,
            {**NLB_CERTBOT, "app": {"capacity": "fargate"}},  # type: ignore[arg-type]
        ),
        "service-connect": lambda: ServiceConnect(
            name,
            {**existing(), "services": SERVICES, "ingress": "alb"},  # type: ignore[arg-type]
        ),
        "appmesh-efs": lambda: AppmeshEfs(
            name,
            {  # type: ignore[arg-type]
                "domain": "app.example.com",
                "vpc_id": VPC,
                "private_subnet_ids": PRIVATE,
                "cluster": CLUSTER,
            },
        ),
    }
    return built[topology]


@pytest.mark.parametrize(
    "topology", ["alb-envoy", "direct-task", "nlb-certbot", "service-connect", "appmesh-efs"]
)
def test_every_string_of_a_component_in_an_existing_cluster_obeys_aws(topology):
    # The resources only a component makes (its own log group, execution role, namespace,
    # alerts) are in no shipped stack: the rules EC2, IAM, CloudWatch... apply server-side
    # are checked on them here (tests/unit/test_aws_rules.py for the program's stacks).
    from tests.unit.test_aws_rules import violations

    for name in (topology, "team-a-frontend"):  # the longest name accepted: 15 characters
        graph = run_mocked(_component(topology, name)).graph
        assert graph.of_type("ecs-tls:cluster:ClusterAttachment")
        assert violations(graph) == [], name


@pytest.mark.parametrize("name", ["my app", "App", "team_a", "-web", "web-", "a" * 16])
def test_a_component_name_aws_would_refuse_in_its_resources_names_is_refused_first(name):
    from settings import ConfigError

    with pytest.raises(
        ConfigError, match=r"ecs-tls:name: .* is not a component name of 1 to 15"
    ) as e:
        run_mocked(_component("alb-envoy", name))
    assert list(e.value.graph) == []  # type: ignore[attr-defined]

"""Run the real `__main__.py` under Pulumi mocks and return what it registered as a graph.

The mocks answer invokes the way the AWS provider does (camelCase keys) and give every
resource plausible computed outputs (ARN, ID, DNS name). A `MockMonitor` subclass records
each registration with its parent and dependencies, so tests query a graph:

    graph.of_type("aws:lb/listener:Listener"), graph.one("aws:ecs/cluster:Cluster"),
    graph.ancestors(r), graph.depends_on(r, other)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import runpy
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as pulumi_resource_runtime
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "ecs-tls"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
AZ_NAMES = [f"{REGION}{c}" for c in "abcdef"]  # the default region's; az_names(region)
MOCK_ISSUED = datetime(2100, 1, 1, tzinfo=UTC)  # pulumi-tls certificates

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass
class Resource:
    type: str
    name: str
    urn: str
    id: str
    parent: str | None
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    dependencies: list[str]
    custom: bool
    # Resource options the engine acts on: replacement order and what `destroy` keeps.
    delete_before_replace: bool = False
    protect: bool = False
    retain_on_delete: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    # Which resources each input was computed from (the emulator turns these into
    # references of its Terraform configuration).
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<{self.type} {self.name}>"


@dataclass
class Graph:
    resources: list[Resource] = field(default_factory=list)
    stack_outputs: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources)

    def __len__(self) -> int:
        return len(self.resources)

    def by_urn(self, urn: str) -> Resource:
        for r in self.resources:
            if r.urn == urn:
                return r
        raise KeyError(urn)

    def of_type(self, type_: str, name: str | None = None) -> list[Resource]:
        return [r for r in self.resources if r.type == type_ and (name is None or r.name == name)]

    def one(self, type_: str, name: str | None = None) -> Resource:
        found = self.of_type(type_, name)
        assert len(found) == 1, f"expected one {type_} {name or ''}, found {found}"
        return found[0]

    def urns(self) -> set[str]:
        return {r.urn for r in self.resources}

    def ancestors(self, r: Resource) -> list[Resource]:
        chain = []
        while r.parent is not None:
            try:
                r = self.by_urn(r.parent)
            except KeyError:
                break  # the stack itself is not recorded
            chain.append(r)
        return chain

    def children(self, r: Resource) -> list[Resource]:
        return [c for c in self.resources if c.parent == r.urn]

    def descendants(self, r: Resource) -> list[Resource]:
        out = []
        for c in self.children(r):
            out.append(c)
            out.extend(self.descendants(c))
        return out

    def depends_on(self, r: Resource, other: Resource) -> bool:
        """True when `r`, or a component above it, waits for `other` explicitly."""
        return any(other.urn in x.dependencies for x in [r, *self.ancestors(r)])


def _pem(label: str, name: str) -> str:
    body = hashlib.sha256(f"{label}/{name}".encode()).hexdigest()
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


@functools.cache
def _partitions() -> tuple[dict[str, Any], ...]:
    from botocore.loaders import Loader

    return tuple(Loader().load_data("endpoints")["partitions"])


def region_partition(region: str) -> tuple[str, str] | None:
    """(partition, DNS suffix) of `region` when botocore's endpoints data lists it (the
    list the AWS SDKs resolve endpoints from), else None."""
    for p in _partitions():
        if region in p["regions"]:
            return p["partition"], p["dnsSuffix"]
    return None


def az_names(region: str) -> list[str]:
    return [f"{region}{c}" for c in "abcdef"]


def _zone_id_prefix(region: str) -> str:
    # AWS's zone IDs abbreviate the region: eu-west-1 -> euw1, ap-southeast-2 -> apse2.
    short = {"north": "n", "south": "s", "east": "e", "west": "w", "central": "c"}
    first, *middle, number = region.split("-")
    words = "".join(
        "".join(short.get(part, part[:1]) for part in _compass(word)) for word in middle
    )
    return f"{first}{words}{number}"


def _compass(word: str) -> list[str]:
    for head in ("north", "south"):
        if word.startswith(head) and word != head:
            return [head, word[len(head) :]]
    return [word]


# The region of the registration being answered: AwsMocks sets it around each call, so
# tests that wrap _resource_outputs(args) keep working and still get the run's region.
_ANSWERING_IN = [REGION]


def _resource_outputs(args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
    """Inputs echoed back plus the computed attributes AWS would return, in the region
    of the mocks answering."""
    region = _ANSWERING_IN[-1]
    partition, suffix = region_partition(region) or ("aws", "amazonaws.com")
    digest = hashlib.sha1(f"{args.typ}/{args.name}".encode()).hexdigest()
    service = args.typ.split(":")[1].split("/")[0] if ":" in args.typ else "mock"
    # Inputs the program made secret come back secret, as the engine returns them; the
    # attributes AWS computes from them (an ARN from a name) are built from the plain value.
    state: dict[str, Any] = dict(args.inputs)
    inputs: dict[str, Any] = unwrap(state)
    state.setdefault("name", args.inputs.get("name", f"{args.name}-{digest[:7]}"))
    name = unwrap(state["name"])
    state["arn"] = f"arn:{partition}:{service}:{region}:{ACCOUNT}:{args.name}-{digest[:6]}"
    resource_id = f"{args.name}-{digest[:8]}"
    prefixes = {
        "aws:ec2/vpc:Vpc": "vpc-",
        "aws:ec2/subnet:Subnet": "subnet-",
        "aws:ec2/securityGroup:SecurityGroup": "sg-",
        "aws:ec2/natGateway:NatGateway": "nat-",
        "aws:ec2/eip:Eip": "eipalloc-",
        "aws:ec2/internetGateway:InternetGateway": "igw-",
        "aws:ec2/routeTable:RouteTable": "rtb-",
        "aws:ebs/volume:Volume": "vol-",
    }
    if args.typ in prefixes:
        resource_id = prefixes[args.typ] + digest[:17]
    if args.typ == "aws:lb/loadBalancer:LoadBalancer":
        state["dnsName"] = f"{args.name}-{digest[:8]}.{region}.elb.{suffix}"
        state["zoneId"] = "Z32O12XQLNTSW2"
        state["arnSuffix"] = f"app/{args.name}/{digest[:16]}"
    if args.typ == "aws:lb/targetGroup:TargetGroup":
        state["arnSuffix"] = f"targetgroup/{args.name}/{digest[:16]}"
    if args.typ == "aws:secretsmanager/secret:Secret":
        state["arn"] = (
            f"arn:{partition}:secretsmanager:{region}:{ACCOUNT}:secret:{args.name}-AbCdEf"
        )
        resource_id = state["arn"]
    if args.typ == "aws:ecs/cluster:Cluster":
        state["arn"] = f"arn:{partition}:ecs:{region}:{ACCOUNT}:cluster/{name}"
    if args.typ == "aws:sqs/queue:Queue":
        # SQS addresses a queue by its URL, which queue policies take as their ID.
        state["url"] = f"https://sqs.{region}.{suffix}/{ACCOUNT}/{name}"
    if args.typ == "aws:cloudwatch/logGroup:LogGroup":
        state["arn"] = f"arn:{partition}:logs:{region}:{ACCOUNT}:log-group:{name}"
    # pulumi-tls: PEM-shaped text. Mocks, unlike the engine, do not mark keys secret, so a
    # test that finds this text outside a secret proves the program forgot to.
    if args.typ == "tls:index/privateKey:PrivateKey":
        state["privateKeyPem"] = _pem("EC PRIVATE KEY", args.name)
        state["privateKeyPemPkcs8"] = _pem("PRIVATE KEY", args.name)
        state["publicKeyPem"] = _pem("PUBLIC KEY", args.name)
    if args.typ in (
        "tls:index/selfSignedCert:SelfSignedCert",
        "tls:index/locallySignedCert:LocallySignedCert",
    ):
        state["certPem"] = _pem("CERTIFICATE", args.name)
        # The provider's validity window (RFC 3339), from a fixed issue time far ahead: a
        # notice computed from it is never already due, which would make it read the clock.
        hours = int(inputs.get("validityPeriodHours", 0))
        state["validityStartTime"] = MOCK_ISSUED.strftime("%Y-%m-%dT%H:%M:%SZ")
        state["validityEndTime"] = (MOCK_ISSUED + timedelta(hours=hours)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
    if args.typ == "tls:index/certRequest:CertRequest":
        state["certRequestPem"] = _pem("CERTIFICATE REQUEST", args.name)
    if args.typ == "aws:acm/certificate:Certificate" and "domainName" in inputs:
        state["domainValidationOptions"] = [
            {
                "domainName": inputs["domainName"],
                "resourceRecordName": f"_{digest[:12]}.{inputs['domainName']}.",
                "resourceRecordType": "CNAME",
                "resourceRecordValue": f"_{digest[12:24]}.acm-validations.aws.",
            }
        ]
    if args.typ == "aws:route53/record:Record":
        state["fqdn"] = inputs.get("name", args.name)
    if args.typ == "aws:acmpca/certificateAuthority:CertificateAuthority":
        state["arn"] = (
            f"arn:{partition}:acm-pca:{region}:{ACCOUNT}:certificate-authority/"
            f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
        )
        state["certificateSigningRequest"] = _pem("CERTIFICATE REQUEST", args.name)
    if args.typ == "aws:acmpca/certificate:Certificate":
        state["certificate"] = _pem("CERTIFICATE", args.name)
    if args.typ == "aws:s3/bucket:Bucket":
        # Auto-named like the provider: the logical name and a suffix, lowercase.
        state.setdefault("bucket", f"{args.name}-{digest[:7]}".lower())
        bucket = unwrap(state["bucket"])
        state["arn"] = f"arn:{partition}:s3:::{bucket}"
        resource_id = bucket
    if args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
        state["latestVersion"] = 1.0
    if args.typ == "aws:iam/role:Role":
        state["arn"] = f"arn:{partition}:iam::{ACCOUNT}:role/{name}"
        resource_id = name
    return resource_id, state


class AwsMocks(pulumi.runtime.Mocks):
    """Answers as the AWS provider does in `region` (the stack's aws:region)."""

    def __init__(self, region: str = REGION) -> None:
        self.region = region
        self.partition, self.dns_suffix = region_partition(region) or ("aws", "amazonaws.com")

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        _ANSWERING_IN.append(self.region)
        try:
            return _resource_outputs(args)
        finally:
            _ANSWERING_IN.pop()

    def call(self, args: pulumi_mocks.MockCallArgs):
        token = args.token
        region = self.region
        if token == "aws:index/getRegion:getRegion":
            return {"name": region, "region": region, "id": region, "description": region}
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:{self.partition}:iam::{ACCOUNT}:user/ci",
                "userId": "AIDAEXAMPLE",
                "id": ACCOUNT,
            }
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {
                "names": az_names(region),
                "zoneIds": [f"{_zone_id_prefix(region)}-az{i}" for i in range(1, 7)],
                "id": region,
            }
        if token == "aws:index/getPartition:getPartition":
            return {
                "partition": self.partition,
                "dnsSuffix": self.dns_suffix,
                "id": self.partition,
            }
        if token == "aws:secretsmanager/getRandomPassword:getRandomPassword":
            return {"randomPassword": "mock-password-" + "x" * 18, "id": "password"}
        if token == "aws:ssm/getParameter:getParameter":
            return {"name": args.args["name"], "value": "ami-0123456789abcdef0", "id": "p"}
        if token == "aws:ec2/getVpcs:getVpcs":
            vpcs = DEPLOYED["vpcs"].values()
            return {"ids": [v["id"] for v in vpcs if _matches(v, args.args)], "id": region}
        if token == "aws:ec2/getSubnets:getSubnets":
            subnets = DEPLOYED["subnets"].values()
            return {"ids": [x["id"] for x in subnets if _matches(x, args.args)], "id": region}
        if token == "aws:ec2/getSubnet:getSubnet" and args.args["id"] in DEPLOYED["subnets"]:
            return DEPLOYED["subnets"][args.args["id"]]
        if token == "aws:ec2/getVpc:getVpc" and args.args.get("id") in DEPLOYED["vpcs"]:
            return DEPLOYED["vpcs"][args.args["id"]]
        if token == "aws:ec2/getSubnet:getSubnet":
            # Existing subnets alternate between the first two zones by their last digit.
            subnet = args.args["id"]
            zone = az_names(region)[int(subnet[-1], 16) % 2]
            return {"id": subnet, "availabilityZone": zone, "vpcId": "vpc-existing"}
        if token == "aws:ec2/getVpc:getVpc":
            return {"id": args.args.get("id"), "cidrBlock": "172.31.0.0/16", "arn": "arn:vpc"}
        raise NotImplementedError(f"the test mocks do not answer invoke {token}")


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Keeps each registration's type, parent and dependencies, which the base class drops,
    and runs the program's stack transforms on each registration, as the engine does and
    the base class does not."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.graph = Graph()
        self.stack_transforms: list[Any] = []  # callback_pb2.Callback, in registration order

    def RegisterStackTransform(self, request):
        self.stack_transforms.append(request)
        return super().RegisterStackTransform(request)

    def _transformed(self, request):
        """`request` with its properties as the stack transforms return them.

        The engine calls each transform through the program's callback server with the
        serialized properties and registers what it returns; this calls the same callback
        (deserialize, transform, serialize) in process. Only properties: the program's
        transforms change no option.
        """
        if not self.stack_transforms:
            return request
        from pulumi.runtime._callbacks import _CallbackServicer
        from pulumi.runtime.proto import resource_pb2
        from pulumi.runtime.sync_await import _ensure_event_loop

        _ensure_event_loop()
        properties = request.object
        for callback in self.stack_transforms:
            run = next(
                s._callbacks[callback.token]
                for s in _CallbackServicer._servicers
                if callback.token in s._callbacks
            )
            asked = resource_pb2.TransformRequest(
                type=request.type,
                name=request.name,
                custom=request.custom,
                parent=request.parent,
                properties=properties,
            )
            properties = _sync_await(run(asked.SerializeToString())).properties
        transformed = type(request)()
        transformed.CopyFrom(request)
        transformed.object.CopyFrom(properties)
        return transformed

    def RegisterResource(self, request):
        request = self._transformed(request)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = rpc.deserialize_properties(request.object)
            registered = self.resources.get(response.urn)
            self.graph.resources.append(
                Resource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    id=registered.id if registered else "",
                    parent=request.parent or None,
                    inputs=inputs,
                    outputs=dict(registered.state) if registered else {},
                    dependencies=list(request.dependencies),
                    custom=request.custom,
                    delete_before_replace=request.deleteBeforeReplace,
                    protect=request.protect,
                    retain_on_delete=request.retainOnDelete,
                    ignore_changes=list(request.ignoreChanges),
                    property_dependencies={
                        k: list(v.urns) for k, v in request.propertyDependencies.items()
                    },
                )
            )
        return response

    def RegisterResourceOutputs(self, request):
        if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
            outputs = rpc.deserialize_properties(request.outputs)
            self.graph.stack_outputs.update(outputs)
        return super().RegisterResourceOutputs(request)


def _namespaced(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def config_values(config: Mapping[str, Any]) -> dict[str, str]:
    """Stack config as the engine passes it: namespaced keys, objects as JSON text."""
    out = {}
    for key, value in config.items():
        full = _namespaced(key)
        out[full] = value if isinstance(value, str) else json.dumps(value)
    out.setdefault("aws:region", REGION)
    return out


_GRAPHS: dict[tuple, Graph] = {}

# What the account already holds, as the EC2 lookups answer it (set with `deployed`): empty,
# the stack is new.
DEPLOYED: dict[str, dict[str, dict[str, Any]]] = {"vpcs": {}, "subnets": {}}


def _matches(item: Mapping[str, Any], args: Mapping[str, Any]) -> bool:
    """The EC2 filters the program uses: `tag:<key>` and `vpc-id`."""
    for f in args.get("filters") or []:
        name, values = f["name"], f["values"]
        if name.startswith("tag:"):
            value = (item.get("tags") or {}).get(name[4:])
        elif name == "vpc-id":
            value = item.get("vpcId")
        else:
            raise NotImplementedError(f"the test mocks do not filter by {name}")
        if value not in values:
            return False
    return True


@contextlib.contextmanager
def deployed(vpc: Mapping[str, Any], subnets: Iterable[Mapping[str, Any]]):
    """Runs inside see `vpc` and `subnets` in the account, as `pulumi up` left them.

    Each is what `ec2.getVpc` / `ec2.getSubnet` answer: `id`, `cidrBlock`, `tags`, and for a
    subnet `availabilityZone` and `vpcId`. `deployed_from(graph)` gives them for a graph.
    """
    DEPLOYED["vpcs"] = {vpc["id"]: dict(vpc)}
    DEPLOYED["subnets"] = {s["id"]: dict(s) for s in subnets}
    try:
        yield
    finally:
        DEPLOYED["vpcs"], DEPLOYED["subnets"] = {}, {}


def deployed_from(graph: Graph) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The created VPC and subnets of `graph`, as the lookups would find them after `up`."""
    vpc = graph.one("aws:ec2/vpc:Vpc")
    found = {"id": vpc.id, "cidrBlock": vpc.inputs["cidrBlock"], "tags": vpc.inputs["tags"]}
    subnets = [
        {
            "id": s.id,
            "vpcId": vpc.id,
            "cidrBlock": s.inputs["cidrBlock"],
            "availabilityZone": s.inputs["availabilityZone"],
            "tags": s.inputs["tags"],
        }
        for s in graph.of_type("aws:ec2/subnet:Subnet")
    ]
    return found, subnets


# The SDK walks and reads the source of the whole call stack at every registration, to
# report where a resource was declared. Mocks never use it, and it was a third of a run's
# time, so the harness skips it.
pulumi_resource_runtime._get_stack_trace = lambda: source_pb2.StackTrace()


def run_program(
    config: Mapping[str, Any], stack: str = "dev", secret_keys: Iterable[str] = ()
) -> Graph:
    """Run `__main__.py` with `config` (un-namespaced keys are `ecs-tls:`), return the graph.

    `secret_keys` are the keys the engine would list as secret (set with `--secret`).

    Raises what the program raises (e.g. `settings.ConfigError`); the graph recorded up to
    then is on the exception as `exc.graph`. A run is deterministic for a configuration and
    a topology registry, so successful graphs are shared (tests treat them as read-only).
    """
    import topologies

    secrets = tuple(sorted(_namespaced(k) for k in secret_keys))
    key = (
        # The configuration as the program receives it, so `{"topology": ...}` and
        # `{"ecs-tls:topology": ...}` (a stack file merged by the CLI rules) share a run.
        json.dumps(config_values(config), sort_keys=True),
        stack,
        secrets,
        tuple(id(b) for b in topologies.REGISTRY.values()),
        json.dumps(DEPLOYED, sort_keys=True),
    )
    if key not in _GRAPHS:
        _GRAPHS[key] = _run(config, stack, secrets)
    return _GRAPHS[key]


def _run(config: Mapping[str, Any], stack: str, secret_keys: tuple[str, ...] = ()) -> Graph:
    region = config_values(config)["aws:region"]
    monitor = RecordingMonitor(AwsMocks(region))
    pulumi_settings.reset_options()
    pulumi.runtime.set_mocks(
        AwsMocks(region), project=PROJECT, stack=stack, preview=False, monitor=monitor
    )
    # set_mocks made a finished root stack; run_in_stack makes the one exports go to.
    pulumi_settings.ROOT.set(None)
    # Always a list: None would keep the previous run's secret keys.
    pulumi.runtime.set_all_config(config_values(config), list(secret_keys))
    main = str(ROOT / "__main__.py")
    try:
        _sync_await(run_in_stack(lambda: runpy.run_path(main, run_name="__main__")))
    except Exception as exc:
        exc.graph = monitor.graph  # type: ignore[attr-defined]
        raise
    return monitor.graph


def is_secret(value: Any) -> bool:
    """True for a value the program marked secret (kept wrapped by the recorder)."""
    return rpc.is_rpc_secret(value)


def unwrap(value: Any) -> Any:
    """The plain value, with every secret wrapper removed at any depth."""
    if rpc.is_rpc_secret(value):
        return unwrap(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def plaintext(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every string outside a Pulumi secret, with the path where it was found."""
    if is_secret(value):
        return []
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in plaintext(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in plaintext(v, f"{path}[{i}]")]
    return [(path, value)] if isinstance(value, str) else []


def config_error(config: Mapping[str, Any], secret_keys: Iterable[str] = ()) -> str:
    """The message of the error `config` stops the program with, asserting that nothing
    was registered before it."""
    import pytest

    from settings import ConfigError

    with pytest.raises(ConfigError) as caught:
        run_program(config, secret_keys=secret_keys)
    assert len(caught.value.graph) == 0, "resources were registered before the error"
    return str(caught.value)

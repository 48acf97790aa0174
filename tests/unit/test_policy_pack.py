"""The CrossGuard policy pack (policy/) against every shipped stack and against bad examples.

The pack is driven the way the Pulumi CLI drives it: through pulumi-policy's own analyzer
service, with requests built as the engine sends them (inputs for a resource policy; outputs,
parents and property dependencies for a stack policy), so the policies receive the SDK's real
argument objects, proxies and configuration. Each stack runs once (the mock runtime caches
graphs) and is analyzed once per configuration.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import select
import subprocess
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.output import Unknown
from pulumi.runtime import proto
from pulumi.runtime.proto import analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel
from pulumi_policy.deserialize import serialize_properties
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE as UNKNOWN

from components.iam import TRUSTED_SERVICES
from constants.images import AWAITING_DIGEST
from policy import rules
from scripts.mock_runtime import ROOT, Graph, Resource, run_program
from scripts.plan import shipped, stack_plan
from tests.conftest import MINIMAL_CONFIG
from tests.unit.test_least_privilege import WILDCARD_ACTIONS

POLICY_DIR = ROOT / "policy"
# The configuration this repository's stacks run the pack with (its one waiver).
STACKS_CONFIG = json.loads((POLICY_DIR / "ecs-tls-stacks.json").read_text())
NAMES = [p.name for p in rules.POLICIES]
# Configurations beyond the shipped files whose exceptions the defaults must also cover.
VARIANTS = {
    "nlb-certbot-http-01": {
        **MINIMAL_CONFIG["nlb-certbot"],
        "acme": {"email": "ops@example.com", "challenge": "http-01"},
    },
    "service-connect-nlb": {**MINIMAL_CONFIG["service-connect"], "ingress": "nlb"},
}


# --- the engine's side of the analyzer protocol --------------------------------------------


def _engine_form(value: Any) -> Any:
    """`value` as the engine sends it to an analyzer: an unknown as pulumi's sentinel text."""
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, Mapping):
        return {k: _engine_form(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_engine_form(v) for v in value]
    return value


def _struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(serialize_properties(_engine_form(dict(props))))
    return struct


class Analyzer:
    """pulumi-policy's analyzer service for the pack, called as the engine calls it."""

    def __init__(self, config: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.service = _PolicyAnalyzerServicer(
            rules.PACK_NAME, "1.0.0", rules.POLICIES, EnforcementLevel.MANDATORY
        )
        request = proto.ConfigureAnalyzerRequest()
        for name, properties in (config or {}).items():
            request.policyConfig[name].CopyFrom(
                proto.PolicyConfig(enforcementLevel=proto.MANDATORY, properties=_struct(properties))
            )
        self.service.Configure(request, None)

    def analyze(self, r: Resource) -> list:
        request = proto.AnalyzeRequest(
            type=r.type, name=r.name, urn=r.urn, properties=_struct(r.inputs)
        )
        return list(self.service.Analyze(request, None).diagnostics)

    def analyze_stack(self, resources: Iterable[Resource]) -> list:
        request = proto.AnalyzeStackRequest()
        for r in resources:
            request.resources.append(
                proto.AnalyzerResource(
                    type=r.type,
                    name=r.name,
                    urn=r.urn,
                    properties=_struct(r.outputs),
                    parent=r.parent or "",
                    dependencies=r.dependencies,
                    propertyDependencies={
                        k: proto.AnalyzerPropertyDependencies(urns=v)
                        for k, v in r.property_dependencies.items()
                    },
                )
            )
        return list(self.service.AnalyzeStack(request, None).diagnostics)

    def violations(self, resources: Iterable[Resource]) -> dict[str, list[str]]:
        """Policy name -> the messages it reported (resource and stack policies)."""
        resources = [r for r in resources if r.custom]
        found: dict[str, list[str]] = {}
        for d in [*(d for r in resources for d in self.analyze(r)), *self.analyze_stack(resources)]:
            found.setdefault(d.policyName, []).append(d.message)
        return found


def resource(type_: str, name: str, inputs: Mapping[str, Any], **deps: list[str]) -> Resource:
    """A registration as the mock runtime records it; `deps` are property dependencies (URNs)."""
    urn = f"urn:pulumi:test::ecs-tls::{type_}::{name}"
    return Resource(
        type=type_,
        name=name,
        urn=urn,
        id=f"{name}-id",
        parent=None,
        inputs=dict(inputs),
        outputs=dict(inputs),
        dependencies=[u for us in deps.values() for u in us],
        custom=True,
        property_dependencies=dict(deps),
    )


# --- every shipped stack passes --------------------------------------------------------------


@functools.cache
def graph(stack: str) -> Graph:
    if stack in VARIANTS:
        return run_program(VARIANTS[stack])
    return stack_plan(stack)[1]


@functools.cache
def stack_violations(stack: str) -> dict[str, list[str]]:
    return Analyzer(STACKS_CONFIG).violations(graph(stack))


STACKS = sorted(shipped()) + sorted(VARIANTS)


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("policy", NAMES)
def test_every_shipped_stack_keeps_every_policy(stack, policy):
    assert stack_violations(stack).get(policy, []) == []


@functools.cache
def preview_graph(stack: str) -> Graph:
    source = stack_plan(stack)[0]
    return run_program(source.config, stack=stack, secret_keys=source.secret_keys, preview=True)


def refusals(resources: Iterable[Resource]) -> dict[str, list[str]]:
    """The pack's mandatory findings; a policy that reads a value a preview cannot know says
    so as an advisory note ("can't run ... during preview") and runs in full on `up`."""
    analyzer = Analyzer(STACKS_CONFIG)
    resources = [r for r in resources if r.custom]
    diagnostics = [d for r in resources for d in analyzer.analyze(r)]
    diagnostics += analyzer.analyze_stack(resources)
    found: dict[str, list[str]] = {}
    for d in diagnostics:
        if d.enforcementLevel == proto.MANDATORY:
            found.setdefault(d.policyName, []).append(d.message)
    return found


@pytest.mark.parametrize("stack", sorted(shipped()))
def test_a_preview_of_every_shipped_stack_keeps_every_policy(stack):
    # `pulumi preview --policy-pack policy` (preview.yml) sees a new stack's computed values
    # as unknown: the policies must neither fail on them nor report the stack.
    assert refusals(preview_graph(stack)) == {}


def test_a_preview_still_finds_a_listener_without_tls13():
    # The preview check above is not empty by construction: what is known in a preview
    # (a listener's protocol and policy) is still judged.
    resources = copy.deepcopy(list(preview_graph("alb-envoy")))
    https = [r for r in resources if r.type == "aws:lb/listener:Listener"]
    https = [r for r in https if r.inputs.get("protocol") == "HTTPS"]
    assert https
    https[0].inputs["sslPolicy"] = "ELBSecurityPolicy-2016-08"
    assert "listener-tls13" in refusals(resources)


def test_the_shipped_stacks_hold_what_the_policies_inspect():
    # A policy that never meets its resource type proves nothing: the stacks have them all.
    types = {r.type for s in STACKS for r in graph(s)}
    for needed in (
        "aws:lb/listener:Listener",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:efs/fileSystem:FileSystem",
        "aws:ebs/volume:Volume",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:s3/bucket:Bucket",
        "aws:sns/topic:Topic",
        "aws:secretsmanager/secret:Secret",
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/role:Role",
        "aws:kms/key:Key",
        "aws:ecs/taskDefinition:TaskDefinition",
    ):
        assert needed in types, needed


def test_without_the_waiver_the_unpinned_default_image_is_reported():
    # The program's one default image without a confirmed digest (settings/images.py):
    # the pack finds it, and the stacks' config waives exactly that image.
    waived = STACKS_CONFIG["images-pinned-by-digest"]["unpinnedImages"]
    assert sorted(waived) == sorted(AWAITING_DIGEST)
    found = Analyzer().violations(graph("direct-task")).get("images-pinned-by-digest", [])
    assert found and all(any(image in m for image in waived) for m in found)


def _fails_somewhere(policy: str, properties: Mapping[str, Any]) -> bool:
    config = {**STACKS_CONFIG, policy: dict(properties)}
    return any(Analyzer(config).violations(graph(s)).get(policy) for s in STACKS)


def test_the_defaults_are_exactly_what_the_stacks_need():
    # Narrow exceptions: take any one away and some shipped stack fails.
    ports = rules.LISTENER_DEFAULTS["tcpPassthroughPorts"]
    for port in ports:
        left = [p for p in ports if p != port]
        assert _fails_somewhere("listener-tls13", {"tcpPassthroughPorts": left}), port
    assert _fails_somewhere("listener-tls13", {"acmeHttp01": False})
    assert _fails_somewhere("no-public-task-port", {"publicTaskPorts": []})
    services = sorted(rules.SERVICES_WITHOUT_SOURCE_KEYS)
    for service in services:
        left = [s for s in services if s != service]
        assert _fails_somewhere("trust-source-condition", {"servicesWithoutSourceKeys": left})


def test_the_wildcard_resource_actions_are_the_ones_the_program_is_allowed():
    # The same list, with the same condition keys, as the program's own least-privilege test
    # (which cites each action's reason): the pack allows no more than the program needs.
    assert {a.lower(): key for a, (_, _, key) in WILDCARD_ACTIONS.items()} == {
        a: key for a, (_, key) in rules.WILDCARD_RESOURCE_ACTIONS.items()
    }


def test_the_services_without_source_keys_are_the_ones_the_program_documents():
    # components/iam.py refuses a source condition for these, with AWS's page for each.
    documented = {s for s, t in TRUSTED_SERVICES.items() if not t.sets_source_account}
    assert set(rules.SERVICES_WITHOUT_SOURCE_KEYS) == documented


# --- each policy rejects a bad example ------------------------------------------------------


def one(stack: str, type_: str, name: str | None = None) -> Resource:
    """A copy of one registration of a shipped stack, to make a bad example of."""
    found = [r for r in graph(stack).of_type(type_) if name is None or r.name == name]
    return copy.deepcopy(found[0])


def reported(*resources: Resource, config: Mapping | None = None) -> dict[str, list[str]]:
    return Analyzer(config).violations(resources)


LISTENER = "aws:lb/listener:Listener"


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"sslPolicy": "ELBSecurityPolicy-2016-08"}, "not a TLS 1.3 policy"),
        ({"sslPolicy": "ELBSecurityPolicy-TLS13-1-1-2021-06"}, "not a TLS 1.3 policy"),
        ({"sslPolicy": None}, "unset"),
        ({"protocol": "HTTP", "port": 8080}, "must redirect to HTTPS"),
        ({"protocol": "TCP", "port": 5432}, "TCP listener on port 5432"),
        ({"protocol": "UDP", "port": 53}, "not TLS"),
    ],
)
def test_listener_tls13_rejects(change, expected):
    listener = one("alb-envoy", LISTENER, "alb-envoy-https")
    listener.inputs.update(change)
    (message,) = reported(listener)["listener-tls13"]
    assert expected in message


def test_listener_tls13_rejects_a_redirect_that_keeps_http_and_the_alb_alias():
    http = one("alb-envoy", LISTENER, "alb-envoy-http")
    assert reported(http) == {}
    http.inputs["defaultActions"][0]["redirect"]["protocol"] = "HTTP"
    assert reported(http)["listener-tls13"]
    alias = one("alb-envoy", LISTENER, "alb-envoy-https")
    alias.type = "aws:alb/listener:Listener"
    alias.inputs["sslPolicy"] = "ELBSecurityPolicy-2016-08"
    assert reported(alias)["listener-tls13"]


def test_listener_tls13_takes_its_ports_from_the_config():
    listener = one("nlb-certbot", LISTENER)
    assert reported(listener, config={"listener-tls13": {"tcpPassthroughPorts": []}})
    listener.inputs["port"] = 9000
    assert reported(listener)["listener-tls13"]
    assert reported(listener, config={"listener-tls13": {"tcpPassthroughPorts": [9000]}}) == {}


def test_http_listener_rules_forward_only_the_acme_path():
    stack = list(graph("alb-envoy"))
    http = next(r for r in stack if r.type == LISTENER and r.name == "alb-envoy-http")
    https = next(r for r in stack if r.type == LISTENER and r.name == "alb-envoy-https")
    forward = [{"type": "forward", "targetGroupArn": "arn:aws:elasticloadbalancing:tg"}]
    acme = [{"pathPattern": {"values": ["/.well-known/acme-challenge/*"]}}]
    api = [{"pathPattern": {"values": ["/api/*"]}}]

    def rule(name, listener, actions, conditions):
        return resource(
            "aws:lb/listenerRule:ListenerRule",
            name,
            {"listenerArn": "arn:listener", "actions": actions, "conditions": conditions},
            listenerArn=[listener.urn],
        )

    rules_ = [
        rule("acme", http, forward, acme),
        rule("on-https", https, forward, api),
        rule("plain", http, forward, api),
        rule("mixed", http, forward, [*acme, *api]),
        rule("answer", http, [{"type": "fixed-response"}], api),
    ]
    found = Analyzer().violations([*stack, *rules_])["http-listener-rules"]
    assert [m.split("\n")[1].split(":")[0] for m in found] == ["plain", "mixed"]
    config = {"http-listener-rules": {"acmeHttp01": False}}
    assert len(Analyzer(config).violations([*stack, *rules_])["http-listener-rules"]) == 3


SG = "aws:ec2/securityGroup:SecurityGroup"
RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def test_no_public_task_port_rejects_an_open_task_port():
    # alb-envoy's task rule opened to the world instead of to the load balancer's group.
    task_rule = one("alb-envoy", RULE, "alb-envoy-tasks-from-alb")
    for key in ("inputs", "outputs"):
        getattr(task_rule, key).pop("referencedSecurityGroupId")
        getattr(task_rule, key)["cidrIpv4"] = "0.0.0.0/0"
    stack = [*graph("alb-envoy"), task_rule]
    (message,) = Analyzer().violations(stack)["no-public-task-port"]
    assert "port 8443 open to 0.0.0.0/0" in message
    for key in ("inputs", "outputs"):
        getattr(task_rule, key)["fromPort"] = getattr(task_rule, key)["toPort"] = 22
    assert Analyzer(STACKS_CONFIG).violations(stack)["no-public-task-port"]


def test_no_public_task_port_knows_a_load_balancer_group_by_dependency_or_id():
    group = resource(SG, "lb", {})
    lb = resource(
        "aws:lb/loadBalancer:LoadBalancer",
        "lb",
        {"securityGroups": ["sg-lb"]},
        securityGroups=[group.urn],
    )
    open_443 = {"cidrIpv4": "0.0.0.0/0", "fromPort": 443, "toPort": 443, "ipProtocol": "tcp"}
    by_urn = resource(
        RULE, "by-urn", {**open_443, "securityGroupId": "sg-x"}, securityGroupId=[group.urn]
    )
    by_id = resource(RULE, "by-id", {**open_443, "securityGroupId": "sg-lb"})
    other = resource(RULE, "other", {**open_443, "securityGroupId": "sg-tasks"})
    ipv6 = resource(
        RULE, "ipv6", {"cidrIpv6": "::/0", "ipProtocol": "-1", "securityGroupId": "sg-tasks"}
    )
    found = Analyzer().violations([group, lb, by_urn, by_id, other, ipv6])["no-public-task-port"]
    assert len(found) == 2
    assert "other: port 443" in found[0] and "ipv6: ports 0-65535 open to ::/0" in found[1]


def test_no_public_task_port_reads_inline_and_legacy_rules():
    inline = resource(
        SG,
        "inline",
        {
            "ingress": [
                {"cidrBlocks": ["0.0.0.0/0"], "fromPort": 5432, "toPort": 5432, "protocol": "tcp"}
            ]
        },
    )
    legacy = resource(
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "legacy",
        {
            "type": "ingress",
            "cidrBlocks": ["10.0.0.0/8", "0.0.0.0/0"],
            "fromPort": 22,
            "toPort": 22,
            "protocol": "tcp",
            "securityGroupId": "sg-1",
        },
    )
    ping = resource(
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "ping",
        {
            "type": "ingress",
            "cidrBlocks": ["0.0.0.0/0"],
            "fromPort": 8,
            "toPort": 0,
            "protocol": "icmp",
            "securityGroupId": "sg-1",
        },
    )
    found = Analyzer().violations([inline, legacy, ping])["no-public-task-port"]
    assert [m.split("\n")[1].split(":")[0] for m in found] == ["inline", "legacy"]


@pytest.mark.parametrize(
    "type_, name, change, policy",
    [
        ("aws:efs/fileSystem:FileSystem", None, {"encrypted": False}, "efs-encrypted"),
        ("aws:ebs/volume:Volume", None, {"encrypted": False}, "ebs-encrypted"),
        ("aws:sns/topic:Topic", None, {"kmsMasterKeyId": None}, "sns-topic-encrypted"),
    ],
)
def test_storage_policies_reject_unencrypted(type_, name, change, policy):
    stack = "nlb-certbot" if "sns" not in type_ else "alb-envoy"
    r = one(stack, type_, name)
    assert reported(r) == {}
    r.inputs.update(change)
    assert reported(r)[policy]


def test_ebs_encrypted_reads_launch_template_devices_as_strings():
    template = one("nlb-certbot", "aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"
    template.inputs["blockDeviceMappings"][0]["ebs"]["encrypted"] = "false"
    assert reported(template)["ebs-encrypted"]
    instance = resource("aws:ec2/instance:Instance", "i", {"rootBlockDevice": {"volumeSize": 8}})
    assert reported(instance)["ebs-encrypted"]


def test_s3_default_encryption_rejects_a_bucket_without_configuration():
    stack = list(graph("direct-task"))
    sse = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    assert Analyzer().violations(stack).get("s3-default-encryption") is None
    without = [r for r in stack if r.type != sse]
    (message,) = Analyzer().violations(without)["s3-default-encryption"]
    assert "no BucketServerSideEncryptionConfiguration" in message
    config = copy.deepcopy(next(r for r in stack if r.type == sse))
    config.outputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] = "none"
    assert Analyzer().violations([*without, config])["s3-default-encryption"]


def test_secrets_manager_key_is_required_only_when_configured():
    secret = one("nlb-certbot", "aws:secretsmanager/secret:Secret")
    required = {"secrets-manager-key": {"requireCustomerKey": True}}
    assert reported(secret) == {}
    assert reported(secret, config=required)["secrets-manager-key"]
    secret.inputs["kmsKeyId"] = "alias/aws/secretsmanager"
    assert reported(secret, config=required)["secrets-manager-key"]
    secret.inputs["kmsKeyId"] = "arn:aws:kms:eu-west-1:123456789012:key/1234"
    assert reported(secret, config=required) == {}


def _with_statement(r: Resource, statement: dict) -> Resource:
    document = json.loads(r.inputs["policy"])
    document["Statement"].append(statement)
    r.inputs["policy"] = json.dumps(document)
    return r


@pytest.mark.parametrize(
    "statement, expected",
    [
        ({"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b"}, "wildcard action *"),
        ({"Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::b"]}, "s3:*"),
        ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"}, "NotAction"),
        ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}, "s3:GetObject"),
        ({"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}, "ec2:Describe*"),
        ({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:x"}, "s3:GetObject"),
        ({"Effect": "Allow", "Action": "ecs:ListTasks", "Resource": "*"}, "ecs:cluster"),
        (
            {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"},
            "cloudwatch:namespace",
        ),
    ],
)
def test_iam_least_privilege_rejects_in_a_role_policy(statement, expected):
    policy = _with_statement(one("direct-task", "aws:iam/rolePolicy:RolePolicy"), statement)
    (message,) = reported(policy)["iam-least-privilege"]
    assert expected in message


def test_iam_least_privilege_covers_inline_managed_and_resource_policies():
    wildcard = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    document = json.dumps({"Version": "2012-10-17", "Statement": [wildcard]})
    role = resource(
        "aws:iam/role:Role", "r", {"inlinePolicies": [{"name": "x", "policy": document}]}
    )
    managed = resource("aws:iam/policy:Policy", "p", {"policy": {"Statement": wildcard}})
    key = one("direct-task", "aws:kms/key:Key")
    assert reported(key) == {}  # "Resource": "*" is the key itself in a key policy
    key = _with_statement(key, {**wildcard, "Action": "kms:*"})
    for r in (role, managed, key):
        assert reported(r)["iam-least-privilege"], r
    deny = _with_statement(
        one("direct-task", "aws:iam/rolePolicy:RolePolicy"),
        {"Effect": "Deny", "Action": "*", "Resource": "*"},
    )
    assert reported(deny) == {}
    extra = {"iam-least-privilege": {"extraWildcardResourceActions": ["s3:ListAllMyBuckets"]}}
    listing = _with_statement(
        one("direct-task", "aws:iam/rolePolicy:RolePolicy"),
        {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"},
    )
    assert reported(listing)["iam-least-privilege"]
    assert reported(listing, config=extra) == {}


def test_iam_least_privilege_rejects_attaching_whole_service_policies():
    attachment = one("nlb-certbot", "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert reported(attachment) == {}
    for name in ("AdministratorAccess", "AmazonS3FullAccess", "service-role/AWSFooFullAccess"):
        attachment.inputs["policyArn"] = f"arn:aws:iam::aws:policy/{name}"
        assert reported(attachment)["iam-least-privilege"], name
    role = resource(
        "aws:iam/role:Role", "r", {"managedPolicyArns": ["arn:aws:iam::aws:policy/PowerUserAccess"]}
    )
    assert reported(role)["iam-least-privilege"]


def test_trust_source_condition_rejects_a_service_trust_without_one():
    role = next(
        r
        for r in graph("alb-envoy").of_type("aws:iam/role:Role")
        if "ecs-tasks" in r.inputs["assumeRolePolicy"]
    )
    role = copy.deepcopy(role)
    assert reported(role) == {}
    document = json.loads(role.inputs["assumeRolePolicy"])
    del document["Statement"][0]["Condition"]
    role.inputs["assumeRolePolicy"] = json.dumps(document)
    (message,) = reported(role)["trust-source-condition"]
    assert "ecs-tasks.amazonaws.com" in message
    ec2 = resource(
        "aws:iam/role:Role",
        "instance",
        {
            "assumeRolePolicy": {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Principal": {"Service": "ec2.amazonaws.com"},
                    }
                ]
            }
        },
    )
    assert reported(ec2) == {}


def test_images_pinned_by_digest_rejects_a_tag():
    task = one("alb-envoy", "aws:ecs/taskDefinition:TaskDefinition")
    assert reported(task) == {}
    containers = json.loads(task.inputs["containerDefinitions"])
    containers[0]["image"] = re.sub(r"@sha256:.*", "", containers[0]["image"])
    task.inputs["containerDefinitions"] = json.dumps(containers)
    (message,) = reported(task)["images-pinned-by-digest"]
    assert "not pinned by digest" in message


def test_stack_policies_skip_what_preview_does_not_know():
    # In `pulumi preview` outputs of new resources are unknown; the stack policies still
    # judge what is known (the group by its dependency) and skip the rest without error.
    group = resource(SG, "tasks", {"id": UNKNOWN})
    open_rule = resource(
        RULE,
        "open",
        {
            "cidrIpv4": "0.0.0.0/0",
            "fromPort": 5432,
            "toPort": 5432,
            "ipProtocol": "tcp",
            "securityGroupId": UNKNOWN,
        },
        securityGroupId=[group.urn],
    )
    unknown_cidr = resource(
        RULE, "unknown", {"cidrIpv4": UNKNOWN, "fromPort": 22, "toPort": 22, "ipProtocol": "tcp"}
    )
    bucket = resource("aws:s3/bucket:Bucket", "b", {"bucket": UNKNOWN})
    sse = resource(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "b",
        {"bucket": UNKNOWN, "rules": UNKNOWN},
        bucket=[bucket.urn],
    )
    found = Analyzer().violations([group, open_rule, unknown_cidr, bucket, sse])
    assert list(found) == ["no-public-task-port"]
    assert "open: port 5432" in found["no-public-task-port"][0]


# --- the pack as the CLI loads it ------------------------------------------------------------


def test_the_pack_declares_every_policy_mandatory_with_its_schema():
    info = Analyzer().service.GetAnalyzerInfo(None, None)
    assert info.name == "ecs-tls"
    assert [p.name for p in info.policies] == NAMES
    assert all(p.enforcementLevel == proto.MANDATORY for p in info.policies)
    assert len(set(NAMES)) == len(NAMES)
    main = (POLICY_DIR / "__main__.py").read_text()
    assert "EnforcementLevel.MANDATORY" in main and "from rules import" in main
    # Every configurable default is the one the code applies when the CLI sends none.
    for policy in rules.POLICIES:
        for key, schema in (
            policy.config_schema.properties if policy.config_schema else {}
        ).items():
            assert "description" in schema, (policy.name, key)


def test_the_pack_serves_the_cli_from_its_own_directory():
    # As the CLI starts it: the pack's directory run as a program, which prints the port of
    # its analyzer service; then the engine's gRPC calls on that port.
    process = subprocess.Popen(
        [sys.executable, "-u", str(POLICY_DIR)],
        cwd=POLICY_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "the pack printed no port within 30 s"
        port = int(process.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            analyzer = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
            assert [p.name for p in info.policies] == NAMES
            listener = one("alb-envoy", LISTENER, "alb-envoy-https")
            listener.inputs["sslPolicy"] = "ELBSecurityPolicy-2016-08"
            request = proto.AnalyzeRequest(
                type=listener.type,
                name=listener.name,
                urn=listener.urn,
                properties=_struct(listener.inputs),
            )
            (diagnostic,) = analyzer.Analyze(request, timeout=30).diagnostics
            assert diagnostic.policyName == "listener-tls13"
            assert diagnostic.enforcementLevel == proto.MANDATORY
    finally:
        process.kill()
        process.wait(timeout=10)


def test_the_pack_imports_nothing_of_the_program():
    imports = re.findall(
        r"^\s*(?:from|import) ([\w.]+)", (POLICY_DIR / "rules.py").read_text(), re.M
    )
    project = {"components", "topologies", "settings", "tests", "functions", "scripts"}
    assert not {i.split(".")[0] for i in imports} & project, imports


def test_the_pack_pins_the_programs_pulumi_and_a_python_runtime():
    pack = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["name"] == "python"

    def pins(path):
        lines = (ROOT / path).read_text().splitlines()
        return dict(x.split("==") for x in lines if "==" in x and not x.startswith("#"))

    assert pins("policy/requirements.txt")["pulumi"] == pins("requirements.txt")["pulumi"]
    assert (
        pins("policy/requirements.txt")["pulumi-policy"]
        == pins("requirements-dev.txt")["pulumi-policy"]
    )
    assert set(STACKS_CONFIG) <= set(NAMES)

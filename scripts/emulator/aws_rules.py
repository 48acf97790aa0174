"""What AWS refuses server-side that botocore's models do not say.

botocore's service models carry most input constraints (required members, lengths, enums,
patterns) and `aws_requests` checks every request against them. The API references
document more, which the models omit and which neither mocks, the Terraform provider nor
moto enforce: EC2 refuses an apostrophe in a security group description, Route53 a TXT
string over 255 characters. Each rule here names its source and where it applies twice:

- `api`: the request members AWS checks (`service:Operation:Member.Path`, `[]` for each
  element of a list), which the emulator's request check applies to every request;
- `pulumi`: the pulumi-aws inputs that become those members (`(type token, path)`, paths in
  the SDK's camelCase; `|json` parses a JSON string before going on), which the unit suite
  applies to every resource of every shipped stack, so it fails before anyone emulates.

A rule may also point at a botocore model member (`model`): its constraints then come from
the model, and the row only says which pulumi-aws inputs feed it, so the unit suite checks
them too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

# EC2's charset for security group names and descriptions and for rule descriptions.
EC2_TEXT = r"[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]*"


@dataclass(frozen=True)
class Rule:
    id: str
    summary: str
    source: str
    api: tuple[str, ...] = ()
    pulumi: tuple[tuple[str, str], ...] = ()
    pattern: str | None = None  # the whole value must match
    min_length: int | None = None
    max_length: int | None = None
    # A further check returning why a value breaks the rule, or None.
    check: Callable[[str], str | None] | None = field(default=None, compare=False)
    model: str | None = None  # "service:Operation:Member.Path": constraints from botocore

    def violation(self, value: Any) -> str | None:
        """Why `value` breaks this rule (None when it obeys or is not a string)."""
        if not isinstance(value, str):
            return None
        for reason in self._reasons(value):
            return f"{reason} ({self.id}: {self.summary}; {self.source})"
        return None

    def _reasons(self, value: str) -> Iterator[str]:
        constraints = model_constraints(self.model) if self.model else {}
        low = self.min_length if self.min_length is not None else constraints.get("min")
        high = self.max_length if self.max_length is not None else constraints.get("max")
        pattern = self.pattern or constraints.get("pattern")
        if low is not None and len(value) < low:
            yield f"{len(value)} characters, fewer than {low}"
        if high is not None and len(value) > high:
            yield f"{len(value)} characters, more than {high}"
        if pattern and not full_match(pattern, value):
            bad = sorted({c for c in value if not full_match(pattern, c)})
            hint = f" (refused: {''.join(bad)!r})" if bad and len(pattern) < 60 else ""
            yield f"does not match {pattern}{hint}"
        if self.check:
            reason = self.check(value)
            if reason:
                yield reason


@cache
def _compiled(pattern: str):
    # AWS's models are written for Java's regex engine: \p{...} classes need `regex`.
    import regex

    return regex.compile(pattern, regex.V0)


def full_match(pattern: str, value: str) -> bool:
    """AWS applies a member's pattern to the whole value (Java's `matches`)."""
    return _compiled(pattern).fullmatch(value) is not None


@cache
def _service_model(service: str):
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def model_shape(spec: str):
    """The botocore shape of `service:Operation:Member.Path` (`[]` steps into lists)."""
    service, operation, path = spec.split(":", 2)
    shape = _service_model(service).operation_model(operation).input_shape
    for step in path.split("."):
        shape = shape.members[step.removesuffix("[]")]
        if step.endswith("[]"):
            shape = shape.member
    return shape


def model_constraints(spec: str) -> dict[str, Any]:
    metadata = model_shape(spec).metadata
    return {k: metadata[k] for k in ("min", "max", "pattern") if k in metadata}


# --- checks that a pattern cannot say ---------------------------------------------------


def txt_strings(value: str) -> list[str]:
    """The character-strings of one TXT value: `"a" "b"` as Route53's API takes it, or
    `a""b` as the Terraform provider (and so pulumi-aws) takes it, quoting each part."""
    if value.startswith('"'):
        return [m.group(1).replace('\\"', '"') for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', value)]
    return value.split('""')


def _txt_strings_fit(value: str) -> str | None:
    long = [s for s in txt_strings(value) if len(s) > 255]
    if long:
        return f"a TXT character-string of {len(long[0])} characters, more than 255"
    return None


def _secret_name_suffix(value: str) -> str | None:
    if re.search(r"-[^-]{6}$", value):
        return "ends with a hyphen and six characters, which Secrets Manager's partial ARNs confuse"
    return None


def policy_length(document: str) -> int:
    """IAM counts a policy's characters without white space."""
    return len(re.sub(r"\s", "", document))


def _policy_limit(limit: int) -> Callable[[str], str | None]:
    def check(document: str) -> str | None:
        n = policy_length(document)
        return f"{n} characters without white space, more than {limit}" if n > limit else None

    return check


def _lb_name(value: str) -> str | None:
    if value.startswith("-") or value.endswith("-"):
        return "begins or ends with a hyphen"
    if value.startswith("internal-"):
        return "begins with internal-"
    return None


def _not_sg_prefix(value: str) -> str | None:
    return "begins with sg-" if value.lower().startswith("sg-") else None


def _kms_alias(value: str) -> str | None:
    if not value.startswith("alias/"):
        return "does not begin with alias/"
    if value.startswith("alias/aws/"):
        return "begins with alias/aws/, which AWS reserves for its managed keys"
    return None


def _caa_value(value: str) -> str | None:
    """Only values shaped like CAA (`<digits> <tag> ...`) are checked: the same member
    carries every record type's values."""
    if not re.match(r"\d+ [A-Za-z0-9]+ ", value):
        return None
    m = re.fullmatch(r'(\d+) ([A-Za-z0-9]+) "([\x20\x21\x23-\x7e]*)"', value)
    if not m:
        return 'is not <flags> <tag> "<value>" with a printable ASCII value and no inner quote'
    if int(m.group(1)) > 255:
        return f"flags {m.group(1)} exceed 255"
    return None


def _is_json(value: str) -> str | None:
    try:
        json.loads(value)
    except ValueError as exc:
        return f"is not JSON ({exc})"
    return None


# --- the rules ----------------------------------------------------------------------------


def model_rule(rule_id: str, model: str, *pulumi: tuple[str, str]) -> Rule:
    """A rule whose constraints are botocore's for `model`; the row says which pulumi-aws
    inputs feed that member, so the unit suite checks them too."""
    service, operation, member = model.split(":", 2)
    return Rule(
        id=rule_id,
        summary=f"the model's {member}",
        source=f"botocore model {service} {operation} {member}",
        model=model,
        pulumi=pulumi,
    )


_SG = "aws:ec2/securityGroup:SecurityGroup"
_RULE_TYPES = (
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:ec2/securityGroupRule:SecurityGroupRule",
)
_PERMISSION_DESCRIPTIONS = tuple(
    f"ec2:{op}:IpPermissions[].{ranges}[].Description"
    for op in (
        "AuthorizeSecurityGroupIngress",
        "AuthorizeSecurityGroupEgress",
        "UpdateSecurityGroupRuleDescriptionsIngress",
        "UpdateSecurityGroupRuleDescriptionsEgress",
    )
    for ranges in ("IpRanges", "Ipv6Ranges", "PrefixListIds", "UserIdGroupPairs")
)
_ECS_NAME = r"[a-zA-Z0-9_-]+"

RULES: tuple[Rule, ...] = (
    Rule(
        id="ec2-description",
        summary="up to 255 of a-z A-Z 0-9, space and ._-:/()#,@[]+=&;{}!$*",
        source="EC2 API reference: CreateSecurityGroup GroupDescription; IpRange, "
        "Ipv6Range, PrefixListId, UserIdGroupPair and SecurityGroupRuleRequest Description",
        api=(
            "ec2:CreateSecurityGroup:Description",
            *_PERMISSION_DESCRIPTIONS,
            "ec2:ModifySecurityGroupRules:SecurityGroupRules[].SecurityGroupRule.Description",
        ),
        pulumi=(
            (_SG, "description"),
            (_SG, "ingress[].description"),
            (_SG, "egress[].description"),
            *((t, "description") for t in _RULE_TYPES),
        ),
        pattern=EC2_TEXT,
        max_length=255,
    ),
    Rule(
        id="ec2-group-name",
        summary="up to 255 of EC2's description characters, not beginning with sg-",
        source="EC2 API reference: CreateSecurityGroup GroupName",
        api=("ec2:CreateSecurityGroup:GroupName",),
        pulumi=((_SG, "name"),),
        pattern=EC2_TEXT,
        min_length=1,
        max_length=255,
        check=_not_sg_prefix,
    ),
    Rule(
        id="elb-name",
        summary="1 to 32 letters, digits and hyphens, no hyphen at either end, "
        "not beginning with internal-",
        source="ELB API reference: CreateLoadBalancer Name, CreateTargetGroup Name",
        api=("elbv2:CreateLoadBalancer:Name", "elbv2:CreateTargetGroup:Name"),
        pulumi=(
            ("aws:lb/loadBalancer:LoadBalancer", "name"),
            ("aws:lb/targetGroup:TargetGroup", "name"),
        ),
        pattern=r"[a-zA-Z0-9-]+",
        min_length=1,
        max_length=32,
        check=_lb_name,
    ),
    Rule(
        id="route53-txt-string",
        summary="each character-string of a TXT value at most 255 characters",
        source="Route53 API reference: ChangeResourceRecordSets errors, "
        "CharacterStringTooLong; Route 53 Developer Guide, TXT record type",
        api=(
            "route53:ChangeResourceRecordSets:"
            "ChangeBatch.Changes[].ResourceRecordSet.ResourceRecords[].Value",
        ),
        pulumi=(("aws:route53/record:Record", "records[]"),),
        check=_txt_strings_fit,
    ),
    Rule(
        id="iam-trust-policy-size",
        summary="a role trust policy of at most 2,048 characters without white space",
        source="IAM User Guide, IAM and AWS STS quotas: role trust policy length (default)",
        api=(
            "iam:CreateRole:AssumeRolePolicyDocument",
            "iam:UpdateAssumeRolePolicy:PolicyDocument",
        ),
        pulumi=(("aws:iam/role:Role", "assumeRolePolicy"),),
        check=_policy_limit(2048),
    ),
    Rule(
        id="iam-inline-policy-size",
        summary="a role's inline policies at most 10,240 characters without white space "
        "together (each one checked here, their sum by the unit suite)",
        source="IAM User Guide, IAM and AWS STS quotas: role policy size",
        api=("iam:PutRolePolicy:PolicyDocument",),
        pulumi=(("aws:iam/rolePolicy:RolePolicy", "policy"),),
        check=_policy_limit(10240),
    ),
    Rule(
        id="iam-managed-policy-size",
        summary="a managed policy of at most 6,144 characters without white space",
        source="IAM User Guide, IAM and AWS STS quotas: managed policy size",
        api=("iam:CreatePolicy:PolicyDocument", "iam:CreatePolicyVersion:PolicyDocument"),
        pulumi=(("aws:iam/policy:Policy", "policy"),),
        check=_policy_limit(6144),
    ),
    model_rule("iam-role-name", "iam:CreateRole:RoleName", ("aws:iam/role:Role", "name")),
    model_rule(
        "iam-role-description", "iam:CreateRole:Description", ("aws:iam/role:Role", "description")
    ),
    model_rule(
        "iam-policy-name", "iam:PutRolePolicy:PolicyName", ("aws:iam/rolePolicy:RolePolicy", "name")
    ),
    model_rule(
        "appautoscaling-policy-name",
        "application-autoscaling:PutScalingPolicy:PolicyName",
        ("aws:appautoscaling/policy:Policy", "name"),
    ),
    # The model's pattern for ResourceId is written with UTF-16 surrogates, which Python's
    # regex engine cannot compile; its length is what a long service name could break.
    Rule(
        id="appautoscaling-resource-id",
        summary="1 to 1600 characters",
        source="Application Auto Scaling API reference: RegisterScalableTarget and "
        "PutScalingPolicy ResourceId",
        api=(
            "application-autoscaling:RegisterScalableTarget:ResourceId",
            "application-autoscaling:PutScalingPolicy:ResourceId",
        ),
        pulumi=(
            ("aws:appautoscaling/target:Target", "resourceId"),
            ("aws:appautoscaling/policy:Policy", "resourceId"),
        ),
        min_length=1,
        max_length=1600,
    ),
    Rule(
        id="ecs-name",
        summary="1 to 255 letters, digits, hyphens and underscores",
        source="ECS API reference: CreateCluster clusterName, CreateService serviceName, "
        "RegisterTaskDefinition family, ContainerDefinition name",
        api=(
            "ecs:CreateCluster:clusterName",
            "ecs:CreateService:serviceName",
            "ecs:RegisterTaskDefinition:family",
            "ecs:RegisterTaskDefinition:containerDefinitions[].name",
        ),
        pulumi=(
            ("aws:ecs/cluster:Cluster", "name"),
            ("aws:ecs/service:Service", "name"),
            ("aws:ecs/taskDefinition:TaskDefinition", "family"),
            ("aws:ecs/taskDefinition:TaskDefinition", "containerDefinitions|json[].name"),
        ),
        pattern=_ECS_NAME,
        min_length=1,
        max_length=255,
    ),
    Rule(
        id="secretsmanager-name",
        summary="1 to 512 of ASCII letters, digits and /_+=.@-, not ending in a hyphen "
        "and six characters",
        source="Secrets Manager API reference: CreateSecret Name",
        api=("secretsmanager:CreateSecret:Name",),
        pulumi=(("aws:secretsmanager/secret:Secret", "name"),),
        pattern=r"[A-Za-z0-9/_+=.@-]+",
        min_length=1,
        max_length=512,
        check=_secret_name_suffix,
    ),
    model_rule(
        "secretsmanager-description",
        "secretsmanager:CreateSecret:Description",
        ("aws:secretsmanager/secret:Secret", "description"),
    ),
    Rule(
        id="sns-topic-name",
        summary="1 to 256 ASCII letters, digits, underscores and hyphens",
        source="SNS API reference: CreateTopic Name",
        api=("sns:CreateTopic:Name",),
        pulumi=(("aws:sns/topic:Topic", "name"),),
        pattern=r"[A-Za-z0-9_-]+",
        min_length=1,
        max_length=256,
    ),
    Rule(
        id="sqs-queue-name",
        summary="1 to 80 letters, digits, hyphens and underscores (.fifo for FIFO queues)",
        source="SQS API reference: CreateQueue QueueName",
        api=("sqs:CreateQueue:QueueName",),
        pulumi=(("aws:sqs/queue:Queue", "name"),),
        pattern=r"[A-Za-z0-9_-]+(\.fifo)?",
        min_length=1,
        max_length=80,
    ),
    model_rule(
        "dlm-description",
        "dlm:CreateLifecyclePolicy:Description",
        ("aws:dlm/lifecyclePolicy:LifecyclePolicy", "description"),
    ),
    model_rule(
        "dlm-schedule-name",
        "dlm:CreateLifecyclePolicy:PolicyDetails.Schedules[].Name",
        ("aws:dlm/lifecyclePolicy:LifecyclePolicy", "policyDetails.schedules[].name"),
    ),
    model_rule(
        "autoscaling-lifecycle-hook-name",
        "autoscaling:PutLifecycleHook:LifecycleHookName",
        ("aws:autoscaling/lifecycleHook:LifecycleHook", "name"),
    ),
    model_rule(
        "scheduler-name",
        "scheduler:CreateSchedule:Name",
        ("aws:scheduler/schedule:Schedule", "name"),
    ),
    model_rule(
        "scheduler-description",
        "scheduler:CreateSchedule:Description",
        ("aws:scheduler/schedule:Schedule", "description"),
    ),
    Rule(
        id="scheduler-target-input",
        summary="a universal target's input is JSON",
        source="EventBridge Scheduler User Guide: universal targets take the API's "
        "request parameters as JSON",
        pulumi=(("aws:scheduler/schedule:Schedule", "target.input"),),
        check=_is_json,
    ),
    model_rule(
        "logs-group-name",
        "logs:CreateLogGroup:logGroupName",
        ("aws:cloudwatch/logGroup:LogGroup", "name"),
    ),
    model_rule(
        "events-rule", "events:PutRule:Name", ("aws:cloudwatch/eventRule:EventRule", "name")
    ),
    model_rule(
        "events-rule-description",
        "events:PutRule:Description",
        ("aws:cloudwatch/eventRule:EventRule", "description"),
    ),
    model_rule(
        "lambda-description",
        "lambda:CreateFunction:Description",
        ("aws:lambda/function:Function", "description"),
    ),
    model_rule(
        "lambda-name",
        "lambda:CreateFunction:FunctionName",
        ("aws:lambda/function:Function", "name"),
    ),
    model_rule(
        "cloudwatch-alarm",
        "cloudwatch:PutMetricAlarm:AlarmName",
        ("aws:cloudwatch/metricAlarm:MetricAlarm", "name"),
    ),
    model_rule(
        "cloudwatch-alarm-description",
        "cloudwatch:PutMetricAlarm:AlarmDescription",
        ("aws:cloudwatch/metricAlarm:MetricAlarm", "alarmDescription"),
    ),
    model_rule(
        "servicediscovery-namespace-description",
        "servicediscovery:CreateHttpNamespace:Description",
        ("aws:servicediscovery/httpNamespace:HttpNamespace", "description"),
        ("aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace", "description"),
        ("aws:servicediscovery/service:Service", "description"),
    ),
    model_rule(
        "efs-access-point-path",
        "efs:CreateAccessPoint:RootDirectory.Path",
        ("aws:efs/accessPoint:AccessPoint", "rootDirectory.path"),
    ),
    model_rule("kms-description", "kms:CreateKey:Description", ("aws:kms/key:Key", "description")),
    Rule(
        id="kms-alias-name",
        summary="the model's AliasName, beginning with alias/ and not with alias/aws/",
        source="KMS API reference: CreateAlias AliasName",
        api=("kms:CreateAlias:AliasName", "kms:UpdateAlias:AliasName"),
        pulumi=(("aws:kms/alias:Alias", "name"),),
        model="kms:CreateAlias:AliasName",
        check=_kms_alias,
    ),
    Rule(
        id="route53-caa-value",
        summary='a CAA value is <flags 0-255> <tag of letters and digits> "<value>", '
        "the value printable ASCII without a double quote",
        source="Route 53 Developer Guide, CAA record type; RFC 8659 4.1",
        api=(
            "route53:ChangeResourceRecordSets:"
            "ChangeBatch.Changes[].ResourceRecordSet.ResourceRecords[].Value",
        ),
        pulumi=(("aws:route53/record:Record", "records[]"),),
        check=_caa_value,
    ),
    model_rule(
        "ssm-parameter-name", "ssm:PutParameter:Name", ("aws:ssm/parameter:Parameter", "name")
    ),
    model_rule(
        "ecr-cache-repository-prefix",
        "ecr:CreatePullThroughCacheRule:ecrRepositoryPrefix",
        ("aws:ecr/pullThroughCacheRule:PullThroughCacheRule", "ecrRepositoryPrefix"),
    ),
    model_rule(
        "ecr-cache-credential-arn",
        "ecr:CreatePullThroughCacheRule:credentialArn",
        ("aws:ecr/pullThroughCacheRule:PullThroughCacheRule", "credentialArn"),
    ),
)


def rules_for_api(service: str, operation: str) -> dict[str, list[Rule]]:
    """`{member path: rules}` that apply to one operation's input."""
    out: dict[str, list[Rule]] = {}
    for rule in RULES:
        for spec in rule.api:
            svc, op, path = spec.split(":", 2)
            if (svc, op) == (service, operation):
                out.setdefault(path, []).append(rule)
    return out


def values_at(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Each value at `path` (`a.b[].c`, `|json` parses a JSON string), with where it is."""
    yield from _walk(value, [s for s in re.split(r"\.(?![^\[]*\])", path) if s], "")


def _walk(value: Any, steps: list[str], where: str) -> Iterator[tuple[str, Any]]:
    if not steps:
        yield where, value
        return
    step, rest = steps[0], steps[1:]
    key, _, parse = step.partition("|")
    each = key.endswith("[]") or parse.endswith("[]")
    key = key.removesuffix("[]")
    parse = parse.removesuffix("[]")
    if key:
        if not isinstance(value, dict) or value.get(key) is None:
            return
        value, where = value[key], f"{where}.{key}" if where else key
    if parse == "json":
        if not isinstance(value, str):
            return
        value = json.loads(value)
    if each:
        for i, item in enumerate(value if isinstance(value, list) else []):
            yield from _walk(item, rest, f"{where}[{i}]")
    else:
        yield from _walk(value, rest, where)


def pulumi_violations(type_: str, inputs: dict[str, Any]) -> list[str]:
    """Every rule a pulumi-aws resource's inputs break, as `path = value: why` lines."""
    found = []
    for rule in RULES:
        for token, path in rule.pulumi:
            if token != type_:
                continue
            for where, value in values_at(inputs, path):
                reason = rule.violation(value)
                if reason:
                    found.append(f"{where} = {value!r}: {reason}")
    return found

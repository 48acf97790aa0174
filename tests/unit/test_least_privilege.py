"""Least privilege in every IAM document of every shipped stack.

Each shipped stack (scripts/plan.py, shipped) is built under mocks and every policy
document it sends is read: inline and managed role policies, trust policies, key, bucket,
topic and file system policies, and Lambda permissions. A failure names the resource and
the statement.

What is checked, for Allow statements:
- no `*` or `service:*` action (key policies: `kms:*` for the owning account only, AWS's
  default key policy), and no wildcard at all in the actions of a role's own policies;
- no `*` principal unless a condition holds it to this account;
- `"Resource": "*"` only for an action in WILDCARD_ACTIONS (AWS offers it no resource-level
  permission), and in key policies, where `*` means the key itself;
- a service principal trusted by a role carries aws:SourceAccount when the service sets it
  (SETS_SOURCE_ACCOUNT); a service principal of a bucket, topic or other resource policy,
  or of a Lambda permission, is tied to this account or to one source ARN (key policies
  excepted: which keys a service sets when it calls KMS is the key policy's own concern);
- iam:PassRole carries iam:PassedToService;
- ecs:UpdateService names long service ARNs;
- AWS managed policies only from MANAGED_POLICIES, each with its reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from components.iam import TRUSTED_SERVICES
from scripts.mock_runtime import ACCOUNT, Graph, Resource, run_program, unwrap
from scripts.plan import load_stack, shipped

STACK_FILES = shipped()

SAR = "https://docs.aws.amazon.com/service-authorization/latest/reference"

# Actions that may be granted on "*": the Service Authorization Reference lists no resource
# type for them (or, for ecs:ListTasks, none that a whole-cluster listing can name).
# action -> (reason, source, condition key the statement must then carry, if any)
WILDCARD_ACTIONS: dict[str, tuple[str, str, str | None]] = {
    "ecr:GetAuthorizationToken": (
        "no resource type: the token is for the registry, not a repository",
        f"{SAR}/list_amazonelasticcontainerregistry.html",
        None,
    ),
    "route53:ListHostedZones": (
        "no resource type (certbot's DNS-01 plugin looks the zone up by name)",
        f"{SAR}/list_amazonroute53.html",
        None,
    ),
    "ec2:DescribeNetworkInterfaces": (
        "EC2 Describe actions have no resource type",
        f"{SAR}/list_amazonec2.html",
        None,
    ),
    "ec2:DescribeSubnets": (
        "EC2 Describe actions have no resource type",
        f"{SAR}/list_amazonec2.html",
        None,
    ),
    "ec2:DescribeVolumes": (
        "EC2 Describe actions have no resource type",
        f"{SAR}/list_amazonec2.html",
        None,
    ),
    "cloudwatch:PutMetricData": (
        "no resource type: a metric is named by its namespace, held by the condition key",
        "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/"
        "iam-cw-condition-keys-namespace.html",
        "cloudwatch:namespace",
    ),
    **{
        f"ssmmessages:{action}": (
            "no resource type: ECS Exec's session channels (task role)",
            f"{SAR}/list_amazonsessionmanagermessagegatewayservice.html",
            None,
        )
        for action in (
            "CreateControlChannel",
            "CreateDataChannel",
            "OpenControlChannel",
            "OpenDataChannel",
        )
    },
    "logs:DescribeLogGroups": (
        "listed without a resource type; ECS Exec's agent calls it before writing the "
        "session log (ECS Developer Guide, ecs-exec.html, grants it on *)",
        f"{SAR}/list_amazoncloudwatchlogs.html",
        None,
    ),
    "ecs:ListTasks": (
        "its resource type is a container instance; a listing of the whole cluster names "
        "none, so it is scoped by the ecs:cluster condition",
        "https://github.com/awsdocs/amazon-ecs-developer-guide/issues/211",
        "ecs:cluster",
    ),
}

# Services whose trust must carry aws:SourceAccount, with AWS's page saying they set it.
# Kept here, not read from components/iam.py, so a change there cannot weaken the test.
SETS_SOURCE_ACCOUNT = {
    "ecs-tasks.amazonaws.com": (
        "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html"
    ),
    "ecs.amazonaws.com": (
        "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/infrastructure_IAM_role.html"
    ),
    "scheduler.amazonaws.com": (
        "https://docs.aws.amazon.com/scheduler/latest/UserGuide/"
        "cross-service-confused-deputy-prevention.html"
    ),
    "events.amazonaws.com": (
        "https://docs.aws.amazon.com/eventbridge/latest/userguide/"
        "cross-service-confused-deputy-prevention.html"
    ),
}
# Services AWS documents no source keys for: a condition on them would lock the role.
SETS_NO_SOURCE_KEYS = {"lambda.amazonaws.com", "ec2.amazonaws.com", "dlm.amazonaws.com"}

# AWS managed policies a role may take: each is the documented policy for that role.
MANAGED_POLICIES = {
    "service-role/AmazonECSInfrastructureRolePolicyForServiceConnectTransportLayerSecurity": (
        "the policy ECS documents for the Service Connect TLS infrastructure role"
    ),
    "service-role/AmazonEC2ContainerServiceforEC2Role": (
        "the ECS container instance role (agent registration)"
    ),
    "AmazonSSMManagedInstanceCore": "Session Manager on the container instances",
    "service-role/AWSDataLifecycleManagerServiceRole": "the DLM snapshot role",
}

# Resource types whose `policy` input is a resource-based policy document.
RESOURCE_POLICIES = {
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:sns/topicPolicy:TopicPolicy",
    "aws:efs/fileSystemPolicy:FileSystemPolicy",
    "aws:secretsmanager/secretPolicy:SecretPolicy",
    "aws:ecr/repositoryPolicy:RepositoryPolicy",
    "aws:cloudwatch/logResourcePolicy:LogResourcePolicy",
    "aws:sqs/queuePolicy:QueuePolicy",
    "aws:lambda/permission:Permission",
}
KEY_POLICIES = {"aws:kms/key:Key", "aws:kms/keyPolicy:KeyPolicy"}
IDENTITY_POLICIES = {"aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"}

# Conditions that hold a `*` principal, or a service, to this account.
ACCOUNT_KEYS = ("kms:calleraccount", "aws:principalaccount", "aws:sourceaccount")
SOURCE_KEYS = {"aws:sourceaccount", "aws:sourcearn"}

SERVICE_ARN = re.compile(
    r"^arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:service/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+$"
)


@dataclass(frozen=True)
class Document:
    resource: Resource
    kind: str  # identity | trust | resource | key
    policy: dict

    def where(self, index: int, statement: dict) -> str:
        sid = statement.get("Sid") or f"#{index}"
        return f"{self.resource.type} {self.resource.name} ({self.kind}) statement {sid}"


def as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse(text: Any) -> dict:
    return json.loads(text) if isinstance(text, str) else text


def documents(graph: Graph) -> Iterator[Document]:
    """Every policy document the program sends, with the kind of policy it is."""
    for r in graph:
        inputs = unwrap(r.inputs)
        if r.type == "aws:iam/role:Role":
            yield Document(r, "trust", parse(inputs["assumeRolePolicy"]))
            for inline in inputs.get("inlinePolicies") or []:
                if inline.get("policy"):
                    yield Document(r, "identity", parse(inline["policy"]))
        elif r.type in IDENTITY_POLICIES:
            yield Document(r, "identity", parse(inputs["policy"]))
        elif r.type in KEY_POLICIES and inputs.get("policy"):
            yield Document(r, "key", parse(inputs["policy"]))
        elif r.type in RESOURCE_POLICIES and "policy" in inputs:
            yield Document(r, "resource", parse(inputs["policy"]))
        elif "policy" in inputs and r.type not in RESOURCE_POLICIES:
            # A policy of a type this test does not know: it must be classified, not skipped.
            text = inputs["policy"]
            if isinstance(text, str) and '"Statement"' in text:
                raise AssertionError(f"{r.type} {r.name}: unclassified policy document")


def condition_keys(statement: dict) -> dict[str, Any]:
    """Condition key (lowercase) -> value, whatever the operator."""
    return {
        key.lower(): value
        for block in (statement.get("Condition") or {}).values()
        for key, value in block.items()
    }


def service_principals(statement: dict) -> list[str]:
    principal = statement.get("Principal")
    return as_list(principal.get("Service")) if isinstance(principal, dict) else []


def is_account_root(statement: dict) -> bool:
    principal = statement.get("Principal")
    principals = as_list(principal.get("AWS")) if isinstance(principal, dict) else []
    return bool(principals) and all(
        p in (ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root") for p in principals
    )


def statement_violations(doc: Document) -> list[str]:
    found = []
    for index, statement in enumerate(as_list(doc.policy.get("Statement"))):
        if statement.get("Effect") != "Allow":
            continue  # a Deny narrows; `*` there is the point (e.g. deny insecure transport)
        where = doc.where(index, statement)
        if "NotAction" in statement or "NotResource" in statement:
            found.append(f"{where}: Allow with NotAction/NotResource")
        actions = as_list(statement.get("Action"))
        conditions = condition_keys(statement)
        if statement.get("Principal") in ("*", {"AWS": "*"}) and ACCOUNT not in (
            conditions.get(k) for k in ACCOUNT_KEYS
        ):
            found.append(f"{where}: allows any principal of any account")
        # The default key policy: the account administers its key through IAM.
        key_admin = doc.kind == "key" and is_account_root(statement) and actions == ["kms:*"]
        for action in actions:
            whole_service = action == "*" or action.endswith(":*")
            if (whole_service and not key_admin) or ("*" in action and doc.kind == "identity"):
                found.append(f"{where}: wildcard action {action!r}")
        resources = as_list(statement.get("Resource"))
        if "*" in resources and doc.kind not in ("trust", "key"):
            for action in actions:
                allowed = WILDCARD_ACTIONS.get(action)
                if allowed is None:
                    found.append(f"{where}: {action} on '*' though AWS lets it be scoped")
                elif allowed[2] and allowed[2] not in conditions:
                    found.append(f"{where}: {action} on '*' without the {allowed[2]} condition")
        if "iam:PassRole" in actions and "iam:passedtoservice" not in conditions:
            found.append(f"{where}: iam:PassRole without iam:PassedToService")
        if "ecs:UpdateService" in actions:
            for arn in resources:
                if not SERVICE_ARN.match(arn):
                    found.append(f"{where}: ecs:UpdateService on {arn!r}, not a service ARN")
        for service in service_principals(statement):
            if doc.kind == "trust":
                found += trust_violations(where, service, conditions)
            elif doc.kind == "resource" and not SOURCE_KEYS & conditions.keys():
                found.append(f"{where}: {service} not tied to a source account or ARN")
    return found


def trust_violations(where: str, service: str, conditions: dict[str, Any]) -> list[str]:
    if service in SETS_SOURCE_ACCOUNT:
        if conditions.get("aws:sourceaccount") != ACCOUNT:
            return [f"{where}: {service} trusted without aws:SourceAccount={ACCOUNT}"]
        return []
    if service in SETS_NO_SOURCE_KEYS:
        if SOURCE_KEYS & conditions.keys():
            return [f"{where}: {service} sets no source keys: this condition locks the role"]
        return []
    return [f"{where}: {service} is in neither trust table of this test"]


def lambda_permission_violations(graph: Graph) -> list[str]:
    found = []
    for r in graph.of_type("aws:lambda/permission:Permission"):
        inputs = unwrap(r.inputs)
        if inputs["principal"].endswith(".amazonaws.com") and not (
            inputs.get("sourceArn") or inputs.get("sourceAccount")
        ):
            found.append(f"{r.type} {r.name}: {inputs['principal']} without a source ARN")
    return found


def managed_policy_violations(graph: Graph) -> list[str]:
    found = []
    for r in graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        arn = unwrap(r.inputs["policyArn"])
        name = arn.split(":policy/", 1)[-1]
        if arn.split(":")[4] == "aws" and name not in MANAGED_POLICIES:
            found.append(f"{r.type} {r.name}: AWS managed policy {name} not allowed")
    for r in graph.of_type("aws:iam/role:Role"):
        for arn in unwrap(r.inputs.get("managedPolicyArns") or []):
            if arn.split(":policy/", 1)[-1] not in MANAGED_POLICIES:
                found.append(f"{r.type} {r.name}: AWS managed policy {arn} not allowed")
    return found


def violations(graph: Graph) -> list[str]:
    found = [v for doc in documents(graph) for v in statement_violations(doc)]
    return found + lambda_permission_violations(graph) + managed_policy_violations(graph)


@pytest.fixture(scope="module", params=sorted(STACK_FILES))
def graph(request) -> Graph:
    stack, source = load_stack(str(STACK_FILES[request.param]))
    return run_program(source.config, stack=stack, secret_keys=source.secret_keys)


def test_every_policy_document_is_least_privilege(graph):
    assert violations(graph) == []


def test_the_documents_are_found(graph):
    """The walk above sees the trust policy of every role, so an empty result means
    something."""
    kinds = {doc.kind for doc in documents(graph)}
    assert {"trust", "identity"} <= kinds
    roles = graph.of_type("aws:iam/role:Role")
    assert len([d for d in documents(graph) if d.kind == "trust"]) == len(roles) > 0


def test_the_trust_tables_agree_with_the_program():
    for service, trusted in TRUSTED_SERVICES.items():
        assert trusted.sets_source_account == (service in SETS_SOURCE_ACCOUNT), service
        assert service in SETS_SOURCE_ACCOUNT or service in SETS_NO_SOURCE_KEYS, service


# --- the checks themselves fail on what they are meant to catch


def fake(type_: str, **inputs) -> Graph:
    return Graph([Resource(type_, "fake", "urn:fake", "fake", None, inputs, {}, [], True)])


def identity(*statements: dict) -> Graph:
    policy = json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    return fake("aws:iam/rolePolicy:RolePolicy", role="r", name="n", policy=policy)


def trust(service: str, condition: dict | None = None) -> Graph:
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if condition:
        statement["Condition"] = condition
    return fake("aws:iam/role:Role", assumeRolePolicy=json.dumps({"Statement": [statement]}))


ALLOW = {"Effect": "Allow", "Sid": "S"}
ROLE = f"arn:aws:iam::{ACCOUNT}:role/r"


@pytest.mark.parametrize(
    ("graph_", "message"),
    [
        (identity({**ALLOW, "Action": "*", "Resource": ROLE}), "wildcard action '*'"),
        (identity({**ALLOW, "Action": ["s3:*"], "Resource": ROLE}), "wildcard action 's3:*'"),
        (identity({**ALLOW, "Action": "s3:GetObject", "Resource": "*"}), "lets it be scoped"),
        (identity({**ALLOW, "Action": "ecs:ListTasks", "Resource": "*"}), "ecs:cluster"),
        (identity({**ALLOW, "Action": "iam:PassRole", "Resource": ROLE}), "PassedToService"),
        (
            identity({**ALLOW, "Action": "ecs:UpdateService", "Resource": "svc-1234"}),
            "not a service ARN",
        ),
        (
            identity(
                {
                    **ALLOW,
                    "Action": "ecs:UpdateService",
                    "Resource": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:service/app",
                }
            ),
            "not a service ARN",
        ),
        (trust("ecs-tasks.amazonaws.com"), "without aws:SourceAccount"),
        (
            trust("scheduler.amazonaws.com", {"StringEquals": {"aws:SourceAccount": "1" * 12}}),
            "without aws:SourceAccount",
        ),
        (
            trust("lambda.amazonaws.com", {"StringEquals": {"aws:SourceAccount": ACCOUNT}}),
            "locks the role",
        ),
        (trust("glue.amazonaws.com"), "neither trust table"),
        (
            fake(
                "aws:sns/topicPolicy:TopicPolicy",
                policy=json.dumps(
                    {
                        "Statement": [
                            {
                                **ALLOW,
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Action": "sns:Publish",
                                "Resource": "arn:aws:sns:eu-west-1:1:t",
                            }
                        ]
                    }
                ),
            ),
            "not tied to a source",
        ),
        (
            fake(
                "aws:lambda/permission:Permission",
                principal="events.amazonaws.com",
                function="f",
                action="lambda:InvokeFunction",
            ),
            "without a source ARN",
        ),
        (
            fake(
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                role="r",
                policyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
            ),
            "AWSLambdaVPCAccessExecutionRole not allowed",
        ),
    ],
)
def test_a_violation_is_reported_with_its_resource_and_statement(graph_, message):
    (found,) = violations(graph_)
    assert message in found
    assert found.startswith(f"{graph_.resources[0].type} fake")


def test_a_principal_of_any_account_is_reported():
    statement = {**ALLOW, "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}
    (found,) = violations(fake("aws:kms/key:Key", policy=json.dumps({"Statement": [statement]})))
    assert "any principal of any account" in found
    statement["Condition"] = {"StringEquals": {"kms:CallerAccount": ACCOUNT}}
    assert violations(fake("aws:kms/key:Key", policy=json.dumps({"Statement": [statement]}))) == []


def test_key_policies_may_grant_on_the_key_itself():
    policy = {
        "Statement": [
            {
                **ALLOW,
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {**ALLOW, "Principal": {"AWS": [ROLE]}, "Action": ["kms:Decrypt"], "Resource": "*"},
        ]
    }
    assert violations(fake("aws:kms/key:Key", policy=json.dumps(policy))) == []
    # ...but kms:* only for the account that owns the key.
    policy["Statement"][1]["Action"] = "kms:*"
    assert len(violations(fake("aws:kms/key:Key", policy=json.dumps(policy)))) == 1

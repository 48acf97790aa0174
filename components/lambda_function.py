"""A Lambda function from one Python module under `functions/`, with its log group and role.

Handlers use only the standard library and the boto3 of Lambda's Python runtime, so the
module is the whole package: no build step, and the tests import the very same file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.iam import Statement, assume_role_policy, policy_document
from components.naming import physical_name

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
RUNTIME = "python3.13"
# Lambda's guide, "Giving Lambda functions access to resources in an Amazon VPC",
# execution role permissions.
VPC_PERMISSIONS_DOC = "https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html"
# A deleted function's interfaces keep its security groups in use for up to ~35 minutes,
# so deleting those groups stalls (pulumi-aws#4382). With replace_security_groups_on_destroy
# the provider first moves the function onto other groups, waits for that update, then
# deletes it (terraform-provider-aws#37624): the interfaces left behind hold only those.
# They must be groups nobody deletes while the interfaces linger: without
# replacement_security_group_ids the provider looks up the default group of the
# function's VPC (internal/service/lambda/function.go, replaceSecurityGroupsOnDestroy),
# which goes only with the VPC; a group of ours would stall its own deletion instead.
VPC_TEARDOWN = "https://github.com/pulumi/pulumi-aws/issues/4382"


def log_statements(log_group_arn: str) -> list[Statement]:
    """A function writes to its own log group only (the group exists before the function)."""
    return [
        Statement(
            "WriteOwnLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [f"{log_group_arn}:log-stream:*"],
        )
    ]


def vpc_statements(
    partition: str,
    region: str,
    account: str,
    subnet_ids: Sequence[str],
    security_group_ids: Sequence[str],
) -> list[Statement]:
    """What Lambda does with the function's role to place it in a VPC, instead of
    AWSLambdaVPCAccessExecutionRole, whose log actions on "*" would undo `log_statements`.

    Lambda creates the network interfaces with the role (VPC_PERMISSIONS_DOC), so creation
    is pinned to the function's subnets and security groups. The guide warns that a delete
    permission without a resource ID may cost the function its VPC access unless it names
    all interfaces: the interface actions name every interface of the account and region,
    without ec2:Subnet / ec2:Vpc conditions the guide does not vouch for.
    """
    ec2 = f"arn:{partition}:ec2:{region}:{account}"
    interfaces = f"{ec2}:network-interface/*"
    return [
        Statement(
            "CreateFunctionInterfaces",
            ["ec2:CreateNetworkInterface"],
            [
                interfaces,
                *(f"{ec2}:subnet/{s}" for s in sorted(set(subnet_ids))),
                *(f"{ec2}:security-group/{g}" for g in sorted(set(security_group_ids))),
            ],
        ),
        Statement(
            "ManageFunctionInterfaces",
            [
                "ec2:AssignPrivateIpAddresses",
                "ec2:DeleteNetworkInterface",
                "ec2:UnassignPrivateIpAddresses",
            ],
            [interfaces],
        ),
        Statement(
            "FindInterfaces",
            ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
            ["*"],
            why_wildcard="EC2 Describe actions have no resource-level permission",
        ),
    ]


@dataclass(frozen=True)
class PythonFunctionArgs:
    module: str  # file name under functions/, without .py; the entry point is `handler`
    description: str
    log_retention_days: int
    # What the handler calls besides its logs (built from plain values inside an apply).
    statements: pulumi.Input[Sequence[Statement]] = ()
    environment: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    timeout: int = 60
    memory_size: int = 256
    # In a VPC: the function's network interfaces use these subnets and security groups.
    subnet_ids: pulumi.Input[Sequence[str]] | None = None
    security_group_ids: Sequence[pulumi.Input[str]] = ()
    # An EFS access point mounted at `mount_path` (the function must be in the VPC).
    file_system_access_point_arn: pulumi.Input[str] | None = None
    mount_path: str = "/mnt/efs"


class PythonFunction(pulumi.ComponentResource):
    """Function, role, log group with a retention; `function` for invokes and permissions."""

    function: aws.lambda_.Function
    role: aws.iam.Role
    ready: list[pulumi.Resource]

    def __init__(
        self, name: str, args: PythonFunctionArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:lambda_function:PythonFunction", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        source = FUNCTIONS_DIR / f"{args.module}.py"
        if not source.is_file():
            raise ValueError(f"no handler module {source}")
        if args.file_system_access_point_arn is not None and args.subnet_ids is None:
            raise ValueError("an EFS mount needs the function in the VPC (subnet_ids)")
        log_group = aws.cloudwatch.LogGroup(
            name,
            name=f"/aws/lambda/{physical_name(name)}",
            retention_in_days=args.log_retention_days,
            opts=child,
        )
        self.role = role = aws.iam.Role(
            name,
            description=args.description,
            # No aws:SourceAccount: Lambda does not document setting it (TRUSTED_SERVICES).
            assume_role_policy=assume_role_policy("lambda.amazonaws.com"),
            opts=child,
        )
        vpc: pulumi.Output = pulumi.Output.from_input([])
        if args.subnet_ids is not None:
            invoke = pulumi.InvokeOutputOptions(parent=self)
            vpc = pulumi.Output.all(
                aws.get_partition_output(opts=invoke).partition,
                aws.get_region_output(opts=invoke).region,
                aws.get_caller_identity_output(opts=invoke).account_id,
                args.subnet_ids,
                pulumi.Output.all(*args.security_group_ids),
            ).apply(lambda v: vpc_statements(*v))
        policy = aws.iam.RolePolicy(
            name,
            name="function",
            role=role.id,
            policy=pulumi.Output.all(log_group.arn, args.statements, vpc).apply(
                lambda v: policy_document([*log_statements(v[0]), *v[1], *v[2]])
            ),
            opts=child,
        )
        # The function must not run before its role may do what it does (IAM propagates
        # after the role exists): the first invocation at deploy time would fail, and
        # Lambda refuses a VPC function whose role may not create its interfaces.
        self.ready = [policy]
        vpc_config = None
        teardown: dict[str, pulumi.Input] = {}
        if args.subnet_ids is not None:
            vpc_config = {
                "subnet_ids": args.subnet_ids,
                "security_group_ids": list(args.security_group_ids),
            }
            # VPC_TEARDOWN: the VPC's default group takes over before the function goes.
            teardown = {"replace_security_groups_on_destroy": True}
        file_system_config = None
        if args.file_system_access_point_arn is not None:
            file_system_config = {
                "arn": args.file_system_access_point_arn,
                "local_mount_path": args.mount_path,
            }
        self.function = aws.lambda_.Function(
            name,
            description=args.description,
            runtime=RUNTIME,
            handler=f"{args.module}.handler",
            code=pulumi.AssetArchive({f"{args.module}.py": pulumi.FileAsset(str(source))}),
            role=role.arn,
            timeout=args.timeout,
            memory_size=args.memory_size,
            environment={"variables": dict(args.environment)} if args.environment else None,
            vpc_config=vpc_config,
            **teardown,
            file_system_config=file_system_config,
            logging_config={"log_format": "JSON", "log_group": log_group.name},
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.ready)),
        )
        self.register_outputs({"functionArn": self.function.arn, "logGroup": log_group.name})

"""What ECS needs to run Service Connect TLS: an infrastructure role and an optional KMS key."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import (
    SERVICE_CONNECT_TLS_POLICY,
    assume_role_policy,
    kms_key_policy,
    managed_policy_arn,
)


def server_set_fingerprint(servers: list[tuple[str, str, int]]) -> str:
    """A digest of (discovery name, client alias, port) of every server service.

    Running tasks read the namespace's service list once, at start: a client does not see
    a server added later until it restarts. Putting this digest in every task definition
    makes a change to the set of servers roll out every service.
    """
    import hashlib

    text = "\n".join(f"{d} {a}:{p}" for d, a, p in sorted(servers))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ServiceConnectTlsArgs:
    customer_kms_key: bool = False


class ServiceConnectTls(pulumi.ComponentResource):
    """The role ECS assumes to issue Service Connect certificates, and an optional key.

    `ready` lists what a service must wait for: IAM is eventually consistent, and a
    service created before its role can issue certificates fails to start.
    """

    role_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str] | None
    ready: list[pulumi.Resource]

    def __init__(
        self, name: str, args: ServiceConnectTlsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:service_connect:ServiceConnectTls", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        account = aws.get_caller_identity_output(opts=invoke).account_id
        role = aws.iam.Role(
            name,
            description="ECS infrastructure role: issues Service Connect TLS certificates",
            # Only for this account's ECS: another account's cluster cannot use the role.
            assume_role_policy=account.apply(
                lambda account_id: assume_role_policy("ecs.amazonaws.com", account_id)
            ),
            opts=child,
        )
        attachment = aws.iam.RolePolicyAttachment(
            name,
            role=role.name,
            policy_arn=partition.apply(lambda p: managed_policy_arn(p, SERVICE_CONNECT_TLS_POLICY)),
            opts=child,
        )
        self.role_arn = role.arn
        self.ready = [attachment]
        self.kms_key_arn = None
        if args.customer_kms_key:
            key = aws.kms.Key(
                name,
                description="Encrypts the private keys ECS stores for Service Connect TLS",
                key_usage="ENCRYPT_DECRYPT",
                customer_master_key_spec="SYMMETRIC_DEFAULT",
                enable_key_rotation=True,
                policy=pulumi.Output.all(partition, account, role.arn).apply(
                    lambda v: kms_key_policy(v[0], v[1], [v[2]])
                ),
                opts=child,
            )
            self.kms_key_arn = key.arn
            self.ready.append(key)
        self.register_outputs({"roleArn": role.arn, "kmsKeyArn": self.kms_key_arn})

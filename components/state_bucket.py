"""A private S3 bucket for a small piece of state (certbot's account and lineage).

Versioned (a bad save can be rolled back), encrypted at rest with a customer managed KMS key
that only the roles named here may use, readable by those roles only, reachable over TLS
only, public access blocked and ACLs disabled; old versions expire so the bucket does not
grow forever.

Why not SSE-S3: S3 decrypts SSE-S3 objects for anyone with s3:GetObject, and the AWS managed
ReadOnlyAccess policy grants s3:Get* on every bucket, so every read-only user of the account
could fetch the ACME account key and the certificate's private key (and 90 days of their
old versions). With SSE-KMS a reader also needs kms:Decrypt, which the key policy
(components/kms.py) gives only to the state's roles, and the bucket policy refuses their
object reads to anyone else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.kms import CustomerKey, CustomerKeyArgs, alias_name, s3_state_key_policy
from components.naming import physical_name
from components.private_bucket import lock_down


def state_bucket_policy(bucket_arn: str, key_arn: str, reader_arns: Sequence[str]) -> str:
    """Deny what the key and IAM alone would not stop.

    - Any request without TLS (S3 User Guide, "Enforce encryption of data in transit":
      aws:SecureTransport false).
    - Object reads (s3:GetObject* covers versions, ACLs, attributes, tags) by any principal
      but the state's roles (aws:PrincipalArn is the role's ARN for all of its sessions).
    - Uploads that do not ask for SSE-KMS with this key: a negated condition on a header
      that is absent matches, so an upload without the headers is refused too (S3 User
      Guide, "Requiring server-side encryption with AWS KMS keys").

    Nothing else is denied, on purpose: the account's administrators keep s3:ListBucket*,
    s3:DeleteObject*, s3:DeleteBucket and s3:PutBucketPolicy / s3:DeleteBucketPolicy, so
    `pulumi destroy` (force_destroy deletes every version, then the bucket) works for them
    and a policy that went wrong can always be replaced. A broader "deny everyone but the
    role" would lock them out of their own bucket; reading the state stays impossible for
    them without also rewriting the key policy.
    """
    if not reader_arns:
        raise ValueError("the state bucket needs at least one role that reads it")
    objects = f"{bucket_arn}/*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyWithoutTls",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, objects],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
                {
                    "Sid": "DenyReadsByOthers",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:GetObject*",
                    "Resource": objects,
                    "Condition": {"ArnNotEquals": {"aws:PrincipalArn": sorted(set(reader_arns))}},
                },
                {
                    "Sid": "DenyUploadsWithoutSseKms",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:PutObject",
                    "Resource": objects,
                    "Condition": {
                        "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}
                    },
                },
                {
                    # The condition key holds the key's ARN (S3 User Guide, condition key
                    # s3:x-amz-server-side-encryption-aws-kms-key-id).
                    "Sid": "DenyUploadsWithAnotherKey",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:PutObject",
                    "Resource": objects,
                    "Condition": {
                        "StringNotEquals": {
                            "s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn
                        }
                    },
                },
            ],
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class StateBucketArgs:
    description: str
    # The roles that read and write the state: the only users of its key and its objects.
    reader_arns: Sequence[pulumi.Input[str]] = field(default_factory=tuple)
    noncurrent_version_days: int = 90


class StateBucket(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    # The customer managed key of every object; writers name it in each upload.
    key: CustomerKey
    # Everything that must be in place before the first read or write.
    ready: list[pulumi.Resource]

    def __init__(
        self, name: str, args: StateBucketArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:state_bucket:StateBucket", name, None, opts)
        if not args.reader_arns:
            raise ValueError(f"{name}: a state bucket needs the roles that read it")
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        # Auto-named: bucket names are global across all AWS accounts. force_destroy: the
        # state is reproducible (a new ACME account and one order), and a versioned bucket
        # that refuses deletion would block `pulumi destroy` and every topology switch.
        self.bucket = aws.s3.Bucket(
            name, force_destroy=True, tags={"Purpose": args.description}, opts=child
        )
        block, ownership = lock_down(name, self.bucket, child)
        versioning = aws.s3.BucketVersioning(
            name,
            bucket=self.bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        partition = aws.get_partition_output(opts=invoke).partition
        account = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region
        self.key = CustomerKey(
            f"{name}-key",
            CustomerKeyArgs(
                description=f"Encrypts the S3 bucket of the {args.description}",
                alias=alias_name(physical_name(name)),
                policy=pulumi.Output.all(
                    partition, account, region, self.bucket.arn, *args.reader_arns
                ).apply(lambda v: s3_state_key_policy(v[0], v[1], v[2], v[3], list(v[4:]))),
            ),
            opts=child,
        )
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            name,
            bucket=self.bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": self.key.arn,
                    },
                    # S3 derives object keys from a short-lived bucket-level key: far fewer
                    # KMS calls, and the encryption context (which the key policy checks)
                    # is the bucket's ARN.
                    "bucket_key_enabled": True,
                }
            ],
            opts=child,
        )
        lifecycle = aws.s3.BucketLifecycleConfiguration(
            name,
            bucket=self.bucket.id,
            rules=[
                {
                    "id": "expire-old-versions",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {
                        "noncurrent_days": args.noncurrent_version_days
                    },
                }
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        policy = aws.s3.BucketPolicy(
            name,
            bucket=self.bucket.id,
            policy=pulumi.Output.all(self.bucket.arn, self.key.arn, *args.reader_arns).apply(
                lambda v: state_bucket_policy(v[0], v[1], list(v[2:]))
            ),
            # S3 refuses a policy while the public access block is being changed.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]),
        )
        self.ready = [block, ownership, versioning, self.key, encryption, lifecycle, policy]
        self.register_outputs({"bucketName": self.bucket.bucket, "keyArn": self.key.arn})

"""A private S3 bucket for a small piece of state (certbot's account and lineage).

Versioned (a bad save can be rolled back), encrypted at rest, reachable over TLS only, public
access blocked and ACLs disabled; old versions expire so the bucket does not grow forever.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


def tls_only_policy(bucket_arn: str) -> str:
    """Deny every request that does not use TLS (S3 user guide, "Enforce encryption of data
    in transit": condition aws:SecureTransport false)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyWithoutTls",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class StateBucketArgs:
    description: str
    noncurrent_version_days: int = 90


class StateBucket(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    # Everything that must be in place before the first read or write.
    ready: list[pulumi.Resource]

    def __init__(
        self, name: str, args: StateBucketArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:state_bucket:StateBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Auto-named: bucket names are global across all AWS accounts. force_destroy: the
        # state is reproducible (a new ACME account and one order), and a versioned bucket
        # that refuses deletion would block `pulumi destroy` and every topology switch.
        self.bucket = aws.s3.Bucket(
            name, force_destroy=True, tags={"Purpose": args.description}, opts=child
        )
        block = aws.s3.BucketPublicAccessBlock(
            name,
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        ownership = aws.s3.BucketOwnershipControls(
            name,
            bucket=self.bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            name,
            bucket=self.bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            name,
            bucket=self.bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
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
            policy=self.bucket.arn.apply(tls_only_policy),
            # S3 refuses a policy while the public access block is being changed.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]),
        )
        self.ready = [block, ownership, versioning, encryption, lifecycle, policy]
        self.register_outputs({"bucketName": self.bucket.bucket})

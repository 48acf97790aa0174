"""What every bucket of the program has: no public access, and ACLs turned off."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def lock_down(
    name: str, bucket: aws.s3.Bucket, opts: pulumi.ResourceOptions
) -> tuple[aws.s3.BucketPublicAccessBlock, aws.s3.BucketOwnershipControls]:
    """Block every form of public access and enforce the owner on every object (ACLs
    off, so a writer such as log delivery cannot hand an object to another account).
    A bucket policy must wait for the block: S3 refuses one while it is being changed."""
    block = aws.s3.BucketPublicAccessBlock(
        name,
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )
    ownership = aws.s3.BucketOwnershipControls(
        name,
        bucket=bucket.id,
        rule={"object_ownership": "BucketOwnerEnforced"},
        opts=opts,
    )
    return block, ownership

"""An S3 bucket that receives a load balancer's access logs.

SSE-S3: Application Load Balancers deliver access logs only to buckets encrypted with
S3-managed keys (ELB User Guide, "Access logs for your Application Load Balancer": SSE-KMS
is not supported for ALB access logs); NLBs take SSE-S3 too. Public access blocked, ACLs
disabled (the bucket owner owns every object; the bucket-owner-full-control ACL NLB
delivery sends is the one ACL S3 still accepts then), TLS only, objects expire.

Kept by `pulumi destroy` (retain_on_delete), not force-destroyed: access logs are evidence
an audit may ask for after the load balancer is gone. docs/destroy.md says how to delete
the bucket once they are no longer needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.private_bucket import lock_down

# Who writes the logs (ELB User Guide, "Enable access logs", bucket policy per Region):
# - an ALB in a Region that has an ELB account (the table below): that account;
# - an ALB in any other Region: the service principal
#   logdelivery.elasticloadbalancing.amazonaws.com;
# - an NLB (TLS listeners only): CloudWatch Logs' vended log delivery,
#   delivery.logs.amazonaws.com, which sets aws:SourceAccount and aws:SourceArn and checks
#   the bucket's ACL first.
# The account IDs are the guide's table, cross-checked against published copies of it;
# Jakarta (ap-southeast-3, December 2021) is the first Region with the service principal.
ELB_LOG_ACCOUNTS = {
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
    "af-south-1": "098369216593",
    "ap-east-1": "754344448648",
    "ap-south-1": "718504428378",
    "ap-northeast-1": "582318560864",
    "ap-northeast-2": "600734575887",
    "ap-northeast-3": "383597477331",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
    "ca-central-1": "985666609251",
    "eu-central-1": "054676820928",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-west-3": "009996457667",
    "eu-north-1": "897822967062",
    "eu-south-1": "635631232127",
    "me-south-1": "076674570225",
    "sa-east-1": "507241528517",
    "us-gov-west-1": "048591011584",
    "us-gov-east-1": "190560391635",
    "cn-north-1": "638102146993",
    "cn-northwest-1": "037604701340",
}
LOG_DELIVERY_SERVICE = "logdelivery.elasticloadbalancing.amazonaws.com"
VENDED_LOG_DELIVERY = "delivery.logs.amazonaws.com"


def log_objects_arn(bucket_arn: str, prefix: str, account_id: str) -> str:
    """Where ELB writes: [<prefix>/]AWSLogs/<account>/..."""
    head = f"{prefix}/" if prefix else ""
    return f"{bucket_arn}/{head}AWSLogs/{account_id}/*"


def access_log_bucket_policy(
    bucket_arn: str,
    prefix: str,
    account_id: str,
    partition: str,
    region: str,
    load_balancer_type: str = "application",
) -> str:
    """Log delivery may put objects under this account's path only; TLS only for everyone.

    The resource path names the account, so no other account's load balancers write here.
    """
    objects = log_objects_arn(bucket_arn, prefix, account_id)
    statements: list[dict] = [
        {
            "Sid": "DenyWithoutTls",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    if load_balancer_type == "network":
        source = {
            "StringEquals": {"aws:SourceAccount": account_id},
            "ArnLike": {"aws:SourceArn": f"arn:{partition}:logs:{region}:{account_id}:*"},
        }
        statements += [
            {
                "Sid": "LogDeliveryChecksAcl",
                "Effect": "Allow",
                "Principal": {"Service": VENDED_LOG_DELIVERY},
                "Action": "s3:GetBucketAcl",
                "Resource": bucket_arn,
                "Condition": source,
            },
            {
                "Sid": "LogDeliveryWrites",
                "Effect": "Allow",
                "Principal": {"Service": VENDED_LOG_DELIVERY},
                "Action": "s3:PutObject",
                "Resource": objects,
                "Condition": {
                    **source,
                    "StringEquals": {
                        "aws:SourceAccount": account_id,
                        "s3:x-amz-acl": "bucket-owner-full-control",
                    },
                },
            },
        ]
    elif region in ELB_LOG_ACCOUNTS:
        statements.append(
            {
                "Sid": "RegionElbAccountWrites",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{ELB_LOG_ACCOUNTS[region]}:root"},
                "Action": "s3:PutObject",
                "Resource": objects,
            }
        )
    else:
        # ELB documents no source condition for this principal: one it does not set would
        # refuse every delivery. The account in the object path is the restriction.
        statements.append(
            {
                "Sid": "LogDeliveryWrites",
                "Effect": "Allow",
                "Principal": {"Service": LOG_DELIVERY_SERVICE},
                "Action": "s3:PutObject",
                "Resource": objects,
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


@dataclass(frozen=True)
class AccessLogBucketArgs:
    prefix: str = ""
    expiration_days: int = 90
    load_balancer_type: str = "application"  # application | network


class AccessLogBucket(pulumi.ComponentResource):
    """The bucket and the policy ELB's log delivery needs before logging is turned on."""

    bucket: aws.s3.Bucket
    # What the load balancer waits for: ELB checks that it may write when logs are enabled.
    ready: list[pulumi.Resource]

    def __init__(
        self, name: str, args: AccessLogBucketArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:access_logs:AccessLogBucket", name, None, opts)
        # Everything kept: a retained bucket without its public access block and policy
        # would be left less protected than it was.
        kept = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        # Auto-named: bucket names are global across all AWS accounts.
        self.bucket = aws.s3.Bucket(name, tags={"Purpose": "load balancer access logs"}, opts=kept)
        block, ownership = lock_down(name, self.bucket, kept)
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            name,
            bucket=self.bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=kept,
        )
        lifecycle = aws.s3.BucketLifecycleConfiguration(
            name,
            bucket=self.bucket.id,
            rules=[
                {
                    "id": "expire-access-logs",
                    "status": "Enabled",
                    "filter": {},
                    "expiration": {"days": args.expiration_days},
                }
            ],
            opts=kept,
        )
        partition = aws.get_partition_output(opts=invoke).partition
        account = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region
        policy = aws.s3.BucketPolicy(
            name,
            bucket=self.bucket.id,
            policy=pulumi.Output.all(self.bucket.arn, account, partition, region).apply(
                lambda v: access_log_bucket_policy(
                    v[0], args.prefix, v[1], v[2], v[3], args.load_balancer_type
                )
            ),
            # S3 refuses a policy while the public access block is being changed.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block], retain_on_delete=True),
        )
        self.ready = [block, ownership, encryption, lifecycle, policy]
        self.register_outputs({"bucketName": self.bucket.bucket})

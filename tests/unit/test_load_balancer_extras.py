"""`loadBalancer`: access logs, deletion protection and a WAF web ACL under mocks.

Each is off by default and then leaves the load balancer's inputs as they were; each is
refused, naming its key, where the topology's load balancer cannot take it.
"""

from __future__ import annotations

import json

import pytest

from components.access_logs import (
    ELB_LOG_ACCOUNTS,
    LOG_DELIVERY_SERVICE,
    VENDED_LOG_DELIVERY,
    access_log_bucket_policy,
    log_objects_arn,
)
from scripts.mock_runtime import config_error, run_program, unwrap
from tests.conftest import MINIMAL_CONFIG

LB = "aws:lb/loadBalancer:LoadBalancer"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
WAF = "aws:wafv2/webAclAssociation:WebAclAssociation"
ACL = (
    "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/edge/0123abcd-0123-4567-89ab-0123456789ab"
)


def with_lb(topology: str, lb: dict, **more) -> dict:
    return {**MINIMAL_CONFIG[topology], **more, "loadBalancer": lb}


# --- the bucket policy -----------------------------------------------------------------


def test_log_objects_sit_under_the_prefix_and_the_account():
    assert log_objects_arn("arn:aws:s3:::b", "", "123456789012") == (
        "arn:aws:s3:::b/AWSLogs/123456789012/*"
    )
    assert log_objects_arn("arn:aws:s3:::b", "lb/prod", "123456789012") == (
        "arn:aws:s3:::b/lb/prod/AWSLogs/123456789012/*"
    )


OBJECTS = "arn:aws:s3:::b/p/AWSLogs/123456789012/*"


def policy(region: str, kind: str = "application") -> dict:
    text = access_log_bucket_policy("arn:aws:s3:::b", "p", "123456789012", "aws", region, kind)
    return {s["Sid"]: s for s in json.loads(text)["Statement"]}


def test_an_alb_in_an_older_region_admits_that_region_s_elb_account_only():
    by_sid = policy("eu-west-1")
    assert set(by_sid) == {"DenyWithoutTls", "RegionElbAccountWrites"}
    writes = by_sid["RegionElbAccountWrites"]
    assert writes["Principal"] == {"AWS": f"arn:aws:iam::{ELB_LOG_ACCOUNTS['eu-west-1']}:root"}
    assert (writes["Action"], writes["Resource"]) == ("s3:PutObject", OBJECTS)
    assert by_sid["DenyWithoutTls"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_an_alb_in_a_newer_region_admits_the_log_delivery_service():
    by_sid = policy("ap-southeast-3")  # opened December 2021, after the ELB accounts
    writes = by_sid["LogDeliveryWrites"]
    assert writes["Principal"] == {"Service": LOG_DELIVERY_SERVICE}
    assert (writes["Action"], writes["Resource"]) == ("s3:PutObject", OBJECTS)
    assert "RegionElbAccountWrites" not in by_sid


def test_an_nlb_admits_vended_log_delivery_for_this_account_only():
    by_sid = policy("eu-west-1", "network")
    source = {"aws:SourceAccount": "123456789012"}
    arn = {"aws:SourceArn": "arn:aws:logs:eu-west-1:123456789012:*"}
    acl, writes = by_sid["LogDeliveryChecksAcl"], by_sid["LogDeliveryWrites"]
    assert acl["Principal"] == writes["Principal"] == {"Service": VENDED_LOG_DELIVERY}
    assert acl["Condition"] == {"StringEquals": source, "ArnLike": arn}
    assert writes["Resource"] == OBJECTS
    assert writes["Condition"] == {
        "StringEquals": {**source, "s3:x-amz-acl": "bucket-owner-full-control"},
        "ArnLike": arn,
    }
    assert "RegionElbAccountWrites" not in by_sid


# --- defaults ----------------------------------------------------------------------------


@pytest.mark.parametrize("topology", sorted(MINIMAL_CONFIG))
def test_off_by_default_the_load_balancer_keeps_its_inputs(topology):
    graph = run_program(MINIMAL_CONFIG[topology])
    for lb in graph.of_type(LB):
        assert "accessLogs" not in lb.inputs
        assert "enableDeletionProtection" not in lb.inputs
    assert not graph.of_type(WAF)
    assert not [b for b in graph.of_type(BUCKET) if "access logs" in str(b.inputs.get("tags"))]


# --- access logs -------------------------------------------------------------------------

LOGGED = [
    ("alb-envoy", {}),
    ("service-connect", {}),
    ("service-connect", {"ingress": "nlb"}),
]


@pytest.mark.parametrize(("topology", "more"), LOGGED)
def test_a_created_bucket_receives_the_logs_after_its_policy(topology, more):
    graph = run_program(with_lb(topology, {"accessLogs": True}, **more))
    lb = graph.one(LB)
    bucket = next(b for b in graph.of_type(BUCKET) if b.name.endswith("-access-logs"))
    bucket_policy = graph.one(BUCKET_POLICY, bucket.name)
    assert lb.inputs["accessLogs"] == {"bucket": bucket.outputs["bucket"], "enabled": True}
    assert graph.depends_on(lb, bucket_policy)
    assert bucket.retain_on_delete and not bucket.inputs.get("forceDestroy")
    sse = graph.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        bucket.name,
    )
    (rule,) = sse.inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    block = graph.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", bucket.name)
    assert all(
        block.inputs[k]
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    owner = graph.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls", bucket.name)
    assert owner.inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    life = graph.one(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", bucket.name
    )
    assert life.inputs["rules"][0]["expiration"] == {"days": 90}
    statements = json.loads(unwrap(bucket_policy.inputs["policy"]))["Statement"]
    writer = {"network": {"Service": VENDED_LOG_DELIVERY}}.get(
        lb.inputs["loadBalancerType"], {"AWS": f"arn:aws:iam::{ELB_LOG_ACCOUNTS['eu-west-1']}:root"}
    )
    assert any(s.get("Principal") == writer for s in statements)


def test_an_existing_bucket_and_prefix_are_used_as_given():
    lb_config = {"accessLogs": {"bucket": "my-elb-logs", "prefix": "edge/prod"}}
    graph = run_program(with_lb("alb-envoy", lb_config))
    assert graph.one(LB).inputs["accessLogs"] == {
        "bucket": "my-elb-logs",
        "prefix": "edge/prod",
        "enabled": True,
    }
    assert not [b for b in graph.of_type(BUCKET) if b.name.endswith("-access-logs")]


def test_expiration_days_reach_the_lifecycle_rule():
    graph = run_program(with_lb("alb-envoy", {"accessLogs": {"expirationDays": 400}}))
    life = next(
        r
        for r in graph.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
        if r.name.endswith("-access-logs")
    )
    assert life.inputs["rules"][0]["expiration"] == {"days": 400}


# --- deletion protection and WAF ---------------------------------------------------------

PROTECTED = [
    ("alb-envoy", {}),
    ("service-connect", {}),
    ("service-connect", {"ingress": "nlb"}),
    ("nlb-certbot", {}),
    ("appmesh-efs", {}),
]


@pytest.mark.parametrize(("topology", "more"), PROTECTED)
def test_deletion_protection_reaches_the_load_balancer(topology, more):
    graph = run_program(with_lb(topology, {"deletionProtection": True}, **more))
    assert graph.one(LB).inputs["enableDeletionProtection"] is True


@pytest.mark.parametrize("topology", ["alb-envoy", "service-connect"])
def test_a_web_acl_is_associated_with_the_alb(topology):
    graph = run_program(with_lb(topology, {"wafWebAclArn": ACL}))
    waf = graph.one(WAF)
    assert waf.inputs == {"resourceArn": graph.one(LB).outputs["arn"], "webAclArn": ACL}


# --- refusals ------------------------------------------------------------------------------

REFUSED = [
    (with_lb("direct-task", {"deletionProtection": True}), "loadBalancer", "applies to"),
    (with_lb("nlb-certbot", {"accessLogs": True}), "loadBalancer.accessLogs", "applies to"),
    (with_lb("appmesh-efs", {"accessLogs": True}), "loadBalancer.accessLogs", "applies to"),
    (with_lb("nlb-certbot", {"wafWebAclArn": ACL}), "loadBalancer.wafWebAclArn", "applies to"),
    (
        with_lb("service-connect", {"wafWebAclArn": ACL}, ingress="nlb"),
        "loadBalancer.wafWebAclArn",
        "applies to an application load balancer",
    ),
    (
        with_lb("service-connect", {"deletionProtection": True}, ingress="none"),
        "loadBalancer",
        "applies to the public load balancer",
    ),
    (
        with_lb("alb-envoy", {"accessLogs": {"bucket": "b-logs", "expirationDays": 30}}),
        "loadBalancer.accessLogs.expirationDays",
        "applies to the bucket the stack creates",
    ),
]


@pytest.mark.parametrize(("config", "key", "says"), REFUSED)
def test_an_extra_where_it_cannot_apply_is_refused_naming_its_key(config, key, says):
    message = config_error(config)
    assert message.startswith(f"ecs-tls:{key}: {says}")

"""Encryption at rest with customer managed keys, and the domain's CAA record.

The key and bucket policies are checked as documents, then as the program registers them;
the CAA values against the grammar of RFC 8659 and RFC 8657, for every topology with and
without a hosted zone.
"""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from components.dns import AMAZON, CaaPolicy, caa_records
from components.kms import (
    ADMIN_ACTIONS,
    alias_name,
    s3_state_key_policy,
    sns_topic_key_policy,
)
from components.state_bucket import state_bucket_policy
from scripts.emulator.aws_rules import RULES
from scripts.mock_runtime import ACCOUNT, REGION, run_program
from scripts.pki import make_pki
from settings import TOPOLOGIES
from settings.errors import ConfigError
from tests.conftest import MINIMAL_CONFIG

PARTITION = "aws"
BUCKET = "arn:aws:s3:::direct-task-acme-state-1234567"
KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE = "arn:aws:iam::123456789012:role/direct-task-renewal-task-abc1234"
ZONE = "Z0123456789ABCDEFGHIJ"
CRYPTO = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom")


def by_sid(document: str | dict) -> dict[str, dict]:
    doc = json.loads(document) if isinstance(document, str) else document
    return {s["Sid"]: s for s in doc["Statement"]}


def grants(statement: dict, action: str) -> bool:
    actions = statement["Action"]
    return any(
        fnmatch.fnmatchcase(action, a) for a in ([actions] if isinstance(actions, str) else actions)
    )


# --------------------------------------------------------------------------- key policies


def test_the_account_administers_keys_without_using_them():
    for document in (
        s3_state_key_policy(PARTITION, ACCOUNT, REGION, BUCKET, [ROLE]),
        sns_topic_key_policy(PARTITION, ACCOUNT, REGION),
    ):
        admin = by_sid(document)["AccountAdministersKey"]
        assert admin["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
        # What keeps the key manageable (policy lockout check) and what destroy calls.
        for needed in ("kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DescribeKey"):
            assert grants(admin, needed), needed
        for forbidden in (*CRYPTO, "kms:CreateGrant", "kms:GenerateDataKeyWithoutPlaintext"):
            assert not grants(admin, forbidden), forbidden
    assert not any("*" in a for a in ADMIN_ACTIONS)


def test_only_the_state_roles_use_the_state_key_through_s3_for_this_bucket():
    other = "arn:aws:iam::123456789012:role/other"
    statements = by_sid(s3_state_key_policy(PARTITION, ACCOUNT, REGION, BUCKET, [ROLE, other]))
    assert set(statements) == {"AccountAdministersKey", "StateRolesUseKeyThroughS3"}
    use = statements["StateRolesUseKeyThroughS3"]
    assert use["Principal"] == {"AWS": sorted([ROLE, other])}
    # What S3 calls for SSE-KMS: a data key on upload, Decrypt on download; nothing else.
    assert sorted(use["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert use["Condition"] == {
        "StringEquals": {
            "kms:ViaService": "s3.eu-west-1.amazonaws.com",
            "kms:EncryptionContext:aws:s3:arn": BUCKET,
        }
    }
    with pytest.raises(ValueError):
        s3_state_key_policy(PARTITION, ACCOUNT, REGION, BUCKET, [])


def test_alarms_rules_and_the_account_publish_to_the_encrypted_topic():
    statements = by_sid(sns_topic_key_policy(PARTITION, ACCOUNT, REGION))
    publish = ["kms:Decrypt", "kms:GenerateDataKey*"]
    alarms = statements["AlarmsPublish"]
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert alarms["Action"] == publish
    assert alarms["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    rules = statements["RulesPublish"]
    assert rules["Principal"] == {"Service": "events.amazonaws.com"}
    assert rules["Action"] == publish
    account = statements["AccountPublishesThroughSns"]
    assert account["Action"] == publish
    assert account["Condition"] == {
        "StringEquals": {
            "kms:CallerAccount": ACCOUNT,
            "kms:ViaService": "sns.eu-west-1.amazonaws.com",
        }
    }
    # Nobody may use the topic's key outside SNS, or for anything but messages.
    for sid, statement in statements.items():
        if sid != "AccountAdministersKey":
            assert not grants(statement, "kms:Encrypt") and not grants(
                statement, "kms:ReEncryptFrom"
            )


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("ecs-tls-dev-alerts",), "alias/ecs-tls-dev-alerts"),
        (("ecs-tls", "prod.eu", "alerts"), "alias/ecs-tls-prod-eu-alerts"),
        (("x" * 300,), "alias/" + "x" * 250),
        # Only alias/aws/ is reserved; a project called aws-... is fine.
        (("aws", "infra-dev/alerts"), "alias/aws-infra-dev-alerts"),
    ],
)
def test_alias_names_obey_kms(parts, expected):
    name = alias_name(*parts)
    assert name == expected
    (rule,) = [r for r in RULES if r.id == "kms-alias-name"]
    assert rule.violation(name) is None


def test_reserved_or_empty_alias_names_are_refused():
    for parts in (("...",), ("", "/")):
        with pytest.raises(ValueError):
            alias_name(*parts)
    (rule,) = [r for r in RULES if r.id == "kms-alias-name"]
    assert rule.violation("alias/aws/sns")
    assert rule.violation("alias/ecs-tls.dev")
    assert rule.violation("ecs-tls-dev")


# --------------------------------------------------------------------------- bucket policy

# What `pulumi destroy` calls on a versioned bucket with force_destroy, and how an
# administrator repairs a bucket policy: none of it may be denied to them.
ADMINISTRATION = (
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteBucket",
    "s3:GetBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
)


def test_the_bucket_policy_denies_reads_to_all_but_the_roles_and_nothing_administrative():
    statements = by_sid(state_bucket_policy(BUCKET, KEY, [ROLE]))
    assert all(s["Effect"] == "Deny" and s["Principal"] == "*" for s in statements.values())
    reads = statements["DenyReadsByOthers"]
    for action in ("s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectAttributes"):
        assert grants(reads, action), action
    assert reads["Resource"] == f"{BUCKET}/*"
    assert reads["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": [ROLE]}}
    # Only the TLS statement covers every action, and only for requests without TLS.
    for sid, statement in statements.items():
        if sid == "DenyWithoutTls":
            assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            continue
        for action in ADMINISTRATION:
            assert not grants(statement, action), (sid, action)


def test_the_bucket_policy_refuses_uploads_without_sse_kms_and_this_key():
    statements = by_sid(state_bucket_policy(BUCKET, KEY, [ROLE]))
    without = statements["DenyUploadsWithoutSseKms"]
    assert without["Action"] == "s3:PutObject"
    # StringNotEquals also matches a request that has no such header at all.
    assert without["Condition"] == {
        "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}
    }
    other = statements["DenyUploadsWithAnotherKey"]
    assert other["Condition"] == {
        "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": KEY}
    }
    with pytest.raises(ValueError):
        state_bucket_policy(BUCKET, KEY, [])


# --------------------------------------------------------------------------- alerts topic


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_the_alerts_topic_is_encrypted_with_its_customer_key(program, topology):
    graph = program(MINIMAL_CONFIG[topology])
    key = graph.one("aws:kms/key:Key", "alerts-key")
    topic = graph.one("aws:sns/topic:Topic")
    assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"]
    assert key.inputs["enableKeyRotation"] is True
    assert key.inputs["customerMasterKeySpec"] == "SYMMETRIC_DEFAULT"  # SNS: symmetric only
    assert 7 <= key.inputs["deletionWindowInDays"] <= 30
    assert json.loads(key.inputs["policy"]) == json.loads(
        sns_topic_key_policy(PARTITION, ACCOUNT, REGION)
    )
    alias = graph.one("aws:kms/alias:Alias", "alerts-key")
    assert alias.inputs["name"] == "alias/ecs-tls-dev-alerts"
    # The key belongs to the foundation's Alerts component, whatever the topology.
    assert graph.ancestors(key)[-1].type == "ecs-tls:alerts:Alerts"


# --------------------------------------------------------------------------- CAA

# RFC 8659 4.1.1 (issue-value) and RFC 8657 (validationmethods): an issuer domain name,
# then optional `; tag=value` parameters.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_ISSUE_VALUE = re.compile(
    rf"[ \t]*(?:{_LABEL}(?:\.{_LABEL})+)?[ \t]*"
    r"(?:;[ \t]*(?:[A-Za-z0-9]+[ \t]*=[ \t]*[\x21-\x3a\x3c-\x7e]*"
    r"(?:[ \t]*;[ \t]*[A-Za-z0-9]+[ \t]*=[ \t]*[\x21-\x3a\x3c-\x7e]*)*)?[ \t]*)?"
)
_CAA = re.compile(r'(\d{1,3}) (issue|issuewild|iodef) "([^"]*)"')


def parse_caa(values: list[str]) -> list[tuple[str, str]]:
    out = []
    for value in values:
        m = _CAA.fullmatch(value)
        assert m, value
        assert m.group(1) == "0", "no critical property: a CA that does not know it must refuse"
        tag, body = m.group(2), m.group(3)
        if tag == "iodef":
            assert re.fullmatch(r"mailto:[^@\s]+@[^@\s]+", body), value
        else:
            assert _ISSUE_VALUE.fullmatch(body), value
        out.append((tag, body))
    return out


def caa(graph) -> list[tuple[str, str]] | None:
    found = [r for r in graph.of_type("aws:route53/record:Record") if r.inputs["type"] == "CAA"]
    if not found:
        return None
    (record,) = found
    assert record.name == "domain-caa"
    assert graph.ancestors(record)[-1].type == "ecs-tls:dns:DomainCaa"
    assert record.inputs["zoneId"] == ZONE
    return parse_caa(record.inputs["records"])


LE_DNS01 = ("issue", "letsencrypt.org; validationmethods=dns-01")
NO_WILDCARDS = ("issuewild", ";")
AMAZON_ISSUE = [("issue", ca) for ca in AMAZON]

WITH_ZONE = {
    "alb-envoy": [("issue", "letsencrypt.org"), NO_WILDCARDS],
    "appmesh-efs": [("issue", "letsencrypt.org"), NO_WILDCARDS],
    # ACM issues the load balancer's certificate once a zone validates it.
    "service-connect": [("issue", "letsencrypt.org"), *AMAZON_ISSUE, NO_WILDCARDS],
    "nlb-certbot": [LE_DNS01, NO_WILDCARDS],
    # The wildcard *.<domain> is all direct-task asks for.
    "direct-task": [LE_DNS01],
}


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_caa_with_a_zone_names_only_the_cas_the_topology_uses(program, topology):
    graph = program({**MINIMAL_CONFIG[topology], "hostedZoneId": ZONE})
    assert caa(graph) == WITH_ZONE[topology]
    (record,) = [r for r in graph.of_type("aws:route53/record:Record") if r.name == "domain-caa"]
    # direct-task: the parent of the per-task names, which CAs climb to.
    assert record.inputs["name"] == MINIMAL_CONFIG[topology]["domain"]


def test_caa_record_false_leaves_caa_to_the_user(program):
    """Where the name already has CAA records managed elsewhere, Route53 would refuse ours."""
    graph = program({**MINIMAL_CONFIG["nlb-certbot"], "caaRecord": False})
    assert caa(graph) is None
    assert graph.one("aws:route53/record:Record", "domain"), "the name itself stays"


@pytest.mark.parametrize("value", [0, "no", "", [False], {"enabled": False}])
def test_caa_record_takes_a_boolean(value):
    with pytest.raises(ConfigError, match=r"^ecs-tls:caaRecord: "):
        run_program({**MINIMAL_CONFIG["direct-task"], "caaRecord": value})


@pytest.mark.parametrize("topology", ["alb-envoy", "service-connect", "appmesh-efs"])
def test_no_caa_without_a_zone(program, topology):
    assert "hostedZoneId" not in MINIMAL_CONFIG[topology]
    assert caa(program(MINIMAL_CONFIG[topology])) is None


def test_no_caa_without_a_zone_for_http01():
    config = {
        **MINIMAL_CONFIG["nlb-certbot"],
        "acme": {"email": "ops@example.com", "challenge": "http-01"},
    }
    config.pop("hostedZoneId")
    assert caa(run_program(config)) is None


def test_http01_limits_lets_encrypt_to_http01(program):
    graph = program(
        {
            **MINIMAL_CONFIG["nlb-certbot"],
            "acme": {"email": "ops@example.com", "challenge": "http-01"},
        }
    )
    assert caa(graph) == [("issue", "letsencrypt.org; validationmethods=http-01"), NO_WILDCARDS]


def test_production_and_staging_share_the_identifier(program):
    graph = program(
        {
            **MINIMAL_CONFIG["direct-task"],
            "acme": {"email": "ops@example.com", "server": "production"},
        }
    )
    assert caa(graph) == [LE_DNS01]


def test_an_acme_server_of_another_ca_gets_no_record(program):
    config = {
        **MINIMAL_CONFIG["nlb-certbot"],
        "acme": {"email": "ops@example.com", "server": "https://acme.example.net/directory"},
    }
    assert caa(program(config)) is None


def test_a_certificate_of_your_own_gets_no_record():
    pki = make_pki("app.example.com")
    config = {
        **MINIMAL_CONFIG["alb-envoy"],
        "hostedZoneId": ZONE,
        "certificate": {
            "certificatePem": pki.leaf_pem,
            "privateKeyPem": pki.key_pem,
            "chainPem": pki.chain_pem,
        },
    }
    # The engine lists `certificate` as secret once privateKeyPem is set with --secret.
    assert caa(run_program(config, secret_keys=("certificate",))) is None


def test_service_connect_without_ingress_has_no_acm_certificate(program):
    graph = program({**MINIMAL_CONFIG["service-connect"], "hostedZoneId": ZONE, "ingress": "none"})
    assert caa(graph) == [("issue", "letsencrypt.org"), NO_WILDCARDS]


def test_the_alerts_email_is_the_iodef_address(program):
    graph = program({**MINIMAL_CONFIG["direct-task"], "alertsEmail": "oncall@example.com"})
    assert caa(graph) == [LE_DNS01, ("iodef", "mailto:oncall@example.com")]


def test_one_caa_record_set_whatever_the_topology(program):
    """A switch rewrites the values of one record set (same URN) instead of creating a
    second CAA set for the same name, which Route53 would refuse."""
    urns = set()
    for topology in TOPOLOGIES:
        graph = program(
            {**MINIMAL_CONFIG[topology], "hostedZoneId": ZONE, "domain": "x.example.com"}
        )
        (record,) = [
            r for r in graph.of_type("aws:route53/record:Record") if r.inputs["type"] == "CAA"
        ]
        urns.add(record.urn)
    assert len(urns) == 1


def test_caa_values_refuse_quotes_and_build_no_ca_when_empty():
    assert caa_records(CaaPolicy(issuers=(), wildcard=False)) == [
        '0 issue ";"',
        '0 issuewild ";"',
    ]
    with pytest.raises(ValueError):
        caa_records(CaaPolicy(issuers=('evil" 0 issue "ca.example',), wildcard=True))
    (rule,) = [r for r in RULES if r.id == "route53-caa-value"]
    for value in caa_records(
        CaaPolicy(("letsencrypt.org; validationmethods=dns-01",), False, "a@b.example")
    ):
        assert rule.violation(value) is None
    assert rule.violation("0 issue letsencrypt.org")
    assert rule.violation('0 issue "a"b"')

"""`loadBalancer`: access logs, deletion protection and a WAF web ACL, each optional."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from settings.errors import ConfigError, invalid
from settings.model import LoadBalancerSettings
from settings.readers import read_integer, read_object, reject_unknown_keys

ACCESS_LOG_KEYS = ("bucket", "prefix", "expirationDays")

# S3 bucket naming rules (S3 User Guide, "General purpose bucket naming rules"): 3 to 63
# lower-case letters, digits, dots and hyphens, a letter or digit at both ends, no two
# adjacent dots, not an IPv4 address.
BUCKET_RE = re.compile(r"\A(?!\d+\.\d+\.\d+\.\d+\Z)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")

# ELB access logs: the prefix may not contain AWSLogs (ELB adds it) nor start or end with a
# slash. Kept to characters that need no URL encoding.
PREFIX_RE = re.compile(r"\A[A-Za-z0-9_.-]{1,100}(?:/[A-Za-z0-9_.-]{1,100})*\Z")
PREFIX_MAX = 200

# A regional WAFv2 web ACL (the scope an ALB takes; CLOUDFRONT ACLs live in us-east-1
# under global/): arn:<partition>:wafv2:<region>:<account>:regional/webacl/<name>/<id>.
WAF_ACL_ARN_RE = re.compile(
    r"\Aarn:aws(?:-[a-z]+)*:wafv2:[a-z]{2}(?:-[a-z]+)+-[0-9]+:[0-9]{12}:regional/webacl/"
    r"[A-Za-z0-9_-]{1,128}/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z"
)


def _flag(raw: Mapping[str, Any], name: str) -> bool:
    value = raw.get(name, False)
    if not isinstance(value, bool):
        raise invalid(f"loadBalancer.{name}", value, "true or false")
    return value


def parse_load_balancer(
    values: Mapping[str, Any], topology: str, ingress: str
) -> LoadBalancerSettings:
    raw = read_object(values, "loadBalancer")
    out: dict[str, Any] = {
        "deletion_protection": _flag(raw, "deletionProtection"),
    }
    waf = raw.get("wafWebAclArn")
    if waf is not None:
        if not isinstance(waf, str) or not WAF_ACL_ARN_RE.match(waf):
            raise invalid(
                "loadBalancer.wafWebAclArn",
                waf,
                "a regional WAFv2 web ACL ARN "
                "(arn:aws:wafv2:<region>:<account>:regional/webacl/<name>/<id>)",
            )
        if topology == "service-connect" and ingress != "alb":
            raise ConfigError(
                "loadBalancer.wafWebAclArn",
                f"applies to an application load balancer; ingress {ingress!r} has none",
            )
        out["waf_web_acl_arn"] = waf
    logs = raw.get("accessLogs")
    if logs is not None:
        out.update(_access_logs(logs))
    return LoadBalancerSettings(**out)


def _access_logs(logs: Any) -> dict[str, Any]:
    key = "loadBalancer.accessLogs"
    if isinstance(logs, bool):
        return {"access_logs": logs}
    if not isinstance(logs, dict):
        raise invalid(key, logs, "true, false or an object {bucket, prefix, expirationDays}")
    reject_unknown_keys(logs, key, ACCESS_LOG_KEYS)
    out: dict[str, Any] = {"access_logs": True}
    bucket = logs.get("bucket")
    if bucket is not None:
        if not isinstance(bucket, str) or not BUCKET_RE.match(bucket):
            raise invalid(f"{key}.bucket", bucket, "an S3 bucket name such as my-elb-logs")
        if "expirationDays" in logs:
            raise ConfigError(
                f"{key}.expirationDays",
                "applies to the bucket the stack creates, not accessLogs.bucket",
            )
        out["access_logs_bucket"] = bucket
    prefix = logs.get("prefix")
    if prefix is not None:
        if (
            not isinstance(prefix, str)
            or len(prefix) > PREFIX_MAX
            or not PREFIX_RE.match(prefix)
            or "awslogs" in prefix.lower()
        ):
            raise invalid(
                f"{key}.prefix",
                prefix,
                "a key prefix such as lb/prod (letters, digits, _ . - and inner slashes; "
                "not containing AWSLogs, which ELB adds)",
            )
        out["access_logs_prefix"] = prefix
    if "expirationDays" in logs:
        out["access_logs_expiration_days"] = read_integer(
            logs["expirationDays"], f"{key}.expirationDays", 1, 3650
        )
    return out

"""The workload's own secrets and task role: `app.secrets`, `app.secretsKmsKeyArn`,
`app.taskRolePolicyArns`, `app.taskRoleArn` (and the same under `services[]`).

Only references are read: the program never reads a secret's value. Every ARN is checked
offline (service, partition, region, account, resource shape, no wildcard) so that the
execution role is granted exactly what the containers name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from settings.errors import ConfigError, invalid
from settings.readers import ARN_PARTITION, ARN_REGION, ENV_NAME_RE, KMS_KEY_ARN_RE
from settings.redaction import shown

# Secrets Manager secret names: letters, digits and /_+=.@- (up to 512 characters); the
# ARN adds `-` and six random characters unless the user gives a partial ARN.
SECRET_ARN_RE = re.compile(
    rf"\Aarn:(?P<partition>{ARN_PARTITION}):secretsmanager:(?P<region>{ARN_REGION}):[0-9]{{12}}:"
    r"secret:(?P<name>[A-Za-z0-9/_+=.@-]{1,519})\Z"
)
# A full ARN ends in the six-character suffix Secrets Manager adds to the name.
FULL_SECRET_SUFFIX_RE = re.compile(r"-[A-Za-z0-9]{6}\Z")
# SSM parameter names: letters, digits and _.-/ (up to 1011 characters); in the ARN a
# hierarchical name keeps its slashes after `parameter` (`parameter/app/db`).
PARAMETER_ARN_RE = re.compile(
    rf"\Aarn:(?P<partition>{ARN_PARTITION}):ssm:(?P<region>{ARN_REGION}):[0-9]{{12}}:"
    r"parameter/(?P<name>[A-Za-z0-9_.-][A-Za-z0-9_./-]{0,1010})\Z"
)
# Customer managed policies (any path) and AWS managed ones (account `aws`).
POLICY_ARN_RE = re.compile(
    rf"\Aarn:(?P<partition>{ARN_PARTITION}):iam::(?:[0-9]{{12}}|aws):policy/"
    r"(?:[A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,128}\Z"
)
ROLE_ARN_RE = re.compile(
    rf"\Aarn:(?P<partition>{ARN_PARTITION}):iam::[0-9]{{12}}:role/"
    r"(?:[A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,64}\Z"
)
# Parts of ECS's `valueFrom`, which colons separate: none may hold one. A JSON key of
# letters, digits and _.-@/+= ; a staging label (1-256 characters); a version ID (32-64).
JSON_KEY_RE = re.compile(r"\A[A-Za-z0-9_.@/+=-]{1,256}\Z")
VERSION_STAGE_RE = re.compile(r"\A[A-Za-z0-9_.@/+=-]{1,256}\Z")
VERSION_ID_RE = re.compile(r"\A[A-Za-z0-9-]{32,64}\Z")
# Variables ECS and the AWS SDKs read in every container (the task role's credentials
# endpoint, the metadata endpoint): a secret under such a name would break the task.
RESERVED_PREFIXES = ("AWS_", "ECS_")
# A role holds at most 20 managed policies (IAM quota, raisable); the program's own role
# attaches none, so the user may use all of them up to the default quota.
MAX_POLICY_ARNS = 20
# The execution role's inline policies share 10,240 characters (IAM quota); the program's
# own take under 3,000, so the workload's secrets get this much of what is left.
SECRET_POLICY_BUDGET = 6000
SECRET_REF_KEYS = ("arn", "jsonKey", "versionStage", "versionId")


@dataclass(frozen=True)
class SecretRef:
    """One ECS secret: environment variable `name` from a Secrets Manager secret (or one
    JSON key / version of it) or an SSM parameter, named by ARN."""

    name: str
    arn: str
    json_key: str | None = None
    version_stage: str | None = None
    version_id: str | None = None

    @property
    def is_parameter(self) -> bool:
        return ":ssm:" in self.arn

    @property
    def region(self) -> str:
        return self.arn.split(":")[3]

    @property
    def is_partial(self) -> bool:
        """A Secrets Manager ARN without the six-character suffix (ECS accepts it)."""
        return not self.is_parameter and not FULL_SECRET_SUFFIX_RE.search(self.arn)


@dataclass(frozen=True)
class AppAccess:
    """What the workload may read and do besides what its topology grants."""

    secrets: tuple[SecretRef, ...] = ()
    secrets_kms_key_arn: str | None = None  # a customer managed key of the secrets
    task_role_policy_arns: tuple[str, ...] = ()  # attached to the program's task role
    task_role_arn: str | None = None  # the user's role instead of the program's

    @property
    def partitions(self) -> set[str]:
        arns = [r.arn for r in self.secrets] + list(self.task_role_policy_arns)
        arns += [a for a in (self.secrets_kms_key_arn, self.task_role_arn) if a]
        return {a.split(":")[1] for a in arns}


ACCESS_KEYS = ("secrets", "secretsKmsKeyArn", "taskRolePolicyArns", "taskRoleArn")


def _partition_matches_region(partition: str, region: str) -> bool:
    if region.startswith("cn-"):
        return partition == "aws-cn"
    if region.startswith("us-gov-"):
        return partition == "aws-us-gov"
    return partition != "aws-cn" and partition != "aws-us-gov"


def _arn(value: Any, key: str, pattern: re.Pattern[str], accepted: str) -> str:
    if isinstance(value, str) and ("*" in value or "?" in value):
        raise ConfigError(key, f"{shown(key, value)} holds a wildcard; name exactly one resource")
    match = pattern.match(value) if isinstance(value, str) else None
    if match is None:
        raise invalid(key, value, accepted)
    region = match.groupdict().get("region")
    if region and not _partition_matches_region(match["partition"], region):
        raise invalid(key, value, f"an ARN whose partition matches its region {region}")
    return value


def _part(value: Any, key: str, pattern: re.Pattern[str], accepted: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise invalid(key, value, accepted)
    return value


def _secret(name: Any, value: Any, key: str) -> SecretRef:
    at = f"{key}.{name}"
    if not isinstance(name, str) or not ENV_NAME_RE.match(name):
        raise invalid(key, name, "an object whose names are environment variable names")
    if name.upper().startswith(RESERVED_PREFIXES):
        raise ConfigError(at, "starts with AWS_ or ECS_, names ECS and the AWS SDKs read")
    arn_key = at if isinstance(value, str) else f"{at}.arn"
    if isinstance(value, str):
        value = {"arn": value}
    if not isinstance(value, dict):
        raise invalid(at, value, "an ARN or an object {arn, jsonKey, versionStage, versionId}")
    for field_name in value:
        if field_name not in SECRET_REF_KEYS:
            raise ConfigError(
                f"{at}.{field_name}",
                "is not a known key; known keys: " + ", ".join(SECRET_REF_KEYS),
            )
    raw_arn = value.get("arn")
    if isinstance(raw_arn, str) and ":ssm:" in raw_arn:
        arn = _arn(
            raw_arn,
            arn_key,
            PARAMETER_ARN_RE,
            "an SSM parameter ARN (arn:aws:ssm:<region>:<account>:parameter/<name>)",
        )
        for field_name in ("jsonKey", "versionStage", "versionId"):
            if field_name in value:
                raise ConfigError(
                    f"{at}.{field_name}", "applies to Secrets Manager secrets, not SSM parameters"
                )
        return SecretRef(name, arn)
    arn = _arn(
        raw_arn,
        arn_key,
        SECRET_ARN_RE,
        "a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:"
        "<name>-AbCdEf) or an SSM parameter ARN",
    )
    from settings.workloads import SECRET_VALUES

    json_key = _part(
        value.get("jsonKey"),
        f"{at}.jsonKey",
        JSON_KEY_RE,
        "a JSON key of letters, digits and _.-@/+= (no colon)",
    )
    if json_key is not None:
        for what, pattern in SECRET_VALUES:
            if pattern.search(json_key):
                raise ConfigError(
                    f"{at}.jsonKey", f"holds what looks like {what}: name the key, not its value"
                )
    stage = _part(
        value.get("versionStage"),
        f"{at}.versionStage",
        VERSION_STAGE_RE,
        "a staging label such as AWSCURRENT or AWSPREVIOUS",
    )
    version = _part(
        value.get("versionId"),
        f"{at}.versionId",
        VERSION_ID_RE,
        "a version ID (32 to 64 characters)",
    )
    if stage is not None and version is not None:
        raise ConfigError(f"{at}.versionId", "set versionStage or versionId, not both")
    return SecretRef(name, arn, json_key, stage, version)


def read_access(
    raw: Mapping[str, Any], prefix: str, environment: Iterable[tuple[str, str]]
) -> AppAccess:
    """The four keys under `prefix` (`app` or `services[i]`)."""
    secrets_raw = raw.get("secrets", {})
    if not isinstance(secrets_raw, dict):
        raise invalid(
            f"{prefix}.secrets", secrets_raw, "an object of NAME: ARN (or {arn, jsonKey})"
        )
    plain = {name for name, _ in environment}
    refs = []
    for name, value in secrets_raw.items():
        ref = _secret(name, value, f"{prefix}.secrets")
        if name in plain:
            raise ConfigError(
                f"{prefix}.secrets.{name}",
                f"is also in {prefix}.environment; a variable comes from one place",
            )
        refs.append(ref)
    refs.sort(key=lambda r: r.name)
    budget = sum(len(r.arn) + 16 for r in refs)
    if budget > SECRET_POLICY_BUDGET:
        raise ConfigError(
            f"{prefix}.secrets",
            f"names {len(refs)} secrets, too many for the execution role's inline policies "
            "(10,240 characters in all, an IAM quota); read several values from one JSON "
            "secret with jsonKey",
        )
    kms = raw.get("secretsKmsKeyArn")
    if kms is not None:
        kms = _arn(
            kms,
            f"{prefix}.secretsKmsKeyArn",
            KMS_KEY_ARN_RE,
            "a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>; not an alias)",
        )
        if not refs:
            raise ConfigError(
                f"{prefix}.secretsKmsKeyArn", f"decrypts {prefix}.secrets, which is empty"
            )
    policies = raw.get("taskRolePolicyArns", [])
    if not isinstance(policies, list):
        raise invalid(f"{prefix}.taskRolePolicyArns", policies, "a list of IAM policy ARNs")
    policy_arns = tuple(
        _arn(
            p,
            f"{prefix}.taskRolePolicyArns",
            POLICY_ARN_RE,
            "an IAM managed policy ARN (arn:aws:iam::<account or aws>:policy/<name>)",
        )
        for p in policies
    )
    if len(set(policy_arns)) != len(policy_arns):
        raise invalid(f"{prefix}.taskRolePolicyArns", list(policy_arns), "a list without repeats")
    if len(policy_arns) > MAX_POLICY_ARNS:
        raise ConfigError(
            f"{prefix}.taskRolePolicyArns",
            f"lists {len(policy_arns)} policies; a role holds at most {MAX_POLICY_ARNS} "
            "(IAM quota)",
        )
    role = raw.get("taskRoleArn")
    if role is not None:
        role = _arn(
            role,
            f"{prefix}.taskRoleArn",
            ROLE_ARN_RE,
            "an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
        )
        if policy_arns:
            raise ConfigError(
                f"{prefix}.taskRoleArn",
                f"and {prefix}.taskRolePolicyArns exclude each other: attach the policies to "
                "your role, or let the program's role carry them",
            )
    access = AppAccess(tuple(refs), kms, policy_arns, role)
    if len(access.partitions) > 1:
        raise ConfigError(
            prefix,
            f"names ARNs of several partitions ({', '.join(sorted(access.partitions))}); "
            "a stack runs in one",
        )
    return access


# Topologies whose workload task role also carries what the topology itself needs there: a
# role of yours would lack it, and the program cannot add rights to a role it does not own.
TASK_ROLE_NEEDS = {
    "nlb-certbot": "the app's task mounts the ACME state on EFS with its task role",
    "direct-task": "the certificate refresher in each task reads the certificate secret "
    "with the task role",
    "appmesh-efs": "each service's Envoy mounts its certificate directory on EFS with the "
    "task role",
}


def check_task_role(topology: str, workloads: Iterable[tuple[str, AppAccess]]) -> None:
    """Refuse a user's task role where the topology's sidecar needs task-role rights."""
    why = TASK_ROLE_NEEDS.get(topology)
    if why is None:
        return
    for prefix, access in workloads:
        if access.task_role_arn is not None:
            raise ConfigError(
                f"{prefix}.taskRoleArn",
                f"cannot replace the task role in topology {topology!r}: {why}, a right the "
                f"program cannot add to your role; use {prefix}.taskRolePolicyArns instead",
            )


def check_reserved_secrets(
    reserved: Mapping[str, str], topology: str, workloads: Iterable[tuple[str, AppAccess]]
) -> None:
    """A secret may not take the name of a variable the topology sets in the container."""
    for prefix, access in workloads:
        for ref in access.secrets:
            if ref.name in reserved:
                raise ConfigError(
                    f"{prefix}.secrets.{ref.name}",
                    f"is set by topology {topology!r} ({reserved[ref.name]}); choose another name",
                )

"""The workload's own secrets, from `app.secrets` / `services[].secrets`: pure builders.

ECS `secrets` entries for the workload's container (sidecars never get them) and the
execution role's statements; components/app_access.py registers the resources.
"""

from __future__ import annotations

from collections.abc import Sequence

from components.iam import Statement
from settings.app_secrets import AppAccess, SecretRef


def value_from(ref: SecretRef) -> str:
    """ECS `valueFrom`: the ARN, or for one JSON key or version of a Secrets Manager secret
    `<arn>:<json-key>:<version-stage>:<version-id>` with empty fields left empty (ECS
    developer guide, "Pass Secrets Manager secrets through Amazon ECS environment
    variables")."""
    if ref.is_parameter or not (ref.json_key or ref.version_stage or ref.version_id):
        return ref.arn
    return ":".join((ref.arn, ref.json_key or "", ref.version_stage or "", ref.version_id or ""))


def container_secrets(access: AppAccess) -> dict[str, str]:
    """The workload container's `secrets`, variable name -> valueFrom."""
    return {ref.name: value_from(ref) for ref in access.secrets}


def grant_resource(ref: SecretRef) -> str:
    """The resource the execution role is granted for one reference.

    A partial Secrets Manager ARN (without the `-` and six random characters the service
    appends) matches no secret in a policy; `-??????` matches exactly that suffix, so the
    grant covers the one secret of that name and not others sharing its prefix (Secrets
    Manager user guide, "Resources: secret ARN" in its IAM policy examples).
    """
    if ref.is_partial:
        return f"{ref.arn}-??????"
    return ref.arn


def _via(service: str, region: str, dns_suffix: str) -> str:
    return f"{service}.{region}.{dns_suffix}"


def secret_read_statements(accesses: Sequence[AppAccess], dns_suffix: str) -> list[Statement]:
    """What the execution role needs to inject these secrets, and nothing more.

    GetSecretValue on the secrets, GetParameters on the parameters (ECS developer guide,
    "Amazon ECS task execution IAM role", secrets), and kms:Decrypt on each customer key
    only when Secrets Manager or SSM asks KMS on the role's behalf (kms:ViaService), for
    the regions its secrets live in.
    """
    secrets = sorted({grant_resource(r) for a in accesses for r in a.secrets if not r.is_parameter})
    parameters = sorted({r.arn for a in accesses for r in a.secrets if r.is_parameter})
    statements = []
    if secrets:
        statements.append(Statement("ReadAppSecrets", ["secretsmanager:GetSecretValue"], secrets))
    if parameters:
        statements.append(Statement("ReadAppParameters", ["ssm:GetParameters"], parameters))
    via: dict[str, set[str]] = {}
    for access in accesses:
        if access.secrets_kms_key_arn is None:
            continue
        services = via.setdefault(access.secrets_kms_key_arn, set())
        for ref in access.secrets:
            kind = "ssm" if ref.is_parameter else "secretsmanager"
            services.add(_via(kind, ref.region, dns_suffix))
    for i, key in enumerate(sorted(via)):
        statements.append(
            Statement(
                f"DecryptAppSecrets{i}",
                ["kms:Decrypt"],
                [key],
                condition={"StringEquals": {"kms:ViaService": sorted(via[key])}},
            )
        )
    return statements

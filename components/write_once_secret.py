"""A Secrets Manager secret's first value, written once and never by a later `up`.

For the values the program only seeds: the Neo4j password (the database keeps its first one)
and direct-task's placeholder certificate (its renewal task owns the secret afterwards).

The value goes through the provider's write-only argument (`secret_string_wo`, Terraform
1.11 write-only attributes): Secrets Manager gets it, the resource's outputs do not. The
engine itself still keeps the input, encrypted like every secret, until
pulumi-terraform-bridge#3201.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

# Ignored by every update, so only a create writes a value. Stacks created before the
# write-only argument hold `secret_string` instead: for each ignored path the engine puts
# back the old input, or drops the new one where the old had none, so such a stack's
# inputs stay exactly as deployed (its `secret_string`, no write-only value) and the
# engine sees no change: no new version, the first value stays.
WRITE_ONCE_IGNORED = ("secret_string", "secret_string_wo", "secret_string_wo_version")
# Changing this would write the value again, only where WRITE_ONCE_IGNORED did not hide it.
WRITE_ONCE_VERSION = 1


def write_once_secret_version(
    name: str,
    secret_id: pulumi.Input[str],
    value: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    also_ignore: Sequence[str] = (),
) -> aws.secretsmanager.SecretVersion:
    """The secret's first version, holding `value` (marked secret here); `also_ignore`
    names further inputs a later `up` must leave alone."""
    return aws.secretsmanager.SecretVersion(
        name,
        secret_id=secret_id,
        secret_string_wo=pulumi.Output.secret(value),
        secret_string_wo_version=WRITE_ONCE_VERSION,
        opts=pulumi.ResourceOptions.merge(
            opts,
            pulumi.ResourceOptions(ignore_changes=[*WRITE_ONCE_IGNORED, *also_ignore]),
        ),
    )

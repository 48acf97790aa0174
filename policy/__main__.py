"""The ecs-tls CrossGuard policy pack: the design's rules, mandatory, for any Pulumi program.

    pulumi preview --policy-pack policy                # from the repository root
    pulumi preview --policy-pack path/to/policy --policy-pack-config my-config.json

The CLI runs this file from this directory with the virtualenv of PulumiPolicy.yaml; the
rules live in rules.py, which the unit tests import. docs/policy.md says what each rule
checks, its configuration and how to enforce the pack from Pulumi Cloud.
"""

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import PACK_NAME, POLICIES

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)

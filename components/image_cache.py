"""ECR pull-through cache rules for the registries the program's images come from.

Part of the foundation (created by the cluster, named independently of the topology), as
the rules serve every topology and a switch must not delete and re-create them. What the
rules mean for image references and IAM is in settings/images.py, as plain functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from settings.images import CACHE_SUFFIXES, CacheRule


@dataclass(frozen=True)
class ImageCacheArgs:
    rules: Sequence[CacheRule]


class ImageCache(pulumi.ComponentResource):
    """One `aws.ecr.PullThroughCacheRule` per upstream registry."""

    rules: list[aws.ecr.PullThroughCacheRule]

    def __init__(self, name: str, args: ImageCacheArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ecs-tls:image_cache:ImageCache", name, None, opts)
        self.rules = [
            aws.ecr.PullThroughCacheRule(
                f"{name}-{CACHE_SUFFIXES[rule.registry]}",
                ecr_repository_prefix=rule.ecr_repository_prefix,
                upstream_registry_url=rule.upstream_registry_url,
                # ECR reads the secret itself (its service-linked role), so no role of the
                # stack is granted it.
                credential_arn=rule.credential_arn,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for rule in args.rules
        ]
        self.register_outputs({"repositoryPrefixes": [r.ecr_repository_prefix for r in self.rules]})

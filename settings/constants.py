"""Accepted values and defaults that several settings modules share."""

from __future__ import annotations

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

# Topologies whose load balancer presents an ACM certificate that gets an expiry alarm.
LOAD_BALANCER_CERTIFICATE_TOPOLOGIES = ("alb-envoy", "service-connect")

# Let's Encrypt profiles and their lifetimes in days (classic: 90, 64 from 2027-02-10; the
# default without a profile follows it down to 45 by 2028, which the schedule assumes).
ACME_PROFILE_LIFETIMES = {"classic": 64, "tlsserver": 45, "shortlived": 6}

# AWS Private CA key algorithms -> signing algorithms that fit them (first: the default).
CA_SIGNING_ALGORITHMS = {
    "EC_prime256v1": ("SHA256WITHECDSA",),
    "EC_secp384r1": ("SHA384WITHECDSA", "SHA512WITHECDSA"),
    "RSA_2048": ("SHA256WITHRSA",),
}

DEFAULT_SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"

ENVOY_IMAGE = "docker.io/envoyproxy/envoy:v1.40.0"

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

NGINX_IMAGE = "public.ecr.aws/docker/library/nginx:1.27-alpine"

SERVICE_MODES = ("server", "client")

APP_PROTOCOLS = ("http", "http2", "grpc")

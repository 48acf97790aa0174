"""Hostile configuration values, every documented key: each is refused with one line.

Every row is a stack configuration that is valid except for one hostile value, and the key
the error must name. Each runs the real program (`__main__.py` -> `load_settings()`, under
mocks) and must stop it with a `ConfigError` before any resource is registered:

- never another exception (a traceback), never an accepted value;
- one line that starts with `ecs-tls:<key>`;
- for a key set with `--secret`, and for values that hold key material, no echo of the value.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from constants.config import DEFAULT_SSL_POLICY, SSL_POLICIES
from scripts.mock_runtime import config_error
from scripts.pki import make_pki
from settings import CONFIG_REFERENCE, ConfigError, parse_settings
from settings.parse import SERVICE_CONNECT_FINGERPRINT_VARIABLE
from tests.conftest import MINIMAL_CONFIG

PKI = make_pki("app.example.com")
EXISTING_VPC = {
    "vpcId": "vpc-0123456789abcdef0",
    "publicSubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "privateSubnetIds": ["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"],
}
WEB = {"name": "web", "image": "nginx", "port": 80}
# Made-up key material of the shapes the environment check knows; none is a real credential.
FAKE_KEY_ID = "AKIA" + "Q" * 16
FAKE_SECRET_KEY = "Ab1/" * 10  # 40 base64 characters, both cases and digits
FAKE_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl"


class Row:
    """A hostile value: `topology`'s minimal stack with `patch` applied (dotted paths)."""

    def __init__(
        self,
        key: str,
        topology: str,
        patch: dict[str, Any],
        name: str,
        secret: str | None = None,
        hidden: str | None = None,
    ):
        self.key, self.topology, self.patch, self.name = key, topology, patch, name
        # `secret`: a top-level key set with --secret; `hidden`: text the message must not hold.
        self.secret, self.hidden = secret, hidden

    def config(self) -> dict[str, Any]:
        config = copy.deepcopy(MINIMAL_CONFIG[self.topology])
        for path, value in self.patch.items():
            if value is DELETE:
                config.pop(path)
                continue
            node = config
            *parents, last = path.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = copy.deepcopy(value)
        return config


DELETE = object()
ALB, SC, MESH, NLB, DT = "alb-envoy", "service-connect", "appmesh-efs", "nlb-certbot", "direct-task"


def r(key: str, topology: str, value: Any, name: str, path: str | None = None, **kw) -> Row:
    """One value at `path` (default: the key itself)."""
    return Row(key, topology, {path or key: value}, name, **kw)


def svc(field: str, value: Any, name: str, topology: str = SC, **extra) -> Row:
    """A `services` list whose first service has `field: value`."""
    item = {**WEB, **extra, field: value}
    key = f"services[0].{field}"
    return Row(key, topology, {"services": [item]}, name)


def env(key: str, topology: str, environment: Any, name: str, hidden: str | None = None) -> Row:
    if key.startswith("services"):
        return Row(
            key, topology, {"services": [{**WEB, "environment": environment}]}, name, hidden=hidden
        )
    return Row(key, topology, {"app.environment": environment}, name, hidden=hidden)


LONG_LABEL = "a" * 63
SM_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"
ROWS: list[Row] = [
    # --- topology
    r("topology", ALB, ["alb-envoy"], "list-for-string"),
    r("topology", ALB, {"name": "alb-envoy"}, "object-for-string"),
    r("topology", ALB, "alb-envoy\n", "trailing-newline"),
    r("topology", ALB, "ALB-ENVOY", "upper-case"),
    r("topology", ALB, "", "empty"),
    r("topology", ALB, DELETE, "absent"),
    # --- domain
    r("domain", ALB, "app.example.com\n", "trailing-newline"),
    r("domain", ALB, " app.example.com", "leading-space"),
    r("domain", ALB, "app.example.com\x00", "nul"),
    r("domain", ALB, "\u212aey.example.com", "kelvin-sign-lowers-to-k"),
    r("domain", ALB, "\u0430pp.example.com", "cyrillic-a-lookalike"),
    r("domain", ALB, "app.example.com\u3002", "ideographic-full-stop"),
    r("domain", ALB, "192.0.2.10", "ipv4-address"),
    r("domain", ALB, "[2001:db8::1]", "ipv6-address"),
    r("domain", ALB, "app..example.com", "empty-label"),
    r("domain", ALB, "app.example.com..", "two-root-dots"),
    r("domain", ALB, "-app.example.com", "label-starts-with-dash"),
    r("domain", ALB, "app_x.example.com", "underscore"),
    r("domain", ALB, f"{LONG_LABEL}a.example.com", "label-of-64"),
    r("domain", ALB, f"{LONG_LABEL}.example.com", "common-name-over-64"),
    r("domain", DT, f"{'b' * 60}.com", "wildcard-common-name-over-64"),
    r("domain", ALB, ".".join([LONG_LABEL] * 4) + ".com", "over-253"),
    r("domain", ALB, "app.example.com;rm -rf /", "shell-metacharacters"),
    r("domain", ALB, 12345, "number"),
    r("domain", ALB, None, "null"),
    # --- hostedZoneId
    r("hostedZoneId", NLB, "Z0123456789ABCDEFGHIJ\n", "trailing-newline"),
    r("hostedZoneId", NLB, " Z0123456789ABCDEFGHIJ", "leading-space"),
    r("hostedZoneId", NLB, "/hostedzone/Z0123456789ABC", "path-form"),
    r("hostedZoneId", NLB, "z0123456789abc", "lower-case"),
    r("hostedZoneId", NLB, "Z" + "A" * 40, "too-long"),
    r("hostedZoneId", NLB, ["Z0123456789ABC"], "list"),
    # --- acme
    r("acme", NLB, "ops@example.com", "string-for-object"),
    r("acme.emial", NLB, "ops@example.com", "typo-key", path="acme.emial"),
    r("acme.email", NLB, "-ops@example.com", "starts-with-dash-certbot-option"),
    r("acme.email", NLB, "ops@example.com\n", "trailing-newline"),
    r("acme.email", NLB, "ops@@example.com", "two-at"),
    r("acme.email", NLB, "ops@example", "no-dot-in-domain"),
    r("acme.email", NLB, "ops@exa mple.com", "space"),
    r("acme.email", NLB, "o'ps@example.com", "quote"),
    r("acme.email", NLB, "ops.@example.com", "dot-before-at"),
    r("acme.email", NLB, "ops@example.com,evil@example.org", "two-addresses"),
    r("acme.email", NLB, "opś@example.com", "non-ascii"),
    r("acme.email", NLB, True, "bool"),
    r("acme.challenge", NLB, "DNS-01", "upper-case"),
    r("acme.challenge", NLB, ["dns-01"], "list"),
    r("acme.challenge", DT, "http-01", "http-01-for-wildcard"),
    r("acme.server", NLB, "http://acme.example.com/dir", "plain-http"),
    r("acme.server", NLB, "https://user:pass@acme.example.com/dir", "credentials-in-url"),
    r("acme.server", NLB, "https://acme.example.com/dir\n", "trailing-newline"),
    r("acme.server", NLB, "https://acme.example.com/$(id)", "shell-substitution"),
    r("acme.server", NLB, "https://acme.example.com/dir;reboot", "semicolon"),
    r("acme.server", NLB, "Staging", "upper-case-alias"),
    r("acme.profile", NLB, "longlived", "unknown"),
    r("acme.profile", NLB, {"name": "classic"}, "object"),
    r("acme.renewEveryDays", NLB, "²", "superscript-two"),
    r("acme.renewEveryDays", NLB, "٣", "arabic-indic-three"),
    r("acme.renewEveryDays", NLB, 0, "zero"),
    r("acme.renewEveryDays", NLB, -7, "negative"),
    r("acme.renewEveryDays", NLB, 7.5, "float"),
    r("acme.renewEveryDays", NLB, True, "bool"),
    r("acme.renewEveryDays", NLB, "1" * 5000, "digits-beyond-int-limit"),
    r("acme.renewEveryDays", NLB, "7\n", "trailing-newline"),
    r("acme.renewEveryDays", NLB, 10**30, "huge"),
    # --- network
    r("network.cidrBlock", ALB, "10.0.0.1/16", "host-bits-set"),
    r("network.cidrBlock", ALB, "10.0.0.0/8", "too-large"),
    r("network.cidrBlock", ALB, "fd00::/48", "ipv6"),
    r("network.cidrBlock", ALB, "10.0.0.0/16\n", "trailing-newline"),
    r("network.cidrBlock", ALB, 167772160, "integer"),
    r("network.cidrBlock", ALB, "10.0.0.0/29", "smaller-than-aws-allows"),
    r("network.cidrBlock", ALB, "10.0.0.0/26", "no-room-for-two-zones"),
    r(
        "network.cidrBlock",
        ALB,
        {"cidrBlock": "10.0.0.0/24", "availabilityZones": 5},
        "room-for-four-zones-only",
        path="network",
    ),
    r("network.availabilityZones", ALB, 7, "too-many"),
    r("network.availabilityZones", ALB, "²", "superscript-two"),
    r("network.availabilityZones", ALB, 2.0, "float"),
    r("network.natGateways", ALB, 1.0, "float-for-int"),
    r("network.natGateways", ALB, "²", "superscript-two"),
    r("network.natGateways", ALB, True, "bool"),
    r("network.natGateways", ALB, 0, "zero-with-private-tasks"),
    r("network.natGateways", ALB, 5, "not-0-1-or-per-zone"),
    r(
        "network.vpcId",
        ALB,
        {**EXISTING_VPC, "vpcId": "vpc-0123\n"},
        "trailing-newline",
        path="network",
    ),
    r(
        "network.vpcId",
        ALB,
        {**EXISTING_VPC, "vpcId": ["vpc-0123456789abcdef0"]},
        "list",
        path="network",
    ),
    r(
        "network.publicSubnetIds",
        ALB,
        {**EXISTING_VPC, "publicSubnetIds": ["subnet-0123456789abcdef0"] * 2},
        "duplicates",
        path="network",
    ),
    r(
        "network.publicSubnetIds",
        ALB,
        {**EXISTING_VPC, "publicSubnetIds": {"a": 1}},
        "object-for-list",
        path="network",
    ),
    r(
        "network.privateSubnetIds",
        ALB,
        {**EXISTING_VPC, "privateSubnetIds": ["subnet-0123456789abcdef0"]},
        "also-public",
        path="network",
    ),
    r(
        "network.privateSubnetIds",
        ALB,
        {**EXISTING_VPC, "privateSubnetIds": ["subnet-0123456789abcdef2\n"]},
        "trailing-newline",
        path="network",
    ),
    # --- certificate
    r("certificate", ALB, PKI.key_pem, "key-as-string", hidden="PRIVATE KEY"),
    r(
        "certificate.privateKeyPem",
        ALB,
        PKI.certificate_config(),
        "key-not-secret",
        path="certificate",
        hidden="PRIVATE KEY",
    ),
    r(
        "certificate.certificatePem",
        ALB,
        {**PKI.certificate_config(), "certificatePem": PKI.key_pem},
        "key-in-certificate",
        path="certificate",
        secret="certificate",
        hidden="PRIVATE KEY",
    ),
    r(
        "certificate.chainPem",
        ALB,
        {**PKI.certificate_config(), "chainPem": 5},
        "number",
        path="certificate",
        secret="certificate",
    ),
    r("certificate.source", ALB, "ACM", "upper-case"),
    r("certificate.source", ALB, "acm", "acm-without-zone"),
    r("certificate.source", ALB, ["acm"], "list-for-string"),
    r(
        "certificate.source",
        ALB,
        {**PKI.certificate_config(), "source": "generated"},
        "with-pems",
        path="certificate",
        secret="certificate",
        hidden="PRIVATE KEY",
    ),
    r("certificate.arn", ALB, "arn:aws:acm:eu-west-1:123456789012:certificate/*", "wildcard"),
    r(
        "certificate.arn",
        ALB,
        "arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/"
        "12345678-1234-1234-1234-123456789012",
        "private-ca-arn",
    ),
    r(
        "certificate.arn",
        ALB,
        "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012\n",
        "trailing-newline",
    ),
    # --- privateCa
    r(
        "privateCa.arn",
        SC,
        "arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/x",
        "not-a-uuid",
    ),
    r(
        "privateCa.arn",
        SC,
        "arn:aws:acm-pca:eu-west-1:١٢٣٤٥٦٧٨٩٠١٢:certificate-authority/"
        "01234567-89ab-cdef-0123-456789abcdef",
        "arabic-indic-account",
    ),
    r("privateCa.shareWith", SC, ["123456789012", "123456789012"], "duplicates"),
    r("privateCa.shareWith", SC, ["12345678901\n"], "trailing-newline"),
    r("privateCa.shareWith", SC, ["١٢٣٤٥٦٧٨٩٠١٢"], "arabic-indic-digits"),
    r("privateCa.keyAlgorithm", SC, ["EC_prime256v1"], "list"),
    r("privateCa.signingAlgorithm", SC, "SHA1WITHRSA", "weak"),
    r("privateCa.permanentDeletionDays", SC, 6, "below-minimum"),
    r("privateCa.allowExternalPrincipals", SC, "yes", "string-for-bool"),
    # --- ingress
    r("ingress", SC, "ALB", "upper-case"),
    r("ingress", SC, ["alb"], "list"),
    r(
        "allowedCidrs",
        SC,
        {"ingress": "none", "allowedCidrs": ["203.0.113.0/24"]},
        "with-ingress-none",
        path="__merge__",
    ),
    # --- allowedCidrs
    r("allowedCidrs", NLB, DELETE, "nlb-certbot-without"),
    r("allowedCidrs", ALB, [0], "zero-integer"),
    r("allowedCidrs", ALB, [True], "bool"),
    r("allowedCidrs", ALB, ["203.0.113.7/24"], "host-bits-set"),
    r("allowedCidrs", ALB, ["::/0"], "ipv6"),
    r("allowedCidrs", ALB, ["203.0.113.0/24\n"], "trailing-newline"),
    r("allowedCidrs", ALB, ["203.0.113.0/24", "203.0.113.0/24"], "duplicate"),
    r("allowedCidrs", ALB, ["0.0.0.0/0", "203.0.113.0/24"], "covered"),
    r("allowedCidrs", ALB, [f"10.{i}.0.0/16" for i in range(200)], "200-cidrs"),
    r("allowedCidrs", ALB, [f"10.{i}.0.0/16" for i in range(31)], "31-behind-alb"),
    r("allowedCidrs", NLB, [f"10.{i}.0.0/16" for i in range(31)], "31-times-two-ports"),
    r("allowedCidrs", ALB, [], "empty-list"),
    r("allowedCidrs", ALB, {"a": "203.0.113.0/24"}, "object-for-list"),
    r("allowedCidrs", ALB, ["203.0.113.0/24 "], "trailing-space"),
    r("allowedCidrs", ALB, ["٢٠٣.0.113.0/24"], "arabic-indic-digits"),
    # --- sslPolicy
    r("sslPolicy", ALB, "ELBSecurityPolicy-TLS13-1-0-2021-06", "tls13-from-tls10"),
    r("sslPolicy", ALB, "ELBSecurityPolicy-TLS13-1-1-2021-06", "tls13-from-tls11"),
    r("sslPolicy", ALB, "ELBSecurityPolicy-TLS13-1-0-PQ-2025-09", "pq-from-tls10"),
    r("sslPolicy", ALB, "ELBSecurityPolicy-2016-08", "api-default-2016"),
    r("sslPolicy", ALB, "ELBSecurityPolicy-FS-1-1-2019-08", "fs-from-tls11"),
    r("sslPolicy", ALB, "ELBSecurityPolicy-TLS-1-2-2017-01", "pre-tls13"),
    r("sslPolicy", ALB, DEFAULT_SSL_POLICY + "\n", "trailing-newline"),
    r("sslPolicy", ALB, DEFAULT_SSL_POLICY.lower(), "lower-case"),
    r("sslPolicy", ALB, [DEFAULT_SSL_POLICY], "list"),
    # --- certificateExpiryAlarmDays, logRetentionDays
    r("certificateExpiryAlarmDays", ALB, 46, "above-maximum"),
    r("certificateExpiryAlarmDays", ALB, "³", "superscript-three"),
    r("logRetentionDays", ALB, "²", "superscript-two"),
    r("logRetentionDays", ALB, 30.0, "float"),
    r("logRetentionDays", ALB, 31, "not-a-retention"),
    r("logRetentionDays", ALB, [30], "list"),
    # --- caaRecord
    r("caaRecord", DT, 0, "zero"),
    r("caaRecord", DT, "yes", "word"),
    r("caaRecord", DT, [True], "list"),
    # --- alertsEmail
    r("alertsEmail", DT, "-ops@example.com", "starts-with-dash"),
    r("alertsEmail", DT, "ops@example.com\n", "trailing-newline"),
    r("alertsEmail", DT, ["ops@example.com"], "list"),
    r("alertsEmail", ALB, "ops@example.com\n", "trailing-newline-alb-envoy"),
    # --- envoy
    r("envoy.image", ALB, "envoyproxy/envoy:v1.40.0 --help", "space"),
    r("envoy.image", ALB, "envoyproxy/envoy:v1.40.0;id", "semicolon"),
    r("envoy.image", ALB, "envoyproxy/envoy:v1.40.0\n", "trailing-newline"),
    r("envoy.port", ALB, 443, "privileged"),
    r("envoy.port", ALB, 80, "the-app-port"),
    r("envoy.minTlsVersion", ALB, "1.1", "tls11"),
    r("envoy.minTlsVersion", ALB, 1.0, "float-one"),
    r("envoy.accessLog", ALB, ["all"], "list"),
    r("envoy.upstreamIdleTimeoutSeconds", ALB, 0, "zero"),
    r("envoy.imag", ALB, "nginx", "typo-key", path="envoy.imag"),
    # --- serviceConnect
    r("serviceConnect.namespace", SC, "ns\n", "trailing-newline"),
    r("serviceConnect.namespace", SC, "../ns", "path"),
    r("serviceConnect.customerKmsKey", SC, "true ", "string-for-bool"),
    # --- mesh
    r("mesh.namespace", MESH, "mesh.app.example.com\n", "trailing-newline"),
    r("mesh.namespace", MESH, "Mesh App", "space"),
    r("mesh.mutualTls", MESH, "false", "string-for-bool"),
    r("mesh.clientCertificate", MESH, "cert", "string-for-object"),
    r(
        "mesh.clientCertificate.certificatePem",
        MESH,
        {"certificatePem": 5},
        "number",
        path="mesh.clientCertificate",
    ),
    r(
        "mesh.clientCertificate.privateKeyPem",
        MESH,
        {"privateKeyPem": ""},
        "empty",
        path="mesh.clientCertificate",
    ),
    r(
        "mesh.gatewayRoutes[0].service",
        MESH,
        [{"prefix": "/", "service": "nope"}],
        "unknown-service",
        path="mesh.gatewayRoutes",
    ),
    r("mesh.gatewayRoutes", MESH, {"/": "frontend"}, "object-for-list"),
    r("mesh.gatewayDesiredCount", MESH, -1, "negative"),
    r("mesh.dnsRefreshSeconds", MESH, "⁵", "superscript-five"),
    r("mesh.dnsRefreshSecond", MESH, 5, "typo-key", path="mesh.dnsRefreshSecond"),
    r("mesh.additionalTrustedCaPem", MESH, ["pem"], "list-for-string"),
    r("mesh.additionalTrustedCaPem", MESH, "not a certificate", "not-pem"),
    r(
        "mesh.additionalTrustedCaPem",
        MESH,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "broken-pem",
    ),
    r(
        "mesh.additionalTrustedCaPem",
        MESH,
        "-----BEGIN CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nAAAA\n",
        "private-key",
    ),
    # --- app
    r("app.imag", ALB, "nginx", "typo-key", path="app.imag"),
    r("app.port", ALB, {"app.port": 5}, "set-without-path", path="__merge__"),
    r("app", ALB, "nginx", "string-for-object"),
    # service-connect and appmesh-efs run services[]: an app there would be silently ignored.
    r("app", SC, {"image": "ghcr.io/acme/web:1.2.3"}, "service-connect-runs-services"),
    r("app", MESH, "ghcr.io/acme/web:1.2.3", "appmesh-efs-runs-services", path="app.image"),
    r("app", SC, {}, "empty-on-service-connect"),
    r("app.image", ALB, "nginx latest", "space"),
    r("app.image", ALB, "nginx;reboot", "semicolon"),
    r("app.image", ALB, "nginx:1.27\n", "trailing-newline"),
    r("app.image", ALB, "$(curl evil)", "command-substitution"),
    r("app.image", ALB, "NGINX", "upper-case-repository"),
    r("app.image", ALB, "", "empty"),
    r("app.image", ALB, "   ", "whitespace"),
    r("app.image", ALB, "x" * 300, "too-long"),
    r("app.image", ALB, ["nginx"], "list"),
    r("app.port", ALB, 0, "zero"),
    r("app.port", ALB, 65536, "too-large"),
    r("app.port", ALB, "8080\n", "trailing-newline"),
    r("app.port", ALB, 8080.5, "float"),
    r("app.port", ALB, False, "bool"),
    r("app.port", ALB, None, "null"),
    r("app.port", ALB, "0x50", "hex"),
    r("app.cpu", ALB, "²⁵⁶", "superscript-digits"),
    r("app.cpu", ALB, ["256"], "list"),
    r("app.cpu", ALB, 300, "not-a-fargate-size"),
    r("app.memory", ALB, 511, "below-size"),
    r("app.desiredCount", ALB, 101, "too-many"),
    r("app.desiredCount", NLB, 2, "two-on-one-volume"),
    r("app.healthCheckPath", ALB, "health", "relative"),
    r("app.healthCheckPath", ALB, "/health\n", "trailing-newline"),
    r("app.healthCheckPath", ALB, "/he alth", "space"),
    r("app.healthCheckPath", ALB, "/" + "a" * 1100, "too-long"),
    env(
        "app.environment.DB_PASSWORD",
        ALB,
        {"DB_PASSWORD": "hunter2-marker"},
        "password-name",
        hidden="hunter2-marker",
    ),
    env("app.environment.github_token", ALB, {"github_token": "x"}, "lower-case-token-name"),
    env("app.environment.STRIPE_API_KEY", ALB, {"STRIPE_API_KEY": "x"}, "api-key-name"),
    env("app.environment.MY_APIKEY", ALB, {"MY_APIKEY": "x"}, "apikey-name"),
    env("app.environment.SSH_PRIVATE_KEY", ALB, {"SSH_PRIVATE_KEY": "x"}, "private-key-name"),
    env(
        "app.environment.AWS_SECRET_ACCESS_KEY",
        ALB,
        {"AWS_SECRET_ACCESS_KEY": "x"},
        "aws-secret-name",
    ),
    env("app.environment.DB_PASSWD", ALB, {"DB_PASSWD": "x"}, "passwd-name"),
    env("app.environment.GCP_CREDENTIAL", ALB, {"GCP_CREDENTIAL": "x"}, "credential-name"),
    env(
        "app.environment.KEY_ID",
        ALB,
        {"KEY_ID": FAKE_KEY_ID},
        "access-key-id-value",
        hidden=FAKE_KEY_ID,
    ),
    env(
        "app.environment.SIGNING",
        ALB,
        {"SIGNING": FAKE_SECRET_KEY},
        "secret-key-value",
        hidden=FAKE_SECRET_KEY,
    ),
    env("app.environment.SESSION", ALB, {"SESSION": FAKE_JWT}, "jwt-value", hidden=FAKE_JWT),
    env("app.environment.TLS", ALB, {"TLS": PKI.key_pem}, "pem-value", hidden="PRIVATE KEY"),
    env(
        "app.environment.CA",
        ALB,
        {"CA": PKI.root_pem},
        "certificate-pem-value",
        hidden=PKI.root_pem.splitlines()[1],
    ),
    env("app.environment", ALB, {"1ABC": "x"}, "name-starts-with-digit"),
    env("app.environment", ALB, {"A-B": "x"}, "name-with-dash"),
    env("app.environment", ALB, {"A B": "x"}, "name-with-space"),
    env("app.environment", ALB, ["A=1"], "list-for-object"),
    env("app.environment.A", ALB, {"A": {"b": 1}}, "object-value"),
    env("app.environment.A", ALB, {"A": None}, "null-value"),
    env("app.environment.A", ALB, {"A": "a\x00b"}, "nul-in-value"),
    env("app.environment.NEO4J_AUTH", NLB, {"NEO4J_AUTH": "neo4j/x"}, "neo4j-auth-from-secrets"),
    env(
        "app.environment.NEO4J_server_bolt_tls__level",
        NLB,
        {"NEO4J_server_bolt_tls__level": "OPTIONAL"},
        "tls-downgrade",
    ),
    r("app.ports", NLB, [22, 7687], "ssh-port-on-instance"),
    r("app.ports", NLB, [7687, 51678], "ecs-agent-port"),
    r("app.ports", NLB, [7687, 25], "privileged-on-instance"),
    r("app.ports", NLB, [7687, 7687], "duplicate"),
    r("app.ports", NLB, [80], "acme-http-port"),
    r("app.ports", NLB, "7687", "string-for-list"),
    r("app.ports", NLB, [], "empty"),
    r("app.ports", NLB, [7687, "²"], "superscript-two"),
    r("app.certificateLayout.directory", NLB, "/", "root"),
    r("app.certificateLayout.directory", NLB, "/ssl/../etc", "dot-dot"),
    r("app.certificateLayout.directory", NLB, "/etc", "system-directory"),
    r("app.certificateLayout.directory", NLB, "ssl", "relative"),
    r("app.certificateLayout.directory", NLB, "//ssl", "double-slash"),
    r("app.certificateLayout.directory", NLB, "/ssl\n", "trailing-newline"),
    r("app.certificateLayout.scopes", NLB, ["..", "bolt"], "dot-dot-scope"),
    r("app.certificateLayout.scopes", NLB, ["bolt", "bolt"], "duplicate-scope"),
    r("app.certificateLayout.scopes", NLB, ["-rf"], "option-like-scope"),
    r("app.certificateLayout.certificateFile", NLB, "../cert.pem", "path-traversal"),
    r("app.certificateLayout.privateKeyFile", NLB, "public.crt", "same-as-certificate"),
    r("app.certificateLayout.owner", NLB, "root:root", "names"),
    r("app.certificateLayout.owner", NLB, "7474:7474\n", "trailing-newline"),
    r("app.certificateLayout.ownr", NLB, "1:1", "typo-key", path="app.certificateLayout.ownr"),
    r("app.capacity", NLB, "EC2", "upper-case"),
    r("app.capacity", NLB, ["ec2"], "list"),
    r("app.capacity", NLB, "fargate-spot", "spot-for-the-database"),
    r("app.capacity", NLB, {"fargate": 1, "fargateSpot": 1}, "weights-for-the-database"),
    r("app.capacity", ALB, "FARGATE_SPOT", "provider-name"),
    r("app.capacity", DT, {"fargate": 0, "fargateSpot": 0}, "all-weights-zero"),
    r("app.capacity.fargateSpot", ALB, {"fargateSpot": "3\n"}, "trailing-newline", "app.capacity"),
    r("app.capacity.fargate", ALB, {"fargate": 1001}, "over-ecs-weight", "app.capacity"),
    r("app.capacity.base", ALB, {"fargate": 1, "base": -1}, "negative", "app.capacity"),
    r("app.capacity.spot", ALB, {"spot": 1}, "typo-key", "app.capacity"),
    r("app.autoscaling", ALB, "2-4", "string-for-object"),
    r("app.autoscaling", NLB, {"min": 1, "max": 2, "cpuPercent": 50}, "the-database"),
    r("app.autoscaling", ALB, {"min": 1, "max": 4}, "no-metric"),
    r("app.autoscaling.min", ALB, {"max": 4, "cpuPercent": 50}, "absent", "app.autoscaling"),
    r(
        "app.autoscaling.min",
        ALB,
        {"min": -1, "max": 4, "cpuPercent": 50},
        "negative",
        "app.autoscaling",
    ),
    r(
        "app.autoscaling.max",
        ALB,
        {"min": 2, "max": 1, "cpuPercent": 50},
        "below-min",
        "app.autoscaling",
    ),
    r(
        "app.autoscaling.max",
        ALB,
        {"min": 1, "max": 101, "cpuPercent": 50},
        "too-many",
        "app.autoscaling",
    ),
    r(
        "app.autoscaling.cpuPercent",
        ALB,
        {"min": 1, "max": 4, "cpuPercent": "60%"},
        "percent-sign",
        "app.autoscaling",
    ),
    r(
        "app.autoscaling.cpuPercent",
        ALB,
        {"min": 1, "max": 4, "cpuPercent": 0},
        "zero",
        "app.autoscaling",
    ),
    r(
        "app.autoscaling.memoryPercent",
        ALB,
        {"min": 1, "max": 4, "memoryPercent": 101},
        "over-100",
        "app.autoscaling",
    ),
    r(
        "app.autoscaling.requestsPerTarget",
        DT,
        {"min": 1, "max": 2, "requestsPerTarget": 100},
        "no-load-balancer",
        "app.autoscaling",
    ),
    r(
        "app.autoscaling.requestsPerTarget",
        ALB,
        {"min": 1, "max": 2, "requestsPerTarget": 1.5},
        "float",
        "app.autoscaling",
    ),
    r("app.autoscaling.cpu", ALB, {"min": 1, "max": 2, "cpu": 50}, "typo-key", "app.autoscaling"),
    r(
        "app.desiredCount",
        ALB,
        {"desiredCount": 5, "autoscaling": {"min": 1, "max": 4, "cpuPercent": 50}},
        "above-autoscaling-max",
        "app",
    ),
    r("app.instanceType", NLB, "t3.large\n", "trailing-newline"),
    r("app.instanceType", NLB, "t3.large; reboot", "shell"),
    r("app.instanceType", NLB, "a1.large", "graviton-1-without-al2023"),
    r("app.dataPath", NLB, "/", "root"),
    r("app.dataPath", NLB, "/data/../etc", "dot-dot"),
    r("app.dataPath", NLB, "/proc/self", "under-proc"),
    r("app.dataPath", NLB, "/ssl/data", "inside-certificate-directory"),
    r("app.dataPath", NLB, "/data\n", "trailing-newline"),
    r("app.dataVolumeGiB", NLB, 0, "zero"),
    r("app.dataVolumeGiB", NLB, 10**20, "huge"),
    r("app.snapshotRetentionDays", NLB, -1, "negative"),
    r("app.dataVolumeSnapshotId", NLB, "vol-0123456789abcdef0", "volume-id"),
    r("app.dataVolumeSnapshotId", NLB, "snap-0123456789ABCDEF0", "upper-case"),
    r("app.dataVolumeSnapshotId", NLB, "snap-012345678", "nine-digits"),
    r("app.dataVolumeSnapshotId", NLB, "snap-0123456789abcdef0\n", "trailing-newline"),
    r("app.dataVolumeSnapshotId", NLB, "snap-*", "wildcard"),
    r("app.dataVolumeSnapshotId", NLB, 12345678, "number"),
    r("app.dataVolumeZone", NLB, "euw1-az1", "zone-id"),
    r("app.dataVolumeZone", NLB, "eu-west-1", "region"),
    r("app.dataVolumeZone", NLB, "eu-west-1a\n", "trailing-newline"),
    r("app.dataVolumeZone", NLB, "eu-west-1a; reboot", "shell"),
    r("app.dataVolumeZone", NLB, ["eu-west-1a"], "list"),
    r("app.dataVolumeKmsKeyArn", NLB, "alias/aws/ebs", "alias"),
    r("app.dataVolumeKmsKeyArn", NLB, "arn:aws:kms:eu-west-1:123456789012:alias/ebs", "alias-arn"),
    r("app.dataVolumeKmsKeyArn", NLB, "1234abcd-12ab-34cd-56ef-1234567890ab", "bare-key-id"),
    r("app.dataVolumeKmsKeyArn", NLB, "arn:aws:kms:eu-west-1:123456789012:key/*", "wildcard"),
    r(
        "app.dataVolumeKmsKeyArn",
        NLB,
        "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab\n",
        "trailing-newline",
    ),
    r("app.memory", NLB, {"cpu": 512, "memory": 1024}, "too-small-for-neo4j", path="app"),
    # --- app.secrets, app.secretsKmsKeyArn, app.taskRolePolicyArns, app.taskRoleArn
    r("app.secrets", ALB, ["DB"], "list-for-object"),
    r("app.secrets.DB", ALB, {"DB": "*"}, "star", path="app.secrets"),
    r("app.secrets.DB", ALB, {"DB": f"{SM_ARN[:-6]}*"}, "wildcard-in-arn", path="app.secrets"),
    r("app.secrets.DB", ALB, {"DB": "prod/db"}, "name-not-arn", path="app.secrets"),
    r("app.secrets.DB", ALB, {"DB": "arn:aws:s3:::b"}, "other-service", path="app.secrets"),
    r("app.secrets", ALB, {"DB-URL": SM_ARN}, "bad-variable-name"),
    r("app.secrets.AWS_PROFILE", ALB, {"AWS_PROFILE": SM_ARN}, "sdk-name", path="app.secrets"),
    Row(
        "app.secrets.DB",
        ALB,
        {"app.secrets": {"DB": SM_ARN}, "app.environment": {"DB": "x"}},
        "clash-with-environment",
    ),
    r("app.secrets.NEO4J_AUTH", NLB, {"NEO4J_AUTH": SM_ARN}, "topology-var", path="app.secrets"),
    r(
        "app.secrets.DB.jsonKey",
        ALB,
        {"DB": {"arn": SM_ARN, "jsonKey": PKI.key_pem}},
        "pem-in-json-key",
        path="app.secrets",
        hidden="PRIVATE KEY",
    ),
    r(
        "app.secrets.DB.versionStage",
        ALB,
        {"DB": {"arn": SM_ARN, "versionStage": "AWS:CURRENT"}},
        "colon-in-stage",
        path="app.secrets",
    ),
    r(
        "app.secretsKmsKeyArn",
        ALB,
        "alias/aws/secretsmanager",
        "alias",
        path="app.secretsKmsKeyArn",
    ),
    r("app.taskRolePolicyArns", ALB, ["arn:aws:iam::aws:policy/*"], "wildcard"),
    r("app.taskRolePolicyArns", ALB, ["AmazonS3ReadOnlyAccess"], "policy-name-not-arn"),
    r("app.taskRoleArn", ALB, "arn:aws:iam::123456789012:role/*", "wildcard"),
    r("app.taskRoleArn", DT, "arn:aws:iam::123456789012:role/app", "sidecar-needs-role"),
    # --- services
    r("services", SC, {"name": "web"}, "object-for-list"),
    r("services", SC, [], "empty"),
    r("services[1].name", SC, [WEB, WEB], "duplicate-names", path="services"),
    svc("name", "Web", "upper-case"),
    svc("name", "web\n", "trailing-newline"),
    svc("name", "web;id", "semicolon"),
    svc("name", "a" * 64, "too-long"),
    svc("imag", "nginx", "typo-key"),
    svc("image", "nginx latest", "space"),
    svc("image", None, "null"),
    svc("port", "²", "superscript-two"),
    svc("port", 70000, "too-large"),
    svc("mode", "SERVER", "upper-case"),
    svc("public", "true", "string-for-bool"),
    svc("appProtocol", "https", "unknown"),
    svc("discoveryName", "Web", "upper-case"),
    Row(
        "services[0].clientAlias.prot",
        SC,
        {"services": [{**WEB, "clientAlias": {"dnsName": "web", "port": 80, "prot": 1}}]},
        "typo-key-inside",
    ),
    Row(
        "services[0].clientAlias.port",
        SC,
        {"services": [{**WEB, "clientAlias": {"dnsName": "web"}}]},
        "no-port",
    ),
    svc("calls", ["web"], "self-call"),
    svc("calls", ["api", "api"], "duplicate-calls"),
    svc("healthCheckPath", "/h\n", "trailing-newline"),
    svc("command", "nginx -g", "string-for-list"),
    svc("command", ["sh", "-c", "a\x00b"], "nul"),
    env("services[0].environment.SECRET", SC, {"SECRET": "x"}, "secret-name"),
    svc("cpu", 128, "too-small"),
    svc("memory", 100000, "too-large"),
    svc("desiredCount", -1, "negative"),
    # Cloud Map answers with at most 8 addresses.
    svc("desiredCount", 9, "mesh-over-cloud-map-answer", topology=MESH),
    svc("desiredCount", 100, "mesh-far-over-cloud-map-answer", topology=MESH),
    svc("capacity", "spot", "unknown-word"),
    svc("autoscaling", [1, 4], "list-for-object"),
    Row(
        "services[0].autoscaling.max",
        MESH,
        {"services": [{**WEB, "autoscaling": {"min": 1, "max": 9, "cpuPercent": 50}}]},
        "mesh-over-cloud-map-answer",
    ),
    Row(
        "services[1].autoscaling.requestsPerTarget",
        SC,
        {
            "services": [
                {**WEB, "public": True},
                {**WEB, "name": "api", "autoscaling": {"min": 1, "max": 2, "requestsPerTarget": 5}},
            ]
        },
        "not-behind-the-alb",
    ),
    env(
        f"services[0].environment.{SERVICE_CONNECT_FINGERPRINT_VARIABLE}",
        SC,
        {SERVICE_CONNECT_FINGERPRINT_VARIABLE: "x"},
        "topology-variable",
    ),
    env("services[0].environment.WEB_URL", MESH, {"WEB_URL": "http://x"}, "mesh-url-variable"),
    svc("public", True, "mesh-field", topology=MESH),
    Row(
        "services[0].secrets.DB",
        SC,
        {"services": [{**WEB, "secrets": {"DB": "arn:aws:secretsmanager:eu-west-1:1:secret:x"}}]},
        "bad-account",
    ),
    svc("secretsKmsKeyArn", "arn:aws:kms:eu-west-1:123456789012:key/*", "wildcard"),
    svc("taskRolePolicyArns", "arn:aws:iam::aws:policy/x", "string-for-list"),
    svc(
        "taskRoleArn",
        "arn:aws:iam::123456789012:role/app",
        "sidecar-needs-role",
        topology=MESH,
    ),
    # --- images
    r("images", ALB, ["public.ecr.aws"], "list-for-object"),
    r("images.pullThroughCache", ALB, "true", "string-for-bool"),
    r(
        "images.repositoryPrefix",
        ALB,
        {"pullThroughCache": True, "repositoryPrefix": "../x"},
        "path-traversal",
        path="images",
    ),
    r(
        "images.dockerHubCredentialsArn",
        ALB,
        {
            "pullThroughCache": True,
            "dockerHubCredentialsArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:"
            "ecr-pullthroughcache/hub-AbCdEf\n",
        },
        "trailing-newline",
        path="images",
    ),
    # --- loadBalancer
    r("loadBalancer", ALB, "on", "string-for-object"),
    r("loadBalancer", DT, {"deletionProtection": True}, "no-load-balancer"),
    r("loadBalancer.deletionProtection", ALB, "true", "string"),
    r("loadBalancer.deletionProtection", NLB, 1, "number"),
    r("loadBalancer.accessLogs", ALB, "yes", "word"),
    r("loadBalancer.accessLogs", ALB, ["b"], "list"),
    r("loadBalancer.accessLogs", NLB, True, "nlb-tcp-listeners"),
    r("loadBalancer.accessLogs", MESH, True, "internal-nlb-tcp"),
    r("loadBalancer.accessLogs.bucket", ALB, "My_Bucket", "upper-case-underscore"),
    r("loadBalancer.accessLogs.bucket", ALB, "ab", "too-short"),
    r("loadBalancer.accessLogs.bucket", ALB, "a..b", "double-dot"),
    r("loadBalancer.accessLogs.bucket", ALB, "192.168.1.1", "ip-address"),
    r("loadBalancer.accessLogs.bucket", SC, "logs\n", "trailing-newline"),
    r("loadBalancer.accessLogs.prefix", ALB, "/lb", "leading-slash"),
    r("loadBalancer.accessLogs.prefix", ALB, "lb/AWSLogs", "awslogs"),
    r("loadBalancer.accessLogs.prefix", ALB, "lb prod", "space"),
    r("loadBalancer.accessLogs.prefix", ALB, "lb'x", "apostrophe"),
    r("loadBalancer.accessLogs.prefix", ALB, "a" * 201, "too-long"),
    r("loadBalancer.accessLogs.expirationDays", ALB, 0, "zero"),
    r("loadBalancer.accessLogs.expirationDays", ALB, 3651, "ten-years-and-a-day"),
    r("loadBalancer.accessLogs.expirationDays", ALB, "90d", "unit"),
    Row(
        "loadBalancer.accessLogs.expirationDays",
        ALB,
        {"loadBalancer.accessLogs": {"bucket": "my-logs", "expirationDays": 30}},
        "with-existing-bucket",
    ),
    Row(
        "loadBalancer.accessLogs.retention",
        ALB,
        {"loadBalancer.accessLogs": {"retention": 30}},
        "unknown-field",
    ),
    r(
        "loadBalancer.wafWebAclArn",
        ALB,
        "arn:aws:wafv2:us-east-1:123456789012:global/webacl/a/0123abcd-0123-4567-89ab-0123456789ab",
        "cloudfront-scope",
    ),
    r(
        "loadBalancer.wafWebAclArn",
        ALB,
        "arn:aws:waf-regional:eu-west-1:123456789012:webacl/x",
        "classic-waf",
    ),
    r("loadBalancer.wafWebAclArn", ALB, "edge-acl", "name-not-arn"),
    r(
        "loadBalancer.wafWebAclArn",
        NLB,
        "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/"
        "a/0123abcd-0123-4567-89ab-0123456789ab",
        "nlb",
    ),
    Row(
        "loadBalancer.wafWebAclArn",
        SC,
        {
            "ingress": "nlb",
            "loadBalancer.wafWebAclArn": "arn:aws:wafv2:eu-west-1:123456789012:regional/"
            "webacl/a/0123abcd-0123-4567-89ab-0123456789ab",
        },
        "service-connect-nlb",
    ),
    # --- ECS Exec
    r("app.enableExecuteCommand", ALB, "true", "string"),
    r("app.enableExecuteCommand", DT, 1, "number"),
    r("app.enableExecuteCommand", SC, True, "service-connect-has-services"),
    r("app.enableExecuteCommand", MESH, True, "appmesh-has-services"),
    svc("enableExecuteCommand", "yes", "word"),
    svc("enableExecuteCommand", [True], "list", topology=MESH),
    # --- unknown keys, anywhere
    r("topolgy", ALB, "alb-envoy", "typo-top-level"),
    r("network.cidr", ALB, "10.0.0.0/16", "typo-nested", path="network.cidr"),
]


def _materialise(row: Row) -> dict[str, Any]:
    config = row.config()
    merged = config.pop("__merge__", None)
    if merged is not None:
        config.update(merged)
    return config


def _ids() -> list[str]:
    return [f"{row.key}:{row.name}" for row in ROWS]


def test_the_table_is_large_and_its_ids_unique():
    assert len(ROWS) >= 120
    assert len(set(_ids())) == len(ROWS)


def test_every_documented_key_has_a_hostile_row():
    named = {re.sub(r"\[\d+\]", "[]", row.key) for row in ROWS}
    # A row's key names the value it refuses; its parents count as covered too.
    covered = set()
    for key in named:
        parts = key.split(".")
        covered.update(".".join(parts[:n]) for n in range(1, len(parts) + 1))
    covered.add("services") if "services[]" in covered else None
    missing = [k.path for k in CONFIG_REFERENCE if k.path not in covered]
    assert not missing, missing


@pytest.mark.parametrize("row", ROWS, ids=_ids())
def test_a_hostile_value_stops_the_program_with_one_line_naming_the_key(row: Row):
    secret_keys = [row.secret] if row.secret else []
    # config_error fails on any other exception (a traceback), on an accepted configuration
    # and on a resource registered before the error.
    message = config_error(_materialise(row), secret_keys=secret_keys)
    assert "\n" not in message and "\r" not in message, message
    assert re.match(rf"ecs-tls:{re.escape(row.key)}(?=[: ])", message), message
    if row.hidden:
        assert row.hidden not in message, message
    assert "-----BEGIN" not in message, message


# The same rows with their top-level key set with --secret (except the one whose point is a
# key stored without --secret).
SECRET_ROWS = [r for r in ROWS if r.secret is None and r.name != "key-not-secret"]


@pytest.mark.parametrize("row", SECRET_ROWS, ids=[f"{r.key}:{r.name}" for r in SECRET_ROWS])
def test_a_value_of_a_secret_key_is_never_echoed(row: Row):
    """No value of a key set with --secret is shown, quoted or inside a longer text."""
    config = _materialise(row)
    top = re.split(r"[.\[]", row.key)[0]
    try:
        parse_settings(config, [top])
    except ConfigError as exc:
        message = str(exc)
    else:
        pytest.fail(f"accepted: {row.key}")
    for path, value in row.patch.items():
        if isinstance(value, str) and re.split(r"[.\[]", path)[0] == top:
            assert repr(value) not in message, message
            # Prose may repeat a short value ("true or false") or an example that the value
            # only spoils (a final newline); any other long text is the value itself.
            text = value.strip()
            if len(text) >= 20 and text not in (DEFAULT_SSL_POLICY, "mesh.app.example.com"):
                assert text not in message, message


# --- what stays accepted: the checks above are not a wall against ordinary values ---------

ACCEPTED = [
    # (topology, patch, what the settings hold: (attribute path, value))
    (ALB, {"domain": "App.Example.COM."}, ("domain", "app.example.com")),
    # Every topology mails its alerts.
    (
        MESH,
        {"alertsEmail": "on-call+tls@example.co.uk"},
        ("alerts_email", "on-call+tls@example.co.uk"),
    ),
    (DT, {"domain": f"{'b' * 58}.com"}, ("domain", f"{'b' * 58}.com")),
    (
        ALB,
        {"app.image": "public.ecr.aws/docker/library/nginx:1.27-alpine@sha256:" + "a" * 64},
        ("app.image", "public.ecr.aws/docker/library/nginx:1.27-alpine@sha256:" + "a" * 64),
    ),
    (
        ALB,
        {"app.image": "localhost:5000/team/app_x__y:v1.0"},
        ("app.image", "localhost:5000/team/app_x__y:v1.0"),
    ),
    (ALB, {"app.port": "8080"}, ("app.port", 8080)),
    (ALB, {"app.healthCheckPath": "/health?full=1"}, ("app.health_check_path", "/health?full=1")),
    (
        ALB,
        {
            "app.environment": {
                "GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567",
                "REQUEST_ID": "123e4567-e89b-12d3-a456-426614174000",
                "TOKENIZER": "bert",
                "KEYCLOAK_URL": "https://auth.example.com/realms/Main/protocol/openid-connect/tokens",
                "DATA_DIR": "/var/lib/application/Production/Config2024/x",
                "DEBUG": True,
                "WORKERS": 4,
            }
        },
        (
            "app.environment",
            (
                ("DATA_DIR", "/var/lib/application/Production/Config2024/x"),
                ("DEBUG", "true"),
                ("GIT_COMMIT", "0123456789abcdef0123456789abcdef01234567"),
                (
                    "KEYCLOAK_URL",
                    "https://auth.example.com/realms/Main/protocol/openid-connect/tokens",
                ),
                ("REQUEST_ID", "123e4567-e89b-12d3-a456-426614174000"),
                ("TOKENIZER", "bert"),
                ("WORKERS", "4"),
            ),
        ),
    ),
    (NLB, {"allowedCidrs": ["0.0.0.0/0"]}, ("allowed_cidrs", ("0.0.0.0/0",))),
    (
        NLB,
        {"allowedCidrs": "203.0.113.0/24, 198.51.100.0/24"},
        ("allowed_cidrs", ("203.0.113.0/24", "198.51.100.0/24")),
    ),
    (ALB, {"allowedCidrs": ["10.0.0.0/255.255.0.0"]}, ("allowed_cidrs", ("10.0.0.0/16",))),
    (NLB, {"app.ports": [443, 8443]}, ("app.ports", (443, 8443))),
    (NLB, {"app.dataPath": "/var/lib/neo4j/data"}, ("app.data_path", "/var/lib/neo4j/data")),
    (
        ALB,
        {"sslPolicy": "ELBSecurityPolicy-TLS13-1-2-Res-2021-06"},
        ("ssl_policy", "ELBSecurityPolicy-TLS13-1-2-Res-2021-06"),
    ),
    (
        ALB,
        {"sslPolicy": "ELBSecurityPolicy-TLS13-1-3-PQ-2025-09"},
        ("ssl_policy", "ELBSecurityPolicy-TLS13-1-3-PQ-2025-09"),
    ),
    (
        NLB,
        {"acme": {"email": "first.last+tls@sub.example.co.uk"}},
        ("acme.email", "first.last+tls@sub.example.co.uk"),
    ),
    (
        NLB,
        {"acme": {"email": "ops@example.com", "server": "https://127.0.0.1:14000/dir"}},
        ("acme.server", "https://127.0.0.1:14000/dir"),
    ),
]


@pytest.mark.parametrize(("topology", "patch", "expected"), ACCEPTED)
def test_ordinary_values_are_accepted_and_normalised(topology, patch, expected):
    settings = parse_settings(Row("", topology, patch, "").config())
    value: Any = settings
    for part in expected[0].split("."):
        value = getattr(value, part)
    assert value == expected[1]


def test_the_default_policy_is_forward_secret_tls13_on_both_load_balancers():
    assert DEFAULT_SSL_POLICY == "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"
    assert DEFAULT_SSL_POLICY in SSL_POLICIES["alb"] and DEFAULT_SSL_POLICY in SSL_POLICIES["nlb"]
    for accepted in SSL_POLICIES.values():
        assert not [p for p in accepted if re.search(r"TLS13-1-[01]-", p)]


def test_the_fingerprint_variable_is_the_topology_s():
    from topologies.service_connect import FINGERPRINT_VARIABLE

    assert SERVICE_CONNECT_FINGERPRINT_VARIABLE == FINGERPRINT_VARIABLE


# --- allowedCidrs against the security group quota, on the real resource graph ------------

QUOTA_CASES = {
    # case: (topology, extra configuration, the most CIDRs accepted)
    "alb-envoy": (ALB, {}, 30),
    "service-connect-alb": (SC, {}, 30),
    "service-connect-nlb": (SC, {"ingress": "nlb"}, 60),
    "appmesh-efs": (MESH, {}, 60),
    "direct-task": (DT, {}, 60),
    "nlb-certbot": (NLB, {}, 30),
    "nlb-certbot-http01": (NLB, {"acme": {"email": "ops@example.com", "challenge": "http-01"}}, 29),
}


@pytest.mark.parametrize("case", sorted(QUOTA_CASES))
def test_the_most_cidrs_accepted_fill_one_security_group_and_one_more_is_refused(case):
    from scripts.mock_runtime import run_program

    topology, extra, most = QUOTA_CASES[case]
    cidrs = [f"10.{i // 250}.{i % 250}.0/24" for i in range(most + 1)]
    config = {**MINIMAL_CONFIG[topology], **extra}
    graph = run_program({**config, "allowedCidrs": cidrs[:most]})
    rules: dict[str, int] = {}
    for rule in graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        group = str(rule.inputs["securityGroupId"])
        rules[group] = rules.get(group, 0) + 1
    assert max(rules.values()) in (59, 60), rules  # full: one more CIDR would not fit
    message = config_error({**config, "allowedCidrs": cidrs})
    assert message.startswith(f"ecs-tls:allowedCidrs: holds {most + 1} CIDRs;"), message


# --- the certbot command's own checks (task_contents/certbot.py) -----------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "ops@example.com\n"),
        ("directory_url", "https://acme.example.com/dir\n"),
        ("preferred_profile", "tlsserver\n"),
    ],
)
def test_certbot_refuses_a_value_with_a_final_newline(field, value):
    from task_contents.certbot import CertbotSpec, certbot_args

    spec = {"email": "ops@example.com", "domain": "db.example.com"}
    spec["directory_url"] = "https://acme.example.com/dir"
    spec[field] = value
    with pytest.raises(ValueError, match=field):
        certbot_args(CertbotSpec(**spec))


def test_certbot_renewal_environment_refuses_a_final_newline():
    from task_contents.certbot import renewal_environment

    arn = "arn:aws:ecs:eu-west-1:123456789012:cluster/main"
    with pytest.raises(ValueError, match="cluster_arn"):
        renewal_environment(arn + "\n", "db")
    with pytest.raises(ValueError, match="service_name"):
        renewal_environment(arn, "db\n")

"""Keys a topology does not read are refused; sslPolicy is a real ELB TLS 1.3 policy;
a key set without --path, or a missing field, says what to do."""

from __future__ import annotations

import copy

import pytest
import yaml

from constants.config import DEFAULT_SSL_POLICY, SSL_POLICIES, TLS13_SSL_POLICIES
from scripts.mock_runtime import ROOT, config_error
from scripts.pki import make_pki
from settings import CONFIG_REFERENCE, TOPOLOGIES, ConfigError, parse_settings
from settings.reference import APPLIES_TO, APPLIES_TO_HINTS, LOAD_BALANCER_KEYS, REFUSED_BECAUSE
from tests.conftest import MINIMAL_CONFIG

ACM_ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
# A value for each table entry; the check runs before values are read, so any will do.
SAMPLE = {
    "acme": {"email": "ops@example.com"},
    "acme.renewEveryDays": 5,
    "privateCa": {"keyAlgorithm": "EC_secp384r1"},
    "serviceConnect.customerKmsKey": True,
    "ingress": "nlb",
    "services": [{"name": "web", "image": "nginx", "port": 80}],
    "envoy": {"port": 9443},
    "mesh": {"namespace": "mesh.app.example.com"},
    "certificate.source": "generated",
    "certificate.arn": ACM_ARN,
    "certificate": make_pki("app.example.com").certificate_config(),
    "sslPolicy": DEFAULT_SSL_POLICY,
    "certificateExpiryAlarmDays": 14,
    "allowedCidrs": ["203.0.113.0/24"],
    "app.ports": [7473],
    "app.certificateLayout": {"directory": "/ssl"},
    "app.capacity": "fargate",
    "app.autoscaling": {"min": 1, "max": 2, "cpuPercent": 50},
    "app.instanceType": "t3.large",
    "app.dataPath": "/data",
    "app.dataVolumeGiB": 20,
    "app.snapshotRetentionDays": 7,
    "app.dataVolumeSnapshotId": "snap-0123456789abcdef0",
    "app.dataVolumeZone": "eu-west-1a",
    "app.dataVolumeKmsKeyArn": (
        "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    ),
    "app.secrets": {"FLAGS": "arn:aws:ssm:eu-west-1:123456789012:parameter/flags"},
    "app.secretsKmsKeyArn": (
        "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    ),
    "app.taskRolePolicyArns": ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"],
    "app.taskRoleArn": "arn:aws:iam::123456789012:role/app",
    "app.enableExecuteCommand": True,
    "loadBalancer": {"deletionProtection": True},
    "loadBalancer.accessLogs": True,
    "loadBalancer.wafWebAclArn": (
        "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/edge/"
        "0123abcd-0123-4567-89ab-0123456789ab"
    ),
    "app": {"image": "ghcr.io/acme/web:1.2.3"},
}


def with_key(topology: str, path: str) -> dict:
    config = copy.deepcopy(MINIMAL_CONFIG[topology])
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = copy.deepcopy(SAMPLE[path])
    return config


def error_of(config: dict) -> str | None:
    try:
        parse_settings(config, ["certificate"])
    except ConfigError as exc:
        return str(exc)
    return None


def test_the_table_names_documented_keys_and_real_topologies():
    documented = {k.path for k in CONFIG_REFERENCE}
    assert set(APPLIES_TO) <= documented and set(LOAD_BALANCER_KEYS) <= documented
    assert set(SAMPLE) == set(APPLIES_TO) | set(LOAD_BALANCER_KEYS)
    for readers in APPLIES_TO.values():
        assert readers and set(readers) <= set(TOPOLOGIES)


def test_no_key_pulumi_yaml_gives_a_default_is_refused_anywhere():
    # The CLI merges every declared default into every stack (tests/unit/test_cli_config.py).
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    defaulted = {name for name, decl in declared.items() if "default" in decl}
    assert "logRetentionDays" in defaulted
    for path in APPLIES_TO:
        assert path.split(".")[0] not in defaulted, path
    for topology in TOPOLOGIES:
        values = {
            **MINIMAL_CONFIG[topology],
            **{name: declared[name]["default"] for name in defaulted},
        }
        assert error_of(values) is None, topology


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_the_cluster_namespace_is_part_of_every_topology(topology):
    # serviceConnect.namespace names the cluster's namespace, which the foundation creates.
    config = {**MINIMAL_CONFIG[topology], "serviceConnect": {"namespace": "shop-prod"}}
    assert parse_settings(config).service_connect.namespace == "shop-prod"


PAIRS = [(path, topology) for path in APPLIES_TO for topology in TOPOLOGIES]


@pytest.mark.parametrize(("path", "topology"), PAIRS, ids=[f"{p}@{t}" for p, t in PAIRS])
def test_each_key_is_read_where_the_table_says_and_refused_elsewhere(path, topology):
    message = error_of(with_key(topology, path)) or ""
    if topology in APPLIES_TO[path]:
        assert "applies" not in message, message
    else:
        assert message.startswith(f"ecs-tls:{path}: applies "), message
        why = REFUSED_BECAUSE.get((path, topology), "")
        hint = APPLIES_TO_HINTS.get(path)
        ending = f", not {topology!r}{why}" + (f"; {hint}" if hint else "")
        assert message.endswith(ending), message


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            with_key("nlb-certbot", "certificate"),
            "ecs-tls:certificate: applies to alb-envoy, service-connect and appmesh-efs, "
            "not 'nlb-certbot'",
        ),
        (
            with_key("nlb-certbot", "sslPolicy"),
            "ecs-tls:sslPolicy: applies to alb-envoy and service-connect, not 'nlb-certbot'",
        ),
        (
            with_key("alb-envoy", "privateCa"),
            "ecs-tls:privateCa: applies only to topology 'service-connect', not 'alb-envoy'",
        ),
        (
            with_key("alb-envoy", "acme"),
            "ecs-tls:acme: applies to nlb-certbot and direct-task, not 'alb-envoy'",
        ),
        (
            with_key("nlb-certbot", "serviceConnect.customerKmsKey"),
            "ecs-tls:serviceConnect.customerKmsKey: applies only to topology "
            "'service-connect', not 'nlb-certbot'",
        ),
        (
            with_key("alb-envoy", "services"),
            "ecs-tls:services: applies to service-connect and appmesh-efs, not 'alb-envoy'",
        ),
        (
            with_key("service-connect", "app"),
            "ecs-tls:app: applies to nlb-certbot, alb-envoy and direct-task, not "
            "'service-connect'; its workloads are services[] (image, port, cpu, memory, "
            "desiredCount and environment per service): set them there",
        ),
        (
            {**MINIMAL_CONFIG["appmesh-efs"], "app": {}},
            "ecs-tls:app: applies to nlb-certbot, alb-envoy and direct-task, not "
            "'appmesh-efs'; its workloads are services[] (image, port, cpu, memory, "
            "desiredCount and environment per service): set them there",
        ),
    ],
    ids=[
        "certificate",
        "sslPolicy",
        "privateCa",
        "acme",
        "customerKmsKey",
        "services",
        "app-service-connect",
        "app-empty-appmesh-efs",
    ],
)
def test_a_key_of_another_topology_fails_before_any_resource(config, message):
    assert config_error(config, secret_keys=["certificate"]) == message


@pytest.mark.parametrize("key", LOAD_BALANCER_KEYS)
def test_load_balancer_keys_need_a_load_balancer(key):
    config = {**with_key("service-connect", key), "ingress": "none"}
    assert error_of(config) == (
        f"ecs-tls:{key}: applies to the public load balancer, which ingress 'none' does not create"
    )


# --- sslPolicy ------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", TLS13_SSL_POLICIES)
def test_every_tls13_policy_of_the_alb_and_the_nlb_is_accepted(policy):
    alb = {**MINIMAL_CONFIG["alb-envoy"], "sslPolicy": policy}
    nlb = {**MINIMAL_CONFIG["service-connect"], "ingress": "nlb", "sslPolicy": policy}
    assert policy in SSL_POLICIES["alb"] and parse_settings(alb).ssl_policy == policy
    assert policy in SSL_POLICIES["nlb"] and parse_settings(nlb).ssl_policy == policy


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {**MINIMAL_CONFIG["alb-envoy"], "sslPolicy": "ELBSecurityPolicy-TLS-1-2-2017-01"},
            "ecs-tls:sslPolicy: 'ELBSecurityPolicy-TLS-1-2-2017-01' is not a TLS 1.3 security "
            "policy of the ALB that refuses TLS 1.0 and 1.1, such as "
            "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
        ),
        (
            # Matched a name pattern before; no such policy exists.
            {**MINIMAL_CONFIG["alb-envoy"], "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-Res-2021-6"},
            "ecs-tls:sslPolicy: 'ELBSecurityPolicy-TLS13-1-2-Res-2021-6' is not a TLS 1.3 "
            "security policy of the ALB that refuses TLS 1.0 and 1.1, such as "
            "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09; did you mean "
            "'ELBSecurityPolicy-TLS13-1-2-Res-2021-06'?",
        ),
        (
            {
                **MINIMAL_CONFIG["service-connect"],
                "ingress": "nlb",
                "sslPolicy": "ELBSecurityPolicy-TLS13-1-3-Anything",
            },
            "ecs-tls:sslPolicy: 'ELBSecurityPolicy-TLS13-1-3-Anything' is not a TLS 1.3 "
            "security policy of the NLB that refuses TLS 1.0 and 1.1, such as "
            "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
        ),
    ],
    ids=["tls12-policy", "typo", "nlb-made-up"],
)
def test_a_policy_that_is_not_a_tls13_policy_of_the_load_balancer(config, message):
    with pytest.raises(ConfigError) as caught:
        parse_settings(config)
    assert str(caught.value) == message


# --- keys set without --path, missing fields ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "secret", "message"),
    [
        (
            "app.port",
            8080,
            [],
            "ecs-tls:app.port: is not a key; to set field port of app use: "
            "pulumi config set --path ecs-tls:app.port 8080",
        ),
        (
            "app.healthCheckPath",
            "/health check",
            [],
            "ecs-tls:app.healthCheckPath: is not a key; to set field healthCheckPath of app "
            "use: pulumi config set --path ecs-tls:app.healthCheckPath '/health check'",
        ),
        (
            "services[0].name",
            "web",
            [],
            "ecs-tls:services[0].name: is not a key; to set field [0].name of services use: "
            "pulumi config set --path 'ecs-tls:services[0].name' web",
        ),
        (
            "acme.email",
            "ops@example.com",
            ["acme.email"],
            "ecs-tls:acme.email: is not a key; to set field email of acme use: "
            "pulumi config set --path --secret ecs-tls:acme.email <value>",
        ),
        (
            "certificate.privateKeyPem",
            make_pki("app.example.com").key_pem,
            [],
            "ecs-tls:certificate.privateKeyPem: is not a key; to set field privateKeyPem of "
            "certificate use: pulumi config set --path --secret "
            "ecs-tls:certificate.privateKeyPem < key.pem",
        ),
    ],
    ids=["number", "quoted", "list-item", "secret", "private-key"],
)
def test_a_field_set_without_path(name, value, secret, message):
    # The engine passes `pulumi config set ecs-tls:app.port 8080` as a key named "app.port".
    assert config_error({**MINIMAL_CONFIG["alb-envoy"], name: value}, secret) == message


def test_an_unknown_name_with_a_dot_is_an_unknown_key():
    assert config_error({**MINIMAL_CONFIG["alb-envoy"], "apps.port": 8080}) == (
        "ecs-tls:apps.port: is not a known key; did you mean 'app'?"
    )


@pytest.mark.parametrize(
    ("service", "message"),
    [
        (
            {"name": "web", "port": 80},
            "ecs-tls:services[0].image: missing; every service needs a container image",
        ),
        (
            {"name": "web", "image": "nginx"},
            "ecs-tls:services[0].port: missing; every service needs the port its container "
            "listens on",
        ),
        (
            {"image": "nginx", "port": 80},
            "ecs-tls:services[0].name: missing; every service needs a name",
        ),
    ],
    ids=["image", "port", "name"],
)
def test_a_missing_field_says_missing(service, message):
    config = {**MINIMAL_CONFIG["service-connect"], "services": [service]}
    with pytest.raises(ConfigError) as caught:
        parse_settings(config)
    assert str(caught.value) == message

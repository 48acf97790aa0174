"""The workload's secrets: ECS `secrets` on the workload container only, the shared
execution role reading exactly those ARNs (and the customer key through Secrets Manager and
SSM only), and references refused before anything is registered."""

from __future__ import annotations

import copy
import json

import pytest

from components.app_secrets import container_secrets, grant_resource, secret_read_statements
from scripts.mock_runtime import config_error, run_program, unwrap
from settings import parse_settings
from settings.app_secrets import AppAccess, SecretRef
from tests.conftest import MINIMAL_CONFIG, with_app, with_service

ACCOUNT = "123456789012"
FULL = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:prod/db-AbCdEf"
PARTIAL = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:prod/api"
PARAMETER = f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/prod/feature-flags"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
VERSION_ID = "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"
SECRETS = {
    "DB_PASSWORD": {"arn": FULL, "jsonKey": "password"},
    "API_TOKEN": PARTIAL,
    "FLAGS": PARAMETER,
    "OLD_PASSWORD": {"arn": FULL, "jsonKey": "password", "versionStage": "AWSPREVIOUS"},
}
WEB = {"name": "web", "image": "nginx", "port": 80}


def containers(graph, name: str | None = None) -> dict[str, dict]:
    td = graph.one("aws:ecs/taskDefinition:TaskDefinition", name)
    return {c["name"]: c for c in json.loads(unwrap(td.inputs["containerDefinitions"]))}


def secrets_policy(graph, name: str) -> dict:
    policy = graph.one("aws:iam/rolePolicy:RolePolicy", f"{name}-app-secrets")
    return json.loads(unwrap(policy.inputs["policy"]))


def statements(document: dict) -> dict[str, dict]:
    return {s["Sid"]: s for s in document["Statement"]}


# --------------------------------------------------------------------------- pure builders


def access() -> AppAccess:
    c = parse_settings(with_app("alb-envoy", secrets=SECRETS, secretsKmsKeyArn=KEY))
    return c.app.access


def test_value_from_selects_json_key_and_version_with_empty_fields_kept():
    assert container_secrets(access()) == {
        "API_TOKEN": PARTIAL,
        "DB_PASSWORD": f"{FULL}:password::",
        "FLAGS": PARAMETER,
        "OLD_PASSWORD": f"{FULL}:password:AWSPREVIOUS:",
    }
    ref = SecretRef("X", FULL, version_id=VERSION_ID)
    assert container_secrets(AppAccess((ref,))) == {"X": f"{FULL}:::{VERSION_ID}"}


def test_partial_secret_arn_is_granted_with_exactly_six_suffix_characters():
    assert grant_resource(SecretRef("A", PARTIAL)) == f"{PARTIAL}-??????"
    assert grant_resource(SecretRef("B", FULL)) == FULL
    assert grant_resource(SecretRef("C", PARAMETER)) == PARAMETER


def test_statements_name_exactly_the_references_and_the_key_through_the_services():
    by_sid = {s.sid: s for s in secret_read_statements([access()], "amazonaws.com")}
    assert by_sid["ReadAppSecrets"].actions == ["secretsmanager:GetSecretValue"]
    assert by_sid["ReadAppSecrets"].resources == sorted([FULL, f"{PARTIAL}-??????"])
    assert by_sid["ReadAppParameters"].actions == ["ssm:GetParameters"]
    assert by_sid["ReadAppParameters"].resources == [PARAMETER]
    decrypt = by_sid["DecryptAppSecrets0"]
    assert decrypt.actions == ["kms:Decrypt"] and decrypt.resources == [KEY]
    assert decrypt.condition == {
        "StringEquals": {
            "kms:ViaService": [
                "secretsmanager.eu-west-1.amazonaws.com",
                "ssm.eu-west-1.amazonaws.com",
            ]
        }
    }


def test_no_key_no_decrypt_statement():
    a = parse_settings(with_app("alb-envoy", secrets={"FLAGS": PARAMETER})).app.access
    assert [s.sid for s in secret_read_statements([a], "amazonaws.com")] == ["ReadAppParameters"]


# --------------------------------------------------------------------------- graphs


@pytest.mark.parametrize(
    ("topology", "name", "container", "sidecars"),
    [
        ("alb-envoy", "alb-envoy", "app", {"envoy"}),
        ("direct-task", "direct-task", "app", {"envoy", "certificate-refresh"}),
        ("nlb-certbot", "nlb-certbot", "app", {"copier"}),
    ],
)
def test_app_secrets_reach_the_app_container_only(topology, name, container, sidecars):
    graph = run_program(with_app(topology, secrets=SECRETS, secretsKmsKeyArn=KEY))
    by_name = containers(graph, name)
    got = {s["name"]: s["valueFrom"] for s in by_name[container]["secrets"]}
    for variable, value_from in container_secrets(access()).items():
        assert got[variable] == value_from
    for sidecar in sidecars:
        names = {s["name"] for s in by_name[sidecar].get("secrets", [])}
        assert not names & set(SECRETS), sidecar
    by_sid = statements(secrets_policy(graph, name))
    assert by_sid["ReadAppSecrets"]["Resource"] == sorted([FULL, f"{PARTIAL}-??????"])
    assert by_sid["ReadAppParameters"]["Resource"] == [PARAMETER]
    assert by_sid["DecryptAppSecrets0"]["Resource"] == [KEY]
    role = graph.one("aws:iam/rolePolicy:RolePolicy", f"{name}-app-secrets").inputs["role"]
    execution = graph.one("aws:iam/role:Role", "cluster-execution")
    assert role == execution.id


def test_nlb_certbot_keeps_its_own_password_secret_beside_the_apps():
    graph = run_program(with_app("nlb-certbot", secrets={"FLAGS": PARAMETER}))
    names = {s["name"] for s in containers(graph, "nlb-certbot")["app"]["secrets"]}
    assert names == {"NEO4J_AUTH", "FLAGS"}


@pytest.mark.parametrize("topology", ["service-connect", "appmesh-efs"])
def test_service_secrets_reach_that_service_only(topology):
    config = copy.deepcopy(MINIMAL_CONFIG[topology])
    config["services"] = [
        {**WEB, "secrets": {"DB_PASSWORD": FULL}, "secretsKmsKeyArn": KEY},
        {"name": "api", "image": "nginx", "port": 8080, "secrets": {"FLAGS": PARAMETER}},
    ]
    graph = run_program(config)
    web = containers(graph, f"{topology}-web")
    assert web["web"]["secrets"] == [{"name": "DB_PASSWORD", "valueFrom": FULL}]
    assert all("secrets" not in c for n, c in web.items() if n != "web")
    api = containers(graph, f"{topology}-api")
    assert api["api"]["secrets"] == [{"name": "FLAGS", "valueFrom": PARAMETER}]
    by_sid = statements(secrets_policy(graph, topology))
    assert by_sid["ReadAppSecrets"]["Resource"] == [FULL]
    assert by_sid["ReadAppParameters"]["Resource"] == [PARAMETER]
    # The key encrypts web's secret only: decrypt through Secrets Manager, not SSM.
    assert by_sid["DecryptAppSecrets0"]["Condition"] == {
        "StringEquals": {"kms:ViaService": ["secretsmanager.eu-west-1.amazonaws.com"]}
    }
    service = graph.one("aws:ecs/service:Service", f"{topology}-web")
    policy = graph.one("aws:iam/rolePolicy:RolePolicy", f"{topology}-app-secrets")
    assert graph.depends_on(service, policy)


@pytest.mark.parametrize("topology", list(MINIMAL_CONFIG))
def test_no_secrets_no_policy(topology):
    graph = run_program(MINIMAL_CONFIG[topology])
    assert not graph.of_type("aws:iam/rolePolicy:RolePolicy", f"{topology}-app-secrets")


def test_the_service_waits_for_the_right_to_read():
    graph = run_program(with_app("alb-envoy", secrets={"FLAGS": PARAMETER}))
    service = graph.one("aws:ecs/service:Service", "alb-envoy")
    policy = graph.one("aws:iam/rolePolicy:RolePolicy", "alb-envoy-app-secrets")
    assert graph.depends_on(service, policy)


# --------------------------------------------------------------------------- refusals

REFUSED = [
    ("app.secrets.X", {"X": "*"}, "wildcard"),
    (
        "app.secrets.X",
        {"X": f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:prod/*"},
        "wildcard",
    ),
    ("app.secrets.X", {"X": f"arn:aws:s3:::bucket/{ACCOUNT}"}, "Secrets Manager"),
    ("app.secrets.X", {"X": "prod/db"}, "Secrets Manager"),
    ("app.secrets.X", {"X": f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/a b"}, "SSM"),
    ("app.secrets.X", {"X": FULL.replace("arn:aws:", "arn:aws-cn:")}, "partition"),
    ("app.secrets", {"1X": FULL}, "environment variable names"),
    ("app.secrets.AWS_REGION", {"AWS_REGION": FULL}, "AWS_"),
    ("app.secrets.X.jsonKey", {"X": {"arn": FULL, "jsonKey": "a:b"}}, "no colon"),
    ("app.secrets.X.jsonKey", {"X": {"arn": FULL, "jsonKey": "-----BEGIN"}}, "PEM"),
    ("app.secrets.X.versionId", {"X": {"arn": FULL, "versionId": "short"}}, "version ID"),
    (
        "app.secrets.X.versionId",
        {"X": {"arn": FULL, "versionStage": "AWSCURRENT", "versionId": VERSION_ID}},
        "not both",
    ),
    ("app.secrets.X.jsonKey", {"X": {"arn": PARAMETER, "jsonKey": "a"}}, "SSM parameters"),
    ("app.secrets.X.key", {"X": {"arn": FULL, "key": "a"}}, "not a known key"),
    ("app.secrets", ["X"], "an object"),
]


@pytest.mark.parametrize(("key", "secrets", "says"), REFUSED)
def test_bad_references_are_refused_naming_the_key(key, secrets, says):
    message = config_error(with_app("alb-envoy", secrets=secrets))
    assert message.startswith(f"ecs-tls:{key}:"), message
    assert says in message


def test_a_secret_and_a_plain_variable_of_one_name_clash():
    config = with_app("alb-envoy", secrets={"MODE": FULL}, environment={"MODE": "x"})
    assert config_error(config).startswith("ecs-tls:app.secrets.MODE: is also in")


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (with_app("nlb-certbot", secrets={"NEO4J_AUTH": FULL}), "app.secrets.NEO4J_AUTH"),
        (
            with_service("service-connect", secrets={"SERVICE_CONNECT_SERVERS": FULL}),
            "services[0].secrets.SERVICE_CONNECT_SERVERS",
        ),
    ],
)
def test_a_secret_may_not_take_a_variable_the_topology_sets(config, key):
    message = config_error(config)
    assert message.startswith(f"ecs-tls:{key}: is set by topology"), message


def test_a_key_without_secrets_is_refused():
    message = config_error(with_app("alb-envoy", secretsKmsKeyArn=KEY))
    assert message.startswith("ecs-tls:app.secretsKmsKeyArn: decrypts app.secrets, which is")


def test_too_many_secrets_for_the_execution_role_are_refused():
    many = {f"V{i}": f"{FULL[:-7]}{i:04d}-AbCdEf" for i in range(80)}
    message = config_error(with_app("alb-envoy", secrets=many))
    assert message.startswith("ecs-tls:app.secrets: names 80 secrets"), message


@pytest.mark.parametrize("topology", ["service-connect", "appmesh-efs"])
def test_app_secrets_are_refused_where_services_are_the_workload(topology):
    message = config_error(with_app(topology, secrets={"X": FULL}))
    assert message.startswith("ecs-tls:app.secrets: applies to"), message

"""Topology service-connect under mocks: the AWS rules that make or break Service Connect TLS."""

from __future__ import annotations

import json

import pytest

from scripts.mock_runtime import config_error, run_program, unwrap
from tests.conftest import MINIMAL_CONFIG

MINIMAL = MINIMAL_CONFIG["service-connect"]
SHARED_CA = (
    "arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/"
    "12345678-1234-1234-1234-123456789012"
)
PRINCIPALS = [
    "111122223333",
    "arn:aws:organizations::111122223333:ou/o-abcdefghij/ou-ab12-cdefghij",
]


@pytest.fixture(scope="module")
def minimal():
    return run_program(MINIMAL)


def services(graph) -> dict[str, object]:
    return {
        r.name.removeprefix("service-connect-"): r for r in graph.of_type("aws:ecs/service:Service")
    }


def task_containers(graph, name):
    td = graph.one("aws:ecs/taskDefinition:TaskDefinition", f"service-connect-{name}")
    return json.loads(unwrap(td.inputs["containerDefinitions"]))


def test_ca_is_a_short_lived_root_tagged_for_ecs(minimal):
    ca = minimal.one("aws:acmpca/certificateAuthority:CertificateAuthority")
    assert ca.inputs["type"] == "ROOT"
    assert ca.inputs["usageMode"] == "SHORT_LIVED_CERTIFICATE"
    assert ca.inputs["tags"] == {"AmazonECSManaged": "true"}
    config = ca.inputs["certificateAuthorityConfiguration"]
    assert (config["keyAlgorithm"], config["signingAlgorithm"]) == (
        "EC_prime256v1",
        "SHA256WITHECDSA",
    )
    assert ca.inputs["permanentDeletionTimeInDays"] == 7
    assert "revocationConfiguration" not in ca.inputs


def test_root_certificate_is_issued_from_the_template_and_installed(minimal):
    ca = minimal.one("aws:acmpca/certificateAuthority:CertificateAuthority")
    root = minimal.one("aws:acmpca/certificate:Certificate")
    assert root.inputs["templateArn"] == "arn:aws:acm-pca:::template/RootCACertificate/V1"
    assert root.inputs["certificateSigningRequest"] == ca.outputs["certificateSigningRequest"]
    assert root.inputs["signingAlgorithm"] == "SHA256WITHECDSA"
    assert root.inputs["validity"] == {"type": "YEARS", "value": "10"}
    installed = minimal.one(
        "aws:acmpca/certificateAuthorityCertificate:CertificateAuthorityCertificate"
    )
    assert installed.inputs["certificate"] == root.outputs["certificate"]
    assert installed.inputs["certificateAuthorityArn"] == ca.outputs["arn"]
    assert "certificateChain" not in installed.inputs


def test_tls_role_is_trusted_by_ecs_with_the_managed_policy(minimal):
    role = minimal.one("aws:iam/role:Role", "service-connect-tls")
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Service": "ecs.amazonaws.com"}
    attachment = minimal.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attachment.inputs["policyArn"] == (
        "arn:aws:iam::aws:policy/service-role/"
        "AmazonECSInfrastructureRolePolicyForServiceConnectTransportLayerSecurity"
    )
    assert attachment.inputs["role"] == role.outputs["name"]
    assert [k.name for k in minimal.of_type("aws:kms/key:Key")] == ["alerts-key"]


def test_every_server_has_tls_with_the_ca_and_role(minimal):
    ca = minimal.one("aws:acmpca/certificateAuthority:CertificateAuthority")
    role = minimal.one("aws:iam/role:Role", "service-connect-tls")
    namespace = minimal.one("aws:servicediscovery/httpNamespace:HttpNamespace")
    found = services(minimal)
    assert set(found) == {"frontend", "backend"}
    for name, service in found.items():
        config = service.inputs["serviceConnectConfiguration"]
        assert config["enabled"] is True
        assert config["namespace"] == namespace.outputs["arn"]
        (server,) = config["services"]
        assert server["tls"]["issuerCertAuthority"]["awsPcaAuthorityArn"] == ca.outputs["arn"]
        assert server["tls"]["roleArn"] == role.outputs["arn"]
        assert server["clientAlias"] == [{"port": 80, "dnsName": name}]
        assert server["discoveryName"] == name
        assert "ingressPortOverride" not in server
        assert config["logConfiguration"]["options"]["awslogs-stream-prefix"] == "service-connect"


def test_every_service_waits_for_the_ca_installation_and_the_role_policy(minimal):
    installed = minimal.one(
        "aws:acmpca/certificateAuthorityCertificate:CertificateAuthorityCertificate"
    )
    attachment = minimal.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    for service in services(minimal).values():
        assert minimal.depends_on(service, installed)
        assert minimal.depends_on(service, attachment)


def test_port_names_match_port_mappings(minimal):
    for name, service in services(minimal).items():
        (container,) = task_containers(minimal, name)
        mapping_names = {p["name"] for p in container["portMappings"]}
        (server,) = service.inputs["serviceConnectConfiguration"]["services"]
        assert server["portName"] in mapping_names
        assert container["portMappings"][0]["appProtocol"] == "http"


def test_alb_speaks_tls13_and_health_checks_the_service_connect_port(minimal):
    https = minimal.one("aws:lb/listener:Listener", "service-connect-https")
    assert https.inputs["sslPolicy"].startswith("ELBSecurityPolicy-TLS13-")
    group = minimal.one("aws:lb/targetGroup:TargetGroup")
    assert group.inputs["protocol"] == "HTTPS"
    assert group.inputs["healthCheck"]["protocol"] == "HTTPS"
    assert group.inputs["healthCheck"]["port"] == "80"
    (lb,) = services(minimal)["frontend"].inputs["loadBalancers"]
    assert (lb["containerName"], lb["containerPort"]) == ("frontend", 80)
    assert "loadBalancers" not in services(minimal)["backend"].inputs
    assert minimal.depends_on(services(minimal)["frontend"], https)


def test_without_a_zone_the_public_certificate_is_generated_and_imported(minimal):
    acm = minimal.one("aws:acm/certificate:Certificate")
    assert "certificateBody" in acm.inputs
    assert not minimal.of_type("aws:secretsmanager/secret:Secret"), "no task needs the key"
    assert "BEGIN CERTIFICATE" in minimal.stack_outputs["caCertificatePem"]


def test_with_a_zone_the_public_certificate_is_acm_issued(program):
    graph = program({**MINIMAL, "hostedZoneId": "Z0123456789ABCDEFGHIJ"})
    acm = graph.one("aws:acm/certificate:Certificate")
    assert (acm.inputs["domainName"], acm.inputs["validationMethod"]) == (
        "app.example.com",
        "DNS",
    )
    validation = graph.one("aws:acm/certificateValidation:CertificateValidation")
    https = graph.one("aws:lb/listener:Listener", "service-connect-https")
    assert https.inputs["certificateArn"] == validation.outputs["certificateArn"]
    records = {r.name: r for r in graph.of_type("aws:route53/record:Record")}
    # The foundation owns the domain's record; it points at this topology's load balancer.
    alias = records["domain"]
    assert alias.inputs["name"] == "app.example.com"
    lb = graph.one("aws:lb/loadBalancer:LoadBalancer")
    assert alias.inputs["aliases"][0]["name"] == lb.outputs["dnsName"]
    assert records["service-connect-certificate-validation"].inputs["type"] == "CNAME"
    assert "caCertificatePem" not in graph.stack_outputs


def test_a_shared_ca_creates_no_ca_resources(program):
    graph = program({**MINIMAL, "privateCa": {"arn": SHARED_CA}})
    assert not [r for r in graph if r.type.startswith("aws:acmpca/")]
    for service in services(graph).values():
        (server,) = service.inputs["serviceConnectConfiguration"]["services"]
        assert server["tls"]["issuerCertAuthority"]["awsPcaAuthorityArn"] == SHARED_CA
    assert graph.stack_outputs["privateCaArn"] == SHARED_CA


def test_share_with_creates_a_share_association_and_one_principal_each(program):
    graph = program({**MINIMAL, "privateCa": {"shareWith": PRINCIPALS}})
    share = graph.one("aws:ram/resourceShare:ResourceShare")
    assert share.inputs["allowExternalPrincipals"] is False
    assert share.inputs["permissionArns"] == [
        "arn:aws:ram::aws:permission/AWSRAMDefaultPermissionCertificateAuthority"
    ]
    ca = graph.one("aws:acmpca/certificateAuthority:CertificateAuthority")
    association = graph.one("aws:ram/resourceAssociation:ResourceAssociation")
    assert association.inputs["resourceArn"] == ca.outputs["arn"]
    principals = graph.of_type("aws:ram/principalAssociation:PrincipalAssociation")
    assert sorted(p.inputs["principal"] for p in principals) == sorted(PRINCIPALS)
    assert all(p.inputs["resourceShareArn"] == share.outputs["arn"] for p in principals)
    assert not program(MINIMAL).of_type("aws:ram/resourceShare:ResourceShare")


def test_nlb_ingress_uses_tcp_health_checks(program):
    graph = program({**MINIMAL, "ingress": "nlb"})
    lb = graph.one("aws:lb/loadBalancer:LoadBalancer")
    assert lb.inputs["loadBalancerType"] == "network"
    assert lb.inputs["enableCrossZoneLoadBalancing"] is True
    group = graph.one("aws:lb/targetGroup:TargetGroup")
    assert group.inputs["healthCheck"]["protocol"] == "TCP"
    assert group.inputs["protocol"] == "TLS"
    (listener,) = graph.of_type("aws:lb/listener:Listener")
    assert listener.inputs["protocol"] == "TLS"
    assert listener.inputs["sslPolicy"].startswith("ELBSecurityPolicy-TLS13-")


def test_no_ingress_creates_no_load_balancer(program):
    graph = program({**MINIMAL, "ingress": "none"})
    assert not graph.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert not graph.of_type("aws:acm/certificate:Certificate")
    assert graph.stack_outputs["endpoint"] == "frontend:80, backend:80"


def test_client_mode_service_has_no_server_block(program):
    graph = program(
        {
            **MINIMAL,
            "services": [
                {"name": "api", "image": "ghcr.io/acme/api:1", "port": 8080, "public": True},
                {
                    "name": "worker",
                    "image": "ghcr.io/acme/worker:1",
                    "port": 9000,
                    "mode": "client",
                },
            ],
        }
    )
    config = services(graph)["worker"].inputs["serviceConnectConfiguration"]
    assert config["enabled"] is True and "services" not in config
    (container,) = task_containers(graph, "worker")
    assert "appProtocol" not in container["portMappings"][0]


def test_customer_kms_key_is_symmetric_and_used_by_the_role(program):
    graph = program({**MINIMAL, "serviceConnect": {"customerKmsKey": True}})
    key = graph.one("aws:kms/key:Key", "service-connect-tls")
    assert key.inputs["customerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
    assert key.inputs["enableKeyRotation"] is True
    role = graph.one("aws:iam/role:Role", "service-connect-tls")
    statements = {s["Sid"]: s for s in json.loads(key.inputs["policy"])["Statement"]}
    use = statements["ServiceConnectTlsUsesKey"]
    assert use["Principal"] == {"AWS": [role.outputs["arn"]]}
    assert set(use["Action"]) == {
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyPair",
    }
    for service in services(graph).values():
        (server,) = service.inputs["serviceConnectConfiguration"]["services"]
        assert server["tls"]["kmsKey"] == key.outputs["arn"]
        assert graph.depends_on(service, key)


def test_security_group_admits_services_and_the_load_balancer_only(minimal):
    members = minimal.one("aws:ec2/securityGroup:SecurityGroup", "service-connect-services")
    lb_sg = minimal.one("aws:ec2/securityGroup:SecurityGroup", "service-connect")
    ingress = [
        r
        for r in minimal.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs["securityGroupId"] == members.id
    ]
    assert {r.inputs["referencedSecurityGroupId"] for r in ingress} == {members.id, lb_sg.id}
    assert not any("cidrIpv4" in r.inputs for r in ingress)


def _definitions(config) -> dict[str, str]:
    graph = run_program(config)
    return {
        r.name: unwrap(r.inputs["containerDefinitions"])
        for r in graph.of_type("aws:ecs/taskDefinition:TaskDefinition")
    }


BASE_SERVICES = [
    {"name": "frontend", "image": "ghcr.io/acme/web:1", "port": 80},
    {"name": "backend", "image": "ghcr.io/acme/api:1", "port": 8080},
]


def test_adding_a_server_rolls_out_the_clients():
    before = _definitions({**MINIMAL, "services": BASE_SERVICES})
    after = _definitions(
        {
            **MINIMAL,
            "services": [
                *BASE_SERVICES,
                {"name": "search", "image": "ghcr.io/acme/s:1", "port": 9200},
            ],
        }
    )
    for name in ("service-connect-frontend", "service-connect-backend"):
        assert before[name] != after[name], f"{name} would not see the new server"


def test_an_unrelated_change_does_not_roll_out_the_clients():
    before = _definitions({**MINIMAL, "services": BASE_SERVICES})
    changed = [dict(BASE_SERVICES[0]), {**BASE_SERVICES[1], "image": "ghcr.io/acme/api:2"}]
    after = _definitions({**MINIMAL, "services": changed, "logRetentionDays": 90})
    assert before["service-connect-frontend"] == after["service-connect-frontend"]
    assert before["service-connect-backend"] != after["service-connect-backend"]


def test_outputs_name_the_ca_namespace_and_aliases(minimal):
    out = minimal.stack_outputs
    assert out["topology"] == "service-connect"
    assert out["endpoint"] == "https://app.example.com"
    ca = minimal.one("aws:acmpca/certificateAuthority:CertificateAuthority")
    assert out["privateCaArn"] == ca.outputs["arn"]
    assert (
        out["namespaceArn"]
        == minimal.one("aws:servicediscovery/httpNamespace:HttpNamespace").outputs["arn"]
    )
    assert out["clientAliases"] == ["frontend:80", "backend:80"]
    assert {s["name"]: s["public"] for s in out["services"]} == {"frontend": True, "backend": False}
    assert "--connect-to app.example.com:443:" in out["verifyCommand"]
    assert ca.outputs["arn"] in out["caVerifyCommand"]


def test_no_cloud_map_services_are_created_by_hand(minimal):
    assert not minimal.of_type("aws:servicediscovery/service:Service")
    for service in services(minimal).values():
        assert "serviceRegistries" not in service.inputs


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {**MINIMAL, "services": [BASE_SERVICES[0], {**BASE_SERVICES[1], "name": "frontend"}]},
            "ecs-tls:services[1].name: 'frontend' is already used by services[0]",
        ),
        (
            {
                **MINIMAL,
                "services": [
                    BASE_SERVICES[0],
                    {**BASE_SERVICES[1], "clientAlias": {"dnsName": "api"}},
                ],
            },
            "ecs-tls:services[1].clientAlias.port: missing; the port clients connect to is "
            "required",
        ),
        (
            {**MINIMAL, "ingress": "apigateway"},
            "ecs-tls:ingress: 'apigateway' is not one of: alb, nlb, none",
        ),
        (
            {**MINIMAL, "privateCa": {"shareWith": ["arn:aws:organizations::1:ou/x"]}},
            "ecs-tls:privateCa.shareWith: 'arn:aws:organizations::1:ou/x' is not 12-digit "
            "account IDs, OU ARNs or an organization ARN",
        ),
        (
            {**MINIMAL, "services": [{"name": "Web", "image": "x", "port": 80}]},
            "ecs-tls:services[0].name: 'Web' is not a lowercase DNS label such as 'backend'",
        ),
        (
            {**MINIMAL, "services": [{"name": "w", "image": "x", "port": 80, "mode": "client"}]},
            "ecs-tls:services: ['w'] is not a list with at least one server",
        ),
        (
            {
                **MINIMAL,
                "services": [
                    {**BASE_SERVICES[0], "public": True},
                    {**BASE_SERVICES[1], "public": True},
                ],
            },
            "ecs-tls:services[1].public: only one service can be public",
        ),
        (
            {
                **MINIMAL,
                "privateCa": {
                    "keyAlgorithm": "EC_secp384r1",
                    "signingAlgorithm": "SHA256WITHECDSA",
                },
            },
            "ecs-tls:privateCa.signingAlgorithm: 'SHA256WITHECDSA' is not valid with keyAlgorithm "
            "EC_secp384r1; accepted: SHA384WITHECDSA, SHA512WITHECDSA",
        ),
        (
            {**MINIMAL, "services": [{**BASE_SERVICES[0], "clientalias": {}}]},
            "ecs-tls:services[0].clientalias: is not a known key; did you mean 'clientAlias'?",
        ),
        (
            {**MINIMAL_CONFIG["alb-envoy"], "services": BASE_SERVICES},
            "ecs-tls:services: applies to service-connect and appmesh-efs, not 'alb-envoy'",
        ),
    ],
)
def test_bad_service_connect_config(config, message):
    assert config_error(config) == message


def test_seed_p384_sha512_ca_is_allowed(program):
    graph = program(
        {
            **MINIMAL,
            "privateCa": {"keyAlgorithm": "EC_secp384r1", "signingAlgorithm": "SHA512WITHECDSA"},
        }
    )
    ca = graph.one("aws:acmpca/certificateAuthority:CertificateAuthority")
    assert ca.inputs["certificateAuthorityConfiguration"]["signingAlgorithm"] == "SHA512WITHECDSA"
    root = graph.one("aws:acmpca/certificate:Certificate")
    assert root.inputs["signingAlgorithm"] == "SHA512WITHECDSA"


# ----------------------------------------------------------------- first deployment


def test_servers_are_created_before_the_services_that_call_them(minimal):
    """A task resolves Service Connect names once, at start (aws-facts, seed 002)."""
    found = services(minimal)
    assert minimal.depends_on(found["frontend"], found["backend"])
    assert not minimal.depends_on(found["backend"], found["frontend"])


def test_default_calls_make_the_entry_point_and_clients_wait_for_every_other_server(program):
    shop = [
        {"name": "web", "image": "ghcr.io/acme/web:1", "port": 80, "public": True},
        {"name": "orders", "image": "ghcr.io/acme/orders:1", "port": 9000},
        {"name": "stock", "image": "ghcr.io/acme/stock:1", "port": 9100, "calls": ["orders"]},
        {"name": "worker", "image": "ghcr.io/acme/worker:1", "port": 9200, "mode": "client"},
    ]
    graph = program({**MINIMAL, "services": shop})
    found = services(graph)

    def waits(name: str) -> set[str]:
        return {other for other in found if graph.depends_on(found[name], found[other])}

    assert waits("web") == {"orders", "stock"}
    assert waits("worker") == {"web", "orders", "stock"}
    assert waits("stock") == {"orders"}
    assert waits("orders") == set()
    # The user's order is kept where the user sees it.
    assert [s["name"] for s in graph.stack_outputs["services"]] == [s["name"] for s in shop]


@pytest.mark.parametrize(
    ("calls", "message"),
    [
        (
            [["backend"], ["frontend"]],
            "ecs-tls:services[0].calls: 'frontend' is part of a cycle of calls; ECS cannot "
            "start either first",
        ),
        (
            [["payments"], []],
            "ecs-tls:services[0].calls: 'payments' is not a service name: frontend, backend",
        ),
        ([["frontend"], []], "ecs-tls:services[0].calls: 'frontend' is not another service's name"),
        ([[], "backend"], "ecs-tls:services[1].calls: 'backend' is not a list of service names"),
    ],
)
def test_bad_calls_are_refused(calls, message):
    listed = [{**svc, "calls": c} for svc, c in zip(BASE_SERVICES, calls, strict=True)]
    assert config_error({**MINIMAL, "services": listed}) == message


def test_a_call_to_a_client_only_service_is_refused():
    listed = [
        {**BASE_SERVICES[0], "calls": ["worker"]},
        {"name": "worker", "image": "ghcr.io/acme/worker:1", "port": 9200, "mode": "client"},
    ]
    assert config_error({**MINIMAL, "services": listed}) == (
        "ecs-tls:services[0].calls: 'worker' is not a server (client-only services receive "
        "no calls)"
    )


def test_services_are_deleted_before_they_are_replaced(minimal):
    """A replacement under the same discovery name fails while the old service exists."""
    assert all(s.delete_before_replace for s in services(minimal).values())


def test_demo_health_check_is_answered_by_the_frontend_itself(minimal):
    group = minimal.one("aws:lb/targetGroup:TargetGroup")
    assert group.inputs["healthCheck"]["path"] == "/healthz"
    (frontend,) = task_containers(minimal, "frontend")
    script = frontend["command"][-1]
    assert "location = /healthz { return 200 ok; }" in script
    assert "proxy_pass http://backend:80" in script


def test_tls_role_trusts_only_this_accounts_ecs(minimal):
    role = minimal.one("aws:iam/role:Role", "service-connect-tls")
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_the_ca_is_shared_only_once_its_certificate_is_installed(program):
    graph = program({**MINIMAL, "privateCa": {"shareWith": PRINCIPALS}})
    installed = graph.one(
        "aws:acmpca/certificateAuthorityCertificate:CertificateAuthorityCertificate"
    )
    association = graph.one("aws:ram/resourceAssociation:ResourceAssociation")
    assert installed.urn in association.dependencies


def _public_api(app_protocol: str, **extra) -> list[dict]:
    return [
        {
            "name": "api",
            "image": "ghcr.io/acme/api:1",
            "port": 8080,
            "appProtocol": app_protocol,
            **extra,
        },
    ]


@pytest.mark.parametrize(
    ("app_protocol", "extra", "version", "path", "matcher"),
    [
        ("http", {}, "HTTP1", "/", "200-399"),
        ("http2", {}, "HTTP2", "/", "200-399"),
        ("grpc", {}, "GRPC", "/AWS.ALB/healthcheck", "12"),
        (
            "grpc",
            {"healthCheckPath": "/grpc.health.v1.Health/Check"},
            "GRPC",
            "/grpc.health.v1.Health/Check",
            "0",
        ),
    ],
)
def test_alb_target_group_speaks_the_public_services_protocol(
    program, app_protocol, extra, version, path, matcher
):
    graph = program({**MINIMAL, "services": _public_api(app_protocol, **extra)})
    group = graph.one("aws:lb/targetGroup:TargetGroup")
    assert group.inputs["protocolVersion"] == version
    assert (group.inputs["healthCheck"]["path"], group.inputs["healthCheck"]["matcher"]) == (
        path,
        matcher,
    )


@pytest.mark.parametrize(
    ("app_protocol", "alpn"), [("http", None), ("http2", "HTTP2Preferred"), ("grpc", "HTTP2Only")]
)
def test_nlb_offers_http2_to_clients_of_an_http2_or_grpc_service(program, app_protocol, alpn):
    graph = program({**MINIMAL, "ingress": "nlb", "services": _public_api(app_protocol)})
    (listener,) = graph.of_type("aws:lb/listener:Listener")
    assert listener.inputs.get("alpnPolicy") == alpn

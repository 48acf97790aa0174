"""Topology appmesh-efs under mocks: every resource, every config branch, every bad config."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scripts.mock_runtime import ROOT, config_error, is_secret, unwrap
from tests.conftest import MINIMAL_CONFIG
from topologies.appmesh_efs import GENERATED_KEY, set_fingerprint

MINIMAL = MINIMAL_CONFIG["appmesh-efs"]
NS = "mesh.app.example.com"
ZONE = "Z0123456789ABCDEFGHIJ"


# --------------------------------------------------------------------------- a small PKI


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject, key, issuer, issuer_key, *, ca=False, names=(), usages=None):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=300))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def own_pki(names=("app.example.com", f"*.{NS}"), root_in_chain=True, label="A"):
    """root -> leaf (server) and root -> client, as a third-party CA would issue them."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _issue(_name(f"Root {label}"), root_key, _name(f"Root {label}"), root_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _issue(_name(names[0]), leaf_key, root.subject, root_key, names=names)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue(
        _name("gateway"),
        client_key,
        root.subject,
        root_key,
        usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    certificate = {"certificatePem": _pem(leaf), "privateKeyPem": _key(leaf_key)}
    if root_in_chain:
        certificate["chainPem"] = _pem(root)
    return certificate, {"certificatePem": _pem(client), "privateKeyPem": _key(client_key)}


# --------------------------------------------------------------------------- helpers

GRAPHS: dict[str, object] = {}


def bootstrap(task, container="envoy") -> dict:
    containers = json.loads(unwrap(task.inputs["containerDefinitions"]))
    (envoy,) = [c for c in containers if c["name"] == container]
    command = envoy["command"]
    return json.loads(command[command.index("--config-yaml") + 1])


def container(task, name) -> dict:
    containers = json.loads(unwrap(task.inputs["containerDefinitions"]))
    return next(c for c in containers if c["name"] == name)


def task(graph, name):
    return graph.one("aws:ecs/taskDefinition:TaskDefinition", f"appmesh-efs-{name}")


def downstream(boot) -> dict:
    listener = next(x for x in boot["static_resources"]["listeners"] if x["name"] == "ingress_tls")
    return listener["filter_chains"][0]["transport_socket"]["typed_config"]


def clusters(boot) -> dict:
    return {c["name"]: c for c in boot["static_resources"]["clusters"]}


@pytest.fixture(scope="module")
def graph():
    from scripts.mock_runtime import run_program

    return run_program(MINIMAL)


# --------------------------------------------------------------------------- minimal stack


def test_every_resource_is_under_the_topology_component_and_no_app_mesh(graph):
    (component,) = graph.of_type("ecs-tls:appmesh_efs:AppmeshEfs")
    ours = graph.descendants(component)
    assert len(ours) > 40
    assert not [r for r in graph if r.type.startswith("aws:appmesh")]
    for r in graph:
        if not r.custom:
            assert r.type.startswith("ecs-tls:"), r


def test_internal_nlb_forwards_tcp_443_to_the_gateway_envoy(graph):
    lb = graph.one("aws:lb/loadBalancer:LoadBalancer")
    assert lb.inputs["internal"] is True and lb.inputs["loadBalancerType"] == "network"
    listener = graph.one("aws:lb/listener:Listener")
    assert (listener.inputs["port"], listener.inputs["protocol"]) == (443, "TCP")
    group = graph.one("aws:lb/targetGroup:TargetGroup")
    assert group.inputs["port"] == 8443 and group.inputs["healthCheck"]["protocol"] == "TCP"
    gateway = graph.one("aws:ecs/service:Service", "appmesh-efs-gateway")
    (target,) = gateway.inputs["loadBalancers"]
    assert (target["containerName"], target["containerPort"]) == ("envoy", 8443)
    assert graph.depends_on(gateway, listener)


def test_gateway_terminates_tls_from_efs_and_reencrypts_with_san_check(graph):
    boot = bootstrap(task(graph, "gateway"))
    tls = downstream(boot)
    (files,) = tls["common_tls_context"]["tls_certificates"]
    assert files == {
        "certificate_chain": {"filename": "/certs/current/chain.pem"},
        "private_key": {"filename": "/certs/current/key.pem"},
    }
    assert "require_client_certificate" not in tls  # clients come through the NLB
    routes = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    vhost = routes["typed_config"]["route_config"]["virtual_hosts"][0]
    assert [(r["match"]["prefix"], r["route"]["cluster"]) for r in vhost["routes"]] == [
        ("/", "service_frontend")
    ]
    cluster = clusters(boot)["service_frontend"]
    assert cluster["type"] == "STRICT_DNS" and cluster["dns_refresh_rate"] == "5s"
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert address["address"]["socket_address"] == {
        "address": f"frontend.{NS}",
        "port_value": 8443,
    }
    upstream = cluster["transport_socket"]["typed_config"]
    assert upstream["sni"] == f"frontend.{NS}"
    context = upstream["common_tls_context"]
    assert context["validation_context"] == {
        "trusted_ca": {"filename": "/certs/current/ca.pem"},
        "match_typed_subject_alt_names": [
            {"san_type": "DNS", "matcher": {"exact": f"frontend.{NS}"}}
        ],
    }
    # Mutual TLS by default: the generated leaf is also the client certificate.
    assert (
        context["tls_certificates"][0]["certificate_chain"]["filename"]
        == "/certs/current/chain.pem"
    )


def test_services_require_a_client_certificate_and_call_through_envoy(graph):
    frontend, backend = task(graph, "frontend"), task(graph, "backend")
    # The gateway routes to the frontend; the frontend calls the backend: nobody else.
    for t, caller in ((frontend, "gateway"), (backend, "frontend")):
        tls = downstream(bootstrap(t))
        assert tls["require_client_certificate"] is True
        assert tls["common_tls_context"]["validation_context"] == {
            "trusted_ca": {"filename": "/certs/current/ca.pem"},
            "match_typed_subject_alt_names": [
                {"san_type": "DNS", "matcher": {"exact": f"{caller}.{NS}"}}
            ],
        }
    boot = bootstrap(frontend)
    egress = [x for x in boot["static_resources"]["listeners"] if x["name"].startswith("egress")]
    assert [x["address"]["socket_address"] for x in egress] == [
        {"address": "127.0.0.1", "port_value": 15002}
    ]
    app = container(frontend, "frontend")
    assert {"name": "BACKEND_URL", "value": "http://127.0.0.1:15002"} in app["environment"]
    assert "$BACKEND_URL" in app["command"][2]
    assert "mountPoints" not in app  # only Envoy sees the key
    assert set(clusters(bootstrap(backend))) == {"app"}


def test_envoys_mount_the_volume_read_only_and_roll_with_the_certificate(graph):
    fingerprints = set()
    for name in ("gateway", "frontend", "backend"):
        t = task(graph, name)
        envoy = container(t, "envoy")
        assert envoy["mountPoints"] == [
            {"sourceVolume": "certificates", "containerPath": "/certs", "readOnly": True}
        ]
        env = {e["name"]: e["value"] for e in envoy["environment"]}
        assert env["ENVOY_UID"] == "101" and len(env["CERTIFICATE_SHA256"]) == 16
        fingerprints.add(env["CERTIFICATE_SHA256"])
        (volume,) = unwrap(t.inputs["volumes"])
        efs = volume["efsVolumeConfiguration"]
        assert efs["transitEncryption"] == "ENABLED"
        assert efs["authorizationConfig"]["iam"] == "ENABLED"
        role = graph.one("aws:iam/role:Role", f"appmesh-efs-{name}-envoy")
        assert t.inputs["taskRoleArn"] == role.outputs["arn"]
    # Each task rolls with its own certificate only.
    assert len(fingerprints) == 3


def test_only_the_publisher_writes_the_encrypted_volume(graph):
    fs = graph.one("aws:efs/fileSystem:FileSystem")
    assert fs.inputs["encrypted"] is True
    points = graph.of_type("aws:efs/accessPoint:AccessPoint")
    assert {p.inputs["rootDirectory"]["path"] for p in points} == {
        "/mesh-certificates",
        "/mesh-certificates/gateway",
        "/mesh-certificates/frontend",
        "/mesh-certificates/backend",
    }
    for point in points:
        assert point.inputs["posixUser"] == {"uid": 101, "gid": 101}
    policy = json.loads(graph.one("aws:efs/fileSystemPolicy:FileSystemPolicy").inputs["policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    # Grants live in each role's own policy, each held to its own access point.
    assert set(by_sid) == {"DenyUnencryptedTransport"}
    assert by_sid["DenyUnencryptedTransport"]["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }
    for node in ("gateway", "frontend", "backend"):
        envoy_policy = graph.one("aws:iam/rolePolicy:RolePolicy", f"appmesh-efs-{node}-envoy-efs")
        (statement,) = json.loads(envoy_policy.inputs["policy"])["Statement"]
        assert statement["Action"] == ["elasticfilesystem:ClientMount"]
    publisher = graph.one("aws:iam/rolePolicy:RolePolicy", "appmesh-efs-cert-publisher")
    actions = {a for s in json.loads(publisher.inputs["policy"])["Statement"] for a in s["Action"]}
    assert "elasticfilesystem:ClientWrite" in actions
    assert "secretsmanager:GetSecretValue" in actions


def test_publisher_runs_in_the_vpc_on_every_certificate_change(graph):
    function = graph.one("aws:lambda/function:Function")
    assert function.inputs["handler"] == "cert_publisher.handler"
    assert function.inputs["fileSystemConfig"]["localMountPath"] == "/mnt/certs"
    assert function.inputs["vpcConfig"]["subnetIds"]
    env = function.inputs["environment"]["variables"]
    assert env == {"CERTIFICATE_DIR": "/mnt/certs"}
    invocation = graph.one("aws:lambda/invocation:Invocation")
    event = json.loads(invocation.inputs["input"])
    assert set(event) == {"caPem", "fingerprint", "nodes", "code", "fileSystem", "accessPoint"}
    assert "PRIVATE" not in event["caPem"]
    assert set(event["nodes"]) == {"gateway", "frontend", "backend"}
    for arns in event["nodes"].values():
        assert set(arns) == {"certificate"}
        assert arns["certificate"].startswith("arn:aws:secretsmanager:")
    for dependency in (
        *graph.of_type("aws:secretsmanager/secretVersion:SecretVersion"),
        graph.one("aws:efs/fileSystemPolicy:FileSystemPolicy"),
        *graph.of_type("aws:efs/mountTarget:MountTarget"),
    ):
        assert graph.depends_on(invocation, dependency)
    for service in graph.of_type("aws:ecs/service:Service"):
        assert graph.depends_on(service, invocation), service


def test_generated_certificates_name_one_node_each_and_serve_as_client(graph):
    requests = {r.name: r for r in graph.of_type("tls:index/certRequest:CertRequest")}
    assert {name: r.inputs["dnsNames"] for name, r in requests.items()} == {
        "appmesh-efs-certificate-chain-leaf": ["app.example.com", f"gateway.{NS}"],
        "appmesh-efs-frontend-certificate": [f"frontend.{NS}"],
        "appmesh-efs-backend-certificate": [f"backend.{NS}"],
    }
    # One CA signs them all: the one the gateway's chain already had.
    (ca,) = graph.of_type("tls:index/selfSignedCert:SelfSignedCert")
    for leaf in graph.of_type("tls:index/locallySignedCert:LocallySignedCert"):
        assert "client_auth" in leaf.inputs["allowedUses"]
        assert leaf.inputs["caCertPem"] == ca.outputs["certPem"]
    alarm = graph.one("aws:cloudwatch/metricAlarm:MetricAlarm", "appmesh-efs-certificate-expiry")
    assert alarm.inputs["metricName"] == "DaysToExpiry"


def test_services_register_in_a_private_dns_namespace(graph):
    namespace = graph.one("aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace")
    assert namespace.inputs["name"] == NS and namespace.inputs["vpc"].startswith("vpc-")
    registries = {
        r.inputs["name"]: r for r in graph.of_type("aws:servicediscovery/service:Service")
    }
    assert set(registries) == {"frontend", "backend"}
    for name, registry in registries.items():
        assert registry.inputs["dnsConfig"]["dnsRecords"] == [{"type": "A", "ttl": 5}]
        service = graph.one("aws:ecs/service:Service", f"appmesh-efs-{name}")
        assert service.inputs["serviceRegistries"] == {"registryArn": registry.outputs["arn"]}
        assert "serviceConnectConfiguration" not in service.inputs


def test_security_groups_open_envoy_ports_only_between_mesh_members(graph):
    ingress = graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    ours = [r for r in ingress if r.name.startswith("appmesh-efs")]
    assert {r.inputs["fromPort"] for r in ours} == {443, 8443, 2049}
    lb_group = graph.one("aws:lb/loadBalancer:LoadBalancer").inputs["securityGroups"][0]
    for rule in ours:
        # Only the load balancer takes CIDRs (allowedCidrs); tasks take security groups.
        if "cidrIpv4" in rule.inputs:
            assert rule.inputs["securityGroupId"] == lb_group and rule.inputs["fromPort"] == 443


def test_outputs_give_the_gateway_and_a_verify_command(graph):
    out = graph.stack_outputs
    assert out["endpoint"] == "https://app.example.com"
    assert out["gatewayAddress"].endswith(".elb.amazonaws.com")
    assert out["serviceHosts"] == {"frontend": f"frontend.{NS}", "backend": f"backend.{NS}"}
    assert "--cacert ca.pem" in out["verifyCommand"]
    assert "--connect-to app.example.com:443:" in out["verifyCommand"]
    assert out["mutualTls"] is True and "inside the VPC" in out["verifyFrom"]


# --------------------------------------------------------------------------- branches


def test_hosted_zone_points_the_domain_at_the_internal_nlb(program):
    graph = program({**MINIMAL, "hostedZoneId": ZONE})
    record = graph.one("aws:route53/record:Record", "domain")
    lb = graph.one("aws:lb/loadBalancer:LoadBalancer")
    assert record.inputs["aliases"][0]["name"] == lb.outputs["dnsName"]
    assert graph.stack_outputs["verifyCommand"].endswith(
        "curl --fail --cacert ca.pem https://app.example.com/"
    )


def test_mutual_tls_off(program):
    graph = program({**MINIMAL, "mesh": {"mutualTls": False}})
    for name in ("frontend", "backend"):
        tls = downstream(bootstrap(task(graph, name)))
        assert "require_client_certificate" not in tls
        assert "validation_context" not in tls["common_tls_context"]
    gateway = clusters(bootstrap(task(graph, "gateway")))["service_frontend"]
    context = gateway["transport_socket"]["typed_config"]["common_tls_context"]
    assert "tls_certificates" not in context and "validation_context" in context
    leaves = graph.of_type("tls:index/locallySignedCert:LocallySignedCert")
    assert len(leaves) == 3
    for leaf in leaves:
        assert "client_auth" not in leaf.inputs["allowedUses"]


def test_custom_services_routes_namespace_and_refresh(program):
    config = {
        **MINIMAL,
        "services": [
            {"name": "web", "image": "nginx", "port": 8080, "calls": ["orders"]},
            {"name": "orders", "image": "orders:1", "port": 9000, "discoveryName": "order-api"},
        ],
        "mesh": {
            "namespace": "svc.internal.example.com",
            "dnsRefreshSeconds": 2,
            "gatewayDesiredCount": 3,
            "gatewayRoutes": [
                {"prefix": "/", "service": "web"},
                {"prefix": "/orders/", "service": "orders", "prefixRewrite": "/"},
            ],
        },
        "envoy": {"port": 9443, "minTlsVersion": "1.3"},
    }
    graph = program(config)
    boot = bootstrap(task(graph, "gateway"))
    vhost = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]["route_config"]["virtual_hosts"][0]
    assert [(r["match"]["prefix"], r["route"]["cluster"]) for r in vhost["routes"]] == [
        ("/orders/", "service_orders"),
        ("/", "service_web"),
    ]
    assert vhost["routes"][0]["route"]["prefix_rewrite"] == "/"
    orders = clusters(boot)["service_orders"]
    assert orders["transport_socket"]["typed_config"]["sni"] == "order-api.svc.internal.example.com"
    assert orders["dns_refresh_rate"] == "2s"
    tls = downstream(boot)["common_tls_context"]["tls_params"]
    assert tls["tls_minimum_protocol_version"] == "TLSv1_3"
    web = container(task(graph, "web"), "web")
    assert {"name": "ORDERS_URL", "value": "http://127.0.0.1:15002"} in web["environment"]
    assert graph.one("aws:ecs/service:Service", "appmesh-efs-gateway").inputs["desiredCount"] == 3
    assert graph.one("aws:lb/targetGroup:TargetGroup").inputs["port"] == 9443


def test_own_certificate_without_mutual_tls(program):
    certificate, _ = own_pki()
    graph = program(
        {**MINIMAL, "certificate": certificate, "mesh": {"mutualTls": False}},
        secret_keys=("certificate",),
    )
    assert not graph.of_type("tls:index/privateKey:PrivateKey")
    event = json.loads(graph.one("aws:lambda/invocation:Invocation").inputs["input"])
    assert event["caPem"].strip() == certificate["chainPem"].strip()
    assert "caCertificatePem" not in graph.stack_outputs


def test_own_certificate_with_a_client_certificate(program):
    certificate, client = own_pki()
    graph = program(
        {**MINIMAL, "certificate": certificate, "mesh": {"clientCertificate": client}},
        secret_keys=("certificate", "mesh"),
    )
    version = graph.one(
        "aws:secretsmanager/secretVersion:SecretVersion", "appmesh-efs-client-certificate"
    )
    assert is_secret(version.inputs["secretString"])
    event = json.loads(graph.one("aws:lambda/invocation:Invocation").inputs["input"])
    secret = graph.one("aws:secretsmanager/secret:Secret", "appmesh-efs-certificate")
    # Your certificate and client certificate, in every node's own directory.
    assert event["nodes"] == {
        node: {"certificate": secret.outputs["arn"], "client": version.inputs["secretId"]}
        for node in ("gateway", "frontend", "backend")
    }
    assert not graph.of_type("ecs-tls:appmesh_efs:NodeCertificate")
    context = clusters(bootstrap(task(graph, "gateway")))["service_frontend"]["transport_socket"][
        "typed_config"
    ]["common_tls_context"]
    assert context["tls_certificates"][0] == {
        "certificate_chain": {"filename": "/certs/current/client.pem"},
        "private_key": {"filename": "/certs/current/client-key.pem"},
    }
    statements = json.loads(
        graph.one("aws:iam/rolePolicy:RolePolicy", "appmesh-efs-cert-publisher").inputs["policy"]
    )["Statement"]
    read = next(s for s in statements if s["Sid"] == "ReadCertificateSecrets")
    assert len(read["Resource"]) == 2


# --------------------------------------------------------------------------- bad config


def _bad(extra: dict, secret=()) -> str:
    return config_error({**MINIMAL, **extra}, secret_keys=secret)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"services": [{"name": "web", "image": "nginx", "port": 80, "public": True}]},
            "ecs-tls:services[0].public: applies to topology 'service-connect' only, not "
            "'appmesh-efs': mesh.gatewayRoutes decides what the gateway exposes",
        ),
        (
            {"services": [{"name": "web", "image": "nginx", "port": 80, "clientAlias": {}}]},
            "ecs-tls:services[0].clientAlias: applies to topology 'service-connect' only, not "
            "'appmesh-efs': services call each other through their Envoy on 127.0.0.1 "
            "(<NAME>_URL)",
        ),
        (
            {"services": [{"name": "web", "image": "nginx", "port": 80, "mode": "client"}]},
            "ecs-tls:services[0].mode: applies to topology 'service-connect' only, not "
            "'appmesh-efs': every service is a mesh node with a TLS listener",
        ),
        (
            {"services": [{"name": "web", "image": "nginx", "port": 8443}]},
            "ecs-tls:services[0].port: 8443 is not free: envoy.port binds it in the task",
        ),
        (
            {"services": [{"name": "web", "image": "nginx", "port": 15001}]},
            "ecs-tls:services[0].port: 15001 is not outside 15001-15001, where Envoy listens "
            "for calls to the other services",
        ),
        (
            {"envoy": {"port": 9902}},
            "ecs-tls:envoy.port: 9902 is not free of 9902 (health) and 15001-15002 (calls to "
            "the services), which Envoy binds in each task",
        ),
        (
            {"mesh": "x"},
            "ecs-tls:mesh: 'x' is not an object (set its fields with `pulumi config set --path`)",
        ),
        ({"mesh": {"gateway": 1}}, "ecs-tls:mesh.gateway: is not a known key"),
        (
            {"mesh": {"namespace": "Not A Name"}},
            "ecs-tls:mesh.namespace: 'Not A Name' is not a DNS name such as mesh.app.example.com",
        ),
        ({"mesh": {"mutualTls": "yes"}}, "ecs-tls:mesh.mutualTls: 'yes' is not true or false"),
        (
            {"mesh": {"dnsRefreshSeconds": 0}},
            "ecs-tls:mesh.dnsRefreshSeconds: 0 is not an integer from 1 to 60",
        ),
        (
            {"mesh": {"gatewayRoutes": []}},
            "ecs-tls:mesh.gatewayRoutes: [] is not a non-empty list of {prefix, service} objects",
        ),
        (
            {"mesh": {"gatewayRoutes": [{"prefix": "api", "service": "frontend"}]}},
            "ecs-tls:mesh.gatewayRoutes[0].prefix: 'api' is not a path prefix starting with / "
            "such as /api/",
        ),
        (
            {"mesh": {"gatewayRoutes": [{"prefix": "/", "service": "nope"}]}},
            "ecs-tls:mesh.gatewayRoutes[0].service: 'nope' is not a service name: frontend, "
            "backend",
        ),
        (
            {"mesh": {"gatewayRoutes": [{"service": "frontend"}]}},
            "ecs-tls:mesh.gatewayRoutes[0].prefix: missing; every route needs a path prefix "
            "such as /api/",
        ),
        (
            {
                "mesh": {
                    "gatewayRoutes": [
                        {"prefix": "/", "service": "frontend"},
                        {"prefix": "/", "service": "backend"},
                    ]
                }
            },
            "ecs-tls:mesh.gatewayRoutes[1].prefix: '/' is already routed by mesh.gatewayRoutes[0]",
        ),
        (
            {"mesh": {"gatewayRoutes": [{"prefix": "/", "service": "frontend", "to": "x"}]}},
            "ecs-tls:mesh.gatewayRoutes[0].to: is not a known key",
        ),
        (
            {"sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06"},
            "ecs-tls:sslPolicy: applies to alb-envoy and service-connect, not 'appmesh-efs'",
        ),
    ],
)
def test_bad_config(extra, message):
    assert _bad(extra, secret=()).startswith(message), _bad(extra)


def test_own_certificate_needs_a_client_certificate_or_mutual_tls_off():
    certificate, _ = own_pki()
    assert _bad({"certificate": certificate}, ("certificate",)) == (
        "ecs-tls:mesh.mutualTls: is true (the default) and certificate is your own: set "
        "mesh.clientCertificate (a client certificate from the CA that ends "
        "certificate.chainPem) or set mesh.mutualTls to false"
    )


def test_own_certificate_must_name_every_service_and_end_with_its_root():
    certificate, _ = own_pki(names=("app.example.com", f"frontend.{NS}"))
    assert _bad({"certificate": certificate, "mesh": {"mutualTls": False}}, ("certificate",)) == (
        f"ecs-tls:certificate.certificatePem: does not name 'backend.{NS}': every service's "
        "Envoy presents it and the gateway checks that name; add it (or a wildcard for "
        "mesh.namespace) as a subject alternative name, or change mesh.namespace"
    )
    certificate, _ = own_pki(root_in_chain=False)
    assert _bad({"certificate": certificate, "mesh": {"mutualTls": False}}, ("certificate",)) == (
        "ecs-tls:certificate.chainPem: missing; topology 'appmesh-efs' needs the chain up to "
        "its root CA: the gateway validates the services' certificates against that root "
        "(ca.pem)"
    )


def test_client_certificate_checks():
    certificate, client = own_pki()
    _, foreign = own_pki(label="B")
    base = {"certificate": certificate}
    secret = ("certificate", "mesh")
    assert _bad({**base, "mesh": {"clientCertificate": foreign}}, secret).startswith(
        "ecs-tls:mesh.clientCertificate.certificatePem: is issued by 'CN=Root B', which is "
        "not in certificate.chainPem"
    )
    assert _bad({**base, "mesh": {"clientCertificate": client}}, ("certificate",)).startswith(
        "ecs-tls:mesh.clientCertificate.privateKeyPem: must be set as a secret"
    )
    mismatched = {**client, "privateKeyPem": foreign["privateKeyPem"]}
    assert _bad({**base, "mesh": {"clientCertificate": mismatched}}, secret) == (
        "ecs-tls:mesh.clientCertificate.privateKeyPem: is not the key of "
        "mesh.clientCertificate.certificatePem (public keys differ)"
    )
    assert (
        _bad({**base, "mesh": {"clientCertificate": client, "mutualTls": False}}, secret)
        == "ecs-tls:mesh.clientCertificate: is only used with mesh.mutualTls true"
    )
    assert _bad({"mesh": {"clientCertificate": client}}, ("mesh",)).startswith(
        "ecs-tls:mesh.clientCertificate: is only used with your own certificate"
    )


def test_mesh_is_refused_on_other_topologies():
    assert config_error({**MINIMAL_CONFIG["alb-envoy"], "mesh": {"mutualTls": False}}) == (
        "ecs-tls:mesh: applies only to topology 'appmesh-efs', not 'alb-envoy'"
    )


# --------------------------------------------------------------------------- node identity

NODES = ("gateway", "frontend", "backend")


def _event(graph) -> dict:
    # unwrap: with `mesh` set with --secret, the event holds its values and is secret.
    return json.loads(unwrap(graph.one("aws:lambda/invocation:Invocation").inputs["input"]))


def _node_document(graph, node: str) -> dict:
    """The secret document the publisher writes into `node`'s directory."""
    arn = _event(graph)["nodes"][node]["certificate"]
    (version,) = [
        v
        for v in graph.of_type("aws:secretsmanager/secretVersion:SecretVersion")
        if v.inputs["secretId"] == arn
    ]
    assert is_secret(version.inputs["secretString"]), version
    return json.loads(unwrap(version.inputs["secretString"]))


def _policy_access_point(graph, node: str) -> str:
    policy = graph.one("aws:iam/rolePolicy:RolePolicy", f"appmesh-efs-{node}-envoy-efs")
    (statement,) = json.loads(policy.inputs["policy"])["Statement"]
    return statement["Condition"]["StringEquals"]["elasticfilesystem:AccessPointArn"]


def test_each_node_task_reads_its_own_certificate(graph):
    points = {p.id: p for p in graph.of_type("aws:efs/accessPoint:AccessPoint")}
    leaves = {
        "gateway": "appmesh-efs-certificate-chain-leaf",
        "frontend": "appmesh-efs-frontend-certificate",
        "backend": "appmesh-efs-backend-certificate",
    }
    for node in NODES:
        t = task(graph, node)
        (volume,) = unwrap(t.inputs["volumes"])
        point = points[volume["efsVolumeConfiguration"]["authorizationConfig"]["accessPointId"]]
        # Its task mounts its own directory, and its role may mount nothing else.
        assert point.inputs["rootDirectory"]["path"] == f"/mesh-certificates/{node}"
        assert _policy_access_point(graph, node) == point.outputs["arn"]
        role = graph.one("aws:iam/role:Role", f"appmesh-efs-{node}-envoy")
        assert t.inputs["taskRoleArn"] == role.outputs["arn"]
        # ...where the publisher writes the node's own certificate.
        leaf = graph.one("tls:index/locallySignedCert:LocallySignedCert", leaves[node])
        assert _node_document(graph, node)["certificateChain"].startswith(leaf.outputs["certPem"])
        # Its tasks carry the digest of exactly the set published for it.
        published = {
            "ca.pem": _event(graph)["caPem"],
            "chain.pem": _node_document(graph, node)["certificateChain"],
            "key.pem": GENERATED_KEY,
        }
        env = {e["name"]: e["value"] for e in container(t, "envoy")["environment"]}
        assert env["CERTIFICATE_SHA256"] == set_fingerprint(published)


def test_no_two_nodes_share_a_key(graph):
    keys = [_node_document(graph, node)["privateKey"] for node in NODES]
    assert len(set(keys)) == len(NODES)
    ca_key = graph.one("tls:index/privateKey:PrivateKey", "appmesh-efs-certificate-chain-ca")
    assert ca_key.outputs["privateKeyPem"] not in keys
    secrets = {_event(graph)["nodes"][node]["certificate"] for node in NODES}
    assert len(secrets) == len(NODES)
    # The mesh CA's key signs each node's certificate and is never in plaintext.
    for leaf in graph.of_type("tls:index/locallySignedCert:LocallySignedCert"):
        assert is_secret(leaf.inputs["caPrivateKeyPem"]), leaf
    # The publisher may read exactly these secrets.
    statements = json.loads(
        graph.one("aws:iam/rolePolicy:RolePolicy", "appmesh-efs-cert-publisher").inputs["policy"]
    )["Statement"]
    read = next(s for s in statements if s["Sid"] == "ReadCertificateSecrets")
    assert sorted(read["Resource"]) == sorted(secrets)


CALL_GRAPH = {
    **MINIMAL,
    "services": [
        {"name": "web", "image": "nginx", "port": 8080, "calls": ["orders", "users"]},
        {"name": "orders", "image": "orders", "port": 9000, "calls": ["users"]},
        {"name": "users", "image": "users", "port": 9001, "discoveryName": "people"},
        {"name": "audit", "image": "audit", "port": 9002},
    ],
    "mesh": {
        "gatewayRoutes": [
            {"prefix": "/", "service": "web"},
            {"prefix": "/users/", "service": "users"},
        ]
    },
}
NO_NAME = {"san_type": "DNS", "matcher": {"safe_regex": {"regex": "[^\\s\\S]"}}}


def _accepted(graph, service) -> list:
    context = downstream(bootstrap(task(graph, service)))["common_tls_context"]
    return context["validation_context"].get("match_typed_subject_alt_names")


def test_allowed_callers_follow_the_calls_graph(program):
    graph = program(CALL_GRAPH)

    def names(*hosts):
        return [{"san_type": "DNS", "matcher": {"exact": f"{h}.{NS}"}} for h in hosts]

    assert _accepted(graph, "web") == names("gateway")
    assert _accepted(graph, "orders") == names("web")
    assert _accepted(graph, "users") == names("gateway", "orders", "web")
    # Nobody calls audit and no gateway route leads to it: it refuses every certificate.
    assert _accepted(graph, "audit") == [NO_NAME]
    # Callers check the callee's name too.
    web = clusters(bootstrap(task(graph, "web")))
    users = web["service_users"]["transport_socket"]["typed_config"]
    assert users["sni"] == f"people.{NS}"
    assert users["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": f"people.{NS}"}}
    ]
    assert graph.stack_outputs["allowedCallers"] == {
        "web": [f"gateway.{NS}"],
        "orders": [f"web.{NS}"],
        "users": [f"gateway.{NS}", f"orders.{NS}", f"web.{NS}"],
        "audit": [],
    }
    requests = {
        r.name: r.inputs["dnsNames"] for r in graph.of_type("tls:index/certRequest:CertRequest")
    }
    assert requests["appmesh-efs-users-certificate"] == [f"people.{NS}"]


def test_own_certificate_checks_the_chain_and_a_service_nobody_calls_refuses_all(program):
    certificate, client = own_pki()
    graph = program(
        {
            **CALL_GRAPH,
            "certificate": certificate,
            "mesh": {**CALL_GRAPH["mesh"], "clientCertificate": client},
        },
        secret_keys=("certificate", "mesh"),
    )
    # One client certificate for every caller: its chain and its public key, no name.
    public = x509.load_pem_x509_certificate(client["certificatePem"].encode()).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pin = base64.b64encode(hashlib.sha256(der).digest()).decode()
    for service in ("web", "orders", "users"):
        context = downstream(bootstrap(task(graph, service)))["common_tls_context"]
        assert context["validation_context"] == {
            "trusted_ca": {"filename": "/certs/current/ca.pem"},
            "verify_certificate_spki": [pin],
        }
    assert _accepted(graph, "audit") == [NO_NAME]
    assert "allowedCallers" not in graph.stack_outputs
    gateway = graph.one("aws:secretsmanager/secret:Secret", "appmesh-efs-certificate")
    nodes = _event(graph)["nodes"]
    assert set(nodes) == {"gateway", "web", "orders", "users", "audit"}
    assert {n["certificate"] for n in nodes.values()} == {gateway.outputs["arn"]}


def test_a_long_service_name_still_fits_the_role_name_limit(program):
    long = "a" * 50
    graph = program({**MINIMAL, "services": [{"name": long, "image": "nginx", "port": 8080}]})
    role = graph.one("aws:iam/role:Role", f"appmesh-efs-{long}-envoy")
    assert len(role.inputs["namePrefix"]) <= 38 and "name" not in role.inputs
    assert (
        graph.one("aws:iam/role:Role", "appmesh-efs-gateway-envoy").inputs.get("namePrefix") is None
    )


@pytest.mark.parametrize("key", ["name", "discoveryName"])
def test_a_service_may_not_take_the_gateway_name(key):
    service = {"name": "edge", "image": "nginx", "port": 8080, key: "gateway"}
    assert _bad({"services": [service]}) == (
        f"ecs-tls:services[0].{key}: 'gateway' is the virtual gateway's name in topology "
        "'appmesh-efs' (its files, resources and certificate name); choose another"
    )


# --------------------------------------------------------------------------- day 2


def test_cloud_map_services_delete_while_instances_are_still_registered(graph):
    registries = graph.of_type("aws:servicediscovery/service:Service")
    assert {r.name for r in registries} == {"appmesh-efs-frontend", "appmesh-efs-backend"}
    for registry in registries:
        assert registry.inputs["forceDestroy"] is True, registry


def test_the_publisher_frees_its_security_groups_before_it_is_deleted(graph):
    function = graph.one("aws:lambda/function:Function")
    assert function.inputs["replaceSecurityGroupsOnDestroy"] is True
    # No replacement of ours: the provider takes the VPC's default group, which outlives
    # every group this stack deletes.
    assert "replacementSecurityGroupIds" not in function.inputs
    statements = json.loads(
        graph.one("aws:iam/rolePolicy:RolePolicy", "appmesh-efs-cert-publisher").inputs["policy"]
    )["Statement"]
    (statement,) = [
        s for s in statements if s["Sid"] == "CreateInterfacesInTheDefaultGroupOnDestroy"
    ]
    assert statement["Action"] == ["ec2:CreateNetworkInterface"]
    assert statement["Resource"] == ["arn:aws:ec2:eu-west-1:123456789012:security-group/*"]
    vpc = graph.one("aws:ec2/vpc:Vpc")
    assert statement["Condition"] == {
        "ArnEquals": {"ec2:Vpc": f"arn:aws:ec2:eu-west-1:123456789012:vpc/{vpc.id}"}
    }


def test_the_publisher_runs_again_for_new_code_or_a_new_volume(graph):
    event = _event(graph)
    source = ROOT / "functions" / "cert_publisher.py"
    assert event["code"] == hashlib.sha256(source.read_bytes()).hexdigest()
    file_system = graph.one("aws:efs/fileSystem:FileSystem")
    point = graph.one("aws:efs/accessPoint:AccessPoint", "appmesh-efs-certificates")
    assert event["fileSystem"] == file_system.id
    assert event["accessPoint"] == point.outputs["arn"]


def _own_pki_with_two_clients():
    """Your certificate and two client certificates from the same root: a rotation."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _issue(_name("Root R"), root_key, _name("Root R"), root_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _issue(
        _name("app.example.com"),
        leaf_key,
        root.subject,
        root_key,
        names=("app.example.com", f"*.{NS}"),
    )
    certificate = {
        "certificatePem": _pem(leaf),
        "privateKeyPem": _key(leaf_key),
        "chainPem": _pem(root),
    }
    clients = []
    for _ in range(2):
        key = ec.generate_private_key(ec.SECP256R1())
        client = _issue(
            _name("gateway"), key, root.subject, root_key, usages=[ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        clients.append({"certificatePem": _pem(client), "privateKeyPem": _key(key)})
    return certificate, clients


def _published(graph) -> tuple[str, dict[str, str]]:
    """The publisher's input and each node's task fingerprint."""
    prints = {}
    for node in NODES:
        env = container(task(graph, node), "envoy")["environment"]
        prints[node] = next(e["value"] for e in env if e["name"] == "CERTIFICATE_SHA256")
    return graph.one("aws:lambda/invocation:Invocation").inputs["input"], prints


def test_a_rotated_client_certificate_is_published_and_rolls_every_task(program):
    certificate, (first, second) = _own_pki_with_two_clients()

    def run(**mesh):
        config = {**MINIMAL, "certificate": certificate, "mesh": mesh}
        return _published(program(config, secret_keys=("certificate", "mesh")))

    before = run(clientCertificate=first)
    rotated = run(clientCertificate=second)
    unrelated = run(clientCertificate=first, dnsRefreshSeconds=7)
    # A new client certificate and key: the publisher runs again, every node's tasks roll
    # (every node presents your client certificate as a caller).
    assert rotated[0] != before[0]
    for node in NODES:
        assert rotated[1][node] != before[1][node], node
    # A key that is not published changes neither.
    assert unrelated == before
    # Only public values: the client's key is not in what the publisher or tasks are given.
    for text in (rotated[0], *rotated[1].values()):
        assert "PRIVATE" not in text and second["privateKeyPem"] not in text


# --------------------------------------------------------------------------- day 2: rollouts


def _envoy_command(graph, node) -> list[str]:
    return container(task(graph, node), "envoy")["command"]


def test_envoys_drain_on_stop_for_longer_than_callers_keep_the_dns_answer(graph, program):
    for node in NODES:
        envoy = container(task(graph, node), "envoy")
        command = envoy["command"]
        # sh starts Envoy and drains it on SIGTERM through the admin socket.
        assert command[:2] == ["sh", "-c"] and "drain_listeners?graceful" in command[2]
        assert command[4] == "/tmp/envoy-admin.sock"
        # Cloud Map: Envoy re-resolves every 5 s, records live 5 s, 5 s of deregistration.
        assert command[5] == "15"
        assert command[-4:] == ["--drain-time-s", "15", "--drain-strategy", "immediate"]
        # ECS waits this long between SIGTERM and SIGKILL (default 30, Fargate at most 120).
        assert envoy["stopTimeout"] == 25
    slow = program({**MINIMAL, "mesh": {"dnsRefreshSeconds": 60}})
    envoy = container(task(slow, "gateway"), "envoy")
    assert envoy["command"][5] == "70" and envoy["stopTimeout"] == 80 <= 120


def test_routes_to_other_tasks_retry_on_another_host_and_eject_failing_ones(graph):
    for node in ("gateway", "frontend"):
        boot = bootstrap(task(graph, node))
        routes = [
            route
            for listener in boot["static_resources"]["listeners"]
            if listener["name"] != "health"
            for route in listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"][
                "virtual_hosts"
            ][0]["routes"]
        ]
        for route in routes:
            action = route["route"]
            if action["cluster"] == "app":
                # One host on loopback: nothing to retry elsewhere.
                assert "retry_policy" not in action
                continue
            policy = action["retry_policy"]
            assert policy["retry_on"] == "connect-failure,refused-stream,reset"
            assert 2 <= policy["num_retries"] <= 3
            (predicate,) = policy["retry_host_predicate"]
            assert predicate["name"] == "envoy.retry_host_predicates.previous_hosts"
            assert policy["host_selection_retry_max_attempts"] == 3
        for name, cluster in clusters(boot).items():
            if name == "app":
                assert "outlier_detection" not in cluster
                continue
            outlier = cluster["outlier_detection"]
            assert outlier["consecutive_gateway_failure"] == 3
            assert outlier["enforcing_consecutive_gateway_failure"] == 100
            assert outlier["max_ejection_percent"] == 50
        directions = {
            x["name"]: x.get("traffic_direction") for x in boot["static_resources"]["listeners"]
        }
        # Only the inbound listener drains; the app keeps calling out while it stops.
        assert directions["ingress_tls"] == "INBOUND"
        assert {d for n, d in directions.items() if n.startswith("egress_")} <= {"OUTBOUND"}


def test_the_gateway_takes_the_client_address_from_the_nlb_proxy_protocol_header(graph):
    group = graph.one("aws:lb/targetGroup:TargetGroup")
    assert group.inputs["proxyProtocolV2"] is True
    # TCP health checks keep working: the NLB sends them a header without an address.
    assert group.inputs["healthCheck"]["protocol"] == "TCP"
    gateway = bootstrap(task(graph, "gateway"))
    ingress = gateway["static_resources"]["listeners"][0]
    (proxy,) = ingress["listener_filters"]
    assert proxy["name"] == "envoy.filters.listener.proxy_protocol"
    hcm = ingress["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["use_remote_address"] is True and hcm["xff_num_trusted_hops"] == 0
    # Services are reached by the gateway, never through the NLB: no header there.
    service = bootstrap(task(graph, "backend"))
    assert "listener_filters" not in service["static_resources"]["listeners"][0]


# --------------------------------------------------------------------------- day 2: CA change


def _root_pem(label: str) -> str:
    certificate, _ = own_pki(label=label)
    return certificate["chainPem"]


def test_an_additional_root_is_in_every_ca_pem_and_rolls_every_task(program):
    other = _root_pem("next")
    before = _published(program(MINIMAL))
    during = _published(program({**MINIMAL, "mesh": {"additionalTrustedCaPem": other}}))
    ca_before = json.loads(before[0])["caPem"]
    ca_during = json.loads(during[0])["caPem"]
    # The mesh's root first, then the other: one file Envoy trusts as a whole.
    assert ca_during.startswith(ca_before) and ca_during.endswith(other)
    for node in NODES:
        assert during[1][node] != before[1][node], node
    # Dropping it again goes back to the mesh's root alone, and rolls the tasks again.
    assert _published(program(MINIMAL)) == before


def test_an_additional_root_with_your_own_certificate(program):
    certificate, client = own_pki()
    other = _root_pem("next")
    config = {
        **MINIMAL,
        "certificate": certificate,
        "mesh": {"clientCertificate": client, "additionalTrustedCaPem": other},
    }
    event, _ = _published(program(config, secret_keys=("certificate", "mesh")))
    assert json.loads(event)["caPem"] == certificate["chainPem"] + other


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["pem"], "PEM text of one or more root CA certificates"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "is not PEM"),
    ],
)
def test_a_bad_additional_root_is_refused_naming_the_key(value, message):
    from settings import parse_settings
    from settings.errors import ConfigError

    with pytest.raises(ConfigError, match=r"mesh\.additionalTrustedCaPem") as error:
        parse_settings({**MINIMAL, "mesh": {"additionalTrustedCaPem": value}})
    assert message in str(error.value)


def test_a_leaf_is_not_an_additional_root():
    from settings import parse_settings
    from settings.errors import ConfigError

    certificate, _ = own_pki()
    with pytest.raises(ConfigError, match="which is not a root CA"):
        parse_settings(
            {**MINIMAL, "mesh": {"additionalTrustedCaPem": certificate["certificatePem"]}}
        )

"""Topology alb-envoy under mocks: ALB TLS policy, re-encryption to Envoy, secrets by reference."""

from __future__ import annotations

import json

import pytest

from constants.images import ENVOY_IMAGE
from scripts.mock_runtime import config_error, is_secret, plaintext, unwrap
from scripts.pki import make_pki
from tests.conftest import MINIMAL_CONFIG

MINIMAL = MINIMAL_CONFIG["alb-envoy"]
PKI = make_pki("app.example.com")
CERT, CHAIN, KEY = PKI.leaf_pem, PKI.chain_pem, PKI.key_pem
# The engine lists `certificate` as secret once privateKeyPem is set with --path --secret.
SECRET = ("certificate",)
BRING_YOUR_OWN = {
    **MINIMAL,
    "certificate": {"certificatePem": CERT, "privateKeyPem": KEY, "chainPem": CHAIN},
}


def containers(graph) -> dict[str, dict]:
    td = graph.one("aws:ecs/taskDefinition:TaskDefinition")
    return {c["name"]: c for c in json.loads(unwrap(td.inputs["containerDefinitions"]))}


@pytest.fixture(scope="module", params=["generated", "bring-your-own"])
def case(request):
    from scripts.mock_runtime import run_program

    if request.param == "generated":
        return request.param, run_program(MINIMAL)
    return request.param, run_program(BRING_YOUR_OWN, secret_keys=SECRET)


def test_https_listener_has_an_explicit_tls13_policy(case):
    _, graph = case
    https = graph.one("aws:lb/listener:Listener", "alb-envoy-https")
    assert https.inputs["port"] == 443 and https.inputs["protocol"] == "HTTPS"
    assert https.inputs["sslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"
    cert = graph.one("aws:acm/certificate:Certificate")
    assert https.inputs["certificateArn"] == cert.outputs["arn"]


def test_http_listener_only_redirects_to_https(case):
    _, graph = case
    http = graph.one("aws:lb/listener:Listener", "alb-envoy-http")
    (action,) = http.inputs["defaultActions"]
    assert action["type"] == "redirect"
    assert action["redirect"] == {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}


def test_alb_is_public_and_drops_invalid_headers(case):
    _, graph = case
    lb = graph.one("aws:lb/loadBalancer:LoadBalancer")
    assert lb.inputs["loadBalancerType"] == "application"
    assert lb.inputs["internal"] is False
    assert lb.inputs["dropInvalidHeaderFields"] is True
    public = {
        s.id for s in graph.of_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == "public"
    }
    assert set(lb.inputs["subnets"]) == public


def test_target_group_reencrypts_to_envoy(case):
    _, graph = case
    tg = graph.one("aws:lb/targetGroup:TargetGroup")
    assert (tg.inputs["protocol"], tg.inputs["port"], tg.inputs["targetType"]) == (
        "HTTPS",
        8443,
        "ip",
    )
    hc = tg.inputs["healthCheck"]
    assert (hc["protocol"], hc["port"], hc["path"]) == ("HTTPS", "traffic-port", "/")


def test_no_task_port_is_open_to_the_internet(case):
    _, graph = case
    alb_sg = graph.one("aws:ec2/securityGroup:SecurityGroup", "alb-envoy")
    tasks_sg = graph.one("aws:ec2/securityGroup:SecurityGroup", "alb-envoy-tasks")
    ingress = graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    to_tasks = [r for r in ingress if r.inputs["securityGroupId"] == tasks_sg.id]
    assert len(to_tasks) == 1
    (rule,) = to_tasks
    assert rule.inputs["referencedSecurityGroupId"] == alb_sg.id
    assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (8443, 8443)
    assert "cidrIpv4" not in rule.inputs
    from_internet = [r for r in ingress if r.inputs.get("cidrIpv4") == "0.0.0.0/0"]
    assert {r.inputs["fromPort"] for r in from_internet} == {80, 443}
    assert all(r.inputs["securityGroupId"] == alb_sg.id for r in from_internet)
    egress = graph.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    (alb_out,) = [r for r in egress if r.inputs["securityGroupId"] == alb_sg.id]
    assert alb_out.inputs["referencedSecurityGroupId"] == tasks_sg.id


def test_envoy_reads_certificate_and_key_from_the_secret(case):
    _, graph = case
    secret = graph.one("aws:secretsmanager/secret:Secret")
    envoy = containers(graph)["envoy"]
    assert {s["name"]: s["valueFrom"] for s in envoy["secrets"]} == {
        "ENVOY_TLS_CERTIFICATE_CHAIN": f"{secret.outputs['arn']}:certificateChain::",
        "ENVOY_TLS_PRIVATE_KEY": f"{secret.outputs['arn']}:privateKey::",
    }
    assert all("PRIVATE KEY" not in e["value"] for e in envoy.get("environment", []))
    assert "secrets" not in containers(graph)["app"]


def test_secret_value_and_acm_key_are_pulumi_secrets(case):
    _, graph = case
    version = graph.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert is_secret(version.inputs["secretString"])
    document = json.loads(unwrap(version.inputs["secretString"]))
    assert set(document) == {"certificateChain", "privateKey"}
    assert "PRIVATE KEY" in document["privateKey"]
    assert document["certificateChain"].count("BEGIN CERTIFICATE") == 2
    acm = graph.one("aws:acm/certificate:Certificate")
    assert is_secret(acm.inputs["privateKey"])


def test_no_key_in_plaintext_anywhere(case):
    _, graph = case
    leaks = [
        (r.name, path)
        for r in graph
        for path, text in plaintext(r.inputs)
        if "PRIVATE KEY" in text and not r.type.startswith("tls:")
    ]
    leaks += [("stack", p) for p, t in plaintext(graph.stack_outputs) if "PRIVATE KEY" in t]
    assert leaks == []


def test_task_definition_carries_no_certificate_text(case):
    _, graph = case
    td = graph.one("aws:ecs/taskDefinition:TaskDefinition")
    text = unwrap(td.inputs["containerDefinitions"])
    assert "-----BEGIN" not in text


def test_execution_role_reads_only_this_secret(case):
    _, graph = case
    secret = graph.one("aws:secretsmanager/secret:Secret")
    policy = graph.one("aws:iam/rolePolicy:RolePolicy", "alb-envoy-read-certificate")
    document = json.loads(policy.inputs["policy"])
    (statement,) = document["Statement"]
    assert statement["Action"] == ["secretsmanager:GetSecretValue"]
    assert statement["Resource"] == [secret.outputs["arn"]]
    role = graph.one("aws:iam/role:Role", "cluster-execution")
    assert policy.inputs["role"] == role.id


def test_service_runs_privately_and_rolls_back(case):
    _, graph = case
    service = graph.one("aws:ecs/service:Service")
    net = service.inputs["networkConfiguration"]
    assert net["assignPublicIp"] is False
    private = {
        s.id
        for s in graph.of_type("aws:ec2/subnet:Subnet")
        if s.inputs["tags"]["tier"] == "private"
    }
    assert set(net["subnets"]) == private
    assert service.inputs["desiredCount"] == 2
    assert service.inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert service.inputs["healthCheckGracePeriodSeconds"] > 0
    (lb,) = service.inputs["loadBalancers"]
    assert (lb["containerName"], lb["containerPort"]) == ("envoy", 8443)


def test_service_waits_for_listener_secret_and_permission(case):
    _, graph = case
    service = graph.one("aws:ecs/service:Service")
    for needed in (
        graph.one("aws:lb/listener:Listener", "alb-envoy-https"),
        graph.one("aws:iam/rolePolicy:RolePolicy", "alb-envoy-read-certificate"),
        graph.one("aws:secretsmanager/secretVersion:SecretVersion"),
    ):
        assert graph.depends_on(service, needed), needed


def test_envoy_container_runs_the_v3_bootstrap_with_socket_admin_and_loopback_health(case):
    _, graph = case
    envoy, app = containers(graph)["envoy"], containers(graph)["app"]
    assert envoy["image"] == ENVOY_IMAGE
    assert envoy["command"][0] == "--config-yaml"
    bootstrap = json.loads(envoy["command"][1])
    # The app shares the task's loopback: the admin API must not be a TCP port.
    assert bootstrap["admin"] == {
        "address": {"pipe": {"path": "/tmp/envoy-admin.sock", "mode": 0o600}}
    }
    listeners = {entry["name"]: entry for entry in bootstrap["static_resources"]["listeners"]}
    assert set(listeners) == {"ingress_tls", "health"}
    assert listeners["ingress_tls"]["address"]["socket_address"]["port_value"] == 8443
    assert listeners["health"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 9902,
    }
    hcm = listeners["ingress_tls"]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["timeout"] == "60s"
    (cluster,) = bootstrap["static_resources"]["clusters"]
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 80}
    assert envoy["portMappings"] == [
        {"containerPort": 8443, "hostPort": 8443, "protocol": "tcp", "name": "https"}
    ]
    assert envoy["healthCheck"]["command"][:2] == ["CMD", "bash"]
    assert "/dev/tcp/127.0.0.1/9902" in envoy["healthCheck"]["command"][-1]
    assert "portMappings" not in app
    assert envoy["dependsOn"] == [{"containerName": "app", "condition": "START"}]
    for c in (envoy, app):
        assert c["logConfiguration"]["options"]["awslogs-group"] == "/ecs/ecs-tls-dev"


def test_outputs_tell_the_user_how_to_verify(case):
    kind, graph = case
    out = graph.stack_outputs
    assert out["topology"] == "alb-envoy"
    assert out["endpoint"] == "https://app.example.com"
    lb = graph.one("aws:lb/loadBalancer:LoadBalancer")
    assert out["albDnsName"] == lb.outputs["dnsName"]
    assert out["certificateArn"] == graph.one("aws:acm/certificate:Certificate").outputs["arn"]
    # No zone: the command reaches the ALB by name while checking the certificate for domain.
    assert f"--connect-to app.example.com:443:{lb.outputs['dnsName']}:443" in out["verifyCommand"]
    assert "-servername app.example.com" in out["opensslCommand"]
    if kind == "generated":
        assert "BEGIN CERTIFICATE" in out["caCertificatePem"]
        assert "--cacert ca.pem" in out["verifyCommand"]
    else:
        assert "caCertificatePem" not in out
        assert "--cacert" not in out["verifyCommand"]
        assert not graph.of_type("tls:index/privateKey:PrivateKey")


def test_bring_your_own_certificate_is_imported_as_given():
    from scripts.mock_runtime import run_program

    graph = run_program(BRING_YOUR_OWN, secret_keys=SECRET)
    acm = graph.one("aws:acm/certificate:Certificate")
    # All three secret: the engine marks the whole of `certificate` secret once a field of
    # it is set with --path --secret.
    assert is_secret(acm.inputs["certificateBody"]) and is_secret(acm.inputs["certificateChain"])
    assert unwrap(acm.inputs["certificateBody"]) == CERT
    assert unwrap(acm.inputs["certificateChain"]) == CHAIN
    assert unwrap(acm.inputs["privateKey"]) == KEY


def test_generated_chain_is_ecdsa_p256_for_the_domain():
    from scripts.mock_runtime import run_program

    graph = run_program(MINIMAL)
    keys = graph.of_type("tls:index/privateKey:PrivateKey")
    assert len(keys) == 2
    assert all((k.inputs["algorithm"], k.inputs["ecdsaCurve"]) == ("ECDSA", "P256") for k in keys)
    request = graph.one("tls:index/certRequest:CertRequest")
    assert request.inputs["dnsNames"] == ["app.example.com"]
    leaf = graph.one("tls:index/locallySignedCert:LocallySignedCert")
    assert "server_auth" in leaf.inputs["allowedUses"]
    ca = graph.one("tls:index/selfSignedCert:SelfSignedCert")
    assert ca.inputs["isCaCertificate"] is True


def test_options_reach_the_resources(program):
    graph = program(
        {
            **MINIMAL,
            "hostedZoneId": "Z0123456789ABCDEFGHIJ",
            "sslPolicy": "ELBSecurityPolicy-TLS13-1-3-2021-06",
            "allowedCidrs": ["203.0.113.0/24", "198.51.100.0/24"],
            "envoy": {"minTlsVersion": "1.3", "port": 9443},
            "app": {"image": "ghcr.io/acme/web:2", "port": 8080, "healthCheckPath": "/healthz"},
        }
    )
    https = graph.one("aws:lb/listener:Listener", "alb-envoy-https")
    assert https.inputs["sslPolicy"] == "ELBSecurityPolicy-TLS13-1-3-2021-06"
    ingress = graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    cidrs = {r.inputs.get("cidrIpv4") for r in ingress} - {None}
    assert cidrs == {"203.0.113.0/24", "198.51.100.0/24"}
    envoy = containers(graph)["envoy"]
    bootstrap = json.loads(envoy["command"][1])
    tls = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["transport_socket"]
    params = tls["typed_config"]["common_tls_context"]["tls_params"]
    assert params["tls_minimum_protocol_version"] == "TLSv1_3"
    assert graph.one("aws:lb/targetGroup:TargetGroup").inputs["port"] == 9443
    assert graph.one("aws:lb/targetGroup:TargetGroup").inputs["healthCheck"]["path"] == "/healthz"
    assert containers(graph)["app"]["image"] == "ghcr.io/acme/web:2"
    record = graph.one("aws:route53/record:Record", "domain")
    assert (record.inputs["zoneId"], record.inputs["name"], record.inputs["type"]) == (
        "Z0123456789ABCDEFGHIJ",
        "app.example.com",
        "A",
    )
    lb = graph.one("aws:lb/loadBalancer:LoadBalancer")
    assert record.inputs["aliases"][0]["name"] == lb.outputs["dnsName"]
    assert graph.stack_outputs["verifyCommand"].endswith(
        "curl --fail --cacert ca.pem https://app.example.com/"
    )


def test_no_dns_record_without_a_zone(program):
    assert program(MINIMAL).of_type("aws:route53/record:Record") == []


def test_new_certificate_rolls_the_tasks(program):
    def fingerprint(config):
        envoy = containers(program(config, secret_keys=SECRET))["envoy"]
        return {e["name"]: e["value"] for e in envoy["environment"]}["CERTIFICATE_SHA256"]

    other = make_pki("app.example.com", label="renewed").certificate_config()
    assert fingerprint(BRING_YOUR_OWN) != fingerprint({**MINIMAL, "certificate": other})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {**MINIMAL, "sslPolicy": "ELBSecurityPolicy-2016-08"},
            "ecs-tls:sslPolicy: 'ELBSecurityPolicy-2016-08' is not accepted: it lets clients "
            "use TLS 1.0 or 1.1; use ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09 (TLS 1.3 and "
            "1.2, forward-secret suites only) or another TLS13-1-2 or TLS13-1-3 policy",
        ),
        (
            {**MINIMAL, "envoy": {"minTlsVersion": "1.1"}},
            "ecs-tls:envoy.minTlsVersion: '1.1' is not one of: 1.2, 1.3",
        ),
        (
            {**MINIMAL, "envoy": {"port": 80}},
            "ecs-tls:envoy.port: 80 is not an integer from 1024 to 65535",
        ),
        (
            {**MINIMAL, "envoy": {"port": 8080}, "app": {"port": 8080}},
            "ecs-tls:envoy.port: 8080 is not free: app.port is also 8080",
        ),
        (
            {**MINIMAL, "app": {"port": 9902}},
            "ecs-tls:app.port: 9902 is not free: Envoy's health listener binds it on 127.0.0.1",
        ),
        (
            {**MINIMAL, "envoy": {"port": 9902}},
            "ecs-tls:envoy.port: 9902 is not free: Envoy's health listener binds it on 127.0.0.1",
        ),
        (
            {**MINIMAL_CONFIG["service-connect"], "envoy": {"port": 9443}},
            "ecs-tls:envoy: applies to alb-envoy, appmesh-efs and direct-task, "
            "not 'service-connect'",
        ),
        (
            {**MINIMAL, "allowedCidrs": ["0.0.0.0/0", "::/0"]},
            "ecs-tls:allowedCidrs: '::/0' is not an IPv4 CIDR such as 203.0.113.0/24",
        ),
    ],
)
def test_bad_alb_envoy_config(stand_in_topologies, config, message):
    assert config_error(config) == message


def test_envoy_is_tuned_for_the_task_size(program):
    graph = program(
        {
            **MINIMAL,
            "app": {"cpu": 2048, "memory": 4096},
            "envoy": {"accessLog": "sampled", "upstreamIdleTimeoutSeconds": 20},
        }
    )
    command = containers(graph)["envoy"]["command"]
    assert command[command.index("--concurrency") + 1] == "2"
    bootstrap = json.loads(command[1])
    heap = bootstrap["overload_manager"]["resource_monitors"][0]["typed_config"]
    assert heap["max_heap_size_bytes"] == 1024 * 2**20  # a quarter of the task's 4 GiB
    (cluster,) = bootstrap["static_resources"]["clusters"]
    options = cluster["typed_extension_protocol_options"]
    (http,) = options.values()
    assert http["common_http_protocol_options"]["idle_timeout"] == "20s"
    (log,) = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]["access_log"]
    assert "runtime_filter" in log["filter"]


@pytest.mark.parametrize(
    ("envoy", "message"),
    [
        ({"accessLog": "some"}, "envoy.accessLog"),
        ({"upstreamIdleTimeoutSeconds": 0}, "envoy.upstreamIdleTimeoutSeconds"),
    ],
)
def test_bad_envoy_tuning_config(stand_in_topologies, envoy, message):
    assert message in config_error({**MINIMAL, "envoy": envoy})

"""The real Terraform AWS provider against moto, every request checked (./scripts/emulate).

Every shipped stack is applied, switched to another topology on the same state and
destroyed, in three chains that run side by side (each its own moto and Terraform):

- nlb-certbot -> direct-task -> nlb-certbot: the database's retained volume survives both
  switches and the destroy;
- dev -> appmesh-efs -> alb-envoy;
- service-connect -> alb-envoy -> direct-task.

Then the rules themselves, through the provider: a security group description with an
apostrophe and a TXT string of 256 characters are refused by the request check, naming the
rule and its source.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import plan
from scripts.mock_runtime import ROOT

pytestmark = pytest.mark.integration

CHAIN_TEST = "test_every_stack_applies_switches_and_destroys"
CHAINS = {
    "nlb-certbot": ["direct-task", "nlb-certbot"],
    "dev": ["appmesh-efs", "alb-envoy"],
    "service-connect": ["alb-envoy", "direct-task"],
}


def need_terraform() -> None:
    from scripts.emulator.run import INSTALL_HINT

    if shutil.which("terraform") is None:
        if os.environ.get("CI") == "true":
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)


@pytest.fixture(scope="module", autouse=True)
def chains(request, tmp_path_factory):
    """Start every chain with the module's first test; each chain's test waits for it.
    Nothing starts when no chain test is selected (`-k`)."""
    running = {}
    selected = [i for i in request.session.items if i.originalname == CHAIN_TEST]
    if not selected:
        yield running
        return
    need_terraform()
    for stack, switches in CHAINS.items():
        workdir = tmp_path_factory.mktemp(f"emulate-{stack}")
        # Stack files by path: a user's Pulumi.<name>.yaml of the same name is not the shipped one.
        shipped = plan.shipped()
        first = str(shipped[stack])
        command = [sys.executable, "-m", "scripts.emulator.run", first, "--workdir", str(workdir)]
        for other in switches:
            command += ["--switch-to", str(shipped[other])]
        log = (workdir / "run.log").open("w")
        running[stack] = (
            subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT),
            workdir,
        )
    yield running
    for process, _ in running.values():
        if process.poll() is None:
            process.kill()
            process.wait()


# --- the rules, through the real provider ----------------------------------------------


def apply(tmp_path: Path, resources: dict) -> tuple[int, str, list[str]]:
    """Apply `resources` (Terraform JSON) against a fresh emulator; (exit status, output,
    violations the request check recorded)."""
    from scripts.emulator import server
    from scripts.emulator.run import Terraform, init, plugin_dir, provider_version, schema
    from scripts.emulator.translate import provider_block

    need_terraform()
    mirror = plugin_dir()
    tf = Terraform(tmp_path)
    init(tf, provider_version(mirror), mirror)
    provider = schema(tf, provider_version(mirror))
    with server.start() as emulator:
        config = {
            "provider": {"aws": provider_block(provider, emulator.url, "eu-west-1")},
            "resource": resources,
        }
        (tmp_path / "main.tf.json").write_text(json.dumps(config))
        done = tf.run("apply", "-auto-approve", "-input=false", check=False)
        violations = [str(v) for v in emulator.checked.violations]
    return done.returncode, done.stdout + done.stderr, violations


def test_the_provider_sending_an_apostrophe_in_a_rule_description_fails(tmp_path):
    status, output, violations = apply(
        tmp_path,
        {
            "aws_vpc": {"v": {"cidr_block": "10.0.0.0/16"}},
            "aws_security_group": {
                "g": {"name": "g", "description": "ok", "vpc_id": "${aws_vpc.v.id}"}
            },
            "aws_vpc_security_group_egress_rule": {
                "r": {
                    "security_group_id": "${aws_security_group.g.id}",
                    "ip_protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_ipv4": "10.0.0.0/16",
                    "description": "To the targets' port",
                }
            },
        },
    )
    assert status != 0
    (violation,) = violations
    assert "AuthorizeSecurityGroupEgress" in violation
    assert "ec2-description" in violation and "EC2 API reference" in violation
    assert "ec2-description" in output  # the provider's error carries the check's message


def test_the_provider_sending_a_txt_string_of_256_characters_fails(tmp_path):
    status, output, violations = apply(
        tmp_path,
        {
            "aws_route53_zone": {"z": {"name": "example.com"}},
            "aws_route53_record": {
                "ok": {
                    "zone_id": "${aws_route53_zone.z.zone_id}",
                    "name": "ok.example.com",
                    "type": "TXT",
                    "ttl": 60,
                    "records": ["a" * 255],
                },
                "long": {
                    "zone_id": "${aws_route53_zone.z.zone_id}",
                    "name": "long.example.com",
                    "type": "TXT",
                    "ttl": 60,
                    "records": ["b" * 256],
                },
            },
        },
    )
    assert status != 0
    (violation,) = violations
    assert "ChangeResourceRecordSets" in violation and "route53-txt-string" in violation
    assert "Route53 API reference" in violation
    assert "route53-txt-string" in output


def test_a_dot_in_a_snapshot_policy_description_fails_before_any_request(tmp_path):
    # The provider checks DLM's pattern itself (at validate); the request check would too.
    status, output, violations = apply(
        tmp_path,
        {
            "aws_dlm_lifecycle_policy": {
                "p": {
                    "description": "Daily snapshots of db.example.com",
                    "execution_role_arn": "arn:aws:iam::123456789012:role/dlm",
                    "policy_details": [
                        {
                            "resource_types": ["VOLUME"],
                            "target_tags": {"k": "v"},
                            "schedule": [
                                {
                                    "name": "daily 7 kept",
                                    "create_rule": [{"interval": 24}],
                                    "retain_rule": [{"count": 7}],
                                }
                            ],
                        }
                    ],
                }
            }
        },
    )
    assert status != 0 and violations == []
    assert "invalid value for description" in output


# --- the translation, without applying ----------------------------------------------------


@pytest.fixture(scope="module")
def provider_schema(tmp_path_factory):
    from scripts.emulator.run import Terraform, init, plugin_dir, provider_version, schema

    need_terraform()
    mirror = plugin_dir()
    tf = Terraform(tmp_path_factory.mktemp("schema"))
    init(tf, provider_version(mirror), mirror)
    return schema(tf, provider_version(mirror))


def translated(provider_schema, stack: str):
    from scripts.emulator.translate import TlsMaterial, translate
    from scripts.mock_runtime import run_program
    from scripts.plan import load_stack, shipped

    name, source = load_stack(str(shipped()[stack]))
    graph = run_program(source.config, stack=name, secret_keys=source.secret_keys)
    return graph, translate(
        graph, provider_schema, "http://127.0.0.1:1", "eu-west-1", TlsMaterial()
    )


@pytest.mark.parametrize("stack", ["dev", "nlb-certbot", "appmesh-efs", "direct-task"])
def test_every_value_from_another_resource_becomes_a_reference(provider_schema, stack):
    graph, translation = translated(provider_schema, stack)
    assert translation.unresolved == []
    assert len(translation.addresses) == len(
        [r for r in graph if r.custom and not r.type.startswith("tls:")]
    )
    # No mock stand-in ID reaches the provider in another resource: it is a reference.
    bodies = {
        f"{t}.{n}": json.dumps(body)
        for t, named in translation.config["resource"].items()
        for n, body in named.items()
    }
    for address, r in translation.addresses.items():
        for other, body in bodies.items():
            if other != address:
                assert f'"{r.id}"' not in body, (r, other)


def test_the_translation_keeps_pulumi_behaviour(provider_schema):
    _, translation = translated(provider_schema, "nlb-certbot")
    resources = translation.config["resource"]
    (volume,) = resources["aws_ebs_volume"].values()
    # Pulumi's replace order and the volume's pinned zone and key, as Terraform says them.
    assert volume["lifecycle"] == [
        {"create_before_destroy": True, "ignore_changes": ["availability_zone", "kms_key_id"]}
    ]
    (service,) = [s for s in resources["aws_ecs_service"].values() if "depends_on" in s]
    assert service["cluster"].startswith("${aws_ecs_cluster.")
    # Auto-names: the logical name and seven characters, as pulumi-aws makes them.
    for lb in resources["aws_lb"].values():
        assert re.fullmatch(r"[a-z0-9-]+-[0-9a-f]{7}", lb["name"])
    # pulumi-tls: real PEM in place of the mocks' stand-in text.
    _, dev = translated(provider_schema, "dev")
    certificate = json.dumps(dev.config["resource"]["aws_acm_certificate"])
    assert "-----BEGIN CERTIFICATE-----\\nMII" in certificate
    assert [a.split(".")[0] for a in translation.not_created] == ["aws_dlm_lifecycle_policy"]


def test_an_acm_validation_record_refers_to_the_certificate_it_validates(provider_schema):
    """The record's name and value are inside a set of objects: the provider's own values,
    not the mocks' (ACM picks the token when it creates the certificate)."""
    from scripts.emulator.translate import TlsMaterial, translate
    from scripts.mock_runtime import run_program

    config = {
        "aws:region": "eu-west-1",
        "topology": "alb-envoy",
        "domain": "app.example.com",
        "hostedZoneId": "Z0123456789ABCDEFGHIJ",
        "certificate": {"source": "acm"},
    }
    graph = run_program(config)
    translation = translate(
        graph, provider_schema, "http://127.0.0.1:1", "eu-west-1", TlsMaterial()
    )
    assert translation.unresolved == []
    (address,) = [
        f"aws_acm_certificate.{n}" for n in translation.config["resource"]["aws_acm_certificate"]
    ]
    records = translation.config["resource"]["aws_route53_record"]
    (record,) = [r for n, r in records.items() if "validation" in n]
    options = f"tolist({address}.domain_validation_options)[0]"
    assert record["name"] == f"${{{options}.resource_record_name}}"
    assert record["records"] == [f"${{{options}.resource_record_value}}"]


def test_an_input_the_provider_does_not_have_is_an_error(provider_schema):
    from scripts.emulator.translate import TranslateError, convert_block

    block = provider_schema.block("aws_security_group")
    assert convert_block({"description": "x"}, block, "t") == {"description": "x"}
    with pytest.raises(TranslateError, match="no argument 'not_an_argument'"):
        convert_block({"notAnArgument": 1}, block, "aws:ec2/securityGroup:SecurityGroup")


# --- the chains, last: the tests above run while they do ------------------------------


@pytest.mark.parametrize("stack", list(CHAINS))
def test_every_stack_applies_switches_and_destroys(chains, stack):
    process, workdir = chains[stack]
    try:
        process.wait(timeout=540)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"{stack}: still running after 9 minutes")
    output = (workdir / "run.log").read_text()
    assert process.returncode == 0, output[-6000:]
    assert output.count("requests checked against botocore's models") == len(CHAINS[stack]) + 2
    assert "nothing else is left" in output
    for other in CHAINS[stack]:
        assert f"== switch to {plan.shipped()[other]}" in output
    if stack == "nlb-certbot":
        # The database's volume: out of the state when the topology goes, and still in AWS.
        assert "retain  aws:ebs/volume:Volume" in output
        assert "kept    aws:ebs/volume:Volume" in output
        assert "planned, not created: aws:dlm/lifecyclePolicy:LifecyclePolicy" in output

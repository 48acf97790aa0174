"""nlb-certbot, day 2: the data volume is never replaced by a configuration change, a
Graviton instance gets the arm64 AMI, a customer managed key encrypts the volumes.

The mocks answer a registration with its inputs as outputs, as a provider does on create.
A volume that already exists is simulated by outputs that differ from the inputs: with
ignore_changes, that is what the provider reports for the zone and the key it really has.
"""

from __future__ import annotations

import base64
import json

import pytest

from components.ec2_capacity import ECS_AMI, ECS_AMI_ARM64, instance_architecture
from components.persistent_volume import kept_volume_problem, subnet_in_zone
from scripts import mock_runtime
from scripts.mock_runtime import config_error, run_program
from settings import ConfigError
from tests.conftest import MINIMAL_CONFIG

DNS01 = MINIMAL_CONFIG["nlb-certbot"]
KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY = "arn:aws:kms:eu-west-1:123456789012:key/0000abcd-12ab-34cd-56ef-1234567890ab"
EXISTING_VPC = {
    "vpcId": "vpc-0123456789abcdef0",
    "publicSubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    # The mock runtime puts subnets ending in an even digit in eu-west-1a, odd in eu-west-1b.
    "privateSubnetIds": ["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"],
}
REORDERED_VPC = {**EXISTING_VPC, "privateSubnetIds": EXISTING_VPC["privateSubnetIds"][::-1]}


def run_with_volume_state(monkeypatch, config, **state):
    """Run the program against a data volume that already exists with `state`."""
    original = mock_runtime._resource_outputs

    def outputs(args):
        resource_id, values = original(args)
        if args.typ == "aws:ebs/volume:Volume":
            values = {**values, **state}
        return resource_id, values

    monkeypatch.setattr(mock_runtime, "_resource_outputs", outputs)
    return mock_runtime._run(config, "dev")


def group_subnet(graph) -> str:
    (subnet,) = graph.one("aws:autoscaling/group:Group").inputs["vpcZoneIdentifiers"]
    return subnet


# ------------------------------------------------------------ no silent replacement


def test_zone_and_key_cannot_replace_the_volume():
    volume = run_program(DNS01).one("aws:ebs/volume:Volume")
    assert set(volume.ignore_changes) == {"availabilityZone", "kmsKeyId"}
    assert volume.retain_on_delete


def test_reordered_subnets_keep_the_volume_and_the_instance_follows_it(monkeypatch):
    created = run_program({**DNS01, "network": EXISTING_VPC})
    assert created.one("aws:ebs/volume:Volume").inputs["availabilityZone"] == "eu-west-1a"
    assert group_subnet(created) == "subnet-0123456789abcdef2"
    # Reordered: the configuration now names eu-west-1b first; the volume stays in 1a.
    graph = run_with_volume_state(
        monkeypatch, {**DNS01, "network": REORDERED_VPC}, availabilityZone="eu-west-1a"
    )
    assert group_subnet(graph) == "subnet-0123456789abcdef2"
    assert graph.stack_outputs["dataVolumeZone"] == "eu-west-1a"


def test_a_configured_zone_other_than_the_volumes_stops_with_the_steps(monkeypatch):
    config = {**DNS01, "network": EXISTING_VPC, "app": {"dataVolumeZone": "eu-west-1b"}}
    with pytest.raises(ConfigError) as caught:
        run_with_volume_state(monkeypatch, config, availabilityZone="eu-west-1a")
    message = str(caught.value)
    assert message.startswith("ecs-tls:app.dataVolumeZone: the data volume vol-")
    assert "is in eu-west-1a, not in eu-west-1b" in message
    for step in ("aws ec2 create-snapshot", "app.dataVolumeSnapshotId", "set app.dataVolumeZone"):
        assert step in message
    assert not caught.value.graph.of_type("aws:autoscaling/group:Group")


def test_a_key_set_on_an_existing_volume_stops_with_the_steps(monkeypatch):
    config = {**DNS01, "app": {"dataVolumeKmsKeyArn": KEY}}
    with pytest.raises(ConfigError) as caught:
        run_with_volume_state(monkeypatch, config, kmsKeyId=OTHER_KEY)
    message = str(caught.value)
    assert message.startswith("ecs-tls:app.dataVolumeKmsKeyArn: the data volume vol-")
    assert f"encrypted with {OTHER_KEY}, not with {KEY}" in message
    assert "app.dataVolumeSnapshotId" in message
    # The same key as the volume's: nothing to do.
    graph = run_with_volume_state(monkeypatch, config, kmsKeyId=KEY)
    assert graph.one("aws:ebs/volume:Volume").outputs["kmsKeyId"] == KEY


def test_no_private_subnet_left_in_the_volumes_zone_stops(monkeypatch):
    only_b = {**EXISTING_VPC, "privateSubnetIds": ["subnet-0123456789abcdef3"]}
    with pytest.raises(ConfigError) as caught:
        run_with_volume_state(
            monkeypatch, {**DNS01, "network": only_b}, availabilityZone="eu-west-1a"
        )
    assert str(caught.value).startswith(
        "ecs-tls:network.privateSubnetIds: no private subnet is in eu-west-1a"
    )


def test_a_restore_is_a_new_volume_in_the_configured_zone():
    snapshot = "snap-0123456789abcdef0"
    config = {
        **DNS01,
        "network": EXISTING_VPC,
        "app": {"dataVolumeSnapshotId": snapshot, "dataVolumeZone": "eu-west-1b"},
    }
    graph = run_program(config)
    volume = graph.one("aws:ebs/volume:Volume")
    blank = run_program({**DNS01, "network": EXISTING_VPC}).one("aws:ebs/volume:Volume")
    # Another logical resource: created from the snapshot, never an update of the old one.
    assert volume.urn != blank.urn and volume.name.endswith(snapshot)
    assert volume.inputs["availabilityZone"] == "eu-west-1b"
    assert volume.inputs["snapshotId"] == snapshot
    assert group_subnet(graph) == "subnet-0123456789abcdef3"


def test_a_zone_without_a_private_subnet_is_refused():
    config = {**DNS01, "network": EXISTING_VPC, "app": {"dataVolumeZone": "eu-west-1c"}}
    with pytest.raises(ConfigError) as caught:
        mock_runtime._run(config, "dev")
    assert str(caught.value).startswith(
        "ecs-tls:app.dataVolumeZone: no private subnet is in eu-west-1c"
    )


def test_kept_volume_problem_and_subnet_choice():
    same = {"volume_id": "vol-1", "zone": "eu-west-1a", "kms_key_id": KEY}
    assert kept_volume_problem(**same, wanted_zone=None, wanted_kms_key_arn=None) is None
    assert kept_volume_problem(**same, wanted_zone="eu-west-1a", wanted_kms_key_arn=KEY) is None
    assert kept_volume_problem(**same, wanted_zone="eu-west-1b", wanted_kms_key_arn=None)[0] == (
        "app.dataVolumeZone"
    )
    pairs = [("subnet-b", "eu-west-1b"), ("subnet-a", "eu-west-1a")]
    assert subnet_in_zone("eu-west-1a", pairs) == "subnet-a"
    assert subnet_in_zone("eu-west-1c", pairs) is None


def test_fargate_takes_no_data_volume_keys():
    for key, value in (("dataVolumeZone", "eu-west-1a"), ("dataVolumeKmsKeyArn", KEY)):
        app = {
            "capacity": "fargate",
            "image": "ghcr.io/acme/tls-app:1",
            "ports": [8443],
            key: value,
        }
        assert config_error({**DNS01, "app": app}) == (
            f"ecs-tls:app.{key}: applies to app.capacity 'ec2' only"
        )


# ------------------------------------------------------------ Graviton


@pytest.mark.parametrize(
    ("instance_type", "arch"),
    [
        ("t3.large", "x86_64"),
        ("m7i.large", "x86_64"),
        ("g5.xlarge", "x86_64"),
        ("g4dn.xlarge", "x86_64"),
        ("t4g.large", "arm64"),
        ("m7g.large", "arm64"),
        ("c7gn.large", "arm64"),
        ("r8gd.large", "arm64"),
        ("g5g.xlarge", "arm64"),
        ("im4gn.large", "arm64"),
    ],
)
def test_instance_architecture(instance_type, arch):
    assert instance_architecture(instance_type) == arch


@pytest.mark.parametrize(
    ("instance_type", "ami"), [("t3.large", ECS_AMI), ("m7g.large", ECS_AMI_ARM64)]
)
def test_a_graviton_instance_gets_the_arm64_ecs_ami(instance_type, ami):
    graph = run_program({**DNS01, "app": {"instanceType": instance_type}})
    template = graph.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs["imageId"] == ami
    assert template.inputs["instanceType"] == instance_type
    assert ami.endswith(
        "/amazon-linux-2023/arm64/recommended/image_id"
        if instance_type == "m7g.large"
        else "/amazon-linux-2023/recommended/image_id"
    )


def test_graviton_1_is_refused_naming_the_key():
    assert config_error({**DNS01, "app": {"instanceType": "a1.large"}}).startswith(
        "ecs-tls:app.instanceType: 'a1.large' is not a type the ECS-optimized Amazon Linux"
    )
    with pytest.raises(ValueError, match="a1"):
        instance_architecture("a1.large")


# ------------------------------------------------------------ customer managed key


def test_a_customer_key_encrypts_both_volumes_and_the_instance_may_grant_it():
    graph = run_program({**DNS01, "app": {"dataVolumeKmsKeyArn": KEY}})
    volume = graph.one("aws:ebs/volume:Volume")
    assert volume.inputs["kmsKeyId"] == KEY and volume.inputs["encrypted"]
    template = graph.one("aws:ec2/launchTemplate:LaunchTemplate")
    root = template.inputs["blockDeviceMappings"][0]["ebs"]
    assert (root["encrypted"], root["kmsKeyId"]) == ("true", KEY)
    document = json.loads(
        graph.one("aws:iam/rolePolicy:RolePolicy", "nlb-certbot-instances").inputs["policy"]
    )
    grant = next(s for s in document["Statement"] if s["Sid"] == "GrantForEncryptedVolume")
    assert grant == {
        "Sid": "GrantForEncryptedVolume",
        "Effect": "Allow",
        "Action": ["kms:CreateGrant"],
        "Resource": [KEY],
        "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
    }
    user_data = base64.b64decode(template.inputs["userData"]).decode()
    assert KEY not in user_data


def test_without_a_key_the_account_default_is_used_and_nothing_is_granted():
    graph = run_program(DNS01)
    assert "kmsKeyId" not in graph.one("aws:ebs/volume:Volume").inputs
    root = graph.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["blockDeviceMappings"][0]
    assert "kmsKeyId" not in root["ebs"]
    policy = graph.one("aws:iam/rolePolicy:RolePolicy", "nlb-certbot-instances").inputs["policy"]
    assert "kms:" not in policy


# ------------------------------------------------------------ expiry metric


@pytest.mark.parametrize(
    "config",
    [DNS01, {**DNS01, "acme": {**DNS01["acme"], "challenge": "http-01"}}],
    ids=["dns-01", "http-01"],
)
def test_every_renewal_run_reports_the_expiry_and_an_alarm_watches_it(config):
    from components.alerts import (
        CERTIFICATE_DIMENSION,
        CERTIFICATE_METRIC,
        CERTIFICATE_METRIC_NAMESPACE,
    )
    from constants.images import CERTBOT_DNS_ROUTE53_IMAGE
    from task_contents.certbot import RENEWAL_IMAGE

    graph = run_program(config)
    renewal = graph.one("aws:ecs/taskDefinition:TaskDefinition", "nlb-certbot-renewal")
    (certbot,) = json.loads(renewal.inputs["containerDefinitions"])
    # boto3 is in the Route53 plugin's image only, which renews with either challenge.
    assert certbot["image"] == RENEWAL_IMAGE == CERTBOT_DNS_ROUTE53_IMAGE
    environment = {e["name"]: e["value"] for e in certbot["environment"]}
    assert environment["CERTIFICATE_NAME"] == "db.example.com"
    assert environment["CERTIFICATE_FILE"].startswith("/etc/letsencrypt/live/db.example.com")
    role = graph.one("aws:iam/role:Role", "nlb-certbot-renewal-task")
    grant = graph.one("aws:iam/rolePolicy:RolePolicy", "nlb-certbot-renewal-expiry")
    assert grant.inputs["role"] == role.id
    (statement,) = json.loads(grant.inputs["policy"])["Statement"]
    assert statement["Action"] == ["cloudwatch:PutMetricData"]
    assert statement["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": CERTIFICATE_METRIC_NAMESPACE}
    }
    alarm = graph.one("aws:cloudwatch/metricAlarm:MetricAlarm", "nlb-certbot-certificate-expiry")
    assert (alarm.inputs["namespace"], alarm.inputs["metricName"]) == (
        CERTIFICATE_METRIC_NAMESPACE,
        CERTIFICATE_METRIC,
    )
    assert alarm.inputs["dimensions"] == {CERTIFICATE_DIMENSION: "db.example.com"}
    # 45-day certificates renew with 15 days left: fewer than 13 means runs failed.
    assert alarm.inputs["threshold"] == 13
    assert alarm.inputs["comparisonOperator"] == "LessThanThreshold"


def test_the_hook_program_speaks_the_metric_contract():
    from components import alerts
    from task_contents import renewal_hook

    assert renewal_hook.METRIC_NAMESPACE == alerts.CERTIFICATE_METRIC_NAMESPACE
    assert renewal_hook.METRIC_NAME == alerts.CERTIFICATE_METRIC
    assert renewal_hook.METRIC_DIMENSION == alerts.CERTIFICATE_DIMENSION


def test_a_custom_image_on_graviton_is_warned_about(monkeypatch):
    import pulumi

    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warnings.append(message))
    mock_runtime._run({**DNS01, "app": {"instanceType": "m7g.large"}}, "dev")
    assert not [w for w in warnings if "arm64" in w], "the program's images are multi-arch"
    custom = {**DNS01, "app": {"instanceType": "m7g.large", "image": "ghcr.io/acme/db:1"}}
    mock_runtime._run(custom, "dev")
    assert any("ghcr.io/acme/db:1 must have a linux/arm64 variant" in w for w in warnings)


def test_the_program_images_are_pinned_to_multi_arch_indexes():
    from constants.images import AWAITING_DIGEST, DEFAULT_IMAGES
    from settings.images import parse_reference

    for image in DEFAULT_IMAGES.values():
        # A digest of the multi-architecture index (constants/images.py says how to read it);
        # only the one awaiting confirmation goes by its tag, itself a multi-arch index.
        assert parse_reference(image).digest or image in AWAITING_DIGEST, image


# ------------------------------------------------------------ draining on termination


def test_an_instance_the_group_terminates_drains_its_tasks_first():
    from components.ec2_capacity import DRAIN_HOOK_SECONDS
    from task_contents.data_volume import DEFAULT_ATTACH_TIMEOUT_SECONDS

    graph = run_program(DNS01)
    group = graph.one("aws:autoscaling/group:Group")
    hook = graph.one("aws:autoscaling/lifecycleHook:LifecycleHook")
    assert hook.inputs["autoscalingGroupName"] == group.outputs["name"]
    assert hook.inputs["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    assert hook.inputs["defaultResult"] == "CONTINUE"
    # The app stops within its 120 s, and the replacement still waits for the volume.
    assert 120 < hook.inputs["heartbeatTimeout"] == DRAIN_HOOK_SECONDS
    assert DRAIN_HOOK_SECONDS < DEFAULT_ATTACH_TIMEOUT_SECONDS
    template = graph.one("aws:ec2/launchTemplate:LaunchTemplate")
    user_data = base64.b64decode(template.inputs["userData"]).decode()
    cluster = graph.one("aws:ecs/cluster:Cluster")
    assert f"CLUSTER={cluster.outputs['name']}\n" in user_data
    assert "systemctl enable --now --no-block ecs-tls-drain.service" in user_data
    assert "--status DRAINING" in user_data

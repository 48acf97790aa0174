"""Unit tests of the data volume builder: validation, rendering, the user data fragment and
the IAM statements (no AWS, no disks; the script itself runs in
tests/integration/test_data_volume.py)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest

from components.data_volume_access import (
    data_volume_policy_document,
    data_volume_policy_statements,
    mark_unhealthy_policy_document,
)
from task_contents import data_volume
from task_contents.data_volume import (
    DATA_VOLUME_TAG_KEY,
    SCRIPT_INSTALL_PATH,
    data_volume_instance_tags,
    data_volume_script,
    data_volume_user_data,
)
from tests.tools import require_binary

VOLUME = "vol-0123456789abcdef0"
ARGS = dict(
    volume_id=VOLUME,
    region="eu-west-1",
    mount_point="/mnt/ecs-tls-data",
    app_dir="/mnt/ecs-tls-data/neo4j",
    owner="7474:7474",
)
POLICY = dict(partition="aws", region="eu-west-1", account_id="123456789012", volume_id=VOLUME)


def _header(script: str) -> dict[str, str]:
    """The rendered assignments, read back the way bash reads them."""
    values = {}
    for line in script.splitlines()[1:]:
        if line.startswith("#"):
            continue
        if not re.match(r"^[A-Z_]+=", line):
            break
        name, _, quoted = line.partition("=")
        (values[name],) = shlex.split(quoted)
    return values


def test_script_starts_with_the_rendered_parameters() -> None:
    script = data_volume_script(**ARGS)
    assert script.startswith("#!/bin/bash\n")
    assert _header(script) == {
        "VOLUME_ID": VOLUME,
        "EXPECTED_REGION": "eu-west-1",
        "MOUNT_POINT": "/mnt/ecs-tls-data",
        "APP_DIR": "/mnt/ecs-tls-data/neo4j",
        "OWNER": "7474:7474",
        "ATTACH_DEVICE": "/dev/xvdf",
    }
    assert ': "${DATA_VOLUME_ATTACH_TIMEOUT:=600}"' in script
    assert script.count("#!/bin/bash") == 1


def test_body_is_the_script_without_its_comment_lines() -> None:
    # EC2 user data is capped at 16 KiB, so comment-only and blank lines and indentation
    # are dropped; every other line is kept, otherwise unchanged and in order. The
    # integration tests run this body.
    original = data_volume._SCRIPT_PATH.read_text().splitlines()[1:]
    code = [
        line.lstrip() for line in original if line.strip() and not line.lstrip().startswith("#")
    ]
    script = data_volume_script(**ARGS)
    assert script.endswith("\n".join(code) + "\n")
    assert not any(line.lstrip().startswith("#") for line in script.splitlines()[2:])


def test_keyword_options_are_rendered() -> None:
    script = data_volume_script(**ARGS, attach_device="/dev/sdg", attach_timeout_seconds=120)
    assert _header(script)["ATTACH_DEVICE"] == "/dev/sdg"
    assert ': "${DATA_VOLUME_ATTACH_TIMEOUT:=120}"' in script


def test_production_defaults_are_the_real_paths() -> None:
    # Test knobs exist only as overrides of these defaults.
    body = data_volume._SCRIPT_PATH.read_text()
    for default in (
        "FSTAB=${DATA_VOLUME_FSTAB:-/etc/fstab}",
        "SYSTEMD_DIR=${DATA_VOLUME_SYSTEMD_DIR:-/etc/systemd/system}",
        "BY_ID_DIR=${DATA_VOLUME_BY_ID_DIR:-/dev/disk/by-id}",
        "XEN_DEVICE=${DATA_VOLUME_XEN_DEVICE:-$ATTACH_DEVICE}",
        "IMDS=http://169.254.169.254/latest",
    ):
        assert default in body, default


def test_rendered_script_is_valid_bash(tmp_path) -> None:
    path = tmp_path / "data-volume.sh"
    path.write_text(data_volume_script(**ARGS))
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_shellcheck_finds_nothing(tmp_path) -> None:
    shellcheck = require_binary("shellcheck", "apt-get install -y shellcheck")
    path = tmp_path / "data-volume.sh"
    path.write_text(data_volume_script(**ARGS))
    result = subprocess.run([shellcheck, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("volume_id", "vol-123", "volume_id"),
        ("volume_id", "vol-0123456789ABCDEF0", "volume_id"),
        ("volume_id", "i-0123456789abcdef0", "volume_id"),
        ("volume_id", VOLUME + "\n", "volume_id"),
        ("region", "eu_west_1", "region"),
        ("region", "", "region"),
        ("mount_point", "mnt/data", "absolute"),
        ("mount_point", "/mnt/data/", "absolute"),
        ("mount_point", "/mnt//data", "absolute"),
        ("mount_point", "/mnt/../etc", "absolute"),
        ("mount_point", "/mnt/./data", "absolute"),
        ("mount_point", "/mnt/my data", "absolute"),
        ("mount_point", "/mnt/x'; rm -rf / #", "absolute"),
        ("mount_point", "/", "absolute"),
        ("mount_point", "/mnt", "system directory"),
        ("mount_point", "/var/lib", "system directory"),
        ("mount_point", "/etc/data", "system directory"),
        ("mount_point", "/var/lib/docker/volumes", "system directory"),
        ("app_dir", "neo4j", "absolute"),
        ("app_dir", "/mnt/ecs-tls-data", "inside mount_point"),
        ("app_dir", "/mnt/ecs-tls-data-neo4j", "inside mount_point"),
        ("app_dir", "/srv/neo4j", "inside mount_point"),
        ("owner", "neo4j:neo4j", "uid:gid"),
        ("owner", "7474", "uid:gid"),
        ("owner", "7474:7474:1", "uid:gid"),
        ("owner", "-1:7474", "uid:gid"),
    ],
)
def test_invalid_inputs_are_refused(field: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        data_volume_script(**{**ARGS, field: value})


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("attach_device", "/dev/xvda"),
        ("attach_device", "/dev/nvme1n1"),
        ("attach_device", "xvdf"),
        ("attach_timeout_seconds", 5),
        ("attach_timeout_seconds", 7200),
        ("attach_timeout_seconds", True),
        ("attach_timeout_seconds", "600"),
    ],
)
def test_invalid_options_are_refused(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        data_volume_script(**ARGS, **{option: value})


def test_eight_digit_volume_ids_are_accepted() -> None:
    assert _header(data_volume_script(**{**ARGS, "volume_id": "vol-0123abcd"}))["VOLUME_ID"] == (
        "vol-0123abcd"
    )


def test_user_data_installs_the_exact_script_and_runs_it(tmp_path) -> None:
    fragment = data_volume_user_data(**ARGS)
    lines = fragment.splitlines()
    start = lines.index(f"cat >{SCRIPT_INSTALL_PATH} <<'ECS_TLS_DATA_VOLUME_SCRIPT'")
    end = lines.index("ECS_TLS_DATA_VOLUME_SCRIPT")
    assert "\n".join(lines[start + 1 : end]) + "\n" == data_volume_script(**ARGS)
    # Installed, then run as the last command: under the caller's `set -e` a failure stops
    # the user data before the ECS agent is configured.
    assert lines[-1] == SCRIPT_INSTALL_PATH
    assert lines[end + 1] == f"chmod 0700 {SCRIPT_INSTALL_PATH}"
    # Valid inside the user data it is meant for.
    path = tmp_path / "user-data.sh"
    path.write_text(f"#!/bin/bash\nset -euo pipefail\n{fragment}")
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_user_data_fits_well_within_the_16_kib_limit() -> None:
    # EC2 caps user data at 16 KiB before base64; the rest of the user data needs room.
    assert len(data_volume_user_data(**ARGS).encode()) < 12 * 1024


def test_user_data_validates_like_the_script() -> None:
    with pytest.raises(ValueError, match="owner"):
        data_volume_user_data(**{**ARGS, "owner": "root"})


def test_instance_tags_name_the_volume() -> None:
    assert data_volume_instance_tags(VOLUME) == {DATA_VOLUME_TAG_KEY: VOLUME}
    with pytest.raises(ValueError):
        data_volume_instance_tags("vol-nope")


def _by_sid(statements: list[dict]) -> dict[str, dict]:
    return {s["Sid"]: s for s in statements}


def test_attach_is_scoped_to_the_volume_and_to_tagged_instances() -> None:
    statements = _by_sid(data_volume_policy_statements(**POLICY))
    assert set(statements) == {
        "AttachTheDataVolume",
        "AttachToTaggedInstances",
        "ReadVolumeAttachment",
    }
    volume = statements["AttachTheDataVolume"]
    assert volume["Action"] == ["ec2:AttachVolume"]
    assert volume["Resource"] == [f"arn:aws:ec2:eu-west-1:123456789012:volume/{VOLUME}"]
    assert "Condition" not in volume
    instances = statements["AttachToTaggedInstances"]
    assert instances["Action"] == ["ec2:AttachVolume"]
    assert instances["Resource"] == ["arn:aws:ec2:eu-west-1:123456789012:instance/*"]
    assert instances["Condition"] == {
        "StringEquals": {f"ec2:ResourceTag/{DATA_VOLUME_TAG_KEY}": VOLUME}
    }
    describe = statements["ReadVolumeAttachment"]
    assert describe["Action"] == ["ec2:DescribeVolumes"]
    assert describe["Resource"] == ["*"]
    # Nothing else: no detach, no wildcard action, every statement an Allow.
    actions = {a for s in statements.values() for a in s["Action"]}
    assert actions == {"ec2:AttachVolume", "ec2:DescribeVolumes"}
    assert {s["Effect"] for s in statements.values()} == {"Allow"}


def test_a_callers_instance_tag_replaces_the_default() -> None:
    statements = _by_sid(
        data_volume_policy_statements(**POLICY, instance_tag=("ecs-tls:instance-of", "db-abc"))
    )
    assert statements["AttachToTaggedInstances"]["Condition"] == {
        "StringEquals": {"ec2:ResourceTag/ecs-tls:instance-of": "db-abc"}
    }


def test_partition_and_region_are_in_every_arn() -> None:
    statements = data_volume_policy_statements(
        partition="aws-cn", region="cn-north-1", account_id="123456789012", volume_id=VOLUME
    )
    arns = [r for s in statements for r in s["Resource"] if r != "*"]
    assert arns and all(a.startswith("arn:aws-cn:ec2:cn-north-1:123456789012:") for a in arns)


def test_customer_managed_key_adds_a_grant_for_ebs_only() -> None:
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    grant = _by_sid(data_volume_policy_statements(**POLICY, kms_key_arn=key))[
        "GrantForEncryptedVolume"
    ]
    assert grant["Action"] == ["kms:CreateGrant"]
    assert grant["Resource"] == [key]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"partition": "amazon"}, "partition"),
        ({"region": "Europe"}, "region"),
        ({"account_id": "12345"}, "account_id"),
        ({"volume_id": "vol-xyz"}, "volume_id"),
        ({"instance_tag": ("aws:reserved", "x")}, "tag key"),
        ({"instance_tag": ("ok", "")}, "tag value"),
        ({"kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/k"}, "kms_key_arn"),
        ({"kms_key_arn": "alias/aws/ebs"}, "kms_key_arn"),
    ],
)
def test_policy_inputs_are_validated(override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        data_volume_policy_statements(**{**POLICY, **override})


def test_policy_document_is_json_with_the_same_statements() -> None:
    document = json.loads(data_volume_policy_document(**POLICY))
    assert document["Version"] == "2012-10-17"
    assert document["Statement"] == data_volume_policy_statements(**POLICY)


GROUP = dict(partition="aws", region="eu-west-1", account_id="123456789012", group_name="g-1")


def test_marking_unhealthy_is_granted_on_the_named_group_only() -> None:
    document = json.loads(mark_unhealthy_policy_document(**GROUP))
    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "MarkOwnGroupInstanceUnhealthy",
                "Effect": "Allow",
                "Action": ["autoscaling:SetInstanceHealth"],
                # Only the ID AWS generates is left open; the name pins the group.
                "Resource": [
                    "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:*:"
                    "autoScalingGroupName/g-1"
                ],
            }
        ],
    }
    china = json.loads(
        mark_unhealthy_policy_document(**{**GROUP, "partition": "aws-cn", "region": "cn-north-1"})
    )
    assert china["Statement"][0]["Resource"][0].startswith("arn:aws-cn:autoscaling:cn-north-1:")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"group_name": "*"}, "group_name"),
        ({"group_name": "g-1*"}, "group_name"),
        ({"group_name": "a:b"}, "group_name"),
        ({"group_name": ""}, "group_name"),
        ({"group_name": "g" * 256}, "group_name"),
        ({"partition": "*"}, "partition"),
        ({"region": "eu-west-1*"}, "region"),
        ({"account_id": "*"}, "account_id"),
    ],
)
def test_marking_unhealthy_inputs_are_validated(override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mark_unhealthy_policy_document(**{**GROUP, **override})

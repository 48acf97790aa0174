"""The real Terraform AWS provider, against moto, on the data volume the program declares:
raising app.dataVolumeGiB modifies the volume in place, and restoring from a snapshot
(app.dataVolumeSnapshotId) replaces it, visibly, in the plan.

Pulumi's AWS provider is built from the same Terraform provider, so which arguments force a
new volume is the same.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from scripts.mock_runtime import run_program
from tests.conftest import MINIMAL_CONFIG

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
ADDRESS = "aws_ebs_volume.data"
# Pulumi input -> Terraform argument, for every input the program sends.
ARGUMENTS = {
    "availabilityZone": "availability_zone",
    "size": "size",
    "snapshotId": "snapshot_id",
    "type": "type",
    "encrypted": "encrypted",
    "tags": "tags",
}


def _volume_arguments(app: dict) -> dict:
    config = {**MINIMAL_CONFIG["nlb-certbot"], "app": app}
    volume = run_program(config).one("aws:ebs/volume:Volume")
    # A new input must be placed here, and its effect on an existing volume checked.
    assert set(volume.inputs) <= set(ARGUMENTS), set(volume.inputs) - set(ARGUMENTS)
    return {ARGUMENTS[k]: v for k, v in volume.inputs.items()}


@pytest.fixture
def terraform(tmp_path: Path):
    from scripts.emulator import server
    from scripts.emulator.run import INSTALL_HINT, Terraform, init, plugin_dir, provider_version

    if shutil.which("terraform") is None:
        if os.environ.get("CI") == "true":
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    mirror = plugin_dir()
    tf = Terraform(tmp_path)
    init(tf, provider_version(mirror), mirror)
    with server.start() as emulator:
        provider = {
            "region": REGION,
            "access_key": "testing",
            "secret_key": "testing",
            "skip_credentials_validation": True,
            "skip_metadata_api_check": True,
            "skip_requesting_account_id": True,
            "max_retries": 3,
            "endpoints": [{"ec2": emulator.url, "sts": emulator.url}],
        }

        def write(volume: dict) -> None:
            config = {
                "provider": {"aws": provider},
                "resource": {"aws_ebs_volume": {"data": volume}},
            }
            (tmp_path / "main.tf.json").write_text(json.dumps(config, indent=1))

        yield tf, write


def _actions(tf, *args: str) -> list[tuple[str, str]]:
    from scripts.emulator.run import terraform_json

    return terraform_json(tf, *args)


def _volume_id(tf) -> str:
    state = json.loads(tf.run("show", "-json").stdout)
    (resource,) = state["values"]["root_module"]["resources"]
    return resource["values"]["id"]


def test_growing_modifies_the_volume_in_place_and_a_snapshot_replaces_it(terraform) -> None:
    tf, write = terraform
    write(_volume_arguments({}))
    assert _actions(tf, "apply", "-auto-approve") == [("create", ADDRESS)]
    volume_id = _volume_id(tf)

    write(_volume_arguments({"dataVolumeGiB": 50}))
    assert _actions(tf, "plan") == [("update", ADDRESS)]
    assert _actions(tf, "apply", "-auto-approve") == [("update", ADDRESS)]
    assert _volume_id(tf) == volume_id

    # The restore path: a new volume from the snapshot, shown as such before anything runs.
    write(
        _volume_arguments({"dataVolumeGiB": 50, "dataVolumeSnapshotId": "snap-0123456789abcdef0"})
    )
    assert _actions(tf, "plan") == [("replace", ADDRESS)]

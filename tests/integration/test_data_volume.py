"""Run the real data volume script (``data_volume_script(...)``, byte for byte what user data
installs) against a real disk image.

What cannot exist here is stubbed on PATH by one recording program: the AWS CLI (a fake
volume with an attachment state), IMDSv2 (curl), and the commands that need a real host
(mount, mountpoint, findmnt, chattr, chown, systemctl, udevadm, dnf), plus sleep, so that
retries and timeouts cost no time. The file system work is real: blkid probes, mkfs.ext4
formats, and the tests read the image back with blkid and debugfs. The script finds the
image through a link named like the udev by-id link of an NVMe EBS volume.

One more test mounts a loop device for real with the real mount, findmnt and chattr, when
run as root; the stubbed tests are the proof everywhere else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from task_contents.data_volume import data_volume_script
from tests.tools import require_binary

pytestmark = pytest.mark.integration

VOLUME = "vol-0123456789abcdef0"
NVME_LINK = "nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"
INSTANCE = "i-0new0000000000001"
OLD_INSTANCE = "i-0old0000000000001"
REGION = "eu-west-1"
ZONE = "eu-west-1b"
TOKEN = "imds-token-1234"
OWNER = "7474:7474"
# Reaches only the system's own tools: an AWS CLI in /usr/local/bin (as on CI runners)
# must not stand in for the stub.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
ALL_STUBS = (
    "aws",
    "curl",
    "mount",
    "mountpoint",
    "findmnt",
    "chattr",
    "chown",
    "systemctl",
    "udevadm",
    "sleep",
    "dnf",
)

# One program behind every stub (argv[0] says which); it appends each call to a JSON-lines
# log and keeps the fake world (volume, mounts) in a JSON state file.
STUB = r"""
import json, os, sys

name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({"cmd": name, "args": args}) + "\n")
with open(os.environ["STUB_STATE"]) as f:
    state = json.load(f)


def save():
    with open(os.environ["STUB_STATE"], "w") as f:
        json.dump(state, f)


def flag(option):
    return args[args.index(option) + 1] if option in args else None


def aws_error(code, message):
    sys.stderr.write(f"\nAn error occurred ({code}) when calling the {message}\n")
    sys.exit(254)


if name == "curl":
    url = [a for a in args if a.startswith("http://")][-1]
    imds = state["imds"]
    if url.endswith("/api/token"):
        if flag("-X") != "PUT" or not any("ttl-seconds" in a for a in args):
            sys.exit(22)
        sys.stdout.write(imds["token"])
    else:
        if f"X-aws-ec2-metadata-token: {imds['token']}" not in args:
            sys.exit(22)  # IMDSv2 only: 401 without the token
        value = imds["meta"].get(url.split("/meta-data/", 1)[1])
        if value is None:
            sys.exit(22)
        sys.stdout.write(value)
elif name == "aws":
    volume = state["volume"]
    if flag("--region") != state["region"]:
        aws_error("InvalidVolume.NotFound", "operation: wrong region")
    if "describe-volumes" in args:
        if state["describe_failures"]:
            state["describe_failures"] -= 1
            save()
            aws_error("RequestLimitExceeded", "DescribeVolumes operation: Request limit exceeded.")
        holder = volume["holder"] or "None"
        holder_state = volume["holder_state"] or "None"
        print(f"{volume['zone']}\t{volume['state']}\t{holder}\t{holder_state}")
        if volume["holder"] and volume["release_after_describes"] is not None:
            volume["release_after_describes"] -= 1
            if volume["release_after_describes"] <= 0:
                volume.update(state="available", holder=None, holder_state=None)
        save()
    elif "attach-volume" in args:
        failures = state["attach_failures"]
        if failures == "forever" or failures > 0:
            if failures != "forever":
                state["attach_failures"] -= 1
                save()
            aws_error("IncorrectState", "AttachVolume operation: vol is not 'available'.")
        if volume["holder"]:
            aws_error("VolumeInUse", f"AttachVolume operation: {flag('--volume-id')} is in use")
        volume.update(state="in-use", holder=flag("--instance-id"), holder_state="attached")
        save()
        print(json.dumps({"State": "attaching", "Device": flag("--device")}))
    elif "autoscaling" in args and "set-instance-health" in args:
        if state["health_fails"]:
            aws_error("ValidationError", "SetInstanceHealth operation: Instance Id not found")
        state["health"][flag("--instance-id")] = flag("--health-status")
        save()
    else:
        sys.exit(2)
elif name == "mount":
    if state["mount_fails"]:
        sys.exit(32)
    if not state["mount_lies"]:
        state["mounts"][args[-1]] = args[-2]
        save()
elif name == "mountpoint":
    sys.exit(0 if args[-1] in state["mounts"] else 32)
elif name == "findmnt":
    source = state["mounts"].get(flag("--mountpoint"))
    if source is None:
        sys.exit(1)
    print(source)
elif name == "dnf":
    if "awscli-2" in args and state["dnf_installs_aws"]:
        os.symlink(os.path.realpath(sys.argv[0]), os.path.join(os.path.dirname(sys.argv[0]), "aws"))
# chattr, chown, systemctl, udevadm, sleep: recorded, nothing else.
"""


@dataclass
class Run:
    returncode: int
    stderr: str
    calls: list[dict]

    def of(self, cmd: str) -> list[list[str]]:
        return [c["args"] for c in self.calls if c["cmd"] == cmd]

    def index(self, cmd: str, *args: str) -> int:
        """Position of the first call of `cmd` whose arguments start with `args`."""
        for i, call in enumerate(self.calls):
            if call["cmd"] == cmd and call["args"][: len(args)] == list(args):
                return i
        raise AssertionError(f"no call {cmd} {args} in {self.calls}")

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if "data-volume: error:" in line]


class Sandbox:
    """A fake host: an image behind an NVMe by-id link, fstab, systemd dir, stubbed tools."""

    def __init__(self, root: Path, stubs: tuple[str, ...] = ALL_STUBS):
        require_binary("mkfs.ext4", "apt-get install -y e2fsprogs")
        require_binary("blkid", "apt-get install -y util-linux")
        self.root = root
        self.bash = require_binary("bash", "apt-get install -y bash")
        self.stubs = root / "stubs"
        self.stubs.mkdir()
        program = self.stubs / "_stub.py"
        program.write_text(f"#!{sys.executable}\n{STUB}")
        program.chmod(0o755)
        for name in stubs:
            (self.stubs / name).symlink_to(program)
        self.image = root / "disk.img"
        subprocess.run(["truncate", "-s", "64M", str(self.image)], check=True)
        self.by_id = root / "by-id"
        self.by_id.mkdir()
        self.link_device(self.image)
        self.etc = root / "etc"
        self.etc.mkdir()
        self.mount_point = root / "host" / "mnt" / "ecs-tls-data"
        self.app_dir = self.mount_point / "neo4j"
        self.fstab = self.etc / "fstab"
        self.fstab.write_text(
            "# static file system information\n"
            f"#UUID=commented-out {self.mount_point} ext4 defaults 0 2\n"
            "UUID=root-uuid / xfs defaults,noatime 1 1\n"
            f"UUID=stale-uuid {self.mount_point} ext4 defaults 0 0\n"
        )
        self.systemd = self.etc / "systemd" / "system"
        self.log = root / "calls.jsonl"
        self.state_file = root / "state.json"
        self.state = {
            "region": REGION,
            "imds": {
                "token": TOKEN,
                "meta": {
                    "instance-id": INSTANCE,
                    "placement/region": REGION,
                    "placement/availability-zone": ZONE,
                },
            },
            "volume": {
                "zone": ZONE,
                "state": "available",
                "holder": None,
                "holder_state": None,
                "release_after_describes": None,
            },
            "describe_failures": 0,
            "attach_failures": 0,
            "mount_fails": False,
            "mount_lies": False,
            "mounts": {},
            "dnf_installs_aws": False,
            "health": {},
            "health_fails": False,
        }
        self.script = root / "data-volume.sh"
        self.render()

    def render(self, **kwargs) -> None:
        params = dict(
            volume_id=VOLUME,
            region=REGION,
            mount_point=str(self.mount_point),
            app_dir=str(self.app_dir),
            owner=OWNER,
        )
        self.script.write_text(data_volume_script(**{**params, **kwargs}))

    def link_device(self, target: Path) -> None:
        link = self.by_id / NVME_LINK
        link.unlink(missing_ok=True)
        link.symlink_to(target)

    def run(self, **env: str) -> Run:
        self.state_file.write_text(json.dumps(self.state))
        self.log.write_text("")
        tmp = self.root / "tmp"
        tmp.mkdir(exist_ok=True)
        environment = {
            "PATH": f"{self.stubs}:{SYSTEM_PATH}",
            "HOME": str(self.root),
            "TMPDIR": str(tmp),
            "LC_ALL": "C",
            "STUB_LOG": str(self.log),
            "STUB_STATE": str(self.state_file),
            "DATA_VOLUME_FSTAB": str(self.fstab),
            "DATA_VOLUME_SYSTEMD_DIR": str(self.systemd),
            "DATA_VOLUME_BY_ID_DIR": str(self.by_id),
            "DATA_VOLUME_XEN_DEVICE": str(self.root / "no-xvdf"),
            **env,
        }
        result = subprocess.run(
            [self.bash, str(self.script)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.state = json.loads(self.state_file.read_text())
        calls = [json.loads(line) for line in self.log.read_text().splitlines()]
        return Run(result.returncode, result.stderr, calls)

    def data_lines(self) -> list[str]:
        """fstab lines (not comments) for the mount point."""
        return [
            line
            for line in self.fstab.read_text().splitlines()
            if not line.startswith("#") and line.split()[1] == str(self.mount_point)
        ]


def blkid(image: Path) -> dict[str, str]:
    out = subprocess.run(
        ["blkid", "-p", "-o", "export", str(image)], capture_output=True, text=True
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def debugfs(image: Path, request: str) -> str:
    debugfs_bin = require_binary("debugfs", "apt-get install -y e2fsprogs")
    return subprocess.run(
        [debugfs_bin, "-R", request, str(image)], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def test_blank_volume_is_attached_formatted_mounted_and_guarded(box: Sandbox) -> None:
    run = box.run()
    assert run.returncode == 0, run.stderr
    assert run.error_lines == []

    # IMDSv2: a token first, then every read carries it (the stub refuses reads without).
    assert run.of("curl")[0][run.of("curl")[0].index("-X") + 1] == "PUT"
    assert all(f"X-aws-ec2-metadata-token: {TOKEN}" in a for a in run.of("curl")[1:])

    (attach,) = [a for a in run.of("aws") if "attach-volume" in a]
    for option, value in (
        ("--region", REGION),
        ("--volume-id", VOLUME),
        ("--instance-id", INSTANCE),
        ("--device", "/dev/xvdf"),
    ):
        assert attach[attach.index(option) + 1] == value

    # A real ext4 file system is on the image now.
    probe = blkid(box.image)
    assert probe["TYPE"] == "ext4"
    assert probe["LABEL"] == "ecs-tls-data"
    fs_uuid = probe["UUID"]

    # fstab: exactly one line for the mount point, by UUID, nofail; the stale one is gone,
    # other lines and comments are kept.
    assert box.data_lines() == [
        f"UUID={fs_uuid} {box.mount_point} ext4 defaults,noatime,nofail 0 2"
    ]
    fstab = box.fstab.read_text()
    assert "UUID=root-uuid / xfs defaults,noatime 1 1" in fstab
    assert f"#UUID=commented-out {box.mount_point}" in fstab

    # Mounted from the device found by the volume's NVMe serial, with the right options.
    assert run.of("mount") == [
        ["-t", "ext4", "-o", "noatime", str(box.image), str(box.mount_point)]
    ]

    # The ECS agent is guarded before anything else can fail, with the mount as condition.
    drop_in = box.systemd / "ecs.service.d" / "50-ecs-tls-data-volume.conf"
    lines = drop_in.read_text().splitlines()
    assert "[Unit]" in lines
    assert f"RequiresMountsFor={box.mount_point}" in lines
    assert f"AssertPathIsMountPoint={box.mount_point}" in lines
    assert run.index("systemctl", "daemon-reload") < run.index("curl")
    # fstab is reloaded into systemd after it is written: a second daemon-reload.
    assert len(run.of("systemctl")) == 2

    # The empty mount point is made immutable before the mount, the app directory is made
    # and handed to the app user only after it.
    assert run.of("chattr") == [["+i", str(box.mount_point)]]
    assert run.index("chattr", "+i") < run.index("mount")
    assert run.of("chown") == [[OWNER, str(box.app_dir)]]
    assert run.index("mount") < run.index("chown")
    assert box.app_dir.is_dir()
    assert oct(box.app_dir.stat().st_mode & 0o777) == "0o750"
    assert "data-volume: ready:" in run.stderr
    # A healthy start never touches the instance's health in its group.
    assert [a for a in run.of("aws") if "autoscaling" in a] == []
    assert box.state["health"] == {}


def test_volume_with_a_file_system_is_never_reformatted(box: Sandbox, tmp_path: Path) -> None:
    mke2fs = require_binary("mke2fs", "apt-get install -y e2fsprogs")
    seed = tmp_path / "seed"
    (seed / "neo4j" / "databases").mkdir(parents=True)
    (seed / "neo4j" / "databases" / "marker").write_text("the user's database\n")
    fs_uuid = str(uuid.uuid4())
    # mke2fs -d fills the file system from a directory: no mount, no root needed.
    box.image.unlink()
    subprocess.run(
        [mke2fs, "-q", "-t", "ext4", "-U", fs_uuid, "-d", str(seed), str(box.image), "64M"],
        check=True,
    )

    run = box.run()
    assert run.returncode == 0, run.stderr
    assert "already holds a ext4 file system" in run.stderr
    assert blkid(box.image)["UUID"] == fs_uuid
    assert debugfs(box.image, "cat /neo4j/databases/marker") == "the user's database\n"
    assert box.data_lines() == [
        f"UUID={fs_uuid} {box.mount_point} ext4 defaults,noatime,nofail 0 2"
    ]
    assert run.of("mount") == [
        ["-t", "ext4", "-o", "noatime", str(box.image), str(box.mount_point)]
    ]


def test_second_run_is_idempotent(box: Sandbox) -> None:
    assert box.run().returncode == 0
    fs_uuid = blkid(box.image)["UUID"]

    # Same instance, volume still attached and mounted (a rerun, or a reboot).
    run = box.run()
    assert run.returncode == 0, run.stderr
    assert [a for a in run.of("aws") if "attach-volume" in a] == []
    assert "volume vol-0123456789abcdef0 is attached to this instance" in run.stderr
    assert run.of("mount") == []
    assert run.of("chattr") == []  # never on a mounted file system's root
    assert blkid(box.image)["UUID"] == fs_uuid
    assert len(box.data_lines()) == 1


def _sizes(image: Path) -> tuple[int, int]:
    """(block count, block size) of the ext4 file system in `image`."""
    dumpe2fs = require_binary("dumpe2fs", "apt-get install -y e2fsprogs")
    out = subprocess.run(
        [dumpe2fs, "-h", str(image)], capture_output=True, text=True, check=True
    ).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return int(fields["Block count"]), int(fields["Block size"])


def test_a_grown_volume_grows_its_file_system_and_keeps_the_data(
    box: Sandbox, tmp_path: Path
) -> None:
    mke2fs = require_binary("mke2fs", "apt-get install -y e2fsprogs")
    e2fsck = require_binary("e2fsck", "apt-get install -y e2fsprogs")
    seed = tmp_path / "seed"
    (seed / "neo4j").mkdir(parents=True)
    (seed / "neo4j" / "marker").write_text("the user's database\n")
    box.image.unlink()
    subprocess.run([mke2fs, "-q", "-t", "ext4", "-d", str(seed), str(box.image), "64M"], check=True)
    fs_uuid = blkid(box.image)["UUID"]

    # The file system fills the device: nothing to grow.
    run = box.run()
    assert run.returncode == 0, run.stderr
    assert "growing it" not in run.stderr
    count, size = _sizes(box.image)
    assert count * size == 64 * 2**20

    # app.dataVolumeGiB raised: EBS makes the device bigger, the file system is not.
    subprocess.run(["truncate", "-s", "128M", str(box.image)], check=True)
    run = box.run()
    assert run.returncode == 0, run.stderr
    assert "growing it" in run.stderr
    count, size = _sizes(box.image)
    assert count * size == 128 * 2**20
    assert debugfs(box.image, "cat /neo4j/marker") == "the user's database\n"
    assert blkid(box.image)["UUID"] == fs_uuid
    # Grown while mounted (the earlier run mounted it): online, as on a running instance.
    assert box.state["mounts"][str(box.mount_point)] == str(box.image)
    fsck = subprocess.run([e2fsck, "-f", "-n", str(box.image)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr

    # Every later run (every boot) sees nothing to do and changes nothing.
    before = box.image.read_bytes()
    run = box.run()
    assert run.returncode == 0, run.stderr
    assert "growing it" not in run.stderr
    assert "the file system fills" in run.stderr
    assert box.image.read_bytes() == before


def test_already_attached_to_this_instance_is_success_without_attach(box: Sandbox) -> None:
    box.state["volume"].update(state="in-use", holder=INSTANCE, holder_state="attached")
    run = box.run()
    assert run.returncode == 0, run.stderr
    assert [a for a in run.of("aws") if "attach-volume" in a] == []
    assert blkid(box.image)["TYPE"] == "ext4"


def test_attach_failing_twice_is_retried_with_backoff(box: Sandbox) -> None:
    box.state["attach_failures"] = 2
    run = box.run()
    assert run.returncode == 0, run.stderr
    assert len([a for a in run.of("aws") if "attach-volume" in a]) == 3
    # Doubling delays from DATA_VOLUME_RETRY_SLEEP (2 s) after each failure.
    assert run.of("sleep")[:2] == [["2"], ["4"]]
    assert "attach-volume failed: An error occurred (IncorrectState)" in run.stderr


def test_volume_held_by_the_old_instance_is_awaited_not_stolen(box: Sandbox) -> None:
    box.state["volume"].update(
        state="in-use", holder=OLD_INSTANCE, holder_state="detaching", release_after_describes=3
    )
    box.state["describe_failures"] = 1
    run = box.run()
    assert run.returncode == 0, run.stderr
    assert f"still attached to {OLD_INSTANCE} (detaching)" in run.stderr
    assert "describe-volumes failed: An error occurred (RequestLimitExceeded)" in run.stderr
    aws_calls = [a[a.index("ec2") + 1] for a in run.of("aws")]
    # One failed describe, three while the old instance holds it, then one attach.
    assert aws_calls[:5] == ["describe-volumes"] * 5
    assert aws_calls.count("attach-volume") == 1
    assert aws_calls.index("attach-volume") == 5
    assert run.of("sleep")[:4] == [["2"], ["4"], ["8"], ["16"]]


def test_attach_failing_forever_stops_in_bounded_time(box: Sandbox) -> None:
    box.state["attach_failures"] = "forever"
    run = box.run(DATA_VOLUME_ATTACH_TIMEOUT="60")
    assert run.returncode == 1
    assert run.error_lines == [
        f"data-volume: error: volume {VOLUME} is not attached to {INSTANCE} after 60s:"
        " attach-volume failed: An error occurred (IncorrectState) when calling the"
        " AttachVolume operation: vol is not 'available'."
    ]
    assert run.stderr.rstrip().endswith(run.error_lines[0])
    # 2 + 4 + 8 + 16 + 30 = 60: capped backoff, bounded by the timeout.
    assert run.of("sleep") == [["2"], ["4"], ["8"], ["16"], ["30"]]
    assert len([a for a in run.of("aws") if "attach-volume" in a]) == 6
    # Nothing below the attach happened; the agent stays blocked by the drop-in.
    assert run.of("mount") == [] and run.of("chown") == []
    assert not box.app_dir.exists()
    assert blkid(box.image) == {}
    assert (box.systemd / "ecs.service.d" / "50-ecs-tls-data-volume.conf").exists()
    assert "stale-uuid" in box.fstab.read_text()
    # Not a zombie: the instance marks itself Unhealthy so its group replaces it, after the
    # last attach attempt; nothing ever detaches the volume.
    (health,) = [a for a in run.of("aws") if "autoscaling" in a]
    assert health[health.index("autoscaling") :] == [
        "autoscaling",
        "set-instance-health",
        "--instance-id",
        INSTANCE,
        "--health-status",
        "Unhealthy",
        "--no-should-respect-grace-period",
    ]
    assert health[health.index("--region") + 1] == REGION
    assert box.state["health"] == {INSTANCE: "Unhealthy"}
    assert run.calls.index({"cmd": "aws", "args": health}) == len(run.calls) - 1
    assert f"marked {INSTANCE} Unhealthy" in run.stderr
    assert not [a for a in run.of("aws") if "detach-volume" in a]


def test_volume_held_past_the_timeout_marks_the_instance_unhealthy(box: Sandbox) -> None:
    # The old instance never lets go: the new one gives up, never steals the volume.
    box.state["volume"].update(state="in-use", holder=OLD_INSTANCE, holder_state="attached")
    run = box.run(DATA_VOLUME_ATTACH_TIMEOUT="30")
    assert run.returncode == 1
    assert run.error_lines == [
        f"data-volume: error: volume {VOLUME} is not attached to {INSTANCE} after 30s:"
        f" still attached to {OLD_INSTANCE} (attached)"
    ]
    assert box.state["health"] == {INSTANCE: "Unhealthy"}
    assert box.state["volume"]["holder"] == OLD_INSTANCE
    assert [a[a.index("ec2") + 1] for a in run.of("aws") if "ec2" in a] == ["describe-volumes"] * 5


def test_failing_to_mark_itself_unhealthy_still_fails_with_one_error(box: Sandbox) -> None:
    box.state["attach_failures"] = "forever"
    box.state["health_fails"] = True
    run = box.run(DATA_VOLUME_ATTACH_TIMEOUT="30")
    assert run.returncode == 1
    assert len(run.error_lines) == 1
    assert run.error_lines[0].startswith(f"data-volume: error: volume {VOLUME} is not attached")
    assert (
        f"data-volume: warning: cannot mark {INSTANCE} Unhealthy (An error occurred"
        " (ValidationError)" in run.stderr
    )
    assert box.state["health"] == {}


def test_other_failures_do_not_mark_the_instance_unhealthy(box: Sandbox) -> None:
    # A volume in another zone: a replacement in the same subnet would fail the same way.
    box.state["volume"]["zone"] = "eu-west-1a"
    assert box.run().returncode == 1
    assert box.state["health"] == {}


def test_volume_in_another_zone_fails_at_once(box: Sandbox) -> None:
    box.state["volume"]["zone"] = "eu-west-1a"
    run = box.run()
    assert run.returncode == 1
    assert run.error_lines == [
        f"data-volume: error: volume {VOLUME} is in eu-west-1a but this instance is in {ZONE}:"
        " pin the Auto Scaling group to eu-west-1a"
    ]
    assert [a for a in run.of("aws") if "attach-volume" in a] == []
    assert run.of("sleep") == []


def test_instance_in_another_region_fails_before_any_aws_call(box: Sandbox) -> None:
    box.state["imds"]["meta"]["placement/region"] = "us-east-1"
    run = box.run()
    assert run.returncode == 1
    assert run.error_lines == [
        f"data-volume: error: this instance runs in us-east-1 but the volume {VOLUME} is in"
        f" {REGION}"
    ]
    assert run.of("aws") == []


def test_device_that_never_appears_fails_in_bounded_time(box: Sandbox) -> None:
    (box.by_id / NVME_LINK).unlink()
    run = box.run(DATA_VOLUME_DEVICE_TIMEOUT="5")
    assert run.returncode == 1
    assert len(run.error_lines) == 1
    assert run.error_lines[0].startswith(
        f"data-volume: error: no block device for {VOLUME} after 5s"
    )
    # After the one pause that follows the attach request: one-second polls, five of them.
    assert run.of("sleep") == [["2"]] + [["1"]] * 5
    assert run.of("mount") == []


def test_xen_device_is_used_when_there_is_no_nvme_link(box: Sandbox) -> None:
    (box.by_id / NVME_LINK).unlink()
    xen = box.root / "xvdf"
    box.image.rename(xen)
    run = box.run(DATA_VOLUME_XEN_DEVICE=str(xen))
    assert run.returncode == 0, run.stderr
    assert f"is {xen} (Xen)" in run.stderr
    assert blkid(xen)["TYPE"] == "ext4"
    assert run.of("mount")[0][-2:] == [str(xen), str(box.mount_point)]


def test_a_device_named_xvdf_that_links_to_nvme_is_not_trusted(box: Sandbox) -> None:
    # The Amazon Linux udev rule links /dev/xvdf to the NVMe device of whatever volume was
    # attached as xvdf; only the serial (by-id link) identifies our volume.
    (box.by_id / NVME_LINK).unlink()
    nvme = box.root / "nvme1n1"
    box.image.rename(nvme)
    alias = box.root / "xvdf-alias"
    alias.symlink_to(nvme)
    run = box.run(DATA_VOLUME_XEN_DEVICE=str(alias), DATA_VOLUME_DEVICE_TIMEOUT="2")
    assert run.returncode == 1
    assert "no block device for" in run.error_lines[0]
    assert blkid(nvme) == {}


def test_foreign_signature_is_refused_not_formatted(box: Sandbox) -> None:
    mkswap = require_binary("mkswap", "apt-get install -y util-linux")
    subprocess.run([mkswap, str(box.image)], check=True, capture_output=True)
    before = blkid(box.image)
    assert before["TYPE"] == "swap"
    run = box.run()
    assert run.returncode == 1
    assert run.error_lines == [
        f"data-volume: error: {box.image} holds a swap file system, not ext4 or xfs:"
        " refusing to use it"
    ]
    assert blkid(box.image) == before
    assert run.of("mount") == []


def test_mount_that_did_not_happen_never_creates_the_app_directory(box: Sandbox) -> None:
    box.state["mount_lies"] = True  # mount exits 0, but nothing is mounted
    run = box.run()
    assert run.returncode == 1
    assert run.error_lines == [
        f"data-volume: error: {box.mount_point} is not a mount point after mounting {box.image}"
    ]
    assert not box.app_dir.exists()
    assert run.of("chown") == []


def test_failed_mount_is_one_clear_error(box: Sandbox) -> None:
    box.state["mount_fails"] = True
    run = box.run()
    assert run.returncode == 1
    assert run.error_lines == [f"data-volume: error: cannot mount {box.image} on {box.mount_point}"]
    assert not box.app_dir.exists()


def test_mount_point_mounted_from_another_device_is_refused(box: Sandbox) -> None:
    box.state["mounts"][str(box.mount_point)] = "/dev/nvme9n1"
    run = box.run()
    assert run.returncode == 1
    assert run.error_lines == [
        f"data-volume: error: {box.mount_point} is mounted from /dev/nvme9n1, not from the"
        f" data volume {VOLUME} ({box.image})"
    ]
    assert run.of("chown") == []


def test_missing_aws_cli_is_installed_with_dnf(tmp_path: Path) -> None:
    if shutil.which("aws", path=SYSTEM_PATH):
        pytest.skip("an AWS CLI is installed in the system PATH; this test needs it absent")
    box = Sandbox(tmp_path, stubs=tuple(s for s in ALL_STUBS if s != "aws"))
    box.state["dnf_installs_aws"] = True
    run = box.run()
    assert run.returncode == 0, run.stderr
    assert run.of("dnf") == [["install", "-y", "-q", "awscli-2"]]
    assert run.index("dnf") < run.index("aws")


def test_missing_aws_cli_that_cannot_be_installed_is_one_clear_error(tmp_path: Path) -> None:
    if shutil.which("aws", path=SYSTEM_PATH):
        pytest.skip("an AWS CLI is installed in the system PATH; this test needs it absent")
    box = Sandbox(tmp_path, stubs=tuple(s for s in ALL_STUBS if s != "aws"))
    run = box.run()
    assert run.returncode == 1
    assert run.error_lines == ["data-volume: error: awscli-2 is installed but aws is still missing"]


def test_unexpected_failure_names_the_step(box: Sandbox) -> None:
    # A command failing under `set -e` without a die() still leaves one clear line.
    box.fstab.unlink()
    box.fstab.mkdir()  # awk cannot read a directory as fstab
    run = box.run()
    assert run.returncode != 0
    assert run.error_lines[-1].startswith('data-volume: error: step "write fstab" failed')


def _loop_device(image: Path) -> str:
    losetup = shutil.which("losetup", path=SYSTEM_PATH)
    if losetup is None:
        pytest.skip("losetup is not installed (util-linux), so no loop device can be made")
    result = subprocess.run(
        [losetup, "--find", "--show", str(image)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot attach a loop device here ({result.stderr.strip()})")
    return result.stdout.strip()


def test_real_loop_mount_with_real_mount_and_chattr(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip(
            "mounting a loop device and chattr +i need root; the stubbed tests cover the rest"
        )
    probe = tmp_path / "chattr-probe"
    probe.mkdir()
    if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode != 0:
        pytest.skip(f"the file system of {tmp_path} does not support chattr +i")
    subprocess.run(["chattr", "-i", str(probe)], check=True)
    # Real mount, mountpoint, findmnt, chattr and chown; AWS, IMDS and systemd stay stubbed.
    box = Sandbox(tmp_path, stubs=("aws", "curl", "systemctl", "udevadm", "sleep", "dnf"))
    device = _loop_device(box.image)
    try:
        box.link_device(Path(device))
        run = box.run()
        assert run.returncode == 0, run.stderr
        source = subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", "--mountpoint", str(box.mount_point)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert source == device
        assert box.app_dir.stat().st_uid == 7474 and box.app_dir.stat().st_gid == 7474
        assert blkid(Path(device))["TYPE"] == "ext4"

        subprocess.run(["umount", str(box.mount_point)], check=True)
        # Unmounted, the mount point on the "root disk" takes nothing: no app directory can
        # appear there (Docker creating a missing bind-mount source would fail the same way).
        assert not box.app_dir.exists()
        with pytest.raises(PermissionError):
            (box.mount_point / "neo4j").mkdir()
    finally:
        subprocess.run(["umount", str(box.mount_point)], capture_output=True)
        subprocess.run(["chattr", "-i", str(box.mount_point)], capture_output=True)
        subprocess.run(["losetup", "-d", device], capture_output=True)

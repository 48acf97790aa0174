"""Boot-time attach-and-mount of the app's EBS data volume.

The database (Neo4j) keeps its store on an encrypted gp3 volume created apart from the
instance (components/persistent_volume.py), so the store survives instance replacement.
Each new instance attaches that volume to itself from user data, gives it a file system
only if it is blank, mounts it and only then lets the ECS agent start tasks: see
``data_volume.sh``, which ships next to this module. The instance role's statements for
it are in components/data_volume_access.py.

Pure functions of plain values (call them inside an ``apply``): what the tests run is
what the instance runs.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

__all__ = [
    "DATA_VOLUME_TAG_KEY",
    "DEFAULT_ATTACH_DEVICE",
    "DEFAULT_ATTACH_TIMEOUT_SECONDS",
    "SCRIPT_INSTALL_PATH",
    "data_volume_instance_tags",
    "data_volume_script",
    "data_volume_user_data",
]

_SCRIPT_PATH = Path(__file__).with_name("data_volume.sh")
_SHEBANG = "#!/bin/bash"

# Where the user data fragment installs the rendered script: it stays on the instance, so
# an operator can rerun it (it is idempotent) from a Session Manager shell.
SCRIPT_INSTALL_PATH = "/usr/local/sbin/ecs-tls-data-volume"
_HEREDOC = "ECS_TLS_DATA_VOLUME_SCRIPT"

# Instances carrying this tag, with the volume ID as value, may have the volume attached
# (see data_volume_policy_statements). Callers with their own instance tag pass it instead.
DATA_VOLUME_TAG_KEY = "ecs-tls:data-volume"

# Any free sd[f-p]/xvd[f-p] name works; on Nitro it only ends up in the NVMe vendor data.
DEFAULT_ATTACH_DEVICE = "/dev/xvdf"
# Long enough for a replaced instance to shut down and release the volume.
DEFAULT_ATTACH_TIMEOUT_SECONDS = 600

# 8 hex digits (older volumes) or 17 (current), accepted as one range.
_VOLUME_ID_RE = re.compile(r"vol-[0-9a-f]{8,17}")
_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")
# No ".", "..", "//", spaces or quotes: the same path goes unquoted into fstab and a
# systemd unit. The shell script applies the same rule.
_PATH_RE = re.compile(r"(/[A-Za-z0-9_][A-Za-z0-9._-]*)+")
_OWNER_RE = re.compile(r"[0-9]+:[0-9]+")
_DEVICE_RE = re.compile(r"/dev/(sd|xvd)[f-p]")
# A mount point hides what is below it: never one of these or inside them.
_SYSTEM_DIRS = frozenset(
    {"/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/mnt", "/opt", "/proc",
     "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/lib",
     "/var/log", "/var/tmp"}
)  # fmt: skip
_SYSTEM_TREES = ("/boot/", "/dev/", "/etc/", "/proc/", "/run/", "/sys/", "/usr/",
                 "/var/lib/docker/", "/var/lib/ecs/", "/var/log/")  # fmt: skip


@cache
def _script_body() -> str:
    """data_volume.sh after its shebang, without comment-only and blank lines and without
    indentation.

    EC2 caps user data at 16 KiB: the comments and the indentation stay in the
    repository. Dropping them is safe because the script has no here-document (whose body
    could contain such lines) and no quoted string spanning lines (checked by the tests,
    which run this body).
    """
    text = _SCRIPT_PATH.read_text()
    first, _, rest = text.partition("\n")
    if first != _SHEBANG:
        raise RuntimeError(f"{_SCRIPT_PATH.name} must start with {_SHEBANG}")
    if re.search(r"(?<!<)<<(?!<)", rest):
        raise RuntimeError(f"{_SCRIPT_PATH.name} must not use here-documents")
    kept = [
        line.lstrip()
        for line in rest.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return "\n".join(kept) + "\n"


def _check_volume_id(volume_id: str) -> None:
    if not isinstance(volume_id, str) or not _VOLUME_ID_RE.fullmatch(volume_id):
        raise ValueError(f"volume_id must look like vol-0123456789abcdef0, got {volume_id!r}")


def _check_region(region: str) -> None:
    if not isinstance(region, str) or not _REGION_RE.fullmatch(region):
        raise ValueError(f"region must look like eu-west-1, got {region!r}")


def _check_path(name: str, path: str) -> None:
    if not isinstance(path, str) or not _PATH_RE.fullmatch(path):
        raise ValueError(
            f"{name} must be a plain absolute path (letters, digits, '._-' and '/', no '.' or"
            f" '..' components, no trailing '/'), got {path!r}"
        )


def _check_mount_point(mount_point: str) -> None:
    _check_path("mount_point", mount_point)
    if mount_point in _SYSTEM_DIRS or mount_point.startswith(_SYSTEM_TREES):
        raise ValueError(
            f"mount_point {mount_point!r} is a system directory or inside one; use a"
            " dedicated directory such as /mnt/ecs-tls-data"
        )


def _validate(
    volume_id: str,
    region: str,
    mount_point: str,
    app_dir: str,
    owner: str,
    attach_device: str,
    attach_timeout_seconds: int,
) -> None:
    _check_volume_id(volume_id)
    _check_region(region)
    _check_mount_point(mount_point)
    _check_path("app_dir", app_dir)
    if not app_dir.startswith(mount_point + "/"):
        raise ValueError(
            f"app_dir {app_dir!r} must be inside mount_point {mount_point!r} (and not equal"
            " to it): the app directory exists only on the mounted volume"
        )
    if not isinstance(owner, str) or not _OWNER_RE.fullmatch(owner):
        raise ValueError(f"owner must be numeric uid:gid such as 7474:7474, got {owner!r}")
    if not isinstance(attach_device, str) or not _DEVICE_RE.fullmatch(attach_device):
        raise ValueError(
            f"attach_device must be /dev/sd[f-p] or /dev/xvd[f-p], got {attach_device!r}"
        )
    if (
        not isinstance(attach_timeout_seconds, int)
        or isinstance(attach_timeout_seconds, bool)
        or not 30 <= attach_timeout_seconds <= 3600
    ):
        raise ValueError(
            f"attach_timeout_seconds must be 30 to 3600 seconds, got {attach_timeout_seconds!r}"
        )


def data_volume_script(
    volume_id: str,
    region: str,
    mount_point: str,
    app_dir: str,
    owner: str,
    *,
    attach_device: str = DEFAULT_ATTACH_DEVICE,
    attach_timeout_seconds: int = DEFAULT_ATTACH_TIMEOUT_SECONDS,
) -> str:
    """The bash script that attaches, formats (if blank) and mounts the volume at boot.

    ``data_volume.sh`` with its parameters as shell-quoted assignments after the shebang.
    ``region`` is the volume's region: the script stops if the instance runs elsewhere.
    ``app_dir`` is the host directory the task bind-mounts (e.g. at /data), strictly
    inside ``mount_point``; ``owner`` is its numeric ``uid:gid``. Raises ValueError for
    anything the script would refuse.
    """
    _validate(volume_id, region, mount_point, app_dir, owner, attach_device, attach_timeout_seconds)
    params = {
        "VOLUME_ID": volume_id,
        "EXPECTED_REGION": region,
        "MOUNT_POINT": mount_point,
        "APP_DIR": app_dir,
        "OWNER": owner,
        "ATTACH_DEVICE": attach_device,
    }
    header = [_SHEBANG, "# Parameters rendered by task_contents/data_volume.py."]
    header += [f"{name}={shlex.quote(value)}" for name, value in params.items()]
    # A default, not an assignment: the tests shorten it from the environment.
    header.append(f': "${{DATA_VOLUME_ATTACH_TIMEOUT:={attach_timeout_seconds}}}"')
    return "\n".join(header) + "\n" + _script_body()


def data_volume_user_data(
    volume_id: str,
    region: str,
    mount_point: str,
    app_dir: str,
    owner: str,
    *,
    attach_device: str = DEFAULT_ATTACH_DEVICE,
    attach_timeout_seconds: int = DEFAULT_ATTACH_TIMEOUT_SECONDS,
) -> str:
    """A user data fragment (bash, under ``set -e``) that installs and runs the script.

    Meant to run before the ECS agent is configured (``ec2_capacity`` ``before_agent``):
    on failure it exits non-zero and the rest of the user data does not run.
    """
    script = data_volume_script(
        volume_id,
        region,
        mount_point,
        app_dir,
        owner,
        attach_device=attach_device,
        attach_timeout_seconds=attach_timeout_seconds,
    )
    if _HEREDOC in script.splitlines():
        raise RuntimeError(f"the script contains the here-document delimiter {_HEREDOC}")
    return (
        "# Attach, format once and mount the data volume; blocks ecs.service until mounted.\n"
        f"mkdir -p {SCRIPT_INSTALL_PATH.rsplit('/', 1)[0]}\n"
        f"cat >{SCRIPT_INSTALL_PATH} <<'{_HEREDOC}'\n"
        f"{script}"
        f"{_HEREDOC}\n"
        f"chmod 0700 {SCRIPT_INSTALL_PATH}\n"
        f"{SCRIPT_INSTALL_PATH}\n"
    )


def data_volume_instance_tags(volume_id: str) -> dict[str, str]:
    """Tags the launch template must put on instances (``resource_type="instance"``)."""
    _check_volume_id(volume_id)
    return {DATA_VOLUME_TAG_KEY: volume_id}

"""The instance's metadata guard, run for real in throwaway network namespaces.

Two namespaces stand for an ECS instance: "host" (the instance's own namespace, which
host-mode tasks share) reaches "metadata" (the metadata service, 169.254.169.254) over a
veth link, as the instance reaches the real service over its network interface. In the
host namespace, ecs-init's redirect of the task-role endpoint 169.254.170.2 to a local
credentials server is reproduced. The very script the user data installs
(`imds_guard_script`) then runs in the host namespace, and clients run as root, as Neo4j's
user (7474) and as certbot's (CERTBOT_USER), through `setpriv`. Needs root (network
namespaces, iptables); the owner match is what is tested, which works with iptables-nft as
on Amazon Linux 2023.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from task_contents.certbot import CERTBOT_GID, CERTBOT_UID
from task_contents.imds_guard import (
    CHAIN,
    IMDS_ADDRESS,
    TASK_CREDENTIALS_ADDRESS,
    imds_guard_script,
    imds_guard_user_data,
)
from tests.tools import in_ci, require_binary, stop_process

NEO4J = (7474, 7474)
CERTBOT = (CERTBOT_UID, CERTBOT_GID)
ROOT = (0, 0)
MARKER = "instance-role-credentials"
# A refused connection fails at once; a dropped one would hang until curl's own timeout.
REFUSED_WITHIN_S = 2.0
CURL_TIMEOUT_S = 10


def _privilege() -> list[str] | None:
    """The prefix that runs a command as root: none as root, `sudo -n` where passwordless
    sudo works (GitHub's hosted runners), None otherwise."""
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if (
        sudo
        and subprocess.run([sudo, "-n", "true"], capture_output=True, check=False).returncode == 0
    ):
        return [sudo, "-n"]
    return None


AS_ROOT = _privilege()


def _need(condition: bool, message: str) -> None:
    if condition:
        return
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    _need(
        AS_ROOT is not None,
        "needs root (or passwordless sudo) to create a network namespace and load iptables "
        "rules: run the tests as root, as CI does",
    )
    return {
        "ip": require_binary("ip", "apt-get install iproute2"),
        "iptables": require_binary("iptables", "apt-get install iptables"),
        "setpriv": require_binary("setpriv", "apt-get install util-linux"),
        "curl": require_binary("curl", "apt-get install curl"),
        "bash": require_binary("bash", "apt-get install bash"),
    }


HOST_ADDRESS = "10.0.0.10"  # the instance's own address on its network interface
METADATA_LINK_ADDRESS = "10.0.0.1"
CREDENTIALS_PORT = 51679  # where ecs-init redirects the task-role endpoint


class Namespace:
    def __init__(self, name: str, tools: dict[str, str]):
        self.name = name
        self.tools = tools

    def argv(self, *command: str, user: tuple[int, int] = ROOT) -> list[str]:
        prefix = [*(AS_ROOT or []), self.tools["ip"], "netns", "exec", self.name]
        if user != ROOT:
            uid, gid = user
            prefix += [
                self.tools["setpriv"],
                f"--reuid={uid}",
                f"--regid={gid}",
                "--clear-groups",
            ]
        return [*prefix, *command]

    def run(
        self, *command: str, user: tuple[int, int] = ROOT, timeout: float = 30
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.argv(*command, user=user),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def must(self, *command: str) -> None:
        result = self.run(*command)
        assert result.returncode == 0, (command, result.stderr)

    def get(self, address: str, user: tuple[int, int]) -> tuple[subprocess.CompletedProcess, float]:
        started = time.monotonic()
        result = self.run(
            self.tools["curl"],
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            str(CURL_TIMEOUT_S),
            f"http://{address}/latest/",
            user=user,
            timeout=CURL_TIMEOUT_S + 10,
        )
        return result, time.monotonic() - started

    def apply_guard(self, unprivileged_port_start: int | None) -> subprocess.CompletedProcess:
        """The script text exactly as the user data installs it, run by bash as root."""
        return self.run(self.tools["bash"], "-c", imds_guard_script(unprivileged_port_start))


def _serve(namespace: Namespace, address: str, port: int, directory: Path) -> subprocess.Popen:
    return subprocess.Popen(
        namespace.argv(
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            address,
            "--directory",
            str(directory),
            str(port),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def netns(tools: dict[str, str], tmp_path: Path) -> Iterator[Namespace]:
    """The host namespace, linked to a metadata namespace; both deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    host = Namespace(f"ecs-tls-host-{suffix}", tools)
    metadata = Namespace(f"ecs-tls-imds-{suffix}", tools)
    servers: list[subprocess.Popen] = []
    created: list[str] = []
    try:
        for namespace in (host, metadata):
            subprocess.run(
                [*AS_ROOT, tools["ip"], "netns", "add", namespace.name], check=True, timeout=30
            )
            created.append(namespace.name)
        subprocess.run(
            [*AS_ROOT, tools["ip"], "link", "add", f"h{suffix}", "netns", host.name, "type", "veth",
             "peer", "name", f"m{suffix}", "netns", metadata.name],
            check=True,
            timeout=30,
        )  # fmt: skip
        metadata.must("ip", "link", "set", "lo", "up")
        metadata.must("ip", "link", "set", f"m{suffix}", "up")
        metadata.must("ip", "addr", "add", f"{METADATA_LINK_ADDRESS}/24", "dev", f"m{suffix}")
        metadata.must("ip", "addr", "add", f"{IMDS_ADDRESS}/32", "dev", f"m{suffix}")
        host.must("ip", "link", "set", "lo", "up")
        host.must("ip", "link", "set", f"h{suffix}", "up")
        host.must("ip", "addr", "add", f"{HOST_ADDRESS}/24", "dev", f"h{suffix}")
        for link_local in (IMDS_ADDRESS, TASK_CREDENTIALS_ADDRESS):
            host.must("ip", "route", "add", f"{link_local}/32", "dev", f"h{suffix}")
        # ecs-init's own rule for host-mode tasks (amazon-ecs-init, netfilter).
        host.must(
            tools["iptables"], "-w", "-t", "nat", "-A", "OUTPUT", "-d",
            f"{TASK_CREDENTIALS_ADDRESS}/32", "-p", "tcp", "--dport", "80",
            "-j", "REDIRECT", "--to-ports", str(CREDENTIALS_PORT),
        )  # fmt: skip
        www = tmp_path / "www"
        (www / "latest").mkdir(parents=True)
        (www / "latest" / "index.html").write_text(MARKER)
        servers.append(_serve(metadata, IMDS_ADDRESS, 80, www))
        servers.append(_serve(host, "127.0.0.1", CREDENTIALS_PORT, www))
        deadline = time.monotonic() + 20
        for address in (IMDS_ADDRESS, TASK_CREDENTIALS_ADDRESS):
            while True:
                result, _ = host.get(address, ROOT)
                if result.returncode == 0:
                    break
                assert time.monotonic() < deadline, f"no server on {address}: {result.stderr}"
                time.sleep(0.2)
        yield host
    finally:
        for server in servers:
            stop_process(server)
        for name in created:
            subprocess.run([*AS_ROOT, tools["ip"], "netns", "del", name], check=False, timeout=30)


def _answers(namespace: Namespace, address: str, user: tuple[int, int]) -> bool:
    result, _ = namespace.get(address, user)
    return result.returncode == 0 and MARKER in result.stdout


def _assert_refused_quickly(namespace: Namespace, user: tuple[int, int]) -> None:
    result, elapsed = namespace.get(IMDS_ADDRESS, user)
    # curl exit 7: could not connect (the REJECT rule), not 28 (a timeout, as a DROP gives).
    assert result.returncode == 7, (user, result.returncode, result.stderr)
    assert elapsed < REFUSED_WITHIN_S, f"uid {user[0]} waited {elapsed:.1f}s: dropped, not refused"


def test_without_the_guard_every_uid_reaches_the_metadata_service(netns: Namespace) -> None:
    """What a host-mode container sees on a stock instance: the test's setup is sound."""
    for user in (ROOT, NEO4J, CERTBOT):
        assert _answers(netns, IMDS_ADDRESS, user), user


def test_only_root_reaches_the_metadata_service(netns: Namespace) -> None:
    applied = netns.apply_guard(None)
    assert applied.returncode == 0, applied.stderr
    assert _answers(netns, IMDS_ADDRESS, ROOT), "cloud-init, the ECS and SSM agents need it"
    for user in (NEO4J, CERTBOT):
        _assert_refused_quickly(netns, user)


def test_the_task_role_endpoint_stays_open_to_every_uid(netns: Namespace) -> None:
    applied = netns.apply_guard(None)
    assert applied.returncode == 0, applied.stderr
    for user in (ROOT, NEO4J, CERTBOT):
        assert _answers(netns, TASK_CREDENTIALS_ADDRESS, user), user


def test_other_protocols_are_refused_too(netns: Namespace) -> None:
    """UDP to the metadata address: the send itself fails for a non-root uid."""
    send = f"echo probe >/dev/udp/{IMDS_ADDRESS}/53"
    bash = netns.tools["bash"]
    assert netns.run(bash, "-c", send, user=NEO4J).returncode == 0, "before the guard"
    applied = netns.apply_guard(None)
    assert applied.returncode == 0, applied.stderr
    assert netns.run(bash, "-c", send, user=ROOT).returncode == 0
    refused = netns.run(bash, "-c", send, user=NEO4J)
    assert refused.returncode != 0 and "not permitted" in refused.stderr.lower(), refused.stderr


def test_running_the_script_again_changes_nothing(netns: Namespace) -> None:
    """Every boot runs it; a manual rerun must not stack rules or open a gap."""
    for _ in range(3):
        applied = netns.apply_guard(None)
        assert applied.returncode == 0, applied.stderr
    jumps = netns.run(netns.tools["iptables"], "-w", "-S", "OUTPUT").stdout.splitlines()
    assert len([rule for rule in jumps if f"-j {CHAIN}" in rule]) == 1, jumps
    assert _answers(netns, IMDS_ADDRESS, ROOT)
    _assert_refused_quickly(netns, NEO4J)


def test_certbot_may_bind_port_80_without_root_only_when_asked(netns: Namespace) -> None:
    """HTTP-01: certbot (a non-root user) listens on the instance's port 80 itself."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    _need(python is not None, "needs a system python3 in /usr/bin: apt-get install python3")

    def bind(port: int) -> subprocess.CompletedProcess:
        code = f"import socket; socket.socket().bind(('0.0.0.0', {port}))"
        return netns.run(python, "-c", code, user=CERTBOT)

    def refused(result: subprocess.CompletedProcess) -> bool:
        return result.returncode != 0 and "Permission denied" in result.stderr

    assert refused(bind(80)), "port 80 is privileged by default"
    applied = netns.apply_guard(None)
    assert applied.returncode == 0, applied.stderr
    assert refused(bind(80)), "dns-01 leaves it privileged"
    applied = netns.apply_guard(80)
    assert applied.returncode == 0, applied.stderr
    bound = bind(80)
    assert bound.returncode == 0, bound.stderr
    assert refused(bind(22)), "ports below 80 (SSH, DNS) stay root's"


def test_the_user_data_fragment_installs_that_script(tmp_path: Path) -> None:
    """The heredoc in the user data writes the script byte for byte (no expansion)."""
    bash = require_binary("bash", "apt-get install bash")
    fragment = imds_guard_user_data(80)
    target = tmp_path / "guard"
    # Only the part that writes the script: the rest needs systemd.
    write = fragment.split("chmod ")[0].replace("/usr/local/sbin/ecs-tls-imds-guard", str(target))
    write = write.replace(f"mkdir -p {'/usr/local/sbin'}", f"mkdir -p {tmp_path}")
    result = subprocess.run([bash, "-c", write], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert target.read_text() == imds_guard_script(80)

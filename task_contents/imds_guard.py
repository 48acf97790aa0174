"""Keep the instance role away from containers on an ECS container instance.

Tasks in `host` network mode share the instance's network namespace, so IMDSv2 with a hop
limit of 1 does not stop them: any of their processes could fetch the instance role's
credentials (ECS agent rights, ec2:AttachVolume, Session Manager) from 169.254.169.254.
`ECS_AWSVPC_BLOCK_IMDS` only applies to awsvpc tasks.

The guard is a firewall rule in the host namespace's OUTPUT chain: traffic to the metadata
address is accepted from uid 0 only and rejected (at once, not dropped) for every other
uid. Root is what needs the service: cloud-init, ecs-init and the ECS agent (whose
container runs as root), the SSM agent. Every container of a host-mode task runs as a
non-root user (the task definitions set `user`), so none of them gets past it. The task
role endpoint 169.254.170.2 is a different address and stays open: that is how tasks get
their own, narrower, credentials.

The owner match sees the socket's uid in the host's user namespace; Docker runs without
user namespace remapping on the ECS-optimised AMI, so a container's uid 0 would be uid 0
here: hence non-root users in the task definitions, and `ECS_DISABLE_PRIVILEGED`.

The rule is installed at every boot by a systemd unit ordered before Docker and the ECS
agent, and ecs.service requires it: if the rule cannot be installed, no task starts.
ecs-init itself programs the task-role endpoint with iptables, so the ECS-optimised AMI
ships the iptables command (iptables-nft on Amazon Linux 2023); the script installs it
if it is ever missing.

Pure functions of plain values: the integration test runs the very same script text in a
throwaway network namespace.
"""

from __future__ import annotations

import re

__all__ = [
    "CHAIN",
    "IMDS_ADDRESS",
    "SCRIPT_INSTALL_PATH",
    "TASK_CREDENTIALS_ADDRESS",
    "UNIT_NAME",
    "imds_guard_rules",
    "imds_guard_script",
    "imds_guard_unit",
    "imds_guard_user_data",
]

IMDS_ADDRESS = "169.254.169.254"
# ecs-init redirects this address to the agent's credentials server: never blocked.
TASK_CREDENTIALS_ADDRESS = "169.254.170.2"
CHAIN = "ECS-TLS-IMDS"
UNIT_NAME = "ecs-tls-imds-guard.service"
SCRIPT_INSTALL_PATH = "/usr/local/sbin/ecs-tls-imds-guard"
_HEREDOC_SCRIPT = "ECS_TLS_IMDS_GUARD_SCRIPT"
_HEREDOC_UNIT = "ECS_TLS_IMDS_GUARD_UNIT"
_IPTABLES_RE = re.compile(r"/?[A-Za-z0-9_./-]+")


def imds_guard_rules(iptables: str = "iptables") -> str:
    """The shell commands that install the rule; safe to run again (the chain is rebuilt).

    TCP gets a reset, anything else an ICMP "administratively prohibited": a refused
    client fails at once instead of waiting for a timeout.
    """
    if not _IPTABLES_RE.fullmatch(iptables):
        raise ValueError(f"iptables must be a command name or path, got {iptables!r}")
    ipt = f"{iptables} -w"
    return "\n".join(
        [
            f"{ipt} -N {CHAIN} 2>/dev/null || {ipt} -F {CHAIN}",
            f"{ipt} -A {CHAIN} -m owner --uid-owner 0 -j ACCEPT",
            f"{ipt} -A {CHAIN} -p tcp -j REJECT --reject-with tcp-reset",
            f"{ipt} -A {CHAIN} -j REJECT --reject-with icmp-admin-prohibited",
            f"{ipt} -C OUTPUT -d {IMDS_ADDRESS}/32 -j {CHAIN} 2>/dev/null ||"
            f" {ipt} -I OUTPUT 1 -d {IMDS_ADDRESS}/32 -j {CHAIN}",
        ]
    )


def _check_port_start(port: int | None) -> None:
    if port is not None and (
        not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 1024
    ):
        raise ValueError(f"unprivileged_port_start must be 1 to 1024 or None, got {port!r}")


def imds_guard_script(unprivileged_port_start: int | None = None) -> str:
    """The boot script (bash, as root): the rule, and optionally the first port non-root
    processes of the host namespace may bind.

    ACME HTTP-01 needs certbot, which runs as a non-root user, on the instance's port 80:
    `unprivileged_port_start=80` allows ports 80 to 1023 and keeps 0 to 79 (SSH, DNS)
    for root. The setting belongs to the network namespace, here the host's.
    """
    _check_port_start(unprivileged_port_start)
    lines = [
        "#!/bin/bash",
        "# Written by ecs-tls user data; run at every boot by " + UNIT_NAME + ".",
        "set -euo pipefail",
        "if ! command -v iptables >/dev/null 2>&1; then",
        "    dnf install -y -q iptables-nft >&2",
        "fi",
        imds_guard_rules(),
    ]
    if unprivileged_port_start is not None:
        lines.append(f"sysctl -q -w net.ipv4.ip_unprivileged_port_start={unprivileged_port_start}")
    lines.append(f"echo 'imds-guard: only uid 0 reaches {IMDS_ADDRESS}' >&2")
    return "\n".join(lines) + "\n"


def imds_guard_unit() -> str:
    """The systemd unit: before Docker and the ECS agent, at every boot.

    After the services that load a saved ruleset (they would flush the rule), and required
    by ecs.service, so a failure keeps every task off the instance.
    """
    return (
        "[Unit]\n"
        f"Description=Only root reaches the instance metadata service {IMDS_ADDRESS}\n"
        "After=nftables.service iptables.service firewalld.service\n"
        "Before=docker.service ecs.service\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        f"ExecStart={SCRIPT_INSTALL_PATH}\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
        "RequiredBy=ecs.service\n"
    )


def imds_guard_user_data(unprivileged_port_start: int | None = None) -> str:
    """A user data fragment (bash, under ``set -e``): install the script and the unit,
    and apply the rule now, before the ECS agent starts for the first time."""
    script = imds_guard_script(unprivileged_port_start)
    unit = imds_guard_unit()
    return (
        "# Only root reaches the instance metadata service, from now and at every boot.\n"
        f"mkdir -p {SCRIPT_INSTALL_PATH.rsplit('/', 1)[0]}\n"
        f"cat >{SCRIPT_INSTALL_PATH} <<'{_HEREDOC_SCRIPT}'\n"
        f"{script}"
        f"{_HEREDOC_SCRIPT}\n"
        f"chmod 0700 {SCRIPT_INSTALL_PATH}\n"
        f"cat >/etc/systemd/system/{UNIT_NAME} <<'{_HEREDOC_UNIT}'\n"
        f"{unit}"
        f"{_HEREDOC_UNIT}\n"
        "systemctl daemon-reload\n"
        f"systemctl enable --now {UNIT_NAME}\n"
    )

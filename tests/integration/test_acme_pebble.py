"""Issue a real certificate with the exact certbot argv and copier script of ``nlb-certbot``.

Pebble (Let's Encrypt's test ACME server) and pebble-challtestsrv (its mock DNS) run once
per module on loopback. certbot runs ``certbot_args(...)`` unchanged except for the test
knobs of ``CertbotSpec`` (directory URL, ports, config directory), and the copier runs
``copy_script()`` with ``copier_environment(...)`` pointed at temporary directories.

The DNS-01 test runs certbot's Route53 plugin against moto's Route53 through a small
HTTP relay. The relay forwards every call to moto unchanged and, once moto has accepted a
change to an ``_acme-challenge`` TXT record, mirrors it into pebble-challtestsrv before it
answers certbot. certbot only tells the CA to validate after that answer, so the TXT
record is always in the mock DNS in time: no polling, no race.

Every socket binds or connects to 127.0.0.0/8 only, and every process started here is
terminated and reaped in a fixture finalizer.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from settings import ACME_DIRECTORIES
from task_contents.certbot import (
    SHELL_ENTRY_POINT,
    CertbotSpec,
    CertificateLayout,
    certbot_args,
    copier_command,
    copier_environment,
    copy_script,
    lineage_name,
    live_dir,
    lock_file,
)
from tests.tools import (
    free_loopback_ports,
    http_server,
    moto_client,
    moto_server,
    require_binary,
    stop_process,
)

pytestmark = pytest.mark.integration

DOMAIN = "db.example.test"
DNS01_DOMAIN = "graph.example.test"
ZONE = "example.test"
EMAIL = "ops@example.test"
PRODUCTION = ACME_DIRECTORIES["production"]
PROFILE = "tlsserver"  # Pebble 2.4 offers no profiles: certbot must fall back to the default
CERTBOT_TIMEOUT_S = 45.0
COPIER_TIMEOUT_S = 15.0
READY_TIMEOUT_S = 15.0
IO_TIMEOUT_S = 5.0
LOOPBACK = "127.0.0.1"
NO_PROXY = "127.0.0.1,localhost"
PKCS8_HEADER = "-----BEGIN PRIVATE KEY-----"
CERTBOT_HINT = "pip install certbot==5.8.0 certbot-dns-route53==5.8.0"
PEBBLE_HINT = "apt-get install pebble"


# --------------------------------------------------------------------------- helpers


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited early:\n{log.read_text()}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.args[0]} not listening on {port}:\n{log.read_text()}")


def _https_get(port: int, path: str, context: ssl.SSLContext) -> bytes:
    conn = http.client.HTTPSConnection(LOOPBACK, port, context=context, timeout=IO_TIMEOUT_S)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, (path, response.status, body)
        return body
    finally:
        conn.close()


def _post_json(port: int, path: str, payload: dict) -> None:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=IO_TIMEOUT_S)
    try:
        conn.request("POST", path, json.dumps(payload), {"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, (path, response.status, body)
    finally:
        conn.close()


def _api_certificate(directory: Path) -> tuple[Path, Path]:
    """Self-signed cert for Pebble's own HTTPS API on 127.0.0.1 / localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble api (test)")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "api-cert.pem", directory / "api-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _base_env(home: Path) -> dict[str, str]:
    """A minimal environment: no host AWS credentials, proxies or certbot config leak in."""
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "LANG": "C.UTF-8",
        "NO_PROXY": NO_PROXY,
        "no_proxy": NO_PROXY,
    }


# --------------------------------------------------------------------------- Pebble


@dataclass
class Acme:
    directory_url: str
    http_port: int
    challtestsrv_port: int
    api_ca: Path
    roots: Path  # Pebble's issuing root, the trust anchor for issued certificates
    log: Path
    dns_log: Path  # pebble-challtestsrv's log
    certbot: str
    home: Path
    intermediate: Path  # Pebble's issuing intermediate: the issuer of every leaf
    dns_port: int
    api_key: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {**_base_env(self.home), "REQUESTS_CA_BUNDLE": str(self.api_ca), **extra}

    def spec(self, config_dir: Path, **changes) -> CertbotSpec:
        base = CertbotSpec(
            email=EMAIL,
            domain=DOMAIN,
            directory_url=self.directory_url,
            challenge="http-01",
            http_port=self.http_port,
            config_dir=str(config_dir),
            preferred_profile=PROFILE,
            http_address=LOOPBACK,
        )
        return replace(base, **changes)

    def run_certbot(self, spec: CertbotSpec, env: dict[str, str] | None = None) -> Run:
        started = time.monotonic()
        result = subprocess.run(
            [self.certbot, *certbot_args(spec)],
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=CERTBOT_TIMEOUT_S,
            check=False,
        )
        return Run(result.returncode, result.stdout + result.stderr, time.monotonic() - started)

    def log_since(self, offset: int) -> str:
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read().decode()

    @contextmanager
    def another_ca(self, base: Path) -> Iterator[Acme]:
        """A second Pebble (its own root and intermediate) on the same DNS and HTTP-01 port."""
        pebble = require_binary("pebble", PEBBLE_HINT)
        with _pebble(pebble, base, self.api_ca, self.api_key, self.dns_port, self.http_port) as p:
            yield replace(
                self,
                directory_url=p.directory_url,
                roots=p.roots,
                intermediate=p.intermediate,
                log=p.log,
            )


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float


@dataclass
class _Pebble:
    directory_url: str
    roots: Path
    intermediate: Path
    log: Path


@contextmanager
def _pebble(
    binary: str, base: Path, api_cert: Path, api_key: Path, dns_port: int, http_port: int
) -> Iterator[_Pebble]:
    """One Pebble process on loopback, terminated and reaped on exit."""
    base.mkdir(parents=True, exist_ok=True)
    acme_port, mgmt_port, tls_port = free_loopback_ports(3)
    config = base / "pebble-config.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"{LOOPBACK}:{acme_port}",
                    "managementListenAddress": f"{LOOPBACK}:{mgmt_port}",
                    "certificate": str(api_cert),
                    "privateKey": str(api_key),
                    "httpPort": http_port,
                    "tlsPort": tls_port,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    log_file = base / "pebble.log"
    with log_file.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "-config", str(config), "-dnsserver", f"{LOOPBACK}:{dns_port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={
                **_base_env(base),
                "PEBBLE_VA_NOSLEEP": "1",  # validate at once
                "PEBBLE_WFE_NONCEREJECT": "0",  # no random badNonce errors
                "PEBBLE_AUTHZREUSE": "0",  # every order proves control again
            },
            cwd=base,
        )
    try:
        _wait_for_port(acme_port, proc, log_file)
        _wait_for_port(mgmt_port, proc, log_file)
        api_context = ssl.create_default_context(cafile=str(api_cert))
        directory = json.loads(_https_get(acme_port, "/dir", api_context))
        assert "newOrder" in directory
        roots = base / "pebble-root.pem"
        roots.write_bytes(_https_get(mgmt_port, "/roots/0", api_context))
        intermediate = base / "pebble-intermediate.pem"
        intermediate.write_bytes(_https_get(mgmt_port, "/intermediates/0", api_context))
        yield _Pebble(f"https://{LOOPBACK}:{acme_port}/dir", roots, intermediate, log_file)
    finally:
        stop_process(proc, timeout=5)


@contextmanager
def acme_stack(base: Path) -> Iterator[Acme]:
    """pebble-challtestsrv (DNS) and Pebble on loopback; both reaped on exit."""
    pebble = require_binary("pebble", PEBBLE_HINT)
    challtestsrv = require_binary("pebble-challtestsrv", PEBBLE_HINT)
    certbot = require_binary("certbot", CERTBOT_HINT)
    api_cert, api_key = _api_certificate(base)

    dns_port, chall_mgmt_port, http_port = free_loopback_ports(3, udp=True)
    chall_log = base / "challtestsrv.log"
    with chall_log.open("wb") as out:
        dns = subprocess.Popen(
            [
                challtestsrv,
                "-dns01",
                f"{LOOPBACK}:{dns_port}",
                "-management",
                f"{LOOPBACK}:{chall_mgmt_port}",
                "-defaultIPv4",
                LOOPBACK,
                "-defaultIPv6",
                "",  # no AAAA answers: validation must stay on 127.0.0.1
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_base_env(base),
        )
    try:
        _wait_for_port(chall_mgmt_port, dns, chall_log)
        with _pebble(pebble, base, api_cert, api_key, dns_port, http_port) as p:
            yield Acme(
                directory_url=p.directory_url,
                http_port=http_port,
                challtestsrv_port=chall_mgmt_port,
                api_ca=api_cert,
                roots=p.roots,
                log=p.log,
                dns_log=chall_log,
                certbot=certbot,
                home=base,
                intermediate=p.intermediate,
                dns_port=dns_port,
                api_key=api_key,
            )
    finally:
        stop_process(dns, timeout=5)


@pytest.fixture(scope="module")
def acme(tmp_path_factory) -> Iterator[Acme]:
    with acme_stack(tmp_path_factory.mktemp("pebble")) as stack:
        yield stack


@dataclass
class Issued:
    config_dir: Path
    spec: CertbotSpec
    run: Run

    @property
    def live(self) -> Path:
        return Path(live_dir(self.spec))


@pytest.fixture(scope="module")
def issued(acme: Acme, tmp_path_factory) -> Issued:
    """One real HTTP-01 issuance, shared by the tests that need a certificate."""
    config_dir = tmp_path_factory.mktemp("letsencrypt")
    spec = acme.spec(config_dir)
    return Issued(config_dir, spec, acme.run_certbot(spec))


# What the copier gets in the task: the lineage of the configured ACME server.
PRODUCTION_SPEC = CertbotSpec(email=EMAIL, domain=DOMAIN, directory_url=PRODUCTION)


def _copier_env(source_dir: Path, target_dir: Path, **overrides: str) -> dict[str, str]:
    layout = CertificateLayout(
        target_dir=str(target_dir), owner="7474:7474" if os.geteuid() == 0 else None
    )
    env = copier_environment(layout, PRODUCTION_SPEC)
    assert env["SOURCE_DIR"] == f"/etc/letsencrypt/live/{DOMAIN}-production"
    assert env["DOMAIN"] == DOMAIN
    env["SOURCE_DIR"] = str(source_dir)
    env.update(overrides)
    return env


def _run_copier(
    env: dict[str, str], shell: list[str] | None = None, path: str | None = None
) -> subprocess.CompletedProcess:
    command = copier_command()
    assert command[:2] == ["sh", "-c"] and command[2] == copy_script()
    argv = [*(shell or [require_binary("sh", "apt-get install dash")]), *command[1:]]
    full_env = {"PATH": path or os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", **env}
    return subprocess.run(
        argv, env=full_env, capture_output=True, text=True, timeout=COPIER_TIMEOUT_S, check=False
    )


def busybox_applets(bin_dir: Path) -> str:
    """Fill ``bin_dir`` with a link per busybox applet, like an alpine image's /bin."""
    busybox = require_binary("busybox", "apt-get install busybox")
    applets = subprocess.run(
        [busybox, "--list"], capture_output=True, text=True, timeout=10, check=True
    ).stdout.split()
    bin_dir.mkdir(parents=True, exist_ok=True)
    for applet in applets:
        (bin_dir / applet).symlink_to(busybox)
    return str(bin_dir)


@pytest.fixture(scope="module")
def busybox_path(tmp_path_factory) -> str:
    """A PATH holding only busybox applets, like the alpine/busybox copier image."""
    return busybox_applets(tmp_path_factory.mktemp("busybox-bin"))


def _files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if not p.is_dir())


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in _files_under(directory)}


# --------------------------------------------------------------------------- a. issuance


def test_certbot_issues_a_certificate_over_http01(acme: Acme, issued: Issued) -> None:
    run = issued.run
    print(f"certbot http-01 issuance took {run.seconds:.2f}s\n{run.output}")
    assert run.returncode == 0, run.output
    assert "Successfully received certificate." in run.output
    for name in ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"):
        assert (issued.live / name).is_file(), name
    leaf = x509.load_pem_x509_certificates((issued.live / "fullchain.pem").read_bytes())[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [DOMAIN]
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    # The private key certbot writes for --key-type ecdsa is already PKCS#8.
    assert (issued.live / "privkey.pem").read_text().splitlines()[0] == PKCS8_HEADER
    # Pebble validated over HTTP-01 against certbot's standalone server on loopback.
    assert f"Attempting to validate w/ HTTP: http://{DOMAIN}:{acme.http_port}/" in (
        acme.log.read_text()
    )
    assert run.seconds < 30


# --------------------------------------------------------------------------- b. copier


@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_copier_lays_out_the_certificate_for_each_scope(
    issued: Issued, tmp_path: Path, shell: str, request
) -> None:
    assert issued.run.returncode == 0, issued.run.output
    target = tmp_path / "ssl"
    env = _copier_env(issued.live, target)
    if shell == "busybox":
        path = request.getfixturevalue("busybox_path")
        result = _run_copier(env, [str(Path(path) / "sh")], path=path)
    else:
        result = _run_copier(env)
    assert result.returncode == 0, result.stderr

    assert sorted(os.listdir(target)) == ["bolt", "https"]  # staging directory is gone
    chain = (issued.live / "fullchain.pem").read_bytes()
    key = (issued.live / "privkey.pem").read_bytes()
    for scope in ("bolt", "https"):
        base = target / scope
        assert sorted(os.listdir(base)) == ["private.key", "public.crt", "revoked", "trusted"]
        assert os.listdir(base / "trusted") == [] and os.listdir(base / "revoked") == []
        assert (base / "public.crt").read_bytes() == chain
        assert (base / "private.key").read_bytes() == key
        assert not (base / "private.key").is_symlink()
        assert stat.S_IMODE((base / "private.key").stat().st_mode) == 0o600
        assert stat.S_IMODE((base / "public.crt").stat().st_mode) == 0o644
        for directory in (base, base / "trusted", base / "revoked"):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o755
        if "OWNER" in env:
            for path in (base, *base.rglob("*")):
                assert (path.stat().st_uid, path.stat().st_gid) == (7474, 7474), path

        key_text = (base / "private.key").read_text()
        assert key_text.splitlines()[0] == PKCS8_HEADER
        private_key = serialization.load_pem_private_key(key_text.encode(), password=None)
        leaf = x509.load_pem_x509_certificates(chain)[0]
        assert private_key.public_key() == leaf.public_key()


# --------------------------------------------------------------------------- c. TLS


def _serve_once(context: ssl.SSLContext) -> tuple[int, threading.Thread, list[BaseException]]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(4)
    listener.settimeout(IO_TIMEOUT_S)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            for _ in range(2):  # one good client, one with the wrong name
                conn, _ = listener.accept()
                conn.settimeout(IO_TIMEOUT_S)
                try:
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.sendall(b"hello over tls\n")
                except (ssl.SSLError, OSError) as exc:
                    errors.append(exc)
        except OSError as exc:
            errors.append(exc)
        finally:
            listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, errors


def test_tls_server_presents_a_chain_trusted_by_pebble_root(
    acme: Acme, issued: Issued, tmp_path: Path
) -> None:
    assert issued.run.returncode == 0, issued.run.output
    target = tmp_path / "ssl"
    copied = _run_copier(_copier_env(issued.live, target))
    assert copied.returncode == 0, copied.stderr

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(target / "bolt" / "public.crt", target / "bolt" / "private.key")
    port, thread, server_errors = _serve_once(server)

    # Trust only Pebble's root: the intermediate must come from the server's chain.
    client = ssl.create_default_context(cafile=str(acme.roots))
    with (
        socket.create_connection((LOOPBACK, port), timeout=IO_TIMEOUT_S) as raw,
        client.wrap_socket(raw, server_hostname=DOMAIN) as tls,
    ):
        peer = tls.getpeercert()
        assert ("DNS", DOMAIN) in peer["subjectAltName"]
        assert tls.recv(64) == b"hello over tls\n"

    with (
        pytest.raises(ssl.SSLCertVerificationError),
        socket.create_connection((LOOPBACK, port), timeout=IO_TIMEOUT_S) as raw,
        client.wrap_socket(raw, server_hostname="other.example.test"),
    ):
        pass
    thread.join(IO_TIMEOUT_S)
    assert not thread.is_alive()
    assert len(server_errors) == 1  # only the mismatched client was refused (by itself)


# --------------------------------------------------------------------------- d. ACME down


def test_certbot_fails_when_the_acme_server_is_unreachable(acme: Acme, tmp_path: Path) -> None:
    closed = free_loopback_ports(udp=True)[0]  # nothing listens here
    spec = acme.spec(tmp_path / "le", directory_url=f"https://{LOOPBACK}:{closed}/dir")
    run = acme.run_certbot(spec)
    assert run.returncode != 0, run.output
    assert "Connection refused" in run.output or "Max retries" in run.output, run.output
    assert not (tmp_path / "le" / "live").exists()


# --------------------------------------------------------------------------- e. copier faults


def _copy_source(issued: Issued, directory: Path, *, key: bool = True) -> Path:
    directory.mkdir()
    shutil.copyfile(issued.live / "fullchain.pem", directory / "fullchain.pem")
    if key:
        shutil.copyfile(issued.live / "privkey.pem", directory / "privkey.pem")
    return directory


def _previous_layout(target: Path) -> dict[str, bytes]:
    for scope in ("bolt", "https"):
        (target / scope / "trusted").mkdir(parents=True)
        (target / scope / "public.crt").write_text(f"old {scope} certificate\n")
        (target / scope / "private.key").write_text(f"old {scope} key\n")
    return _snapshot(target)


@pytest.mark.parametrize("previous", [False, True], ids=["empty-target", "previous-layout"])
def test_copier_without_private_key_fails_and_writes_nothing(
    issued: Issued, tmp_path: Path, previous: bool
) -> None:
    assert issued.run.returncode == 0, issued.run.output
    source = _copy_source(issued, tmp_path / "live", key=False)
    target = tmp_path / "ssl"
    target.mkdir()
    before = _previous_layout(target) if previous else {}

    result = _run_copier(_copier_env(source, target))
    assert result.returncode != 0
    assert "privkey.pem does not exist" in result.stderr
    assert _snapshot(target) == before  # no partial (and no lost) file in any scope
    assert sorted(os.listdir(target)) == (["bolt", "https"] if previous else [])


def test_copier_refuses_a_key_that_is_not_pkcs8(issued: Issued, tmp_path: Path) -> None:
    source = _copy_source(issued, tmp_path / "live", key=False)
    sec1 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    (source / "privkey.pem").write_bytes(sec1)
    target = tmp_path / "ssl"

    result = _run_copier(_copier_env(source, target))
    assert result.returncode != 0
    assert "is not an unencrypted PKCS#8 PEM key" in result.stderr
    assert not target.exists() or _files_under(target) == []


def test_copier_rolls_back_when_the_final_swap_fails(issued: Issued, tmp_path: Path) -> None:
    """A failure after the first scope was swapped in restores the previous layout."""
    source = _copy_source(issued, tmp_path / "live")
    target = tmp_path / "ssl"
    before = _previous_layout(target)
    # Fault injection: an `mv` that refuses to put the new "https" directory in place.
    shim = tmp_path / "shim"
    shim.mkdir()
    real_mv = require_binary("mv", "apt-get install coreutils")
    (shim / "mv").write_text(
        "#!/bin/sh\n"
        'case "$1" in */new/https) echo "mv: injected failure" >&2; exit 1 ;; esac\n'
        f'exec {real_mv} "$@"\n'
    )
    (shim / "mv").chmod(0o755)

    result = _run_copier(
        _copier_env(source, target), path=f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    assert result.returncode != 0
    assert "injected failure" in result.stderr
    assert _snapshot(target) == before
    assert sorted(os.listdir(target)) == ["bolt", "https"]


# --------------------------------------------------------------------------- f. no re-issue


def test_second_run_keeps_the_valid_certificate(acme: Acme, issued: Issued) -> None:
    assert issued.run.returncode == 0, issued.run.output
    chain_before = (issued.live / "fullchain.pem").read_bytes()
    log_offset = acme.log.stat().st_size

    run = acme.run_certbot(issued.spec)
    assert run.returncode == 0, run.output
    assert "Certificate not yet due for renewal" in run.output
    assert (issued.live / "fullchain.pem").read_bytes() == chain_before
    archive = issued.config_dir / "archive" / lineage_name(DOMAIN, acme.directory_url)
    assert sorted(p.name for p in archive.glob("cert*.pem")) == ["cert1.pem"]
    with acme.log.open("rb") as log:
        log.seek(log_offset)
        requests = log.read().decode()
    # certbot may read the directory, but it neither registers nor orders anything.
    for endpoint in ("/sign-me-up", "/order-plz", "/finalize-order"):
        assert endpoint not in requests, requests


# --------------------------------------------------------------------------- g. DNS-01


R53_NS = "{https://route53.amazonaws.com/doc/2013-04-01/}"


@dataclass
class TxtChange:
    action: str
    name: str
    values: list[str]
    zone_after: list[str]  # the TXT values moto holds for the name once the change is done


@dataclass
class Route53Relay:
    """HTTP relay certbot -> moto that mirrors _acme-challenge TXT changes into challtestsrv."""

    moto_port: int
    challtestsrv_port: int
    zone_values: Callable[[str], list[str]]
    mirror_enabled: bool = True
    changes: list[TxtChange] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn = http.client.HTTPConnection(LOOPBACK, relay.moto_port, timeout=10)
                try:
                    conn.request(self.command, self.path, body or None, headers)
                    response = conn.getresponse()
                    payload = response.read()
                finally:
                    conn.close()
                if (
                    relay.mirror_enabled
                    and response.status == 200
                    and self.path.endswith("/rrset/")
                ):
                    try:
                        relay.mirror(body)
                    except Exception as exc:  # reported by the test, not swallowed
                        relay.errors.append(repr(exc))
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _relay

            def log_message(self, *args) -> None:
                pass

        return Handler

    def mirror(self, body: bytes) -> None:
        root = ET.fromstring(body)
        for change in root.iter(f"{R53_NS}Change"):
            action = change.findtext(f"{R53_NS}Action")
            rrset = change.find(f"{R53_NS}ResourceRecordSet")
            name = rrset.findtext(f"{R53_NS}Name")
            if rrset.findtext(f"{R53_NS}Type") != "TXT" or not name.startswith("_acme-challenge."):
                continue
            values = [v.text.strip('"') for v in rrset.iter(f"{R53_NS}Value")]
            host = name.rstrip(".") + "."
            _post_json(self.challtestsrv_port, "/clear-txt", {"host": host})
            if action != "DELETE":
                for value in values:
                    _post_json(self.challtestsrv_port, "/set-txt", {"host": host, "value": value})
            self.changes.append(TxtChange(action, host, values, self.zone_values(host)))


@dataclass
class Route53:
    relay: Route53Relay
    endpoint: str  # what certbot's boto3 talks to (the relay)
    zone_values: Callable[[str], list[str]]


@pytest.fixture(scope="module")
def route53(acme: Acme) -> Iterator[Route53]:
    with moto_server(LOOPBACK) as moto_port:
        client = moto_client("route53", moto_port, LOOPBACK)
        zone_id = client.create_hosted_zone(Name=ZONE, CallerReference=str(uuid.uuid4()))[
            "HostedZone"
        ]["Id"]

        def zone_values(name: str) -> list[str]:
            sets = client.list_resource_record_sets(HostedZoneId=zone_id)
            return [
                record["Value"].strip('"')
                for rrset in sets["ResourceRecordSets"]
                if rrset["Type"] == "TXT" and rrset["Name"] == name
                for record in rrset["ResourceRecords"]
            ]

        relay = Route53Relay(moto_port, acme.challtestsrv_port, zone_values)
        with http_server(relay.handler(), LOOPBACK) as relay_port:
            yield Route53(relay, f"http://{LOOPBACK}:{relay_port}", zone_values)


def _route53_env(acme: Acme, route53: Route53, tmp_path: Path) -> dict[str, str]:
    return acme.env(
        AWS_ENDPOINT_URL=route53.endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-credentials"),
    )


def test_certbot_issues_over_dns01_with_route53(
    acme: Acme, route53: Route53, tmp_path: Path
) -> None:
    relay = route53.relay
    relay.changes.clear()
    spec = acme.spec(tmp_path / "le", domain=DNS01_DOMAIN, challenge="dns-01")
    run = acme.run_certbot(spec, _route53_env(acme, route53, tmp_path))
    print(f"certbot dns-01 issuance took {run.seconds:.2f}s\n{run.output}")
    assert relay.errors == []
    assert run.returncode == 0, run.output

    challenge = f"_acme-challenge.{DNS01_DOMAIN}."
    assert [c.action for c in relay.changes] == ["UPSERT", "DELETE"], relay.changes
    created, removed = relay.changes
    assert created.name == removed.name == challenge
    assert len(created.values) == 1 and created.zone_after == created.values  # in the zone
    assert removed.zone_after == []  # and cleaned up afterwards
    assert route53.zone_values(challenge) == []
    # The CA saw the record through DNS: certbot solved dns-01 and the mock DNS served it.
    certbot_log = (tmp_path / "le" / ".logs" / "letsencrypt.log").read_text()
    assert f"dns-01 challenge for Identifier(typ=IdentifierType(dns), value='{DNS01_DOMAIN}')" in (
        certbot_log
    )
    assert f'Added DNS-01 TXT challenge for Host "{challenge}" - Value "{created.values[0]}"' in (
        acme.dns_log.read_text()
    )

    leaf = x509.load_pem_x509_certificates((Path(live_dir(spec)) / "fullchain.pem").read_bytes())[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [DNS01_DOMAIN]


def test_dns01_fails_when_the_record_never_reaches_dns(
    acme: Acme, route53: Route53, tmp_path: Path
) -> None:
    """Control for the test above: without the relay's mirror, the CA cannot validate."""
    domain = "unpublished.example.test"
    relay = route53.relay
    relay.mirror_enabled = False
    try:
        spec = acme.spec(tmp_path / "le", domain=domain, challenge="dns-01")
        run = acme.run_certbot(spec, _route53_env(acme, route53, tmp_path))
    finally:
        relay.mirror_enabled = True
    assert run.returncode != 0, run.output
    assert "Some challenges have failed." in run.output, run.output
    assert not Path(live_dir(spec)).exists()
    assert route53.zone_values(f"_acme-challenge.{domain}.") == []  # cleaned up anyway


def _relocate(argv: list[str], flag: str, value: str) -> None:
    argv[argv.index(flag) + 1] = value


def test_the_deployed_task_obtains_and_lays_out_a_certificate(acme: Acme, tmp_path: Path) -> None:
    """The certbot and copier commands of the program's task definition, run for real.

    Only what cannot hold on this machine changes: /etc/letsencrypt (with the lock file in it)
    and /ssl become temporary directories, and certbot's port 80 becomes Pebble's HTTP-01 port
    on loopback.
    """
    from scripts.mock_runtime import run_program, unwrap

    graph = run_program(
        {
            "topology": "nlb-certbot",
            "domain": DOMAIN,
            "acme": {"email": EMAIL, "challenge": "http-01", "server": acme.directory_url},
            "allowedCidrs": ["203.0.113.0/24"],
        }
    )

    def containers_of(family: str) -> dict[str, dict]:
        task = graph.one("aws:ecs/taskDefinition:TaskDefinition", family)
        return {c["name"]: c for c in json.loads(unwrap(task.inputs["containerDefinitions"]))}

    # certbot runs in the issuer task; the app's task only lays the certificate out.
    containers = containers_of("nlb-certbot")
    assert "certbot" not in containers
    certbot = containers_of("nlb-certbot-issuer")["certbot"]
    # The image's entry point is certbot itself; the lock wrapper replaces it with a shell.
    assert certbot["entryPoint"] == list(SHELL_ENTRY_POINT)
    deployed = [*certbot["entryPoint"], *certbot["command"]]

    state = tmp_path / "letsencrypt"
    argv = list(deployed)
    argv[argv.index(lock_file("/etc/letsencrypt"))] = lock_file(str(state))
    _relocate(argv, "--config-dir", str(state))
    _relocate(argv, "--work-dir", str(state / ".work"))
    _relocate(argv, "--logs-dir", str(state / ".logs"))
    _relocate(argv, "--http-01-port", str(acme.http_port))
    argv += ["--http-01-address", LOOPBACK]
    changed = {i for i, (a, b) in enumerate(zip(argv, deployed, strict=False)) if a != b}
    assert len(changed) == 5, "only the five relocated values may differ"

    result = subprocess.run(
        argv,
        env=acme.env(),
        capture_output=True,
        text=True,
        timeout=CERTBOT_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lineage = lineage_name(DOMAIN, acme.directory_url)
    assert (state / "live" / lineage / "fullchain.pem").is_file()
    assert (state / ".certbot-run.lock").is_file()  # certbot ran under the stack's lock

    copier = containers["copier"]
    env = {e["name"]: e["value"] for e in copier["environment"]}
    assert env["SOURCE_DIR"] == f"/etc/letsencrypt/live/{lineage}"
    assert env["DOMAIN"] == DOMAIN
    ssl = tmp_path / "ssl"
    env["SOURCE_DIR"] = str(state / "live" / lineage)
    env["TARGET_DIR"] = str(ssl)
    if os.geteuid() != 0:
        env.pop("OWNER")  # chown to Neo4j's uid needs root
    shell = require_binary("sh", "apt-get install dash")
    assert copier["command"][:2] == ["sh", "-c"]
    copied = subprocess.run(
        [shell, "-c", copier["command"][2]],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=IO_TIMEOUT_S,
        check=False,
    )
    assert copied.returncode == 0, copied.stderr
    for scope in ("bolt", "https"):
        assert (ssl / scope / "public.crt").read_text().count("BEGIN CERTIFICATE") >= 2
        assert (ssl / scope / "private.key").read_text().startswith("-----BEGIN PRIVATE KEY-----")
        assert (ssl / scope / "trusted").is_dir() and (ssl / scope / "revoked").is_dir()

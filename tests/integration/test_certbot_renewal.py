"""Renewal out of band, one lineage per ACME server, one certbot at a time, and a copier
that decides on its own whether the app may start: the ``nlb-certbot`` commands, run for
real.

The commands are rendered by ``task_contents.certbot`` with the values the stack deploys
(``/etc/letsencrypt``, port 80, every interface); only what cannot hold on this machine is
relocated: the state directory (with the lock and pending-restart files in it) becomes a
temporary directory and port 80 Pebble's HTTP-01 port on loopback.

- Pebble (two instances: two CAs) and pebble-challtestsrv run on loopback, see
  ``acme_stack`` in test_acme_pebble.py.
- The deploy hook calls ECS for real: moto's server, behind a small relay that records each
  call (and can refuse ``UpdateService`` like a missing IAM permission would). moto's ECS
  gives a service a new deployment id on ``forceNewDeployment``, which the tests read back.
- The wrappers run under busybox ash where it matters (Alpine's /bin/sh in the certbot
  images); Debian's busybox has no flock applet, so util-linux's flock takes its place with
  the same "flock FD" form.

Every socket is on 127.0.0.1 and every process started here is reaped.
"""

from __future__ import annotations

import datetime
import fcntl
import http.client
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from configobj import ConfigObj  # certbot's own reader of renewal/<name>.conf
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from task_contents.certbot import (
    DEPLOY_HOOK,
    SHELL_ENTRY_POINT,
    CertbotSpec,
    CertificateLayout,
    certbot_args,
    certbot_command,
    copier_command,
    copier_environment,
    lineage_name,
    live_dir,
    lock_file,
    renewal_command,
    renewal_environment,
    restart_pending_file,
)
from tests.integration.test_acme_pebble import (
    CERTBOT_TIMEOUT_S,
    DOMAIN,
    EMAIL,
    IO_TIMEOUT_S,
    LOOPBACK,
    PROFILE,
    Acme,
    Run,
    acme_stack,
    busybox_applets,
)
from tests.tools import http_server, moto_client, moto_server, require_binary, stop_process

pytestmark = pytest.mark.integration

UPDATE_SERVICE = "AmazonEC2ContainerServiceV20141113.UpdateService"
LOCK_WAIT_TIMEOUT_S = 10.0
_WAITER_RE = re.compile(r"->\s+FLOCK\s+ADVISORY\s+WRITE\s+\S+\s+[0-9a-f]+:[0-9a-f]+:(\d+)\s")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def acme(tmp_path_factory) -> Iterator[Acme]:
    with acme_stack(tmp_path_factory.mktemp("pebble")) as stack:
        yield stack


@pytest.fixture(scope="module")
def second_ca(acme: Acme, tmp_path_factory) -> Iterator[Acme]:
    with acme.another_ca(tmp_path_factory.mktemp("pebble-2")) as other:
        yield other


@pytest.fixture(scope="module")
def alpine_path(tmp_path_factory) -> str:
    """busybox's applets first on PATH, so the commands' "sh" is busybox ash as on Alpine.

    flock, certbot and python3 are found further down PATH (util-linux, the test's venv).
    """
    bin_dir = Path(busybox_applets(tmp_path_factory.mktemp("alpine-bin")))
    assert not (bin_dir / "flock").exists()
    return str(bin_dir)


@dataclass
class EcsCall:
    target: str
    body: dict
    status: int


@dataclass
class Ecs:
    """moto's ECS behind a recording relay: what the deploy hook talks to."""

    endpoint: str
    client: Any
    cluster_arn: str
    calls: list[EcsCall] = field(default_factory=list)
    deny_updates: bool = False  # answer UpdateService like a role without ecs:UpdateService

    def service(self) -> str:
        name = f"db-{uuid.uuid4().hex[:8]}"
        self.client.create_service(
            cluster=self.cluster_arn, serviceName=name, taskDefinition="app", desiredCount=1
        )
        return name

    def deployment(self, service: str) -> str:
        found = self.client.describe_services(cluster=self.cluster_arn, services=[service])
        (primary,) = [d for d in found["services"][0]["deployments"] if d["status"] == "PRIMARY"]
        return primary["id"]

    def updates(self, service: str, status: int | None = 200) -> list[dict]:
        return [
            c.body
            for c in self.calls
            if c.target == UPDATE_SERVICE
            and c.body.get("service") == service
            and (status is None or c.status == status)
        ]


def _relay_handler(ecs: Ecs, moto_port: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            target = self.headers.get("X-Amz-Target", "")
            if ecs.deny_updates and target == UPDATE_SERVICE:
                status, headers = 400, {"Content-Type": "application/x-amz-json-1.1"}
                payload = json.dumps(
                    {
                        "__type": "AccessDeniedException",
                        "message": "User is not authorized to perform: ecs:UpdateService",
                    }
                ).encode()
            else:
                forward = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn = http.client.HTTPConnection(LOOPBACK, moto_port, timeout=10)
                try:
                    conn.request("POST", self.path, body, forward)
                    response = conn.getresponse()
                    payload = response.read()
                finally:
                    conn.close()
                status = response.status
                headers = {
                    k: v
                    for k, v in response.getheaders()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                }
            ecs.calls.append(EcsCall(target, json.loads(body or b"{}"), status))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def ecs() -> Iterator[Ecs]:
    with moto_server(LOOPBACK) as moto_port:
        client = moto_client("ecs", moto_port, LOOPBACK)
        cluster_arn = client.create_cluster(clusterName="ecs-tls-renewal")["cluster"]["clusterArn"]
        client.register_task_definition(
            family="app", containerDefinitions=[{"name": "app", "image": "app", "memory": 64}]
        )
        state = Ecs("", client, cluster_arn)
        with http_server(_relay_handler(state, moto_port), LOOPBACK) as relay_port:
            state.endpoint = f"http://{LOOPBACK}:{relay_port}"
            yield state


# --------------------------------------------------------------------------- helpers


def _deployed_spec(acme: Acme) -> CertbotSpec:
    """The stack's request with ``acme.server`` set to this Pebble's directory."""
    return CertbotSpec(
        email=EMAIL,
        domain=DOMAIN,
        directory_url=acme.directory_url,
        challenge="http-01",
        preferred_profile=PROFILE,
    )


def _relocate(argv: list[str], flag: str, value: str) -> None:
    argv[argv.index(flag) + 1] = value


def _on_this_machine(command: list[str], acme: Acme, state: Path) -> list[str]:
    """The container's entry point + command with only paths and the port relocated."""
    deployed = [*SHELL_ENTRY_POINT, *command]
    argv = list(deployed)
    argv[argv.index(lock_file())] = lock_file(str(state))
    relocated = 5
    if restart_pending_file() in argv:
        argv[argv.index(restart_pending_file())] = restart_pending_file(str(state))
        relocated += 1
    _relocate(argv, "--config-dir", str(state))
    _relocate(argv, "--work-dir", str(state / ".work"))
    _relocate(argv, "--logs-dir", str(state / ".logs"))
    _relocate(argv, "--http-01-port", str(acme.http_port))
    changed = [i for i, (a, b) in enumerate(zip(argv, deployed, strict=True)) if a != b]
    assert len(changed) == relocated, "only paths and the port may differ"
    # The deployed command binds every interface; here Pebble validates on loopback.
    return [*argv, "--http-01-address", LOOPBACK]


def _env(acme: Acme, ecs: Ecs, service: str, tmp_path: Path, path: str | None = None) -> dict:
    env = acme.env(
        **renewal_environment(ecs.cluster_arn, service),
        AWS_ENDPOINT_URL=ecs.endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-credentials"),
    )
    # No AWS_REGION: the hook takes the region from the cluster ARN.
    if path is not None:
        env["PATH"] = f"{path}{os.pathsep}{env['PATH']}"
    return env


def _run(argv: list[str], env: dict[str, str]) -> Run:
    started = time.monotonic()
    result = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=CERTBOT_TIMEOUT_S, check=False
    )
    return Run(result.returncode, result.stdout + result.stderr, time.monotonic() - started)


def _orders_since(acme: Acme, offset: int) -> int:
    return acme.log_since(offset).count("Added order")


def _issued(state: Path, spec: CertbotSpec) -> list[str]:
    archive = state / "archive" / lineage_name(spec.domain, spec.directory_url)
    return sorted(p.name for p in archive.glob("cert*.pem"))


def _leaf(state: Path, spec: CertbotSpec) -> x509.Certificate:
    live = Path(live_dir(spec)).relative_to("/etc/letsencrypt")
    return x509.load_pem_x509_certificates((state / live / "fullchain.pem").read_bytes())[0]


def _issued_by(leaf: x509.Certificate, ca: Acme) -> bool:
    intermediate = x509.load_pem_x509_certificate(ca.intermediate.read_bytes())
    try:
        leaf.verify_directly_issued_by(intermediate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return leaf.issuer == intermediate.subject


def _lock_waiters(lock: Path) -> int:
    inode = lock.stat().st_ino
    text = Path("/proc/locks").read_text()
    return sum(1 for m in _WAITER_RE.finditer(text) if int(m.group(1)) == inode)


# --------------------------------------------------------------------------- a. renewal task


def test_the_renewal_task_restarts_the_app_only_after_an_issuance(
    acme: Acme, ecs: Ecs, tmp_path: Path, alpine_path: str
) -> None:
    spec = _deployed_spec(acme)
    state = tmp_path / "letsencrypt"
    state.mkdir()
    renewal = _on_this_machine(renewal_command(spec), acme, state)
    service = ecs.service()
    env = _env(acme, ecs, service, tmp_path, path=alpine_path)
    pending = Path(restart_pending_file(str(state)))

    # First run: a certificate, and one restart of the service from the deploy hook.
    before, offset = ecs.deployment(service), acme.log.stat().st_size
    run = _run(renewal, env)
    print(f"first renewal run took {run.seconds:.2f}s\n{run.output}")
    assert run.returncode == 0, run.output
    assert "Successfully received certificate." in run.output
    assert _orders_since(acme, offset) == 1
    assert ecs.updates(service) == [
        {"cluster": ecs.cluster_arn, "service": service, "forceNewDeployment": True}
    ]
    assert ecs.deployment(service) != before  # moto started a new deployment
    assert f"restarted service {service}" in run.output  # certbot relays the hook's output
    assert not pending.exists()
    assert _issued(state, spec) == ["cert1.pem"]

    # Second run: nothing due, nothing ordered, nothing restarted.
    before, offset = ecs.deployment(service), acme.log.stat().st_size
    run = _run(renewal, env)
    assert run.returncode == 0, run.output
    assert "Certificate not yet due for renewal" in run.output
    assert _orders_since(acme, offset) == 0
    assert len(ecs.updates(service, status=None)) == 1
    assert ecs.deployment(service) == before
    assert "renewal-hook" not in run.output

    # A renewal (forced here; in service: the certificate is due): one more restart.
    offset = acme.log.stat().st_size
    run = _run([*renewal, "--force-renewal"], env)
    assert run.returncode == 0, run.output
    assert _orders_since(acme, offset) == 1
    assert len(ecs.updates(service)) == 2
    assert ecs.deployment(service) != before
    assert _issued(state, spec) == ["cert1.pem", "cert2.pem"]

    # The app task's own certbot renews without restarting anything: certbot saved the
    # renewal task's hook in renewal/<lineage>.conf, but certonly runs only the command
    # line's hooks, and the app task's command has none.
    saved = ConfigObj(str(state / "renewal" / f"{lineage_name(DOMAIN, acme.directory_url)}.conf"))
    assert saved["renewalparams"]["renew_hook"] == DEPLOY_HOOK
    init = _on_this_machine(certbot_command(spec), acme, state)
    run = _run([*init, "--force-renewal"], env)
    assert run.returncode == 0, run.output
    assert _issued(state, spec) == ["cert1.pem", "cert2.pem", "cert3.pem"]
    assert len(ecs.updates(service, status=None)) == 2


def test_a_restart_that_failed_is_retried_until_it_succeeds(
    acme: Acme, ecs: Ecs, tmp_path: Path
) -> None:
    """certbot ignores a deploy hook's exit status; the renewal task does not."""
    spec = _deployed_spec(acme)
    state = tmp_path / "letsencrypt"
    state.mkdir()
    renewal = _on_this_machine(renewal_command(spec), acme, state)
    service = ecs.service()
    env = _env(acme, ecs, service, tmp_path)
    pending = Path(restart_pending_file(str(state)))
    before = ecs.deployment(service)

    ecs.deny_updates = True
    try:
        run = _run(renewal, env)
    finally:
        ecs.deny_updates = False
    assert "Successfully received certificate." in run.output
    assert run.returncode == 1, run.output  # the task fails visibly
    assert "AccessDeniedException" in run.output
    assert len(ecs.updates(service, status=400)) == 2  # the hook, then the retry after certbot
    assert ecs.deployment(service) == before
    assert pending.is_file()

    # Next scheduled run: nothing to renew, but the pending restart happens.
    run = _run(renewal, env)
    assert run.returncode == 0, run.output
    assert "Certificate not yet due for renewal" in run.output
    assert len(ecs.updates(service)) == 1
    assert ecs.deployment(service) != before
    assert not pending.exists()

    run = _run(renewal, env)
    assert run.returncode == 0, run.output
    assert len(ecs.updates(service, status=None)) == 3  # no more calls


# --------------------------------------------------------------------------- b. ACME server


def test_switching_the_acme_server_gets_its_certificate_and_switching_back_keeps_the_first(
    acme: Acme, second_ca: Acme, tmp_path: Path
) -> None:
    state = tmp_path / "letsencrypt"
    state.mkdir()
    first, second = _deployed_spec(acme), _deployed_spec(second_ca)
    assert second.directory_url != first.directory_url

    run = _run(_on_this_machine(certbot_command(first), acme, state), acme.env())
    assert run.returncode == 0, run.output
    leaf_first = _leaf(state, first)
    assert _issued_by(leaf_first, acme) and not _issued_by(leaf_first, second_ca)

    # acme.server changed: the next start obtains a certificate from the new CA at once.
    offset = second_ca.log.stat().st_size
    run = _run(_on_this_machine(certbot_command(second), second_ca, state), second_ca.env())
    assert run.returncode == 0, run.output
    assert "Successfully received certificate." in run.output
    assert _orders_since(second_ca, offset) == 1
    leaf_second = _leaf(state, second)
    assert _issued_by(leaf_second, second_ca) and not _issued_by(leaf_second, acme)
    assert sorted(p.name for p in (state / "live").iterdir() if p.is_dir()) == sorted(
        [lineage_name(DOMAIN, first.directory_url), lineage_name(DOMAIN, second.directory_url)]
    )

    # And back: the first lineage is still valid and is kept, no --break-my-certs needed.
    offset = acme.log.stat().st_size
    run = _run(_on_this_machine(certbot_command(first), acme, state), acme.env())
    assert run.returncode == 0, run.output
    assert "Certificate not yet due for renewal" in run.output
    assert "break-my-certs" not in run.output
    assert _orders_since(acme, offset) == 0
    assert _leaf(state, first) == leaf_first
    assert _issued(state, first) == ["cert1.pem"]

    # The copier follows the configured server.
    env = copier_environment(CertificateLayout(target_dir=str(tmp_path / "ssl"), owner=None), first)
    env["SOURCE_DIR"] = str(state / Path(env["SOURCE_DIR"]).relative_to("/etc/letsencrypt"))
    copied = _run_copier(env)
    assert copied.returncode == 0, copied.stderr
    served = x509.load_pem_x509_certificates(
        (tmp_path / "ssl" / "bolt" / "public.crt").read_bytes()
    )
    assert served[0] == leaf_first


# --------------------------------------------------------------------------- c. concurrency


def test_concurrent_runs_on_one_state_wait_for_each_other(
    acme: Acme, ecs: Ecs, tmp_path: Path
) -> None:
    """A task start and the schedule at once: both succeed, the CA sees one order."""
    spec = _deployed_spec(acme)
    state = tmp_path / "letsencrypt"
    state.mkdir()
    service = ecs.service()
    env = _env(acme, ecs, service, tmp_path)
    commands = {
        "init": _on_this_machine(certbot_command(spec), acme, state),
        "renewal": _on_this_machine(renewal_command(spec), acme, state),
    }
    lock = Path(lock_file(str(state)))
    offset = acme.log.stat().st_size

    # Hold the lock while both start, so that both are certainly waiting at the same time.
    holder = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    procs: dict[str, subprocess.Popen] = {}
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        for name, argv in commands.items():
            with (tmp_path / f"{name}.out").open("wb") as out:
                procs[name] = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + LOCK_WAIT_TIMEOUT_S
        while _lock_waiters(lock) < 2 and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs.values()), "a run did not wait"
            time.sleep(0.05)
        assert _lock_waiters(lock) == 2, Path("/proc/locks").read_text()
        assert _orders_since(acme, offset) == 0
        fcntl.flock(holder, fcntl.LOCK_UN)
        for proc in procs.values():
            proc.wait(timeout=2 * CERTBOT_TIMEOUT_S)
    finally:
        os.close(holder)
        for proc in procs.values():
            stop_process(proc, timeout=5)

    outputs = {name: (tmp_path / f"{name}.out").read_text() for name in commands}
    for name, proc in procs.items():
        assert proc.returncode == 0, outputs[name]
    assert "Another instance of Certbot is already running" not in "".join(outputs.values())
    assert _orders_since(acme, offset) == 1
    assert _issued(state, spec) == ["cert1.pem"]
    winners = [n for n, out in outputs.items() if "Successfully received certificate." in out]
    assert len(winners) == 1, outputs
    (loser,) = set(commands) - set(winners)
    assert "Certificate not yet due for renewal" in outputs[loser]
    # The schedule restarts the app only if it was the run that issued.
    assert len(ecs.updates(service)) == (1 if winners == ["renewal"] else 0)


def test_without_the_wrapper_a_second_certbot_fails(acme: Acme, tmp_path: Path) -> None:
    """Control: certbot's own lock refuses a second instance instead of waiting."""
    state = tmp_path / "letsencrypt"
    state.mkdir()
    spec = acme.spec(state)
    # certbot locks <config-dir>/.certbot.lock with lockf() (certbot._internal.lock).
    holder = os.open(state / ".certbot.lock", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        run = _run([acme.certbot, *certbot_args(spec)], acme.env())
    finally:
        os.close(holder)
    assert run.returncode != 0
    assert "Another instance of Certbot is already running" in run.output


# --------------------------------------------------------------------------- d. copier


def _run_copier(env: dict[str, str], path: str | None = None) -> subprocess.CompletedProcess:
    command = copier_command()
    return subprocess.run(
        [require_binary("sh", "apt-get install dash"), *command[1:]] if path is None else command,
        env={"PATH": path or os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", **env},
        capture_output=True,
        text=True,
        timeout=IO_TIMEOUT_S,
        check=False,
    )


def _copier_env(spec: CertbotSpec, state: Path, target: Path) -> dict[str, str]:
    layout = CertificateLayout(target_dir=str(target), owner=None)
    env = copier_environment(layout, spec)
    env["SOURCE_DIR"] = str(state / Path(env["SOURCE_DIR"]).relative_to("/etc/letsencrypt"))
    return env


@pytest.fixture(params=["sh", "busybox"])
def copier_path(request) -> str | None:
    """None: the host's sh (dash) and tools; else a PATH of busybox applets only."""
    return None if request.param == "sh" else request.getfixturevalue("alpine_path")


def test_the_copier_serves_the_certificate_on_disk_when_the_acme_server_is_down(
    acme: Acme, tmp_path: Path, alpine_path: str
) -> None:
    state = tmp_path / "letsencrypt"
    state.mkdir()
    with acme.another_ca(tmp_path / "pebble-down") as doomed:
        spec = _deployed_spec(doomed)
        init = _on_this_machine(certbot_command(spec), doomed, state)
        run = _run(init, doomed.env())
        assert run.returncode == 0, run.output
    # That CA is gone now. The certificate is due (forced here): certbot fails to renew.
    run = _run([*init, "--force-renewal"], doomed.env())
    assert run.returncode != 0, run.output
    assert "Connection refused" in run.output or "Max retries" in run.output, run.output
    assert _issued(state, spec) == ["cert1.pem"]

    expiry = _leaf(state, spec).not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    for shell, path in (("sh", None), ("busybox", alpine_path)):
        target = tmp_path / f"ssl-{shell}"
        env = _copier_env(spec, state, target)
        copied = _run_copier(env, path)
        assert copied.returncode == 0, (shell, copied.stderr)
        chain = (Path(env["SOURCE_DIR"]) / "fullchain.pem").read_bytes()
        for scope in ("bolt", "https"):
            assert (target / scope / "public.crt").read_bytes() == chain
        assert f"certificate for {DOMAIN} valid until {expiry}" in copied.stderr


def test_the_copier_fails_clearly_when_there_is_no_certificate(
    acme: Acme, tmp_path: Path, alpine_path: str
) -> None:
    """First start during an ACME outage: certbot fails, and so must the copier."""
    state = tmp_path / "letsencrypt"
    state.mkdir()
    with acme.another_ca(tmp_path / "pebble-down") as doomed:
        spec = _deployed_spec(doomed)
    run = _run(_on_this_machine(certbot_command(spec), doomed, state), doomed.env())
    assert run.returncode != 0, run.output

    for shell, path in (("sh", None), ("busybox", alpine_path)):
        target = tmp_path / f"ssl-{shell}"
        env = _copier_env(spec, state, target)
        copied = _run_copier(env, path)
        assert copied.returncode == 1, shell
        missing = f"{env['SOURCE_DIR']}/fullchain.pem"
        assert copied.stderr.splitlines() == [
            f"copy-certificates: error: no certificate for {DOMAIN}: {missing} does not exist"
        ], shell
        assert not target.exists()


# Fake lineages: certificates made here, with the dates a test needs.


def _fake_lineage(directory: Path, not_after: datetime.datetime, body: bytes | None = None) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime(1990, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "fullchain.pem").write_bytes(body if body is not None else pem + pem)
    (directory / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return directory


def _fake_spec() -> CertbotSpec:
    return CertbotSpec(email=EMAIL, domain=DOMAIN, directory_url="https://acme.example.test/dir")


@pytest.mark.parametrize(
    "not_after",
    [
        # A day ago: UTCTime.
        datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(days=1),
        # 1999: UTCTime with a two-digit year below 50 read as 19xx.
        datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC),
    ],
    ids=["yesterday", "1999"],
)
def test_the_copier_refuses_an_expired_certificate(
    tmp_path: Path, copier_path: str | None, not_after: datetime.datetime
) -> None:
    state, target = tmp_path / "letsencrypt", tmp_path / "ssl"
    spec = _fake_spec()
    env = _copier_env(spec, state, target)
    _fake_lineage(Path(env["SOURCE_DIR"]), not_after)

    copied = _run_copier(env, copier_path)
    assert copied.returncode == 1
    assert copied.stderr.splitlines() == [
        f"copy-certificates: error: the certificate for {DOMAIN} in {env['SOURCE_DIR']}"
        f"/fullchain.pem expired on {not_after.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    ]
    assert not target.exists()


@pytest.mark.parametrize(
    "not_after",
    [
        # In an hour: UTCTime, and only just valid.
        datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(hours=1),
        # 2051: GeneralizedTime (RFC 5280 4.1.2.5: from 2050 on).
        datetime.datetime(2051, 2, 3, 4, 5, 6, tzinfo=datetime.UTC),
    ],
    ids=["in-an-hour", "2051"],
)
def test_the_copier_accepts_an_unexpired_certificate(
    tmp_path: Path, copier_path: str | None, not_after: datetime.datetime
) -> None:
    state, target = tmp_path / "letsencrypt", tmp_path / "ssl"
    spec = _fake_spec()
    env = _copier_env(spec, state, target)
    source = _fake_lineage(Path(env["SOURCE_DIR"]), not_after)

    copied = _run_copier(env, copier_path)
    assert copied.returncode == 0, copied.stderr
    assert f"valid until {not_after.strftime('%Y-%m-%dT%H:%M:%SZ')}" in copied.stderr
    assert (target / "bolt" / "public.crt").read_bytes() == (source / "fullchain.pem").read_bytes()


def test_the_copier_refuses_a_certificate_it_cannot_read(
    tmp_path: Path, copier_path: str | None
) -> None:
    state, target = tmp_path / "letsencrypt", tmp_path / "ssl"
    spec = _fake_spec()
    env = _copier_env(spec, state, target)
    garbage = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    _fake_lineage(Path(env["SOURCE_DIR"]), datetime.datetime(2051, 1, 1), body=garbage)

    copied = _run_copier(env, copier_path)
    assert copied.returncode == 1
    assert copied.stderr.splitlines() == [
        f"copy-certificates: error: cannot read the expiry date of the certificate for {DOMAIN}"
        f" in {env['SOURCE_DIR']}/fullchain.pem"
    ]


# --------------------------------------------------------------------------- e. first start


def _lineage_appears(source_dir: Path, not_after: datetime.datetime) -> None:
    """What the issuer task does to the copier's view: the lineage appears at once."""
    staging = source_dir.parent / f".{source_dir.name}.new"
    _fake_lineage(staging, not_after)
    source_dir.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(source_dir)


def test_the_copier_waits_for_the_issuer_then_lays_out_its_certificate(
    tmp_path: Path, copier_path: str | None
) -> None:
    """The first start: no certificate yet, the issuer task is running beside the app's."""
    state, target = tmp_path / "letsencrypt", tmp_path / "ssl"
    spec = _fake_spec()
    env = {**_copier_env(spec, state, target), "WAIT_SECONDS": "30", "POLL_SECONDS": "1"}
    command = copier_command()
    copier = subprocess.Popen(
        [require_binary("sh", "apt-get install dash"), *command[1:]]
        if copier_path is None
        else command,
        env={"PATH": copier_path or os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2.5)
        assert copier.poll() is None, "the copier gave up before its wait was over"
        _lineage_appears(Path(env["SOURCE_DIR"]), datetime.datetime(2051, 1, 1))
        _, stderr = copier.communicate(timeout=IO_TIMEOUT_S)
    finally:
        stop_process(copier)
    assert copier.returncode == 0, stderr
    lines = stderr.splitlines()
    missing = f"{env['SOURCE_DIR']}/fullchain.pem"
    assert lines[0] == (
        "copy-certificates: waiting for the issuer task: no certificate for "
        f"{DOMAIN}: {missing} does not exist (0s of 30s)"
    )
    assert f"copy-certificates: certificate for {DOMAIN} valid until 2051-01-01T00:00:00Z" in lines
    assert (target / "bolt" / "public.crt").is_file()


def test_the_copier_gives_up_after_its_wait_with_one_clear_line(
    tmp_path: Path, copier_path: str | None
) -> None:
    state, target = tmp_path / "letsencrypt", tmp_path / "ssl"
    spec = _fake_spec()
    env = {**_copier_env(spec, state, target), "WAIT_SECONDS": "2", "POLL_SECONDS": "1"}
    started = time.monotonic()
    copied = _run_copier(env, copier_path)
    assert time.monotonic() - started < IO_TIMEOUT_S
    assert copied.returncode == 1
    lines = copied.stderr.splitlines()
    assert [line for line in lines if "waiting for the issuer task" in line][-1].endswith(
        "(1s of 2s)"
    )
    missing = f"{env['SOURCE_DIR']}/fullchain.pem"
    assert lines[-1] == (
        f"copy-certificates: error: no certificate for {DOMAIN}: {missing} does not exist,"
        " still after 2s; see the issuer task's log"
    )
    assert not target.exists()


def test_the_copier_does_not_wait_for_what_time_cannot_fix(
    tmp_path: Path, copier_path: str | None
) -> None:
    """A broken file fails at once, whatever the wait."""
    state, target = tmp_path / "letsencrypt", tmp_path / "ssl"
    env = {**_copier_env(_fake_spec(), state, target), "WAIT_SECONDS": "600"}
    garbage = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    _fake_lineage(Path(env["SOURCE_DIR"]), datetime.datetime(2051, 1, 1), body=garbage)
    copied = _run_copier(env, copier_path)
    assert copied.returncode == 1
    assert "cannot read the expiry date" in copied.stderr
    assert "waiting" not in copied.stderr


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory other users may traverse (pytest's own belongs to root, mode 0700)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="ecs-tls-copier-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_the_copier_runs_as_the_apps_user_in_the_directory_the_instance_prepares(
    shared_tmp: Path,
) -> None:
    """On EC2 the copier runs as the app's non-root user (host networking: only root may
    reach the instance metadata service). It writes into the host directory the user data
    prepares for that user, and could not write into a root-owned one."""
    from tests.tools import in_ci
    from topologies.nlb_certbot import host_directory_user_data

    if os.geteuid() != 0:
        message = "needs root to run the copier as another user: run the tests as root"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    setpriv = require_binary("setpriv", "apt-get install util-linux")
    shell = require_binary("sh", "apt-get install dash")
    spec = _fake_spec()
    state = shared_tmp / "letsencrypt"
    layout = CertificateLayout(target_dir="/ssl", owner="7474:7474")
    env = copier_environment(layout, spec)
    source = state / Path(env["SOURCE_DIR"]).relative_to("/etc/letsencrypt")
    _fake_lineage(source, datetime.datetime(2051, 1, 1))
    # On EFS, the access point makes every client certbot's user: readable to the copier.
    for path in [state, *state.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    env["SOURCE_DIR"] = str(source)

    def copy(target: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [setpriv, "--reuid=7474", "--regid=7474", "--clear-groups", shell, "-c",
             copier_command()[2]],
            env={"PATH": "/usr/bin:/bin", "LANG": "C", **env, "TARGET_DIR": str(target)},
            capture_output=True,
            text=True,
            timeout=IO_TIMEOUT_S,
            check=False,
        )  # fmt: skip

    scratch = shared_tmp / "scratch"  # what ECS makes of a task scratch volume: root's
    scratch.mkdir(mode=0o755)
    refused = copy(scratch)
    assert refused.returncode != 0 and "ermission denied" in refused.stderr, refused.stderr

    prepared = shared_tmp / "certificates"
    line = host_directory_user_data(str(prepared), "7474:7474")
    subprocess.run(["sh", "-c", line], check=True, timeout=IO_TIMEOUT_S)
    copied = copy(prepared)
    assert copied.returncode == 0, copied.stderr
    key = prepared / "bolt" / "private.key"
    assert (key.stat().st_uid, key.stat().st_gid) == (7474, 7474)
    assert key.stat().st_mode & 0o777 == 0o600
    assert (prepared.stat().st_uid, prepared.stat().st_mode & 0o777) == (7474, 0o700)

"""The two containers of a task whose app is reached only through an Envoy TLS sidecar.

alb-envoy (behind an ALB) and direct-task (tasks with public IPs) run the same pair: the app,
with no port mapping, on the task's loopback, and stock Envoy with the v3 bootstrap of
task_contents/envoy/sidecar.py.

Where the certificate comes from:
- alb-envoy: ECS injects chain and key from one Secrets Manager secret at task start; a new
  certificate changes the task definition and rolls the tasks.
- direct-task (`RefreshedCertificate`): a third container, the refresher, runs
  task_contents/secret_refresh.py: it polls the secret and swaps the files Envoy serves through
  SDS on a volume the two share. A renewal reaches running tasks (RunTask ones too) without
  replacing any; Envoy starts once the refresher is healthy, i.e. the first files exist.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from components.app_secrets import container_secrets
from constants.images import CERTBOT_DNS_ROUTE53_IMAGE
from settings import AppSettings, EnvoySettings
from task_contents.container_definitions import (
    Container,
    Dependency,
    HealthCheck,
    LogSettings,
    MountPoint,
    PortMapping,
)
from task_contents.envoy import (
    EnvoyProxySpec,
    SdsFiles,
    envoy_args,
    ready_check_command,
    tuning_for_task,
)

# The task volume (Fargate bind mount, no host path: task storage that lives as long as the
# task) shared by the refresher (read-write) and Envoy (read-only).
TLS_VOLUME = "tls"
TLS_DIR = "/etc/envoy-tls"
REFRESHER = "certificate-refresh"
# The stock Envoy image's entry point drops to its `envoy` user, whose uid it takes from
# ENVOY_UID (envoyproxy.io, "Using the Envoy Docker Image"); the refresher, root in its
# image, gives the key file to that uid and mode 0600.
ENVOY_UID = 101
# How often a task asks for the secret: a renewal reaches every task within this (plus
# jitter); 12 calls an hour per task cost nothing next to Secrets Manager's request quota.
REFRESH_SECONDS = 300
# The refresher needs python3 and boto3; the renewal task's certbot image has both, so the
# task pulls no image the program does not already pin.
REFRESH_IMAGE = CERTBOT_DNS_ROUTE53_IMAGE

_REFRESH_PROGRAM_PATH = (
    Path(__file__).resolve().parent.parent / "task_contents" / "secret_refresh.py"
)


@cache
def refresh_program() -> str:
    """Source of ``secret_refresh.py``, run by the refresher with the image's python3."""
    return _REFRESH_PROGRAM_PATH.read_text(encoding="utf-8")


def sds_files() -> SdsFiles:
    """Where Envoy reads its certificate in a refreshed task (secret_refresh.py's layout)."""
    return SdsFiles(path=posixpath.join(TLS_DIR, "sds.json"), watched_directory=TLS_DIR)


@dataclass(frozen=True)
class RefreshedCertificate:
    """The certificate lives in Secrets Manager and reaches running tasks without a restart.

    The task role (not the execution role) must be allowed GetSecretValue on `secret_arn`.
    """

    secret_arn: str
    refresh_seconds: int = REFRESH_SECONDS


@dataclass(frozen=True)
class SidecarTask:
    """Plain values the pair is built from (resolved inside one apply)."""

    app: AppSettings
    envoy: EnvoySettings
    # ECS `valueFrom` of the secret's chain and key (`<arn>:<json key>::`); None with
    # `refreshed`, where no secret is injected.
    chain_value_from: str | None
    key_value_from: str | None
    log: LogSettings
    # A public digest of the certificate, when a new certificate must roll the tasks (ECS
    # reads secrets at task start only); None when something else redeploys them.
    certificate_fingerprint: str | None = None
    # 1 behind a load balancer that appends X-Forwarded-For; 0 when clients connect directly.
    trusted_proxy_hops: int = 1
    refreshed: RefreshedCertificate | None = None


def sidecar_spec(t: SidecarTask) -> EnvoyProxySpec:
    """Envoy for this task: its listener, TLS floor, and workers and limits sized to the task.

    Health port, admin socket and route timeout keep the spec's defaults: nothing outside
    the Envoy container uses them.
    """
    return EnvoyProxySpec(
        app_port=t.app.port,
        listener_port=t.envoy.port,
        min_tls_version=t.envoy.envoy_tls_version,
        trusted_proxy_hops=t.trusted_proxy_hops,
        sds=sds_files() if t.refreshed is not None else None,
        tuning=tuning_for_task(
            t.app.cpu,
            t.app.memory,
            access_log=t.envoy.access_log,
            upstream_idle_timeout_seconds=t.envoy.upstream_idle_timeout_seconds,
        ),
    )


def refresher_container(r: RefreshedCertificate, log: LogSettings) -> Container:
    """The container that keeps TLS_DIR in step with the secret (secret_refresh.py)."""
    files = sds_files()
    return Container(
        name=REFRESHER,
        image=REFRESH_IMAGE,
        # The image's entry point is certbot; `python3 -c <source> run` starts the loop.
        entry_point=["python3", "-c"],
        command=[refresh_program(), "run"],
        environment={
            "CERT_SECRET_ARN": r.secret_arn,
            "TLS_DIR": TLS_DIR,
            "REFRESH_SECONDS": str(r.refresh_seconds),
            "FILE_OWNER": f"{ENVOY_UID}:{ENVOY_UID}",
            "SDS_SECRET_NAME": files.secret_name,
        },
        mount_points=[MountPoint(TLS_VOLUME, TLS_DIR)],
        # Healthy once the first certificate is on disk: Envoy waits for that, as it cannot
        # load a listener whose SDS file does not exist yet.
        health_check=HealthCheck(
            command=["CMD-SHELL", f"test -f {files.path}"],
            interval=5,
            timeout=2,
            retries=3,
            start_period=60,
        ),
        log=log,
    )


def sidecar_containers(t: SidecarTask) -> list[Container]:
    """The app and its Envoy sidecar (and the refresher, with `refreshed`). Only Envoy's TLS
    port is mapped; the health port is not."""
    spec = sidecar_spec(t)
    environment: dict[str, str] = {}
    if t.certificate_fingerprint is not None:
        environment["CERTIFICATE_SHA256"] = t.certificate_fingerprint
    secrets: dict[str, str] = {}
    mounts: list[MountPoint] = []
    depends_on = [Dependency("app", "START")]
    extra: list[Container] = []
    if t.refreshed is not None:
        environment.update({"ENVOY_UID": str(ENVOY_UID), "ENVOY_GID": str(ENVOY_UID)})
        mounts.append(MountPoint(TLS_VOLUME, TLS_DIR, read_only=True))
        depends_on.append(Dependency(REFRESHER, "HEALTHY"))
        extra.append(refresher_container(t.refreshed, t.log))
    else:
        if not t.chain_value_from or not t.key_value_from:
            raise ValueError("chain_value_from and key_value_from are needed without refreshed")
        secrets = {
            spec.certificate_env: t.chain_value_from,
            spec.private_key_env: t.key_value_from,
        }
    envoy = Container(
        name="envoy",
        image=t.envoy.image,
        command=envoy_args(spec),
        secrets=secrets,
        environment=environment,
        port_mappings=[PortMapping(t.envoy.port, name="https")],
        mount_points=mounts,
        depends_on=depends_on,
        health_check=HealthCheck(command=ready_check_command(spec.health_port), start_period=10),
        log=t.log,
    )
    app = Container(
        name="app",
        image=t.app.image,
        environment=dict(t.app.environment),
        # The app's own secrets, on the app only: Envoy and the refresher never see them.
        secrets=container_secrets(t.app.access),
        # No port mapping: the app is reached through Envoy on 127.0.0.1 only, and its port
        # is not open in the task's security group.
        log=t.log,
    )
    return [app, envoy, *extra]

"""The two containers of a task whose app is reached only through an Envoy TLS sidecar.

alb-envoy (behind an ALB) and direct-task (tasks with public IPs) run the same pair: the app,
with no port mapping, on the task's loopback, and stock Envoy with the v3 bootstrap of
components/envoy.py, its certificate and key injected by ECS from one Secrets Manager secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.container_definitions import (
    Container,
    Dependency,
    HealthCheck,
    LogSettings,
    PortMapping,
)
from components.envoy import EnvoyProxySpec, envoy_args, ready_check_command, tuning_for_task
from settings import AppSettings, EnvoySettings


@dataclass(frozen=True)
class SidecarTask:
    """Plain values the pair is built from (resolved inside one apply)."""

    app: AppSettings
    envoy: EnvoySettings
    # ECS `valueFrom` of the secret's chain and key (`<arn>:<json key>::`).
    chain_value_from: str
    key_value_from: str
    log: LogSettings
    # A public digest of the certificate, when a new certificate must roll the tasks (ECS
    # reads secrets at task start only); None when something else redeploys them.
    certificate_fingerprint: str | None = None
    # 1 behind a load balancer that appends X-Forwarded-For; 0 when clients connect directly.
    trusted_proxy_hops: int = 1


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
        tuning=tuning_for_task(
            t.app.cpu,
            t.app.memory,
            access_log=t.envoy.access_log,
            upstream_idle_timeout_seconds=t.envoy.upstream_idle_timeout_seconds,
        ),
    )


def sidecar_containers(t: SidecarTask) -> list[Container]:
    """The app and its Envoy sidecar. Only Envoy's TLS port is mapped; the health port is not."""
    spec = sidecar_spec(t)
    envoy = Container(
        name="envoy",
        image=t.envoy.image,
        command=envoy_args(spec),
        secrets={
            spec.certificate_env: t.chain_value_from,
            spec.private_key_env: t.key_value_from,
        },
        environment=(
            {"CERTIFICATE_SHA256": t.certificate_fingerprint}
            if t.certificate_fingerprint is not None
            else {}
        ),
        port_mappings=[PortMapping(t.envoy.port, name="https")],
        depends_on=[Dependency("app", "START")],
        health_check=HealthCheck(command=ready_check_command(spec.health_port), start_period=10),
        log=t.log,
    )
    app = Container(
        name="app",
        image=t.app.image,
        environment=dict(t.app.environment),
        # No port mapping: the app is reached through Envoy on 127.0.0.1 only, and its port
        # is not open in the task's security group.
        log=t.log,
    )
    return [app, envoy]

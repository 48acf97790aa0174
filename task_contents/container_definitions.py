"""One builder for every container the program runs, in the form AWS keeps.

ECS normalises `containerDefinitions` when it stores a task definition: containers,
environment variables and secrets sorted by name; `essential`, port `protocol` and
`hostPort` (equal to the container port in awsvpc mode) filled in; health-check
interval/timeout/retries defaulted; empty lists dropped. A definition that differs from that
form shows a diff, and replaces the task definition, on every `pulumi up`
(pulumi/pulumi-aws#4576, #5256). Emitting the normal form keeps a second `up` empty.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DEPENDENCY_CONDITIONS = ("START", "COMPLETE", "SUCCESS", "HEALTHY")
APP_PROTOCOLS = ("http", "http2", "grpc")


@dataclass(frozen=True)
class PortMapping:
    container_port: int
    name: str | None = None  # required by Service Connect, which refers to ports by name
    app_protocol: str | None = None  # http | http2 | grpc
    protocol: str = "tcp"


@dataclass(frozen=True)
class MountPoint:
    source_volume: str
    container_path: str
    read_only: bool = False


@dataclass(frozen=True)
class Dependency:
    container_name: str
    condition: str  # START | COMPLETE | SUCCESS | HEALTHY


@dataclass(frozen=True)
class HealthCheck:
    command: Sequence[str]  # e.g. ("CMD-SHELL", "curl -f http://127.0.0.1/ || exit 1")
    interval: int = 30
    timeout: int = 5
    retries: int = 3
    start_period: int | None = None


@dataclass(frozen=True)
class LogSettings:
    group: str
    region: str
    stream_prefix: str


@dataclass(frozen=True)
class Container:
    """A container in plain values; `secrets` maps variable names to secret ARNs."""

    name: str
    image: str
    essential: bool = True
    command: Sequence[str] = ()
    entry_point: Sequence[str] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    port_mappings: Sequence[PortMapping] = ()
    mount_points: Sequence[MountPoint] = ()
    depends_on: Sequence[Dependency] = ()
    health_check: HealthCheck | None = None
    log: LogSettings | None = None
    user: str | None = None
    working_directory: str | None = None
    readonly_root_filesystem: bool | None = None
    stop_timeout: int | None = None


def _port(p: PortMapping, awsvpc: bool) -> dict:
    if p.app_protocol is not None and p.app_protocol not in APP_PROTOCOLS:
        raise ValueError(
            f"port {p.container_port}: appProtocol {p.app_protocol!r} not in {APP_PROTOCOLS}"
        )
    out: dict = {"containerPort": p.container_port, "protocol": p.protocol}
    if awsvpc:
        out["hostPort"] = p.container_port
    if p.name is not None:
        out["name"] = p.name
    if p.app_protocol is not None:
        out["appProtocol"] = p.app_protocol
    return out


def container_definition(c: Container, awsvpc: bool = True) -> dict:
    """One container in AWS's normal form (keys AWS would omit are omitted)."""
    out: dict = {"name": c.name, "image": c.image, "essential": c.essential}
    if c.command:
        out["command"] = list(c.command)
    if c.entry_point:
        out["entryPoint"] = list(c.entry_point)
    if c.environment:
        out["environment"] = [
            {"name": k, "value": str(v)} for k, v in sorted(c.environment.items())
        ]
    if c.secrets:
        out["secrets"] = [{"name": k, "valueFrom": v} for k, v in sorted(c.secrets.items())]
    if c.port_mappings:
        out["portMappings"] = [_port(p, awsvpc) for p in c.port_mappings]
    if c.mount_points:
        out["mountPoints"] = [
            {
                "sourceVolume": m.source_volume,
                "containerPath": m.container_path,
                "readOnly": m.read_only,
            }
            for m in c.mount_points
        ]
    if c.depends_on:
        out["dependsOn"] = [
            {"containerName": d.container_name, "condition": d.condition} for d in c.depends_on
        ]
    if c.health_check is not None:
        hc = c.health_check
        out["healthCheck"] = {
            "command": list(hc.command),
            "interval": hc.interval,
            "timeout": hc.timeout,
            "retries": hc.retries,
        }
        if hc.start_period is not None:
            out["healthCheck"]["startPeriod"] = hc.start_period
    if c.log is not None:
        out["logConfiguration"] = {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": c.log.group,
                "awslogs-region": c.log.region,
                "awslogs-stream-prefix": c.log.stream_prefix,
            },
        }
    for key, value in (
        ("user", c.user),
        ("workingDirectory", c.working_directory),
        ("readonlyRootFilesystem", c.readonly_root_filesystem),
        ("stopTimeout", c.stop_timeout),
    ):
        if value is not None:
            out[key] = value
    return out


def check_dependencies(containers: Sequence[Container]) -> None:
    """Reject dependency graphs ECS would refuse or that could never start."""
    by_name = {c.name: c for c in containers}
    if len(by_name) != len(containers):
        raise ValueError("container names must be unique within a task")
    if not any(c.essential for c in containers):
        raise ValueError("a task needs at least one essential container")
    for c in containers:
        for d in c.depends_on:
            if d.condition not in DEPENDENCY_CONDITIONS:
                raise ValueError(
                    f"{c.name}: condition {d.condition!r} not in {DEPENDENCY_CONDITIONS}"
                )
            target = by_name.get(d.container_name)
            if target is None:
                raise ValueError(f"{c.name} depends on unknown container {d.container_name!r}")
            # COMPLETE and SUCCESS wait for an exit: ECS forbids them on essential containers.
            if d.condition in ("COMPLETE", "SUCCESS") and target.essential:
                raise ValueError(
                    f"{c.name} waits for {d.container_name} to exit ({d.condition}), "
                    "so that container must be essential=False"
                )
            if d.condition == "HEALTHY" and target.health_check is None:
                raise ValueError(
                    f"{c.name} waits for {d.container_name} to be HEALTHY; it has no health check"
                )


def container_definitions_json(containers: Sequence[Container], awsvpc: bool = True) -> str:
    """The `container_definitions` string of a task definition, sorted as AWS sorts it."""
    check_dependencies(containers)
    ordered = sorted(containers, key=lambda c: c.name)
    return json.dumps([container_definition(c, awsvpc) for c in ordered], sort_keys=True)

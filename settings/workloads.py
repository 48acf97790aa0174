"""Settings of the workload: `app` (one container) and `services` (several)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from constants.config import (
    APP_PROTOCOLS,
    DOMAIN_RE,
    SERVICE_MODES,
)
from settings.app_secrets import AppAccess, read_access
from settings.errors import ConfigError, invalid, missing
from settings.model import (
    APP_DEFAULTS,
    DEMO_SERVICES,
    AppSettings,
    ServiceSettings,
    is_neo4j_image,
)
from settings.readers import (
    ENV_NAME_RE,
    FILE_NAME_RE,
    KMS_KEY_ARN_RE,
    SERVICE_NAME_RE,
    read_container_path,
    read_fargate_size,
    read_image,
    read_integer,
    read_object,
    reject_unknown_keys,
)
from settings.redaction import shown
from settings.reference import SERVICE_KEYS
from settings.scaling import read_autoscaling, read_capacity
from task_contents.certificate_layout import CertificateLayout
from task_contents.neo4j import NEO4J_MIN_MEMORY_MIB


def parse_app(values: Mapping[str, Any], topology: str) -> AppSettings:
    raw = read_object(values, "app")
    base = APP_DEFAULTS[topology]
    image = read_image(raw.get("image", base.image), "app.image")
    port = read_integer(raw.get("port", base.port), "app.port", 1, 65535)
    cpu, memory = read_fargate_size(raw.get("cpu", base.cpu), raw.get("memory", base.memory), "app")
    count = read_integer(raw.get("desiredCount", base.desired_count), "app.desiredCount", 0, 100)
    path = read_health_path(
        raw.get("healthCheckPath", base.health_check_path), "app.healthCheckPath"
    )
    env = read_environment(raw.get("environment", {}), "app.environment")
    exec_command = read_boolean(raw.get("enableExecuteCommand", False), "app.enableExecuteCommand")
    # Fields only nlb-certbot reads are refused elsewhere by settings/reference.py APPLIES_TO.
    ports, layout = base.ports, base.certificate_layout
    if "ports" in raw or "certificateLayout" in raw:
        ports = _ports(raw.get("ports", list(ports)))
        layout = _layout(raw.get("certificateLayout", {}), layout)
    # app.capacity: where nlb-certbot runs (ec2 | fargate); elsewhere Fargate or Fargate Spot.
    strategy = None
    if topology != "nlb-certbot":
        strategy = read_capacity(raw.get("capacity", "fargate"), "app.capacity")
        raw = {k: v for k, v in raw.items() if k != "capacity"}
    host = _host(raw, base, image, count)
    if topology == "nlb-certbot" and is_neo4j_image(image) and memory < NEO4J_MIN_MEMORY_MIB:
        raise invalid(
            "app.memory",
            memory,
            f"at least {NEO4J_MIN_MEMORY_MIB} MiB for Neo4j (heap, page cache and the JVM's "
            "other memory)",
        )
    if host["capacity"] == "ec2" and topology == "nlb-certbot":
        _check_host_ports(ports)
    if host["data_path"] is not None:
        _check_apart(host["data_path"], layout.target_dir)
    return AppSettings(
        **host,
        ports=ports,
        certificate_layout=layout,
        image=image,
        port=port,
        health_check_path=path,
        cpu=cpu,
        memory=memory,
        desired_count=count,
        environment=env,
        capacity_strategy=strategy,
        autoscaling=read_autoscaling(raw.get("autoscaling"), "app.autoscaling"),
        access=_exec_with_own_role(read_access(raw, "app", env), exec_command, "app"),
        enable_execute_command=exec_command,
    )


def _exec_with_own_role(access: AppAccess, exec_command: bool, key: str) -> AppAccess:
    """Refuse ECS Exec with a task role of the user's: its rights (the SSM message channels,
    the cluster's exec key and log group) go on the task role, and the program does not
    change a role it does not own."""
    if exec_command and access.task_role_arn is not None:
        raise ConfigError(
            f"{key}.enableExecuteCommand",
            f"puts the ECS Exec rights on the task role, and {key}.taskRoleArn is a role of "
            f"yours the program does not change: use {key}.taskRolePolicyArns instead, or "
            "leave ECS Exec off",
        )
    return access


def read_boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(key, value, "true or false")
    return value


# ALB health check path: up to 1024 characters of a URL path (and query).
HEALTH_PATH_RE = re.compile(r"\A/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,1023}\Z")


def read_health_path(value: Any, key: str) -> str:
    if not isinstance(value, str) or not HEALTH_PATH_RE.match(value):
        raise invalid(key, value, "an absolute HTTP path such as /health")
    return value


# Names that say a value is secret, as whole words of the upper-cased name split on `_`
# (DB_PASSWORD, GITHUB_TOKEN, STRIPE_API_KEY); PASSWORD_POLICY is caught too, TOKENIZER is not.
SECRET_NAME_WORDS = (
    ("PASSWORD",),
    ("PASSWD",),
    ("TOKEN",),
    ("SECRET",),
    ("APIKEY",),
    ("API", "KEY"),
    ("PRIVATE", "KEY"),
    ("ACCESS", "KEY"),
    ("CREDENTIAL",),
)

# Values that are key material whatever their name. Each pattern is specific enough that a
# plain setting (a URL, a path, a git commit, a UUID) does not match it.
SECRET_VALUES = (
    ("a PEM block", re.compile(r"-----BEGIN")),
    ("an AWS access key ID", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")),
    # 40 base64 characters standing alone with upper case, lower case and a digit: a git
    # commit (hex, one case) or a path with separators around its words does not qualify.
    (
        "an AWS secret access key",
        re.compile(
            r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])"
            r"(?=[A-Za-z0-9/+]{0,39}[0-9])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
        ),
    ),
    # A JWT: base64url of a JSON header and payload, both starting `{"` (eyJ).
    ("a JSON Web Token", re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.")),
)

SECRETS_ADVICE = (
    "environment variables sit in plaintext in the task definition, readable by anyone who "
    "may describe it; keep secrets in AWS Secrets Manager and pass them as ECS `secrets`"
)


def read_environment(value: Any, key: str) -> tuple[tuple[str, str], ...]:
    """Plain `NAME: value` pairs; a secret is refused without its value being shown."""
    if not isinstance(value, dict):
        raise invalid(key, value, "an object of NAME: value strings")
    pairs = []
    for name, val in value.items():
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            raise invalid(key, name, "an object whose names are environment variable names")
        at = f"{key}.{name}"
        words = name.upper().split("_")
        for secret in SECRET_NAME_WORDS:
            n = len(secret)
            if any(tuple(words[i : i + n]) == secret for i in range(len(words) - n + 1)):
                raise ConfigError(
                    at, f"is named like a secret ({'_'.join(secret)}); {SECRETS_ADVICE}"
                )
        if not isinstance(val, (str, int, float)):  # bool is an int
            raise invalid(at, val, "a string, number or boolean")
        text = json.dumps(val) if isinstance(val, bool) else str(val)
        if isinstance(val, float) and not math.isfinite(val):
            raise invalid(at, val, "a finite number")
        if "\0" in text:
            raise ConfigError(at, "holds a NUL character, which no environment variable can")
        for what, pattern in SECRET_VALUES:
            if pattern.search(text):
                raise ConfigError(at, f"holds what looks like {what}; {SECRETS_ADVICE}")
        pairs.append((name, text))
    return tuple(sorted(pairs))


# Ports of the instance itself, which nlb-certbot's EC2 tasks share (host network mode): the
# ECS agent reserves these by default (ECS_RESERVED_PORTS: SSH, the Docker API, the agent's
# introspection and credentials endpoints).
INSTANCE_PORTS = {
    22: "SSH",
    2375: "Docker",
    2376: "Docker TLS",
    51678: "the ECS agent",
    51679: "the ECS agent",
}


def _check_host_ports(ports: tuple[int, ...]) -> None:
    """On EC2 the app binds its ports on the instance: keep clear of what the instance uses.

    Privileged ports (below 1024) need root on the instance's network stack; the default
    image (Neo4j) and most others run as another user. 443 stays allowed for an app that
    runs as root and serves the standard HTTPS port.
    """
    for port in ports:
        if port in INSTANCE_PORTS:
            raise invalid(
                "app.ports",
                port,
                f"free on the instance: {INSTANCE_PORTS[port]} uses it (app.capacity 'ec2' binds "
                "the app's ports on the instance)",
            )
        if port < 1024 and port != 443:
            raise invalid(
                "app.ports",
                port,
                "1024 or above (or 443): app.capacity 'ec2' binds the app's ports on the "
                "instance, where a port below 1024 needs root",
            )


def _check_apart(data_path: str, certificate_dir: str) -> None:
    """The data volume and the certificate directory are separate mounts: neither may hold
    the other, or one hides the other's files."""
    a, b = data_path.rstrip("/") + "/", certificate_dir.rstrip("/") + "/"
    if a.startswith(b) or b.startswith(a):
        raise invalid(
            "app.dataPath",
            data_path,
            f"apart from app.certificateLayout.directory {certificate_dir!r}: each is its own "
            "volume",
        )


LAYOUT_KEYS = ("directory", "scopes", "certificateFile", "privateKeyFile", "owner")

EC2_ONLY_APP_KEYS = (
    "instanceType",
    "dataPath",
    "dataVolumeGiB",
    "snapshotRetentionDays",
    "dataVolumeSnapshotId",
    "dataVolumeZone",
    "dataVolumeKmsKeyArn",
)
# EBS snapshot IDs: 8 hex digits (older) or 17 (current).
SNAPSHOT_ID_RE = re.compile(r"\Asnap-(?:[0-9a-f]{8}|[0-9a-f]{17})\Z")
# An availability zone name such as eu-west-1a (not a zone ID such as euw1-az1).
ZONE_RE = re.compile(r"\A[a-z]{2}(?:-[a-z]+)+-[0-9]+[a-z]\Z")


def _host(raw: Mapping[str, Any], base: AppSettings, image: str, count: int) -> dict[str, Any]:
    """Where the app of nlb-certbot runs and what of it persists."""
    capacity = raw.get("capacity", base.capacity)
    if capacity == "fargate-spot" or isinstance(capacity, dict):
        raise invalid(
            "app.capacity",
            capacity,
            "one of: ec2, fargate (not Fargate Spot: AWS may stop a Spot task at two minutes' "
            "notice, and the database has one instance)",
        )
    if capacity not in ("ec2", "fargate"):
        raise invalid("app.capacity", capacity, "one of: ec2, fargate")
    if capacity == "fargate":
        for key in EC2_ONLY_APP_KEYS:
            if key in raw:
                raise ConfigError(f"app.{key}", "applies to app.capacity 'ec2' only")
    instance_type = raw.get("instanceType", base.instance_type)
    if not isinstance(instance_type, str) or not re.fullmatch(
        r"[a-z0-9-]+\.[a-z0-9]+", instance_type
    ):
        raise invalid("app.instanceType", instance_type, "an EC2 instance type such as t3.large")
    if instance_type.startswith("a1."):
        # Graviton 1: Amazon Linux 2023, the ECS-optimized AMI's system, does not run on it.
        raise invalid(
            "app.instanceType",
            instance_type,
            "a type the ECS-optimized Amazon Linux 2023 AMI runs on (not a1: use t4g or m7g)",
        )
    data_path = raw.get("dataPath", base.data_path)
    if data_path is not None:
        data_path = read_container_path(
            data_path, "app.dataPath", "an absolute container path such as /data"
        )
    size = read_integer(
        raw.get("dataVolumeGiB", base.data_volume_gib), "app.dataVolumeGiB", 1, 16384
    )
    retention = read_integer(
        raw.get("snapshotRetentionDays", base.snapshot_retention_days),
        "app.snapshotRetentionDays",
        0,
        1000,
    )
    snapshot_id = raw.get("dataVolumeSnapshotId")
    if snapshot_id is not None and (
        not isinstance(snapshot_id, str) or not SNAPSHOT_ID_RE.match(snapshot_id)
    ):
        raise invalid(
            "app.dataVolumeSnapshotId",
            snapshot_id,
            "an EBS snapshot ID: snap- and 8 or 17 lower-case hex digits",
        )
    zone = raw.get("dataVolumeZone")
    if zone is not None and (not isinstance(zone, str) or not ZONE_RE.match(zone)):
        raise invalid("app.dataVolumeZone", zone, "an availability zone name such as eu-west-1a")
    kms_key = raw.get("dataVolumeKmsKeyArn")
    if kms_key is not None and (not isinstance(kms_key, str) or not KMS_KEY_ARN_RE.match(kms_key)):
        raise invalid(
            "app.dataVolumeKmsKeyArn",
            kms_key,
            "a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>; not an alias)",
        )
    single = capacity == "ec2" or is_neo4j_image(image)
    if single and count > 1:
        why = (
            "(its data volume attaches to one instance)"
            if capacity == "ec2"
            else "(Neo4j Community runs as one instance)"
        )
        raise invalid("app.desiredCount", count, f"0 or 1 {why}")
    return {
        "capacity": capacity,
        "instance_type": instance_type,
        "data_path": data_path if capacity == "ec2" else None,
        "data_volume_gib": size,
        "snapshot_retention_days": retention,
        "data_volume_snapshot_id": snapshot_id if capacity == "ec2" else None,
        "data_volume_zone": zone if capacity == "ec2" else None,
        "data_volume_kms_key_arn": kms_key if capacity == "ec2" else None,
    }


def _ports(raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list) or not raw:
        raise invalid("app.ports", raw, "a non-empty list of ports")
    ports = tuple(read_integer(p, "app.ports", 1, 65535) for p in raw)
    if len(set(ports)) != len(ports) or 80 in ports:
        raise invalid("app.ports", list(ports), "distinct ports other than 80 (ACME HTTP-01)")
    return ports


def _layout(raw: Any, base: CertificateLayout) -> CertificateLayout:
    key = "app.certificateLayout"
    if not isinstance(raw, dict):
        raise invalid(key, raw, "an object")
    reject_unknown_keys(raw, key, LAYOUT_KEYS)
    directory = read_container_path(
        raw.get("directory", base.target_dir), f"{key}.directory", "an absolute path such as /ssl"
    )
    scopes = raw.get("scopes", list(base.scopes))
    if (
        not isinstance(scopes, list)
        or not scopes
        or not all(isinstance(x, str) and FILE_NAME_RE.match(x) for x in scopes)
        or len(set(scopes)) != len(scopes)
    ):
        raise invalid(f"{key}.scopes", scopes, "a non-empty list of distinct directory names")
    files = {}
    for field_name, default in (
        ("certificateFile", base.cert_file),
        ("privateKeyFile", base.key_file),
    ):
        value = raw.get(field_name, default)
        if not isinstance(value, str) or not FILE_NAME_RE.match(value):
            raise invalid(f"{key}.{field_name}", value, "a file name such as public.crt")
        files[field_name] = value
    if files["certificateFile"] == files["privateKeyFile"]:
        raise invalid(
            f"{key}.privateKeyFile", files["privateKeyFile"], "a name other than certificateFile"
        )
    owner = raw.get("owner", base.owner)
    if owner is not None and (
        not isinstance(owner, str) or not re.fullmatch(r"[0-9]{1,10}:[0-9]{1,10}", owner)
    ):
        raise invalid(f"{key}.owner", owner, "uid:gid such as 7474:7474")
    return CertificateLayout(
        scopes=tuple(scopes),
        cert_file=files["certificateFile"],
        key_file=files["privateKeyFile"],
        target_dir=directory,
        owner=owner,
    )


def _service(item: Any, key: str) -> ServiceSettings:
    if not isinstance(item, dict):
        raise invalid(key, item, "an object with name, image and port")
    reject_unknown_keys(item, key, SERVICE_KEYS)
    name = item.get("name")
    if name is None:
        raise missing(f"{key}.name", "every service needs a name")
    if not isinstance(name, str) or not SERVICE_NAME_RE.match(name):
        raise invalid(f"{key}.name", name, "a lowercase DNS label such as 'backend'")
    if item.get("image") is None:
        raise missing(f"{key}.image", "every service needs a container image")
    image = read_image(item.get("image"), f"{key}.image")
    if item.get("port") is None:
        raise missing(f"{key}.port", "every service needs the port its container listens on")
    port = read_integer(item.get("port"), f"{key}.port", 1, 65535)
    mode = item.get("mode", "server")
    if mode not in SERVICE_MODES:
        raise invalid(f"{key}.mode", mode, "one of: server, client")
    public = item.get("public", False)
    if not isinstance(public, bool):
        raise invalid(f"{key}.public", public, "true or false")
    server = mode == "server"
    if not server:
        for server_only in ("discoveryName", "clientAlias", "public"):
            if server_only in item:
                raise ConfigError(f"{key}.{server_only}", "applies to mode 'server' only")
    protocol = item.get("appProtocol", "http" if server else None)
    if protocol is not None and protocol not in APP_PROTOCOLS:
        raise invalid(f"{key}.appProtocol", protocol, "one of: http, http2, grpc")
    discovery = item.get("discoveryName", name)
    if not isinstance(discovery, str) or not SERVICE_NAME_RE.match(discovery):
        raise invalid(f"{key}.discoveryName", discovery, "a lowercase DNS label")
    alias = item.get("clientAlias", {"dnsName": name, "port": port})
    if not isinstance(alias, dict):
        raise invalid(f"{key}.clientAlias", alias, "an object with dnsName and port")
    reject_unknown_keys(alias, f"{key}.clientAlias", ("dnsName", "port"))
    if "port" not in alias:
        raise missing(f"{key}.clientAlias.port", "the port clients connect to is required")
    alias_port = read_integer(alias["port"], f"{key}.clientAlias.port", 1, 65535)
    alias_name = alias.get("dnsName", name)
    if not isinstance(alias_name, str) or (
        not DOMAIN_RE.match(alias_name) and not SERVICE_NAME_RE.match(alias_name)
    ):
        raise invalid(f"{key}.clientAlias.dnsName", alias_name, "a DNS name such as 'backend'")
    path = read_health_path(item.get("healthCheckPath", "/"), f"{key}.healthCheckPath")
    calls = item.get("calls", [])
    if not isinstance(calls, list) or not all(
        isinstance(c, str) and SERVICE_NAME_RE.match(c) for c in calls
    ):
        raise invalid(f"{key}.calls", calls, "a list of service names")
    if len(set(calls)) != len(calls):
        raise invalid(f"{key}.calls", calls, "a list without repeats")
    command = item.get("command", [])
    if not isinstance(command, list) or not all(
        isinstance(c, str) and "\0" not in c for c in command
    ):
        raise invalid(f"{key}.command", command, "a list of strings")
    env = read_environment(item.get("environment", {}), f"{key}.environment")
    cpu, memory = read_fargate_size(item.get("cpu", 256), item.get("memory", 512), key)
    exec_command = read_boolean(
        item.get("enableExecuteCommand", False), f"{key}.enableExecuteCommand"
    )
    return ServiceSettings(
        name=name,
        image=image,
        port=port,
        mode=mode,
        public=public,
        app_protocol=protocol,
        discovery_name=discovery if server else "",
        alias_dns_name=alias_name if server else "",
        alias_port=alias_port if server else 0,
        health_check_path=path,
        calls=tuple(calls),
        command=tuple(command),
        environment=env,
        cpu=cpu,
        memory=memory,
        desired_count=read_integer(item.get("desiredCount", 2), f"{key}.desiredCount", 0, 100),
        capacity_strategy=read_capacity(item.get("capacity", "fargate"), f"{key}.capacity"),
        autoscaling=read_autoscaling(item.get("autoscaling"), f"{key}.autoscaling"),
        access=_exec_with_own_role(read_access(item, key, env), exec_command, key),
        enable_execute_command=exec_command,
    )


def _unique(services: tuple[ServiceSettings, ...], attribute: str, key: str) -> None:
    """Reject a value of `attribute` that two services share (empty values are not compared)."""
    seen: dict[Any, int] = {}
    for i, service in enumerate(services):
        value = getattr(service, attribute)
        if not value:
            continue
        if value in seen:
            path = f"services[{i}].{key}"
            raise ConfigError(
                path, f"{shown(path, value)} is already used by services[{seen[value]}]"
            )
        seen[value] = i


def parse_services(values: Mapping[str, Any], topology: str) -> tuple[ServiceSettings, ...]:
    raw = values.get("services")
    uses_services = topology in ("service-connect", "appmesh-efs")
    if raw is None:
        return DEMO_SERVICES if uses_services else ()
    # Set on another topology, `services` is refused by settings/reference.py APPLIES_TO.
    if not isinstance(raw, list) or not raw:
        raise invalid("services", raw, "a non-empty list of {name, image, port} objects")
    services = tuple(_service(item, f"services[{i}]") for i, item in enumerate(raw))
    _unique(services, "name", "name")
    _unique(services, "discovery_name", "discoveryName")
    _unique(services, "alias_dns_name", "clientAlias.dnsName")
    if not any(s.is_server for s in services):
        raise invalid("services", [s.name for s in services], "a list with at least one server")
    public = [i for i, s in enumerate(services) if s.public]
    if len(public) > 1:
        raise ConfigError(f"services[{public[1]}].public", "only one service can be public")
    if not public:
        default = next((s for s in services if s.name == "frontend" and s.is_server), None)
        default = default or next(s for s in services if s.is_server)
        services = tuple(replace(s, public=s is default) for s in services)
    services = tuple(
        replace(s, calls=_default_calls(s, services)) if "calls" not in raw[i] else s
        for i, s in enumerate(services)
    )
    _check_calls(services)
    creation_order(services)  # rejects cycles now, naming the key
    return services


def _default_calls(service: ServiceSettings, services: tuple[ServiceSettings, ...]) -> tuple:
    """The entry point and client-only services call the other servers; servers call none."""
    if service.is_server and not service.public:
        return ()
    return tuple(s.name for s in services if s.is_server and s is not service)


def _check_calls(services: tuple[ServiceSettings, ...]) -> None:
    """Rejects calls to unknown names, to itself and to a client-only service."""
    index = {s.name: i for i, s in enumerate(services)}
    for i, service in enumerate(services):
        for name in service.calls:
            key = f"services[{i}].calls"
            if name not in index:
                raise invalid(key, name, f"a service name: {', '.join(index)}")
            if name == service.name:
                raise invalid(key, name, "another service's name")
            if not services[index[name]].is_server:
                raise invalid(key, name, "a server (client-only services receive no calls)")


def creation_order(services: tuple[ServiceSettings, ...]) -> list[ServiceSettings]:
    """The services in the order to create them: each after the servers it calls.

    A task resolves Service Connect names once, when it starts: a client whose servers do
    not exist yet would never reach them. Rejects cycles, naming the key; the parser checks
    the names first, so a topology reads no more than names and calls here (appmesh-efs
    has no `mode`: tests/unit/test_applies_to.py).
    """
    index = {s.name: i for i, s in enumerate(services)}
    ordered: list[ServiceSettings] = []
    placing: set[str] = set()

    def place(service: ServiceSettings) -> None:
        if any(service is done for done in ordered):
            return
        if service.name in placing:
            key = f"services[{index[service.name]}].calls"
            raise ConfigError(
                key,
                f"{shown(key, service.name)} is part of a cycle of calls; ECS cannot start "
                "either first",
            )
        placing.add(service.name)
        for name in service.calls:
            place(services[index[name]])
        placing.discard(service.name)
        ordered.append(service)

    for service in services:
        place(service)
    return ordered

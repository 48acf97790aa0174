"""The applies-to table (settings/reference.py APPLIES_TO) is what the program reads.

Each topology's program runs under the mocks with a configuration that sets every key the
topology accepts, while the parsed settings record which of their fields are read. The
records, mapped to configuration keys, must agree with the table both ways: a key listed for
a topology is read by it, and a key a topology reads is listed for it or applies to all.
Reads made while parsing do not count: the parser looks at every key to refuse it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import settings.parse
from scripts.mock_runtime import run_program
from scripts.pki import make_pki
from settings import CONFIG_REFERENCE, TOPOLOGIES
from settings.mesh import NOT_IN_MESH
from settings.reference import APPLIES_TO
from tests.conftest import MINIMAL_CONFIG
from tests.unit.test_appmesh_efs import own_pki

DOCUMENTED = {k.path for k in CONFIG_REFERENCE}
ZONE = "Z0123456789ABCDEFGHIJ"
KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PINNED = "@sha256:" + "a" * 64
EXISTING_VPC = {
    "vpcId": "vpc-0123456789abcdef0",
    "publicSubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "privateSubnetIds": ["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"],
}
# Every key that applies to all topologies, set away from its default.
COMMON = {
    "hostedZoneId": ZONE,
    "logRetentionDays": 14,
    "allowedCidrs": ["203.0.113.0/24"],
    "alertsEmail": "ops@example.com",
    "caaRecord": False,
    "images": {"pullThroughCache": True, "repositoryPrefix": "mirror"},
    "network": {"cidrBlock": "10.20.0.0/16", "availabilityZones": 3, "natGateways": 3},
    "serviceConnect": {"namespace": "shop-prod"},
}
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/web-AbCdEf"
POLICY_ARN = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
ROLE_ARN = "arn:aws:iam::123456789012:role/web"
ACM_ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
WAF_ARN = (
    "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/edge/0123abcd-0123-4567-89ab-0123456789ab"
)
# What a workload may add on every topology that runs it: secrets, its task role, ECS Exec.
ACCESS = {
    "secrets": {"DB_PASSWORD": {"arn": SECRET_ARN, "jsonKey": "password"}},
    "secretsKmsKeyArn": KMS_KEY,
    "taskRolePolicyArns": [POLICY_ARN],
    "enableExecuteCommand": True,
}
# Where Fargate runs it and how it scales.
FARGATE = {
    "capacity": {"fargate": 1, "fargateSpot": 1, "base": 1},
    "autoscaling": {"min": 1, "max": 4, "cpuPercent": 60, "memoryPercent": 70},
}
ENVOY = {
    "image": "envoyproxy/envoy:v1.39.3" + PINNED,
    "port": 9443,
    "minTlsVersion": "1.3",
    "accessLog": "sampled",
    "upstreamIdleTimeoutSeconds": 30,
}
APP = {
    "image": "ghcr.io/acme/web:1.2.3" + PINNED,
    "port": 8080,
    "cpu": 512,
    "memory": 1024,
    "desiredCount": 1,
    "healthCheckPath": "/healthz",
    "environment": {"LOG_LEVEL": "info"},
}
SERVICES = [
    {
        "name": "web",
        "image": "ghcr.io/acme/web:1.4.0" + PINNED,
        "port": 8080,
        "public": True,
        "healthCheckPath": "/healthz",
        "calls": ["orders"],
        "environment": {"LOG_LEVEL": "info"},
        "cpu": 512,
        "memory": 1024,
        "desiredCount": 1,
    },
    {
        "name": "orders",
        "image": "ghcr.io/acme/orders:2.1.0" + PINNED,
        "port": 9000,
        "appProtocol": "grpc",
        "discoveryName": "orders-api",
        "clientAlias": {"dnsName": "orders", "port": 9000},
        "command": ["serve", "--port", "9000"],
    },
    {"name": "worker", "image": "ghcr.io/acme/worker:2.1.0" + PINNED, "port": 9100},
]
MESH_NAMESPACE = "mesh.app.example.com"


def _mesh_configs() -> list[dict[str, Any]]:
    certificate, client = own_pki(names=("app.example.com", f"*.{MESH_NAMESPACE}"))
    mesh_services = [{k: v for k, v in s.items() if k not in NOT_IN_MESH} for s in SERVICES[:2]]
    mesh_services[0] = {**mesh_services[0], **ACCESS, **FARGATE}
    return [
        {
            **MINIMAL_CONFIG["appmesh-efs"],
            **COMMON,
            "certificateExpiryAlarmDays": 20,
            "envoy": ENVOY,
            "services": mesh_services,
            "certificate": certificate,
            "loadBalancer": {"deletionProtection": True},
            "mesh": {
                "namespace": MESH_NAMESPACE,
                "mutualTls": True,
                "clientCertificate": client,
                "gatewayRoutes": [
                    {"prefix": "/", "service": "web"},
                    {"prefix": "/orders/", "service": "orders", "prefixRewrite": "/"},
                ],
                "gatewayDesiredCount": 3,
                "dnsRefreshSeconds": 10,
                "additionalTrustedCaPem": make_pki("old.example.com").root_pem,
            },
        }
    ]


def _configs(topology: str) -> list[dict[str, Any]]:
    """Configurations that between them set every key `topology` accepts."""
    base = {**MINIMAL_CONFIG[topology], **COMMON}
    own = make_pki(MINIMAL_CONFIG[topology]["domain"]).certificate_config()
    if topology == "nlb-certbot":
        acme = {"email": "ops@example.com", "server": "production", "profile": "tlsserver"}
        app = {
            **APP,
            "port": 8443,
            "ports": [8443],
            "certificateLayout": {
                "directory": "/certs",
                "scopes": ["main"],
                "certificateFile": "tls.crt",
                "privateKeyFile": "tls.key",
                "owner": "1000:1000",
            },
            "capacity": "ec2",
            "instanceType": "t3.large",
            "dataPath": "/var/lib/app",
            "dataVolumeGiB": 30,
            "snapshotRetentionDays": 3,
            "dataVolumeSnapshotId": "snap-0123456789abcdef0",
            "dataVolumeZone": "eu-west-1a",
            "dataVolumeKmsKeyArn": KMS_KEY,
            **ACCESS,
        }
        return [
            {
                **base,
                "acme": {**acme, "renewEveryDays": 5},
                "app": app,
                "loadBalancer": {"deletionProtection": True},
            },
            {**base, "acme": {**acme, "challenge": "http-01"}, "app": app},
        ]
    if topology == "alb-envoy":
        return [
            {
                **base,
                "envoy": ENVOY,
                "app": APP,
                "certificate": own,
                "sslPolicy": "ELBSecurityPolicy-TLS13-1-3-2021-06",
                "certificateExpiryAlarmDays": 20,
            },
            {
                **base,
                "app": {**APP, **ACCESS, **FARGATE},
                "certificate": {"source": "acm"},
                "loadBalancer": {
                    "accessLogs": {"bucket": "acme-elb-logs", "prefix": "edge"},
                    "deletionProtection": True,
                    "wafWebAclArn": WAF_ARN,
                },
            },
            {
                **base,
                "app": {
                    **APP,
                    "taskRoleArn": ROLE_ARN,
                    "autoscaling": {"min": 1, "max": 3, "requestsPerTarget": 100},
                },
                "certificate": {"arn": ACM_ARN},
                "loadBalancer": {"accessLogs": True},
            },
        ]
    if topology == "service-connect":
        private_ca = {
            "shareWith": ["111122223333"],
            "keyAlgorithm": "EC_secp384r1",
            "signingAlgorithm": "SHA512WITHECDSA",
            "permanentDeletionDays": 10,
            "allowExternalPrincipals": True,
        }
        listener = {"sslPolicy": "ELBSecurityPolicy-TLS13-1-3-2021-06"}
        listener["certificateExpiryAlarmDays"] = 20
        return [
            {
                **base,
                "ingress": "nlb",
                "services": SERVICES,
                "privateCa": private_ca,
                "serviceConnect": {"namespace": "shop-prod", "customerKmsKey": True},
                "certificate": own,
                **listener,
            },
            {
                **base,
                "ingress": "alb",
                "services": SERVICES,
                "privateCa": {
                    "arn": "arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/"
                    "12345678-1234-1234-1234-123456789012"
                },
                **listener,
            },
            {
                **base,
                "ingress": "alb",
                "services": [
                    {**SERVICES[0], **ACCESS, **FARGATE},
                    {**SERVICES[1], "taskRoleArn": ROLE_ARN},
                    SERVICES[2],
                ],
                "certificate": {"arn": ACM_ARN},
                "loadBalancer": {
                    "accessLogs": True,
                    "deletionProtection": True,
                    "wafWebAclArn": WAF_ARN,
                },
            },
            {**base, "ingress": "alb", "services": SERVICES, "certificate": {"source": "acm"}},
        ]
    if topology == "appmesh-efs":
        return _mesh_configs()
    if topology == "direct-task":
        acme = {"email": "ops@example.com", "server": "production", "profile": "tlsserver"}
        app = {**APP, "desiredCount": 2, **ACCESS, **FARGATE}
        return [{**base, "acme": acme, "envoy": ENVOY, "app": app}]
    raise AssertionError(topology)


# --- recording the reads -----------------------------------------------------------------


class _Recorder:
    """Which fields of the parsed settings the program reads, as dotted paths."""

    def __init__(self) -> None:
        self.paths: dict[int, str] = {}  # id of a settings object -> its path
        self.kept: list[Any] = []  # keeps those objects alive, so no id is reused
        self.reads: set[str] = set()
        self.classes: set[type] = set()

    def track(self, value: Any, path: str) -> Any:
        """A copy of `value` whose objects are registered under their paths (fresh
        objects: a default instance shared by two fields would blur the paths)."""
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fresh = copy.copy(value)
            for f in dataclasses.fields(value):
                inner = f"{path}.{f.name}" if path else f.name
                object.__setattr__(fresh, f.name, self.track(getattr(value, f.name), inner))
            self.paths[id(fresh)] = path
            self.kept.append(fresh)
            self.classes.add(type(fresh))
            return fresh
        if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            return tuple(self.track(item, f"{path}[]") for item in value)
        return value

    def is_tracked(self, value: Any) -> bool:
        if isinstance(value, tuple) and value:
            return all(id(item) in self.paths for item in value)
        return id(value) in self.paths


# The methods @dataclass writes that read every field.
WHOLE_OBJECT_METHODS = frozenset(
    {"__eq__", "__hash__", "__repr__", "__lt__", "__le__", "__gt__", "__ge__"}
)


@contextlib.contextmanager
def recording() -> Iterator[_Recorder]:
    """Record the reads of the settings `load_settings` hands the program."""
    recorder = _Recorder()
    parse = settings.parse.parse_settings
    fields_of: dict[type, frozenset[str]] = {}

    def getattribute(obj: Any, name: str) -> Any:
        value = object.__getattribute__(obj, name)
        path = recorder.paths.get(id(obj))
        # A field holding more settings objects is read through theirs; properties through
        # the fields they use. Comparing, hashing or printing a whole object reads every
        # field and decides nothing about one.
        if (
            path is not None
            and name in fields_of[type(obj)]
            and not recorder.is_tracked(value)
            and sys._getframe(1).f_code.co_name not in WHOLE_OBJECT_METHODS
        ):
            recorder.reads.add(f"{path}.{name}" if path else name)
        return value

    with pytest.MonkeyPatch.context() as patch:

        def parse_and_track(*args: Any, **kwargs: Any) -> Any:
            tracked = recorder.track(parse(*args, **kwargs), "")
            for cls in recorder.classes - set(fields_of):
                fields_of[cls] = frozenset(f.name for f in dataclasses.fields(cls))
                patch.setattr(cls, "__getattribute__", getattribute)
            return tracked

        patch.setattr(settings.parse, "parse_settings", parse_and_track)
        yield recorder


# Fields whose key is spelt otherwise than the field in camelCase.
RENAMED = {
    "app.dataVolumeGib": "app.dataVolumeGiB",
    "services[].aliasDnsName": "services[].clientAlias",
    "services[].aliasPort": "services[].clientAlias",
}
# Groups of fields read from another key: (field path prefix, key prefix).
RENAMED_PREFIXES = (
    ("listenerCertificate.", "certificate."),
    ("app.access.", "app."),
    ("services[].access.", "services[]."),
    ("app.capacityStrategy", "app.capacity"),
    ("services[].capacityStrategy", "services[].capacity"),
    ("loadBalancer.accessLogs", "loadBalancer.accessLogs."),
)


def config_key(path: str) -> str:
    """The documented key a field path comes from: `app.health_check_path` ->
    `app.healthCheckPath`. A field without a key of its own (`certificate.not_valid_after`,
    derived from the PEM; the parts of `app.certificateLayout`; one gateway route) is read
    as part of the nearest documented key above it."""
    camel = re.sub(r"_([a-z0-9])", lambda m: m[1].upper(), path)
    camel = RENAMED.get(camel, camel)
    for field_prefix, key_prefix in RENAMED_PREFIXES:
        if camel.startswith(field_prefix):
            camel = key_prefix + camel[len(field_prefix) :]
            break
    parts = camel.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        for key in (candidate, candidate.removesuffix("[]")):
            if key in DOCUMENTED:
                return key
    raise AssertionError(f"settings field {path} maps to no documented key")


# Service fields appmesh-efs refuses by settings/mesh.py NOT_IN_MESH, a second table.
SERVICE_CONNECT_ONLY = {f"services[].{field}": ("service-connect",) for field in NOT_IN_MESH}
TABLE = {**APPLIES_TO, **SERVICE_CONNECT_ONLY}


def listed_for(key: str) -> tuple[str, ...] | None:
    """The topologies the tables list for `key` or the nearest key above it; None: all."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        readers = TABLE.get(candidate) or TABLE.get(candidate.removesuffix("[]"))
        if readers:
            return readers
    return None


@functools.cache
def keys_read(topology: str) -> frozenset[str]:
    """The keys `topology`'s program reads, over configurations that set all it accepts."""
    configs = _configs(topology)
    # The network keys of an existing VPC exclude those of a new one.
    configs.append({**configs[0], "network": EXISTING_VPC})
    keys: set[str] = set()
    for i, config in enumerate(configs):
        with recording() as recorder:
            # A stack name of its own: the harness shares graphs between runs of the same
            # configuration, and this run must happen.
            run_program(config, stack=f"reads{i}", secret_keys=["certificate", "mesh"])
        assert recorder.reads, "no read was recorded: the hook missed the program's settings"
        keys |= {config_key(path) for path in recorder.reads}
    return frozenset(keys)


# --- the table, both ways ----------------------------------------------------------------

LISTED = [(path, t) for path, readers in TABLE.items() for t in readers]


def _reads(key: str, topology: str) -> bool:
    return any(k == key or k.startswith((f"{key}.", f"{key}[]")) for k in keys_read(topology))


@pytest.mark.parametrize(("path", "topology"), LISTED, ids=[f"{p}@{t}" for p, t in LISTED])
def test_a_key_listed_for_a_topology_is_read_by_it(path, topology):
    assert _reads(path, topology), (
        f"{path} is listed for {topology} in settings/reference.py APPLIES_TO, but its program "
        "never reads it: refuse the key there, or read it"
    )


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_a_key_a_topology_reads_is_listed_for_it_or_applies_to_all(topology):
    unlisted = sorted(
        key
        for key in keys_read(topology)
        if (readers := listed_for(key)) is not None and topology not in readers
    )
    assert not unlisted, (
        f"{topology} reads {unlisted}, which settings/reference.py APPLIES_TO does not list "
        "for it: list it there, or stop reading it"
    )


UNLISTED = sorted(k for k in DOCUMENTED if listed_for(k) is None)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_a_key_the_table_leaves_out_is_read_by_every_topology(topology):
    # Left out of the table means "applies to all": no topology may silently ignore it.
    ignored = [key for key in UNLISTED if not _reads(key, topology)]
    assert not ignored, (
        f"{topology} never reads {ignored}, which settings/reference.py APPLIES_TO leaves "
        "out (applies to all): list the topologies that read it there"
    )


def test_the_key_names_of_fields():
    assert config_key("app.health_check_path") == "app.healthCheckPath"
    assert config_key("app.data_volume_gib") == "app.dataVolumeGiB"
    assert config_key("certificate.not_valid_after") == "certificate"
    assert config_key("services[].alias_port") == "services[].clientAlias"
    assert config_key("mesh.gateway_routes[].prefix_rewrite") == "mesh.gatewayRoutes"
    assert listed_for("app.certificateLayout") == ("nlb-certbot",)
    assert listed_for("services[].image") == APPLIES_TO["services"]
    assert listed_for("services[].healthCheckPath") == ("service-connect",)
    assert listed_for("domain") is None and "network.vpcId" in UNLISTED

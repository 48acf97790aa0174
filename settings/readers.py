"""Reading raw stack configuration and checking single values; every error names its key."""

from __future__ import annotations

import difflib
import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

import pulumi

from settings.constants import (
    FARGATE_MEMORY,
    NAMESPACE,
)
from settings.errors import ConfigError, invalid
from settings.redaction import holds_key_material, is_secret, shown
from settings.reference import CONFIG_REFERENCE

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"

DOMAIN_RE = re.compile(rf"^(?:{_LABEL}\.)+[a-z][a-z0-9-]{{0,62}}(?<!-)$")

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[a-zA-Z]{2,}$")

HOSTED_ZONE_RE = re.compile(r"^Z[A-Z0-9]{1,31}$")

VPC_RE = re.compile(r"^vpc-[0-9a-f]{8,17}$")

SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")

PCA_ARN_RE = re.compile(
    r"^arn:aws(?:-[a-z]+)*:acm-pca:[a-z0-9-]+:\d{12}:certificate-authority/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)

ACCOUNT_RE = re.compile(r"^\d{12}$")

ORG_ARN_RE = re.compile(
    r"^arn:aws(?:-[a-z]+)*:organizations::\d{12}:organization/o-[a-z0-9]{10,32}$"
)

OU_ARN_RE = re.compile(
    r"^arn:aws(?:-[a-z]+)*:organizations::\d{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$"
)

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

SERVICE_NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")

FILE_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def raw_config() -> dict[str, Any]:
    """Every `ecs-tls:*` value, JSON-decoded where it is JSON (objects, arrays, numbers)."""
    merged = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    prefix = f"{NAMESPACE}:"
    values: dict[str, Any] = {}
    for full_key, text in merged.items():
        if not full_key.startswith(prefix):
            continue
        try:
            values[full_key[len(prefix) :]] = json.loads(text)
        except (TypeError, ValueError):
            values[full_key[len(prefix) :]] = text
    return values


def secret_config_keys() -> frozenset[str]:
    """Top-level `ecs-tls:*` keys whose values the engine marks secret.

    `pulumi up` lists them in PULUMI_CONFIG_SECRET_KEYS; mocks and the Automation API pass
    them to `set_all_config`, which `is_config_secret` reads. A value set with
    `--path --secret` makes its whole top-level key secret: the engine lists
    `ecs-tls:certificate`, never `ecs-tls:certificate.privateKeyPem`.
    """
    merged = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    names = set(pulumi.runtime.get_config_secret_keys_env())
    names.update(k for k in merged if pulumi.runtime.is_config_secret(k))
    prefix = f"{NAMESPACE}:"
    return frozenset(k[len(prefix) :] for k in names if k.startswith(prefix))


# The file a PEM field is usually kept in, for the commands that errors suggest.
PEM_FILES = {
    "certificate.certificatePem": "cert.pem",
    "certificate.chainPem": "chain.pem",
    "certificate.privateKeyPem": "key.pem",
}


# Fields that hold key material: always stored with --secret.
SECRET_FIELDS = ("certificate.privateKeyPem",)


def set_command(path: str, value: Any = None, secret: bool = False) -> str:
    """The `pulumi config set --path` line that stores `value` at `path`.

    A PEM field is piped from its file: its text starts with dashes, which the CLI would
    take for a flag, and a piped key stays out of shell history and the process list.
    A value that may not be shown becomes `<value>`.
    """
    secret = secret or is_secret(path) or path in SECRET_FIELDS
    flags = "--path --secret" if secret else "--path"
    target = shlex.quote(f"{NAMESPACE}:{path}")
    if path in PEM_FILES:
        return f"pulumi config set {flags} {target} < {PEM_FILES[path]}"
    if secret or holds_key_material(value) or not isinstance(value, (str, int, float)):
        text = "<value>"
    elif isinstance(value, bool):
        text = json.dumps(value)
    else:
        text = shlex.quote(str(value))
    return f"pulumi config set {flags} {target} {text}"


def suggest(name: str, known: tuple[str, ...]) -> str:
    close = (
        difflib.get_close_matches(name, known, n=1)
        or [k for k in known if name.lower() in k.lower()][:1]
    )
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"


def check_keys(obj: Mapping[str, Any], prefix: str) -> None:
    known = tuple(
        k.path[len(prefix) + 1 :]
        for k in CONFIG_REFERENCE
        if k.path.startswith(prefix + ".") and k.path.count(".") == 1
    )
    for name in obj:
        if name not in known:
            raise ConfigError(f"{prefix}.{name}", "is not a known key" + suggest(name, known))


def read_object(values: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = values.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(key, value, "an object (set its fields with `pulumi config set --path`)")
    check_keys(value, key)
    return value


def read_string(value: Any, key: str, accepted: str = "a non-empty string") -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid(key, value, accepted)
    return value.strip()


def read_integer(value: Any, key: str, low: int, high: int) -> int:
    # Config set on the command line arrives as text; JSON numbers arrive as int.
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(key, value, f"an integer from {low} to {high}")
    return value


def read_string_list(value: Any, key: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value:
        raise invalid(key, value, f"a non-empty list of {what}")
    for item in value:
        if not isinstance(item, str) or not pattern.match(item):
            raise invalid(key, item, what)
    return tuple(value)


def read_fargate_size(cpu: Any, memory: Any, key: str) -> tuple[int, int]:
    if isinstance(cpu, str) and cpu.isdigit():
        cpu = int(cpu)
    # Checked as an int first: a list or an object is not hashable, so `in` would raise.
    if not isinstance(cpu, int) or isinstance(cpu, bool) or cpu not in FARGATE_MEMORY:
        raise invalid(
            f"{key}.cpu", cpu, f"a Fargate CPU size: {', '.join(map(str, FARGATE_MEMORY))}"
        )
    memory = read_integer(memory, f"{key}.memory", 512, 30720)
    if memory not in FARGATE_MEMORY[cpu]:
        allowed = FARGATE_MEMORY[cpu]
        raise invalid(
            f"{key}.memory",
            memory,
            f"valid with {key}.cpu {cpu}; accepted: {allowed[0]} to {allowed[-1]} MiB"
            + (" in 1024 steps" if len(allowed) > 3 else f" ({', '.join(map(str, allowed))})"),
        )
    return cpu, memory


def preview(value: Any, key: str = "") -> str:
    """A short form of `value` for a message, redacted like every value an error shows."""
    return shown(key, value, limit=40)

"""Reading raw stack configuration and checking single values; every error names its key."""

from __future__ import annotations

import difflib
import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

import pulumi

from constants.config import (
    DOMAIN_RE,
    FARGATE_MEMORY,
    NAMESPACE,
)
from settings.errors import ConfigError, invalid
from settings.redaction import holds_key_material, is_secret, shown
from settings.reference import CONFIG_REFERENCE

# Every pattern is anchored with \A and \Z, never ^ and $: `$` also matches before a final
# newline, so "Z123\n" would pass a `$`-anchored check and reach AWS with its newline.
# Character classes are spelt out: `\d` and `\s` also match non-ASCII digits and spaces.

# The local part: the characters mail providers hand out, not starting with a dash (certbot
# would take `--email -x@...` for an option) or a dot; the domain: a DNS name.
EMAIL_LOCAL_RE = re.compile(r"\A(?![.-])(?!.*\.\.)[A-Za-z0-9._%+-]{1,64}(?<!\.)\Z")

HOSTED_ZONE_RE = re.compile(r"\AZ[A-Z0-9]{1,31}\Z")

VPC_RE = re.compile(r"\Avpc-[0-9a-f]{8,17}\Z")

SUBNET_RE = re.compile(r"\Asubnet-[0-9a-f]{8,17}\Z")

PCA_ARN_RE = re.compile(
    r"\Aarn:aws(?:-[a-z]+)*:acm-pca:[a-z0-9-]+:[0-9]{12}:certificate-authority/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z"
)

# A partition and a region, as every regional ARN carries them.
ARN_PARTITION = r"aws(?:-[a-z]+)*"
ARN_REGION = r"[a-z]{2}(?:-[a-z]+)+-[0-9]+"
# An ACM certificate ARN (the load balancer's region and account: AWS checks, not this).
ACM_CERTIFICATE_ARN_RE = re.compile(
    rf"\Aarn:{ARN_PARTITION}:acm:{ARN_REGION}:[0-9]{{12}}:certificate/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z"
)
# A KMS key ARN: key ID a UUID or a multi-Region key (mrk-); an alias cannot be granted.
KMS_KEY_ARN_RE = re.compile(
    rf"\Aarn:(?P<partition>{ARN_PARTITION}):kms:(?P<region>{ARN_REGION}):[0-9]{{12}}:key/"
    r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})\Z"
)

ACCOUNT_RE = re.compile(r"\A[0-9]{12}\Z")

ORG_ARN_RE = re.compile(
    r"\Aarn:aws(?:-[a-z]+)*:organizations::[0-9]{12}:organization/o-[a-z0-9]{10,32}\Z"
)

OU_ARN_RE = re.compile(
    r"\Aarn:aws(?:-[a-z]+)*:organizations::[0-9]{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}\Z"
)

# ECS: "Up to 255 letters (uppercase and lowercase), numbers, hyphens, and underscores".
ENV_NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,254}\Z")

SERVICE_NAME_RE = re.compile(r"\A[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")

# What the certificate copier accepts (task_contents/certbot.py): no leading dot or dash, so
# neither `.`, `..` nor an option.
FILE_NAME_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9._-]{0,63}\Z")

# A container image reference as Docker parses it: [registry[:port]/]path[:tag][@digest].
_IMAGE_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_IMAGE_HOST = rf"{_IMAGE_LABEL}(?:\.{_IMAGE_LABEL})*(?::[0-9]{{1,5}})?"
_IMAGE_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_RE = re.compile(
    rf"\A(?:{_IMAGE_HOST}/)?{_IMAGE_PATH}(?:/{_IMAGE_PATH})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?\Z"
)


def set_keys() -> tuple[str, ...]:
    """The top-level `ecs-tls:*` keys the stack sets, without their namespace.

    `pulumi.Config` reads a key it is asked for, but has no way to list the keys a stack
    sets, which is what refusing an unknown (misspelt) key needs. So this one read goes to
    the runtime's configuration map and the `PULUMI_CONFIG` environment the CLI hands the
    program, for the names only; values are read through `pulumi.Config` (`raw_config`).
    """
    merged = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    prefix = f"{NAMESPACE}:"
    return tuple(sorted(k[len(prefix) :] for k in merged if k.startswith(prefix)))


def raw_config() -> dict[str, Any]:
    """Every `ecs-tls:*` value the stack sets, read with `pulumi.Config`: JSON (objects,
    arrays, numbers, booleans) decoded with `get_object`, any other text as `get` gives it.

    Plain values, also for keys set with `--secret` (`get_secret_object` would give an
    `Output`): parsing must name a bad key before any resource exists. Their secrecy is
    restored where they enter resources (settings/secrecy.py).
    """
    config = pulumi.Config(NAMESPACE)
    values: dict[str, Any] = {}
    for key in set_keys():
        try:
            values[key] = config.get_object(key)
        except pulumi.ConfigTypeError:
            # Not JSON: a plain string, or an object the user mistyped, which the key's
            # parser refuses with a message that names it (ConfigTypeError's would show
            # the value, secret or not).
            values[key] = config.get(key)
    return values


def secret_config_keys() -> frozenset[str]:
    """Top-level `ecs-tls:*` keys whose values the engine marks secret.

    `pulumi up` lists them in PULUMI_CONFIG_SECRET_KEYS; mocks and the Automation API pass
    them to `set_all_config`, which `is_config_secret` reads. `pulumi.Config` does not say
    which keys are secret. A value set with `--path --secret` makes its whole top-level key
    secret: the engine lists `ecs-tls:certificate`, never `ecs-tls:certificate.privateKeyPem`.
    """
    prefix = f"{NAMESPACE}:"
    names = set(pulumi.runtime.get_config_secret_keys_env())
    names.update(prefix + k for k in set_keys() if pulumi.runtime.is_config_secret(prefix + k))
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
    reject_unknown_keys(obj, prefix, known)


def reject_unknown_keys(obj: Mapping[str, Any], key: str, known: tuple[str, ...]) -> None:
    """Refuse a field of the object at `key` that is not one of `known`, naming the
    closest known one."""
    for name in obj:
        if name not in known:
            raise ConfigError(f"{key}.{name}", "is not a known key" + suggest(name, known))


def read_object(values: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = values.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(key, value, "an object (set its fields with `pulumi config set --path`)")
    check_keys(value, key)
    return value


def read_string(value: Any, key: str, accepted: str = "a non-empty string") -> str:
    """A one-line printable string, taken as given: surrounding spaces or a final newline
    (a value pasted from a file) are refused, not trimmed, so what AWS gets is what was set."""
    if not isinstance(value, str) or not value or value != value.strip() or not value.isprintable():
        raise invalid(key, value, accepted)
    return value


# Digits written out in ASCII; 18 of them stay far below Python's int() limit of 4,300.
_INTEGER_TEXT = re.compile(r"\A-?[0-9]{1,18}\Z")


def as_integer(value: Any) -> Any:
    """`value` as an int when it is an integer written as text; anything else unchanged.

    `str.isdigit()` and `\\d` accept "²" and "٣", which int() then refuses or reads.
    """
    if isinstance(value, str) and _INTEGER_TEXT.match(value):
        return int(value)
    return value


def read_integer(value: Any, key: str, low: int, high: int) -> int:
    # Config set on the command line arrives as text; JSON numbers arrive as int.
    value = as_integer(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(key, value, f"an integer from {low} to {high}")
    return value


def read_string_list(value: Any, key: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value:
        raise invalid(key, value, f"a non-empty list of {what}")
    for item in value:
        if not isinstance(item, str) or not pattern.fullmatch(item):
            raise invalid(key, item, what)
    if len(set(value)) != len(value):
        raise invalid(key, value, f"a list of distinct {what}")
    return tuple(value)


# ECS `image`: up to 255 characters.
IMAGE_MAX = 255


def read_image(value: Any, key: str) -> str:
    """A container image reference: no spaces, shell characters or uppercase repository."""
    accepted = "a container image reference such as public.ecr.aws/docker/library/nginx:1.27"
    if not isinstance(value, str) or len(value) > IMAGE_MAX or not IMAGE_RE.match(value):
        raise invalid(key, value, accepted)
    return value


def read_dns_name(value: Any, key: str, accepted: str) -> str:
    """A DNS name, lower-cased and without its root dot: `App.Example.com.` is
    `app.example.com`. ASCII first: lower() maps some lookalikes (the Kelvin sign) to ASCII."""
    if not isinstance(value, str) or not value.isascii():
        raise invalid(key, value, accepted)
    name = value.lower().removesuffix(".")
    if len(name) > 253 or not DOMAIN_RE.match(name):
        raise invalid(key, value, accepted)
    return name


def read_email(value: Any, key: str) -> str:
    """An address certbot and SNS both take (task_contents/certbot.py checks the same)."""
    accepted = "an e-mail address such as ops@example.com"
    if not isinstance(value, str) or value.count("@") != 1 or len(value) > 254:
        raise invalid(key, value, accepted)
    local, domain = value.split("@")
    if not EMAIL_LOCAL_RE.match(local) or not domain.isascii():
        raise invalid(key, value, accepted)
    if not DOMAIN_RE.match(domain.lower()):
        raise invalid(key, value, accepted)
    return value


# Directories a volume must not hide: the container's own system. Mounted over any of them
# (or under /proc, /sys, /dev) a volume breaks the image or the kernel interfaces.
SYSTEM_DIRECTORIES = frozenset(
    {
        *("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc"),
        *("/root", "/run", "/sbin", "/sys", "/tmp", "/usr", "/var"),
    }
)


def read_container_path(value: Any, key: str, accepted: str) -> str:
    """An absolute, normalised container path that a volume may be mounted on."""
    if (
        not isinstance(value, str)
        or not re.fullmatch(r"(?:/[A-Za-z0-9_][A-Za-z0-9._-]{0,254})+", value)
        or any(part in (".", "..") for part in value.split("/"))
        or len(value) > 1024
    ):
        raise invalid(key, value, accepted)
    if value in SYSTEM_DIRECTORIES or value.startswith(("/proc/", "/sys/", "/dev/")):
        raise invalid(key, value, f"{accepted}, not a system directory of the container")
    return value


def read_fargate_size(cpu: Any, memory: Any, key: str) -> tuple[int, int]:
    cpu = as_integer(cpu)
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

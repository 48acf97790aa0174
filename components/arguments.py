"""Typed component arguments read as configuration, and back.

The public components (the foundation's `Network` and `Cluster`, and every topology) take
args (TypedDicts the package's schema is inferred from) whose fields mirror configuration
keys: snake_case in Python, camelCase in the schema and in the stack configuration. A
component turns its args into configuration values and parses them with the stack's own
parser (settings/), so a bad argument fails as a bad key does, before any resource, named
by the argument the caller gave.
"""

import inspect
import re
import types
from collections import abc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NotRequired, Required, Union, get_args, get_origin, is_typeddict

import pulumi
from pulumi.provider.experimental.util import camel_case

from settings import ConfigError
from settings.errors import invalid, renamed


def _unwrapped(annotation: Any) -> Any:
    """The type under Required/NotRequired and Optional."""
    origin = get_origin(annotation)
    if origin in (Required, NotRequired):
        return _unwrapped(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            return _unwrapped(inner[0])
    return annotation


# Configuration keys not spelt as their field in camelCase (the schema keeps camelCase).
_RENAMED = {"dataVolumeGib": "dataVolumeGiB"}


def _key(name: str) -> str:
    return _RENAMED.get(camel_case(name), camel_case(name))


def _items_type(annotation: Any) -> type | None:
    """The TypedDict a list field holds, if it holds one."""
    if get_origin(annotation) in (list, Sequence, abc.Sequence):
        (item,) = get_args(annotation)
        return item if is_typeddict(item) else None
    return None


def _integers(value: Any, field: Any) -> Any:
    """`value` with whole floats made integers where `field` says int (or a list of int)."""
    if field is int and isinstance(value, float) and value.is_integer():
        return int(value)
    int_list = get_origin(field) in (list, Sequence, abc.Sequence) and get_args(field) == (int,)
    if int_list and isinstance(value, list | tuple):
        return [_integers(v, int) for v in value]
    return value


def _fields(args_type: type) -> dict[str, Any]:
    return {name: _unwrapped(a) for name, a in inspect.get_annotations(args_type).items()}


def config_from_args(args: Mapping[str, Any], args_type: type, path: str = "") -> dict[str, Any]:
    """`args` as configuration values: camelCase keys at every typed level, unset fields
    left out; what a field holds as a mapping of its own (environment, secrets) is passed
    on untouched. Raises ConfigError, naming the argument, for a field `args_type` does not
    have and for an Output."""
    if not isinstance(args, Mapping):
        raise ConfigError(path.rstrip(".") or args_type.__name__, "must be an object")
    fields = _fields(args_type)
    out: dict[str, Any] = {}
    for name, value in args.items():
        if value is None:
            continue
        key = f"{path}{_key(name)}"
        if name not in fields:
            accepted = ", ".join(camel_case(f) for f in fields)
            raise ConfigError(key, f"is not an argument of {args_type.__name__}: {accepted}")
        if _holds_output(value):
            # These arguments decide which resources exist and are checked before any is
            # registered; a resource's output or a secret has no value yet to check.
            raise ConfigError(
                key,
                "must be a plain value, not an Output (another resource's output, or a "
                "value marked secret): it decides which resources are created and is "
                "validated before any is registered",
            )
        field = fields[name]
        item = _items_type(field)
        if is_typeddict(field):
            value = config_from_args(value, field, f"{key}.")
        elif item is not None and isinstance(value, Sequence) and not isinstance(value, str):
            value = [config_from_args(v, item, f"{key}[{i}].") for i, v in enumerate(value)]
        else:
            # Numbers cross the provider protocol as floats, at every depth.
            value = _integers(value, field)
            if isinstance(value, tuple):
                value = list(value)
        out[_key(name)] = value
    return out


def args_from_config(
    values: Mapping[str, Any], args_type: type, skip: Sequence[str] = ()
) -> dict[str, Any]:
    """The inverse of `config_from_args`: configuration values as `args_type`'s fields.

    `skip`: configuration keys the caller handles itself (the foundation's). Any other key
    without a field raises, so an argument type cannot silently drop configuration.
    """
    fields = {_key(name): (name, field) for name, field in _fields(args_type).items()}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in skip:
            continue
        if key not in fields:
            raise ConfigError(key, f"has no argument in {args_type.__name__}")
        name, field = fields[key]
        item = _items_type(field)
        if is_typeddict(field):
            value = args_from_config(value, field)
        elif item is not None and isinstance(value, list):
            value = [args_from_config(v, item) for v in value]
        out[name] = value
    return out


def _holds_output(value: Any) -> bool:
    if isinstance(value, pulumi.Output):
        return True
    if isinstance(value, Mapping):
        return any(_holds_output(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_output(v) for v in value)
    return False


# A component's name starts the names of its resources: `<name>-<7 hex>` for what the
# provider names (a load balancer, a target group: at most 32 letters, digits and hyphens,
# ELB API reference CreateLoadBalancer/CreateTargetGroup Name; an IAM role: 64), and
# `<name>-<service>` and the like; 15 characters is the longest topology name every derived
# limit is checked for.
COMPONENT_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,13}[a-z0-9])?")


def check_component_name(name: str) -> None:
    """Refuse, before any resource, a component name that AWS would refuse inside names."""
    if not COMPONENT_NAME_RE.fullmatch(name):
        raise invalid(
            "name",
            name,
            "a component name of 1 to 15 lowercase letters, digits and hyphens, starting "
            "and ending with a letter or digit (it starts AWS names such as the load "
            "balancer's, which allow 32 characters)",
        )


@contextmanager
def as_arguments(prefix: str, argument: str = "") -> Iterator[None]:
    """Within the block, a ConfigError on a key under `prefix` (`network.`) names the
    argument it came from instead (`argument` + the rest of the key)."""
    try:
        yield
    except ConfigError as error:
        raise renamed(error, prefix, argument) from None

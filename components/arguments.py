"""The typed arguments of the foundation components, read as configuration.

`Network` and `Cluster` take public args (TypedDicts the package's schema is inferred
from) whose fields mirror configuration keys: snake_case in Python, camelCase in the
schema and in the stack configuration. A component turns its args into configuration
values and parses them with the stack's own parser (settings/), so a bad argument fails
as a bad key does, before any resource, named by the argument the caller gave.
"""

import inspect
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NotRequired, Required, get_args, get_origin, is_typeddict

import pulumi
from pulumi.provider.experimental.util import camel_case

from settings import ConfigError
from settings.errors import renamed


def _field_type(annotation: Any) -> Any:
    """The type under Required/NotRequired."""
    if get_origin(annotation) in (Required, NotRequired):
        return get_args(annotation)[0]
    return annotation


def _holds_output(value: Any) -> bool:
    if isinstance(value, pulumi.Output):
        return True
    if isinstance(value, Mapping):
        return any(_holds_output(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_output(v) for v in value)
    return False


def config_values(args: Mapping[str, Any], args_type: type, path: str = "") -> dict[str, Any]:
    """`args` as configuration values (camelCase keys, unset fields left out).

    Raises ConfigError, naming the argument, for a field `args_type` does not have and
    for an Output: these arguments decide which resources exist, so they are plain.
    """
    if not isinstance(args, Mapping):
        raise ConfigError(path.rstrip(".") or args_type.__name__, "must be an object")
    fields = {name: _field_type(a) for name, a in inspect.get_annotations(args_type).items()}
    out: dict[str, Any] = {}
    for name, value in args.items():
        if value is None:
            continue
        key = f"{path}{camel_case(name)}"
        if name not in fields:
            accepted = ", ".join(camel_case(f) for f in fields)
            raise ConfigError(key, f"is not an argument of {args_type.__name__}: {accepted}")
        if _holds_output(value):
            raise ConfigError(
                key,
                "must be a plain value, not an Output (another resource's output, or a "
                "value marked secret): it decides which resources are created and is "
                "validated before any is registered",
            )
        field = fields[name]
        if is_typeddict(field):
            value = config_values(value, field, f"{key}.")
        elif field is int and isinstance(value, float) and value.is_integer():
            # Numbers cross the provider protocol as floats.
            value = int(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[camel_case(name)] = value
    return out


@contextmanager
def as_arguments(prefix: str, argument: str = "") -> Iterator[None]:
    """Within the block, a ConfigError on a key under `prefix` (`network.`) names the
    argument it came from instead (`argument` + the rest of the key)."""
    try:
        yield
    except ConfigError as error:
        raise renamed(error, prefix, argument) from None

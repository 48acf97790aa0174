"""The secrecy of values set with `--secret`, kept in every resource input derived from them.

The settings are parsed from plain values: every error must name its key and come before
any resource is registered, which an `Output` (what `Config.get_secret_object` returns)
cannot do. Plain values then flow into resource inputs by many roads (a container's
environment inside a task definition's JSON, an e-mail subscription's endpoint, a record's
name, a certificate body). Rather than re-wrap each road, where one forgotten road leaks a
value, the secrecy is re-applied where values enter resources: `keep_secret()` registers a
stack transform that the engine runs on every resource registered after it, and that wraps
in `Output.secret` each input property holding one of the secret values.

What counts as a secret value (`secret_values()`): every leaf of a top-level key the user set
with `--secret` (or `--path --secret`, which makes the whole top-level key secret: the engine
cannot tell which field was).

- Text of 4 characters or more is looked for inside every text of an input: it ends up inside
  JSON documents, scripts and URLs. A value parsing may normalise (a DNS name lower-cased and
  without its root dot, a comma-separated list) is recorded in that form too.
- Shorter text, integers and decimals are matched as a whole value only: "80" or 443 inside
  other text is everywhere (ports, sizes, ARNs), and a value that short is no credential.
- Booleans are not recorded: a secret `true` would mark every input holding a `true`, and the
  resources a boolean turns on or off show its value anyway.
- Field names (`environment`, an environment variable's name) are not values: they are the
  program's vocabulary and what ECS shows.

A false match only makes an input secret that need not be: safe. Resource names are not
touched: they are part of URNs, which cannot be secret (docs/configuration.md, "Keys set
with `--secret`", lists what stays visible).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import rpc

# Text shorter than this is matched as a whole value only (see the module docstring).
MIN_SEARCHED = 4

_NUMBER_TEXT = re.compile(r"\A-?[0-9]{1,18}(?:\.[0-9]+)?\Z")


@dataclass(frozen=True)
class SecretValues:
    """The values of the stack's secret configuration, as resource inputs may hold them."""

    # Looked for inside every text of an input.
    texts: frozenset[str] = frozenset()
    # Matched as a whole value: short text, and numbers (int or float, never bool).
    whole: frozenset[str | int | float] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.texts or self.whole)

    def __repr__(self) -> str:
        # Never the values: a repr ends up in tracebacks and logs.
        return f"SecretValues({len(self.texts) + len(self.whole)} values)"

    def found_in(self, value: Any) -> bool:
        """True when `value` (plain data: text, numbers, lists, mappings) holds a secret."""
        if isinstance(value, str):
            return value in self.whole or any(t in value for t in self.texts)
        if isinstance(value, bool):
            return False
        if isinstance(value, (int, float)):
            return value in self.whole
        if isinstance(value, Mapping):
            return any(self.found_in(k) or self.found_in(v) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return any(self.found_in(v) for v in value)
        return False


def _forms(text: str) -> set[str]:
    """`text` and what parsing may make of it where it reaches an input."""
    forms = {text, text.strip(), text.lower(), text.lower().strip().removesuffix(".")}
    if "," in text:
        forms.update(part.strip() for part in text.split(","))
    return {f for f in forms if f}


def secret_values(values: Mapping[str, Any], secret_keys: Iterable[str]) -> SecretValues:
    """Every leaf value under the top-level keys `secret_keys` of the raw configuration."""
    texts: set[str] = set()
    whole: set[str | int | float] = set()

    def record(value: Any) -> None:
        if isinstance(value, Mapping):
            for v in value.values():
                record(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                record(v)
        elif isinstance(value, bool):
            return
        elif isinstance(value, (int, float)):
            whole.update((value, str(value)))
        elif isinstance(value, str):
            for form in _forms(value):
                (texts if len(form) >= MIN_SEARCHED else whole).add(form)
                if _NUMBER_TEXT.match(form):
                    # Config set on the command line arrives as text and is parsed to a number.
                    whole.add(float(form) if "." in form else int(form))

    for key in secret_keys:
        if key in values:
            record(values[key])
    return SecretValues(frozenset(texts), frozenset(whole))


def _holds_output(value: Any) -> bool:
    if isinstance(value, pulumi.Output):
        return True
    if isinstance(value, Mapping):
        return any(_holds_output(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_output(v) for v in value)
    return False


def secret_inputs(props: Mapping[str, Any], secrets: SecretValues) -> dict[str, Any]:
    """`props` (a resource's inputs as a transform receives them) with each property that
    holds a secret value wrapped in `Output.secret`; other properties unchanged.

    A property the program already made secret arrives wrapped, and stays so. An `Output`
    (an output value passed to a component) is wrapped once its value is known.
    """
    out: dict[str, Any] = {}
    for name, value in props.items():
        if rpc.is_rpc_secret(value):
            out[name] = value  # already secret
        elif _holds_output(value):
            out[name] = pulumi.Output.from_input(value).apply(
                lambda plain: pulumi.Output.secret(plain) if secrets.found_in(plain) else plain
            )
        elif secrets.found_in(value):
            out[name] = pulumi.Output.secret(value)
        else:
            out[name] = value
    return out


# The secret values of the program running, for its stack outputs (`export`).
_KEPT: ContextVar[SecretValues | None] = ContextVar("ecs_tls_kept_secret", default=None)


def export(name: str, value: Any) -> None:
    """`pulumi.export`, made secret when the value holds a value of a secret key (the
    endpoint holds the domain): stack outputs are no resource's inputs, so the transform
    does not see them."""
    secrets = _KEPT.get()
    if secrets is not None and secrets:
        value = pulumi.Output.from_input(value).apply(
            lambda plain: pulumi.Output.secret(plain) if secrets.found_in(plain) else plain
        )
    pulumi.export(name, value)


def keep_secret(secrets: SecretValues) -> None:
    """Register, for every resource registered from now on, the transform that marks
    secret each input property holding one of `secrets`. Call it before any resource.

    A stack transform (`register_resource_transform`), not the older in-process
    transformation: the engine runs it on the inputs as they are sent, every `Output`
    resolved, so a value inside a JSON document built in an `apply` is found too.
    """
    _KEPT.set(secrets)
    if not secrets:
        return  # nothing to keep: no callback server, no transform

    def transform(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
        props = secret_inputs(args.props, secrets)
        if all(props[k] is args.props[k] for k in props):
            return None
        return pulumi.ResourceTransformResult(props=props, opts=args.opts)

    pulumi.runtime.register_resource_transform(transform)

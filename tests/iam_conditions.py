"""Just enough of IAM's policy evaluation to ask "would AWS allow this request?" in tests.

Covers what the program's documents use: Allow and Deny statements, `*`/`?` wildcards in
actions, resources and `StringLike`, the `ForAllValues:`/`ForAnyValue:` set prefixes, and the
String/Arn operators (IAM policy reference, "Condition operators" and "Multivalued context
keys"). An explicit Deny wins; no matching Allow means denied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any


def _wildcard(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def like(pattern: str, value: str) -> bool:
    return _wildcard(pattern).fullmatch(value) is not None


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _one(operator: str, patterns: list[str], value: str) -> bool:
    if operator in ("StringEquals", "ArnEquals"):
        return value in patterns
    if operator in ("StringLike", "ArnLike"):
        return any(like(p, value) for p in patterns)
    raise NotImplementedError(operator)


def _condition_holds(operator: str, patterns: list[str], values: list[str] | None) -> bool:
    prefix, _, base = operator.rpartition(":")
    if values is None:  # the key is absent from the request
        return prefix == "ForAllValues"
    if prefix == "ForAllValues":
        return all(_one(base, patterns, v) for v in values)
    if prefix == "ForAnyValue":
        return any(_one(base, patterns, v) for v in values)
    (single,) = values
    return _one(base, patterns, single)


def _matches(statement: Mapping, action: str, resource: str, context: Mapping) -> bool:
    if not any(like(a, action) for a in _as_list(statement["Action"])):
        return False
    if not any(like(r, resource) for r in _as_list(statement["Resource"])):
        return False
    for operator, keys in statement.get("Condition", {}).items():
        for key, patterns in keys.items():
            values = context.get(key)
            if values is not None:
                values = _as_list(values)
            if not _condition_holds(operator, _as_list(patterns), values):
                return False
    return True


def allowed(
    document: Mapping,
    action: str,
    resource: str,
    context: Mapping[str, str | Iterable[str]] | None = None,
) -> bool:
    """True when `document` allows `action` on `resource` with the request's `context`."""
    context = context or {}
    statements = [s for s in document["Statement"] if _matches(s, action, resource, context)]
    if any(s["Effect"] == "Deny" for s in statements):
        return False
    return any(s["Effect"] == "Allow" for s in statements)

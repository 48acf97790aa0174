"""The configuration a stack's program receives from the Pulumi CLI, computed offline.

Before it starts the program, `pulumi preview` / `pulumi up` merges the project's `config:`
block (Pulumi.yaml) into the stack's (Pulumi.<stack>.yaml) and validates the result. Unit
tests under mocks never go through that step, so a Pulumi.yaml that makes the CLI refuse
every stack still passes them. This module applies the CLI's rules so tests and tools can:

    from scripts.stack_config import StackConfigError, merged_config, stack_files

    for stack, path in stack_files(ROOT).items():
        config = merged_config(ROOT / "Pulumi.yaml", path)
        # {"aws:region": "eu-west-1", "ecs-tls:topology": "alb-envoy", ...}

`merged_config` returns what the program reads ("namespace:key" -> text), or raises
`StackConfigError` with the message the CLI prints after "validating stack config: ".
`encrypted` lists a stack file's `secure:` values by their `--path` key, and `environments`
the ESC environments its `environment:` block imports, for a caller to report.

Every rule names its source in github.com/pulumi/pulumi. Not modelled: evaluating ESC
environments (the caller says they were not), `pulumi up --config`, and declared keys that
are property paths (`a.b`), which this module refuses rather than guesses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "SECRET_PLACEHOLDER",
    "TYPES",
    "StackConfigError",
    "cli_text",
    "encrypted",
    "environments",
    "merged_config",
    "stack_files",
    "stack_name",
]

# The CLI decrypts secure values before the program runs; offline there is no key, so each
# ciphertext becomes this text unless the caller passes `decrypt`.
SECRET_PLACEHOLDER = "[secret]"

# Types the project file accepts for `type` and `items.type`
# (sdk/go/common/workspace/project.json, $defs.simpleConfigType): no object type.
TYPES = ("string", "integer", "boolean", "array")

_INT64 = (-(2**63), 2**63 - 1)


class StackConfigError(Exception):
    """The CLI would stop before running the program, with this message."""


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans, as in the CLI's YAML library (gopkg.in/yaml.v3, imported by
    sdk/go/common/workspace/project.go): yes/no/on/off are strings there, whereas PyYAML
    follows YAML 1.1 and would read them as booleans."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF")

# Numbers and timestamps as yaml.v3 resolves a plain scalar (resolve.go, resolve): PyYAML's
# YAML 1.1 rules differ on 0129 (a float there, text here), 1e3, 0o17, 1:30 (base 60, gone
# from v3) and dates. These matter inside objects and lists only: a top-level value reaches
# the program as the text written (see _load_stack).
_GO_NUMBER = "tag:yaml.org,2002:go-number"
_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx) for tag, rx in resolvers if not tag.endswith((":int", ":float", ":timestamp"))
    ]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_GO_NUMBER, re.compile(r"^[-+.0-9]"), list("-+.0123456789"))
_GO_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_SPECIAL = {
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), float("inf")),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), float("-inf")),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), float("nan")),
}


def _go_int(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 0, 64), then ParseUint: a 0x, 0o, 0b or bare 0 prefix
    picks the base, so 0123 is octal 83 and 0129 no integer at all."""
    sign, digits = (text[0], text[1:]) if text[:1] in ("+", "-") else ("", text)
    prefixes = {"0x": 16, "0o": 8, "0b": 2}
    base = prefixes.get(digits[:2].lower())
    body = digits[2:] if base else digits
    base = base or (8 if len(digits) > 1 and digits[0] == "0" else 10)
    allowed = "0123456789abcdef"[:base]
    if not body or any(c.lower() not in allowed for c in body):
        return None
    value = int(body, base) * (-1 if sign == "-" else 1)
    if -(2**63) <= value < 2**63 or (not sign and value < 2**64):
        return value
    return None


_STAMP = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:([Tt ])(\d{1,2}):(\d{1,2}):(\d{1,2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?)?$"
)


def _go_timestamp(text: str) -> str | None:
    """A yaml.v3 timestamp (resolve.go, allowedTimestampFormats: a date, a date and time
    with a zone after T, or one without a zone after a space) as Go's encoding/json writes
    the time.Time it becomes: RFC 3339, fraction without trailing zeros, Z for UTC."""
    m = _STAMP.match(text)
    if not m:
        return None
    year, month, day, sep, hour, minute, second, fraction, zone = m.groups()
    if sep is not None and (sep == " ") == (zone is not None):
        return None
    try:
        numbers = [int(x or 0) for x in (year, month, day, hour, minute, second)]
        when = datetime(*numbers, tzinfo=UTC)
    except ValueError:
        return None
    suffix = "Z" if zone in (None, "Z", "+00:00", "-00:00") else zone
    digits = (fraction or "").rstrip("0")
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (digits if digits != "." else "") + suffix


def _go_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = node.value
    if text in _GO_SPECIAL:
        return _GO_SPECIAL[text]
    stamp = _go_timestamp(text)
    if stamp is not None:
        return stamp
    plain = text.replace("_", "")
    number = _go_int(plain)
    if number is not None:
        return number
    if _GO_FLOAT.match(plain):
        return float(plain)
    return text


_Loader.add_constructor(_GO_NUMBER, _go_scalar)


@dataclass(frozen=True)
class _Value:
    """A stack value as sdk/go/common/resource/config/value.go keeps it: text (JSON when
    `obj`), and whether it is, or contains, ciphertext."""

    text: str
    secure: bool = False
    obj: bool = False


def stack_name(stack_path: Path) -> str:
    """`Pulumi.dev.yaml` -> `dev`."""
    return Path(stack_path).name[len("Pulumi.") : -len(".yaml")]


def stack_files(root: Path) -> dict[str, Path]:
    """Every stack file of the project in `root`, by stack name.

    The CLI looks for Pulumi.<stack>.yaml next to Pulumi.yaml, or in `stackConfigDir`
    when the project sets it (sdk/go/common/workspace/project.go, Project.StackConfigDir).
    """
    root = Path(root)
    project = _load(root / "Pulumi.yaml") or {}
    folder = root / (project.get("stackConfigDir") or ".")
    return {stack_name(p): p for p in sorted(folder.glob("Pulumi.*.yaml"))}


def merged_config(
    project_path: Path,
    stack_path: Path,
    decrypt: Callable[[str], str] | None = None,
) -> dict[str, str]:
    """The configuration the CLI hands the program of `stack_path`'s stack.

    Keys are "namespace:key"; values are the text the program reads: strings as written,
    numbers and booleans as their text, objects and arrays as JSON. `decrypt` turns a
    `secure:` ciphertext into plaintext (default: SECRET_PLACEHOLDER).
    """
    project = _load(project_path) or {}
    name = project.get("name")
    if not name:
        raise StackConfigError("project is missing a 'name' attribute")  # Project.Validate
    declared = _declarations(name, project.get("config"))
    stack = stack_name(stack_path)
    values = _stack_values((_load_stack(stack_path) or {}).get("config"))
    reveal = decrypt or (lambda _ciphertext: SECRET_PLACEHOLDER)

    # sdk/go/common/workspace/config.go, mergeConfig: project keys in sorted order; a key
    # of the project's namespace that the stack does not set and that has neither `value`
    # nor `default` is missing; otherwise `default` (or `value`) fills the gap. Nothing
    # iterates the stack's own keys, so keys Pulumi.yaml does not declare pass as they are.
    # (The first project-config releases refused them, "Stack '...' uses configuration
    # value ... which is not defined by the project configuration"; pulumi/pulumi#11127,
    # #11128, relaxed by #11192.)
    missing = []
    for short in sorted(declared):
        decl = declared[short]
        key = _namespaced(name, short)
        if key in values:
            continue
        fill = decl["default"] if decl.get("default") is not None else decl.get("value")
        if fill is None:
            if key.split(":", 1)[0] == name:
                missing.append(short)
            continue
        values[key] = _project_value(fill)
    if missing:
        raise StackConfigError(_missing_message(stack, missing))

    # config.go, validateStackConfigValues / validateStackConfigValue: only keys with a
    # `type` are checked, the secret rule first, in sorted order, and the first failure
    # stops the CLI. A secure value is checked after decryption.
    for short in sorted(declared):
        decl = declared[short]
        if decl.get("type") is None:
            continue
        value = values.get(_namespaced(name, short), _Value(""))
        if decl.get("secret") and not value.secure:
            raise StackConfigError(
                f"Stack '{stack}' with configuration key '{short}' must be encrypted as it's secret"
            )
        text = _plaintext(value, reveal)
        content = json.loads(text) if value.obj else text
        if not _valid(decl["type"], decl.get("items"), content):
            raise StackConfigError(
                f"Stack '{stack}' with configuration key '{short}' must be of type "
                f"'{_type_name(decl['type'], decl.get('items'))}'"
            )

    # sdk/go/common/resource/config/map.go, Map.Decrypt, then
    # sdk/go/common/resource/plugin/langruntime_plugin.go, langhost.Run: the program gets
    # a map of key.String() ("namespace:name") to the decrypted text.
    return {key: _plaintext(values[key], reveal) for key in sorted(values)}


def encrypted(stack_path: Path) -> dict[str, str]:
    """Each `secure:` value of the stack file: its key as `pulumi config set --path` names
    it ("ns:certificate.privateKeyPem", "ns:list[0]") -> its ciphertext."""
    found: dict[str, str] = {}

    def walk(path: str, obj: Any) -> None:
        if _secure_leaf(obj) is not None:
            found[path] = obj["secure"]
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{path}.{k}", v)
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                walk(f"{path}[{i}]", v)

    for key, raw in ((_load_stack(stack_path) or {}).get("config") or {}).items():
        walk(_stack_key(key), raw)
    return found


def environments(stack_path: Path) -> list[str]:
    """The ESC environments the stack file's `environment:` block imports (a list of
    names, as `pulumi config env add` writes it), as written; [] without one."""
    block = (_load_stack(stack_path) or {}).get("environment")
    if block is None:
        return []
    items = block if isinstance(block, list) else [block]
    return [item if isinstance(item, str) else _go_json(item) for item in items]


def cli_text(value: Any) -> str:
    """The text the program receives for a `default` or `value` in Pulumi.yaml."""
    return _project_value(value).text


def _missing_message(stack: str, keys: list[str]) -> str:
    # config.go, missingStackConfigurationKeysError and formatMissingKeys: sorted,
    # quoted, "and" before the last one, no comma before "and".
    keys = sorted(keys)
    quoted = [f"'{k}'" for k in keys]
    listed = quoted[0] if len(keys) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"
    noun = "value" if len(keys) == 1 else "values"
    return f"Stack '{stack}' is missing configuration {noun} {listed}"


def _declarations(project: str, config: Any) -> dict[str, dict[str, Any]]:
    """Pulumi.yaml's `config:` block as declarations, checked as the CLI checks it."""
    # project.go, RewriteConfigPathIntoStackConfigDir: a string here is the old spelling of
    # stackConfigDir, not a schema.
    if not isinstance(config, dict):
        return {}
    declared = {}
    for key, decl in config.items():
        if isinstance(decl, dict):
            declared[key] = decl
        # project.go, RewriteShorthandConfigValues: `key: 3` is a default in the project's
        # namespace and a value in any other.
        elif _namespaced_by(project, key):
            declared[key] = {"default": decl}
        else:
            declared[key] = {"value": decl}
        _check_declaration(project, key, declared[key])
    return declared


def _check_declaration(project: str, key: str, decl: dict[str, Any]) -> None:
    # project.go, Project.Validate, whose messages these are; the type list is project.json's.
    if "." in key.split(":")[-1]:
        raise StackConfigError(f"'{key}': property-path keys are not modelled here")
    if decl.get("default") is not None and decl.get("value") is not None:
        raise StackConfigError(
            f"project config '{key}' cannot have both a 'default' and 'value' attribute"
        )
    type_, items = decl.get("type"), decl.get("items")
    if type_ is not None and type_ not in TYPES:
        raise StackConfigError(f"project config '{key}': type must be one of {', '.join(TYPES)}")
    if not _namespaced_by(project, key):
        if type_ is not None:
            raise StackConfigError(
                f"Configuration key '{key}' is not namespaced by the project and should not "
                "define a type"
            )
        if decl.get("default") is not None:
            raise StackConfigError(
                f"Configuration key '{key}' is not namespaced by the project and should not "
                "define a default value. Did you mean to use the 'value' attribute instead "
                "of 'default'?"
            )
        if decl.get("value") is None:
            raise StackConfigError(
                f"Configuration key '{key}' is namespaced and must provide an attribute 'value'"
            )
        return
    if type_ == "array" and items is None:
        raise StackConfigError(
            f"The configuration key '{key}' declares an array but does not specify the "
            "underlying type via the 'items' attribute"
        )
    default = decl.get("default")
    if type_ is not None and default is not None and not _valid(type_, items, default):
        raise StackConfigError(
            f"The default value specified for configuration key '{key}' is not of the "
            f"expected type '{_type_name(type_, items)}'"
        )


def _namespaced_by(project: str, key: str) -> bool:
    # project.go, configKeyIsNamespacedByProject.
    return ":" not in key or key.startswith(f"{project}:")


def _namespaced(project: str, key: str) -> str:
    # config.go, parseConfigKey: a short key in Pulumi.yaml belongs to the project.
    return key if ":" in key else f"{project}:{key}"


def _stack_key(key: Any) -> str:
    # sdk/go/common/resource/config/key.go, ParseKey: stack files must namespace every key;
    # "ns:config:name" is an old spelling of "ns:name".
    text = str(key)
    parts = text.split(":")
    if len(parts) == 2:
        return text
    if len(parts) == 3 and parts[1] == "config":
        return f"{parts[0]}:{parts[2]}"
    raise StackConfigError(
        f"could not parse {text} as a configuration key "
        "(configuration keys should be of the form `<namespace>:<name>`)"
    )


def _stack_values(config: Any) -> dict[str, _Value]:
    # value.go, Value.unmarshalValue: a scalar is kept as the text written in the file; a
    # map {secure: ciphertext} is a secret; any other map or list is kept as JSON, secure
    # when it holds a {secure: ...} anywhere.
    values = {}
    for key, raw in (config or {}).items():
        if not isinstance(raw, dict | list):
            values[_stack_key(key)] = _Value(raw)
        elif _secure_leaf(raw) is not None:
            values[_stack_key(key)] = _Value(_secure_leaf(raw), secure=True)
        else:
            values[_stack_key(key)] = _Value(_go_json(raw), secure=_has_secure(raw), obj=True)
    return values


def _project_value(value: Any) -> _Value:
    # config.go, createConfigValue: a string, integer or boolean becomes its text (Go's %v),
    # anything else JSON.
    if isinstance(value, bool):
        return _Value("true" if value else "false")
    if isinstance(value, str | int):
        return _Value(str(value))
    return _Value(_go_json(value), obj=True)


def _plaintext(value: _Value, reveal: Callable[[str], str]) -> str:
    # value.go, Value.Value: ciphertext is decrypted, inside objects too.
    if not value.secure:
        return value.text
    if not value.obj:
        return reveal(value.text)
    return _go_json(_reveal_all(json.loads(value.text), reveal))


def _secure_leaf(obj: Any) -> str | None:
    if isinstance(obj, dict) and len(obj) == 1 and isinstance(obj.get("secure"), str):
        return obj["secure"]
    return None


def _has_secure(obj: Any) -> bool:
    if _secure_leaf(obj) is not None:
        return True
    children = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else ()
    return any(_has_secure(child) for child in children)


def _reveal_all(obj: Any, reveal: Callable[[str], str]) -> Any:
    if _secure_leaf(obj) is not None:
        return reveal(obj["secure"])
    if isinstance(obj, dict):
        return {k: _reveal_all(v, reveal) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_reveal_all(v, reveal) for v in obj]
    return obj


def _go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it: sorted keys, no spaces, whole floats without
    a fraction, raw UTF-8, and <, >, &, U+2028, U+2029 escaped."""

    def go(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
            return int(v)
        if isinstance(v, dict):
            return {str(k): go(x) for k, x in v.items()}
        if isinstance(v, list):
            return [go(x) for x in v]
        return v

    text = json.dumps(go(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def _valid(type_: str, items: dict[str, Any] | None, value: Any) -> bool:
    """project.go, ValidateConfigValue: the value as decoded from the stack's text."""
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return True
        # Go's strconv.Atoi: optional sign, decimal digits, within int64.
        return (
            isinstance(value, str)
            and re.fullmatch(r"[+-]?[0-9]+", value) is not None
            and _INT64[0] <= int(value) <= _INT64[1]
        )
    if type_ == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if type_ == "object":
        return isinstance(value, dict)
    if not isinstance(value, list) or items is None:
        return False
    return all(_valid(items.get("type"), items.get("items"), item) for item in value)


def _type_name(type_: str, items: dict[str, Any] | None) -> str:
    # project.go, InferFullTypeName.
    if items is not None:
        return f"array<{_type_name(items.get('type'), items.get('items'))}>"
    return type_


def _load(path: Path) -> Any:
    return yaml.load(Path(path).read_text(), Loader=_Loader)


def _load_stack(path: Path) -> Any:
    """The stack file, with every top-level config scalar as the text written in the file
    (value.go reads it into a string before anything else: `1.50` stays `1.50`)."""
    loader = _Loader(Path(path).read_text())
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        return data
    for key_node, value_node in _mapping(root, "config"):
        if isinstance(value_node, yaml.ScalarNode):
            text = "" if value_node.tag == "tag:yaml.org,2002:null" else value_node.value
            data["config"][key_node.value] = text
    return data


def _mapping(node: yaml.Node, key: str) -> list[tuple[yaml.Node, yaml.Node]]:
    for key_node, value_node in node.value:
        if key_node.value == key and isinstance(value_node, yaml.MappingNode):
            return value_node.value
    return []

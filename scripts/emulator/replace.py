"""Which resources a change of configuration replaces, decided by the real AWS provider.

A property that forces a new resource is the provider's knowledge (`ForceNew`, applied in
its PlanResourceChange), so the provider itself is asked, offline:

1. the BEFORE graph is translated (`translate`) and its references between resources
   resolved to the mocks' computed values, then planned on an empty state: the provider
   fills in its defaults, which is what AWS would hold after creating it;
2. those planned values, with the mocks' IDs and ARNs where the provider left a value to
   be computed, become a synthetic state (format version 4);
3. the AFTER graph is translated and planned against that state with `-refresh=false`, so
   no API call is made. Terraform's `resource_changes` say which resources it replaces
   (`["delete","create"]` or `["create","delete"]`) and which attributes force it
   (`replace_paths`); a forcing attribute that refers to a replaced resource is a cascade.

Step 1 is kept under the temp dir, keyed by BEFORE's configuration with its generated PEM
masked, so one stack compared with several changes is planned once. A forcing attribute
that neither configuration sets is not a cause: it is a computed value the synthetic state
could only guess, which AWS would keep.

pulumi-tls is not in the provider mirror, so its own view is not asked: a key or
certificate whose inputs change is shown as replaced (the cautious reading; its key
material and certificates are made anew), what is signed with it follows, and the AWS
resources that carry its PEM get the new text, so the AWS provider decides about them.
Without `terraform` nothing is checked and the caller says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.emulator.translate import (
    ARGUMENT_RENAMES,
    TLS_TYPES,
    ProviderSchema,
    TlsMaterial,
    TranslateError,
    Translation,
    _computed_outputs,
    singular,
    snake,
    translate,
)
from scripts.mock_runtime import Graph, Resource, unwrap

PROVIDER_ADDRESS = 'provider["registry.terraform.io/hashicorp/aws"]'
# Nothing listens here: with -refresh=false the provider is configured and plans, it does
# not call AWS. A call would fail at once rather than reach anything.
UNUSED_ENDPOINT = "http://127.0.0.1:9"
REGION = "eu-west-1"
REFERENCE = re.compile(r"\$\{(aws_[a-z0-9_]+\.[A-Za-z0-9_-]+)\.([a-z0-9_]+)\}")
REPLACE_ACTIONS = (["delete", "create"], ["create", "delete"])


class ReplaceError(Exception):
    """Terraform failed to plan: its errors."""


@dataclass
class Replacement:
    resource: Resource  # as the AFTER graph declares it
    forced_by: list[str] = field(default_factory=list)  # Pulumi input names
    cascade: list[tuple[str, str]] = field(default_factory=list)  # (resource name, input)

    def reason(self) -> str:
        parts = []
        if self.forced_by:
            parts.append(f"forced by: {', '.join(self.forced_by)}")
        if self.cascade:
            parts.append("cascade: " + ", ".join(f"{n} {i}" for n, i in self.cascade))
        return f"replace ({'; '.join(parts) or 'forced by the provider'})"


@dataclass
class Check:
    replaced: dict[str, Replacement]  # URN -> why
    note: str | None = None  # why replacements were not checked, when they were not
    # URN -> inputs of what is updated in place only because it refers to a replaced one
    follows: dict[str, list[str]] = field(default_factory=dict)


# --- pure parts -------------------------------------------------------------------------


def mock_attributes(r: Resource, tf_type: str, schema: ProviderSchema) -> dict[str, str]:
    """{provider attribute: the mocks' value} of what the mocks computed for `r`."""
    out = {attribute: mock for mock, attribute in _computed_outputs(r, tf_type, schema).items()}
    if isinstance(r.id, str) and r.id:
        out["id"] = stand_in_id(r)
    return out


# IDs the provider checks the form of where another resource takes them, while the mocks'
# are the resource's name: the provider refuses an Auto Scaling group's
# `launch_template.id` that does not begin with "lt-". Found by planning every shipped
# stack (tests/integration/test_replacements.py); the emulator's moto makes real ones.
ID_PREFIXES = {
    "aws:ec2/launchTemplate:LaunchTemplate": "lt-",
}


def stand_in_id(r: Resource) -> str:
    """The mocks' ID of `r`, in the form AWS gives that type where the provider checks it."""
    prefix = ID_PREFIXES.get(r.type)
    if prefix is None:
        return r.id
    return prefix + hashlib.sha1(r.urn.encode()).hexdigest()[:17]


def resolve_references(value: Any, values: dict[tuple[str, str], str]) -> Any:
    """`value` with each `${address.attribute}` replaced by that attribute's stand-in."""
    if isinstance(value, str):
        return REFERENCE.sub(lambda m: values.get((m[1], m[2]), m[0]), value)
    if isinstance(value, dict):
        return {k: resolve_references(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v, values) for v in value]
    return value


def placeholder(type_: Any) -> Any:
    """A value of cty type `type_` standing in for a collection AWS computes and the
    program does not use: empty, not null, so the provider keeps it as the prior value of
    an optional and computed argument the configuration leaves unset (null would plan it
    unknown again). Scalars stay null: a made-up one can trip the provider's own checks
    (an SNS topic's `fifo_throughput_scope` is refused on a standard topic)."""
    if isinstance(type_, list) and type_[0] in ("list", "set"):
        return []
    if isinstance(type_, list) and type_[0] == "map":
        return {}
    return None


def _filled(value: Any, unknown: Any) -> Any:
    """A planned value with unknown nested parts null."""
    if unknown is True:
        return None
    if isinstance(value, dict) and isinstance(unknown, dict):
        return {k: _filled(v, unknown.get(k, False)) for k, v in value.items()}
    if isinstance(value, list) and isinstance(unknown, list):
        return [_filled(v, unknown[i] if i < len(unknown) else False) for i, v in enumerate(value)]
    return value


def synthetic_state(
    plan: dict, stand_ins: dict[str, dict[str, str]], schema: ProviderSchema, version: str
) -> dict:
    """A state (format version 4) holding what `plan` (made on an empty state) creates.

    Each resource's attributes are the provider's planned values, defaults included; what
    only AWS computes is the mocks' value where the program refers to it (`stand_ins`:
    address -> {attribute: value}, IDs and ARNs), else a `placeholder`."""
    schema_versions = {
        r["address"]: r.get("schema_version", 0)
        for r in plan.get("planned_values", {}).get("root_module", {}).get("resources", [])
    }
    resources = []
    for change in plan.get("resource_changes", []):
        if change.get("mode") != "managed" or change["change"]["actions"] != ["create"]:
            continue
        address, tf_type = change["address"], change["type"]
        unknown = change["change"].get("after_unknown") or {}
        attributes = _filled(change["change"]["after"], unknown)
        types = schema.block(tf_type)["attributes"]
        for key, marker in unknown.items():
            if marker is not True:
                continue
            if key in stand_ins.get(address, {}):
                attributes[key] = stand_ins[address][key]
            elif key in types:
                attributes[key] = placeholder(types[key].get("type"))
        resources.append(
            {
                "mode": "managed",
                "type": tf_type,
                "name": change["name"],
                "provider": PROVIDER_ADDRESS,
                "instances": [
                    {
                        "schema_version": schema_versions.get(address, 0),
                        "attributes": attributes,
                        "sensitive_attributes": [],
                    }
                ],
            }
        )
    return {
        "version": 4,
        "terraform_version": version,
        "serial": 1,
        "lineage": str(uuid.UUID(int=0)),
        "outputs": {},
        "resources": resources,
    }


def input_name(r: Resource, tf_attribute: str) -> str:
    """The Pulumi input name of provider argument `tf_attribute` of `r`."""
    for (token, key), argument in ARGUMENT_RENAMES.items():
        if token == r.type and argument == tf_attribute:
            return key
    for key in unwrap(r.inputs):
        if tf_attribute in (snake(key), *singular(snake(key))):
            return key
    head, *rest = tf_attribute.split("_")
    return head + "".join(part.title() for part in rest)


def _references(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, str):
        found.update(m[1] for m in REFERENCE.finditer(value))
    elif isinstance(value, dict):
        for v in value.values():
            found |= _references(v)
    elif isinstance(value, list):
        for v in value:
            found |= _references(v)
    return found


def _set_in(body: dict | None, path: list) -> bool:
    """Whether a configuration body sets the value at a replace path."""
    value: Any = body or {}
    for step in path:
        if isinstance(value, dict) and isinstance(step, str):
            value = value.get(step)
        elif isinstance(value, list) and isinstance(step, int) and step < len(value):
            value = value[step]
        else:
            return False
        if value is None:
            return False
    return True


def read_changes(plan: dict, before: Translation, after: Translation) -> dict[str, Replacement]:
    """The replacements of a plan of `after`'s configuration on `before`'s state, by URN.

    A path that neither configuration sets is the provider's default against the state's
    null (`synthetic_state`), which AWS would hold unchanged: not a cause, and so not a
    cause of a cascade either."""
    changes = {
        c["address"]: c
        for c in plan.get("resource_changes", [])
        if c.get("mode") == "managed"
        and c["change"]["actions"] in REPLACE_ACTIONS
        and c["address"] in after.addresses
    }
    forced: dict[str, list[str]] = {}
    upstream: dict[str, list[tuple[str, str]]] = {}  # address -> (address it uses, input)
    for address, change in sorted(changes.items()):
        r = after.addresses[address]
        tf_type, tf_name = address.split(".", 1)
        body = after.config["resource"].get(tf_type, {}).get(tf_name, {})
        old_body = before.config["resource"].get(tf_type, {}).get(tf_name)
        forced[address], upstream[address] = [], []
        for path in change["change"].get("replace_paths") or []:
            if not (_set_in(body, path) or _set_in(old_body, path)):
                continue
            attribute = str(path[0])
            name = input_name(r, attribute)
            used = sorted(a for a in _references(body.get(attribute)) if a in changes)
            if used:
                upstream[address] += [(a, name) for a in used if (a, name) not in upstream[address]]
            elif name not in forced[address]:
                forced[address].append(name)
    # A cascade holds only where what it uses is itself replaced, for a cause or a cascade.
    replaced = {a for a, names in forced.items() if names}
    grown = True
    while grown:
        more = {a for a, used in upstream.items() if any(u in replaced for u, _ in used)}
        grown = not more <= replaced
        replaced |= more
    out: dict[str, Replacement] = {}
    for address in sorted(replaced):
        r = after.addresses[address]
        cascade = [
            (after.addresses[u].name, name) for u, name in upstream[address] if u in replaced
        ]
        out[r.urn] = Replacement(r, forced_by=forced[address], cascade=cascade)
    return out


def followers(plan: dict, after: Translation, replaced: set[str]) -> dict[str, list[str]]:
    """{URN: inputs} of resources updated in place because they refer to a replaced one
    (the new ID or ARN): the program's inputs alone do not show that change."""
    by_urn = {r.urn: a for a, r in after.addresses.items()}
    addresses = {by_urn[u] for u in replaced if u in by_urn}
    out: dict[str, list[str]] = {}
    for change in plan.get("resource_changes", []):
        address = change["address"]
        if change["change"]["actions"] != ["update"] or address not in after.addresses:
            continue
        r = after.addresses[address]
        tf_type, tf_name = address.split(".", 1)
        body = after.config["resource"].get(tf_type, {}).get(tf_name, {})
        inputs = [
            f"{input_name(r, attribute)} (new "
            + ", ".join(after.addresses[a].name for a in sorted(used))
            + ")"
            for attribute, value in sorted(body.items())
            if attribute not in ("depends_on", "lifecycle")
            and (used := _references(value) & addresses)
        ]
        if inputs:
            out[r.urn] = inputs
    return out


def tls_replacements(before: Graph, after: Graph) -> dict[str, Replacement]:
    """pulumi-tls resources replaced: inputs changed, or signed by one replaced."""
    old = {r.urn: r for r in before if r.type in TLS_TYPES}
    out: dict[str, Replacement] = {}
    for r in after:  # registration order: a key before what it signs
        if r.urn not in old:
            continue
        a, b = unwrap(old[r.urn].inputs), unwrap(r.inputs)
        replacement = Replacement(
            r, forced_by=[k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
        )
        for key, urns in sorted(r.property_dependencies.items()):
            replacement.cascade += [(out[u].resource.name, key) for u in urns if u in out]
        if replacement.cascade:
            # A changed input that only carries an upstream PEM is the cascade, not a cause.
            causes = {i for _, i in replacement.cascade}
            replacement.forced_by = [k for k in replacement.forced_by if k not in causes]
        if replacement.forced_by or replacement.cascade:
            out[r.urn] = replacement
    return out


# --- terraform ----------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
        "TF_CLI_CONFIG_FILE": os.devnull,
    }


def _terraform(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["terraform", *args, "-no-color"],
        cwd=workdir,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ReplaceError(f"terraform {args[0]} failed: {diagnostics(done.stderr + done.stdout)}")
    return done


PEM = re.compile(r"-----BEGIN [A-Z ]+-----.*?(-----END [A-Z ]+-----|$)", re.S)


def diagnostics(output: str) -> str:
    """Terraform's error summaries with the resource each names, on one line. The source
    excerpts under them quote the configuration, which carries generated keys and the
    stack's secrets: left out, and any PEM block in a summary is cut."""
    lines = [line.strip(" │╷╵") for line in output.splitlines()]
    errors = [
        f"{line} ({lines[i + 2]})" if i + 2 < len(lines) and lines[i + 2] else line
        for i, line in enumerate(lines)
        if line.startswith("Error:")
    ]
    text = "; ".join(e[:300] for e in errors[:5]) or "no error message"
    return PEM.sub("[PEM]", text)


_INIT: dict[str, Path] = {}


def initialized() -> tuple[Path, str | None]:
    """A directory where `terraform init` ran (once per process and provider version,
    kept under the temp dir for the next process), and the provider version."""
    from scripts.emulator.run import PROVIDER, plugin_dir, provider_version

    mirror = plugin_dir()
    version = provider_version(mirror)
    key = version or "registry"
    if key in _INIT:
        return _INIT[key], version
    cache = Path(tempfile.gettempdir()) / f"ecs-tls-replace-init-{key}"
    if not (cache / ".terraform.lock.hcl").is_file():
        # Side by side runs each init their own directory and rename it into place.
        partial = Path(tempfile.mkdtemp(prefix=f"{cache.name}.", dir=cache.parent))
        provider: dict[str, Any] = {"source": PROVIDER}
        if version:
            provider["version"] = version
        (partial / "versions.tf.json").write_text(
            json.dumps({"terraform": {"required_providers": {"aws": provider}}})
        )
        _terraform(partial, "init", "-input=false", *((f"-plugin-dir={mirror}",) if mirror else ()))
        try:
            partial.rename(cache)
        except OSError:  # another run put one there first, or a broken one is in the way
            if (cache / ".terraform.lock.hcl").is_file():
                shutil.rmtree(partial, ignore_errors=True)
            else:
                cache = partial
    _INIT[key] = cache
    return cache, version


def provider_schema(init_dir: Path, version: str | None) -> ProviderSchema:
    from scripts.emulator.run import CACHE

    cached = (CACHE if version else init_dir) / f"schema-{version}.json"
    if not cached.is_file():
        text = _terraform(init_dir, "providers", "schema", "-json").stdout
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(text)
        partial.replace(cached)
    return ProviderSchema.load(cached)


def _workdir(init_dir: Path) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="ecs-tls-replace-"))
    (workdir / ".terraform").symlink_to(init_dir / ".terraform")
    shutil.copy(init_dir / ".terraform.lock.hcl", workdir)
    shutil.copy(init_dir / "versions.tf.json", workdir)
    return workdir


def _plan(workdir: Path, translation: Translation, config: dict) -> dict:
    provider = config["provider"]["aws"]
    # Configuring the provider asks STS for the account unless told not to.
    provider["skip_requesting_account_id"] = True
    (workdir / "main.tf.json").write_text(json.dumps(config))
    for name, data in translation.archives.items():
        (workdir / name).write_bytes(data)
    _terraform(workdir, "plan", "-refresh=false", "-input=false", "-lock=false", "-out=plan.bin")
    return json.loads(_terraform(workdir, "show", "-json", "plan.bin").stdout)


def _stand_ins(translation: Translation, schema: ProviderSchema) -> dict[str, dict[str, str]]:
    return {
        address: mock_attributes(r, address.split(".", 1)[0], schema)
        for address, r in translation.addresses.items()
    }


def _masked(config: dict, tls: TlsMaterial) -> str:
    """The configuration's text with generated PEM (random per run) replaced by its
    resource's URN: the same text for the same program graph in every run."""
    text = json.dumps(config, sort_keys=True)
    for urn, made in sorted(tls.by_urn.items()):
        for key, pem in sorted(made.items()):
            for form in (json.dumps(pem)[1:-1], json.dumps(json.dumps(pem)[1:-1])[1:-1]):
                text = text.replace(form, f"<{urn} {key}>")
    return text


def _cache_path(before: Graph, schema: ProviderSchema, tls: TlsMaterial) -> tuple[Path, Any]:
    """Where the plan of BEFORE on an empty state is kept, and BEFORE's translation. The
    same stack is often compared with several changes: one plan of it serves them all."""
    old = translate(before, schema, UNUSED_ENDPOINT, REGION, tls)
    key = hashlib.sha256(_masked(old.config, tls).encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"ecs-tls-replace-before-{key}.json", old


def _before(workdir: Path, before: Graph, schema: ProviderSchema, tls: TlsMaterial):
    """(BEFORE's translation, its plan on an empty state), the plan from the cache when
    there, with the keys and certificates that plan was made with."""
    cached, old = _cache_path(before, schema, tls)
    if cached.is_file():
        data = json.loads(cached.read_text())
        tls.by_urn.clear()
        tls.by_urn.update(data["tls"])
        old = translate(before, schema, UNUSED_ENDPOINT, REGION, tls)
        return old, data["plan"]
    stand_ins = _stand_ins(old, schema)
    values = {(a, k): v for a, attrs in stand_ins.items() for k, v in attrs.items()}
    plan = _plan(workdir, old, resolve_references(old.config, values))
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    # The generated private keys are test material of no deployment: the cache may hold them.
    partial.write_text(json.dumps({"plan": plan, "tls": tls.by_urn}))
    partial.replace(cached)
    return old, plan


def replacements(before: Graph, after: Graph) -> Check:
    """What going from `before` to `after` (one stack's URNs) replaces."""
    from scripts.emulator.run import INSTALL_HINT

    if shutil.which("terraform") is None:
        return Check({}, note=f"replacements not checked (terraform not found: {INSTALL_HINT})")
    init_dir, version = initialized()
    schema = provider_schema(init_dir, version)
    tls = TlsMaterial()
    workdir = _workdir(init_dir)
    try:
        try:
            old, before_plan = _before(workdir, before, schema, tls)
            tls_replaced = tls_replacements(before, after)
            for urn in tls_replaced:  # generated anew, so what carries its PEM sees new text
                tls.by_urn.pop(urn, None)
            new = translate(after, schema, UNUSED_ENDPOINT, REGION, tls)
        except TranslateError as exc:
            return Check({}, note=f"replacements not checked (translation failed: {exc})")
        tf_version = json.loads(_terraform(workdir, "version", "-json").stdout)
        state = synthetic_state(
            before_plan, _stand_ins(old, schema), schema, tf_version["terraform_version"]
        )
        (workdir / "terraform.tfstate").write_text(json.dumps(state))
        after_plan = _plan(workdir, new, new.config)
    finally:
        if not os.environ.get("ECS_TLS_REPLACE_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
    replaced = {**tls_replaced, **read_changes(after_plan, old, new)}
    return Check(replaced, follows=followers(after_plan, new, set(replaced)))

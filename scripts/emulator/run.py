"""./scripts/emulate STACK [--switch-to OTHER ...] [--keep] [--workdir DIR]

Applies a stack with the real Terraform AWS provider against moto, every request checked:

1. starts moto on a loopback port behind the request check (`server`), and creates there
   what a stack expects to exist already (the hosted zone of `hostedZoneId`);
2. runs the program under the test mocks with the stack's configuration, as the CLI would
   hand it over (scripts/stack_config.py), and translates what it registered (`translate`);
3. `terraform init` (offline from the local plugin mirror when there is one), `validate`,
   a `plan` of everything the program declares where some types are not created, and
   `apply` (which plans what it applies); each `--switch-to` configuration is then applied
   on the same state, as switching the stack's topology does: a resource both
   configurations declare must be updated in place, never replaced;
4. `destroy`, after which nothing the run created is left in moto except what the program
   retains on purpose (`retain_on_delete`), which must still be there.

It prints per resource what was created, updated, replaced or deleted, and exits 1 on the
first failure: a request that breaks one of AWS's rules, a provider error, a replaced shared
resource, or a leftover. Types moto cannot create are listed; they are validated and planned,
not applied.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.emulator.translate import (  # noqa: E402
    ProviderSchema,
    TlsMaterial,
    TranslateError,
    Translation,
    translate,
)

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account, and the test mocks'
PROVIDER = "hashicorp/aws"
INSTALL_HINT = (
    "terraform is not on PATH: install Terraform 1.5 or later "
    "(https://developer.hashicorp.com/terraform/install) and, offline, a plugin mirror with "
    "hashicorp/aws (ECS_TLS_TF_PLUGIN_DIR=<dir>)"
)
CACHE = ROOT / ".emulate"
# moto answers at once; most of a run is the provider's waiters, which overlap.
PARALLELISM = 30

# What moto cannot do and the translation therefore changes, each with its reason.
# (pulumi type, provider argument) -> value.
ADJUSTMENTS = {
    # moto runs no container: a service never reaches a steady state, and the provider would
    # wait for it until its timeout.
    ("aws:ecs/service:Service", "wait_for_steady_state"): False,
}


class EmulateError(Exception):
    """A failed run, with the reason."""


def plugin_dir() -> Path | None:
    """The filesystem mirror holding hashicorp/aws, if this machine has one."""
    for candidate in (os.environ.get("ECS_TLS_TF_PLUGIN_DIR"), "/opt/tf-plugins"):
        if candidate and (Path(candidate) / "registry.terraform.io" / PROVIDER).is_dir():
            return Path(candidate)
    return None


def provider_version(mirror: Path | None) -> str | None:
    if mirror is None:
        return None
    versions = sorted((mirror / "registry.terraform.io" / PROVIDER).iterdir())
    return versions[-1].name if versions else None


@dataclass
class Terraform:
    workdir: Path
    log: list[str] = field(default_factory=list)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            "TF_CLI_CONFIG_FILE": os.devnull,
        }
        started = time.monotonic()
        done = subprocess.run(
            ["terraform", *args, "-no-color"],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        self.log.append(f"terraform {args[0]}: {time.monotonic() - started:.1f} s")
        with (self.workdir / "terraform.log").open("a") as log:
            log.write(f"$ terraform {' '.join(args)}\n{done.stdout}{done.stderr}\n")
        if check and done.returncode != 0:
            raise EmulateError(
                f"terraform {' '.join(args)} failed (exit status {done.returncode}):\n"
                f"{_errors(done)}"
            )
        return done


def _errors(done: subprocess.CompletedProcess) -> str:
    text = (done.stderr or "") + (done.stdout or "")
    lines = [line for line in text.splitlines() if line.strip(" │╷╵")]
    errors = [i for i, line in enumerate(lines) if "Error:" in line]
    if not errors:  # killed, or a crash that printed no diagnostic: its last words
        return "\n".join(lines[-40:]) + f"\n(no error message; exit status {done.returncode})"
    return "\n".join(lines[errors[0] : errors[0] + 60])


def init(tf: Terraform, version: str | None, mirror: Path | None) -> None:
    provider: dict[str, Any] = {"source": PROVIDER}
    if version:
        provider["version"] = version
    (tf.workdir / "versions.tf.json").write_text(
        json.dumps({"terraform": {"required_providers": {"aws": provider}}}, indent=1)
    )
    tf.run("init", "-input=false", *((f"-plugin-dir={mirror}",) if mirror else ()))


def schema(tf: Terraform, version: str | None) -> ProviderSchema:
    cached = CACHE / f"schema-{version}.json" if version else None
    if cached is None or not cached.is_file():
        text = tf.run("providers", "schema", "-json").stdout
        if cached is None:
            cached = tf.workdir / "schema.json"
        cached.parent.mkdir(parents=True, exist_ok=True)
        # Runs side by side may write it at once: each renames a whole file into place.
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(text)
        partial.replace(cached)
    return ProviderSchema.load(cached)


# --- stacks ---------------------------------------------------------------------------------


@dataclass
class Stage:
    label: str  # the stack file whose configuration this is
    config: dict[str, str]
    secret_keys: tuple[str, ...]


def load(spec: str) -> tuple[str, Stage]:
    from scripts.plan import load_stack

    name, source = load_stack(spec)
    return name, Stage(spec, dict(source.config), source.secret_keys)


def seed(emulator, stages: list[Stage]) -> None:
    """What the stacks expect to exist: the hosted zone of `hostedZoneId`, with that ID
    (moto takes an ID registered for a zone's name), holding the parent of `domain`."""
    import boto3
    from moto.route53.models import HostedZoneIdentifier
    from moto.utilities.id_generator import moto_id_manager

    def client(service: str, region: str = REGION):
        return boto3.client(
            service,
            endpoint_url=emulator.url,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    # The region's EC2 defaults (default VPC, prefix lists) exist before the baseline.
    for region in (REGION, "us-east-1"):
        client("ec2", region).describe_vpcs()
    zones: set[str] = set()
    for stage in stages:
        zone_id = stage.config.get("ecs-tls:hostedZoneId")
        if not zone_id or zone_id in zones:
            continue
        domain = stage.config["ecs-tls:domain"].rstrip(".")
        parent = domain.split(".", 1)[1] if domain.count(".") >= 2 else domain
        for name in (parent, f"{parent}."):
            moto_id_manager.set_custom_id(HostedZoneIdentifier(ACCOUNT, name, None), zone_id)
        client("route53").create_hosted_zone(Name=parent, CallerReference=f"emulate-{zone_id}")
        zones.add(zone_id)


# --- one configuration ------------------------------------------------------------------


def renew_auto_names(graph, previous_urns: set[str], names: dict[tuple[str, str], str]) -> None:
    """Pulumi auto-names a resource each time it creates it: one that a switch deleted
    and a later switch creates again gets a new random suffix (and so does not collide
    with what AWS keeps of the old one, such as a secret in its recovery window)."""
    for r in graph:
        for key in ("name", "bucket"):
            value = r.outputs.get(key)
            if not r.custom or key in r.inputs or not isinstance(value, str):
                continue
            if (r.urn, key) in names and r.urn not in previous_urns:
                names[(r.urn, key)] = f"{value[:-7]}{secrets.token_hex(4)[:7]}"
            names.setdefault((r.urn, key), value)


def adjusted(translation: Translation) -> None:
    """Apply ADJUSTMENTS to both configurations."""
    for address, r in translation.addresses.items():
        tf_type, name = address.split(".", 1)
        for config in (translation.config, translation.apply_config):
            body = config["resource"].get(tf_type, {}).get(name)
            for (type_, argument), value in ADJUSTMENTS.items():
                if body is not None and r.type == type_ and argument in body:
                    body[argument] = value


def write(tf: Terraform, translation: Translation, config: dict) -> None:
    (tf.workdir / "main.tf.json").write_text(json.dumps(config, indent=1))
    for name, data in translation.archives.items():
        (tf.workdir / name).write_bytes(data)


def terraform_json(tf: Terraform, *args: str) -> list[tuple[str, str]]:
    """Run `plan` or `apply` with -json; (action, address) of each planned change
    (`replace` for delete+create). Raises with terraform's errors when it fails."""
    done = tf.run(*args, "-input=false", "-json", check=False)
    messages = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    changes = []
    for message in messages:
        if message.get("type") == "planned_change":
            change = message["change"]
            if change["action"] not in ("noop", "read"):
                changes.append((change["action"], change["resource"]["addr"]))
    if done.returncode != 0:
        errors = [
            f"{m['@message']}: {m.get('diagnostic', {}).get('detail', '')}".strip(": ")
            for m in messages
            if m.get("@level") == "error"
        ]
        raise EmulateError(f"terraform {args[0]} failed:\n" + "\n".join(errors)[:8000])
    return changes


def renamed(address: str, names: dict[str, Any], translation: Translation) -> bool:
    """A DNS record whose name the new configuration changes (another `domain`): a new
    record by nature, created before the old one goes, not a foundation replaced."""
    tf_type, _, tf_name = address.partition(".")
    if tf_type != "aws_route53_record":
        return False
    wanted = translation.config["resource"][tf_type][tf_name].get("name")
    return isinstance(wanted, str) and names.get(address) not in (wanted, wanted.rstrip("."))


def state_resources(tf: Terraform) -> list[tuple[str, dict]]:
    """(address, attributes) of each resource in the local state file."""
    path = tf.workdir / "terraform.tfstate"
    state = json.loads(path.read_text()) if path.is_file() else {}
    return [
        (f"{r['type']}.{r['name']}", instance["attributes"])
        for r in state.get("resources", [])
        if r.get("mode") == "managed"
        for instance in r.get("instances", [])
    ]


def describe(address: str, translation: Translation | None, known: dict[str, str]) -> str:
    r = translation.addresses.get(address) if translation else None
    return f"{r.type} {r.name}" if r else known.get(address, address)


# --- leftovers ----------------------------------------------------------------------------


def moto_inventory() -> Counter:
    """Every live object moto's backends hold, as (service, "account/region", model,
    identity) counts, and one (service, "account/region", "", "") entry per backend.

    moto's own /moto-api/data.json lists every object ever created, deleted or not; the
    backends' dictionaries hold what exists, so they are walked instead (moto runs in this
    process). Objects AWS keeps visible for a while after deletion (a deleted NAT gateway,
    an INACTIVE ECS service, a secret or a KMS key scheduled for deletion) are not live."""
    from moto.backends import get_backend, list_of_moto_modules
    from moto.core.common_models import BaseModel

    found: Counter = Counter()
    for module in list_of_moto_modules():
        if f"moto.{module}.models" not in sys.modules:
            continue  # never imported: holds nothing
        try:
            backends = get_backend(module)  # type: ignore[call-overload]
        except Exception:
            continue
        for account, regions in list(backends.items()):
            for region, backend in list(regions.items()):
                where = f"{account}/{region}"
                found.update(_live(backend, BaseModel, module, where))
                found[(module, where, "", "")] = 1
    return found


def _live(backend: Any, base: type, module: str, where: str) -> Counter:
    """The backend's live objects: those its containers hold, less those deleted and what
    a deleted object owns (moto keeps a deleted NAT gateway's interface, AWS does not)."""
    objects = list(_models(vars(backend), base, set(), 0))
    deleted = [obj for obj in objects if _deleted(obj)]
    owned = {id(v) for obj in deleted for v in vars(obj).values() if isinstance(v, base)}
    # moto keeps a deleted VPC's default network ACL; AWS deletes it with the VPC.
    vpcs = getattr(backend, "vpcs", None)
    counts: Counter = Counter()
    for obj in objects:
        identity = _identity(obj)
        vpc = getattr(obj, "vpc_id", None)
        if isinstance(vpcs, dict) and isinstance(vpc, str) and vpc not in vpcs:
            continue
        if identity and not _deleted(obj) and id(obj) not in owned:
            counts[(module, where, type(obj).__name__, identity)] += 1
    return counts


def _deleted(obj: Any) -> bool:
    for key in ("state", "status", "lifecycle_state", "key_state"):
        value = getattr(obj, key, None)
        if isinstance(value, str) and value.lower() in (
            "deleted",
            "deleting",
            "inactive",
            "pendingdeletion",  # a KMS key: destroy schedules its deletion, 7 to 30 days on
        ):
            return True
    return getattr(obj, "deleted_date", None) is not None


def _models(value: Any, base: type, seen: set[int], depth: int):
    """Models held in the backend's dictionaries, lists and sets (not inside other models:
    a rule of a security group lives and dies with its group)."""
    if depth > 4 or id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, base):
        yield value
        return
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, (list, tuple, set, frozenset)):
        children = list(value)
    else:
        return
    for child in children:
        yield from _models(child, base, seen, depth + 1)


def _retained_identity(values: dict[str, Any]) -> str:
    """What finds a retained resource in moto: its ID, and its ARN where moto knows it by
    that (an S3 bucket's ID is its name, moto's identity its ARN). A bucket's settings
    (policy, lifecycle, encryption...) are part of the bucket in moto: found by its ARN."""
    parts = [values.get("id"), values.get("arn")]
    bucket = values.get("bucket")
    if isinstance(bucket, str) and bucket and not values.get("arn"):
        parts.append(f"arn:aws:s3:::{bucket}")
    return "|".join(v for v in parts if isinstance(v, str) and v)


def _identity(obj: Any) -> str:
    for key in ("arn", "id", "name", "physical_resource_id"):
        try:
            value = getattr(obj, key, None)
        except Exception:
            continue
        if isinstance(value, str) and value:
            return value
    return ""  # nothing to tell two of its kind apart: not compared


# --- the run ------------------------------------------------------------------------------


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)

    def say(self, text: str = "") -> None:
        self.lines.append(text)
        print(text, flush=True)


def emulate(
    stack_spec: str,
    switches: list[str],
    keep: bool = False,
    workdir: Path | None = None,
) -> Report:
    from scripts.emulator import moto_fixes, server
    from scripts.mock_runtime import run_program

    if shutil.which("terraform") is None:
        raise EmulateError(INSTALL_HINT)
    report = Report()
    stack, first = load(stack_spec)
    stages = [first, *(load(spec)[1] for spec in switches)]
    mirror = plugin_dir()
    version = provider_version(mirror)
    own_dir = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix=f"emulate-{stack}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # moto starts empty: a state left by an earlier run in this directory describes nothing.
    for old in workdir.glob("terraform.tfstate*"):
        old.unlink()
    tf = Terraform(workdir)
    started = time.monotonic()
    init(tf, version, mirror)
    provider_schema = schema(tf, version)
    report.say(
        f"emulate {stack}: hashicorp/aws {version or '(registry)'} against moto, in {workdir}"
    )
    # Roles attach AWS managed policies, which moto knows only when asked to load them.
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    moto_fixes.apply()
    emulator = server.start()
    try:
        seed(emulator, stages)
        baseline = moto_inventory()
        tls = TlsMaterial()
        known: dict[str, str] = {}
        # Resources the program retains: in the state now (address -> ID), and those taken
        # out of it, which must outlive the run (address, ID).
        retainable: dict[str, str] = {}
        retained: list[tuple[str, str]] = []
        planned: set[str] = set()
        created: set[str] = set()  # IDs and ARNs of every resource the run applied
        previous: set[str] = set()
        previous_urns: set[str] = set()
        auto_names: dict[tuple[str, str], str] = {}
        translation: Translation | None = None
        names: dict[str, Any] = {}  # address -> its `name` after the previous stage
        for index, stage in enumerate(stages):
            verb = "apply" if index == 0 else "switch to"
            topology = stage.config.get("ecs-tls:topology")
            report.say(f"\n== {verb} {stage.label} (topology {topology}) on stack {stack}")
            graph = run_program(stage.config, stack=stack, secret_keys=stage.secret_keys)
            renew_auto_names(graph, previous_urns, auto_names)
            translation = translate(graph, provider_schema, emulator.url, REGION, tls, auto_names)
            adjusted(translation)
            for line in translation.unresolved:
                report.say(f"  note: {line}")
            for address, r in translation.addresses.items():
                known[address] = f"{r.type} {r.name}"
            # Validate and plan everything the program declares (plan validates too, so
            # `validate` runs once per run).
            write(tf, translation, translation.config)
            if index == 0:
                tf.run("validate")
            # Types that are not created are planned once per run (again when one is new).
            unplanned = {known[a] for a in translation.not_created} - planned
            if unplanned:
                terraform_json(tf, "plan", "-refresh=false")
                planned.update(unplanned)
                for address, reason in sorted(translation.not_created.items()):
                    report.say(f"  planned, not created: {known[address]} ({reason})")
            # What the program stops declaring and retains leaves the state, not AWS.
            current = set(translation.addresses)
            dropped = sorted(a for a in previous - current if a in retainable)
            if dropped:
                tf.run("state", "rm", *dropped)
            for address in dropped:
                retained.append((address, retainable.pop(address)))
                report.say(f"  retain  {known[address]} (left in AWS, out of the state)")
            write(tf, translation, translation.apply_config)
            try:
                changes = terraform_json(
                    tf, "apply", "-auto-approve", f"-parallelism={PARALLELISM}"
                )
            except EmulateError:
                _assert_clean(emulator, report)  # a refused request is the better reason
                raise
            for action, address in changes:
                report.say(f"  {action:8}{describe(address, translation, known)}")
            replaced = [
                a
                for action, a in changes
                if action == "replace" and a in previous and not renamed(a, names, translation)
            ]
            if replaced:
                raise EmulateError(
                    "the switch replaced what both configurations declare (the foundation "
                    "must be updated in place): "
                    + ", ".join(describe(a, translation, known) for a in replaced)
                )
            _assert_clean(emulator, report)
            retainable = {}
            names = {}
            for address, values in state_resources(tf):
                names[address] = values.get("name")
                created.update(v for v in (values.get("id"), values.get("arn")) if v)
                r = translation.addresses.get(address)
                if r is not None and r.retain_on_delete:
                    retainable[address] = _retained_identity(values)
            previous = current
            previous_urns = {r.urn for r in translation.addresses.values()}
        if keep:
            report.say(f"\n--keep: state and configuration in {workdir}; moto stops now")
            return report
        report.say("\n== destroy")
        if retainable:
            tf.run("state", "rm", *sorted(retainable))
        for address, ident in sorted(retainable.items()):
            retained.append((address, ident))
            report.say(f"  retain  {known[address]} (left in AWS)")
        destroyed = tf.run(
            "destroy", "-auto-approve", "-input=false", f"-parallelism={PARALLELISM}"
        )
        count = destroyed.stdout.count("Destruction complete")
        report.say(f"  deleted {count} resources")
        _assert_clean(emulator, report)
        _check_leftovers(baseline, created, retained, known, report)
    finally:
        report.say(f"  ({'; '.join(tf.log)})")
        emulator.stop()
        if own_dir and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report.say(f"\n{stack}: done in {time.monotonic() - started:.0f} s ({'; '.join(tf.log)})")
    return report


def _assert_clean(emulator, report: Report) -> None:
    checked = emulator.checked
    if checked.violations:
        raise EmulateError(
            "requests broke AWS's rules:\n" + "\n".join(f"  {v}" for v in checked.violations)
        )
    if checked.unparsed:
        raise EmulateError(
            "requests the check could not read (so not checked):\n"
            + "\n".join(f"  {u}" for u in checked.unparsed)
        )
    total = sum(checked.checked.values())
    report.say(f"  {total} requests checked against botocore's models and AWS's rules")


def _check_leftovers(
    baseline: Counter, created: set[str], retained: list[tuple[str, str]], known, report: Report
) -> None:
    """Fail on anything the run made that is still there, and on a retained resource gone.

    What the run made: new objects in a backend that existed before it started, and, in
    backends moto made during the run (a region's defaults come with them), objects whose
    identity is an ID or ARN of a resource in the Terraform state."""
    after = moto_inventory()
    old_backends = {k[:2] for k in baseline if not k[3]}
    # A resource's ID may join several (a secret version's is "<secret ARN>|<version>").
    kept = {part for _, ident in retained for part in ident.split("|") if part}
    left = sorted(
        key
        for key in (after - baseline)
        if key[3] and key[3] not in kept and (key[:2] in old_backends or key[3] in created)
    )
    identities = {k[3] for k in after}
    missing = [a for a, i in retained if not set(i.split("|")) & identities]
    for address, ident in retained:
        report.say(f"  kept    {known[address]} ({ident})")
    if missing:
        raise EmulateError(
            "retained resources are gone after destroy: " + ", ".join(known[a] for a in missing)
        )
    if left:
        raise EmulateError(
            "left in moto after destroy:\n"
            + "\n".join(f"  {svc} {where} {model} {ident}" for (svc, where, model, ident) in left)
        )
    report.say("  nothing else is left")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./scripts/emulate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "stack", help="a stack name (Pulumi.NAME.yaml or examples/Pulumi.NAME.yaml) or a stack file"
    )
    parser.add_argument(
        "--switch-to",
        action="append",
        default=[],
        metavar="OTHER",
        help="then apply OTHER's configuration on the same stack (repeatable)",
    )
    parser.add_argument("--keep", action="store_true", help="skip destroy; keep the work dir")
    parser.add_argument("--workdir", type=Path, help="where Terraform's files go")
    args = parser.parse_args(argv)
    try:
        emulate(args.stack, args.switch_to, keep=args.keep, workdir=args.workdir)
    except (EmulateError, TranslateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

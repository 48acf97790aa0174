"""The Pulumi CLI's configuration step, which mocks skip, applied to the shipped stacks.

Before it runs the program, `pulumi preview` / `pulumi up` merges Pulumi.yaml's `config:`
block into the stack's configuration and validates it. scripts/stack_config.py reproduces
that step; each rule and its source in github.com/pulumi/pulumi:

- A key of the project's namespace declared with neither `default` nor `value` is required
  in every stack: "Stack 'dev' is missing configuration values 'a', 'b' and 'c'", keys
  sorted (sdk/go/common/workspace/config.go: mergeConfig, missingStackConfigurationKeysError,
  formatMissingKeys; pulumi/pulumi#21797 asks for optional declared keys).
- Every `default` (or `value`) fills in a key the stack does not set (config.go: mergeConfig,
  createConfigValue).
- A declared `type` is checked against the stack's value: "Stack 'dev' with configuration
  key 'k' must be of type 'integer'" (config.go: validateStackConfigValue; project.go:
  ValidateConfigValue, InferFullTypeName).
- `secret: true` needs a `secure:` value: "Stack 'dev' with configuration key 'k' must be
  encrypted as it's secret" (config.go: validateStackConfigValue; typed keys only).
- Keys Pulumi.yaml does not declare pass through: mergeConfig and validateStackConfigValues
  iterate only the project's keys (the first releases refused undeclared keys, "... not
  defined by the project configuration": pulumi/pulumi#11127, #11128, relaxed by #11192).
- Pulumi.yaml's own rules: no `default` with `value`, arrays need `items`, a default must
  have its type, other namespaces take only `value` (project.go: Project.Validate); short
  keys belong to the project's namespace (config.go: parseConfigKey; project.go:
  RewriteShorthandConfigValues); stack keys must be namespaced (resource/config/key.go:
  ParseKey).
- The program receives "namespace:key" -> text: scalars as written, objects and arrays as
  JSON, secrets decrypted (resource/config/value.go: Value.Value; resource/config/map.go:
  Map.Decrypt; pkg/resource/deploy/source_eval.go: evalSource.Iterate;
  resource/plugin/langruntime_plugin.go: langhost.Run).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

import topologies
from scripts.mock_runtime import run_program
from scripts.plan import shipped
from scripts.stack_config import (
    SECRET_PLACEHOLDER,
    StackConfigError,
    cli_text,
    merged_config,
)
from tests.conftest import MINIMAL_CONFIG

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILE = ROOT / "Pulumi.yaml"
STACKS = shipped()

# Pulumi.yaml's config block before the fix: four topology-specific keys typed without a
# default, which the CLI therefore required in every stack.
OLD_PROJECT = """\
name: ecs-tls
runtime: python
config:
  topology:
    type: string
  domain:
    type: string
  hostedZoneId:
    type: string
  ingress:
    type: string
  allowedCidrs:
    type: array
    items:
      type: string
  sslPolicy:
    type: string
  logRetentionDays:
    type: integer
    default: 30
"""


def merge(tmp_path: Path, project_config: str, stack_config: str, **kwargs) -> dict[str, str]:
    """merged_config of a project named `demo` and its stack `dev`, both written here."""
    project = tmp_path / "Pulumi.yaml"
    stack = tmp_path / "Pulumi.dev.yaml"
    project.write_text("name: demo\nruntime: python\nconfig:\n" + _indent(project_config))
    stack.write_text("config:\n" + _indent(stack_config))
    return merged_config(project, stack, **kwargs)


def _indent(block: str) -> str:
    return textwrap.indent(textwrap.dedent(block), "  ") if block.strip() else "  {}\n"


def refusal(tmp_path: Path, project_config: str, stack_config: str) -> str:
    with pytest.raises(StackConfigError) as caught:
        merge(tmp_path, project_config, stack_config)
    return str(caught.value)


# --- the CLI's rules -------------------------------------------------------------------


def test_keys_declared_without_default_are_required_listed_sorted(tmp_path):
    declared = """
        zone: {type: string}
        alpha: {type: string}
        mid: {type: integer}
    """
    assert refusal(tmp_path, declared, "") == (
        "Stack 'dev' is missing configuration values 'alpha', 'mid' and 'zone'"
    )
    assert refusal(tmp_path, declared, "demo:mid: 1\ndemo:zone: z\n") == (
        "Stack 'dev' is missing configuration value 'alpha'"
    )
    assert refusal(tmp_path, declared, "demo:mid: 1\n") == (
        "Stack 'dev' is missing configuration values 'alpha' and 'zone'"
    )


def test_defaults_and_values_fill_in_keys_the_stack_leaves_out(tmp_path):
    config = merge(
        tmp_path,
        """
        retention: {type: integer, default: 30}
        enabled: {type: boolean, default: true}
        cidrs: {type: array, items: {type: string}, default: [10.0.0.0/8, 192.168.0.0/16]}
        name: {type: string, default: web}
        aws:region: {value: us-east-1}
        """,
        "demo:name: api\n",
    )
    assert config == {
        "aws:region": "us-east-1",
        "demo:cidrs": '["10.0.0.0/8","192.168.0.0/16"]',
        "demo:enabled": "true",
        "demo:name": "api",  # the stack's value wins
        "demo:retention": "30",
    }


@pytest.mark.parametrize(
    ("declaration", "stack_value", "type_name"),
    [
        ("{type: integer}", "abc", "integer"),
        ("{type: integer}", "1.5", "integer"),
        ("{type: integer}", "[1]", "integer"),
        ("{type: string}", "[a]", "string"),
        ("{type: string}", "{a: 1}", "string"),
        ("{type: boolean}", "yes", "boolean"),
        ("{type: boolean}", "1", "boolean"),
        ("{type: array, items: {type: string}}", "a", "array<string>"),
        ("{type: array, items: {type: string}}", "[a, 1]", "array<string>"),
        ("{type: array, items: {type: integer}}", "[1, x]", "array<integer>"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(tmp_path, declaration, stack_value, type_name):
    assert refusal(tmp_path, f"k: {declaration}", f"demo:k: {stack_value}") == (
        f"Stack 'dev' with configuration key 'k' must be of type '{type_name}'"
    )


@pytest.mark.parametrize(
    ("declaration", "stack_value", "received"),
    [
        ("{type: integer}", "30", "30"),
        ("{type: integer}", "'-7'", "-7"),  # a string is an integer when it parses as one
        ("{type: string}", "30", "30"),  # scalars reach the check as text: 30 is a string
        ("{type: boolean}", "false", "false"),
        ("{type: boolean}", "'true'", "true"),
        ("{type: array, items: {type: integer}}", "[1, 2]", "[1,2]"),
        ("{type: array, items: {type: array, items: {type: string}}}", "[[a]]", '[["a"]]'),
    ],
)
def test_a_value_of_the_declared_type_passes_as_text(tmp_path, declaration, stack_value, received):
    assert merge(tmp_path, f"k: {declaration}", f"demo:k: {stack_value}") == {"demo:k": received}


def test_secret_keys_must_be_encrypted_in_the_stack_file(tmp_path):
    declared = "password: {type: string, secret: true}"
    assert refusal(tmp_path, declared, "demo:password: hunter2") == (
        "Stack 'dev' with configuration key 'password' must be encrypted as it's secret"
    )
    encrypted = "demo:password:\n  secure: v1:AAAA\n"
    assert merge(tmp_path, declared, encrypted) == {"demo:password": SECRET_PLACEHOLDER}
    assert merge(tmp_path, declared, encrypted, decrypt=lambda c: f"plain({c})") == {
        "demo:password": "plain(v1:AAAA)"
    }
    # The CLI checks `secret` only on keys that also declare a type.
    assert merge(tmp_path, "token: {secret: true}", "demo:token: x") == {"demo:token": "x"}


def test_keys_pulumi_yaml_does_not_declare_pass_through(tmp_path):
    config = merge(
        tmp_path,
        "topology: {type: string}",
        """
        demo:topology: alb-envoy
        demo:undeclared: anything
        aws:region: eu-west-1
        """,
    )
    assert config == {
        "aws:region": "eu-west-1",
        "demo:topology": "alb-envoy",
        "demo:undeclared": "anything",
    }


def test_objects_and_arrays_reach_the_program_as_json(tmp_path):
    config = merge(
        tmp_path,
        "",
        """
        demo:acme:
          server: staging
          email: ops@example.com
          renewEveryDays: 7
        demo:services:
          - {name: web, port: 8080, public: true}
        demo:certificate:
          certificatePem: "<pem>"
          privateKeyPem:
            secure: v1:BBBB
        """,
        decrypt=lambda c: "key-" + c[-4:],
    )
    # Go's encoding/json: sorted keys, no spaces, HTML characters escaped.
    assert config["demo:acme"] == (
        '{"email":"ops@example.com","renewEveryDays":7,"server":"staging"}'
    )
    assert config["demo:services"] == '[{"name":"web","port":8080,"public":true}]'
    assert json.loads(config["demo:certificate"]) == {
        "certificatePem": "<pem>",
        "privateKeyPem": "key-BBBB",
    }
    assert "\\u003cpem\\u003e" in config["demo:certificate"]


def test_yes_no_on_off_are_strings_as_in_yaml_1_2(tmp_path):
    # The CLI parses YAML with Go's yaml.v3; PyYAML alone would read these as booleans.
    config = merge(tmp_path, "", "demo:flag: on\ndemo:list: [yes, no]\n")
    assert config == {"demo:flag": "on", "demo:list": '["yes","no"]'}


def test_short_keys_in_pulumi_yaml_belong_to_the_project(tmp_path):
    config = merge(tmp_path, "size: 3\ndemo:zone: {type: string, default: z}\naws:region: x", "")
    assert config == {"aws:region": "x", "demo:size": "3", "demo:zone": "z"}


def test_stack_keys_must_be_namespaced(tmp_path):
    assert refusal(tmp_path, "", "topology: alb-envoy") == (
        "could not parse topology as a configuration key "
        "(configuration keys should be of the form `<namespace>:<name>`)"
    )


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        (
            "k: {type: integer, default: 1, value: 2}",
            "project config 'k' cannot have both a 'default' and 'value' attribute",
        ),
        (
            "k: {type: array}",
            "The configuration key 'k' declares an array but does not specify the "
            "underlying type via the 'items' attribute",
        ),
        (
            "k: {type: integer, default: thirty}",
            "The default value specified for configuration key 'k' is not of the "
            "expected type 'integer'",
        ),
        (
            "aws:region: {type: string, value: x}",
            "Configuration key 'aws:region' is not namespaced by the project and should "
            "not define a type",
        ),
        (
            "aws:region: {default: x}",
            "Configuration key 'aws:region' is not namespaced by the project and should "
            "not define a default value. Did you mean to use the 'value' attribute "
            "instead of 'default'?",
        ),
    ],
)
def test_pulumi_yaml_itself_is_checked(tmp_path, declaration, message):
    assert refusal(tmp_path, declaration, "") == message


# --- this project ----------------------------------------------------------------------


def test_the_old_schema_refused_the_dev_stack(tmp_path):
    old = tmp_path / "Pulumi.yaml"
    old.write_text(OLD_PROJECT)
    with pytest.raises(StackConfigError) as caught:
        merged_config(old, ROOT / "Pulumi.dev.yaml")
    assert str(caught.value) == (
        "Stack 'dev' is missing configuration values "
        "'allowedCidrs', 'hostedZoneId', 'ingress' and 'sslPolicy'"
    )


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_each_shipped_stack_passes_the_cli_and_runs_with_exactly_that_config(stack):
    config = merged_config(PROJECT_FILE, STACKS[stack])
    written = yaml.safe_load(STACKS[stack].read_text())["config"]
    assert config["aws:region"] == written["aws:region"]
    for key in {"ecs-tls:topology", "ecs-tls:domain", "ecs-tls:logRetentionDays"}:
        assert key in config, key

    graph = run_program(config, stack=stack)

    assert len(graph) > 0
    assert graph.stack_outputs["topology"] == config["ecs-tls:topology"]


@pytest.mark.parametrize("topology", topologies.available())
def test_pulumi_yaml_defaults_suit_every_topology(tmp_path, topology):
    # A default reaches every stack, so it must be valid whatever the topology.
    minimal = tmp_path / "Pulumi.minimal.yaml"
    keys = {f"ecs-tls:{k}": v for k, v in MINIMAL_CONFIG[topology].items()}
    minimal.write_text(yaml.safe_dump({"config": {"aws:region": "eu-west-1", **keys}}))
    config = merged_config(PROJECT_FILE, minimal)
    declared = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    defaults = {k: cli_text(d["default"]) for k, d in declared.items() if "default" in d}
    assert defaults, "Pulumi.yaml declares no default: nothing to check"
    for key, text in defaults.items():
        assert config[f"ecs-tls:{key}"] == text

    graph = run_program(config, stack="minimal")

    assert graph.stack_outputs["topology"] == topology


def test_top_level_scalars_reach_the_program_as_written(tmp_path):
    # value.go, Value.unmarshalValue: a scalar is read into a string first, so the CLI keeps
    # its source text (leading zeros, underscores, dates), and the program parses numbers.
    config = merge(tmp_path, "", "demo:a: 0123\ndemo:b: 1_000\ndemo:c: 2024-01-02\ndemo:d: 1.50\n")
    assert config == {"demo:a": "0123", "demo:b": "1_000", "demo:c": "2024-01-02", "demo:d": "1.50"}


def test_scalars_inside_objects_resolve_as_yaml_v3_does(tmp_path):
    # resolve.go, resolve: strconv.ParseInt(text, 0, 64) makes 0123 octal and leaves 0129 to
    # the float rule; no base 60; a timestamp becomes a time.Time, written by encoding/json
    # as RFC 3339 (pulumi/pulumi#11518 and pulumi/pulumi-aws#4897 show leading zeros lost).
    config = merge(
        tmp_path,
        "",
        """
        demo:o:
          octal: 0123
          notOctal: 0129
          quoted: '0123'
          hex: 0x1F
          newOctal: 0o17
          underscores: 1_000
          exponent: 1e3
          sexagesimal: 1:30
          date: 2024-01-02
          stamp: 2024-1-2T03:04:05.500Z
          spaced: 2024-01-02 03:04:05
          account: 012345678912
        """,
    )
    assert json.loads(config["demo:o"]) == {
        "octal": 83,
        "notOctal": 129,
        "quoted": "0123",
        "hex": 31,
        "newOctal": 15,
        "underscores": 1000,
        "exponent": 1000,
        "sexagesimal": "1:30",
        "date": "2024-01-02T00:00:00Z",
        "stamp": "2024-01-02T03:04:05.5Z",
        "spaced": "2024-01-02T03:04:05Z",
        "account": 12345678912,
    }


def test_encrypted_values_and_environments_are_listed(tmp_path):
    from scripts.stack_config import encrypted, environments

    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(
        "environment:\n  - team/dev\nconfig:\n"
        "  demo:token:\n    secure: v1:AAAA\n"
        "  demo:certificate:\n    certificatePem: x\n    privateKeyPem:\n      secure: v1:BBBB\n"
        "  demo:list:\n    - plain\n    - secure: v1:CCCC\n"
    )
    assert encrypted(stack) == {
        "demo:token": "v1:AAAA",
        "demo:certificate.privateKeyPem": "v1:BBBB",
        "demo:list[1]": "v1:CCCC",
    }
    assert environments(stack) == ["team/dev"]
    stack.write_text("config: {}\n")
    assert environments(stack) == []

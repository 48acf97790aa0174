"""Sweeps over every documented key (settings.CONFIG_REFERENCE).

A wrong shape is a `ConfigError` naming the key, never a traceback; no message shows key
material, wherever it was put; no message shows a value of a key set with `--secret`.
They call `parse_settings` directly: no Pulumi program runs.
"""

from __future__ import annotations

import copy
import json
import re

import pytest

from scripts.mock_runtime import config_error
from scripts.pki import make_pki
from settings import CONFIG_REFERENCE, ConfigError, parse_settings
from settings.reference import APPLIES_TO, KNOWN_TOP_LEVEL
from tests.conftest import MINIMAL_CONFIG

PKI = make_pki("app.example.com")
KEY = PKI.key_pem
# Every base64 line of the key: none may appear in a message.
KEY_BODY = [line for line in KEY.splitlines() if line and not line.startswith("-----")]
EXISTING_VPC = {
    "vpcId": "vpc-0123456789abcdef0",
    "publicSubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "privateSubnetIds": ["subnet-0123456789abcdef2", "subnet-0123456789abcdef3"],
}
PATHS = [k.path for k in CONFIG_REFERENCE]
SCALAR_PATHS = [k.path for k in CONFIG_REFERENCE if k.type in ("string", "integer", "boolean")]
CONTAINER_PATHS = [k.path for k in CONFIG_REFERENCE if k.type in ("object", "array")]


def topology_for(path: str) -> str:
    """The first topology that reads `path` (or the key that holds it); else alb-envoy."""
    parts = path.replace("[]", "").split(".")
    for end in range(len(parts), 0, -1):
        readers = APPLIES_TO.get(".".join(parts[:end]))
        if readers:
            return readers[0]
    return "alb-envoy"


def concrete(path: str) -> str:
    return path.replace("services[]", "services[0]")


def config_with(path: str, value) -> tuple[dict, list[str]]:
    """A configuration that is valid except for `value` at `path`, and its secret keys."""
    config = copy.deepcopy(MINIMAL_CONFIG[topology_for(path)])
    secret: list[str] = []
    field_name = path.split(".", 1)[-1]
    if path.startswith("network.") and field_name in EXISTING_VPC:
        config["network"] = dict(EXISTING_VPC)
    if path.startswith("certificate."):
        config["certificate"] = PKI.certificate_config()
        secret.append("certificate")
    if path.startswith("services[]."):
        config["services"] = [{"name": "web", "image": "nginx", "port": 80, field_name: value}]
        return config, secret
    node = config
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return config, secret


def error_of(config: dict, secret_keys=()) -> str | None:
    """The ConfigError's message, or None when the configuration is accepted."""
    try:
        parse_settings(config, secret_keys)
    except ConfigError as exc:
        return str(exc)
    return None


def test_every_path_gets_a_configuration_on_a_topology_that_reads_it():
    for path in PATHS:
        config, secret = config_with(path, "x")
        assert error_of(copy.deepcopy(MINIMAL_CONFIG[topology_for(path)])) is None
        message = error_of(config, secret) or ""
        assert "applies" not in message, (path, message)


WRONG_SHAPES = [(p, v) for p in SCALAR_PATHS for v in ([1, 2], {"a": 1})] + [
    (p, v) for p in CONTAINER_PATHS for v in ("x", 7)
]


@pytest.mark.parametrize(
    ("path", "value"), WRONG_SHAPES, ids=[f"{p}={json.dumps(v)}" for p, v in WRONG_SHAPES]
)
def test_a_wrong_shape_is_a_config_error_naming_the_key(path, value):
    config, secret = config_with(path, value)
    # Any other exception fails the test with its traceback.
    message = error_of(config, secret)
    # The key itself, or a field inside it (a key that is a flag or an object).
    named = (f"ecs-tls:{concrete(path)}: ", f"ecs-tls:{concrete(path)}.")
    assert message is not None and message.startswith(named), message


KEY_SHAPES = {"string": KEY, "in-object": {"k": KEY}, "in-list": [KEY], "as-name": {KEY: "v"}}


@pytest.mark.parametrize("marked_secret", [False, True], ids=["plain", "secret"])
@pytest.mark.parametrize("shape", sorted(KEY_SHAPES))
@pytest.mark.parametrize("path", PATHS)
def test_no_message_shows_key_material(path, shape, marked_secret):
    config, secret = config_with(path, KEY_SHAPES[shape])
    message = error_of(config, secret if marked_secret else ()) or ""
    # Prose may say "a private key"; the PEM armour and the key's body may not appear.
    assert "PRIVATE KEY" not in message and "-----BEGIN" not in message, message
    assert not any(line in message for line in KEY_BODY), message


MARK = "s3cr3t-Mark-4242"
MARKS = {"string": MARK, "in-list": [MARK], "in-object": {"k": MARK}, "number": 987654321}


@pytest.mark.parametrize("shape", sorted(MARKS))
@pytest.mark.parametrize("path", PATHS)
def test_no_message_shows_a_value_of_a_secret_key(path, shape):
    config, secret = config_with(path, MARKS[shape])
    top = re.split(r"[.\[]", path)[0]
    message = error_of(config, [*secret, top])
    if message is not None:
        assert MARK not in message and "987654321" not in message, message


def test_the_sweeps_cover_every_top_level_key():
    assert {re.split(r"[.\[]", p)[0] for p in PATHS} == set(KNOWN_TOP_LEVEL)


# --- exact messages -----------------------------------------------------------------------

BASE = MINIMAL_CONFIG["alb-envoy"]


def test_a_private_key_set_without_path_is_not_echoed():
    # `pulumi config set ecs-tls:certificate "$(cat key.pem)"` makes `certificate` a string.
    assert config_error({**BASE, "certificate": KEY}) == (
        "ecs-tls:certificate: <redacted> is not an object (set its fields with "
        "`pulumi config set --path`)"
    )


def test_a_value_of_a_key_the_engine_lists_as_secret_is_redacted():
    config = {**MINIMAL_CONFIG["nlb-certbot"], "acme": {"email": "ops-at-example.com"}}
    expected = "ecs-tls:acme.email: <redacted> is not an e-mail address such as ops@example.com"
    assert config_error(config, secret_keys=["acme"]) == expected
    # Not secret: the value is shown, so the user can find it.
    assert config_error(config) == expected.replace("<redacted>", "'ops-at-example.com'")


def test_secret_keys_from_the_language_host_environment(monkeypatch):
    # `pulumi up`: the language host passes the list as PULUMI_CONFIG_SECRET_KEYS.
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["ecs-tls:acme", "aws:x"]))
    config = {**MINIMAL_CONFIG["nlb-certbot"], "acme": {"email": "ops-at-example.com"}}
    assert config_error(config) == (
        "ecs-tls:acme.email: <redacted> is not an e-mail address such as ops@example.com"
    )


def test_a_message_composed_with_a_key_in_it_is_scrubbed():
    error = ConfigError("app.image", f"{KEY.strip()} is not an image")
    assert str(error) == "ecs-tls:app.image: <redacted> is not an image"

"""A key set with `--secret` never reaches a resource input or a stack output as plain text.

Each case runs the real program under the mocks with keys set as `pulumi config set
--secret` would (the harness runs the program's stack transforms as the engine does) and
looks for every text the user gave under those keys in the inputs the engine would store
in plain text. The same cases run once more without the transform, to show that each key
does reach some input, so the first check could fail.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc

from scripts import mock_runtime as harness
from scripts.mock_runtime import is_secret, plaintext, run_program, unwrap
from scripts.pki import make_pki
from scripts.plan import load_stack, shipped
from settings.secrecy import MIN_SEARCHED, SecretValues, secret_inputs, secret_values
from tests.conftest import MINIMAL_CONFIG

_PKI = make_pki("app.example.com")
OWN_CERTIFICATE = _PKI.certificate_config()
_MESH_PKI = make_pki("app.example.com", "*.mesh.app.example.com")
MESH_CERTIFICATE = {
    **_MESH_PKI.certificate_config(),
    "chainPem": _MESH_PKI.chain_pem + _MESH_PKI.root_pem,
}
ENVIRONMENT = {"FEATURE_FLAGS": "flags-kept-secret-7f3a"}


def _service(name: str, port: int, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": "public.ecr.aws/docker/library/nginx:1.27",
        "port": port,
        "environment": {"UPSTREAM_NOTE": f"note-of-{name}-kept-secret"},
        **fields,
    }


# Every top-level key that carries a value of its own into some resource, in a topology
# that reads it; each case names the keys it sets with --secret.
CASES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "alb-envoy": (
        {
            **MINIMAL_CONFIG["alb-envoy"],
            "domain": "secret-app.example.com",
            "certificate": make_pki("secret-app.example.com").certificate_config(),
            "app": {"environment": ENVIRONMENT},
            "alertsEmail": "alerts-kept-secret@example.com",
        },
        ("domain", "certificate", "app", "alertsEmail"),
    ),
    "nlb-certbot": (
        {
            **MINIMAL_CONFIG["nlb-certbot"],
            "acme": {"email": "acme-kept-secret@example.com"},
            "hostedZoneId": "Z0SECRETZONE12345",
            "allowedCidrs": ["198.51.100.0/24"],
            "app": {"environment": ENVIRONMENT},
        },
        ("acme", "hostedZoneId", "allowedCidrs", "app"),
    ),
    "direct-task": (
        {
            **MINIMAL_CONFIG["direct-task"],
            "domain": "secret-tasks.example.com",
            "acme": {"email": "acme-kept-secret@example.com"},
            "app": {"environment": ENVIRONMENT},
        },
        ("domain", "acme", "app"),
    ),
    "service-connect": (
        {
            **MINIMAL_CONFIG["service-connect"],
            "certificate": OWN_CERTIFICATE,
            "services": [
                _service("front", 8080, public=True, calls=["back"]),
                _service("back", 9090),
            ],
        },
        ("certificate", "services"),
    ),
    "appmesh-efs": (
        {
            **MINIMAL_CONFIG["appmesh-efs"],
            "certificate": MESH_CERTIFICATE,
            "mesh": {
                "namespace": "mesh.app.example.com",
                "mutualTls": False,
                "additionalTrustedCaPem": _PKI.root_pem,
            },
            "services": [_service("front", 8080), _service("back", 9090)],
        },
        ("certificate", "mesh", "services"),
    ),
}


def given_texts(config: Mapping[str, Any], keys: Iterable[str]) -> set[str]:
    """Every text of `MIN_SEARCHED` characters or more the user gave under `keys` (shorter
    text and numbers are matched as whole values only: settings/secrecy.py)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and len(value) >= MIN_SEARCHED:
            found.add(value)

    for key in keys:
        walk(config.get(key))
    return found


def leaks(graph: harness.Graph, texts: set[str]) -> list[tuple[str, str, str, str]]:
    """(type, name, input path, the secret text) for each secret text found in plain text
    in a resource's inputs or the stack's outputs."""
    found = [
        (r.type, r.name, path, text)
        for r in graph
        for path, value in plaintext(r.inputs)
        for text in texts
        if text in value
    ]
    return found + [
        ("stack", "outputs", path, text)
        for path, value in plaintext(graph.stack_outputs)
        for text in texts
        if text in value
    ]


def without_transform(config: Mapping[str, Any], keys: tuple[str, ...], monkeypatch) -> Any:
    """The graph of `config` with the program's secrecy transform left out (uncached)."""
    import settings.parse

    monkeypatch.setattr(settings.parse, "keep_secret", lambda secrets: None)
    return harness._run(config, "dev", tuple(f"ecs-tls:{k}" for k in keys))


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_secret_value_reaches_an_input_in_plain_text(case):
    config, keys = CASES[case]
    graph = run_program(config, secret_keys=keys)
    assert leaks(graph, given_texts(config, keys)) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_without_the_transform_each_secret_key_would_leak(case, monkeypatch):
    """Each key of each case carries a value into some input: the check above can fail."""
    config, keys = CASES[case]
    graph = without_transform(config, keys, monkeypatch)
    for key in keys:
        assert leaks(graph, given_texts(config, [key])), f"{key} reaches no input"


@pytest.mark.parametrize("name", sorted(shipped()))
def test_a_shipped_stack_with_every_key_secret_keeps_them_all(name):
    """Every `ecs-tls:` key of a shipped stack set with --secret: the program still runs,
    and none of the texts reaches an input in plain text."""
    stack, source = load_stack(name)
    keys = tuple(k.split(":", 1)[1] for k in source.config if k.startswith("ecs-tls:"))
    config = {
        k.split(":", 1)[1] if k.startswith("ecs-tls:") else k: _decoded(v)
        for k, v in source.config.items()
    }
    graph = run_program(source.config, stack=stack, secret_keys=keys)
    assert len(graph) > 20
    assert leaks(graph, given_texts(config, keys)) == []


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def test_a_domain_is_found_in_the_form_parsing_gives_it():
    """`Secret-App.Example.com.` reaches inputs as `secret-app.example.com`: still secret."""
    config = {**MINIMAL_CONFIG["alb-envoy"], "domain": "Secret-App.Example.com."}
    graph = run_program(config, secret_keys=("domain",))
    assert leaks(graph, {"secret-app.example.com"}) == []
    assert any("secret-app.example.com" in json.dumps(unwrap(r.inputs)) for r in graph)


def test_an_output_holding_a_secret_value_is_secret_the_others_are_not():
    config, keys = CASES["alb-envoy"]
    outputs = run_program(config, secret_keys=keys).stack_outputs
    assert is_secret(outputs["endpoint"])
    assert unwrap(outputs["endpoint"]) == "https://secret-app.example.com"
    assert outputs["topology"] == "alb-envoy"


def test_without_secret_keys_nothing_is_transformed():
    """No secret key: no transform registered, inputs as the program gives them."""
    config = copy.deepcopy(CASES["alb-envoy"][0])
    del config["certificate"]
    graph = run_program(config)
    subscription = graph.one("aws:sns/topicSubscription:TopicSubscription")
    assert subscription.inputs["endpoint"] == "alerts-kept-secret@example.com"


# --- the values recorded and how they are matched ----------------------------------------


def test_secret_values_are_the_leaves_of_the_secret_keys_only():
    values = {
        "domain": "App.Example.com.",
        "app": {"port": 443, "healthCheckPath": "/", "environment": {"NAME": "value-1234"}},
        "allowedCidrs": "198.51.100.0/24, 203.0.113.0/24",
        "caaRecord": True,
        "alertsEmail": "ops@example.com",
    }
    secrets = secret_values(values, ["domain", "app", "allowedCidrs", "caaRecord"])
    assert {"App.Example.com.", "app.example.com", "value-1234"} <= secrets.texts
    assert {"198.51.100.0/24", "203.0.113.0/24"} <= secrets.texts
    assert {443, "443", "/"} <= secrets.whole
    assert "ops@example.com" not in secrets.texts  # not set with --secret
    assert "NAME" not in secrets.texts and "environment" not in secrets.texts  # field names
    assert True not in secrets.whole and "True" not in secrets.whole  # booleans: not recorded
    assert "value-1234" not in repr(secrets)


def test_long_text_is_found_inside_text_short_text_and_numbers_only_whole():
    secrets = SecretValues(texts=frozenset({"value-1234"}), whole=frozenset({"/", 443, "443"}))
    assert secrets.found_in('[{"environment": [{"value": "x value-1234 y"}]}]')
    assert secrets.found_in({"tags": {"a": ["/"]}})
    assert secrets.found_in({"port": 443})
    assert secrets.found_in("443")
    assert not secrets.found_in("/health")  # short text inside other text: not a match
    assert not secrets.found_in("port 443")
    assert not secrets.found_in(True)  # True == 1, never a number here
    assert not SecretValues().found_in("anything") and not SecretValues()


def test_secret_inputs_wraps_each_property_holding_a_secret():
    secrets = SecretValues(texts=frozenset({"value-1234"}))
    already = rpc.wrap_rpc_secret("value-1234")
    props = {"name": "plain", "containerDefinitions": '[{"value": "value-1234"}]', "k": already}
    out = secret_inputs(props, secrets)
    assert out["name"] == "plain"
    assert out["k"] is already
    assert isinstance(out["containerDefinitions"], pulumi.Output)


def test_an_output_is_made_secret_once_its_value_holds_a_secret():
    secrets = SecretValues(texts=frozenset({"value-1234"}))

    async def secrecy() -> tuple[bool, bool]:
        out = secret_inputs(
            {"a": pulumi.Output.from_input("x value-1234"), "b": [pulumi.Output.from_input("y")]},
            secrets,
        )
        return await out["a"].is_secret(), await out["b"].is_secret()

    # A loop of its own, never made current: asyncio.run would unset the harness's.
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(secrecy()) == (True, False)
    finally:
        loop.close()


def test_unwrap_gives_back_the_value():
    assert unwrap(rpc.wrap_rpc_secret({"a": "b"})) == {"a": "b"}

"""Fast, pure checks of the Envoy sidecar bootstrap builder (no binary needed)."""

from __future__ import annotations

import json

import pytest
import yaml

from components.envoy import (
    TLS_VERSIONS,
    EnvoyProxySpec,
    render_bootstrap,
    render_bootstrap_yaml,
)


def _listener(bootstrap: dict) -> dict:
    (listener,) = bootstrap["static_resources"]["listeners"]
    return listener


def _common_tls(bootstrap: dict) -> dict:
    (chain,) = _listener(bootstrap)["filter_chains"]
    return chain["transport_socket"]["typed_config"]["common_tls_context"]


def _hcm(bootstrap: dict) -> dict:
    (chain,) = _listener(bootstrap)["filter_chains"]
    (hcm,) = chain["filters"]
    return hcm["typed_config"]


def test_admin_is_bound_to_loopback_even_with_wildcard_listener() -> None:
    bootstrap = render_bootstrap(EnvoyProxySpec(app_port=8080, admin_port=9999))
    assert bootstrap["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 9999,
    }
    assert "access_log_path" not in bootstrap["admin"]
    assert _listener(bootstrap)["address"]["socket_address"] == {
        "address": "0.0.0.0",
        "port_value": 8443,
    }


def test_certificate_and_key_come_from_environment_variables() -> None:
    spec = EnvoyProxySpec(app_port=8080, certificate_env="CERT_PEM", private_key_env="KEY_PEM")
    (certificate,) = _common_tls(render_bootstrap(spec))["tls_certificates"]
    assert certificate == {
        "certificate_chain": {"environment_variable": "CERT_PEM"},
        "private_key": {"environment_variable": "KEY_PEM"},
    }


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_tls_floor_and_ceiling(version: str) -> None:
    spec = EnvoyProxySpec(app_port=8080, min_tls_version=version)
    assert _common_tls(render_bootstrap(spec))["tls_params"] == {
        "tls_minimum_protocol_version": version,
        "tls_maximum_protocol_version": "TLSv1_3",
    }


def test_app_cluster_is_static_loopback() -> None:
    bootstrap = render_bootstrap(EnvoyProxySpec(app_port=3000))
    (cluster,) = bootstrap["static_resources"]["clusters"]
    assert cluster["name"] == "app"
    assert cluster["type"] == "STATIC"
    (group,) = cluster["load_assignment"]["endpoints"]
    (endpoint,) = group["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 3000,
    }
    (vhost,) = _hcm(bootstrap)["route_config"]["virtual_hosts"]
    assert vhost["routes"][0]["route"]["cluster"] == "app"


def test_access_log_goes_to_stdout_as_json() -> None:
    (log,) = _hcm(render_bootstrap(EnvoyProxySpec(app_port=8080)))["access_log"]
    assert log["name"] == "envoy.access_loggers.stdout"
    fields = log["typed_config"]["log_format"]["json_format"]
    assert {"method", "path", "response_code", "duration_ms", "upstream_host"} <= set(fields)


@pytest.mark.parametrize("version", ["TLSv1_1", "TLSv1_0", "TLS_AUTO", "tls1.2", ""])
def test_bad_tls_version_raises(version: str) -> None:
    with pytest.raises(ValueError, match="min_tls_version"):
        render_bootstrap(EnvoyProxySpec(app_port=8080, min_tls_version=version))


def test_same_admin_and_listener_port_raises() -> None:
    with pytest.raises(ValueError, match="must differ"):
        render_bootstrap(EnvoyProxySpec(app_port=8080, listener_port=9000, admin_port=9000))


@pytest.mark.parametrize(
    "overrides",
    [{"app_port": 0}, {"app_port": 65536}, {"listener_port": -1}, {"admin_port": True}],
)
def test_out_of_range_ports_raise(overrides: dict) -> None:
    spec = EnvoyProxySpec(**{"app_port": 8080, **overrides})
    with pytest.raises(ValueError, match=r"1\.\.65535"):
        render_bootstrap(spec)


def test_yaml_rendering_is_deterministic_and_parses_back() -> None:
    spec = EnvoyProxySpec(app_port=8080)
    text = render_bootstrap_yaml(spec)
    assert text == render_bootstrap_yaml(EnvoyProxySpec(app_port=8080))
    assert yaml.safe_load(text) == json.loads(text) == render_bootstrap(spec)

"""Fast, pure checks of the Envoy sidecar bootstrap builder (no binary needed)."""

from __future__ import annotations

import json

import pytest
import yaml

from task_contents.envoy import (
    ADMIN_SOCKET_MODE,
    DEFAULT_ADMIN_SOCKET_PATH,
    DEFAULT_HEALTH_PORT,
    HEALTH_PATH,
    TLS_VERSIONS,
    EnvoyProxySpec,
    envoy_bound_ports,
    ready_check_command,
    render_bootstrap,
    render_bootstrap_yaml,
)


def _listeners(bootstrap: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in bootstrap["static_resources"]["listeners"]}


def _listener(bootstrap: dict) -> dict:
    return _listeners(bootstrap)["ingress_tls"]


def _health_hcm(bootstrap: dict) -> dict:
    (chain,) = _listeners(bootstrap)["health"]["filter_chains"]
    (hcm,) = chain["filters"]
    return hcm["typed_config"]


def _socket_addresses(value: object) -> list[dict]:
    """Every socket_address anywhere in the bootstrap, however deep."""
    if isinstance(value, dict):
        found = [value["socket_address"]] if "socket_address" in value else []
        return found + [a for v in value.values() for a in _socket_addresses(v)]
    if isinstance(value, list):
        return [a for v in value for a in _socket_addresses(v)]
    return []


def _common_tls(bootstrap: dict) -> dict:
    (chain,) = _listener(bootstrap)["filter_chains"]
    return chain["transport_socket"]["typed_config"]["common_tls_context"]


def _hcm(bootstrap: dict) -> dict:
    (chain,) = _listener(bootstrap)["filter_chains"]
    (hcm,) = chain["filters"]
    return hcm["typed_config"]


def test_admin_is_a_private_unix_socket_not_a_tcp_port() -> None:
    bootstrap = render_bootstrap(EnvoyProxySpec(app_port=8080))
    assert bootstrap["admin"] == {
        "address": {"pipe": {"path": DEFAULT_ADMIN_SOCKET_PATH, "mode": 0o600}}
    }
    assert ADMIN_SOCKET_MODE == 0o600
    assert DEFAULT_ADMIN_SOCKET_PATH == "/tmp/envoy-admin.sock"
    # Only the two listeners and the app endpoint are TCP addresses; none is the admin.
    assert sorted((a["address"], a["port_value"]) for a in _socket_addresses(bootstrap)) == [
        ("0.0.0.0", 8443),
        ("127.0.0.1", 8080),
        ("127.0.0.1", DEFAULT_HEALTH_PORT),
    ]


def test_admin_socket_path_is_configurable_and_admin_can_be_disabled() -> None:
    spec = EnvoyProxySpec(app_port=8080, admin_socket_path="/run/envoy/admin.sock")
    assert render_bootstrap(spec)["admin"]["address"]["pipe"]["path"] == "/run/envoy/admin.sock"
    assert "admin" not in render_bootstrap(EnvoyProxySpec(app_port=8080, admin_socket_path=None))


@pytest.mark.parametrize(
    "path",
    ["@envoy-admin", "envoy-admin.sock", "", "/tmp/" + "x" * 103],
    ids=["abstract", "relative", "empty", "too-long"],
)
def test_admin_socket_must_be_an_absolute_filesystem_path(path: str) -> None:
    # An abstract socket would belong to the network namespace the app shares.
    with pytest.raises(ValueError, match="admin_socket_path"):
        render_bootstrap(EnvoyProxySpec(app_port=8080, admin_socket_path=path))


def test_health_listener_is_loopback_only_and_never_reaches_the_app() -> None:
    spec = EnvoyProxySpec(app_port=8080, health_port=9999)
    bootstrap = render_bootstrap(spec)
    health = _listeners(bootstrap)["health"]
    assert health["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 9999}
    (chain,) = health["filter_chains"]
    assert "transport_socket" not in chain  # plain HTTP for bash /dev/tcp
    hcm = _health_hcm(bootstrap)
    check, router = hcm["http_filters"]
    assert check["name"] == "envoy.filters.http.health_check"
    assert check["typed_config"]["pass_through_mode"] is False
    assert check["typed_config"]["headers"] == [
        {"name": ":path", "string_match": {"exact": HEALTH_PATH}}
    ]
    assert router["name"] == "envoy.filters.http.router"
    (vhost,) = hcm["route_config"]["virtual_hosts"]
    assert vhost["routes"] == [{"match": {"prefix": "/"}, "direct_response": {"status": 404}}]
    assert "cluster" not in json.dumps(hcm["route_config"])


def test_bound_ports_are_exactly_the_tcp_listeners() -> None:
    spec = EnvoyProxySpec(app_port=3000, listener_port=9443, health_port=9500)
    assert envoy_bound_ports(spec) == {"listener_port": 9443, "health_port": 9500}
    bootstrap = render_bootstrap(spec)
    listening = {
        entry["address"]["socket_address"]["port_value"]
        for entry in bootstrap["static_resources"]["listeners"]
    }
    assert listening == set(envoy_bound_ports(spec).values())
    assert envoy_bound_ports(EnvoyProxySpec(app_port=80)) == {
        "listener_port": 8443,
        "health_port": DEFAULT_HEALTH_PORT,
    }


def test_route_timeout_is_not_shorter_than_the_alb_idle_timeout() -> None:
    (vhost,) = _hcm(render_bootstrap(EnvoyProxySpec(app_port=8080)))["route_config"][
        "virtual_hosts"
    ]
    (route,) = vhost["routes"]
    # 60 s: the ALB's default idle timeout, which Envoy must not undercut.
    assert route["route"]["timeout"] == "60s"
    spec = EnvoyProxySpec(app_port=8080, route_timeout_seconds=300)
    (vhost,) = _hcm(render_bootstrap(spec))["route_config"]["virtual_hosts"]
    assert vhost["routes"][0]["route"]["timeout"] == "300s"


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "60s"])
def test_bad_route_timeout_raises(value: object) -> None:
    with pytest.raises(ValueError, match="route_timeout_seconds"):
        render_bootstrap(EnvoyProxySpec(app_port=8080, route_timeout_seconds=value))


def test_ready_check_asks_the_health_listener_not_the_admin() -> None:
    command = ready_check_command(9902)
    assert command[:3] == ["CMD", "bash", "-c"]
    (script,) = command[3:]
    assert "/dev/tcp/127.0.0.1/9902" in script
    assert f"GET {HEALTH_PATH} HTTP/1.1" in script
    assert "grep -q ' 200 '" in script
    with pytest.raises(ValueError, match="health_port"):
        ready_check_command(0)


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


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"listener_port": 9000, "health_port": 9000}, "listener_port and health_port"),
        ({"app_port": 9902}, "app_port and health_port"),
        ({"app_port": 8443}, "app_port and listener_port"),
        ({"app_port": 7000, "listener_port": 7000}, "app_port and listener_port"),
    ],
)
def test_colliding_ports_raise(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"{message} must differ") as excinfo:
        render_bootstrap(EnvoyProxySpec(**{"app_port": 8080, **overrides}))
    assert "network namespace" in str(excinfo.value)


@pytest.mark.parametrize(
    "overrides",
    [{"app_port": 0}, {"app_port": 65536}, {"listener_port": -1}, {"health_port": True}],
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


# --------------------------------------------------------------------------- tuning


def _app_cluster(bootstrap: dict) -> dict:
    (cluster,) = bootstrap["static_resources"]["clusters"]
    return cluster


def test_default_tuning_fits_the_smallest_fargate_task() -> None:
    from task_contents.envoy import ProxyTuning, tuning_for_task

    assert tuning_for_task(256, 512) == ProxyTuning()
    assert ProxyTuning().concurrency == 1
    assert ProxyTuning().max_heap_bytes == 128 * 2**20  # a quarter of 512 MiB
    assert ProxyTuning().max_downstream_connections == 1024  # 128 KiB of heap each


@pytest.mark.parametrize(
    ("cpu", "memory", "workers", "heap_mib", "connections", "requests"),
    [
        (256, 512, 1, 128, 1024, 256),
        (512, 1024, 1, 256, 2048, 512),
        (1024, 2048, 1, 512, 4096, 1024),
        (2048, 4096, 2, 1024, 8192, 2048),
        (4096, 30720, 4, 2048, 16384, 4096),  # heap capped at 2 GiB
    ],
)
def test_tuning_follows_the_task_size(cpu, memory, workers, heap_mib, connections, requests):
    from task_contents.envoy import tuning_for_task

    t = tuning_for_task(cpu, memory)
    assert (t.concurrency, t.max_heap_bytes // 2**20) == (workers, heap_mib)
    assert (t.max_downstream_connections, t.max_upstream_requests) == (connections, requests)


def test_worker_count_is_passed_on_the_command_line() -> None:
    from task_contents.envoy import envoy_args, tuning_for_task

    spec = EnvoyProxySpec(app_port=8080, tuning=tuning_for_task(2048, 4096))
    args = envoy_args(spec)
    assert args[args.index("--concurrency") + 1] == "2"
    assert args.count("--concurrency") == 1
    assert envoy_args(EnvoyProxySpec(app_port=8080))[-2:] == ["--concurrency", "1"]


def test_upstream_idle_timeout_is_below_the_apps_keep_alive() -> None:
    cluster = _app_cluster(render_bootstrap(EnvoyProxySpec(app_port=8080)))
    options = cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    # nginx keeps idle connections 75 s; Envoy's default would be one hour.
    assert options["common_http_protocol_options"] == {"idle_timeout": "50s"}
    assert options["explicit_http_config"] == {"http_protocol_options": {}}  # still HTTP/1.1


def test_circuit_breakers_and_buffer_limits_are_sized() -> None:
    bootstrap = render_bootstrap(EnvoyProxySpec(app_port=8080))
    cluster = _app_cluster(bootstrap)
    (thresholds,) = cluster["circuit_breakers"]["thresholds"]
    assert thresholds == {
        "priority": "DEFAULT",
        "max_connections": 256,
        "max_pending_requests": 256,
        "max_requests": 256,
        "max_retries": 3,
    }
    assert cluster["per_connection_buffer_limit_bytes"] == 32768
    assert _listener(bootstrap)["per_connection_buffer_limit_bytes"] == 32768


def test_overload_manager_limits_heap_and_connections() -> None:
    om = render_bootstrap(EnvoyProxySpec(app_port=8080))["overload_manager"]
    monitors = {m["name"]: m["typed_config"] for m in om["resource_monitors"]}
    assert monitors["envoy.resource_monitors.fixed_heap"]["max_heap_size_bytes"] == 128 * 2**20
    connections = monitors["envoy.resource_monitors.global_downstream_max_connections"]
    assert connections["max_active_downstream_connections"] == 1024
    actions = {a["name"]: a["triggers"][0]["threshold"]["value"] for a in om["actions"]}
    assert actions == {
        "envoy.overload_actions.shrink_heap": 0.9,
        "envoy.overload_actions.stop_accepting_requests": 0.95,
    }


def test_health_listener_is_outside_the_connection_limit() -> None:
    bootstrap = render_bootstrap(EnvoyProxySpec(app_port=8080))
    assert _listeners(bootstrap)["health"]["ignore_global_conn_limit"] is True
    assert "ignore_global_conn_limit" not in _listener(bootstrap)


def test_access_log_all_by_default_sampled_or_off() -> None:
    from task_contents.envoy import ProxyTuning

    (entry,) = _hcm(render_bootstrap(EnvoyProxySpec(app_port=8080)))["access_log"]
    assert "filter" not in entry  # every request, as before
    sampled = EnvoyProxySpec(app_port=8080, tuning=ProxyTuning(access_log="sampled"))
    (entry,) = _hcm(render_bootstrap(sampled))["access_log"]
    assert entry["filter"]["runtime_filter"]["percent_sampled"] == {
        "numerator": 10,
        "denominator": "HUNDRED",
    }
    off = EnvoyProxySpec(app_port=8080, tuning=ProxyTuning(access_log="off"))
    assert _hcm(render_bootstrap(off))["access_log"] == []


@pytest.mark.parametrize(
    "field",
    [
        {"concurrency": 0},
        {"max_heap_bytes": -1},
        {"upstream_idle_timeout_seconds": True},
        {"access_log": "some"},
        {"access_log_sample_percent": 0},
    ],
)
def test_invalid_tuning_is_refused(field: dict) -> None:
    from task_contents.envoy import ProxyTuning

    with pytest.raises(ValueError, match="tuning"):
        render_bootstrap(EnvoyProxySpec(app_port=8080, tuning=ProxyTuning(**field)))


# --------------------------------------------------------------------------- client hygiene


def _mesh_bootstraps() -> dict[str, dict]:
    """A gateway and a service sidecar with an egress listener, as appmesh-efs builds them."""
    from task_contents.envoy import (
        EgressListener,
        MeshProxySpec,
        PrefixRoute,
        TlsFiles,
        UpstreamCluster,
        render_mesh_bootstrap,
    )

    files = TlsFiles("/certs/chain.pem", "/certs/key.pem")
    backend = UpstreamCluster("service_backend", "backend.mesh.local", 8443, "/certs/ca.pem")
    gateway = MeshProxySpec(
        listener_port=8443,
        server_certificate=files,
        routes=(PrefixRoute("/", "service_backend"),),
        upstreams=(backend,),
        stat_prefix="gateway",
    )
    service = MeshProxySpec(
        listener_port=8443,
        server_certificate=files,
        routes=(PrefixRoute("/", "app"),),
        app_port=8080,
        upstreams=(backend,),
        egress=(EgressListener(15001, "service_backend"),),
        xff_num_trusted_hops=1,
    )
    return {"gateway": render_mesh_bootstrap(gateway), "service": render_mesh_bootstrap(service)}


def _every_bootstrap() -> dict[str, dict]:
    return {
        "alb-envoy": render_bootstrap(EnvoyProxySpec(app_port=8080)),
        "direct-task": render_bootstrap(EnvoyProxySpec(app_port=8080, trusted_proxy_hops=0)),
        **_mesh_bootstraps(),
    }


def _every_hcm(bootstrap: dict) -> dict[str, dict]:
    """Each listener's HTTP connection manager config, by listener name."""
    found = {}
    for listener in bootstrap["static_resources"]["listeners"]:
        (chain,) = listener["filter_chains"]
        (hcm,) = chain["filters"]
        found[listener["name"]] = hcm["typed_config"]
    return found


BOOTSTRAPS = ["alb-envoy", "direct-task", "gateway", "service"]


@pytest.mark.parametrize("which", BOOTSTRAPS)
def test_a_tls_handshake_must_finish_within_seconds(which: str) -> None:
    from task_contents.envoy.tuning import ECS_DEFAULT_STOP_TIMEOUT_SECONDS

    bootstrap = _every_bootstrap()[which]
    tls_chains = [
        chain
        for listener in bootstrap["static_resources"]["listeners"]
        for chain in listener["filter_chains"]
        if "transport_socket" in chain
    ]
    assert len(tls_chains) == 1  # the ingress listener; health and egress are plain HTTP
    assert tls_chains[0]["transport_socket_connect_timeout"] == "5s"
    assert ECS_DEFAULT_STOP_TIMEOUT_SECONDS >= 5


@pytest.mark.parametrize("which", BOOTSTRAPS)
def test_every_http_listener_bounds_request_heads_and_idle_time(which: str) -> None:
    from task_contents.envoy.tuning import ALB_IDLE_TIMEOUT_SECONDS

    hcms = _every_hcm(_every_bootstrap()[which])
    assert "health" in hcms and len(hcms) >= 2
    for name, hcm in hcms.items():
        assert hcm["request_headers_timeout"] == "10s", name
        options = hcm["common_http_protocol_options"]
        # Downstream idle above the ALB's 60 s, so the ALB closes a pooled connection first.
        assert options["idle_timeout"] == "75s", name
        assert ALB_IDLE_TIMEOUT_SECONDS < 75
        assert options["headers_with_underscores_action"] == "REJECT_REQUEST", name
        # Above the 60 s route timeout: a slow app is answered 504, not reset.
        assert hcm["stream_idle_timeout"] == "65s", name


@pytest.mark.parametrize("which", BOOTSTRAPS)
def test_every_http_listener_limits_http2_and_normalises_paths(which: str) -> None:
    for name, hcm in _every_hcm(_every_bootstrap()[which]).items():
        assert hcm["http2_protocol_options"] == {
            "max_concurrent_streams": 100,
            "initial_stream_window_size": 65536,
            "initial_connection_window_size": 1048576,
        }, name
        assert hcm["normalize_path"] is True, name
        assert hcm["merge_slashes"] is True, name
        assert hcm["path_with_escaped_slashes_action"] == "UNESCAPE_AND_REDIRECT", name


@pytest.mark.parametrize(
    ("which", "listener", "hops"),
    [
        ("alb-envoy", "ingress_tls", 1),  # the ALB appends the client's address
        ("direct-task", "ingress_tls", 0),  # clients connect to Envoy itself
        ("gateway", "ingress_tls", 0),  # the NLB passes TCP and adds no header
        ("service", "ingress_tls", 1),  # the calling Envoy set one trusted address
        ("service", "egress_service_backend", 0),  # the app on loopback
    ],
)
def test_the_app_receives_only_the_trusted_client_address(
    which: str, listener: str, hops: int
) -> None:
    hcm = _every_hcm(_every_bootstrap()[which])[listener]
    assert hcm["use_remote_address"] is True
    assert hcm["xff_num_trusted_hops"] == hops
    for vhost in hcm["route_config"]["virtual_hosts"]:
        assert vhost["request_headers_to_add"] == [
            {
                "header": {
                    "key": "x-forwarded-for",
                    "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
                },
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ]
        assert vhost["request_headers_to_remove"] == ["forwarded", "x-real-ip"]


def test_default_timeouts_hold_for_every_task_size() -> None:
    from task_contents.envoy import ProxyTuning, tuning_for_task

    def timeouts(t: ProxyTuning) -> tuple[int, ...]:
        return (
            t.tls_handshake_timeout_seconds,
            t.request_headers_timeout_seconds,
            t.downstream_idle_timeout_seconds,
            t.stream_idle_timeout_seconds,
        )

    assert timeouts(ProxyTuning()) == (5, 10, 75, 65)
    for cpu, memory in ((256, 512), (4096, 30720)):
        assert timeouts(tuning_for_task(cpu, memory)) == timeouts(ProxyTuning())


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ({"tls_handshake_timeout_seconds": 0}, "positive"),
        ({"tls_handshake_timeout_seconds": 31}, "stop timeout"),
        ({"request_headers_timeout_seconds": 600}, "stop timeout"),
        ({"request_headers_timeout_seconds": False}, "positive"),
        ({"downstream_idle_timeout_seconds": 60}, "ALB"),
        ({"stream_idle_timeout_seconds": -5}, "positive"),
    ],
)
def test_invalid_client_timeouts_are_refused(field: dict, message: str) -> None:
    from task_contents.envoy import ProxyTuning

    with pytest.raises(ValueError, match=message):
        render_bootstrap(EnvoyProxySpec(app_port=8080, tuning=ProxyTuning(**field)))


def test_a_longer_route_timeout_raises_the_stream_idle_timeout_above_it() -> None:
    from task_contents.envoy import ProxyTuning

    spec = EnvoyProxySpec(app_port=8080, route_timeout_seconds=300)
    assert _hcm(render_bootstrap(spec))["stream_idle_timeout"] == "305s"
    # The health listener has no route to the app: the tuning value alone.
    assert _health_hcm(render_bootstrap(spec))["stream_idle_timeout"] == "65s"
    longer = EnvoyProxySpec(app_port=8080, tuning=ProxyTuning(stream_idle_timeout_seconds=120))
    assert _hcm(render_bootstrap(longer))["stream_idle_timeout"] == "120s"


# --------------------------------------------------------------------------- mesh peer names


def _mesh_client_validation(names, spki=()):
    from task_contents.envoy import (
        MeshProxySpec,
        PeerValidation,
        PrefixRoute,
        TlsFiles,
        render_mesh_bootstrap,
    )

    spec = MeshProxySpec(
        listener_port=8443,
        server_certificate=TlsFiles("/certs/chain.pem", "/certs/key.pem"),
        routes=(PrefixRoute("/", "app"),),
        app_port=8080,
        require_client_certificate=True,
        client_validation=PeerValidation("/certs/ca.pem", names, spki),
    )
    listener = render_mesh_bootstrap(spec)["static_resources"]["listeners"][0]
    typed = listener["filter_chains"][0]["transport_socket"]["typed_config"]
    assert typed["require_client_certificate"] is True
    return typed["common_tls_context"]["validation_context"]


def test_mesh_peer_validation_checks_the_chain_the_listed_names_or_refuses_all():
    # None: the chain only.
    assert _mesh_client_validation(None) == {"trusted_ca": {"filename": "/certs/ca.pem"}}
    # Names: one of the peer's DNS SANs must be exactly one of them.
    assert _mesh_client_validation(("a.mesh", "b.mesh"))["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "a.mesh"}},
        {"san_type": "DNS", "matcher": {"exact": "b.mesh"}},
    ]
    # No name: Envoy would read an empty list as "any name", so one matcher matches nothing
    # (real Envoy refuses every caller with it: tests/integration/test_appmesh_envoy.py).
    (never,) = _mesh_client_validation(())["match_typed_subject_alt_names"]
    assert never == {"san_type": "DNS", "matcher": {"safe_regex": {"regex": "[^\\s\\S]"}}}
    # A pinned public key, checked besides the chain.
    assert _mesh_client_validation(None, ("cGlu",)) == {
        "trusted_ca": {"filename": "/certs/ca.pem"},
        "verify_certificate_spki": ["cGlu"],
    }

"""The TLS-terminating sidecar of alb-envoy and direct-task: its spec, its HTTP listener, and
the bootstrap and command line built from them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from task_contents.envoy.api import (
    _HCM_TYPE,
    _ROUTER_TYPE,
    APP_CLUSTER,
    _check_port,
    _client_address_headers,
    _socket_address,
)
from task_contents.envoy.health import (
    DEFAULT_ADMIN_SOCKET_PATH,
    DEFAULT_HEALTH_PORT,
    _admin,
    _check_admin_socket,
    _health_listener,
)
from task_contents.envoy.tls import TLS_VERSIONS, _downstream_tls
from task_contents.envoy.tuning import (
    BUFFER_LIMIT_BYTES,
    DEFAULT_ROUTE_TIMEOUT_SECONDS,
    ProxyTuning,
    _access_log_entries,
    _check_tuning,
    _cluster_tuning,
    _downstream_http_options,
    _handshake_timeout,
    _overload_manager,
)

if TYPE_CHECKING:
    from task_contents.envoy.tls import SdsFiles


@dataclass(frozen=True)
class EnvoyProxySpec:
    """What the sidecar needs to know; defaults suit a Fargate task behind an ALB.

    ``admin_socket_path=None`` starts no admin server at all: serving and health checks do
    not need it; it only helps an operator who execs into the Envoy container.
    """

    app_port: int
    listener_port: int = 8443
    listener_address: str = "0.0.0.0"
    health_port: int = DEFAULT_HEALTH_PORT
    admin_socket_path: str | None = DEFAULT_ADMIN_SOCKET_PATH
    route_timeout_seconds: int = DEFAULT_ROUTE_TIMEOUT_SECONDS
    min_tls_version: str = "TLSv1_2"
    certificate_env: str = "ENVOY_TLS_CERTIFICATE_CHAIN"
    private_key_env: str = "ENVOY_TLS_PRIVATE_KEY"
    tuning: ProxyTuning = ProxyTuning()
    # Proxies in front of Envoy whose X-Forwarded-For entry is believed: 1 behind an ALB
    # (which appends the client's address), 0 when clients connect to the task directly
    # (direct-task), where the header holds only what the client wrote.
    trusted_proxy_hops: int = 1
    # Certificate from an SDS file instead of the two variables: `sds.path` is reloaded
    # whenever an entry is moved into `sds.watched_directory`, so a new certificate reaches
    # a running Envoy (open connections keep theirs). None: the variables, read at start.
    sds: SdsFiles | None = None


def envoy_bound_ports(spec: EnvoyProxySpec) -> dict[str, int]:
    """Every TCP port Envoy listens on for ``spec``, keyed by the spec field that sets it.

    Nothing else in the task may bind these (the app included: it shares the network
    namespace). Not validated, so callers can use it to explain a collision.
    """
    return {"listener_port": spec.listener_port, "health_port": spec.health_port}


def _check_distinct_ports(spec: EnvoyProxySpec) -> None:
    ports = {"app_port": spec.app_port, **envoy_bound_ports(spec)}
    seen: dict[int, str] = {}
    for name, port in ports.items():
        _check_port(name, port)
        if port in seen:
            raise ValueError(
                f"{seen[port]} and {name} must differ (both are {port}): "
                "app_port, listener_port and health_port share one network namespace"
            )
        seen[port] = name


def _validate(spec: EnvoyProxySpec) -> None:
    _check_distinct_ports(spec)
    _check_admin_socket(spec.admin_socket_path)
    hops = spec.trusted_proxy_hops
    if isinstance(hops, bool) or not isinstance(hops, int) or hops < 0:
        raise ValueError(f"trusted_proxy_hops must be an integer >= 0, got {hops!r}")
    timeout = spec.route_timeout_seconds
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        # 0 would disable Envoy's timeout entirely: a hung app would hold streams forever.
        raise ValueError(f"route_timeout_seconds must be a positive integer, got {timeout!r}")
    if spec.min_tls_version not in TLS_VERSIONS:
        raise ValueError(
            f"min_tls_version must be one of {', '.join(TLS_VERSIONS)}, "
            f"got {spec.min_tls_version!r}"
        )
    if not spec.listener_address:
        raise ValueError("listener_address must not be empty")
    for field in ("certificate_env", "private_key_env"):
        if not getattr(spec, field):
            raise ValueError(f"{field} must name an environment variable")
    if spec.certificate_env == spec.private_key_env:
        raise ValueError("certificate_env and private_key_env must be different variables")
    if spec.sds is not None:
        for field in ("path", "watched_directory"):
            value = getattr(spec.sds, field)
            if not isinstance(value, str) or not value.startswith("/"):
                raise ValueError(f"sds.{field} must be an absolute path, got {value!r}")
        if not spec.sds.secret_name:
            raise ValueError("sds.secret_name must not be empty")
    _check_tuning(spec.tuning)


def _http_connection_manager(spec: EnvoyProxySpec) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": _HCM_TYPE,
            "stat_prefix": "ingress_https",
            "codec_type": "AUTO",
            # Behind an ALB the peer is the load balancer; trusting exactly one XFF hop
            # makes Envoy take the client address the ALB appended. With no proxy in front,
            # no hop is trusted: the peer's address is the client's. Either way the app gets
            # that address alone (_client_address_headers), never what the client wrote.
            "use_remote_address": True,
            "xff_num_trusted_hops": spec.trusted_proxy_hops,
            **_downstream_http_options(spec.tuning, spec.route_timeout_seconds),
            # Default server header handling (Envoy overwrites it with "envoy") is kept:
            # passing through the app's own Server header would leak framework versions.
            "route_config": {
                "name": "local_app",
                "virtual_hosts": [
                    {
                        "name": "app",
                        "domains": ["*"],
                        **_client_address_headers(),
                        "routes": [
                            {
                                "match": {"prefix": "/"},
                                "route": {
                                    "cluster": APP_CLUSTER,
                                    "timeout": f"{spec.route_timeout_seconds}s",
                                },
                            }
                        ],
                    }
                ],
            },
            "http_filters": [
                {"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER_TYPE}}
            ],
            "access_log": _access_log_entries(spec.tuning),
        },
    }


def render_bootstrap(spec: EnvoyProxySpec) -> dict[str, Any]:
    """Return the Envoy v3 bootstrap for ``spec`` as plain data; raises ValueError if invalid."""
    _validate(spec)
    bootstrap: dict[str, Any] = {
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress_tls",
                    "address": _socket_address(spec.listener_address, spec.listener_port),
                    # Edge best practice (32 KiB, not 1 MiB): bounds memory per connection.
                    "per_connection_buffer_limit_bytes": BUFFER_LIMIT_BYTES,
                    "filter_chains": [
                        {
                            "filters": [_http_connection_manager(spec)],
                            "transport_socket": _downstream_tls(spec),
                            **_handshake_timeout(spec.tuning),
                        }
                    ],
                },
                _health_listener(spec),
            ],
            "clusters": [
                {
                    "name": APP_CLUSTER,
                    # The app shares the task's network namespace (awsvpc), so a fixed
                    # loopback endpoint is all that is needed: no DNS, no discovery.
                    "type": "STATIC",
                    "connect_timeout": "3s",
                    **_cluster_tuning(spec.tuning),
                    "load_assignment": {
                        "cluster_name": APP_CLUSTER,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": _socket_address("127.0.0.1", spec.app_port)
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ],
        },
    }
    bootstrap["overload_manager"] = _overload_manager(spec.tuning)
    if spec.sds is not None:
        # Envoy refuses any SDS subscription, file-based too, without a node id and cluster;
        # nothing else reads them here (no management server).
        bootstrap["node"] = {"id": "ecs-task", "cluster": "ecs-tls"}
    # Without an admin address Envoy starts no admin server at all.
    if spec.admin_socket_path is not None:
        bootstrap["admin"] = _admin(spec)
    return bootstrap


def render_bootstrap_yaml(spec: EnvoyProxySpec) -> str:
    """Render the bootstrap as deterministic text for ``envoy --config-yaml``.

    Compact, key-sorted JSON is valid YAML, fits in a single container command argument
    and produces byte-identical output for equal specs (stable Pulumi diffs).
    """
    return json.dumps(render_bootstrap(spec), sort_keys=True, separators=(",", ":"))


def envoy_args(spec: EnvoyProxySpec, flush_interval_ms: int = 1000) -> list[str]:
    """Arguments for the stock Envoy image: the whole bootstrap travels in the command.

    `--config-yaml` avoids a custom image or a config file on a volume. The stdout access
    log is flushed every second instead of Envoy's default ten, so logs reach CloudWatch
    promptly. `--concurrency` is the task's worker count (see ProxyTuning).
    """
    return [
        "--config-yaml",
        render_bootstrap_yaml(spec),
        "--log-level",
        "info",
        "--file-flush-interval-msec",
        str(flush_interval_ms),
        "--concurrency",
        str(spec.tuning.concurrency),
    ]

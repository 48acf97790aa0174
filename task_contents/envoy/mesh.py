"""The App Mesh topology (appmesh-efs) runs the same stock Envoy as a gateway and as each
service's sidecar. What App Mesh's control plane generated is built here as a static
bootstrap: TLS material read from files (an EFS volume mounted read-only), optional
mutual TLS, prefix routes to several clusters, and upstream clusters that resolve a Cloud
Map DNS name (STRICT_DNS) and check the peer's certificate chain and name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from task_contents.envoy.api import (
    _HCM_TYPE,
    _PROXY_PROTOCOL_TYPE,
    _ROUTER_TYPE,
    APP_CLUSTER,
    _check_port,
    _client_address_headers,
    _socket_address,
)
from task_contents.envoy.clusters import (
    DEFAULT_DNS_REFRESH_MS,
    DEFAULT_UPSTREAM_RETRIES,
    MAX_UPSTREAM_RETRIES,
    _mesh_clusters,
    _upstream_retry_policy,
)
from task_contents.envoy.health import (
    DEFAULT_ADMIN_SOCKET_PATH,
    DEFAULT_HEALTH_PORT,
    _admin,
    _check_admin_socket,
    _health_listener,
)
from task_contents.envoy.tls import TLS_VERSIONS, _mesh_downstream_tls
from task_contents.envoy.tuning import (
    BUFFER_LIMIT_BYTES,
    DEFAULT_ROUTE_TIMEOUT_SECONDS,
    ProxyTuning,
    _access_log_entries,
    _check_tuning,
    _downstream_http_options,
    _handshake_timeout,
    _overload_manager,
)

if TYPE_CHECKING:
    from task_contents.envoy.clusters import UpstreamCluster
    from task_contents.envoy.tls import PeerValidation, TlsFiles


@dataclass(frozen=True)
class PrefixRoute:
    """Requests whose path starts with `prefix` go to `cluster`, optionally rewriting it."""

    prefix: str
    cluster: str
    prefix_rewrite: str | None = None


@dataclass(frozen=True)
class EgressListener:
    """Plain HTTP on 127.0.0.1:`port` that the app calls; Envoy re-encrypts to `cluster`."""

    port: int
    cluster: str


@dataclass(frozen=True)
class MeshProxySpec:
    """A gateway (routes to upstreams) or a service sidecar (routes to the local app).

    ``app_port`` adds the loopback cluster ``app`` (a sidecar). ``require_client_certificate``
    with ``client_validation`` is the service side of mutual TLS.
    """

    listener_port: int
    server_certificate: TlsFiles
    routes: tuple[PrefixRoute, ...]
    upstreams: tuple[UpstreamCluster, ...] = ()
    app_port: int | None = None
    require_client_certificate: bool = False
    client_validation: PeerValidation | None = None
    egress: tuple[EgressListener, ...] = ()
    listener_address: str = "0.0.0.0"
    health_port: int = DEFAULT_HEALTH_PORT
    admin_socket_path: str | None = DEFAULT_ADMIN_SOCKET_PATH
    route_timeout_seconds: int = DEFAULT_ROUTE_TIMEOUT_SECONDS
    min_tls_version: str = "TLSv1_2"
    dns_refresh_ms: int = DEFAULT_DNS_REFRESH_MS
    # Proxies in front of this one that append to X-Forwarded-For (0 for a gateway that
    # clients reach through a TCP load balancer, 1 behind the gateway).
    xff_num_trusted_hops: int = 0
    stat_prefix: str = "ingress_https"
    tuning: ProxyTuning = ProxyTuning()
    # Tries of a request to another upstream host after a connection failure or reset (0:
    # none), and ejection of hosts that keep failing: a task stopping mid-rollout costs
    # its callers no 503 (see _upstream_retry_policy, _outlier_detection).
    upstream_retries: int = DEFAULT_UPSTREAM_RETRIES
    outlier_detection: bool = True
    # A load balancer in front prepends a PROXY protocol v2 header (NLB target group
    # proxy_protocol_v2): the listener requires it and takes the client's address from it.
    proxy_protocol: bool = False


def mesh_bound_ports(spec: MeshProxySpec) -> dict[str, int]:
    """Every TCP port the mesh proxy binds (the app must not bind any of them)."""
    ports = {"listener_port": spec.listener_port, "health_port": spec.health_port}
    for listener in spec.egress:
        ports[f"egress {listener.cluster}"] = listener.port
    return ports


def _validate_mesh(spec: MeshProxySpec) -> None:
    ports = dict(mesh_bound_ports(spec))
    if spec.app_port is not None:
        ports = {"app_port": spec.app_port, **ports}
    seen: dict[int, str] = {}
    for name, port in ports.items():
        _check_port(name, port)
        if port in seen:
            raise ValueError(f"{seen[port]} and {name} must differ (both are {port})")
        seen[port] = name
    _check_admin_socket(spec.admin_socket_path)
    if spec.min_tls_version not in TLS_VERSIONS:
        raise ValueError(f"min_tls_version must be one of {', '.join(TLS_VERSIONS)}")
    if spec.require_client_certificate and spec.client_validation is None:
        raise ValueError("require_client_certificate needs client_validation (a trusted CA)")
    if not spec.routes:
        raise ValueError("a mesh proxy needs at least one route")
    clusters = {u.name for u in spec.upstreams} | ({APP_CLUSTER} if spec.app_port else set())
    if len(clusters) != len(spec.upstreams) + (1 if spec.app_port else 0):
        raise ValueError("cluster names must be unique (and not 'app' for an upstream)")
    for target in [r.cluster for r in spec.routes] + [e.cluster for e in spec.egress]:
        if target not in clusters:
            raise ValueError(f"route or egress to unknown cluster {target!r}")
    prefixes = [r.prefix for r in spec.routes]
    if len(set(prefixes)) != len(prefixes) or not all(p.startswith("/") for p in prefixes):
        raise ValueError("route prefixes must be distinct and start with '/'")
    if spec.dns_refresh_ms < 1000:
        raise ValueError("dns_refresh_ms must be at least 1000")
    retries = spec.upstream_retries
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise ValueError(f"upstream_retries must be an integer, got {retries!r}")
    if not 0 <= retries <= MAX_UPSTREAM_RETRIES:
        raise ValueError(f"upstream_retries must be in 0..{MAX_UPSTREAM_RETRIES}")
    _check_tuning(spec.tuning)


def _route_entry(route: PrefixRoute, timeout_seconds: int, retries: int = 0) -> dict[str, Any]:
    action: dict[str, Any] = {"cluster": route.cluster, "timeout": f"{timeout_seconds}s"}
    if route.prefix_rewrite is not None:
        action["prefix_rewrite"] = route.prefix_rewrite
    # The app on loopback is one host: retrying it elsewhere is impossible.
    if retries and route.cluster != APP_CLUSTER:
        action["retry_policy"] = _upstream_retry_policy(retries)
    return {"match": {"prefix": route.prefix}, "route": action}


def _mesh_hcm(
    stat_prefix: str,
    routes: tuple[PrefixRoute, ...],
    timeout_seconds: int,
    xff_hops: int,
    tuning: ProxyTuning,
    retries: int = 0,
) -> dict[str, Any]:
    # Envoy takes the first route that matches: the longest prefix goes first, so `/` never
    # hides `/api` (App Mesh also picked the most specific gateway route).
    ordered = sorted(routes, key=lambda r: (-len(r.prefix), r.prefix))
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": _HCM_TYPE,
            "stat_prefix": stat_prefix,
            "codec_type": "AUTO",
            "use_remote_address": True,
            # Gateway: 0 (the NLB passes TCP and adds no header). Service: 1, the calling
            # Envoy, which already replaced the header by one trusted address.
            "xff_num_trusted_hops": xff_hops,
            **_downstream_http_options(tuning, timeout_seconds),
            "route_config": {
                "name": stat_prefix,
                "virtual_hosts": [
                    {
                        "name": stat_prefix,
                        "domains": ["*"],
                        **_client_address_headers(),
                        "routes": [_route_entry(r, timeout_seconds, retries) for r in ordered],
                    }
                ],
            },
            "http_filters": [
                {"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER_TYPE}}
            ],
            "access_log": _access_log_entries(tuning),
        },
    }


def render_mesh_bootstrap(spec: MeshProxySpec) -> dict[str, Any]:
    """The Envoy v3 bootstrap of a mesh gateway or sidecar; raises ValueError if invalid."""
    _validate_mesh(spec)
    listeners: list[dict[str, Any]] = [
        {
            "name": "ingress_tls",
            "address": _socket_address(spec.listener_address, spec.listener_port),
            "per_connection_buffer_limit_bytes": BUFFER_LIMIT_BYTES,
            "filter_chains": [
                {
                    "filters": [
                        _mesh_hcm(
                            spec.stat_prefix,
                            spec.routes,
                            spec.route_timeout_seconds,
                            spec.xff_num_trusted_hops,
                            spec.tuning,
                            spec.upstream_retries,
                        )
                    ],
                    "transport_socket": _mesh_downstream_tls(spec),
                    **_handshake_timeout(spec.tuning),
                }
            ],
            # drain_listeners?inboundonly (mesh_drain_command) drains this one only: the
            # app keeps its egress listeners while its task stops.
            "traffic_direction": "INBOUND",
        }
    ]
    if spec.proxy_protocol:
        # Required, not optional: only the load balancer reaches this port (security
        # groups), and it sends the header on every connection; its health checks send
        # one too, with the LOCAL command (no client address), which the filter accepts
        # (ELB guide, "Proxy protocol" of Network Load Balancer target groups). Envoy then
        # sees the client's address as the downstream address: use_remote_address writes it
        # into X-Forwarded-For and the access log.
        listeners[0]["listener_filters"] = [
            {
                "name": "envoy.filters.listener.proxy_protocol",
                "typed_config": {"@type": _PROXY_PROTOCOL_TYPE},
            }
        ]
    for egress in spec.egress:
        # Loopback only: the app of this task is the only caller; the hop leaving the task
        # is the upstream cluster's TLS.
        listeners.append(
            {
                "name": f"egress_{egress.cluster}",
                "address": _socket_address("127.0.0.1", egress.port),
                "filter_chains": [
                    {
                        "filters": [
                            _mesh_hcm(
                                f"egress_{egress.cluster}",
                                (PrefixRoute("/", egress.cluster),),
                                spec.route_timeout_seconds,
                                0,
                                spec.tuning,
                                spec.upstream_retries,
                            )
                        ]
                    }
                ],
                "traffic_direction": "OUTBOUND",
            }
        )
    listeners.append(_health_listener(spec))  # type: ignore[arg-type]  # reads health_port
    bootstrap: dict[str, Any] = {
        "static_resources": {"listeners": listeners, "clusters": _mesh_clusters(spec)},
        "overload_manager": _overload_manager(spec.tuning),
    }
    if spec.admin_socket_path is not None:
        bootstrap["admin"] = _admin(spec)  # type: ignore[arg-type]  # reads the socket path
    return bootstrap


def render_mesh_bootstrap_yaml(spec: MeshProxySpec) -> str:
    """Deterministic compact JSON (valid YAML) for `envoy --config-yaml`."""
    return json.dumps(render_mesh_bootstrap(spec), sort_keys=True, separators=(",", ":"))


def mesh_envoy_args(spec: MeshProxySpec, flush_interval_ms: int = 1000) -> list[str]:
    """Arguments for the stock Envoy image with the whole mesh bootstrap inline."""
    return [
        "--config-yaml",
        render_mesh_bootstrap_yaml(spec),
        "--log-level",
        "info",
        "--file-flush-interval-msec",
        str(flush_interval_ms),
        "--concurrency",
        str(spec.tuning.concurrency),
    ]

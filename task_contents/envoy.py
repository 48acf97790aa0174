"""Bootstrap builder for the Envoy TLS-terminating sidecar of an ECS task.

The sidecar accepts TLS on ``listener_port`` and forwards plain HTTP to the application
container over the task's loopback interface (``127.0.0.1:app_port``), so the application
never handles certificates and the traffic is encrypted everywhere it leaves the task.

All containers of an awsvpc task share one network namespace, so anything Envoy binds on
127.0.0.1 is reachable by the application container too. Envoy therefore binds only two TCP
ports: the TLS listener and a health listener that can do nothing but answer health checks.
The unauthenticated admin API lives on a Unix socket in Envoy's own container file system,
which the application container cannot see.

This module is deliberately pure (no Pulumi, no I/O): the same dictionary is rendered into
the ECS container definition and fed to a real ``envoy`` binary by the integration tests,
so what is tested is exactly what is deployed. Only the Envoy v3 API is used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACCESS_LOG_MODES",
    "ADMIN_SOCKET_MODE",
    "DEFAULT_ADMIN_SOCKET_PATH",
    "DEFAULT_HEALTH_PORT",
    "DEFAULT_ROUTE_TIMEOUT_SECONDS",
    "HEALTH_PATH",
    "TLS_VERSIONS",
    "EgressListener",
    "EnvoyProxySpec",
    "MeshProxySpec",
    "PeerValidation",
    "PrefixRoute",
    "ProxyTuning",
    "SdsFiles",
    "TlsFiles",
    "UpstreamCluster",
    "envoy_args",
    "envoy_bound_ports",
    "mesh_bound_ports",
    "mesh_drain_command",
    "mesh_envoy_args",
    "mesh_stop_timeout",
    "ready_check_command",
    "render_bootstrap",
    "render_bootstrap_yaml",
    "render_mesh_bootstrap",
    "render_mesh_bootstrap_yaml",
    "tuning_for_task",
]

# Envoy's TlsParameters.TlsProtocol enum names we allow as a floor. Anything older than
# TLS 1.2 is not offered on purpose: it is deprecated (RFC 8996) and fails most compliance
# baselines.
TLS_VERSIONS = ("TLSv1_2", "TLSv1_3")

APP_CLUSTER = "app"

# /tmp of the Envoy container: writable by the image's unprivileged envoy user and private
# to that container, as long as no task volume is mounted there.
DEFAULT_ADMIN_SOCKET_PATH = "/tmp/envoy-admin.sock"
# Owner read/write only: whoever else shares the container cannot connect either.
ADMIN_SOCKET_MODE = 0o600
DEFAULT_HEALTH_PORT = 9902
HEALTH_PATH = "/health"
# The ALB waits for a target's response for its idle timeout, 60 s by default
# (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html#connection-idle-timeout).
# Envoy's own route default is 15 s
# (https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/route/v3/route_components.proto,
# RouteAction.timeout): anything shorter than the ALB's budget turns a slow but valid
# answer into an Envoy 504. Envoy's timeout runs until the response is complete, so a
# response streamed for longer than this is cut even while data flows.
DEFAULT_ROUTE_TIMEOUT_SECONDS = 60

# sun_path holds 108 bytes on Linux, one of them the terminating NUL.
_MAX_SOCKET_PATH_BYTES = 107

_TYPE_PREFIX = "type.googleapis.com/"
_HCM_TYPE = _TYPE_PREFIX + (
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
_ROUTER_TYPE = _TYPE_PREFIX + "envoy.extensions.filters.http.router.v3.Router"
_HEALTH_CHECK_TYPE = _TYPE_PREFIX + "envoy.extensions.filters.http.health_check.v3.HealthCheck"
_DOWNSTREAM_TLS_TYPE = (
    _TYPE_PREFIX + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
)
_STDOUT_LOG_TYPE = _TYPE_PREFIX + "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
_FIXED_HEAP_TYPE = _TYPE_PREFIX + "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig"
_DOWNSTREAM_CONNECTIONS_TYPE = _TYPE_PREFIX + (
    "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig"
)
_HTTP_PROTOCOL_OPTIONS_TYPE = (
    _TYPE_PREFIX + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

# Fields of the per-request JSON access log line. Written to stdout so the ECS awslogs /
# FireLens driver ships it like any other container output; one JSON object per line keeps
# it queryable in CloudWatch Logs Insights without a parser.
_ACCESS_LOG_FORMAT = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration_ms": "%DURATION%",
    "upstream_host": "%UPSTREAM_HOST%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "tls_version": "%DOWNSTREAM_TLS_VERSION%",
}


# --------------------------------------------------------------------------- tuning
#
# Sizing that depends on the task the proxy runs in. Numbers quoted as "measured" come from
# `./benchmarks/run` on a 2-vCPU machine (docs/performance.md).

ACCESS_LOG_MODES = ("all", "sampled", "off")
# Below the keep-alive of the apps the topologies run by default: nginx closes an idle client
# connection after 75 s (keepalive_timeout, https://nginx.org/en/docs/http/ngx_http_core_module.html#keepalive_timeout),
# and Envoy's own upstream default is one hour (Envoy FAQ "How do I configure timeouts?").
# When the app closes first, a request Envoy sends on that connection at the same moment
# fails with a 503 (upstream connect error / UC). The ALB applies the same rule to its
# targets: their keep-alive must outlast its 60 s idle timeout; Envoy is the client here.
DEFAULT_UPSTREAM_IDLE_TIMEOUT_SECONDS = 50
# One Envoy worker per full vCPU (1024 units): a worker is one event-loop thread, and
# Envoy starts one per *visible* core by default (`--concurrency`, Envoy CLI docs), which
# on Fargate is the host's cores, not the task's share. More workers than CPU time only add
# memory (per-worker connection pools) and context switches.
CPU_UNITS_PER_WORKER = 1024
# The share of the task's memory Envoy's heap may use: a sidecar shares the task with the
# app; a gateway task runs Envoy alone and keeps a quarter for what is not heap (binary,
# thread stacks, kernel socket buffers are not counted by the fixed_heap monitor).
SIDECAR_MEMORY_SHARE = 0.25
GATEWAY_MEMORY_SHARE = 0.75
# Envoy's edge example sets 2 GiB; beyond that a single proxy holds more connections than
# its CPU can serve anyway.
MAX_HEAP_MIB = 2048
# Heap budgeted per open downstream connection: Envoy's RSS grows by ~13 KiB per idle TLS
# connection (benchmark, "KiB per open TLS connection"), and the 32 KiB buffer limit below
# bounds what a busy connection buffers in each direction (2 x 32 KiB), so 128 KiB covers a
# connection with a request in flight. The flood test shows the default (1024 connections)
# keeps RSS far below the 128 MiB heap limit.
HEAP_PER_CONNECTION_BYTES = 128 * 1024
# Listener and cluster buffer limit recommended for edge proxies (Envoy "Configuring Envoy as
# an edge proxy": 32 KiB; Envoy's own default is 1 MiB per connection).
BUFFER_LIMIT_BYTES = 32 * 1024
# Upstream requests (circuit breaker) per 256 CPU units: an app spending 1 ms of CPU per
# request serves ~250 req/s on a quarter vCPU, so 256 requests in flight are already about
# a second of queue; Envoy's default of 1024 (Cluster.CircuitBreakers.Thresholds) would
# queue four times longer before answering 503 (flag UO). Scaled with the task's CPU.
UPSTREAM_REQUESTS_PER_256_UNITS = 256

# Client-facing timeouts. Envoy's defaults suit a mesh, not an edge: without a handshake
# timeout a TCP connection that never sends a ClientHello holds a connection slot until the
# idle timeout (1 hour), so a few hundred silent sockets lock every client out (Envoy
# "Configuring Envoy as an edge proxy"; FAQ "How do I configure timeouts?").
#
# The ALB's idle timeout (AWS default; this program does not change it).
ALB_IDLE_TIMEOUT_SECONDS = 60
# What ECS waits between SIGTERM and SIGKILL when a container sets no stopTimeout (the
# Envoy container does not). A handshake or a request head may not take longer than that.
ECS_DEFAULT_STOP_TIMEOUT_SECONDS = 30
# FilterChain.transport_socket_connect_timeout: TLS 1.3 needs one round trip, 1.2 two; even
# a 500 ms mobile RTT with loss finishes well inside 5 s, and a silent socket is gone by then.
DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECONDS = 5
# HCM request_headers_timeout runs from the first byte of a request head to its last one:
# a real client sends a head in one write; a slowloris dribbling header bytes is cut here.
DEFAULT_REQUEST_HEADERS_TIMEOUT_SECONDS = 10
# HCM common_http_protocol_options.idle_timeout (a connection with no stream). Above the
# ALB's idle timeout so the ALB always closes a pooled connection first: if Envoy closed it,
# a request the ALB sends at that moment fails with a 502 (AWS recommends an application idle
# timeout larger than the load balancer's, edit-load-balancer-attributes.html
# #connection-idle-timeout). 15 s of margin; still minutes below Envoy's 1 hour default.
DEFAULT_DOWNSTREAM_IDLE_TIMEOUT_SECONDS = 75
# HCM stream_idle_timeout (no byte either way on one request): Envoy's default is 300 s.
# A client that stops sending a body mid-request frees its stream after this instead of
# five minutes. Never below a route timeout plus this margin, so a slow app is answered 504
# by the route timeout rather than reset by this one (a longer route timeout raises it).
DEFAULT_STREAM_IDLE_TIMEOUT_SECONDS = 65
STREAM_IDLE_MARGIN_SECONDS = 5
# Http2ProtocolOptions recommended for edge proxies (Envoy "Configuring Envoy as an edge
# proxy"): 100 streams per connection instead of 2^31 - 1, and 64 KiB per stream / 1 MiB per
# connection of flow-control window instead of 256 MiB, so one client cannot make Envoy
# buffer hundreds of megabytes.
H2_MAX_CONCURRENT_STREAMS = 100
H2_INITIAL_STREAM_WINDOW_BYTES = 64 * 1024
H2_INITIAL_CONNECTION_WINDOW_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ProxyTuning:
    """Resource limits of one Envoy; the defaults fit the smallest Fargate task (256/512).

    ``tuning_for_task`` derives them from a task's size. ``access_log`` is ``all`` (one JSON
    line per request, the historical behaviour), ``sampled`` (``access_log_sample_percent``
    of requests) or ``off``.
    """

    concurrency: int = 1
    upstream_idle_timeout_seconds: int = DEFAULT_UPSTREAM_IDLE_TIMEOUT_SECONDS
    max_heap_bytes: int = 128 * 1024 * 1024
    max_downstream_connections: int = 1024
    max_upstream_requests: int = UPSTREAM_REQUESTS_PER_256_UNITS
    access_log: str = "all"
    access_log_sample_percent: int = 10
    tls_handshake_timeout_seconds: int = DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECONDS
    request_headers_timeout_seconds: int = DEFAULT_REQUEST_HEADERS_TIMEOUT_SECONDS
    downstream_idle_timeout_seconds: int = DEFAULT_DOWNSTREAM_IDLE_TIMEOUT_SECONDS
    stream_idle_timeout_seconds: int = DEFAULT_STREAM_IDLE_TIMEOUT_SECONDS


def tuning_for_task(
    cpu_units: int,
    memory_mib: int,
    *,
    memory_share: float = SIDECAR_MEMORY_SHARE,
    access_log: str = "all",
    upstream_idle_timeout_seconds: int = DEFAULT_UPSTREAM_IDLE_TIMEOUT_SECONDS,
) -> ProxyTuning:
    """Worker count, heap and connection limits, circuit breakers for a task of this size."""
    if cpu_units < 1 or memory_mib < 1 or not 0 < memory_share <= 1:
        raise ValueError("cpu_units and memory_mib must be positive, memory_share in (0, 1]")
    heap_mib = max(64, min(MAX_HEAP_MIB, int(memory_mib * memory_share)))
    heap_bytes = heap_mib * 1024 * 1024
    return ProxyTuning(
        concurrency=max(1, cpu_units // CPU_UNITS_PER_WORKER),
        upstream_idle_timeout_seconds=upstream_idle_timeout_seconds,
        max_heap_bytes=heap_bytes,
        max_downstream_connections=heap_bytes // HEAP_PER_CONNECTION_BYTES,
        max_upstream_requests=UPSTREAM_REQUESTS_PER_256_UNITS * max(1, cpu_units // 256),
        access_log=access_log,
    )


def _check_tuning(t: ProxyTuning) -> None:
    for name in (
        "concurrency",
        "upstream_idle_timeout_seconds",
        "max_heap_bytes",
        "max_downstream_connections",
        "max_upstream_requests",
        "tls_handshake_timeout_seconds",
        "request_headers_timeout_seconds",
        "downstream_idle_timeout_seconds",
        "stream_idle_timeout_seconds",
    ):
        value = getattr(t, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"tuning.{name} must be a positive integer, got {value!r}")
    for name in ("tls_handshake_timeout_seconds", "request_headers_timeout_seconds"):
        if getattr(t, name) > ECS_DEFAULT_STOP_TIMEOUT_SECONDS:
            raise ValueError(
                f"tuning.{name} must be at most {ECS_DEFAULT_STOP_TIMEOUT_SECONDS} "
                "(the container's stop timeout): a client must not hold a slot longer"
            )
    if t.downstream_idle_timeout_seconds <= ALB_IDLE_TIMEOUT_SECONDS:
        raise ValueError(
            f"tuning.downstream_idle_timeout_seconds must exceed the ALB's idle timeout "
            f"({ALB_IDLE_TIMEOUT_SECONDS} s) so the ALB closes idle connections first"
        )
    if t.access_log not in ACCESS_LOG_MODES:
        raise ValueError(f"tuning.access_log must be one of {', '.join(ACCESS_LOG_MODES)}")
    if not 1 <= t.access_log_sample_percent <= 100:
        raise ValueError("tuning.access_log_sample_percent must be in 1..100")


def _access_log_entries(t: ProxyTuning) -> list[dict[str, Any]]:
    if t.access_log == "off":
        return []
    entry: dict[str, Any] = {
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": _STDOUT_LOG_TYPE,
            "log_format": {"json_format": dict(_ACCESS_LOG_FORMAT)},
        },
    }
    if t.access_log == "sampled":
        # AccessLogFilter.runtime_filter: the percentage is the default of a runtime key
        # nobody sets, so it is fixed by this bootstrap; independent randomness samples
        # requests rather than whole request-id families.
        entry["filter"] = {
            "runtime_filter": {
                "runtime_key": "access_log.sample_percent",
                "percent_sampled": {
                    "numerator": t.access_log_sample_percent,
                    "denominator": "HUNDRED",
                },
                "use_independent_randomness": True,
            }
        }
    return [entry]


def _overload_manager(t: ProxyTuning) -> dict[str, Any]:
    # Envoy "Configuring Envoy as an edge proxy" and "Overload manager": fixed_heap reports
    # reserved heap / max_heap_size_bytes; shrink_heap returns free pages to the system,
    # stop_accepting_requests answers new requests 503 instead of growing until the task
    # is OOM-killed (which drops every connection at once). The downstream connections
    # monitor (DownstreamConnectionsConfig) is checked at accept time and closes the
    # connections past the limit immediately: a flood is refused before TLS costs anything.
    heap = "envoy.resource_monitors.fixed_heap"
    return {
        "refresh_interval": "0.25s",
        "resource_monitors": [
            {
                "name": heap,
                "typed_config": {
                    "@type": _FIXED_HEAP_TYPE,
                    "max_heap_size_bytes": t.max_heap_bytes,
                },
            },
            {
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": _DOWNSTREAM_CONNECTIONS_TYPE,
                    "max_active_downstream_connections": t.max_downstream_connections,
                },
            },
        ],
        "actions": [
            {
                "name": "envoy.overload_actions.shrink_heap",
                "triggers": [{"name": heap, "threshold": {"value": 0.9}}],
            },
            {
                "name": "envoy.overload_actions.stop_accepting_requests",
                "triggers": [{"name": heap, "threshold": {"value": 0.95}}],
            },
        ],
    }


def _cluster_tuning(t: ProxyTuning) -> dict[str, Any]:
    """Fields added to every upstream cluster."""
    return {
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT_BYTES,
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _HTTP_PROTOCOL_OPTIONS_TYPE,
                "common_http_protocol_options": {
                    "idle_timeout": f"{t.upstream_idle_timeout_seconds}s"
                },
                # HTTP/1.1 to the app (what it spoke before this option existed).
                "explicit_http_config": {"http_protocol_options": {}},
            }
        },
        # Cluster.circuit_breakers: beyond these Envoy answers 503 (flag UO) at once
        # instead of queueing behind a saturated app.
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": "DEFAULT",
                    "max_connections": t.max_upstream_requests,
                    "max_pending_requests": t.max_upstream_requests,
                    "max_requests": t.max_upstream_requests,
                    "max_retries": 3,
                }
            ]
        },
    }


def _downstream_http_options(t: ProxyTuning, route_timeout_seconds: int | None) -> dict[str, Any]:
    """Fields of every HTTP connection manager a client talks to (edge best practices);
    `route_timeout_seconds` of its routes to the app, None when it answers by itself."""
    stream_idle = t.stream_idle_timeout_seconds
    if route_timeout_seconds is not None:
        stream_idle = max(stream_idle, route_timeout_seconds + STREAM_IDLE_MARGIN_SECONDS)
    return {
        "request_headers_timeout": f"{t.request_headers_timeout_seconds}s",
        "stream_idle_timeout": f"{stream_idle}s",
        "common_http_protocol_options": {
            "idle_timeout": f"{t.downstream_idle_timeout_seconds}s",
            # Apps behind CGI/WSGI-style gateways read `X_Forwarded_For` and
            # `X-Forwarded-For` as the same variable (HTTP_X_FORWARDED_FOR): a client could
            # shadow a header Envoy set. Refused with 400 instead of dropped, so it is seen.
            "headers_with_underscores_action": "REJECT_REQUEST",
        },
        "http2_protocol_options": {
            "max_concurrent_streams": H2_MAX_CONCURRENT_STREAMS,
            "initial_stream_window_size": H2_INITIAL_STREAM_WINDOW_BYTES,
            "initial_connection_window_size": H2_INITIAL_CONNECTION_WINDOW_BYTES,
        },
        # The path the app sees is the path Envoy routed on (the mesh gateway routes by
        # prefix): dot segments resolved, `//` merged, and `%2F`/`%5C` answered with a
        # redirect to the unescaped path, as the edge guide recommends against path confusion.
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
    }


# Envoy's trusted client address is the Nth X-Forwarded-For entry from the right, N being
# xff_num_trusted_hops (0: the peer itself); but Envoy forwards every entry before it too,
# and most frameworks believe the leftmost one, which the client wrote. So the header the
# app receives is replaced by the trusted address alone. Behind the ALB (one hop) that is the
# address the ALB appended, the only entry it vouches for; anything the client put in front
# of it is dropped. With clients connecting directly (no hop) it is the peer's address.
# %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% is that trusted address (Envoy access log
# format: "inferred from x-forwarded-for" when hops are trusted). `Forwarded` (RFC 7239)
# and `X-Real-IP` carry the same claim in other spellings and no proxy here sets them.
_CLIENT_ADDRESS_HEADER = "x-forwarded-for"
_UNTRUSTED_ADDRESS_HEADERS = ("forwarded", "x-real-ip")


def _handshake_timeout(t: ProxyTuning) -> dict[str, Any]:
    """FilterChain field of a TLS filter chain: a connection whose handshake has not finished
    by then is closed, so silent sockets cannot keep the connection limit full."""
    return {"transport_socket_connect_timeout": f"{t.tls_handshake_timeout_seconds}s"}


def _client_address_headers() -> dict[str, Any]:
    """Virtual host fields: the app sees one X-Forwarded-For entry, the trusted one."""
    return {
        "request_headers_to_add": [
            {
                "header": {
                    "key": _CLIENT_ADDRESS_HEADER,
                    "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
                },
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ],
        "request_headers_to_remove": list(_UNTRUSTED_ADDRESS_HEADERS),
    }


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


@dataclass(frozen=True)
class SdsFiles:
    """A listener certificate served through SDS from the file system.

    PathConfigSource (Envoy v3, config/core/v3/config_source.proto): the file at `path` holds
    a DiscoveryResponse with one tls Secret named `secret_name`; with `watched_directory` set,
    Envoy re-reads `path` when an entry is moved into that directory (the atomic swap of a
    symlink), and not on writes. `path` must exist when Envoy loads its bootstrap.
    """

    path: str
    watched_directory: str
    secret_name: str = "listener_certificate"


def envoy_bound_ports(spec: EnvoyProxySpec) -> dict[str, int]:
    """Every TCP port Envoy listens on for ``spec``, keyed by the spec field that sets it.

    Nothing else in the task may bind these (the app included: it shares the network
    namespace). Not validated, so callers can use it to explain a collision.
    """
    return {"listener_port": spec.listener_port, "health_port": spec.health_port}


def _check_port(name: str, value: object) -> None:
    # bool is an int subclass; True as a port is always a bug.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{name} must be an integer in 1..65535, got {value!r}")


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


def _check_admin_socket(path: str | None) -> None:
    if path is None:
        return
    # Filesystem sockets only: an abstract socket ('@...') belongs to the network
    # namespace, which the app container shares, and ignores the file mode.
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"admin_socket_path must be an absolute file path, got {path!r}")
    if len(path.encode()) > _MAX_SOCKET_PATH_BYTES:
        raise ValueError(
            f"admin_socket_path must be at most {_MAX_SOCKET_PATH_BYTES} bytes, got {path!r}"
        )


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


def _socket_address(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def _listener_certificate(spec: EnvoyProxySpec) -> dict[str, Any]:
    if spec.sds is not None:
        return {
            "tls_certificate_sds_secret_configs": [
                {
                    "name": spec.sds.secret_name,
                    "sds_config": {
                        "resource_api_version": "V3",
                        "path_config_source": {
                            "path": spec.sds.path,
                            "watched_directory": {"path": spec.sds.watched_directory},
                        },
                    },
                }
            ]
        }
    # Environment-variable data sources (Envoy >= 1.21): ECS injects the PEMs from Secrets
    # Manager / SSM as container env vars, so the stock Envoy image works unchanged and the
    # key never lands on a file system or in the config.
    return {
        "tls_certificates": [
            {
                "certificate_chain": {"environment_variable": spec.certificate_env},
                "private_key": {"environment_variable": spec.private_key_env},
            }
        ]
    }


def _downstream_tls(spec: EnvoyProxySpec) -> dict[str, Any]:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _DOWNSTREAM_TLS_TYPE,
            "common_tls_context": {
                "tls_params": {
                    "tls_minimum_protocol_version": spec.min_tls_version,
                    "tls_maximum_protocol_version": "TLSv1_3",
                },
                **_listener_certificate(spec),
                "alpn_protocols": ["h2", "http/1.1"],
            },
        },
    }


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


def _health_listener(spec: EnvoyProxySpec) -> dict[str, Any]:
    # The ECS health check runs inside the Envoy container, so loopback is enough; and as
    # the app can reach this port too, it must expose nothing but a yes/no answer: no route
    # leads to the app cluster and no admin endpoint is served here.
    return {
        "name": "health",
        "address": _socket_address("127.0.0.1", spec.health_port),
        # Listener.ignore_global_conn_limit: a flood that fills the connection limit must
        # not fail the ECS health check too (ECS would then replace a task that is serving).
        "ignore_global_conn_limit": True,
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": _HCM_TYPE,
                            "stat_prefix": "health",
                            "codec_type": "AUTO",
                            # Outside the connection limit, so idle or half-sent requests
                            # from the app's side of loopback must end by themselves.
                            **_downstream_http_options(spec.tuning, None),
                            "route_config": {
                                "name": "health_only",
                                "virtual_hosts": [
                                    {
                                        "name": "health_only",
                                        "domains": ["*"],
                                        "routes": [
                                            {
                                                "match": {"prefix": "/"},
                                                "direct_response": {"status": 404},
                                            }
                                        ],
                                    }
                                ],
                            },
                            "http_filters": [
                                {
                                    "name": "envoy.filters.http.health_check",
                                    "typed_config": {
                                        "@type": _HEALTH_CHECK_TYPE,
                                        # Envoy answers itself: 200 while serving, 503 once
                                        # it is draining or marked failed. Nothing is
                                        # forwarded to the app.
                                        "pass_through_mode": False,
                                        "headers": [
                                            {
                                                "name": ":path",
                                                "string_match": {"exact": HEALTH_PATH},
                                            }
                                        ],
                                    },
                                },
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": {"@type": _ROUTER_TYPE},
                                },
                            ],
                        },
                    }
                ]
            }
        ],
    }


def _admin(spec: EnvoyProxySpec) -> dict[str, Any]:
    # The admin API is unauthenticated and can dump config, flip runtime flags and stop the
    # proxy. On 127.0.0.1 the app container could reach it; a file-system socket in this
    # container cannot be reached from another container of the task. No access_log is
    # configured, so admin requests are not written anywhere.
    return {"address": {"pipe": {"path": spec.admin_socket_path, "mode": ADMIN_SOCKET_MODE}}}


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


def ready_check_command(health_port: int) -> list[str]:
    """ECS health-check command asking Envoy's loopback health listener whether it serves.

    The stock Envoy image has bash but no curl, so the request goes through bash's
    /dev/tcp. Healthy only on `HTTP/1.1 200`: the listener is not bound until Envoy has
    initialised, and it answers 503 once Envoy drains or is marked failed.
    """
    _check_port("health_port", health_port)
    script = (
        f"exec 3<>/dev/tcp/127.0.0.1/{health_port} && "
        # HTTP/1.1: Envoy answers HTTP/1.0 requests with 426 Upgrade Required.
        f"printf 'GET {HEALTH_PATH} HTTP/1.1\\r\\nHost: localhost\\r\\n"
        "Connection: close\\r\\n\\r\\n' >&3 && "
        "head -n 1 <&3 | grep -q ' 200 '"
    )
    return ["CMD", "bash", "-c", script]


# --------------------------------------------------------------------------- mesh proxies
#
# The App Mesh topology (appmesh-efs) runs the same stock Envoy as a gateway and as each
# service's sidecar. What App Mesh's control plane generated is built here as a static
# bootstrap: TLS material read from files (an EFS volume mounted read-only), optional
# mutual TLS, prefix routes to several clusters, and upstream clusters that resolve a Cloud
# Map DNS name (STRICT_DNS) and check the peer's certificate chain and name.
# Nothing above changes: `render_bootstrap` (alb-envoy) keeps its output.

_UPSTREAM_TLS_TYPE = _TYPE_PREFIX + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"

# Envoy's own default is 5 s (Cluster.dns_refresh_rate); kept explicit, with the record TTL
# of the Cloud Map service at most this, so a task that comes or goes is seen within seconds.
DEFAULT_DNS_REFRESH_MS = 5000
# Route retries to upstream clusters: 2 further tries, each on another host
# (RetryPolicy.num_retries, retry_host_predicate previous_hosts); the cluster's circuit
# breaker allows 3 retries in flight (max_retries).
DEFAULT_UPSTREAM_RETRIES = 2
MAX_UPSTREAM_RETRIES = 3
# What is retried: the request never reached an app (connect-failure, refused-stream) or
# its connection was reset (reset). `reset` may repeat a request an app had started on:
# an Envoy that drains (mesh_drain_command) finishes requests before it closes, so a reset
# is a task that died, not one that was stopped.
_RETRY_ON = "connect-failure,refused-stream,reset"
_PREVIOUS_HOSTS_TYPE = (
    _TYPE_PREFIX + "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
)
_PROXY_PROTOCOL_TYPE = (
    _TYPE_PREFIX + "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"
)


@dataclass(frozen=True)
class TlsFiles:
    """A certificate chain (leaf first) and its private key, as files Envoy reads at start.

    Envoy reads static files once: a new certificate needs a restart (a new task on ECS).
    """

    certificate_chain: str
    private_key: str


@dataclass(frozen=True)
class PeerValidation:
    """How Envoy checks the other side's certificate: its chain must lead to `trusted_ca`.

    ``subject_alt_names`` None checks the chain only; a tuple also needs one of the peer's
    DNS SANs to equal one of its names, and the empty tuple refuses every peer (a mesh
    service that nobody may call). ``spki_sha256`` pins the peer's public key: base64
    SHA-256 digests of its SubjectPublicKeyInfo, one of which must match.
    """

    trusted_ca: str
    subject_alt_names: tuple[str, ...] | None = None
    spki_sha256: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpstreamCluster:
    """A peer reached over TLS by DNS name (STRICT_DNS: every A record is an endpoint).

    The peer's certificate must name `host` (SNI and SAN match) and chain to the trusted
    CA; `client_certificate` is presented when the peer demands mutual TLS.
    """

    name: str
    host: str
    port: int
    trusted_ca: str
    client_certificate: TlsFiles | None = None
    # What to resolve, when it is not `host` (tests point it at loopback); SNI and the SAN
    # check keep `host`.
    address: str | None = None


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


def _tls_params(min_version: str) -> dict[str, str]:
    return {"tls_minimum_protocol_version": min_version, "tls_maximum_protocol_version": "TLSv1_3"}


def _certificate_files(files: TlsFiles) -> dict[str, Any]:
    return {
        "certificate_chain": {"filename": files.certificate_chain},
        "private_key": {"filename": files.private_key},
    }


# A SAN matcher no name satisfies: an RE2 class of no character (neither space nor not).
# Envoy reads an empty match_typed_subject_alt_names as "any name", so refusing every peer
# needs one matcher that never matches.
_NO_NAME_MATCHER = {
    "san_type": "DNS",
    "matcher": {"safe_regex": {"regex": "[^\\s\\S]"}},
}


def _validation_context(validation: PeerValidation) -> dict[str, Any]:
    context: dict[str, Any] = {"trusted_ca": {"filename": validation.trusted_ca}}
    names = validation.subject_alt_names
    if names is not None:
        # Exact DNS SAN match (CertificateValidationContext.match_typed_subject_alt_names):
        # the handshake fails unless one of the peer's DNS SANs is one of `names`.
        context["match_typed_subject_alt_names"] = [
            {"san_type": "DNS", "matcher": {"exact": name}} for name in names
        ] or [_NO_NAME_MATCHER]
    if validation.spki_sha256:
        # CertificateValidationContext.verify_certificate_spki, checked besides the chain.
        context["verify_certificate_spki"] = list(validation.spki_sha256)
    return context


def _mesh_downstream_tls(spec: MeshProxySpec) -> dict[str, Any]:
    common: dict[str, Any] = {
        "tls_params": _tls_params(spec.min_tls_version),
        "tls_certificates": [_certificate_files(spec.server_certificate)],
        "alpn_protocols": ["h2", "http/1.1"],
    }
    if spec.client_validation is not None:
        common["validation_context"] = _validation_context(spec.client_validation)
    typed: dict[str, Any] = {"@type": _DOWNSTREAM_TLS_TYPE, "common_tls_context": common}
    if spec.require_client_certificate:
        # The handshake fails without a client certificate that passes validation_context.
        typed["require_client_certificate"] = True
    return {"name": "envoy.transport_sockets.tls", "typed_config": typed}


def _upstream_tls(upstream: UpstreamCluster, min_version: str) -> dict[str, Any]:
    common: dict[str, Any] = {
        "tls_params": _tls_params(min_version),
        # Without a validation context Envoy accepts any upstream certificate.
        "validation_context": _validation_context(
            PeerValidation(upstream.trusted_ca, (upstream.host,))
        ),
    }
    if upstream.client_certificate is not None:
        common["tls_certificates"] = [_certificate_files(upstream.client_certificate)]
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _UPSTREAM_TLS_TYPE,
            "sni": upstream.host,
            "common_tls_context": common,
        },
    }


def _upstream_retry_policy(retries: int) -> dict[str, Any]:
    """RetryPolicy of a route to another task: a try that could not reach a host goes to
    another one (previous_hosts; up to 3 host picks per try when only the failed one comes
    up), with Envoy's default back-off (25 ms base). The route timeout bounds all tries."""
    return {
        "retry_on": _RETRY_ON,
        "num_retries": retries,
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": _PREVIOUS_HOSTS_TYPE},
            }
        ],
        "host_selection_retry_max_attempts": 3,
    }


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


def _endpoint(address: str, port: int) -> dict[str, Any]:
    return {"endpoint": {"address": _socket_address(address, port)}}


def _mesh_clusters(spec: MeshProxySpec) -> list[dict[str, Any]]:
    clusters: list[dict[str, Any]] = []
    if spec.app_port is not None:
        clusters.append(
            {
                "name": APP_CLUSTER,
                "type": "STATIC",
                "connect_timeout": "3s",
                **_cluster_tuning(spec.tuning),
                "load_assignment": {
                    "cluster_name": APP_CLUSTER,
                    "endpoints": [{"lb_endpoints": [_endpoint("127.0.0.1", spec.app_port)]}],
                },
            }
        )
    for upstream in spec.upstreams:
        clusters.append(
            {
                "name": upstream.name,
                # Every A record of the Cloud Map name is an endpoint, re-resolved every
                # dns_refresh_rate regardless of the record's TTL (respect_dns_ttl: false).
                "type": "STRICT_DNS",
                "dns_refresh_rate": f"{spec.dns_refresh_ms / 1000:g}s",
                "dns_lookup_family": "V4_ONLY",
                "connect_timeout": "3s",
                **_cluster_tuning(spec.tuning),
                "load_assignment": {
                    "cluster_name": upstream.name,
                    "endpoints": [
                        {
                            "lb_endpoints": [
                                _endpoint(upstream.address or upstream.host, upstream.port)
                            ]
                        }
                    ],
                },
                "transport_socket": _upstream_tls(upstream, spec.min_tls_version),
                **({"outlier_detection": _OUTLIER_DETECTION} if spec.outlier_detection else {}),
            }
        )
    return clusters


# Cluster.outlier_detection of the clusters of other tasks: a host that fails 3 connections
# or requests in a row at the gateway level (502/503/504, connect failures included; Envoy
# enforces this check only with enforcing_consecutive_gateway_failure set), or returns 5
# 5xx in a row, is left out for 10 s (longer each time), checked every 2 s. At most half of
# a service's tasks are ejected: a service failing everywhere still gets its traffic and
# answers for itself, rather than Envoy answering 503 for all of it.
_OUTLIER_DETECTION = {
    "consecutive_5xx": 5,
    "consecutive_gateway_failure": 3,
    "enforcing_consecutive_gateway_failure": 100,
    "interval": "2s",
    "base_ejection_time": "10s",
    "max_ejection_percent": 50,
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


# Stopping without dropping requests. ECS sends SIGTERM, then SIGKILL after the container's
# stopTimeout; on SIGTERM Envoy exits at once, resetting every request in flight. The
# container therefore runs a small sh entry point that starts Envoy and, on SIGTERM, asks
# Envoy over its admin socket to drain its inbound listener
# (`POST /drain_listeners?graceful&inboundonly`): from then on every response closes its
# connection (HTTP/1.1 `Connection: close`, HTTP/2 GOAWAY) at once (`--drain-strategy
# immediate`), while the listener still accepts callers whose DNS answer still names this
# task; after `--drain-time-s` Envoy stops the listener. The entry point waits the same
# time, then stops Envoy (SIGTERM). The stock image has no curl and bash cannot open a Unix
# socket: the request is made by perl's core Socket module (perl-base, essential in the
# image's Ubuntu). Egress listeners are not drained: the app keeps calling out until it stops.
_DRAIN_REQUEST = "POST /drain_listeners?graceful&inboundonly HTTP/1.1"
_DRAIN_PERL = (
    "use Socket; socket(my $s, PF_UNIX, SOCK_STREAM, 0) or exit 1; "
    "connect($s, pack_sockaddr_un($ARGV[0])) or exit 1; "
    f'syswrite($s, "{_DRAIN_REQUEST}\\r\\nHost: localhost\\r\\nConnection: close\\r\\n'
    'Content-Length: 0\\r\\n\\r\\n"); '
    "my $r = join(q(), <$s>); exit($r =~ m{^HTTP/1\\.1 200} ? 0 : 1)"
)
# $1: the admin socket, $2: the drain time (s); the rest: Envoy's arguments.
_DRAIN_SCRIPT = (
    'admin="$1"; drain="$2"; shift 2; '
    "stop() { "
    f"perl -e '{_DRAIN_PERL}' \"$admin\" || echo 'drain request failed' >&2; "
    'sleep "$drain"; kill -TERM "$child" 2>/dev/null; }; '
    "trap stop TERM INT; "
    'envoy "$@" & child=$!; '
    # `wait` returns when the trap has run; wait again until Envoy has exited.
    'while :; do wait "$child"; status=$?; kill -0 "$child" 2>/dev/null || exit "$status"; done'
)
# What a drain may last: the stop timeout leaves STOP_MARGIN_SECONDS for Envoy to exit after
# it; Fargate allows a stopTimeout of at most 120 s.
FARGATE_MAX_STOP_TIMEOUT_SECONDS = 120
STOP_MARGIN_SECONDS = 10


def mesh_stop_timeout(drain_seconds: int) -> int:
    """The container's stopTimeout for a drain of `drain_seconds`."""
    return drain_seconds + STOP_MARGIN_SECONDS


def mesh_drain_command(
    spec: MeshProxySpec, drain_seconds: int, flush_interval_ms: int = 1000
) -> list[str]:
    """The container command of a mesh Envoy that drains on SIGTERM (see _DRAIN_SCRIPT).

    The stock image's entrypoint runs a command that is not an Envoy flag as Envoy's user."""
    if spec.admin_socket_path is None:
        raise ValueError("draining needs the admin socket (admin_socket_path)")
    if not 1 <= drain_seconds <= FARGATE_MAX_STOP_TIMEOUT_SECONDS - STOP_MARGIN_SECONDS:
        raise ValueError(
            f"drain_seconds must be in 1..{FARGATE_MAX_STOP_TIMEOUT_SECONDS - STOP_MARGIN_SECONDS}"
            f" (Fargate's stopTimeout is at most {FARGATE_MAX_STOP_TIMEOUT_SECONDS} s)"
        )
    return [
        "sh",
        "-c",
        _DRAIN_SCRIPT,
        "envoy-drain",
        spec.admin_socket_path,
        str(drain_seconds),
        *mesh_envoy_args(spec, flush_interval_ms),
        "--drain-time-s",
        str(drain_seconds),
        "--drain-strategy",
        "immediate",
    ]

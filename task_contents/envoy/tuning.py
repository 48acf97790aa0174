"""Sizing that depends on the task the proxy runs in (workers, heap, buffers, circuit
breakers), the client-facing timeouts, the access log and the overload manager.

Numbers quoted as "measured" come from `./benchmarks/run` on a 2-vCPU machine
(docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from task_contents.envoy.api import (
    _DOWNSTREAM_CONNECTIONS_TYPE,
    _FIXED_HEAP_TYPE,
    _HTTP_PROTOCOL_OPTIONS_TYPE,
    _STDOUT_LOG_TYPE,
)

# The ALB waits for a target's response for its idle timeout, 60 s by default
# (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html#connection-idle-timeout).
# Envoy's own route default is 15 s
# (https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/route/v3/route_components.proto,
# RouteAction.timeout): anything shorter than the ALB's budget turns a slow but valid
# answer into an Envoy 504. Envoy's timeout runs until the response is complete, so a
# response streamed for longer than this is cut even while data flows.
DEFAULT_ROUTE_TIMEOUT_SECONDS = 60


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


def _handshake_timeout(t: ProxyTuning) -> dict[str, Any]:
    """FilterChain field of a TLS filter chain: a connection whose handshake has not finished
    by then is closed, so silent sockets cannot keep the connection limit full."""
    return {"transport_socket_connect_timeout": f"{t.tls_handshake_timeout_seconds}s"}

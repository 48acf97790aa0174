"""Envoy v3 API: the type URLs of the extensions the bootstraps use, and what every
bootstrap repeats (socket addresses, endpoints, port checks, the app's cluster name, the
client address headers).
"""

from __future__ import annotations

from typing import Any

APP_CLUSTER = "app"


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


def _check_port(name: str, value: object) -> None:
    # bool is an int subclass; True as a port is always a bug.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{name} must be an integer in 1..65535, got {value!r}")


def _socket_address(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


_UPSTREAM_TLS_TYPE = _TYPE_PREFIX + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"


_PREVIOUS_HOSTS_TYPE = (
    _TYPE_PREFIX + "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
)


_PROXY_PROTOCOL_TYPE = (
    _TYPE_PREFIX + "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"
)


def _endpoint(address: str, port: int) -> dict[str, Any]:
    return {"endpoint": {"address": _socket_address(address, port)}}

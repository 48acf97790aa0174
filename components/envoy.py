"""Bootstrap builder for the Envoy TLS-terminating sidecar of an ECS task.

The sidecar accepts TLS on ``listener_port`` and forwards plain HTTP to the application
container over the task's loopback interface (``127.0.0.1:app_port``), so the application
never handles certificates and the traffic is encrypted everywhere it leaves the task.

This module is deliberately pure (no Pulumi, no I/O): the same dictionary is rendered into
the ECS container definition and fed to a real ``envoy`` binary by the integration tests,
so what is tested is exactly what is deployed. Only the Envoy v3 API is used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "TLS_VERSIONS",
    "EnvoyProxySpec",
    "render_bootstrap",
    "render_bootstrap_yaml",
]

# Envoy's TlsParameters.TlsProtocol enum names we allow as a floor. Anything older than
# TLS 1.2 is not offered on purpose: it is deprecated (RFC 8996) and fails most compliance
# baselines.
TLS_VERSIONS = ("TLSv1_2", "TLSv1_3")

APP_CLUSTER = "app"

_TYPE_PREFIX = "type.googleapis.com/"
_HCM_TYPE = _TYPE_PREFIX + (
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
_ROUTER_TYPE = _TYPE_PREFIX + "envoy.extensions.filters.http.router.v3.Router"
_DOWNSTREAM_TLS_TYPE = (
    _TYPE_PREFIX + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
)
_STDOUT_LOG_TYPE = _TYPE_PREFIX + "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"

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


@dataclass(frozen=True)
class EnvoyProxySpec:
    """What the sidecar needs to know; defaults suit a Fargate task behind an ALB."""

    app_port: int
    listener_port: int = 8443
    listener_address: str = "0.0.0.0"
    admin_port: int = 9901
    min_tls_version: str = "TLSv1_2"
    certificate_env: str = "ENVOY_TLS_CERTIFICATE_CHAIN"
    private_key_env: str = "ENVOY_TLS_PRIVATE_KEY"


def _check_port(name: str, value: object) -> None:
    # bool is an int subclass; True as a port is always a bug.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{name} must be an integer in 1..65535, got {value!r}")


def _validate(spec: EnvoyProxySpec) -> None:
    _check_port("app_port", spec.app_port)
    _check_port("listener_port", spec.listener_port)
    _check_port("admin_port", spec.admin_port)
    if spec.admin_port == spec.listener_port:
        raise ValueError(
            f"admin_port and listener_port must differ (both are {spec.listener_port})"
        )
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


def _socket_address(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


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
                # Environment-variable data sources (Envoy >= 1.21): ECS injects the PEMs
                # from Secrets Manager / SSM as container env vars, so the stock Envoy image
                # works unchanged and the key never lands on a file system or in the config.
                "tls_certificates": [
                    {
                        "certificate_chain": {"environment_variable": spec.certificate_env},
                        "private_key": {"environment_variable": spec.private_key_env},
                    }
                ],
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
            # makes Envoy record the real client address (the one the ALB appended) while
            # still refusing to believe anything a client put in the header itself.
            "use_remote_address": True,
            "xff_num_trusted_hops": 1,
            # Default server header handling (Envoy overwrites it with "envoy") is kept:
            # passing through the app's own Server header would leak framework versions.
            "route_config": {
                "name": "local_app",
                "virtual_hosts": [
                    {
                        "name": "app",
                        "domains": ["*"],
                        "routes": [
                            {
                                "match": {"prefix": "/"},
                                "route": {"cluster": APP_CLUSTER, "timeout": "30s"},
                            }
                        ],
                    }
                ],
            },
            "http_filters": [
                {"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER_TYPE}}
            ],
            "access_log": [
                {
                    "name": "envoy.access_loggers.stdout",
                    "typed_config": {
                        "@type": _STDOUT_LOG_TYPE,
                        "log_format": {"json_format": dict(_ACCESS_LOG_FORMAT)},
                    },
                }
            ],
        },
    }


def render_bootstrap(spec: EnvoyProxySpec) -> dict[str, Any]:
    """Return the Envoy v3 bootstrap for ``spec`` as plain data; raises ValueError if invalid."""
    _validate(spec)
    return {
        "admin": {
            # The admin API is unauthenticated and can dump config, flip runtime flags and
            # stop the proxy: bind it to loopback only, whatever listener_address is. No
            # access_log is configured, so admin requests are not written anywhere.
            "address": _socket_address("127.0.0.1", spec.admin_port),
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress_tls",
                    "address": _socket_address(spec.listener_address, spec.listener_port),
                    "filter_chains": [
                        {
                            "filters": [_http_connection_manager(spec)],
                            "transport_socket": _downstream_tls(spec),
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": APP_CLUSTER,
                    # The app shares the task's network namespace (awsvpc), so a fixed
                    # loopback endpoint is all that is needed: no DNS, no discovery.
                    "type": "STATIC",
                    "connect_timeout": "3s",
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
    promptly.
    """
    return [
        "--config-yaml",
        render_bootstrap_yaml(spec),
        "--log-level",
        "info",
        "--file-flush-interval-msec",
        str(flush_interval_ms),
    ]


def ready_check_command(admin_port: int) -> list[str]:
    """ECS health-check command asking the loopback admin API whether Envoy is ready.

    The stock Envoy image has bash but no curl, so the request goes through bash's
    /dev/tcp. Healthy only on `HTTP/1.1 200`: /ready answers 503 while Envoy initialises
    or drains.
    """
    _check_port("admin_port", admin_port)
    script = (
        f"exec 3<>/dev/tcp/127.0.0.1/{admin_port} && "
        # HTTP/1.1: Envoy answers HTTP/1.0 requests with 426 Upgrade Required.
        "printf 'GET /ready HTTP/1.1\\r\\nHost: localhost\\r\\n"
        "Connection: close\\r\\n\\r\\n' >&3 && "
        "head -n 1 <&3 | grep -q ' 200 '"
    )
    return ["CMD", "bash", "-c", script]

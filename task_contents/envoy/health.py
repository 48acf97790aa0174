"""The admin API on a Unix socket and the health listener, which can do nothing but answer
health checks, and the container health check that asks it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from task_contents.envoy.api import (
    _HCM_TYPE,
    _HEALTH_CHECK_TYPE,
    _ROUTER_TYPE,
    _check_port,
    _socket_address,
)
from task_contents.envoy.tuning import _downstream_http_options

if TYPE_CHECKING:
    from task_contents.envoy.sidecar import EnvoyProxySpec


# /tmp of the Envoy container: writable by the image's unprivileged envoy user and private
# to that container, as long as no task volume is mounted there.
DEFAULT_ADMIN_SOCKET_PATH = "/tmp/envoy-admin.sock"


# Owner read/write only: whoever else shares the container cannot connect either.
ADMIN_SOCKET_MODE = 0o600


DEFAULT_HEALTH_PORT = 9902


HEALTH_PATH = "/health"


# sun_path holds 108 bytes on Linux, one of them the terminating NUL.
_MAX_SOCKET_PATH_BYTES = 107


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

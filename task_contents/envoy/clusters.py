"""The mesh proxies' upstream clusters: the app on loopback and the other tasks, found by a
Cloud Map DNS name (STRICT_DNS), with retries and outlier detection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from task_contents.envoy.api import _PREVIOUS_HOSTS_TYPE, APP_CLUSTER, _endpoint
from task_contents.envoy.tls import _upstream_tls
from task_contents.envoy.tuning import _cluster_tuning

if TYPE_CHECKING:
    from task_contents.envoy.mesh import MeshProxySpec
    from task_contents.envoy.tls import TlsFiles


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

"""Bootstrap builder for the Envoy TLS-terminating sidecar of an ECS task.

The sidecar accepts TLS on ``listener_port`` and forwards plain HTTP to the application
container over the task's loopback interface (``127.0.0.1:app_port``), so the application
never handles certificates and the traffic is encrypted everywhere it leaves the task.

All containers of an awsvpc task share one network namespace, so anything Envoy binds on
127.0.0.1 is reachable by the application container too. Envoy therefore binds only two TCP
ports: the TLS listener and a health listener that can do nothing but answer health checks.
The unauthenticated admin API lives on a Unix socket in Envoy's own container file system,
which the application container cannot see.

This package is deliberately pure (no Pulumi, no I/O): the same dictionary is rendered into
the ECS container definition and fed to a real ``envoy`` binary by the integration tests,
so what is tested is exactly what is deployed. Only the Envoy v3 API is used.

One module a concern, each importing only those above it:

    api        type URLs, socket addresses, port checks, client address headers
    tuning     sizing to the task (workers, heap, buffers, circuit breakers), timeouts,
               access log, overload manager
    health     the admin socket and the health listener
    tls        listener certificates (ECS secrets or SDS), mesh certificate files, peer
               validation, upstream TLS
    sidecar    the TLS sidecar of alb-envoy and direct-task: spec, HTTP listener, bootstrap
    clusters   the mesh proxies' upstream clusters: retries, outlier detection
    mesh       the appmesh-efs gateway and service proxies: spec, routes, bootstrap
    drain      stopping a mesh proxy without dropping requests

What the topologies use is importable from the package itself.
"""

from task_contents.envoy.clusters import (
    UpstreamCluster,
)
from task_contents.envoy.drain import (
    mesh_drain_command,
    mesh_stop_timeout,
)
from task_contents.envoy.health import (
    ADMIN_SOCKET_MODE,
    DEFAULT_ADMIN_SOCKET_PATH,
    DEFAULT_HEALTH_PORT,
    HEALTH_PATH,
    ready_check_command,
)
from task_contents.envoy.mesh import (
    EgressListener,
    MeshProxySpec,
    PrefixRoute,
    mesh_bound_ports,
    mesh_envoy_args,
    render_mesh_bootstrap,
    render_mesh_bootstrap_yaml,
)
from task_contents.envoy.sidecar import (
    EnvoyProxySpec,
    envoy_args,
    envoy_bound_ports,
    render_bootstrap,
    render_bootstrap_yaml,
)
from task_contents.envoy.tls import (
    TLS_VERSIONS,
    PeerValidation,
    SdsFiles,
    TlsFiles,
)
from task_contents.envoy.tuning import (
    ACCESS_LOG_MODES,
    DEFAULT_ROUTE_TIMEOUT_SECONDS,
    ProxyTuning,
    tuning_for_task,
)

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

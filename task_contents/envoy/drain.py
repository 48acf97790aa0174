"""Stopping a mesh proxy without dropping requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from task_contents.envoy.mesh import mesh_envoy_args

if TYPE_CHECKING:
    from task_contents.envoy.mesh import MeshProxySpec


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

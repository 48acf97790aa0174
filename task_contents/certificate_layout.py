"""Where the copier lays out a certificate for an app that serves TLS itself (nlb-certbot)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CertificateLayout:
    """Where the copier lays out the certificate for an app that serves TLS itself."""

    scopes: tuple[str, ...] = ("bolt", "https")  # Neo4j: one directory per TLS scope
    cert_file: str = "public.crt"
    key_file: str = "private.key"
    target_dir: str = "/ssl"
    owner: str | None = "7474:7474"  # uid:gid of the neo4j user in the official image

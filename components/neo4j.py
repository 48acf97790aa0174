"""Neo4j 5 TLS settings, as the environment variables of the official image."""

from __future__ import annotations

from settings import CertificateLayout

# Neo4j's TLS policy names for the scopes the copier lays out.
CONNECTORS = {"bolt": "bolt", "https": "https"}


def neo4j_tls_environment(layout: CertificateLayout, advertised_address: str) -> dict[str, str]:
    """TLS required on bolt, HTTPS on, plain HTTP off; one ssl policy per scope.

    The image maps `NEO4J_a_b__c` to the setting `a.b_c`.
    """
    env = {
        "NEO4J_server_default__advertised__address": advertised_address,
        # Plain HTTP (7474) stays closed: every listener the NLB exposes is TLS.
        "NEO4J_server_http_enabled": "false",
    }
    for scope in layout.scopes:
        prefix = f"NEO4J_dbms_ssl_policy_{scope}_"
        env.update(
            {
                f"{prefix}enabled": "true",
                f"{prefix}base__directory": f"{layout.target_dir.rstrip('/')}/{scope}",
                f"{prefix}private__key": layout.key_file,
                f"{prefix}public__certificate": layout.cert_file,
                f"{prefix}client__auth": "NONE",
            }
        )
    if "bolt" in layout.scopes:
        env["NEO4J_server_bolt_tls__level"] = "REQUIRED"
    if "https" in layout.scopes:
        env["NEO4J_server_https_enabled"] = "true"
    return env

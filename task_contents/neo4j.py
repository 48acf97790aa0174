"""Neo4j 5 settings (TLS, memory), as the environment variables of the official image."""

from __future__ import annotations

from task_contents.certificate_layout import CertificateLayout

# Neo4j's operations manual ("System requirements") gives 2 GB as its minimum memory.
NEO4J_MIN_MEMORY_MIB = 2048

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


# Shares of the task's memory. The rest (a quarter) is for what neither setting bounds: the
# JVM's metaspace, thread stacks and direct buffers, Lucene, and the container's own file
# cache; the operations manual ("Memory configuration") sizes memory as heap + page cache +
# what the OS and the JVM need besides, and recommends equal initial and maximum heap.
HEAP_SHARE = 0.40
PAGE_CACHE_SHARE = 0.35
# Above about 32 GB the JVM loses compressed object pointers: a bigger heap holds less.
MAX_HEAP_MIB = 31 * 1024


def neo4j_memory_sizes(memory_mib: int) -> tuple[int, int]:
    """(heap, page cache) in MiB for a container limited to `memory_mib`."""
    if isinstance(memory_mib, bool) or not isinstance(memory_mib, int):
        raise TypeError(f"memory_mib must be an integer, got {memory_mib!r}")
    if memory_mib < NEO4J_MIN_MEMORY_MIB:
        raise ValueError(
            f"app.memory {memory_mib} MiB is too small for Neo4j: at least "
            f"{NEO4J_MIN_MEMORY_MIB} MiB"
        )
    heap = min(int(memory_mib * HEAP_SHARE), MAX_HEAP_MIB)
    return heap, int(memory_mib * PAGE_CACHE_SHARE)


def neo4j_memory_environment(memory_mib: int) -> dict[str, str]:
    """Heap (initial = maximum) and page cache set explicitly from the task's memory limit:
    Neo4j's own defaults are heuristics from the memory it detects, and heap plus page
    cache plus the JVM's other memory must stay under the limit or the container is
    killed."""
    heap, page_cache = neo4j_memory_sizes(memory_mib)
    return {
        "NEO4J_server_memory_heap_initial__size": f"{heap}m",
        "NEO4J_server_memory_heap_max__size": f"{heap}m",
        "NEO4J_server_memory_pagecache_size": f"{page_cache}m",
    }

"""Neo4j's memory sized to its task: pure sizing, and the refusal of too little memory."""

from __future__ import annotations

import pytest

from task_contents.neo4j import (
    MAX_HEAP_MIB,
    NEO4J_MIN_MEMORY_MIB,
    neo4j_memory_environment,
    neo4j_memory_sizes,
)


@pytest.mark.parametrize(
    ("memory", "heap", "page_cache"),
    [
        (2048, 819, 716),
        (3072, 1228, 1075),
        (4096, 1638, 1433),
        (8192, 3276, 2867),
        (30720, 12288, 10752),
        (122880, MAX_HEAP_MIB, 43008),  # the heap stops below compressed-pointer size
    ],
)
def test_heap_and_page_cache_leave_headroom(memory: int, heap: int, page_cache: int) -> None:
    assert neo4j_memory_sizes(memory) == (heap, page_cache)
    # At least a fifth of the task stays for the JVM's other memory, whatever the size.
    assert heap + page_cache <= memory * 0.8


def test_environment_sets_equal_initial_and_maximum_heap() -> None:
    assert neo4j_memory_environment(4096) == {
        "NEO4J_server_memory_heap_initial__size": "1638m",
        "NEO4J_server_memory_heap_max__size": "1638m",
        "NEO4J_server_memory_pagecache_size": "1433m",
    }


@pytest.mark.parametrize("memory", [512, 1024, NEO4J_MIN_MEMORY_MIB - 1])
def test_too_little_memory_is_refused_naming_app_memory(memory: int) -> None:
    with pytest.raises(ValueError, match=rf"app\.memory {memory} MiB is too small for Neo4j"):
        neo4j_memory_sizes(memory)


@pytest.mark.parametrize("memory", ["2048", 2048.0, True, None])
def test_only_whole_mebibytes_are_accepted(memory: object) -> None:
    with pytest.raises(TypeError):
        neo4j_memory_sizes(memory)  # type: ignore[arg-type]

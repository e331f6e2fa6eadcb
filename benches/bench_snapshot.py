"""T3: warm ``snapshot`` with nothing new; T4: ``snapshot`` after another store object appended one record."""

from __future__ import annotations

import pytest
from support import Pool, store_class, tag

T4_ROUNDS = 300


def test_snapshot_warm(benchmark, store, pool: Pool):
    """T3: warm snapshot, nothing appended since the last one."""
    tag(benchmark, "T3", "snapshot warm", "fastpool", pool.size)
    benchmark(store.snapshot, pool.pool_id)


@pytest.mark.sizes(10_000)
def test_snapshot_after_foreign_append(benchmark, store, pool: Pool):
    """T4: snapshot after one record_message by a second store object on the same file."""
    tag(benchmark, "T4", "snapshot after foreign append", "fastpool", pool.size)
    other = store_class()(pool.path, synchronous="normal")
    try:
        other.snapshot(pool.pool_id)

        def append_elsewhere() -> tuple[tuple[str], dict[str, object]]:
            other.record_message(*pool.message_args())
            return (pool.pool_id,), {}

        benchmark.pedantic(store.snapshot, setup=append_elsewhere, rounds=T4_ROUNDS, warmup_rounds=10)
        assert store.snapshot(pool.pool_id) == other.snapshot(pool.pool_id)
    finally:
        other.close()

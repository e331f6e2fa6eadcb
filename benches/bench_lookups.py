"""T2: warm dedupe and wake lookups (``message_receipt``, ``wake_registration``, ``wake``), flat in N."""

from __future__ import annotations

import workload
from support import Pool, tag


def test_message_receipt(benchmark, store, pool: Pool):
    """T2: warm message_receipt of a key recorded mid-pool (a miss at N=0)."""
    tag(benchmark, "T2", "message_receipt", "fastpool", pool.size)
    key = pool.mid_message_key()
    assert (store.message_receipt(pool.pool_id, key) is None) == (pool.info.messages == 0)
    benchmark(store.message_receipt, pool.pool_id, key)


def test_wake_registration(benchmark, store, pool: Pool):
    """T2: warm wake_registration of a key recorded mid-pool (a miss at N=0)."""
    tag(benchmark, "T2", "wake_registration", "fastpool", pool.size)
    key = workload.wake_key(pool.mid_wake())
    assert (store.wake_registration(pool.pool_id, key) is None) == (pool.info.wakes == 0)
    benchmark(store.wake_registration, pool.pool_id, key)


def test_wake(benchmark, store, pool: Pool):
    """T2: warm wake of a condition recorded mid-pool (a miss at N=0)."""
    tag(benchmark, "T2", "wake", "fastpool", pool.size)
    condition = workload.condition_id(pool.mid_wake())
    assert (store.wake(pool.pool_id, condition) is None) == (pool.info.wakes == 0)
    benchmark(store.wake, pool.pool_id, condition)

"""T2: warm dedupe, wake and routing lookups (``message_receipt``, ``wake_registration``, ``wake``,
``members``, ``member``, ``topics``, ``topic_members``), flat in N."""

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


def test_members(benchmark, store, pool: Pool):
    """T2: warm members (the snapshot's members, without a snapshot)."""
    tag(benchmark, "T2", "members", "fastpool", pool.size)
    assert store.members(pool.pool_id) == store.snapshot(pool.pool_id).members
    benchmark(store.members, pool.pool_id)


def test_member(benchmark, store, pool: Pool):
    """T2: warm member of one run (a miss at N=0)."""
    tag(benchmark, "T2", "member", "fastpool", pool.size)
    run_id = workload.run_id(1)
    benchmark(store.member, pool.pool_id, run_id)


def test_topics(benchmark, store, pool: Pool):
    """T2: warm topics (the snapshot's topics, without a snapshot)."""
    tag(benchmark, "T2", "topics", "fastpool", pool.size)
    assert store.topics(pool.pool_id) == store.snapshot(pool.pool_id).topics
    benchmark(store.topics, pool.pool_id)


def test_topic_members(benchmark, store, pool: Pool):
    """T2: warm topic_members of one topic (empty at N=0)."""
    tag(benchmark, "T2", "topic_members", "fastpool", pool.size)
    topic = workload.member(1).topics[0]
    store.topic_members(pool.pool_id, topic)  # the grouping is built once per membership change
    benchmark(store.topic_members, pool.pool_id, topic)

"""``store.stats()``: what a store object did, counted on every store (issue 25).

The counts are this object's; each test reads them where the behaviour it names is certain
(a second store object's first read replays, a held lock makes writers queue), never timing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from store_helpers import CONFIG, PgTarget, member, message, raw_connection, receipt

from fastpool import InMemoryAgentPoolStore, SqliteAgentPoolStore
from fastpool._base import STATS
from fastpool.aio import AsyncAgentPoolStore

POOL = "pool.counted"


def until(condition: Any, what: str) -> None:
    """Wait (up to 10 s) for ``condition()``: a thread reaching a point, not a timing."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.001)


def fill(store: Any, count: int) -> None:
    store.open_pool(POOL, CONFIG)
    for n in range(count):
        store.join_member(POOL, member(f"run.{n}"))


def test_every_store_has_every_key_and_returns_a_new_plain_dict(tmp_path: Path) -> None:
    with SqliteAgentPoolStore(tmp_path / "a.sqlite") as sqlite:
        for store in (InMemoryAgentPoolStore(), sqlite):
            stats = store.stats()
            assert type(stats) is dict and tuple(stats) == STATS and set(stats.values()) == {0}
            stats["appends"] = 99
            assert store.stats()["appends"] == 0


def test_a_second_store_object_counts_its_replay_its_catch_ups_and_its_hits(tmp_path: Path, engine: Any) -> None:
    path = tmp_path / "pools.sqlite"
    with SqliteAgentPoolStore(path, engine=engine) as writer, SqliteAgentPoolStore(path, engine=engine) as reader:
        fill(writer, 5)
        assert writer.stats()["appends"] == 6
        assert len(reader.members(POOL)) == 5  # not cached: one miss, its replay reads the 6 records
        counted = reader.stats()
        assert (counted["cache_misses"], counted["catch_ups"], counted["records_read"]) == (1, 1, 6)

        writer.join_member(POOL, member("run.late"))
        writer.record_message(POOL, message("msg.1"), receipt("msg.1"))
        assert len(reader.members(POOL)) == 6  # cached but stale: caught up, 2 records read
        assert reader.message_receipt(POOL, "key.msg.1") is not None  # current: a hit
        assert reader.topics(POOL) == ()  # a hit
        counted = reader.stats()
        assert (counted["cache_misses"], counted["catch_ups"], counted["records_read"]) == (1, 2, 8)
        assert counted["cache_hits"] == 2
        assert counted["appends"] == 0


def test_a_write_that_appends_nothing_or_is_rolled_back_is_not_an_append(tmp_path: Path) -> None:
    with SqliteAgentPoolStore(tmp_path / "a.sqlite") as store:
        fill(store, 1)
        store.open_pool(POOL, CONFIG)  # the same config: nothing appended
        store.record_message_once(POOL, message("msg.1"), receipt("msg.1"))
        store.record_message_once(POOL, message("msg.1"), receipt("msg.1"))  # a repeat: nothing appended
        assert store.stats()["appends"] == 3
        with pytest.raises(RuntimeError), store.transaction():
            store.join_member(POOL, member("run.x"))
            store.join_member(POOL, member("run.y"))
            raise RuntimeError("rolled back")
        assert store.stats()["appends"] == 3
        with store.transaction():
            store.join_member(POOL, member("run.x"))
        assert store.stats()["appends"] == 4


def test_the_bound_counts_evictions(tmp_path: Path) -> None:
    with SqliteAgentPoolStore(tmp_path / "a.sqlite", max_cached_pools=2) as store:
        for n in range(5):
            store.open_pool(f"pool.{n}", CONFIG)
        assert store.stats()["cache_evictions"] == 3


def test_a_warm_read_keeps_its_pool_from_eviction(tmp_path: Path) -> None:
    """Least recently used first out, also where a read skips moving the pool it read last."""
    with SqliteAgentPoolStore(tmp_path / "a.sqlite", max_cached_pools=2) as store:
        store.open_pool("pool.a", CONFIG)
        store.open_pool("pool.b", CONFIG)
        store.record_message("pool.a", message("msg.1"), receipt("msg.1"))
        store.message_receipt("pool.b", "key.msg.1")  # b, then a, then a again: a is the most recent
        store.message_receipt("pool.a", "key.msg.1")
        store.message_receipt("pool.a", "key.msg.1")
        store.open_pool("pool.c", CONFIG)  # b goes
        before = store.stats()
        assert store.message_receipt("pool.a", "key.msg.1") is not None
        assert store.stats()["cache_hits"] == before["cache_hits"] + 1
        store.members("pool.b")
        assert store.stats()["cache_misses"] == before["cache_misses"] + 1


def test_writers_queued_behind_a_held_store_commit_as_a_counted_group(tmp_path: Path) -> None:
    with SqliteAgentPoolStore(tmp_path / "a.sqlite") as store:
        fill(store, 0)
        threads = [
            threading.Thread(target=store.join_member, args=(POOL, member(f"run.{n}")), daemon=True) for n in range(4)
        ]
        with store._lock:  # a transaction of another thread, say: the writers wait for the lock
            for thread in threads:
                thread.start()
            # One waits for the lock as a lone writer; the other three queue behind it.
            until(lambda: len(store._group._queue) == 3, "three writes queued")
        for thread in threads:
            thread.join(10)
        counted = store.stats()
        assert counted["appends"] == 5
        assert (counted["groups"], counted["grouped_writes"], counted["largest_group"]) == (1, 3, 3)


def test_a_write_that_finds_the_file_locked_counts_one_lock_wait(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    with SqliteAgentPoolStore(path) as store:
        fill(store, 0)
        other = raw_connection(path)
        other.execute("BEGIN IMMEDIATE")  # another process's write transaction, say
        writer = threading.Thread(target=store.join_member, args=(POOL, member("run.a")), daemon=True)
        writer.start()
        until(lambda: store.stats()["lock_waits"] == 1, "the writer waiting")
        other.execute("ROLLBACK")
        other.close()
        writer.join(10)
        assert store.stats()["lock_waits"] == 1 and store.stats()["appends"] == 2
        store.close()
        assert store.stats()["appends"] == 2  # still readable once closed


def test_the_async_store_shows_its_store_s_counts_with_the_loop_s_writes_in_groups(tmp_path: Path) -> None:
    async def main() -> tuple[dict[str, int], dict[str, int]]:
        async with AsyncAgentPoolStore(SqliteAgentPoolStore(tmp_path / "a.sqlite")) as store:
            await store.open_pool(POOL, CONFIG)
            await asyncio.gather(*(store.join_member(POOL, member(f"run.{n}")) for n in range(10)))
            return store.stats(), store.store.stats()

    counted, underneath = asyncio.run(main())
    assert counted == underneath
    assert counted["appends"] == 11 and counted["groups"] >= 1 and counted["grouped_writes"] >= 10


def test_the_in_memory_store_counts_appends_only() -> None:
    store = InMemoryAgentPoolStore()
    fill(store, 3)
    store.members(POOL)
    assert store.stats() == dict.fromkeys(STATS, 0) | {"appends": 4}


def test_postgres_counts_appends_hits_catch_ups_and_the_lock_taken_behind_another_writer(pg: PgTarget) -> None:
    with pg.store() as writer, pg.store() as other:
        fill(writer, 3)
        assert other.members(POOL)  # a miss: its replay reads the 4 records
        writer.join_member(POOL, member("run.late"))
        other.join_member(POOL, member("run.other"))  # its cached cursor is behind: the pool's lock
        other.members(POOL)
        counted = other.stats()
        assert tuple(counted) == STATS
        assert counted["appends"] == 1 and counted["lock_waits"] == 1
        assert counted["cache_misses"] == 1 and counted["records_read"] == 5 and counted["catch_ups"] >= 2
        assert writer.stats()["appends"] == 5 and writer.stats()["lock_waits"] == 0

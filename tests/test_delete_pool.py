"""``delete_pool`` seen from store objects that still have the pool cached (issue 25).

Deleting is not an append: catching up after a cached cursor finds nothing new, so a store
object that had the pool cached would go on answering from records no longer there (or,
after the pool is opened again, apply the new records on top of the old ones). The file's
``fastpool_drops`` counter, read when the change probe sees another connection's commit,
makes every other object forget what it cached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from store_helpers import CONFIG, OTHER_CONFIG, member, message, raw_connection, receipt

from fastpool import AgentError, AgentErrorKind, SqliteAgentPoolStore
from fastpool._point_reads import BATCH, LAZY_FROM
from fastpool.benchmarking import workload

POOL = "pool.deleted"


def fill(store: Any, count: int) -> None:
    store.open_pool(POOL, CONFIG)
    for n in range(count):
        store.join_member(POOL, member(f"run.{n}"))


def test_a_second_store_object_forgets_a_pool_another_deleted(tmp_path: Path, engine: Any) -> None:
    path = tmp_path / "pools.sqlite"
    with SqliteAgentPoolStore(path, engine=engine) as deleter, SqliteAgentPoolStore(path, engine=engine) as host:
        fill(deleter, 5)
        host.record_message(POOL, message("msg.1"), receipt("msg.1"))
        assert host.snapshot(POOL).cursor.sequence == 7  # cached, with a watch tail
        assert [r.cursor.sequence for r in host.watch(POOL, 5)] == [6, 7]

        assert deleter.delete_pool(POOL) == (7, 7, None)

        with pytest.raises(AgentError) as raised:
            host.snapshot(POOL)
        assert raised.value.kind is AgentErrorKind.HOST_CONFIGURATION_NEEDED
        assert host.message_receipt(POOL, "key.msg.1") is None
        assert list(host.watch(POOL, 5)) == []

        # Opened again with more records than the host had cached: nothing of the old pool shows
        # (a rule "cursor beyond the last record means rebuild" would miss this one).
        deleter.open_pool(POOL, OTHER_CONFIG)
        for n in range(10):
            deleter.join_member(POOL, member(f"new.{n}"))
        snapshot = host.snapshot(POOL)
        assert snapshot.cursor.sequence == 11 and snapshot.message_policy == OTHER_CONFIG.message_policy
        assert [m.run_id for m in snapshot.members] == [f"new.{n}" for n in range(10)]
        # ... and the host's next write lands after the new pool's last record.
        assert host.join_member(POOL, member("run.host")).sequence == 12


def test_a_host_that_wrote_last_forgets_a_deletion_when_it_writes_again(tmp_path: Path, engine: Any) -> None:
    """The write path: the host's cached state is current as of its own commit, then the pool goes."""
    path = tmp_path / "pools.sqlite"
    with SqliteAgentPoolStore(path, engine=engine) as deleter, SqliteAgentPoolStore(path, engine=engine) as host:
        fill(host, 3)
        deleter.delete_pool(POOL)
        with pytest.raises(AgentError) as raised:
            host.join_member(POOL, member("run.late"))
        assert raised.value.kind is AgentErrorKind.HOST_CONFIGURATION_NEEDED
        host.open_pool(POOL, CONFIG)
        assert host.join_member(POOL, member("run.late")).sequence == 2


def test_point_reads_of_a_big_pool_forget_it_too(tmp_path: Path, engine: Any) -> None:
    """A big pool is read through the point index (no full state): its entries go with it."""
    path = tmp_path / "pools.sqlite"
    records = LAZY_FROM + 2 * BATCH
    with SqliteAgentPoolStore(path, engine=engine) as writer:
        workload.fill_store(writer, POOL, records)
    with SqliteAgentPoolStore(path, engine=engine) as deleter, SqliteAgentPoolStore(path, engine=engine) as host:
        key = workload.message_key(0)
        assert host.message_receipt(POOL, key) is not None
        assert POOL in host._point_states  # answered from the index, not a full replay
        removed = deleter.delete_pool(POOL)
        assert removed[:2] == (records, records)
        assert host.message_receipt(POOL, key) is None
    db = raw_connection(path)
    try:
        for table in ("agent_pool_records", "agent_pool_event_seq", "fastpool_point_keys", "fastpool_point_marks"):
            assert db.execute(f"SELECT COUNT(*) FROM {table} WHERE pool_id = ?", (POOL,)).fetchall() == [(0,)], table
    finally:
        db.close()


def test_a_deletion_rolled_back_with_its_transaction_deletes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    with SqliteAgentPoolStore(path) as store:
        fill(store, 2)
        with pytest.raises(RuntimeError), store.transaction():
            assert store.delete_pool(POOL) == (3, 3, None)
            assert store.members(POOL) == ()
            raise RuntimeError("rolled back")
        assert store.snapshot(POOL).cursor.sequence == 3


def test_a_readonly_store_cannot_delete(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    with SqliteAgentPoolStore(path) as store:
        fill(store, 1)
    with SqliteAgentPoolStore(path, readonly=True) as reader, pytest.raises(AgentError):
        reader.delete_pool(POOL)
    with SqliteAgentPoolStore(path, readonly=True) as reader:
        assert reader.snapshot(POOL).cursor.sequence == 2


@pytest.mark.parametrize("consistency", ["linearizable", "notified"])
def test_postgres_store_objects_forget_a_pool_another_deleted(pg_server: Any, pg_schema: str, consistency: str) -> None:
    from fastpool import PostgresAgentPoolStore

    def open_() -> PostgresAgentPoolStore:
        return PostgresAgentPoolStore(pg_server.conninfo, schema=pg_schema, consistency=consistency)

    with open_() as deleter, open_() as host:
        fill(deleter, 5)
        host.members(POOL)  # starts the listener of a notified store
        assert host.snapshot(POOL).cursor.sequence == 6
        assert host.next_event_sequence(POOL) == 1
        epoch = host._notices.epoch
        assert deleter.delete_pool(POOL) == (6, 6, 1)
        if consistency == "notified":
            # The deletion's notification makes the host's caches unknown (the mode's documented lag).
            with host._notices.changed:
                assert host._notices.changed.wait_for(lambda: host._notices.epoch != epoch, timeout=10)
        assert host.members(POOL) == ()
        with pytest.raises(AgentError) as raised:
            host.next_event_sequence(POOL)
        assert raised.value.kind is AgentErrorKind.HOST_CONFIGURATION_NEEDED
        deleter.open_pool(POOL, OTHER_CONFIG)
        for n in range(10):
            deleter.join_member(POOL, member(f"new.{n}"))
        # The host's next write (the fast path, at its cached cursor) lands after the new pool's last record.
        assert host.join_member(POOL, member("run.host")).sequence == 12
        assert [m.run_id for m in host.members(POOL)] == [*(f"new.{n}" for n in range(10)), "run.host"]
        assert host.next_event_sequence(POOL) == 1


def test_a_postgres_schema_from_before_delete_pool(pg_server: Any, pg_schema: str) -> None:
    """Without fastpool_drops: a readonly store reads it as it is; a writer adds the table."""
    import psycopg

    from fastpool import PostgresAgentPoolStore

    with PostgresAgentPoolStore(pg_server.conninfo, schema=pg_schema) as store:
        fill(store, 1)
    with psycopg.connect(pg_server.conninfo, autocommit=True) as connection:
        connection.execute(f'DROP TABLE "{pg_schema}".fastpool_drops')
    with PostgresAgentPoolStore(pg_server.conninfo, schema=pg_schema, readonly=True) as reader:
        assert reader.snapshot(POOL).cursor.sequence == 2
        with pytest.raises(AgentError):
            reader.next_event_sequence(POOL)
    with PostgresAgentPoolStore(pg_server.conninfo, schema=pg_schema) as writer:
        assert writer.delete_pool(POOL) == (2, 2, None)
        assert writer.members(POOL) == ()

"""What only the PostgreSQL store has: its tables, errors from the server, lost connections and
a restarted server, LISTEN/NOTIFY, several processes on one database.

The contract itself runs against PostgreSQL in ``test_store_contract`` and
``test_hostile_input``. Faults are real: ``pg_terminate_backend`` on the store's own
connections, an advisory lock held by another connection, an immediate server stop.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import pytest
import store_helpers
from pg_server import PostgresServer
from store_helpers import CONFIG, OTHER_CONFIG, PgTarget, member, message, receipt, wake_args
from test_multiprocess import run_workers

import fastpool
from fastpool import (
    AgentError,
    AgentErrorKind,
    InvalidInput,
    PoolOpened,
    PostgresAgentPoolStore,
    RetryClassification,
    wire,
)
from fastpool.aio import AsyncAgentPoolStore
from fastpool.postgres import _key

POOL = "pool.pg"
LIVENESS = 10.0  # seconds: a generous bound for things that take milliseconds


def named(pg: PgTarget, name: str, **options: Any) -> PostgresAgentPoolStore:
    """A store whose connections show ``name`` (and ``name listener``) in pg_stat_activity."""
    return PostgresAgentPoolStore(f"{pg.conninfo}?application_name={name}", schema=pg.schema, **options)


def terminate(pg: PgTarget, application_name: str) -> int:
    """``pg_terminate_backend`` on every connection named so; how many there were."""
    rows = pg.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ?", (application_name,)
    )
    return len(rows)


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + LIVENESS
    while not condition():
        assert time.monotonic() < deadline, f"not within {LIVENESS}s: {what}"
        time.sleep(0.005)


def assert_retryable(error: BaseException) -> None:
    assert isinstance(error, AgentError), repr(error)
    assert (error.kind, error.retry) == (AgentErrorKind.INVALID_STATE_TRANSITION, RetryClassification.RETRYABLE)
    assert error.message.startswith("postgres agent pool store failure: "), error.message


def raw_rows(pg: PgTarget, pool_id: str = POOL) -> list[tuple[Any, ...]]:
    return pg.query("SELECT seq, kind, payload_json FROM agent_pool_records WHERE pool_id = ? ORDER BY seq", (pool_id,))


# ------------------------------------------------------------------------------ tables


def test_records_are_the_exact_wire_text_in_tables_of_the_sqlite_shape(pg: PgTarget) -> None:
    with pg.store() as store:
        store.open_pool(POOL, CONFIG)
        store.join_member(POOL, member("run.a", topics=("topic ☃",)))
        store.record_message(POOL, message("msg.1"), receipt("msg.1"))
        store.record_wake(POOL, *wake_args("wake.1"))
        records = list(store.watch(POOL))
    rows = raw_rows(pg)
    assert [row[0] for row in rows] == [1, 2, 3, 4]
    assert [(row[1], row[2]) for row in rows] == [(r.payload.TYPE, wire.encode(r.payload)) for r in records]
    columns = pg.query(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? ORDER BY table_name, ordinal_position",
        (pg.schema,),
    )
    assert columns == [
        ("agent_pool_event_seq", "pool_id", "text"),
        ("agent_pool_event_seq", "seq", "bigint"),
        ("agent_pool_records", "pool_id", "text"),
        ("agent_pool_records", "seq", "bigint"),
        ("agent_pool_records", "kind", "text"),
        ("agent_pool_records", "payload_json", "text"),
        ("fastpool_drops", "id", "integer"),
        ("fastpool_drops", "count", "bigint"),
        ("fastpool_meta", "key", "text"),
        ("fastpool_meta", "value", "text"),
    ]
    assert pg.query("SELECT key, value FROM fastpool_meta") == [("schema_version", "1")]


def test_schemas_are_independent_stores_in_one_database(pg: PgTarget) -> None:
    other = PgTarget(pg.conninfo, pg.schema + "_other")
    with pg.store() as first, other.store() as second:
        first.open_pool(POOL, CONFIG)
        first.join_member(POOL, member("run.a"))
        assert second.open_pool(POOL, CONFIG).cursor.sequence == 1
        assert second.snapshot(POOL).members == ()
        assert first.snapshot(POOL).cursor.sequence == 2
        assert first.pools() == [(POOL, 2, 2)] and second.pools() == [(POOL, 1, 1)]
    other.close()


def test_pools_are_listed_in_python_string_order(pg: PgTarget) -> None:
    ids = ["b", "B", "a", "é", "Z", "ä", "a b", "🙂", "\u00a0"]
    with pg.store() as store:
        for pool_id in ids:
            store.open_pool(pool_id, CONFIG)
        assert [pool_id for pool_id, _, _ in store.pools()] == sorted(ids)


def test_a_newer_schema_version_is_refused(pg: PgTarget) -> None:
    pg.store().close()
    pg.query("UPDATE fastpool_meta SET value = '3' WHERE key = 'schema_version' RETURNING key")  # 2: the key index
    with pytest.raises(AgentError) as raised:
        pg.store()
    assert raised.value.retry == RetryClassification.HOST_CONFIGURATION_NEEDED
    assert "schema version '3'" in raised.value.message


def test_readonly_store_reads_and_refuses_writes(pg: PgTarget) -> None:
    with pytest.raises(AgentError) as raised:
        pg.store(readonly=True)
    assert raised.value.message == f"postgres agent pool store schema {pg.schema!r} has no agent pool tables"
    assert pg.query("SELECT count(*) FROM pg_namespace WHERE nspname = ?", (pg.schema,)) == [(0,)]
    with pg.store() as store:
        store.open_pool(POOL, CONFIG)
    with pg.store(readonly=True) as reader:
        assert reader.snapshot(POOL).cursor.sequence == 1
        for write in (
            lambda: reader.join_member(POOL, member("run.a")),
            lambda: reader.next_event_sequence(POOL),
        ):
            with pytest.raises(AgentError) as raised:
                write()
            assert raised.value.retry == RetryClassification.HOST_CONFIGURATION_NEEDED
            assert "read-only transaction" in raised.value.message
        assert reader.snapshot(POOL).cursor.sequence == 1  # still usable
    assert pg.query("SELECT count(*) FROM agent_pool_records") == [(1,)]


def test_a_corrupt_row_names_the_pool_and_sequence_and_spares_other_pools(pg: PgTarget) -> None:
    with pg.store() as store:
        store.open_pool(POOL, CONFIG)
        store.open_pool("pool.fine", CONFIG)
        pg.query("INSERT INTO agent_pool_records VALUES (?, 2, 'member_joined', '{\"type\":') RETURNING seq", (POOL,))
        for _ in range(2):  # the store object stays usable, and fails the same way again
            with pytest.raises(AgentError) as raised:
                store.snapshot(POOL)
            assert raised.value.retry == RetryClassification.REPAIR_NEEDED
            assert raised.value.message.startswith(
                f"postgres agent pool store serialization failure: pool {POOL!r} record 2: "
            )
        assert store.join_member("pool.fine", member("run.a")).sequence == 2
    with pytest.raises(AgentError) as raised, pg.store() as cold:
        list(cold.watch(POOL))
    assert raised.value.message.startswith("postgres agent pool store serialization failure: ")


def test_conflicting_opens_in_the_log_name_this_backend(pg: PgTarget) -> None:
    other = wire.encode(PoolOpened(config=OTHER_CONFIG))
    with pg.store() as store:
        store.open_pool(POOL, CONFIG)
        pg.query("INSERT INTO agent_pool_records VALUES (?, 2, 'pool_opened', ?) RETURNING seq", (POOL, other))
    with pytest.raises(AgentError) as raised, pg.store() as cold:
        cold.snapshot(POOL)
    assert (raised.value.retry, raised.value.message) == (
        RetryClassification.REPAIR_NEEDED,
        "postgres agent pool store contains conflicting pool open records",
    )


# ------------------------------------------------------------------------------ arguments, errors


def test_bad_arguments_are_invalid_input(pg: PgTarget) -> None:
    for options, name in [
        ({"consistency": "eventual"}, "consistency"),
        ({"schema": ""}, "schema"),
        ({"schema": "x" * 64}, "schema"),
        ({"schema": "a\nb"}, "schema"),
        ({"busy_timeout": -1}, "busy_timeout"),
        ({"readonly": 1}, "readonly"),
        ({"max_cached_pools": 0}, "max_cached_pools"),
        ({"max_cached_pools": True}, "max_cached_pools"),
    ]:
        with pytest.raises(InvalidInput) as raised:
            PostgresAgentPoolStore(pg.conninfo, **options)
        assert raised.value.message.startswith(f"{name}: "), raised.value.message
    for conninfo in ("nonsense=1", 5):
        with pytest.raises(InvalidInput) as raised:
            PostgresAgentPoolStore(conninfo)  # type: ignore[arg-type]
        assert raised.value.message.startswith("conninfo: ")


def test_unreachable_server_is_retryable_and_a_refused_login_needs_configuration(pg: PgTarget) -> None:
    with pytest.raises(AgentError) as raised:
        PostgresAgentPoolStore("postgresql://postgres@127.0.0.1:1/postgres")
    assert_retryable(raised.value)
    for conninfo in (pg.conninfo.replace("/postgres", "/no_such_db"), pg.conninfo.replace("postgres@", "nobody@")):
        with pytest.raises(AgentError) as raised:
            PostgresAgentPoolStore(conninfo)
        assert raised.value.retry == RetryClassification.HOST_CONFIGURATION_NEEDED, raised.value.message
        assert "does not exist" in raised.value.message


def test_the_cache_keeps_the_most_recently_used_pools(pg: PgTarget) -> None:
    """The same bound as SQLite's (one ``PoolCache``): least recently used first out; ``evict``."""
    store = pg.store(max_cached_pools=3)
    try:
        for pool_id in ("pool.a", "pool.b", "pool.c"):
            store.open_pool(pool_id, CONFIG)
        assert list(store._cache.states) == ["pool.a", "pool.b", "pool.c"]
        assert store.message_receipt("pool.a", "key.x") is None  # a read counts as a use
        store.open_pool("pool.d", CONFIG)
        assert list(store._cache.states) == ["pool.c", "pool.a", "pool.d"]
        assert store.snapshot("pool.b").cursor.sequence == 1  # read from the database again
        assert list(store._cache.states) == ["pool.a", "pool.d", "pool.b"]
        store.evict("pool.d")
        store.evict("pool.d")  # evicting a pool that is not cached is harmless
        store.evict("pool.unknown")
        assert list(store._cache.states) == ["pool.a", "pool.b"]
        with pytest.raises(InvalidInput, match="pool_id"):
            store.evict("")
    finally:
        store.close()
    with pytest.raises(AgentError, match="closed"):
        store.evict("pool.a")


def test_a_closed_store_refuses_calls(pg: PgTarget) -> None:
    store = pg.store()
    store.open_pool(POOL, CONFIG)
    store.close()
    store.close()
    with pytest.raises(AgentError) as raised:
        store.snapshot(POOL)
    assert raised.value.message == "postgres agent pool store is closed"
    assert raised.value.retry == RetryClassification.NOT_RETRYABLE


def test_fastpool_imports_without_psycopg_and_says_what_to_install() -> None:
    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "import fastpool\n"
        "cls = fastpool.PostgresAgentPoolStore\n"
        "try:\n"
        "    cls('postgresql://localhost/db')\n"
        "except fastpool.AgentError as error:\n"
        "    print(error.retry.value, error.message)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == (
        "HostConfigurationNeeded postgres agent pool store needs psycopg 3: pip install -e '.[postgres]' in a checkout"
    )


# ------------------------------------------------------------------------------ locks, lost connections


def hold_pool_lock(pg: PgTarget, pool_id: str) -> Any:
    """Another connection holding the pool's advisory lock (commit or close it to release)."""
    import psycopg

    holder = psycopg.connect(pg.conninfo)
    holder.execute("SELECT pg_advisory_xact_lock(%s)", (_key(pg.schema, pool_id),))
    return holder


ADVISORY_WAIT = "SELECT query FROM pg_stat_activity WHERE application_name = 'victim' AND wait_event = 'advisory'"
ANY_LOCK_WAIT = "SELECT query FROM pg_stat_activity WHERE application_name = 'victim' AND wait_event_type = 'Lock'"


def waiting_for_a_lock(pg: PgTarget, call: Any, waiting: str = ADVISORY_WAIT) -> tuple[threading.Thread, list[Any]]:
    """``call`` on a thread of its own, returned once the ``victim`` connection waits as
    ``waiting`` finds it; the thread, and the list its outcome (result or error) goes into."""
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(_capture(call)))
    thread.start()
    wait_until(lambda: pg.query(waiting), "the victim waits for a lock")
    return thread, outcome


def delete_as_delete_pool(holder: Any, pg: PgTarget) -> None:
    """What ``delete_pool`` does to ``POOL`` under its lock, in ``holder``'s open transaction."""
    schema = f'"{pg.schema}"'
    holder.execute(f"DELETE FROM {schema}.agent_pool_records WHERE pool_id = %s", (POOL,))
    holder.execute(f"DELETE FROM {schema}.agent_pool_event_seq WHERE pool_id = %s", (POOL,))
    holder.execute(
        f"INSERT INTO {schema}.fastpool_drops (id, count) VALUES (0, 1) "
        f"ON CONFLICT (id) DO UPDATE SET count = {schema}.fastpool_drops.count + 1"
    )


def test_a_lock_wait_past_busy_timeout_is_retryable_and_writes_nothing(pg: PgTarget) -> None:
    with pg.store(busy_timeout=0.2) as store:
        store.open_pool(POOL, CONFIG)
        holder = hold_pool_lock(pg, POOL)
        try:
            with pytest.raises(AgentError) as raised:
                store.join_member(POOL, member("run.a"))
            assert_retryable(raised.value)
            assert "lock timeout" in raised.value.message
            # Other pools do not wait for this one.
            assert store.open_pool("pool.free", CONFIG).cursor.sequence == 1
        finally:
            holder.close()
        assert [row[0] for row in raw_rows(pg)] == [1]
        assert store.join_member(POOL, member("run.a")).sequence == 2


def test_an_append_that_waited_for_the_lock_while_its_pool_was_deleted_appends_nothing(pg: PgTarget) -> None:
    # Were the append's snapshot taken before the lock it waits for, the deletion committed
    # meanwhile would not be in it, and its guards would append seq 3 to a pool that is gone.
    store = named(pg, "victim", busy_timeout=30.0)
    try:
        store.open_pool(POOL, CONFIG)
        store.join_member(POOL, member("run.a"))
        holder = hold_pool_lock(pg, POOL)  # then deletes the pool as delete_pool does, under it
        writer, outcome = waiting_for_a_lock(pg, lambda: store.record_message(POOL, message("m"), receipt("m")))
        assert pg.query(ADVISORY_WAIT)[0][0].startswith("SELECT pg_advisory_xact_lock")
        delete_as_delete_pool(holder, pg)
        holder.commit()
        holder.close()
        writer.join(LIVENESS)
        assert isinstance(outcome[0], AgentError), outcome  # the pool is not opened any more
        assert raw_rows(pg) == []
        # Opened again, it starts at 1; the store's cache follows.
        assert store.open_pool(POOL, CONFIG).cursor.sequence == 1
        assert [row[0] for row in raw_rows(pg)] == [1]
    finally:
        store.close()


def test_an_event_sequence_asked_for_while_its_pool_is_being_deleted_is_refused(pg: PgTarget) -> None:
    # delete_pool's transaction, not yet committed, has removed the pool's event sequence row:
    # a next_event_sequence arriving meanwhile must not recreate it (at 1) once that commits.
    store = named(pg, "victim", busy_timeout=30.0)
    try:
        store.open_pool(POOL, CONFIG)
        assert store.next_event_sequence(POOL) == 1
        holder = hold_pool_lock(pg, POOL)  # then deletes the pool as delete_pool does, under it
        delete_as_delete_pool(holder, pg)
        asker, outcome = waiting_for_a_lock(pg, lambda: store.next_event_sequence(POOL), ANY_LOCK_WAIT)
        holder.commit()
        holder.close()
        asker.join(LIVENESS)
        assert isinstance(outcome[0], AgentError), outcome  # the pool is not opened any more
        assert pg.query("SELECT seq FROM agent_pool_event_seq WHERE pool_id = ?", (POOL,)) == []
    finally:
        store.close()


def test_an_append_that_waited_for_the_lock_while_another_writer_appended_goes_after_it(pg: PgTarget) -> None:
    store = named(pg, "victim", busy_timeout=30.0)
    other = pg.store()
    try:
        store.open_pool(POOL, CONFIG)
        store.join_member(POOL, member("run.a"))
        # The other writer's record, as its one statement would write it: seq 3, under the lock.
        other.open_pool("pool.src", CONFIG)
        other.join_member("pool.src", member("run.b"))
        (_, kind, text) = raw_rows(pg, "pool.src")[1]
        holder = hold_pool_lock(pg, POOL)
        writer, outcome = waiting_for_a_lock(pg, lambda: store.record_message(POOL, message("m"), receipt("m")))
        assert pg.query(ADVISORY_WAIT)[0][0].startswith("SELECT pg_advisory_xact_lock")
        holder.execute(f'INSERT INTO "{pg.schema}".agent_pool_records VALUES (%s, 3, %s, %s)', (POOL, kind, text))
        holder.commit()
        holder.close()
        writer.join(LIVENESS)
        assert outcome[0].sequence == 4, outcome
        assert [row[0] for row in raw_rows(pg)] == [1, 2, 3, 4]
        assert store.snapshot(POOL) == other.snapshot(POOL)
    finally:
        store.close()
        other.close()


@pytest.mark.parametrize("path", ["one_statement", "locked_transaction"])
def test_a_connection_killed_mid_transaction_loses_nothing_acknowledged(pg: PgTarget, path: str) -> None:
    store = named(pg, "victim", busy_timeout=30.0)
    other = pg.store()
    try:
        store.open_pool(POOL, CONFIG)
        acknowledged = [store.join_member(POOL, member(f"run.{n}")).sequence for n in range(5)]
        if path == "locked_transaction":
            # Another writer's record makes the victim's cache stale: its next write finds
            # it at the lock, and the one after that takes the lock before reading.
            other.record_pool_created(POOL)
            acknowledged.append(store.join_member(POOL, member("run.5")).sequence)
        holder = hold_pool_lock(pg, POOL)
        outcome: list[Any] = []
        writer = threading.Thread(
            target=lambda: outcome.append(_capture(lambda: store.record_message(POOL, message("m"), receipt("m"))))
        )
        writer.start()
        waiting = "SELECT query FROM pg_stat_activity WHERE application_name = 'victim' AND wait_event = 'advisory'"
        wait_until(lambda: pg.query(waiting), "the victim waits for the pool's lock")
        expected = "BEGIN;" if path == "locked_transaction" else "SELECT pg_advisory_xact_lock"
        assert pg.query(waiting)[0][0].startswith(expected)
        assert terminate(pg, "victim") == 1
        writer.join(LIVENESS)
        holder.close()
        assert_retryable(outcome[0])
        # Every acknowledged record is there (and the other writer's), the killed one is not.
        assert [row[0] for row in raw_rows(pg)] == list(range(1, max(acknowledged) + 1))
        # The next call reconnects and appends right after them.
        assert store.record_pool_created(POOL).sequence == max(acknowledged) + 1
        snapshot = other.snapshot(POOL)
        assert snapshot.messages == () and snapshot.cursor.sequence == max(acknowledged) + 1
        assert len(snapshot.members) == len(acknowledged)
    finally:
        store.close()
        other.close()


def _capture(call: Any) -> Any:
    try:
        return call()
    except BaseException as error:
        return error


def test_a_read_after_the_connection_was_killed_fails_retryable_then_reconnects(pg: PgTarget) -> None:
    with named(pg, "reader") as store:
        store.open_pool(POOL, CONFIG)
        assert terminate(pg, "reader") == 1
        with pytest.raises(AgentError) as raised:
            store.snapshot(POOL)
        assert_retryable(raised.value)
        assert store.snapshot(POOL).cursor.sequence == 1


def test_a_server_restart_fails_calls_retryable_then_they_recover(pg_server: PostgresServer, pg: PgTarget) -> None:
    writer = pg.store(busy_timeout=2.0)
    watcher = pg.store(consistency="notified")
    writer.open_pool(POOL, CONFIG)
    assert watcher.snapshot(POOL).cursor.sequence == 1
    acknowledged: dict[int, str] = {}
    errors: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                acknowledged[writer.record_message(POOL, message(f"msg.{n}"), receipt(f"msg.{n}")).sequence] = (
                    f"msg.{n}"
                )
            except BaseException as error:
                errors.append(error)
                time.sleep(0.01)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        wait_until(lambda: len(acknowledged) >= 20, "writes before the restart")
        pg_server.restart()
        settled = len(acknowledged)
        wait_until(lambda: len(acknowledged) >= settled + 20, "writes after the restart")
    finally:
        stop.set()
        thread.join(LIVENESS)
    assert errors, "the restart went unnoticed"
    for error in errors:
        assert_retryable(error)
    rows = raw_rows(pg)
    assert [row[0] for row in rows] == list(range(1, len(rows) + 1))  # gap-free
    stored = {row[0]: wire.loads(row[2])["stored"]["message"]["message_id"] for row in rows[1:]}
    assert all(stored[cursor] == message_id for cursor, message_id in acknowledged.items())
    # The notified store's listener reconnected: it sees the table as it is.
    # Its first read may fail RETRYABLE (its connection died with the server); then it is current.
    wait_until(lambda: _capture(lambda: watcher.snapshot(POOL).cursor.sequence) == len(rows), "the watcher catches up")
    writer.close()
    watcher.close()


# ------------------------------------------------------------------------------ LISTEN / NOTIFY


@pytest.mark.parametrize("consistency", ["linearizable", "notified"])
def test_follow_wakes_on_a_notification_not_on_its_poll(pg: PgTarget, consistency: str) -> None:
    with pg.store(consistency=consistency) as reader, pg.store() as writer:
        writer.open_pool(POOL, CONFIG)
        seen: list[int] = []
        started = threading.Event()

        def follow() -> None:
            started.set()
            for record in reader.follow(POOL, poll_interval=LIVENESS * 10, timeout=LIVENESS * 10):
                seen.append(record.cursor.sequence)
                if record.cursor.sequence == 3:
                    return

        thread = threading.Thread(target=follow)
        thread.start()
        started.wait()
        wait_until(lambda: seen == [1], "the backlog")
        began = time.monotonic()
        writer.join_member(POOL, member("run.a"))
        writer.join_member(POOL, member("run.b"))
        thread.join(LIVENESS)
        assert seen == [1, 2, 3]
        assert time.monotonic() - began < LIVENESS  # far less than one poll interval


def test_follow_ends_when_the_store_closes(pg: PgTarget) -> None:
    reader = pg.store()
    reader.open_pool(POOL, CONFIG)
    thread = threading.Thread(target=lambda: list(reader.follow(POOL, poll_interval=LIVENESS * 10)))
    thread.start()
    time.sleep(0.1)
    reader.close()
    thread.join(LIVENESS)
    assert not thread.is_alive()


def test_notified_reads_are_served_from_the_cache_until_a_notification(pg: PgTarget) -> None:
    with named(pg, "notified", consistency="notified") as reader, pg.store() as writer:
        writer.open_pool(POOL, CONFIG)
        assert reader.snapshot(POOL).cursor.sequence == 1
        # Its connection is gone, and warm reads do not notice: they touch no network.
        assert terminate(pg, "notified") == 1
        for _ in range(3):
            assert reader.snapshot(POOL).cursor.sequence == 1
            assert reader.message_receipt(POOL, "key.msg.1") is None
        writer.record_message(POOL, message("msg.1"), receipt("msg.1"))
        # The notification makes the next read go to the server (its listener is alive).
        wait_until(lambda: _capture(lambda: reader.snapshot(POOL).cursor.sequence) == 2, "the notified read")
        assert reader.message_receipt(POOL, "key.msg.1") == receipt("msg.1")


def test_a_lost_listener_makes_notified_caches_unknown(pg: PgTarget) -> None:
    with named(pg, "watcher", consistency="notified") as reader, pg.store() as writer:
        writer.open_pool(POOL, CONFIG)
        assert reader.snapshot(POOL).cursor.sequence == 1
        assert terminate(pg, "watcher listener") == 1
        # Written while nobody listens for the reader: no notification will ever come.
        writer.join_member(POOL, member("run.a"))
        wait_until(lambda: reader.snapshot(POOL).cursor.sequence == 2, "the read after the listener came back")
        wait_until(lambda: pg.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'watcher listener'"), "")


def test_linearizable_reads_see_another_objects_acknowledged_write_at_once(pg: PgTarget) -> None:
    with pg.store() as reader, pg.store() as writer:
        writer.open_pool(POOL, CONFIG)
        for n in range(20):
            key = f"key.msg.{n}"
            assert reader.message_receipt(POOL, key) is None
            writer.record_message(POOL, message(f"msg.{n}"), receipt(f"msg.{n}"))
            assert reader.message_receipt(POOL, key) == receipt(f"msg.{n}")


def test_aio_wraps_a_postgres_store(pg: PgTarget) -> None:
    async def main() -> list[int]:
        async with AsyncAgentPoolStore(pg.store()) as store:
            await store.open_pool(POOL, CONFIG)
            await store.join_member(POOL, member("run.a"))
            return [record.cursor.sequence async for record in store.follow(POOL, timeout=0.2)]

    assert asyncio.run(main()) == [1, 2]


# ------------------------------------------------------------------------------ concurrency


def test_store_objects_opening_one_new_pool_at_once_write_one_pool_opened(pg: PgTarget) -> None:
    stores = [pg.store() for _ in range(4)]
    pools = [f"pool.race.{n}" for n in range(10)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[Any] = []

    def open_all(store: PostgresAgentPoolStore) -> None:
        for pool_id in pools:
            barrier.wait(LIVENESS)
            outcomes.append(_capture(lambda: store.open_pool(pool_id, CONFIG).cursor.sequence))

    threads = [threading.Thread(target=open_all, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LIVENESS * 3)
    for store in stores:
        store.close()
    assert outcomes == [1] * len(pools) * len(stores)
    kinds = Counter(pg.query("SELECT pool_id, kind FROM agent_pool_records"))
    assert kinds == Counter({(pool_id, "pool_opened"): 1 for pool_id in pools})


@pytest.mark.slow
def test_eight_processes_on_one_pool_get_gap_free_cursors(pg: PgTarget) -> None:
    writers, per_writer = 8, 100
    with pg.store() as store:
        store.open_pool(POOL, CONFIG)
        reports = run_workers(
            store_helpers.mp_record_messages,
            [((pg.conninfo, pg.schema), POOL, worker, per_writer) for worker in range(writers)],
        )
        assert [report["errors"] for report in reports] == [[]] * writers
        everything = sorted(cursor for report in reports for cursor in report["cursors"])
        assert everything == list(range(2, writers * per_writer + 2))
        snapshot = store.snapshot(POOL)
    assert len(snapshot.messages) == writers * per_writer
    assert [row[0] for row in raw_rows(pg)] == list(range(1, writers * per_writer + 2))


@pytest.mark.slow
def test_eight_processes_on_eight_pools(pg: PgTarget) -> None:
    writers, per_writer = 8, 100
    pools = [f"pool.{worker}" for worker in range(writers)]
    with pg.store() as store:
        for pool_id in pools:
            store.open_pool(pool_id, CONFIG)
    reports = run_workers(
        store_helpers.mp_record_messages,
        [((pg.conninfo, pg.schema), pools[worker], worker, per_writer) for worker in range(writers)],
    )
    assert [report["errors"] for report in reports] == [[]] * writers
    for report in reports:
        assert report["cursors"] == list(range(2, per_writer + 2))
    assert pg.query("SELECT count(*) FROM agent_pool_records") == [(writers * (per_writer + 1),)]


@pytest.mark.slow
def test_event_sequences_from_four_processes_are_unique(pg: PgTarget) -> None:
    with pg.store() as store:
        store.open_pool(POOL, CONFIG)
    reports = run_workers(
        store_helpers.mp_next_event_sequence, [((pg.conninfo, pg.schema), POOL, worker, 100) for worker in range(4)]
    )
    assert [report["errors"] for report in reports] == [[]] * 4
    assert sorted(value for report in reports for value in report["values"]) == list(range(1, 401))


def test_fastpool_exports_the_postgres_store() -> None:
    assert fastpool.PostgresAgentPoolStore is PostgresAgentPoolStore
    assert "PostgresAgentPoolStore" in fastpool.__all__


# ------------------------------------------------------------------------------ open_store


def test_open_store_picks_the_backend_from_the_target(pg: PgTarget, tmp_path: Any) -> None:
    with fastpool.open_store(pg.conninfo, schema=pg.schema, consistency="notified") as store:
        assert type(store) is PostgresAgentPoolStore
        assert (store.schema, store.consistency) == (pg.schema, "notified")
        store.open_pool(POOL, CONFIG)
    with fastpool.open_store(pg.conninfo.replace("postgresql://", "postgres://"), schema=pg.schema) as store:
        assert type(store) is PostgresAgentPoolStore and store.snapshot(POOL).cursor.sequence == 1
    path = tmp_path / "a dir" / "pools.sqlite"
    for target in (str(path), path, "sqlite://" + str(path).replace(" ", "%20")):
        with fastpool.open_store(target, synchronous="full") as sqlite_store:
            assert type(sqlite_store) is fastpool.SqliteAgentPoolStore and sqlite_store.path == path
    assert type(fastpool.open_store("memory:")) is fastpool.InMemoryAgentPoolStore
    for bad in ("mysql://host/db", "sqlite://host/file", "sqlite://", 7):
        with pytest.raises(InvalidInput) as raised:
            fastpool.open_store(bad)  # type: ignore[arg-type]
        assert raised.value.message.startswith("target: "), raised.value.message


def test_a_transaction_commits_its_writes_together_or_not_at_all(pg: PgTarget) -> None:
    """``transaction()``: one commit for several writes, seen by another store object after it;
    an exception rolls all back; a statement that fails inside ends it (the next call says so)."""
    store, other = pg.store(), pg.store(consistency="notified")
    try:
        store.open_pool("pool.t", CONFIG)
        with store.transaction():
            store.record_message("pool.t", message("m.1"), receipt("m.1"))
            assert other.message_receipt("pool.t", "key.m.1") is None  # not committed yet
            store.record_message("pool.t", message("m.2"), receipt("m.2"))
            assert store.message_receipt("pool.t", "key.m.2") is not None  # the block sees its writes
        deadline = time.monotonic() + 10
        while other.message_receipt("pool.t", "key.m.2") is None and time.monotonic() < deadline:
            time.sleep(0.001)  # the notification went with the commit
        assert other.snapshot("pool.t") == store.snapshot("pool.t")
        cursor = store.snapshot("pool.t").cursor
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.record_message("pool.t", message("m.3"), receipt("m.3"))
                raise RuntimeError("the host changed its mind")
        with pg.store() as fresh:
            assert store.snapshot("pool.t").cursor == cursor == fresh.snapshot("pool.t").cursor
        with pytest.raises(InvalidInput, match="already has a transaction open"):
            with store.transaction():
                with store.transaction():
                    pass
        with pytest.raises(AgentError) as failed:
            with store.transaction():
                store.record_message("pool.t", message("m.4"), receipt("m.4"))
                try:
                    store._db().run(b"SELECT 1/0")  # a statement fails: PostgreSQL ends the transaction
                except Exception:
                    pass
                store.record_message("pool.t", message("m.5"), receipt("m.5"))
        assert failed.value.retry is RetryClassification.RETRYABLE and "ended early" in failed.value.message
        assert store.snapshot("pool.t").cursor == cursor
        store.record_message("pool.t", message("m.6"), receipt("m.6"))  # and the store goes on
    finally:
        store.close()
        other.close()


def test_inside_a_transaction_a_pool_is_locked_from_its_first_read_and_read_without_round_trips(pg: PgTarget) -> None:
    with pg.store() as store, pg.store(busy_timeout=0.2) as other:
        store.open_pool(POOL, CONFIG)
        store.join_member(POOL, member("run.a"))
        with store.transaction():
            assert store.member(POOL, "run.a") is not None  # the pool's lock, and a catch-up
            caught_up = store.stats()["catch_ups"]
            # Another host cannot append meanwhile: what the block read stays true until it ends.
            with pytest.raises(AgentError) as refused:
                other.join_member(POOL, member("run.b"))
            assert refused.value.retry is RetryClassification.RETRYABLE
            assert store.member(POOL, "run.b") is None
            store.join_member(POOL, member("run.c"))
            assert [m.run_id for m in store.members(POOL)] == ["run.a", "run.c"]
            assert store.stats()["catch_ups"] == caught_up  # no read or write asked the server again
        other.join_member(POOL, member("run.b"))  # the lock went with the commit
        assert [m.run_id for m in store.members(POOL)] == ["run.a", "run.b", "run.c"]


def test_transactions_taking_two_pools_in_opposite_orders_one_is_refused_retryable(pg: PgTarget) -> None:
    with pg.store() as first, pg.store() as second:
        for pool_id in ("pool.one", "pool.two"):
            first.open_pool(pool_id, CONFIG)
        both_read = threading.Barrier(2, timeout=10)
        outcomes: dict[str, object] = {}

        def transfer(store: PostgresAgentPoolStore, read: str, write: str, name: str) -> None:
            try:
                with store.transaction():
                    store.members(read)  # the read takes the pool's lock
                    both_read.wait()
                    store.join_member(write, member(f"run.{name}"))
                outcomes[name] = "committed"
            except AgentError as error:
                outcomes[name] = error.retry

        threads = [
            threading.Thread(target=transfer, args=(first, "pool.one", "pool.two", "a")),
            threading.Thread(target=transfer, args=(second, "pool.two", "pool.one", "b")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        # PostgreSQL finds the deadlock and ends one transaction; nothing of it is written.
        assert sorted(map(str, outcomes.values())) == sorted(["committed", str(RetryClassification.RETRYABLE)])
        written = [m.run_id for pool_id in ("pool.one", "pool.two") for m in first.members(pool_id)]
        assert len(written) == 1 and outcomes[written[0].removeprefix("run.")] == "committed"

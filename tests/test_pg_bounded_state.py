"""``bounded_state=True`` on PostgreSQL: a pool's cached state forgets what the schema's key
index holds (issue 23: a long-running host's memory stays flat on both backends).

Every answer, every write's check and every snapshot must equal a full replay's, whatever
else happened to the schema: other writers, a deleted pool, a damaged or dropped index, a
failure or an interrupt after the commit.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from bounded_checks import OLD_CONDITION, OLD_MESSAGE, check_writes_on_forgotten_keys, move_old_records_on
from store_helpers import PgTarget, lookups

import fastpool.postgres
from fastpool import (
    AgentError,
    InvalidInput,
    MessageStatus,
    PostgresAgentPoolStore,
    RetryClassification,
)
from fastpool._point_reads import BATCH
from fastpool.benchmarking import workload
from fastpool.verify import verify_store

POOL = "pool.bench"
RECORDS = 3 * BATCH + 40  # three index fills, and a tail after the last


def answers(store: Any, keys: list[tuple[str, str]]) -> list[Any]:
    return [getattr(store, method)(POOL, key) for method, key in keys]


def replayed(pg: PgTarget, engine: Any, keys: list[tuple[str, str]]) -> tuple[list[Any], Any]:
    """The answers and the snapshot of a full replay (a store object without bounded_state)."""
    with PostgresAgentPoolStore(pg.conninfo, schema=pg.schema, readonly=True, engine=engine) as store:
        snapshot = store.snapshot(POOL)
        return answers(store, keys), snapshot


def state_of(store: PostgresAgentPoolStore, pool_id: str = POOL) -> Any:
    return store._cache.states[pool_id].state


def write_a_batch(store: PostgresAgentPoolStore) -> None:
    """Write past the pool's next index fill (one message, again and again): its state is trimmed after it."""
    m = workload.message(10**6)
    start = store.record_message(POOL, m, workload.receipt(m)).sequence
    for _ in range(BATCH):
        store.record_message(POOL, m, workload.receipt(m))
        if state_of(store).trimmed_to == state_of(store).cursor > start:
            return
    raise AssertionError("no index fill trimmed the state")


@pytest.fixture
def filled(pg: PgTarget, engine: Any) -> tuple[PgTarget, workload.PoolInfo]:
    """A pool written by a bounded store, which trimmed its state as it went."""
    with PostgresAgentPoolStore(pg.conninfo, schema=pg.schema, bounded_state=True, engine=engine) as store:
        info = workload.fill_store(store, POOL, RECORDS)
        state = state_of(store)
        assert state.trimmed_to == 3 * BATCH
        assert len(state.messages) + len(state.wakes) <= RECORDS - 3 * BATCH  # the tail, not the pool
    return pg, info


def bounded(pg: PgTarget, engine: Any) -> PostgresAgentPoolStore:
    return PostgresAgentPoolStore(pg.conninfo, schema=pg.schema, bounded_state=True, engine=engine)


def test_a_bounded_store_answers_every_key_and_snapshots_as_a_full_replay(filled: Any, engine: Any) -> None:
    pg, info = filled
    keys = lookups(info)
    with bounded(pg, engine) as store:
        store.members(POOL)  # a new store object: the full state, replayed...
        write_a_batch(store)  # ...trimmed after its first fill
        expected, snapshot = replayed(pg, engine, keys)
        assert answers(store, keys) == expected
        assert store.members(POOL) == snapshot.members
        whole = store.snapshot(POOL)  # replayed first, then kept until the next fill
        assert whole == snapshot
        assert state_of(store).trimmed_to == 0
        assert store.snapshot(POOL) is whole


def test_writes_check_keys_the_trimmed_state_no_longer_holds(filled: Any, engine: Any) -> None:
    pg, info = filled
    with bounded(pg, engine) as store:
        store.members(POOL)
        write_a_batch(store)
        assert workload.message_key(3) not in state_of(store).message_dedupe
        cursor = state_of(store).cursor
        check_writes_on_forgotten_keys(store, POOL)
        assert state_of(store).cursor == cursor + 1
    keys = [("message_receipt", OLD_MESSAGE.idempotency_key), ("wake", OLD_CONDITION.condition_id)]
    expected, snapshot = replayed(pg, engine, keys)
    assert expected[0].status is MessageStatus.FAILED
    assert snapshot.cursor.sequence == cursor + 1


def test_a_key_never_recorded_costs_no_look_up(filled: Any, engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pg, info = filled
    with bounded(pg, engine) as store:
        store.members(POOL)
        write_a_batch(store)
        looked_up: list[str] = []
        look_up = store._look_up

        def counted(state: Any, field: str, key: str) -> Any:
            looked_up.append(key)
            return look_up(state, field, key)

        monkeypatch.setattr(store, "_look_up", counted)
        new = workload.message(10**7)
        assert store.message_receipt(POOL, new.idempotency_key) is None
        found, written = store.record_message_once(POOL, new, workload.receipt(new))
        assert written is not None
        assert looked_up == []
        assert store.message_receipt(POOL, workload.message_key(5)) is not None  # forgotten: looked up
        assert looked_up == [workload.message_key(5)]


def test_records_other_writers_append_are_seen_by_a_trimmed_state(filled: Any, engine: Any) -> None:
    pg, info = filled
    keys = lookups(info)
    with bounded(pg, engine) as store, bounded(pg, engine) as other:
        answers(store, keys)  # looked-up keys kept in the trimmed state
        write_a_batch(store)
        # Another store object moves old messages and wakes on, and indexes them; this one catches up.
        move_old_records_on(other, POOL, info, 3)
        assert state_of(other).trimmed_to > state_of(store).cursor
        expected, _ = replayed(pg, engine, keys)
        assert answers(store, keys) == expected
        old = workload.message(9)
        found, written = store.record_message_once(POOL, old, workload.receipt(old))
        assert written is None and found.status is MessageStatus.FAILED


def test_a_deleted_pool_leaves_no_index_behind(filled: Any, engine: Any) -> None:
    pg, info = filled
    with bounded(pg, engine) as store:
        store.delete_pool(POOL)
        with psycopg.connect(pg.conninfo) as db:
            for table in ("fastpool_point_keys", "fastpool_point_marks"):
                assert db.execute(f"SELECT count(*) FROM {pg.schema}.{table}").fetchone() == (0,)
        # The pool written anew (fewer records): every answer is the new pool's.
        again = workload.fill_store(store, POOL, BATCH + 10)
        keys = lookups(info)
        expected, _ = replayed(pg, engine, keys)
        assert answers(store, keys) == expected
        assert sum(answer is not None for answer in expected) < sum(1 for _ in keys) and again.messages


@pytest.mark.parametrize("damage", ["dropped", "wrong record"])
def test_a_trimmed_state_whose_index_is_damaged_answers_from_the_records(filled: Any, engine: Any, damage: str) -> None:
    pg, info = filled
    keys = lookups(info)
    with bounded(pg, engine) as store:
        store.members(POOL)
        write_a_batch(store)
        expected, snapshot = replayed(pg, engine, keys)
        with psycopg.connect(pg.conninfo, autocommit=True) as db:
            if damage == "dropped":
                db.execute(f"DROP TABLE {pg.schema}.fastpool_point_keys")
            else:  # every message key names message 0's record
                db.execute(
                    f"UPDATE {pg.schema}.fastpool_point_keys SET seq = "
                    f"(SELECT min(seq) FROM {pg.schema}.fastpool_point_keys WHERE kind = 0) WHERE kind = 0"
                )
        if damage == "dropped":  # the call that finds it gone is refused, retryable; then the records answer
            with pytest.raises(AgentError) as refused:
                answers(store, keys)
            assert refused.value.retry is RetryClassification.RETRYABLE
        assert answers(store, keys) == expected
        assert store.snapshot(POOL) == snapshot
        m = workload.message(10**6)  # and it still writes
        assert store.record_message(POOL, m, workload.receipt(m)).sequence == snapshot.cursor.sequence + 1


def test_a_failure_or_an_interrupt_after_the_commit_leaves_the_write_committed(
    filled: Any, engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg, info = filled
    keys = lookups(info)[::7]
    with bounded(pg, engine) as store:
        store.members(POOL)
        call_locked = fastpool.postgres._Session.call_locked
        failure: list[BaseException] = [psycopg.OperationalError("server closed the connection unexpectedly")]

        def fill_fails(session: Any, name: bytes, params: Any, lock: bytes) -> Any:
            if name == b"fastpool_point_fill" and failure:
                raise failure.pop()
            return call_locked(session, name, params, lock)

        monkeypatch.setattr(fastpool.postgres._Session, "call_locked", fill_fails)
        m = workload.message(10**6)
        assert store.record_message(POOL, m, workload.receipt(m)).sequence == RECORDS + 1  # committed...
        assert state_of(store).trimmed_to == 0  # ...though its fill failed: the state stays whole
        store.record_message(POOL, m, workload.receipt(m))
        assert state_of(store).trimmed_to == RECORDS + 2  # the next write filled and trimmed
        failure.append(KeyboardInterrupt())
        written = 0
        with pytest.raises(KeyboardInterrupt):  # the interrupt is the caller's; the write is committed
            for _ in range(BATCH):
                store.record_message(POOL, m, workload.receipt(m))
                written += 1
        assert written == BATCH - 1
        assert answers(store, keys) == replayed(pg, engine, keys)[0]
        assert store.snapshot(POOL).cursor.sequence == RECORDS + 2 + BATCH


def test_the_key_index_marks_the_schema_for_the_fastpools_that_know_it(
    pg: PgTarget, engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def version() -> str:
        with psycopg.connect(pg.conninfo) as db:
            row = db.execute(f"SELECT value FROM {pg.schema}.fastpool_meta WHERE key = 'schema_version'").fetchone()
            assert row is not None
            return str(row[0])

    with PostgresAgentPoolStore(pg.conninfo, schema=pg.schema, engine=engine):
        assert version() == "1"  # an older fastpool still opens a schema no bounded store indexed
    with bounded(pg, engine):
        assert version() == "2"
    monkeypatch.setattr(fastpool.postgres, "SCHEMA_VERSION", 1)  # a fastpool from before the index
    with pytest.raises(AgentError, match="upgrade fastpool"):
        PostgresAgentPoolStore(pg.conninfo, schema=pg.schema, engine=engine)


def test_bounded_state_is_a_bool(pg: PgTarget) -> None:
    with pytest.raises(InvalidInput, match="bounded_state"):
        PostgresAgentPoolStore(pg.conninfo, schema=pg.schema, bounded_state="yes")  # type: ignore[arg-type]


def test_a_readonly_store_never_trims(filled: Any, engine: Any) -> None:
    pg, info = filled
    options: dict[str, Any] = {"readonly": True, "bounded_state": True, "engine": engine}
    with PostgresAgentPoolStore(pg.conninfo, schema=pg.schema, **options) as store:
        assert len(store.snapshot(POOL).messages) == info.messages
        assert state_of(store).trimmed_to == 0


def test_verify_checks_the_key_index_against_the_records(filled: Any, engine: Any) -> None:
    pg, info = filled
    with PostgresAgentPoolStore(pg.conninfo, schema=pg.schema, readonly=True, engine=engine) as store:
        assert verify_store(store).clean
        with psycopg.connect(pg.conninfo, autocommit=True) as db:
            # One entry lost, one turned back to an older record, one naming a record of another key.
            db.execute(
                f"DELETE FROM {pg.schema}.fastpool_point_keys WHERE kind = 0 AND key = %s",
                [OLD_MESSAGE.idempotency_key],
            )
            db.execute(
                f"UPDATE {pg.schema}.fastpool_point_keys SET seq = seq - 1 WHERE kind = 2 AND key = %s",
                [OLD_CONDITION.condition_id],
            )
            db.execute(
                f"UPDATE {pg.schema}.fastpool_point_keys SET seq = 1 WHERE kind = 1 AND key = %s",
                [workload.wake_key(3)],
            )
        problems = verify_store(store).problems
    assert problems is not None and len(problems) == 1
    assert problems[0].pool_id == POOL
    assert f"differs from the records up to {3 * BATCH} in 5 entries" in problems[0].reason

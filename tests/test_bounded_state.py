"""``bounded_state=True``: a pool's cached state forgets what the point index holds (issue 23).

A long-running host's memory must stay flat however many messages its pools hold. Under
``bounded_state`` each index batch a store object writes lets the pool's cached state forget
its messages and wakes up to the batch's mark; a key it no longer holds is read from the
index. Every answer, every write's check and every snapshot must equal a full replay's,
whatever else happened to the file (other writers, a dropped or damaged index).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import apsw
import pytest
from bounded_checks import OLD_CONDITION, OLD_MESSAGE, check_writes_on_forgotten_keys, move_old_records_on
from interrupts import Injector
from store_helpers import lookups, raw_connection

from fastpool import (
    AgentError,
    AgentPool,
    AgentPoolMember,
    InvalidInput,
    MessageStatus,
    PostgresAgentPoolStore,
    SqliteAgentPoolStore,
    open_runtime,
    open_store,
)
from fastpool._point_reads import BATCH
from fastpool.benchmarking import workload
from fastpool.benchmarking.agent_pool import message

POOL = "pool.bench"
RECORDS = 3 * BATCH + 40  # three batches, and a tail after the last


def answers(store: SqliteAgentPoolStore, keys: list[tuple[str, str]]) -> list[Any]:
    return [getattr(store, method)(POOL, key) for method, key in keys]


def replayed(path: Path, engine: Any, keys: list[tuple[str, str]]) -> tuple[list[Any], Any]:
    """The answers and the snapshot of a full replay."""
    with SqliteAgentPoolStore(path, readonly=True, engine=engine) as store:
        snapshot = store.snapshot(POOL)
        return answers(store, keys), snapshot


def held(store: SqliteAgentPoolStore) -> int:
    """How many messages and wakes the pool's cached state holds."""
    state = store._cache.states[POOL].state
    return len(state.messages) + len(state.wakes)


def write_a_batch(store: SqliteAgentPoolStore) -> None:
    """Write past the pool's next index batch (one message, again and again): its state is trimmed after it."""
    m = workload.message(10**6)
    for _ in range(BATCH + 1):
        store.record_message(POOL, m, workload.receipt(m))
    assert store._cache.states[POOL].state.trimmed_to


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, engine: Any) -> tuple[Path, workload.PoolInfo]:
    """A pool written by a bounded store, which trimmed its state as it went."""
    path = tmp_path_factory.mktemp("bounded") / "template.sqlite"
    with SqliteAgentPoolStore(path, bounded_state=True, engine=engine) as store:
        info = workload.fill_store(store, POOL, RECORDS)
        assert store._cache.states[POOL].state.trimmed_to > 2 * BATCH
        assert held(store) <= 2 * BATCH  # the records since the last batch, not the pool's
    return path, info


@pytest.fixture
def filled(template: tuple[Path, workload.PoolInfo], tmp_path: Path) -> tuple[Path, workload.PoolInfo]:
    path = tmp_path / "bounded.sqlite"
    shutil.copyfile(template[0], path)
    return path, template[1]


def test_a_bounded_store_answers_every_key_as_a_full_replay(filled: Any, engine: Any) -> None:
    path, info = filled
    keys = lookups(info)
    with SqliteAgentPoolStore(path, bounded_state=True, engine=engine) as store:
        store.members(POOL)  # the full state, replayed
        assert store.record_pool_created_once(POOL) is None  # nothing written...
        m = workload.message(10**6)
        for _ in range(BATCH + 1):  # ...then a batch of writes: trimmed after it
            store.next_event_sequence(POOL)
            store.record_message(POOL, m, workload.receipt(m, MessageStatus.DELIVERED))
        assert store._cache.states[POOL].state.trimmed_to > RECORDS - BATCH
        expected, snapshot = replayed(path, engine, keys)
        assert answers(store, keys) == expected
        assert store.members(POOL) == snapshot.members
        assert store.topics(POOL) == snapshot.topics
        whole = store.snapshot(POOL)  # replayed from the file, and kept until the next batch
        assert whole == snapshot
        assert store._cache.states[POOL].state.trimmed_to == 0
        assert store.snapshot(POOL) is whole


def test_the_snapshot_of_a_trimmed_pool_is_the_full_replays(filled: Any, engine: Any) -> None:
    path, info = filled
    with SqliteAgentPoolStore(path, bounded_state=True, engine=engine) as store:
        workload.fill_store(store, "pool.other", 10)
        write_a_batch(store)
        trimmed = store.snapshot(POOL)
    assert trimmed == replayed(path, engine, [])[1]


def test_writes_check_keys_the_trimmed_state_no_longer_holds(filled: Any, engine: Any) -> None:
    path, info = filled
    with SqliteAgentPoolStore(path, bounded_state=True, engine=engine) as store:
        store.members(POOL)
        write_a_batch(store)
        assert workload.message_key(3) not in store._cache.states[POOL].state.message_dedupe
        before = store.snapshot(POOL).cursor
        store.evict(POOL)
        write_a_batch(store)
        cursor = store._cache.states[POOL].state.cursor
        check_writes_on_forgotten_keys(store, POOL)
        assert store._cache.states[POOL].state.cursor == cursor + 1
    keys = [("message_receipt", OLD_MESSAGE.idempotency_key), ("wake", OLD_CONDITION.condition_id)]
    expected, snapshot = replayed(path, engine, keys)
    with SqliteAgentPoolStore(path, engine=engine) as full:
        assert answers(full, keys) == expected
    assert snapshot.cursor.sequence == cursor + 1 > before.sequence


def test_records_other_writers_append_are_seen_by_a_trimmed_state(filled: Any, engine: Any) -> None:
    path, info = filled
    keys = lookups(info)
    with (
        SqliteAgentPoolStore(path, bounded_state=True, engine=engine) as bounded,
        SqliteAgentPoolStore(path, engine=engine) as other,
    ):
        answers(bounded, keys)  # looked-up keys kept in the trimmed state
        write_a_batch(bounded)
        # Another store object moves old messages and wakes on; the bounded one catches up.
        move_old_records_on(other, POOL, info, 9)
        expected, _ = replayed(path, engine, keys)
        assert answers(bounded, keys) == expected
        old = workload.message(9)
        found, written = bounded.record_message_once(POOL, old, workload.receipt(old))
        assert written is None and found.status is MessageStatus.FAILED


@pytest.mark.parametrize("damage", ["dropped", "wrong record"])
def test_a_trimmed_state_whose_index_is_damaged_answers_from_the_records(filled: Any, engine: Any, damage: str) -> None:
    path, info = filled
    keys = lookups(info)
    with SqliteAgentPoolStore(path, bounded_state=True, engine=engine) as store:
        store.members(POOL)
        write_a_batch(store)
        expected, snapshot = replayed(path, engine, keys)
        db = raw_connection(path)
        if damage == "dropped":
            db.execute("DROP TABLE fastpool_point_keys")
        else:  # every message key names message 0's record
            db.execute(
                "UPDATE fastpool_point_keys SET seq = (SELECT MIN(seq) FROM fastpool_point_keys WHERE kind = 0) "
                "WHERE kind = 0"
            )
        db.close()
        assert answers(store, keys) == expected
        assert store.snapshot(POOL) == snapshot


def test_a_failure_after_the_commit_leaves_the_write_committed_and_the_answers_right(
    filled: Any, engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, info = filled
    keys = lookups(info)[::7]
    with SqliteAgentPoolStore(path, bounded_state=True, engine=engine) as store:
        store.members(POOL)
        m = workload.message(10**6)

        def fail(db: Any, pool_id: str) -> int:
            raise apsw.IOError("disk I/O error")

        monkeypatch.setattr("fastpool.sqlite.mark_of", fail)
        cursors = [store.record_message(POOL, m, workload.receipt(m)).sequence for _ in range(BATCH + 1)]
        assert cursors == list(range(RECORDS + 1, RECORDS + BATCH + 2))  # every write reported committed
        monkeypatch.undo()
        assert answers(store, keys) == replayed(path, engine, keys)[0]


def test_bounded_state_is_a_bool() -> None:
    with pytest.raises(InvalidInput, match="bounded_state"):
        SqliteAgentPoolStore(":memory:", bounded_state=1)  # type: ignore[arg-type]


def test_a_runtime_host_keeps_flat_state_and_gives_the_answers_of_a_full_replay(
    target: tuple[str, dict[str, str]], engine: Any
) -> None:
    """On both backends: ``open_runtime`` turns ``bounded_state`` on."""
    location, options = target
    sends = BATCH + 200  # each send writes two records: several batches
    with open_runtime(location, engine=engine, **options) as runtime:
        pool = AgentPool("pool.host", runtime=runtime)
        for run_id in ("run.a", "run.b"):
            pool.join_run(AgentPoolMember(run_id=run_id, agent_id=f"agent.{run_id}"))
        for n in range(sends):
            pool.send(message(n))
        store = runtime.store
        assert isinstance(store, (SqliteAgentPoolStore, PostgresAgentPoolStore))
        state = store._cache.states["pool.host"].state
        assert state.trimmed_to and len(state.messages) <= BATCH
        # A retried old send is recognised, from the index.
        receipt, recorded = pool.send_with_outcome(message(3))
        assert not recorded and receipt.status is MessageStatus.DELIVERED
        snapshot = pool.snapshot()
        assert len(snapshot.messages) == sends
    with open_store(location, readonly=True, engine=engine, **options) as full:
        assert full.snapshot("pool.host") == snapshot


def test_a_readonly_store_never_trims(filled: Any, engine: Any) -> None:
    path, info = filled
    with SqliteAgentPoolStore(path, readonly=True, bounded_state=True, engine=engine) as store:
        assert len(store.snapshot(POOL).messages) == info.messages
        assert store._cache.states[POOL].state.trimmed_to == 0
    with pytest.raises(AgentError):
        with SqliteAgentPoolStore(path, readonly=True, bounded_state=True, engine=engine) as store:
            m = workload.message(1)
            store.record_message(POOL, m, workload.receipt(m))


def test_an_interrupt_anywhere_in_a_trimming_write_leaves_the_store_whole(
    tmp_path: Path, engine: Any, filled: Any
) -> None:
    path, info = filled
    with SqliteAgentPoolStore(path, bounded_state=True, engine=engine) as store:
        m = workload.message(10**6)
        for _ in range(BATCH + 1):  # the next batch is due BATCH records after the last
            store.record_message(POOL, m, workload.receipt(m))
            if store._points.due(POOL, store._cache.states[POOL].state.cursor + 1):
                break
    keys = lookups(info)[::11] + [("message_receipt", m.idempotency_key)]
    template = tmp_path / "due.sqlite"
    shutil.copyfile(path, template)

    def write(store: SqliteAgentPoolStore) -> None:
        store.record_message(POOL, m, workload.receipt(m, MessageStatus.DELIVERED))

    def run(at: int | None) -> Injector:
        shutil.copyfile(template, path)
        injector = Injector(at)
        with SqliteAgentPoolStore(path, bounded_state=True, engine=engine) as store:
            store.members(POOL)
            try:
                with injector.armed():
                    write(store)
            except KeyboardInterrupt:
                pass
            assert answers(store, keys) == replayed(path, engine, keys)[0]
            write(store)  # neither wedged nor wrong afterwards
            assert store.snapshot(POOL) == replayed(path, engine, [])[1]
        return injector

    count = run(None).seen
    assert count > 20
    # The pure engine's replay passes ~10^5 points, each like its neighbours (the compiled
    # engine's run covers every point of the store's own code): the first forty, a dozen
    # spread over the replay, and the last few.
    ats = set(range(1, count + 1, max(1, count // 12))) | set(range(1, 41)) | set(range(count - 8, count + 1))
    fired = sum(run(at).fired for at in sorted(ats) if at > 0)
    assert fired > 0

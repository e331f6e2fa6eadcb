"""Point reads on a big pool from the ``fastpool_point_*`` index, without a full replay (issue 14).

The records stay the truth: whatever happened to the index (records a Rust host appended
without it, a deleted, damaged or newer one), every answer equals a full replay's.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import apsw
import pytest
from store_helpers import lookups, raw_connection

from fastpool import AgentError, MessageStatus, RetryClassification, SqliteAgentPoolStore, WakeRegistrationStatus, wire
from fastpool._point_reads import BATCH, LAZY_FROM
from fastpool.benchmarking import workload
from fastpool.model import AgentPoolStoredMessage, AgentPoolStoredWake, MessageRecorded, WakeRecorded
from fastpool.verify import verify

POOL = "pool.bench"
RECORDS = LAZY_FROM + 2 * BATCH + 100  # the index covers more than LAZY_FROM, and a tail is left


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, workload.PoolInfo]:
    """A pool filled through the store's API, so its writers kept the index."""
    path = tmp_path_factory.mktemp("point") / "template.sqlite"
    with SqliteAgentPoolStore(path) as store:
        info = workload.fill_store(store, POOL, RECORDS)
    return path, info


@pytest.fixture
def pool(template: tuple[Path, workload.PoolInfo], tmp_path: Path) -> tuple[Path, workload.PoolInfo]:
    path = tmp_path / "pool.sqlite"
    shutil.copyfile(template[0], path)
    return path, template[1]


def answers(store: SqliteAgentPoolStore, keys: list[tuple[str, str]], pool_id: str = POOL) -> list[Any]:
    return [getattr(store, method)(pool_id, key) for method, key in keys]


def replayed(path: Path, engine: Any, keys: list[tuple[str, str]]) -> list[Any]:
    """The answers of a full replay."""
    with SqliteAgentPoolStore(path, readonly=True, engine=engine) as store:
        store.snapshot(POOL)
        return answers(store, keys)


def append_raw(path: Path, payloads: list[Any]) -> None:
    """Append records as a Rust host does (the seed's INSERT), without touching the index."""
    db = raw_connection(path)
    try:
        last = db.execute("SELECT MAX(seq) FROM agent_pool_records WHERE pool_id = ?", (POOL,)).fetchall()[0][0]
        with db:
            for sequence, payload in enumerate(payloads, last + 1):
                db.execute(
                    "INSERT INTO agent_pool_records (pool_id, seq, kind, payload_json) VALUES (?, ?, ?, ?)",
                    (POOL, sequence, payload.TYPE, wire.encode(payload)),
                )
    finally:
        db.close()


def foreign_payloads(info: workload.PoolInfo, count: int) -> list[Any]:
    """New transitions of existing messages and wakes, and new ones, as another host records them."""
    payloads: list[Any] = []
    for n in range(count):
        i = (n * 7) % (info.messages + 5)  # some keys the pool has, some new
        if n % 3:
            m = workload.message(i)
            receipt = workload.receipt(m, MessageStatus.FAILED, (), 900_000 + n)
            payloads.append(MessageRecorded(stored=AgentPoolStoredMessage(message=m, receipt=receipt)))
        else:
            c = workload.wake_condition(i % (info.wakes + 5))
            r = workload.registration(c, WakeRegistrationStatus.CANCELLED, 900_000 + n)
            payloads.append(
                WakeRecorded(
                    stored=AgentPoolStoredWake(
                        condition=c, compiled_filter=workload.compiled_filter("run.000001"), registration=r
                    )
                )
            )
    return payloads


def test_a_new_store_answers_point_reads_without_replaying_the_pool(pool: Any, engine: Any) -> None:
    path, info = pool
    keys = lookups(info)
    with SqliteAgentPoolStore(path, engine=engine) as store:
        assert answers(store, keys) == replayed(path, engine, keys)
        assert store.watch(POOL, RECORDS - 3) and len(list(store.watch(POOL, RECORDS - 3))) == 3
        assert POOL not in store._cache.states  # no full state was built
        assert store.snapshot(POOL).cursor.sequence == RECORDS  # the full replay, when asked for


def test_a_readonly_store_reads_the_index(pool: Any, engine: Any) -> None:
    path, info = pool
    keys = lookups(info)[::5]
    with SqliteAgentPoolStore(path, readonly=True, engine=engine) as store:
        assert answers(store, keys) == replayed(path, engine, keys)
        assert POOL not in store._cache.states


@pytest.mark.parametrize("count", [BATCH // 4, 3 * BATCH])
def test_records_a_rust_host_appended_give_the_answers_of_a_full_replay(pool: Any, engine: Any, count: int) -> None:
    path, info = pool
    keys = lookups(info)
    with SqliteAgentPoolStore(path, engine=engine) as warm:
        answers(warm, keys)  # answers cached before the foreign records
        append_raw(path, foreign_payloads(info, count))
        expected = replayed(path, engine, keys)
        assert answers(warm, keys) == expected  # caught up through the change probe
    with SqliteAgentPoolStore(path, engine=engine) as cold:
        assert answers(cold, keys) == expected
        assert POOL not in cold._cache.states
    # A fastpool writer then indexes the foreign records from their JSON, in its batches.
    with SqliteAgentPoolStore(path, engine=engine) as writer:
        for n in range(BATCH + 1):
            writer.next_event_sequence(POOL)
            m = workload.message(100_000 + n)
            writer.record_message(POOL, m, workload.receipt(m))
    keys.append(("message_receipt", workload.message_key(100_000 + BATCH)))
    with SqliteAgentPoolStore(path, engine=engine) as cold:
        assert answers(cold, keys) == replayed(path, engine, keys)
    assert verify(path).clean


def test_a_deleted_index_gives_the_answers_of_a_full_replay(pool: Any, engine: Any) -> None:
    path, info = pool
    keys = lookups(info)[::3]
    expected = replayed(path, engine, keys)
    db = raw_connection(path)
    db.execute("DROP TABLE fastpool_point_keys")
    db.close()
    with SqliteAgentPoolStore(path, readonly=True, engine=engine) as readonly:
        assert answers(readonly, keys) == expected
    with SqliteAgentPoolStore(path, engine=engine) as store:  # starts the index anew, empty
        assert answers(store, keys) == expected
    assert point_mark(path) == RECORDS  # the writer's full replay filled it again
    assert verify(path).clean


def test_a_damaged_index_entry_falls_back_to_a_full_replay(pool: Any, engine: Any) -> None:
    path, info = pool
    keys = lookups(info)
    expected = replayed(path, engine, keys)
    db = raw_connection(path)
    # Every message key now names the record of message 0, a wake key that of wake 0.
    db.execute(
        "UPDATE fastpool_point_keys SET seq = (SELECT MIN(seq) FROM fastpool_point_keys WHERE kind = 0) WHERE kind = 0"
    )
    db.execute(
        "UPDATE fastpool_point_keys SET seq = (SELECT MIN(seq) FROM fastpool_point_keys WHERE kind = 1) WHERE kind = 1"
    )
    db.close()
    with SqliteAgentPoolStore(path, engine=engine) as store:
        assert answers(store, keys) == expected
    problems = verify(path).problems
    assert problems and "point-read index differs from the records" in str(problems[0])


def test_an_index_of_a_newer_fastpool_is_neither_read_nor_written(pool: Any, engine: Any) -> None:
    path, info = pool
    keys = lookups(info)[::4]
    db = raw_connection(path)
    db.execute("UPDATE fastpool_meta SET value = '2' WHERE key = 'point_index'")
    db.execute("DELETE FROM fastpool_point_keys WHERE kind = 0")  # what this fastpool would misread
    marks = db.execute("SELECT * FROM fastpool_point_marks").fetchall()
    db.close()
    expected = replayed(path, engine, keys)
    with SqliteAgentPoolStore(path, engine=engine) as store:
        assert answers(store, keys) == expected
        for n in range(2 * BATCH):
            m = workload.message(200_000 + n)
            store.record_message(POOL, m, workload.receipt(m))
    db = raw_connection(path)
    assert db.execute("SELECT * FROM fastpool_point_marks").fetchall() == marks
    db.close()


def test_a_corrupt_record_found_through_the_index_is_reported(pool: Any, engine: Any) -> None:
    path, _ = pool
    db = raw_connection(path)
    sequence = db.execute("SELECT seq FROM fastpool_point_keys WHERE kind = 0 AND key = ?", (workload.message_key(5),))
    (seq,) = sequence.fetchall()[0]
    db.execute('UPDATE agent_pool_records SET payload_json = \'{"type": "run_message"}\' WHERE seq = ?', (seq,))
    db.close()
    with SqliteAgentPoolStore(path, engine=engine) as store:
        with pytest.raises(AgentError) as raised:
            store.message_receipt(POOL, workload.message_key(5))
        assert raised.value.retry == RetryClassification.REPAIR_NEEDED
        assert f"pool {POOL!r} record {seq}" in raised.value.message
        assert store.message_receipt(POOL, workload.message_key(6)) is not None  # the store stays usable


def test_writers_keep_the_index_within_a_batch_of_the_last_record(tmp_path: Path, engine: Any) -> None:
    path = tmp_path / "pool.sqlite"
    with SqliteAgentPoolStore(path, engine=engine) as store:
        workload.fill_store(store, POOL, 3 * BATCH + 7)
    db = raw_connection(path)
    ((mark,),) = db.execute("SELECT seq FROM fastpool_point_marks WHERE pool_id = ?", (POOL,)).fetchall()
    db.close()
    assert 3 * BATCH + 7 - BATCH <= mark < 3 * BATCH + 7
    assert verify(path).clean


def point_mark(path: Path) -> int:
    db = raw_connection(path)
    try:
        rows = db.execute("SELECT seq FROM fastpool_point_marks WHERE pool_id = ?", (POOL,)).fetchall()
    finally:
        db.close()
    return int(rows[0][0]) if rows else 0


def test_a_writers_full_replay_of_a_pool_a_rust_host_wrote_indexes_it(tmp_path: Path, engine: Any) -> None:
    path = tmp_path / "pool.sqlite"
    SqliteAgentPoolStore(path).close()  # fastpool's tables; then a Rust host writes every record
    info = workload.write_pool(path, POOL, RECORDS)
    keys = lookups(info)
    with SqliteAgentPoolStore(path, readonly=True, engine=engine) as reader:
        reader.snapshot(POOL)
    assert point_mark(path) == 0  # a readonly store writes nothing
    with SqliteAgentPoolStore(path, engine=engine) as writer:
        writer.snapshot(POOL)  # read once, by a full replay
    assert point_mark(path) == RECORDS
    with SqliteAgentPoolStore(path, engine=engine) as cold:
        assert answers(cold, keys) == replayed(path, engine, keys)
        assert POOL not in cold._cache.states  # answered from the index
    assert verify(path).clean


def test_a_writers_full_replay_indexes_nothing_of_a_pool_deleted_meanwhile(tmp_path: Path, engine: Any) -> None:
    path = tmp_path / "pool.sqlite"
    SqliteAgentPoolStore(path).close()
    workload.write_pool(path, POOL, RECORDS)

    class DeletedFirst:
        """The writer's index, with the pool deleted by another store object right before the index is written."""

        def __init__(self, points: Any) -> None:
            self._points = points

        def index_replayed(self, *args: Any) -> None:
            other.delete_pool(POOL)
            self._points.index_replayed(*args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._points, name)

    with SqliteAgentPoolStore(path, engine=engine) as writer, SqliteAgentPoolStore(path) as other:
        writer._points = DeletedFirst(writer._points)  # type: ignore[assignment]
        writer.snapshot(POOL)
    assert point_mark(path) == 0
    assert verify(path).clean


def test_a_file_the_rust_crate_created_gets_no_index(tmp_path: Path) -> None:
    path = tmp_path / "rust.sqlite"
    workload.write_pool(path, POOL, 50)  # the Rust crate's tables only
    with SqliteAgentPoolStore(path) as store:
        m = workload.message(1)
        store.record_message(POOL, m, workload.receipt(m))
    db = raw_connection(path)
    assert not db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'fastpool%'").fetchall()
    db.close()
    with pytest.raises(apsw.SQLError):
        raw_connection(path).execute("SELECT * FROM fastpool_point_keys").fetchall()


def test_watch_tails_stay_right_as_records_arrive(tmp_path: Path, engine: Any) -> None:
    path = tmp_path / "pool.sqlite"
    with SqliteAgentPoolStore(path, engine=engine) as watcher, SqliteAgentPoolStore(path, engine=engine) as writer:
        workload.fill_store(writer, POOL, 40)
        for n in range(30):
            last = watcher.snapshot(POOL).cursor.sequence if n % 2 else 40 + n
            tail = list(watcher.watch(POOL, max(0, last - 10)))
            with SqliteAgentPoolStore(path, readonly=True, engine=engine) as fresh:
                assert tail == list(fresh.watch(POOL, max(0, last - 10)))
            m = workload.message(1000 + n)
            (writer if n % 3 else watcher).record_message(POOL, m, workload.receipt(m))
        assert [r.cursor.sequence for r in watcher.watch(POOL, 60)] == list(range(61, 71))


def test_a_rolled_back_transaction_leaves_none_of_its_records_in_watch(tmp_path: Path, engine: Any) -> None:
    path = tmp_path / "pool.sqlite"
    with SqliteAgentPoolStore(path, engine=engine) as store, SqliteAgentPoolStore(path, engine=engine) as other:
        workload.fill_store(store, POOL, 20)
        assert len(list(store.watch(POOL, 10))) == 10
        with pytest.raises(RuntimeError), store.transaction():
            m = workload.message(500)
            store.record_message(POOL, m, workload.receipt(m))
            assert [r.payload for r in store.watch(POOL, 10)][-1].stored.message == m  # seen inside the block
            raise RuntimeError("roll back")
        m = workload.message(600)
        other.record_message(POOL, m, workload.receipt(m))
        assert [r.payload for r in store.watch(POOL, 10)][-1].stored.message == m


def test_an_index_dropped_while_a_store_reads_it_gives_the_answers_of_a_full_replay(pool: Any, engine: Any) -> None:
    path, info = pool
    keys = lookups(info)[::7]
    expected = replayed(path, engine, keys)
    with SqliteAgentPoolStore(path, engine=engine) as store:
        assert store.message_receipt(POOL, workload.message_key(0)) is not None  # a point state, from the index
        db = raw_connection(path)
        db.execute("DROP TABLE fastpool_point_keys")
        db.close()
        assert answers(store, keys) == expected


# Damage readers must notice (issue 21, item 6): each made point reads answer None or an older status.
_LAST_MARK = "(SELECT seq FROM fastpool_point_marks WHERE pool_id = 'pool.bench')"
DAMAGE = {
    # Every seventh entry gone, as after a partial DELETE.
    "deleted entries": ["DELETE FROM fastpool_point_keys WHERE kind < 3 AND seq % 7 = 0"],
    # The last batch's entries lost while its mark stayed.
    "deleted batch": [f"DELETE FROM fastpool_point_keys WHERE kind < 3 AND seq > {_LAST_MARK} - {BATCH}"],
    # Each message key names the record of its first status (ACCEPTED), not its latest.
    "older record of the key": [
        "UPDATE fastpool_point_keys SET seq = seq - 1 WHERE kind = 0 AND seq IN "
        "(SELECT seq FROM agent_pool_records WHERE pool_id = 'pool.bench' AND json_extract(payload_json, "
        "'$.stored.receipt.status') = 'delivered')"
    ],
    "mark past the end": ["UPDATE fastpool_point_marks SET seq = seq + 5000"],
    "mark over unindexed records": [
        "UPDATE fastpool_point_marks SET seq = (SELECT MAX(seq) FROM agent_pool_records WHERE pool_id = 'pool.bench')"
    ],
    "missing pool_opened entry": ["DELETE FROM fastpool_point_keys WHERE kind = 3"],
    "pool_opened entry on another record": ["UPDATE fastpool_point_keys SET seq = 2 WHERE kind = 3"],
}


def wrong_answers(path: Path, engine: Any, keys: list[tuple[str, str]], expected: list[Any]) -> int:
    """Answers of a new store object (and its watch) that differ from a full replay's."""
    with SqliteAgentPoolStore(path, engine=engine) as store:
        try:
            found = answers(store, keys)
        except AgentError:
            return len(keys)
        wrong = sum(a != b for a, b in zip(found, expected))
        try:
            watched = [record.cursor.sequence for record in store.watch(POOL, RECORDS - 3)]
        except AgentError:
            watched = []
        return wrong + (watched != [RECORDS - 2, RECORDS - 1, RECORDS])


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_index_never_gives_a_wrong_answer(pool: Any, engine: Any, damage: str) -> None:
    path, info = pool
    keys = lookups(info)
    expected = replayed(path, engine, keys)
    db = raw_connection(path)
    for statement in DAMAGE[damage]:
        assert db.execute(statement).fetchall() == [] and db.changes() > 0
    db.close()
    wrong = wrong_answers(path, engine, keys, expected)
    print(f"\n{damage}: {wrong} wrong answers of {len(keys) + 1}")
    assert wrong == 0
    assert not verify(path).clean  # verify finds every one


def test_damage_below_the_recent_records_is_found_by_verify_only(pool: Any, engine: Any) -> None:
    """The documented limit of the readers' checks (_point_reads): an entry of an early key deleted,
    another turned back to its key's older record, answer as the damaged index says."""
    path, _ = pool
    keys = [("message_receipt", workload.message_key(5)), ("message_receipt", workload.message_key(6))]
    expected = replayed(path, engine, keys)
    db = raw_connection(path)
    db.execute("DELETE FROM fastpool_point_keys WHERE kind = 0 AND key = ?", (workload.message_key(5),))
    db.execute("UPDATE fastpool_point_keys SET seq = seq - 1 WHERE kind = 0 AND key = ?", (workload.message_key(6),))
    db.close()
    with SqliteAgentPoolStore(path, engine=engine) as store:
        found = answers(store, keys)
    assert found[0] is None and found[1].status == MessageStatus.ACCEPTED
    assert expected[1].status == MessageStatus.DELIVERED
    problems = verify(path).problems
    assert problems and "point-read index differs from the records up to" in str(problems[0])

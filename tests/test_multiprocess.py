"""Several processes on one file (SPEC §5.2): gap-free cursors, one PoolOpened, unique event
sequences, one record per idempotency key.

Real processes ("spawn": a fresh interpreter that imports fastpool exactly as this one did;
each child reports which fastpool and which engine it loaded). The workers live in
``store_helpers`` so the children can import them by name.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import store_helpers
from store_helpers import CONFIG, CONFIGS, raw_connection, raw_rows

import fastpool
from fastpool import MessageRecorded, PoolOpened, SqliteAgentPoolStore

pytestmark = pytest.mark.slow

POOL = "pool.mp"
TIMEOUT = 60.0  # seconds for a whole group of workers; each test normally takes a few


def run_workers(target: Any, argument_lists: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Start one spawn process per argument tuple (each also gets a shared barrier and a
    results queue), wait for every report, and check each child loaded this fastpool."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(argument_lists))
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(*arguments, barrier, results), daemon=True) for arguments in argument_lists
    ]
    for process in processes:
        process.start()
    reports = []
    try:
        for _ in processes:
            reports.append(results.get(timeout=TIMEOUT))
        for process in processes:
            process.join(timeout=TIMEOUT)
            assert process.exitcode == 0
    except queue.Empty:
        pytest.fail(f"only {len(reports)} of {len(processes)} worker processes reported within {TIMEOUT}s")
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
    for report in reports:
        assert report["fastpool"] == fastpool.__file__, "a child imported another fastpool"
        assert report["extensions"] == fastpool.USE_EXTENSIONS, "a child loaded the other engine"
    assert len({report["pid"] for report in reports}) == len(processes)
    return sorted(reports, key=lambda report: report["worker"])


def test_workers_are_imported_from_the_suites_helpers() -> None:
    # The children find the workers by module name; they must stay where spawn can import them.
    assert store_helpers.mp_record_messages.__module__ == "store_helpers"


def test_four_writers_get_gap_free_unique_cursors(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    writers, per_writer = 4, 500
    # This process keeps a store object with a warm cache while the others write.
    watcher = SqliteAgentPoolStore(path)
    try:
        assert watcher.open_pool(POOL, CONFIG).cursor.sequence == 1
        assert watcher.message_receipt(POOL, "key.msg.0.0000") is None
        reports = run_workers(
            store_helpers.mp_record_messages, [(str(path), POOL, worker, per_writer) for worker in range(writers)]
        )
        warm = watcher.snapshot(POOL)
        assert warm.cursor.sequence == writers * per_writer + 1
        assert watcher.message_receipt(POOL, "key.msg.0.0000") is not None
        # Its next write lands after all of theirs.
        assert watcher.record_pool_created(POOL).sequence == writers * per_writer + 2
    finally:
        watcher.close()

    assert [report["errors"] for report in reports] == [[]] * writers
    everything = [cursor for report in reports for cursor in report["cursors"]]
    assert len(everything) == writers * per_writer
    assert sorted(everything) == list(range(2, writers * per_writer + 2))  # unique and gap-free
    for report in reports:
        assert report["cursors"] == sorted(report["cursors"])
    # The writers really ran at once: in cursor order, the writer changes many times (one
    # after another would change it only writers - 1 times).
    owner = {cursor: report["worker"] for report in reports for cursor in report["cursors"]}
    order = [owner[cursor] for cursor in sorted(owner)]
    switches = sum(1 for before, after in zip(order, order[1:], strict=False) if before != after)
    assert switches >= writers, f"writers did not overlap ({switches} switches)"

    with SqliteAgentPoolStore(path) as store:
        snapshot = store.snapshot(POOL)
        assert snapshot.cursor.sequence == writers * per_writer + 2
        assert snapshot.messages == warm.messages and snapshot.created
        expected_ids = sorted(f"msg.{worker}.{n:04}" for worker in range(writers) for n in range(per_writer))
        assert [stored.message.message_id for stored in snapshot.messages] == expected_ids
        records = list(store.watch(POOL, None))[:-1]  # the last is the watcher's pool_created
        assert [record.cursor.sequence for record in records] == list(range(1, writers * per_writer + 2))
        assert isinstance(records[0].payload, PoolOpened)
        assert all(isinstance(record.payload, MessageRecorded) for record in records[1:])
        # Each writer's cursors point at its own messages.
        by_cursor = {record.cursor.sequence: record.payload.stored.message.message_id for record in records[1:]}
        for report in reports:
            ids = [by_cursor[cursor] for cursor in report["cursors"]]
            assert ids == [f"msg.{report['worker']}.{n:04}" for n in range(per_writer)]
        assert store.message_receipt(POOL, "key.msg.3.0499") is not None


def test_processes_whose_threads_share_group_commits_get_gap_free_cursors(tmp_path: Path) -> None:
    """Three processes, each with four threads appending through one store object: the groups
    of each process and the writes of the others interleave, and cursors stay unique and
    gap-free, each pointing at the record of the call that got it."""
    path = tmp_path / "pools.sqlite"
    workers, threads, per_thread = 3, 4, 100
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(POOL, CONFIG)

    reports = run_workers(
        store_helpers.mp_record_messages_from_threads,
        [(str(path), POOL, worker, threads, per_thread) for worker in range(workers)],
    )

    assert [report["errors"] for report in reports] == [[]] * workers
    total = workers * threads * per_thread
    everything = sorted(cursor for report in reports for cursors in report["cursors"].values() for cursor in cursors)
    assert everything == list(range(2, total + 2))
    with SqliteAgentPoolStore(path) as store:
        records = list(store.watch(POOL, 1))
        by_cursor = {record.cursor.sequence: record.payload.stored.message.message_id for record in records}
        for report in reports:
            for thread, cursors in report["cursors"].items():
                assert cursors == sorted(cursors)
                assert [by_cursor[cursor] for cursor in cursors] == [
                    f"msg.{report['worker']}.{thread}.{n:04}" for n in range(per_thread)
                ]
        assert len(store.snapshot(POOL).messages) == total


RACES = 8  # pools opened in lock-step by both processes


@pytest.mark.parametrize("new_file", [False, True], ids=["existing_file", "new_file"])
def test_two_processes_opening_one_new_pool_write_one_pool_opened(tmp_path: Path, new_file: bool) -> None:
    path = tmp_path / "pools.sqlite"
    if not new_file:
        SqliteAgentPoolStore(path).close()
    pools = [f"pool.race.{n}" for n in range(RACES)]

    reports = run_workers(store_helpers.mp_open_pools, [(str(path), pools, "default", worker) for worker in range(2)])

    assert [report["errors"] for report in reports] == [[], []]
    for report in reports:
        assert report["outcomes"] == [{"ok": True, "cursor": 1}] * RACES
    db = raw_connection(path)
    try:
        kinds = Counter(db.execute("SELECT pool_id, kind FROM agent_pool_records").fetchall())
    finally:
        db.close()
    assert kinds == Counter({(pool_id, "pool_opened"): 1 for pool_id in pools})


def test_two_processes_opening_one_new_pool_with_different_configs(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    SqliteAgentPoolStore(path).close()
    pools = [f"pool.race.{n}" for n in range(RACES)]
    names = ["default", "other"]

    reports = run_workers(
        store_helpers.mp_open_pools, [(str(path), pools, names[worker], worker) for worker in range(2)]
    )

    assert [report["errors"] for report in reports] == [[], []]
    conflict = {
        "ok": False,
        "type": "AgentError",
        "kind": "InvalidStateTransition",
        "retry": "RepairNeeded",
        "message": "sqlite agent pool store config conflicts with existing pool",
    }
    with SqliteAgentPoolStore(path) as store:
        for index, pool_id in enumerate(pools):
            outcomes = [report["outcomes"][index] for report in reports]
            winners = [worker for worker, outcome in enumerate(outcomes) if outcome.get("ok")]
            assert len(winners) == 1, outcomes
            (winner,) = winners
            assert outcomes[winner] == {"ok": True, "cursor": 1}
            assert outcomes[1 - winner] == conflict
            rows = raw_rows(path, pool_id)
            assert [row[:2] for row in rows] == [(1, "pool_opened")]
            config = CONFIGS[names[winner]]
            assert store.snapshot(pool_id).message_policy == config.message_policy
            assert list(store.watch(pool_id))[0].payload == PoolOpened(config=config)


def test_event_sequences_from_four_processes_are_unique(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    workers, per_worker = 4, 200
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(POOL, CONFIG)

    reports = run_workers(
        store_helpers.mp_next_event_sequence, [(str(path), POOL, worker, per_worker) for worker in range(workers)]
    )

    assert [report["errors"] for report in reports] == [[]] * workers
    values = [value for report in reports for value in report["values"]]
    assert len(values) == workers * per_worker
    assert sorted(values) == list(range(1, workers * per_worker + 1))
    for report in reports:
        assert report["values"] == sorted(report["values"])
    with SqliteAgentPoolStore(path) as store:
        assert store.next_event_sequence(POOL) == workers * per_worker + 1
        assert store.snapshot(POOL).cursor.sequence == 1  # no records were appended


def test_processes_sharing_idempotency_keys_record_each_key_once(tmp_path: Path) -> None:
    """Four processes send the same messages and wakes with ``*_once`` at once (two up the keys,
    two down): each key is recorded exactly once, and every other sender gets the winner's receipt."""
    path = tmp_path / "pools.sqlite"
    workers, keys = 4, 300
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(POOL, CONFIG)

    reports = run_workers(store_helpers.mp_record_once, [(str(path), POOL, worker, keys) for worker in range(workers)])

    assert [report["errors"] for report in reports] == [[]] * workers
    for field in ("messages", "wakes"):
        appended = Counter(n for report in reports for n in report[field])
        assert appended == Counter(range(keys)), f"{field}: each key appended by exactly one process"
    # The processes really raced: more than one of them won keys.
    assert sum(1 for report in reports if report["messages"] or report["wakes"]) >= 2
    with SqliteAgentPoolStore(path) as store:
        snapshot = store.snapshot(POOL)
        records = list(store.watch(POOL, 1))
        assert [record.cursor.sequence for record in records] == list(range(2, 2 * keys + 2))
        keys_seen = Counter(
            getattr(record.payload.stored, "message", None) or record.payload.stored.condition for record in records
        )
        assert set(keys_seen.values()) == {1}
        # Whoever lost a key was handed what is in the file under it.
        winners = {stored.message.message_id: list(stored.receipt.delivered_to) for stored in snapshot.messages}
        winners |= {stored.condition.condition_id: stored.registration.run_id for stored in snapshot.wakes}
        assert len(winners) == 2 * keys
        for report in reports:
            assert all(winners[key] == value for key, value in report["in_effect"].items())
            assert len(report["in_effect"]) + len(report["messages"]) + len(report["wakes"]) == 2 * keys

"""Group commit: concurrent writers on one SQLite store object share transactions.

While a group's transaction is in flight the writes that arrive queue up; the next group
applies them in arrival order, each with its own check and outcome, and commits once. A
call returns only after the commit that holds its record. To make a group deterministic,
the tests hold the store's lock (as a reader or ``transaction()`` would) while writes
queue, then let it go: the queued writes become one group.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
from store_helpers import CONFIG, member, message, raw_connection, raw_rows, receipt

from fastpool import (
    AgentError,
    AgentErrorKind,
    AgentPoolStoreCursor,
    InvalidInput,
    MessageStatus,
    RetryClassification,
    SqliteAgentPoolStore,
    wire,
)

POOL = "pool.group"
WAIT = 10.0  # seconds for a thread or a queue to get where a test needs it


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "pools.sqlite"


@pytest.fixture
def store(path: Path, engine: Any) -> Iterator[SqliteAgentPoolStore]:
    with SqliteAgentPoolStore(path, engine=engine) as opened:
        opened.open_pool(POOL, CONFIG)
        yield opened


class Groups:
    """Counts the store's group transactions, with their sizes."""

    def __init__(self, store: SqliteAgentPoolStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        commit_group = store._commit_group

        def counted(group: list[Any]) -> None:
            self.sizes.append(len(group))
            commit_group(group)

        monkeypatch.setattr(store, "_commit_group", counted)


class Queued:
    """Writes started on threads of their own, one at a time, each waiting before the next
    starts (so their arrival order is the order given); ``outcomes`` once they have ended.

    The first waits for the lock on its own if no writer was about lately (a group of one),
    else it leads the queue; every later one is queued for the next group.
    """

    def __init__(self, store: SqliteAgentPoolStore) -> None:
        self.store = store
        self.threads: list[threading.Thread] = []
        self.outcomes: dict[int, tuple[str, Any]] = {}
        self.alone = False

    def start(self, call: Callable[[SqliteAgentPoolStore], Any]) -> None:
        index = len(self.threads)

        def run() -> None:
            try:
                self.outcomes[index] = ("ok", call(self.store))
            except AgentError as error:
                self.outcomes[index] = ("error", error)
            except BaseException as error:  # noqa: BLE001 - what the thread ended on, for the test to see
                self.outcomes[index] = ("raised", error)

        thread = threading.Thread(target=run)
        self.threads.append(thread)
        thread.start()
        if index == 0:
            wait_until(lambda: self.store._group._leading)
            self.alone = not self.store._group._queue
        else:
            wait_until(lambda: len(self.store._group._queue) == index + 1 - self.alone)

    def join(self) -> list[tuple[str, Any]]:
        for thread in self.threads:
            thread.join(WAIT)
            assert not thread.is_alive(), "a queued write never returned"
        return [self.outcomes[index] for index in range(len(self.threads))]


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def payload_at(path: Path, sequence: int) -> str:
    return {row[0]: row[2] for row in raw_rows(path, POOL)}[sequence]


def recorded(message_id: str, status: MessageStatus = MessageStatus.ACCEPTED) -> str:
    from fastpool import AgentPoolStoredMessage, MessageRecorded

    return wire.encode(
        MessageRecorded(stored=AgentPoolStoredMessage(message=message(message_id), receipt=receipt(message_id, status)))
    )


# -------------------------------------------------------------------- many threads


def test_sixteen_threads_get_gap_free_cursors_each_holding_its_own_record(
    store: SqliteAgentPoolStore, path: Path
) -> None:
    threads_count, per_thread = 16, 40
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_count)

    def work(worker: int) -> None:
        reader = raw_connection(path)  # another connection: a returned write is committed
        try:
            barrier.wait()
            got = []
            for n in range(per_thread):
                message_id = f"msg.{worker}.{n:03}"
                sequence = store.record_message(POOL, message(message_id), receipt(message_id)).sequence
                rows = reader.execute(
                    "SELECT payload_json FROM agent_pool_records WHERE pool_id = ? AND seq = ?", (POOL, sequence)
                ).fetchall()
                assert rows == [(recorded(message_id),)], f"cursor {sequence} does not hold {message_id}"
                got.append(sequence)
            results[worker] = got
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            reader.close()

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    everything = sorted(cursor for got in results.values() for cursor in got)
    assert everything == list(range(2, threads_count * per_thread + 2))
    for got in results.values():
        assert got == sorted(got)
    with SqliteAgentPoolStore(path) as fresh:
        assert fresh.snapshot(POOL) == store.snapshot(POOL)
    assert [row[0] for row in raw_rows(path, POOL)] == list(range(1, threads_count * per_thread + 2))


# -------------------------------------------------------------------- one group, each write its own outcome


def test_a_group_applies_writes_in_arrival_order_each_with_its_own_outcome(
    store: SqliteAgentPoolStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.record_message(POOL, message("msg.old"), receipt("msg.old"))  # cursor 2
    groups = Groups(store, monkeypatch)
    queued = Queued(store)
    with store._lock:
        queued.start(lambda s: s.record_pool_created(POOL))  # waits for the lock alone; the rest queue
        queued.start(lambda s: s.join_member(POOL, member("run.a")))
        queued.start(lambda s: s.leave_member(POOL, "run.nobody"))  # fails its check
        queued.start(lambda s: s.record_message(POOL, message("msg.1"), receipt("msg.1")))
        queued.start(lambda s: s.leave_member(POOL, "run.a"))  # sees the join of this group
        queued.start(lambda s: s.record_message_once(POOL, message("msg.old"), receipt("msg.old")))
        queued.start(lambda s: s.record_message_once(POOL, message("msg.other", key="key.msg.1"), receipt("msg.other")))
        queued.start(lambda s: s.record_message_once(POOL, message("msg.2"), receipt("msg.2")))
        queued.start(lambda s: s.join_member("pool.unopened", member("run.a")))  # fails its check
        queued.start(lambda s: s.record_pool_created(POOL))
    alone, *outcomes = queued.join()
    assert alone == ("ok", AgentPoolStoreCursor(sequence=3))
    assert groups.sizes == [9]
    joined, not_member, first, left, known, reused, once, unopened, created = outcomes
    assert joined == ("ok", AgentPoolStoreCursor(sequence=4))
    assert not_member[0] == "error" and not_member[1].message == "run is not a member of this agent pool"
    assert not_member[1].kind is AgentErrorKind.INVALID_STATE_TRANSITION
    assert first == ("ok", AgentPoolStoreCursor(sequence=5))
    assert left == ("ok", (member("run.a"), AgentPoolStoreCursor(sequence=6)))
    assert known == ("ok", (receipt("msg.old"), None))
    assert reused[0] == "error" and isinstance(reused[1], InvalidInput) and "key.msg.1" in reused[1].message
    assert once == ("ok", (receipt("msg.2"), AgentPoolStoreCursor(sequence=7)))
    assert unopened[0] == "error" and unopened[1].message == "sqlite agent pool store has not opened this pool"
    assert created == ("ok", AgentPoolStoreCursor(sequence=8))
    assert [row[:2] for row in raw_rows(path, POOL)][2:] == [
        (3, "pool_created"),
        (4, "member_joined"),
        (5, "run_message"),
        (6, "member_left"),
        (7, "run_message"),
        (8, "pool_created"),
    ]
    assert payload_at(path, 5) == recorded("msg.1")
    with SqliteAgentPoolStore(path) as fresh:
        assert fresh.snapshot(POOL) == store.snapshot(POOL)
        assert list(fresh.watch("pool.unopened")) == []


def test_a_lone_writer_commits_on_its_own_without_the_queue(
    store: SqliteAgentPoolStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = Groups(store, monkeypatch)
    for n in range(5):
        assert store.record_message(POOL, message(f"msg.{n}"), receipt(f"msg.{n}")).sequence == n + 2
    with store.transaction():  # writes inside a transaction() are the transaction's
        store.join_member(POOL, member("run.a"))
        store.leave_member(POOL, "run.a")
    assert groups.sizes == []


def test_writes_of_other_threads_wait_for_a_transaction_then_commit_as_a_group(
    store: SqliteAgentPoolStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = Groups(store, monkeypatch)
    queued = Queued(store)
    with store.transaction():
        store.join_member(POOL, member("run.t"))
        for n in range(3):
            queued.start(lambda s, n=n: s.record_message(POOL, message(f"msg.{n}"), receipt(f"msg.{n}")))
        # The transaction's own writes go straight in, ahead of the queued ones.
        assert store.leave_member(POOL, "run.t")[1].sequence == 3
        assert [row[0] for row in raw_rows(path, POOL)] == [1]  # nothing committed yet
    assert queued.join() == [("ok", AgentPoolStoreCursor(sequence=n)) for n in (4, 5, 6)]
    assert groups.sizes == [2]  # the first waited for the lock on its own


# -------------------------------------------------------------------- a group that fails as a whole


def test_a_failed_commit_fails_every_write_of_its_group_and_forgets_them(
    store: SqliteAgentPoolStore, path: Path
) -> None:
    store.join_member(POOL, member("run.a"))  # cursor 2
    before = store.snapshot(POOL)
    queued = Queued(store)
    refuse = True
    connection = store._db
    assert connection is not None
    connection.set_commit_hook(lambda: refuse)  # a true answer turns the COMMIT into a rollback
    with store._lock:
        queued.start(lambda s: s.record_message(POOL, message("msg.1"), receipt("msg.1")))
        queued.start(lambda s: s.leave_member(POOL, "run.nobody"))  # fails its own check first
        queued.start(lambda s: s.leave_member(POOL, "run.a"))
    outcomes = queued.join()
    assert [kind for kind, _ in outcomes] == ["error"] * 3
    assert outcomes[1][1].message == "run is not a member of this agent pool"
    for _, error in (outcomes[0], outcomes[2]):
        assert error.message.startswith("sqlite agent pool store failure: ")
    assert outcomes[0][1] is not outcomes[2][1]  # each caller raises an error of its own
    refuse = False
    assert store.snapshot(POOL) == before  # the applied records were forgotten
    assert store.member(POOL, "run.a") == member("run.a")
    assert store.record_message(POOL, message("msg.2"), receipt("msg.2")).sequence == 3
    assert [row[0] for row in raw_rows(path, POOL)] == [1, 2, 3]


def test_a_group_that_cannot_get_the_write_lock_fails_retryable_and_the_next_one_commits(path: Path) -> None:
    with SqliteAgentPoolStore(path, busy_timeout=0.2) as store:
        store.open_pool(POOL, CONFIG)
        blocker = raw_connection(path)
        queued = Queued(store)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with store._lock:
                for n in range(3):
                    queued.start(lambda s, n=n: s.record_message(POOL, message(f"msg.{n}"), receipt(f"msg.{n}")))
            outcomes = queued.join()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        for kind, error in outcomes:
            assert kind == "error" and error.retry is RetryClassification.RETRYABLE
        assert store.record_message(POOL, message("msg.3"), receipt("msg.3")).sequence == 2
    assert [row[0] for row in raw_rows(path, POOL)] == [1, 2]


def test_writes_queued_when_the_store_closes_get_its_closed_error(store: SqliteAgentPoolStore) -> None:
    queued = Queued(store)
    with store._lock:
        for n in range(3):
            queued.start(lambda s, n=n: s.record_message(POOL, message(f"msg.{n}"), receipt(f"msg.{n}")))
        store.close()
    for kind, error in queued.join():
        assert kind == "error" and error.message == "sqlite agent pool store is closed"


def test_an_interrupted_leader_fails_its_followers_with_a_retryable_error(
    store: SqliteAgentPoolStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leader's thread may be interrupted (KeyboardInterrupt) mid-group: its own call raises
    that, the others of the group an ``AgentError``, and none of them hangs."""
    insert = store._insert

    def interrupted(db: apsw.Connection, pool_id: str, build: Any, state: Any = None) -> Any:
        if threading.current_thread() is leader:
            raise KeyboardInterrupt
        return insert(db, pool_id, build, state)

    monkeypatch.setattr(store, "_insert", interrupted)
    queued = Queued(store)
    with store._lock:
        queued.start(lambda s: s.record_pool_created(POOL))  # alone; the next two make a group
        queued.start(lambda s: s.record_message(POOL, message("msg.0"), receipt("msg.0")))
        leader = queued.threads[1]
        queued.start(lambda s: s.record_message(POOL, message("msg.1"), receipt("msg.1")))
    alone, (raised, interrupt), (kind, error) = queued.join()
    assert alone == ("ok", AgentPoolStoreCursor(sequence=2))
    assert raised == "raised" and isinstance(interrupt, KeyboardInterrupt)
    assert isinstance(error, AgentError) and error.retry is RetryClassification.RETRYABLE
    assert "KeyboardInterrupt" in error.message
    monkeypatch.undo()
    assert store.record_message(POOL, message("msg.2"), receipt("msg.2")).sequence == 3

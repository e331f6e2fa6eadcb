"""``store.follow(pool_id, cursor=None, *, poll_interval, timeout)``: records as they are appended.

A follower sees every record another process commits, within a short bound, once, in
order and without gaps; it starts after its cursor, ends after ``timeout`` seconds without
a new record or as soon as its store is closed, waits quietly while the pool is unopened,
reads a long backlog in batches without losing a record at a batch boundary, and refuses
bad arguments with ``InvalidInput`` at the call. The SQLite store is tested against a
real child process (``writer_process``); the in-memory store against a writer thread.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from writer_process import commits, start_writer, writer_message, writer_payload, writer_receipt

from fastpool import (
    AgentPoolMember,
    AgentPoolStoreConfig,
    AgentPoolStoreCursor,
    AgentPoolStoreRecord,
    InMemoryAgentPoolStore,
    InvalidInput,
    MemberJoined,
    PoolOpened,
    SqliteAgentPoolStore,
    wire,
)

POOL = "pool.follow ✓"
CONFIG = AgentPoolStoreConfig()
BATCH = 1000  # follow reads a backlog this many records per query (fastpool._base._FOLLOW_BATCH)


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[SqliteAgentPoolStore]:
    store = SqliteAgentPoolStore(tmp_path / "follow.sqlite")
    yield store
    store.close()


@pytest.fixture(params=["memory", "file"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    store: Any = (
        InMemoryAgentPoolStore() if request.param == "memory" else SqliteAgentPoolStore(tmp_path / "any.sqlite")
    )
    yield store
    store.close()


def fill(store: Any, count: int, first: int = 0) -> None:
    """Append ``count`` writer records (one SQLite transaction, so big backlogs are cheap)."""
    batch = store.transaction() if isinstance(store, SqliteAgentPoolStore) else contextlib.nullcontext()
    with batch:
        for n in range(first, first + count):
            store.record_message(POOL, writer_message(n), writer_receipt(n))


def sequences(records: list[AgentPoolStoreRecord]) -> list[int]:
    return [record.cursor.sequence for record in records]


class Follower(threading.Thread):
    """Runs ``store.follow(...)`` on its own thread, keeping each record and when it arrived."""

    def __init__(self, store: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.iterator = store.follow(*args, **kwargs)  # arguments are checked here, on the caller's thread
        self.records: list[AgentPoolStoreRecord] = []
        self.arrived: list[float] = []
        self.error: BaseException | None = None
        self.ended_at: float | None = None

    def run(self) -> None:
        try:
            for record in self.iterator:
                self.records.append(record)
                self.arrived.append(time.monotonic())
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error
        self.ended_at = time.monotonic()

    def wait_for(self, count: int, within: float) -> None:
        deadline = time.monotonic() + within
        while len(self.records) < count and time.monotonic() < deadline and self.is_alive():
            time.sleep(0.005)
        assert self.error is None, self.error
        assert len(self.records) >= count, f"follower has {len(self.records)} of {count} records after {within} s"


# -------------------------------------------------------------------- another process


def test_follow_sees_another_process_append_promptly_once_in_order(file_store: SqliteAgentPoolStore) -> None:
    file_store.open_pool(POOL, CONFIG)
    child = start_writer(file_store.path, POOL, 30, pause=0.02)
    seen: list[tuple[AgentPoolStoreRecord, float]] = []
    try:
        for record in file_store.follow(POOL, 1, poll_interval=0.02, timeout=15):
            seen.append((record, time.time()))
            if len(seen) == 30:
                break
    finally:
        committed = commits(child)

    assert sorted(committed) == list(range(2, 32)), "the child's own cursors"
    assert [record.cursor.sequence for record, _ in seen] == list(range(2, 32))
    assert [record.payload for record, _ in seen] == [writer_payload(n) for n in range(30)]
    assert all(record.pool_id == POOL for record, _ in seen)
    latencies = [seen_at - committed[record.cursor.sequence] for record, seen_at in seen]
    assert max(latencies) < 1.0, f"a record arrived {max(latencies):.3f} s after its commit"
    # Nothing is delivered twice or left over: a new follower from the last cursor finds nothing.
    assert list(file_store.follow(POOL, 31, poll_interval=0.02, timeout=0.1)) == []
    assert [wire.encode(r) for r, _ in seen] == [wire.encode(r) for r in file_store.watch(POOL, 1)]


def test_follow_in_another_store_object_than_the_one_that_opened_the_pool(tmp_path: Path) -> None:
    """The follower's store never wrote: it learns of every record from the file alone."""
    path = tmp_path / "reader.sqlite"
    with SqliteAgentPoolStore(path) as opener:
        opener.open_pool(POOL, CONFIG)
    with SqliteAgentPoolStore(path, readonly=True) as reader:
        child = start_writer(path, POOL, 10, pause=0.01)
        records = []
        try:
            for record in reader.follow(POOL, poll_interval=0.02, timeout=15):
                records.append(record)
                if len(records) == 11:
                    break
        finally:
            commits(child)
    assert sequences(records) == list(range(1, 12))
    assert isinstance(records[0].payload, PoolOpened)
    assert [r.payload for r in records[1:]] == [writer_payload(n) for n in range(10)]


# -------------------------------------------------------------------- cursor, timeout, close


def test_follow_from_a_cursor_skips_earlier_records(any_store: Any) -> None:
    any_store.open_pool(POOL, CONFIG)
    fill(any_store, 10)
    everything = list(any_store.watch(POOL))
    assert sequences(everything) == list(range(1, 12))
    for cursor in (None, 0, 1, 6, AgentPoolStoreCursor.new(6), 10, 11, 50, 2**64):
        got = list(any_store.follow(POOL, cursor, poll_interval=0.01, timeout=0))
        after = 0 if cursor is None else cursor.sequence if isinstance(cursor, AgentPoolStoreCursor) else cursor
        assert sequences(got) == list(range(after + 1, 12)), cursor
        assert got == everything[after:], cursor


def test_follow_ends_after_timeout_without_records(any_store: Any) -> None:
    any_store.open_pool(POOL, CONFIG)
    started = time.monotonic()
    got = list(any_store.follow(POOL, 1, poll_interval=0.05, timeout=0.3))
    elapsed = time.monotonic() - started
    assert got == []
    assert 0.3 <= elapsed < 0.3 + 0.5, elapsed

    started = time.monotonic()
    assert sequences(list(any_store.follow(POOL, poll_interval=5, timeout=0))) == [1]
    assert time.monotonic() - started < 0.5, "timeout=0 reads what is there and returns without sleeping"


def test_follow_timeout_counts_from_the_last_record(any_store: Any) -> None:
    any_store.open_pool(POOL, CONFIG)
    written_at: list[float] = []

    def write_later() -> None:
        time.sleep(0.25)
        fill(any_store, 1)
        written_at.append(time.monotonic())

    writer = threading.Thread(target=write_later)
    writer.start()
    started = time.monotonic()
    got = list(any_store.follow(POOL, 1, poll_interval=0.02, timeout=0.4))
    ended = time.monotonic()
    writer.join()
    assert sequences(got) == [2]
    assert ended - started > 0.4 + 0.2, "the record at 0.25 s restarts the 0.4 s timeout"
    assert 0.4 - 0.05 <= ended - written_at[0] < 0.4 + 0.5


def test_follow_ends_promptly_when_the_store_is_closed_from_another_thread(any_store: Any) -> None:
    any_store.open_pool(POOL, CONFIG)
    follower = Follower(any_store, POOL, poll_interval=30, timeout=None)  # a poll far longer than the test
    follower.start()
    follower.wait_for(1, within=5)
    time.sleep(0.1)  # the follower is now waiting for its next poll
    assert follower.is_alive()
    closed_at = time.monotonic()
    any_store.close()
    follower.join(5)
    assert not follower.is_alive(), "follow kept running after close()"
    assert follower.error is None, follower.error
    assert follower.ended_at is not None and follower.ended_at - closed_at < 1.0
    assert sequences(follower.records) == [1]


def test_follow_waits_for_an_unopened_pool_then_yields_from_cursor_1(file_store: SqliteAgentPoolStore) -> None:
    follower = Follower(file_store, POOL, poll_interval=0.02, timeout=10)
    follower.start()
    try:
        with SqliteAgentPoolStore(file_store.path) as other:
            other.open_pool("pool.other", CONFIG)  # commits to the file, in another pool
            other.join_member("pool.other", AgentPoolMember(run_id="run.elsewhere", agent_id="agent.a"))
            time.sleep(0.3)
            assert follower.records == [], "nothing is yielded while the pool is not opened"
            assert follower.is_alive()
            other.open_pool(POOL, CONFIG)
            other.join_member(POOL, AgentPoolMember(run_id="run.a", agent_id="agent.a"))
            follower.wait_for(2, within=5)
    finally:
        file_store.close()
        follower.join(5)
    assert sequences(follower.records) == [1, 2]
    assert follower.records[0].payload == PoolOpened(config=CONFIG)
    assert isinstance(follower.records[1].payload, MemberJoined)
    assert {record.pool_id for record in follower.records} == {POOL}


def test_follow_of_an_unopened_pool_ends_on_timeout_with_nothing(any_store: Any) -> None:
    started = time.monotonic()
    assert list(any_store.follow("pool.never", poll_interval=0.02, timeout=0.2)) == []
    assert time.monotonic() - started < 0.2 + 0.5


# -------------------------------------------------------------------- backlogs beyond one batch


@pytest.mark.parametrize("records", [BATCH - 1, BATCH, BATCH + 1, 2 * BATCH + 500])
def test_backlog_larger_than_a_batch_arrives_complete_and_in_order(any_store: Any, records: int) -> None:
    any_store.open_pool(POOL, CONFIG)
    fill(any_store, records - 1)
    got = list(any_store.follow(POOL, poll_interval=0.01, timeout=0))
    assert sequences(got) == list(range(1, records + 1))
    assert got == list(any_store.watch(POOL))


def test_backlog_while_another_writer_appends(any_store: Any) -> None:
    """Batch boundaries and new commits interleave; still every record once, in order."""
    any_store.open_pool(POOL, CONFIG)
    fill(any_store, 2 * BATCH + 200)
    backlog = 2 * BATCH + 201
    more = 300

    def write() -> None:
        for n in range(more):
            fill(any_store, 1, first=10_000 + n)

    follower = Follower(any_store, POOL, poll_interval=0.01, timeout=3)
    writer = threading.Thread(target=write)
    follower.start()
    writer.start()
    writer.join(30)
    follower.wait_for(backlog + more, within=30)
    any_store.close()
    follower.join(5)
    assert sequences(follower.records) == list(range(1, backlog + more + 1))
    assert [r.payload for r in follower.records[backlog:]] == [writer_payload(10_000 + n) for n in range(more)]


def test_in_memory_follow_with_a_writer_thread() -> None:
    store = InMemoryAgentPoolStore()
    store.open_pool(POOL, CONFIG)
    written_at: dict[int, float] = {}

    def write() -> None:
        for n in range(200):
            cursor = store.record_message(POOL, writer_message(n), writer_receipt(n))
            written_at[cursor.sequence] = time.monotonic()
            if n % 10 == 0:
                time.sleep(0.002)

    follower = Follower(store, POOL, 1, poll_interval=0.005, timeout=2)
    follower.start()
    writer = threading.Thread(target=write)
    writer.start()
    writer.join(10)
    follower.wait_for(200, within=10)
    store.close()
    follower.join(5)
    assert sequences(follower.records) == list(range(2, 202))
    assert [r.payload for r in follower.records] == [writer_payload(n) for n in range(200)]
    lags = [
        arrived - written_at[r.cursor.sequence] for r, arrived in zip(follower.records, follower.arrived, strict=True)
    ]
    assert max(lags) < 1.0


# -------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": 0.0}, "poll_interval"),
        ({"poll_interval": -0.1}, "poll_interval"),
        ({"poll_interval": math.nan}, "poll_interval"),
        ({"poll_interval": math.inf}, "poll_interval"),
        ({"poll_interval": 1e300}, "poll_interval"),
        ({"poll_interval": "0.1"}, "poll_interval"),
        ({"poll_interval": None}, "poll_interval"),
        ({"poll_interval": True}, "poll_interval"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": -0.001}, "timeout"),
        ({"timeout": math.nan}, "timeout"),
        ({"timeout": "1"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"cursor": "5"}, "cursor"),
        ({"cursor": 1.0}, "cursor"),
        ({"cursor": -1}, "cursor"),
        ({"cursor": True}, "cursor"),
        ({"cursor": [1]}, "cursor"),
        ({"pool_id": ""}, "pool_id"),
        ({"pool_id": 7}, "pool_id"),
        ({"pool_id": "pool\x00"}, "pool_id"),
    ],
)
def test_bad_arguments_raise_invalid_input_at_the_call(any_store: Any, arguments: dict[str, Any], field: str) -> None:
    any_store.open_pool(POOL, CONFIG)
    call: dict[str, Any] = {"pool_id": POOL, "cursor": None, "poll_interval": 0.01, "timeout": 0, **arguments}
    pool_id, cursor = call.pop("pool_id"), call.pop("cursor")
    # Raised by the call itself, not at the first next(): a caller learns at once.
    with pytest.raises(InvalidInput) as raised:
        any_store.follow(pool_id, cursor, **call)
    assert field in raised.value.message


def test_good_arguments_at_the_edges_are_accepted(any_store: Any) -> None:
    any_store.open_pool(POOL, CONFIG)
    assert len(list(any_store.follow(POOL, AgentPoolStoreCursor.start(), poll_interval=1, timeout=0))) == 1
    assert list(any_store.follow(POOL, 1, poll_interval=0.001, timeout=0.0)) == []
    assert list(any_store.follow(POOL, 1, poll_interval=3600, timeout=0.05)) == []

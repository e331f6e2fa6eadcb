"""Writes that fail part-way, are interrupted or are cancelled leave nothing behind (SQLite).

Whatever lands in a write — an exception a signal handler raises, at any point where
CPython can deliver one (``interrupts.Injector``), or a failure of one member of a group
commit — the store comes out usable: no transaction left open, no lock held, every write
reported done in the file, every write reported failed absent from it, and the cached state
equal to what a new reader of the file sees. The interrupted write itself either committed or
did not; the next read tells which.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
from interrupts import Injector, no_transaction_left, points, thread_of
from store_helpers import CONFIG, member, message, raw_connection, raw_rows, receipt

from fastpool import AgentError, RetryClassification, SqliteAgentPoolStore

POOL = "pool.interrupts"
WAIT = 10.0  # seconds a thread may take before the test calls it hung


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "pools.sqlite"


@pytest.fixture
def store(path: Path, engine: Any) -> Iterator[SqliteAgentPoolStore]:
    with SqliteAgentPoolStore(path, engine=engine) as opened:
        opened.open_pool(POOL, CONFIG)
        opened.join_member(POOL, member("run.a"))
        yield opened


@pytest.fixture
def reader(path: Path, store: SqliteAgentPoolStore, engine: Any) -> Iterator[SqliteAgentPoolStore]:
    """A second store object on the file: what a new reader sees (each pool evicted before use)."""
    with SqliteAgentPoolStore(path, engine=engine) as opened:
        yield opened


def file_keys(path: Path, pool_id: str = POOL) -> set[str]:
    """The idempotency keys of the pool's message records in the file."""
    import orjson

    keys = set()
    for _, kind, text, _ in raw_rows(path, pool_id):
        if kind == "run_message":
            keys.add(orjson.loads(text)["stored"]["message"]["idempotency_key"])
    return keys


def assert_whole(store: SqliteAgentPoolStore, reader: SqliteAgentPoolStore, path: Path, pool_id: str = POOL) -> None:
    """No transaction left, the cache equal to the file, and the store writes again."""
    no_transaction_left(path, store._db)
    assert not store._lock._is_owned(), "the store's lock was kept"
    assert store._leading is None and not store._queue, "a write was left queued or leading"
    reader.evict(pool_id)
    truth = reader.snapshot(pool_id)
    assert store.snapshot(pool_id) == truth, "the cached state differs from the file"
    assert store.message_receipt(pool_id, "idem.probe") is None
    cursor = store.join_member(pool_id, member("run.probe"))
    assert cursor.sequence == truth.cursor.sequence + 1
    store.leave_member(pool_id, "run.probe")


def key_of(message_id: str) -> str:
    return message(message_id).idempotency_key


def view(store: SqliteAgentPoolStore, pool_id: str) -> Any:
    """The pool's snapshot, or the error reading it raises (a pool never opened)."""
    try:
        return store.snapshot(pool_id)
    except AgentError as error:
        return error.message


def send(n: int) -> Callable[[SqliteAgentPoolStore], Any]:
    return lambda s: s.record_message(POOL, message(f"msg.{n}"), receipt(f"msg.{n}"))


# -------------------------------------------------------------------- a failing member of a group


class _FailingBatch:
    """The store's point index, with index batches that fail (disk full) while ``failing``."""

    def __init__(self, points: Any) -> None:
        self._points = points
        self.failing = True

    def batch(self, db: apsw.Connection, pool_id: str, last: int) -> None:
        self._points.batch(db, pool_id, last)
        if self.failing and last - self._points._marks.get(pool_id, 0) < 1:  # it ran
            raise apsw.FullError("database or disk is full")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._points, name)


def run_group(
    store: SqliteAgentPoolStore,
    calls: list[Callable[[SqliteAgentPoolStore], Any]],
    inject: int | None = None,
    injector: Injector | None = None,
    last_group: int | None = None,
) -> list[tuple[str, Any]]:
    """The calls made from threads of their own while the store's lock is held, so that they
    queue; then they commit as one group, led by the first (the last group was as large),
    or, with ``last_group=1``, the first alone and the rest as the next group. ``injector``
    is armed in thread ``inject``."""
    outcomes: dict[int, tuple[str, Any]] = {}
    threads = []
    store._last_group = len(calls) if last_group is None else last_group
    queued_by: set[int] = set()  # the threads whose write was queued
    queued = store._queued

    def spy(request: Any, leads: bool) -> None:
        queued(request, leads)
        queued_by.add(threading.get_ident())

    store._queued = spy  # type: ignore[method-assign]
    try:
        with store._lock:
            for index, call in enumerate(calls):
                armed = injector if index == inject else None
                thread = thread_of(lambda call=call: call(store), outcomes, index, armed)
                threads.append(thread)
                deadline = time.monotonic() + WAIT
                while thread.ident not in queued_by and thread.is_alive() and not (index == 0 and store._leading):
                    assert time.monotonic() < deadline, "a write never queued"
                    time.sleep(0.0005)
    finally:
        del store._queued
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive(), "a write of the group never returned (the store is wedged)"
    return [outcomes[index] for index in range(len(calls))]


def fill_to_batch(store: SqliteAgentPoolStore) -> None:
    """Records up to the point where the next append writes an index batch."""
    from fastpool._point_reads import BATCH

    with store.transaction():
        for n in range(BATCH - store.snapshot(POOL).cursor.sequence):
            store.record_message(POOL, message(f"fill.{n}"), receipt(f"fill.{n}"))


def test_a_group_member_whose_index_batch_fails_is_never_in_the_file(
    store: SqliteAgentPoolStore, reader: SqliteAgentPoolStore, path: Path
) -> None:
    fill_to_batch(store)
    failing = store._points = _FailingBatch(store._points)  # type: ignore[assignment]
    outcomes = run_group(store, [send(n) for n in range(4)])
    failing.failing = False
    keys = file_keys(path)
    reported = {key_of(f"msg.{n}"): kind for n, (kind, _) in enumerate(outcomes)}
    assert "raised" in reported.values(), "the batch never failed: the test proves nothing"
    for key, kind in reported.items():
        assert (key in keys) == (kind == "ok"), f"{key} reported {kind}"
    assert_whole(store, reader, path)
    for n in range(4, 40):  # later writes take the next sequences, none a used one
        send(n)(store)
    assert_whole(store, reader, path)


def test_a_group_member_whose_index_table_was_dropped_commits_whole(
    store: SqliteAgentPoolStore, reader: SqliteAgentPoolStore, path: Path
) -> None:
    """``fastpool verify`` advises dropping a damaged index: writes go on without it."""
    fill_to_batch(store)
    other = raw_connection(path)
    other.execute("DROP TABLE fastpool_point_marks")
    other.close()
    outcomes = run_group(store, [send(n) for n in range(4)])
    keys = file_keys(path)
    for n, (kind, outcome) in enumerate(outcomes):
        assert (key_of(f"msg.{n}") in keys) == (kind == "ok"), f"msg.{n} reported {kind}: {outcome!r}"
    assert_whole(store, reader, path)
    for n in range(4, 40):
        send(n)(store)
    assert_whole(store, reader, path)


# -------------------------------------------------------------------- an interrupt anywhere in a lone write


def _message_writes() -> dict[str, Callable[[SqliteAgentPoolStore, int], Any]]:
    def in_transaction(s: SqliteAgentPoolStore, n: int) -> None:
        with s.transaction():
            s.record_message(POOL, message(f"tx.{n}.a"), receipt(f"tx.{n}.a"))
            s.record_message(POOL, message(f"tx.{n}.b"), receipt(f"tx.{n}.b"))

    return {
        "record_message": lambda s, n: s.record_message(POOL, message(f"msg.{n}"), receipt(f"msg.{n}")),
        "record_message_once": lambda s, n: s.record_message_once(POOL, message(f"once.{n}"), receipt(f"once.{n}")),
        "join_member": lambda s, n: s.join_member(POOL, member(f"run.{n}")),
        "open_pool": lambda s, n: s.open_pool(f"pool.{n}", CONFIG),
        "next_event_sequence": lambda s, n: s.next_event_sequence(POOL),
        "transaction": in_transaction,
    }


@pytest.mark.parametrize("write", list(_message_writes()))
def test_an_interrupt_anywhere_in_a_lone_write_leaves_the_store_whole(
    store: SqliteAgentPoolStore, reader: SqliteAgentPoolStore, path: Path, write: str
) -> None:
    call = _message_writes()[write]
    count = points(lambda: call(store, 0))
    assert count > 10
    fired = 0
    for at in range(1, count + 1):
        injector = Injector(at)
        try:
            with injector.armed():
                call(store, at)
        except KeyboardInterrupt:
            pass
        fired += injector.fired
        assert_whole(store, reader, path)
        if write == "open_pool":
            reader.evict(f"pool.{at}")
            assert view(store, f"pool.{at}") == view(reader, f"pool.{at}")
    assert fired >= count * 0.9  # the later points may be skipped by a run that took another way


# -------------------------------------------------------------------- an interrupt anywhere in a group


@pytest.mark.parametrize(
    ("scenario", "last_group", "inject"),
    [("leader", 3, 0), ("follower", 3, 1), ("promoted", 1, 1)],
)
def test_an_interrupt_anywhere_in_a_group_commit_leaves_no_write_lost_or_wedged(
    store: SqliteAgentPoolStore,
    reader: SqliteAgentPoolStore,
    path: Path,
    scenario: str,
    last_group: int,
    inject: int,
) -> None:
    """``leader``: the thread leading a group of three; ``follower``: one queued in it;
    ``promoted``: one queued behind a lone writer, which hands it the lead of the next group."""

    def group(first: int, injector: Injector | None) -> list[tuple[str, Any]]:
        return run_group(store, [send(first + n) for n in range(3)], inject, injector, last_group)

    counter = Injector()
    group(0, counter)
    count = counter.seen
    assert count > 10
    for at in range(1, count + 5):
        first = 10 * at
        outcomes = group(first, Injector(at))
        keys = file_keys(path)
        for n, (kind, outcome) in enumerate(outcomes):
            key = key_of(f"msg.{first + n}")
            if kind == "ok":
                assert key in keys, f"{scenario} at {at}: msg.{first + n} reported done, not in the file"
            elif isinstance(outcome, AgentError):
                assert key not in keys, f"{scenario} at {at}: msg.{first + n} reported failed, in the file"
            else:
                assert isinstance(outcome, KeyboardInterrupt), outcome
        assert_whole(store, reader, path)


# -------------------------------------------------------------------- one interrupt in many threads


# A timer that goes off inside a garbage-collector callback raises there, and Python can only
# report that exception as unraisable: that interrupt is lost, as it would be in a host.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_sigint_timer_under_racing_writers_never_wedges_the_store(
    store: SqliteAgentPoolStore, reader: SqliteAgentPoolStore, path: Path
) -> None:
    """The reported case: writer threads and a main thread writing too, with KeyboardInterrupts
    raised into the main thread at random points; every later write succeeds."""
    import random
    import signal

    rng = random.Random(7)
    stop = threading.Event()
    outcomes: dict[str, BaseException | None] = {}

    def writer(w: int) -> None:
        n = 0
        while not stop.is_set():
            try:
                store.record_message(POOL, message(f"w{w}.{n}"), receipt(f"w{w}.{n}"))
                outcomes[key_of(f"w{w}.{n}")] = None
            except BaseException as error:  # noqa: BLE001 - collected for the test
                outcomes[key_of(f"w{w}.{n}")] = error
            n += 1

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(3)]
    for thread in threads:
        thread.start()
    interrupted = 0
    armed = threading.Event()  # the handler raises only inside the write's try

    def interrupt(signum: int, frame: Any) -> None:
        if armed.is_set():
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        for n in range(400):
            armed.set()
            try:
                signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.00001, 0.0003))
                store.record_message(POOL, message(f"main.{n}"), receipt(f"main.{n}"))
                time.sleep(0.0005)  # the timer goes off by now, if not in the write
                armed.clear()
            except KeyboardInterrupt:
                interrupted += 1
            armed.clear()
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)
        stop.set()
        for thread in threads:
            thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads), "a writer thread hung"
    assert interrupted > 10
    keys = file_keys(path)
    for key, error in outcomes.items():
        if error is None:
            assert key in keys, f"{key} reported done, not in the file"
        else:  # its group was led by the interrupted main thread, and rolled back
            assert isinstance(error, AgentError) and error.retry is RetryClassification.RETRYABLE, error
            assert key not in keys, f"{key} reported failed, in the file"
    assert_whole(store, reader, path)


# -------------------------------------------------------------------- an interrupt anywhere in an asyncio write


@pytest.mark.parametrize("queued", [False, True], ids=["alone", "queued"])
def test_an_interrupt_anywhere_in_an_async_write_leaves_the_store_whole(
    store: SqliteAgentPoolStore, reader: SqliteAgentPoolStore, path: Path, queued: bool
) -> None:
    """The event loop's thread interrupted at each point of an ``AsyncAgentPoolStore`` write:
    ``alone``, the write runs on the loop's thread (its group of one); ``queued``, it is queued
    from the loop for a group a worker leads, and the loop takes its outcome. The loop may die
    of the interrupt (one raised in a callback ends ``asyncio.run``); the store never does."""
    import asyncio

    from fastpool.aio import AsyncAgentPoolStore

    def run(n: int, injector: Injector) -> None:
        wrapper = AsyncAgentPoolStore(store)

        async def write() -> None:
            store._last_group = 2 if queued else 1
            with injector.armed():
                await wrapper.record_message(POOL, message(f"aio.{n}"), receipt(f"aio.{n}"))

        try:
            asyncio.run(write())
        except KeyboardInterrupt:
            pass
        finally:
            wrapper._executor.shutdown(wait=True)
            wrapper._leader.shutdown(wait=True)  # a group a worker leads ends before the checks

    counter = Injector()
    run(0, counter)
    assert counter.seen > 10
    for at in range(1, counter.seen + 1):
        run(at, Injector(at))
        assert_whole(store, reader, path)

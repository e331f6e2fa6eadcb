"""``fastpool.aio.AsyncAgentPoolStore``: the store's methods as coroutines, ``async for`` over follow.

Checked over both stores: 50 concurrent tasks on one loop give the same results and the
same final snapshot as the sync store doing the same operations, with unique, gap-free
cursors and event sequences; errors arrive as the same ``AgentError``; no call blocks the
event loop (asyncio's own slow-callback detector, and a ticker task's largest gap while a
cold snapshot runs); ``async for ... in store.follow(...)`` sees records from another store
object and another process and ends on timeout or close; a thousand idle follows read
nothing (one watcher polls the change token) and each gets its pool's record once; a
cancelled write still commits and the calls after it see that; ``open`` and ``async with``.
No pytest-asyncio: every test drives its own loop with ``asyncio.run`` / ``asyncio.Runner``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import apsw
import pytest
from writer_process import commits, start_writer, writer_message, writer_payload, writer_receipt

from fastpool import (
    AgentError,
    AgentErrorKind,
    AgentPoolMember,
    AgentPoolMessagePolicy,
    AgentPoolSnapshot,
    AgentPoolStoreConfig,
    AgentPoolStoreCursor,
    AgentPoolStoreRecord,
    EventFamily,
    EventFilter,
    EventKind,
    InMemoryAgentPoolStore,
    InvalidInput,
    MessageReceipt,
    MessageStatus,
    PolicyRef,
    RetryClassification,
    RunAddress,
    RunMessage,
    SqliteAgentPoolStore,
    WakeCondition,
    WakeRegistration,
    WakeRegistrationStatus,
    wire,
)
from fastpool.aio import AsyncAgentPoolStore

POOL = "pool.aio ✓"
CONFIG = AgentPoolStoreConfig(policy_refs=(PolicyRef.new("policy.aio"),))
OTHER_CONFIG = AgentPoolStoreConfig(message_policy=AgentPoolMessagePolicy(include_sender_in_pool_broadcast=True))
TASKS = 50
# Seconds that count as blocking the loop. Generous on purpose: CI machines are shared and
# a descheduled thread must not read as a blocked loop; a store call made on the loop
# thread (the bug these tests catch) blocks it for the whole call, far longer.
SLOW = 0.25


def make_store(kind: str, path: Path) -> Any:
    return InMemoryAgentPoolStore() if kind == "memory" else SqliteAgentPoolStore(path)


@pytest.fixture(params=["memory", "file"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -------------------------------------------------------------------- one workload, two drivers

Step = tuple[str, tuple[Any, ...]]


def steps(i: int) -> Generator[Step, Any, None]:
    """Task ``i``'s calls, as an agent host would make them; each yield gets the call's result.

    Every task touches only its own run, message and wake, so the results and the final
    state do not depend on how the tasks interleave; the cursors do.
    """
    run_id = f"run.{i:02d}"
    member = AgentPoolMember(run_id=run_id, agent_id=f"agent.{i % 3}", topics=(f"topic.{i % 4}", "topic.all"))
    yield "join_member", (POOL, member)
    message = RunMessage(
        message_id=f"msg.{i:02d}",
        from_=run_id,
        to=RunAddress.run(f"run.{(i + 1) % TASKS:02d}"),
        content_ref=f"content.{i:02d}",
        idempotency_key=f"key.{i:02d}",
        policy_refs=(PolicyRef.new("policy.aio"),),
    )
    if (yield "message_receipt", (POOL, message.idempotency_key)) is None:
        yield (
            "record_message",
            (POOL, message, MessageReceipt(message_id=message.message_id, status=MessageStatus.ACCEPTED)),
        )
    yield "message_receipt", (POOL, message.idempotency_key)  # a retried send: now deduplicated
    delivered = MessageReceipt(
        message_id=message.message_id, status=MessageStatus.DELIVERED, delivered_to=(message.to.target.run_id,)
    )
    yield "record_message", (POOL, message, delivered)
    condition = WakeCondition(
        condition_id=f"wake.{i:02d}",
        run_id=run_id,
        filter=EventFilter(
            run_ids=(run_id,), families=(EventFamily.AGENT_POOL,), kinds=(EventKind.RUN_MESSAGE_DELIVERED,)
        ),
        idempotency_key=f"wake-key.{i:02d}",
    )
    if (yield "wake_registration", (POOL, condition.idempotency_key)) is None:
        registration = WakeRegistration(
            condition_id=condition.condition_id, run_id=run_id, status=WakeRegistrationStatus.REGISTERED
        )
        yield "record_wake", (POOL, condition, condition.compile_envelope_filter(), registration)
    stored = yield "wake", (POOL, condition.condition_id)
    if i % 3 == 0:
        triggered = stored.registration.replace(status=WakeRegistrationStatus.TRIGGERED)
        yield "record_wake", (POOL, condition, stored.compiled_filter, triggered)
    yield "snapshot", (POOL,)
    yield "next_event_sequence", (POOL,)
    yield "next_event_sequence", (POOL,)
    if i % 5 == 0:
        yield "leave_member", (POOL, run_id)
    if i % 7 == 0:
        yield "leave_member", (POOL, "run.never-joined")  # an error in the middle of the mix
    if i % 10 == 3:
        yield "record_pool_created", (POOL,)
    if i % 9 == 0:
        yield "snapshot", ("pool.never-opened",)  # another error
    yield "watch", (POOL, None)


class Log:
    """What the tasks got back that depends on interleaving: cursors and event sequences."""

    def __init__(self) -> None:
        self.cursors: list[int] = []
        self.events: list[int] = []
        self.by_task: dict[int, list[int]] = {}


def normalize(i: int, name: str, value: Any, log: Log) -> Any:
    """A result with the interleaving-dependent parts moved to ``log``."""
    if isinstance(value, AgentError):
        return ("error", type(value).__name__, value.kind, value.retry, value.message, value.variant)
    if isinstance(value, AgentPoolStoreCursor):
        log.cursors.append(value.sequence)
        log.by_task.setdefault(i, []).append(value.sequence)
        return ("cursor",)
    if name == "leave_member":
        member, cursor = value
        normalize(i, name, cursor, log)
        return ("left", member)
    if name == "next_event_sequence":
        assert type(value) is int
        log.events.append(value)
        return ("event",)
    if isinstance(value, AgentPoolSnapshot):
        # What this task alone decides: its member, its message's receipt, its wake's status.
        run_id, message_id, condition_id = f"run.{i:02d}", f"msg.{i:02d}", f"wake.{i:02d}"
        members = [m for m in value.members if m.run_id == run_id]
        receipts = [s.receipt for s in value.messages if s.message.message_id == message_id]
        wakes = [w.registration.status for w in value.wakes if w.condition.condition_id == condition_id]
        return ("snapshot", members, receipts, wakes)
    if name == "watch":
        records = list(value)
        assert [r.cursor.sequence for r in records] == list(range(1, len(records) + 1))
        own = [r for r in records if getattr(getattr(r.payload, "member", None), "run_id", "") == f"run.{i:02d}"]
        return ("watch", len(own))
    return value


def drive_sync(store: Any, i: int, log: Log) -> list[Any]:
    plan, value, results = steps(i), None, []
    while True:
        try:
            name, args = plan.send(value)
        except StopIteration:
            return results
        try:
            value = getattr(store, name)(*args)
        except AgentError as error:
            value = error
        results.append(normalize(i, name, value, log))


async def drive_async(store: AsyncAgentPoolStore, i: int, log: Log) -> list[Any]:
    plan, value, results = steps(i), None, []
    while True:
        try:
            name, args = plan.send(value)
        except StopIteration:
            return results
        try:
            value = await getattr(store, name)(*args)
        except AgentError as error:
            value = error
        results.append(normalize(i, name, value, log))


def test_fifty_concurrent_tasks_match_the_sync_store(kind: str, tmp_path: Path) -> None:
    reference = make_store(kind, tmp_path / "sync.sqlite")
    reference.open_pool(POOL, CONFIG)
    sync_log = Log()
    expected = [drive_sync(reference, i, sync_log) for i in range(TASKS)]

    async def main() -> tuple[list[list[Any]], Log, AgentPoolSnapshot]:
        async with AsyncAgentPoolStore(make_store(kind, tmp_path / "async.sqlite")) as store:
            await store.open_pool(POOL, CONFIG)
            log = Log()
            results = await asyncio.gather(*(drive_async(store, i, log) for i in range(TASKS)))
            return results, log, await store.snapshot(POOL)

    results, log, final = asyncio.run(main())
    try:
        assert results == expected
        assert wire.encode(final) == wire.encode(reference.snapshot(POOL))
        last = final.cursor.sequence
        assert last == sync_log.cursors[-1]
        assert sorted(log.cursors) == list(range(2, last + 1)), "cursors unique and gap-free"
        assert sorted(log.events) == list(range(1, 2 * TASKS + 1)), "event sequences unique and gap-free"
        # The tasks really ran concurrently: some task's cursors are not one consecutive run.
        assert any(seq != list(range(seq[0], seq[0] + len(seq))) for seq in log.by_task.values())
        assert len(final.members) == TASKS - len(range(0, TASKS, 5))
        if kind == "file":
            with SqliteAgentPoolStore(tmp_path / "async.sqlite") as cold:
                assert wire.encode(cold.snapshot(POOL)) == wire.encode(final)
    finally:
        reference.close()


# -------------------------------------------------------------------- errors


def error_calls() -> list[tuple[str, tuple[Any, ...]]]:
    member = AgentPoolMember(run_id="run.a", agent_id="agent.a")
    message = writer_message(0)
    return [
        ("snapshot", ("pool.unopened",)),
        ("join_member", ("pool.unopened", member)),
        ("record_pool_created", ("pool.unopened",)),
        ("next_event_sequence", ("pool.unopened",)),
        ("record_message", ("pool.unopened", message, writer_receipt(0))),
        ("leave_member", (POOL, "run.nobody")),
        ("open_pool", (POOL, OTHER_CONFIG)),
        ("snapshot", ("",)),
        ("snapshot", (7,)),
        ("message_receipt", (POOL, "key\x07")),
        ("join_member", (POOL, {"run_id": "run.a"})),
        ("record_message", (POOL, message, "accepted")),
        ("watch", (POOL, -1)),
        ("wake", (POOL, None)),
    ]


def test_errors_propagate_as_the_same_agent_error(kind: str, tmp_path: Path) -> None:
    reference = make_store(kind, tmp_path / "sync.sqlite")
    reference.open_pool(POOL, CONFIG)
    expected = []
    for name, args in error_calls():
        with pytest.raises(AgentError) as raised:
            list(getattr(reference, name)(*args)) if name == "watch" else getattr(reference, name)(*args)
        error = raised.value
        expected.append((type(error), error.kind, error.retry, error.message, error.variant))

    async def main() -> list[tuple[Any, ...]]:
        got = []
        async with AsyncAgentPoolStore(make_store(kind, tmp_path / "async.sqlite")) as store:
            await store.open_pool(POOL, CONFIG)
            for name, args in error_calls():
                try:
                    await getattr(store, name)(*args)
                except AgentError as error:
                    got.append((type(error), error.kind, error.retry, error.message, error.variant))
                else:
                    got.append(("no error", name, args))
            assert (await store.snapshot(POOL)).cursor.sequence == 1, "a failed call wrote nothing"
        return got

    try:
        assert asyncio.run(main()) == expected
        kinds = {row[1] for row in expected}
        assert {AgentErrorKind.HOST_CONFIGURATION_NEEDED, AgentErrorKind.INVALID_STATE_TRANSITION} <= kinds
        assert sum(row[0] is InvalidInput for row in expected) == 7
    finally:
        reference.close()


def test_a_closed_store_raises_its_closed_error_through_the_wrapper(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncAgentPoolStore(SqliteAgentPoolStore(tmp_path / "closed.sqlite")) as store:
            await store.open_pool(POOL, CONFIG)
        for call in (store.snapshot, store.next_event_sequence, store.watch):
            with pytest.raises(AgentError) as raised:
                await call(POOL)
            assert raised.value.message == "sqlite agent pool store is closed"
            assert raised.value.retry is RetryClassification.NOT_RETRYABLE
        await store.close()  # closing twice is harmless

    asyncio.run(main())


# -------------------------------------------------------------------- the loop is never blocked


def test_no_callback_is_slow_during_writes_on_a_file_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """asyncio's debug mode logs every callback or task step that runs longer than ``SLOW``."""
    caplog.set_level(logging.WARNING, logger="asyncio")

    async def task(store: AsyncAgentPoolStore, i: int) -> None:
        await store.join_member(POOL, AgentPoolMember(run_id=f"run.{i:02d}", agent_id="agent.a"))
        for n in range(4):
            number = i * 10 + n
            await store.record_message(POOL, writer_message(number), writer_receipt(number))
            await store.message_receipt(POOL, writer_message(number).idempotency_key)
            await store.snapshot(POOL)
        await store.next_event_sequence(POOL)

    async def follow(store: AsyncAgentPoolStore) -> int:
        return len([record async for record in store.follow(POOL, poll_interval=0.01, timeout=2.0)])

    async def main() -> int:
        async with await AsyncAgentPoolStore.open(tmp_path / "slow.sqlite", synchronous="full") as store:
            await store.open_pool(POOL, CONFIG)
            followed = asyncio.ensure_future(follow(store))
            await asyncio.gather(*(task(store, i) for i in range(30)))
            await store.watch(POOL)
            return await followed

    with asyncio.Runner(debug=True) as runner:
        runner.get_loop().slow_callback_duration = SLOW
        followed = runner.run(main())
        assert followed == 1 + 30 * 5
        slow = [r.getMessage() for r in caplog.records if r.name == "asyncio" and "took" in r.getMessage()]
        assert slow == []

        async def blocking() -> None:
            time.sleep(2 * SLOW)  # what a store call made on the loop thread would do

        runner.run(blocking())
    # The detector is live: the one deliberately blocking step was reported.
    reported = [r.getMessage() for r in caplog.records if r.name == "asyncio" and "took" in r.getMessage()]
    assert len(reported) == 1 and reported[0].startswith("Executing"), reported


def big_pool(path: Path, records: int) -> None:
    """A pool of ``records`` message records, inserted in one raw SQL transaction (fast to build)."""
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(POOL, CONFIG)
        first = store.snapshot(POOL).cursor.sequence
    template = wire.encode(writer_payload(0))
    assert template.count("writer.0000") == 4
    db = apsw.Connection(str(path))
    try:
        with db:
            db.executemany(
                "INSERT INTO agent_pool_records (pool_id, seq, kind, payload_json) VALUES (?, ?, 'run_message', ?)",
                (
                    (POOL, first + n, template.replace("writer.0000", f"writer.{first + n:07d}"))
                    for n in range(1, records + 1)
                ),
            )
    finally:
        db.close()


def cold_snapshot(path: Path) -> float:
    started = time.perf_counter()
    with SqliteAgentPoolStore(path) as store:
        store.snapshot(POOL)
    return time.perf_counter() - started


async def largest_gap(work: Callable[[], Awaitable[Any]]) -> float:
    """The longest a 1 ms ``asyncio.sleep`` ticker waited for the loop while ``work`` ran."""
    gaps = [0.0]
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            gaps.append(time.perf_counter() - before)

    ticking = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.01)
    try:
        await work()
    finally:
        done.set()
        await ticking
    return max(gaps)


def test_a_cold_snapshot_does_not_block_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "big.sqlite"
    records, total = 4000, 0
    # Big enough that doing it on the loop thread would be plainly visible (whatever the engine's speed).
    while True:
        big_pool(path, records)
        total += records
        blocking = cold_snapshot(path)
        if blocking >= 2 * SLOW or total >= 800_000:
            break
        records = total
    assert blocking >= 2 * SLOW, f"a cold snapshot of {total} records takes only {blocking:.3f} s: nothing to measure"

    async def main() -> tuple[float, float, float, AgentPoolSnapshot]:
        durations: list[float] = []

        async def on_the_loop() -> None:
            durations.append(cold_snapshot(path))

        control = await largest_gap(on_the_loop)
        snapshots: list[AgentPoolSnapshot] = []

        async def offloaded() -> None:
            async with await AsyncAgentPoolStore.open(path) as store:
                snapshots.append(await store.snapshot(POOL))

        return control, durations[0], await largest_gap(offloaded), snapshots[0]

    control, on_the_loop, gap, snapshot = asyncio.run(main())
    assert snapshot.cursor.sequence == total + 1 and len(snapshot.messages) == total
    # The control: the same call made on the loop thread stalls the ticker for all of it.
    assert control >= on_the_loop > SLOW, (control, on_the_loop)
    # Offloaded, the loop keeps ticking: what is left are the worker's GIL-holding C calls
    # (one big sort, a garbage collection), well short of the whole call. Relative to the
    # control, so a loaded CI machine does not make it flaky.
    assert gap < control / 2, (
        f"the loop stalled {gap * 1000:.1f} ms during a cold snapshot of {total} records "
        f"({control * 1000:.1f} ms when run on the loop)"
    )


# -------------------------------------------------------------------- async follow


def test_async_follow_sees_another_store_object_and_ends_on_timeout(tmp_path: Path) -> None:
    path = tmp_path / "follow.sqlite"
    finished: list[float] = []

    def write() -> None:
        with SqliteAgentPoolStore(path) as other:
            for n in range(20):
                other.record_message(POOL, writer_message(n), writer_receipt(n))
                time.sleep(0.005)
        finished.append(time.monotonic())

    async def main() -> list[AgentPoolStoreRecord]:
        async with AsyncAgentPoolStore(SqliteAgentPoolStore(path)) as store:
            await store.open_pool(POOL, CONFIG)
            writer = threading.Thread(target=write)
            writer.start()
            try:
                return [record async for record in store.follow(POOL, 1, poll_interval=0.02, timeout=0.5)]
            finally:
                writer.join()

    records = asyncio.run(main())
    ended = time.monotonic()
    assert [r.cursor.sequence for r in records] == list(range(2, 22))
    assert [r.payload for r in records] == [writer_payload(n) for n in range(20)]
    assert 0.5 - 0.05 <= ended - finished[0] < 0.5 + 0.6, "ends about one timeout after the last record"


def test_async_follow_sees_another_process(tmp_path: Path) -> None:
    path = tmp_path / "process.sqlite"

    async def main() -> tuple[list[AgentPoolStoreRecord], list[float], dict[int, float]]:
        async with await AsyncAgentPoolStore.open(path) as store:
            await store.open_pool(POOL, CONFIG)
            child = start_writer(path, POOL, 25, pause=0.01)
            records, seen = [], []
            try:
                async for record in store.follow(POOL, 1, poll_interval=0.02, timeout=15):
                    records.append(record)
                    seen.append(time.time())
                    if len(records) == 25:
                        break
            finally:
                committed = commits(child)
            return records, seen, committed

    records, seen, committed = asyncio.run(main())
    assert [r.cursor.sequence for r in records] == sorted(committed) == list(range(2, 27))
    assert [r.payload for r in records] == [writer_payload(n) for n in range(25)]
    assert max(at - committed[r.cursor.sequence] for r, at in zip(records, seen, strict=True)) < 1.0


def test_async_follow_ends_on_timeout_without_records(kind: str, tmp_path: Path) -> None:
    async def main() -> tuple[list[AgentPoolStoreRecord], float]:
        async with AsyncAgentPoolStore(make_store(kind, tmp_path / "idle.sqlite")) as store:
            await store.open_pool(POOL, CONFIG)
            started = time.monotonic()
            records = [r async for r in store.follow(POOL, 1, poll_interval=0.05, timeout=0.3)]
            return records, time.monotonic() - started

    records, elapsed = asyncio.run(main())
    assert records == []
    assert 0.3 - 0.01 <= elapsed < 0.3 + 0.5


def test_async_follow_ends_when_the_store_is_closed_by_another_task(kind: str, tmp_path: Path) -> None:
    async def main() -> tuple[list[int], float]:
        store = AsyncAgentPoolStore(make_store(kind, tmp_path / "close.sqlite"))
        await store.open_pool(POOL, CONFIG)

        async def follow() -> list[int]:
            return [r.cursor.sequence async for r in store.follow(POOL, poll_interval=0.05, timeout=None)]

        following = asyncio.ensure_future(follow())
        await asyncio.sleep(0.2)
        assert not following.done()
        closed_at = time.monotonic()
        await store.close()
        sequences = await asyncio.wait_for(following, 2)
        return sequences, time.monotonic() - closed_at

    sequences, after_close = asyncio.run(main())
    assert sequences == [1]
    assert after_close < 1.0


FOLLOWS = 1000


def spy(store: Any, *names: str) -> dict[str, list[None]]:
    """Count the calls of some of ``store``'s methods (from any thread)."""
    calls: dict[str, list[None]] = {}
    for name in names:
        method, counted = getattr(store, name), calls.setdefault(name, [])

        def wrapper(*args: Any, _method: Any = method, _counted: list[None] = counted) -> Any:
            _counted.append(None)  # list.append is atomic: the spies run on worker threads
            return _method(*args)

        setattr(store, name, wrapper)
    return calls


async def until(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        await asyncio.sleep(0.01)


def test_a_thousand_idle_follows_read_nothing_and_each_gets_its_record_once(kind: str, tmp_path: Path) -> None:
    """Idle follows cost one change-token poll per interval, not a read each; a commit wakes
    only the follows whose pool grew, and each of them reads once."""
    path = tmp_path / "many.sqlite"
    inner = make_store(kind, path)
    pools = [f"pool.many.{i:04d}" for i in range(FOLLOWS)]
    for pool_id in pools:
        inner.open_pool(pool_id, CONFIG)
    calls = spy(inner, "_records_after", "_read_state", "_change_token")

    def write_one_record_each() -> None:
        if kind == "memory":
            for pool_id in pools:
                inner.record_pool_created(pool_id)
            return
        with SqliteAgentPoolStore(path) as other, other.transaction():  # another store object, one commit
            for pool_id in pools:
                other.record_pool_created(pool_id)

    async def main() -> dict[str, list[int]]:
        store = AsyncAgentPoolStore(inner)
        got: dict[str, list[int]] = {pool_id: [] for pool_id in pools}

        async def follow(pool_id: str) -> None:
            async for record in store.follow(pool_id, 1, poll_interval=0.01):
                got[pool_id].append(record.cursor.sequence)

        tasks = [asyncio.ensure_future(follow(pool_id)) for pool_id in pools]
        await until(lambda: len(calls["_records_after"]) >= FOLLOWS)  # every follow made its first read
        await asyncio.sleep(0.1)
        for counted in calls.values():
            counted.clear()
        await asyncio.sleep(0.2)  # twenty poll intervals, nothing written
        assert len(calls["_change_token"]) > 0, "the watcher polls"
        assert (len(calls["_records_after"]), len(calls["_read_state"])) == (0, 0), "idle follows read nothing"

        await asyncio.to_thread(write_one_record_each)
        await until(lambda: all(got.values()))
        await asyncio.sleep(0.1)
        assert len(calls["_records_after"]) == FOLLOWS, "each woken follow read once"
        await store.close()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        return got

    assert asyncio.run(main()) == {pool_id: [2] for pool_id in pools}


def test_a_follow_started_during_a_watcher_round_misses_no_commit() -> None:
    """The race: a round has taken its list of pools (without ``pool.y``) when a follow of
    ``pool.y`` starts and reads; a commit to ``pool.y`` lands before the round reads the
    change token. The token then looks seen, yet ``pool.y`` was never scanned."""
    inner = InMemoryAgentPoolStore()
    for pool_id in ("pool.x", "pool.y"):
        inner.open_pool(pool_id, CONFIG)
    store = AsyncAgentPoolStore(inner)
    in_round, go_on = threading.Event(), threading.Event()
    grown, read = store._grown, store._read

    def round_held_before_the_token(seen: object, pool_ids: list[str], *rest: Any) -> Any:
        if pool_ids == ["pool.x"] and not go_on.is_set():
            in_round.set()
            go_on.wait(10)
        return grown(seen, pool_ids, *rest)

    def read_then_commit(pool_id: str, after: int) -> list[AgentPoolStoreRecord]:
        records = read(pool_id, after)
        if pool_id == "pool.y" and not go_on.is_set():
            inner.record_pool_created("pool.y")  # after the follow's read, before the round's token
            go_on.set()
        return records

    store._grown, store._read = round_held_before_the_token, read_then_commit  # type: ignore[method-assign]

    async def main() -> list[int]:
        async def follow_x() -> None:
            async for _ in store.follow("pool.x", 1, poll_interval=0.01):
                pass

        keeps_the_watcher = asyncio.ensure_future(follow_x())
        assert await asyncio.to_thread(in_round.wait, 10)
        got = []
        async for record in store.follow("pool.y", 1, poll_interval=0.01, timeout=2):
            got.append(record.cursor.sequence)
            break
        await store.close()
        await asyncio.wait_for(keeps_the_watcher, 5)
        return got

    assert asyncio.run(main()) == [2]


def test_the_watcher_stops_when_no_follow_is_left(kind: str, tmp_path: Path) -> None:
    inner = make_store(kind, tmp_path / "stops.sqlite")
    inner.open_pool(POOL, CONFIG)
    calls = spy(inner, "_change_token")

    async def main() -> tuple[int, int]:
        async with AsyncAgentPoolStore(inner) as store:
            assert [r async for r in store.follow(POOL, 1, poll_interval=0.01, timeout=0.1)] == []
            # A round may still be on a worker as the follow ends: let it finish, then nothing more.
            await asyncio.sleep(0.2)
            polled = len(calls["_change_token"])
            await asyncio.sleep(0.2)
            return polled, len(calls["_change_token"])

    polled, later = asyncio.run(main())
    assert polled > 0 and later == polled


@pytest.mark.parametrize(
    "arguments",
    [{"poll_interval": 0}, {"poll_interval": -1}, {"timeout": -1}, {"cursor": "1"}, {"cursor": -1}, {"pool_id": ""}],
)
def test_async_follow_refuses_bad_arguments(arguments: dict[str, Any]) -> None:
    call: dict[str, Any] = {"pool_id": POOL, "cursor": None, "poll_interval": 0.01, "timeout": 0, **arguments}
    pool_id, cursor = call.pop("pool_id"), call.pop("cursor")

    async def main() -> None:
        async with AsyncAgentPoolStore(InMemoryAgentPoolStore()) as store:
            await store.open_pool(POOL, CONFIG)
            with pytest.raises(InvalidInput):
                async for _ in store.follow(pool_id, cursor, **call):
                    pass

    asyncio.run(main())


# -------------------------------------------------------------------- cancelled writes


def hold_the_write_lock(path: Path, held: threading.Event, release: threading.Event) -> threading.Thread:
    """Another store object holds SQLite's write lock (an open ``transaction()``) until ``release``."""

    def hold() -> None:
        with SqliteAgentPoolStore(path) as other, other.transaction():
            other.record_pool_created(POOL)
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    return holder


def test_a_cancelled_write_still_commits_and_later_calls_see_it(tmp_path: Path) -> None:
    """Cancelled while waiting for SQLite's write lock, for the store's lock or for a worker
    thread, a write still runs to its end; calls made after the cancellation start after it,
    so ``message_receipt`` tells whether it committed."""
    path = tmp_path / "cancel.sqlite"
    held, release = threading.Event(), threading.Event()

    async def main() -> tuple[list[MessageReceipt | None], AgentPoolSnapshot]:
        async with AsyncAgentPoolStore(SqliteAgentPoolStore(path, busy_timeout=30)) as store:
            await store.open_pool(POOL, CONFIG)
            holder = hold_the_write_lock(path, held, release)
            # Two workers: the first write waits for SQLite's lock, the second for the store's
            # lock, the third for a free worker.
            writes = [
                asyncio.ensure_future(store.record_message(POOL, writer_message(n), writer_receipt(n)))
                for n in range(3)
            ]
            await asyncio.sleep(0.2)
            for write in writes:
                write.cancel()
            outcomes = await asyncio.gather(*writes, return_exceptions=True)
            assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
            assert holder.is_alive(), "cancelling returned at once, while the lock was still held"
            release.set()
            receipts = [await store.message_receipt(POOL, writer_message(n).idempotency_key) for n in range(3)]
            snapshot = await store.snapshot(POOL)
        holder.join()
        return receipts, snapshot

    receipts, snapshot = asyncio.run(main())
    assert receipts == [writer_receipt(n) for n in range(3)]
    assert sorted(stored.message.message_id for stored in snapshot.messages) == [
        writer_message(n).message_id for n in range(3)
    ]
    assert snapshot.cursor.sequence == 5  # opened, the other store's record, three messages


def test_a_cancelled_write_that_fails_leaves_no_receipt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The cancelled write gives up (busy_timeout) while the lock is held: ``message_receipt``,
    called right after the cancellation, waits for that outcome and answers None. Its error
    is not logged as never retrieved: the receipt is how the caller learns of it."""
    caplog.set_level(logging.ERROR, logger="asyncio")
    path = tmp_path / "cancel-fails.sqlite"
    held, release = threading.Event(), threading.Event()

    async def main() -> tuple[MessageReceipt | None, bool, AgentPoolSnapshot]:
        async with AsyncAgentPoolStore(SqliteAgentPoolStore(path, busy_timeout=0.3)) as store:
            await store.open_pool(POOL, CONFIG)
            holder = hold_the_write_lock(path, held, release)
            try:
                write = asyncio.ensure_future(store.record_message(POOL, writer_message(0), writer_receipt(0)))
                await asyncio.sleep(0.05)
                write.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await write
                receipt = await store.message_receipt(POOL, writer_message(0).idempotency_key)
                still_held = holder.is_alive()
            finally:
                release.set()
                holder.join()
            return receipt, still_held, await store.snapshot(POOL)

    receipt, still_held, snapshot = asyncio.run(main())
    assert receipt is None and still_held, "the answer came while the lock was held: the write had failed"
    assert snapshot.messages == () and snapshot.cursor.sequence == 2
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


# -------------------------------------------------------------------- open, close


def workers() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name.startswith("fastpool-aio")}


def test_open_creates_the_file_and_passes_options(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dirs" / "pools.sqlite"

    async def main() -> None:
        store = await AsyncAgentPoolStore.open(path)
        try:
            assert isinstance(store.store, SqliteAgentPoolStore) and store.store.path == path
            assert (await store.open_pool(POOL, CONFIG)).cursor == AgentPoolStoreCursor.new(1)
        finally:
            await store.close()
        with pytest.raises(InvalidInput, match="synchronous"):
            await AsyncAgentPoolStore.open(tmp_path / "other.sqlite", synchronous="sometimes")
        with pytest.raises(AgentError) as raised:
            await AsyncAgentPoolStore.open(tmp_path)  # a directory
        assert raised.value.retry is RetryClassification.HOST_CONFIGURATION_NEEDED
        async with await AsyncAgentPoolStore.open(path, readonly=True) as reader:
            assert (await reader.snapshot(POOL)).cursor == AgentPoolStoreCursor.new(1)
            with pytest.raises(AgentError):
                await reader.record_pool_created(POOL)

    asyncio.run(main())
    assert path.is_file()
    with SqliteAgentPoolStore(path) as store:
        assert store.snapshot(POOL).cursor == AgentPoolStoreCursor.new(1)


@pytest.mark.parametrize(
    "store, options, argument",
    [(None, {}, "store"), ("pools.sqlite", {}, "store"), (object(), {}, "store")]
    + [(InMemoryAgentPoolStore(), {"workers": bad}, "workers") for bad in (0, -1, 1.5, True, "2")],
)
def test_wrapping_anything_but_a_store_is_invalid_input(store: Any, options: dict[str, Any], argument: str) -> None:
    before = workers()
    with pytest.raises(InvalidInput) as raised:
        AsyncAgentPoolStore(store, **options)
    assert raised.value.message.startswith(f"{argument}: ")
    assert workers() <= before  # no worker thread was started


def test_async_with_closes_the_store_and_its_workers(tmp_path: Path) -> None:
    before = workers()  # other tests' workers may still be on their way out
    mine: set[threading.Thread] = set()

    async def main() -> SqliteAgentPoolStore:
        async with AsyncAgentPoolStore(SqliteAgentPoolStore(tmp_path / "with.sqlite")) as store:
            await asyncio.gather(store.open_pool(POOL, CONFIG), store.snapshot("pool.x"), return_exceptions=True)
            mine.update(workers() - before)
            assert mine, "the calls ran on the wrapper's worker threads"
        assert isinstance(store.store, SqliteAgentPoolStore)
        return store.store

    inner = asyncio.run(main())
    with pytest.raises(AgentError, match="closed"):
        inner.snapshot(POOL)
    for thread in mine:
        thread.join(5)
        assert not thread.is_alive(), "close() left a worker thread running"

    async def failing() -> None:
        async with AsyncAgentPoolStore(SqliteAgentPoolStore(tmp_path / "with.sqlite")):
            raise KeyError("boom")

    with pytest.raises(KeyError):
        asyncio.run(failing())
    with SqliteAgentPoolStore(tmp_path / "with.sqlite") as check:
        assert check.snapshot(POOL).cursor == AgentPoolStoreCursor.new(1)


def test_memory_store_stays_readable_after_close_as_the_sync_one_does() -> None:
    inner = InMemoryAgentPoolStore()

    async def main() -> AgentPoolSnapshot:
        async with AsyncAgentPoolStore(inner) as store:
            await store.open_pool(POOL, CONFIG)
        return await store.snapshot(POOL)

    assert asyncio.run(main()) == inner.snapshot(POOL)


# -------------------------------------------------------------------- idempotent writes, lookups


def test_tasks_sharing_keys_record_each_once_and_lookups_answer_as_the_sync_store(kind: str, tmp_path: Path) -> None:
    """50 tasks send 10 messages and wakes through the ``*_once`` coroutines, five tasks per
    key: one record per key, and every task is handed the receipt (registration) in effect.
    The lookup coroutines answer as the sync store does."""
    keys = 10

    async def task(store: AsyncAgentPoolStore, i: int) -> tuple[Any, ...]:
        n = i % keys
        member = AgentPoolMember(run_id=f"run.{i:02d}", agent_id="agent.a", topics=(f"topic.{i % 3}",))
        await store.join_member(POOL, member)
        message = writer_message(n)
        sent = await store.record_message_once(POOL, message, writer_receipt(n).replace(delivered_to=(member.run_id,)))
        condition = WakeCondition(
            condition_id=f"wake.{n}", run_id="run.00", filter=EventFilter.run("run.00"), idempotency_key=f"wake-key.{n}"
        )
        registration = WakeRegistration(
            condition_id=f"wake.{n}", run_id=member.run_id, status=WakeRegistrationStatus.REGISTERED
        )
        woke = await store.record_wake_once(POOL, condition, condition.compile_envelope_filter(), registration)
        return sent, woke

    async def main() -> tuple[list[tuple[Any, ...]], AgentPoolSnapshot, tuple[Any, ...]]:
        async with AsyncAgentPoolStore(make_store(kind, tmp_path / "once.sqlite")) as store:
            await store.open_pool(POOL, CONFIG)
            results = await asyncio.gather(*(task(store, i) for i in range(TASKS)))
            lookups = (
                await store.members(POOL),
                await store.member(POOL, "run.07"),
                await store.member(POOL, "run.none"),
                await store.topics(POOL),
                await store.topic_members(POOL, "topic.1"),
            )
            return results, await store.snapshot(POOL), lookups

    results, snapshot, lookups = asyncio.run(main())
    assert len(snapshot.messages) == len(snapshot.wakes) == keys
    assert snapshot.cursor.sequence == 1 + TASKS + 2 * keys  # opened, the joins, one record per key
    in_file = {s.message.message_id: s.receipt for s in snapshot.messages}
    in_file |= {w.condition.condition_id: w.registration for w in snapshot.wakes}
    for sent, woke in results:
        assert sent[0] == in_file[sent[0].message_id] and woke[0] == in_file[woke[0].condition_id]
    assert sum(sent[1] is not None for sent, _ in results) == sum(woke[1] is not None for _, woke in results) == keys
    members = snapshot.members
    assert lookups == (members, members[7], None, snapshot.topics, tuple(m for m in members if "topic.1" in m.topics))


@contextmanager
def lock_held_by_another_thread(store: Any) -> Generator[None, None, None]:
    """The store's lock held by another thread for the block (a transaction, a long read)."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._lock:
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join()


def test_a_cancelled_record_message_once_still_commits(kind: str, tmp_path: Path) -> None:
    """Cancelled while waiting for the store's lock or a worker thread, the ``*_once`` write
    still runs (it is a write, shielded like the others)."""

    async def main() -> list[MessageReceipt | None]:
        async with AsyncAgentPoolStore(make_store(kind, tmp_path / "cancel-once.sqlite")) as store:
            await store.open_pool(POOL, CONFIG)
            with lock_held_by_another_thread(store.store):
                writes = [
                    asyncio.ensure_future(store.record_message_once(POOL, writer_message(n), writer_receipt(n)))
                    for n in range(3)
                ]
                await asyncio.sleep(0.1)
                for write in writes:
                    write.cancel()
                await asyncio.gather(*writes, return_exceptions=True)
            return [await store.message_receipt(POOL, writer_message(n).idempotency_key) for n in range(3)]

    assert asyncio.run(main()) == [writer_receipt(n) for n in range(3)]


# -------------------------------------------------------------------- on the loop, group commit, transactions


def spy_threads(store: Any, name: str) -> list[int]:
    """The thread of every call the wrapper makes to the wrapped store's method ``name``."""
    threads: list[int] = []
    method = getattr(store, name)

    def spy(*args: Any) -> Any:
        threads.append(threading.get_ident())
        return method(*args)

    setattr(store, name, spy)  # the wrapper looks the method up on each call
    return threads


def test_a_warm_read_answers_on_the_loop_and_one_that_must_catch_up_on_a_worker(tmp_path: Path) -> None:
    path = tmp_path / "hops.sqlite"

    async def main() -> None:
        async with AsyncAgentPoolStore(SqliteAgentPoolStore(path)) as store:
            await store.open_pool(POOL, CONFIG)
            await store.record_message(POOL, writer_message(0), writer_receipt(0))
            loop_thread = threading.get_ident()
            receipts, members = spy_threads(store.store, "message_receipt"), spy_threads(store.store, "members")
            assert await store.message_receipt(POOL, writer_message(0).idempotency_key) == writer_receipt(0)
            assert await store.members(POOL) == ()
            assert receipts == members == [loop_thread]
            with SqliteAgentPoolStore(path) as other:  # a commit the wrapped store has not read
                other.record_message(POOL, writer_message(1), writer_receipt(1))
            assert await store.message_receipt(POOL, writer_message(1).idempotency_key) == writer_receipt(1)
            tried, caught_up = receipts[1:]
            assert tried == loop_thread and caught_up != loop_thread  # the rows were read on a worker
            assert await store.message_receipt(POOL, writer_message(1).idempotency_key) == writer_receipt(1)
            assert receipts[3:] == [loop_thread]
            with pytest.raises(InvalidInput, match="pool_id"):
                await store.message_receipt("", "key")  # checked on the loop, raised as ever

    asyncio.run(main())


def test_with_the_pragma_probe_every_call_runs_on_a_worker(tmp_path: Path) -> None:
    """``PRAGMA data_version`` may wait for a lock, so a store that has only that probe (no
    WAL-index to read) is never called on the loop."""
    from fastpool._probe import PragmaProbe

    async def main() -> None:
        inner = SqliteAgentPoolStore(tmp_path / "pragma.sqlite")
        assert inner._db is not None
        inner._cache.probe = PragmaProbe(inner._db)
        async with AsyncAgentPoolStore(inner) as store:
            await store.open_pool(POOL, CONFIG)
            reads, writes = spy_threads(inner, "message_receipt"), spy_threads(inner, "record_message")
            await store.record_message(POOL, writer_message(0), writer_receipt(0))
            assert await store.message_receipt(POOL, writer_message(0).idempotency_key) == writer_receipt(0)
            assert threading.get_ident() not in reads + writes and len(reads + writes) == 2

    asyncio.run(main())


def test_tasks_writes_share_one_group_commit_each_with_its_own_outcome(tmp_path: Path) -> None:
    """Sixteen tasks write while another thread holds the store's lock: their writes queue
    from the loop and commit as one group, in the order the tasks made them, and the one
    whose check fails gets its own error."""
    sizes: list[int] = []

    async def main() -> tuple[list[Any], AgentPoolSnapshot]:
        async with AsyncAgentPoolStore(SqliteAgentPoolStore(tmp_path / "group.sqlite")) as store:
            inner = store.store
            assert isinstance(inner, SqliteAgentPoolStore)
            await store.open_pool(POOL, CONFIG)
            commit_group = inner._commit_group

            def counted(group: list[Any]) -> None:
                sizes.append(len(group))
                commit_group(group)

            inner._commit_group = counted  # type: ignore[method-assign]
            with lock_held_by_another_thread(inner):
                calls = [store.record_message(POOL, writer_message(n), writer_receipt(n)) for n in range(15)]
                calls.insert(7, store.leave_member(POOL, "run.never-joined"))
                writes = [asyncio.ensure_future(call) for call in calls]
                while len(inner._group._queue) < len(writes):
                    await asyncio.sleep(0.001)
            outcomes = await asyncio.gather(*writes, return_exceptions=True)
            return outcomes, await store.snapshot(POOL)

    outcomes, snapshot = asyncio.run(main())
    assert sizes == [16]
    failed = outcomes.pop(7)
    assert isinstance(failed, AgentError) and failed.message == "run is not a member of this agent pool"
    assert outcomes == [AgentPoolStoreCursor.new(n) for n in range(2, 17)]
    recorded = [stored.message.message_id for stored in snapshot.messages]
    assert recorded == [writer_message(n).message_id for n in range(15)]


def test_async_transaction_is_all_or_nothing_as_the_sync_one(tmp_path: Path) -> None:
    path = tmp_path / "transaction.sqlite"
    member = AgentPoolMember(run_id="run.t", agent_id="agent.t")

    async def main() -> None:
        async with AsyncAgentPoolStore(SqliteAgentPoolStore(path)) as store:
            await store.open_pool(POOL, CONFIG)
            with SqliteAgentPoolStore(path) as other:
                async with store.transaction() as inside:
                    assert inside is store
                    assert await store.join_member(POOL, member) == AgentPoolStoreCursor.new(2)
                    await store.record_message(POOL, writer_message(0), writer_receipt(0))
                    assert await store.member(POOL, "run.t") == member  # its own writes, uncommitted
                    assert other.snapshot(POOL).cursor.sequence == 1
                    with pytest.raises(InvalidInput, match="already has a transaction open"):
                        async with store.transaction():
                            pass
                assert other.snapshot(POOL).cursor.sequence == 3
                with pytest.raises(KeyError):
                    async with store.transaction():
                        await store.leave_member(POOL, "run.t")
                        raise KeyError("roll back")
                assert other.member(POOL, "run.t") == member
                assert await store.member(POOL, "run.t") == member
                assert (await store.snapshot(POOL)).cursor.sequence == 3
        async with AsyncAgentPoolStore(InMemoryAgentPoolStore()) as memory:
            with pytest.raises(AgentError, match="needs a SqliteAgentPoolStore"):
                async with memory.transaction():
                    pass

    asyncio.run(main())


def test_other_tasks_wait_for_an_async_transaction(tmp_path: Path) -> None:
    """While one task is inside ``transaction()``, another task's write and read wait for it
    to end (as other threads do for the sync one), without blocking the loop."""

    async def main() -> list[Any]:
        async with AsyncAgentPoolStore(SqliteAgentPoolStore(tmp_path / "wait.sqlite")) as store:
            await store.open_pool(POOL, CONFIG)
            inside, finish = asyncio.Event(), asyncio.Event()
            order: list[Any] = []

            async def in_transaction() -> None:
                async with store.transaction():
                    order.append(await store.record_message(POOL, writer_message(0), writer_receipt(0)))
                    inside.set()
                    await finish.wait()
                    order.append(await store.record_message(POOL, writer_message(1), writer_receipt(1)))
                order.append("committed")

            async def outside() -> None:
                await inside.wait()
                write = asyncio.ensure_future(store.record_message(POOL, writer_message(2), writer_receipt(2)))
                read = asyncio.ensure_future(store.message_receipt(POOL, writer_message(1).idempotency_key))
                await asyncio.sleep(0.05)
                assert not write.done() and not read.done()
                finish.set()
                order.append(await write)
                order.append(await read)

            await asyncio.gather(in_transaction(), outside())
            return order

    cursor = AgentPoolStoreCursor.new
    assert asyncio.run(main()) == [cursor(2), cursor(3), "committed", cursor(4), writer_receipt(1)]


def test_calls_while_another_thread_holds_the_store_do_not_block_the_loop(kind: str, tmp_path: Path) -> None:
    """With the store's lock held by another thread (a transaction, a long read), a write and
    a read wait for it on a worker while the loop keeps running."""

    async def main() -> tuple[float, Any, Any]:
        async with AsyncAgentPoolStore(make_store(kind, tmp_path / "held.sqlite")) as store:
            await store.open_pool(POOL, CONFIG)
            calls: list[asyncio.Future[Any]] = []

            async def while_held() -> None:
                calls.append(asyncio.ensure_future(store.record_message(POOL, writer_message(0), writer_receipt(0))))
                calls.append(asyncio.ensure_future(store.message_receipt(POOL, writer_message(0).idempotency_key)))
                await asyncio.sleep(0.3)

            with lock_held_by_another_thread(store.store):
                gap = await largest_gap(while_held)
            cursor, receipt = await calls[0], await calls[1]
            return gap, cursor, receipt, await store.message_receipt(POOL, writer_message(0).idempotency_key)

    gap, cursor, receipt, after = asyncio.run(main())
    assert gap < SLOW, f"the loop stalled {gap:.3f} s"
    # The write and the read were made at once and waited for the lock on workers: either
    # may take it first. The write's commit is seen by a read made after it returned.
    assert cursor == AgentPoolStoreCursor.new(2) and receipt in (None, writer_receipt(0))
    assert after == writer_receipt(0)


def test_a_write_cancelled_after_its_group_finished_does_not_hang_later_calls(tmp_path: Path) -> None:
    """The race of ``asyncio.wait_for``: the group commits and hands the outcome to the loop,
    and the task is cancelled before the loop takes it. The outcome is taken once; later calls
    on the wrapper neither wait for it forever nor miss the write."""

    async def main() -> tuple[MessageReceipt | None, MessageReceipt | None]:
        async with AsyncAgentPoolStore(SqliteAgentPoolStore(tmp_path / "race.sqlite")) as store:
            await store.open_pool(POOL, CONFIG)
            inner = store.store
            inner._group._last_group = 2  # queue on the loop (a lone writer would not)
            with lock_held_by_another_thread(inner):
                write = asyncio.ensure_future(store.record_message(POOL, writer_message(0), writer_receipt(0)))
                await asyncio.sleep(0.05)  # queued, its worker waiting for the store's lock
                sink = store._sink
                assert sink is not None and len(inner._group._queue) == 1
            deadline = time.monotonic() + 10
            while not sink._done and time.monotonic() < deadline:  # the loop does not run meanwhile
                time.sleep(0.001)
            assert sink._done, "the group never finished"
            write.cancel()  # after the worker handed the outcome over, before the loop took it
            with pytest.raises(asyncio.CancelledError):
                await write
            later = await asyncio.wait_for(store.message_receipt(POOL, writer_message(0).idempotency_key), 10)
            written = await asyncio.wait_for(store.record_message(POOL, writer_message(1), writer_receipt(1)), 10)
            assert written.sequence == 3
            return later, await store.message_receipt(POOL, writer_message(1).idempotency_key)

    assert asyncio.run(main()) == (writer_receipt(0), writer_receipt(1))


@pytest.mark.parametrize("seed", range(6))
def test_writes_cancelled_by_wait_for_at_random_leave_every_later_call_answering(tmp_path: Path, seed: int) -> None:
    """Tasks writing under ``asyncio.wait_for`` with timeouts around a group's duration: every
    write reported done is in the file, and a call made afterwards answers (no hang)."""
    import random

    rng = random.Random(seed)

    async def main() -> tuple[set[str], AgentPoolSnapshot]:
        async with AsyncAgentPoolStore(SqliteAgentPoolStore(tmp_path / f"wait-for-{seed}.sqlite")) as store:
            await store.open_pool(POOL, CONFIG)
            done: set[str] = set()

            async def task(t: int) -> None:
                for n in range(20):
                    key = 100 * t + n
                    try:
                        await asyncio.wait_for(
                            store.record_message(POOL, writer_message(key), writer_receipt(key)),
                            rng.uniform(0.00005, 0.003),
                        )
                        done.add(writer_message(key).idempotency_key)
                    except asyncio.TimeoutError:
                        pass

            await asyncio.wait_for(asyncio.gather(*(task(t) for t in range(8))), 60)
            snapshot = await asyncio.wait_for(store.snapshot(POOL), 10)
            return done, snapshot

    done, snapshot = asyncio.run(main())
    stored = {stored.message.idempotency_key for stored in snapshot.messages}
    assert done <= stored


def test_delete_pool_as_a_coroutine(kind: str, tmp_path: Path) -> None:
    async def main() -> tuple[Any, Any]:
        async with AsyncAgentPoolStore(make_store(kind, tmp_path / "pools.sqlite")) as store:
            await store.open_pool(POOL, CONFIG)
            removed = await store.delete_pool(POOL)
            return removed, await store.members(POOL)

    assert asyncio.run(main()) == ((1, 1, None), ())


def test_a_write_through_the_loop_door_raises_queued_and_never_returns_a_request(tmp_path: Path) -> None:
    """A write method called through a ``LoopDoor`` (as the wrapper calls it on the loop's thread)
    returns what its signature says or raises: queued for a group commit, it raises ``Queued``
    with the request; the door is asked to lead the group on a worker and is told the outcome."""
    from fastpool._base import LoopDoor, Queued, loop_call
    from fastpool._group_commit import LoopRequest

    class Door:
        def __init__(self) -> None:
            self.led: list[Callable[[], object]] = []
            self.done_with: list[Any] = []

        def future(self) -> None:
            return None

        def done(self, request: Any) -> None:
            self.done_with.append(request)

        def lead(self, run: Callable[[], object]) -> None:
            self.led.append(run)

    door: LoopDoor = Door()
    with SqliteAgentPoolStore(tmp_path / "door.sqlite") as store:
        store.open_pool(POOL, CONFIG)
        loop_call.door = door
        try:
            with pytest.raises(Queued) as caught:
                store.record_message(POOL, writer_message(0), writer_receipt(0))
        finally:
            loop_call.door = None
        request = caught.value.request
        assert type(request) is LoopRequest
        assert isinstance(door, Door) and len(door.led) == 1 and not door.done_with
        door.led[0]()  # the worker's lead: the group commits
        assert door.done_with == [request] and request.error is None
        assert request.shape(*request.result).sequence == 2 == store.snapshot(POOL).cursor.sequence


def test_the_conditional_writes_as_coroutines(tmp_path: Path) -> None:
    """``record_pool_created_once`` and ``expected=``, as the sync store has them."""
    from fastpool import MessageReceipt, MessageStatus

    async def main() -> None:
        async with AsyncAgentPoolStore(SqliteAgentPoolStore(tmp_path / "once.sqlite")) as store:
            await store.open_pool(POOL, CONFIG)
            created = await store.record_pool_created_once(POOL)
            assert created is not None and created.sequence == 2
            assert await store.record_pool_created_once(POOL) is None
            message, accepted = writer_message(0), writer_receipt(0)
            assert (await store.record_message_once(POOL, message, accepted))[1] is not None
            delivered = MessageReceipt(message_id=message.message_id, status=MessageStatus.DELIVERED)
            moved = await store.record_message_once(POOL, message, delivered, expected=accepted)
            assert moved[0] == delivered and moved[1] is not None
            again = await store.record_message_once(POOL, message, delivered, expected=accepted)
            assert again == (delivered, None)  # no longer the one in effect: nothing appended

    asyncio.run(main())

"""``open_runtime``: the durable host runtime (store, run journal, archive bus on one database).

Across hosts (runtime objects, processes) on one file or schema: one bus, unique journal
sequences; on SQLite one commit per call (kill -9 during sends, then a retry: one accepted and
one delivered per message in store, journal and archive); wake matching by index lookups;
``wait_wake`` woken by another host's transition.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fastpool import (
    WAKE_ON_DELIVERY,
    WAKE_ON_NEW_EVENTS,
    AgentError,
    AgentPool,
    AgentPoolMember,
    AgentRuntime,
    ArchiveEventBus,
    DatabaseRuntime,
    EventFilter,
    EventKind,
    InMemoryAgentEventBus,
    InMemoryAgentPoolStore,
    MessageRecorded,
    RetryClassification,
    RunAddress,
    RunMessage,
    WakeCondition,
    WakeRegistrationStatus,
    open_runtime,
)
from fastpool.aio import AsyncAgentPool

SENDS = 300
# A host that sends SENDS messages, each key once; it prints "ready" after joining, then waits
# for a line on stdin (the watcher is open by then: it cannot miss the sends however fast).
SENDER = """
import sys
from fastpool import AgentPool, AgentPoolMember, RunAddress, RunMessage, open_runtime
runtime = open_runtime(sys.argv[1], **dict(arg.split("=", 1) for arg in sys.argv[3:]))
pool = AgentPool("pool.k", runtime=runtime)
pool.join_run(AgentPoolMember(run_id="run.a", agent_id="agent.a"))
pool.join_run(AgentPoolMember(run_id="run.b", agent_id="agent.b"))
print("ready", flush=True)
sys.stdin.readline()
for n in range(int(sys.argv[2])):
    pool.send(RunMessage(message_id=f"m.{n}", from_="run.a", to=RunAddress.run("run.b"),
                         content_ref=f"c.{n}", idempotency_key=f"k.{n}"))
"""


def message(n: int) -> RunMessage:
    return RunMessage(
        message_id=f"m.{n}", from_="run.a", to=RunAddress.run("run.b"), content_ref=f"c.{n}", idempotency_key=f"k.{n}"
    )


def joined(runtime: AgentRuntime, pool_id: str = "pool.a") -> AgentPool:
    pool = AgentPool(pool_id, runtime=runtime)
    for name in ("a", "b"):
        pool.join_run(AgentPoolMember(run_id=f"run.{name}", agent_id=f"agent.{name}"))
    return pool


def wake_on(condition_id: str, kind: EventKind, run_id: str = "run.b") -> WakeCondition:
    return WakeCondition(
        condition_id=condition_id,
        run_id=run_id,
        filter=EventFilter(kinds=(kind,)),
        idempotency_key=f"key.{condition_id}",
    )


def open_target(target: tuple[str, dict[str, str]], engine: Any) -> AgentRuntime:
    location, options = target
    return open_runtime(location, engine=engine, **options)


def test_memory_target_gives_in_memory_ports() -> None:
    with open_runtime("memory:") as runtime:
        assert type(runtime) is AgentRuntime
        assert isinstance(runtime.store, InMemoryAgentPoolStore)
        assert isinstance(runtime.event_bus, InMemoryAgentEventBus)
        assert joined(runtime).store is runtime.store


def test_closing_the_runtime_closes_its_store_journal_and_bus(engine: Any, target: tuple[str, dict[str, str]]) -> None:
    with open_target(target, engine) as runtime:
        pool = joined(runtime)
    for call in (
        lambda: pool.members(),
        lambda: runtime.journal.records_for_run("run.a"),  # type: ignore[union-attr]
        lambda: runtime.event_bus.frames,  # type: ignore[union-attr]
    ):
        with pytest.raises(AgentError):
            call()


def test_two_hosts_share_one_bus_and_unique_journal_sequences(engine: Any, target: tuple[str, dict[str, str]]) -> None:
    with open_target(target, engine) as first, open_target(target, engine) as second:
        assert isinstance(first, DatabaseRuntime) and isinstance(first.event_bus, ArchiveEventBus)
        pool_a = joined(first)
        pool_b = AgentPool("pool.a", runtime=second)
        assert pool_b.store is second.store
        receipt_a = pool_a.send(message(1))
        receipt_b = pool_b.send(message(2))
        assert receipt_a.journal_cursor != receipt_b.journal_cursor
        # A wake registered on the second host is triggered by the first host's event.
        registration = pool_b.suspend_until("run.b", wake_on("w.1", EventKind.RUN_MESSAGE_DELIVERED))
        assert registration.status is WakeRegistrationStatus.TRIGGERED
        frames = first.event_bus.frames  # type: ignore[union-attr]
        assert [frame.event.envelope.event_seq for frame in frames] == list(range(1, len(frames) + 1))
        assert frames == second.event_bus.frames  # type: ignore[union-attr]
        records = first.journal.records_for_run("run.a") + first.journal.records_for_run("run.b")  # type: ignore[union-attr]
        sequences = [record.journal_seq for record in records]
        assert len(set(sequences)) == len(sequences)
        assert len({record.record_id for record in records}) == len(records)


def test_wake_matching_looks_up_the_index(engine: Any, tmp_path: Path) -> None:
    """After many archived events, registering a wake with no match reads no frame."""
    with open_runtime(tmp_path / "host.sqlite", engine=engine) as runtime:
        pool = joined(runtime)
        for n in range(300):
            pool.send(message(n))
        bus = runtime.event_bus
        assert isinstance(bus, ArchiveEventBus)
        read: list[int] = []
        rows = bus._db.rows
        bus._db.rows = lambda sql, params=(): read.append(len(found := rows(sql, params))) or found  # type: ignore[method-assign]
        registration = pool.suspend_until("run.b", wake_on("w.none", EventKind.RUN_COMPLETED))
        assert registration.status is WakeRegistrationStatus.REGISTERED
        assert pool.poll_wake("w.none").status is WakeRegistrationStatus.REGISTERED
        assert read == [1, 0, 0]  # the registration's journal sequence; two lookups that read no frame
        read.clear()
        assert pool.suspend_until("run.b", wake_on("w.any", EventKind.RUN_MESSAGE_DELIVERED)).status is (
            WakeRegistrationStatus.TRIGGERED
        )
        assert max(read) <= 256  # one batch of candidates, not the archive


def test_wait_wake_returns_when_another_host_triggers_it(engine: Any, target: tuple[str, dict[str, str]]) -> None:
    with open_target(target, engine) as first, open_target(target, engine) as second:
        pool_a = joined(first)
        pool_b = AgentPool("pool.a", runtime=second)
        pool_b.suspend_until("run.b", wake_on("w.1", EventKind.RUN_MESSAGE_DELIVERED))
        assert pool_b.wait_wake("w.1", timeout=0).status is WakeRegistrationStatus.REGISTERED
        sender = threading.Thread(target=lambda: (time.sleep(0.2), pool_a.send(message(1))))
        sender.start()
        try:
            woken = pool_b.wait_wake("w.1", timeout=60)
        finally:
            sender.join()
        assert woken.status is WakeRegistrationStatus.TRIGGERED
        assert woken == pool_a.poll_wake("w.1")


def test_wait_wake_of_an_unknown_wake_raises(tmp_path: Path) -> None:
    with open_runtime(tmp_path / "host.sqlite") as runtime:
        with pytest.raises(AgentError, match="wake condition is not registered"):
            joined(runtime).wait_wake("w.missing", timeout=0)


def test_a_failed_call_leaves_nothing_and_the_pool_goes_on(engine: Any, target: tuple[str, dict[str, str]]) -> None:
    """A failure inside a send rolls back its store records, journal records and frames (one
    transaction per call on both backends)."""
    with open_target(target, engine) as runtime:
        pool = joined(runtime)
        bus = runtime.event_bus
        assert isinstance(bus, ArchiveEventBus)
        journal = runtime.journal
        before = (len(bus.frames), len(journal.records_for_run("run.a")), pool.snapshot().cursor)  # type: ignore[union-attr]
        publish = bus.publish
        calls = Counter[str]()

        def failing(frame: Any) -> None:
            calls["publish"] += 1
            if calls["publish"] == 2:  # the delivered transition, after accepted was written
                raise KeyboardInterrupt
            publish(frame)

        bus.publish = failing  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            pool.send(message(1))
        bus.publish = publish  # type: ignore[method-assign]
        assert (len(bus.frames), len(journal.records_for_run("run.a")), pool.snapshot().cursor) == before  # type: ignore[union-attr]
        assert pool.send(message(1)).status.value == "delivered"


def test_kill_during_sends_then_retry_leaves_each_send_whole(engine: Any, target: tuple[str, dict[str, str]]) -> None:
    path, options = target
    env = {**os.environ, "FASTPOOL_NO_EXTENSIONS": "1" if engine.__name__.endswith("_py") else ""}
    arguments = [f"{name}={value}" for name, value in options.items()]
    child = subprocess.Popen(
        [sys.executable, "-c", SENDER, str(path), str(SENDS), *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline().strip() == b"ready"
        with open_target(target, engine) as watcher:
            list(watcher.store.watch("pool.k"))  # type: ignore[union-attr]  # the watcher's cold work done before the sends start
            child.stdin.write(b"go\n")
            child.stdin.flush()
            while len(list(watcher.store.watch("pool.k"))) < 60 and child.poll() is None:  # type: ignore[union-attr]
                time.sleep(0.001)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdin.close()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL  # killed while sending, not after
    with open_target(target, engine) as runtime:
        pool = AgentPool("pool.k", runtime=runtime)
        for n in range(SENDS):
            assert pool.send(message(n)).status.value == "delivered"
        assert _message_counts(runtime, "pool.k") == (_both(range(SENDS)),) * 3


def test_async_wait_wake_holds_no_thread_per_waiter(engine: Any, target: tuple[str, dict[str, str]]) -> None:
    """Twenty waiters on one wrapper, woken by another host's send; the threads are the wrapper's workers."""
    with open_target(target, engine) as first, open_target(target, engine) as second:
        pool_a = joined(first)
        pool_b = AgentPool("pool.a", runtime=second)
        conditions = [f"w.{n}" for n in range(20)]
        for condition_id in conditions:
            pool_b.suspend_until("run.b", wake_on(condition_id, EventKind.RUN_MESSAGE_DELIVERED))

        async def main() -> list[Any]:
            async with AsyncAgentPool(pool_b) as waiting:
                assert (await waiting.wait_wake("w.0", timeout=0)).status is WakeRegistrationStatus.REGISTERED
                before = threading.active_count()
                waits = [asyncio.ensure_future(waiting.wait_wake(c, timeout=60)) for c in conditions]
                await asyncio.sleep(0.2)
                threads = threading.active_count() - before
                await asyncio.get_running_loop().run_in_executor(None, pool_a.send, message(1))
                woken = await asyncio.gather(*waits)
                assert threads <= 2  # the wrapper's two workers at most, however many waiters
                return woken

        woken = asyncio.run(main())
        assert {registration.status for registration in woken} == {WakeRegistrationStatus.TRIGGERED}
        assert [registration.condition_id for registration in woken] == conditions


def _message_counts(runtime: AgentRuntime, pool_id: str = "pool.a") -> tuple[Counter[Any], Counter[Any], Counter[Any]]:
    """(message id, status) counts in the store, the journal and the archive."""
    store = Counter(
        (record.payload.stored.receipt.message_id, record.payload.stored.receipt.status.value)
        for record in runtime.store.watch(pool_id)  # type: ignore[union-attr]
        if type(record.payload) is MessageRecorded
    )
    journal = Counter(
        (record.payload.message_id, record.payload.delivery_status.value)
        for record in runtime.journal.records_for_run("run.a")  # type: ignore[union-attr]
        if record.record_kind.value == "run_message"
    )
    archive = Counter(
        (frame.event.envelope.message_id, frame.event.envelope.event_kind.value.removeprefix("run_message_"))
        for frame in runtime.event_bus.frames  # type: ignore[union-attr]
        if frame.event.envelope.message_id is not None
    )
    return store, journal, archive


def _both(numbers: range) -> Counter[Any]:
    return Counter({(f"m.{n}", status): 1 for n in numbers for status in ("accepted", "delivered")})


def test_async_sends_from_many_tasks_share_commits_and_each_lands_once(
    engine: Any, target: tuple[str, dict[str, str]]
) -> None:
    """On open_runtime(file) the writing calls of concurrent tasks run in groups: fewer commits
    than sends, and each send whole (one accepted, one delivered) in store, journal and archive."""
    with open_target(target, engine) as runtime:
        pool = joined(runtime)
        commits = Counter[str]()
        transaction = runtime.store.transaction  # type: ignore[union-attr]

        def counted() -> Any:
            commits["commit"] += 1
            return transaction()

        runtime.store.transaction = counted  # type: ignore[union-attr]

        async def main() -> list[Any]:
            async with AsyncAgentPool(pool) as tasks_pool:
                return await asyncio.gather(*(tasks_pool.send(message(n)) for n in range(200)))

        receipts = asyncio.run(main())
        del runtime.store.transaction  # type: ignore[union-attr]
        assert {(r.status.value, r.delivered_to) for r in receipts} == {("delivered", ("run.b",))}
        assert len({r.journal_cursor for r in receipts}) == 200
        assert commits["commit"] < 100
        assert _message_counts(runtime) == (_both(range(200)),) * 3
        assert pool.send(message(7)) == receipts[7]  # the key was recorded


def test_an_async_call_that_fails_in_a_group_undoes_only_its_own_writes(
    engine: Any, target: tuple[str, dict[str, str]]
) -> None:
    """A send failing after its accepted transition was written leaves nothing of itself; the
    calls grouped with it commit, and a retry completes it."""
    with open_target(target, engine) as runtime:
        pool = joined(runtime)
        bus = runtime.event_bus
        assert isinstance(bus, ArchiveEventBus)
        publish = bus.publish

        def failing(frame: Any) -> None:
            envelope = frame.event.envelope
            if envelope.message_id == "m.7" and envelope.event_kind is EventKind.RUN_MESSAGE_DELIVERED:
                raise RuntimeError("the bus broke on m.7")
            publish(frame)

        bus.publish = failing  # type: ignore[method-assign]

        async def main() -> list[Any]:
            async with AsyncAgentPool(pool) as tasks_pool:
                return await asyncio.gather(*(tasks_pool.send(message(n)) for n in range(20)), return_exceptions=True)

        outcomes = asyncio.run(main())
        bus.publish = publish  # type: ignore[method-assign]
        assert isinstance(outcomes[7], RuntimeError)
        assert all(outcome.status.value == "delivered" for n, outcome in enumerate(outcomes) if n != 7)
        assert _message_counts(runtime) == (_both(range(20)) - _both(range(7, 8)),) * 3
        assert pool.send(message(7)).status.value == "delivered"
        assert _message_counts(runtime) == (_both(range(20)),) * 3


def test_async_calls_on_a_locked_file_fail_retryable_and_store_nothing(engine: Any, tmp_path: Path) -> None:
    """Another process holds the write lock past busy_timeout: every call of the group fails
    RETRYABLE, nothing is stored, and the calls succeed once the lock is free."""
    import apsw

    path = tmp_path / "host.sqlite"
    with open_runtime(path, engine=engine, busy_timeout=0.2) as runtime:
        pool = joined(runtime)
        before = _message_counts(runtime)
        other = apsw.Connection(str(path))
        other.execute("BEGIN IMMEDIATE")

        async def main() -> list[Any]:
            async with AsyncAgentPool(pool) as tasks_pool:
                return await asyncio.gather(*(tasks_pool.send(message(n)) for n in range(10)), return_exceptions=True)

        try:
            outcomes = asyncio.run(main())
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert all(isinstance(outcome, AgentError) for outcome in outcomes), outcomes
        assert {outcome.retry for outcome in outcomes} == {RetryClassification.RETRYABLE}  # type: ignore[union-attr]
        assert _message_counts(runtime) == before
        outcomes = asyncio.run(main())
        assert _message_counts(runtime) == (_both(range(10)),) * 3


def test_a_cancelled_async_send_still_lands_and_later_calls_see_it(
    engine: Any, target: tuple[str, dict[str, str]]
) -> None:
    with open_target(target, engine) as runtime:
        pool = joined(runtime)

        async def main() -> Any:
            async with AsyncAgentPool(pool) as tasks_pool:
                sending = asyncio.ensure_future(tasks_pool.send(message(1)))
                await asyncio.sleep(0)
                sending.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await sending
                return await tasks_pool.snapshot()

        snapshot = asyncio.run(main())
        assert [stored.receipt.status.value for stored in snapshot.messages] == ["delivered"]
        assert _message_counts(runtime) == (_both(range(1, 2)),) * 3


@pytest.fixture(params=["memory", "file"])
def any_runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with open_runtime("memory:" if request.param == "memory" else tmp_path / "host.sqlite") as runtime:
        yield runtime


def test_send_with_outcome_tells_a_deduplicated_send(any_runtime: AgentRuntime) -> None:
    pool = joined(any_runtime)
    receipt, recorded = pool.send_with_outcome(message(1))
    assert recorded and receipt.status.value == "delivered"
    cursor = pool.snapshot().cursor
    assert pool.send_with_outcome(message(1)) == (receipt, False)
    assert pool.send(message(1)) == receipt
    assert pool.snapshot().cursor == cursor  # nothing written by either


def _wake(condition_id: str, run_ids: Any, *options: Any) -> WakeCondition:
    return WakeCondition(
        condition_id=condition_id,
        run_id="run.b",
        filter=EventFilter(run_ids=run_ids, kinds=(EventKind.RUN_MESSAGE_DELIVERED,)),
        idempotency_key=f"key.{condition_id}",
        policy_refs=options,
    )


def test_a_delivery_wake_matches_the_recipient_not_the_sender(any_runtime: AgentRuntime) -> None:
    pool = joined(any_runtime)
    registered = WakeRegistrationStatus.REGISTERED
    assert pool.suspend_until("run.b", _wake("w.rust", ("run.b",))).status is registered
    assert pool.suspend_until("run.b", _wake("w.to_b", ("run.b",), WAKE_ON_DELIVERY)).status is registered
    reply = RunMessage(
        message_id="m.r", from_="run.b", to=RunAddress.run("run.a"), content_ref="c.r", idempotency_key="k.r"
    )
    pool.send(reply)  # from run.b: Rust's rule matches the sender, the delivery wake waits for run.b's mail
    assert pool.poll_wake("w.rust").status is WakeRegistrationStatus.TRIGGERED
    assert pool.poll_wake("w.to_b").status is registered
    pool.send(message(1))  # run.a to run.b
    woken = pool.poll_wake("w.to_b")
    assert woken.status is WakeRegistrationStatus.TRIGGERED
    # Registered after the delivery, a delivery wake finds it in the history.
    late = pool.suspend_until("run.b", _wake("w.late", ("run.b",), WAKE_ON_DELIVERY))
    assert late.status is WakeRegistrationStatus.TRIGGERED


def test_a_new_events_wake_ignores_the_history(any_runtime: AgentRuntime) -> None:
    """Sleep until my next message: earlier deliveries do not trigger it, the next one does."""
    pool = joined(any_runtime)
    pool.send(message(1))
    anything = EventFilter(kinds=(EventKind.RUN_MESSAGE_DELIVERED,))
    old = WakeCondition(condition_id="w.old", run_id="run.b", filter=anything, idempotency_key="key.old")
    assert pool.suspend_until("run.b", old).status is WakeRegistrationStatus.TRIGGERED  # Rust's rule: the history
    options = (WAKE_ON_NEW_EVENTS, WAKE_ON_DELIVERY)
    condition = _wake("w.next", ("run.b",), *options)
    assert pool.suspend_until("run.b", condition).status is WakeRegistrationStatus.REGISTERED
    assert pool.poll_wake("w.next").status is WakeRegistrationStatus.REGISTERED
    pool.send(message(2))
    assert pool.poll_wake("w.next").status is WakeRegistrationStatus.TRIGGERED
    stored = pool.store.wake("pool.a", "w.next")
    assert stored is not None and stored.condition.policy_refs == options  # Rust's record shape, the refs kept


def test_async_wait_wake_stops_watching_once_nobody_waits(engine: Any, target: tuple[str, dict[str, str]]) -> None:
    """A wait that times out returns the registration, and the wrapper's watcher then ends (no
    task left looking at the store)."""
    with open_target(target, engine) as runtime:
        pool = joined(runtime)
        pool.suspend_until("run.b", wake_on("w.1", EventKind.RUN_COMPLETED))

        async def main() -> tuple[Any, Any]:
            async with AsyncAgentPool(pool) as waiting:
                registration = await waiting.wait_wake("w.1", timeout=0.05)
                for _ in range(300):  # the watcher notices within its next look (PostgreSQL: a second)
                    if waiting._waiters._task is None:
                        break
                    await asyncio.sleep(0.01)
                return registration, waiting._waiters._task

        registration, task = asyncio.run(main())
        assert registration.status is WakeRegistrationStatus.REGISTERED and task is None


def test_postgres_frames_numbered_ahead_are_never_numbered_twice(engine: Any, pg: Any) -> None:
    """On PostgreSQL a runtime transaction learns the archive's next ``seq`` with its journal
    sequence (one round trip less a transition): frames must still get distinct, consecutive
    numbers, however many a transaction adds and whatever another host adds between two."""
    target = (pg.conninfo, {"schema": pg.schema})
    with open_target(target, engine) as runtime, open_target(target, engine) as other:
        assert isinstance(runtime, DatabaseRuntime) and isinstance(other, DatabaseRuntime)
        joined(runtime).send(message(1))
        bus = runtime.event_bus
        assert isinstance(bus, ArchiveEventBus)
        frames = bus.archive.frames_after(None)
        frame = frames[0]
        with runtime.transaction():
            runtime.next_journal_seq()
            bus.publish(frame)  # the number learned with the journal sequence...
            bus.publish(frame)  # ...then one asked for
        with pytest.raises(RuntimeError), runtime.transaction():
            runtime.next_journal_seq()
            raise RuntimeError("rolled back, the number learned with it forgotten")
        other.event_bus.publish(frame)  # another host takes the next number meanwhile
        with runtime.transaction():
            bus.publish(frame)
        seqs = [row[0] for row in pg.query("SELECT seq FROM event_archive_frames ORDER BY seq")]
        assert seqs == list(range(1, len(frames) + 5))

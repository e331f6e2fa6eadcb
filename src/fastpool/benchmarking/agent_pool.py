"""``AgentPool.send`` (accepted + delivered) per second, sync and async, beside store-only send loops.

Shared by ``fastpool bench`` (the ``AP`` rows) and ``benches/agent_pool_send.py``. Every round
runs each loop in turn on a fresh copy of one file (a pool with two members and ``size``
earlier messages), with its messages built before the clock starts; a loop sends each message
once, from ``run.a`` to ``run.b``, over a ``SqliteAgentPoolStore`` (``synchronous=normal``). The
figures are medians over the rounds of sends per second, by the wall clock and by this
process's CPU time (steadier on a shared machine).

* ``store: accepted + delivered``: what a host writes with the store alone:
  ``record_message_once`` (accepted) then ``record_message`` (delivered);
* ``store: AgentPool.send's calls``: the store calls ``send`` makes, and nothing else: the
  dedupe lookup, three membership lookups, and per transition an event sequence (a write
  transaction of its own, as in Rust) and the record;
* ``AgentPool.send``: the coordinator, which also builds and appends two journal records and
  publishes two events (in-memory journal and bus) and matches the registered wakes (none);
* ``AgentPool.send, open_runtime(file)``: the coordinator on the durable runtime of the same
  file (journal rows and archived frames beside the pool's records), one commit per send;
* ``raw SQL: a durable send's statements``: the statements that send runs, through APSW in one
  transaction, their JSON made before the clock starts (the file's own cost: a bound for
  the durable send);
* ``AsyncAgentPool.send, 50 tasks``: the in-memory runtime's coordinator from 50 tasks (a
  thread hop per call);
* ``AsyncAgentPool.send, open_runtime(file)``: the durable runtime's, awaited one after
  another, and from 50 tasks at once (the calls that arrive together share one commit).
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .. import _sql as _store_sql
from .. import wire
from .._compat import engine
from ..aio_pool import AsyncAgentPool
from ..coordinator import AgentPool, AgentRuntime
from ..enums import MessageStatus
from ..events import InMemoryAgentEventBus
from ..journal import InMemoryRunJournal
from ..memory import InMemoryAgentPoolStore
from ..model import AgentPoolMember, MessageReceipt, RunAddress, RunMessage
from ..runtime import DatabaseRuntime
from ..sqlite import SqliteAgentPoolStore
from ..surfaces import _sql as _surface_sql

POOL = "pool.send"
DURABLE = "AgentPool.send, open_runtime(file)"
RAW_DURABLE = "raw SQL: a durable send's statements"
TASKS = 50
DURABLE_AWAITED = "AsyncAgentPool.send, open_runtime(file), awaited in turn"
DURABLE_TASKS = f"AsyncAgentPool.send, open_runtime(file), {TASKS} tasks"


def message(n: int) -> RunMessage:
    return RunMessage(
        message_id=f"msg.{n:07d}",
        from_="run.a",
        to=RunAddress.run("run.b"),
        content_ref=f"content.{n:07d}",
        idempotency_key=f"idem.{n:07d}",
    )


def runtime() -> AgentRuntime:
    return AgentRuntime(journal=InMemoryRunJournal(), event_bus=InMemoryAgentEventBus())


def template(folder: Path, size: int) -> Path:
    """A file holding the pool: two members and ``size`` messages sent through ``AgentPool``."""
    path = folder / "template.sqlite"
    with SqliteAgentPoolStore(path) as store:
        pool = AgentPool(POOL, runtime=runtime(), store=store)
        for run_id in ("run.a", "run.b"):
            pool.join_run(AgentPoolMember(run_id=run_id, agent_id=f"agent.{run_id}"))
        for n in range(size):
            pool.send(message(10_000_000 - 1 - n))
    return path


def store_alone(store: SqliteAgentPoolStore, messages: list[RunMessage]) -> None:
    for sent in messages:
        accepted = MessageReceipt(message_id=sent.message_id, status=MessageStatus.ACCEPTED, delivered_to=("run.b",))
        store.record_message_once(POOL, sent, accepted)
        store.record_message(POOL, sent, accepted.replace(status=MessageStatus.DELIVERED))


def raw_durable_send(store: SqliteAgentPoolStore, messages: list[RunMessage]) -> None:
    """The statements a durable send runs, through APSW in one transaction, their JSON made
    before the clock starts: what the file costs, with no Python of fastpool's in between."""
    records, frames, payloads = _durable_texts()
    db = store._connection()
    DatabaseRuntime.on_store(store)  # the runtime's tables
    journal_seq, frame_seq = (
        int(db.execute(sql).fetchall()[0][0])  # type: ignore[arg-type]  # a COALESCE(MAX ...): an int
        for sql in (_surface_sql.JOURNAL_NEXT_SEQ, _surface_sql.ARCHIVE_NEXT)
    )
    sequence = store.snapshot(POOL).cursor.sequence  # type: ignore[union-attr]
    store._forget_cached()  # written behind the store's back
    for sent in messages:
        db.execute("BEGIN IMMEDIATE")
        for record, frame, (kind, payload) in zip(records, frames, payloads):
            db.execute(_store_sql.NEXT_EVENT, (POOL,)).fetchall()
            db.execute(_surface_sql.JOURNAL_NEXT_SEQ).fetchall()
            record_id = f"journal.record.agent_pool.{journal_seq}"
            db.execute(_surface_sql.JOURNAL_CHECK, ("run.a", record_id)).fetchall()
            db.execute(_surface_sql.JOURNAL_INSERT, ("run.a", journal_seq, record_id, record))
            db.execute(_surface_sql.ARCHIVE_NEXT).fetchall()
            db.execute(_surface_sql.ARCHIVE_INSERT, (frame_seq, f"event.{sent.message_id}.{frame_seq}", frame))
            db.execute(_surface_sql.EVENT_INDEX_INSERT, (frame_seq, "run.a", kind))
            sequence += 1
            db.execute(_store_sql.INSERT, (POOL, sequence, "run_message", payload))
            journal_seq, frame_seq = journal_seq + 1, frame_seq + 1
        db.execute("COMMIT")


def _durable_texts() -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """The journal records, frames and store payloads (JSON) of one send, by an in-memory host."""
    journal, bus, memory = InMemoryRunJournal(), InMemoryAgentEventBus(), InMemoryAgentPoolStore()
    pool = AgentPool(POOL, runtime=AgentRuntime(journal=journal, event_bus=bus), store=memory)
    for run_id in ("run.a", "run.b"):
        pool.join_run(AgentPoolMember(run_id=run_id, agent_id=f"agent.{run_id}"))
    pool.send(message(9_999_999))
    records = [wire.encode(record) for _, record in journal.entries[-2:]]
    frames = [wire.encode(frame) for frame in bus.frames[-2:]]
    last = list(memory.watch(POOL))[-2:]
    payloads = [(f.event.envelope.event_kind.value, engine.dumps(r.payload)) for f, r in zip(bus.frames[-2:], last)]
    return records, frames, payloads


def store_calls_of_send(store: SqliteAgentPoolStore, messages: list[RunMessage]) -> None:
    for sent in messages:
        store.message_receipt(POOL, sent.idempotency_key)
        store.member(POOL, "run.a")
        store.member(POOL, "run.b")
        accepted = MessageReceipt(message_id=sent.message_id, status=MessageStatus.ACCEPTED, delivered_to=("run.b",))
        store.member(POOL, "run.a")
        store.next_event_sequence(POOL)
        store.record_message_once(POOL, sent, accepted)
        store.member(POOL, "run.a")
        store.next_event_sequence(POOL)
        store.record_message(POOL, sent, accepted.replace(status=MessageStatus.DELIVERED))


def coordinator(store: SqliteAgentPoolStore, messages: list[RunMessage]) -> None:
    send = AgentPool(POOL, runtime=runtime(), store=store).send
    for sent in messages:
        send(sent)


def coordinator_durable(store: SqliteAgentPoolStore, messages: list[RunMessage]) -> None:
    send = AgentPool(POOL, runtime=DatabaseRuntime.on_store(store)).send
    for sent in messages:
        send(sent)


def coordinator_awaited(store: SqliteAgentPoolStore, messages: list[RunMessage]) -> None:
    async def main() -> None:
        async with await AsyncAgentPool.open(POOL, runtime=DatabaseRuntime.on_store(store)) as pool:
            for sent in messages:
                await pool.send(sent)

    asyncio.run(main())


def coordinator_tasks(store: SqliteAgentPoolStore, messages: list[RunMessage], durable: bool = False) -> None:
    async def main() -> None:
        host = DatabaseRuntime.on_store(store) if durable else runtime()
        async with await AsyncAgentPool.open(POOL, runtime=host, store=store) as pool:

            async def task(share: list[RunMessage]) -> None:
                for sent in share:
                    await pool.send(sent)

            await asyncio.gather(*(task(messages[n::TASKS]) for n in range(TASKS)))

    asyncio.run(main())


def coordinator_tasks_durable(store: SqliteAgentPoolStore, messages: list[RunMessage]) -> None:
    coordinator_tasks(store, messages, durable=True)


LOOPS: dict[str, Callable[[SqliteAgentPoolStore, list[RunMessage]], None]] = {
    "store: accepted + delivered": store_alone,
    RAW_DURABLE: raw_durable_send,
    "store: AgentPool.send's calls": store_calls_of_send,
    "AgentPool.send": coordinator,
    DURABLE: coordinator_durable,
    f"AsyncAgentPool.send, {TASKS} tasks": coordinator_tasks,
    DURABLE_AWAITED: coordinator_awaited,
    DURABLE_TASKS: coordinator_tasks_durable,
}


def measure(sends: int, rounds: int, size: int) -> dict[str, tuple[float, float]]:
    """Per loop: the median sends per second by the wall clock and by CPU time."""
    wall: dict[str, list[float]] = {name: [] for name in LOOPS}
    cpu: dict[str, list[float]] = {name: [] for name in LOOPS}
    with tempfile.TemporaryDirectory() as folder:
        source = template(Path(folder), size)
        for round_number in range(rounds):
            for index, (name, loop) in enumerate(LOOPS.items()):
                path = Path(folder) / f"copy-{round_number}-{index}.sqlite"
                shutil.copyfile(source, path)
                messages = [message(n) for n in range(sends)]
                with SqliteAgentPoolStore(path) as store:
                    store.snapshot(POOL)  # warm: the cold replay is not what is measured
                    started, used = time.perf_counter(), time.process_time()
                    loop(store, messages)
                    elapsed, spent = time.perf_counter() - started, time.process_time() - used
                    check(store, sends, size)
                wall[name].append(sends / elapsed)
                cpu[name].append(sends / spent)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in LOOPS}


def check(store: SqliteAgentPoolStore, sends: int, size: int) -> None:
    """Every loop wrote the same thing: one accepted and one delivered record per message."""
    snapshot = store.snapshot(POOL)
    assert snapshot.cursor is not None and snapshot.cursor.sequence == 4 + 2 * (size + sends), snapshot.cursor
    assert all(stored.receipt.status is MessageStatus.DELIVERED for stored in snapshot.messages)


STORE_ALONE = "store: accepted + delivered"

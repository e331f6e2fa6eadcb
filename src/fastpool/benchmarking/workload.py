"""A realistic agent-pool workload: the model objects a host records, and pools filled with them.

The mix follows how the Rust ``AgentPool`` coordinator drives a store: the
pool is opened and marked created, runs join (with topics, some with a policy ref);
messages go run→run, to an agent, a topic or the whole pool, each recorded ``accepted``
then ``delivered``; runs suspend on wakes with a compiled filter, recorded ``registered``
then ``triggered``; after each cycle a new run joins, or (one cycle in three) one leaves. Per cycle of 19 records:
12 message records, 6 wake records, 1 membership change. Everything is a function of its
index, so a benchmark can name a key that exists (``message_key(i)``, ``wake_key(i)``).

>>> payloads, info = pool_payloads("pool.demo", 40)
>>> len(payloads), payloads[0].TYPE, payloads[1].TYPE, payloads[2].TYPE
(40, 'pool_opened', 'pool_created', 'member_joined')
>>> info.records, info.messages, info.wakes
(40, 12, 3)
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastpool import (
    AgentPoolMember,
    AgentPoolStoreConfig,
    AgentPoolStoredMessage,
    AgentPoolStoredWake,
    CompiledEventFilter,
    CorrelationEntry,
    EventCorrelation,
    EventFamily,
    EventFilter,
    EventKind,
    MemberJoined,
    MemberLeft,
    MessageReceipt,
    MessageRecorded,
    MessageResponseContract,
    MessageStatus,
    PolicyRef,
    PoolCreated,
    PoolOpened,
    RunAddress,
    RunMessage,
    WakeCondition,
    WakeRecorded,
    WakeRegistration,
    WakeRegistrationStatus,
    _sql,
    wire,
)

__all__ = [
    "CONFIG",
    "PoolInfo",
    "run_id",
    "message_key",
    "wake_key",
    "condition_id",
    "member",
    "message",
    "receipt",
    "compiled_filter",
    "wake_condition",
    "registration",
    "steps",
    "pool_payloads",
    "write_pool",
    "write_payloads",
    "fill_store",
]

POLICY = PolicyRef.new("policy.pool.default")
CONFIG = AgentPoolStoreConfig(policy_refs=(POLICY,))
TOPICS = ("topic.plan", "topic.review", "topic.build", "topic.alerts")
AGENTS = ("agent.planner", "agent.coder", "agent.reviewer", "agent.tester", "agent.ops")
FIRST_MEMBERS = 8


def run_id(i: int) -> str:
    return f"run.{i:06d}"


def message_key(i: int) -> str:
    """The idempotency key of message ``i``."""
    return f"idem.msg.{i:07d}"


def wake_key(i: int) -> str:
    """The idempotency key of wake ``i``."""
    return f"idem.wake.{i:07d}"


def condition_id(i: int) -> str:
    """The condition id of wake ``i``."""
    return f"wake.{i:07d}"


def member(i: int) -> AgentPoolMember:
    """Run ``i`` as a pool member: one of five agents, one or two topics, every third a policy ref."""
    return AgentPoolMember(
        run_id=run_id(i),
        agent_id=AGENTS[i % len(AGENTS)],
        policy_refs=(POLICY,) if i % 3 == 0 else (),
        topics=tuple(sorted({TOPICS[i % len(TOPICS)], TOPICS[(i * 7 + 1) % len(TOPICS)]})),
    )


def message(i: int, sender: int = 0, recipient: int = 1, pool_id: str = "pool.bench") -> RunMessage:
    """Message ``i`` from run ``sender``: 5 in 8 run→run, the rest to an agent, a topic, the pool."""
    shape = i % 8
    if shape < 5:
        to = RunAddress.run(run_id(recipient))
    elif shape == 5:
        to = RunAddress.agent(AGENTS[recipient % len(AGENTS)])
    elif shape == 6:
        to = RunAddress.topic(TOPICS[i % len(TOPICS)])
    else:
        to = RunAddress.pool(pool_id)
    return RunMessage(
        message_id=f"msg.{i:07d}",
        from_=run_id(sender),
        to=to,
        content_ref=f"content.blob.{i:07d}",
        correlation=EventCorrelation(entries=(CorrelationEntry(key="conversation", value=f"conv.{i // 16}"),)),
        reply_to=f"msg.{i - 1:07d}" if i % 4 == 1 else None,
        response_contract=MessageResponseContract.one_response(30_000) if i % 4 == 0 else None,
        idempotency_key=message_key(i),
        policy_refs=(POLICY,) if i % 3 == 0 else (),
    )


def receipt(
    msg: RunMessage,
    status: MessageStatus = MessageStatus.ACCEPTED,
    delivered_to: tuple[str, ...] = (),
    journal: int = 1,
) -> MessageReceipt:
    """The receipt of one status transition of ``msg``."""
    return MessageReceipt(
        message_id=msg.message_id, status=status, delivered_to=delivered_to, journal_cursor=f"journal.{journal}"
    )


@functools.lru_cache(maxsize=1024)
def compiled_filter(watched_run: str) -> CompiledEventFilter:
    """The envelope-only filter a run suspends on: terminal run events of another run (cached)."""
    return EventFilter(
        run_ids=(watched_run,),
        families=(EventFamily.RUN,),
        kinds=(EventKind.RUN_COMPLETED, EventKind.RUN_FAILED),
        terminal_only=True,
    ).compile()


def wake_condition(i: int, waiting: int = 0, watched: int = 1) -> WakeCondition:
    """Wake ``i``: run ``waiting`` resumes when run ``watched`` ends."""
    return WakeCondition(
        condition_id=condition_id(i),
        run_id=run_id(waiting),
        filter=compiled_filter(run_id(watched)).criteria,
        timeout_millis=60_000 if i % 2 else None,
        idempotency_key=wake_key(i),
    )


def registration(
    condition: WakeCondition, status: WakeRegistrationStatus = WakeRegistrationStatus.REGISTERED, journal: int = 1
) -> WakeRegistration:
    """The registration of one status transition of ``condition``."""
    return WakeRegistration(
        condition_id=condition.condition_id, run_id=condition.run_id, status=status, journal_cursor=f"journal.{journal}"
    )


def steps(pool_id: str) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """The workload as an endless stream of store calls ``(method, args)``, after ``open_pool``."""
    yield "record_pool_created", (pool_id,)
    active = list(range(FIRST_MEMBERS))
    for i in active:
        yield "join_member", (pool_id, member(i))
    next_run, msg, wake, journal, cycle = FIRST_MEMBERS, 0, 0, 1, 0
    while True:
        for _ in range(6):
            sender, recipient = active[msg % len(active)], active[(msg * 5 + 1) % len(active)]
            m = message(msg, sender, recipient, pool_id)
            for message_status in (MessageStatus.ACCEPTED, MessageStatus.DELIVERED):
                yield "record_message", (pool_id, m, receipt(m, message_status, (run_id(recipient),), journal))
                journal += 1
            msg += 1
        for _ in range(3):
            waiting, watched = active[wake % len(active)], active[(wake * 3 + 1) % len(active)]
            c = wake_condition(wake, waiting, watched)
            for wake_status in (WakeRegistrationStatus.REGISTERED, WakeRegistrationStatus.TRIGGERED):
                yield (
                    "record_wake",
                    (pool_id, c, compiled_filter(run_id(watched)), registration(c, wake_status, journal)),
                )
                journal += 1
            wake += 1
        if cycle % 3 == 2:
            yield "leave_member", (pool_id, run_id(active.pop(0)))
        else:
            active.append(next_run)
            yield "join_member", (pool_id, member(next_run))
            next_run += 1
        cycle += 1


@dataclass
class PoolInfo:
    """What a filled pool holds: counts, the current members and the next free indexes."""

    pool_id: str
    records: int = 0
    messages: int = 0  # messages 0 .. messages-1 exist (message_key(i), f"msg.{i:07d}")
    wakes: int = 0  # wakes 0 .. wakes-1 exist (wake_key(i), condition_id(i))
    members: dict[str, AgentPoolMember] = field(default_factory=dict)

    def observe(self, method: str, args: tuple[Any, ...]) -> Any:
        """Account for one step and return the record payload it appends."""
        self.records += 1
        if method == "join_member":
            self.members[args[1].run_id] = args[1]
            return MemberJoined(member=args[1])
        if method == "leave_member":
            return MemberLeft(member=self.members.pop(args[1]))
        if method == "record_message":
            self.messages = max(self.messages, int(args[1].message_id[4:]) + 1)
            return MessageRecorded(stored=AgentPoolStoredMessage(message=args[1], receipt=args[2]))
        if method == "record_wake":
            self.wakes = max(self.wakes, int(args[1].condition_id[5:]) + 1)
            stored = AgentPoolStoredWake(condition=args[1], compiled_filter=args[2], registration=args[3])
            return WakeRecorded(stored=stored)
        return PoolCreated()


def pool_payloads(pool_id: str, n: int) -> tuple[list[Any], PoolInfo]:
    """The first ``max(n, 2)`` record payloads of a pool (``pool_opened``, ``pool_created``, …)."""
    info = PoolInfo(pool_id, records=1)
    payloads: list[Any] = [PoolOpened(config=CONFIG)]
    stream = steps(pool_id)
    while len(payloads) < max(n, 2):
        payloads.append(info.observe(*next(stream)))
    return payloads, info


_SCHEMA = ("PRAGMA journal_mode = WAL", *_sql.RUST_TABLES)


def write_pool(path: str | os.PathLike[str], pool_id: str, n: int) -> PoolInfo:
    """Write a new pool of ``max(n, 2)`` records straight into a database file, in one transaction.

    The file gets the Rust crate's tables and nothing else, so every store (fastpool, the
    seed baseline, the Rust crate) opens it as is. Fast: no replay, no per-record commit.
    """
    payloads, info = pool_payloads(pool_id, n)
    write_payloads(path, pool_id, payloads)
    return info


def write_payloads(path: str | os.PathLike[str], pool_id: str, payloads: list[Any]) -> None:
    """Write ``payloads`` as a new pool's records 1, 2, … straight into a database file (see ``write_pool``)."""
    connection = sqlite3.connect(os.fspath(path), isolation_level=None)
    try:
        for statement in _SCHEMA:
            connection.execute(statement)
        connection.execute("BEGIN IMMEDIATE")
        if connection.execute("SELECT 1 FROM agent_pool_records WHERE pool_id = ? LIMIT 1", (pool_id,)).fetchone():
            raise ValueError(f"pool {pool_id!r} already has records in {path}")
        connection.executemany(
            _sql.INSERT,
            ((pool_id, seq, p.TYPE, wire.encode(p)) for seq, p in enumerate(payloads, 1)),
        )
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def fill_store(store: Any, pool_id: str, n: int) -> PoolInfo:
    """Open ``pool_id`` in ``store`` and drive the workload through its public API to ``max(n, 2)`` records."""
    store.open_pool(pool_id, CONFIG)
    info = PoolInfo(pool_id, records=1)
    stream = steps(pool_id)
    while info.records < max(n, 2):
        method, args = next(stream)
        info.observe(method, args)
        getattr(store, method)(*args)
    return info

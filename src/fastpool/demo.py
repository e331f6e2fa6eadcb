"""``fastpool demo``: a realistic agent-host workload on a store (a file, PostgreSQL, memory).

Agents join a pool, send each other run messages (Accepted → Delivered receipts,
deduplicated by idempotency key), register wake conditions that later messages
trigger, while a second store object on the same file (or schema) watches the records
arrive; an in-memory store is its own observer.
The message routing follows the Rust ``AgentPool`` coordinator (REFERENCE §9).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ._open import open_store
from .enums import EventFamily, EventKind, MessageStatus, WakeRegistrationStatus
from .memory import InMemoryAgentPoolStore
from .model import (
    AgentPoolMember,
    AgentPoolSnapshot,
    AgentPoolStoreConfig,
    AgentTarget,
    EventFilter,
    MessageReceipt,
    PolicyRef,
    PoolTarget,
    RunAddress,
    RunMessage,
    RunTarget,
    TopicTarget,
    WakeCondition,
    WakeRegistration,
)

POOL = "pool.demo"
AGENTS = ("agent.planner", "agent.worker", "agent.critic")
TOPICS = ("topic.plans", "topic.reviews", "topic.results")


def recipients(snapshot: AgentPoolSnapshot, message: RunMessage) -> tuple[str, ...]:
    """The runs a message reaches, as the Rust coordinator resolves them."""
    members = {member.run_id: member for member in snapshot.members}
    if message.from_ not in members:
        return ()
    if not all(ref in message.policy_refs for ref in snapshot.message_policy.required_policy_refs):
        return ()
    target = message.to.target
    if isinstance(target, RunTarget):
        found = [members[target.run_id]] if target.run_id in members else []
    elif isinstance(target, AgentTarget):
        found = [m for m in snapshot.members if m.agent_id == target.agent_id]
    elif isinstance(target, TopicTarget):
        found = [m for m in snapshot.members if target.topic_id in m.topics]
    else:
        found = list(snapshot.members) if target.pool_id == snapshot.pool_id else []
    found = [m for m in found if all(ref in m.policy_refs for ref in message.policy_refs)]
    if isinstance(target, PoolTarget) and not snapshot.message_policy.include_sender_in_pool_broadcast:
        found = [m for m in found if m.run_id != message.from_]
    return tuple(sorted({m.run_id for m in found}))


def run(
    target: str | os.PathLike[str],
    *,
    agents: int = 12,
    messages: int = 600,
    seed: int = 7,
    out: Callable[[str], None] = print,
    **options: Any,
) -> dict[str, float]:
    """Run the workload against the store ``open_store(target, **options)`` opens; return the
    figures it printed."""
    rng = random.Random(seed)
    policy = PolicyRef.new("policy.demo")
    host = open_store(target, **options)
    # A second store object: another host on the same file (a new in-memory store would be empty).
    observer = host if isinstance(host, InMemoryAgentPoolStore) else open_store(target, **options)
    try:
        started = time.perf_counter()
        operations = 0
        host.open_pool(POOL, AgentPoolStoreConfig(policy_refs=(policy,)))
        if not host.snapshot(POOL).created:
            host.record_pool_created(POOL)
        runs = [f"run.{index:03d}" for index in range(agents)]
        for index, run_id in enumerate(runs):
            member = AgentPoolMember(
                run_id=run_id,
                agent_id=AGENTS[index % len(AGENTS)],
                policy_refs=(policy,),
                topics=(TOPICS[index % len(TOPICS)],),
            )
            host.join_member(POOL, member)
            operations += 1
        out(f"{agents} agents joined {POOL} ({len(host.snapshot(POOL).topics)} topics)")

        # Every fourth run waits for a message to be delivered to it.
        waiting = {}
        for run_id in runs[::4]:
            condition = WakeCondition(
                condition_id=f"wake.{run_id}",
                run_id=run_id,
                filter=EventFilter(
                    run_ids=(run_id,), families=(EventFamily.AGENT_POOL,), kinds=(EventKind.RUN_MESSAGE_DELIVERED,)
                ),
                idempotency_key=f"idem.wake.{run_id}",
            )
            if host.wake_registration(POOL, condition.idempotency_key) is None:
                registration = WakeRegistration(
                    condition_id=condition.condition_id, run_id=run_id, status=WakeRegistrationStatus.REGISTERED
                )
                host.record_wake(POOL, condition, condition.compile_envelope_filter(), registration)
            waiting[run_id] = condition
            operations += 2
        out(f"{len(waiting)} wake conditions registered")

        statuses: Counter[str] = Counter()
        deduped = triggered = 0
        watched = 0
        cursor = observer.snapshot(POOL).cursor
        for number in range(messages):
            sender = rng.choice(runs)
            # A tenth of the sends repeat an earlier idempotency key: a retried send.
            key_number = rng.randrange(number) if number and rng.random() < 0.1 else number
            choice = rng.random()
            if choice < 0.03:
                to = RunAddress.run("run.gone")  # a run that already left: the send fails
            elif choice < 0.6:
                to = RunAddress.run(rng.choice(runs))
            elif choice < 0.8:
                to = RunAddress.agent(rng.choice(AGENTS))
            elif choice < 0.95:
                to = RunAddress.topic(rng.choice(TOPICS))
            else:
                to = RunAddress.pool(POOL)
            message = RunMessage(
                message_id=f"msg.{key_number:05d}",
                from_=sender,
                to=to,
                content_ref=f"content.{key_number:05d}",
                idempotency_key=f"idem.msg.{key_number:05d}",
                policy_refs=(policy,),
            )
            operations += 1
            if host.message_receipt(POOL, message.idempotency_key) is not None:
                deduped += 1
                continue
            snapshot = host.snapshot(POOL)
            delivered_to = recipients(snapshot, message)
            transitions = [MessageStatus.ACCEPTED, MessageStatus.DELIVERED] if delivered_to else [MessageStatus.FAILED]
            for status in transitions:
                receipt = MessageReceipt(message_id=message.message_id, status=status, delivered_to=delivered_to)
                host.record_message(POOL, message, receipt)
                statuses[status.value] += 1
                operations += 1
            for run_id in delivered_to:
                waiter = waiting.get(run_id)
                stored = host.wake(POOL, waiter.condition_id) if waiter else None
                if waiter and stored and stored.registration.status is WakeRegistrationStatus.REGISTERED:
                    done = stored.registration.replace(status=WakeRegistrationStatus.TRIGGERED)
                    host.record_wake(POOL, waiter, stored.compiled_filter, done)
                    triggered += 1
                    operations += 2
            if number % 50 == 49:
                new = list(observer.watch(POOL, cursor))
                watched += len(new)
                if new:
                    cursor = new[-1].cursor
                operations += 1
        watched += len(list(observer.watch(POOL, cursor)))
        elapsed = time.perf_counter() - started

        final = host.snapshot(POOL)
        seen = observer.snapshot(POOL)
        out(
            f"{messages} sends: "
            + ", ".join(
                [f"{deduped} deduplicated by idempotency key"]
                + [f"{count} {status}" for status, count in sorted(statuses.items())]
            )
        )
        out(f"{triggered} wakes triggered by deliveries")
        who = "the same in-memory store" if observer is host else "second store object"
        out(f"observer ({who}) watched {watched} new records; snapshots agree: {final == seen}")
        assert final.cursor is not None
        out(
            f"pool now: {len(final.members)} members, {len(final.messages)} messages, "
            f"{len(final.wakes)} wakes, cursor {final.cursor.sequence}"
        )
        out(f"{operations} store operations in {elapsed:.3f} s: {operations / elapsed:,.0f} ops/s")
        return {
            "operations": operations,
            "seconds": elapsed,
            "cursor": final.cursor.sequence,
            "agree": float(final == seen),
        }
    finally:
        observer.close()
        host.close()

"""``fastpool demo``: a realistic agent-host workload on a store (a file, PostgreSQL, memory), through ``AgentPool``.

Agents join a pool (one joins and leaves again), register wake conditions on their
neighbour's deliveries, and send each other run messages: to runs, agents, topics and the
whole pool, a tenth of them retried under an earlier idempotency key. The coordinator routes
them, records their receipts (accepted, then delivered; failed when nobody is left to reach),
journals and publishes every transition (``open_runtime``: the journal and the event bus live
on the target beside the store), and triggers the wakes; a second store object on the
same file (or schema), another host's, watches the records arrive; an in-memory store is its own
observer.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ._base import StoreBase
from ._open import open_store
from .coordinator import AgentPool
from .enums import EventKind, MessageStatus, WakeRegistrationStatus
from .memory import InMemoryAgentPoolStore
from .model import AgentPoolMember, EventFilter, PolicyRef, RunAddress, RunMessage, WakeCondition
from .runtime import open_runtime

POOL = "pool.demo"
AGENTS = ("agent.planner", "agent.worker", "agent.critic")
TOPICS = ("topic.plans", "topic.reviews", "topic.results")


def run(
    target: str | os.PathLike[str],
    *,
    agents: int = 12,
    messages: int = 600,
    seed: int = 7,
    out: Callable[[str], None] = print,
    **options: Any,
) -> dict[str, float]:
    """Run the workload on the runtime ``open_runtime(target, **options)`` opens (its store,
    journal and bus on the target); return the figures it printed."""
    rng = random.Random(seed)
    policy = PolicyRef.new("policy.demo")
    runtime = open_runtime(target, **options)
    host = runtime.store
    assert isinstance(host, StoreBase)  # open_runtime's stores all are: stats() below
    # A second store object: another host on the same file (a new in-memory store would be empty).
    observer = host if isinstance(host, InMemoryAgentPoolStore) else open_store(target, **options)
    try:
        started = time.perf_counter()
        pool = AgentPool(POOL, runtime=runtime, policy_refs=(policy,))
        calls = 1
        runs = [f"run.{index:03d}" for index in range(agents)]
        for index, run_id in enumerate(runs):
            member = AgentPoolMember(
                run_id=run_id,
                agent_id=AGENTS[index % len(AGENTS)],
                policy_refs=(policy,),
                topics=(TOPICS[index % len(TOPICS)],),
            )
            pool.join_run(member)
        pool.join_run(AgentPoolMember(run_id="run.gone", agent_id=AGENTS[0], policy_refs=(policy,)))
        pool.leave_run("run.gone")  # messages to it fail
        calls += agents + 2
        out(f"{agents} agents joined {POOL} ({len(pool.snapshot().topics)} topics)")

        # Every fourth run waits for a delivery sent by the run after it.
        waiting = []
        for index in range(0, agents, 4):
            run_id, neighbour = runs[index], runs[(index + 1) % agents]
            condition = WakeCondition(
                condition_id=f"wake.{run_id}",
                run_id=run_id,
                filter=EventFilter(run_ids=(neighbour,), kinds=(EventKind.RUN_MESSAGE_DELIVERED,)),
                idempotency_key=f"idem.wake.{run_id}",
            )
            pool.suspend_until(run_id, condition)  # a second run of the demo finds it registered
            waiting.append(condition.condition_id)
            calls += 1
        out(f"{len(waiting)} wake conditions registered")

        statuses: Counter[str] = Counter()
        deduped = watched = 0
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
            # Only to report it: a key already recorded makes send return its receipt, writing nothing.
            known = host.message_receipt(POOL, message.idempotency_key) is not None
            receipt = pool.send(message)
            calls += 1
            if known:
                deduped += 1
            elif receipt.status is MessageStatus.DELIVERED:
                statuses.update(("accepted", "delivered"))
            else:
                statuses[receipt.status.value] += 1
            if number % 50 == 49:
                new = list(observer.watch(POOL, cursor))
                watched += len(new)
                if new:
                    cursor = new[-1].cursor
        watched += len(list(observer.watch(POOL, cursor)))
        elapsed = time.perf_counter() - started

        final = pool.snapshot()
        seen = observer.snapshot(POOL)
        woken = [stored for stored in final.wakes if stored.condition.condition_id in waiting]
        triggered = sum(stored.registration.status is WakeRegistrationStatus.TRIGGERED for stored in woken)
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
        out("host store's counters (store.stats()): " + ", ".join(f"{k} {v:,}" for k, v in host.stats().items()))
        assert final.cursor is not None
        out(
            f"pool now: {len(final.members)} members, {len(final.messages)} messages, "
            f"{len(final.wakes)} wakes, cursor {final.cursor.sequence}"
        )
        events = runtime.event_bus.frames  # type: ignore[union-attr]  # both kinds of bus have it
        out(
            f"{calls} coordinator calls ({runtime.next_journal_seq() - 1} journal records, {len(events)} events "
            f"on the {type(runtime).__name__}) in {elapsed:.3f} s: {calls / elapsed:,.0f} calls/s"
        )
        return {
            "calls": calls,
            "seconds": elapsed,
            "cursor": final.cursor.sequence,
            "agree": float(final == seen),
        }
    finally:
        observer.close()
        runtime.close()

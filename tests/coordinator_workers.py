"""Child processes of ``test_coordinator_processes``: each an ``AgentPool`` of its own on one file.

``spawn`` children import this module by name. A worker joins its run, registers the shared
wakes, then either sends the shared messages (even workers) or cancels the shared wakes (odd
workers), in the same order as the others, all at once; first in the default mode, then on a
second pool with ``strict=True``.
"""

from __future__ import annotations

from typing import Any

from store_helpers import _error_data, _identity

from fastpool import (
    AgentError,
    AgentPool,
    AgentPoolMember,
    AgentRuntime,
    EventFilter,
    EventKind,
    InMemoryAgentEventBus,
    InMemoryRunJournal,
    RunAddress,
    RunMessage,
    SqliteAgentPoolStore,
    WakeCondition,
)

MODES = {"parity": False, "strict": True}


def shared_message(n: int, workers: int) -> RunMessage:
    """Message ``n``: from ``run.{n % workers}`` to ``run.0``, under a key every sender shares."""
    return RunMessage(
        message_id=f"m.{n}",
        from_=f"run.{n % workers}",
        to=RunAddress.run("run.0"),
        content_ref=f"content.m.{n}",
        idempotency_key=f"key.m.{n}",
    )


def shared_wake(n: int, workers: int) -> WakeCondition:
    """Wake ``n`` of ``run.0``: triggered by a delivered message of ``run.{n % workers}``."""
    return WakeCondition(
        condition_id=f"w.{n}",
        run_id="run.0",
        filter=EventFilter(run_ids=(f"run.{n % workers}",), kinds=(EventKind.RUN_MESSAGE_DELIVERED,)),
        idempotency_key=f"key.w.{n}",
    )


def mp_coordinate(path: str, worker: int, workers: int, count: int, barrier: Any, results: Any) -> None:
    """Report, per mode, the statuses this worker's sends returned and how many cancels were refused."""
    report = _identity() | {"worker": worker, "errors": []}
    try:
        with SqliteAgentPoolStore(path) as store:
            for mode, strict in MODES.items():
                runtime = AgentRuntime(journal=InMemoryRunJournal(), event_bus=InMemoryAgentEventBus())
                pool = AgentPool(f"pool.{mode}", runtime=runtime, store=store, strict=strict)
                barrier.wait(timeout=30)
                pool.join_run(AgentPoolMember(run_id=f"run.{worker}", agent_id=f"agent.{worker}"))
                barrier.wait(timeout=30)  # every run is a member
                registered = [pool.suspend_until("run.0", shared_wake(n, workers)).status.value for n in range(count)]
                barrier.wait(timeout=30)
                sent, refused = [], 0
                for n in range(count):
                    if worker % 2 == 0:
                        sent.append(pool.send(shared_message(n, workers)).status.value)
                        continue
                    try:
                        pool.cancel_wake(f"w.{n}")
                    except AgentError:
                        refused += 1  # strict: it was triggered first
                report[mode] = {"registered": registered, "sent": sent, "refused": refused}
    except BaseException as error:
        barrier.abort()  # the other workers stop waiting for this one
        report["errors"].append(_error_data(error))
    results.put(report)

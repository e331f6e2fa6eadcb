"""An asyncio host: 50 agents on one pool route messages to topics and wake on their neighbour.

Each agent waits for a delivered message from the agent before it (a wake condition), sends
one message to its team's topic, and retries it (a retry returns the recorded receipt). The
coordinator does the routing, the receipts and the wake matching. Usage:
``python examples/asyncio_host.py [DB]`` (a temporary file without DB).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from fastpool import (
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
    WakeRegistrationStatus,
)
from fastpool.aio import AsyncAgentPool

AGENTS, TEAMS = 50, 5


async def agent(pool: AsyncAgentPool, n: int) -> tuple[int, str]:
    run, neighbour = f"run.{n:02d}", f"run.{(n - 1) % AGENTS:02d}"
    await pool.suspend_until(
        run,
        WakeCondition(
            condition_id=f"wake.{run}",
            run_id=run,
            idempotency_key=f"idem.wake.{run}",
            filter=EventFilter(run_ids=(neighbour,), kinds=(EventKind.RUN_MESSAGE_DELIVERED,)),
        ),
    )
    message = RunMessage(
        message_id=f"msg.{run}",
        from_=run,
        to=RunAddress.topic(f"topic.team{n % TEAMS}"),
        content_ref=f"content.{run}",
        idempotency_key=f"idem.msg.{run}",
    )
    receipt = await pool.send(message)
    assert await pool.send(message) == receipt  # a retry: deduplicated by its key
    while (await pool.poll_wake(f"wake.{run}")).status is WakeRegistrationStatus.REGISTERED:
        await asyncio.sleep(0.005)  # woken once the neighbour's message is delivered
    return len(receipt.delivered_to), receipt.status.value


async def main(path: Path) -> None:
    runtime = AgentRuntime(journal=InMemoryRunJournal(), event_bus=InMemoryAgentEventBus())
    with SqliteAgentPoolStore(path) as store:
        async with await AsyncAgentPool.open("pool.team", runtime=runtime, store=store) as pool:
            for n in range(AGENTS):  # every agent a member before any wake is scoped
                await pool.join_run(
                    AgentPoolMember(
                        run_id=f"run.{n:02d}", agent_id=f"agent.{n % TEAMS}", topics=(f"topic.team{n % TEAMS}",)
                    )
                )
            results = await asyncio.gather(*(agent(pool, n) for n in range(AGENTS)))
            snapshot, records = await pool.snapshot(), await pool.watch_pool()
    woken = sum(wake.registration.status is WakeRegistrationStatus.TRIGGERED for wake in snapshot.wakes)
    print(
        f"{AGENTS} agents: {sum(r for r, _ in results)} deliveries, "
        f"{sum(s == 'delivered' for _, s in results)} messages delivered, {woken} agents woken, "
        f"{len(records)} records"
    )


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "team.sqlite"
    asyncio.run(main(target))

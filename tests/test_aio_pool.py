"""``fastpool.aio.AsyncAgentPool``: the coordinator as coroutines, and the example asyncio host."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fastpool import (
    AgentError,
    AgentPool,
    AgentPoolMember,
    AgentRuntime,
    EventFilter,
    InMemoryAgentEventBus,
    InMemoryAgentPoolStore,
    InMemoryRunJournal,
    InvalidInput,
    MessageReceipt,
    MessageStatus,
    RunAddress,
    RunMessage,
    SqliteAgentPoolStore,
    WakeCondition,
    WakeRegistrationStatus,
)
from fastpool.aio import AsyncAgentPool

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "asyncio_host.py"
POOL = "pool.aio"


def runtime() -> AgentRuntime:
    return AgentRuntime(journal=InMemoryRunJournal(), event_bus=InMemoryAgentEventBus())


def message(n: int, key: str | None = None) -> RunMessage:
    return RunMessage(
        message_id=f"m.{n}",
        from_="run.a",
        to=RunAddress.run("run.b"),
        content_ref=f"content.{n}",
        idempotency_key=key or f"key.{n}",
    )


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        yield InMemoryAgentPoolStore()
        return
    with SqliteAgentPoolStore(tmp_path / "aio.sqlite") as opened:
        yield opened


def test_the_example_host_runs_fifty_agents(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path / "team.sqlite")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "50 agents: 500 deliveries, 50 messages delivered, 50 agents woken, 252 records"


def test_coroutines_give_the_sync_results(store: Any) -> None:
    async def main() -> None:
        async with await AsyncAgentPool.open(POOL, runtime=runtime(), store=store) as pool:
            assert pool.pool_id == POOL and isinstance(pool.pool, AgentPool)
            for run_id in ("run.a", "run.b"):
                await pool.join_run(AgentPoolMember(run_id=run_id, agent_id="agent"))
            condition = WakeCondition(
                condition_id="w.1", run_id="run.b", filter=EventFilter(run_ids=("run.a",)), idempotency_key="key.w"
            )
            registration = await pool.suspend_until("run.b", condition)
            assert registration.status is WakeRegistrationStatus.TRIGGERED  # run.a's join is on the bus
            receipt = await pool.send(message(1))
            assert receipt.status is MessageStatus.DELIVERED
            responded = await pool.record_message_status(message(1), "responded", ["run.b"])
            assert responded.status is MessageStatus.RESPONDED
            assert await pool.poll_wake("w.1") == registration
            assert (await pool.cancel_wake("w.1")).status is WakeRegistrationStatus.CANCELLED
            assert [m.run_id for m in await pool.members()] == ["run.a", "run.b"]
            assert (await pool.snapshot()) == pool.pool.snapshot()
            assert [r.cursor.sequence for r in await pool.watch_pool(6)] == list(range(7, 11))
            scoped = await pool.scope_filter(EventFilter())
            assert scoped.run_ids == ("run.a", "run.b")
            assert (await pool.compile_scoped_filter(EventFilter())) == scoped.compile()
            assert len(await pool.subscribe(EventFilter())) == len(pool.pool.runtime.event_bus.frames)  # type: ignore[union-attr]
            assert (await pool.leave_run("run.b")).run_id == "run.b"

    asyncio.run(main())


def test_tasks_sending_one_key_record_it_once(store: Any) -> None:
    async def main() -> list[Any]:
        async with await AsyncAgentPool.open(POOL, runtime=runtime(), store=store, workers=4) as pool:
            for run_id in ("run.a", "run.b"):
                await pool.join_run(AgentPoolMember(run_id=run_id, agent_id="agent"))
            return await asyncio.gather(*(pool.send(message(n % 5)) for n in range(40)))

    receipts = asyncio.run(main())
    statuses = [r.payload.stored.receipt.status.value for r in store.watch(POOL) if r.payload.TYPE == "run_message"]
    assert sorted(statuses) == ["accepted"] * 5 + ["delivered"] * 5
    assert {receipt.message_id for receipt in receipts} == {f"m.{n}" for n in range(5)}


def test_a_cancelled_send_still_records_and_later_calls_see_it(store: Any) -> None:
    async def main() -> Any:
        async with await AsyncAgentPool.open(POOL, runtime=runtime(), store=store) as pool:
            for run_id in ("run.a", "run.b"):
                await pool.join_run(AgentPoolMember(run_id=run_id, agent_id="agent"))
            task = asyncio.ensure_future(pool.send(message(1)))
            await asyncio.sleep(0)  # handed to a worker
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return await pool.send(message(1))  # starts once the cancelled send has ended

    receipt = asyncio.run(main())
    assert receipt.status is MessageStatus.DELIVERED
    assert store.message_receipt(POOL, "key.1") == receipt


def test_open_and_wrap_check_their_arguments() -> None:
    async def main() -> None:
        with pytest.raises(AgentError, match="agent pool requires runtime"):
            await AsyncAgentPool.open(POOL, runtime=None)
        with pytest.raises(InvalidInput, match="workers"):
            await AsyncAgentPool.open(POOL, runtime=runtime(), workers=0)

    asyncio.run(main())
    with pytest.raises(InvalidInput, match="pool: expected an AgentPool"):
        AsyncAgentPool(object())  # type: ignore[arg-type]


def test_leave_run_missing_ok(store: Any) -> None:
    async def main() -> tuple[Any, Any]:
        async with await AsyncAgentPool.open(POOL, runtime=runtime(), store=store) as pool:
            await pool.join_run(AgentPoolMember(run_id="run.a", agent_id="agent"))
            left = await pool.leave_run("run.a")
            return left, await pool.leave_run("run.a", missing_ok=True)

    left, again = asyncio.run(main())
    assert (left.run_id, again) == ("run.a", None)


def test_a_pool_used_under_a_new_event_loop_after_a_cancelled_call_goes_on(store: Any) -> None:
    """A host that runs ``asyncio.run`` more than once with one wrapper: a call cancelled under
    the first loop, still running when that loop closed, does not hold up the next loop's calls."""
    pool = asyncio.run(AsyncAgentPool.open(POOL, runtime=runtime(), store=store))
    send = pool.pool.send

    def slow_send(sent: RunMessage) -> Any:
        time.sleep(0.3)  # still running when the first loop closes
        return send(sent)

    pool.pool.send = slow_send  # type: ignore[method-assign]

    async def first() -> None:
        for run_id in ("run.a", "run.b"):
            await pool.join_run(AgentPoolMember(run_id=run_id, agent_id="agent"))
        task = asyncio.ensure_future(pool.send(message(1)))
        await asyncio.sleep(0.05)  # running on a worker
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def second() -> MessageReceipt:
        try:
            return await asyncio.wait_for(pool.send(message(2)), 10)
        finally:
            await pool.close()

    asyncio.run(first())
    receipt = asyncio.run(second())
    assert receipt.status is MessageStatus.DELIVERED
    assert [store.message_receipt(POOL, f"key.{n}").status for n in (1, 2)] == [MessageStatus.DELIVERED] * 2

"""``AsyncAgentPool``: the coordinator's methods as coroutines (``fastpool.aio`` re-exports it).

Each call runs the whole ``AgentPool`` method on a worker thread (one hop per call, however
many store, journal and bus calls it makes), so no call blocks the event loop; any number of
tasks may share one wrapper. Cancelling a call that writes does not cancel it: it runs to its
end on its thread, and calls made on the wrapper after the cancellation start only once it
has ended (the idempotency key then tells whether it was recorded).

>>> import asyncio
>>> from fastpool import AgentPoolMember, AgentRuntime, InMemoryAgentEventBus, InMemoryRunJournal
>>> async def main():
...     runtime = AgentRuntime(journal=InMemoryRunJournal(), event_bus=InMemoryAgentEventBus())
...     async with await AsyncAgentPool.open("pool.a", runtime=runtime) as pool:
...         await pool.join_run(AgentPoolMember(run_id="run.a", agent_id="agent.a"))
...         return [member.run_id for member in await pool.members()]
>>> asyncio.run(main())
['run.a']
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Literal, TypeVar, overload

from ._shielded import CancelledCalls
from .coordinator import AgentPool, AgentRuntime
from .enums import MessageStatus
from .errors import InvalidInput
from .model import (
    AgentPoolMember,
    AgentPoolMessagePolicy,
    AgentPoolSnapshot,
    AgentPoolStoreCursor,
    AgentPoolStoreRecord,
    AgentPoolWakePolicy,
    CompiledEventFilter,
    EventCursor,
    EventFilter,
    EventFrame,
    MessageReceipt,
    PolicyRef,
    RunMessage,
    WakeCondition,
    WakeRegistration,
)
from .protocol import AgentPoolStore

__all__ = ["AsyncAgentPool"]

T = TypeVar("T")


class AsyncAgentPool:
    """Wraps an ``AgentPool`` for asyncio: every method of it as a coroutine.

    ``await AsyncAgentPool.open(pool_id, runtime=..., ...)`` builds the ``AgentPool`` on a
    worker (its arguments are ``AgentPool``'s); ``AsyncAgentPool(pool)`` wraps one built
    already. Reads that return an iterator in ``AgentPool`` (``watch_pool``, ``subscribe``)
    return a list. ``close()`` (or ``async with``) stops the workers; the store stays open.
    """

    def __init__(self, pool: AgentPool, *, workers: int = 2) -> None:
        if not isinstance(pool, AgentPool):
            raise InvalidInput(f"pool: expected an AgentPool, got {type(pool).__name__}")
        _check_workers(workers)
        self.pool = pool
        # The store and the runtime serialise what must be, so a couple of threads keep one
        # call waiting on SQLite's lock from holding up the others.
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastpool-pool")
        self._cancelled = CancelledCalls()  # cancelled calls still running

    @classmethod
    async def open(
        cls,
        pool_id: str,
        *,
        runtime: AgentRuntime | None,
        store: AgentPoolStore | None = None,
        message_policy: AgentPoolMessagePolicy | None = None,
        wake_policy: AgentPoolWakePolicy | None = None,
        policy_refs: tuple[PolicyRef, ...] | list[PolicyRef] = (),
        strict: bool = False,
        workers: int = 2,
    ) -> AsyncAgentPool:
        """Build the ``AgentPool`` (opening the pool in its store) without blocking the loop."""
        _check_workers(workers)
        build = partial(
            AgentPool,
            pool_id,
            runtime=runtime,
            store=store,
            message_policy=message_policy,
            wake_policy=wake_policy,
            policy_refs=policy_refs,
            strict=strict,
        )
        executor = ThreadPoolExecutor(max_workers=1)
        try:
            pool = await asyncio.get_running_loop().run_in_executor(executor, build)
        finally:
            executor.shutdown(wait=False)
        return cls(pool, workers=workers)

    @property
    def pool_id(self) -> str:
        """The pool the wrapped coordinator coordinates."""
        return self.pool.pool_id

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        # Start after the calls cancelled so far have ended, so as to see what they did.
        await self._cancelled.settled()
        future = asyncio.get_running_loop().run_in_executor(self._executor, partial(function, *args))
        # Shielded: cancelling the caller must not cancel a call still queued for a worker.
        return await self._cancelled.shielded(future)

    async def close(self) -> None:
        """Wait for the calls still running, then stop the worker threads (the store stays open)."""
        await self._cancelled.settled()
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncAgentPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def join_run(self, member: AgentPoolMember) -> None:
        """The coroutine form of ``AgentPool.join_run``."""
        await self._call(self.pool.join_run, member)

    @overload
    async def leave_run(self, run_id: str, *, missing_ok: Literal[False] = False) -> AgentPoolMember: ...

    @overload
    async def leave_run(self, run_id: str, *, missing_ok: bool) -> AgentPoolMember | None: ...

    async def leave_run(self, run_id: str, *, missing_ok: bool = False) -> AgentPoolMember | None:
        """The coroutine form of ``AgentPool.leave_run``."""
        return await self._call(lambda: self.pool.leave_run(run_id, missing_ok=missing_ok))

    async def members(self) -> tuple[AgentPoolMember, ...]:
        """The coroutine form of ``AgentPool.members``."""
        return await self._call(self.pool.members)

    async def snapshot(self) -> AgentPoolSnapshot:
        """The coroutine form of ``AgentPool.snapshot``."""
        return await self._call(self.pool.snapshot)

    async def watch_pool(self, cursor: AgentPoolStoreCursor | int | None = None) -> list[AgentPoolStoreRecord]:
        """The records after ``cursor``, as a list (``AgentPool.watch_pool``)."""
        return await self._call(lambda: list(self.pool.watch_pool(cursor)))

    async def send(self, message: RunMessage) -> MessageReceipt:
        """The coroutine form of ``AgentPool.send``."""
        return await self._call(self.pool.send, message)

    async def record_message_status(
        self, message: RunMessage, status: MessageStatus | str, delivered_to: tuple[str, ...] | list[str]
    ) -> MessageReceipt:
        """The coroutine form of ``AgentPool.record_message_status``."""
        return await self._call(self.pool.record_message_status, message, status, delivered_to)

    async def suspend_until(self, run_id: str, condition: WakeCondition) -> WakeRegistration:
        """The coroutine form of ``AgentPool.suspend_until``."""
        return await self._call(self.pool.suspend_until, run_id, condition)

    async def poll_wake(self, condition_id: str) -> WakeRegistration:
        """The coroutine form of ``AgentPool.poll_wake``."""
        return await self._call(self.pool.poll_wake, condition_id)

    async def cancel_wake(self, condition_id: str) -> WakeRegistration:
        """The coroutine form of ``AgentPool.cancel_wake``."""
        return await self._call(self.pool.cancel_wake, condition_id)

    async def scope_filter(self, filter: EventFilter) -> EventFilter:
        """The coroutine form of ``AgentPool.scope_filter`` (it reads the members)."""
        return await self._call(self.pool.scope_filter, filter)

    async def compile_scoped_filter(self, filter: EventFilter) -> CompiledEventFilter:
        """The coroutine form of ``AgentPool.compile_scoped_filter``."""
        return await self._call(self.pool.compile_scoped_filter, filter)

    async def subscribe(self, filter: EventFilter, cursor: EventCursor | None = None) -> list[EventFrame]:
        """The frames ``AgentPool.subscribe`` yields, as a list."""
        return await self._call(lambda: list(self.pool.subscribe(filter, cursor)))


def _check_workers(workers: Any) -> None:
    if type(workers) is not int or workers < 1:
        raise InvalidInput(f"workers: expected a positive int, got {workers!r}")

"""asyncio access to a store: the 12 methods as coroutines, and ``async for`` over ``follow``.

Every call runs on a worker thread, so no call blocks the event loop; one store per
loop is safe with any number of concurrent tasks (the store serialises them).

>>> import asyncio
>>> from fastpool import AgentPoolStoreConfig, InMemoryAgentPoolStore
>>> async def main():
...     async with AsyncAgentPoolStore(InMemoryAgentPoolStore()) as store:
...         snapshot = await store.open_pool("pool.a", AgentPoolStoreConfig())
...         return snapshot.cursor.sequence
>>> asyncio.run(main())
1
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from ._base import StoreBase, check_cursor
from .errors import InvalidInput
from .model import (
    AgentPoolMember,
    AgentPoolSnapshot,
    AgentPoolStoreConfig,
    AgentPoolStoreCursor,
    AgentPoolStoredWake,
    AgentPoolStoreRecord,
    CompiledEventFilter,
    MessageReceipt,
    RunMessage,
    WakeCondition,
    WakeRegistration,
)
from .sqlite import SqliteAgentPoolStore

__all__ = ["AsyncAgentPoolStore"]

T = TypeVar("T")


class AsyncAgentPoolStore:
    """Wraps a ``SqliteAgentPoolStore`` or ``InMemoryAgentPoolStore`` for asyncio."""

    def __init__(self, store: StoreBase, *, workers: int = 2) -> None:
        if not isinstance(store, StoreBase):
            raise InvalidInput(f"store: expected a fastpool store, got {type(store).__name__}")
        if type(workers) is not int or workers < 1:
            raise InvalidInput(f"workers: expected a positive int, got {workers!r}")
        self.store = store
        # A store serialises its calls, so a couple of threads are enough to keep one
        # waiting on SQLite's lock from holding up the rest of the queue.
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastpool-aio")
        self._closed = False

    @classmethod
    async def open(cls, path: str | os.PathLike[str], **options: Any) -> AsyncAgentPoolStore:
        """Open a ``SqliteAgentPoolStore`` at ``path`` without blocking the loop."""
        executor = ThreadPoolExecutor(max_workers=1)
        try:
            store = await asyncio.get_running_loop().run_in_executor(
                executor, partial(SqliteAgentPoolStore, path, **options)
            )
        finally:
            executor.shutdown(wait=False)
        return cls(store)

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        if self._closed:
            # The workers are gone; the closed store answers as the sync one does, at once
            # (SQLite: its "store is closed" error; memory: from memory).
            return function(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(function, *args))

    async def close(self) -> None:
        """Close the wrapped store (ending ``follow`` loops) and the worker threads."""
        close = getattr(self.store, "close", None)
        if close is not None:
            await self._call(close)
        self._closed = True
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncAgentPoolStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open_pool(self, pool_id: str, config: AgentPoolStoreConfig) -> AgentPoolSnapshot:
        return await self._call(self.store.open_pool, pool_id, config)

    async def snapshot(self, pool_id: str) -> AgentPoolSnapshot:
        return await self._call(self.store.snapshot, pool_id)

    async def record_pool_created(self, pool_id: str) -> AgentPoolStoreCursor:
        return await self._call(self.store.record_pool_created, pool_id)

    async def join_member(self, pool_id: str, member: AgentPoolMember) -> AgentPoolStoreCursor:
        return await self._call(self.store.join_member, pool_id, member)

    async def leave_member(self, pool_id: str, run_id: str) -> tuple[AgentPoolMember, AgentPoolStoreCursor]:
        return await self._call(self.store.leave_member, pool_id, run_id)

    async def message_receipt(self, pool_id: str, idempotency_key: str) -> MessageReceipt | None:
        return await self._call(self.store.message_receipt, pool_id, idempotency_key)

    async def record_message(self, pool_id: str, message: RunMessage, receipt: MessageReceipt) -> AgentPoolStoreCursor:
        return await self._call(self.store.record_message, pool_id, message, receipt)

    async def wake_registration(self, pool_id: str, idempotency_key: str) -> WakeRegistration | None:
        return await self._call(self.store.wake_registration, pool_id, idempotency_key)

    async def wake(self, pool_id: str, condition_id: str) -> AgentPoolStoredWake | None:
        return await self._call(self.store.wake, pool_id, condition_id)

    async def record_wake(
        self,
        pool_id: str,
        condition: WakeCondition,
        compiled_filter: CompiledEventFilter,
        registration: WakeRegistration,
    ) -> AgentPoolStoreCursor:
        return await self._call(self.store.record_wake, pool_id, condition, compiled_filter, registration)

    async def watch(self, pool_id: str, cursor: AgentPoolStoreCursor | int | None = None) -> list[AgentPoolStoreRecord]:
        """The records after ``cursor``, as a list (read in one go, like the sync ``watch``)."""
        return await self._call(lambda: list(self.store.watch(pool_id, cursor)))

    async def next_event_sequence(self, pool_id: str) -> int:
        return await self._call(self.store.next_event_sequence, pool_id)

    def follow(
        self,
        pool_id: str,
        cursor: AgentPoolStoreCursor | int | None = None,
        *,
        poll_interval: float = 0.05,
        timeout: float | None = None,
    ) -> AsyncIterator[AgentPoolStoreRecord]:
        """``async for`` over records as any process appends them (see ``follow`` on the store).

        Arguments are checked at the call, as the sync ``follow`` does; waiting happens on
        the event loop (``asyncio.sleep``), never on a worker thread.
        """
        after = check_cursor(cursor)
        self.store.follow(pool_id, after, poll_interval=poll_interval, timeout=timeout)  # validates only
        return self._follow(pool_id, after, poll_interval, timeout)

    async def _follow(
        self, pool_id: str, after: int, poll_interval: float, timeout: float | None
    ) -> AsyncIterator[AgentPoolStoreRecord]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            start = after
            # timeout=0: read what is there now and return at once.
            batch = await self._call(lambda: list(self.store.follow(pool_id, start, timeout=0)))
            for record in batch:
                after = record.cursor.sequence
                yield record
            if batch:
                deadline = None if timeout is None else loop.time() + timeout
                continue
            if self.store._closed.is_set():
                return
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                await asyncio.sleep(min(poll_interval, remaining))
            else:
                await asyncio.sleep(poll_interval)

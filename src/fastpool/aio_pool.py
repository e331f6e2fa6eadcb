"""``AsyncAgentPool``: the coordinator's methods as coroutines (``fastpool.aio`` re-exports it).

Each call runs the whole ``AgentPool`` method on a worker thread, so no call blocks the event
loop; any number of tasks may share one wrapper. On a durable runtime (``open_runtime``, whose
calls are transactions) the calls that write, from every task, run in groups, one transaction
and one commit per group (``_call_groups``); on any other, each call hops to a worker.
Cancelling a call that writes does not cancel it: it runs to its end on its thread, and calls
made on the wrapper after the cancellation start only once it has ended (the idempotency key
then tells whether it was recorded).

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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any, Literal, TypeVar, overload

from ._base import try_lock
from ._call_groups import CallGroups
from ._shielded import CancelledCalls
from .coordinator import AgentPool, AgentRuntime, check_timeout
from .enums import AgentErrorKind, MessageStatus, RetryClassification, WakeRegistrationStatus
from .errors import AgentError, InvalidInput
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
    WakeRecorded,
    WakeRegistration,
)
from .protocol import AgentPoolStore

__all__ = ["AsyncAgentPool"]

T = TypeVar("T")
#: How often the watcher of ``wait_wake`` looks at SQLite's change probe while anyone waits (seconds).
POLL_INTERVAL = 0.005


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
        self._waiters = _Waiters(self)
        # On a runtime whose calls are transactions, the calls that write run in groups.
        self._groups = CallGroups(self._executor, self._group_transaction) if pool.runtime.atomic else None

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

    async def _write(self, function: Callable[..., T], *args: Any) -> T:
        """A call that writes: in the next group where there are groups, else as ``_call``."""
        if self._groups is None:
            return await self._call(function, *args)
        await self._cancelled.settled()
        return await self._cancelled.shielded(self._groups.submit(partial(function, *args)))

    @contextmanager
    def _group_transaction(self) -> Iterator[object]:
        try:
            with self.pool.runtime.transaction() as transaction:
                yield transaction
        except BaseException:
            self.pool._wakes.forget()  # its calls noted wakes that were rolled back
            raise

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
        await self._write(self.pool.join_run, member)

    @overload
    async def leave_run(self, run_id: str, *, missing_ok: Literal[False] = False) -> AgentPoolMember: ...

    @overload
    async def leave_run(self, run_id: str, *, missing_ok: bool) -> AgentPoolMember | None: ...

    async def leave_run(self, run_id: str, *, missing_ok: bool = False) -> AgentPoolMember | None:
        """The coroutine form of ``AgentPool.leave_run``."""
        return await self._write(lambda: self.pool.leave_run(run_id, missing_ok=missing_ok))

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
        return await self._write(self.pool.send, message)

    async def send_with_outcome(self, message: RunMessage) -> tuple[MessageReceipt, bool]:
        """The coroutine form of ``AgentPool.send_with_outcome``."""
        return await self._write(self.pool.send_with_outcome, message)

    async def record_message_status(
        self, message: RunMessage, status: MessageStatus | str, delivered_to: tuple[str, ...] | list[str]
    ) -> MessageReceipt:
        """The coroutine form of ``AgentPool.record_message_status``."""
        return await self._write(self.pool.record_message_status, message, status, delivered_to)

    async def suspend_until(self, run_id: str, condition: WakeCondition) -> WakeRegistration:
        """The coroutine form of ``AgentPool.suspend_until``."""
        return await self._write(self.pool.suspend_until, run_id, condition)

    async def poll_wake(self, condition_id: str) -> WakeRegistration:
        """The coroutine form of ``AgentPool.poll_wake``."""
        return await self._write(self.pool.poll_wake, condition_id)

    async def cancel_wake(self, condition_id: str) -> WakeRegistration:
        """The coroutine form of ``AgentPool.cancel_wake``."""
        return await self._write(self.pool.cancel_wake, condition_id)

    async def scope_filter(self, filter: EventFilter) -> EventFilter:
        """The coroutine form of ``AgentPool.scope_filter`` (it reads the members)."""
        return await self._call(self.pool.scope_filter, filter)

    async def compile_scoped_filter(self, filter: EventFilter) -> CompiledEventFilter:
        """The coroutine form of ``AgentPool.compile_scoped_filter``."""
        return await self._call(self.pool.compile_scoped_filter, filter)

    async def subscribe(self, filter: EventFilter, cursor: EventCursor | None = None) -> list[EventFrame]:
        """The frames ``AgentPool.subscribe`` yields, as a list."""
        return await self._call(lambda: list(self.pool.subscribe(filter, cursor)))

    async def wait_wake(self, condition_id: str, timeout: float | None = None) -> WakeRegistration:
        """``AgentPool.wait_wake`` on the loop: the wake's registration once it leaves ``registered``.

        Every waiter of this wrapper shares one watcher task, which reads the pool's new records
        (``watch``) only when the store's change token moves: SQLite's change probe, looked at on
        the loop every 5 ms, or PostgreSQL's LISTEN, awaited by one thread for every waiter; a
        waiter holds no thread. At ``timeout`` seconds (``None``: no limit), the current
        registration.
        """
        check_timeout(timeout)
        cursor, registration = await self._call(self.pool.wait_start, condition_id)
        if registration.status is not WakeRegistrationStatus.REGISTERED:
            return registration
        future = self._waiters.add(condition_id, 0 if cursor is None else cursor.sequence)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            return registration
        finally:
            self._waiters.remove(condition_id, future)


class _Waiters:
    """The wakes awaited through one ``AsyncAgentPool``, and the task that watches for them.

    Each waiter has the cursor its registration was read at; the watcher reads the pool's
    records after the smallest such cursor (a new waiter may move it back), so no change after
    any waiter's read is missed, and resolves the futures of the wakes that left ``registered``.
    """

    def __init__(self, pool: AsyncAgentPool) -> None:
        self._pool = pool
        self._waiting: dict[str, dict[asyncio.Future[WakeRegistration], int]] = {}
        self._after: int | None = None
        self._added = False  # a waiter was added since the watcher last read
        self._task: asyncio.Task[None] | None = None

    def add(self, condition_id: str, cursor: int) -> asyncio.Future[WakeRegistration]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[WakeRegistration] = loop.create_future()
        self._waiting.setdefault(condition_id, {})[future] = cursor
        self._after = cursor if self._after is None else min(self._after, cursor)
        self._added = True
        if self._task is None:
            self._task = loop.create_task(self._watch())
        return future

    def remove(self, condition_id: str, future: asyncio.Future[WakeRegistration]) -> None:
        futures = self._waiting.get(condition_id, {})
        futures.pop(future, None)
        if not futures:
            self._waiting.pop(condition_id, None)

    async def _watch(self) -> None:
        pool = self._pool
        store: Any = pool.pool.store
        seen: object = None
        try:
            while self._waiting:
                after = self._after
                assert after is not None
                token = await self._changed(store, seen)
                if token is None:
                    return  # nobody waits any more
                records = await pool._call(_records_after, pool.pool, after)
                for record in records:
                    self._resolve(record)
                if records:
                    self._after = max(after, records[-1].cursor.sequence)
                else:
                    seen = token  # every record up to this token is read
        except BaseException as error:  # the store failed or closed: every waiter is told
            for futures in self._waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
            if not isinstance(error, Exception):
                raise
        finally:
            self._task, self._after = None, None

    async def _changed(self, store: Any, seen: object) -> object | None:
        """The store's change token once it is not ``seen`` (at once when ``seen`` is ``None``),
        or ``None`` once nobody waits.

        Read on the loop where the store answers there (SQLite's change probe, a few tenths of
        a microsecond: looked at every ``POLL_INTERVAL``); else one thread of the loop's default
        executor waits on the store for every waiter (PostgreSQL's LISTEN wakes it at once).
        """
        loop = asyncio.get_running_loop()
        while self._waiting:
            if self._added:
                # A waiter came in since the last read: read once whatever the token, from its cursor.
                self._added, seen = False, None
            if store._closed.is_set():
                raise AgentError(
                    AgentErrorKind.INVALID_STATE_TRANSITION,
                    RetryClassification.NOT_RETRYABLE,
                    "the store was closed while waiting for a wake",
                )
            if store._answers_on_loop():
                token: object = None
                if try_lock(store._lock):
                    try:
                        token = store._change_token()
                    finally:
                        store._lock.release()
                if token is not None and (seen is None or token != seen):
                    return token
                await asyncio.sleep(POLL_INTERVAL)
                continue
            token = await loop.run_in_executor(None, _token_after, store, seen)
            if seen is None or token != seen:
                return token
        return None

    def _resolve(self, record: AgentPoolStoreRecord) -> None:
        payload = record.payload
        if type(payload) is not WakeRecorded:
            return
        futures = self._waiting.get(payload.stored.condition.condition_id)
        registration = payload.stored.registration
        if not futures or registration.status is WakeRegistrationStatus.REGISTERED:
            return
        for future, cursor in futures.items():
            if record.cursor.sequence > cursor and not future.done():
                future.set_result(registration)


def _records_after(pool: AgentPool, after: int) -> list[AgentPoolStoreRecord]:
    return list(pool.watch_pool(after))


def _token_after(store: Any, seen: object) -> object:
    """On a worker: the store's change token, once it differs from ``seen`` or a second has passed."""
    if seen is not None:
        store._wait_for_change(seen, 1.0)
    with store._lock:
        return store._change_token()


def _check_workers(workers: Any) -> None:
    if type(workers) is not int or workers < 1:
        raise InvalidInput(f"workers: expected a positive int, got {workers!r}")

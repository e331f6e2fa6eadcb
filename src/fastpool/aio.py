"""asyncio access to a store: the ``AgentPoolStore`` methods as coroutines, and ``async for`` over ``follow``.

No call blocks the event loop, and none hops to a thread it does not need. A read the warm
cache can answer (the change probe says nothing was committed since) runs on the loop:
``message_receipt``, ``wake_registration``, ``wake``, ``member``, ``members``, ``topics``
and ``topic_members`` (a few microseconds). A read that needs SQLite (catching up on other
writers' records, ``snapshot``, ``watch``) runs on a worker thread, as does any call while
the store's lock is taken by another thread. The writes of concurrent tasks join the store's
group commit (``SqliteAgentPoolStore``): a write is queued from the loop, a worker thread
leads the group, and the loop is told once per group; ``open_pool`` and
``next_event_sequence`` run on a worker. With the ``PRAGMA data_version`` probe (a file not in
WAL mode), which may wait for a lock, and with stores that read over a network, every call
runs on a worker. One store per loop is safe with any number of concurrent tasks.

Follows cost next to nothing while idle: one watcher task per wrapper polls the store's
change token (no disk access while nothing was committed) at the smallest ``poll_interval``
of the live follows, and wakes only the follows whose pool grew; each of them then reads
its new records once. The watcher stops when the last follow ends.

Cancelling a write coroutine does not cancel the write: a write once queued (for a group
or for a free thread) runs to its end. The coroutine raises ``CancelledError`` at once;
every call made on the wrapper after that starts only once the write has ended, so it sees
whether the write committed.

``async with store.transaction():`` is the store's ``transaction()``: it runs on a thread of
its own that holds the store's lock, and the calls of the task that entered it (and of the
tasks it starts inside) run there, in the transaction; other tasks' calls wait until it ends.

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
import contextvars
import os
import threading
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

from ._base import _FOLLOW_BATCH, NeedsWorker, Queued, StoreBase, check_cursor, loop_call, try_lock
from ._group_commit import LoopRequest
from ._shielded import CancelledCalls
from .errors import AgentError, InvalidInput
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
_WORKER = object()  # what a call tried on the loop answers when it has to run on a worker
# The async transaction the current task (and the tasks it started inside) runs in.
_transaction: contextvars.ContextVar[_Transaction | None] = contextvars.ContextVar(
    "fastpool_aio_transaction", default=None
)


class _Sink:
    """One loop's ``LoopDoor``: where a group commit hands back the outcomes of writes queued
    from the loop.

    ``done`` (on the leading worker) queues an outcome and wakes the loop, once for all the
    outcomes queued before it runs; ``lead`` gives a worker thread the lead of a group.
    """

    __slots__ = ("loop", "_executor", "_done", "_woken")

    def __init__(self, loop: asyncio.AbstractEventLoop, executor: ThreadPoolExecutor):
        self.loop = loop
        self._executor = executor
        self._done: deque[LoopRequest] = deque()  # appended by workers, emptied on the loop
        self._woken = False

    def future(self) -> asyncio.Future[Any]:
        return self.loop.create_future()

    def done(self, request: LoopRequest) -> None:
        self._done.append(request)
        if not self._woken:
            self._woken = True
            try:
                self.loop.call_soon_threadsafe(self._resolve)
            except RuntimeError:
                pass  # the loop is closed: nobody is waiting

    def _resolve(self) -> None:
        self._woken = False  # before emptying: an outcome queued from now on wakes the loop again
        done = self._done
        while done:
            request = done.popleft()
            if request.resolved:
                continue  # handed over twice (an interrupt in the group's finish): taken once
            request.resolved = True  # before its cancelled task looks (see _settle_queued)
            future = request.future
            if future.cancelled():
                continue  # its task was cancelled; nobody waits for it
            if request.error is not None:
                future.set_exception(request.error)
            else:
                assert request.result is not None
                future.set_result(request.shape(*request.result))

    def lead(self, run: Callable[[], object]) -> None:
        try:
            self._executor.submit(run)
        except RuntimeError:  # the wrapper is closed, its workers gone: a thread for this group
            threading.Thread(target=run, daemon=True).start()


class _Transaction:
    """``async with store.transaction()``: the sync ``transaction()`` entered and left on a
    thread of its own, which runs every call made inside it."""

    def __init__(self, wrapper: AsyncAgentPoolStore) -> None:
        self._wrapper = wrapper
        self._executor: ThreadPoolExecutor | None = None
        self._context: Any = None
        self._token: contextvars.Token[_Transaction | None] | None = None

    def run(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        assert self._executor is not None
        return asyncio.get_running_loop().run_in_executor(self._executor, partial(function, *args))

    async def __aenter__(self) -> AsyncAgentPoolStore:
        wrapper = self._wrapper
        if not isinstance(wrapper.store, SqliteAgentPoolStore):
            raise AgentError.host_configuration_needed(
                f"transaction() needs a SqliteAgentPoolStore; this wrapper holds a {type(wrapper.store).__name__}"
            )
        open_ = _transaction.get()
        if open_ is not None and open_._wrapper is wrapper:
            raise InvalidInput("transaction: this store object already has a transaction open")
        await wrapper._cancelled.settled()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastpool-aio-transaction")
        self._context = wrapper.store.transaction()
        entered = self.run(self._context.__enter__)
        try:
            await asyncio.shield(entered)
        except asyncio.CancelledError:
            entered.add_done_callback(self._leave_entered)  # when it has begun: roll it back there
            raise
        except BaseException:
            self._executor.shutdown(wait=False)
            raise
        self._token = _transaction.set(self)
        return wrapper

    def _leave_entered(self, entered: asyncio.Future[Any]) -> None:
        assert self._executor is not None
        if not entered.cancelled() and entered.exception() is None:
            error = asyncio.CancelledError()
            self._executor.submit(self._context.__exit__, type(error), error, None)
        self._executor.shutdown(wait=False)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> bool:
        assert self._token is not None and self._executor is not None
        _transaction.reset(self._token)
        executor, self._executor = self._executor, None
        try:
            # Shielded as a write: cancelled, the commit (or rollback) still runs to its end.
            left = asyncio.get_running_loop().run_in_executor(
                executor, partial(self._context.__exit__, kind, error, traceback)
            )
            return bool(await self._wrapper._cancelled.shielded(left))
        finally:
            executor.shutdown(wait=False)


class _Followed:
    """One pool's follows: the highest cursor known to exist, and a future resolved (then
    replaced) whenever that rises or the store closes."""

    __slots__ = ("last", "changed", "follows")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.last = 0
        self.follows = 0
        self.changed: asyncio.Future[None] = loop.create_future()

    def rise(self, last: int) -> None:
        if last > self.last:
            self.last = last
            self.wake()

    def wake(self) -> None:
        self.changed.set_result(None)
        self.changed = self.changed.get_loop().create_future()


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
        # The loop's groups are led on a thread of their own: a worker can wait in a group
        # as a follower, and with every worker so waiting, a lead queued behind them would
        # never run (the leader never waits for another write, so one thread is enough).
        self._leader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastpool-aio-lead")
        self._sink: _Sink | None = None  # of the loop the wrapper is used on
        self._closed = False
        self._cancelled = CancelledCalls()  # cancelled writes still running
        self._followed: dict[str, _Followed] = {}
        self._fresh: set[str] = set()  # pools followed since the watcher's last round began
        self._polls: Counter[float] = Counter()  # the poll intervals of the live follows
        self._watcher: asyncio.Task[None] | None = None

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

    def transaction(self) -> _Transaction:
        """``async with store.transaction():`` the store's ``transaction()``: the writes of the
        block in one ``BEGIN IMMEDIATE`` ... ``COMMIT``, all or nothing (see the module's doc)."""
        return _Transaction(self)

    async def _lookup(self, function: Callable[..., T], *args: Any) -> T:
        """A read: on the loop if the warm cache answers it, else on a worker."""
        if not self._cancelled and _transaction.get() is None:
            answer = self._on_loop(function, args, True)
            if answer is not _WORKER:
                return answer  # type: ignore[no-any-return]
        return await self._call(function, *args)

    async def _write(self, function: Callable[..., T], *args: Any) -> T:
        """A write: queued for the store's next group from the loop (memory: done on the loop
        if its lock is free), else on a worker."""
        if not self._cancelled and _transaction.get() is None:
            outcome = self._on_loop(function, args, False)
            if type(outcome) is LoopRequest:
                return await self._settle_queued(outcome)  # type: ignore[no-any-return]
            if outcome is not _WORKER:
                return outcome  # type: ignore[no-any-return]
        return await self._call(function, *args, write=True)

    def _on_loop(self, function: Callable[..., Any], args: tuple[Any, ...], read: bool) -> Any:
        """``function(*args)`` on the loop's thread through its door (``loop_call``): its result,
        the ``LoopRequest`` of a write queued for a group commit (``Queued``), or ``_WORKER``."""
        store = self.store
        if self._closed or not store._answers_on_loop():
            return _WORKER
        if read and not try_lock(store._lock):
            return _WORKER  # another thread holds the store (a group committing, a transaction)
        sink = self._sink
        if sink is None or sink.loop is not asyncio.get_running_loop():
            sink = self._sink = _Sink(asyncio.get_running_loop(), self._leader)
        loop_call.door = sink
        try:
            return function(*args)
        except NeedsWorker:
            return _WORKER
        except Queued as queued:
            return queued.request  # dropped here: its traceback holds the frames it left
        finally:
            loop_call.door = None
            if read:
                store._lock.release()

    async def _call(self, function: Callable[..., T], *args: Any, write: bool = False) -> T:
        # Start after the writes cancelled so far have ended, so as to see their outcome.
        await self._cancelled.settled()
        if self._closed:
            # The workers are gone; the closed store answers as the sync one does, at once
            # (SQLite: its "store is closed" error; memory: from memory).
            return function(*args)
        transaction = _transaction.get()
        if transaction is not None and transaction._wrapper is self and transaction._executor is not None:
            future = transaction.run(function, *args)  # inside the transaction, on its thread
        else:
            future = asyncio.get_running_loop().run_in_executor(self._executor, partial(function, *args))
        if not write:
            return await future
        return await self._cancelled.shielded(future)

    async def _settle_queued(self, request: LoopRequest) -> Any:
        """A queued write's outcome. Cancelled, the caller stops waiting (its future is
        cancelled), but the write runs on: a new future takes its outcome, for ``_cancelled``."""
        try:
            return await request.future
        except asyncio.CancelledError:
            # Still running: a new future takes the outcome. Already resolved (the loop took
            # the outcome before the task saw its cancellation): nothing is left to wait for.
            if request.future.cancelled() and not request.resolved:
                request.future = running = request.door.future()
                self._cancelled.keep(running)
            raise

    async def close(self) -> None:
        """Close the wrapped store (ending ``follow`` loops) and the worker threads."""
        close = getattr(self.store, "close", None)
        if close is not None:
            await self._call(close, write=True)
        self._closed = True
        self._executor.shutdown(wait=False)
        self._leader.shutdown(wait=False)
        self._wake_all()

    def stats(self) -> dict[str, int]:
        """The wrapped store's counters (``SqliteAgentPoolStore.stats``): no I/O, so not a coroutine.
        The writes made on the loop are in its ``groups``: they join the store's group commit."""
        return self.store.stats()

    async def __aenter__(self) -> AsyncAgentPoolStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open_pool(self, pool_id: str, config: AgentPoolStoreConfig) -> AgentPoolSnapshot:
        """The coroutine form of ``AgentPoolStore.open_pool``."""
        return await self._call(self.store.open_pool, pool_id, config, write=True)

    async def snapshot(self, pool_id: str) -> AgentPoolSnapshot:
        """The coroutine form of ``AgentPoolStore.snapshot``."""
        return await self._call(self.store.snapshot, pool_id)

    async def record_pool_created(self, pool_id: str) -> AgentPoolStoreCursor:
        """The coroutine form of ``AgentPoolStore.record_pool_created``."""
        return await self._write(self.store.record_pool_created, pool_id)

    async def record_pool_created_once(self, pool_id: str) -> AgentPoolStoreCursor | None:
        """The coroutine form of ``AgentPoolStore.record_pool_created_once``."""
        return await self._write(self.store.record_pool_created_once, pool_id)

    async def join_member(self, pool_id: str, member: AgentPoolMember) -> AgentPoolStoreCursor:
        """The coroutine form of ``AgentPoolStore.join_member``."""
        return await self._write(self.store.join_member, pool_id, member)

    async def leave_member(self, pool_id: str, run_id: str) -> tuple[AgentPoolMember, AgentPoolStoreCursor]:
        """The coroutine form of ``AgentPoolStore.leave_member``."""
        return await self._write(self.store.leave_member, pool_id, run_id)

    async def members(self, pool_id: str) -> tuple[AgentPoolMember, ...]:
        """The coroutine form of ``AgentPoolStore.members``."""
        return await self._lookup(self.store.members, pool_id)

    async def member(self, pool_id: str, run_id: str) -> AgentPoolMember | None:
        """The coroutine form of ``AgentPoolStore.member``."""
        return await self._lookup(self.store.member, pool_id, run_id)

    async def topics(self, pool_id: str) -> tuple[str, ...]:
        """The coroutine form of ``AgentPoolStore.topics``."""
        return await self._lookup(self.store.topics, pool_id)

    async def topic_members(self, pool_id: str, topic: str) -> tuple[AgentPoolMember, ...]:
        """The coroutine form of ``AgentPoolStore.topic_members``."""
        return await self._lookup(self.store.topic_members, pool_id, topic)

    async def message_receipt(self, pool_id: str, idempotency_key: str) -> MessageReceipt | None:
        """The coroutine form of ``AgentPoolStore.message_receipt``."""
        return await self._lookup(self.store.message_receipt, pool_id, idempotency_key)

    async def record_message(self, pool_id: str, message: RunMessage, receipt: MessageReceipt) -> AgentPoolStoreCursor:
        """The coroutine form of ``AgentPoolStore.record_message``."""
        return await self._write(self.store.record_message, pool_id, message, receipt)

    async def record_message_once(
        self, pool_id: str, message: RunMessage, receipt: MessageReceipt, *, expected: MessageReceipt | None = None
    ) -> tuple[MessageReceipt, AgentPoolStoreCursor | None]:
        """The coroutine form of ``AgentPoolStore.record_message_once``."""
        if expected is None:
            return await self._write(self.store.record_message_once, pool_id, message, receipt)
        once = partial(self.store.record_message_once, expected=expected)
        return await self._write(once, pool_id, message, receipt)

    async def wake_registration(self, pool_id: str, idempotency_key: str) -> WakeRegistration | None:
        """The coroutine form of ``AgentPoolStore.wake_registration``."""
        return await self._lookup(self.store.wake_registration, pool_id, idempotency_key)

    async def wake(self, pool_id: str, condition_id: str) -> AgentPoolStoredWake | None:
        """The coroutine form of ``AgentPoolStore.wake``."""
        return await self._lookup(self.store.wake, pool_id, condition_id)

    async def record_wake(
        self,
        pool_id: str,
        condition: WakeCondition,
        compiled_filter: CompiledEventFilter,
        registration: WakeRegistration,
    ) -> AgentPoolStoreCursor:
        """The coroutine form of ``AgentPoolStore.record_wake``."""
        return await self._write(self.store.record_wake, pool_id, condition, compiled_filter, registration)

    async def record_wake_once(
        self,
        pool_id: str,
        condition: WakeCondition,
        compiled_filter: CompiledEventFilter,
        registration: WakeRegistration,
        *,
        expected: WakeRegistration | None = None,
    ) -> tuple[WakeRegistration, AgentPoolStoreCursor | None]:
        """The coroutine form of ``AgentPoolStore.record_wake_once``."""
        if expected is None:
            return await self._write(self.store.record_wake_once, pool_id, condition, compiled_filter, registration)
        once = partial(self.store.record_wake_once, expected=expected)
        return await self._write(once, pool_id, condition, compiled_filter, registration)

    async def watch(self, pool_id: str, cursor: AgentPoolStoreCursor | int | None = None) -> list[AgentPoolStoreRecord]:
        """The records after ``cursor``, as a list (read in one go, like the sync ``watch``)."""
        return await self._call(lambda: list(self.store.watch(pool_id, cursor)))

    async def next_event_sequence(self, pool_id: str) -> int:
        """The coroutine form of ``AgentPoolStore.next_event_sequence``."""
        return await self._call(self.store.next_event_sequence, pool_id, write=True)

    async def delete_pool(self, pool_id: str) -> tuple[int, int, int | None]:
        """The coroutine form of ``delete_pool`` (on a worker, as every write that is not an append)."""
        return await self._call(self.store.delete_pool, pool_id, write=True)

    def follow(
        self,
        pool_id: str,
        cursor: AgentPoolStoreCursor | int | None = None,
        *,
        poll_interval: float = 0.05,
        timeout: float | None = None,
    ) -> AsyncIterator[AgentPoolStoreRecord]:
        """``async for`` over records as any process appends them (see ``follow`` on the store).

        Arguments are checked at the call, as the sync ``follow`` does. While caught up, a
        follow waits on the event loop for the wrapper's watcher (see the module's doc).
        """
        after = check_cursor(cursor)
        self.store.follow(pool_id, after, poll_interval=poll_interval, timeout=timeout)  # validates only
        return self._follow(pool_id, after, poll_interval, timeout)

    async def _follow(
        self, pool_id: str, after: int, poll_interval: float, timeout: float | None
    ) -> AsyncIterator[AgentPoolStoreRecord]:
        loop = asyncio.get_running_loop()
        followed = self._followed.get(pool_id)
        if followed is None:
            followed = self._followed[pool_id] = _Followed(loop)
            self._fresh.add(pool_id)
        followed.follows += 1
        self._polls[poll_interval] += 1
        if self._watcher is None:
            self._watcher = loop.create_task(self._watch())
        try:
            deadline = None if timeout is None else loop.time() + timeout
            while True:
                records = await self._call(self._read, pool_id, after)
                for record in records:
                    after = record.cursor.sequence
                    yield record
                if records:
                    deadline = None if timeout is None else loop.time() + timeout
                    if len(records) == _FOLLOW_BATCH:
                        continue  # a backlog: read on
                # Caught up as of the read: wait for the watcher to see the pool grow past it.
                while followed.last <= after:
                    if self.store._closed.is_set():
                        return
                    remaining = None if deadline is None else deadline - loop.time()
                    if remaining is not None and remaining <= 0:
                        return
                    # asyncio.wait never cancels the shared future, whatever happens to this task.
                    await asyncio.wait((followed.changed,), timeout=remaining)
        finally:
            followed.follows -= 1
            if not followed.follows:
                del self._followed[pool_id]
            self._polls[poll_interval] -= 1
            if not self._polls[poll_interval]:
                del self._polls[poll_interval]

    def _read(self, pool_id: str, after: int) -> list[AgentPoolStoreRecord]:
        """One follow's next records (on a worker); none once the store is closed."""
        with self.store._lock:
            return [] if self.store._closed.is_set() else self.store._batch_after(pool_id, after)

    async def _watch(self) -> None:
        """Poll the change token while any follow is live; raise each grown pool's ``last``."""
        seen: object = None
        try:
            while True:
                await asyncio.sleep(min(self._polls, default=0))
                if not self._followed:
                    return  # the last follow has ended
                if self.store._closed.is_set():
                    self._wake_all()  # the follows return; new ones start a new watcher
                    return
                fresh, self._fresh = self._fresh, set()
                try:
                    seen, lasts = await self._call(self._grown, seen, list(self._followed), fresh)
                except AgentError:
                    # Every follow reads for itself, and meets the error (or the closed store) there.
                    seen = None
                    self._wake_all()
                    continue
                for pool_id, last in lasts.items():
                    followed = self._followed.get(pool_id)
                    if followed is not None:
                        followed.rise(last)
        finally:
            self._watcher = None

    def _grown(self, seen: object, pool_ids: list[str], fresh: set[str]) -> tuple[object, dict[str, int]]:
        """The change token and the last cursor of each pool (on a worker); if the token is
        ``seen``, of the ``fresh`` pools only.

        A commit after the token is read is in the cursors or changes the next token. A pool
        followed after the previous round took its list may have missed a commit that this
        token already shows: it is ``fresh``, so scanned anyway. No commit goes unseen. The
        lock is taken per pool, so that writes do not wait for the whole scan.
        """
        store = self.store
        with store._lock:
            token = store._change_token()
        lasts = {}
        for pool_id in fresh if token == seen else pool_ids:
            with store._lock:
                lasts[pool_id] = store._last_sequence(pool_id)
        return token, lasts

    def _wake_all(self) -> None:
        for followed in self._followed.values():
            followed.wake()


from .aio_pool import AsyncAgentPool  # noqa: E402  (the coordinator as coroutines; its own module)

__all__ += ["AsyncAgentPool"]

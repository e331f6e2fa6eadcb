"""Coordinator calls in groups: one transaction, one commit, for the calls that arrive together.

``AsyncAgentPool`` on a runtime whose calls are transactions (``DatabaseRuntime`` on SQLite)
queues each call that writes here instead of giving it a thread hop of its own. A worker
thread leads: it takes the queued calls (at most ``_GROUP_LIMIT``), runs them in arrival order
in one ``runtime.transaction()``, commits once, and tells the loop once per group. While the
loop's tasks keep calling, the worker waits a moment for their next calls instead of handing
the lead back (as the store's group commit does). If a call raises, the group rolls back and
its calls run again one by one, each in a transaction of its own, so a failing call leaves
nothing and the others commit; a group that does not commit (its transaction failed) fails
every call of it, and nothing of theirs is stored.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError

__all__ = ["CallGroups"]

#: Calls per group at most: a group holds the store's lock until it commits.
_GROUP_LIMIT = 64
#: Seconds the worker waits at most for the loop's next calls after a group.
_GATHER_MAX = 0.002


class _Call:
    __slots__ = ("run", "future", "result", "error")

    def __init__(self, run: Callable[[], Any], future: asyncio.Future[Any]) -> None:
        self.run = run
        self.future = future
        self.result: Any = None
        self.error: BaseException | None = None


class CallGroups:
    """The calls queued from one event loop for the next group, and the worker leading them.

    ``transaction`` opens the group's transaction; each call, run alone, opens its own.
    """

    def __init__(self, executor: Executor, transaction: Callable[[], Any]) -> None:
        self._executor = executor
        self._transaction = transaction
        self._queue: deque[_Call] = deque()
        self._arrived = threading.Condition(threading.Lock())
        self._leading = False
        self._last_group, self._last_took = 1, 0.0

    def submit(self, run: Callable[[], Any]) -> asyncio.Future[Any]:
        """Queue ``run`` (on the loop's thread) for the next group; its future has the outcome."""
        loop = asyncio.get_running_loop()
        call = _Call(run, loop.create_future())
        with self._arrived:
            self._queue.append(call)
            lead = not self._leading
            self._leading = True
            self._arrived.notify()
        if lead:
            try:
                self._executor.submit(self._lead, loop)
            except BaseException:
                with self._arrived:
                    self._queue.remove(call)
                    self._leading = False
                raise
        return call.future

    def _lead(self, loop: asyncio.AbstractEventLoop) -> None:
        """On a worker: run groups while calls are queued, then give the lead up."""
        while True:
            with self._arrived:
                if len(self._queue) < self._last_group:
                    self._arrived.wait_for(
                        lambda: len(self._queue) >= self._last_group, min(self._last_took, _GATHER_MAX)
                    )
                group = [self._queue.popleft() for _ in range(min(len(self._queue), _GROUP_LIMIT))]
                if not group:
                    self._leading = False
                    return
            started = time.perf_counter()
            try:
                self._run(group)
            finally:
                self._last_group, self._last_took = len(group), time.perf_counter() - started
                try:
                    loop.call_soon_threadsafe(_resolve, group)
                except RuntimeError:
                    pass  # the loop is closed: nobody is waiting

    def _run(self, group: list[_Call]) -> None:
        if len(group) > 1:
            try:
                self._run_together(group)
                return
            except _CallFailed:
                pass  # rolled back whole: each call runs again, alone
        for call in group:
            call.result, call.error = None, None
            try:
                call.result = call.run()  # a transaction of its own
            except Exception as error:
                call.error = error

    def _run_together(self, group: list[_Call]) -> None:
        """The group's calls in one transaction; ``_CallFailed`` (after the rollback) if one raised.

        No savepoint per call (one costs each page written a copy): a call that raises leaves
        writes of its own in the transaction, so the whole group rolls back and runs again
        call by call, which a failing call's outcome is then.
        """
        try:
            with self._transaction():
                for call in group:
                    try:
                        call.result = call.run()
                    except Exception as error:
                        raise _CallFailed from error
        except _CallFailed:
            raise
        except BaseException as error:
            failed = error
            if not isinstance(error, AgentError):
                failed = AgentError(
                    AgentErrorKind.INVALID_STATE_TRANSITION,
                    RetryClassification.RETRYABLE,
                    f"the group of calls holding this one failed ({type(error).__name__}: {error}) before it "
                    "committed: nothing of this call was stored; retry it",
                )
            for call in group:
                call.result, call.error = None, copy.copy(failed)
                call.error.__cause__ = error
            if not isinstance(error, Exception):
                raise


class _CallFailed(Exception):
    """A call of a group raised: the group's transaction rolls back."""


def _resolve(group: list[_Call]) -> None:
    """On the loop: hand each call of a group its outcome."""
    for call in group:
        future = call.future
        if future.cancelled():
            continue
        if call.error is not None:
            future.set_exception(call.error)
        else:
            future.set_result(call.result)

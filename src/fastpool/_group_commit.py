"""The group commit: concurrent writes share one transaction, one commit.

A scheduler that knows nothing about pools or files: a write is a request (an opaque
``pool_id`` and ``build``, then its outcome); the store that owns the scheduler
(``Committer``) appends a lone write by itself and commits a group of them in one
transaction. A thread's write waits for its group; a write made on an event loop
(``LoopRequest``) does not wait: its loop's sink takes the outcome and gives a worker
thread the lead of a group.
"""

from __future__ import annotations

import copy
import threading
import time
from _thread import allocate_lock as _new_lock
from typing import Any, Protocol

from ._base import Build, LoopDoor, Queued, Shape, loop_call
from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError

__all__ = ["Committer", "GroupCommit", "LoopRequest", "Request"]

# Writes per group at most: a group holds the store's lock (and reads) until it commits.
_GROUP_LIMIT = 64
_GATHER_MAX = 0.002  # seconds a leader waits at most for the writers of the last group


class Request:
    """One write queued for a group commit by a thread: its pool and payload builder, then
    its outcome.

    A thread that does not lead waits on ``waiter``, released once the outcome is in, or
    with ``leads`` set for the thread to lead the next group itself. ``promote`` and
    ``finish`` may be called again after an interrupt: each acts once.
    """

    __slots__ = ("pool_id", "build", "result", "error", "waiter", "leads", "finished")

    def __init__(self, pool_id: str, build: Build) -> None:
        self.pool_id = pool_id
        self.build = build
        self.result: tuple[Any, int] | None = None
        self.error: BaseException | None = None
        self.waiter: Any = None
        self.leads = False
        self.finished = False

    def queue_behind(self) -> None:
        """Queued behind a group in flight: the thread will wait (see ``wait``)."""
        self.waiter = _new_lock()
        self.waiter.acquire()

    def wait(self) -> bool:
        """Until the outcome is in (False) or the thread is to lead the next group (True)."""
        self.waiter.acquire()
        return self.leads

    def finish(self) -> None:
        if not self.finished and self.waiter is not None and not self.leads:  # else its thread is the leader
            self.finished = True
            self.waiter.release()

    def promote(self) -> None:
        if not self.leads:
            self.leads = True
            self.waiter.release()

    def outcome(self) -> tuple[Any, int]:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class LoopRequest(Request):
    """A write queued by a method running on an event loop (``fastpool.aio``): the loop does
    not wait; its ``door`` takes the outcome, shaped into the method's result by ``shape``,
    and finds a worker thread to run ``lead`` when the write is to lead a group."""

    __slots__ = ("shape", "door", "future", "resolved", "_scheduler", "_owner")

    def __init__(  # the hot path: no super()
        self, pool_id: str, build: Build, shape: Shape, door: LoopDoor, scheduler: GroupCommit, owner: Committer
    ) -> None:
        self.pool_id = pool_id
        self.build = build
        self.result = None
        self.error = None
        self.waiter = None
        self.leads = False
        self.finished = False
        self.shape = shape
        self.door = door
        self.future = door.future()  # made now, on the loop's thread
        self.resolved = False  # the loop has taken the outcome (set on the loop's thread)
        self._scheduler = scheduler
        self._owner = owner

    def queue_behind(self) -> None:
        pass

    def finish(self) -> None:
        if not self.finished:
            self.door.done(self)  # twice after an interrupt in it: the loop takes the outcome once
            self.finished = True

    def promote(self) -> None:
        if not self.leads:
            self.door.lead(self.lead)
            self.leads = True

    def lead(self) -> None:
        """On a worker thread: lead the group of this write (and of the loop's writes queued next)."""
        self._scheduler.lead_on_worker(self._owner, self)


class Committer(Protocol):
    """What a group commit runs its writes with: the store that owns it."""

    def _append(self, pool_id: str, build: Build) -> tuple[Any, int]:
        """A lone write in a transaction of its own (the store's lock held)."""

    def _commit_group(self, group: list[Request]) -> None:
        """The group's writes in one transaction, each given its outcome (the store's lock held)."""


class GroupCommit:
    """The queue of writes waiting for the next group, and who leads it.

    Every method takes the ``Committer`` as an argument rather than keeping it, so a store
    and its scheduler hold no reference cycle (a store dropped unclosed is collected at once).
    ``lock`` is the store's: a group commits holding it.
    """

    def __init__(self, lock: Any, prefix: str) -> None:
        self._lock = lock
        self._prefix = prefix  # how the store's errors begin
        self._queue: list[Request] = []  # writes waiting for the next group, in arrival order
        self._queue_lock = threading.Lock()
        self._leading: object = None  # the write whose thread leads (or is about to lead) a group
        self._gate: Any = None  # held while a leader waits for company (see _gather)
        self._last_group, self._last_took = 1, 0.0  # the last group's size and seconds
        self.groups = self.grouped_writes = self.largest_group = 0  # groups committed (stats())

    # -- group commit --------------------------------------------------------------------------
    #
    # Interrupts: an exception (a signal handler's) can land wherever CPython checks for one,
    # on entering a function and after a C call returns. Each step below either leaves the
    # queue as it was or is repaired by a handler of its caller, and the steps a handler
    # repeats act once: the group is taken from the queue with no call in between, ``_leading``
    # names the write whose thread leads (a lone writer's ``build``), so a repeated hand-over
    # acts only if its caller still leads, and ``promote`` and ``finish`` act once each.

    def submit(self, owner: Committer, pool_id: str, build: Build, shape: Shape) -> Any:
        """A write method's append: in a group of its own if no other writer is about,
        else in the next group (leading it if no group is in flight). On an event loop's
        thread (through a ``LoopDoor``) the write is queued, and ``Queued`` raised with it."""
        lock = self._lock
        if lock._is_owned():
            # This thread holds the lock (inside transaction(), say): a group would wait for it.
            return shape(*owner._append(pool_id, build))
        door = loop_call.door
        request: Request | None = None
        try:
            with self._queue_lock:
                leads = self._leading is None
                if leads and self._last_group == 1 and door is None:
                    self._leading = build  # alone: no writer beside this one lately
                else:
                    if door is None:
                        request = Request(pool_id, build)
                    else:
                        request = LoopRequest(pool_id, build, shape, door, self, owner)
                    self._queued(request, leads)
            if request is None:
                # Its own transaction, without a queue; writes that arrive meanwhile queue for the next group.
                with lock:
                    done = shape(*owner._append(pool_id, build))
                self._hand_over(build)
                return done
            if door is None:
                if not leads:
                    leads = request.wait()  # with the outcome, or to lead the next group
                if leads:
                    self._lead(owner, request)
                return shape(*request.outcome())
            if leads:
                door.lead(request.lead)  # type: ignore[attr-defined]  # a LoopRequest
        except BaseException:
            if request is None:
                self._hand_over(build)
            else:
                self._withdraw(request)
            raise
        raise Queued(request)  # the loop does not wait: its door takes the outcome

    def _queued(self, request: Request, leads: bool) -> None:
        """Queue a write (the queue's lock held); one queued behind a group in flight may
        complete the company a gathering leader waits for."""
        queue = self._queue
        if leads:
            request.leads = True
            queue.append(request)
            self._leading = request
            return
        request.queue_behind()
        queue.append(request)
        if self._gate is not None and len(queue) >= self._last_group:
            gate, self._gate = self._gate, None
            gate.release()

    def _withdraw(self, request: Request) -> None:
        """The thread of a queued write leaves on an exception: a write still queued never runs
        (one taken into a group runs, and the next read tells), and its lead passes on."""
        with self._queue_lock:
            if request in self._queue:
                self._queue.remove(request)
            if self._leading is request:
                self._pass_lead()

    def lead_on_worker(self, owner: Committer, request: LoopRequest) -> None:
        """Lead groups for writes made on an event loop, one after the other while the next
        write to lead is also one (a thread's write leads its own group)."""
        next_: Request | None = request
        while isinstance(next_, LoopRequest):
            next_ = self._lead(owner, next_, keep=True)

    def _lead(self, owner: Committer, own: Request, keep: bool = False) -> Request | None:
        """Run the queued writes (``own`` first) as one group once the store's lock is free,
        wake their threads (or tell their loops), and hand the lead to the first write queued
        meanwhile; with ``keep``, return that write if it was made on a loop, to lead it here."""
        group: list[Request] = []
        try:
            handled = False
            try:
                self._gather()
                with self._lock:
                    with self._queue_lock:  # taken with no call in between: an interrupt loses none
                        group = self._queue[:_GROUP_LIMIT]
                        del self._queue[:_GROUP_LIMIT]
                    started = time.perf_counter()
                    owner._commit_group(group)
                    self._last_group, self._last_took = len(group), time.perf_counter() - started
                    self.groups += 1
                    self.grouped_writes += len(group)
                    self.largest_group = max(self.largest_group, len(group))
                handled = True
            except BaseException as error:
                if not group and isinstance(error, AgentError):  # the lock refused (a store inherited
                    with self._queue_lock:  # through fork): every queued write fails
                        group = self._queue[:]
                        del self._queue[:]
                self._fail(group, error)
                if not isinstance(error, AgentError):
                    raise
                handled = True
            for request in group:
                request.finish()
            return self._hand_over(own, keep and handled)
        except BaseException:
            for request in group:
                request.finish()
            self._hand_over(own)
            raise

    def _hand_over(self, own: object, keep: bool = False) -> Request | None:
        """``own``'s group has ended: if it still leads, the first write queued meanwhile
        leads the next one (returned instead if ``keep`` and it was made on a loop). With
        ``keep`` and nothing queued, the worker first waits (as ``_gather``) for the loop's
        tasks to write again, which they do once the loop has their outcomes: cheaper than
        waking a worker for their group."""
        if keep and self._last_group > 1:
            self._gather()
        with self._queue_lock:
            if self._leading is not own:
                return None  # handed over already (this is a repeat after an interrupt)
            queue = self._queue
            head = queue[0] if queue else None
            if head is not None and keep and isinstance(head, LoopRequest):
                self._leading = head
                return head
            self._pass_lead()
        return None

    def _pass_lead(self) -> None:
        """The first queued write leads next, or none (the queue's lock held)."""
        head = self._queue[0] if self._queue else None
        if head is not None:
            head.promote()
        self._leading = head

    def _gather(self) -> None:
        """Wait until as many writes are queued as the last group held, or as long as it took.

        The threads of a group are woken together and most write again at once, but the
        first of them would otherwise lead a group of one and hold the lock through its
        commit while the rest queue behind it. A lone writer (a group of one) never waits.
        """
        with self._queue_lock:
            if len(self._queue) >= self._last_group:
                return
            gate = self._gate = _new_lock()
            gate.acquire()
        gate.acquire(timeout=min(self._last_took, _GATHER_MAX))
        with self._queue_lock:
            self._gate = None

    def _fail(self, group: list[Request], error: BaseException) -> None:
        """Give every write of a failed group that has no outcome of its own a copy of the error
        (a group that did not commit has none left; see ``_commit_group``)."""
        if not isinstance(error, AgentError):
            error = AgentError(
                AgentErrorKind.INVALID_STATE_TRANSITION,
                RetryClassification.RETRYABLE,
                f"{self._prefix}the group commit holding this write was interrupted by {type(error).__name__} "
                "in another thread before it committed: nothing of this write was stored; retry it",
            )
        for request in group:
            if request.error is None and request.result is None:
                request.error = copy.copy(error)
                request.error.__cause__ = error.__cause__

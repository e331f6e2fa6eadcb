"""What both stores share: argument checks and the contract's rules, written once.

A backend plugs in through sixteen hooks. Six it must supply, each called with the store's
lock held: ``_read_state`` (the pool's cached state, caught up), ``_append`` (check, append
and apply one record atomically), ``_records_after``, ``_allocate_event_sequence``,
``_change_token`` (a value that changes whenever anything is appended anywhere) and
``_delete_pool``. Six it may override: ``_answer`` and ``_is_opened`` (a lookup answered
without the whole state: SQLite's point reads), ``_answers_on_loop`` (whether a cached read
may run on an event loop's thread), ``_wait_for_change`` (how ``follow`` waits between
checks; no lock held), ``_submit`` (how a write method appends, called without the lock:
the SQLite store groups concurrent writes into shared transactions there, and queues the
writes made through a ``LoopDoor`` without waiting) and ``_counts`` (its counters, for
``stats``). A backend the command line inspects
and copies (SQLite, PostgreSQL) also supplies four raw ones, ``_stream_rows``,
``_unopened_pools``, ``_event_sequence`` and ``_append_rows``, which take the lock themselves.
"""

from __future__ import annotations

import inspect
import os
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from ._compat import engine as default_engine
from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError, InvalidInput
from .ids import MAX_ID_BYTES, id_error

if TYPE_CHECKING:
    from ._pool_state import PoolState

from .model import (
    AgentPoolMember,
    AgentPoolSnapshot,
    AgentPoolStoreConfig,
    AgentPoolStoreCursor,
    AgentPoolStoredMessage,
    AgentPoolStoredWake,
    AgentPoolStoreRecord,
    CompiledEventFilter,
    MemberJoined,
    MemberLeft,
    MessageReceipt,
    MessageRecorded,
    PoolCreated,
    PoolOpened,
    RunMessage,
    WakeCondition,
    WakeRecorded,
    WakeRegistration,
)
from .protocol import AgentPoolStore

make = default_engine.make  # the compiled constructor when built: every write builds three objects
NOT_A_MEMBER = "run is not a member of this agent pool"
_FOLLOW_BATCH = 1000  # records read per query while following a long backlog
_POOL_CREATED = PoolCreated()
_UNKNOWN: Any = object()  # a key a state's map does not hold
_ENGINES = ("fastpool._replay", "fastpool._replay_py")
# The keys of stats(), in the order it lists them.
STATS = (
    "appends",
    "cache_hits",
    "cache_misses",
    "catch_ups",
    "records_read",
    "cache_evictions",
    "groups",
    "grouped_writes",
    "largest_group",
    "lock_waits",
)

# A payload builder: given the caught-up state (inside the write transaction), check the
# contract and return the payload to append.
Build = Callable[["PoolState"], Any]
# A stored record as it is in the table: (seq, kind, payload_json); the text is None where
# the stored value is not text (SQLite allows a BLOB there: a corrupt record).
Row = tuple[int, str, str | None]
# What a write method returns, made from the appended payload (None: nothing appended) and the cursor.
Shape = Callable[[Any, int], Any]


class NeedsWorker(Exception):
    """Raised by a backend primitive that cannot answer without I/O or waiting, during a
    ``loop_call`` (the caller then makes the call again on a worker thread)."""


class Queued(Exception):  # noqa: N818 - not an error: the outcome of a write made through the door
    """Raised by a write method called through a ``LoopDoor``, instead of waiting: the write is
    queued for a group commit, and ``request`` (its one argument) takes its outcome
    (``LoopDoor.done``)."""

    @property
    def request(self) -> Any:
        return self.args[0]


class LoopDoor(Protocol):
    """The one door by which an event loop's thread enters a store; ``fastpool.aio`` implements
    it, the group commit calls it.

    While a store method runs through the door (``loop_call.door`` set), nothing may block
    or do I/O: a read that would raises ``NeedsWorker``, and a write the group commit queues
    raises ``Queued`` with its request. Every method otherwise returns what it says.
    """

    def future(self) -> Any:
        """A new future of the loop's (called on the loop's thread) for a queued write's outcome."""

    def done(self, request: Any) -> None:
        """A queued write's outcome is in (``request.result`` or ``request.error``); any thread."""

    def lead(self, run: Callable[[], object]) -> None:
        """Call ``run`` on a worker thread: it leads the group that holds a write made on the loop."""


class _LoopCall(threading.local):
    """Set while a store method runs on an event loop's thread (``fastpool.aio``): ``door``
    takes the outcomes of the writes the method queues; nothing may block or do I/O."""

    door: LoopDoor | None = None


loop_call = _LoopCall()


def check_id(value: Any, name: str) -> str:
    """An id argument, validated: ``InvalidInput`` naming the argument otherwise."""
    if type(value) is str and value.isascii() and value.isprintable() and 0 < len(value) <= MAX_ID_BYTES:
        return value  # the common case, checked inline: printable ASCII has no Cc character
    if not isinstance(value, str):
        raise InvalidInput(f"{name}: expected an identifier string, got {type(value).__name__}")
    text = str(value)  # a str subclass becomes a plain str
    error = id_error(text)
    if error is not None:
        raise InvalidInput(f"{name}: {error}")
    return text


def check_type(value: Any, cls: type, name: str) -> None:
    if not isinstance(value, cls):
        raise InvalidInput(f"{name}: expected {cls.__name__}, got {type(value).__name__}")


def check_options(cls: type, options: dict[str, Any]) -> None:
    """``InvalidInput`` naming an option that ``cls``'s constructor does not take (an opener's
    ``**options``: Python's own ``TypeError`` would name neither the store nor its options)."""
    known = [p.name for p in inspect.signature(cls).parameters.values() if p.kind is p.KEYWORD_ONLY]
    for name in options:
        if name not in known:
            raise InvalidInput(f"{name}: not an option of {cls.__name__} (it takes {', '.join(known)})")


def check_same_id(field: str, part: Any, part_name: str, record: Any, record_name: str) -> None:
    """A receipt (registration) names the message (condition) it belongs to: ``InvalidInput`` otherwise."""
    value, expected = getattr(part, field), getattr(record, field)
    if value != expected:
        raise InvalidInput(f"{part_name}.{field}: {value!r} differs from {record_name}.{field} {expected!r}")


def key_reused(owner: str, key: str, id_name: str, recorded: str, given: str) -> InvalidInput:
    """A ``*_once`` write whose idempotency key already names another record (a key never names two records)."""
    return InvalidInput(
        f"{owner}.idempotency_key: {key!r} is already recorded for {id_name} {recorded!r}; "
        f"this {owner} has {id_name} {given!r}"
    )


def not_a_member(pool_id: str, run_id: str) -> AgentError:
    """Rust's error for a run that is not (or no longer) a member, naming both."""
    return AgentError(
        AgentErrorKind.INVALID_STATE_TRANSITION,
        RetryClassification.NOT_RETRYABLE,
        NOT_A_MEMBER,
        ids={"pool_id": pool_id, "run_id": run_id},
    )


def check_cursor(cursor: Any) -> int:
    if cursor is None:
        return 0
    if isinstance(cursor, AgentPoolStoreCursor):
        return cursor.sequence
    if type(cursor) is int and cursor >= 0:
        return cursor
    raise InvalidInput(f"cursor: expected AgentPoolStoreCursor, a non-negative int or None, got {cursor!r}")


def try_lock(lock: Any) -> bool:
    """``lock.acquire(blocking=False)`` (of an ``RLock``), also when an interrupt lands right
    after it took the lock: that lock is given back, not kept for good."""
    owned = lock._is_owned()
    try:
        return bool(lock.acquire(blocking=False))
    except BaseException:
        if not owned and lock._is_owned():
            lock.release()
        raise


class _InheritedLock:
    """The lock of a store object inherited through ``fork()``: entering it raises.

    Every store call takes the store's lock first, so this one replacement makes each call
    in the child fail at once with a clear error, instead of waiting forever on a lock some
    parent thread held at the fork, or touching the parent's connection.
    """

    __slots__ = ("_message",)

    def __init__(self, message: str) -> None:
        self._message = message

    def __enter__(self) -> None:
        raise AgentError.host_configuration_needed(self._message)

    def __exit__(self, *exc_info: object) -> None:
        pass

    def acquire(self, blocking: bool = True) -> bool:
        raise AgentError.host_configuration_needed(self._message)

    def _is_owned(self) -> bool:
        return False


class StoreBase(AgentPoolStore):
    """The methods of ``AgentPoolStore`` over a backend's primitives.

    It inherits the protocol so that every store method shows the protocol's docstring in
    ``help()``; the protocol's machinery costs nothing per call (methods are found on the
    concrete class first).
    """

    #: How the store names itself in its errors: "sqlite agent pool store" for the SQLite
    #: store; the in-memory store words its errors as Rust's in-memory store does.
    _name = "agent pool store"

    def __init__(self, engine: ModuleType | None = None) -> None:
        if engine is not None and not (isinstance(engine, ModuleType) and engine.__name__ in _ENGINES):
            raise InvalidInput(f"engine: expected the module fastpool._replay or fastpool._replay_py, got {engine!r}")
        self._lock: Any = threading.RLock()
        self._closed = threading.Event()  # wakes follow() loops when the store closes
        self._inherited = False  # True in a child process that got this object through fork()
        # The replay engine; benchmarks and differential tests pick one explicitly.
        self._engine: Any = default_engine if engine is None else engine
        self._appends = 0  # records this object appended (stats()); the backend's _append adds to it
        _live_stores.add(self)

    def _after_fork_in_child(self, parent_pid: int) -> None:
        """This object now lives in a forked child: it refuses every call from here on."""
        self._inherited = True
        self._closed = threading.Event()
        self._closed.set()
        self._lock = _InheritedLock(
            f"{self._name} was opened in process {parent_pid} and cannot be used after "
            f"fork(): open a new store in this process (pid {os.getpid()})"
        )

    # -- backend primitives ------------------------------------------------------------

    def _read_state(self, pool_id: str) -> PoolState:
        raise NotImplementedError

    def _answer(self, pool_id: str, field: str, key: str) -> Any:
        """``getattr(state, field).get(key)`` of the pool's state, ``None`` while it is not opened; a
        backend may answer without building the whole state (SQLite's point-read index)."""
        state = self._read_state(pool_id)
        return None if state.config is None else self._known(state, field, key)

    def _known(self, state: PoolState, field: str, key: str) -> Any:
        """``getattr(state, field).get(key)`` of a current state, asking the backend (``_look_up``)
        where the state was trimmed and may have forgotten the key."""
        known = getattr(state, field)
        found = known.get(key, _UNKNOWN)
        if found is _UNKNOWN:
            # A key the trim never forgot was never recorded: no look-up.
            found = self._look_up(state, field, key) if state.trimmed_to and key in state.forgotten else None
        return found

    def _look_up(self, state: PoolState, field: str, key: str) -> Any:
        """A trimmed state's answer for a key it does not hold (only backends that trim states)."""
        raise NotImplementedError

    def _snapshot_of(self, state: PoolState) -> AgentPoolSnapshot | None:
        """``state.snapshot()`` of a current state, restored first where it was trimmed."""
        if state.trimmed_to:
            self._restore(state)
        return state.snapshot()

    def _restore(self, state: PoolState) -> None:
        """Give a trimmed state back every message and wake (only backends that trim states)."""
        raise NotImplementedError

    def _changed_while_read(self, pool_id: str) -> AgentError:
        """What ``_restore`` raises when the pool's replay did not reach the state's cursor (deleted meanwhile)."""
        return AgentError(
            AgentErrorKind.INVALID_STATE_TRANSITION,
            RetryClassification.RETRYABLE,
            f"{self._name}: pool {pool_id!r} changed while it was read; retry",
        )

    def _head(self, pool_id: str) -> tuple[bool, AgentPoolStoreCursor]:
        """``snapshot(pool_id)``'s ``created`` and ``cursor`` without building the snapshot."""
        pool_id = check_id(pool_id, "pool_id")
        with self._lock:
            state = self._opened(self._read_state(pool_id))
            return bool(state.created), make(AgentPoolStoreCursor, (state.cursor,))

    def _is_opened(self, pool_id: str) -> bool:
        """Whether the pool is opened, as ``_answer`` sees it."""
        return self._read_state(pool_id).config is not None

    def _new_state(self, pool_id: str) -> PoolState:
        """An empty state for a pool, whose replay errors name this store."""
        return self._engine.PoolState(pool_id, self._name)  # type: ignore[no-any-return]

    def _decode_records(self, pool_id: str, rows: Any) -> Iterator[AgentPoolStoreRecord]:
        """Stored ``(seq, kind, payload_json)`` rows as records, one at a time (a corrupt row
        raises REPAIR_NEEDED naming the pool and the sequence)."""
        engine = self._engine
        for sequence, kind, text in rows:
            try:
                payload = engine.decode_row(kind, text)
            except InvalidInput as error:
                raise engine.corrupt_record(self._name, pool_id, sequence, error.message) from None
            yield make(AgentPoolStoreRecord, (pool_id, make(AgentPoolStoreCursor, (sequence,)), payload))

    def _append(self, pool_id: str, build: Build) -> tuple[Any, int]:
        raise NotImplementedError

    def _records_after(self, pool_id: str, after: int, limit: int = -1) -> list[AgentPoolStoreRecord]:
        raise NotImplementedError

    def _change_token(self) -> object:
        raise NotImplementedError

    def _counts(self) -> dict[str, int]:
        """The backend's counters under ``stats()``' names; a name left out reads 0."""
        return {"appends": self._appends}

    def _allocate_event_sequence(self, pool_id: str) -> int:
        raise NotImplementedError

    # -- inspection and copy (the CLI): every record, also those of a pool never opened ----

    def _stream_rows(self, pool_id: str, after: int = 0) -> Generator[Row, None, None]:
        """The pool's rows after ``after``, as stored, in flat memory whatever the pool's size."""
        raise NotImplementedError

    def _unopened_pools(self) -> set[str]:
        """The pools with records but no ``pool_opened`` among them (the Rust store appends to such pools)."""
        raise NotImplementedError

    def _event_sequence(self, pool_id: str) -> int | None:
        """The pool's last allocated event sequence, None if it never allocated one."""
        raise NotImplementedError

    def _append_rows(
        self, pool_id: str, rows: Iterable[Row], event_sequence: int | None
    ) -> tuple[int, int, int | None]:
        """Write a pool that this store does not have yet from another store's raw rows (and its
        event sequence), as they are, in one transaction; ``_pool_exists`` if the pool has records or
        an event sequence here. Returns what the pool then holds, read back after the commit:
        (record count, last sequence, event sequence)."""
        raise NotImplementedError

    def _delete_pool(self, pool_id: str) -> tuple[int, int, int | None]:
        """``delete_pool`` (self._lock held): remove the pool in one transaction, forget its
        cached state, and return (record count, last sequence, event sequence) as they were."""
        raise NotImplementedError

    def _stream(self, pool_id: str, after: int = 0) -> Generator[AgentPoolStoreRecord, None, None]:
        """The pool's records after ``after``, opened or not, decoded one row at a time."""
        with closing(self._stream_rows(pool_id, after)) as rows:
            yield from self._decode_records(pool_id, rows)

    def _answers_on_loop(self) -> bool:
        """Whether a cached read may run on an event loop's thread (``loop_call``): it then
        neither waits nor does I/O, else raises ``NeedsWorker``."""
        return False

    def _submit(self, pool_id: str, build: Build, shape: Shape) -> Any:
        """``shape`` of ``_append``'s outcome, for a write method, which holds no lock; the
        method returns it as it is (through a ``LoopDoor`` the shaped outcome is the method's
        result, and no step of the method after this call runs)."""
        if loop_call.door is None:
            with self._lock:
                return shape(*self._append(pool_id, build))
        if not try_lock(self._lock):
            raise NeedsWorker  # on an event loop, with the lock taken: wait for it on a worker
        try:
            return shape(*self._append(pool_id, build))
        finally:
            self._lock.release()

    # -- what follow loops read, over the primitives (self._lock held) -----------------

    def _batch_after(self, pool_id: str, after: int) -> list[AgentPoolStoreRecord]:
        """The next ``_FOLLOW_BATCH`` records after ``after``; none while the pool is not opened."""
        if self._read_state(pool_id).config is None:
            return []
        return self._records_after(pool_id, after, _FOLLOW_BATCH)

    def _last_sequence(self, pool_id: str) -> int:
        """The pool's last cursor, as ``_batch_after`` sees it: 0 while the pool is not opened."""
        state = self._read_state(pool_id)
        return 0 if state.config is None else state.cursor

    # -- the contract ------------------------------------------------------------------

    # The messages are Rust's, byte for byte; the ids name the pool beside them (str(error)).

    def _not_opened(self, pool_id: str) -> AgentError:
        return AgentError(
            AgentErrorKind.HOST_CONFIGURATION_NEEDED,
            RetryClassification.HOST_CONFIGURATION_NEEDED,
            f"{self._name} has not opened this pool",
            ids={"pool_id": pool_id},
        )

    def _config_conflict(self, pool_id: str) -> AgentError:
        return AgentError(
            AgentErrorKind.INVALID_STATE_TRANSITION,
            RetryClassification.REPAIR_NEEDED,
            f"{self._name} config conflicts with existing pool",
            ids={"pool_id": pool_id},
        )

    def _pool_exists(self, pool_id: str) -> InvalidInput:
        return InvalidInput(f"{self._name} already has pool {pool_id!r}: a copy never writes into an existing pool")

    def _opened(self, state: PoolState) -> PoolState:
        if state.config is None:
            raise self._not_opened(state.pool_id)
        return state

    def _write(self, pool_id: str, payload: Any) -> AgentPoolStoreCursor:
        """Append a payload that only needs the pool to be open."""

        def build(state: PoolState) -> Any:
            self._opened(state)
            return payload

        cursor: AgentPoolStoreCursor = self._submit(pool_id, build, _cursor)
        return cursor

    def open_pool(self, pool_id: str, config: AgentPoolStoreConfig) -> AgentPoolSnapshot:
        pool_id = check_id(pool_id, "pool_id")
        check_type(config, AgentPoolStoreConfig, "config")

        def build(state: PoolState) -> Any:
            if state.config is None:
                return make(PoolOpened, (config,))
            if state.config != config:
                raise self._config_conflict(pool_id)
            return None  # equal config: nothing to append

        with self._lock:
            state = self._read_state(pool_id)
            if state.config is None:
                self._append(pool_id, build)
                state = self._read_state(pool_id)
            elif state.config != config:
                raise self._config_conflict(pool_id)
            snapshot = self._snapshot_of(state)
        assert snapshot is not None
        return snapshot

    def snapshot(self, pool_id: str) -> AgentPoolSnapshot:
        pool_id = check_id(pool_id, "pool_id")
        with self._lock:
            snapshot = self._snapshot_of(self._read_state(pool_id))
        if snapshot is None:
            raise self._not_opened(pool_id)
        return snapshot

    def record_pool_created(self, pool_id: str) -> AgentPoolStoreCursor:
        return self._write(check_id(pool_id, "pool_id"), _POOL_CREATED)

    def join_member(self, pool_id: str, member: AgentPoolMember) -> AgentPoolStoreCursor:
        pool_id = check_id(pool_id, "pool_id")
        check_type(member, AgentPoolMember, "member")
        return self._write(pool_id, make(MemberJoined, (member,)))

    def leave_member(self, pool_id: str, run_id: str) -> tuple[AgentPoolMember, AgentPoolStoreCursor]:
        pool_id = check_id(pool_id, "pool_id")
        run_id = check_id(run_id, "run_id")

        def build(state: PoolState) -> Any:
            member = self._opened(state).members.get(run_id)
            if member is None:
                raise not_a_member(pool_id, run_id)
            return make(MemberLeft, (member,))

        left: tuple[AgentPoolMember, AgentPoolStoreCursor] = self._submit(pool_id, build, _left)
        return left

    def members(self, pool_id: str) -> tuple[AgentPoolMember, ...]:
        pool_id = check_id(pool_id, "pool_id")
        with self._lock:
            state = self._read_state(pool_id)
            return () if state.config is None else state.sorted_members()

    def member(self, pool_id: str, run_id: str) -> AgentPoolMember | None:
        pool_id = check_id(pool_id, "pool_id")
        run_id = check_id(run_id, "run_id")
        with self._lock:
            state = self._read_state(pool_id)
            return None if state.config is None else state.members.get(run_id)

    def topics(self, pool_id: str) -> tuple[str, ...]:
        pool_id = check_id(pool_id, "pool_id")
        with self._lock:
            state = self._read_state(pool_id)
            return () if state.config is None else state.sorted_topics()

    def topic_members(self, pool_id: str, topic: str) -> tuple[AgentPoolMember, ...]:
        pool_id = check_id(pool_id, "pool_id")
        topic = check_id(topic, "topic")
        with self._lock:
            state = self._read_state(pool_id)
            return () if state.config is None else state.topic_members(topic)

    def message_receipt(self, pool_id: str, idempotency_key: str) -> MessageReceipt | None:
        pool_id = check_id(pool_id, "pool_id")
        idempotency_key = check_id(idempotency_key, "idempotency_key")
        with self._lock:
            return self._answer(pool_id, "message_dedupe", idempotency_key)  # type: ignore[no-any-return]

    def record_message(self, pool_id: str, message: RunMessage, receipt: MessageReceipt) -> AgentPoolStoreCursor:
        pool_id = check_id(pool_id, "pool_id")
        check_type(message, RunMessage, "message")
        check_type(receipt, MessageReceipt, "receipt")
        stored = make(AgentPoolStoredMessage, (message, receipt))
        return self._write(pool_id, make(MessageRecorded, (stored,)))

    def record_message_once(
        self, pool_id: str, message: RunMessage, receipt: MessageReceipt, *, expected: MessageReceipt | None = None
    ) -> tuple[MessageReceipt, AgentPoolStoreCursor | None]:
        pool_id = check_id(pool_id, "pool_id")
        check_type(message, RunMessage, "message")
        check_type(receipt, MessageReceipt, "receipt")
        if expected is not None:
            check_type(expected, MessageReceipt, "expected")
        key, message_id = message.idempotency_key, message.message_id
        check_same_id("message_id", receipt, "receipt", message, "message")

        def in_effect(state: PoolState) -> MessageReceipt | None:
            found: MessageReceipt | None = self._known(state, "message_dedupe", key)
            if expected is not None:
                if found is None:
                    raise InvalidInput(f"expected: no receipt is recorded under message.idempotency_key {key!r}")
                return None if found == expected else found
            if found is not None and found.message_id != message_id:
                raise key_reused("message", key, "message_id", found.message_id, message_id)
            return found

        stored = make(AgentPoolStoredMessage, (message, receipt))
        sent: tuple[MessageReceipt, AgentPoolStoreCursor | None]
        sent = self._append_once(pool_id, in_effect, make(MessageRecorded, (stored,)), receipt, expected is None)
        return sent

    def wake_registration(self, pool_id: str, idempotency_key: str) -> WakeRegistration | None:
        pool_id = check_id(pool_id, "pool_id")
        idempotency_key = check_id(idempotency_key, "idempotency_key")
        with self._lock:
            return self._answer(pool_id, "wake_dedupe", idempotency_key)  # type: ignore[no-any-return]

    def wake(self, pool_id: str, condition_id: str) -> AgentPoolStoredWake | None:
        pool_id = check_id(pool_id, "pool_id")
        condition_id = check_id(condition_id, "condition_id")
        with self._lock:
            return self._answer(pool_id, "wakes", condition_id)  # type: ignore[no-any-return]

    def record_wake(
        self,
        pool_id: str,
        condition: WakeCondition,
        compiled_filter: CompiledEventFilter,
        registration: WakeRegistration,
    ) -> AgentPoolStoreCursor:
        pool_id = check_id(pool_id, "pool_id")
        check_type(condition, WakeCondition, "condition")
        check_type(compiled_filter, CompiledEventFilter, "compiled_filter")
        check_type(registration, WakeRegistration, "registration")
        stored = make(AgentPoolStoredWake, (condition, compiled_filter, registration))
        return self._write(pool_id, make(WakeRecorded, (stored,)))

    def record_wake_once(
        self,
        pool_id: str,
        condition: WakeCondition,
        compiled_filter: CompiledEventFilter,
        registration: WakeRegistration,
        *,
        expected: WakeRegistration | None = None,
    ) -> tuple[WakeRegistration, AgentPoolStoreCursor | None]:
        pool_id = check_id(pool_id, "pool_id")
        check_type(condition, WakeCondition, "condition")
        check_type(compiled_filter, CompiledEventFilter, "compiled_filter")
        check_type(registration, WakeRegistration, "registration")
        if expected is not None:
            check_type(expected, WakeRegistration, "expected")
        key, condition_id = condition.idempotency_key, condition.condition_id
        check_same_id("condition_id", registration, "registration", condition, "condition")

        def in_effect(state: PoolState) -> WakeRegistration | None:
            if expected is not None:
                stored = self._known(state, "wakes", condition_id)
                if stored is None:
                    raise InvalidInput(f"expected: condition {condition_id!r} has no stored wake")
                return None if stored.registration == expected else stored.registration
            found: WakeRegistration | None = self._known(state, "wake_dedupe", key)
            if found is not None and found.condition_id != condition_id:
                raise key_reused("condition", key, "condition_id", found.condition_id, condition_id)
            return found

        stored = make(AgentPoolStoredWake, (condition, compiled_filter, registration))
        woke: tuple[WakeRegistration, AgentPoolStoreCursor | None]
        woke = self._append_once(pool_id, in_effect, make(WakeRecorded, (stored,)), registration, expected is None)
        return woke

    def record_pool_created_once(self, pool_id: str) -> AgentPoolStoreCursor | None:
        pool_id = check_id(pool_id, "pool_id")
        cursor: AgentPoolStoreCursor | None
        cursor = self._append_once(pool_id, _created, _POOL_CREATED, None, cursor_only=True)
        return cursor

    def _append_once(
        self,
        pool_id: str,
        in_effect: Callable[[PoolState], Any],
        payload: Any,
        given: Any,
        settled: bool = True,
        cursor_only: bool = False,
    ) -> Any:
        """Append ``payload`` unless ``in_effect(state)`` finds a record under its idempotency key.

        Returns what was found and ``None``, or ``given`` and the new record's cursor if
        ``payload`` was appended (with ``cursor_only``, the cursor alone: the result is the
        shaped outcome, as through a ``LoopDoor``, where no step after ``_submit`` runs).
        The check runs again inside the write transaction, so two writers with one key
        append one record. ``settled``: what ``in_effect`` finds stays found, so the cached
        state may answer without the write lock.
        """
        found = None

        def build(state: PoolState) -> Any:
            nonlocal found
            found = in_effect(self._opened(state))
            return None if found is not None else payload

        def shape(appended: Any, sequence: int) -> Any:
            cursor = None if appended is None else make(AgentPoolStoreCursor, (sequence,))
            if cursor_only:
                return cursor
            return (found, None) if cursor is None else (given, cursor)

        # A key once recorded stays recorded: a retry is answered without the write lock,
        # from the cached state if the store's lock is free (else the write checks it).
        if settled and try_lock(self._lock):
            try:
                state = self._read_state(pool_id)
                if state.config is not None:
                    found = in_effect(state)
                    if found is not None:
                        return None if cursor_only else (found, None)
            except NeedsWorker:
                pass  # on an event loop, a state to catch up first: the write checks it
            finally:
                self._lock.release()
        return self._submit(pool_id, build, shape)

    def watch(self, pool_id: str, cursor: AgentPoolStoreCursor | int | None = None) -> Iterator[AgentPoolStoreRecord]:
        pool_id = check_id(pool_id, "pool_id")
        after = check_cursor(cursor)
        with self._lock:
            if not self._is_opened(pool_id):
                return iter(())
            return iter(self._records_after(pool_id, after))

    def follow(
        self,
        pool_id: str,
        cursor: AgentPoolStoreCursor | int | None = None,
        *,
        poll_interval: float = 0.05,
        timeout: float | None = None,
    ) -> Iterator[AgentPoolStoreRecord]:
        """Yield the pool's records after ``cursor`` as any process appends them.

        Records arrive once, in order, with no gaps. Between batches the iterator waits
        ``poll_interval`` seconds and checks the cheap change probe, reading the records
        table only when something was committed. It ends after ``timeout`` seconds without
        a new record (``None``: never) or when the store is closed. Nothing is yielded
        while the pool is not opened.
        """
        pool_id = check_id(pool_id, "pool_id")
        after = check_cursor(cursor)
        # Written so that NaN fails too; a poll beyond TIMEOUT_MAX would overflow Event.wait.
        if type(poll_interval) not in (int, float) or not 0 < poll_interval <= threading.TIMEOUT_MAX:
            raise InvalidInput(f"poll_interval: expected a positive number of seconds, got {poll_interval!r}")
        if timeout is not None and (type(timeout) not in (int, float) or not timeout >= 0):
            raise InvalidInput(f"timeout: expected a non-negative number of seconds or None, got {timeout!r}")
        return self._follow(pool_id, after, poll_interval, timeout)

    def _follow(
        self, pool_id: str, after: int, poll_interval: float, timeout: float | None, every_record: bool = False
    ) -> Iterator[AgentPoolStoreRecord]:
        """``follow``; ``every_record`` (the CLI's inspection commands) also yields the records of a
        pool never opened, and builds no pool state, so memory stays flat whatever the pool's size."""
        seen: object = None
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed.is_set():
            records: list[AgentPoolStoreRecord] = []
            with self._lock:
                if self._closed.is_set():
                    return
                token = self._change_token()
                if token != seen:
                    if every_record:
                        records = self._records_after(pool_id, after, _FOLLOW_BATCH)
                    else:
                        records = self._batch_after(pool_id, after)
                    if len(records) < _FOLLOW_BATCH:
                        seen = token  # everything up to this token has been read
            for record in records:
                after = record.cursor.sequence
                yield record
            if records:
                deadline = None if timeout is None else time.monotonic() + timeout
                continue
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._wait_for_change(seen, min(poll_interval, remaining))
            else:
                self._wait_for_change(seen, poll_interval)

    def _wait_for_change(self, seen: object, timeout: float) -> None:
        """Sleep ``timeout`` seconds, less if the store closes; a backend that is told of
        commits (PostgreSQL's LISTEN) returns as soon as the change token is no longer ``seen``."""
        self._closed.wait(timeout)

    def next_event_sequence(self, pool_id: str) -> int:
        pool_id = check_id(pool_id, "pool_id")
        with self._lock:
            return self._allocate_event_sequence(pool_id)

    def delete_pool(self, pool_id: str) -> tuple[int, int, int | None]:
        """Remove the pool: its records, its event sequence (and fastpool's index entries), in one transaction.

        Returns what was removed: ``(record count, last sequence, event sequence or None)``;
        ``(0, 0, None)`` if there was no such pool (deleting twice is not an error). Beyond the
        Rust contract (``AgentPoolStore`` has no delete).

        Afterwards the pool reads as never opened, for this store object and, from their next
        call, for every other one on the same file or schema (other processes included):
        ``snapshot`` and writes raise ``HOST_CONFIGURATION_NEEDED``, lookups return ``None``,
        ``watch`` yields nothing; ``open_pool`` starts it anew at cursor 1 and its event sequence
        at 1. A ``follow`` of the pool yields nothing more of what was deleted. A Rust host that
        still has the pool cached is not told: delete only pools no Rust host is using
        (docs/hosts.md).

        >>> from fastpool import AgentPoolStoreConfig, InMemoryAgentPoolStore
        >>> store = InMemoryAgentPoolStore()
        >>> _ = store.open_pool("pool.a", AgentPoolStoreConfig())
        >>> store.delete_pool("pool.a"), store.members("pool.a"), store.delete_pool("pool.a")
        ((1, 1, None), (), (0, 0, None))
        """
        pool_id = check_id(pool_id, "pool_id")
        with self._lock:
            return self._delete_pool(pool_id)

    def stats(self) -> dict[str, int]:
        """What this store object has done since it was opened: a new plain ``dict`` of counters.

        * ``appends``: records it appended (a write that appended nothing, such as a repeated
          ``*_once``, is not counted; nor is a write rolled back);
        * ``cache_hits``: reads and writes answered from a cached pool state known current,
          without a query; ``cache_misses``: pool states built anew (not cached, or forgotten);
          a big pool's lookups answered from SQLite's point-read index are neither;
        * ``catch_ups``: queries that brought a pool's state up to date (a miss's replay
          included), and ``records_read``: the records they read;
        * ``cache_evictions``: states dropped because ``max_cached_pools`` were cached;
        * ``groups``, ``grouped_writes``, ``largest_group``: the group commits of concurrent
          writes (SQLite), the writes in them and the largest (writes of one thread that met no
          other writer commit alone and are not counted);
        * ``lock_waits``: writes that found the database's write lock held by another
          connection and waited (SQLite: also any statement that waited for a lock;
          PostgreSQL: appends that took the pool's lock because another writer had appended,
          and inside ``transaction()`` the first read or write of each pool, which takes it).

        Every store has every key (0 where a store has no such thing: the in-memory store counts
        only appends). The counts are this object's, not the file's: each process, and each
        store object in it, counts its own, from 0; they keep counting for the object's life,
        are read without waiting for its lock, and are readable after ``close()``. Counting
        costs well under 1 % of an append or a warm read (docs/operations.md, "Counters").

        >>> from fastpool import AgentPoolStoreConfig, InMemoryAgentPoolStore
        >>> store = InMemoryAgentPoolStore()
        >>> _ = store.open_pool("pool.a", AgentPoolStoreConfig())
        >>> store.stats()["appends"]
        1
        """
        counts = dict.fromkeys(STATS, 0)
        counts.update(self._counts())
        return counts


# Every store object of this process, so that a fork() child can disable the ones it inherits.
_live_stores: weakref.WeakSet[StoreBase] = weakref.WeakSet()


def _disable_inherited_stores() -> None:
    parent_pid = os.getppid()
    for store in list(_live_stores):
        store._after_fork_in_child(parent_pid)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_disable_inherited_stores)


def _cursor(payload: Any, sequence: int) -> AgentPoolStoreCursor:
    cursor: AgentPoolStoreCursor = make(AgentPoolStoreCursor, (sequence,))
    return cursor


def _left(payload: Any, sequence: int) -> tuple[AgentPoolMember, AgentPoolStoreCursor]:
    return payload.member, _cursor(payload, sequence)


def _created(state: PoolState) -> bool | None:
    """``record_pool_created_once``'s check: created stays created."""
    return True if state.created else None

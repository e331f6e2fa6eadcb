"""``AgentPool``: the coordinator of one pool over a store, a run journal and an event bus.

The Python port of the Rust SDK's ``AgentPool`` (docs/coordinator.md): it routes run messages to
members, records their receipts, registers wake conditions and triggers them on matching
events. It owns no pool state: every call reads the store and writes transitions back, and
around each write journals one record and publishes one event. Several coordinators (threads,
processes, the Rust one) may share a store; they share nothing else.

By default (``strict=False``) every flow gives the Rust coordinator's results, errors, journal
records and events byte for byte (the flows recorded from the Rust build in ``tests/fixtures/coordinator``). Where Rust
races, the check and the append are one store transaction in both modes (README, "The
coordinator"); ``strict=True`` adds the other improvements listed in docs/coordinator.md.

>>> from fastpool import AgentPoolMember, InMemoryAgentEventBus, InMemoryRunJournal, RunAddress, RunMessage
>>> pool = AgentPool("pool.a", runtime=AgentRuntime(journal=InMemoryRunJournal(), event_bus=InMemoryAgentEventBus()))
>>> pool.join_run(AgentPoolMember(run_id="run.a", agent_id="agent.a"))
>>> pool.join_run(AgentPoolMember(run_id="run.b", agent_id="agent.b"))
>>> message = RunMessage(message_id="m.1", from_="run.a", to=RunAddress.run("run.b"),
...                      content_ref="content.m.1", idempotency_key="key.m.1")
>>> receipt = pool.send(message)
>>> receipt.status.value, receipt.delivered_to, receipt.journal_cursor
('delivered', ('run.b',), 'journal.5')
>>> pool.send(message) == receipt  # the key was recorded: nothing is written again
True
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Concatenate, Literal, ParamSpec, Protocol, TypeVar, overload

from . import _schema
from ._base import NOT_A_MEMBER, check_id, check_type, not_a_member
from ._compat import engine
from .enums import (
    AgentErrorKind,
    AgentPoolLifecycleStatus,
    ContentCaptureMode,
    DestinationKind,
    EffectKind,
    EffectTerminalStatus,
    EntityKind,
    EventDeliverySemantics,
    EventFamily,
    EventKind,
    JournalRecordKind,
    MessageStatus,
    PayloadAccessMode,
    PolicyKind,
    PrivacyClass,
    RetentionClass,
    RetryClassification,
    SourceKind,
    TrustClass,
    WakeRegistrationStatus,
)
from .errors import AgentError, InvalidInput
from .events import AgentEventBus, envelope_matches
from .journal import JOURNAL_SCHEMA_VERSION, RunJournal
from .memory import InMemoryAgentPoolStore
from .model import (
    ALL_EVENTS,
    ANY,
    AgentEvent,
    AgentPoolMember,
    AgentPoolMessagePolicy,
    AgentPoolRecord,
    AgentPoolSnapshot,
    AgentPoolStoreConfig,
    AgentPoolStoreCursor,
    AgentPoolStoredWake,
    AgentPoolStoreRecord,
    AgentPoolWakePolicy,
    AgentTarget,
    CausalIds,
    CompiledEventFilter,
    DestinationRef,
    EffectIntent,
    EffectResult,
    EntityRef,
    EventCorrelation,
    EventCursor,
    EventEnvelope,
    EventFilter,
    EventFrame,
    EventIndexProjection,
    JournalRecord,
    MessageReceipt,
    PolicyRef,
    PoolTarget,
    RedactedSummaryPayload,
    RunMessage,
    RunMessageRecord,
    RunTarget,
    SourceRef,
    TopicTarget,
    WakeCondition,
    WakeRecord,
    WakeRecorded,
    WakeRegistration,
)
from .protocol import CONDITIONAL_WRITES, AgentPoolStore

__all__ = ["AgentRuntime", "AgentPool", "WAKE_ON_DELIVERY", "WAKE_ON_NEW_EVENTS"]

_R = TypeVar("_R", bound="AgentRuntime")
_P = ParamSpec("_P")
_T = TypeVar("_T")
make = engine.make  # the compiled constructor for the classes it has plans for
_new, _set = object.__new__, object.__setattr__

FINGERPRINT = "runtime.package.fingerprint.agent_pool"
REDACTION = "redaction.agent_pool.default"
JOURNAL_BACKED = "journal_backed"
TAGS = ("feature:agent_pool",)
#: The longest ids the derived ids leave room for: ``event.agent_pool.{pool}.{n}``
#: with a 20-digit ``n``, and ``effect.run_message.{message id}``.
MAX_STRICT_POOL_ID_BYTES = 474
MAX_MESSAGE_ID_BYTES = 493

#: Opt-in wake options (fastpool's, not Rust's), given as a policy ref of the ``WakeCondition``,
#: so the stored records keep Rust's shape (a Rust coordinator ignores the ref, matching as always).
#: ``WAKE_ON_DELIVERY``: the filter's runs are matched against a message event's recipients (its
#: related run refs) instead of its sender; ``WAKE_ON_NEW_EVENTS``: only events after the
#: registration trigger the wake (no history scan at registration or ``poll_wake``).
WAKE_ON_DELIVERY = PolicyRef(kind=PolicyKind.HOST, id="fastpool.wake.delivered_to")
WAKE_ON_NEW_EVENTS = PolicyRef(kind=PolicyKind.HOST, id="fastpool.wake.new_events_only")

_CONTENT_REFS_ONLY = PrivacyClass.CONTENT_REFS_ONLY
_SOURCE = SourceRef(kind=SourceKind.SDK, id="source.sdk.agent_pool", trust=TrustClass.HOST_PROVIDED)
_JOURNAL_DESTINATION = DestinationRef.with_kind(DestinationKind.JOURNAL, "destination.journal.agent_pool")
_STREAM_DESTINATION = DestinationRef.with_kind(DestinationKind.EVENT_STREAM, "destination.event_stream.agent_pool")
_NO_CORRELATION = EventCorrelation()
_KIND_ORDER = {kind: index for index, kind in enumerate(EntityKind)}

_MESSAGE_EVENTS = {status: EventKind(f"run_message_{status.value}") for status in MessageStatus}
_WAKE_EVENTS = {status: EventKind(f"wake_condition_{status.value}") for status in WakeRegistrationStatus}
_WAKE_KINDS = frozenset(_WAKE_EVENTS.values())
_MESSAGE_SUMMARIES = {status: "run message " + status.value.replace("_", " ") for status in MessageStatus}
_WAKE_SUMMARIES = {status: "wake condition " + status.value.replace("_", " ") for status in WakeRegistrationStatus}
_EFFECT_ENDS = {
    MessageStatus.DELIVERED: EffectTerminalStatus.COMPLETED,
    MessageStatus.RESPONDED: EffectTerminalStatus.COMPLETED,
    MessageStatus.FAILED: EffectTerminalStatus.FAILED,
    MessageStatus.EXPIRED: EffectTerminalStatus.FAILED,
    MessageStatus.TIMED_OUT: EffectTerminalStatus.TIMED_OUT,
    MessageStatus.CANCELLED: EffectTerminalStatus.CANCELLED,
}


class _AtomicStore(AgentPoolStore, Protocol):
    """What the coordinator needs beyond the protocol (whose conditional writes it builds on): ``follow``."""

    def follow(
        self,
        pool_id: str,
        cursor: AgentPoolStoreCursor | int | None = None,
        *,
        poll_interval: float = 0.05,
        timeout: float | None = None,
    ) -> Iterator[AgentPoolStoreRecord]: ...


class AgentRuntime:
    """The coordinator's view of the host: a run journal, an event bus, a journal sequence, a store.

    Both ports may be ``None`` (as in Rust, a missing port fails the first transition that
    needs it; ``AgentPool(strict=True)`` refuses such a runtime up front). ``next_journal_seq``
    numbers the records of every pool built on this runtime: 1, 2, 3 ... in memory, so one
    runtime feeds one journal; ``AgentPool`` holds ``journal_lock`` from taking a sequence to
    its append. ``store`` is the store an ``AgentPool`` built without one uses (``None``: a
    fresh in-memory store per pool). Override ``run_info`` to give runs a session id and a
    runtime package fingerprint. ``fastpool.open_runtime`` gives the durable kind; this one,
    with in-memory ports, is for tests. As a context manager, it closes what it holds.
    """

    #: Whether ``transaction()`` makes a transition one commit (a durable runtime on one database).
    atomic = False

    def __init__(
        self,
        journal: RunJournal | None = None,
        event_bus: AgentEventBus | None = None,
        *,
        store: AgentPoolStore | None = None,
    ) -> None:
        if journal is not None and not isinstance(journal, RunJournal):
            raise InvalidInput(f"journal: expected a RunJournal (an append method), got {type(journal).__name__}")
        if event_bus is not None and not isinstance(event_bus, AgentEventBus):
            raise InvalidInput(f"event_bus: expected an AgentEventBus, got {type(event_bus).__name__}")
        self.journal = journal
        self.event_bus = event_bus
        self.store = store
        self._sequence = itertools.count(1)
        # Held from taking a journal sequence to the append, so that records reach the journal
        # in sequence order whatever the threads (the in-memory journal insists on it).
        self.journal_lock = threading.RLock()

    def next_journal_seq(self) -> int:
        """The next journal sequence of this runtime (1, 2, 3 ...; thread-safe)."""
        with self.journal_lock:
            return next(self._sequence)

    def transaction(self) -> AbstractContextManager[object]:
        """The boundary ``AgentPool`` puts around each call that writes: none here (see ``atomic``)."""
        return nullcontext()

    def run_info(self, run_id: str) -> tuple[str | None, str] | None:
        """``(session_id, runtime_package_fingerprint)`` of a run this runtime started, else ``None``.

        The coordinator stamps them on the run's journal records and events; without them the
        session id is absent and the fingerprint is ``"runtime.package.fingerprint.agent_pool"``.
        """
        return None

    def close(self) -> None:
        """Close the store, the journal and the bus (those with a ``close``); closing twice is harmless."""
        for part in (self.event_bus, self.journal, self.store):
            close = getattr(part, "close", None)
            if close is not None:
                close()

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(journal={self.journal!r}, event_bus={self.event_bus!r}, store={self.store!r})"


class _Wakes:
    """The pool's registered wakes, kept from the store's records for the live trigger.

    Every message transition matches them, so they are read without a snapshot (which costs
    in proportion to the pool after a write): the coordinator's own writes are applied as they
    are made, and when a write's cursor shows that other writers came in between, the records
    in between are read with ``watch``.
    """

    def __init__(self, store: AgentPoolStore, pool_id: str, snapshot: AgentPoolSnapshot) -> None:
        self._store = store
        self._pool_id = pool_id
        self._lock = threading.Lock()
        self._seen = 0 if snapshot.cursor is None else snapshot.cursor.sequence
        self._registered: dict[str, AgentPoolStoredWake] = {}
        for stored in snapshot.wakes:
            self._apply(stored)

    def _apply(self, stored: AgentPoolStoredWake) -> None:
        if stored.registration.status is WakeRegistrationStatus.REGISTERED:
            self._registered[stored.condition.condition_id] = stored
        else:
            self._registered.pop(stored.condition.condition_id, None)

    def forget(self) -> None:
        """Read the wakes anew at the next use: a transaction holding writes noted here rolled back."""
        with self._lock:
            self._registered.clear()
            self._seen = -1

    def _renew(self) -> None:
        if self._seen < 0:
            self._seen = 0
            self._catch_up()

    def wrote(self, cursor: AgentPoolStoreCursor | None, stored: AgentPoolStoredWake | None = None) -> None:
        """Note a record this coordinator appended (``stored``: the wake it records, if one)."""
        if cursor is None:
            return
        with self._lock:
            self._renew()
            sequence = cursor.sequence
            if sequence == self._seen + 1:
                self._seen = sequence
                if stored is not None:
                    self._apply(stored)
            elif sequence > self._seen:
                self._catch_up()

    def _catch_up(self) -> None:
        record: AgentPoolStoreRecord
        for record in self._store.watch(self._pool_id, self._seen):
            payload = record.payload
            if type(payload) is WakeRecorded:
                self._apply(payload.stored)
            self._seen = record.cursor.sequence

    def registered(self) -> list[AgentPoolStoredWake]:
        """The registered wakes in condition-id order."""
        if not self._registered and self._seen >= 0:
            return []  # the common case, without the lock (a wake registered meanwhile is a race anyway)
        with self._lock:
            self._renew()
            return [self._registered[key] for key in sorted(self._registered)]


def _transition(method: Callable[Concatenate[AgentPool, _P], _T]) -> Callable[Concatenate[AgentPool, _P], _T]:
    """Run a call that writes inside the runtime's transaction: one commit on a durable runtime."""

    def call(self: AgentPool, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        runtime = self._runtime
        if not runtime.atomic:
            return method(self, *args, **kwargs)
        try:
            with runtime.transaction():
                return method(self, *args, **kwargs)
        except BaseException:
            self._wakes.forget()  # it noted writes that were rolled back
            raise

    functools.update_wrapper(call, method)
    return call


class AgentPool:
    """The coordinator of one pool: membership, run messages and wake conditions.

    ``AgentPool(pool_id, runtime=...)`` is Rust's builder and ``build()``: it opens the pool in
    ``store`` (a fresh ``InMemoryAgentPoolStore`` when ``None``) with the config of
    ``message_policy``, ``wake_policy`` and ``policy_refs`` (the Rust defaults when omitted),
    and writes nothing else. ``runtime=None`` raises ``AgentError`` HOST_CONFIGURATION_NEEDED;
    a config that differs from the stored one raises the store's error. ``strict=True`` turns
    on the improvements listed in docs/coordinator.md (the recorded Rust flows then
    differ exactly there). Thread-safe when the store, journal and bus are (fastpool's are).
    """

    def __init__(
        self,
        pool_id: str,
        *,
        runtime: AgentRuntime | None,
        store: AgentPoolStore | None = None,
        message_policy: AgentPoolMessagePolicy | None = None,
        wake_policy: AgentPoolWakePolicy | None = None,
        policy_refs: tuple[PolicyRef, ...] | list[PolicyRef] = (),
        strict: bool = False,
    ) -> None:
        pool_id = check_id(pool_id, "pool_id")
        if type(strict) is not bool:
            raise InvalidInput(f"strict: expected a bool, got {type(strict).__name__}")
        if runtime is None:
            raise AgentError.host_configuration_needed("agent pool requires runtime")
        check_type(runtime, AgentRuntime, "runtime")
        if strict:
            if len(pool_id.encode("utf-8")) > MAX_STRICT_POOL_ID_BYTES:
                raise InvalidInput(
                    f"pool_id: at most {MAX_STRICT_POOL_ID_BYTES} bytes with strict=True, so that every "
                    f"derived event id (event.agent_pool.<pool_id>.<n>) fits in 512"
                )
            if runtime.journal is None:
                raise _missing_port("run journal", None)
            if runtime.event_bus is None:
                raise _missing_port("agent event bus", None)
        config = AgentPoolStoreConfig(
            message_policy=AgentPoolMessagePolicy.bounded_defaults() if message_policy is None else message_policy,
            wake_policy=AgentPoolWakePolicy.safe_defaults() if wake_policy is None else wake_policy,
            policy_refs=policy_refs,  # type: ignore[arg-type]  # a list is taken too (as a tuple)
        )
        if store is None:
            store = runtime.store if runtime.store is not None else InMemoryAgentPoolStore()
        for name in CONDITIONAL_WRITES:
            if not callable(getattr(store, name, None)):
                raise InvalidInput(f"store: expected a fastpool store (with {name}), got {type(store).__name__}")
        snapshot = store.open_pool(pool_id, config)
        self._pool_id = pool_id
        self._runtime = runtime
        self._store: _AtomicStore = store  # type: ignore[assignment]
        self._strict = strict
        # The config is fixed by the pool's first open_pool: reading it again could only repeat it.
        self._config = AgentPoolStoreConfig(
            message_policy=snapshot.message_policy, wake_policy=snapshot.wake_policy, policy_refs=snapshot.policy_refs
        )
        self._trace_id = f"trace.agent_pool.{pool_id}"
        self._event_prefix, self._span_prefix = f"event.agent_pool.{pool_id}.", f"span.agent_pool.{pool_id}."
        self._wakes = _Wakes(store, pool_id, snapshot)

    @property
    def pool_id(self) -> str:
        """The pool this coordinator coordinates."""
        return self._pool_id

    @property
    def runtime(self) -> AgentRuntime:
        """The runtime whose journal, bus and journal sequence this coordinator uses."""
        return self._runtime

    @property
    def store(self) -> AgentPoolStore:
        """The store the pool lives in (shared with every other coordinator of the pool)."""
        return self._store

    @property
    def strict(self) -> bool:
        """Whether the improvements listed in docs/coordinator.md are on."""
        return self._strict

    def __repr__(self) -> str:
        return f"AgentPool({self._pool_id!r}, store={self._store!r}, strict={self._strict})"

    # -------------------------------------------------------------------- membership and reads

    @_transition
    def join_run(self, member: AgentPoolMember) -> None:
        """Add ``member`` to the pool (a re-join replaces the run's member), creating the pool first.

        The first join journals and publishes ``agent_pool_created`` and records ``PoolCreated``
        (once, however many hosts join at once); every join then records ``MemberJoined`` and
        journals and publishes ``agent_pool_run_joined``.
        """
        check_type(member, AgentPoolMember, "member")
        store, pool_id = self._store, self._pool_id
        if not _head(store, pool_id)[0]:
            if self._strict:
                # Only the host whose record created the pool journals and publishes it.
                cursor = store.record_pool_created_once(pool_id)
                if cursor is not None:
                    self._wakes.wrote(cursor)
                    self._lifecycle(member, AgentPoolLifecycleStatus.CREATED, EventKind.AGENT_POOL_CREATED)
            else:
                self._lifecycle(member, AgentPoolLifecycleStatus.CREATED, EventKind.AGENT_POOL_CREATED)
                self._wakes.wrote(store.record_pool_created_once(pool_id))
        self._wakes.wrote(store.join_member(pool_id, member))
        self._lifecycle(member, AgentPoolLifecycleStatus.RUN_JOINED, EventKind.AGENT_POOL_RUN_JOINED)

    @overload
    def leave_run(self, run_id: str, *, missing_ok: Literal[False] = False) -> AgentPoolMember: ...

    @overload
    def leave_run(self, run_id: str, *, missing_ok: bool) -> AgentPoolMember | None: ...

    def leave_run(self, run_id: str, *, missing_ok: bool = False) -> AgentPoolMember | None:
        """Remove the run from the pool and return its member (as its latest join stored it).

        Journals and publishes ``agent_pool_run_left``. A run that is not a member raises the
        store's ``AgentError`` INVALID_STATE_TRANSITION and writes nothing; with
        ``missing_ok=True`` it returns ``None`` instead (two hosts removing one run: the check
        is made in the store's write transaction, so one of them removes it). The run's wakes
        stay as they are.
        """
        return self._leave_run(run_id, missing_ok)

    @_transition
    def _leave_run(self, run_id: str, missing_ok: bool) -> AgentPoolMember | None:
        if type(missing_ok) is not bool:
            raise InvalidInput(f"missing_ok: expected a bool, got {type(missing_ok).__name__}")
        try:
            member, cursor = self._store.leave_member(self._pool_id, run_id)
        except AgentError as error:
            if missing_ok and error.message == NOT_A_MEMBER and error.kind is AgentErrorKind.INVALID_STATE_TRANSITION:
                return None
            raise
        self._wakes.wrote(cursor)
        self._lifecycle(member, AgentPoolLifecycleStatus.RUN_LEFT, EventKind.AGENT_POOL_RUN_LEFT)
        return member

    def members(self) -> tuple[AgentPoolMember, ...]:
        """The current members, sorted by run id."""
        return self._store.members(self._pool_id)

    def snapshot(self) -> AgentPoolSnapshot:
        """The pool's durable state (``store.snapshot``)."""
        return self._store.snapshot(self._pool_id)

    def watch_pool(self, cursor: AgentPoolStoreCursor | int | None = None) -> Iterator[AgentPoolStoreRecord]:
        """The pool's store records after ``cursor`` (``store.watch``)."""
        return self._store.watch(self._pool_id, cursor)

    # -------------------------------------------------------------------- run messages

    def send(self, message: RunMessage) -> MessageReceipt:
        """Route ``message`` to its recipients and return its receipt; a known key returns its receipt.

        The receipt recorded under ``message.idempotency_key`` is returned as it is, and nothing
        is written. Otherwise the recipients are resolved and the message
        is recorded ``expired`` (``expires_at_millis == 0``), ``failed`` (no recipient), or
        ``accepted`` then ``delivered``, each transition journaled, published and matched
        against the registered wakes. The first transition is recorded only if the key is
        still new, in the store's write transaction: of hosts sending one key at once, one
        records it, and the others return its receipt. A sender that is not a member raises
        ``AgentError`` INVALID_STATE_TRANSITION and writes nothing. With ``strict=True`` a key
        recorded for another message raises ``InvalidInput``, and an ``accepted`` receipt
        found under the key is delivered (once) instead of returned.
        """
        return self._send(message)[0]

    def send_with_outcome(self, message: RunMessage) -> tuple[MessageReceipt, bool]:
        """``send``, also telling whether this call recorded the message (fastpool's, not Rust's).

        ``(receipt, True)``: the key was new and this call recorded the message;
        ``(receipt, False)``: the key was recorded already (by this host or another, also one
        racing this call), so this call was deduplicated and ``receipt`` is the recorded one
        (with ``strict=True``, an ``accepted`` one this call then delivered). Writes exactly
        what ``send`` writes.
        """
        return self._send(message)

    @_transition
    def _send(self, message: RunMessage) -> tuple[MessageReceipt, bool]:
        check_type(message, RunMessage, "message")
        if self._strict:
            _check_message_id(message.message_id)
        store, pool_id = self._store, self._pool_id
        found = store.message_receipt(pool_id, message.idempotency_key)
        if found is None:
            status, delivered_to = self._outcome(message)
            receipt, recorded = self._message_transition(message, status, delivered_to, once=True)
            if recorded:
                return (self._deliver(message, receipt) if status is MessageStatus.ACCEPTED else receipt), True
            found = receipt  # another host recorded the key first
        if not self._strict:
            return found, False
        if found.message_id != message.message_id:
            raise InvalidInput(
                f"message.idempotency_key: {message.idempotency_key!r} is already recorded for message_id "
                f"{found.message_id!r}; this message has message_id {message.message_id!r}"
            )
        return (self._deliver(message, found) if found.status is MessageStatus.ACCEPTED else found), False

    @_transition
    def record_message_status(
        self, message: RunMessage, status: MessageStatus | str, delivered_to: tuple[str, ...] | list[str]
    ) -> MessageReceipt:
        """Record one status transition of ``message`` (any status, in any order) and return its receipt.

        Journals and publishes it, records it as given (``delivered_to`` neither sorted nor
        deduplicated; no dedupe, no state machine) and matches it against the registered
        wakes. Hosts record ``responded``, ``timed_out`` and ``cancelled`` this way. A sender
        that is not a member raises ``AgentError`` INVALID_STATE_TRANSITION and writes nothing.
        """
        check_type(message, RunMessage, "message")
        checked: MessageStatus = _schema.coerce(_schema.Spec(_schema.ENUM, MessageStatus), status, "status")
        if not isinstance(delivered_to, (tuple, list)):
            raise InvalidInput(f"delivered_to: expected a tuple or list, got {type(delivered_to).__name__}")
        runs = tuple(check_id(run_id, f"delivered_to[{index}]") for index, run_id in enumerate(delivered_to))
        if self._strict:
            _check_message_id(message.message_id)
        return self._message_transition(message, checked, runs)[0]

    def _outcome(self, message: RunMessage) -> tuple[MessageStatus, tuple[str, ...]]:
        if message.expires_at_millis == 0:
            return MessageStatus.EXPIRED, ()  # expiry wins, even over no recipients
        recipients = self._recipients(message)
        return (MessageStatus.ACCEPTED, recipients) if recipients else (MessageStatus.FAILED, ())

    def _recipients(self, message: RunMessage) -> tuple[str, ...]:
        """The runs ``message`` reaches, sorted and unique."""
        store, pool_id = self._store, self._pool_id
        sender = message.from_
        if store.member(pool_id, sender) is None:
            return ()
        refs = message.policy_refs
        policy = self._config.message_policy
        if not all(ref in refs for ref in policy.required_policy_refs):
            return ()
        target = message.to.target
        candidates: tuple[AgentPoolMember, ...]
        if type(target) is RunTarget:
            member = store.member(pool_id, target.run_id)
            candidates = () if member is None else (member,)
        elif type(target) is AgentTarget:
            candidates = tuple(member for member in store.members(pool_id) if member.agent_id == target.agent_id)
        elif type(target) is TopicTarget:
            candidates = store.topic_members(pool_id, target.topic_id)
        else:
            assert type(target) is PoolTarget
            candidates = store.members(pool_id) if target.pool_id == pool_id else ()
        runs = {member.run_id for member in candidates if all(ref in member.policy_refs for ref in refs)}
        if type(target) is PoolTarget and not policy.include_sender_in_pool_broadcast:
            runs.discard(sender)
        return tuple(sorted(runs))

    def _deliver(self, message: RunMessage, accepted: MessageReceipt) -> MessageReceipt:
        """The ``delivered`` transition after ``accepted`` (strict: only if ``accepted`` is still in effect)."""
        expected = accepted if self._strict else None
        return self._message_transition(message, MessageStatus.DELIVERED, accepted.delivered_to, expected=expected)[0]

    def _message_transition(
        self,
        message: RunMessage,
        status: MessageStatus,
        delivered_to: tuple[str, ...],
        *,
        once: bool = False,
        expected: MessageReceipt | None = None,
    ) -> tuple[MessageReceipt, bool]:
        """Journal, publish and record one message transition, then trigger wakes.

        ``once``: record it only if the key is new; ``expected``: only if that receipt is still
        in effect. Returns the receipt in effect and whether this one was recorded.
        """
        run_id = message.from_
        sender = self._member(run_id)
        journal = self._journal(run_id)
        info = self._run_info(run_id)
        kind = _MESSAGE_EVENTS[status]
        message_id = message.message_id
        subject = _ref(EntityKind.MESSAGE, message_id)
        related = _target_refs(message, delivered_to)
        payload = self._message_record(message, status, delivered_to, subject)
        contents = (message.content_ref,)
        with self._runtime.journal_lock:
            record = self._record(
                JournalRecordKind.RUN_MESSAGE, run_id, sender.agent_id, info, kind, subject, related, contents,
                message.idempotency_key, payload,
            )  # fmt: skip
            cursor = journal.append(record)
        frame = self._publish(
            run_id, sender.agent_id, info, kind, message_id, subject, related,
            message.to.destination_ref, message.policy_refs, cursor, _MESSAGE_SUMMARIES[status],
        )  # fmt: skip
        receipt = make(MessageReceipt, (message_id, status, delivered_to, cursor))
        store = self._store
        if once or expected is not None:
            found, written = store.record_message_once(self._pool_id, message, receipt, expected=expected)
            if written is None:
                return found, False
        else:
            written = store.record_message(self._pool_id, message, receipt)
        self._wakes.wrote(written)
        self._trigger_wakes(frame.event.envelope)
        return receipt, True

    def _message_record(
        self, message: RunMessage, status: MessageStatus, delivered_to: tuple[str, ...], subject: EntityRef
    ) -> RunMessageRecord:
        effect_id = "effect.run_message." + message.message_id
        if len(effect_id) > 128 and len(effect_id.encode("utf-8")) > 512:
            raise InvalidInput(
                f"message.message_id: too long for the derived effect id (effect.run_message.<message_id>): "
                f"at most {MAX_MESSAGE_ID_BYTES} bytes"
            )
        contents = (message.content_ref,)
        intent = result = None
        if status is MessageStatus.ACCEPTED:
            intent = make(
                EffectIntent,
                (
                    effect_id,
                    EffectKind.RUN_MESSAGE_DELIVERY,
                    subject,
                    _SOURCE,
                    message.to.destination_ref,  # destination
                    message.policy_refs,
                    message.idempotency_key,
                    None,  # dedupe_key
                    contents,
                    "run message delivery intent",
                ),
            )
        else:
            # external_operation_id, reconciliation_ref and error_ref are never set
            ending = (effect_id, _EFFECT_ENDS[status], None, None, None, contents, _MESSAGE_SUMMARIES[status])
            result = make(EffectResult, ending)
        return make(
            RunMessageRecord,
            (
                message.message_id,
                message.from_,  # source_run_id
                message.to.target,  # address_target
                message.content_ref,
                message.correlation,
                message.reply_to,
                status,  # delivery_status
                delivered_to,
                message.policy_refs,
                message.idempotency_key,
                intent,
                result,
            ),
        )

    # -------------------------------------------------------------------- wakes

    @_transition
    def suspend_until(self, run_id: str, condition: WakeCondition) -> WakeRegistration:
        """Register ``condition`` for ``run_id`` and return its registration; a known key returns its own.

        The registration recorded under ``condition.idempotency_key`` is returned as it is.
        Otherwise the owner must be a member; the filter is scoped (``scope_filter``) and the
        wake recorded ``registered`` if the key is still new (one registration of hosts racing
        on one key). Then ``timeout_millis == 0`` records ``timed_out``; any other condition is
        matched against the bus's history, and the first matching frame triggers it. A
        ``run_id`` other than ``condition.run_id`` raises ``AgentError`` INVALID_STATE_TRANSITION
        first. With ``strict=True`` a key recorded for another condition raises ``InvalidInput``.
        """
        run_id = check_id(run_id, "run_id")
        check_type(condition, WakeCondition, "condition")
        if run_id != condition.run_id:
            raise AgentError(
                AgentErrorKind.INVALID_STATE_TRANSITION,
                RetryClassification.NOT_RETRYABLE,
                "wake registration run_id must match condition run_id",
                ids={"pool_id": self._pool_id, "run_id": run_id, "condition_run_id": condition.run_id},
            )
        found = self._store.wake_registration(self._pool_id, condition.idempotency_key)
        if found is None:
            self._member(condition.run_id)
            compiled = self.compile_scoped_filter(condition.filter)
            registration, recorded = self._wake_transition(
                condition, compiled, WakeRegistrationStatus.REGISTERED, once=True
            )
            if recorded:
                return self._settle(condition, compiled, registration)
            found = registration  # another host registered the key first
        if self._strict and found.condition_id != condition.condition_id:
            raise InvalidInput(
                f"condition.idempotency_key: {condition.idempotency_key!r} is already recorded for condition_id "
                f"{found.condition_id!r}; this condition has condition_id {condition.condition_id!r}"
            )
        return found

    def _settle(
        self, condition: WakeCondition, compiled: CompiledEventFilter, registered: WakeRegistration
    ) -> WakeRegistration:
        """After a registration: ``timed_out`` at once for a zero timeout, else trigger on the bus's history."""
        if condition.timeout_millis == 0:
            status, matched = WakeRegistrationStatus.TIMED_OUT, None
        else:
            first = self._first_match(compiled, condition)
            if first is None:
                return registered
            status, matched = WakeRegistrationStatus.TRIGGERED, first.event.envelope.event_id
        return self._wake_transition(condition, compiled, status, matched, expected=registered)[0]

    @_transition
    def poll_wake(self, condition_id: str) -> WakeRegistration:
        """Trigger a registered wake if the bus's history holds a matching frame; return its registration.

        A wake no longer ``registered`` is returned as stored, with no write. The scan uses the
        filter scoped at registration, and sees only this host's bus. No stored wake raises
        ``AgentError.contract_violation`` ("wake condition is not registered").
        """
        stored = self._stored_wake(condition_id)
        if stored.registration.status is not WakeRegistrationStatus.REGISTERED:
            return stored.registration
        first = self._first_match(stored.compiled_filter, stored.condition)
        if first is None:
            return stored.registration
        return self._wake_transition(
            stored.condition,
            stored.compiled_filter,
            WakeRegistrationStatus.TRIGGERED,
            first.event.envelope.event_id,
            expected=stored.registration,
        )[0]

    @_transition
    def cancel_wake(self, condition_id: str) -> WakeRegistration:
        """Record the wake ``cancelled`` and return the registration.

        As in Rust, any stored wake is cancelled, also a triggered or cancelled one (each call
        appends a record), but a trigger never follows a cancel. With ``strict=True`` only a
        registered wake is cancelled, once: any other raises ``AgentError``
        INVALID_STATE_TRANSITION. No stored wake raises ``AgentError.contract_violation``.
        """
        stored = self._stored_wake(condition_id)
        cancelled = WakeRegistrationStatus.CANCELLED
        if not self._strict:
            return self._wake_transition(stored.condition, stored.compiled_filter, cancelled)[0]
        if stored.registration.status is WakeRegistrationStatus.REGISTERED:
            registration, recorded = self._wake_transition(
                stored.condition, stored.compiled_filter, cancelled, expected=stored.registration
            )
            if recorded:
                return registration
            stored = stored.replace(registration=registration)
        raise AgentError(
            AgentErrorKind.INVALID_STATE_TRANSITION,
            RetryClassification.NOT_RETRYABLE,
            f"wake condition {condition_id!r} is {stored.registration.status.value}: only a registered wake "
            "can be cancelled (strict=True)",
            ids={"pool_id": self._pool_id, "condition_id": condition_id},
        )

    def wait_wake(self, condition_id: str, timeout: float | None = None) -> WakeRegistration:
        """Wait until the wake leaves ``registered`` and return its registration; at the timeout, the current one.

        Any host's transition counts (a trigger by another process's send, a cancel). The wait
        follows the pool's records (``store.follow``: SQLite's change probe, looked at every
        5 ms, PostgreSQL's LISTEN), so nothing is read while nothing is committed. ``timeout`` in seconds
        (``None``: no limit). No stored wake raises ``AgentError.contract_violation``.
        """
        check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        cursor, registration = self.wait_start(condition_id)
        while registration.status is WakeRegistrationStatus.REGISTERED:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            # A follow ends after its timeout without a record: slices keep the deadline.
            follow = self._store.follow(self._pool_id, cursor, poll_interval=_WAIT_POLL, timeout=_slice(remaining))
            for record in follow:
                cursor = record.cursor
                registration = wake_change(record, condition_id) or registration
                if registration.status is not WakeRegistrationStatus.REGISTERED:
                    return registration
                if deadline is not None and time.monotonic() >= deadline:
                    break
        return registration

    def wait_start(self, condition_id: str) -> tuple[AgentPoolStoreCursor | None, WakeRegistration]:
        """The pool's cursor, then the wake's registration: a later change is in ``follow`` after the cursor
        (where ``wait_wake`` and ``AsyncAgentPool.wait_wake`` start)."""
        cursor = _head(self._store, self._pool_id)[1]
        return cursor, self._stored_wake(condition_id).registration

    def _stored_wake(self, condition_id: str) -> AgentPoolStoredWake:
        stored = self._store.wake(self._pool_id, condition_id)
        if stored is None:
            error = AgentError.contract_violation("wake condition is not registered")
            error.ids = {"pool_id": self._pool_id, "condition_id": condition_id}
            raise error
        return stored

    def _trigger_wakes(self, envelope: EventEnvelope) -> None:
        """Trigger, in condition-id order, the registered wakes whose filter matches a message event."""
        if envelope.event_kind in _WAKE_KINDS:
            return
        for stored in self._wakes.registered():
            condition = stored.condition
            if not _wake_matches(condition, stored.compiled_filter.criteria, envelope):
                continue
            if self._strict and self._store.member(self._pool_id, condition.run_id) is None:
                continue  # its owner left: the wake must not break this unrelated call
            self._wake_transition(
                condition,
                stored.compiled_filter,
                WakeRegistrationStatus.TRIGGERED,
                envelope.event_id,
                expected=stored.registration,
            )

    def _wake_transition(
        self,
        condition: WakeCondition,
        compiled: CompiledEventFilter,
        status: WakeRegistrationStatus,
        matched_event_id: str | None = None,
        *,
        once: bool = False,
        expected: WakeRegistration | None = None,
    ) -> tuple[WakeRegistration, bool]:
        """Journal, publish and record one wake transition.

        ``once``: record it only if the key is new; ``expected``: only if the wake's stored
        registration is still that one. Returns the registration in effect and whether this
        one was recorded.
        """
        run_id, condition_id = condition.run_id, condition.condition_id
        owner = self._member(run_id)
        journal = self._journal(run_id)
        info = self._run_info(run_id)
        kind = _WAKE_EVENTS[status]
        subject = _ref(EntityKind.WAKE_CONDITION, condition_id)
        owner_ref = _ref(EntityKind.RUN, run_id)
        payload = make(
            WakeRecord,
            (
                condition_id,
                run_id,
                compiled.filter_fingerprint,  # event_filter_fingerprint: of the scoped filter
                condition.timeout_millis,
                condition.resume_with,  # resume_policy
                status,  # trigger_status
                condition.policy_refs,
                condition.idempotency_key,
                matched_event_id,
            ),
        )
        key = condition.idempotency_key
        with self._runtime.journal_lock:
            record = self._record(
                JournalRecordKind.WAKE, run_id, owner.agent_id, info, kind, subject, (owner_ref,), (), key, payload
            )
            cursor = journal.append(record)
        self._publish(
            run_id, owner.agent_id, info, kind, None, subject, (owner_ref, subject),
            _agent_destination(run_id), condition.policy_refs, cursor, _WAKE_SUMMARIES[status],
        )  # fmt: skip
        registration = make(WakeRegistration, (condition_id, run_id, status, cursor))
        store = self._store
        if once or expected is not None:
            found, written = store.record_wake_once(self._pool_id, condition, compiled, registration, expected=expected)
            if written is None:
                return found, False
        else:
            written = store.record_wake(self._pool_id, condition, compiled, registration)
        self._wakes.wrote(written, make(AgentPoolStoredWake, (condition, compiled, registration)))
        return registration, True

    def _first_match(self, compiled: CompiledEventFilter, condition: WakeCondition) -> EventFrame | None:
        """The first frame of a filtered subscription to the bus (the Rust scan), or the bus's
        own ``first_match`` (a durable bus: the earliest match, looked up).

        Under the opt-in wake options: none for ``WAKE_ON_NEW_EVENTS``; for ``WAKE_ON_DELIVERY``
        the first frame of the subscription without the run criterion that names a recipient."""
        refs = condition.policy_refs
        if refs:
            if WAKE_ON_NEW_EVENTS in refs:
                return None
            if WAKE_ON_DELIVERY in refs:
                criteria = compiled.criteria
                relaxed = criteria.replace(run_ids=ANY).compile()
                frames = self._bus(None).subscribe_filtered(relaxed, None)
                return next((f for f in frames if _delivered_to(criteria.run_ids, f.event.envelope)), None)
        bus = self._bus(None)
        first_match = getattr(bus, "first_match", None)
        if first_match is not None:
            return first_match(compiled)  # type: ignore[no-any-return]
        return next(iter(bus.subscribe_filtered(compiled, None)), None)

    # -------------------------------------------------------------------- filters and subscriptions

    def scope_filter(self, filter: EventFilter) -> EventFilter:
        """``filter`` limited to what the pool lets its members observe.

        ``run_ids`` becomes the members that carry every pool policy ref (``ANY``: all of
        them; a tuple: those of its runs, in its order), which may be ``()`` (matches nothing);
        ``payload_access`` becomes ``ENVELOPE_ONLY`` if the pool's wake policy says so.
        """
        check_type(filter, EventFilter, "filter")
        pool_refs = self._config.policy_refs
        observable = [
            member.run_id
            for member in self._store.members(self._pool_id)
            if all(ref in member.policy_refs for ref in pool_refs)
        ]
        requested = filter.run_ids
        if isinstance(requested, tuple):
            visible = set(observable)
            run_ids = tuple(run_id for run_id in requested if run_id in visible)  # the caller's order
        else:
            run_ids = tuple(observable)
        access = filter.payload_access
        if self._config.wake_policy.envelope_only:
            access = PayloadAccessMode.ENVELOPE_ONLY
        return filter.replace(run_ids=run_ids, payload_access=access)  # type: ignore[no-any-return]

    def compile_scoped_filter(self, filter: EventFilter) -> CompiledEventFilter:
        """``scope_filter(filter).compile()``."""
        return self.scope_filter(filter).compile()

    def subscribe(self, filter: EventFilter, cursor: EventCursor | None = None) -> Iterator[EventFrame]:
        """The frames of this host's bus that the scoped ``filter`` matches, after ``cursor``.

        A read-only view of the bus's history bounded by the filter's queue; the frames' cursors
        are scoped to the compiled filter, and a cursor of another scope raises
        ``AgentError.contract_violation``.
        """
        compiled = self.compile_scoped_filter(filter)
        if cursor is not None:
            check_type(cursor, EventCursor, "cursor")
        return self._bus(None).subscribe_filtered(compiled, cursor)

    # -------------------------------------------------------------------- journal records and events

    def _member(self, run_id: str) -> AgentPoolMember:
        member = self._store.member(self._pool_id, run_id)
        if member is None:
            raise not_a_member(self._pool_id, run_id)
        return member

    def _journal(self, run_id: str) -> RunJournal:
        journal = self._runtime.journal
        if journal is None:
            raise _missing_port("run journal", run_id)
        return journal

    def _bus(self, run_id: str | None) -> AgentEventBus:
        bus = self._runtime.event_bus
        if bus is None:
            raise _missing_port("agent event bus", run_id)
        return bus

    def _run_info(self, run_id: str) -> tuple[str | None, str]:
        info = self._runtime.run_info(run_id)
        return (None, FINGERPRINT) if info is None else info

    def _lifecycle(self, member: AgentPoolMember, status: AgentPoolLifecycleStatus, kind: EventKind) -> None:
        """Journal and publish a pool lifecycle transition of ``member``'s run."""
        run_id, agent_id = member.run_id, member.agent_id
        journal = self._journal(run_id)
        store, pool_id = self._store, self._pool_id
        # The pool as it stands just before the record: without a joining run, with a left one gone.
        runs = tuple(member.run_id for member in store.members(pool_id))
        policy_refs = self._config.policy_refs
        payload = make(AgentPoolRecord, (pool_id, runs, store.topics(pool_id), policy_refs, status))
        info = self._run_info(run_id)
        subject = _ref(EntityKind.RUN, run_id)
        with self._runtime.journal_lock:
            record = self._record(
                JournalRecordKind.AGENT_POOL, run_id, agent_id, info, kind, subject, (), (), None, payload
            )
            cursor = journal.append(record)
        self._publish(
            run_id, agent_id, info, kind, None, subject, (), _agent_destination(run_id),
            policy_refs, cursor, "agent pool membership updated",
        )  # fmt: skip

    def _record(
        self,
        record_kind: JournalRecordKind,
        run_id: str,
        agent_id: str,
        info: tuple[str | None, str],
        kind: EventKind,
        subject: EntityRef,
        related: tuple[EntityRef, ...],
        content_refs: tuple[str, ...],
        key: str | None,
        payload: Any,
    ) -> JournalRecord:
        """The journal record of one transition; takes the next journal sequence."""
        sequence = self._runtime.next_journal_seq()
        session, fingerprint = info
        index = make(
            EventIndexProjection,
            (
                run_id,
                session,
                agent_id,
                None,  # turn_id
                "agent_pool",  # event_family
                kind.value,  # event_kind
                _SOURCE,
                _STREAM_DESTINATION,  # not the event's destination
                subject,
                related,
                (),  # correlation_keys
                TAGS,
                _CONTENT_REFS_ONLY,  # privacy_class
                JOURNAL_BACKED,
            ),
        )
        return make(
            JournalRecord,
            (
                JOURNAL_SCHEMA_VERSION,
                sequence,  # journal_seq
                f"journal.record.agent_pool.{sequence}",  # record_id
                record_kind,
                run_id,
                session,
                agent_id,
                None,  # turn_id
                None,  # attempt_id
                subject,
                related,
                (),  # causal_refs
                _SOURCE,
                _JOURNAL_DESTINATION,
                (),  # correlation_keys
                TAGS,
                JOURNAL_BACKED,
                index,
                sequence,  # timestamp_millis
                fingerprint,
                _CONTENT_REFS_ONLY,  # privacy
                content_refs,
                REDACTION,  # redaction_policy_id
                key,  # idempotency_key
                None,  # dedupe_key
                None,  # checkpoint_ref
                payload,
            ),
        )

    def _publish(
        self,
        run_id: str,
        agent_id: str,
        info: tuple[str | None, str],
        kind: EventKind,
        message_id: str | None,
        subject: EntityRef,
        related: tuple[EntityRef, ...],
        destination: DestinationRef,
        policy_refs: tuple[PolicyRef, ...],
        cursor: str,
        summary: str,
    ) -> EventFrame:
        """Build and publish the event of one transition; returns the frame as built."""
        pool_id = self._pool_id
        number = self._store.next_event_sequence(pool_id)
        event_id = self._event_prefix + str(number)
        if len(event_id) > 128 and len(event_id.encode("utf-8")) > 512:
            raise InvalidInput(f"pool_id: too long for the derived event id of event sequence {number} (512 bytes)")
        stamp = f"1970-01-01T00:00:{number:02}Z"
        session, fingerprint = info
        envelope = make(
            EventEnvelope,
            (
                1,  # schema_version
                event_id,
                0,  # event_seq: the bus numbers the frame
                EventFamily.AGENT_POOL,
                kind,
                1,  # payload_schema_version
                stamp,  # timestamp
                stamp,  # recorded_at
                run_id,
                session,
                agent_id,
                None,  # turn_id
                None,  # attempt_id
                message_id,
                None,  # context_item_id
                self._trace_id,
                self._span_prefix + str(number),
                None,  # parent_event_id
                None,  # caused_by
                subject,
                related,
                (),  # causal_refs
                _NO_CORRELATION,  # never the message's correlation
                TAGS,
                _SOURCE,
                destination,
                policy_refs,
                cursor,  # journal_cursor
                None,  # state_before
                None,  # state_after
                EventDeliverySemantics.JOURNAL_BACKED,
                _CONTENT_REFS_ONLY,  # privacy
                ContentCaptureMode.OFF,
                REDACTION,  # redaction_policy_id
                fingerprint,
            ),
        )
        frame = _frame(envelope, make(RedactedSummaryPayload, (summary, ())), event_id, cursor)
        self._bus(run_id).publish(frame)
        return frame


def _frame(envelope: EventEnvelope, payload: RedactedSummaryPayload, event_id: str, cursor: str) -> EventFrame:
    """``EventFrame(event=AgentEvent(envelope, payload), cursor=EventCursor(ALL_EVENTS, 0, event_id, cursor))``.

    Built slot by slot, as ``_schema.make`` builds them, but unrolled: two frames per send.
    """
    event = _new(AgentEvent)
    _set(event, "envelope", envelope)
    _set(event, "payload", payload)
    position = _new(EventCursor)
    _set(position, "scope", ALL_EVENTS)
    _set(position, "event_seq", 0)
    _set(position, "event_id", event_id)
    _set(position, "journal_cursor", cursor)
    frame = _new(EventFrame)
    _set(frame, "event", event)
    _set(frame, "cursor", position)
    _set(frame, "archive_cursor", None)
    _set(frame, "overflow", None)
    return frame


#: The longest a ``wait_wake`` follow runs before the deadline is checked again.
_WAIT_SLICE = 1.0
#: How often ``wait_wake`` looks at SQLite's change probe (a fraction of a microsecond a look;
#: PostgreSQL's LISTEN wakes it at once).
_WAIT_POLL = 0.005


def _head(store: AgentPoolStore, pool_id: str) -> tuple[bool, AgentPoolStoreCursor | None]:
    """The snapshot's ``created`` and ``cursor``; fastpool's stores give them without building a
    snapshot (which replays a pool whose cached state is bounded)."""
    head = getattr(store, "_head", None)
    if head is not None:
        created, cursor = head(pool_id)
        return created, cursor
    snapshot = store.snapshot(pool_id)
    return snapshot.created, snapshot.cursor


def _slice(remaining: float | None) -> float | None:
    return None if remaining is None else min(remaining, _WAIT_SLICE)


def check_timeout(timeout: Any) -> None:
    """A ``wait_wake`` timeout: ``None`` or a non-negative number of seconds (NaN fails too)."""
    if timeout is not None and (type(timeout) not in (int, float) or not timeout >= 0):
        raise InvalidInput(f"timeout: expected a non-negative number of seconds or None, got {timeout!r}")


def wake_change(record: AgentPoolStoreRecord, condition_id: str) -> WakeRegistration | None:
    """The registration ``record`` stores for ``condition_id``, if it is such a record."""
    payload = record.payload
    if type(payload) is WakeRecorded and payload.stored.condition.condition_id == condition_id:
        return payload.stored.registration
    return None


def _wake_matches(condition: WakeCondition, criteria: EventFilter, envelope: EventEnvelope) -> bool:
    """Whether a message event triggers the wake: ``envelope_matches``, or under ``WAKE_ON_DELIVERY``
    the filter without its run criterion, and a recipient among its runs."""
    if WAKE_ON_DELIVERY not in condition.policy_refs:
        return envelope_matches(criteria, envelope)
    return envelope_matches(criteria.replace(run_ids=ANY), envelope) and _delivered_to(criteria.run_ids, envelope)


def _delivered_to(run_ids: Any, envelope: EventEnvelope) -> bool:
    """Whether a message event names a recipient in ``run_ids`` (its related run refs; not its sender's)."""
    if envelope.subject_ref.kind is not EntityKind.MESSAGE:
        return False
    recipients = [ref.id for ref in envelope.related_refs if ref.kind is EntityKind.RUN]
    return any(run_id in recipients for run_id in run_ids) if isinstance(run_ids, tuple) else bool(recipients)


def _missing_port(port: str, run_id: str | None) -> AgentError:
    return AgentError(
        AgentErrorKind.HOST_CONFIGURATION_NEEDED,
        RetryClassification.HOST_CONFIGURATION_NEEDED,
        f"missing required runtime port: {port}",
        causal_ids=None if run_id is None else CausalIds(run_id=run_id),
    )


def _check_message_id(message_id: str) -> None:
    if len(message_id.encode("utf-8")) > MAX_MESSAGE_ID_BYTES:
        raise InvalidInput(
            f"message.message_id: at most {MAX_MESSAGE_ID_BYTES} bytes with strict=True, so that the derived "
            "effect id (effect.run_message.<message_id>) fits in 512"
        )


def _ref(kind: EntityKind, entity_id: str) -> EntityRef:
    return make(EntityRef, (kind, entity_id, None, _CONTENT_REFS_ONLY, None))


def _agent_destination(run_id: str) -> DestinationRef:
    values = (DestinationKind.AGENT, run_id, _CONTENT_REFS_ONLY, RetentionClass.HOST_POLICY, (), None)
    return make(DestinationRef, values)


def _target_refs(message: RunMessage, delivered_to: tuple[str, ...]) -> tuple[EntityRef, ...]:
    """The address's related refs and one run ref per recipient, sorted by (kind in declaration
    order, id), each (kind, id) once: its first ref, as Rust's stable sort and dedupe keep."""
    first: dict[tuple[int, str], EntityRef] = {}
    for ref in message.to.related_refs:
        first.setdefault((_KIND_ORDER[ref.kind], ref.id), ref)
    run = _KIND_ORDER[EntityKind.RUN]
    for run_id in delivered_to:
        if (run, run_id) not in first:
            first[(run, run_id)] = _ref(EntityKind.RUN, run_id)
    if len(first) < 2:
        return tuple(first.values())
    return tuple(first[key] for key in sorted(first))

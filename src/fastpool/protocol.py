"""``AgentPoolStore``: the contract every store implements, written once (the async wrapper
follows it method by method: ``tests/test_contract_surface.py`` fails where it differs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

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

__all__ = ["AgentPoolStore", "CONDITIONAL_WRITES"]

#: The writes that check and append in one transaction, which ``AgentPool`` builds on.
CONDITIONAL_WRITES = ("record_pool_created_once", "record_message_once", "record_wake_once")


@runtime_checkable
class AgentPoolStore(Protocol):
    """A durable store of agent pools: members, run messages, wakes and their records.

    Rules every method follows: ids are plain ``str`` and are validated (a bad
    argument raises ``InvalidInput``, and nothing is written); every write appends exactly
    one record and returns its cursor (per pool: 1, 2, 3 ... with no gaps, also across
    processes); on a pool that was never opened ``snapshot`` and every write raise
    ``AgentError`` ``HOST_CONFIGURATION_NEEDED`` while the lookups return ``None``; a storage
    failure is an ``AgentError`` whose ``retry`` says what to do (see docs/concepts.md).
    ``SqliteAgentPoolStore``, ``PostgresAgentPoolStore`` and ``InMemoryAgentPoolStore``
    implement it. Beyond the Rust crate's trait it has the conditional writes
    (``CONDITIONAL_WRITES``: ``record_pool_created_once`` and ``expected=``), which
    ``AgentPool`` builds on.
    """

    def open_pool(self, pool_id: str, config: AgentPoolStoreConfig) -> AgentPoolSnapshot:
        """Create the pool, or open it if its config is equal; a different config is an error.

        The first call appends ``PoolOpened(config)`` (cursor 1); a later call with an equal
        config appends nothing. Check and append are one atomic step, so processes racing to
        open one pool write one ``PoolOpened``. Returns the pool's snapshot. A different config
        raises ``AgentError`` ``INVALID_STATE_TRANSITION`` / ``REPAIR_NEEDED``.
        """
        ...

    def snapshot(self, pool_id: str) -> AgentPoolSnapshot:
        """The pool's durable state, derived only from its records.

        Members sorted by run id (the last join wins), topics the sorted union of the current
        members' topics, the latest message and wake transitions sorted by id, and the cursor
        of the pool's last record. Raises ``HOST_CONFIGURATION_NEEDED`` if the pool was never
        opened.
        """
        ...

    def record_pool_created(self, pool_id: str) -> AgentPoolStoreCursor:
        """Mark the pool created: appends a ``PoolCreated`` record on every call.

        ``snapshot().created`` is true once any such record exists. Opening a pool does not
        mark it created; a host (as the Rust coordinator does on the first join) calls this
        when ``created`` is false.
        """
        ...

    def record_pool_created_once(self, pool_id: str) -> AgentPoolStoreCursor | None:
        """Mark the pool created unless it already is: check and append in one write transaction.

        Returns the new ``PoolCreated`` record's cursor, or ``None`` if the pool was created
        already (nothing appended), so hosts racing to create one pool write one record.
        Raises as ``record_pool_created`` does on a pool not opened.
        """
        ...

    def join_member(self, pool_id: str, member: AgentPoolMember) -> AgentPoolStoreCursor:
        """Persist a join: appends ``MemberJoined``; a re-join replaces the member of that run id."""
        ...

    def leave_member(self, pool_id: str, run_id: str) -> tuple[AgentPoolMember, AgentPoolStoreCursor]:
        """Persist a leave: appends ``MemberLeft`` and returns the removed member with its cursor.

        A run that is not a member raises ``AgentError`` ``INVALID_STATE_TRANSITION`` /
        ``NOT_RETRYABLE`` ("run is not a member of this agent pool") and writes nothing; the
        check and the append are one atomic step.
        """
        ...

    def members(self, pool_id: str) -> tuple[AgentPoolMember, ...]:
        """The current members sorted by run id, as ``snapshot(pool_id).members``; ``()`` if not opened.

        A warm read (no snapshot is built): costs the same whatever the pool's size.
        """
        ...

    def member(self, pool_id: str, run_id: str) -> AgentPoolMember | None:
        """The current member with this run id; ``None`` if it is not a member or the pool is not opened."""
        ...

    def topics(self, pool_id: str) -> tuple[str, ...]:
        """The sorted union of the current members' topics, as ``snapshot(pool_id).topics``; ``()`` if not opened."""
        ...

    def topic_members(self, pool_id: str, topic: str) -> tuple[AgentPoolMember, ...]:
        """The current members with ``topic`` among their topics, sorted by run id; ``()`` if not opened."""
        ...

    def message_receipt(self, pool_id: str, idempotency_key: str) -> MessageReceipt | None:
        """The latest receipt recorded under the idempotency key, or ``None``.

        ``None`` also for a pool never opened. Hosts dedupe sends with it; checking and then
        calling ``record_message`` is two steps, not one (see docs/concepts.md, Idempotency).
        """
        ...

    def record_message(self, pool_id: str, message: RunMessage, receipt: MessageReceipt) -> AgentPoolStoreCursor:
        """Persist one message status transition: appends ``MessageRecorded``.

        Never rejects a transition: the latest one wins in ``snapshot().messages`` (by
        ``message_id``) and in ``message_receipt`` (by ``message.idempotency_key``).
        """
        ...

    def record_message_once(
        self, pool_id: str, message: RunMessage, receipt: MessageReceipt, *, expected: MessageReceipt | None = None
    ) -> tuple[MessageReceipt, AgentPoolStoreCursor | None]:
        """Persist the message unless its idempotency key is already recorded: an atomic dedupe.

        Check and append are one write transaction, so two hosts (threads, processes) sending
        one key record it once. Returns ``(receipt, cursor)`` when it appended, else the
        receipt already in effect under the key (the latest recorded, whatever its status)
        and ``None``; a key already recorded is answered from the cached state, without
        taking the write lock. ``receipt.message_id`` must be ``message.message_id``, and a
        key already recorded for another message id raises ``InvalidInput`` naming the key
        and both ids; on a pool not opened it raises as ``record_message`` does. A call that
        raises writes nothing.

        ``expected``, a receipt read under the key before: then the record is appended only
        if that receipt is still the one in effect (compare-and-append, in the write
        transaction), else the one in effect is returned with ``None``, whatever its message
        id; ``InvalidInput`` if nothing is recorded under the key. ``AgentPool`` resumes an
        accepted delivery this way, once.
        """
        ...

    def wake_registration(self, pool_id: str, idempotency_key: str) -> WakeRegistration | None:
        """The latest wake registration recorded under the idempotency key, or ``None``.

        ``None`` also for a pool never opened; the wake counterpart of ``message_receipt``.
        """
        ...

    def wake(self, pool_id: str, condition_id: str) -> AgentPoolStoredWake | None:
        """The latest stored transition of one wake condition, or ``None`` (also for a pool never opened)."""
        ...

    def record_wake(
        self,
        pool_id: str,
        condition: WakeCondition,
        compiled_filter: CompiledEventFilter,
        registration: WakeRegistration,
    ) -> AgentPoolStoreCursor:
        """Persist one wake status transition: appends ``WakeRecorded``.

        Never rejects a transition: the latest one wins in ``wake`` and ``snapshot().wakes``
        (by ``condition_id``) and in ``wake_registration`` (by ``condition.idempotency_key``).
        """
        ...

    def record_wake_once(
        self,
        pool_id: str,
        condition: WakeCondition,
        compiled_filter: CompiledEventFilter,
        registration: WakeRegistration,
        *,
        expected: WakeRegistration | None = None,
    ) -> tuple[WakeRegistration, AgentPoolStoreCursor | None]:
        """Persist the wake unless its idempotency key is already recorded: an atomic dedupe.

        As ``record_message_once``: returns ``(registration, cursor)`` when it appended, else
        the registration in effect under the key and ``None``. ``registration.condition_id``
        must be ``condition.condition_id``; a key already recorded for another condition id
        raises ``InvalidInput`` naming the key and both ids.

        ``expected``, a registration of this condition read before: then the record is
        appended only if the wake's stored registration (by condition id) is still
        ``expected`` (compare-and-append on its status, in the write transaction), else the
        stored one is returned with ``None``; ``InvalidInput`` if the condition has no stored
        wake. ``AgentPool`` moves a wake out of ``registered`` this way, so a cancel and a
        trigger cannot both win.
        """
        ...

    def watch(self, pool_id: str, cursor: AgentPoolStoreCursor | int | None = None) -> Iterator[AgentPoolStoreRecord]:
        """The pool's records after ``cursor``, in order (a finished iteration sees no later ones).

        ``cursor`` is an ``AgentPoolStoreCursor``, a non-negative int or ``None`` (from the
        start). Nothing is yielded for a pool never opened. ``follow`` keeps waiting for new ones.
        """
        ...

    def next_event_sequence(self, pool_id: str) -> int:
        """Allocate the pool's next event sequence (1, 2, 3 ...), unique across processes.

        Independent of record cursors and appends no record. The Rust coordinator numbers each
        pool event it publishes with it (``event.agent_pool.{pool_id}.{n}``), so ``n`` must never
        repeat. Raises ``HOST_CONFIGURATION_NEEDED`` if the pool was never opened.
        """
        ...

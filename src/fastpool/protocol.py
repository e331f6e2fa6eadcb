"""``AgentPoolStore``: the contract both stores implement (SPEC §5.1)."""

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

__all__ = ["AgentPoolStore"]


@runtime_checkable
class AgentPoolStore(Protocol):
    """A durable store of agent pools: members, run messages, wakes and their records."""

    def open_pool(self, pool_id: str, config: AgentPoolStoreConfig) -> AgentPoolSnapshot:
        """Create the pool, or open it if its config is equal; a different config is an error."""
        ...

    def snapshot(self, pool_id: str) -> AgentPoolSnapshot:
        """The pool's durable state."""
        ...

    def record_pool_created(self, pool_id: str) -> AgentPoolStoreCursor:
        """Mark the pool created (appends on every call)."""
        ...

    def join_member(self, pool_id: str, member: AgentPoolMember) -> AgentPoolStoreCursor:
        """Persist a join; a re-join replaces the member."""
        ...

    def leave_member(self, pool_id: str, run_id: str) -> tuple[AgentPoolMember, AgentPoolStoreCursor]:
        """Persist a leave and return the removed member."""
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
        """The latest receipt recorded under the key."""
        ...

    def record_message(self, pool_id: str, message: RunMessage, receipt: MessageReceipt) -> AgentPoolStoreCursor:
        """Persist one message status transition."""
        ...

    def record_message_once(
        self, pool_id: str, message: RunMessage, receipt: MessageReceipt
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
        """
        ...

    def wake_registration(self, pool_id: str, idempotency_key: str) -> WakeRegistration | None:
        """The latest wake registration recorded under the key."""
        ...

    def wake(self, pool_id: str, condition_id: str) -> AgentPoolStoredWake | None:
        """One stored wake."""
        ...

    def record_wake(
        self,
        pool_id: str,
        condition: WakeCondition,
        compiled_filter: CompiledEventFilter,
        registration: WakeRegistration,
    ) -> AgentPoolStoreCursor:
        """Persist one wake status transition."""
        ...

    def record_wake_once(
        self,
        pool_id: str,
        condition: WakeCondition,
        compiled_filter: CompiledEventFilter,
        registration: WakeRegistration,
    ) -> tuple[WakeRegistration, AgentPoolStoreCursor | None]:
        """Persist the wake unless its idempotency key is already recorded: an atomic dedupe.

        As ``record_message_once``: returns ``(registration, cursor)`` when it appended, else
        the registration in effect under the key and ``None``. ``registration.condition_id``
        must be ``condition.condition_id``; a key already recorded for another condition id
        raises ``InvalidInput`` naming the key and both ids.
        """
        ...

    def watch(self, pool_id: str, cursor: AgentPoolStoreCursor | int | None = None) -> Iterator[AgentPoolStoreRecord]:
        """The pool's records after the cursor, in order (a finished iteration sees no later ones)."""
        ...

    def next_event_sequence(self, pool_id: str) -> int:
        """Allocate the pool's next event sequence (1, 2, 3 ...), unique across processes."""
        ...

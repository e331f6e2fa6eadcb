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

    def message_receipt(self, pool_id: str, idempotency_key: str) -> MessageReceipt | None:
        """The latest receipt recorded under the key."""
        ...

    def record_message(self, pool_id: str, message: RunMessage, receipt: MessageReceipt) -> AgentPoolStoreCursor:
        """Persist one message status transition."""
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

    def watch(self, pool_id: str, cursor: AgentPoolStoreCursor | int | None = None) -> Iterator[AgentPoolStoreRecord]:
        """The pool's records after the cursor, in order (a finished iteration sees no later ones)."""
        ...

    def next_event_sequence(self, pool_id: str) -> int:
        """Allocate the pool's next event sequence (1, 2, 3 ...), unique across processes."""
        ...

"""``InMemoryAgentPoolStore``: the contract without a file, for tests and single-process hosts.

Same rules and errors as the SQLite store; messages lack the leading "sqlite " (as the
Rust in-memory store words them).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ._base import Build, StoreBase
from ._pool_state import PoolState
from ._schema import make
from .model import AgentPoolStoreCursor, AgentPoolStoreRecord

__all__ = ["InMemoryAgentPoolStore"]


class _Pool:
    __slots__ = ("state", "records", "event_sequence")

    def __init__(self, state: PoolState) -> None:
        self.state = state
        self.records: list[AgentPoolStoreRecord] = []
        self.event_sequence = 0


class InMemoryAgentPoolStore(StoreBase):
    """An ``AgentPoolStore`` held in this process's memory; safe to share between threads.

    >>> from fastpool import AgentPoolStoreConfig
    >>> store = InMemoryAgentPoolStore()
    >>> store.open_pool("pool.a", AgentPoolStoreConfig()).cursor
    AgentPoolStoreCursor(sequence=1)
    """

    def __init__(self, *, engine: ModuleType | None = None) -> None:
        super().__init__(engine)
        self._pools: dict[str, _Pool] = {}
        self._appended = 0  # records appended to any pool: the change token for follow()

    def _read_state(self, pool_id: str) -> PoolState:
        pool = self._pools.get(pool_id)
        return self._new_state(pool_id) if pool is None else pool.state

    def _append(self, pool_id: str, build: Build) -> tuple[Any, int]:
        state = self._read_state(pool_id)
        payload = build(state)
        if payload is None:
            return None, state.cursor
        pool = self._pools.get(pool_id)
        if pool is None:
            pool = self._pools[pool_id] = _Pool(state)
        sequence = state.cursor + 1
        pool.records.append(make(AgentPoolStoreRecord, (pool_id, make(AgentPoolStoreCursor, (sequence,)), payload)))
        pool.state.apply(payload, sequence)
        self._appended += 1
        self._appends += 1
        return payload, sequence

    def _records_after(self, pool_id: str, after: int, limit: int = -1) -> list[AgentPoolStoreRecord]:
        records = self._pools[pool_id].records
        return records[after:] if limit < 0 else records[after : after + limit]

    def _delete_pool(self, pool_id: str) -> tuple[int, int, int | None]:
        pool = self._pools.pop(pool_id, None)
        if pool is None:
            return 0, 0, None
        self._appended += 1  # wakes follow() loops, which then find the pool unopened
        return len(pool.records), pool.state.cursor, pool.event_sequence or None

    def _change_token(self) -> object:
        return self._appended

    def _answers_on_loop(self) -> bool:
        return True  # everything is in memory

    def close(self) -> None:
        """Ends ``follow`` iterators; the data stays readable."""
        self._closed.set()

    def _allocate_event_sequence(self, pool_id: str) -> int:
        pool = self._pools.get(pool_id)
        if pool is None or pool.state.config is None:
            raise self._not_opened(pool_id)
        pool.event_sequence += 1
        return pool.event_sequence

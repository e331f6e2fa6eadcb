# cython: language_level=3, annotation_typing=False
"""A pool's state replayed from its records: the one text of record application.

Both engines apply records through this ``PoolState``. The pure-Python engine imports this
module as it is; setup.py also compiles this same file into ``fastpool._pool_state_c`` for
the compiled engine, with the C types ``_pool_state_c.pxd`` declares for its classes
(annotations are not read as C types, so the compiled classes take what the pure ones take).
Nothing here is Cython's: the pure engine needs no Cython to run.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import chain
from math import isqrt
from operator import attrgetter
from typing import Any

from . import _schema
from ._chunked import CHUNK, ChunkedTuple
from ._key_filter import KeyFilter
from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError
from .model import (
    AgentPoolMember,
    AgentPoolSnapshot,
    AgentPoolStoreConfig,
    AgentPoolStoreCursor,
    AgentPoolStoredMessage,
    AgentPoolStoredWake,
    MessageReceipt,
    WakeRegistration,
)

__all__ = ["PoolState"]

_ABSENT: Any = object()
#: How snapshots are built (no checks: the parts are valid). The compiled engine hands the
#: compiled copy of this module its own ``make`` (``_replay.pyx``): the same objects, from C.
make = _schema.make


class PoolState:
    """A pool's state replayed from its records, with sorted views kept up to date lazily.

    ``apply`` costs a few dictionary writes; ``snapshot`` reuses the previous snapshot
    while nothing changed and otherwise re-sorts only the keys that changed: its
    ``messages`` and ``wakes`` are ``ChunkedTuple``s sharing every unchanged chunk with the
    previous snapshot's.
    ``store_name`` is how the store that owns the state names itself in its errors, so that
    the replay errors it raises name the store's backend.
    """

    def __init__(self, pool_id: str, store_name: str = "agent pool store") -> None:
        self.pool_id = pool_id
        self.store_name = store_name
        self.config: AgentPoolStoreConfig | None = None
        self.created = False
        self.cursor = 0
        self.members: dict[str, AgentPoolMember] = {}
        self.messages: dict[str, AgentPoolStoredMessage] = {}
        self.message_dedupe: dict[str, MessageReceipt] = {}
        self.wakes: dict[str, AgentPoolStoredWake] = {}
        self.wake_dedupe: dict[str, WakeRegistration] = {}
        # Records up to this sequence are in the maps above only where a look-up put them
        # (``trim``): the store answers the rest from its point index (0: every record is).
        self.trimmed_to = 0
        self.forgotten = KeyFilter()  # every key a trim forgot (``trim``)
        self._members_view = _SortedChunks(_RUN_ID)
        self._messages_view = _SortedChunks(_MESSAGE_ID)
        self._wakes_view = _SortedChunks(_CONDITION_ID)
        self._members: tuple[AgentPoolMember, ...] = ()
        self._topics: tuple[str, ...] = ()
        self._by_topic: dict[str, tuple[AgentPoolMember, ...]] | None = None  # built on first use
        self._snapshot: AgentPoolSnapshot | None = None

    def apply(self, payload: Any, sequence: int) -> None:
        """Apply one decoded payload recorded at ``sequence``."""
        kind = payload.TYPE
        if kind == "run_message":
            stored = payload.stored
            self.message_dedupe[stored.message.idempotency_key] = stored.receipt
            key = stored.message.message_id
            self.messages[key] = stored
            self._messages_view.pending.add(key)
        elif kind == "wake":
            stored = payload.stored
            self.wake_dedupe[stored.condition.idempotency_key] = stored.registration
            key = stored.condition.condition_id
            self.wakes[key] = stored
            self._wakes_view.pending.add(key)
        elif kind == "member_joined":
            member = payload.member
            self.members[member.run_id] = member
            self._members_view.pending.add(member.run_id)
        elif kind == "member_left":
            run_id = payload.member.run_id
            self.members.pop(run_id, None)
            self._members_view.pending.add(run_id)
        elif kind == "pool_created":
            self.created = True
        else:  # pool_opened
            if self.config is not None and self.config != payload.config:
                raise AgentError(
                    AgentErrorKind.INVALID_STATE_TRANSITION,
                    RetryClassification.REPAIR_NEEDED,
                    f"{self.store_name} contains conflicting pool open records",
                )
            self.config = payload.config
        self.cursor = sequence
        self._snapshot = None

    def trim(self, mark: int) -> None:
        """Forget every message and wake (the store's point index holds their keys up to
        ``mark``); the store then applies the records after ``mark`` again. Members, config
        and cursor stay; ``forgotten`` gets every key forgotten, so that a key never recorded
        needs no look-up. Until ``restore``, ``snapshot`` must not be asked for."""
        self.forgotten.add_all(chain(self.message_dedupe, self.wake_dedupe, self.wakes))
        self.messages, self.message_dedupe, self.wakes, self.wake_dedupe = {}, {}, {}, {}
        self._messages_view = _SortedChunks(_MESSAGE_ID)
        self._wakes_view = _SortedChunks(_CONDITION_ID)
        self._snapshot = None
        self.trimmed_to = mark

    def restore(self, full: PoolState) -> None:
        """Take back every message and wake from ``full``, a new state of the same pool
        replayed up to this one's cursor."""
        if full.cursor != self.cursor:
            raise ValueError(f"restore: a state at {full.cursor} for one at {self.cursor}")
        self.messages, self.message_dedupe = full.messages, full.message_dedupe
        self.wakes, self.wake_dedupe = full.wakes, full.wake_dedupe
        self._messages_view = _SortedChunks(_MESSAGE_ID)
        self._messages_view.pending.update(self.messages)
        self._wakes_view = _SortedChunks(_CONDITION_ID)
        self._wakes_view.pending.update(self.wakes)
        self._snapshot = None
        self.trimmed_to = 0
        self.forgotten = KeyFilter()

    def snapshot(self) -> AgentPoolSnapshot | None:
        """The snapshot of the records applied so far, or ``None`` if no ``pool_opened`` was seen."""
        config = self.config
        if config is None:
            return None
        if self._snapshot is not None:
            return self._snapshot
        if self._members_view.pending:
            self._refresh_members()
        self._snapshot = make(
            AgentPoolSnapshot,
            (
                self.pool_id,
                self.created,
                self._members,
                self._topics,
                config.message_policy,
                config.wake_policy,
                config.policy_refs,
                self._messages_view.values(self.messages),
                self._wakes_view.values(self.wakes),
                make(AgentPoolStoreCursor, (self.cursor,)),
            ),
        )
        return self._snapshot

    def sorted_members(self) -> tuple[AgentPoolMember, ...]:
        """The current members sorted by run id (the snapshot's ``members``), without a snapshot."""
        if self._members_view.pending:
            self._refresh_members()
        return self._members

    def sorted_topics(self) -> tuple[str, ...]:
        """The sorted union of the current members' topics (the snapshot's ``topics``)."""
        if self._members_view.pending:
            self._refresh_members()
        return self._topics

    def topic_members(self, topic: str) -> tuple[AgentPoolMember, ...]:
        """The current members with ``topic`` among their topics, sorted by run id."""
        if self._members_view.pending:
            self._refresh_members()
        by_topic = self._by_topic
        if by_topic is None:
            grouped: dict[str, list[AgentPoolMember]] = {}
            for member in self._members:
                for name in set(member.topics):  # a member may list a topic twice
                    grouped.setdefault(name, []).append(member)
            by_topic = self._by_topic = {name: tuple(listed) for name, listed in grouped.items()}
        return by_topic.get(topic, ())

    def _refresh_members(self) -> None:
        """Bring the members view and what is derived from it up to date with ``members``."""
        members = self._members = tuple(self._members_view.values(self.members))
        self._topics = tuple(sorted({topic for member in members for topic in member.topics}))
        self._by_topic = None


_RUN_ID = attrgetter("run_id")
_MESSAGE_ID = attrgetter("message.message_id")
_CONDITION_ID = attrgetter("condition.condition_id")


class _SortedChunks:
    """The values of a dict sorted by key (``key`` of a value gives it), as a ``ChunkedTuple``
    refreshed from the keys that changed: only the chunks holding them are copied, so the
    snapshot after one change shares every other chunk with the one before."""

    __slots__ = ("key", "chunks", "firsts", "size", "pending", "cached")

    def __init__(self, key: Any) -> None:
        self.key = key
        self.chunks: list[tuple[Any, ...]] = []  # sorted, none empty
        self.firsts: list[str] = []  # the key of each chunk's first value
        self.size = 0
        self.pending: set[str] = set()
        self.cached: ChunkedTuple[Any] = ChunkedTuple()

    def values(self, current: dict[str, Any]) -> ChunkedTuple[Any]:
        pending = self.pending
        if not pending:
            return self.cached
        if len(pending) * 8 > self.size:
            # Many changes (a cold replay): one sort beats many insertions.
            ordered = [current[key] for key in sorted(current)]
            step = _chunk_size(len(ordered))
            self.chunks = [tuple(ordered[i : i + step]) for i in range(0, len(ordered), step)]
            self.firsts = [self.key(chunk[0]) for chunk in self.chunks]
            self.size = len(ordered)
        else:
            for key in pending:
                self.update(key, current.get(key, _ABSENT))
        pending.clear()
        self.cached = ChunkedTuple._of_chunks(tuple(self.chunks), self.size)
        return self.cached

    def update(self, key: str, value: Any) -> None:
        """Put ``value`` (``_ABSENT``: nothing) where ``key`` sorts, copying one chunk."""
        chunks, firsts = self.chunks, self.firsts
        at = bisect_right(firsts, key) - 1
        if at < 0:
            if value is _ABSENT:
                return
            if not chunks:
                chunks.append((value,))
                firsts.append(key)
                self.size += 1
                return
            at = 0
        chunk = chunks[at]
        index = bisect_left(chunk, key, key=self.key)
        present = index < len(chunk) and self.key(chunk[index]) == key
        if value is _ABSENT:
            if not present:
                return
            chunk = chunk[:index] + chunk[index + 1 :]
            self.size -= 1
        elif present:
            chunk = chunk[:index] + (value,) + chunk[index + 1 :]
        else:
            chunk = chunk[:index] + (value,) + chunk[index:]
            self.size += 1
        if not chunk:
            del chunks[at], firsts[at]
        elif len(chunk) > 2 * _chunk_size(self.size):
            half = len(chunk) // 2
            chunks[at : at + 1] = [chunk[:half], chunk[half:]]
            firsts[at : at + 1] = [self.key(chunk[0]), self.key(chunk[half])]
        else:
            chunks[at] = chunk
            firsts[at] = self.key(chunk[0])


def _chunk_size(size: int) -> int:
    """About √size (at least ``CHUNK``): one change copies a chunk and the chunk list, both short."""
    return max(CHUNK, isqrt(size))

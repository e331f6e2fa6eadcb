"""The per-pool cache of a store: the pools' replayed states, bounded, and when one is current.

``PoolCache`` keeps at most ``bound`` states, the least recently used first out; both
persistent backends keep their states in one. ``SyncedCache`` adds SQLite's freshness rule,
written here once: one sync point for every cached pool (the change probe's token as of
which a state caught up in the current generation is known current). The store's own
commits advance it (``advance``); any other token starts a new generation (``resync``), so
each pool catches up once on its next use.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Generic, TypeVar

from ._probe import ChangeProbe, NoProbe

if TYPE_CHECKING:
    from ._pool_state import PoolState

__all__ = ["Cached", "PoolCache", "SyncedCache"]

_NEVER = object()  # the sync point of a cache that has not read the probe yet


class Cached:
    """A pool's state and the generation it was last caught up in (-1: never)."""

    __slots__ = ("state", "generation")

    def __init__(self, state: PoolState) -> None:
        self.state = state
        self.generation = -1


C = TypeVar("C")


class PoolCache(Generic[C]):
    """The cached entries of at most ``bound`` pools, least recently used first out.

    ``states`` is the mapping itself (least recently used first), read directly on the
    hot paths; a warm read moves its pool to the end, unless it is ``last`` (the pool whose
    entry ``keep`` or a warm read last put at the end): a move costs more than counting the
    read. The counters are the store's (``stats()``): plain ints its paths add to, each where
    it happens.
    """

    __slots__ = ("states", "bound", "last", "hits", "misses", "evictions", "catch_ups", "records_read")

    def __init__(self, bound: int) -> None:
        self.states: OrderedDict[str, C] = OrderedDict()
        self.bound = bound
        self.last: str | None = None
        self.hits = self.misses = self.evictions = self.catch_ups = self.records_read = 0

    def counts(self) -> dict[str, int]:
        """The cache's counters under ``stats()``' names."""
        return {
            "cache_hits": self.hits,
            "cache_misses": self.misses,
            "cache_evictions": self.evictions,
            "catch_ups": self.catch_ups,
            "records_read": self.records_read,
        }

    def keep(self, pool_id: str, cached: C) -> None:
        """Cache a pool's entry as the most recently used, dropping the least recently used
        beyond the bound."""
        states = self.states
        states[pool_id] = cached
        states.move_to_end(pool_id)
        self.last = pool_id
        if len(states) > self.bound:
            states.popitem(last=False)
            self.evictions += 1


class SyncedCache(PoolCache[Cached]):
    """A ``PoolCache`` whose states are current while the change probe reads the sync point."""

    __slots__ = ("probe", "sync", "generation")

    def __init__(self, bound: int) -> None:
        super().__init__(bound)
        self.probe: ChangeProbe = NoProbe()
        self.sync: object = _NEVER
        self.generation = 0

    def current(self, pool_id: str) -> PoolState | None:
        """The pool's state if it is cached and current (moved to the most recently used), else None.

        The freshness rule: caught up in this generation, and nothing committed since by
        another connection (the probe still reads the sync point)."""
        cached = self.states.get(pool_id)
        if cached is not None and cached.generation == self.generation and self.probe.token() == self.sync:
            if self.last is not pool_id:
                self.states.move_to_end(pool_id)
                self.last = pool_id
            self.hits += 1
            return cached.state
        return None

    def remember(self, pool_id: str, state: PoolState) -> None:
        """Cache a state this store has just caught up (written by it) unless cached already."""
        if pool_id not in self.states:
            cached = Cached(state)
            cached.generation = self.generation
            self.keep(pool_id, cached)

    def resync(self) -> bool:
        """Read the probe: if its token is not the sync point, another connection has committed
        since; the token becomes the sync point, in a new generation (every cached state stale
        until caught up again), and this returns True."""
        token = self.probe.token()
        if token != self.sync:
            self.sync = token
            self.generation += 1
            return True
        return False

    def advance(self, before: object) -> None:
        """After this store's COMMIT: ``before`` is the sync point read inside the write
        transaction. If that commit is the only one since, every cached state is still
        current (the pools it wrote were updated in memory) and the sync point moves on;
        otherwise the next call starts a new generation."""
        probe = self.probe
        after = probe.token()
        if after != before and probe.only_own_commit(before, after):
            self.sync = after

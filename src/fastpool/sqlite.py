"""``SqliteAgentPoolStore``: the durable store, file-compatible with the Rust crate.

One APSW connection per store object, WAL, and every write is ``BEGIN IMMEDIATE`` →
catch up → check → append → ``COMMIT``, so the check and the append are one atomic
step and cursors are gap-free across processes; a lone write whose pool is cached is one
``INSERT`` that only commits if the state it was checked against was current
(``_append_alone``). Reads are served from a per-pool
cached state that catches up incrementally: a change probe (``_probe``) tells in well
under a microsecond whether any connection committed since the state was last synced,
and only rows past the cached cursor are ever read. A store's own writes are applied
to its cache after commit without re-reading.

The store is thin over modules with one job each: ``_sqlite_file`` opens the file (pragmas,
tables, read-only and immutable modes), ``_sqlite_write`` is the write boundary (the one
place a transaction begins and ends, SQLite's errors translated there), ``_group_commit``
schedules concurrent writes into shared transactions, and ``_cache`` keeps the pools'
states and says when one is current.
"""

from __future__ import annotations

import ctypes
import os
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import apsw

from . import _sql
from ._base import _UNKNOWN, Build, NeedsWorker, Row, Shape, StoreBase, check_id, check_options, loop_call
from ._cache import Cached, SyncedCache
from ._group_commit import GroupCommit, Request
from ._point_reads import BATCH, PointIndex, PointState, RecentRecords, Untrusted, look_up, mark_of
from ._pool_state import PoolState
from ._probe import NoProbe, open_probe, release_dropped
from ._sql import SCHEMA_VERSION
from ._sqlite_errors import NAME, PREFIX, translate
from ._sqlite_file import SYNCHRONOUS, Unchanged, check_path, configure, open_readonly
from ._sqlite_write import BusyWait, Write, end, in_transaction
from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError, InvalidInput
from .model import AgentPoolStoreRecord

__all__ = ["SqliteAgentPoolStore", "SCHEMA_VERSION"]

_MAX_SEQUENCE = 2**63 - 1  # the largest SQLite integer
_ROW_OVERHEAD = 1024  # bytes of a record row besides the payload: pool_id (<= 512), seq, kind, header


def _parts(value: Any) -> list[tuple[str, Any]]:
    """A model's fields or a tuple's items, each with its step of a field path."""
    if isinstance(value, tuple):
        return [(f"[{index}]", item) for index, item in enumerate(value)]
    if isinstance(value, str):
        return []
    return [(f".{field.name}", getattr(value, field.name)) for field in getattr(type(value), "_fields", ())]


def _chars(value: Any) -> int:
    """Roughly how much JSON text a value takes: its strings' characters."""
    if isinstance(value, str):
        return len(value)
    parts = _parts(value)
    return sum(_chars(part) for _, part in parts) if parts else 1


def _bulk_field(payload: Any) -> str:
    """The field that holds most of a payload's text: the path down through each part that
    holds over half of its parent (``stored.message.policy_refs[0].version``)."""
    path, value = "", payload
    while True:
        total = _chars(value)
        heavy = [(step, part) for step, part in _parts(value) if 2 * _chars(part) > total]
        if not heavy:
            return path.removeprefix(".") or payload.TYPE
        step, value = heavy[0]
        path += step


class SqliteAgentPoolStore(StoreBase):
    """An ``AgentPoolStore`` in an SQLite file, shared by any number of store objects and processes.

    ``synchronous="full"`` makes every commit survive power loss; ``"normal"`` survives
    process crashes. A write that waits longer than ``busy_timeout`` seconds for the
    file's write lock fails with a ``RETRYABLE`` error and writes nothing. ``readonly``
    opens an existing file and never writes a record (every write then fails with
    ``HOST_CONFIGURATION_NEEDED``); on read-only media or in a directory this user cannot
    write it reads a cleanly closed file as immutable (docs/operations.md, "Read-only users").
    ``max_cached_pools`` bounds the pools whose state is kept in memory (least recently
    used first out; ``evict`` drops one). ``bounded_state=True`` keeps a pool's memory flat
    as it grows: each time this store object's writes index a batch of the pool's records
    (every 512), its cached state forgets those records' messages and wakes, and reads them
    from the file's point index when asked for (one indexed query per key, then kept until
    the next batch); ``snapshot`` of such a pool replays it from the file first (docs/operations.md,
    "Memory: bounded_state"). ``open_runtime`` turns it on. ``engine``
    picks the replay engine module (``fastpool._replay`` or ``fastpool._replay_py``;
    default: the one ``fastpool`` loaded), for benchmarks and differential tests.

    >>> import tempfile, pathlib
    >>> from fastpool import AgentPoolStoreConfig
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pools.sqlite"
    >>> with SqliteAgentPoolStore(path) as store:
    ...     store.open_pool("pool.a", AgentPoolStoreConfig()).cursor.sequence
    1
    """

    _name = NAME
    # Releases what close() does when the object is collected unclosed (set once open).
    _dropped: Any = None  # a weakref.finalize: releases what close() releases once the store is collected

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "normal",
        busy_timeout: float = 5.0,
        readonly: bool = False,
        max_cached_pools: int = 1024,
        bounded_state: bool = False,
        engine: ModuleType | None = None,
    ) -> None:
        super().__init__(engine)
        if type(readonly) is not bool:
            raise InvalidInput(f"readonly: expected a bool, got {type(readonly).__name__}")
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidInput(f"path: expected a str or os.PathLike, got {type(path).__name__}")
        check_path(path)
        if synchronous not in SYNCHRONOUS:
            raise InvalidInput(f"synchronous: expected 'normal' or 'full', got {synchronous!r}")
        if type(busy_timeout) not in (int, float) or not 0 <= busy_timeout < 2**31 / 1000:
            raise InvalidInput(f"busy_timeout: expected seconds as a non-negative number, got {busy_timeout!r}")
        if type(max_cached_pools) is not int or max_cached_pools < 1:
            raise InvalidInput(f"max_cached_pools: expected a positive int, got {max_cached_pools!r}")
        if type(bounded_state) is not bool:
            raise InvalidInput(f"bounded_state: expected a bool, got {type(bounded_state).__name__}")
        self._path = Path(path)
        self._synchronous = synchronous
        self._readonly = readonly
        self._busy_timeout = busy_timeout
        # The pools' states, with the change probe and the sync point that tell when one is current.
        self._cache = SyncedCache(max_cached_pools)
        self._batch: set[str] | None = None  # pools written inside an open transaction()
        self._drops: object = None  # fastpool_drops' count as of the sync point (None: not read yet)
        self._alone = not readonly  # lone writes may append without a transaction (_append_alone)
        self._bounded = bounded_state and not readonly  # trim states after index batches (_trim)
        self._group = GroupCommit(self._lock, PREFIX)
        self._db: apsw.Connection | None = None
        self._busy = BusyWait(busy_timeout)
        self._unchanged: Unchanged | None = None  # the guard of a file opened immutable
        self._points = PointIndex(None, readonly)  # replaced by the file's once it is open
        self._point_states: dict[str, PointState] = {}  # big pools read without a full replay
        self._recent = RecentRecords()  # short watch tails
        try:
            if readonly:
                self._db, self._unchanged = open_readonly(self._path)
            else:
                if str(self._path) != ":memory:":
                    self._path.parent.mkdir(parents=True, exist_ok=True)
                flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
                self._db = apsw.Connection(str(self._path), flags=flags)
            self._db.set_busy_handler(self._busy)
            self._points = configure(self._db, str(self._path), readonly, synchronous, busy_timeout)
            self._cache.probe = self._unchanged or open_probe(self._db)
            # Longer JSON is refused before SQLite would (its TooBigError is the backstop).
            self._max_text = self._db.limit(apsw.SQLITE_LIMIT_LENGTH, -1) - _ROW_OVERHEAD
            self._dropped = weakref.finalize(self, release_dropped, self._db, self._cache.probe)
            self._dropped.atexit = False  # at exit the process gives everything back anyway
        except (apsw.Error, OSError) as error:
            self._close_connection()
            self._check_unchanged()  # an immutable file that changed while read: the real cause
            raise translate(error) from error
        except BaseException:  # AgentError, or an interrupt: nothing stays open
            self._close_connection()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str], **options: Any) -> SqliteAgentPoolStore:
        """Open or create the store at ``path`` (missing parent directories are created)."""
        check_options(cls, options)
        return cls(path, **options)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def close(self) -> None:
        """Close the connection; later calls raise. Closing twice is harmless."""
        self._closed.set()
        if self._inherited:
            return  # the parent's connection: never used, nor closed, in a forked child
        with self._lock:
            if self._dropped is not None:
                self._dropped.detach()
            probe, self._cache.probe = self._cache.probe, NoProbe()
            self._close_connection()
            probe.release()  # after SQLite has let go of the file (see _probe)

    def evict(self, pool_id: str) -> None:
        """Drop the pool's cached state (if any); its next use rebuilds it from the file."""
        pool_id = check_id(pool_id, "pool_id")
        with self._lock:
            self._connection()
            self._cache.states.pop(pool_id, None)
            self._point_states.pop(pool_id, None)
            self._recent.forget(pool_id)

    def pools(self) -> list[tuple[str, int, int]]:
        """Every pool with records in the file: ``(pool_id, record count, last sequence)``, sorted."""
        with self._lock:
            try:
                rows = self._connection().execute(_sql.POOLS).fetchall()
            except apsw.Error as error:
                raise translate(error) from error
            finally:
                self._check_unchanged()
        return [(str(pool_id), int(count), int(last)) for pool_id, count, last in rows]  # type: ignore[arg-type]

    def build_point_index(self) -> int:
        """Index every pool's records for point reads now, in one write transaction; returns how many
        records that covered (0 on a readonly store, or a file whose index this fastpool does not own).

        Writers keep the index current in batches of a few hundred records as they append, so this
        is only needed for a file with a long backlog nobody indexed (records another writer
        appended in bulk): it reads every such record's JSON, about 4 µs a record.
        """
        with self._lock:
            db = self._connection()
            return in_transaction(db, self._readonly, lambda: self._points.build(db))

    # -- inspection and copy (the CLI shows every record in the file, where reads show none of a pool never opened)

    def _unopened_pools(self) -> set[str]:
        with self._lock:
            try:
                rows = self._connection().execute(_sql.UNOPENED).fetchall()
            except apsw.Error as error:
                raise translate(error) from error
        return {str(pool_id) for (pool_id,) in rows}

    def _stream_rows(self, pool_id: str, after: int = 0) -> Generator[Row, None, None]:
        """The rows come from one read transaction; the store's lock is held until the iterator
        is exhausted or closed."""
        with self._lock:
            rows = self._connection().cursor()
            try:
                yield from rows.execute(_sql.ROWS_AFTER, (pool_id, min(after, _MAX_SEQUENCE)))
            except apsw.Error as error:
                raise translate(error) from error
            finally:
                rows.close(True)  # ends the read transaction, also when the reader stopped early

    def _event_sequence(self, pool_id: str) -> int | None:
        with self._lock:
            try:
                rows = self._connection().execute(_sql.EVENT_SEQUENCE, (pool_id,)).fetchall()
            except apsw.Error as error:
                raise translate(error) from error
        return int(rows[0][0]) if rows else None  # type: ignore[arg-type]

    def _append_rows(
        self, pool_id: str, rows: Iterable[Row], event_sequence: int | None
    ) -> tuple[int, int, int | None]:

        def append() -> None:
            if db.execute(_sql.POOL_EXISTS, (pool_id,)).fetchall()[0][0]:
                raise self._pool_exists(pool_id)
            db.executemany(_sql.INSERT, ((pool_id, sequence, kind, text) for sequence, kind, text in rows))
            if event_sequence is not None:
                db.execute(_sql.SET_EVENT_SEQUENCE, (pool_id, event_sequence))

        with self._lock:
            db = self._connection()
            in_transaction(db, self._readonly, append)
            self._cache.states.pop(pool_id, None)
            self._recent.forget(pool_id)
            try:
                count, last, events = db.execute(_sql.POOL_EXTENT, (pool_id,)).fetchall()[0]
            except apsw.Error as error:
                raise translate(error) from error
        return int(count), int(last or 0), None if events is None else int(events)  # type: ignore[arg-type]

    def _delete_pool(self, pool_id: str) -> tuple[int, int, int | None]:
        db = self._connection()
        write = self._write_boundary(db)
        try:
            with write:
                count, last, events = db.execute(_sql.POOL_EXTENT, (pool_id,)).fetchall()[0]
                if count or events is not None:
                    for statement in _sql.DELETE_POOL:
                        db.execute(statement, (pool_id,))
                    if {"fastpool_point_keys", "fastpool_point_marks"} <= {row[0] for row in db.execute(_sql.TABLES)}:
                        for statement in _sql.DELETE_POINT_ENTRIES:
                            db.execute(statement, (pool_id,))
                    db.execute(_sql.DROPS_TABLE)
                    self._drops = db.execute(_sql.COUNT_DROP).fetchall()[0][0]
        except BaseException:
            if write.began:
                end(db)  # an interrupt on entering the boundary's exit skips it
            self._drops = None  # maybe rolled back: read again
            raise
        if self._batch is not None:
            self._batch.add(pool_id)  # inside transaction(): a rollback forgets the pool again
        self._forget_cached()
        return int(count), int(last or 0), None if events is None else int(events)  # type: ignore[arg-type]

    def _forget_cached(self) -> None:
        """Drop every cached state: a pool was deleted, so a cached cursor may point past records gone."""
        self._cache.states.clear()
        self._point_states.clear()
        self._points.clear()
        self._recent.forget()

    @staticmethod
    def _drops_of(db: apsw.Connection) -> object:
        """fastpool_drops' count: how many pools were ever deleted in the file."""
        try:
            return db.execute(_sql.DROPS).get or 0  # one value: cheaper than fetchall
        except apsw.SQLError:
            return 0  # no fastpool_drops table: nothing was ever deleted here

    def _check_drops(self) -> None:
        """After another connection's commit: if it deleted a pool, forget what was cached."""
        drops = self._drops_of(self._connection())
        if drops != self._drops:
            self._drops = drops
            self._forget_cached()

    def __enter__(self) -> SqliteAgentPoolStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._db is None else "open"
        return f"SqliteAgentPoolStore({str(self._path)!r}, {state})"

    def _after_fork_in_child(self, parent_pid: int) -> None:
        super()._after_fork_in_child(parent_pid)
        if self._dropped is not None:
            self._dropped.detach()  # collecting it here must not close the parent's connection
        self._cache = SyncedCache(self._cache.bound)  # no probe: the parent's is never read here
        self._point_states = {}
        self._recent = RecentRecords()
        self._batch = None
        self._group = GroupCommit(self._lock, PREFIX)  # parent threads' writes: never to be woken here
        if self._db is not None:
            # SQLite forbids using a connection across fork(), closing included (a close
            # would roll back a transaction some parent thread has open, in the shared
            # WAL-index). One reference more than anyone holds keeps it from ever being
            # garbage-collected, and so closed, in this process.
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(self._db))

    # -- the connection -------------------------------------------------------------------

    def _check_unchanged(self) -> None:
        """After reading a file opened immutable: fail if it may have changed meanwhile."""
        if self._unchanged is not None:
            self._unchanged.token()

    def _close_connection(self) -> None:
        db, self._db = self._db, None
        self._cache.states.clear()
        self._point_states.clear()
        self._points.clear()
        self._recent.forget()
        if db is not None:
            db.close()

    def _connection(self) -> apsw.Connection:
        if self._db is None:
            raise AgentError(
                AgentErrorKind.INVALID_STATE_TRANSITION,
                RetryClassification.NOT_RETRYABLE,
                "sqlite agent pool store is closed",
            )
        return self._db

    # -- backend primitives (called with self._lock held) ----------------------------------

    def _read_state(self, pool_id: str) -> PoolState:
        state = self._cache.current(pool_id)
        if state is not None:
            return state  # the hot path: caught up since the last commit of another connection
        return self._synced_state(pool_id, self._cache.states.get(pool_id))

    def _answer(self, pool_id: str, field: str, key: str) -> Any:
        cache = self._cache
        cached = cache.states.get(pool_id)
        # SyncedCache.current inlined: the warm read's one call, which costs 4 % of it.
        if cached is not None and cached.generation == cache.generation and cache.probe.token() == cache.sync:
            if cache.last is not pool_id:
                cache.states.move_to_end(pool_id)
                cache.last = pool_id
            cache.hits += 1
            state = cached.state
        else:
            if cached is None:
                if loop_call.door is not None:
                    raise NeedsWorker  # a point read queries the file: on a worker thread
                point = self._point_state(pool_id)
                if point is not None:
                    try:
                        return point.answer(self._connection(), self._engine, field, key)
                    except Untrusted:
                        pass  # the index is damaged: the full replay answers
                    except apsw.SQLError:
                        self._points.usable = False  # its tables were dropped meanwhile: replay from here on
                    except apsw.Error as error:
                        raise translate(error) from error
                    finally:
                        self._check_unchanged()
            state = self._read_state(pool_id)
        if state.config is None:
            return None
        # StoreBase._known inlined: its call costs 3 % of a warm read (~25 ns of ~900).
        found = getattr(state, field).get(key, _UNKNOWN)
        if found is _UNKNOWN:
            return self._look_up(state, field, key) if state.trimmed_to and key in state.forgotten else None
        return found

    def _is_opened(self, pool_id: str) -> bool:
        if pool_id not in self._cache.states:
            point = self._point_state(pool_id)
            if point is not None:
                return point.tail.config is not None
        return self._read_state(pool_id).config is not None

    def _point_state(self, pool_id: str) -> PointState | None:
        """The pool's point state, caught up; ``None`` where it is read by a full replay."""
        db = self._connection()
        try:
            token = self._cache.probe.token()
            if token != self._cache.sync:
                self._resync()  # first forgets every cached state if a pool was deleted meanwhile
            point = self._point_states.get(pool_id)
            if point is None:
                point = self._points.state(db, self._engine, self._name, pool_id)
                if point is None:
                    return None
                self._point_states[pool_id] = point
                if len(self._point_states) > self._cache.bound:
                    del self._point_states[next(iter(self._point_states))]
            elif point.token != token:
                self._points.catch_up(db, self._engine, point)
        except Untrusted:
            return None  # a check of the index failed: the full replay answers
        except apsw.SQLError:
            self._points.usable = False  # its tables were dropped meanwhile: replay from here on
            self._point_states.clear()
            return None
        except apsw.Error as error:
            raise translate(error) from error
        finally:
            self._check_unchanged()
        point.token = token
        return point

    def _synced_state(self, pool_id: str, cached: Cached | None) -> PoolState:
        if loop_call.door is not None:
            raise NeedsWorker  # the rows are read on a worker thread
        db = self._connection()
        try:
            self._resync()  # the token is read before the rows: a commit in between shows next time
            generation = self._cache.generation
            if self._cache.states.get(pool_id) is not cached:
                cached = None  # forgotten by _resync: a pool was deleted, so this state may be stale
            if cached is None:
                self._point_states.pop(pool_id, None)
                cached = Cached(self._new_state(pool_id))
                self._cache.misses += 1
            self._catch_up(db, cached.state)
        except apsw.Error as error:
            raise translate(error) from error
        finally:
            # Progress made before a corrupt row is kept, so a later call resumes after it.
            if cached is not None and cached.state.cursor:
                self._cache.keep(pool_id, cached)
        cached.generation = generation
        return cached.state

    def _resync(self) -> object:
        """The probe's token, now the sync point; in a new generation (another connection has
        committed since), first forget every cached state if that commit deleted a pool."""
        cache = self._cache
        if cache.resync():
            self._check_drops()
        return cache.sync

    def _catch_up(self, db: apsw.Connection, state: PoolState) -> None:
        # A writer's full replay outside a transaction keeps each key's last sequence: if the
        # pool's index leaves many records out (a Rust host's), the next reader needs them.
        drops = self._drops
        keys = self._points.keys_of_replay(state.cursor) if drops is not None and db.getautocommit() else None
        rows = db.cursor()
        cache, before = self._cache, state.cursor
        try:
            seen = None if keys is None else self._points.seen(keys)
            self._engine.replay_rows(state, rows.execute(_sql.ROWS_AFTER, (state.pool_id, state.cursor)), seen)
        finally:
            rows.close(True)  # ends the read transaction even when replay stopped early
            cache.catch_ups += 1
            cache.records_read += state.cursor - before
            self._check_unchanged()
        if keys is not None:
            self._points.index_replayed(db, state.pool_id, keys, state.cursor, lambda db: self._drops_of(db) == drops)

    # -- bounded states (``bounded_state``): trimmed after index batches, keys looked up ------

    def _trim(self, pool_ids: Iterable[str]) -> None:
        """After a commit, under ``bounded_state``: each written pool whose index has a batch
        newer than its state's last trim forgets its messages and wakes up to the index's
        mark (``PoolState.trim``) and applies the few records after the mark again. The
        write is committed whatever happens here: a failure only forgets the state."""
        if not self._bounded:
            return
        for pool_id in pool_ids:
            cached = self._cache.states.get(pool_id)
            if cached is None:
                continue
            state = cached.state
            seen = self._points.mark_seen(pool_id)
            if seen <= state.trimmed_to or state.cursor - seen > BATCH:
                continue
            cursor = state.cursor
            try:
                db = self._connection()
                mark = mark_of(db, pool_id)
                if not state.trimmed_to < mark <= cursor:
                    continue
                after = db.execute(_sql.ROWS_BETWEEN, (pool_id, mark, cursor)).fetchall()
            except apsw.SQLError:
                self._points.usable = False  # the index's tables were dropped
                continue
            except Exception:
                continue  # the state stays whole
            try:
                state.trim(mark)
                self._engine.replay_rows(state, after)
                if state.cursor != cursor:
                    raise AgentError.contract_violation(f"pool {pool_id!r}: records changed while trimmed")
            except BaseException as error:
                self._cache.states.pop(pool_id, None)  # half trimmed: the next read replays it whole
                if not isinstance(error, Exception):
                    raise

    def _look_up(self, state: PoolState, field: str, key: str) -> Any:
        """A trimmed state's answer for a key it does not hold: the point index's record of the
        key, kept in the state; where the index cannot be trusted, the state is restored."""
        if loop_call.door is not None:
            raise NeedsWorker  # a query: on a worker thread
        db = self._connection()
        try:
            found = look_up(db, self._engine, state, field, key)
        except (Untrusted, apsw.SQLError) as error:
            if isinstance(error, apsw.SQLError):
                self._points.usable = False  # its tables were dropped: the records answer
            self._restore(state)
            return getattr(state, field).get(key)
        except apsw.Error as error:
            raise translate(error) from error
        finally:
            self._check_unchanged()
        getattr(state, field)[key] = found
        return found

    def _restore(self, state: PoolState) -> None:
        """Replay the pool up to a trimmed state's cursor and give the state every message and wake back."""
        if loop_call.door is not None:
            raise NeedsWorker
        full = self._new_state(state.pool_id)
        rows = self._connection().cursor()
        try:
            self._engine.replay_rows(full, rows.execute(_sql.ROWS_BETWEEN, (state.pool_id, 0, state.cursor)))
        except apsw.Error as error:
            raise translate(error) from error
        finally:
            rows.close(True)
            self._check_unchanged()
        if full.cursor != state.cursor:  # deleted meanwhile: the next read finds out
            self._cache.states.pop(state.pool_id, None)
            raise self._changed_while_read(state.pool_id)
        state.restore(full)

    def _append(self, pool_id: str, build: Build) -> tuple[Any, int]:
        db = self._connection()
        batch = self._batch
        state = None
        if batch is None:
            cached = self._cache.states.get(pool_id)
            if cached is not None and self._alone and not self._points.due(pool_id, cached.state.cursor):
                done = self._append_alone(db, pool_id, build, cached)
                if done is not None:
                    return done
            # Catch up on other writers' records before taking the write lock, so that
            # inside it only the few records committed in between remain to be read.
            state, generation = self._read_state(pool_id), self._cache.generation
        else:
            batch.add(pool_id)  # inside store.transaction(): a rollback forgets every pool it touched
        written = None
        try:
            with self._write_boundary(db, lambda: self._read_state(pool_id)):
                before = self._resync()  # no other connection commits until this one does
                if state is not None and self._cache.generation != generation:
                    state = None  # another connection committed meanwhile: read the state again
                payload, sequence = self._insert(db, pool_id, build, state)
                written = payload
        except BaseException:
            if batch is None:
                end(db)  # an interrupt on entering the boundary's exit skips it
                if written is not None:
                    self._cache.states.pop(pool_id, None)  # applied, but maybe not committed
                    self._appends -= 1
            raise
        if batch is None:
            self._cache.advance(before)  # after this connection's COMMIT
            if written is not None:  # committed (inside transaction() the next batch reads the records' JSON)
                self._points.appended(pool_id, payload, sequence)
                self._trim((pool_id,))
        return payload, sequence

    def _append_alone(self, db: apsw.Connection, pool_id: str, build: Build, cached: Cached) -> tuple[Any, int] | None:
        """A lone write as one statement (``APPEND_ALONE``), without ``BEGIN IMMEDIATE`` and
        ``COMMIT`` around it, checked against the pool's cached state without asking whether
        it is current: the statement appends only if no other connection appended to the pool
        since (the primary key refuses it) nor deleted a pool since the cache last looked (the
        drops counter), and then the state was current (so it is, with the record, in this
        generation too). ``None`` (nothing written) where
        ``_append``'s transaction must decide, against a state known current: one did, or the
        check refused or found nothing to append, or the write lock is taken (the transaction
        waits for it catching up), or the file has no ``fastpool_drops`` (one the Rust crate
        made: never again on this store object)."""
        drops, state = self._drops, cached.state
        if drops is None:
            return None  # not read since the last pool deletion of this store object
        try:
            payload = build(state)
        except Exception:
            return None
        if payload is None:
            return None
        sequence = state.cursor + 1
        text = self._engine.dumps(payload)
        if len(text) > self._max_text // 4:  # else short enough even at 4 UTF-8 bytes a character
            self._check_length(payload, text)
        before, changes, busy = self._cache.sync, db.total_changes(), self._busy
        busy.fail_fast = True
        try:
            db.execute(_sql.APPEND_ALONE, (pool_id, sequence, payload.TYPE, text, drops))
            if db.total_changes() == changes:
                return None
            state.apply(payload, sequence)
            self._appends += 1
            cached.generation = self._cache.generation
            self._cache.states.move_to_end(pool_id)
            self._cache.last = pool_id
        except (apsw.BusyError, apsw.ConstraintError):
            return None
        except apsw.SQLError:
            self._alone = False
            return None
        except apsw.Error as error:
            raise translate(error) from error
        except BaseException:
            if db.total_changes() != changes:  # committed, and maybe half applied: read the pool again
                self._cache.states.pop(pool_id, None)
            raise
        finally:
            busy.fail_fast = False
        self._cache.advance(before)  # the sync point moves on only if no other commit came between
        self._points.appended(pool_id, payload, sequence)
        return payload, sequence

    def _insert(
        self, db: apsw.Connection, pool_id: str, build: Build, state: PoolState | None = None
    ) -> tuple[Any, int]:
        """Check and append one record inside the open write transaction, and apply it to the
        cached state at once (so that the next write of a group sees it); whoever began the
        transaction forgets the state if it does not commit. ``state``: the pool's, if known
        current (caught up in this generation, with no commit of another connection since).

        All or nothing within the transaction, which may go on (a group's next write,
        ``transaction()``): the index batch runs before the record, and a failure once the
        record is in deletes it again and forgets the pool's state."""
        if state is None:
            state = self._read_state(pool_id)
        payload = build(state)
        if payload is None:
            return None, state.cursor
        sequence = state.cursor + 1
        text = self._engine.dumps(payload)
        if len(text) > self._max_text // 4:  # else short enough even at 4 UTF-8 bytes a character
            self._check_length(payload, text)
        self._points.batch(db, pool_id, state.cursor)
        changes = db.total_changes()
        try:
            db.execute(_sql.INSERT, (pool_id, sequence, payload.TYPE, text))
            state.apply(payload, sequence)
            self._cache.remember(pool_id, state)
            self._appends += 1
        except BaseException:
            if db.total_changes() != changes:  # the record is in: take it out again
                self._cache.states.pop(pool_id, None)
                self._undo_insert(db, pool_id, sequence)
            raise
        return payload, sequence

    @staticmethod
    def _undo_insert(db: apsw.Connection, pool_id: str, sequence: int) -> None:
        """Delete a record this transaction inserted; if that fails, end the transaction."""
        try:
            if not db.getautocommit():
                db.execute(_sql.UNDO_INSERT, (pool_id, sequence))
        except BaseException:
            end(db)
            raise

    # -- group commit (the scheduler is ``_group_commit.GroupCommit``; these run its writes) ------

    def _submit(self, pool_id: str, build: Build, shape: Shape) -> Any:
        """A write method's append, through the group commit (see ``GroupCommit.submit``)."""
        return self._group.submit(self, pool_id, build, shape)

    def _commit_group(self, group: list[Request]) -> None:
        """One ``BEGIN IMMEDIATE`` ... ``COMMIT`` for the group's writes, in arrival order.

        A write whose check fails (or whose statement SQLite refuses, or that fails after its
        INSERT, which is then undone) gets its own error and the others go on; an error that
        ends the transaction (the lock not had in time, disk full, a failed COMMIT, an
        interrupt) fails every write of the group that would have committed, and forgets
        what they applied to the cache."""
        pools = list({request.pool_id: None for request in group})

        def catch_up() -> None:  # outside the write lock; an error shows again inside, as that write's own
            for pool_id in pools:
                try:
                    self._read_state(pool_id)
                except AgentError:
                    pass

        db = self._connection()
        write = Write(db, True, self._readonly, self._busy, catch_up)
        try:
            catch_up()
            with write:
                before = self._resync()
                states: dict[str, PoolState] = {}  # caught up in this transaction: current until it ends
                for request in group:
                    pool_id = request.pool_id
                    try:
                        state = states.get(pool_id)
                        if state is None:
                            state = states[pool_id] = self._read_state(pool_id)
                        request.result = self._insert(db, pool_id, request.build, state)
                    except Exception as error:
                        if db.getautocommit():
                            raise  # SQLite rolled the transaction back
                        if pool_id not in self._cache.states:
                            states.pop(pool_id, None)  # _insert forgot a state it had half applied
                        request.error = translate(error) if isinstance(error, apsw.Error) else error
        except BaseException:
            end(db)
            if not write.committed:
                for request in group:
                    if request.result is not None:
                        if request.result[0] is not None:
                            self._cache.states.pop(request.pool_id, None)  # applied, but never committed
                            self._appends -= 1
                        request.result = None
                self._points.clear()  # its marks may name a rolled-back batch
            raise
        self._cache.advance(before)  # after this connection's COMMIT
        for request in group:
            if request.result is not None and request.result[0] is not None:
                self._points.appended(request.pool_id, *request.result)
        self._trim(pools)

    def _change_token(self) -> object:
        self._connection()
        return self._cache.probe.token()

    def _counts(self) -> dict[str, int]:
        group = self._group
        return {
            "appends": self._appends,
            **self._cache.counts(),
            "groups": group.groups,
            "grouped_writes": group.grouped_writes,
            "largest_group": group.largest_group,
            "lock_waits": self._busy.waits,
        }

    def _answers_on_loop(self) -> bool:
        # The shared-memory probe reads ~0.1 µs, the pread and os.stat ones ~1 µs; PRAGMA
        # data_version may wait for a lock (and there is no shared memory to read then).
        return not self._cache.probe.may_wait

    def _check_length(self, payload: Any, text: str) -> None:
        length = len(text) if text.isascii() else len(text.encode("utf-8"))
        if length > self._max_text:
            raise InvalidInput(
                f"{_bulk_field(payload)}: too large to store: the {payload.TYPE} record's JSON is {length:,} bytes, "
                f"more than the {self._max_text:,} that fit beside the rest of the row in SQLite's limit of "
                f"{self._max_text + _ROW_OVERHEAD:,} bytes per value (SQLITE_LIMIT_LENGTH)"
            )

    def _records_after(self, pool_id: str, after: int, limit: int = -1) -> list[AgentPoolStoreRecord]:
        # A cursor may be any u64 (or larger int); SQLite integers stop at 2**63 - 1, and
        # no record lies beyond that, so the clamped query gives the same (empty) answer.
        after = min(after, _MAX_SEQUENCE)
        kept: list[AgentPoolStoreRecord] = []
        if limit < 0:
            kept, after = self._recent.after(pool_id, after)
            if kept and after == self._fresh_cursor(pool_id):
                return kept  # nothing after them: no query
        try:
            rows = self._connection().execute(_sql.ROWS_AFTER_LIMIT, (pool_id, after, limit)).fetchall()
        except apsw.Error as error:
            raise translate(error) from error
        finally:
            self._check_unchanged()
        records = list(self._decode_records(pool_id, rows))
        if limit < 0:
            self._recent.keep(pool_id, records)
        return kept + records if kept else records

    def _fresh_cursor(self, pool_id: str) -> int | None:
        """The pool's last sequence if a cached state knows it and nothing was committed since."""
        state = self._cache.current(pool_id)
        if state is not None:
            return state.cursor
        if pool_id in self._cache.states:
            return None
        point = self._point_states.get(pool_id)
        return point.cursor if point is not None and point.token == self._cache.probe.token() else None

    def _allocate_event_sequence(self, pool_id: str) -> int:
        db = self._connection()
        write = self._write_boundary(db)
        try:
            with write:
                before = self._resync()
                self._opened(self._read_state(pool_id))
                sequence: int = db.execute(_sql.NEXT_EVENT, (pool_id,)).fetchall()[0][0]  # type: ignore[assignment]
        except BaseException:
            if write.began:
                end(db)  # an interrupt on entering the boundary's exit skips it
            raise
        if write.began:
            self._cache.advance(before)  # after this connection's COMMIT
        return sequence

    # -- transactions ------------------------------------------------------------------------

    def _write_boundary(self, db: apsw.Connection, catch_up: Callable[[], object] | None = None) -> Write:
        """The boundary of one write: its own transaction, or none inside ``transaction()``."""
        return Write(db, self._batch is None, self._readonly, self._busy, catch_up)

    @contextmanager
    def transaction(self) -> Iterator[SqliteAgentPoolStore]:
        """Group several writes into one ``BEGIN IMMEDIATE`` ... ``COMMIT``: one commit, all or nothing.

        Inside the block, writes see each other's effects and reads see them too; other
        threads using this store object wait until the block ends, other store objects and
        processes see nothing until it commits. An exception rolls every write back and
        propagates. Cursors returned inside the block are final once it commits.

        >>> import tempfile, pathlib
        >>> from fastpool import AgentPoolMember, AgentPoolStoreConfig
        >>> store = SqliteAgentPoolStore(pathlib.Path(tempfile.mkdtemp()) / "batch.sqlite")
        >>> with store.transaction():
        ...     _ = store.open_pool("pool.a", AgentPoolStoreConfig())
        ...     for n in range(3):
        ...         _ = store.join_member("pool.a", AgentPoolMember(run_id=f"run.{n}", agent_id="agent"))
        >>> store.snapshot("pool.a").cursor.sequence
        4
        >>> store.close()
        """
        with self._lock:
            if self._batch is not None:
                raise InvalidInput("transaction: this store object already has a transaction open")
            touched: set[str] = set()
            db = self._connection()
            appends = self._appends
            try:
                with Write(db, True, self._readonly):
                    before = self._resync()
                    self._batch = touched
                    try:
                        yield self
                    finally:
                        self._batch = None
                    if self._db is None:  # close() in the block: closing rolled the writes back
                        raise AgentError(
                            AgentErrorKind.INVALID_STATE_TRANSITION,
                            RetryClassification.NOT_RETRYABLE,
                            "sqlite agent pool store was closed inside transaction(): nothing was committed",
                        )
            except BaseException:
                end(db)  # an interrupt on entering the boundary's exit skips it
                for pool_id in touched:
                    self._cache.states.pop(pool_id, None)
                self._appends = appends  # rolled back
                self._points.clear()  # its marks may name a rolled-back batch
                self._recent.forget()  # reads inside the block saw its records
                raise
            self._cache.advance(before)  # after this connection's COMMIT
            self._trim(touched)

"""``SqliteAgentPoolStore``: the durable store, file-compatible with the Rust crate.

One APSW connection per store object, WAL, and every write is ``BEGIN IMMEDIATE`` →
catch up → check → append → ``COMMIT``, so the check and the append are one atomic
step and cursors are gap-free across processes. Reads are served from a per-pool
cached state that catches up incrementally: a change probe (``_probe``) tells in well
under a microsecond whether any connection committed since the state was last synced,
and only rows past the cached cursor are ever read. A store's own writes are applied
to its cache after commit without re-reading.
"""

from __future__ import annotations

import copy
import ctypes
import os
import threading
import time
import weakref
from _thread import allocate_lock as _new_lock
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import apsw

from . import _sql
from ._base import Build, NeedsWorker, Row, Shape, StoreBase, check_id, check_options, loop_call
from ._point_reads import PointIndex, PointState, RecentRecords, Untrusted
from ._pool_state import PoolState
from ._probe import ChangeProbe, NoProbe, open_probe, release_dropped
from ._sql import SCHEMA_VERSION
from ._sqlite_errors import NAME, PREFIX, translate
from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError, InvalidInput
from .model import AgentPoolStoreRecord

__all__ = ["SqliteAgentPoolStore", "SCHEMA_VERSION"]

T = TypeVar("T")
_SYNCHRONOUS = {"normal": 1, "full": 2}
_MAX_SEQUENCE = 2**63 - 1  # the largest SQLite integer
_ROW_OVERHEAD = 1024  # bytes of a record row besides the payload: pool_id (<= 512), seq, kind, header
_NEVER = object()  # the sync point of a store that has not read the probe yet
# Writes per group at most: a group holds the store's lock (and reads) until it commits.
_GROUP_LIMIT = 64
_GATHER_MAX = 0.002  # seconds a leader waits at most for the writers of the last group


class _BusyWait:
    """Retry a locked database quickly until ``timeout`` seconds have passed.

    SQLite's own busy timeout sleeps 1, 2, 5, 10 ... 100 ms between tries, which leaves
    the lock idle most of the time when several processes write at once; short,
    gently growing sleeps hand the lock over within tens of microseconds. While
    ``fail_fast`` is set SQLite is told at once (a write's ``BEGIN IMMEDIATE`` waits in
    ``_Write``, which catches up on other writers' records meanwhile).
    """

    __slots__ = ("timeout", "started", "fail_fast")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.started = 0.0
        self.fail_fast = False

    def __call__(self, prior_calls: int) -> bool:
        if self.fail_fast:
            return False
        now = time.monotonic()
        if prior_calls == 0:
            self.started = now
        elif now - self.started >= self.timeout:
            return False  # give up: SQLITE_BUSY becomes a RETRYABLE AgentError
        time.sleep(min(0.0005, 0.00002 * (1 + prior_calls)))
        return True


def check_path(path: str | os.PathLike[str]) -> None:
    """A path SQLite can open: text without NUL that encodes as UTF-8 (SQLite's file names are
    UTF-8, so a lone surrogate, as ``os.fsdecode`` gives for undecodable bytes, is refused)."""
    text = os.fspath(path)
    if not isinstance(text, str):
        raise InvalidInput(f"path: expected a text path, got {type(text).__name__}")
    if "\0" in text:
        raise InvalidInput(f"path: contains a NUL character: {text!r}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"path: not valid Unicode text (a lone surrogate), which SQLite cannot open: {text!r}"
        ) from None


def enable_wal(db: apsw.Connection, busy_timeout: float) -> None:
    """Put the file in WAL mode (a read-only file keeps the mode it is in)."""
    # One pragma per call: APSW stops a multi-statement execute at the first row.
    # Switching to WAL upgrades a read transaction to a write, and SQLite answers BUSY at
    # once, without calling the busy handler (deadlock avoidance), while another
    # connection writes a file not yet in WAL mode (two processes creating one new file
    # at once): retry here, within busy_timeout.
    wait, attempts = _BusyWait(busy_timeout), 0
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except apsw.ReadOnlyError:
            return  # a read-only file still serves reads in the mode it is in
        except apsw.BusyError:
            if not wait(attempts):
                raise
            attempts += 1


def _writable(path: str) -> bool:
    """Whether this process may write ``path`` (by its modes and its mount; opens nothing)."""
    return os.access(path, os.W_OK, effective_ids=os.access in os.supports_effective_ids)


def _size(path: str) -> int | None:
    """A file's size, None if there is none; ``os.stat`` only (SPEC §6: no descriptor is opened)."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


class _Unchanged:
    """The change probe of a file opened ``immutable=1``, which also guards it.

    Immutable tells SQLite that nothing can change the file: it takes no locks and never
    looks at a -wal, so it would answer from a file changing under it (stale or torn). A
    readonly store opens a file so only where this user cannot write it; another user
    still may. So ``token()`` (on every read, and again after each read of the file) checks
    with ``os.stat`` that the file is as it was at open (device, inode, size, times: to the
    file system's time stamp granularity) and that no -wal has frames, and fails
    HOST_CONFIGURATION_NEEDED from the first time it is not.
    """

    __slots__ = ("_path", "_seen")
    may_wait = False  # two os.stat calls

    def __init__(self, path: str) -> None:
        self._path = path
        self._seen = self._stat()  # taken before SQLite first reads the file

    def _stat(self) -> tuple[object, ...]:
        try:
            found = os.stat(self._path)
        except FileNotFoundError:
            return ()
        wal = self._path + "-wal"
        frames = os.access(wal, os.F_OK) and bool(_size(wal))  # access() raises nothing when there is none
        return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns, frames

    def token(self) -> object:
        if self._stat() != self._seen:
            raise AgentError.host_configuration_needed(
                f"sqlite agent pool store file {self._path!r} changed after this read-only store opened it "
                "immutable (another user wrote to it): open the store again"
            )
        return 0

    def only_own_commit(self, before: object, after: object) -> bool:
        return False  # an immutable connection never commits

    def release(self) -> None:
        pass


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


def open_readonly(path: str | os.PathLike[str]) -> tuple[apsw.Connection, _Unchanged | None]:
    """The connection of a ``readonly=True`` store (and of ``fastpool verify``), and the guard if it is immutable.

    SQLite reads a WAL file through its -wal and -shm, creating them if missing, and only
    a connection that can write removes them when it closes last. So: a connection that
    could write (but is kept from it) where this user can write; SQLite's read-only one
    where it creates nothing; else, with no transaction outside the database file, the
    file opened immutable; else a HOST_CONFIGURATION_NEEDED error saying what to change.
    """
    path = os.path.realpath(path)  # where SQLite puts the -wal and -shm, past symlinks
    folder = os.path.dirname(path)
    folder_writable = _writable(folder)
    if folder_writable and _writable(path):
        db = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE)
        db.execute("PRAGMA query_only = ON")
        return db, None
    wal, shm = _size(path + "-wal"), os.path.exists(path + "-shm")
    if not folder_writable or (wal is not None and shm):
        db = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchall()
            return db, None
        except (apsw.CantOpenError, apsw.ReadOnlyError):
            db.close()  # a WAL file without its -shm (or a hot journal): see below
            if wal and shm:
                raise
    if wal:
        why = "this user could not remove again" if folder_writable else "this user cannot create"
        raise AgentError.host_configuration_needed(
            f"sqlite agent pool store file {path!r} cannot be read read-only: {path + '-wal'!r} holds "
            f"transactions not yet checkpointed into it, and reading them needs {path + '-shm'!r}, which {why}; "
            f"make {folder!r} and the file writable for this user, or checkpoint the file "
            "(open and close it once read-write)"
        )
    if os.path.exists(path + "-journal"):
        raise AgentError.host_configuration_needed(
            f"sqlite agent pool store file {path!r} cannot be read read-only: {path + '-journal'!r} belongs "
            "to a transaction in progress or interrupted; once it is gone (a read-write open rolls "
            "an interrupted one back), open the store again"
        )
    unchanged = _Unchanged(path)
    uri = Path(path).as_uri() + "?immutable=1"
    return apsw.Connection(uri, flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI), unchanged


def _end(db: apsw.Connection) -> None:
    """Roll back the connection's open transaction, if any: what every handler of an exception
    inside a write does, wherever it landed (closed, closing rolled it back)."""
    try:
        if not db.getautocommit():
            db.execute("ROLLBACK")
    except apsw.ConnectionClosedError:
        pass


def _in_transaction(db: apsw.Connection, readonly: bool, work: Callable[[], T]) -> T:
    """``work()`` in one write transaction of its own (see ``_Write``)."""
    try:
        with _Write(db, True, readonly):
            return work()
    except BaseException:
        _end(db)  # an interrupt on entering the boundary's exit skips it
        raise


class _Write:
    """One write's transaction boundary, the one place a store begins, commits and rolls back.

    ``BEGIN IMMEDIATE`` (``BEGIN`` for a readonly store, whose query_only connection refuses
    the former; its INSERT then fails read-only after the contract's own checks) unless
    ``begin`` is false (inside ``transaction()``, which owns the boundary); ``COMMIT`` when
    the block ends normally; ``ROLLBACK`` on any exception, a failed ``COMMIT`` included;
    SQLite's errors leave it as ``AgentError``. ``committed`` tells whether the ``COMMIT``
    went through, also when an exception (an interrupt) landed right after it.

    An exception can land wherever CPython checks for a signal: on entering a function and
    after a C call returns. So ``__enter__`` rolls back itself if one lands after its ``BEGIN``,
    and, since one landing on entering ``__exit__`` skips it whole, each caller's handler ends
    the transaction too (``_end``).

    With ``catch_up``, a ``BEGIN IMMEDIATE`` that finds the write lock taken calls it
    (outside any transaction) before each new try, on ``busy``'s schedule: the records other
    writers commit meanwhile are read while waiting, not while holding the lock after them.
    """

    __slots__ = ("db", "began", "committed", "_statement", "_busy", "_catch_up")

    def __init__(
        self,
        db: apsw.Connection,
        begin: bool,
        readonly: bool,
        busy: _BusyWait | None = None,
        catch_up: Callable[[], object] | None = None,
    ) -> None:
        self.db = db
        self.began = begin
        self.committed = False
        self._statement = "BEGIN" if readonly else "BEGIN IMMEDIATE"
        self._busy = busy
        self._catch_up = None if readonly else catch_up

    def __enter__(self) -> _Write:
        if self.began:
            try:
                if self._catch_up is None:
                    self.db.execute(self._statement)
                else:
                    self._begin_catching_up()
            except BaseException as error:
                _end(self.db)  # an interrupt right after BEGIN returned
                if isinstance(error, apsw.Error):
                    raise translate(error) from error
                raise
        return self

    def _begin_catching_up(self) -> None:
        busy, catch_up, attempts = self._busy, self._catch_up, 0
        assert busy is not None and catch_up is not None
        while True:
            busy.fail_fast = True
            try:
                self.db.execute(self._statement)
                return
            except apsw.BusyError:
                busy.fail_fast = False
                if not busy(attempts):
                    raise  # busy_timeout has passed
                attempts += 1
            finally:
                busy.fail_fast = False
            catch_up()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if self.began:
            if error is None:
                try:
                    self.db.execute("COMMIT")
                except apsw.Error as failed:
                    error = failed
                except BaseException:
                    self.committed = self.db.getautocommit()  # an interrupt once COMMIT had returned
                    _end(self.db)
                    raise
                else:
                    self.committed = True
                    return
            _end(self.db)
        if isinstance(error, apsw.Error):
            raise translate(error) from error


class _Request:
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


class _LoopRequest(_Request):
    """A write queued by a method running on an event loop (``fastpool.aio``): the loop does
    not wait; ``sink`` takes the outcome, shaped into the method's result by ``shape``, and
    finds a worker thread when the write is to lead a group."""

    __slots__ = ("shape", "sink", "future", "resolved")

    def __init__(self, pool_id: str, build: Build, shape: Shape, sink: Any) -> None:  # the hot path: no super()
        self.pool_id = pool_id
        self.build = build
        self.result = None
        self.error = None
        self.waiter = None
        self.leads = False
        self.finished = False
        self.shape = shape
        self.sink = sink
        self.future = sink.future()  # made now, on the loop's thread
        self.resolved = False  # the loop has taken the outcome (set on the loop's thread)

    def queue_behind(self) -> None:
        pass

    def finish(self) -> None:
        if not self.finished:
            self.sink.done(self)  # twice after an interrupt in it: the loop takes the outcome once
            self.finished = True

    def promote(self) -> None:
        if not self.leads:
            self.sink.lead(self)
            self.leads = True


class _Cached:
    """A pool's state and the store's generation it was last caught up in (-1: never)."""

    __slots__ = ("state", "generation")

    def __init__(self, state: PoolState) -> None:
        self.state = state
        self.generation = -1


class SqliteAgentPoolStore(StoreBase):
    """An ``AgentPoolStore`` in an SQLite file, shared by any number of store objects and processes.

    ``synchronous="full"`` makes every commit survive power loss; ``"normal"`` survives
    process crashes. A write that waits longer than ``busy_timeout`` seconds for the
    file's write lock fails with a ``RETRYABLE`` error and writes nothing. ``readonly``
    opens an existing file and never writes a record (every write then fails with
    ``HOST_CONFIGURATION_NEEDED``); on read-only media or in a directory this user cannot
    write it reads a cleanly closed file as immutable (README, "Read-only users").
    ``max_cached_pools`` bounds the pools whose state is kept in memory (least recently
    used first out; ``evict`` drops one). ``engine``
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
        engine: ModuleType | None = None,
    ) -> None:
        super().__init__(engine)
        if type(readonly) is not bool:
            raise InvalidInput(f"readonly: expected a bool, got {type(readonly).__name__}")
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidInput(f"path: expected a str or os.PathLike, got {type(path).__name__}")
        check_path(path)
        if synchronous not in _SYNCHRONOUS:
            raise InvalidInput(f"synchronous: expected 'normal' or 'full', got {synchronous!r}")
        if type(busy_timeout) not in (int, float) or not 0 <= busy_timeout < 2**31 / 1000:
            raise InvalidInput(f"busy_timeout: expected seconds as a non-negative number, got {busy_timeout!r}")
        if type(max_cached_pools) is not int or max_cached_pools < 1:
            raise InvalidInput(f"max_cached_pools: expected a positive int, got {max_cached_pools!r}")
        self._path = Path(path)
        self._synchronous = synchronous
        self._readonly = readonly
        self._busy_timeout = busy_timeout
        # Least recently used first; a warm read moves its pool to the end.
        self._states: OrderedDict[str, _Cached] = OrderedDict()
        self._max_cached_pools = max_cached_pools
        self._batch: set[str] | None = None  # pools written inside an open transaction()
        # One sync point for every cached pool: the probe token as of which a state caught
        # up in the current generation is known current. Own commits advance it; any other
        # token starts a new generation, so each pool catches up once on its next use.
        self._sync: object = _NEVER
        self._generation = 0
        self._drops: object = None  # fastpool_drops' count as of the sync point (None: not read yet)
        self._reset_group()
        self._db: apsw.Connection | None = None
        self._busy = _BusyWait(busy_timeout)
        self._probe: ChangeProbe = NoProbe()
        self._unchanged: _Unchanged | None = None  # the guard of a file opened immutable
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
            self._configure(self._db)
            self._probe = self._unchanged or open_probe(self._db)
            # Longer JSON is refused before SQLite would (its TooBigError is the backstop).
            self._max_text = self._db.limit(apsw.SQLITE_LIMIT_LENGTH, -1) - _ROW_OVERHEAD
            self._dropped = weakref.finalize(self, release_dropped, self._db, self._probe)
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
            probe, self._probe = self._probe, NoProbe()
            self._close_connection()
            probe.release()  # after SQLite has let go of the file (see _probe)

    def evict(self, pool_id: str) -> None:
        """Drop the pool's cached state (if any); its next use rebuilds it from the file."""
        pool_id = check_id(pool_id, "pool_id")
        with self._lock:
            self._connection()
            self._states.pop(pool_id, None)
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
            return _in_transaction(db, self._readonly, lambda: self._points.build(db))

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
            _in_transaction(db, self._readonly, append)
            self._states.pop(pool_id, None)
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
                _end(db)  # an interrupt on entering the boundary's exit skips it
            self._drops = None  # maybe rolled back: read again
            raise
        if self._batch is not None:
            self._batch.add(pool_id)  # inside transaction(): a rollback forgets the pool again
        self._forget_cached()
        return int(count), int(last or 0), None if events is None else int(events)  # type: ignore[arg-type]

    def _forget_cached(self) -> None:
        """Drop every cached state: a pool was deleted, so a cached cursor may point past records gone."""
        self._states.clear()
        self._point_states.clear()
        self._points.clear()
        self._recent.forget()

    def _check_drops(self) -> None:
        """After another connection's commit: if it deleted a pool, forget what was cached."""
        try:
            drops = self._connection().execute(_sql.DROPS).get or 0  # one value: cheaper than fetchall
        except apsw.SQLError:
            drops = 0  # no fastpool_drops table: nothing was ever deleted here
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

    def _reset_group(self) -> None:
        self._queue: list[_Request] = []  # writes waiting for the next group, in arrival order
        self._queue_lock = threading.Lock()
        self._leading: object = None  # the write whose thread leads (or is about to lead) a group
        self._gate: Any = None  # held while a leader waits for company (see _gather)
        self._last_group, self._last_took = 1, 0.0  # the last group's size and seconds

    def _after_fork_in_child(self, parent_pid: int) -> None:
        super()._after_fork_in_child(parent_pid)
        if self._dropped is not None:
            self._dropped.detach()  # collecting it here must not close the parent's connection
        self._probe = NoProbe()
        self._states = OrderedDict()
        self._point_states = {}
        self._recent = RecentRecords()
        self._batch = None
        self._reset_group()  # parent threads' writes: never to be woken here
        if self._db is not None:
            # SQLite forbids using a connection across fork(), closing included (a close
            # would roll back a transaction some parent thread has open, in the shared
            # WAL-index). One reference more than anyone holds keeps it from ever being
            # garbage-collected, and so closed, in this process.
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(self._db))

    # -- set-up --------------------------------------------------------------------------

    def _configure(self, db: apsw.Connection) -> None:
        tables = {row[0] for row in db.execute(_sql.TABLES)}
        if self._readonly:
            if not {"agent_pool_records", "agent_pool_event_seq"} <= tables:
                raise AgentError.host_configuration_needed(
                    f"sqlite agent pool store file {str(self._path)!r} has no agent pool tables"
                )
            if "fastpool_meta" in tables:
                self._check_schema_version(db)
            self._points = PointIndex(PointIndex.version_of(db, tables), True)
            return
        enable_wal(db, self._busy_timeout)
        db.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
        level = db.execute("PRAGMA synchronous").fetchall()[0][0]
        if level != _SYNCHRONOUS[self._synchronous]:
            raise AgentError.host_configuration_needed(
                f"sqlite agent pool store could not set synchronous={self._synchronous}"
            )
        if not {"agent_pool_records", "agent_pool_event_seq"} <= tables:
            # A new file: create the Rust crate's tables and fastpool's format marker.
            with _Write(db, True, False):
                for statement in _sql.SCHEMA:
                    db.execute(statement)
                db.execute(_sql.MARK_SCHEMA_VERSION, (str(SCHEMA_VERSION),))
                db.execute(_sql.MARK_POINT_INDEX, (_sql.POINT_INDEX_VERSION,))
            tables = {row[0] for row in db.execute(_sql.TABLES)}
        elif "fastpool_meta" in tables:
            self._check_schema_version(db)
        version = PointIndex.version_of(db, tables)
        if version is None and "fastpool_meta" in tables:
            with _Write(db, True, False):
                for statement in _sql.START_POINT_INDEX:
                    db.execute(statement)
                db.execute(_sql.MARK_POINT_INDEX, (_sql.POINT_INDEX_VERSION,))
            version = _sql.POINT_INDEX_VERSION
        self._points = PointIndex(version, False)

    @staticmethod
    def _check_schema_version(db: apsw.Connection) -> None:
        rows = db.execute(_sql.SCHEMA_VERSION_OF_FILE).fetchall()
        version = rows[0][0] if rows else str(SCHEMA_VERSION)
        if not (isinstance(version, str) and version.isdigit()) or int(version) > SCHEMA_VERSION:
            raise AgentError(
                AgentErrorKind.HOST_CONFIGURATION_NEEDED,
                RetryClassification.HOST_CONFIGURATION_NEEDED,
                f"sqlite agent pool store file has fastpool schema version {version!r}; "
                f"this fastpool reads version {SCHEMA_VERSION}: upgrade fastpool",
            )

    def _check_unchanged(self) -> None:
        """After reading a file opened immutable: fail if it may have changed meanwhile."""
        if self._unchanged is not None:
            self._unchanged.token()

    def _close_connection(self) -> None:
        db, self._db = self._db, None
        self._states.clear()
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
        cached = self._states.get(pool_id)
        # The hot path: a state caught up since the last commit of another connection.
        if cached is not None and cached.generation == self._generation and self._probe.token() == self._sync:
            self._states.move_to_end(pool_id)
            return cached.state
        return self._synced_state(pool_id, cached)

    def _answer(self, pool_id: str, field: str, key: str) -> Any:
        cached = self._states.get(pool_id)
        if cached is None:
            if loop_call.sink is not None:
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
        elif cached.generation == self._generation and self._probe.token() == self._sync:
            self._states.move_to_end(pool_id)
            state = cached.state
            return None if state.config is None else getattr(state, field).get(key)
        state = self._read_state(pool_id)
        return None if state.config is None else getattr(state, field).get(key)

    def _is_opened(self, pool_id: str) -> bool:
        if pool_id not in self._states:
            point = self._point_state(pool_id)
            if point is not None:
                return point.tail.config is not None
        return self._read_state(pool_id).config is not None

    def _point_state(self, pool_id: str) -> PointState | None:
        """The pool's point state, caught up; ``None`` where it is read by a full replay."""
        db = self._connection()
        try:
            token = self._probe.token()
            if token != self._sync:
                self._resync()  # first forgets every cached state if a pool was deleted meanwhile
            point = self._point_states.get(pool_id)
            if point is None:
                point = self._points.state(db, self._engine, self._name, pool_id)
                if point is None:
                    return None
                self._point_states[pool_id] = point
                if len(self._point_states) > self._max_cached_pools:
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

    def _synced_state(self, pool_id: str, cached: _Cached | None) -> PoolState:
        if loop_call.sink is not None:
            raise NeedsWorker  # the rows are read on a worker thread
        db = self._connection()
        try:
            self._resync()  # the token is read before the rows: a commit in between shows next time
            generation = self._generation
            if self._states.get(pool_id) is not cached:
                cached = None  # forgotten by _resync: a pool was deleted, so this state may be stale
            if cached is None:
                self._point_states.pop(pool_id, None)
                cached = _Cached(self._new_state(pool_id))
            self._catch_up(db, cached.state)
        except apsw.Error as error:
            raise translate(error) from error
        finally:
            # Progress made before a corrupt row is kept, so a later call resumes after it.
            if cached is not None and cached.state.cursor:
                self._keep(pool_id, cached)
        cached.generation = generation
        return cached.state

    def _resync(self) -> object:
        """The probe's token; if it is not the sync point, another connection has committed
        since: it becomes the sync point, in a new generation (every cached pool stale)."""
        token = self._probe.token()
        if token != self._sync:
            self._sync = token
            self._generation += 1
            self._check_drops()
        return token

    def _advance(self, before: object) -> None:
        """After this connection's COMMIT: ``before`` is the sync point read inside the write
        transaction. If that commit is the only one since, every cached state is still
        current (the pools it wrote were updated in memory) and the sync point moves on;
        otherwise the next call starts a new generation."""
        after = self._probe.token()
        if after != before and self._probe.only_own_commit(before, after):
            self._sync = after

    def _catch_up(self, db: apsw.Connection, state: PoolState) -> None:
        rows = db.cursor()
        try:
            self._engine.replay_rows(state, rows.execute(_sql.ROWS_AFTER, (state.pool_id, state.cursor)))
        finally:
            rows.close(True)  # ends the read transaction even when replay stopped early
            self._check_unchanged()

    def _append(self, pool_id: str, build: Build) -> tuple[Any, int]:
        db = self._connection()
        batch = self._batch
        state = None
        if batch is None:
            # Catch up on other writers' records before taking the write lock, so that
            # inside it only the few records committed in between remain to be read.
            state, generation = self._read_state(pool_id), self._generation
        else:
            batch.add(pool_id)  # inside store.transaction(): a rollback forgets every pool it touched
        written = None
        try:
            with self._write_boundary(db, lambda: self._read_state(pool_id)):
                before = self._resync()  # no other connection commits until this one does
                if state is not None and self._generation != generation:
                    state = None  # another connection committed meanwhile: read the state again
                payload, sequence = self._insert(db, pool_id, build, state)
                written = payload
        except BaseException:
            if batch is None:
                _end(db)  # an interrupt on entering the boundary's exit skips it
                if written is not None:
                    self._states.pop(pool_id, None)  # applied, but maybe not committed
            raise
        if batch is None:
            self._advance(before)
            if written is not None:  # committed (inside transaction() the next batch reads the records' JSON)
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
            self._remember(pool_id, state)
        except BaseException:
            if db.total_changes() != changes:  # the record is in: take it out again
                self._states.pop(pool_id, None)
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
            _end(db)
            raise

    # -- group commit --------------------------------------------------------------------------
    #
    # Interrupts: an exception (a signal handler's) can land wherever CPython checks for one,
    # on entering a function and after a C call returns. Each step below either leaves the
    # queue as it was or is repaired by a handler of its caller, and the steps a handler
    # repeats act once: the group is taken from the queue with no call in between, ``_leading``
    # names the write whose thread leads (a lone writer's ``build``), so a repeated hand-over
    # acts only if its caller still leads, and ``promote`` and ``finish`` act once each.

    def _submit(self, pool_id: str, build: Build, shape: Shape) -> Any:
        """A write method's append: in a group of its own if no other writer is about,
        else in the next group (leading it if no group is in flight). On an event loop's
        thread (``loop_call``) the write is queued, and the queued request returned."""
        lock = self._lock
        if lock._is_owned():
            # This thread holds the lock (inside transaction(), say): a group would wait for it.
            return shape(*self._append(pool_id, build))
        sink = loop_call.sink
        request: _Request | None = None
        try:
            with self._queue_lock:
                leads = self._leading is None
                if leads and self._last_group == 1 and sink is None:
                    self._leading = build  # alone: no writer beside this one lately
                else:
                    request = _Request(pool_id, build) if sink is None else _LoopRequest(pool_id, build, shape, sink)
                    self._queued(request, leads)
            if request is None:
                # Its own transaction, without a queue; writes that arrive meanwhile queue for the next group.
                with lock:
                    done = shape(*self._append(pool_id, build))
                self._hand_over(build)
                return done
            if sink is not None:
                if leads:
                    sink.lead(request)
                return request
            if not leads:
                leads = request.wait()  # with the outcome, or to lead the next group
            if leads:
                self._lead(request)
            return shape(*request.outcome())
        except BaseException:
            if request is None:
                self._hand_over(build)
            else:
                self._withdraw(request)
            raise

    def _queued(self, request: _Request, leads: bool) -> None:
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

    def _withdraw(self, request: _Request) -> None:
        """The thread of a queued write leaves on an exception: a write still queued never runs
        (one taken into a group runs, and the next read tells), and its lead passes on."""
        with self._queue_lock:
            if request in self._queue:
                self._queue.remove(request)
            if self._leading is request:
                self._pass_lead()

    def _lead_on_worker(self, request: _LoopRequest) -> None:
        """Lead groups for writes made on an event loop, one after the other while the next
        write to lead is also one (a thread's write leads its own group)."""
        next_: _Request | None = request
        while isinstance(next_, _LoopRequest):
            next_ = self._lead(next_, keep=True)

    def _lead(self, own: _Request, keep: bool = False) -> _Request | None:
        """Run the queued writes (``own`` first) as one group once the store's lock is free,
        wake their threads (or tell their loops), and hand the lead to the first write queued
        meanwhile; with ``keep``, return that write if it was made on a loop, to lead it here."""
        group: list[_Request] = []
        try:
            handled = False
            try:
                self._gather()
                with self._lock:
                    with self._queue_lock:  # taken with no call in between: an interrupt loses none
                        group = self._queue[:_GROUP_LIMIT]
                        del self._queue[:_GROUP_LIMIT]
                    started = time.perf_counter()
                    self._commit_group(group)
                    self._last_group, self._last_took = len(group), time.perf_counter() - started
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

    def _hand_over(self, own: object, keep: bool = False) -> _Request | None:
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
            if head is not None and keep and isinstance(head, _LoopRequest):
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

    def _commit_group(self, group: list[_Request]) -> None:
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
        write = _Write(db, True, self._readonly, self._busy, catch_up)
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
                        if pool_id not in self._states:
                            states.pop(pool_id, None)  # _insert forgot a state it had half applied
                        request.error = translate(error) if isinstance(error, apsw.Error) else error
        except BaseException:
            _end(db)
            if not write.committed:
                for request in group:
                    if request.result is not None:
                        if request.result[0] is not None:
                            self._states.pop(request.pool_id, None)  # applied, but never committed
                        request.result = None
                self._points.clear()  # its marks may name a rolled-back batch
            raise
        self._advance(before)
        for request in group:
            if request.result is not None and request.result[0] is not None:
                self._points.appended(request.pool_id, *request.result)

    @staticmethod
    def _fail(group: list[_Request], error: BaseException) -> None:
        """Give every write of a failed group that has no outcome of its own a copy of the error
        (a group that did not commit has none left; see ``_commit_group``)."""
        if not isinstance(error, AgentError):
            error = AgentError(
                AgentErrorKind.INVALID_STATE_TRANSITION,
                RetryClassification.RETRYABLE,
                f"{PREFIX}the group commit holding this write was interrupted by {type(error).__name__} "
                "in another thread before it committed: nothing of this write was stored; retry it",
            )
        for request in group:
            if request.error is None and request.result is None:
                request.error = copy.copy(error)
                request.error.__cause__ = error.__cause__

    def _change_token(self) -> object:
        self._connection()
        return self._probe.token()

    def _answers_on_loop(self) -> bool:
        # The shared-memory probe reads ~0.1 µs, the pread and os.stat ones ~1 µs; PRAGMA
        # data_version may wait for a lock (and there is no shared memory to read then).
        return not self._probe.may_wait

    def _check_length(self, payload: Any, text: str) -> None:
        length = len(text) if text.isascii() else len(text.encode("utf-8"))
        if length > self._max_text:
            raise InvalidInput(
                f"{_bulk_field(payload)}: too large to store: the {payload.TYPE} record's JSON is {length:,} bytes, "
                f"more than the {self._max_text:,} that fit beside the rest of the row in SQLite's limit of "
                f"{self._max_text + _ROW_OVERHEAD:,} bytes per value (SQLITE_LIMIT_LENGTH)"
            )

    def _remember(self, pool_id: str, state: PoolState) -> None:
        if pool_id not in self._states:
            cached = _Cached(state)
            cached.generation = self._generation
            self._keep(pool_id, cached)

    def _keep(self, pool_id: str, cached: _Cached) -> None:
        """Cache a pool's state as the most recently used, dropping the least recently used
        beyond the bound. A pool written inside an open transaction() may go too: the
        connection reads its own uncommitted rows, so it rebuilds with them."""
        self._states[pool_id] = cached
        self._states.move_to_end(pool_id)
        if len(self._states) > self._max_cached_pools:
            self._states.popitem(last=False)

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
        token = self._probe.token()
        cached = self._states.get(pool_id)
        if cached is not None:
            return cached.state.cursor if cached.generation == self._generation and token == self._sync else None
        point = self._point_states.get(pool_id)
        return point.cursor if point is not None and point.token == token else None

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
                _end(db)  # an interrupt on entering the boundary's exit skips it
            raise
        if write.began:
            self._advance(before)
        return sequence

    # -- transactions ------------------------------------------------------------------------

    def _write_boundary(self, db: apsw.Connection, catch_up: Callable[[], object] | None = None) -> _Write:
        """The boundary of one write: its own transaction, or none inside ``transaction()``."""
        return _Write(db, self._batch is None, self._readonly, self._busy, catch_up)

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
            try:
                with _Write(db, True, self._readonly):
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
                _end(db)  # an interrupt on entering the boundary's exit skips it
                for pool_id in touched:
                    self._states.pop(pool_id, None)
                self._points.clear()  # its marks may name a rolled-back batch
                self._recent.forget()  # reads inside the block saw its records
                raise
            self._advance(before)

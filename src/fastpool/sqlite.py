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

import ctypes
import os
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import apsw

from ._base import Build, StoreBase, decode_records
from ._probe import ChangeProbe, NoProbe, open_probe
from ._replay_py import PoolState
from ._sqlite_errors import translate
from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError, InvalidInput
from .model import AgentPoolStoreRecord

__all__ = ["SqliteAgentPoolStore", "SCHEMA_VERSION"]

#: The file format this fastpool writes; a file marked with a newer one is refused.
SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS agent_pool_records (
        pool_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        payload_json TEXT NOT NULL,
        PRIMARY KEY (pool_id, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS agent_pool_event_seq (
        pool_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS fastpool_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
# payload_json is TEXT; a BLOB in it (which SQLite allows) is read as NULL, so that the
# engines refuse it as a corrupt record, as the Rust crate does, instead of decoding bytes.
_ROWS_AFTER = (
    "SELECT seq, kind, CASE WHEN typeof(payload_json) = 'text' THEN payload_json END "
    "FROM agent_pool_records WHERE pool_id = ? AND seq > ? ORDER BY seq"
)
_POOLS = "SELECT pool_id, COUNT(*), MAX(seq) FROM agent_pool_records GROUP BY pool_id ORDER BY pool_id"
# A pool is opened by its pool_opened record (verify checks that kind columns agree with payloads).
_UNOPENED = (
    "SELECT pool_id FROM (SELECT DISTINCT pool_id FROM agent_pool_records) AS pools WHERE NOT EXISTS "
    "(SELECT 1 FROM agent_pool_records AS r WHERE r.pool_id = pools.pool_id AND r.kind = 'pool_opened')"
)
_ROWS_AFTER_LIMIT = _ROWS_AFTER + " LIMIT ?"
_INSERT = "INSERT INTO agent_pool_records (pool_id, seq, kind, payload_json) VALUES (?, ?, ?, ?)"
_NEXT_EVENT = (
    "INSERT INTO agent_pool_event_seq (pool_id, seq) VALUES (?, 1) "
    "ON CONFLICT (pool_id) DO UPDATE SET seq = seq + 1 RETURNING seq"
)
_SYNCHRONOUS = {"normal": 1, "full": 2}
_MAX_SEQUENCE = 2**63 - 1  # the largest SQLite integer


class _BusyWait:
    """Retry a locked database quickly until ``timeout`` seconds have passed.

    SQLite's own busy timeout sleeps 1, 2, 5, 10 ... 100 ms between tries, which leaves
    the lock idle most of the time when several processes write at once; short,
    gently growing sleeps hand the lock over within tens of microseconds.
    """

    __slots__ = ("timeout", "started")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.started = 0.0

    def __call__(self, prior_calls: int) -> bool:
        now = time.monotonic()
        if prior_calls == 0:
            self.started = now
        elif now - self.started >= self.timeout:
            return False  # give up: SQLITE_BUSY becomes a RETRYABLE AgentError
        time.sleep(min(0.0005, 0.00002 * (1 + prior_calls)))
        return True


class _Cached:
    """A pool's state and the probe token it was last synced at (None: unknown)."""

    __slots__ = ("state", "token")

    def __init__(self, state: PoolState) -> None:
        self.state = state
        self.token: object = None


class SqliteAgentPoolStore(StoreBase):
    """An ``AgentPoolStore`` in an SQLite file, shared by any number of store objects and processes.

    ``synchronous="full"`` makes every commit survive power loss; ``"normal"`` survives
    process crashes. A write that waits longer than ``busy_timeout`` seconds for the
    file's write lock fails with a ``RETRYABLE`` error and writes nothing. ``readonly``
    opens an existing file without changing it in any way (every write then fails with
    ``HOST_CONFIGURATION_NEEDED``). ``engine``
    picks the replay engine module (``fastpool._replay`` or ``fastpool._replay_py``;
    default: the one ``fastpool`` loaded), for benchmarks and differential tests.

    >>> import tempfile, pathlib
    >>> from fastpool import AgentPoolStoreConfig
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pools.sqlite"
    >>> with SqliteAgentPoolStore(path) as store:
    ...     store.open_pool("pool.a", AgentPoolStoreConfig()).cursor.sequence
    1
    """

    _prefix = "sqlite "

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "normal",
        busy_timeout: float = 5.0,
        readonly: bool = False,
        engine: ModuleType | None = None,
    ) -> None:
        super().__init__(engine)
        if type(readonly) is not bool:
            raise InvalidInput(f"readonly: expected a bool, got {type(readonly).__name__}")
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidInput(f"path: expected a str or os.PathLike, got {type(path).__name__}")
        if synchronous not in _SYNCHRONOUS:
            raise InvalidInput(f"synchronous: expected 'normal' or 'full', got {synchronous!r}")
        if type(busy_timeout) not in (int, float) or not 0 <= busy_timeout < 2**31 / 1000:
            raise InvalidInput(f"busy_timeout: expected seconds as a non-negative number, got {busy_timeout!r}")
        self._path = Path(path)
        self._synchronous = synchronous
        self._readonly = readonly
        self._busy_timeout = busy_timeout
        self._states: dict[str, _Cached] = {}
        self._batch: set[str] | None = None  # pools written inside an open transaction()
        self._db: apsw.Connection | None = None
        self._probe: ChangeProbe = NoProbe()
        try:
            if readonly:
                flags = apsw.SQLITE_OPEN_READONLY
            else:
                flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
                if str(self._path) != ":memory:":
                    self._path.parent.mkdir(parents=True, exist_ok=True)
            self._db = apsw.Connection(str(self._path), flags=flags)
            self._db.set_busy_handler(_BusyWait(busy_timeout))
            self._configure(self._db)
            self._probe = open_probe(self._db)
        except (apsw.Error, OSError) as error:
            self._close_connection()
            raise translate(error) from error
        except AgentError:
            self._close_connection()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str], **options: Any) -> SqliteAgentPoolStore:
        """Open or create the store at ``path`` (missing parent directories are created)."""
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
            probe, self._probe = self._probe, NoProbe()
            self._close_connection()
            probe.release()  # after SQLite has let go of the file (see _probe)

    def pools(self) -> list[tuple[str, int, int]]:
        """Every pool with records in the file: ``(pool_id, record count, last sequence)``, sorted."""
        with self._lock:
            try:
                rows = self._connection().execute(_POOLS).fetchall()
            except apsw.Error as error:
                raise translate(error) from error
        return [(str(pool_id), int(count), int(last)) for pool_id, count, last in rows]  # type: ignore[arg-type]

    # -- inspection (the CLI shows every record in the file, where reads show none of a pool never opened)

    def _unopened_pools(self) -> set[str]:
        """The pools with records but no ``pool_opened`` among them (the Rust store appends to such pools)."""
        with self._lock:
            try:
                rows = self._connection().execute(_UNOPENED).fetchall()
            except apsw.Error as error:
                raise translate(error) from error
        return {str(pool_id) for (pool_id,) in rows}

    def _stream(self, pool_id: str, after: int = 0) -> Generator[AgentPoolStoreRecord, None, None]:
        """The pool's records after ``after``, opened or not, decoded one row at a time from one read
        transaction, so memory stays flat whatever the pool's size. The store's lock is held until
        the iterator is exhausted or closed."""
        with self._lock:
            rows = self._connection().cursor()
            try:
                yield from decode_records(
                    self._engine, pool_id, rows.execute(_ROWS_AFTER, (pool_id, min(after, _MAX_SEQUENCE)))
                )
            except apsw.Error as error:
                raise translate(error) from error
            finally:
                rows.close(True)  # ends the read transaction, also when the reader stopped early

    def __enter__(self) -> SqliteAgentPoolStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._db is None else "open"
        return f"SqliteAgentPoolStore({str(self._path)!r}, {state})"

    def _after_fork_in_child(self, parent_pid: int) -> None:
        super()._after_fork_in_child(parent_pid)
        self._probe = NoProbe()
        self._states = {}
        self._batch = None
        if self._db is not None:
            # SQLite forbids using a connection across fork(), closing included (a close
            # would roll back a transaction some parent thread has open, in the shared
            # WAL-index). One reference more than anyone holds keeps it from ever being
            # garbage-collected, and so closed, in this process.
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(self._db))

    # -- set-up --------------------------------------------------------------------------

    def _configure(self, db: apsw.Connection) -> None:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if self._readonly:
            if not {"agent_pool_records", "agent_pool_event_seq"} <= tables:
                raise AgentError.host_configuration_needed(
                    f"sqlite agent pool store file {str(self._path)!r} has no agent pool tables"
                )
            if "fastpool_meta" in tables:
                self._check_schema_version(db)
            return
        # One pragma per call: APSW stops a multi-statement execute at the first row.
        # Switching to WAL upgrades a read transaction to a write, and SQLite answers BUSY at
        # once, without calling the busy handler (deadlock avoidance), while another
        # connection writes a file not yet in WAL mode (two processes creating one new file
        # at once): retry here, within busy_timeout.
        wait, attempts = _BusyWait(self._busy_timeout), 0
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL").fetchall()
                break
            except apsw.ReadOnlyError:
                break  # a read-only file still serves reads in the mode it is in
            except apsw.BusyError:
                if not wait(attempts):
                    raise
                attempts += 1
        db.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
        level = db.execute("PRAGMA synchronous").fetchall()[0][0]
        if level != _SYNCHRONOUS[self._synchronous]:
            raise AgentError.host_configuration_needed(
                f"sqlite agent pool store could not set synchronous={self._synchronous}"
            )
        if not {"agent_pool_records", "agent_pool_event_seq"} <= tables:
            # A new file: create the Rust crate's tables and fastpool's format marker.
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(
                    "INSERT OR IGNORE INTO fastpool_meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        elif "fastpool_meta" in tables:
            self._check_schema_version(db)

    @staticmethod
    def _check_schema_version(db: apsw.Connection) -> None:
        rows = db.execute("SELECT value FROM fastpool_meta WHERE key = 'schema_version'").fetchall()
        version = rows[0][0] if rows else str(SCHEMA_VERSION)
        if not (isinstance(version, str) and version.isdigit()) or int(version) > SCHEMA_VERSION:
            raise AgentError(
                AgentErrorKind.HOST_CONFIGURATION_NEEDED,
                RetryClassification.HOST_CONFIGURATION_NEEDED,
                f"sqlite agent pool store file has fastpool schema version {version!r}; "
                f"this fastpool reads version {SCHEMA_VERSION}: upgrade fastpool",
            )

    def _close_connection(self) -> None:
        db, self._db = self._db, None
        self._states.clear()
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
        # The hot path: a cached state that no commit anywhere has made stale.
        if cached is not None and cached.token == self._probe.token():
            return cached.state
        return self._synced_state(pool_id, cached)

    def _synced_state(self, pool_id: str, cached: _Cached | None) -> PoolState:
        db = self._connection()
        try:
            token = self._probe.token()
            if cached is None:
                cached = _Cached(self._engine.PoolState(pool_id))
            self._catch_up(db, cached.state)
        except apsw.Error as error:
            raise translate(error) from error
        finally:
            # Progress made before a corrupt row is kept, so a later call resumes after it.
            if cached is not None and cached.state.cursor:
                self._states[pool_id] = cached
        cached.token = token
        return cached.state

    def _catch_up(self, db: apsw.Connection, state: PoolState) -> None:
        rows = db.cursor()
        try:
            self._engine.replay_rows(state, rows.execute(_ROWS_AFTER, (state.pool_id, state.cursor)))
        finally:
            rows.close(True)  # ends the read transaction even when replay stopped early

    def _append(self, pool_id: str, build: Build) -> tuple[Any, int]:
        db = self._connection()
        if self._batch is None:
            # Catch up on other writers' records before taking the write lock, so that
            # inside it only the few records committed in between remain to be read.
            self._read_state(pool_id)
        began = self._begin(db)
        try:
            state = self._read_state(pool_id)
            before = self._states[pool_id].token if state.cursor else None
            payload = build(state)
            if payload is not None:
                sequence = state.cursor + 1
                text = self._engine.dumps(payload)
                db.execute(_INSERT, (pool_id, sequence, payload.TYPE, text))
            if began:
                db.execute("COMMIT")
        except BaseException as error:
            if began:
                self._rollback(db)
            if isinstance(error, apsw.Error):
                raise translate(error) from error
            raise
        if payload is None:
            return None, state.cursor
        state.apply(payload, sequence)
        cached = self._remember(pool_id, state)
        if began:
            # The cache is current after our own commit only if nobody else committed meanwhile.
            after = self._probe.token()
            synced = before is not None and self._probe.only_own_commit(before, after)
            cached.token = after if synced else None
        else:
            # Inside store.transaction(): a rollback forgets every pool the batch touched.
            assert self._batch is not None
            self._batch.add(pool_id)
        return payload, sequence

    def _change_token(self) -> object:
        self._connection()
        return self._probe.token()

    def _remember(self, pool_id: str, state: PoolState) -> _Cached:
        cached = self._states.get(pool_id)
        if cached is None:
            cached = self._states[pool_id] = _Cached(state)
        return cached

    def _records_after(self, pool_id: str, after: int, limit: int = -1) -> list[AgentPoolStoreRecord]:
        # A cursor may be any u64 (or larger int); SQLite integers stop at 2**63 - 1, and
        # no record lies beyond that, so the clamped query gives the same (empty) answer.
        after = min(after, _MAX_SEQUENCE)
        try:
            rows = self._connection().execute(_ROWS_AFTER_LIMIT, (pool_id, after, limit)).fetchall()
        except apsw.Error as error:
            raise translate(error) from error
        return list(decode_records(self._engine, pool_id, rows))

    def _allocate_event_sequence(self, pool_id: str) -> int:
        db = self._connection()
        began = self._begin(db)
        try:
            self._opened(self._read_state(pool_id))
            sequence: int = db.execute(_NEXT_EVENT, (pool_id,)).fetchall()[0][0]  # type: ignore[assignment]
            if began:
                db.execute("COMMIT")
        except BaseException as error:
            if began:
                self._rollback(db)
            if isinstance(error, apsw.Error):
                raise translate(error) from error
            raise
        return sequence

    # -- transactions ------------------------------------------------------------------------

    def _begin(self, db: apsw.Connection) -> bool:
        """``BEGIN IMMEDIATE``; False (nothing begun) inside an open ``transaction()``."""
        if self._batch is not None:
            return False
        try:
            db.execute("BEGIN IMMEDIATE")
        except apsw.Error as error:
            raise translate(error) from error
        return True

    @staticmethod
    def _rollback(db: apsw.Connection) -> None:
        if not db.getautocommit():
            db.execute("ROLLBACK")

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
            db = self._connection()
            self._begin(db)
            touched: set[str] = set()
            self._batch = touched
            try:
                yield self
                self._batch = None
                db.execute("COMMIT")
            except BaseException as error:
                self._batch = None
                self._rollback(db)
                for pool_id in touched:
                    self._states.pop(pool_id, None)
                if isinstance(error, apsw.Error):
                    raise translate(error) from error
                raise
            for pool_id in touched:
                self._states[pool_id].token = None

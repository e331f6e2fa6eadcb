"""The connection the surfaces share: one APSW connection, one lock, one error boundary.

Rust opens a new connection per call and runs each statement on its own; fastpool keeps one
connection per ``SurfaceDb`` (WAL, the pool store's busy handler) and runs every call that
reads then writes in one ``BEGIN IMMEDIATE`` transaction (``_sqlite_write.Write``), so two writers,
threads or processes, cannot both pass a check. Several surfaces (a bundle's) share one
``SurfaceDb``; a store hands its connection and lock to ``SurfaceDb(db, lock)``, and a
surface call made inside that store's ``transaction()`` joins it (one commit for both).

SQLite's errors leave as Rust words them (``sqlite store error: <message>``,
``RECOVERY_REPAIR_NEEDED``/``RETRYABLE``), here and only here.
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

import apsw

from .._base import _InheritedLock
from .._sqlite_errors import PREFIX
from .._sqlite_file import enable_wal
from .._sqlite_write import BusyWait, Write, end
from ..enums import AgentErrorKind, RetryClassification
from ..errors import AgentError
from . import _sql

__all__ = ["SurfaceDb", "sqlite_error", "to_i64", "to_u64", "keep_out_of_forks"]

T = TypeVar("T")
_U64 = 2**64


def to_i64(value: int) -> int:
    """A ``u64`` as Rust's ``as i64`` binds it (2^63 and above wrap to negative)."""
    return value - _U64 if value >= 2**63 else value


def to_u64(value: int) -> int:
    """An ``i64`` read back as Rust's ``as u64`` reinterprets it."""
    return value + _U64 if value < 0 else value


def sqlite_error(error: BaseException) -> AgentError:
    """Rust's ``sqlite_error``: any SQLite failure, retryable after repair."""
    return AgentError(
        AgentErrorKind.RECOVERY_REPAIR_NEEDED, RetryClassification.RETRYABLE, f"sqlite store error: {error}"
    )


# Every surface connection of this process, opened or shared: a fork() child must not use them.
_live: weakref.WeakSet[Any] = weakref.WeakSet()


def keep_out_of_forks(db: Any) -> None:
    """Make a fork() child refuse ``db`` (its ``lock`` raises) and never close its connection."""
    _live.add(db)


def _disable_inherited() -> None:
    message = (
        f"surface store was opened in process {os.getppid()} and cannot be used after fork(): "
        f"open a new one in this process (pid {os.getpid()})"
    )
    for db in list(_live):
        db.lock = _InheritedLock(message)
        db._owned = False
        # SQLite and libpq forbid using a connection across fork(), closing included: one
        # reference more than anyone holds keeps it from being garbage-collected here.
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(db.connection))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_disable_inherited)


class SurfaceDb:
    """An APSW connection, the lock its users share, and the surfaces' transaction boundary."""

    sql = _sql

    def __init__(
        self,
        db: apsw.Connection,
        lock: AbstractContextManager[Any] | None = None,
        busy: BusyWait | None = None,
        *,
        owned: bool = False,
    ) -> None:
        self.db = db
        self._owned = owned  # a connection shared by its owner (a store) is the owner's to close
        # Re-entrant: a store that shares its connection holds its lock around several surfaces' calls.
        self.lock: AbstractContextManager[Any] = lock if lock is not None else threading.RLock()
        self._busy = busy
        self._created: set[str] = set()
        keep_out_of_forks(self)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> SurfaceDb:
        """Open or create the file at ``path`` (missing parent directories are created) in WAL mode."""
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
        except (apsw.Error, OSError) as error:
            raise sqlite_error(error) from error
        busy = BusyWait(busy_timeout)
        db.set_busy_handler(busy)
        try:
            enable_wal(db, busy_timeout)
            db.execute("PRAGMA synchronous=NORMAL")
        except apsw.Error as error:
            db.close()
            raise sqlite_error(error) from error
        return cls(db, busy=busy, owned=True)

    def create(self, name: str) -> None:
        """Run the ``CREATE ... IF NOT EXISTS`` text of surface ``name`` (once per connection)."""
        if name not in self._created:
            self.write(lambda run: run(_sql.SCHEMAS[name], ()))
            self._created.add(name)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one statement (a single statement needs no transaction to be consistent)."""
        with self.lock:
            try:
                return self.db.execute(sql, params).fetchall()
            except apsw.Error as error:
                raise sqlite_error(error) from error

    def write(self, body: Callable[[Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]], T]) -> T:
        """Run ``body(run)`` in one ``BEGIN IMMEDIATE`` transaction (``run(sql, params)`` returns a
        statement's rows): committed if it returns, rolled back if it raises."""
        with self.lock:
            if not self.db.getautocommit():
                # Inside the sharer's own transaction (store.transaction()): join it, so its
                # commit or rollback takes these statements with its own.
                try:
                    return body(self._run)
                except apsw.Error as error:
                    raise sqlite_error(error) from error
            try:
                with Write(self.db, True, False, self._busy):
                    return body(self._run)
            except AgentError as error:
                cause = error.__cause__
                if isinstance(cause, apsw.Error) and error.message.startswith(PREFIX):
                    raise sqlite_error(cause) from cause  # _Write words it as the pool store
                raise
            except BaseException:
                end(self.db)  # an interrupt on entering the boundary's exit skips it
                raise

    def next_journal_seq(self) -> int:
        """The journal's largest sequence + 1 (a runtime reads it inside the call's transaction)."""
        value = self.rows(_sql.JOURNAL_NEXT_SEQ)[0][0]
        assert isinstance(value, int)
        return value

    def next_archive_seq(self, run: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]) -> int:
        """The archive's largest ``seq`` + 1, inside a write."""
        value = run(_sql.ARCHIVE_NEXT, ())[0][0]
        assert isinstance(value, int)
        return value

    @property
    def connection(self) -> apsw.Connection:
        """The APSW connection."""
        return self.db

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the connection if this ``SurfaceDb`` opened it; closing twice is harmless."""
        if self._owned:
            with self.lock:
                self.db.close()
